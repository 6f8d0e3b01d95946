description="libsysext: an erofs .raw sysext with /usr and /opt content in all six mutable modes"
setup() {
    mkbase
    sysext_raw erofs er
}
steps="$(modes_steps usr) merge:yes write:/opt/probe-yes unmerge merge:ephemeral-import statusj unmerge"
