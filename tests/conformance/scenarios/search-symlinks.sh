description="libsysext: symlinks in the search dirs (to dirs and raw files, absolute and relative), a NAME.v that is a symlink, symlinks inside NAME.v and NAME.raw.v"
setup() {
    mkbase
    sysext_tree "$R/srv/store/la" la ID=_any
    sysext_tree "$R/srv/store/lr" lr ID=_any
    link /var/lib/extensions/la /srv/store/la
    link /var/lib/extensions/lr ../../../srv/store/lr
    sysext_raw erofs lraw ID=_any /srv/store
    link /var/lib/extensions/lraw.raw /srv/store/lraw.raw
    sysext_tree "$R/srv/store/vl.v/vl_1" vl ID=_any
    link /var/lib/extensions/vl.v /srv/store/vl.v
    sysext_tree "$R/var/lib/extensions/vr.v/vr_1" vr ID=_any
    put /var/lib/extensions/vr.v/vr_1/usr/share/vr "one"
    sysext_tree "$R/srv/store/vr2" vr ID=_any
    put /srv/store/vr2/usr/share/vr "two"
    link /var/lib/extensions/vr.v/vr_2 ../../../../srv/store/vr2
    sysext_tree "$R/var/lib/extensions/va.v/va_1" va ID=_any
    put /var/lib/extensions/va.v/va_1/usr/share/va "one"
    sysext_tree "$R/srv/store/va2" va ID=_any
    put /srv/store/va2/usr/share/va "two"
    link /var/lib/extensions/va.v/va_2 /srv/store/va2
    sysext_raw erofs rv ID=_any /var/lib/extensions/rv.raw.v rv_1
    sysext_raw squashfs rv ID=_any /srv/store rv2
    link /var/lib/extensions/rv.raw.v/rv_2.raw ../../../../srv/store/rv2.raw
    sysext_raw erofs rva ID=_any /var/lib/extensions/rva.raw.v rva_1
    sysext_raw squashfs rva ID=_any /srv/store rva2
    link /var/lib/extensions/rva.raw.v/rva_2.raw /srv/store/rva2.raw
}
steps="list merge:no statusj unmerge"
