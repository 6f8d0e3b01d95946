description="libsysext: a tmpfs mounted below /usr stays visible on top of the merge, after refresh and after unmerge"
setup() {
    mkbase
    sysext foo
    put /usr/share/foo/data "from foo"
    mkd /usr/share/sub
}
mount_sub() { mount -t tmpfs -o mode=0755 tmpfs "$R/usr/share/sub"; echo inside > "$R/usr/share/sub/inside"; }
steps="sh:mount_sub merge:no statusj refresh:no unmerge merge:yes write:/usr/share/sub/w refresh:yes unmerge merge:ephemeral unmerge"
