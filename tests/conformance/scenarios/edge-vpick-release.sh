description="libsysext: release file names of images picked from NAME.v/ and NAME.raw.v/ (after the picked file or the image), top-level symlinks named differently from their target"
setup() {
    mkbase
    sysext_tree "$R/srv/bar" foo ID=_any
    link /var/lib/extensions/foo /srv/bar
    sysext_raw erofs baz ID=_any /srv qux
    link /var/lib/extensions/baz.raw /srv/qux.raw
    sysext_raw erofs bar_3 ID=_any /var/lib/extensions/bar.raw.v bar_3
    sysext_raw erofs bar2 ID=_any /var/lib/extensions/bar2.raw.v bar2_3
    sysext_tree "$R/var/lib/extensions/dd.v/dd_3" dd_3 ID=_any
    sysext_tree "$R/var/lib/extensions/de.v/de_3" de ID=_any
}
drop_bar() { del /var/lib/extensions/bar.raw.v; }
steps="list merge:no statusj unmerge sh:drop_bar merge:no statusj unmerge"
