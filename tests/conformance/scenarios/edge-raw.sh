description="libsysext: raw OS-tree image ignored (merged with --force), confext release in a sysext raw, name_1 raw"
setup() {
    mkbase
    t="$STAGE/ostree"; mkdir -p "$t/usr/lib" "$t/usr/bin"; echo ID=debian > "$t/usr/lib/os-release"; echo x > "$t/usr/bin/os"
    pack erofs "$t" /var/lib/extensions/ostree.raw
    c="$STAGE/conf"; mkdir -p "$c/etc/extension-release.d" "$c/usr/bin"; echo ID=_any > "$c/etc/extension-release.d/extension-release.conf"; echo c > "$c/usr/bin/c"
    pack squashfs "$c" /var/lib/extensions/conf.raw
    sysext_raw erofs verx ID=_any /var/lib/extensions ver_1
    sysext good
}
steps="list merge:no statusj unmerge merge:no:--force statusj unmerge"
