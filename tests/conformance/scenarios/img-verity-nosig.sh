description="libsysext: a verity DDI without signature or root hash merges unprotected (default policy and root=unprotected)"
setup() {
    mkbase
    sysext_tree "$STAGE/vn" vn ID=_any
    verity_ddi /var/lib/extensions/vn.raw "$STAGE/vn" nosig
}
steps="merge:no statusj unmerge merge:yes write:/usr/bin/p unmerge merge:no:--image-policy=root=unprotected+absent:usr=unprotected+absent statusj unmerge"
