description="libsysext: a verity DDI with a .roothash sidecar fails with the default policy (no device-mapper)"
# Messages differ: the reference chroot has no libcryptsetup, so 257 fails in its merge child
# with only "Failed to merge hierarchies"; ours says which image needs device-mapper.
stderr_compare=no
setup() {
    mkbase
    sysext_tree "$STAGE/vr" vr ID=_any
    verity_ddi /var/lib/extensions/vr.raw "$STAGE/vr" roothash
    sysext plain
}
steps="merge:no statusj unmerge list"
