"""The examples in the docstrings of the verbs run as documented (doctest), each on a
fresh test root holding the extension ``foo``, in the private mount namespace."""

from __future__ import annotations

import doctest
import inspect
from pathlib import Path

import pytest

import sysext

VERBS = ["list", "plan", "merge", "refresh", "unmerge", "status"]


@pytest.mark.root
@pytest.mark.parametrize("verb", VERBS)
def test_verb_docstring_example_runs(verb: str, root: Path) -> None:
    doc = inspect.getdoc(getattr(sysext.Context, verb))
    assert doc and ">>>" in doc, f"Context.{verb} has no example"
    test = doctest.DocTestParser().get_doctest(doc, {"sysext": sysext, "root": str(root)},
                                               f"Context.{verb}", None, 0)
    assert test.examples, f"Context.{verb}: no examples parsed"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"Context.{verb}: {result.failed} of {result.attempted} examples failed"
