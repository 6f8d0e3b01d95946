description="libsysext: a GPT DDI (systemd-repart, erofs root partition) in all six mutable modes, with the routing dir present"
setup() {
    mkbase
    xput "$STAGE/ddi-dd/opt/dd/f" "opt from dd"
    xput "$STAGE/ddi-dd/usr/share/dd/data" "data from dd"
    sysext_ddi dd
    route usr dir
}
steps="$(modes_steps usr) merge:yes write:/opt/dd/g unmerge"
