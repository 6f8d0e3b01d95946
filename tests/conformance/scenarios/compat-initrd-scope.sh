description="libsysext: a --root holding etc/initrd-release: SYSEXT_SCOPE=/CONFEXT_SCOPE= checked against the initrd scope (262), /.extra/sysext searched as in the initrd"
setup() {
    mkbase
    sysext sys 'ID=_any
SYSEXT_SCOPE=system'
    sysext ini 'ID=_any
SYSEXT_SCOPE=initrd'
    sysext both 'ID=_any
SYSEXT_SCOPE=initrd system'
    sysext dflt
    sysext xtra 'ID=_any' /.extra/sysext
    confext csys 'ID=_any
CONFEXT_SCOPE=system'
    confext cini 'ID=_any
CONFEXT_SCOPE=initrd'
    put /etc/initrd-release 'ID=debian' 'VERSION_ID=13'
}
gone() { del /etc/initrd-release; }
steps="list merge statusj unmerge clist cmerge cstatusj cunmerge sh:gone merge statusj unmerge"
