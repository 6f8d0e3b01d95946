"""Type stubs of the native module ``sysext._sysext`` (checked by ``mypy.stubtest``)."""

import builtins
import datetime
import os
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Literal, final

from typing_extensions import TypeAlias

from .enums import ImageClass, ImageKind, MutableMode

__all__ = [
    "Context",
    "Extension",
    "HierarchyPlan",
    "HierarchyStatus",
    "Layer",
    "Merged",
    "Plan",
    "Report",
    "Skipped",
    "__version__",
    "_error_sample",
    "_parse_mutable_mode",
]

__version__: str

_MutableArg: TypeAlias = MutableMode | str | bool

def _parse_mutable_mode(value: str) -> str | None:
    """Canonical systemd spelling of a mutable mode string, or None if invalid."""

def _error_sample(variant: str) -> Exception:
    """A sample core error of the named variant, mapped to its exception (testing aid)."""

@final
class Extension:
    """An extension image found in the search directories (``Context.list()``)."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> ImageKind: ...
    @property
    def path(self) -> str: ...
    @property
    def release(self) -> dict[str, str]: ...
    @property
    def skipped_reason(self) -> str | None: ...
    @property
    def state(self) -> Literal["merged", "would-merge", "masked", "incompatible", "invalid", "unknown"]: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def time_usec(self) -> int: ...
    @property
    def shadows(self) -> list[str]: ...

@final
class Skipped:
    """An image that a merge does not use, and why. Unpacks as ``(name, reason)``."""

    @property
    def name(self) -> str: ...
    @property
    def reason(self) -> str: ...
    def __iter__(self) -> Iterator[str]: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class Report:
    """What ``merge``, ``refresh`` or ``unmerge`` did."""

    @property
    def merged(self) -> list[str]: ...
    @property
    def hierarchies(self) -> list[str]: ...
    @property
    def unmerged(self) -> list[str]: ...
    @property
    def skipped(self) -> list[Skipped]: ...
    @property
    def needs_reload(self) -> bool: ...

@final
class Layer:
    """One lower layer of a planned overlay."""

    @property
    def kind(self) -> Literal["meta", "import", "extension", "host"]: ...
    @property
    def path(self) -> str | None: ...
    @property
    def name(self) -> str | None: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class HierarchyPlan:
    """The overlay planned for one hierarchy."""

    @property
    def hierarchy(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def create_target(self) -> bool: ...
    @property
    def layers(self) -> list[Layer]: ...
    @property
    def lower_dirs(self) -> list[str]: ...
    @property
    def upper_kind(self) -> Literal["routing", "base", "ephemeral"] | None: ...
    @property
    def upper_dir(self) -> str | None: ...
    @property
    def create_upper(self) -> bool: ...
    @property
    def work_dir(self) -> str | None: ...
    @property
    def writable(self) -> bool: ...
    @property
    def read_only(self) -> bool: ...
    @property
    def noexec(self) -> bool: ...
    @property
    def nosuid(self) -> bool: ...

@final
class Plan:
    """What ``merge`` would do (``Context.plan()``)."""

    @property
    def mutable(self) -> MutableMode: ...
    @property
    def extensions(self) -> list[str]: ...
    @property
    def using(self) -> list[str]: ...
    @property
    def skipped(self) -> list[Skipped]: ...
    @property
    def hierarchies(self) -> list[HierarchyPlan]: ...

@final
class HierarchyStatus:
    """The state of one hierarchy (``Context.status()``)."""

    @property
    def hierarchy(self) -> str: ...
    @property
    def merged(self) -> bool: ...
    @property
    def extensions(self) -> list[str]: ...
    @property
    def mutable(self) -> MutableMode | None: ...
    @property
    def upper(self) -> str | None: ...
    @property
    def since(self) -> datetime.datetime | None: ...
    @property
    def since_usec(self) -> int | None: ...

@final
class Merged:
    """Context manager from ``Context.merged()``: merge on enter, unmerge on exit."""

    def __enter__(self) -> Report: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> bool: ...

@final
class Context:
    """A context for one image class and root."""

    def __new__(
        cls,
        root: str | os.PathLike[str] | None = None,
        image_class: ImageClass | str | None = None,
        mutable: _MutableArg | None = None,
        *,
        force: bool = False,
        noexec: bool | None = None,
        image_policy: str | None = None,
        hierarchies: Sequence[str] | None = None,
        lock_timeout: float | None = None,
        initrd: bool | None = None,
        always_refresh: bool = False,
        no_reload: bool = False,
        allow_block_devices: bool = False,
        compat: int | str | None = None,
    ) -> Context: ...
    @property
    def root(self) -> str | None: ...
    @property
    def image_class(self) -> ImageClass: ...
    @property
    def mutable(self) -> MutableMode: ...
    @property
    def force(self) -> bool: ...
    @property
    def noexec(self) -> bool | None: ...
    @property
    def image_policy(self) -> str | None: ...
    @property
    def hierarchies(self) -> builtins.list[str]: ...
    @property
    def always_refresh(self) -> bool: ...
    @property
    def compat(self) -> int: ...
    @property
    def no_reload(self) -> bool: ...
    @property
    def allow_block_devices(self) -> bool: ...
    @property
    def lock_timeout(self) -> float | None: ...
    def list(self) -> builtins.list[Extension]: ...
    def plan(self, *, force: bool | None = None, mutable: _MutableArg | None = None) -> Plan: ...
    def merge(
        self,
        names: Sequence[str] | None = None,
        *,
        force: bool | None = None,
        mutable: _MutableArg | None = None,
    ) -> Report: ...
    def refresh(self, *, force: bool | None = None, mutable: _MutableArg | None = None) -> Report: ...
    def unmerge(self, names: Sequence[str] | None = None) -> Report: ...
    def status(self) -> builtins.list[HierarchyStatus]: ...
    def merged(
        self,
        names: Sequence[str] | None = None,
        *,
        force: bool | None = None,
        mutable: _MutableArg | None = None,
    ) -> Merged: ...
