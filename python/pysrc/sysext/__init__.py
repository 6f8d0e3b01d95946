"""Compose extension images onto ``/usr``, ``/opt`` and ``/etc`` with overlayfs.

Python bindings of libsysext, which does what ``systemd-sysext`` and
``systemd-confext`` do, without needing systemd::

    import sysext

    ctx = sysext.Context(root="/", image_class=sysext.ImageClass.SYSEXT,
                         mutable="ephemeral")
    for ext in ctx.list():               # list[Extension]
        print(ext.name, ext.kind.value, ext.path, ext.state.value)
    print(ctx.plan())                    # mounts nothing
    with ctx.merged() as report:         # merge; unmerge on exit, also on errors
        print(report.merged)
    print(ctx.status())                  # list[HierarchyStatus]

Mounting calls release the GIL, need ``CAP_SYS_ADMIN``, and are serialized per root by
a lock, so they may be issued from several threads. Progress is logged to the
``logging`` logger ``"sysext"``. Failures raise subclasses of :class:`SysextError`
(see :mod:`sysext.errors`).
"""

from __future__ import annotations

from ._sysext import (
    Context,
    Extension,
    HierarchyPlan,
    HierarchyStatus,
    Layer,
    Merged,
    Plan,
    Report,
    Skipped,
    __version__,
)
from .enums import ImageClass, ImageKind, ImageState, LayerKind, MutableMode, UpperKind
from .errors import (
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

__all__ = [
    "AlreadyMergedError",
    "Context",
    "Extension",
    "HierarchyPlan",
    "HierarchyStatus",
    "ImageClass",
    "ImageError",
    "ImageKind",
    "ImageState",
    "ImagePolicyError",
    "IncompatibleExtensionError",
    "Layer",
    "LayerKind",
    "Merged",
    "MutableDirError",
    "MutableMode",
    "NotMergedError",
    "Plan",
    "ReleaseFileError",
    "Report",
    "Skipped",
    "SysextBusyError",
    "SysextError",
    "SysextOSError",
    "SysextPermissionError",
    "SysextValueError",
    "UpperKind",
    "__version__",
]
