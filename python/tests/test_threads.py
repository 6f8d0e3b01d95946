"""Threads: mounting calls release the GIL, and the core serializes them per root."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import sysext

pytestmark = pytest.mark.root


@pytest.mark.parametrize("shared", [True, False], ids=["one-context", "two-contexts"])
def test_two_threads_merge_same_root(root: Path, shared: bool) -> None:
    contexts = [sysext.Context(root=root, mutable="ephemeral")]
    contexts.append(contexts[0] if shared else sysext.Context(root=root, mutable="ephemeral"))
    barrier = threading.Barrier(2)
    results: list[object] = [None, None]

    def work(i: int) -> None:
        barrier.wait()
        try:
            results[i] = contexts[i].merge()
        except BaseException as e:  # noqa: BLE001 - recorded for the assertions
            results[i] = e

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        reports = [r for r in results if isinstance(r, sysext.Report)]
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(reports) == 1, results
        assert len(errors) == 1 and isinstance(errors[0], sysext.AlreadyMergedError), results
        assert reports[0].merged == ["foo"]
        assert (root / "usr/bin/foo").exists()
    finally:
        contexts[0].unmerge()
    assert not (root / "usr/bin/foo").exists()


def test_gil_released_during_merge(root: Path) -> None:
    """Another thread runs Python while merges and unmerges are in progress."""
    ctx = sysext.Context(root=root, mutable="ephemeral")
    stop = threading.Event()
    ticks = 0

    def spin() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        for _ in range(5):
            with ctx.merged():
                pass
    finally:
        stop.set()
        t.join()
    assert ticks > 0
