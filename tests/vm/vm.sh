# Sourced by tests/vm/run and tests/vm/runner: boots Debian's own kernel packages under QEMU (TCG) with a busybox
# initramfs, the host's /usr shared read-only over virtio-9p, and runs one script as root inside.
# See README.md beside this file for the facts this rests on.

VM_CACHE=${VM_CACHE:-/var/cache/libsysext-vm}
VM_MEM=${VM_MEM:-3072}
VM_SMP=${VM_SMP:-2}
VM_TIMEOUT=${VM_TIMEOUT:-2400}
# Extra kernel command line. Speculation mitigations cost much under TCG (every flush of the
# RSB, every retpoline is emulated) and protect nothing in a throw-away test guest.
VM_APPEND=${VM_APPEND:-mitigations=off}

# vm_locked CMD...: runs CMD with the cache's lock held ($VM_CACHE/lock, flock(1)): two runs at
# once (a CI run and a developer's) would otherwise build the same kernel directory or image
# into one place (rm -rf and unpack, or both writing IMG.new) and one would boot a half-written
# one. The second run waits, then finds the cache ready. The lock is not held while guests run:
# images are replaced by rename, so a running guest keeps the one it opened.
vm_locked() {
  mkdir -p "$VM_CACHE"
  ( flock 9 || exit 2; "$@" ) 9>>"$VM_CACHE/lock"
}

# vm_tools: the host packages the tier needs.
vm_tools() {
  local p=()
  command -v qemu-system-x86_64 >/dev/null || p+=(qemu-system-x86)
  [ -x /bin/busybox ] && file_is_static /bin/busybox || p+=(busybox-static)
  command -v cpio >/dev/null || p+=(cpio)
  command -v depmod >/dev/null || [ -x /usr/sbin/depmod ] || p+=(kmod)
  command -v xz >/dev/null || p+=(xz-utils)
  command -v zstd >/dev/null || p+=(zstd)
  command -v dpkg-deb >/dev/null || p+=(dpkg)
  command -v python3 >/dev/null || p+=(python3)
  command -v mkfs.erofs >/dev/null || p+=(erofs-utils)
  command -v strip >/dev/null || p+=(binutils)
  if [ ${#p[@]} -gt 0 ]; then
    echo "vm: installing ${p[*]}" >&2
    vm_locked apt-get update -qq && vm_locked env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${p[@]}" >/dev/null
  fi
  export PATH=$PATH:/usr/sbin:/sbin
}

# Whether a binary is statically linked (busybox must be: it runs before the 9p /usr is there).
file_is_static() { ! ldd "$1" >/dev/null 2>&1; }

# vm_suite_sources SUITE: the apt sources of a Debian suite (with its updates and security).
vm_suite_sources() {
  local s=$1 k=/usr/share/keyrings/debian-archive-keyring.gpg
  case $s in
    sid) echo "deb [signed-by=$k] http://deb.debian.org/debian sid main" ;;
    *-backports) echo "deb [signed-by=$k] http://deb.debian.org/debian $s main" ;;
    *) echo "deb [signed-by=$k] http://deb.debian.org/debian $s $s-updates main"
       echo "deb [signed-by=$k] http://deb.debian.org/debian-security $s-security main" ;;
  esac
}

