description="libsysext: GPT DDIs whose extension lives in a usr partition (alone, and beside a root partition holding /opt), in modes no, yes and ephemeral"
setup() {
    mkbase
    # usr partition only: its file system is what appears below /usr
    u="$STAGE/usr-only"; mkdir -p "$u/usr"
    sysext_tree "$u/tree" uo ID=_any
    cp -a "$u/tree/usr/." "$u/usr/"
    xput "$u/usr/share/uo/data" "data from uo"
    d="$STAGE/defs-uo"; mkdir -p "$d"
    xput "$d/10-usr.conf" '[Partition]' Type=usr Format=erofs CopyFiles=/usr/:/ Minimize=best
    repart_img /var/lib/extensions/uo.raw "$d" "$u"
    # usr partition beside a root partition that holds /opt
    w="$STAGE/usr-root"; mkdir -p "$w/usr" "$w/opt/ur"
    sysext_tree "$w/tree" ur ID=_any
    cp -a "$w/tree/usr/." "$w/usr/"
    xput "$w/opt/ur/f" "opt from ur"
    d2="$STAGE/defs-ur"; mkdir -p "$d2"
    xput "$d2/10-root.conf" '[Partition]' Type=root Format=erofs CopyFiles=/opt/ MakeDirectories=/usr Minimize=best
    xput "$d2/20-usr.conf" '[Partition]' Type=usr Format=erofs CopyFiles=/usr/:/ Minimize=best
    repart_img /var/lib/extensions/ur.raw "$d2" "$w"
    route usr dir
}
steps="list merge:no statusj exec:/usr/bin/uo unmerge merge:yes write:/usr/bin/p statusj unmerge merge:ephemeral write:/usr/share/q unmerge"
