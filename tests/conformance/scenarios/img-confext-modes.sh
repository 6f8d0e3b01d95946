description="libsysext: erofs and squashfs confext images in all six mutable modes"
setup() {
    mkbase
    confext_raw erofs ce
    confext_raw squashfs cs
}
steps="$(modes_steps etc c)"
