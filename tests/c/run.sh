#!/bin/sh
# Run the tests of the C ABI (capi/tests: header check, install + pkg-config, the C
# programs of tests/c and examples/c under valgrind in private mount namespaces).
# Builds a valgrind that knows the new mount API first, if there is none (see
# build-valgrind.sh). Needs root for the mounting tests (or SYSEXT_SKIP_ROOT_TESTS=1).
set -eu
cd "$(dirname "$0")/../.."
if [ -z "${SYSEXT_VALGRIND:-}" ] && [ "${SYSEXT_SKIP_VALGRIND:-}" != 1 ]; then
    tests/c/build-valgrind.sh
fi
exec cargo test -p sysext-capi "$@"
