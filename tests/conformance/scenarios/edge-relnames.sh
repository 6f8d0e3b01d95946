description="libsysext: release file naming, xattr, reload manager, ID_LIKE"
OS_RELEASE='ID=derived
ID_LIKE="debian ubuntu"
VERSION_ID=13'
setup() {
    mkbase
    sysext like 'ID=debian
VERSION_ID=13
EXTENSION_RELOAD_MANAGER=1'
    sysext other 'ID=ubuntu
VERSION_ID=12'
    sysext mis ID=_any
    mv "$R/var/lib/extensions/mis/usr/lib/extension-release.d/extension-release.mis" "$R/var/lib/extensions/mis/usr/lib/extension-release.d/extension-release.zzz"
    sysext xat ID=_any
    mv "$R/var/lib/extensions/xat/usr/lib/extension-release.d/extension-release.xat" "$R/var/lib/extensions/xat/usr/lib/extension-release.d/extension-release.qqq"
    setxattr /var/lib/extensions/xat/usr/lib/extension-release.d/extension-release.qqq user.extension-release.strict 0
    sysext "ver_1.2" 'ID=_any'
    mv "$R/var/lib/extensions/ver_1.2/usr/lib/extension-release.d/extension-release.ver_1.2" "$R/var/lib/extensions/ver_1.2/usr/lib/extension-release.d/extension-release.ver"
}
steps="merge:no statusj unmerge merge:yes:--no-reload write:/usr/bin/w unmerge"
