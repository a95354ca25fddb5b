"""Source rules from DESIGN.md section 4, checked on the repository itself.

- native/ (and host modules, once they exist) import none of asyncio, socket, os, time, random,
  threading, in Python or Cython form (libc.time and posix.time count as time);
- every .pyx has a .pxd contract beside it, a .pyi stub under src/haperf/_native/, and is listed
  in CMakeLists.txt, and every listed module has a .pyx;
- every Python, Cython and stub module, and every C header, starts with a docstring or comment
  saying what it owns;
- ruff and mypy (strict) pass.
"""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

NATIVE = REPO_ROOT / "native"
SRC = REPO_ROOT / "src" / "haperf"
FORBIDDEN = ("asyncio", "socket", "os", "time", "random", "threading")

pytestmark = pytest.mark.skipif(
    not (NATIVE.is_dir() and SRC.is_dir()), reason="needs the source tree (run from a checkout)"
)

_IMPORT = re.compile(
    r"^\s*(?:from\s+(?P<from>[\w.]+)\s+c?import\b|c?import\s+(?P<names>[\w., ]+))", re.MULTILINE
)


def imported_modules(text: str) -> set[str]:
    """Every dotted module named by import/cimport statements in Python or Cython source."""
    found: set[str] = set()
    for match in _IMPORT.finditer(text):
        if match.group("from"):
            found.add(match.group("from"))
        else:
            for part in match.group("names").split(","):
                name = part.strip().split(" as ")[0].strip()
                if name:
                    found.add(name)
    return found


def forbidden_in(modules: set[str]) -> set[str]:
    bad = set()
    for module in modules:
        parts = module.split(".")
        if parts[0] in FORBIDDEN or (parts[0] in ("libc", "posix") and parts[-1] in FORBIDDEN):
            bad.add(module)
    return bad


def test_import_rule_catches_planted_violations() -> None:
    planted = "import os\nfrom libc.time cimport time\nimport numpy as np, threading\n"
    assert forbidden_in(imported_modules(planted)) == {"os", "libc.time", "threading"}
    assert forbidden_in(imported_modules("from libc.stdint cimport uint32_t\n")) == set()


def host_modules() -> list[Path]:
    return sorted(SRC.glob("*/host.py"))


def test_native_and_host_code_import_no_io_time_or_randomness() -> None:
    files = sorted(NATIVE.rglob("*.pyx")) + sorted(NATIVE.rglob("*.pxd")) + host_modules()
    assert files, "no native sources found"
    offenders = {
        str(f.relative_to(REPO_ROOT)): sorted(bad)
        for f in files
        if (bad := forbidden_in(imported_modules(f.read_text())))
    }
    assert not offenders, f"forbidden imports (DESIGN.md 4.1): {offenders}"


def listed_modules() -> list[str]:
    cmake = (REPO_ROOT / "CMakeLists.txt").read_text()
    block = re.search(r"set\(HAPERF_NATIVE_MODULES\s+([^)]*)\)", cmake)
    assert block, "CMakeLists.txt has no HAPERF_NATIVE_MODULES list"
    return block.group(1).split()


def test_every_native_module_has_contract_stub_and_build_entry() -> None:
    pyx = sorted((NATIVE / "haperf" / "_native").glob("*.pyx"))
    assert pyx
    listed = listed_modules()
    for source in pyx:
        name = source.stem
        assert source.with_suffix(".pxd").is_file(), f"{name}.pyx has no .pxd"
        assert (SRC / "_native" / f"{name}.pyi").is_file(), f"{name}.pyx has no .pyi stub"
        assert name in listed, f"{name}.pyx is not in HAPERF_NATIVE_MODULES"
    assert sorted(listed) == sorted(p.stem for p in pyx), "CMake lists a module with no .pyx"


def _starts_with_docstring(path: Path) -> bool:
    text = path.read_text()
    if path.suffix in (".py", ".pyi"):
        return ast.get_docstring(ast.parse(text)) is not None
    if path.suffix == ".h":
        return text.lstrip().startswith("/*")
    # .pyx/.pxd: the first statement after comments and blank lines is a string literal.
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        return stripped.startswith(('"""', "'''"))
    return False


def test_every_module_has_a_docstring() -> None:
    files = [
        *SRC.rglob("*.py"),
        *SRC.rglob("*.pyi"),
        *NATIVE.rglob("*.pyx"),
        *NATIVE.rglob("*.pxd"),
        *NATIVE.rglob("*.h"),
        *(REPO_ROOT / "tests").rglob("*.py"),
        *(REPO_ROOT / "benchmarks").rglob("*.py"),
    ]
    missing = sorted(str(f.relative_to(REPO_ROOT)) for f in files if not _starts_with_docstring(f))
    assert not missing, f"modules without a docstring: {missing}"


def _tool(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_ruff_passes() -> None:
    out = _tool("ruff", "check", "src", "tests", "benchmarks")
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_strict_passes() -> None:
    out = _tool("mypy")
    assert out.returncode == 0, out.stdout + out.stderr


RUNTIME_DEPENDENCIES = frozenset({"haperf", "numpy", "orjson", "uvloop"})


def _is_guarded(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """True for an import inside a function, an `if TYPE_CHECKING:` block or a try/except."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Try):
            return True
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def unguarded_third_party_imports(source: str) -> set[str]:
    """Top-level modules imported at import time that are neither stdlib nor runtime deps."""
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        if _is_guarded(node, parents):
            continue
        for name in names:
            top = name.split(".")[0]
            if top not in sys.stdlib_module_names and top not in RUNTIME_DEPENDENCIES:
                found.add(top)
    return found


def test_dependency_rule_catches_planted_violations() -> None:
    planted = "import numpy\nfrom typing_extensions import Buffer\n"
    assert unguarded_third_party_imports(planted) == {"typing_extensions"}
    guarded = (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from typing_extensions import B\n"
        "def f():\n    import matplotlib\ntry:\n    import crc32c\nexcept ImportError:\n    pass\n"
    )
    assert unguarded_third_party_imports(guarded) == set()


def test_package_imports_only_stdlib_and_runtime_dependencies() -> None:
    # A fresh `pip install .` has numpy, orjson and uvloop and nothing else: a test-only or
    # typing-only package imported at module level breaks `python -m haperf` for users.
    offenders = {
        str(path.relative_to(REPO_ROOT)): sorted(bad)
        for path in sorted(SRC.rglob("*.py"))
        if (bad := unguarded_third_party_imports(path.read_text()))
    }
    assert not offenders, f"modules importing non-dependencies at import time: {offenders}"
