"""A tiny run of the storage benchmarks (`benchmarks/storage.py`), so they never rot.

The same code paths as the real runs with very small counts: the dataset is generated as a
snapshot file plus a log tail written by a zkfast server; in-process recovery must restore
exactly the generated tree with the tail applied; then each server restarts on a copy, is
sampled (the two must serve identical data and Stats), and takes a snapshot while a writer
keeps setData in flight. Under `--benchmark-disable` (CI) each case runs once. Nothing here
asserts on timing; real measurements come from `python benchmarks/storage.py` (RESULTS.md).
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import storage  # noqa: E402
from zkfast.runtime.disk_log import OsFiles  # noqa: E402
from zkfast.storage.recovery import recover  # noqa: E402
from zkfast.testing.procs import apache_available  # noqa: E402

LEAVES, FANOUT, TAIL = 300, 40, 60


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> storage.Dataset:
    return storage.build_dataset(tmp_path_factory.mktemp("ds"), LEAVES, fanout=FANOUT,
                                 value_bytes=16, tail=TAIL)


def _args(tmp: Path) -> argparse.Namespace:
    return argparse.Namespace(workdir=str(tmp), snap_count=60, window=8, apache_heap="256m",
                              python=sys.executable)


def test_dataset_recovers_to_the_generated_tree(dataset: storage.Dataset,
                                                tmp_path: Path, benchmark: Any) -> None:
    copy = tmp_path / "data"
    shutil.copytree(dataset.data_dir, copy)
    v2 = str(copy / "version-2")
    rec = benchmark.pedantic(recover, args=(OsFiles(), v2, v2), rounds=1, iterations=1)
    expected = storage.build_tree(LEAVES, fanout=FANOUT, value_bytes=16)
    assert rec.snapshot_zxid == dataset.snapshot_zxid == expected.last_processed_zxid
    assert rec.txns_replayed >= TAIL  # the setData txns (and the writer's session txns)
    tail = dict(storage.tail_values(TAIL, LEAVES, FANOUT))
    assert set(rec.tree.nodes) == set(expected.nodes)
    for path, node in expected.nodes.items():
        got = rec.tree.nodes[path]
        if path in tail:
            assert (got.data, got.version, got.czxid) == (tail[path], 1, node.czxid), path
            assert got.mzxid > dataset.snapshot_zxid
        else:
            assert got.stat_persisted() == node.stat_persisted(), path
            assert got.data == node.data, path


@pytest.mark.parametrize("kind", ["zkfast", pytest.param("apache", marks=pytest.mark.interop)])
def test_restart_and_snapshot_while_serving(kind: str, dataset: storage.Dataset,
                                            tmp_path: Path, benchmark: Any) -> None:
    if kind == "apache" and not apache_available():
        pytest.skip("needs java and the Debian ZooKeeper 3.8 jars")
    rng = random.Random(1)
    sample = sorted({storage.leaf_path(rng.randrange(LEAVES), FANOUT) for _ in range(30)}
                    | set(dict(storage.tail_values(TAIL, LEAVES, FANOUT))))
    result, got = benchmark.pedantic(storage.run_restart_one,
                                     args=(kind, dataset, 0, _args(tmp_path), sample),
                                     rounds=1, iterations=1)
    benchmark.extra_info.update(restart_s=result.startup_s, rss_mib=result.rss_mib,
                                snapshot_ms=result.snapshot_poll_ms)
    # root (counted twice, as "" and "/", like Apache's node map), /zookeeper,
    # /zookeeper/quota, /zookeeper/config, /bench, the groups, the leaves
    assert result.znode_count == 6 + (LEAVES + FANOUT - 1) // FANOUT + LEAVES
    assert result.snapshot_mib >= 0 and result.snapshot_poll_ms >= 0
    tail = dict(storage.tail_values(TAIL, LEAVES, FANOUT))
    expected = storage.build_tree(LEAVES, fanout=FANOUT, value_bytes=16)
    for path, data, stat in got:
        node = expected.nodes[path]
        assert data == tail.get(path, node.data), path
        assert stat[0] == node.czxid, path
        assert stat[4] == (1 if path in tail else 0), path
