"""Storage for ZAB sync: the SNAP stream as a tree, TRUNC over the log files
(``FileTxnSnapLog.truncateLog``), the logged txns behind a leader's DIFF
(``ZKDatabase.getProposalsFromTxnLog``), recovery's committed tail
(``ZKDatabase.loadDataBase``), and the disk log's jumps and truncation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from zkfast.core.datatree import DataTree
from zkfast.runtime.disk_log import DiskTxnLog, LogSettings
from zkfast.storage import tree_io
from zkfast.storage.recovery import (
    SET_ASIDE_PREFIX,
    LogHistory,
    MemoryFiles,
    RecoveryError,
    recover,
    truncate_log,
)
from zkfast.storage.snapshot import (
    SYNC_SIGNATURE,
    SnapshotCorrupt,
    decode_snapshot,
    decode_sync_body,
    decode_sync_snapshot,
    encode_sync_snapshot,
)
from zkfast.storage.txnlog import encode_entry, encode_file_header
from zkfast.wire.txn_codec import decode_txn, encode_txn

D = "/d/version-2"
SID = 0x0100000000000001
OPEN = [(31, ("world", "anyone"))]
DIGEST_ACL = [(31, ("digest", "u:abc=")), (1, ("world", "anyone"))]
E1 = 1 << 32


def create(zxid: int, path: str, *, owner: int = 0, acl: Any = None) -> bytes:
    return encode_txn((SID, zxid & 0xFFFF, zxid, 1000 + (zxid & 0xFFFF), 1),
                      (path, path.encode(), acl or OPEN, owner != 0, 1), None)


def apply_all(tree: DataTree, txns: list[tuple[int, bytes]]) -> None:
    for _z, t in txns:
        header, record, _ = decode_txn(t)
        tree.apply_txn(header, record)


def txns(first: int, last: int) -> list[tuple[int, bytes]]:
    return [(z, create(z, f"/n{z:x}")) for z in range(first, last + 1)]


def log_file(entries: list[tuple[int, bytes]], prealloc: int = 64) -> bytes:
    return encode_file_header() + b"".join(encode_entry(t) for _, t in entries) + bytes(prealloc)


def put_snapshot(fs: MemoryFiles, entries: list[tuple[int, bytes]], zxid: int) -> DataTree:
    tree = DataTree()
    apply_all(tree, [e for e in entries if e[0] <= zxid])
    tree.last_processed_zxid = zxid
    fs.put(D, tree_io.snapshot_file_name(zxid), tree_io.encode_tree(tree, [(SID, 6000)]))
    return tree


def sample_tree() -> DataTree:
    tree = DataTree()
    apply_all(tree, [(E1 | 1, create(E1 | 1, "/a")), (E1 | 2, create(E1 | 2, "/a/b", acl=DIGEST_ACL)),
                     (E1 | 3, create(E1 | 3, "/e", owner=SID)),
                     (E1 | 4, create(E1 | 4, "/a/c", acl=DIGEST_ACL))])
    return tree


# ----------------------------------------------------------------------------- SNAP stream


def test_sync_snapshot_round_trip_keeps_nodes_sessions_acls_and_digest() -> None:
    tree = sample_tree()
    blob = encode_sync_snapshot(tree, [(SID, 6000), (SID + 1, 4000)])
    assert blob.endswith(b"\x00\x00\x00\x0a" + SYNC_SIGNATURE.encode())
    back, sessions = decode_sync_snapshot(blob, zxid=E1 | 4)
    assert sessions == [(SID, 6000), (SID + 1, 4000)]
    assert back.last_processed_zxid == E1 | 4
    assert sorted(back.nodes) == sorted(tree.nodes)
    for path, node in tree.nodes.items():
        assert back.nodes[path].stat_persisted() == node.stat_persisted()
        assert back.nodes[path].data == node.data
        assert back.nodes[path].acl == node.acl
    assert back.digest() == tree.digest() == back.recompute_digest()
    assert back.ephemerals == {SID: {"/e"}}
    assert encode_sync_snapshot(back, sessions) == blob


def test_sync_snapshot_is_the_file_snapshot_body() -> None:
    """The stream is a snapshot file's bytes between the FileHeader and seal #1."""
    tree = sample_tree()
    sessions = [(SID, 6000)]
    body = encode_sync_snapshot(tree, sessions)
    snap_file = tree_io.encode_tree(tree, sessions)
    end = len(body) - 14  # without the "BenWasHere" ustring
    assert snap_file[16:16 + end] == body[:end]
    assert decode_sync_body(body).nodes == decode_snapshot(snap_file).nodes


