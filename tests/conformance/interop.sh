#!/bin/bash
# Interop with systemd-sysext (257 or 262, from the oracle chroot at $ORACLE_ROOT), both ways:
#   ours merges  -> systemd's status sees it, systemd's unmerge removes it (and the workdir);
#   systemd merges -> our status sees it, our unmerge removes it (and the workdir).
# Runs in a private mount namespace; needs root and the oracle chroot.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
O=${ORACLE_ROOT:-/var/cache/sysext-oracle/trixie}
TUT=${TUT:-$REPO/target/release/sysext}
if [ -z "${SYSEXT_INTEROP_IN_NS:-}" ]; then
    export SYSEXT_INTEROP_IN_NS=1
    exec unshare -m --propagation private "$0" "$@"
fi
mount --make-rshared /
mount --bind "$O" "$O"
mount -t tmpfs tmpfs "$O/sb"
mount -t proc proc "$O/proc"
mount --rbind /sys "$O/sys"
mount --bind /dev "$O/dev"
mount -t tmpfs tmpfs "$O/run"
S="$O/sb"
mkdir -p "$S/usr/lib" "$S/opt" "$S/var/lib/extensions/foo/usr/lib/extension-release.d" "$S/var/lib/extensions/foo/usr/bin"
echo 'ID=debian' > "$S/usr/lib/os-release"; echo 'VERSION_ID=13' >> "$S/usr/lib/os-release"
echo 'ID=_any' > "$S/var/lib/extensions/foo/usr/lib/extension-release.d/extension-release.foo"
echo foo > "$S/var/lib/extensions/foo/usr/bin/foo"
ref() { chroot "$O" /usr/bin/systemd-sysext --root=/sb "$@"; }
fail() { echo "interop: FAIL: $*" >&2; exit 1; }
pass=0
check() { pass=$((pass+1)); echo "ok - $*"; }

# ours -> theirs
"$TUT" --root="$S" --mutable=yes merge 2>/dev/null
out=$(ref status --json=short)
echo "$out" | grep -q '"hierarchy":"/usr","extensions":\["foo"\]' || fail "systemd does not see our merge: $out"
check "systemd-sysext status sees a libsysext merge"
ref merge 2>/dev/null && fail "systemd merged over our merge"
check "systemd-sysext refuses to merge over a libsysext merge"
ref unmerge 2>/dev/null
grep -q " $S/usr " /proc/self/mountinfo && fail "systemd did not unmerge our overlay"
[ -e "$S/var/lib/extensions.mutable/.systemd-usr-workdir" ] && fail "systemd left our workdir"
check "systemd-sysext unmerges a libsysext merge and removes its workdir"

# theirs -> ours
ref --mutable=yes merge 2>/dev/null
out=$("$TUT" --root="$S" status --json=short)
echo "$out" | grep -q '"hierarchy":"/usr","extensions":\["foo"\]' || fail "we do not see systemd's merge: $out"
check "libsysext status sees a systemd-sysext merge"
"$TUT" --root="$S" merge 2>/dev/null && fail "we merged over systemd's merge"
check "libsysext refuses to merge over a systemd-sysext merge"
"$TUT" --root="$S" refresh 2>/dev/null
out=$(ref status --json=short)
echo "$out" | grep -q '"extensions":\["foo"\]' || fail "systemd does not see our refreshed merge: $out"
check "libsysext refreshes a systemd-sysext merge in place"
"$TUT" --root="$S" unmerge 2>/dev/null
grep -q " $S/usr " /proc/self/mountinfo && fail "we did not unmerge systemd's overlay"
[ -e "$S/var/lib/extensions.mutable/.systemd-usr-workdir" ] && fail "we left systemd's workdir"
check "libsysext unmerges a systemd-sysext merge and removes its workdir"
echo "interop: $pass passed, 0 failed"
