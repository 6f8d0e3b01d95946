"""sysext.enums: systemd's strings in, systemd's strings out."""

from __future__ import annotations

import pytest

import sysext
from sysext import ImageClass, ImageKind, MutableMode


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("no", MutableMode.DISABLED),
        ("yes", MutableMode.ENABLED),
        ("auto", MutableMode.AUTO),
        ("import", MutableMode.IMPORT),
        ("ephemeral", MutableMode.EPHEMERAL),
        ("ephemeral-import", MutableMode.EPHEMERAL_IMPORT),
        # booleans as systemd parses them
        ("TRUE", MutableMode.ENABLED),
        ("On", MutableMode.ENABLED),
        ("1", MutableMode.ENABLED),
        ("y", MutableMode.ENABLED),
        ("false", MutableMode.DISABLED),
        ("off", MutableMode.DISABLED),
        ("0", MutableMode.DISABLED),
        (True, MutableMode.ENABLED),
        (False, MutableMode.DISABLED),
        # the man page's names
        ("enabled", MutableMode.ENABLED),
        ("disabled", MutableMode.DISABLED),
    ],
)
def test_mutable_mode_accepts_systemd_strings(value: object, expected: MutableMode) -> None:
    assert MutableMode(value) is expected


@pytest.mark.parametrize("value", ["AUTO", "ephemeral_import", "", "bogus", 2, None])
def test_mutable_mode_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        MutableMode(value)


def test_mutable_mode_values_are_systemd_spellings() -> None:
    assert [m.value for m in MutableMode] == ["no", "yes", "auto", "import", "ephemeral", "ephemeral-import"]
    assert str(MutableMode.EPHEMERAL_IMPORT) == "ephemeral-import"
    assert MutableMode.ENABLED == "yes"


def test_image_enums() -> None:
    assert [c.value for c in ImageClass] == ["sysext", "confext"]
    assert [k.value for k in ImageKind] == ["directory", "subvolume", "raw", "block"]
    assert str(ImageClass.CONFEXT) == "confext"
    assert sysext.ImageClass("sysext") is ImageClass.SYSEXT


@pytest.mark.parametrize("mode", [*MutableMode, "enabled", "TRUE", True, False])
def test_context_takes_every_mode_spelling(tmp_path, mode: object) -> None:
    ctx = sysext.Context(root=tmp_path, mutable=mode)  # type: ignore[arg-type]
    assert ctx.mutable is MutableMode(mode)


def test_context_rejects_bad_mode(tmp_path) -> None:
    with pytest.raises(sysext.SysextValueError) as e:
        sysext.Context(root=tmp_path, mutable="sometimes")
    assert e.value.errno == 22
    with pytest.raises(TypeError):
        sysext.Context(root=tmp_path, mutable=3)  # type: ignore[arg-type]
