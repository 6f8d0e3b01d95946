description="libsysext: a verity DDI with a signature partition: the default policy fails (no device-mapper), root=verity and root=unprotected merge"
# Messages differ: the reference chroot has no libcryptsetup, so 257 fails in its merge child
# with only "Failed to merge hierarchies"; ours says which image needs device-mapper.
stderr_compare=no
setup() {
    mkbase
    sysext_tree "$STAGE/vs" vs ID=_any
    verity_ddi /var/lib/extensions/vs.raw "$STAGE/vs" sig
}
steps="merge:no statusj merge:no:--image-policy=root=verity statusj unmerge merge:no:--image-policy=root=unprotected statusj unmerge"
