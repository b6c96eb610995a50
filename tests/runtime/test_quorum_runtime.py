"""The plumbing of a replicating quorum peer's runtime, piece by piece, on loopback and a real
data directory (docs/zab.md §1-2):

- the learner's quorum reader hands the node whole packets and, after a SNAP, the raw snapshot
  stream as one item, however the bytes are cut (``peer_codec.QuorumStreamSplitter``);
- the leader's reader hands over packets; its writer takes one write far above the write
  bound (a SNAP stream) and drops a learner that stops reading;
- ``TakeSnapshot`` writes a durable snapshot of the tree as it is and reports
  ``SnapshotDurable``, also when a log-roll snapshot is still being written;
- ``TruncateLog`` cuts the real txn log, reloads the database up to the zxid and reports
  ``LogTruncated`` with the tree, the sessions and the committed tail; the next append follows.

Each test runs on asyncio and on uvloop and stops what it started by its own handle.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from zkfast.config import ServerConfig, config_from_properties
from zkfast.core.actions import (
    ConnectToLeader,
    RoleChanged,
    SendQuorumPacket,
    TakeSnapshot,
    TruncateLog,
)
from zkfast.core.datatree import DataTree
from zkfast.core.events import (
    LeaderConnected,
    LeaderDisconnected,
    LeaderPacketsReceived,
    LearnerConnected,
    LearnerDisconnected,
    LearnerPacketsReceived,
    LogTruncated,
    SnapshotDurable,
)
from zkfast.core.peer import LEARNER_CONN_ID_BASE
from zkfast.runtime import aio_peers
from zkfast.runtime.aio_peers import PeerRuntime
from zkfast.runtime.disk_log import DiskTxnLog, LogSettings, OsFiles
from zkfast.runtime.node_storage import NodeStorage
from zkfast.runtime.server import run_on_loop
from zkfast.runtime.snapshotter import Snapshotter
from zkfast.storage.recovery import list_snapshots, recover
from zkfast.storage.tree_io import encode_tree
from zkfast.testing.procs import LOOPBACK, free_port
from zkfast.wire.peer_codec import PacketType, QuorumPacket, encode_quorum_packet
from zkfast.wire.txn_codec import decode_txn, encode_txn

LOOPS = pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
TIMEOUT_S = 30.0
SID = 0x0100000000000001
OPEN = [(31, ("world", "anyone"))]


def _config(tmp_path: Path, myid: int = 1) -> ServerConfig:
    data = tmp_path / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "myid").write_text(str(myid))
    lines = {f"server.{sid}": f"{LOOPBACK}:{free_port()}:{free_port()}" for sid in (1, 2, 3)}
    return config_from_properties({"tickTime": "500", "initLimit": "10", "syncLimit": "5",
                                   "dataDir": str(data), "clientPort": str(free_port()),
                                   **lines}, {})


async def _poll(cond: Callable[[], object], what: str, timeout_s: float = TIMEOUT_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not cond():
        if loop.time() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout_s}s")
        await asyncio.sleep(0.01)


def _packet(t: int, zxid: int, data: bytes | None = None) -> bytes:
    return encode_quorum_packet(QuorumPacket(t, zxid, data))


def _ustring(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">i", len(b)) + b


def _snapshot_stream(nodes: int) -> bytes:
    """A SNAP stream as Apache's leader writes it: sessions, the ACL map, the nodes (root
    first, path "" ) up to the "/" end marker, then "BenWasHere"."""
    out = bytearray(struct.pack(">i", 1) + struct.pack(">qi", SID, 30000))
    out += struct.pack(">i", 1) + struct.pack(">qi", 1, 1) + struct.pack(">i", 31)
    out += _ustring("world") + _ustring("anyone")
    stat = struct.pack(">qqqqiiiqq", 1, 1, 0, 0, 0, 0, 0, 0, 1)
    assert len(stat) == 60
    for i in range(nodes):
        path = "" if i == 0 else f"/n{i}"
        data = b"x" * (i % 50)
        out += _ustring(path) + struct.pack(">i", len(data)) + data + struct.pack(">q", 1) + stat
    out += _ustring("/") + _ustring("BenWasHere")
    return bytes(out)


class _Events:
    """Collects what the runtime steps into the node."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def __call__(self, event: Any) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if type(e) is kind]

    def items(self, kind: type) -> list[bytes]:
        return [p for e in self.of(kind) for p in e.packets]


