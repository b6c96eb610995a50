"""Restore logic over an in-memory file system: snapshot choice, replay, torn tails, refusals,
dead sessions, and autopurge's plan (FileTxnSnapLog.restore, FileSnap, PurgeTxnLog)."""

from __future__ import annotations

from pathlib import Path

import pytest

from zkfast.core.datatree import DataTree
from zkfast.storage import tree_io
from zkfast.storage.recovery import MemoryFiles, RecoveryError, purge_plan, recover
from zkfast.storage.txnlog import encode_entry, encode_file_header
from zkfast.wire.txn_codec import encode_txn

SNAP = "/d/version-2"
LOGS = "/l/version-2"
DATA = Path(__file__).resolve().parent.parent / "testdata"
SID = 0x0100000000000001
OPEN = [(31, ("world", "anyone"))]


def create(zxid: int, path: str, *, owner: int = 0, ephemeral: bool = False) -> bytes:
    return encode_txn((owner or SID, zxid, zxid, 1000 + zxid, 1),
                      (path, path.encode(), OPEN, ephemeral, 1), None)


def session(zxid: int, sid: int, timeout: int = 6000) -> bytes:
    return encode_txn((sid, 0, zxid, 1000, -10), (timeout,), None)


def close(zxid: int, sid: int) -> bytes:
    return encode_txn((sid, 0, zxid, 1000, -11), ([],), None)


def log_bytes(txns: list[bytes], *, prealloc: int = 0) -> bytes:
    out = encode_file_header() + b"".join(encode_entry(t) for t in txns)
    return out + bytes(prealloc)


def snapshot_of(txns: list[bytes], sessions: list[tuple[int, int]] | None = None
                ) -> tuple[str, bytes]:
    """A snapshot of the tree after ``txns`` (zxids 1..n)."""
    from zkfast.wire.txn_codec import decode_txn

    tree = DataTree()
    for t in txns:
        header, record, _ = decode_txn(t)
        tree.apply_txn(header, record)
    name = tree_io.snapshot_file_name(tree.last_processed_zxid)
    return name, tree_io.encode_tree(tree, sessions or [])


def creates(first: int, last: int) -> list[bytes]:
    return [create(z, f"/n{z}") for z in range(first, last + 1)]


@pytest.fixture
def fs() -> MemoryFiles:
    return MemoryFiles()


def run(fs: MemoryFiles, **kw: object) -> tuple[object, list[str]]:
    lines: list[str] = []
    rec = recover(fs, SNAP, LOGS, log=lines.append, **kw)  # type: ignore[arg-type]
    return rec, lines


def test_nothing_at_all_is_an_empty_database_and_writes_snapshot_0(fs: MemoryFiles) -> None:
    rec, _ = run(fs)
    assert rec.last_zxid == 0 and rec.created and rec.sessions == []
    assert fs.list(SNAP) == ["snapshot.0"]
    assert fs.get(SNAP, "snapshot.0") == (DATA / "apache-3.8.0-snapshot.0").read_bytes()
    again, _ = run(fs)
    assert again.snapshot_name == "snapshot.0" and not again.created


def test_replays_from_the_log_holding_the_snapshot_zxid_onward(fs: MemoryFiles) -> None:
    txns = [session(1, SID)] + creates(2, 12)
    name, snap = snapshot_of(txns[:6], [(SID, 6000)])  # snapshot.6
    fs.put(SNAP, name, snap)
    fs.put(LOGS, "log.1", log_bytes(txns[:4]))            # 1..4: before the snapshot
    fs.put(LOGS, "log.5", log_bytes(txns[4:9], prealloc=4096))  # 5..9 holds zxid 6
    fs.put(LOGS, "log.a", log_bytes(txns[9:], prealloc=100))    # 10..12
    rec, _ = run(fs)
    assert rec.snapshot_name == "snapshot.6"
    assert rec.logs_read == ["log.5", "log.a"]
    assert rec.txns_replayed == 6 and rec.last_zxid == 12
    assert rec.sessions == [(SID, 6000)]
    assert {f"/n{z}" for z in range(2, 13)} <= set(rec.tree.nodes)


def test_sessions_come_from_the_snapshot_and_the_session_txns(fs: MemoryFiles) -> None:
    other = SID + 1
    txns = [session(1, SID), session(2, other, 9000), create(3, "/e", owner=other,
                                                             ephemeral=True)]
    name, snap = snapshot_of(txns[:1], [(SID, 6000)])
    fs.put(SNAP, name, snap)
    fs.put(LOGS, "log.1", log_bytes(txns + [close(4, SID)]))
    rec, _ = run(fs)
    assert rec.sessions == [(other, 9000)]
    assert rec.tree.ephemerals == {other: {"/e"}}


