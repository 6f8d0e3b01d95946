description="libsysext: a work_dir meta file planted in the routing dir (the upper layer shadows the meta layer): absolute, climbing, not normalized (262 refuses the unmerge of /usr), and the right one"
# Messages differ in order: 262 refuses the work dir in its unmerge child (then "(sd-unmerge)
# failed"), we report it after unmerging the other hierarchies ("Failed to unmerge hierarchies").
stderr_compare=no
setup() {
    mkbase
    sysext foo
    route usr dir
    mkd /srv/victim/sub
    put /srv/victim/sub/file "precious"
    put /var/lib/extensions.mutable/precious "precious too"
}
plant() { put /var/lib/extensions.mutable/usr/.systemd-sysext/work_dir "$1"; }
unplant() { while grep -q " $R/usr " /proc/self/mounts; do umount -l "$R/usr"; done; while grep -q " $R/opt " /proc/self/mounts; do umount -l "$R/opt"; done; del /var/lib/extensions.mutable/usr/.systemd-sysext /var/lib/extensions.mutable/.systemd-usr-workdir /var/lib/extensions.mutable/.systemd-opt-workdir; }
steps="sh:plant:/srv/victim merge:yes statusj unmerge statusj sh:unplant sh:plant:../../../srv/victim merge:yes unmerge sh:unplant sh:plant:var/lib/extensions.mutable/../extensions.mutable/.systemd-usr-workdir merge:yes unmerge sh:unplant sh:plant:var/lib/extensions.mutable/.systemd-usr-workdir merge:yes unmerge sh:unplant"