# ------------------------------------------------------------------------------- quorum reader


@LOOPS
def test_learner_reader_hands_over_packets_and_the_snapshot_stream(tmp_path, loop_kind):
    """Packets and a 2,000-node SNAP stream written in 7-byte pieces arrive whole, in order,
    the stream as the one item after the SNAP packet."""
    cfg = _config(tmp_path)
    stream = _snapshot_stream(2000)
    before = [_packet(PacketType.LEADERINFO, 1 << 32, struct.pack(">i", 0x10000)),
              _packet(PacketType.SNAP, 0x100000005)]
    after = [_packet(PacketType.PROPOSAL, 0x100000006, b"t" * 40),
             _packet(PacketType.NEWLEADER, 1 << 32, b"")]
    wire = b"".join(before) + stream + b"".join(after)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        got = _Events()
        rt = PeerRuntime(got, cfg, loop)

        async def leader(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            for i in range(0, len(wire), 7):
                writer.write(wire[i:i + 7])
                if i % 7000 == 0:
                    await writer.drain()
            await writer.drain()
            await reader.read()  # until the learner closes
            writer.close()

        srv = await asyncio.start_server(leader, LOOPBACK, 0)
        port = srv.sockets[0].getsockname()[1]
        conn_id = LEARNER_CONN_ID_BASE + 1
        try:
            rt.connect_to_leader(ConnectToLeader(conn_id, LOOPBACK, port))
            await _poll(lambda: len(got.items(LeaderPacketsReceived)) >= 5, "every item")
            assert got.of(LeaderConnected) == [LeaderConnected(conn_id)]
            assert got.items(LeaderPacketsReceived) == [*before, stream, *after]
            assert {e.conn_id for e in got.of(LeaderPacketsReceived)} == {conn_id}
        finally:
            rt.stop()
            srv.close()
            await srv.wait_closed()

    run_on_loop(main(), loop_kind)


@LOOPS
def test_learner_reader_closes_on_a_bad_snapshot_stream(tmp_path, loop_kind):
    """A node path longer than jute.maxbuffer inside the stream closes the connection and
    reports it."""
    cfg = _config(tmp_path)
    bad = struct.pack(">i", 0) + struct.pack(">i", 0) + struct.pack(">i", 1 << 30)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        got = _Events()
        rt = PeerRuntime(got, cfg, loop)

        async def leader(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(_packet(PacketType.SNAP, 5) + bad)
            await reader.read()
            writer.close()

        srv = await asyncio.start_server(leader, LOOPBACK, 0)
        port = srv.sockets[0].getsockname()[1]
        try:
            rt.connect_to_leader(ConnectToLeader(LEARNER_CONN_ID_BASE, LOOPBACK, port))
            await _poll(lambda: got.of(LeaderDisconnected), "the connection dropped")
            # The SNAP packet may or may not have gone out before the bad bytes were read;
            # nothing of the stream did.
            assert got.items(LeaderPacketsReceived) in ([], [_packet(PacketType.SNAP, 5)])
        finally:
            rt.stop()
            srv.close()
            await srv.wait_closed()

    run_on_loop(main(), loop_kind)


async def _learner_socket(rt: PeerRuntime, got: _Events) -> tuple[socket.socket, int]:
    """Make ``rt`` lead, connect a raw learner socket; return it and its conn_id."""
    rt.role_changed(RoleChanged("LEADING", "DISCOVERY", rt.my_sid))
    loop = asyncio.get_running_loop()
    s = socket.socket()
    s.setblocking(False)
    deadline = loop.time() + TIMEOUT_S
    while True:
        try:
            await loop.sock_connect(s, (LOOPBACK, rt.quorum_port))
            break
        except OSError:
            if loop.time() > deadline:
                raise
            s.close()
            s = socket.socket()
            s.setblocking(False)
            await asyncio.sleep(0.05)
    await _poll(lambda: got.of(LearnerConnected), "the learner connection")
    return s, got.of(LearnerConnected)[-1].conn_id


@LOOPS
def test_leader_reader_and_writer(tmp_path, loop_kind, monkeypatch):
    """At the leader: a learner's packets arrive whole (a SNAP-typed packet there is just a
    packet); one write far above the write bound (a SNAP stream) goes out whole to a reading
    learner; a learner that stops reading is dropped once the unsent bytes pass the bound, and
    reported as disconnected."""
    monkeypatch.setattr(aio_peers, "QUORUM_WRITE_BUFFER_MAX_BYTES", 1 << 20)
    cfg = _config(tmp_path)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        got = _Events()
        rt = PeerRuntime(got, cfg, loop)
        s: socket.socket | None = None
        try:
            s, conn_id = await _learner_socket(rt, got)
            sent = [_packet(PacketType.FOLLOWERINFO, 0, b"i" * 20), _packet(PacketType.SNAP, 3),
                    _packet(PacketType.ACK, 1 << 32)]
            await loop.sock_sendall(s, b"".join(sent))
            await _poll(lambda: len(got.items(LearnerPacketsReceived)) == 3, "3 packets")
            assert got.items(LearnerPacketsReceived) == sent
            # One 8 MiB write, 8 times the bound, read by the learner: not dropped.
            big = os.urandom(8 << 20)
            rt.send_quorum_packet(SendQuorumPacket(conn_id, big))
            received = bytearray()
            while len(received) < len(big):
                chunk = await loop.sock_recv(s, 1 << 20)
                assert chunk
                received += chunk
            assert received == big
            assert not got.of(LearnerDisconnected)
            # Now the learner reads nothing: proposals pile up until the bound drops it.
            for _ in range(4096):
                rt.send_quorum_packet(SendQuorumPacket(conn_id, b"p" * (64 << 10)))
                if got.of(LearnerDisconnected):
                    break
                await asyncio.sleep(0)
            await _poll(lambda: got.of(LearnerDisconnected), "the stalled learner dropped")
            assert got.of(LearnerDisconnected) == [LearnerDisconnected(conn_id)]
        finally:
            rt.stop()
            if s is not None:
                s.close()

    run_on_loop(main(), loop_kind)


# ------------------------------------------------------------------------------- TakeSnapshot


class _Service:
    """The part of a ServerCore that NodeStorage reads."""

    def __init__(self, tree: DataTree) -> None:
        self.tree = tree

    def applied_sessions(self) -> list[tuple[int, int]]:
        return [(SID, 30000)]


def _tree_at(zxid: int, nodes: int) -> DataTree:
    tree = DataTree()
    for i in range(1, nodes + 1):
        z = zxid - nodes + i
        tree.apply_txn((SID, i, z, 1000, 1), (f"/n{i}", b"v", OPEN, False, i))
    assert tree.last_processed_zxid == zxid
    return tree


def _storage(tmp_path: Path, loop: asyncio.AbstractEventLoop, service: Any, step: Any,
             failed: list[BaseException], txn_log: Any = None
             ) -> tuple[NodeStorage, Snapshotter]:
    cfg = _config(tmp_path)
    snap_dir = os.path.join(cfg.data_dir, "version-2")
    os.makedirs(snap_dir, exist_ok=True)
    files = OsFiles()
    snapshotter = Snapshotter(loop, snap_dir, snap_dir, files=files)
    storage = NodeStorage(loop, cfg, txn_log=txn_log, snapshotter=snapshotter, files=files,
                          service=lambda: service, step=step, on_failed=failed.append)
    return storage, snapshotter


@LOOPS
def test_take_snapshot_is_durable_then_reported(tmp_path, loop_kind):
    """TakeSnapshot(z) forks a snapshot of the tree as it is, then SnapshotDurable(z); asked
    while a log-roll snapshot is running, it waits for that one and still reports."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        got = _Events()
        failed: list[BaseException] = []
        service = _Service(_tree_at(0x100000040, 40))
        storage, snapshotter = _storage(tmp_path, loop, service, got, failed)
        snap_dir = storage.snap_dir
        try:
            storage.take_snapshot(TakeSnapshot(0x100000040))
            await _poll(lambda: got.of(SnapshotDurable), "SnapshotDurable")
            assert got.of(SnapshotDurable) == [SnapshotDurable(0x100000040)]
            assert [z for z, _ in list_snapshots(OsFiles(), snap_dir)] == [0x100000040]
            # A log-roll snapshot is being written when the next TakeSnapshot comes.
            assert snapshotter.start(_tree_at(0x100000050, 50), [])
            service.tree = _tree_at(0x100000060, 60)
            storage.take_snapshot(TakeSnapshot(0x100000060))
            await _poll(lambda: len(got.of(SnapshotDurable)) == 2, "the second one")
            assert got.of(SnapshotDurable)[1] == SnapshotDurable(0x100000060)
            assert {z for z, _ in list_snapshots(OsFiles(), snap_dir)} == {
                0x100000040, 0x100000050, 0x100000060}
            assert not [n for n in os.listdir(snap_dir) if n.startswith("tmp.")]
            assert not failed
        finally:
            storage.close()
            snapshotter.close()

    run_on_loop(main(), loop_kind)


# ------------------------------------------------------------------------------- TruncateLog


def _txn(zxid: int) -> tuple[int, bytes]:
    return zxid, encode_txn((SID, zxid & 0xFFFF, zxid, 1000 + zxid, 1),
                            (f"/t{zxid:x}", b"v" * 20, OPEN, False, zxid & 0xFFFF), None)


@LOOPS
def test_truncate_log_reloads_the_database_up_to_the_zxid(tmp_path, loop_kind):
    """Txns 1..12 of epoch 1 are durable (across two log files, a log-roll snapshot above the
    cut); TruncateLog(0x100000007) reloads a tree that ends at that zxid, with the committed
    tail, and the log then takes 0x200000001 and recovers to it."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        got = _Events()
        failed: list[BaseException] = []
        service = _Service(DataTree())
        cfg = _config(tmp_path)
        log_dir = os.path.join(cfg.log_dir, "version-2")
        os.makedirs(log_dir, exist_ok=True)
        durable: list[int] = []
        txn_log = DiskTxnLog(loop, log_dir, LogSettings(), files=OsFiles())
        txn_log.on_durable = durable.append
        txn_log.on_failed = lambda reason: failed.append(OSError(reason))
        storage, snapshotter = _storage(tmp_path, loop, service, got, failed, txn_log)
        try:
            # A snapshot.0 as a fresh start writes, then two log files.
            OsFiles().write_atomic(storage.snap_dir, "snapshot.0",
                                   encode_tree(DataTree(), [], digest_enabled=True))
            txn_log.append([_txn(0x100000000 + i) for i in range(1, 6)])
            await _poll(lambda: durable and durable[-1] == 0x100000005, "first batch")
            txn_log._roll_next = True  # the next txn starts log.100000006
            txn_log.append([_txn(0x100000000 + i) for i in range(6, 13)])
            await _poll(lambda: durable and durable[-1] == 0x10000000C, "second batch")
            # A snapshot above the cut, as a log roll would have taken.
            tree = DataTree()
            for _z, data in [_txn(0x100000000 + i) for i in range(1, 11)]:
                header, record, _ = decode_txn(data)
                tree.apply_txn(header, record)
            assert snapshotter.start(tree, [])
            storage.truncate_log(TruncateLog(0x100000007))
            await _poll(lambda: got.of(LogTruncated), "LogTruncated")
            ev = got.of(LogTruncated)[0]
            assert ev.zxid == 0x100000007
            assert ev.tree.last_processed_zxid == 0x100000007
            assert "/t100000007" in ev.tree.nodes and "/t100000008" not in ev.tree.nodes
            assert [z for z, _ in ev.committed] == [0x100000000 + i for i in range(1, 8)]
            assert not [z for z, _ in list_snapshots(OsFiles(), storage.snap_dir)
                        if z > 0x100000007]
            txn_log.append([_txn(0x200000001)])
            await _poll(lambda: durable[-1] == 0x200000001, "the append after the cut")
            assert not failed
        finally:
            storage.close()
            snapshotter.close()
            txn_log.close()
        rec = recover(OsFiles(), storage.snap_dir, log_dir)
        assert rec.last_zxid == 0x200000001
        assert "/t100000008" not in rec.tree.nodes and "/t200000001" in rec.tree.nodes

    run_on_loop(main(), loop_kind)
