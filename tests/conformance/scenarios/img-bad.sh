description="libsysext: garbage and truncated images fail the whole merge and leave the previous merge intact"
setup() {
    mkbase
    sysext good
}
add_junk() { randfile "$R/var/lib/extensions/junk.raw" 100000 7; }
add_stub() { rm -f "$R/var/lib/extensions/junk.raw"; randfile "$R/var/lib/extensions/stub.raw" 1024 9; }
add_trunc() {
    rm -f "$R/var/lib/extensions/stub.raw"
    sysext_raw squashfs tr
    truncate -s 2000 "$R/var/lib/extensions/tr.raw"
}
steps="merge:no sh:add_junk refresh:no statusj list unmerge merge:no statusj sh:add_stub merge:no statusj sh:add_trunc merge:no statusj unmerge"
