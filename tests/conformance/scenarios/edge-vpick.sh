description="libsysext: vpick dirs, names with spaces and dots, hidden names, force with a mask"
setup() {
    mkbase
    sysext_tree "$R/var/lib/extensions/foo.v/foo_1" foo ID=_any
    sysext_tree "$R/var/lib/extensions/foo.v/foo_10" foo ID=_any
    sysext_tree "$R/var/lib/extensions/foo.v/foo_2" foo ID=_any
    put /var/lib/extensions/foo.v/foo_10/usr/share/v "ten"
    put /var/lib/extensions/foo.v/foo_2/usr/share/v "two"
    sysext "a b"
    sysext ".hidden"
    sysext "x.y"
    mkd /etc/extensions/masked
    sysext masked
}
steps="list merge:no statusj unmerge merge:no:--force statusj unmerge merge:no:--noexec=yes exec:/usr/bin/foo unmerge"
