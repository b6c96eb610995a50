"""Source hygiene: lint, types, and the sans-IO rule that cores never touch the outside world.

The cores (``core/``, ``wire/``, ``quorum.py``, ``storage/``) must run unchanged inside the
deterministic simulator, so they may not import anything that reads a clock, makes randomness,
or does IO. This is checked on the import graph itself (an AST walk), not by convention.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "zkfast"
BIN = Path(sys.executable).parent

#: Modules a core may never import (STYLE.md §1 and §7).
FORBIDDEN = {"asyncio", "socket", "time", "random", "os", "threading", "selectors", "ssl",
             "subprocess", "uvloop", "signal"}
#: ``random`` is allowed for typing an injected ``random.Random`` only.
TYPING_ONLY = {"random"}


def _core_files() -> list[Path]:
    files = [SRC / "quorum.py"]
    for folder in ("core", "wire", "storage"):
        files.extend(sorted((SRC / folder).glob("*.py")))
    return [f for f in files if f.exists()]


def _imports(tree: ast.AST) -> list[tuple[str, int, bool]]:
    """``(top-level module, line, under TYPE_CHECKING)`` of every import in a module."""
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, typing_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            guarded = typing_only
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                guarded = True
            if isinstance(child, ast.Import):
                found.extend((a.name.split(".")[0], child.lineno, guarded) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.append((child.module.split(".")[0], child.lineno, guarded))
            visit(child, guarded)

    visit(tree, False)
    return found


@pytest.mark.parametrize("path", _core_files(), ids=lambda p: str(p.relative_to(SRC)))
def test_cores_do_no_io(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    bad = []
    for module, line, guarded in _imports(tree):
        if module in FORBIDDEN and not (guarded and module in TYPING_ONLY):
            if module in TYPING_ONLY and _only_annotations(tree, module):
                continue
            bad.append(f"{path.name}:{line} imports {module}")
    assert not bad, "sans-IO cores import the outside world: " + "; ".join(bad)


def _only_annotations(tree: ast.AST, module: str) -> bool:
    """True when ``module`` is used only as ``module.Name`` inside annotations."""
    annotation_ids = set()
    for node in ast.walk(tree):
        for ann in _annotations(node):
            annotation_ids.update(id(n) for n in ast.walk(ann))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == module and id(node) not in annotation_ids:
            return False
    return True


def _annotations(node: ast.AST) -> list[ast.AST]:
    out: list[ast.AST] = []
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        args = node.args
        for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if a is not None and a.annotation is not None:
                out.append(a.annotation)
        if node.returns is not None:
            out.append(node.returns)
    elif isinstance(node, ast.AnnAssign):
        out.append(node.annotation)
    return out


def _run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    exe = BIN / tool
    if not exe.exists():
        found = shutil.which(tool)
        if found is None:
            pytest.skip(f"{tool} is not installed (pip install -e '.[lint]')")
        exe = Path(found)
    env = {"PATH": f"{BIN}:/usr/bin:/bin"}
    return subprocess.run([str(exe), *args], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=300, check=False)


def test_ruff() -> None:
    proc = _run("ruff", "check", "src", "tests", "benchmarks")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict() -> None:
    proc = _run("mypy", "--strict", "--no-incremental", "src/zkfast")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cython_lint() -> None:
    proc = _run("cython-lint", "--max-line-length", "100", "src/zkfast/_core.pyx",
                "src/zkfast/_core.pxd")
    assert proc.returncode == 0, proc.stdout + proc.stderr
