description="libsysext: a verity DDI with a .roothash sidecar fails with the default policy (no device-mapper)"
setup() {
    mkbase
    sysext_tree "$STAGE/vr" vr ID=_any
    verity_ddi /var/lib/extensions/vr.raw "$STAGE/vr" roothash
    sysext plain
}
steps="merge:no statusj unmerge list"