def test_a_bad_newest_snapshot_falls_back_to_an_older_one(fs: MemoryFiles) -> None:
    txns = creates(1, 8)
    n1, s1 = snapshot_of(txns[:3])
    n2, s2 = snapshot_of(txns[:6])
    fs.put(SNAP, n1, s1)
    fs.put(SNAP, n2, s2[:40] + b"\xff" * 10 + s2[50:])  # complete-looking, seal fails
    fs.put(SNAP, "snapshot.7", s2[:30])                   # torn: fails the quick check
    fs.put(LOGS, "log.1", log_bytes(txns))
    rec, lines = run(fs)
    assert rec.snapshot_name == "snapshot.3" and rec.last_zxid == 8
    assert any("snapshot.6" in line for line in lines)


def test_gz_and_snappy_snapshots_are_read(fs: MemoryFiles) -> None:
    pytest.importorskip("cramjam")
    txns = creates(1, 4)
    name, snap = snapshot_of(txns[:2])
    fs.put(SNAP, name + ".gz", tree_io.compress_snapshot(snap, "gz"))
    name3, snap3 = snapshot_of(txns[:3])
    fs.put(SNAP, name3 + ".snappy", tree_io.compress_snapshot(snap3, "snappy"))
    fs.put(LOGS, "log.1", log_bytes(txns))
    rec, _ = run(fs)
    assert rec.snapshot_name == "snapshot.3.snappy" and rec.last_zxid == 4


def test_a_torn_tail_of_the_last_log_is_cut_off_and_truncated(fs: MemoryFiles) -> None:
    txns = creates(1, 5)
    fs.put(SNAP, *snapshot_of([]))
    good = log_bytes(txns[:4])
    torn = encode_entry(txns[4])[:-7]  # the 5th entry lost its last bytes
    fs.put(LOGS, "log.1", good + torn + bytes(50))
    rec, lines = run(fs)
    assert rec.last_zxid == 4 and "/n5" not in rec.tree.nodes
    assert rec.truncated == [f"log.1@{len(good)}"]
    assert fs.get(LOGS, "log.1") == good
    assert any("torn" in line for line in lines)


def test_a_missing_end_marker_is_a_torn_tail(fs: MemoryFiles) -> None:
    txns = creates(1, 3)
    fs.put(SNAP, *snapshot_of([]))
    entry = bytearray(encode_entry(txns[2]))
    entry[-1] = 0
    fs.put(LOGS, "log.1", log_bytes(txns[:2]) + bytes(entry))
    rec, _ = run(fs)
    assert rec.last_zxid == 2


def test_preallocated_zeros_end_a_log_quietly(fs: MemoryFiles) -> None:
    fs.put(SNAP, *snapshot_of([]))
    fs.put(LOGS, "log.1", log_bytes(creates(1, 3), prealloc=70000))
    rec, lines = run(fs)
    assert rec.last_zxid == 3 and rec.truncated == [] and lines == []


def test_bytes_after_a_hole_in_the_last_log_are_cut_off(fs: MemoryFiles) -> None:
    txns = creates(1, 6)
    fs.put(SNAP, *snapshot_of([]))
    good = log_bytes(txns[:3])
    hole = bytes(len(encode_entry(txns[3])))  # the page of zxid 4 never reached the disk
    fs.put(LOGS, "log.1", good + hole + encode_entry(txns[4]) + bytes(100))
    rec, lines = run(fs)
    assert rec.last_zxid == 3 and rec.truncated == [f"log.1@{len(good)}"]
    assert fs.get(LOGS, "log.1") == good


def test_an_empty_last_log_from_a_crash_at_creation_is_harmless(fs: MemoryFiles) -> None:
    fs.put(SNAP, *snapshot_of([]))
    fs.put(LOGS, "log.1", log_bytes(creates(1, 3)))
    fs.put(LOGS, "log.4", b"\0" * 7)
    rec, _ = run(fs)
    assert rec.last_zxid == 3


def test_a_checksum_failure_inside_a_log_is_refused(fs: MemoryFiles) -> None:
    fs.put(SNAP, *snapshot_of([]))
    data = bytearray(log_bytes(creates(1, 5)))
    data[16 + 8 + 4 + 40] ^= 0x01  # inside the first entry's txn bytes
    fs.put(LOGS, "log.1", bytes(data))
    with pytest.raises(RecoveryError, match="corrupt at offset 16"):
        run(fs)


