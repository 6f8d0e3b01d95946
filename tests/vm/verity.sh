# tests/vm/verity.sh: runs inside a VM-tier guest (bash, as root; tests/vm/verity boots it), never
# on a host. Differential verity tests with real dm-verity: each image is merged by
# systemd-sysext 257 (the trixie chroot, libcryptsetup added to its guest-only overlay) and by
# our CLI in the same guest; the exit status (0 or not), the visible tree, the protection and
# the device-mapper devices left afterwards must agree. Prints "PASS name" / "FAIL name: why"
# and "INFO ..." lines.
set -u
. /etc/vm.env
C=$VM_ORACLE
TUT=$VM_TARGET/release/sysext
W=/tmp/verity
mkdir -p $W
fails=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
info() { echo "INFO $*"; }

# As on a systemd host, mounts propagate (systemd-sysext 257 merges in a child namespace whose
# mounts must reach ours; the guest's init leaves everything private).
mount --make-rshared /
# libcryptsetup (and veritysetup, dmsetup for inspection) into the chroot: the guest's overlay.
cp -a $VM_TARGET/vm-verity-deps/. $C/
mount -t proc proc $C/proc
mount -t sysfs sys $C/sys
mount --bind /dev $C/dev
mount -t tmpfs -o mode=0755 run $C/run
mkdir -p $C/run/tmp
info "device-mapper $(cat /sys/module/dm_mod/version 2>/dev/null), dm_verity $(cat /sys/module/dm_verity/version 2>/dev/null)"
# The chroot runs without udev: libdevmapper makes the /dev/mapper nodes itself.
CENV=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 SYSTEMD_PAGER=cat SYSTEMD_COLORS=0
      DM_DISABLE_UDEV=1 SYSTEMD_DISSECT_VERITY_TIMEOUT_SEC=30 SYSTEMD_LOG_LEVEL=debug TMPDIR=/var/tmp)
inc() { chroot $C "${CENV[@]}" "$@"; }

# Keys: a trusted one (in /etc/verity.d of both tools) and an untrusted one.
K=$C/keys; mkdir -p $K
for n in trusted untrusted; do
  openssl req -x509 -newkey rsa:2048 -nodes -keyout $K/$n.key -out $K/$n.crt -subj /CN=libsysext-$n \
    -days 36500 >/dev/null 2>&1
done
mkdir -p /etc/verity.d $C/etc/verity.d
cp $K/trusted.crt /etc/verity.d/ ; cp $K/trusted.crt $C/etc/verity.d/

# Extension trees.
S=$C/src; mkdir -p $S
tree() { # DIR NAME CLASS: a small tree with a 256 KiB file of a known pattern (the corruption target)
  local d=$1 n=$2 cls=$3 rel
  if [ $cls = sysext ]; then
    rel=$d/usr/lib/extension-release.d/extension-release.$n
    mkdir -p $d/usr/share/$n $d/usr/lib/extension-release.d
    echo "hello from $n" > $d/usr/share/$n/hello
    python3 -c "import sys; sys.stdout.write(('$n-block-' * 40000)[:262144])" > $d/usr/share/$n/big
  else
    rel=$d/etc/extension-release.d/extension-release.$n
    mkdir -p $d/etc/$n $d/etc/extension-release.d
    echo "hello from $n" > $d/etc/$n/hello
  fi
  printf 'ID=_any\n' > $rel
}

