"""Test setup: a private mount namespace for the mounting tests, and test roots.

As root, the whole session re-executes itself under
``unshare --mount --propagation private`` (marked by ``SYSEXT_IN_NS=1``), so nothing
a test mounts is ever visible in the host's namespace. Tests marked ``root`` refuse
to run unless they are in a mount namespace other than the one pytest started in.
Without root they fail with "needs root" unless ``SYSEXT_SKIP_ROOT_TESTS=1``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Optional

import pytest
from support import HOST_NS_ENV, _mnt_ns, add_extension, build_root, in_private_namespace, mounts_under

IN_NS_ENV = "SYSEXT_IN_NS"
SKIP_ROOT_ENV = "SYSEXT_SKIP_ROOT_TESTS"

# The suite's expectations (overlay counts, status strings, ephemeral refreshes) are those of
# systemd 257: the library and the CLI follow it at level 257. The default level (262) is
# checked by test_compat_level here and against systemd 262 by tests/conformance/run.
os.environ["LIBSYSEXT_COMPAT"] = "257"


def pytest_configure(config: pytest.Config) -> None:
    """Re-execute the session in a private mount namespace when running as root."""
    if os.geteuid() != 0 or os.environ.get(IN_NS_ENV):
        return
    unshare = shutil.which("unshare")
    if unshare is None:
        raise pytest.UsageError("running as root needs unshare(1) to isolate the mounting tests")
    # Hand the terminal back before exec: pytest may already capture fds 1 and 2.
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is not None:
        capman.stop_global_capturing()
    env = dict(os.environ)
    env[IN_NS_ENV] = "1"
    env[HOST_NS_ENV] = _mnt_ns() or ""
    args = [
        unshare, "--mount", "--propagation", "private",
        sys.executable, "-m", "pytest", *config.invocation_params.args,
    ]
    sys.stdout.flush()
    sys.stderr.flush()
    os.chdir(config.invocation_params.dir)
    os.execve(unshare, args, env)


def pytest_report_header(config: pytest.Config) -> str:
    if os.geteuid() != 0:
        return "sysext: not root; mounting tests " + (
            "skipped" if os.environ.get(SKIP_ROOT_ENV) == "1" else "will fail")
    ns = "private" if in_private_namespace() else "HOST (mounting tests refuse to run)"
    return f"sysext: root, mount namespace {_mnt_ns()} ({ns})"


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("root") is None:
        return
    if os.geteuid() != 0:
        if os.environ.get(SKIP_ROOT_ENV) == "1":
            pytest.skip("needs root (skipped: SYSEXT_SKIP_ROOT_TESTS=1)")
        pytest.fail("needs root (set SYSEXT_SKIP_ROOT_TESTS=1 to skip the mounting tests)", pytrace=False)
    if not in_private_namespace():
        pytest.fail("refusing to mount in the host's mount namespace (run pytest as root, "
                    "which re-executes under unshare)", pytrace=False)


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    """A fresh standard test root; after the test, nothing may stay mounted in it."""
    r = build_root(tmp_path)
    yield r
    left = mounts_under(r)
    if left:
        for m, _ in sorted(left, key=lambda x: -len(x[0])):
            subprocess.run(["umount", "-l", m], check=False)
        pytest.fail(f"mounts left behind under {r}: {left}", pytrace=False)


@pytest.fixture
def make_extension(root: Path) -> Callable[..., Path]:
    """Add another extension to the test root: ``make_extension(name, release, files)``."""
    def make(name: str, release: str = "ID=_any\n", files: Optional[dict[str, str]] = None) -> Path:
        return add_extension(root, name, release, files)
    return make


