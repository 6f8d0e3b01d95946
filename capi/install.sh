#!/bin/sh
# Build libsysext in release mode and install the C library, header and pkg-config file.
#
#   capi/install.sh PREFIX
#
# installs
#   PREFIX/lib/libsysext.so.MAJOR.MINOR.PATCH  (SONAME libsysext.so.MAJOR)
#   PREFIX/lib/libsysext.so.MAJOR -> libsysext.so.MAJOR.MINOR.PATCH
#   PREFIX/lib/libsysext.so       -> libsysext.so.MAJOR
#   PREFIX/lib/libsysext.a
#   PREFIX/include/sysext.h
#   PREFIX/lib/pkgconfig/libsysext.pc
#
# Environment: CARGO (default: cargo), CARGO_TARGET_DIR (default: <workspace>/target),
# LIBDIR (default: PREFIX/lib), INCLUDEDIR (default: PREFIX/include), PKGCONFIGDIR (default:
# LIBDIR/pkgconfig), DESTDIR (staged installs for packaging: files go to DESTDIR/PREFIX/...,
# the .pc names PREFIX). `make install` (the Makefile at the top) calls this.
#
# A consumer then builds with
#   PKG_CONFIG_PATH=PREFIX/lib/pkgconfig cc app.c $(pkg-config --cflags --libs libsysext)
# or, linking everything statically,
#   cc -static app.c $(pkg-config --static --cflags --libs libsysext)
set -eu

usage() {
    echo "usage: $0 PREFIX" >&2
    exit 2
}

[ $# -eq 1 ] || usage
PREFIX=$1
case $PREFIX in
/*) ;;
*) echo "$0: PREFIX must be an absolute path: $PREFIX" >&2; exit 2 ;;
esac
PREFIX=${PREFIX%/}
[ -n "$PREFIX" ] || PREFIX=/

CARGO=${CARGO:-cargo}
HERE=$(cd "$(dirname "$0")" && pwd)
WORKSPACE=$(cd "$HERE/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$WORKSPACE/target}
case $TARGET_DIR in
/*) ;;
*) TARGET_DIR=$WORKSPACE/$TARGET_DIR ;;
esac
LIBDIR=${LIBDIR:-$PREFIX/lib}
INCLUDEDIR=${INCLUDEDIR:-$PREFIX/include}
PKGCONFIGDIR=${PKGCONFIGDIR:-$LIBDIR/pkgconfig}
DESTDIR=${DESTDIR:-}

# The version is written once, in the workspace Cargo.toml.
PKGID=$(cd "$WORKSPACE" && "$CARGO" pkgid -p sysext-capi)
VERSION=${PKGID##*[@#]}
case $VERSION in
[0-9]*.[0-9]*.[0-9]*) ;;
*) echo "$0: cannot tell the version from '$PKGID'" >&2; exit 1 ;;
esac
MAJOR=${VERSION%%.*}

# Build, and ask rustc which system libraries the static library needs. Cargo replays the
# note when the build is fresh.
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
if ! (cd "$WORKSPACE" && "$CARGO" rustc --release -p sysext-capi --lib -- --print native-static-libs) >"$LOG" 2>&1; then
    cat "$LOG" >&2
    exit 1
fi
NATIVE_LIBS=$(sed -n 's/^.*native-static-libs: //p' "$LOG" | tail -n 1)
if [ -z "$NATIVE_LIBS" ]; then
    echo "$0: rustc did not print native-static-libs; using the usual set for Linux" >&2
    NATIVE_LIBS="-lutil -lrt -lpthread -lm -ldl -lc"
fi
# The unwinder: rustc names the shared libgcc_s, which a static link (`cc -static`) cannot
# find. The compiler driver adds the right one by itself (libgcc_s as needed when linking
# dynamically, libgcc_eh with -static), so the .pc does not name it.
SHARED_LIBS=$NATIVE_LIBS
NATIVE_LIBS=$(printf '%s\n' $NATIVE_LIBS | grep -vx -e '-lgcc_s' | tr '\n' ' ')
NATIVE_LIBS=${NATIVE_LIBS% }

A=$TARGET_DIR/release/libsysext_capi.a
HEADER=$WORKSPACE/include/sysext.h
for f in "$A" "$HEADER"; do
    [ -f "$f" ] || { echo "$0: missing build output $f" >&2; exit 1; }
done

# The shared library is linked here from the static one, with the version script
# capi/libsysext.map: every exported symbol versioned (sysext_*@@LIBSYSEXT_0), everything
# else local, stripped. (Cargo's own cdylib cannot carry named symbol versions: rustc adds
# an anonymous version script that overrides them.)
CC=${CC:-cc}
SO=$(dirname "$LOG")/libsysext.so.$VERSION.$$
trap 'rm -f "$LOG" "$SO"' EXIT
# shellcheck disable=SC2086 # the library list is words
"$CC" -shared -o "$SO" -Wl,-soname,"libsysext.so.$MAJOR" -Wl,--version-script="$HERE/libsysext.map" \
    -Wl,--gc-sections -Wl,-z,relro -Wl,-z,now -Wl,-z,noexecstack -Wl,--eh-frame-hdr -s \
    -Wl,--whole-archive "$A" -Wl,--no-whole-archive $SHARED_LIBS

install -d "$DESTDIR$LIBDIR" "$DESTDIR$PKGCONFIGDIR" "$DESTDIR$INCLUDEDIR"
install -m 0755 "$SO" "$DESTDIR$LIBDIR/libsysext.so.$VERSION"
ln -sfn "libsysext.so.$VERSION" "$DESTDIR$LIBDIR/libsysext.so.$MAJOR"
ln -sfn "libsysext.so.$MAJOR" "$DESTDIR$LIBDIR/libsysext.so"
install -m 0644 "$A" "$DESTDIR$LIBDIR/libsysext.a"
# Debug info off the static library (symbols stay: programs link against them).
${STRIP:-strip} --strip-debug "$DESTDIR$LIBDIR/libsysext.a"
install -m 0644 "$HEADER" "$DESTDIR$INCLUDEDIR/sysext.h"

# Keep the .pc relocatable where the directories lie below the prefix.
PC_LIBDIR=$LIBDIR
PC_INCLUDEDIR=$INCLUDEDIR
[ "$LIBDIR" = "$PREFIX/lib" ] && PC_LIBDIR='${exec_prefix}/lib'
[ "$INCLUDEDIR" = "$PREFIX/include" ] && PC_INCLUDEDIR='${prefix}/include'

cat >"$DESTDIR$PKGCONFIGDIR/libsysext.pc" <<EOF
prefix=$PREFIX
exec_prefix=\${prefix}
libdir=$PC_LIBDIR
includedir=$PC_INCLUDEDIR

Name: libsysext
Description: Compose system and configuration extension images with overlayfs (systemd-sysext compatible)
Version: $VERSION
Libs: -L\${libdir} -lsysext
Libs.private: $NATIVE_LIBS
Cflags: -I\${includedir}
EOF

echo "installed libsysext $VERSION into ${DESTDIR}$PREFIX"
