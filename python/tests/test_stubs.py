"""The type stubs match the built module, and the examples type-check against them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support import PYTHON_DIR


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # A scratch working directory: mypy keeps its cache there, and `sysext` can only
    # resolve to the installed package.
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=cwd)


def test_stubtest(tmp_path: Path) -> None:
    """`python -m mypy.stubtest sysext`: the .pyi matches the built module."""
    out = run(tmp_path, "mypy.stubtest", "sysext", "--allowlist", str(PYTHON_DIR / "tests/stubtest-allowlist.txt"))
    assert out.returncode == 0, out.stdout + out.stderr


def test_package_type_checks(tmp_path: Path) -> None:
    """The package and the examples pass `mypy --strict` against the shipped stubs."""
    for target in (["-p", "sysext"], [str(PYTHON_DIR / "examples")]):
        out = run(tmp_path, "mypy", "--strict", *target)
        assert out.returncode == 0, out.stdout + out.stderr


def test_public_names_documented() -> None:
    import inspect

    import sysext

    for name in sysext.__all__:
        obj = getattr(sysext, name)
        if name == "__version__":
            continue
        assert inspect.getdoc(obj), f"sysext.{name} has no docstring"
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if attr.startswith("_") or not (callable(member) or inspect.isdatadescriptor(member)):
                    continue
                assert inspect.getdoc(member), f"sysext.{name}.{attr} has no docstring"
