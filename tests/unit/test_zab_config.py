"""The ZAB sync keys: zookeeper.forceSnapshotSync, commitLogCount, snapshotSizeFactor.

They are Java system properties in Apache (LearnerHandler, ZKDatabase); zkfast reads them as
zoo.cfg keys or -D overrides, with or without the ``zookeeper.`` prefix, and parses them the
way Apache does (a bad number falls back to the default, it does not stop the server).
"""

from __future__ import annotations

from pathlib import Path

from zkfast.config import ServerConfig, load_config

SERVERS = ("server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889\n"
           "server.3=127.0.0.1:2890:3890\n")


def cfg(tmp_path: Path, text: str, **overrides: str) -> ServerConfig:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "myid").write_text("1\n")
    path = tmp_path / "zoo.cfg"
    path.write_text(f"dataDir={data}\nclientPort=2181\ninitLimit=10\nsyncLimit=5\n" + text)
    return load_config(str(path), overrides)


def test_defaults(tmp_path: Path) -> None:
    q = cfg(tmp_path, SERVERS).quorum
    assert q is not None
    assert (q.force_snapshot_sync, q.commit_log_count, q.snapshot_size_factor) == (
        False, 500, 0.33)


def test_file_keys_and_overrides(tmp_path: Path) -> None:
    q = cfg(tmp_path, SERVERS + "commitLogCount=800\nsnapshotSizeFactor=0.5\n",
            **{"zookeeper.forceSnapshotSync": "TRUE", "zookeeper.commitLogCount": "900"}).quorum
    assert q is not None
    assert (q.force_snapshot_sync, q.commit_log_count, q.snapshot_size_factor) == (
        True, 900, 0.5)


def test_apache_fallbacks(tmp_path: Path) -> None:
    # Boolean.getBoolean: only "true"; commitLogCount under 500 -> 500, unparsable -> 500;
    # snapshotSizeFactor above 1 or unparsable -> 0.33, negative kept (log reading off).
    q = cfg(tmp_path, SERVERS + "forceSnapshotSync=yes\ncommitLogCount=10\n"
                                "snapshotSizeFactor=2\n").quorum
    assert q is not None
    assert (q.force_snapshot_sync, q.commit_log_count, q.snapshot_size_factor) == (
        False, 500, 0.33)
    q = cfg(tmp_path, SERVERS + "commitLogCount=many\nsnapshotSizeFactor=-1\n").quorum
    assert q is not None
    assert (q.commit_log_count, q.snapshot_size_factor) == (500, -1.0)
    q = cfg(tmp_path, SERVERS + "snapshotSizeFactor=x\n").quorum
    assert q is not None and q.snapshot_size_factor == 0.33

