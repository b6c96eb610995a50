"""A tiny run of the in-process write-path benchmark (``write_path.py``), so it never rots."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import write_path  # noqa: E402


@pytest.mark.parametrize("workload", ["create", "setData"])
def test_write_path_runs(workload: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert write_path.main(["--ops", "600", "--batch", "64", "--workload", workload]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{workload}: 600 ops,") and "bytes per op" in out
