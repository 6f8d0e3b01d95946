"""Enumerations of libsysext.

The members are ``str`` subclasses whose values are systemd's spellings, so a member
and its string are interchangeable wherever the library takes one
(``mutable=MutableMode.EPHEMERAL`` or ``mutable="ephemeral"``).
"""

from __future__ import annotations

import enum
from typing import Optional

from ._sysext import _parse_mutable_mode

__all__ = ["ImageClass", "ImageKind", "MutableMode"]


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