@pytest.mark.parametrize("damage,message", [
    (lambda b: b[:-10] + b"BenWasHerf", "signature"),
    (lambda b: b[:-14], "signature"),
    (lambda b: b + b"\0", "after the SNAP stream"),
    (lambda b: b[:30], "impossible|truncated"),
    (lambda b: b[:200], "truncated|node"),
])
def test_sync_snapshot_damage_is_a_clear_error(damage: Any, message: str) -> None:
    blob = encode_sync_snapshot(sample_tree(), [(SID, 6000)])
    with pytest.raises(SnapshotCorrupt, match=message):
        decode_sync_snapshot(damage(blob))


# ----------------------------------------------------------------------------- recovery tail


def test_recovery_returns_the_last_replayed_txns() -> None:
    fs = MemoryFiles()
    entries = txns(E1 | 1, E1 | 30)
    put_snapshot(fs, entries, E1 | 10)
    fs.put(D, "log.100000001", log_file(entries))
    rec = recover(fs, D, D, commit_log_count=5)
    assert rec.committed == entries[-5:]
    rec = recover(fs, D, D)
    assert rec.committed == entries[10:]  # only what was replayed after the snapshot
    assert recover(MemoryFiles(), D, D).committed == []


# ----------------------------------------------------------------------------- truncate


def two_logs(fs: MemoryFiles) -> list[tuple[int, bytes]]:
    entries = txns(E1 | 1, E1 | 40)
    put_snapshot(fs, entries, 0)
    fs.put(D, "log.100000001", log_file(entries[:20]))
    fs.put(D, "log.100000015", log_file(entries[20:]))
    return entries


def test_truncate_cuts_within_the_file_and_deletes_later_files() -> None:
    fs = MemoryFiles()
    entries = two_logs(fs)
    assert truncate_log(fs, D, E1 | 12) == E1 | 12
    assert "log.100000015" not in fs.list(D)
    rec = recover(fs, D, D)
    assert rec.last_zxid == E1 | 12
    expect = DataTree()
    apply_all(expect, entries[:12])
    assert rec.tree.digest() == expect.digest()
    assert sorted(rec.tree.nodes) == sorted(expect.nodes)


def test_truncate_at_a_file_end_and_at_the_last_txn() -> None:
    fs = MemoryFiles()
    two_logs(fs)
    assert truncate_log(fs, D, E1 | 20) == E1 | 20
    assert recover(fs, D, D).last_zxid == E1 | 20
    assert truncate_log(fs, D, E1 | 20) == E1 | 20  # idempotent
    assert recover(fs, D, D).last_zxid == E1 | 20


def test_truncate_sets_aside_newer_snapshots() -> None:
    fs = MemoryFiles()
    entries = two_logs(fs)
    put_snapshot(fs, entries, E1 | 5)
    put_snapshot(fs, entries, E1 | 30)
    truncate_log(fs, D, E1 | 25)
    names = fs.list(D)
    assert "snapshot.10000001e" not in names
    assert SET_ASIDE_PREFIX + "snapshot.10000001e" in names
    assert "snapshot.100000005" in names
    rec = recover(fs, D, D)
    assert (rec.snapshot_zxid, rec.last_zxid) == (E1 | 5, E1 | 25)


def test_truncate_refuses_when_every_snapshot_is_newer_and_changes_nothing() -> None:
    fs = MemoryFiles()
    entries = txns(E1 | 1, E1 | 10)
    fs.put(D, "log.100000001", log_file(entries))
    put_snapshot(fs, entries, E1 | 8)
    before = {n: fs.get(D, n) for n in fs.list(D)}
    with pytest.raises(RecoveryError, match="every snapshot"):
        truncate_log(fs, D, E1 | 4)
    assert {n: fs.get(D, n) for n in fs.list(D)} == before


