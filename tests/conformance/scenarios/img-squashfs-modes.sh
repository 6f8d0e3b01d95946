description="libsysext: a squashfs .raw sysext in all six mutable modes, refresh across modes"
setup() {
    mkbase
    sysext_raw squashfs sq
}
steps="$(modes_steps usr) merge:yes write:/usr/bin/p1 refresh:ephemeral write:/usr/bin/p2 refresh:import statusj unmerge"
