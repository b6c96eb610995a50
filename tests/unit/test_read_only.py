"""ServerCore's read-only mode (core/read_only.py) driven with real encoded frames.

The expectations are Apache ZooKeeper 3.8's ReadOnlyZooKeeperServer: read-only clients only,
reads from the tree, NOTREADONLY for ReadOnlyRequestProcessor's list, no txn ever.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from zkfast.config import ServerConfig
from zkfast.core.actions import AppendTxns, CloseClient, SendToClient
from zkfast.core.events import (
    ClientConnected,
    ClientDisconnected,
    ClientFramesReceived,
    ReadOnlyModeChanged,
    Ticked,
    TxnsDurable,
)
from zkfast.core.read_only import NOT_READ_ONLY_OPS
from zkfast.core.server import ServerCore
from zkfast.core.sessions import generate_passwd
from zkfast.wire import client_codec as cc

OPEN = [(31, ("world", "anyone"))]
T0 = 1_700_000_000_000
NOTREADONLY, NONODE, UNIMPL = -119, -101, -6
MYID = 3


class Harness:
    """A ServerCore fed events; replies decoded per connection, closes and txns recorded."""

    def __init__(self) -> None:
        self.now = T0
        self.core = ServerCore(ServerConfig(tick_ms=2000, server_id=MYID), now_ms=T0,
                               rng=random.Random(7))
        self.txns: list[tuple[int, bytes]] = []
        self.ops: dict[tuple[int, int], int] = {}
        self.inbox: dict[int, list[Any]] = {}
        self.closed: dict[int, str] = {}
        self.handshake: dict[int, bytes] = {}

    def step(self, ev: Any) -> list[Any]:
        actions = self.core.step(ev, self.now)
        durable = None
        for a in actions:
            if isinstance(a, AppendTxns):
                self.txns.extend(a.txns)
                durable = a.txns[-1][0]
            elif isinstance(a, SendToClient):
                assert a.conn_id not in self.closed, "sent after close"
                for frame in cc.split_reply_frames(a.data):
                    self._receive(a.conn_id, frame)
            elif isinstance(a, CloseClient):
                self.closed[a.conn_id] = a.reason
        if durable is not None:
            self.step(TxnsDurable(durable))
        return actions

    def _receive(self, conn_id: int, frame: bytes) -> None:
        if conn_id not in self.handshake:
            self.handshake[conn_id] = frame
            return
        xid = int.from_bytes(frame[:4], "big", signed=True)
        self.inbox.setdefault(conn_id, []).append(
            cc.decode_reply(frame, self.ops.get((conn_id, xid))))

    def connect(self, conn_id: int, timeout: int = 30000, session_id: int = 0,
                passwd: bytes = b"\0" * 16, read_only: bool | None = True,
                last_zxid: int = 0) -> tuple[int, int, int, bytes, bool | None] | None:
        self.step(ClientConnected(conn_id, f"10.0.0.{conn_id}", 40000 + conn_id))
        frame = cc.encode_connect_request(timeout, session_id, passwd, last_zxid, read_only)
        self.step(ClientFramesReceived(conn_id, [frame[4:]]))
        raw = self.handshake.get(conn_id)
        return None if raw is None else cc.decode_connect_response(raw)

    def send(self, conn_id: int, *reqs: tuple[int, int, Any]) -> list[Any]:
        frames = []
        for xid, op, rec in reqs:
            self.ops[(conn_id, xid)] = op
            frames.append(cc.encode_request(xid, op, rec)[4:])
        self.step(ClientFramesReceived(conn_id, frames))
        return self.inbox.pop(conn_id, [])

    def call(self, conn_id: int, xid: int, op: int, rec: Any = ()) -> tuple[int, int, int, Any]:
        replies = [r for r in self.send(conn_id, (xid, op, rec)) if r[0] != -1]
        assert len(replies) == 1, replies
        return replies[0]


@pytest.fixture
def zk() -> Harness:
    """A core whose tree holds /app (data b"v1") and /app/a, then read-only mode."""
    h = Harness()
    resp = h.connect(1, read_only=False)
    assert resp is not None
    assert h.call(1, 1, 1, ("/app", b"v1", OPEN, 0))[2] == 0
    assert h.call(1, 2, 1, ("/app/a", b"", OPEN, 0))[2] == 0
    h.rw_session = resp[2]  # type: ignore[attr-defined]
    h.txns.clear()
    h.step(ReadOnlyModeChanged(True))
    assert 1 in h.closed  # entering read-only mode closes every connection
    h.step(ClientDisconnected(1))
    return h


def test_read_only_client_gets_a_local_session_without_a_txn(zk: Harness) -> None:
    resp = zk.connect(2, timeout=10**6)
    assert resp is not None
    pv, timeout, sid, passwd, ro = resp
    assert (pv, timeout, ro) == (0, 40000, True)  # clamped to 20*tickTime, readOnly=true
    assert sid >> 56 == MYID  # initializeNextSessionId(myid)
    assert passwd == generate_passwd(sid)
    assert zk.txns == [] and 2 not in zk.closed
    assert zk.core.deadline_ms() is not None  # the local session's expiry


def test_clients_without_the_read_only_flag_are_closed_without_reply(zk: Harness) -> None:
    assert zk.connect(2, read_only=False) is None
    assert zk.connect(3, read_only=None) is None  # an old client: no readOnly byte at all
    assert 2 in zk.closed and 3 in zk.closed
    assert 2 not in zk.handshake and 3 not in zk.handshake
    assert "not-read-only" in zk.closed[2]


def test_client_ahead_of_the_tree_is_closed_without_reply(zk: Harness) -> None:
    assert zk.connect(2, last_zxid=zk.core.tree.last_processed_zxid + 1) is None
    assert 2 in zk.closed


def test_reads_are_served_from_the_recovered_tree(zk: Harness) -> None:
    zk.connect(2)
    zxid = zk.core.tree.last_processed_zxid
    x, z, err, body = zk.call(2, 1, 4, ("/app", False))
    assert (x, z, err, body[0]) == (1, zxid, 0, b"v1")
    assert zk.call(2, 2, 3, ("/app/a", False))[2] == 0
    assert zk.call(2, 3, 3, ("/nope", False))[2] == NONODE
    assert zk.call(2, 4, 8, ("/app", False))[3] == (["a"],)
    assert zk.call(2, 5, 12, ("/app", False))[3][0] == ["a"]
    assert zk.call(2, 6, 6, ("/app",))[2] == 0
    assert zk.call(2, 7, 104, ("/app",))[3] == (1,)
    assert zk.call(2, 8, 103, ("/",))[3] == ([],)
    assert zk.call(2, 9, 107, ())[2] == 0
    results = zk.call(2, 10, 22, [(4, ("/app", False)), (8, ("/nope", False))])[3]
    assert results[0][1] == 0 and results[1][1] == NONODE
    pings = zk.send(2, (-2, 11, ()))
    assert [(p[0], p[1], p[2]) for p in pings] == [(-2, zxid, 0)]
    assert zk.txns == [] and 2 not in zk.closed


def test_every_write_gets_notreadonly_and_the_connection_stays(zk: Harness) -> None:
    zk.connect(2)
    zxid = zk.core.tree.last_processed_zxid
    requests = [
        (1, ("/new", b"", OPEN, 0)), (15, ("/new", b"", OPEN, 0)),
        (19, ("/new", b"", OPEN, 4)), (21, ("/new", b"", OPEN, 5, 1000)),
        (2, ("/app/a", -1)), (5, ("/app", b"x", -1)), (7, ("/app", OPEN, -1)),
        (9, ("/app",)), (13, ("/app", -1)),
        (14, [(2, ("/app/a", -1))]), (16, ("", "", "", -1)),
    ]
    ops = {op for op, _ in requests} | {20}
    assert ops == NOT_READ_ONLY_OPS
    for xid, (op, rec) in enumerate(requests, 1):
        assert zk.call(2, xid, op, rec)[:3] == (xid, zxid, NOTREADONLY), op
    # deleteContainer from a client (its body is just a path).
    zk.ops[(2, 50)] = 20
    frame = cc.encode_request(50, 20, ())[4:] + b"\0\0\0\x04/app"
    zk.step(ClientFramesReceived(2, [frame]))
    assert [r[:3] for r in zk.inbox.pop(2)] == [(50, zxid, NOTREADONLY)]
    assert zk.txns == [] and 2 not in zk.closed
    assert zk.call(2, 60, 4, ("/app", False))[3][0] == b"v1"  # nothing changed
    assert zk.core.tree.last_processed_zxid == zxid


def test_unknown_opcodes_are_unimplemented_and_close(zk: Harness) -> None:
    zk.connect(2)
    assert zk.call(2, 1, 77, ())[2] == UNIMPL
    assert 2 in zk.closed


def test_watches_register_and_do_not_fire(zk: Harness) -> None:
    zk.connect(2)
    assert zk.call(2, 1, 4, ("/app", True))[2] == 0
    assert zk.call(2, 2, 8, ("/app", True))[2] == 0
    assert zk.call(2, 3, 3, ("/later", True))[2] == NONODE
    conn_id = zk.core.conns[2].conn_id
    assert zk.core.watches.contains_watcher("/app", conn_id, 2)  # data
    assert zk.core.watches.contains_watcher("/app", conn_id, 1)  # children
    for xid, (op, rec) in enumerate([(5, ("/app", b"x", -1)), (1, ("/later", b"", OPEN, 0))],
                                    10):
        replies = zk.send(2, (xid, op, rec))
        assert [r[2] for r in replies] == [NOTREADONLY]  # no notification (xid -1)


def test_local_sessions_expire_without_a_txn(zk: Harness) -> None:
    resp = zk.connect(2, timeout=4000)
    assert resp is not None
    sid = resp[2]
    deadline = zk.core.deadline_ms()
    assert deadline is not None
    zk.now = deadline
    zk.step(Ticked())
    assert zk.closed.get(2) == "session expired"
    assert zk.txns == []
    zk.step(ClientDisconnected(2))
    # Reconnecting the expired session: timeOut 0, sessionId 0, readOnly true, then closed.
    resp = zk.connect(3, session_id=sid, passwd=generate_passwd(sid))
    assert resp is not None and resp[1:3] == (0, 0) and resp[4] is True
    assert 3 in zk.closed


def test_a_live_local_session_reconnects(zk: Harness) -> None:
    resp = zk.connect(2, timeout=4000)
    assert resp is not None
    sid = resp[2]
    zk.now += 3000
    again = zk.connect(3, timeout=4000, session_id=sid, passwd=generate_passwd(sid))
    assert again is not None and again[1:3] == (4000, sid) and again[4] is True
    assert 2 in zk.closed  # the connection that held it
    assert zk.call(3, 1, 3, ("/app", False))[2] == 0
    bad = zk.connect(4, session_id=sid, passwd=b"\1" * 16)
    assert bad is not None and bad[2] == 0 and 4 in zk.closed


def test_a_global_session_is_not_renewed_in_read_only_mode(zk: Harness) -> None:
    sid = zk.rw_session  # type: ignore[attr-defined]
    assert zk.connect(2, session_id=sid, passwd=generate_passwd(sid)) is None
    assert zk.closed[2] == "Refusing global session reconnection in RO mode"


def test_close_session_is_local(zk: Harness) -> None:
    zk.connect(2)
    assert zk.call(2, 1, -11, ())[:3] == (1, zk.core.tree.last_processed_zxid, 0)
    assert 2 in zk.closed and zk.txns == []
    assert zk.core.read_only_service is not None
    assert zk.core.read_only_service.sessions.sessions == {}


def test_leaving_read_only_mode_closes_connections_and_serves_normally(zk: Harness) -> None:
    zk.connect(2)
    zk.step(ReadOnlyModeChanged(False))
    assert zk.closed[2] == "read-only service stopped"
    assert zk.core.read_only_service is None
    zk.step(ClientDisconnected(2))
    resp = zk.connect(3, read_only=True)  # the full service: a txn, readOnly=false
    assert resp is not None and resp[4] is False
    assert [z for z, _ in zk.txns] == [zk.core.tree.last_processed_zxid]
    assert zk.call(3, 1, 5, ("/app", b"v2", -1))[2] == 0


def test_mode_changes_are_idempotent(zk: Harness) -> None:
    zk.connect(2)
    assert zk.step(ReadOnlyModeChanged(True)) == []
    assert 2 not in zk.closed
    actions = zk.core.set_read_only(False, zk.now)
    assert [type(a) for a in actions] == [CloseClient]
    assert zk.core.set_read_only(False, zk.now) == []


def test_stats_restart_with_the_read_only_service(zk: Harness) -> None:
    """Apache's ReadOnlyZooKeeperServer is a server of its own: fresh ServerStats."""
    assert zk.core.stats.packets_received == 0 and zk.core.stats.packets_sent == 0
    zk.connect(2)
    zk.call(2, 1, 3, ("/app", False))
    assert (zk.core.stats.packets_received, zk.core.stats.packets_sent) == (2, 2)


