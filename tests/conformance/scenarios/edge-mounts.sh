description="libsysext: routing dir is a mount point; hierarchy symlink; file opt in an extension"
setup() {
    mkbase
    sysext foo
    put /var/lib/extensions/foo/opt/foo/f "opt foo"
    mkd /var/lib/extensions.mutable/usr /srv/opt
    del /opt
    link /opt srv/opt
}
mnt_d() { mount -t tmpfs -o mode=0755 tmpfs "$R/var/lib/extensions.mutable/usr"; }
umnt_d() { umount "$R/var/lib/extensions.mutable/usr"; }
bad_opt() { sysext badopt; put /var/lib/extensions/badopt/opt "i am a file"; }
steps="merge:no statusj write:/opt/foo/x unmerge sh:mnt_d merge:auto merge:yes merge:import statusj unmerge merge:ephemeral-import unmerge sh:umnt_d merge:yes write:/opt/new unmerge sh:bad_opt merge:no statusj unmerge"
