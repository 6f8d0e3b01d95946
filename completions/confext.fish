# fish completion for confext (libsysext): the definitions of sysext.fish.
functions -q __libsysext_complete; or source (status dirname)/sysext.fish
__libsysext_complete confext
