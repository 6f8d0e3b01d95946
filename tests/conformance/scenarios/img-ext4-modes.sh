description="libsysext: a naked ext4 .raw sysext (mkfs.ext4 -d) in all six mutable modes"
setup() {
    mkbase
    sysext_tree "$STAGE/e4" e4 ID=_any
    pack_ext4 "$STAGE/e4" /var/lib/extensions/e4.raw
}
steps="$(modes_steps usr)"