# vm_kernel SUITE [SERIES]: Debian's current kernel of SUITE (bookworm, trixie, sid,
# trixie-backports), the package linux-image-amd64 depends on, or with SERIES (e.g. 6.18) the
# newest linux-image-SERIES.*-amd64 of SUITE; downloaded by apt with a private state dir and
# unpacked into $VM_CACHE/kernels/SUITE/VERSION, depmod'ed. Prints that dir. A download
# failure falls back to the newest kernel already unpacked for SUITE (and SERIES; offline runs).
vm_kernel() { vm_locked vm_kernel_ "$@"; }
vm_kernel_() {
  local s=$1 series=${2:-} a=$VM_CACHE/apt/$1 pkg deb d ver
  mkdir -p $a/lists/partial $a/cache/archives/partial $VM_CACHE/kernels/$s
  vm_suite_sources $s > $a/sources.list
  local apt=(-o Dir::Etc::SourceList=$a/sources.list -o Dir::Etc::SourceParts=/dev/null
             -o Dir::State::Lists=$a/lists -o Dir::Cache=$a/cache -o Dir::State::status=/dev/null
             -o APT::Architecture=amd64 -o Acquire::Check-Valid-Until=false -o Acquire::Languages=none)
  pkg=
  if apt-get "${apt[@]}" -qq update >$a/update.log 2>&1; then
    if [ -n "$series" ]; then
      pkg=$(apt-cache "${apt[@]}" pkgnames "linux-image-$series." 2>/dev/null | grep -E "^linux-image-${series//./\\.}\.[0-9]+\+[^-]*-amd64\$" | sort -V | tail -1)
    else
      pkg=$(apt-cache "${apt[@]}" depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -1)
    fi
  fi
  if [ -z "$pkg" ]; then
    d=$(ls -d $VM_CACHE/kernels/$s/${series:+$series.}*/ready 2>/dev/null | sort -V | tail -1)
    [ -n "$d" ] || { echo "vm: no kernel for $s (apt: $(tail -2 $a/update.log))" >&2; return 1; }
    echo "vm: apt failed for $s, using the cached $(dirname $d)" >&2
    dirname $d; return 0
  fi
  d=$VM_CACHE/kernels/$s/${pkg#linux-image-}
  if [ ! -f $d/ready ]; then
    rm -rf $d; mkdir -p $d/x
    # Newer kernels split the package: linux-image-V depends on linux-binary-V (vmlinuz, in
    # usr/lib/modules/V), linux-base-V (modules.builtin, ...) and linux-modules-V.
    local pkgs=("$pkg" $(apt-cache "${apt[@]}" depends "$pkg" 2>/dev/null | sed -n "s/^ *Depends: \(linux-\(binary\|modules\|base\)-${pkg#linux-image-}\)\$/\1/p"))
    (cd $d && chown _apt: . 2>/dev/null; apt-get "${apt[@]}" -qq download "${pkgs[@]}" >$d/download.log 2>&1) || { echo "vm: apt-get download ${pkgs[*]} failed: $(tail -2 $d/download.log)" >&2; return 1; }
    for deb in $d/*.deb; do dpkg-deb -x $deb $d/x && rm -f $deb; done
    [ -d $d/x/lib/modules ] || ln -sfn usr/lib $d/x/lib   # trixie and newer: modules in usr/lib
    ver=$(ls $d/x/lib/modules | head -1)
    depmod -b $d/x $ver && touch $d/ready
  fi
  echo $d
}

# The host's /usr as an erofs image, attached to the guests as a read-only virtio disk (their
# /usr): under TCG every exec, library and Python module looked up over 9p costs round trips to
# QEMU (in a 6.1 guest /bin/true took 0.2 s, python3 -c pass 7 s, with 9p). Trees no test uses
# are left out (VM_USR_EXCLUDE, relative to /usr). Rebuilt when anything in /usr is newer than
# the image. VM_USR=9p shares /usr over 9p instead.
VM_USR=${VM_USR:-image}
VM_USR_EXCLUDE=${VM_USR_EXCLUDE:-lib/google-cloud-sdk lib/jvm lib/llvm-14 lib/postgresql share/doc share/man}
vm_usr_image() { vm_locked vm_usr_image_ "$@"; }
vm_usr_image_() {
  local img=$VM_CACHE/usr.erofs x ex=() find=(/usr -xdev)
  for x in $VM_USR_EXCLUDE; do
    [ -e /usr/$x ] || continue
    ex+=(--exclude-path=$x)
    find+=(-path /usr/$x -prune -o)
  done
  find+=(-newer $img -print -quit)
  if [ -f $img ] && [ -z "$(find "${find[@]}" 2>/dev/null)" ]; then
    echo $img; return 0
  fi
  echo "vm: making $img from /usr (once; again when /usr changes)" >&2
  mkdir -p $VM_CACHE
  rm -f $img.new; touch $img.start   # the image is dated when mkfs started (see oracle_image in run)
  mkfs.erofs --quiet "${ex[@]}" $img.new /usr >&2 && touch -r $img.start $img.new && mv $img.new $img && echo $img
}

# Modules the guest loads, with their dependencies from modules.dep. Softdeps come by name, first:
# libcrc32c (erofs, ext4 on 6.1) needs the crc32c algorithm when it loads.
VM_MODULES="crc32c-generic crc32c-intel crc32c-cryptoapi virtio-pci virtio-blk 9pnet-virtio 9p overlay loop erofs squashfs ext4 dm-mod dm-verity"

# Host /etc entries the guest gets a copy of (no secrets: no shadow, ssh, ssl/private).
VM_ETC="passwd group nsswitch.conf ld.so.cache ld.so.conf ld.so.conf.d alternatives mke2fs.conf
        os-release debian_version localtime python3 python3.11 ssl/openssl.cnf ssl/certs
        host.conf hosts protocols services login.defs"

# vm_kernel_image KDIR: the vmlinuz of an unpacked kernel package.
vm_kernel_image() {
  ls $1/x/boot/vmlinuz-* $1/x/usr/lib/modules/*/vmlinuz 2>/dev/null | head -1
}

# vm_kernel_version KDIR
vm_kernel_version() { ls $1/x/lib/modules | head -1; }

# vm_initramfs KDIR OUT INIT [FILE...]: a gzip'ed cpio with busybox, the modules (uncompressed:
# busybox insmod reads no .xz/.zst), a copy of the host's $VM_ETC, INIT (a busybox sh script) as
# /init and the FILEs in /.
vm_initramfs() {
  local K=$1 out=$2 init=$3 W md m n e
  shift 3
  W=$(mktemp -d /tmp/libsysext-vm-initrd.XXXXXX)
  mkdir -p $W/bin $W/proc $W/sys $W/dev $W/mods $W/newroot $W/etc-guest
  cp /bin/busybox $W/bin/
  md=$K/x/lib/modules/$(vm_kernel_version $K)
  python3 - "$md" $VM_MODULES > $W/mods/order <<'PY'
import os, sys
md = sys.argv[1]
deps = {}
for line in open(os.path.join(md, 'modules.dep')):
    k, v = line.split(':', 1)
    deps[k] = v.split()
byname = {os.path.basename(k).split('.')[0].replace('_', '-'): k for k in deps}
out = []
def add(k):
    for d in deps.get(k, []):
        add(d)
    if k not in out:
        out.append(k)
for w in sys.argv[2:]:
    if w in byname:
        add(byname[w])
print('\n'.join(out))
PY
  : > $W/mods/list
  while read -r m; do
    [ -n "$m" ] || continue
    n=$(basename $m)
    case $n in
      *.xz) xz -dc $md/$m > $W/mods/${n%.xz}; n=${n%.xz} ;;
      *.zst) zstd -dcq $md/$m > $W/mods/${n%.zst}; n=${n%.zst} ;;
      *) cp $md/$m $W/mods/ ;;
    esac
    echo $n >> $W/mods/list
  done < $W/mods/order
  for e in $VM_ETC; do
    [ -e /etc/$e ] || continue
    mkdir -p $W/etc-guest/$(dirname $e)
    cp -a /etc/$e $W/etc-guest/$e
  done
  echo vm > $W/etc-guest/hostname
  ln -s ../proc/self/mounts $W/etc-guest/mtab
  : > $W/etc-guest/fstab
  cp $init $W/init; chmod +x $W/init
  [ $# = 0 ] || cp "$@" $W/
  (cd $W && find . | cpio -o -H newc 2>/dev/null | gzip -1 > $out)
  rm -rf $W
}

