description="libsysext: a verity DDI with a signature partition: the default policy fails (no device-mapper), root=verity and root=unprotected merge"
setup() {
    mkbase
    sysext_tree "$STAGE/vs" vs ID=_any
    verity_ddi /var/lib/extensions/vs.raw "$STAGE/vs" sig
}
steps="merge:no statusj merge:no:--image-policy=root=verity statusj unmerge merge:no:--image-policy=root=unprotected statusj unmerge"
