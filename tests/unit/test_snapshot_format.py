"""The snapshot format against files Apache ZooKeeper 3.8.0 wrote (tests/testdata)."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from zkfast.storage import snapshot, txnlog

DATA = Path(__file__).resolve().parent.parent / "testdata"


def test_empty_apache_snapshot_round_trips_byte_for_byte() -> None:
    raw = (DATA / "apache-3.8.0-snapshot.0").read_bytes()
    snap = snapshot.decode_snapshot(raw)
    assert [n.path for n in snap.nodes] == ["", "/zookeeper", "/zookeeper/config",
                                            "/zookeeper/quota"]
    # The system nodes carry the implicit open ACL (id -1), except /zookeeper/config.
    assert snap.nodes[0].acl is None
    assert snap.nodes[2].acl == [(1, ("world", "anyone"))]
    assert snap.nodes[2].stat[6] == -1  # aversion of /zookeeper/config
    assert snap.sessions == []
    assert snapshot.encode_snapshot(snap.sessions, snap.nodes, snap.digest) == raw


def test_apache_snapshot_with_nodes_and_a_session() -> None:
    raw = (DATA / "apache-3.8.0-snapshot.f").read_bytes()
    assert snapshot.looks_complete(raw)
    snap = snapshot.decode_snapshot(raw)
    assert len(snap.sessions) == 1
    assert snap.digest is not None and snap.digest[1] == 2
    paths = [n.path for n in snap.nodes]
    assert paths[0] == ""
    # A parent always precedes its children.
    seen = set()
    for p in paths[1:]:
        assert p.rsplit("/", 1)[0] in seen | {""}
        seen.add(p)
    again = snapshot.encode_snapshot(snap.sessions, snap.nodes, snap.digest)
    assert len(again) == len(raw)
    decoded = snapshot.decode_snapshot(again)
    assert decoded.nodes == snap.nodes and decoded.sessions == snap.sessions
    assert decoded.digest == snap.digest


@pytest.mark.parametrize("where", [0, 20, 100, -30, -3])
def test_flipped_byte_is_detected(where: int) -> None:
    raw = bytearray((DATA / "apache-3.8.0-snapshot.f").read_bytes())
    raw[where] ^= 0x40
    with pytest.raises(snapshot.SnapshotCorrupt):
        snapshot.decode_snapshot(bytes(raw))


@pytest.mark.parametrize("keep", [0, 10, 16, 300, 1000])
def test_truncated_snapshot_is_refused(keep: int) -> None:
    raw = (DATA / "apache-3.8.0-snapshot.f").read_bytes()
    with pytest.raises(snapshot.SnapshotCorrupt):
        snapshot.decode_snapshot(raw[:keep])


def test_apache_log_file_scans_cleanly() -> None:
    raw = (DATA / "apache-3.8.0-log.18").read_bytes()
    scan = txnlog.scan_log(raw)
    assert len(scan.entries) == 10 and scan.tail == "eof"
    assert all(zlib.adler32(t) for _, t in scan.entries)
