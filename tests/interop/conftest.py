"""Fixtures shared by the reference-client interop tests (zkCli.sh, cli_mt, the differential run).

`interop_server` starts one fresh standalone server (per test: the scripts assert exact zxids) of
the kind chosen by the suite-wide `server_kind` fixture (zkfast or apache), with the same config
for both kinds: TTL nodes enabled (`extendedTypesEnabled`), every four-letter word whitelisted. It
is stopped through its own handle. `spawn_cli` drives a reference CLI line by line.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from zkfast.testing.procs import ServerProcess, apache_available, apache_server, zkfast_server

ZKCLI = Path("/usr/share/zookeeper/bin/zkCli.sh")
CLI_MT = Path("/usr/lib/zookeeper/bin/cli_mt")

#: The system properties every interop server gets, whatever its kind (as -D for both).
INTEROP_PROPS = {"zookeeper.extendedTypesEnabled": "true"}


def start_interop_server(
    kind: str, workdir: Path, props: dict[str, str] | None = None
) -> ServerProcess:
    """Start a fresh standalone server of `kind` in `workdir` (skips when Apache is missing)."""
    all_props = {**INTEROP_PROPS, **(props or {})}
    if kind == "apache":
        if not apache_available():
            pytest.skip("the Debian Apache ZooKeeper 3.8 packages are not installed")
        return apache_server(workdir, jvm_props=all_props)
    assert kind == "zkfast", kind
    return zkfast_server(workdir, props=all_props)


@pytest.fixture
def interop_server(server_kind: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """One fresh server of the current `server_kind`, stopped by its own handle afterwards."""
    server = start_interop_server(server_kind, tmp_path / f"{server_kind}-server")
    try:
        yield server
    finally:
        server.stop()


def require_tool(path: Path) -> None:
    """Skip the test cleanly when a Debian reference client (or java for zkCli) is missing."""
    if not path.is_file():
        pytest.skip(f"{path} is not installed (Debian zookeeper packages)")
    if path == ZKCLI and shutil.which("java") is None:
        pytest.skip("java is not installed")


@pytest.fixture
def zkcli() -> str:
    """The path of Apache's zkCli.sh (skips when it is not installed)."""
    require_tool(ZKCLI)
    return str(ZKCLI)


@pytest.fixture
def cli_mt() -> str:
    """The path of Apache's C client shell cli_mt (skips when it is not installed)."""
    require_tool(CLI_MT)
    return str(CLI_MT)


@pytest.fixture
def spawn_cli() -> Iterator[Callable[[list[str]], InteractiveProcess]]:
    """A factory of InteractiveProcess; every process it started is closed at teardown."""
    started: list[InteractiveProcess] = []

    def spawn(argv: list[str]) -> InteractiveProcess:
        p = InteractiveProcess(argv)
        started.append(p)
        return p

    yield spawn
    for p in started:
        p.close()


class InteractiveProcess:
    """A reference CLI driven line by line: stdin piped, stdout+stderr merged and read by a thread.

    `wait_for(pattern)` polls the collected lines (from a given index on) until one matches, with
    a generous deadline; it never sleeps for a fixed time. The process is stopped through its own
    Popen handle by `close()`.
    """

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self._reader = threading.Thread(target=self._read, name="cli-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with self._cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def send(self, line: str) -> int:
        """Write one command line; returns the index of the next output line (for wait_for)."""
        with self._cond:
            start = len(self.lines)
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        return start

    def wait_for(self, pattern: str, start: int = 0, timeout_s: float = 60.0) -> re.Match[str]:
        """Wait until a line at index >= start matches `pattern` (re.search); return the match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        with self._cond:
            i = start
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i])
                    if m:
                        return m
                    i += 1
                remaining = deadline - time.monotonic()
                if self._eof or remaining <= 0:
                    why = "ended" if self._eof else f"printed nothing matching in {timeout_s}s"
                    pytest.fail(
                        f"{self.argv[0]} {why} (waiting for {pattern!r}); output:\n" + self.text()
                    )
                self._cond.wait(remaining)

    def index_of(self, pattern: str, start: int = 0) -> int:
        """Index of the first line >= start matching `pattern` (after wait_for found it)."""
        rx = re.compile(pattern)
        with self._cond:
            for i in range(start, len(self.lines)):
                if rx.search(self.lines[i]):
                    return i
        raise AssertionError(f"no line matches {pattern!r}")

    def text(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def slice(self, start: int, end: int) -> list[str]:
        """A copy of the output lines [start, end)."""
        with self._cond:
            return list(self.lines[start:end])

    def close(self, timeout_s: float = 60.0) -> int:
        """Close stdin, wait for the exit (kill after `timeout_s`), and return the exit code."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=60)
        self._reader.join(timeout=60)
        return self.proc.returncode
