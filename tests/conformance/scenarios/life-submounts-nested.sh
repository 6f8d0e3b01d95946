description="libsysext: a tmpfs inside a tmpfs below /opt (and below /usr) stays visible on top of the merge, after refresh and after unmerge"
setup() {
    mkbase
    sysext foo
    put /var/lib/extensions/foo/opt/foo/data "from foo"
    mkd /opt/outer /usr/share/s1
}
mount_subs() {
    mount -t tmpfs -o mode=0755 tmpfs "$R/opt/outer"; echo outer > "$R/opt/outer/o"
    mkdir "$R/opt/outer/inner"; mount -t tmpfs -o mode=0755 tmpfs "$R/opt/outer/inner"; echo inner > "$R/opt/outer/inner/i"
    mount -t tmpfs -o mode=0755 tmpfs "$R/usr/share/s1"; mkdir "$R/usr/share/s1/s2"
    mount -t tmpfs -o mode=0755 tmpfs "$R/usr/share/s1/s2"; echo x > "$R/usr/share/s1/s2/x"
}
steps="sh:mount_subs merge:no statusj refresh:no unmerge merge:yes write:/opt/outer/inner/w refresh:yes unmerge merge:ephemeral refresh:ephemeral unmerge"