def test_a_checksum_failure_on_the_very_last_entry_is_a_torn_write(fs: MemoryFiles) -> None:
    fs.put(SNAP, *snapshot_of([]))
    good = log_bytes(creates(1, 4))
    last = bytearray(encode_entry(create(5, "/n5")))
    last[12 + 10] ^= 0x01  # its first page never made it; the end marker did
    fs.put(LOGS, "log.1", good + bytes(last) + bytes(300))
    rec, lines = run(fs)
    assert rec.last_zxid == 4 and rec.truncated == [f"log.1@{len(good)}"]
    assert any("fails its checksum" in line for line in lines)
    # ... but not when a complete entry follows it, nor in an earlier log.
    fs.put(LOGS, "log.1", good + bytes(last) + encode_entry(create(6, "/n6")))
    with pytest.raises(RecoveryError, match="corrupt"):
        run(fs)
    fs.put(LOGS, "log.1", good + bytes(last))
    fs.put(LOGS, "log.6", log_bytes([create(6, "/n6")]))
    with pytest.raises(RecoveryError, match="corrupt"):
        run(fs)


def test_a_missing_log_between_snapshot_and_tail_is_refused(fs: MemoryFiles) -> None:
    txns = creates(1, 9)
    fs.put(SNAP, *snapshot_of(txns[:2]))
    fs.put(LOGS, "log.1", log_bytes(txns[:4]))
    fs.put(LOGS, "log.7", log_bytes(txns[6:]))  # log.5 (5..6) is gone
    with pytest.raises(RecoveryError, match="0x4 the next txn found is 0x7"):
        run(fs)


def test_apache_log_without_its_predecessor_is_refused(fs: MemoryFiles) -> None:
    """Apache's snapshot.f with its log.18 alone: txns 0x10..0x17 are missing."""
    fs.put(SNAP, "snapshot.f", (DATA / "apache-3.8.0-snapshot.f").read_bytes())
    fs.put(LOGS, "log.18", (DATA / "apache-3.8.0-log.18").read_bytes())
    with pytest.raises(RecoveryError, match="missing"):
        run(fs)


def test_logs_without_a_snapshot_are_refused_unless_trusted(fs: MemoryFiles) -> None:
    fs.put(LOGS, "log.1", log_bytes(creates(1, 3)))
    with pytest.raises(RecoveryError, match="snapshot.trust.empty"):
        run(fs)
    rec, _ = run(fs, trust_empty_snapshot=True)
    assert rec.last_zxid == 3 and rec.snapshot_name is None


def test_snapshots_that_are_all_invalid_are_refused(fs: MemoryFiles) -> None:
    name, snap = snapshot_of(creates(1, 2))
    fs.put(SNAP, name, snap[:-20] + b"\x00\x00\x00\x01/")
    with pytest.raises(RecoveryError, match="no valid snapshot"):
        run(fs)


def test_ephemerals_of_sessions_missing_from_the_table_are_removed(fs: MemoryFiles) -> None:
    ghost = SID + 7
    txns = [session(1, SID), create(2, "/e1", owner=SID, ephemeral=True),
            create(3, "/e2", owner=ghost, ephemeral=True)]
    fs.put(SNAP, *snapshot_of(txns, [(SID, 6000)]))  # ghost's session is not in the table
    rec, _ = run(fs)
    assert rec.killed_sessions == [ghost]
    assert "/e2" not in rec.tree.nodes and "/e1" in rec.tree.nodes
    assert rec.last_zxid == 3


def test_replay_digest_is_checked_against_the_logged_digest(fs: MemoryFiles) -> None:
    tree = DataTree()
    fs.put(SNAP, *snapshot_of([]))
    header = (SID, 1, 1, 1001, 1)
    record = ("/x", b"x", OPEN, False, 1)
    tree.apply_txn(header, record)
    good = encode_txn(header, record, tree.digest())
    bad = encode_txn((SID, 2, 2, 1002, 1), ("/y", b"y", OPEN, False, 2), 12345)
    fs.put(LOGS, "log.1", log_bytes([good, bad]))
    rec, lines = run(fs)
    assert rec.digest_mismatch_zxid == 2
    assert any("digest mismatch at zxid 0x2" in line for line in lines)


def test_purge_keeps_n_snapshots_and_the_logs_they_need(fs: MemoryFiles) -> None:
    txns = creates(1, 40)
    for z in (5, 10, 20, 30):
        fs.put(SNAP, *snapshot_of(txns[:z]))
    fs.put(SNAP, "snapshot.28", b"torn")  # invalid: not counted among the kept ones
    for start, end in ((1, 8), (9, 15), (16, 25), (26, 40)):
        fs.put(LOGS, f"log.{start:x}", log_bytes(txns[start - 1:end]))
    plan = purge_plan(fs, SNAP, LOGS, 3)
    # keep snapshot.1e, .14, .a; log.9 holds zxid 10 onward and is kept.
    assert sorted(plan) == sorted([(LOGS, "log.1"), (SNAP, "snapshot.5")])
    for d, n in plan:
        fs.remove(d, n)
    rec, _ = run(fs)
    assert rec.last_zxid == 40
