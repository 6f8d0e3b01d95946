"""sysext.errors: one core error kind, one class; errno and path on every exception."""

from __future__ import annotations

import errno
import pickle
from pathlib import Path

import pytest

import sysext
from sysext import _sysext
from sysext.errors import (
    AlreadyMergedError,
    ImageError,
    ImagePolicyError,
    IncompatibleExtensionError,
    MutableDirError,
    NotMergedError,
    ReleaseFileError,
    SysextBusyError,
    SysextError,
    SysextOSError,
    SysextPermissionError,
    SysextValueError,
)

# `_sysext._error_sample` exists only in test builds of the module (cargo feature `testing`,
# which python/run-tests.sh enables); without it these tests fail rather than skip.

# (core variant, class, errno, path, hierarchy, extension)
MAPPING = [
    ("Io", SysextOSError, errno.ENOENT, "/srv/root/usr", None, None),
    ("Mount", SysextOSError, errno.EINVAL, "/srv/root/usr", None, None),
    ("AlreadyMerged", AlreadyMergedError, errno.EBUSY, "/srv/root/usr", "/usr", None),
    ("NotMerged", NotMergedError, errno.ENOENT, None, None, "foo"),
    ("NotPrivileged", SysextPermissionError, errno.EPERM, None, None, None),
    ("HostOsRelease", ReleaseFileError, errno.ENOENT, None, None, None),
    ("Metadata", ReleaseFileError, errno.ENOMEDIUM, None, None, "foo"),
    ("Incompatible", IncompatibleExtensionError, errno.ENOMEDIUM, None, None, "foo"),
    ("NotFound", SysextValueError, errno.ENOENT, None, None, "foo"),
    ("Image", ImageError, errno.ENOPKG, "/var/lib/extensions/foo.raw", None, "foo"),
    ("ImagePolicy", ImagePolicyError, errno.ERFKILL, "/var/lib/extensions/foo.raw", None, None),
    ("MutableDirMode", MutableDirError, errno.EINVAL, "/var/lib/extensions.mutable/usr", None, None),
    ("UpperDirReadOnly", MutableDirError, errno.EROFS, "/var/lib/extensions.mutable/usr", None, None),
    ("WorkDirCrossDevice", MutableDirError, errno.EXDEV, "/var/lib/extensions.mutable/usr", "/usr", None),
    ("InvalidArgument", SysextValueError, errno.EINVAL, None, None, None),
    ("Busy", SysextBusyError, errno.EWOULDBLOCK, "/run/libsysext/sysext-1-2.lock", None, None),
]


@pytest.mark.parametrize(("variant", "cls", "err", "path", "hierarchy", "extension"), MAPPING)
def test_core_error_maps_to_one_class(variant: str, cls: type, err: int, path: str | None,
                                      hierarchy: str | None, extension: str | None) -> None:
    e = _sysext._error_sample(variant)
    assert type(e) is cls
    assert isinstance(e, SysextError)
    assert e.errno == err
    assert e.path == path
    assert e.hierarchy == hierarchy
    assert e.extension == extension
    assert str(e) and str(e) == e.message


def test_image_policy_error_message() -> None:
    e = _sysext._error_sample("ImagePolicy")
    assert isinstance(e, ImagePolicyError)
    assert "Image does not match image policy" in str(e)


def test_class_tree() -> None:
    for cls in (SysextOSError, SysextPermissionError, SysextBusyError):
        assert issubclass(cls, OSError)
        assert issubclass(cls, SysextError)
    assert issubclass(SysextPermissionError, PermissionError)
    assert issubclass(SysextBusyError, BlockingIOError)
    assert issubclass(SysextValueError, ValueError)
    assert issubclass(ReleaseFileError, ValueError)
    for cls in (AlreadyMergedError, NotMergedError, IncompatibleExtensionError, MutableDirError,
                ImagePolicyError, ImageError):
        assert issubclass(cls, SysextError)
        assert not issubclass(cls, OSError)
    assert sysext.SysextError is SysextError


def test_os_error_fields() -> None:
    e = _sysext._error_sample("Io")
    assert isinstance(e, OSError)
    assert e.errno == errno.ENOENT
    assert e.filename == "/srv/root/usr"
    assert e.strerror == "No such file or directory"
    assert str(e).startswith("Failed to open '/srv/root/usr'")


@pytest.mark.parametrize("variant", [m[0] for m in MAPPING])
def test_pickle_round_trip(variant: str) -> None:
    e = _sysext._error_sample(variant)
    e2 = pickle.loads(pickle.dumps(e))
    assert type(e2) is type(e)
    assert (e2.message, e2.errno, e2.path, e2.hierarchy, e2.extension) == \
        (e.message, e.errno, e.path, e.hierarchy, e.extension)


def test_bad_root_raises_os_error(tmp_path: Path) -> None:
    missing = tmp_path / "does-not-exist"
    with pytest.raises(SysextOSError) as info:
        sysext.Context(root=missing)
    e = info.value
    assert isinstance(e, OSError)
    assert e.errno == errno.ENOENT
    assert e.filename == str(missing) == e.path


def test_invalid_hierarchy_raises_value_error(tmp_path: Path) -> None:
    with pytest.raises(SysextValueError) as info:
        sysext.Context(root=tmp_path, hierarchies=["usr"])
    assert info.value.errno == errno.EINVAL
    with pytest.raises(TypeError):
        sysext.Context(root=tmp_path, hierarchies="/usr")  # a str is not a list of hierarchies


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(SysextValueError):
        sysext.Context(root=tmp_path, image_class="portable")
    with pytest.raises(SysextValueError):
        sysext.Context(root=tmp_path, lock_timeout=-1)
    with pytest.raises(TypeError):
        sysext.Context(root=tmp_path, image_class=1)  # type: ignore[arg-type]


def test_missing_os_release_raises_release_file_error(root: Path) -> None:
    (root / "usr/lib/os-release").unlink()
    ctx = sysext.Context(root=root)
    with pytest.raises(ReleaseFileError) as info:
        ctx.plan()
    assert info.value.errno == errno.ENOENT
    assert "os-release" in str(info.value)
