#!/bin/bash
# Build and test the Python bindings in a fresh (or reused) venv.
#
#   python/run-tests.sh [VENV] [PYTEST ARGS...]
#
# VENV defaults to target/pyvenv in the workspace. Installs maturin, pytest and mypy,
# builds and installs the package the way users do (`pip install ./python`, an abi3
# wheel) but with the cargo feature `testing` (the test-only `_error_sample` that
# tests/test_errors.py needs; the released wheel is built without it), builds the CLI
# for the CLI-agreement tests, then runs pytest.
#
# As root, pytest re-executes itself under `unshare --mount --propagation private`
# (see tests/conftest.py), so the mounting tests never touch the host's mount table.
# Without root the mounting tests fail unless SYSEXT_SKIP_ROOT_TESTS=1.
#
# Environment: PYTHON (interpreter for the venv, default python3), SYSEXT_CLI (use this
# CLI binary instead of building target/debug/sysext).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
VENV=${1:-$REPO/target/pyvenv}
[ $# -gt 0 ] && shift
PYTHON=${PYTHON:-python3}
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n=== python: %s\n' "$*"; }

step "venv $VENV"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q maturin pytest mypy

step "pip install ./python (abi3 wheel via maturin, cargo feature testing)"
cd "$REPO"
MATURIN_PEP517_ARGS="--features testing" \
    "$VENV/bin/python" -m pip install -q --force-reinstall --no-deps ./python

if [ -z "${SYSEXT_CLI:-}" ]; then
    step "CLI for the agreement tests"
    cargo build -q -p sysext-cli
    export SYSEXT_CLI="$REPO/target/debug/sysext"
fi

step "pytest"
cd "$HERE"
# Run from a directory where `sysext` resolves to the installed package, not pysrc/.
set +e
"$VENV/bin/python" -m pytest -p no:cacheprovider tests "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "python: pytest collected no tests" >&2
    exit 1
fi
exit "$rc"
