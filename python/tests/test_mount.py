"""Merging for real, as root, in the session's private mount namespace."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
from support import is_overlay, mkdir, mounts_under, write

import sysext
from sysext import MutableMode

pytestmark = pytest.mark.root


def assert_merged(root: Path) -> None:
    assert is_overlay(root / "usr")
    assert (root / "usr/bin/foo").read_text() == "foo\n"
    assert (root / "usr/bin/base").read_text() == "base\n"
    assert not is_overlay(root / "opt")  # no extension has content for /opt


def assert_unmerged(root: Path) -> None:
    assert mounts_under(root) == []
    assert not (root / "usr/bin/foo").exists()
    assert (root / "usr/bin/base").read_text() == "base\n"


def assert_read_only(path: Path) -> None:
    with pytest.raises(OSError) as e:
        path.write_text("x\n")
    assert e.value.errno == errno.EROFS


def routing(root: Path) -> Path:
    return root / "var/lib/extensions.mutable/usr"


def test_mode_no(root: Path) -> None:
    ctx = sysext.Context(root=root, mutable="no")
    report = ctx.merge()
    assert report.merged == ["foo"]
    assert report.hierarchies == ["/usr"]  # as HierarchyStatus.hierarchy and e.hierarchy
    assert report.targets == [f"{root}/usr"]
    assert report.skipped == [] and report.needs_reload is False
    assert_merged(root)
    assert_read_only(root / "usr/bin/new")
    [opt, usr] = ctx.status()
    assert (opt.hierarchy, opt.merged) == ("/opt", False)
    assert (usr.hierarchy, usr.merged, usr.extensions) == ("/usr", True, ["foo"])
    assert usr.mutable is MutableMode.DISABLED
    assert usr.since is not None and usr.since.tzinfo is not None
    assert usr.since_usec is not None
    assert abs(usr.since.timestamp() * 1e6 - usr.since_usec) < 2
    report = ctx.unmerge()
    assert report.unmerged == ["/usr"]
    assert_unmerged(root)


def test_mode_yes_creates_routing_dir(root: Path) -> None:
    ctx = sysext.Context(root=root, mutable=MutableMode.ENABLED)
    ctx.merge()
    assert_merged(root)
    (root / "usr/bin/new").write_text("new\n")
    assert (routing(root) / "bin/new").read_text() == "new\n"
    assert ctx.status()[1].mutable is MutableMode.ENABLED
    ctx.unmerge()
    assert_unmerged(root)
    assert not (root / "usr/bin/new").exists()
    assert (routing(root) / "bin/new").read_text() == "new\n"  # persists for the next merge


def test_mode_yes_symlink_to_base_writes_into_base(root: Path) -> None:
    routing(root).parent.mkdir(parents=True)
    routing(root).symlink_to("/usr")
    ctx = sysext.Context(root=root, mutable="yes")
    with ctx.merged():
        assert_merged(root)
        (root / "usr/bin/new").write_text("new\n")
        [_, usr] = ctx.status()
        assert (usr.upper_kind, usr.upper_dir) == (sysext.UpperKind.HOST, None)
    assert_unmerged(root)
    assert (root / "usr/bin/new").read_text() == "new\n"  # landed in the base /usr


def test_mode_auto(root: Path) -> None:
    ctx = sysext.Context(root=root, mutable="auto")
    with ctx.merged():  # no routing dir: read-only
        assert_merged(root)
        assert_read_only(root / "usr/bin/new")
    mkdir(routing(root))
    with ctx.merged():
        (root / "usr/bin/new").write_text("new\n")
    assert_unmerged(root)
    assert (routing(root) / "bin/new").read_text() == "new\n"


def test_mode_import(root: Path) -> None:
    write(routing(root) / "bin/imported", "imported\n")
    for d in [routing(root).parent, routing(root), routing(root) / "bin"]:
        d.chmod(0o755)
    with sysext.Context(root=root, mutable="import").merged():
        assert_merged(root)
        assert (root / "usr/bin/imported").read_text() == "imported\n"
        assert_read_only(root / "usr/bin/new")
    assert_unmerged(root)
    assert not (root / "usr/bin/imported").exists()


def test_mode_ephemeral(root: Path) -> None:
    with sysext.Context(root=root, mutable="ephemeral").merged() as report:
        assert report.merged == ["foo"]
        assert_merged(root)
        (root / "usr/bin/new").write_text("new\n")
        (root / "usr/bin/base").write_text("changed\n")
    assert_unmerged(root)
    assert not (root / "usr/bin/new").exists()
    assert not routing(root).exists()


def test_mode_ephemeral_import(root: Path) -> None:
    write(routing(root) / "bin/imported", "imported\n")
    for d in [routing(root).parent, routing(root), routing(root) / "bin"]:
        d.chmod(0o755)
    with sysext.Context(root=root, mutable=MutableMode.EPHEMERAL_IMPORT).merged():
        assert_merged(root)
        assert (root / "usr/bin/imported").read_text() == "imported\n"
        (root / "usr/bin/new").write_text("new\n")
    assert_unmerged(root)
    assert not (routing(root) / "bin/new").exists()
    assert not (root / "usr/bin/new").exists()


def test_merged_unmerges_on_exception(root: Path) -> None:
    ctx = sysext.Context(root=root, mutable="ephemeral")
    with pytest.raises(KeyError, match="boom"):
        with ctx.merged():
            assert_merged(root)
            raise KeyError("boom")
    assert_unmerged(root)
    assert [s.merged for s in ctx.status()] == [False, False]


def test_merged_is_single_use(root: Path) -> None:
    m = sysext.Context(root=root).merged()
    with m:
        pass
    with pytest.raises(RuntimeError):
        m.__enter__()


def test_refresh_and_names(root: Path, make_extension: Callable[..., Path]) -> None:
    ctx = sysext.Context(root=root, mutable="ephemeral")
    ctx.merge(names=["foo"])
    make_extension("bar")
    assert ctx.status()[1].extensions == ["foo"]
    report = ctx.merge(names=["bar"])
    assert report.merged == ["bar", "foo"]
    assert (root / "usr/bin/bar").exists() and (root / "usr/bin/foo").exists()
    report = ctx.unmerge(names=["foo"])
    assert ctx.status()[1].extensions == ["bar"]
    assert not (root / "usr/bin/foo").exists()
    report = ctx.refresh()
    assert report.merged == ["bar", "foo"]
    assert ctx.status()[1].extensions == ["bar", "foo"]
    ctx.unmerge(names=["bar", "foo"])
    assert_unmerged(root)


def test_needs_reload_false_with_explicit_root(root: Path, make_extension: Callable[..., Path]) -> None:
    # As in systemd, an explicit root never asks for a reload of the (host's) service manager.
    make_extension("svc", "ID=_any\nEXTENSION_RELOAD_MANAGER=1\n")
    with sysext.Context(root=root).merged() as report:
        assert report.merged == ["foo", "svc"]
        assert report.needs_reload is False


def test_units_asked_for(root: Path, make_extension: Callable[..., Path]) -> None:
    # EXTENSION_RESTART_UNITS= / EXTENSION_RELOAD_OR_RESTART_UNITS= (systemd 259) come back
    # in the report, also with an explicit root: the caller restarts them after a reload.
    make_extension("svc", "ID=_any\nEXTENSION_RESTART_UNITS=a.service b.service\n"
                   "EXTENSION_RELOAD_OR_RESTART_UNITS=b.service c.socket\n")
    ctx = sysext.Context(root=root)
    report = ctx.merge()
    assert report.restart_units == ["a.service", "b.service"]
    assert report.reload_or_restart_units == ["c.socket"]  # b is restarted anyway
    assert "restart_units=['a.service', 'b.service']" in repr(report)
    report = ctx.unmerge()
    assert report.restart_units == ["a.service", "b.service"]
    assert report.reload_or_restart_units == ["c.socket"]


def mount_options_of(path: Path) -> tuple[str, str]:
    """The per-mount and the super options of the top mount on `path`."""
    found = ("", "")
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, right = line.split(" - ")
        f = left.split()
        if f[4] == str(path):
            found = (f[5], right.split()[2])
    return found


def test_overlay_options(root: Path) -> None:
    # systemd's $SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS, as an option of the context.
    ctx = sysext.Context(root=root, overlay_options="noatime,xino=on")
    assert ctx.overlay_options == "noatime,xino=on"
    with ctx.merged():
        per_mount, sup = mount_options_of(root / "usr")
        assert "noatime" in per_mount.split(",")
        assert "xino=on" in sup.split(",")
    # Given (even empty), they replace a writable merge's defaults.
    with sysext.Context(root=root, mutable="ephemeral", overlay_options="").merged():
        per_mount, sup = mount_options_of(root / "usr")
        assert "noatime" not in per_mount.split(",")
    with sysext.Context(root=root, mutable="ephemeral").merged():
        per_mount, sup = mount_options_of(root / "usr")
        assert "noatime" in per_mount.split(",")


def test_overlay_options_refused(root: Path) -> None:
    with pytest.raises(sysext.SysextOSError) as e:
        sysext.Context(root=root, overlay_options="bogus_option=1").merge()
    assert e.value.errno == errno.EINVAL
    assert "'bogus_option=1'" in str(e.value) and "overlay" in str(e.value)
    assert_unmerged(root)
    with pytest.raises(sysext.SysextValueError):
        sysext.Context(root=root, overlay_options="upperdir=/x")


def test_units_none_asked_for(root: Path) -> None:
    with sysext.Context(root=root).merged() as report:
        assert report.restart_units == [] and report.reload_or_restart_units == []


def test_logs_progress(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    with caplog.at_level(logging.INFO, logger="sysext"):
        with sysext.Context(root=root).merged():
            pass
    messages = [r.getMessage() for r in caplog.records if r.name == "sysext"]
    assert "Using extensions 'foo'." in messages
    assert f"Merged extensions into '{root}/usr'." in messages


# --- each exception class from a real failure ----------------------------------------

def test_already_merged(root: Path) -> None:
    ctx = sysext.Context(root=root)
    with ctx.merged():
        with pytest.raises(sysext.AlreadyMergedError) as info:
            ctx.merge()
        assert info.value.errno == errno.EBUSY
        assert info.value.hierarchy == "/usr"
        assert info.value.path == f"{root}/usr"  # the merged hierarchy, root prefix included
        assert str(info.value) == "Hierarchy '/usr' is already merged."
    assert_unmerged(root)


def test_not_merged(root: Path) -> None:
    with pytest.raises(sysext.NotMergedError) as info:
        sysext.Context(root=root).unmerge(names=["foo"])
    assert info.value.errno == errno.ENOENT
    assert info.value.extension == "foo"


def test_incompatible_extension(root: Path, make_extension: Callable[..., Path]) -> None:
    make_extension("bar", "ID=fedora\n")
    ctx = sysext.Context(root=root)
    with pytest.raises(sysext.IncompatibleExtensionError) as info:
        ctx.merge(names=["bar"])
    assert info.value.errno == errno.ENOMEDIUM
    assert info.value.extension == "bar"
    assert_unmerged(root)
    # a full merge skips it instead
    with ctx.merged() as report:
        assert report.merged == ["foo"]
        assert [s.name for s in report.skipped] == ["bar"]
    # and force merges it
    with ctx.merged(names=["bar"], force=True) as report:
        assert report.merged == ["bar"]


def test_unknown_name(root: Path) -> None:
    with pytest.raises(sysext.SysextValueError) as info:
        sysext.Context(root=root).merge(names=["nope"])
    assert info.value.extension == "nope"


def test_release_file_error(root: Path) -> None:
    (root / "usr/lib/os-release").unlink()
    with pytest.raises(sysext.ReleaseFileError) as info:
        sysext.Context(root=root).merge()
    assert info.value.errno == errno.ENOENT
    assert_unmerged(root)


def test_mutable_dir_error(root: Path) -> None:
    mkdir(routing(root), 0o700)
    with pytest.raises(sysext.MutableDirError) as info:
        sysext.Context(root=root, mutable="auto").merge()
    assert info.value.errno == errno.EINVAL
    assert info.value.path == str(routing(root))
    assert "0700" in str(info.value)
    assert_unmerged(root)


def test_mutable_dir_is_hierarchy(root: Path) -> None:
    routing(root).parent.mkdir(parents=True)
    routing(root).symlink_to("/usr")
    with pytest.raises(sysext.MutableDirError) as info:
        sysext.Context(root=root, mutable="import").merge()
    assert info.value.errno == errno.ELOOP
    assert info.value.hierarchy == "/usr"


def test_image_error(root: Path, make_extension: Callable[..., Path]) -> None:
    make_extension("odd", files={"opt": "not a directory\n"})
    with pytest.raises(sysext.ImageError) as info:
        sysext.Context(root=root).merge()
    assert info.value.errno == errno.ENOTDIR
    assert info.value.extension == "odd"
    assert_unmerged(root)


def test_broken_image_file_is_an_image_error(root: Path) -> None:
    bad = root / "var/lib/extensions/junk.raw"
    bad.write_bytes(bytes((i * 2654435761 >> 13) & 0xFF for i in range(100_000)))
    with pytest.raises(sysext.ImageError) as info:
        sysext.Context(root=root).merge()
    assert info.value.errno == errno.ENOPKG
    assert info.value.path == str(bad)
    assert info.value.extension == "junk"
    assert str(info.value).startswith(f"Image '{bad}': neither a file system superblock")
    assert not isinstance(info.value, sysext.ReleaseFileError)
    assert_unmerged(root)


def test_os_error_bad_root(tmp_path: Path) -> None:
    with pytest.raises(sysext.SysextOSError) as info:
        sysext.Context(root=tmp_path / "missing")
    assert info.value.errno == errno.ENOENT
    assert isinstance(info.value, FileNotFoundError) is False and isinstance(info.value, OSError)


def _lock_path(root: Path) -> str:
    # The core's lock file: /run/libsysext/<class>-<st_dev>-<st_ino>.lock (core/src/lock.rs).
    st = os.stat(root)
    return f"/run/libsysext/sysext-{st.st_dev}-{st.st_ino}.lock"


def test_busy(root: Path) -> None:
    ctx = sysext.Context(root=root, lock_timeout=0)
    ctx.unmerge()  # creates the lock file
    fd = os.open(_lock_path(root), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(sysext.SysextBusyError) as info:
            ctx.merge()
        assert isinstance(info.value, sysext.SysextOSError)
        assert info.value.errno == errno.EWOULDBLOCK
        assert info.value.path == _lock_path(root)
        with pytest.raises(sysext.SysextBusyError):
            sysext.Context(root=root, lock_timeout=0.1).merge()
    finally:
        os.close(fd)
    assert_unmerged(root)


def test_not_privileged(root: Path) -> None:
    code = (
        "import sys, sysext\n"
        "try:\n"
        f"    sysext.Context(root={str(root)!r}).merge()\n"
        "except sysext.SysextPermissionError as e:\n"
        "    assert isinstance(e, sysext.SysextOSError) and isinstance(e, PermissionError)\n"
        "    print(type(e).__name__, e.errno)\n"
        "    sys.exit(0)\n"
        "sys.exit(1)\n"
    )
    drop = ["setpriv", "--bounding-set=-sys_admin", "--inh-caps=-sys_admin", "--"]
    out = subprocess.run([*drop, sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["SysextPermissionError", str(errno.EPERM)]
    assert_unmerged(root)


def test_refresh_unchanged_and_always_refresh(root: Path) -> None:
    ctx = sysext.Context(root=root, compat=262)
    with ctx.merged():
        report = ctx.refresh()  # nothing changed: at 262 the overlay stays
        assert report.merged == ["foo"] and report.hierarchies == []
        report = sysext.Context(root=root, compat=262, always_refresh=True).refresh()
        assert report.merged == ["foo"] and report.hierarchies == ["/usr"]
        # At 257 every refresh rebuilds, as systemd 257's does.
        report = sysext.Context(root=root, compat=257).refresh()
        assert report.merged == ["foo"] and report.hierarchies == ["/usr"]
        assert_merged(root)
    assert_unmerged(root)


def make_erofs(root: Path, name: str, tmp: Path) -> Path:
    """A naked erofs image file var/lib/extensions/<name>.raw with usr/bin/<name>."""
    mkfs = shutil.which("mkfs.erofs")
    if mkfs is None:
        pytest.skip("mkfs.erofs (erofs-utils) is not installed")
    tree = tmp / f"{name}-tree"
    write(tree / f"usr/lib/extension-release.d/extension-release.{name}", "ID=_any\n")
    write(tree / f"usr/bin/{name}", f"{name}\n")
    image = root / f"var/lib/extensions/{name}.raw"
    subprocess.run([mkfs, "--quiet", str(image), str(tree)], check=True)
    return image


def test_image_file_merges(root: Path, tmp_path: Path) -> None:
    image = make_erofs(root, "img", tmp_path)
    ctx = sysext.Context(root=root, mutable="ephemeral")
    exts = {e.name: e for e in ctx.list()}
    assert exts["img"].kind is sysext.ImageKind.RAW
    assert exts["img"].path == str(image)
    assert exts["img"].skipped_reason is None
    with ctx.merged() as report:
        assert report.merged == ["foo", "img"]
        assert (root / "usr/bin/img").read_text() == "img\n"
    assert_unmerged(root)


def test_image_policy_error(root: Path, tmp_path: Path) -> None:
    image = make_erofs(root, "img", tmp_path)
    ctx = sysext.Context(root=root, image_policy="root=verity+signed:usr=verity+signed")
    with pytest.raises(sysext.ImagePolicyError) as info:
        ctx.merge()
    assert info.value.errno == errno.ERFKILL
    assert info.value.path == str(image)
    assert "image policy" in str(info.value)
    assert_unmerged(root)


def test_invalid_image_policy(root: Path) -> None:
    with pytest.raises(sysext.SysextValueError):
        sysext.Context(root=root, image_policy="root=frob")


def test_a_str_is_one_extension_name(root: Path, make_extension: Callable[..., Path]) -> None:
    make_extension("bar")
    ctx = sysext.Context(root=root)
    assert ctx.merge(names="foo").merged == ["foo"]  # not ["f", "o", "o"]
    assert ctx.merge("bar").merged == ["bar", "foo"]
    assert ctx.unmerge("bar").merged == ["foo"]
    with ctx.merged("bar") as report:
        assert report.merged == ["bar", "foo"]
    assert ctx.unmerge("foo").unmerged == ["/usr"]
    assert_unmerged(root)
