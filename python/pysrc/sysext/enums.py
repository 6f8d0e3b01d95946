"""Enumerations of libsysext.

The members are ``str`` subclasses whose values are systemd's spellings, so a member
and its string are interchangeable wherever the library takes one
(``mutable=MutableMode.EPHEMERAL`` or ``mutable="ephemeral"``).
"""

from __future__ import annotations

import enum
from typing import Optional

from ._sysext import _parse_mutable_mode

__all__ = ["ImageClass", "ImageKind", "ImageState", "LayerKind", "MutableMode", "UpperKind"]


class ImageClass(str, enum.Enum):
    """Which kind of extension images a :class:`~sysext.Context` handles."""

    SYSEXT = "sysext"
    """System extensions, merged onto ``/usr`` and ``/opt`` (``systemd-sysext``)."""

    CONFEXT = "confext"
    """Configuration extensions, merged onto ``/etc`` (``systemd-confext``)."""

    def __str__(self) -> str:
        """The systemd spelling (``"sysext"``, ``"confext"``)."""
        return str(self.value)


class ImageKind(str, enum.Enum):
    """What an extension image is on disk."""

    DIRECTORY = "directory"
    """A plain directory tree."""

    SUBVOLUME = "subvolume"
    """A btrfs subvolume."""

    RAW = "raw"
    """A ``.raw`` image file (a naked file system or a GPT disk image)."""

    BLOCK = "block"
    """A block device."""

    def __str__(self) -> str:
        """The systemd spelling (``"directory"``, ``"raw"``, ...)."""
        return str(self.value)


class MutableMode(str, enum.Enum):
    """The ``--mutable=`` modes: whether and how a merged hierarchy is writable.

    The values are systemd's strings. Construction also accepts everything
    ``systemd-sysext --mutable=`` accepts (any boolean string such as ``"true"``,
    ``"on"``, ``"0"``), Python booleans, and the man page's names ``"disabled"`` and
    ``"enabled"``: ``MutableMode("enabled") is MutableMode.ENABLED``.
    """

    DISABLED = "no"
    """Read-only merge (the default)."""

    ENABLED = "yes"
    """Writes go to ``/var/lib/extensions.mutable/<hierarchy>``, created if missing."""

    AUTO = "auto"
    """Like ``ENABLED`` if the write-routing directory exists, else read-only."""

    IMPORT = "import"
    """Read-only; the write-routing directory is imported as a layer above the extensions."""

    EPHEMERAL = "ephemeral"
    """Writes go to a private tmpfs and vanish on unmerge."""

    EPHEMERAL_IMPORT = "ephemeral-import"
    """``EPHEMERAL`` plus the write-routing directory imported read-only."""

    @classmethod
    def _missing_(cls, value: object) -> Optional[MutableMode]:
        if isinstance(value, bool):
            return cls.ENABLED if value else cls.DISABLED
        if isinstance(value, str):
            canonical = _parse_mutable_mode(value)
            if canonical is not None:
                return cls(canonical)
        return None

    def __str__(self) -> str:
        """The systemd spelling (``"no"``, ``"ephemeral-import"``, ...)."""
        return str(self.value)


class ImageState(str, enum.Enum):
    """What a merge does with an extension image (``Extension.state``), as ``sysext list``
    shows it in its STATE column."""

    MERGED = "merged"
    """Part of the current merge."""

    WOULD_MERGE = "would-merge"
    """Compatible with the host: a merge would use it."""

    MASKED = "masked"
    """An empty directory hiding images of the same name in lower-precedence directories."""

    INCOMPATIBLE = "incompatible"
    """A merge would skip it: it does not fit the host, or has no release data."""

    INVALID = "invalid"
    """A merge would fail on it (a bad image, forbidden content, no host os-release)."""

    UNKNOWN = "unknown"
    """Not determined: image files can only be inspected with privileges."""

    def __str__(self) -> str:
        """The spelling of ``sysext list`` (``"would-merge"``, ...)."""
        return str(self.value)


class LayerKind(str, enum.Enum):
    """What a lower layer of a planned overlay is (``Layer.kind``)."""

    META = "meta"
    """The synthetic top layer carrying ``.systemd-sysext`` / ``.systemd-confext``."""

    IMPORT = "import"
    """The hierarchy's mutable directory, imported read-only (``import`` modes)."""

    EXTENSION = "extension"
    """An extension's copy of the hierarchy."""

    HOST = "host"
    """The host's hierarchy (the bottom layer)."""

    def __str__(self) -> str:
        """The value (``"meta"``, ``"extension"``, ...)."""
        return str(self.value)


class UpperKind(str, enum.Enum):
    """Where writes to a planned overlay go (``HierarchyPlan.upper_kind``)."""

    MUTABLE_DIR = "mutable-dir"
    """The hierarchy's mutable directory, ``/var/lib/extensions.mutable/<hierarchy>``
    (or the directory its symlink points to); see ``HierarchyPlan.create_upper``."""

    HOST = "host"
    """The host hierarchy itself: the mutable directory is a symlink to it, so writes
    land in the host's files."""

    EPHEMERAL = "ephemeral"
    """A private tmpfs whose contents vanish on unmerge."""

    def __str__(self) -> str:
        """The value (``"mutable-dir"``, ``"host"``, ``"ephemeral"``)."""
        return str(self.value)
