description="libsysext: the routing dir of /usr is a symlink to a regular file, then a regular file itself, in every mode (a failure on /usr comes before anything is done for /opt)"
# Messages differ: when the kernel refuses the overlay, 257/262 print their own mount(2) call
# with its staging paths and option string; ours names the hierarchy and the kernel's reason.
stderr_compare=no
setup() {
    mkbase
    sysext foo
    mkd /var/lib/extensions/foo/opt/foo
    put /var/lib/extensions/foo/opt/foo/f "opt from foo"
    route usr file
    chmod 0600 "$R/var/route-file-usr"
}
usr_plain() { del /var/lib/extensions.mutable/usr; route usr plainfile; chmod 0640 "$R/var/lib/extensions.mutable/usr"; }
steps="$(modes_steps usr) sh:usr_plain $(modes_steps usr)"
