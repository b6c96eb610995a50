"""A tiny run of the whole-server load benchmark against both servers, so it never rots.

Each server kind is started once for this module; every workload of `load.py` then runs a short
load through the real Java generator (compiled on first use) and must complete operations
without a single error. Under `--benchmark-disable` (CI) each case runs once. The numbers are
recorded in the benchmark's extra_info for the curious; nothing here asserts on timing. Real
measurements come from `python benchmarks/load.py` (see RESULTS.md).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import load  # noqa: E402
from zkfast.testing.procs import ServerProcess, apache_available  # noqa: E402

TINY = [
    "--seconds",
    "0.5",
    "--warmup-seconds",
    "0.2",
    "--sessions",
    "2",
    "--outstanding",
    "4",
    "--znodes",
    "50",
]

pytestmark = pytest.mark.skipif(
    shutil.which("javac") is None or not apache_available(),
    reason="needs javac and the Debian ZooKeeper 3.8 client jars for the load generator",
)


@pytest.fixture(scope="module")
def classpath() -> str:
    return load.build_loadgen()


@pytest.fixture(
    scope="module",
    params=[
        "zkfast",
        pytest.param("apache", marks=pytest.mark.interop),
    ],
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    proc, startup_s = load.start_server(request.param, tmp_path_factory.mktemp(request.param))
    assert startup_s > 0
    try:
        yield proc
    finally:
        proc.stop()


@pytest.mark.parametrize("workload", load.WORKLOADS)
def test_tiny_load(benchmark: Any, server: ServerProcess, classpath: str, workload: str) -> None:
    args = load.parse_args([*TINY, "--workloads", workload])
    args.root = f"/zkload-{workload}"
    args.cleanup = True  # the server is shared by the cases: leave it as it was
    outcome: dict[str, Any] = {}

    def run() -> None:
        res, server_cores, loadgen_cores, _other = load.run_loadgen(
            classpath, server, workload, args
        )
        outcome.update(res, server_cores=server_cores, loadgen_cores=loadgen_cores)

    benchmark.pedantic(run, rounds=1, iterations=1)
    assert outcome["workload"] == workload
    assert outcome["ops"] > 0, outcome
    assert outcome["errors_total"] == 0, outcome
    assert outcome["errors"] == 0, outcome
    assert outcome["drained"] is True, outcome
    assert outcome["completed_total"] == outcome["issued_total"], outcome
    assert outcome["p50_us"] is not None and outcome["p99_us"] >= outcome["p50_us"], outcome
    assert server.running
    benchmark.extra_info.update(
        server=server.kind,
        ops_per_s=outcome["ops_per_s"],
        p50_us=outcome["p50_us"],
        p99_us=outcome["p99_us"],
    )
