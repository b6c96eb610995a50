"""A tiny run of the ensemble benchmark against both kinds, so that it never rots.

Per kind, one short spread load (mixed workload, half a second) on a fresh 3-node ensemble and
one failover try (SIGKILL of the leader until a write is acknowledged through another server).
Under `--benchmark-disable` (CI) each case runs once. Numbers go into extra_info; nothing here
asserts on timing. Real measurements: `python benchmarks/ensemble.py` (see RESULTS.md).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ensemble  # noqa: E402
from zkfast.testing.procs import apache_available  # noqa: E402

KINDS = ["zkfast", pytest.param("apache", marks=pytest.mark.interop)]

pytestmark = pytest.mark.skipif(
    shutil.which("javac") is None or not apache_available(),
    reason="needs javac and the Debian ZooKeeper 3.8 client jars for the load generator",
)


@pytest.mark.parametrize("kind", KINDS)
def test_tiny_ensemble_load(benchmark: Any, tmp_path: Path, kind: str) -> None:
    args = ensemble.parse_args(["--seconds", "0.5", "--warmup-seconds", "0.2", "--sessions", "3",
                                "--outstanding", "4", "--znodes", "50", "--workloads", "mixed"])
    outcome: dict[str, Any] = {}

    def run() -> None:
        ens, startup_s = ensemble.start_ensemble(kind, tmp_path / "ens", ensemble.LOAD_CFG)
        try:
            res, server_cores, _, _ = ensemble.run_loadgen(ensemble.load.build_loadgen(), ens,
                                                           "mixed", args)
        finally:
            ens.stop()
        outcome.update(res, startup_s=startup_s, server_cores=server_cores)

    benchmark.pedantic(run, rounds=1, iterations=1)
    assert outcome["ops"] > 0, outcome
    assert outcome["errors_total"] == 0, outcome
    assert outcome["drained"] is True, outcome
    assert outcome["completed_total"] == outcome["issued_total"], outcome
    benchmark.extra_info.update(server=kind, ops_per_s=outcome["ops_per_s"],
                                p50_us=outcome["p50_us"], startup_s=outcome["startup_s"])


@pytest.mark.parametrize("kind", KINDS)
def test_tiny_failover(benchmark: Any, tmp_path: Path, kind: str) -> None:
    box: list[ensemble.FailoverResult] = []
    benchmark.pedantic(lambda: box.append(ensemble.failover_once(kind, tmp_path / "f", 0)),
                       rounds=1, iterations=1)
    r = box[0]
    assert r.failover_ms > 0 and r.acked_by != r.leader
    benchmark.extra_info.update(server=kind, failover_ms=r.failover_ms)
