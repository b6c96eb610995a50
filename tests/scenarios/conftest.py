"""Golden transcripts: ``pytest tests/scenarios --rewrite`` regenerates testdata/*.txt.

pytest reads the option only when this directory is on the command line (a sub-directory's
conftest is loaded after the arguments are parsed); ``ZKFAST_REWRITE=1`` works from anywhere.

Read the diff before committing a rewrite: the transcript is the specification of the story.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

TESTDATA = Path(__file__).parent / "testdata"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--rewrite", action="store_true", default=False,
                     help="rewrite the golden transcripts of tests/scenarios")


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    """``golden(name, text)``: compare with testdata/<name>.txt, or rewrite it."""
    rewrite = bool(request.config.getoption("--rewrite", default=False)) or \
        os.environ.get("ZKFAST_REWRITE") == "1"

    def check(name: str, text: str) -> None:
        path = TESTDATA / f"{name}.txt"
        if rewrite or not path.exists():
            TESTDATA.mkdir(exist_ok=True)
            path.write_text(text)
            if not rewrite:
                pytest.fail(f"{path} did not exist; written now, check it and re-run")
            return
        expected = path.read_text()
        assert text == expected, f"transcript {name} changed (pytest tests/scenarios --rewrite)"

    return check