def test_truncate_to_a_zxid_the_log_lacks_keeps_what_precedes_it() -> None:
    fs = MemoryFiles()
    entries = txns(E1 | 1, E1 | 10)
    put_snapshot(fs, entries, 0)
    fs.put(D, "log.100000001", log_file(entries))
    assert truncate_log(fs, D, E1 - 1 + (1 << 32)) == E1 | 10  # a later epoch: nothing cut
    assert truncate_log(fs, D, 0) == -1
    assert recover(fs, D, D).last_zxid == 0


class OrderFiles(MemoryFiles):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[str, str]] = []

    def before(self, op: str, name: str) -> None:
        self.ops.append((op, name))


def test_truncate_order_leaves_a_prefix_at_every_step() -> None:
    """Snapshots aside first, then later logs newest first, then the cut: a crash between any
    two steps recovers to a prefix of the old history, never to a hole."""
    fs = OrderFiles()
    entries = txns(E1 | 1, E1 | 30)
    put_snapshot(fs, entries, 0)
    put_snapshot(fs, entries, E1 | 25)
    fs.put(D, "log.100000001", log_file(entries[:10]))
    fs.put(D, "log.10000000b", log_file(entries[10:20]))
    fs.put(D, "log.100000015", log_file(entries[20:]))
    truncate_log(fs, D, E1 | 5)
    steps = [op for op in fs.ops if op[0] in ("rename", "remove", "truncate")]
    assert steps == [("rename", "snapshot.100000019"), ("remove", "log.100000015"),
                     ("remove", "log.10000000b"), ("truncate", "log.100000001")]


# ----------------------------------------------------------------------------- history


def test_history_reads_after_a_logged_zxid_across_files() -> None:
    fs = MemoryFiles()
    entries = two_logs(fs)
    h = LogHistory(fs, D)
    assert h.txns_after(E1 | 15, 1 << 30) == entries[15:]
    assert h.txns_after(E1 | 40, 1 << 30) == []
    assert h.txns_after(E1 | 1, 1 << 30) == entries[1:]


def test_history_is_none_when_the_log_does_not_hold_the_zxid_or_is_too_big() -> None:
    fs = MemoryFiles()
    entries = two_logs(fs)
    h = LogHistory(fs, D)
    assert h.txns_after(0, 1 << 30) is None  # zxid 0 is not a logged txn
    assert h.txns_after(E1 | 41, 1 << 30) is None
    size = sum(len(t) for _, t in entries[30:])
    assert h.txns_after(E1 | 30, size) == entries[30:]
    assert h.txns_after(E1 | 30, size - 1) is None
    assert LogHistory(MemoryFiles(), D).txns_after(E1, 100) is None


def test_history_stops_at_a_jump() -> None:
    fs = MemoryFiles()
    entries = txns(E1 | 1, E1 | 10)
    later = txns(E1 | 0x51, E1 | 0x55)
    fs.put(D, "log.100000001", log_file(entries))
    fs.put(D, "log.100000051", log_file(later))
    h = LogHistory(fs, D)
    assert h.txns_after(E1 | 5, 1 << 30) is None
    assert h.txns_after(E1 | 0x52, 1 << 30) == later[2:]


def test_history_is_none_across_a_snap_sync_snapshot() -> None:
    """Sim seed 270: a learner SNAP-synced to 0x400000006 over a log ending in txns of epoch 3
    that never committed (why it got a SNAP); later, as leader, it sent a DIFF read from that
    log: the uncommitted txns, and not the epoch-4 txns only the snapshot held."""
    fs = MemoryFiles()
    e3, e4, e7 = 3 << 32, 4 << 32, 7 << 32
    old = txns(e3 | 1, e3 | 0x1B)  # 0x14.. never committed
    later = txns(e7 | 1, e7 | 5)
    fs.put(D, "log.300000001", log_file(old))
    fs.put(D, "snapshot.400000006", b"snap")
    fs.put(D, "log.700000001", log_file(later))
    h = LogHistory(fs, D)
    assert h.txns_after(e3 | 0x10, 1 << 30) is None
    assert h.txns_after(e3 | 0x1B, 1 << 30) is None
    assert h.txns_after(e7 | 2, 1 << 30) == later[2:]
    # Nothing logged after the snapshot yet: still not history.
    fs.remove(D, "log.700000001")
    assert h.txns_after(e3 | 0x10, 1 << 30) is None
    # A snapshot of our own tree is at a txn the log holds: the log reads through it.
    fs.put(D, "log.400000001", log_file(txns(e4 | 1, e4 | 9)))
    fs.remove(D, "log.300000001")
    assert h.txns_after(e4 | 2, 1 << 30) == txns(e4 | 3, e4 | 9)
    # Snapshots live in dataDir, which may differ from dataLogDir.
    fs.put("/s/version-2", "snapshot.400000006", b"snap")
    fs.remove(D, "snapshot.400000006")
    fs.put(D, "log.300000001", log_file(old))
    fs.remove(D, "log.400000001")
    assert LogHistory(fs, D).txns_after(e3 | 5, 1 << 30) == old[5:]
    assert LogHistory(fs, D, snap_dir="/s/version-2").txns_after(e3 | 5, 1 << 30) is None