# repart definitions: the stock sysext/confext ones (verity + signature), and variants.
D=$C/defs; mkdir -p $D
defs() { # NAME TYPE(root|usr) SIG(yes|no) CLASS
  local d=$D/$1 t=$2 cp
  mkdir -p $d
  if [ $4 = confext ]; then cp="CopyFiles=/etc/"; elif [ $t = usr ]; then cp="CopyFiles=/usr/:/"; else cp="CopyFiles=/usr/"; fi
  printf '[Partition]\nType=%s\nFormat=erofs\n%s\nVerity=data\nVerityMatchKey=%s\nMinimize=best\n' $t "$cp" $t > $d/10-data.conf
  printf '[Partition]\nType=%s-verity\nVerity=hash\nVerityMatchKey=%s\nMinimize=best\n' $t $t > $d/20-hash.conf
  [ $3 = yes ] && printf '[Partition]\nType=%s-verity-sig\nVerity=signature\nVerityMatchKey=%s\n' $t $t > $d/30-sig.conf
  true
}
IMG=$C/img; mkdir -p $IMG
repart() { # OUT NAME SRC DEFS KEY [extra]
  local out=$1 n=$2 src=$3 defs=$4 key=$5; shift 5
  inc systemd-repart --empty=create --size=auto --offline=yes --no-pager --seed=6f0c2a4e-0000-4000-8000-000000000000 \
    --definitions=/defs/$defs --copy-source=/src/$src --private-key=/keys/$key.key --certificate=/keys/$key.crt \
    "$@" /img/$out > $W/repart-$n.log 2>&1 || { fail "build $n: systemd-repart failed: $(tail -3 $W/repart-$n.log | tr '\n' ' ')"; return 1; }
}
t0=$(date +%s)
tree $S/vsig vsig sysext;   defs sys-sig root yes sysext;   repart vsig.raw vsig vsig sys-sig trusted
tree $S/vnosig vnosig sysext; defs sys-nosig root no sysext; repart vnosig.raw vnosig vnosig sys-nosig trusted
tree $S/vusr vusr sysext;   defs usr-sig usr yes sysext;    repart vusr.raw vusr vusr usr-sig trusted
tree $S/vconf vconf confext; defs conf-sig root yes confext; repart vconf.raw vconf vconf conf-sig trusted
tree $S/vuntr vuntr sysext; repart vuntr.raw vuntr vuntr sys-sig untrusted
# Sidecars: a naked erofs, its tree (veritysetup format: userspace), the root hash, its signature.
tree $S/vside vside sysext
mkfs.erofs --quiet -T0 --all-root $IMG/vside.raw $S/vside >/dev/null
inc veritysetup format /img/vside.raw /img/vside.verity > $W/vside.format 2>&1
sed -n 's/^Root hash:[[:space:]]*//p' $W/vside.format | tr -d '\n' > $IMG/vside.roothash
openssl smime -sign -nocerts -noattr -binary -in $IMG/vside.roothash -inkey $K/trusted.key -signer $K/trusted.crt \
  -outform der -out $IMG/vside.roothash.p7s
info "images built in $(( $(date +%s) - t0 )) s: $(cd $IMG && ls | tr '\n' ' ')"

# Broken copies.
cp $IMG/vnosig.raw $IMG/vbadtree.raw
python3 - $IMG/vbadtree.raw <<'PY'
import sys, json, struct
# Flip a byte of the hash tree: the root-verity partition (GPT type 2c7357ed-...) past its superblock.
f = open(sys.argv[1], 'r+b'); d = f.read()
lba = 512; hdr = d[lba:lba + 92]
n, sz, start = struct.unpack_from('<I', hdr, 80)[0], struct.unpack_from('<I', hdr, 84)[0], struct.unpack_from('<Q', hdr, 72)[0]
import uuid
want = uuid.UUID('2c7357ed-ebd2-46d9-aec1-23d437ec2bf5').bytes_le
for i in range(n):
    e = d[start * lba + i * sz: start * lba + (i + 1) * sz]
    if e[:16] == want:
        first = struct.unpack_from('<Q', e, 32)[0]
        off = first * lba + 4096 + 7
        f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0xff])); break
else:
    sys.exit('no root-verity partition')
PY
for n in vside; do :; done
mkdir -p $IMG/badhash; cp $IMG/vside.raw $IMG/vside.verity $IMG/badhash/
printf '%064x' 1 > $IMG/badhash/vside.roothash
mkdir -p $IMG/badsig; cp $IMG/vside.raw $IMG/vside.verity $IMG/vside.roothash $IMG/badsig/
openssl smime -sign -nocerts -noattr -binary -in $IMG/vside.roothash -inkey $K/untrusted.key -signer $K/untrusted.crt \
  -outform der -out $IMG/badsig/vside.roothash.p7s

