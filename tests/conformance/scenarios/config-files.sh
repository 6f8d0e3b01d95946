description="libsysext: sysext.conf/confext.conf and their .conf.d drop-ins below the root ([SysExt]/[ConfExt] Mutable=, ImagePolicy=), overridden by --mutable="
setup() {
    mkbase
    sysext foo
    confext cfoo
    route usr dir
    put /usr/lib/systemd/sysext.conf '[SysExt]' 'Mutable=import'
    put /etc/systemd/sysext.conf '[SysExt]' 'Mutable=yes'
    put /etc/systemd/confext.conf '[ConfExt]' 'Mutable=ephemeral'
}
dropins() {
    put /usr/lib/systemd/sysext.conf.d/10-a.conf '[SysExt]' 'Mutable=ephemeral'
    put /etc/systemd/sysext.conf.d/05-b.conf '[SysExt]' 'Mutable=no'
}
override() { put /usr/lib/systemd/sysext.conf.d/10-a.conf '[SysExt]' 'Mutable=no'; put /etc/systemd/sysext.conf.d/10-a.conf '[SysExt]' 'Mutable=auto'; }
policy() { put /etc/systemd/sysext.conf.d/50-p.conf '[SysExt]' 'ImagePolicy=root=absent:usr=absent'; sysext_raw erofs img; }
wrongsec() { del /etc/systemd/sysext.conf.d /usr/lib/systemd/sysext.conf.d; put /etc/systemd/sysext.conf '[ConfExt]' 'Mutable=yes'; }
steps="merge write:/usr/bin/p1 unmerge merge:no write:/usr/bin/p2 unmerge cmerge write:/etc/p3 cunmerge sh:dropins merge write:/usr/bin/p4 unmerge sh:override merge write:/usr/bin/p5 unmerge sh:policy merge statusj unmerge sh:wrongsec merge write:/usr/bin/p6 unmerge"