def test_dump_lists_local_then_global_sessions(zk: Harness) -> None:
    """LearnerSessionTracker.dumpSessions: "Local Session Sets", then "Global Sessions(n)"."""
    from zkfast.runtime.admin import run_four_letter_word

    resp = zk.connect(2, timeout=4000)
    assert resp is not None
    config = replace(zk.core.config, four_letter_whitelist=frozenset({"dump"}))
    text = run_four_letter_word(b"dump", zk.core, config, zk.now).decode()
    lines = text.splitlines()
    assert lines[:2] == ["SessionTracker dump:", "Local Session Sets (1)/(1):"]
    assert lines[3] == f"\t0x{resp[2]:x}"
    rw = zk.rw_session  # type: ignore[attr-defined]
    assert lines[4:6] == ["Global Sessions(1):", f"0x{rw & (1 << 64) - 1:x}\t30000ms"]
    assert f"\tip: /10.0.0.2:40002 sessionId: 0x{resp[2]:x}" in text


def test_mntr_counts_local_and_global_sessions(zk: Harness) -> None:
    from zkfast.runtime.admin import run_four_letter_word

    zk.connect(2)
    zk.connect(3)
    config = replace(zk.core.config, four_letter_whitelist=frozenset({"mntr"}))
    text = run_four_letter_word(b"mntr", zk.core, config, zk.now).decode()
    assert "zk_local_sessions\t2\n" in text and "zk_global_sessions\t1\n" in text
    zk.step(ReadOnlyModeChanged(False))
    text = run_four_letter_word(b"mntr", zk.core, config, zk.now).decode()
    assert "zk_local_sessions\t0\n" in text
