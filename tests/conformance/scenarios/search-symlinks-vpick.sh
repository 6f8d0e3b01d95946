description="libsysext: NAME.v candidates that dangle (lowest, newest), a newest of the wrong type, relative links climbing above the root, top-level links (relative escaping, dangling), an absolute link as the only version"
setup() {
    mkbase
    sysext_tree "$R/var/lib/extensions/va.v/va_1" va ID=_any
    sysext_tree "$R/var/lib/extensions/va.v/va_2" va ID=_any
    link /var/lib/extensions/va.v/va_0 ../nonexist
    sysext_tree "$R/var/lib/extensions/vb.v/vb_1" vb ID=_any
    link /var/lib/extensions/vb.v/vb_2 ../nonexist
    sysext_tree "$R/var/lib/extensions/vc.v/vc_1" vc ID=_any
    put /var/lib/extensions/vc.v/vc_2 "file"
    sysext_tree "$R/var/lib/extensions/vd.v/vd_1" vd ID=_any
    sysext_tree "$R/srv/vd2" vd ID=_any
    link /var/lib/extensions/vd.v/vd_2 ../../../../../../srv/vd2
    sysext_tree "$R/srv/ve" ve ID=_any
    link /var/lib/extensions/ve ../../../../../../../srv/ve
    link /var/lib/extensions/vf /nonexistent
    sysext_tree "$R/srv/vg" vg ID=_any
    link /var/lib/extensions/vg.v/vg_1 /srv/vg
}
steps="list merge:no statusj unmerge"