# vm_boot KDIR INITRAMFS LOG SHARE...: boots the kernel under TCG with the 9p shares
# (TAG=HOSTPATH[:rw]), the serial console written to LOG as it comes; returns qemu's status
# (124: timeout).
vm_boot() {
  local K=$1 initrd=$2 log=$3; shift 3
  local args=() s tag path ro
  # Disks in this order: /dev/vda the /usr image, then the binaries' image, then the systemd
  # chroot's (tests/vm/run).
  for s in ${VM_USR_IMG:-} ${VM_BIN_IMG:-} ${VM_ORACLE_IMG:-}; do
    args+=(-drive "file=$s,format=raw,if=virtio,readonly=on,cache=unsafe")
  done
  for s in "$@"; do
    tag=${s%%=*}; path=${s#*=}; ro=on
    case $path in *:rw) path=${path%:rw}; ro=off ;; esac
    args+=(-virtfs "local,path=$path,mount_tag=$tag,security_model=none,readonly=$ro,multidevs=remap")
  done
  rm -f $log
  timeout $VM_TIMEOUT qemu-system-x86_64 -accel tcg,thread=multi -cpu max -m $VM_MEM -smp $VM_SMP \
    -display none -monitor none -nodefaults -serial file:$log -no-reboot \
    -kernel "$(vm_kernel_image $K)" -initrd $initrd -append "console=ttyS0 quiet panic=-1 $VM_APPEND" \
    "${args[@]}" </dev/null
}

# vm_suite NAME: the suite of a kernel name of tests/vm/run and tests/vm/runner (bookworm|6.1,
# trixie|6.12, 6.18, sid|newest|7.x); fails for another name.
vm_suite() {
  case $1 in
    bookworm|6.1) echo bookworm ;;
    trixie|6.12) echo trixie ;;
    6.18|trixie-backports) echo 6.18 ;;
    sid|newest|7|7.*) echo sid ;;
    *) return 1 ;;
  esac
}

# vm_kernel_source SUITE: vm_kernel's arguments for a suite: its current kernel, or (6.18) the
# newest 6.18.x that trixie-backports carries.
vm_kernel_source() { case $1 in 6.18) echo "trixie-backports 6.18" ;; *) echo "$1" ;; esac; }

# vm_bin_image DIR IMG FILE...: the FILEs, stripped of debug info (38 MB -> 8 MB a test binary),
# in DIR (each named by its path, / as _) and as the erofs image IMG, which guest.sh binds over
# their paths: much faster than 9p.
vm_bin_image() {
  local dir=$1 img=$2 f
  shift 2
  rm -rf "$dir" "$img"; mkdir -p "$dir"
  for f in "$@"; do
    strip --strip-debug -o "$dir/$(echo "$f" | tr / _)" "$f" || return 1
  done
  mkfs.erofs --quiet "$img" "$dir"
}

# vm_boot_twice KDIR INITRAMFS LOG SHARE...: vm_boot, and once more when the guest never
# reached its script: TCG with two vCPUs now and then oopses while the kernel patches its own
# text at boot (seen on 7.2: int3 in sched_clock_cpu, "Fatal exception in interrupt"). The first
# console log stays as LOG's .first-boot.log.
vm_boot_twice() {
  local log=$3 rc
  vm_boot "$@"
  rc=$?
  if ! grep -qa '@vm kernel' "$log"; then
    echo "vm: the guest did not reach its script (kernel panic at boot?), booting once more" >&2
    mv "$log" "${log%.log}.first-boot.log"
    vm_boot "$@"
    rc=$?
  fi
  return $rc
}
