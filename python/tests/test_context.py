"""Context without mounting: list, plan, status, properties. Needs no root."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

import pytest
from support import mkdir

import sysext
from sysext import ImageClass, ImageKind, MutableMode


def test_properties(root: Path) -> None:
    ctx = sysext.Context(root=root, image_class=ImageClass.SYSEXT, mutable="ephemeral",
                         force=True, noexec=False, image_policy="*", lock_timeout=2.5)
    assert ctx.root == str(root)
    assert ctx.image_class is ImageClass.SYSEXT
    assert ctx.mutable is MutableMode.EPHEMERAL
    assert ctx.force is True
    assert ctx.noexec is False
    assert ctx.image_policy == "*"
    assert ctx.lock_timeout == 2.5
    assert (ctx.always_refresh, ctx.no_reload) == (False, False)
    other = sysext.Context(root=root, always_refresh=True, no_reload=True, lock_timeout=None)
    assert (other.always_refresh, other.no_reload, other.lock_timeout) == (True, True, None)
    assert ctx.allow_block_devices is False
    assert sysext.Context(root=root, allow_block_devices=True).allow_block_devices is True
    assert ctx.hierarchies == ["/usr", "/opt"]
    assert repr(ctx).startswith(f"Context(root='{root}'")
    assert sysext.Context(root=root, image_class="confext").hierarchies == ["/etc"]
    assert sysext.Context(root=root, hierarchies=["/usr"]).hierarchies == ["/usr"]
    assert sysext.Context(root=os.fspath(root)).root == str(root)


def test_default_mode_comes_from_environment(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYSTEMD_SYSEXT_MUTABLE_MODE", "import")
    assert sysext.Context(root=root).mutable is MutableMode.IMPORT
    monkeypatch.delenv("SYSTEMD_SYSEXT_MUTABLE_MODE")
    assert sysext.Context(root=root).mutable is MutableMode.DISABLED


def test_list(root: Path, make_extension: Callable[..., Path]) -> None:
    make_extension("bar", "ID=fedora\nVERSION_ID=40\n")
    ctx = sysext.Context(root=root)
    exts = ctx.list()
    assert [e.name for e in exts] == ["bar", "foo"]
    bar, foo = exts
    assert foo.kind is ImageKind.DIRECTORY
    assert foo.path == f"{root}/var/lib/extensions/foo"
    assert foo.release == {"ID": "_any"}
    assert foo.skipped_reason is None
    assert foo.shadows == []
    assert foo.time_usec > 0
    assert bar.release == {"ID": "fedora", "VERSION_ID": "40"}
    assert bar.skipped_reason is not None and "fedora" in bar.skipped_reason
    assert (foo.state, foo.reason) == ("would-merge", None)
    assert (bar.state, bar.reason) == ("incompatible", bar.skipped_reason)
    # a fresh dict on every access
    foo.release["ID"] = "changed"
    assert foo.release == {"ID": "_any"}
    assert "foo" in repr(foo)


def test_list_shadowed_and_forced(root: Path, make_extension: Callable[..., Path]) -> None:
    make_extension("bar", "ID=fedora\n")
    # /etc/extensions takes precedence over /var/lib/extensions
    etc_foo = root / "etc/extensions/foo"
    (etc_foo / "usr/lib/extension-release.d").mkdir(parents=True)
    (etc_foo / "usr/lib/extension-release.d/extension-release.foo").write_text("ID=debian\nVERSION_ID=12\n")
    exts = {e.name: e for e in sysext.Context(root=root, force=True).list()}
    assert exts["foo"].path == f"{root}/etc/extensions/foo"
    assert exts["foo"].shadows == [f"{root}/var/lib/extensions/foo"]
    assert exts["foo"].release == {"ID": "debian", "VERSION_ID": "12"}
    assert exts["bar"].skipped_reason is None  # force: nothing is skipped


def test_list_without_os_release_still_lists(root: Path) -> None:
    (root / "usr/lib/os-release").unlink()
    exts = sysext.Context(root=root).list()
    assert [(e.name, e.skipped_reason, e.state) for e in exts] == [("foo", None, "invalid")]
    assert exts[0].reason == f"no os-release in {root}"
    assert exts[0].release == {"ID": "_any"}


def test_plan_read_only(root: Path) -> None:
    plan = sysext.Context(root=root, mutable="no").plan()
    assert plan.mutable is MutableMode.DISABLED
    assert plan.extensions == ["foo"]
    assert plan.using == ["foo"]
    assert plan.skipped == []
    [usr] = plan.hierarchies  # /opt: no extension has content for it
    assert usr.hierarchy == "/usr"
    assert usr.target == f"{root}/usr"
    assert [layer.kind for layer in usr.layers] == ["meta", "extension", "host"]
    assert usr.layers[1].name == "foo"
    assert usr.lower_dirs == [f"{root}/var/lib/extensions/foo/usr", f"{root}/usr"]
    assert (usr.upper_kind, usr.upper_dir, usr.work_dir, usr.writable, usr.read_only) == \
        (None, None, None, False, True)


def test_plan_every_mode(root: Path) -> None:
    routing = f"{root}/var/lib/extensions.mutable/usr"
    ctx = sysext.Context(root=root)
    yes = ctx.plan(mutable="yes").hierarchies[0]
    assert (yes.upper_kind, yes.upper_dir, yes.create_upper) == ("mutable-dir", routing, True)
    assert yes.work_dir == f"{root}/var/lib/extensions.mutable/.systemd-usr-workdir"
    assert yes.writable and not yes.read_only

    auto = ctx.plan(mutable="auto").hierarchies[0]
    assert auto.upper_kind is None  # no routing dir: read-only

    eph = ctx.plan(mutable=MutableMode.EPHEMERAL).hierarchies[0]
    assert (eph.upper_kind, eph.upper_dir, eph.work_dir) == ("ephemeral", None, None)

    mkdir(root / "var/lib/extensions.mutable/usr")
    auto = ctx.plan(mutable="auto").hierarchies[0]
    assert (auto.upper_kind, auto.upper_dir, auto.create_upper) == ("mutable-dir", routing, False)

    imp = ctx.plan(mutable="import").hierarchies[0]
    assert [layer.kind for layer in imp.layers] == ["meta", "import", "extension", "host"]
    assert imp.lower_dirs[0] == routing
    assert imp.upper_kind is None

    ei = ctx.plan(mutable="ephemeral-import").hierarchies[0]
    assert [layer.kind for layer in ei.layers] == ["meta", "import", "extension", "host"]
    assert ei.upper_kind == "ephemeral"
    assert ctx.plan(mutable="ephemeral-import").mutable is MutableMode.EPHEMERAL_IMPORT


def test_plan_routing_symlink_to_base(root: Path) -> None:
    (root / "var/lib/extensions.mutable").mkdir(parents=True)
    (root / "var/lib/extensions.mutable/usr").symlink_to("/usr")
    usr = sysext.Context(root=root, mutable="yes").plan().hierarchies[0]
    assert (usr.upper_kind, usr.upper_dir) == ("host", f"{root}/usr")
    assert usr.lower_dirs == [f"{root}/var/lib/extensions/foo/usr"]  # the base is the upper, not a lower


def test_plan_skips_incompatible(root: Path, make_extension: Callable[..., Path],
                                 caplog: pytest.LogCaptureFixture) -> None:
    make_extension("bar", "ID=fedora\n")
    ctx = sysext.Context(root=root)
    with caplog.at_level(logging.DEBUG, logger="sysext"):
        plan = ctx.plan()
    assert plan.extensions == ["foo"]
    [skipped] = plan.skipped
    name, reason = skipped
    assert name == skipped.name == "bar"
    assert reason == skipped.reason and "fedora" in reason
    assert any("bar" in r.getMessage() and r.levelno == logging.DEBUG for r in caplog.records)
    assert ctx.plan(force=True).extensions == ["bar", "foo"]


def test_status_unmerged(root: Path) -> None:
    st = sysext.Context(root=root).status()
    assert [s.hierarchy for s in st] == ["/opt", "/usr"]
    for s in st:
        assert (s.merged, s.extensions, s.mutable, s.upper_kind, s.upper_dir, s.since, s.since_usec) == \
            (False, [], None, None, None, None, None)


def test_confext_list(root: Path) -> None:
    conf = root / "var/lib/confexts/cfg"
    (conf / "etc/extension-release.d").mkdir(parents=True)
    (conf / "etc/extension-release.d/extension-release.cfg").write_text("ID=_any\n")
    (conf / "etc/cfg.conf").write_text("x=1\n")
    (root / "etc").mkdir()
    ctx = sysext.Context(root=root, image_class=ImageClass.CONFEXT)
    assert [(e.name, e.release) for e in ctx.list()] == [("cfg", {"ID": "_any"})]
    [etc] = ctx.plan().hierarchies
    assert etc.hierarchy == "/etc" and etc.noexec and etc.nosuid


def test_compat_level(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIBSYSEXT_COMPAT", raising=False)
    assert sysext.Context(root=root).compat == 262
    assert sysext.Context(root=root, compat=257).compat == 257
    assert sysext.Context(root=root, compat="262").compat == 262
    monkeypatch.setenv("LIBSYSEXT_COMPAT", "257")
    assert sysext.Context(root=root).compat == 257
    assert sysext.Context(root=root, compat=262).compat == 262
    for bad in (258, "v262", ""):
        with pytest.raises(sysext.SysextValueError):
            sysext.Context(root=root, compat=bad)



def test_list_follows_the_level(root: Path) -> None:
    """A symlink in a search dir of an explicit root: 262 follows it (inside the root) and
    lists the image where it leads, with its release data; 257 passes it over."""
    target = root / "srv/linked"
    (target / "usr/lib/extension-release.d").mkdir(parents=True)
    (target / "usr/lib/extension-release.d/extension-release.linked").write_text("ID=_any\n")
    (root / "var/lib/extensions/linked").symlink_to("/srv/linked")
    at_262 = {e.name: e for e in sysext.Context(root=root, compat=262).list()}
    assert at_262["linked"].path == f"{root}/srv/linked"
    assert at_262["linked"].release == {"ID": "_any"}
    assert at_262["linked"].state == "would-merge"
    assert [e.name for e in sysext.Context(root=root, compat=257).list()] == ["foo"]

# --- one convention per idea (issue 19 item 4, issue 21 item 2) ------------------------

def test_extension_equality_and_hash(root: Path, make_extension: Callable[..., Path]) -> None:
    make_extension("bar", "ID=fedora\n")
    ctx = sysext.Context(root=root)
    first, second = ctx.list(), ctx.list()
    assert first == second  # two listings of unchanged images are equal
    assert [hash(e) for e in first] == [hash(e) for e in second]
    assert first[0] != first[1]
    assert len({*first, *second}) == 2
    assert first[0] != "bar" and first[0] != (first[0].name,)


def test_state_and_kinds_are_enums(root: Path, make_extension: Callable[..., Path]) -> None:
    from sysext import ImageState, LayerKind, UpperKind

    make_extension("bar", "ID=fedora\n")
    exts = {e.name: e for e in sysext.Context(root=root).list()}
    assert exts["foo"].state is ImageState.WOULD_MERGE
    assert exts["bar"].state is ImageState.INCOMPATIBLE
    assert exts["foo"].state == "would-merge" and str(exts["foo"].state) == "would-merge"
    [usr] = sysext.Context(root=root).plan().hierarchies
    assert [layer.kind for layer in usr.layers] == [LayerKind.META, LayerKind.EXTENSION, LayerKind.HOST]
    assert all(type(layer.kind) is LayerKind for layer in usr.layers)
    assert usr.upper_kind is None
    yes = sysext.Context(root=root, mutable="yes").plan().hierarchies[0]
    assert yes.upper_kind is UpperKind.MUTABLE_DIR
    eph = sysext.Context(root=root, mutable="ephemeral").plan().hierarchies[0]
    assert eph.upper_kind is UpperKind.EPHEMERAL


def test_names_must_be_str_or_sequence_of_str(root: Path) -> None:
    ctx = sysext.Context(root=root)
    for bad in (42, [1], b"foo"):
        with pytest.raises(TypeError, match="names must be a str"):
            ctx.merge(names=bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="names must be a str"):
            ctx.unmerge(bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="names must be a str"):
            ctx.merged(bad)  # type: ignore[arg-type]
