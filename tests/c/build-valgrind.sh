#!/bin/sh
# Build a valgrind that knows the system calls libsysext makes, into /opt/valgrind.
#
# Debian 12's valgrind (3.19) does not know openat2(), open_tree(), move_mount(), fsopen(),
# fsconfig(), fsmount() and mount_setattr(): it fails them with ENOSYS, so nothing of
# libsysext works under it. 3.27 knows them all, but its mount_setattr() wrapper checks
# the wrong argument as the attr pointer (ARG5/ARG6 for ARG4/ARG5), reporting a bogus
# "Syscall param mount(attr) points to unaddressable byte(s)"; the build fixes that line.
# This script fetches the source package
# from Debian unstable with apt (into a private apt state, the system's apt configuration
# is untouched), builds it and installs it to PREFIX (default /opt/valgrind). It does
# nothing if PREFIX/bin/valgrind already exists. Needs root (apt) and about 10 minutes.
#
# The C tests (capi/tests/c_programs.rs) look for SYSEXT_VALGRIND, then /opt/valgrind/bin/valgrind,
# then valgrind in PATH, and check that the one they found knows these system calls.
set -eu
PREFIX=${1:-/opt/valgrind}
if [ -x "$PREFIX/bin/valgrind" ]; then
    echo "$PREFIX/bin/valgrind exists: $("$PREFIX/bin/valgrind" --version)"
    exit 0
fi
WORK=$(mktemp -d /var/tmp/valgrind-build.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/lists/partial"
# The Debian archive this machine's apt already uses (deb822 .sources files or sources.list).
MIRROR=$({ grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'
           grep -h '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '{print $2}'
         } | grep -E '/debian/?$' | head -1)
[ -n "$MIRROR" ] || { echo "build-valgrind: no Debian archive in apt's sources" >&2; exit 1; }
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR sid main" >"$WORK/sources.list"
APT="-o Dir::Etc::SourceList=$WORK/sources.list -o Dir::Etc::SourceParts=/nonexistent -o Dir::State::Lists=$WORK/lists"
# shellcheck disable=SC2086
apt-get $APT update
cd "$WORK"
# shellcheck disable=SC2086
apt-get $APT source --download-only valgrind
tar xf valgrind_*.orig.tar.*
cd valgrind-*/
sed -i 's/PRE_MEM_READ("mount(attr)", ARG5, ARG6);/PRE_MEM_READ("mount_setattr(attr)", ARG4, ARG5);/' \
    coregrind/m_syswrap/syswrap-linux.c
./configure --prefix="$PREFIX" --enable-only64bit >configure.log
make -j"$(nproc)" >make.log
make install >install.log
"$PREFIX/bin/valgrind" --version