SB=$C/sb
dmcount() { ls /sys/block | grep -c '^dm-'; }
dmnames() { for d in /sys/block/dm-*; do [ -e $d/dm/name ] && cat $d/dm/name; done 2>/dev/null | tr '\n' ' '; }
sandbox() { # CLASS FILES...: a fresh root with the images
  local cls=$1; shift
  umount -R $SB 2>/dev/null; rm -rf $SB; mkdir -p $SB/usr/lib $SB/etc $SB/opt $SB/var/lib/extensions $SB/var/lib/confexts
  printf 'ID=debian\nVERSION_ID=13\n' > $SB/usr/lib/os-release; cp $SB/usr/lib/os-release $SB/etc/os-release
  local dir=$SB/var/lib/extensions; [ $cls = confext ] && dir=$SB/var/lib/confexts
  cp "$@" $dir/
}
observe() { # the visible tree of the hierarchies: names, and each file's md5 (few processes:
  # each one costs 100-400 ms under TCG). The meta dirs differ by design (their dev file names
  # each tool's overlay) and are left out.
  (cd $SB && find usr etc opt \( -name .systemd-sysext -o -name .systemd-confext -o -path usr/lib/os-release \
     -o -path etc/os-release \) -prune -o \( -type f -exec md5sum {} + \) -o -print 2>&1 | sort)
}
tool() { # WHO CLASS VERB [ARGS]
  local who=$1 cls=$2 verb=$3; shift 3
  if [ $who = systemd ]; then inc systemd-$cls --root=/sb "$@" $verb
  else
    local c=(); [ $cls = confext ] && c=(--confext)
    env LIBSYSEXT_COMPAT=257 SYSTEMD_LOG_LEVEL=debug $TUT "${c[@]}" --root=$SB "$@" $verb
  fi
}
settle() { local i; for i in $(seq 50); do [ "$(dmcount)" = 0 ] && return 0; sleep 0.1; done; return 1; }

# case NAME CLASS "FILES" [merge args]: merge by each tool, observe, unmerge; compare.
case_() {
  local name=$1 cls=$2 files=$3; shift 3
  local who rc tree dm left
  declare -A R T M L
  for who in systemd ours; do
    sandbox $cls $files
    tool $who $cls merge "$@" > $W/$name.$who.merge.log 2>&1; R[$who]=$?
    T[$who]=$(observe); M[$who]="$(dmcount) [$(dmnames)]"
    tool $who $cls unmerge > $W/$name.$who.unmerge.log 2>&1
    settle; L[$who]=$(dmcount)
    echo "${T[$who]}" > $W/$name.$who.tree
  done
  local why=
  [ $((R[systemd] == 0)) = $((R[ours] == 0)) ] || why="$why merge exit systemd ${R[systemd]}, ours ${R[ours]};"
  [ "${T[systemd]}" = "${T[ours]}" ] || why="$why visible trees differ ($(diff $W/$name.systemd.tree $W/$name.ours.tree | grep '^[<>]' | head -3 | tr '\n' ' '));"
  [ "${L[systemd]}" = 0 ] || why="$why systemd left ${L[systemd]} dm devices;"
  [ "${L[ours]}" = 0 ] || why="$why we left ${L[ours]} dm devices;"
  if [ -z "$why" ]; then pass "$name (merge exit ${R[ours]}; dm devices while merged: systemd ${M[systemd]}, ours ${M[ours]})"
  else fail "$name:$why (logs $W/$name.*)"; cp $W/$name.* /vm/out/ 2>/dev/null; fi
}

