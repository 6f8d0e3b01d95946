description="libsysext: a --root holding etc/initrd-release: SYSEXT_SCOPE=/CONFEXT_SCOPE= checked against the initrd scope and the initrd's search dirs (/.extra/sysext, then /.extra/global_sysext; confext without /usr/lib/confexts) at 262; 257 asks the host"
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
    sysext xini 'ID=_any
SYSEXT_SCOPE=initrd' /.extra/sysext
    sysext gini 'ID=_any
SYSEXT_SCOPE=initrd' /.extra/global_sysext
    # the same name: /var/lib/extensions before /.extra/sysext before /.extra/global_sysext
    sysext dup 'ID=_any
SYSEXT_SCOPE=system' /var/lib/extensions
    sysext dup 'ID=_any
SYSEXT_SCOPE=initrd' /.extra/sysext
    sysext xdup 'ID=_any
SYSEXT_SCOPE=initrd' /.extra/sysext
    sysext xdup 'ID=_any
SYSEXT_SCOPE=system initrd' /.extra/global_sysext
    confext csys 'ID=_any
CONFEXT_SCOPE=system'
    confext cini 'ID=_any
CONFEXT_SCOPE=initrd'
    confext cxtra 'ID=_any
CONFEXT_SCOPE=initrd' /.extra/confext
    confext cglob 'ID=_any
CONFEXT_SCOPE=initrd' /.extra/global_confext
    confext culib 'ID=_any
CONFEXT_SCOPE=initrd' /usr/lib/confexts
    put /etc/initrd-release 'ID=debian' 'VERSION_ID=13'
}
gone() { del /etc/initrd-release; }
# an absolute symlink, resolved inside the root
linked() { del /etc/initrd-release; put /etc/real-initrd 'ID=x'; link /etc/initrd-release /etc/real-initrd; }
steps="list merge statusj unmerge clist cmerge cstatusj cunmerge sh:linked list merge statusj unmerge sh:gone list clist merge statusj unmerge"
