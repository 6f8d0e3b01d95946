"""Exceptions raised by libsysext.

Every failure of the library raises a subclass of :class:`SysextError`; each stable
error kind of the core maps to exactly one class:

=============================  ===============================================
core ``ErrorKind``             exception
=============================  ===============================================
``AlreadyMerged``              :class:`AlreadyMergedError` (EBUSY)
``NotMerged``                  :class:`NotMergedError` (ENOENT)
``IncompatibleExtension``      :class:`IncompatibleExtensionError` (ENOMEDIUM)
``ReleaseFile``                :class:`ReleaseFileError` (also a ``ValueError``)
``MutableDir``                 :class:`MutableDirError` (EINVAL, ELOOP, EROFS, EXDEV, ...)
``ImagePolicy``                :class:`ImagePolicyError` (ERFKILL)
``Image``                      :class:`ImageError` (ENOPKG, EAFNOSUPPORT, EBADMSG, ...)
``InvalidArgument``            :class:`SysextValueError` (also a ``ValueError``; EINVAL)
``Os``                         :class:`SysextOSError` (also an ``OSError``)
``NotPrivileged``              :class:`SysextPermissionError` (a ``SysextOSError`` and ``PermissionError``; EPERM)
``Busy``                       :class:`SysextBusyError` (a ``SysextOSError`` and ``BlockingIOError``; EWOULDBLOCK)
=============================  ===============================================

Every exception has ``errno`` (the positive errno the C API would return negated)
and ``path``, ``hierarchy`` and ``extension`` (``None`` where the error does not name
one). ``str(e)`` is the library's message, worded like systemd's.
"""

from __future__ import annotations

import os
from typing import Optional

__all__ = [
    "AlreadyMergedError",
    "ImageError",
    "ImagePolicyError",
    "IncompatibleExtensionError",
    "MutableDirError",
    "NotMergedError",
    "ReleaseFileError",
    "SysextBusyError",
    "SysextError",
    "SysextOSError",
    "SysextPermissionError",
    "SysextValueError",
]


class SysextError(Exception):
    """Base class of all libsysext errors.

    Args:
        message: The library's message.
        errno: The errno equivalent of the error (positive).
        path: The file or directory the error is about, if any.
        hierarchy: The hierarchy the error is about (``"/usr"``), if any.
        extension: The extension (image name) the error is about, if any.
    """

    message: str
    """The library's message (also ``str(e)``)."""
    errno: Optional[int]
    """The errno equivalent of the error (positive)."""
    path: Optional[str]
    """The file or directory the error is about, or ``None``."""
    hierarchy: Optional[str]
    """The hierarchy the error is about, or ``None``."""
    extension: Optional[str]
    """The extension (image name) the error is about, or ``None``."""

    def __init__(
        self,
        message: str,
        *,
        errno: Optional[int] = None,
        path: Optional[str] = None,
        hierarchy: Optional[str] = None,
        extension: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.errno = errno
        self.path = path
        self.hierarchy = hierarchy
        self.extension = extension

    def __str__(self) -> str:
        """The library's message."""
        return self.message

    def __reduce__(self) -> tuple[type[SysextError], tuple[str], dict[str, object]]:
        """Pickle support (keyword-only fields travel as state)."""
        state: dict[str, object] = {
            "errno": self.errno,
            "path": self.path,
            "hierarchy": self.hierarchy,
            "extension": self.extension,
        }
        return (type(self), (self.message,), state)


class AlreadyMergedError(SysextError):
    """``merge`` found a hierarchy that is already merged (``errno`` EBUSY).

    ``hierarchy`` names it. Use ``refresh()`` to replace a merge.
    """


class NotMergedError(SysextError):
    """``unmerge(names=...)`` named an extension that is not merged (``errno`` ENOENT)."""


class IncompatibleExtensionError(SysextError):
    """``merge(names=...)`` named an extension whose release data does not match the
    host (``errno`` ENOMEDIUM); ``extension`` names it. ``force=True`` merges anyway."""


class ReleaseFileError(SysextError, ValueError):
    """A release file is missing or unusable: the host's os-release (``errno`` from
    reading it, e.g. ENOENT; a FIFO, device node or file over 4 MiB is refused), or an
    image's release data (``extension`` names the image). A broken image file raises
    :class:`ImageError` instead."""


class MutableDirError(SysextError):
    """The write-routing directory (``/var/lib/extensions.mutable/<hierarchy>``) cannot
    be used in the requested mutable mode: wrong mode bits (EINVAL), pointing at the
    hierarchy in an import mode (ELOOP), read-only (EROFS), no work dir possible (EXDEV),
    or it cannot be created."""


class ImagePolicyError(SysextError):
    """An image does not satisfy the image policy (``errno`` ERFKILL); ``path`` names it."""


class ImageError(SysextError):
    """An image is malformed or cannot be used: ``path`` names the image file,
    ``extension`` the image, and the message the part at fault (file system superblock,
    GPT partition table, partition N, verity tree, verity signature) and what is wrong
    with it. ``errno`` is systemd's where systemd fails such an image: ENOPKG (nothing
    recognised, broken partition table), EAFNOSUPPORT (a partition without a known file
    system), ENXIO/ENOTUNIQ/EADDRNOTAVAIL (no usable partition), EOPNOTSUPP (needs
    dm-verity); EBADMSG for a truncated file system or a verity mismatch, EPERM for a
    block device below an explicit root that is not allowed. Also raised when an
    image's hierarchy entry is not a directory (ENOTDIR)."""


class SysextValueError(SysextError, ValueError):
    """An argument is invalid: a mode string, a hierarchy, an unknown extension name
    (``errno`` EINVAL or ENOENT)."""


class SysextOSError(SysextError, OSError):
    """A system call failed. Also an :class:`OSError`: ``errno``, ``strerror`` and
    ``filename`` (the same as ``path``) are set."""

    def __init__(
        self,
        message: str,
        *,
        errno: Optional[int] = None,
        path: Optional[str] = None,
        hierarchy: Optional[str] = None,
        extension: Optional[str] = None,
    ) -> None:
        super().__init__(message, errno=errno, path=path, hierarchy=hierarchy, extension=extension)
        self.strerror = os.strerror(errno) if errno else message
        self.filename = path


class SysextPermissionError(SysextOSError, PermissionError):
    """The operation needs ``CAP_SYS_ADMIN`` (``errno`` EPERM)."""


class SysextBusyError(SysextOSError, BlockingIOError):
    """Another merge, refresh or unmerge of the same root holds the lock longer than
    ``lock_timeout`` (``errno`` EWOULDBLOCK); ``path`` names the lock file."""