# ----------------------------------------------------------------------------- disk log


class Harness:
    def __init__(self, fs: MemoryFiles) -> None:
        self.fs = fs
        self.durable: list[int] = []
        self.failed: list[str] = []

    def start(self) -> DiskTxnLog:
        lg = DiskTxnLog(asyncio.get_running_loop(), D, LogSettings(pre_alloc_size_kb=4),
                        files=self.fs)
        lg.on_durable = self.durable.append
        lg.on_failed = self.failed.append
        return lg

    async def until(self, zxid: int) -> None:
        for _ in range(10000):
            if zxid in self.durable:
                return
            await asyncio.sleep(0.001)
        raise AssertionError(f"0x{zxid:x} never durable")


def test_disk_log_starts_a_new_file_at_a_jump_and_recovery_reads_on() -> None:
    fs = MemoryFiles()
    entries = txns(E1 | 1, E1 | 10)
    later = txns(E1 | 0x51, E1 | 0x55)
    h = Harness(fs)

    async def go() -> None:
        lg = h.start()
        lg.append(entries)
        await h.until(E1 | 10)
        # A SNAP at 0x50 replaced the database: the snapshot is written, then the log jumps.
        tree = DataTree()
        apply_all(tree, entries)
        apply_all(tree, txns(E1 | 11, E1 | 0x50))
        tree.last_processed_zxid = E1 | 0x50
        fs.put(D, tree_io.snapshot_file_name(E1 | 0x50), tree_io.encode_tree(tree, []))
        lg.append(later[:2])
        lg.append(later[2:])
        await h.until(E1 | 0x55)
        lg.close()

    asyncio.run(go())
    assert [n for n in fs.list(D) if n.startswith("log.")] == ["log.100000001", "log.100000051"]
    rec = recover(fs, D, D)
    assert rec.last_zxid == E1 | 0x55 and rec.snapshot_zxid == E1 | 0x50


def test_disk_log_truncate_waits_for_writes_then_takes_appends_after_the_cut() -> None:
    fs = MemoryFiles()
    fs.put(D, "snapshot.0", tree_io.encode_tree(DataTree(), []))
    entries = txns(E1 | 1, E1 | 30)
    h = Harness(fs)

    async def go() -> int:
        lg = h.start()
        lg.append(entries[:20])
        lg.append(entries[20:])  # still queued when truncate is called
        kept = await lg.truncate(E1 | 12)
        assert h.durable[-1] == E1 | 30  # everything appended before was reported first
        assert lg.last_zxid == E1 | 12
        new = [(E1 | 13, create(E1 | 13, "/other"))]
        lg.append(new)
        await h.until(E1 | 13)
        lg.close()
        return kept

    assert asyncio.run(go()) == E1 | 12
    assert not h.failed
    rec = recover(fs, D, D)
    assert rec.last_zxid == E1 | 13
    assert "/other" in rec.tree.nodes and "/n10000000d" not in rec.tree.nodes
    assert "/n10000000c" in rec.tree.nodes


def test_disk_log_truncate_refusal_keeps_the_log_usable() -> None:
    fs = MemoryFiles()
    entries = txns(E1 | 1, E1 | 10)
    h = Harness(fs)
    fs.put(D, "snapshot.100000008", b"placeholder")

    async def go() -> None:
        lg = h.start()
        lg.append(entries)
        with pytest.raises(RecoveryError):
            await lg.truncate(E1 | 4)
        assert lg.failed is None
        lg.close()

    asyncio.run(go())