t0=$(date +%s)
case_ ddi-signed sysext "$IMG/vsig.raw"
case_ ddi-verity-nosig sysext "$IMG/vnosig.raw"
case_ ddi-usr-signed sysext "$IMG/vusr.raw"
case_ ddi-confext-signed confext "$IMG/vconf.raw"
case_ ddi-untrusted-key sysext "$IMG/vuntr.raw"
case_ ddi-untrusted-key-policy-verity sysext "$IMG/vuntr.raw" --image-policy=root=verity+signed
case_ ddi-corrupt-hash-tree sysext "$IMG/vbadtree.raw"
case_ sidecar-signed sysext "$IMG/vside.raw $IMG/vside.verity $IMG/vside.roothash $IMG/vside.roothash.p7s"
case_ sidecar-roothash sysext "$IMG/vside.raw $IMG/vside.verity $IMG/vside.roothash"
case_ sidecar-bad-roothash sysext "$IMG/badhash/vside.raw $IMG/badhash/vside.verity $IMG/badhash/vside.roothash"
case_ sidecar-untrusted-sig sysext "$IMG/badsig/vside.raw $IMG/badsig/vside.verity $IMG/badsig/vside.roothash $IMG/badsig/vside.roothash.p7s"
info "differential cases took $(( $(date +%s) - t0 )) s"

# Ours only: a corrupted data block fails reads after the merge; two merges share a device;
# nothing is left after unmerge.
for who in ours systemd; do
  sandbox sysext $IMG/vside.raw $IMG/vside.verity $IMG/vside.roothash
  tool $who sysext merge > $W/eio.$who.log 2>&1 || { fail "eio-$who: merge failed: $(tail -2 $W/eio.$who.log | tr '\n' ' ')"; cp $W/eio.$who.log /vm/out/; continue; }
  [ -f $SB/usr/share/vside/big ] || { fail "eio-$who: merged, but the file is not there"; cp $W/eio.$who.log /vm/out/; ls -la $SB/usr $SB/usr/share > /vm/out/eio.$who.ls 2>&1; grep vside /proc/self/mountinfo >> /vm/out/eio.$who.ls; tool $who sysext unmerge >/dev/null 2>&1; continue; }
  img=$SB/var/lib/extensions/vside.raw
  cmp -s $SB/usr/share/vside/big $S/vside/usr/share/vside/big || fail "eio-$who: content differs before the corruption"
  off=$(python3 -c "import sys; d=open('$img','rb').read(); print(d.find(b'vside-block-' * 8) + 5000)")
  python3 -c "
f=open('$img','r+b'); f.seek($off); b=f.read(1); f.seek($off); f.write(bytes([b[0]^0xff])); f.close()"
  sync; echo 3 > /proc/sys/vm/drop_caches
  if out=$(cat $SB/usr/share/vside/big 2>&1 >/dev/null); then
    fail "eio-$who: reading a file with a flipped data block (offset $off) succeeded"
  else
    case $out in *"Input/output error"*) pass "eio-$who: a flipped data block (offset $off) reads as EIO after the merge" ;;
      *) fail "eio-$who: read failed, but not with EIO: $out" ;; esac
  fi
  dmesg | grep -i 'verity.*corrupted' | tail -1 | sed 's/^/INFO kernel: /'
  tool $who sysext unmerge > /dev/null 2>&1
  settle && pass "eio-$who: no dm device left after unmerge" || fail "eio-$who: dm devices left: $(dmnames)"
done

# Sharing: the same image merged into two roots by us: one device, named <roothash>-verity.
sandbox sysext $IMG/vsig.raw
rm -rf $C/sb2; cp -a $SB $C/sb2
tool ours sysext merge > $W/share1.log 2>&1
env LIBSYSEXT_COMPAT=257 $TUT --root=$C/sb2 merge > $W/share2.log 2>&1
n=$(dmcount); names=$(dmnames)
case "$n:$names" in
  "1:"*-verity" ") pass "shared: two merges of one image use one device ($names)" ;;
  *) fail "shared: $n devices after two merges of one image: $names ($(tail -2 $W/share2.log | tr '\n' ' '))" ;;
esac
$TUT --root=$C/sb2 unmerge >/dev/null 2>&1
[ "$(dmcount)" = 1 ] && pass "shared: the device stays while the other merge uses it" || fail "shared: $(dmcount) devices after one of two unmerges"
tool ours sysext unmerge >/dev/null 2>&1
settle && pass "shared: no device left after both unmerges" || fail "shared: devices left: $(dmnames)"
# A failed merge leaves nothing: the corrupt tree fails at mount (or first read) time.
cp /vm/out/script.log /dev/null 2>/dev/null
exit $((fails > 0))
