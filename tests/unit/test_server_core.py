"""ServerCore driven with real encoded frames; replies decoded as a client would (no sockets).

The expectations are Apache ZooKeeper 3.8.0's standalone answers (zk-formats §1-§2; several were
checked against the Debian 3.8.0 server: marshalling errors, lone check, deleteContainer from a
client, whoAmI order, SASL without a configured server).
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from zkfast.config import ServerConfig
from zkfast.core.acl import digest_id
from zkfast.core.actions import AppendTxns, CloseClient, SendToClient
from zkfast.core.events import (
    ClientConnected,
    ClientDisconnected,
    ClientFramesReceived,
    StorageFailed,
    Ticked,
    TxnsDurable,
)
from zkfast.core.server import ServerCore, java_auth_order
from zkfast.core.sessions import generate_passwd
from zkfast.wire import client_codec as cc
from zkfast.wire.txn_codec import decode_txn

OPEN = [(31, ("world", "anyone"))]
T0 = 1_700_000_000_000
NONODE, NOAUTH, BADVERSION, NODEEXISTS, NOTEMPTY = -101, -102, -103, -110, -111
BADARGS, INVALIDACL, NOCHILDEPH, NOWATCHER, UNIMPL, MARSHAL = -8, -114, -108, -121, -6, -5


class Harness:
    """Feeds events to a ServerCore and decodes what it sends back, per connection."""

    def __init__(self, auto_durable: bool = True, **cfg: Any) -> None:
        self.now = T0
        base = dict(tick_ms=2000)
        base.update(cfg)
        self.core = ServerCore(ServerConfig(**base), now_ms=T0, rng=random.Random(7))
        self.auto_durable = auto_durable
        self.txns: list[tuple[int, bytes]] = []
        self.ops: dict[tuple[int, int], int] = {}  # (conn, xid) -> opcode
        self.inbox: dict[int, list[Any]] = {}
        self.closed: dict[int, str] = {}
        self.handshake: dict[int, bytes] = {}

    # -------------------------------------------------------------- plumbing
    def step(self, ev: Any) -> None:
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
        # one SendToClient per connection per step
        sends = [a.conn_id for a in actions if isinstance(a, SendToClient)]
        assert len(sends) == len(set(sends))
        if durable is not None and self.auto_durable:
            self.step(TxnsDurable(durable))

    def _receive(self, conn_id: int, frame: bytes) -> None:
        if conn_id not in self.handshake:
            self.handshake[conn_id] = frame
            return
        xid = int.from_bytes(frame[:4], "big", signed=True)
        op = self.ops.get((conn_id, xid))
        self.inbox.setdefault(conn_id, []).append(cc.decode_reply(frame, op))

    def take(self, conn_id: int) -> list[Any]:
        return self.inbox.pop(conn_id, [])

    # -------------------------------------------------------------- client actions
    def connect(self, conn_id: int, timeout: int = 30000, session_id: int = 0,
                passwd: bytes = b"\0" * 16, read_only: bool | None = False,
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
        return self.take(conn_id)

    def call(self, conn_id: int, xid: int, op: int, rec: Any = ()) -> tuple[int, int, int, Any]:
        replies = [r for r in self.send(conn_id, (xid, op, rec)) if r[0] != -1]
        assert len(replies) == 1, replies
        return replies[0]

    def session(self, conn_id: int = 1, **kw: Any) -> int:
        resp = self.connect(conn_id, **kw)
        assert resp is not None
        return resp[2]

    def advance(self, ms: int) -> None:
        self.now += ms
        self.step(Ticked())


@pytest.fixture
def zk() -> Harness:
    return Harness()


def txn_types(zk: Harness) -> list[int]:
    return [decode_txn(b)[0][4] for _, b in zk.txns]


# ====================================================================== handshake


def test_new_session_reply_waits_for_the_create_session_txn() -> None:
    zk = Harness(auto_durable=False)
    assert zk.connect(1, timeout=1000) is None
    assert [z for z, _ in zk.txns] == [1]  # standalone zxids start at epoch 0, counter 1
    header, record, digest = decode_txn(zk.txns[0][1])
    assert header[4] == -10 and record == (4000,)  # clamped up to 2*tickTime
    assert digest == zk.core.tree.digest()
    zk.step(TxnsDurable(1))
    pv, timeout, sid, passwd, ro = cc.decode_connect_response(zk.handshake[1])
    assert (pv, timeout, ro) == (0, 4000, False)
    assert sid >> 56 == 1 and sid == header[0]
    assert passwd == generate_passwd(sid)


def test_timeout_clamped_to_max_and_read_only_byte_only_if_sent(zk: Harness) -> None:
    resp = zk.connect(1, timeout=10**6, read_only=None)
    assert resp is not None and resp[1] == 40000 and resp[4] is None
    assert len(zk.handshake[1]) == 36


def test_read_only_client_is_served_normally(zk: Harness) -> None:
    resp = zk.connect(1, read_only=True)
    assert resp is not None and resp[4] is False
    assert zk.call(1, 1, 3, ("/", False))[2] == 0


def test_client_ahead_of_us_is_closed_without_reply(zk: Harness) -> None:
    assert zk.connect(1, last_zxid=5) is None
    assert 1 in zk.closed and 1 not in zk.handshake
    assert zk.txns == []


def test_resume_moves_the_session_and_closes_the_old_connection(zk: Harness) -> None:
    sid = zk.session(1)
    resp = zk.connect(2, session_id=sid, passwd=generate_passwd(sid), timeout=20000)
    assert resp is not None and resp[1:3] == (20000, sid)
    assert 1 in zk.closed and 2 not in zk.closed
    assert zk.call(2, 1, 3, ("/zookeeper", False))[2] == 0
    assert len(zk.txns) == 1  # no new createSession


def test_resume_with_wrong_password_or_unknown_session(zk: Harness) -> None:
    sid = zk.session(1)
    resp = zk.connect(2, session_id=sid, passwd=b"x" * 16)
    assert resp == (0, 0, 0, b"\0" * 16, False)
    assert 2 in zk.closed
    assert 1 in zk.closed  # Apache closes the holder before checking the password
    resp = zk.connect(3, session_id=12345, passwd=generate_passwd(12345))
    assert resp is not None and resp[1:3] == (0, 0) and 3 in zk.closed


def test_malformed_connect_request_closes(zk: Harness) -> None:
    zk.step(ClientConnected(1, "10.0.0.1", 1))
    zk.step(ClientFramesReceived(1, [b"\0\0\0"]))
    assert 1 in zk.closed and 1 not in zk.handshake


# ====================================================================== basic ops


def test_create_get_set_delete_and_stats(zk: Harness) -> None:
    zk.session(1)
    xid, zxid, err, body = zk.call(1, 1, 15, ("/a", b"hi", OPEN, 0))
    assert (xid, zxid, err) == (1, 2, 0)
    path, stat = body
    assert path == "/a"
    assert stat[0] == stat[1] == stat[10] == 2 and stat[2] == stat[3] == T0
    assert stat[8] == 2 and stat[9] == 0
    assert zk.call(1, 2, 4, ("/a", False)) == (2, 2, 0, (b"hi", stat))
    xid, zxid, err, (stat2,) = zk.call(1, 3, 5, ("/a", b"xyz", 0))
    assert (zxid, err, stat2[1], stat2[4], stat2[8]) == (3, 0, 3, 1, 3)
    assert zk.call(1, 4, 5, ("/a", b"", 0))[2] == BADVERSION
    assert zk.call(1, 5, 1, ("/a/b", b"", OPEN, 0))[3] == ("/a/b",)
    assert zk.call(1, 6, 2, ("/a", -1))[2] == NOTEMPTY
    _, _, err, (children, pstat) = zk.call(1, 7, 12, ("/a", False))
    assert children == ["b"] and pstat[5] == 1 and pstat[9] == 1
    assert zk.call(1, 8, 2, ("/a/b", 0))[:3] == (8, 7, 0)
    assert zk.call(1, 9, 3, ("/a/b", False))[2] == NONODE
    # every write took a zxid, failed ones as error txns
    assert txn_types(zk) == [-10, 15, 5, -1, 1, -1, 2]


@pytest.mark.parametrize(
    ("op", "rec", "code"),
    [
        (1, ("/missing/x", b"", OPEN, 0), NONODE),
        (1, ("/zookeeper", b"", OPEN, 0), NODEEXISTS),
        (1, ("noslash", b"", OPEN, 0), BADARGS),
        (1, ("/bad/", b"", OPEN, 0), NONODE),  # the parent check comes first
        (1, ("/zookeeper/", b"", OPEN, 0), BADARGS),
        (1, ("/a", b"", [], 0), INVALIDACL),
        (1, ("/a", b"", [(31, ("digest", "nocolon"))], 0), INVALIDACL),
        (1, ("/a", b"", [(31, ("auth", ""))], 0), INVALIDACL),
        (1, ("/a", b"", OPEN, 7), BADARGS),
        (1, ("/a", b"", OPEN, 5), UNIMPL),  # TTL without extendedTypesEnabled
        (2, ("/zookeeper", -1), BADARGS),
        (2, ("/nope", -1), NONODE),
        (5, ("/nope", b"", -1), NONODE),
        (5, ("//x", b"", -1), BADARGS),
        (7, ("/zookeeper", [], -1), INVALIDACL),
        (7, ("/", OPEN, 5), BADVERSION),
        (6, ("/nope",), NONODE),
        (8, ("/nope", False), NONODE),
        (104, ("/nope",), NONODE),
    ],
)
def test_error_codes(zk: Harness, op: int, rec: Any, code: int) -> None:
    zk.session(1)
    assert zk.call(1, 1, op, rec)[2] == code


def test_ephemeral_parent_and_sequential_names(zk: Harness) -> None:
    sid = zk.session(1)
    zk.call(1, 1, 1, ("/e", b"", OPEN, 1))
    assert zk.call(1, 2, 1, ("/e/c", b"", OPEN, 0))[2] == NOCHILDEPH
    zk.call(1, 3, 1, ("/q", b"", OPEN, 0))
    zk.auto_durable = False
    # Three sequential creates in one read: the pending view numbers them 0, 1, 2.
    replies = zk.send(1, (4, 1, ("/q/n-", b"", OPEN, 2)), (5, 1, ("/q/n-", b"", OPEN, 3)),
                      (6, 1, ("/q/n-", b"", OPEN, 2)))
    assert replies == []
    zk.step(TxnsDurable(zk.txns[-1][0]))
    names = [r[3][0] for r in zk.take(1)]
    assert names == ["/q/n-0000000000", "/q/n-0000000001", "/q/n-0000000002"]
    assert zk.core.tree.nodes["/q/n-0000000001"].ephemeral_owner == sid
    assert zk.call(1, 7, 103, ("/q",))[3] == (["/q/n-0000000001"],)
    assert zk.call(1, 8, 103, ("/",))[3] == (["/e", "/q/n-0000000001"],)
    assert zk.call(1, 9, 104, ("/",))[3] == (zk.core.tree.node_count - 2,)
    assert zk.call(1, 10, 104, ("/q",))[3] == (3,)


def test_pending_view_sees_uncommitted_writes(zk: Harness) -> None:
    zk.session(1)
    zk.auto_durable = False
    zk.send(1, (1, 1, ("/p", b"", OPEN, 0)), (2, 1, ("/p/c", b"", OPEN, 0)),
            (3, 2, ("/p", -1)), (4, 2, ("/p/c", -1)), (5, 2, ("/p", 0)))
    zk.step(TxnsDurable(zk.txns[-1][0]))
    assert [r[2] for r in zk.take(1)] == [0, 0, NOTEMPTY, 0, 0]
    assert "/p" not in zk.core.tree.nodes
    assert not zk.core.view.changes and not zk.core.view.by_path


def test_digest_in_every_txn_is_the_tree_digest_after_it(zk: Harness) -> None:
    zk.session(1)
    zk.auto_durable = False
    zk.send(1, (1, 1, ("/d", b"x", OPEN, 0)), (2, 1, ("/d/e", b"", OPEN, 1)),
            (3, 5, ("/d", b"yy", -1)), (4, 7, ("/d", [(1, ("world", "anyone"))], -1)),
            (5, 14, [(1, ("/m", b"", OPEN, 0)), (2, ("/d/e", -1))]),
            (6, 14, [(1, ("/m2", b"", OPEN, 0)), (2, ("/zz", -1))]),
            (7, 2, ("/nope", -1)))
    expected = {}
    for zxid, data in zk.txns[1:]:
        expected[zxid] = decode_txn(data)[2]
    seen = {}
    for zxid in sorted(expected):
        zk.step(TxnsDurable(zxid))
        seen[zxid] = zk.core.tree.digest()
    for zxid, d in expected.items():
        if d is not None:
            assert d & ((1 << 64) - 1) == seen[zxid], hex(zxid)
    assert expected[max(expected)] is None  # a failed single op carries no digest


def test_acl_digest_auth_and_get_acl_redaction(zk: Harness) -> None:
    zk.session(1)
    zk.session(2)
    acl = [(31, ("digest", digest_id("bob:secret"))), (1, ("world", "anyone"))]
    zk.step(ClientFramesReceived(1, [cc.encode_auth("digest", b"bob:secret")[4:]]))
    assert zk.take(1) == [(-4, 0, 0, None)]
    assert zk.call(1, 1, 1, ("/s", b"v", acl, 0))[2] == 0
    assert zk.call(2, 1, 5, ("/s", b"w", -1))[2] == NOAUTH
    assert zk.call(2, 2, 4, ("/s", False))[2] == 0  # world has READ
    _, _, _, (shown, _) = zk.call(2, 3, 6, ("/s",))
    assert shown == [(31, ("digest", "bob:x")), (1, ("world", "anyone"))]
    _, _, _, (full, _) = zk.call(1, 2, 6, ("/s",))
    assert full == acl
    # auth ACL expands to the connection's authenticated ids
    zk.call(1, 3, 1, ("/t", b"", [(31, ("auth", ""))], 0))
    assert zk.core.tree.nodes["/t"].acl == [(31, ("digest", digest_id("bob:secret")))]
    assert zk.call(2, 4, 4, ("/t", False))[2] == NOAUTH


def test_super_digest_grants_everything() -> None:
    zk = Harness(super_digest=digest_id("super:pw"))
    zk.session(1)
    zk.session(2)
    zk.call(1, 1, 1, ("/locked", b"", [(1, ("digest", digest_id("a:b")))], 0))
    assert zk.call(2, 1, 4, ("/locked", False))[2] == NOAUTH
    zk.step(ClientFramesReceived(2, [cc.encode_auth("digest", b"super:pw")[4:]]))
    assert zk.take(2) == [(-4, 0, 0, None)]
    assert zk.call(2, 2, 5, ("/locked", b"x", -1))[2] == 0
    _, _, _, (infos,) = zk.call(2, 3, 107)
    assert ("super", "") in infos


def test_unknown_auth_scheme_fails_and_closes(zk: Harness) -> None:
    zk.session(1)
    zk.step(ClientFramesReceived(1, [cc.encode_auth("world", b"anyone")[4:]]))
    assert zk.take(1) == [(-4, 0, -115, None)]
    assert 1 in zk.closed


def test_who_am_i_lists_ids_in_java_hash_order(zk: Harness) -> None:
    zk.session(1)
    zk.step(ClientFramesReceived(1, [cc.encode_auth("digest", b"nocolon")[4:]]))
    zk.take(1)
    _, _, err, (infos,) = zk.call(1, 1, 107)
    assert err == 0
    assert infos == [("digest", "nocolon"), ("ip", "10.0.0.1")]
    # Apache 3.8.0 listed digest:nocolon before ip:127.0.0.1 as well.
    assert java_auth_order([("ip", "127.0.0.1"), ("digest", digest_id("nocolon"))])[0][0] \
        == "digest"


# ====================================================================== multi


def test_multi_success_and_atomic_failure(zk: Harness) -> None:
    zk.session(1)
    ok = zk.call(1, 1, 14, [(1, ("/m", b"", OPEN, 0)), (19, ("/m/c", b"", OPEN, 4)),
                            (5, ("/m", b"x", -1)), (13, ("/m", 1)), (2, ("/m/c", -1))])
    assert ok[2] == 0
    results = ok[3]
    assert [r[:2] for r in results] == [(1, 0), (15, 0), (5, 0), (13, 0), (2, 0)]
    assert results[0][2] == ("/m",) and results[1][2][0] == "/m/c"
    zxid_before = zk.core.tree.last_processed_zxid
    bad = zk.call(1, 2, 14, [(1, ("/n", b"", OPEN, 0)), (13, ("/m", 99)),
                             (2, ("/m", -1))])
    assert bad[2] == 0
    assert bad[3] == [(-1, 0, None), (-1, BADVERSION, None), (-1, -2, None)]
    assert "/n" not in zk.core.tree.nodes
    assert zk.core.tree.last_processed_zxid == zxid_before + 1  # it still took a zxid
    header, subs, digest = decode_txn(zk.txns[-1][1])
    assert header[4] == 14
    assert [t for t, _ in subs] == [1, -1, -1]
    assert subs[1][1] == (BADVERSION,) and subs[2][1] == (-2,)
    assert digest == zk.core.tree.digest()
    # the rolled-back create left no pending record behind
    assert zk.call(1, 3, 1, ("/n", b"", OPEN, 0))[2] == 0


def test_multi_read_answers_each_op(zk: Harness) -> None:
    zk.session(1)
    zk.call(1, 1, 1, ("/r", b"d", OPEN, 0))
    _, _, err, results = zk.call(1, 2, 22, [(4, ("/r", False)), (8, ("/nope", False)),
                                            (8, ("/", False))])
    assert err == 0
    assert results[0][0] == 4 and results[0][2][0] == b"d"
    assert results[1] == (-1, NONODE, None)
    assert results[2][0] == 8 and sorted(results[2][2][0]) == ["r", "zookeeper"]


def test_empty_multi_and_marshalling_errors(zk: Harness) -> None:
    zk.session(1)
    assert zk.call(1, 1, 14, []) == (1, 2, 0, [])  # an empty multi still takes a zxid
    last = zk.core.tree.last_processed_zxid
    # a read with a short body: MarshallingError, no zxid consumed
    zk.ops[(1, 2)] = 3
    zk.step(ClientFramesReceived(1, [b"\0\0\0\2\0\0\0\3\0\0\0\x0a/zookeeper"]))
    assert zk.take(1) == [(2, last, MARSHAL, None)]
    # a write with a short body: MarshallingError as an error txn that takes a zxid
    zk.ops[(1, 3)] = 1
    zk.step(ClientFramesReceived(1, [b"\0\0\0\3\0\0\0\1\0\0\0\3/zz"]))
    assert zk.take(1) == [(3, last + 1, MARSHAL, None)]
    assert decode_txn(zk.txns[-1][1])[1] == (MARSHAL,)
    # removeWatches with a 3.9-only watcher type
    assert zk.call(1, 4, 18, ("/", 4))[2] == MARSHAL


def test_client_delete_container_is_bad_arguments(zk: Harness) -> None:
    zk.session(1)
    zk.ops[(1, 7)] = 20
    zk.step(ClientFramesReceived(1, [b"\0\0\0\7\0\0\0\x14/nonexist"]))
    assert zk.take(1)[0][2] == BADARGS
    assert txn_types(zk)[-1] == -1


def test_lone_check_and_unknown_opcode_are_unimplemented(zk: Harness) -> None:
    zk.session(1)
    assert zk.call(1, 1, 13, ("/", -1)) == (1, -1, UNIMPL, None)
    assert 1 in zk.closed
    zk.session(2)
    zk.ops[(2, 9)] = 99
    zk.step(ClientFramesReceived(2, [b"\0\0\0\x09\0\0\0\x63"]))
    assert zk.take(2) == [(9, -1, UNIMPL, None)]
    assert 2 in zk.closed


def test_short_header_closes_without_reply(zk: Harness) -> None:
    zk.session(1)
    zk.step(ClientFramesReceived(1, [b"ab"]))
    assert 1 in zk.closed and zk.take(1) == []


def test_reconfig_is_disabled(zk: Harness) -> None:
    zk.session(1)
    assert zk.call(1, 1, 16, (None, None, "server.1=x", -1))[2] == -123
    zk.ops[(1, 2)] = 16
    zk.step(ClientFramesReceived(1, [b"\0\0\0\2\0\0\0\x10"]))
    assert zk.take(1)[0][2] == MARSHAL  # the body does not decode: no txn
    assert txn_types(zk) == [-10, -1]


# ====================================================================== ordering, ping, sync


def test_reads_wait_behind_a_pending_write_of_the_same_connection() -> None:
    zk = Harness(auto_durable=False)
    zk.connect(1)
    zk.step(TxnsDurable(1))
    zk.connect(2)
    zk.step(TxnsDurable(2))
    out = zk.send(1, (1, 1, ("/w", b"v", OPEN, 0)), (2, 4, ("/w", False)), (-2, 11, ()),
                  (3, 9, ("/w",)))
    assert out == []  # everything waits for the create
    assert zk.send(2, (1, 3, ("/w", False)))[0][2] == NONODE  # another connection: committed
    zk.step(TxnsDurable(3))
    replies = zk.take(1)
    assert [r[:3] for r in replies] == [(1, 3, 0), (2, 3, 0), (-2, 3, 0), (3, 3, 0)]
    assert replies[1][3][0] == b"v" and replies[3][3] == ("/w",)


def test_ping_reply_and_sync(zk: Harness) -> None:
    zk.session(1)
    zk.call(1, 1, 1, ("/x", b"", OPEN, 0))
    assert zk.call(1, -2, 11) == (-2, 2, 0, None)
    assert zk.call(1, 2, 9, ("/x",)) == (2, 2, 0, ("/x",))


def test_sync_waits_for_other_connections_writes() -> None:
    zk = Harness(auto_durable=False)
    zk.connect(1)
    zk.step(TxnsDurable(1))
    zk.connect(2)
    zk.step(TxnsDurable(2))
    zk.send(1, (1, 1, ("/s", b"", OPEN, 0)))
    assert zk.send(2, (1, 9, ("/s",))) == []
    zk.step(TxnsDurable(3))
    assert zk.take(2) == [(1, 3, 0, ("/s",))]


def test_too_many_outstanding_requests_closes() -> None:
    zk = Harness(auto_durable=False, outstanding_requests_max_per_conn=3)
    zk.connect(1)
    zk.step(TxnsDurable(1))
    zk.send(1, *[(i, 1, (f"/o{i}", b"", OPEN, 0)) for i in range(1, 5)])
    assert zk.closed[1] == "too many outstanding requests"


# ====================================================================== watches


def test_data_watch_fires_before_the_write_reply(zk: Harness) -> None:
    zk.session(1)
    zk.session(2)
    zk.call(1, 1, 1, ("/w", b"", OPEN, 0))
    zk.call(2, 1, 4, ("/w", True))
    out = zk.send(2, (2, 5, ("/w", b"new", -1)))
    assert out[0] == (-1, -1, 0, (3, 3, "/w"))
    assert out[1][:3] == (2, 4, 0)
    zk.call(2, 3, 5, ("/w", b"again", -1))  # one-shot: no second notification
    assert zk.take(2) == []


def test_exists_watch_on_missing_node_and_child_watch(zk: Harness) -> None:
    zk.session(1)
    zk.session(2)
    assert zk.call(2, 1, 3, ("/later", True))[2] == NONODE
    assert zk.call(2, 2, 8, ("/", True))[2] == 0
    zk.call(1, 1, 1, ("/later", b"", OPEN, 0))
    assert zk.take(2) == [(-1, -1, 0, (1, 3, "/later")), (-1, -1, 0, (4, 3, "/"))]
    # getData on a missing node registers nothing
    assert zk.call(2, 3, 4, ("/nothere", True))[2] == NONODE
    zk.call(1, 2, 1, ("/nothere", b"", OPEN, 0))
    assert zk.take(2) == []


def test_persistent_recursive_watch_and_remove_watches(zk: Harness) -> None:
    zk.session(1)
    zk.session(2)
    assert zk.call(2, 1, 106, ("/tree", 1)) == (1, 2, 0, (0,))
    zk.call(1, 1, 1, ("/tree", b"", OPEN, 0))
    zk.call(1, 2, 1, ("/tree/leaf", b"", OPEN, 0))
    events = [r[3] for r in zk.take(2)]
    assert events == [(1, 3, "/tree"), (1, 3, "/tree/leaf")]
    assert zk.call(2, 2, 17, ("/tree", 3))[2] == 0
    assert zk.call(2, 3, 18, ("/tree", 3))[2] == 0
    assert zk.call(2, 4, 18, ("/tree", 3))[2] == NOWATCHER
    zk.call(1, 3, 5, ("/tree/leaf", b"x", -1))
    assert zk.take(2) == []


def test_set_watches_relative_zxid_rules(zk: Harness) -> None:
    zk.session(1)
    zk.call(1, 1, 1, ("/old", b"", OPEN, 0))  # zxid 2
    zk.call(1, 2, 1, ("/new", b"", OPEN, 0))  # zxid 3
    zk.session(2)  # zxid 4
    rz = 2
    out = zk.send(2, (7, 101, (rz, ["/old", "/new", "/gone"], ["/old", "/absent"],
                               ["/", "/gone"])))
    events = [r[3] for r in out if r[0] == -1]
    assert events == [(3, 3, "/new"), (2, 3, "/gone"), (1, 3, "/old"),
                      (4, 3, "/"), (2, 3, "/gone")]
    assert out[-1][:3] == (7, 4, 0)
    # /old's data watch and /absent's exist watch were registered
    zk.call(1, 3, 5, ("/old", b"x", -1))
    zk.call(1, 4, 1, ("/absent", b"", OPEN, 0))
    assert [r[3] for r in zk.take(2)] == [(3, 3, "/old"), (1, 3, "/absent")]


# ====================================================================== sessions


def test_close_session_deletes_ephemerals_replies_then_closes(zk: Harness) -> None:
    zk.session(1)
    zk.session(2)
    zk.call(1, 1, 1, ("/eph", b"", OPEN, 1))
    zk.call(2, 1, 3, ("/eph", True))
    assert zk.call(1, 2, -11) == (2, 4, 0, None)
    assert zk.closed[1] == "client closed the session"
    assert "/eph" not in zk.core.tree.nodes
    assert zk.take(2) == [(-1, -1, 0, (2, 3, "/eph"))]
    header, record, _ = decode_txn(zk.txns[-1][1])
    assert header[4] == -11 and record == (["/eph"],)


def test_session_expiry_via_ticks() -> None:
    zk = Harness(tick_ms=2000)
    sid = zk.session(1, timeout=4000)
    zk.session(2, timeout=40000)
    zk.call(1, 1, 1, ("/e", b"", OPEN, 1))
    zk.call(2, 1, 3, ("/e", True))
    deadline = zk.core.deadline_ms()
    assert deadline is not None and deadline <= T0 + 6000
    zk.now = deadline - 1
    zk.step(Ticked())
    assert "/e" in zk.core.tree.nodes
    zk.now = T0 + 6000
    zk.step(Ticked())
    assert "/e" not in zk.core.tree.nodes
    assert zk.closed[1] == "session expired"
    assert zk.take(2) == [(-1, -1, 0, (2, 3, "/e"))]
    assert sid not in zk.core.sessions.sessions
    resp = zk.connect(3, session_id=sid, passwd=generate_passwd(sid))
    assert resp is not None and resp[1:3] == (0, 0)


def test_pings_keep_a_session_alive_and_disconnect_does_not_end_it() -> None:
    zk = Harness(tick_ms=2000)
    sid = zk.session(1, timeout=4000)
    for _ in range(5):
        zk.now += 3000
        zk.step(Ticked())
        zk.call(1, -2, 11)
    assert sid in zk.core.sessions.sessions
    zk.step(ClientDisconnected(1))
    assert sid in zk.core.sessions.sessions
    zk.now += 3000
    zk.step(Ticked())
    resp = zk.connect(2, session_id=sid, passwd=generate_passwd(sid), timeout=4000)
    assert resp is not None and resp[2] == sid
    zk.now += 10_000
    zk.step(Ticked())
    assert sid not in zk.core.sessions.sessions


def test_requests_on_a_closing_session_are_dropped(zk: Harness) -> None:
    zk.auto_durable = False
    zk.connect(1)
    zk.step(TxnsDurable(1))
    zk.send(1, (1, -11, ()), (2, 3, ("/", False)))
    n = len(zk.txns)
    zk.step(TxnsDurable(zk.txns[-1][0]))
    assert [r[0] for r in zk.take(1)] == [1]
    assert len(zk.txns) == n


# ====================================================================== containers and TTL


def test_container_deleted_after_its_last_child_goes() -> None:
    zk = Harness(container_check_interval_ms=1000)
    zk.session(1, timeout=40000)
    assert zk.call(1, 1, 19, ("/c", b"", OPEN, 4))[2] == 0
    zk.advance(1000)
    assert "/c" in zk.core.tree.nodes  # never had children: kept
    zk.call(1, 2, 1, ("/c/x", b"", OPEN, 0))
    zk.call(1, 3, 2, ("/c/x", -1))
    zk.advance(1000)
    assert "/c" not in zk.core.tree.nodes
    header, record, _ = decode_txn(zk.txns[-1][1])
    assert header[4] == 20 and header[0] == 0 and record == ("/c",)


def test_ttl_nodes_need_extended_types_and_expire() -> None:
    zk = Harness(extended_types_enabled=True, container_check_interval_ms=1000)
    zk.session(1, timeout=40000)
    assert zk.call(1, 1, 21, ("/ttl", b"", OPEN, 5, 0))[2] == BADARGS
    _, _, err, (path, stat) = zk.call(1, 2, 21, ("/ttl", b"", OPEN, 5, 1500))
    assert err == 0 and path == "/ttl" and stat[7] == 0
    assert zk.call(1, 3, 1, ("/plain", b"", OPEN, 0))[2] == 0
    assert zk.call(1, 4, 21, ("/x", b"", OPEN, 0, 100))[2] == BADARGS
    zk.advance(1000)
    assert "/ttl" in zk.core.tree.nodes
    zk.advance(1000)
    assert "/ttl" not in zk.core.tree.nodes


# ====================================================================== sasl and stats


def test_sasl_without_a_configured_server_answers_ok_with_null_token(zk: Harness) -> None:
    zk.session(1)
    assert zk.call(1, 11, 102, (b"",)) == (11, 0, 0, (None,))
    assert 1 not in zk.closed


def test_sasl_failure_closes() -> None:
    zk = Harness(sasl_users=(("alice", "pw"),))
    zk.session(1)
    _, _, err, (challenge,) = zk.call(1, 1, 102, (b"",))
    assert err == 0 and b"nonce=" in challenge
    assert zk.call(1, 2, 102, (b"garbage",))[2] == -115
    assert 1 in zk.closed


def test_connection_and_server_stats(zk: Harness) -> None:
    zk.session(1)
    zk.call(1, 1, 1, ("/st", b"", OPEN, 0))
    zk.call(1, 2, 4, ("/st", False))
    conn = zk.core.conns[1]
    assert (conn.packets_received, conn.packets_sent) == (3, 3)
    assert conn.last_op == "GETD" and conn.last_cxid == 2 and conn.last_zxid == 2
    assert zk.core.stats.packets_received == 3 and zk.core.stats.count == 3
    line = conn.full_line()
    assert line.startswith(" /10.0.0.1:40001[1](queued=0,recved=3,sent=3,sid=0x")
    assert ",lop=GETD," in line and ",lcxid=0x2,lzxid=0x2," in line


def test_config_replace_keeps_working() -> None:
    cfg = replace(ServerConfig(), tick_ms=100)
    core = ServerCore(cfg, now_ms=T0, rng=random.Random(1))
    assert core.deadline_ms() is None


def test_multi_sub_results_show_the_node_as_each_op_left_it(zk: Harness) -> None:
    zk.session(1)
    _, _, err, results = zk.call(1, 1, 14, [
        (15, ("/c1", b"1", OPEN, 0)),  # a create2 inside a multi answers as a plain create
        (19, ("/c3", b"", OPEN, 4)),
        (5, ("/c1", b"one", 0)),
        (2, ("/c1", 1)),
    ])
    assert err == 0
    assert [r[0] for r in results] == [1, 15, 5, 2]
    assert results[0][2] == ("/c1",)
    assert results[1][2][1][7] == 0  # containers show ephemeralOwner 0
    setstat = results[2][2][0]
    assert setstat[4] == 1 and setstat[8] == 3 and setstat[1] == setstat[0]
    assert "/c1" not in zk.core.tree.nodes


def test_multi_with_a_read_op_is_a_marshalling_error_txn(zk: Harness) -> None:
    zk.session(1)
    frame = cc.encode_request(3, 22, [(4, ("/", False))])[4:]
    frame = frame[:4] + (14).to_bytes(4, "big") + frame[8:]  # the ops of a multiRead, as multi
    zk.ops[(1, 3)] = 14
    zk.step(ClientFramesReceived(1, [frame]))
    assert zk.take(1) == [(3, 2, MARSHAL, None)]
    assert decode_txn(zk.txns[-1][1])[0][4] == -1
    assert 1 not in zk.closed


def test_notifications_need_read_on_the_node_but_consume_the_watch(zk: Harness) -> None:
    # Debian's 3.8.0 carries the CVE-2024-23944 fix (ZOOKEEPER-4799).
    zk.session(1)
    zk.session(2)
    zk.call(2, 1, 3, ("/secret", True))
    zk.call(2, 2, 8, ("/", True))
    zk.call(1, 1, 1, ("/secret", b"", [(12, ("world", "anyone"))], 0))  # CREATE|DELETE only
    # NodeCreated /secret is filtered; the root's children change is visible.
    assert zk.take(2) == [(-1, -1, 0, (4, 3, "/"))]
    zk.call(1, 2, 7, ("/secret", OPEN, -1))
    zk.call(1, 3, 5, ("/secret", b"x", -1))
    assert zk.take(2) == []  # the exists watch was consumed by the filtered event
    zk.call(2, 3, 4, ("/secret", True))
    zk.call(1, 4, 7, ("/secret", [(8, ("world", "anyone"))], -1))
    zk.call(1, 5, 2, ("/secret", -1))
    assert zk.take(2) == []  # NodeDeleted is checked against the deleted node's ACL


def test_global_outstanding_limit_pauses_and_resumes_reading() -> None:
    from zkfast.core.actions import PauseClient, ResumeClient

    zk = Harness(auto_durable=False, outstanding_requests_max=4)
    zk.connect(1)
    zk.step(TxnsDurable(1))
    frames = [cc.encode_request(i, 1, (f"/g{i}", b"", OPEN, 0))[4:] for i in range(1, 7)]
    actions = zk.core.step(ClientFramesReceived(1, frames), zk.now)
    assert PauseClient(1) in actions
    last = max(z for a in actions if isinstance(a, AppendTxns) for z, _ in a.txns)
    actions = zk.core.step(TxnsDurable(last), zk.now)
    assert ResumeClient(1) in actions
    assert actions.index(ResumeClient(1)) > 0


def test_children_come_in_java_hash_set_order(zk: Harness) -> None:
    # The order Apache 3.8.0 listed these children in (created in this order).
    zk.session(1)
    zk.call(1, 1, 1, ("/ord", b"", OPEN, 0))
    names = [f"n{i}" for i in range(20)] + ["alpha", "beta", "s-0000000001", "zeta", "foo.bar"]
    for i, n in enumerate(names):
        zk.call(1, 10 + i, 1, (f"/ord/{n}", b"", OPEN, 0))
    expected = ["n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9", "n10", "n12",
                "n11", "n14", "n13", "n16", "n15", "n18", "n17", "n19", "alpha", "beta",
                "zeta", "foo.bar", "s-0000000001"]
    zk.call(1, 40, 1, ("/ord/tmp", b"", OPEN, 0))
    zk.call(1, 41, 2, ("/ord/tmp", -1))  # 26 children once: the table stays at 64
    assert zk.call(1, 2, 8, ("/ord", False))[3] == (expected,)
    assert zk.call(1, 3, 12, ("/ord", False))[3][0] == expected
    zk.call(1, 4, 2, ("/ord/n12", -1))
    assert zk.call(1, 5, 8, ("/ord", False))[3] == ([n for n in expected if n != "n12"],)


def test_an_unexpected_failure_in_prep_is_a_marshalling_error_txn(
        zk: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    zk.session(1)
    zk.call(1, 1, 1, ("/ok", b"", OPEN, 0))
    real_check = zk.core.prepper.check

    def broken(*args: Any) -> Any:
        raise TypeError("boom")

    monkeypatch.setitem(zk.core.prepper.ops, 13, broken)
    _, zxid, err, results = zk.call(1, 2, 14, [(1, ("/half", b"", OPEN, 0)),
                                               (13, ("/ok", -1))])
    assert (zxid, err, results) == (3, MARSHAL, None)
    assert not zk.core.view.changes and "/half" not in zk.core.tree.nodes
    monkeypatch.setitem(zk.core.prepper.ops, 13, real_check)
    assert zk.call(1, 3, 1, ("/half", b"", OPEN, 0))[:3] == (3, 4, 0)  # no zxid gap


def test_null_paths_are_marshalling_errors_not_crashes(zk: Harness) -> None:
    zk.session(1)
    assert zk.call(1, 1, 4, (None, False))[2] == MARSHAL
    assert zk.call(1, 2, 3, (None, True))[2] == MARSHAL
    assert zk.call(1, 3, 22, [(4, (None, False))])[2] == MARSHAL
    assert zk.call(1, 4, 1, (None, b"", OPEN, 0))[2] == BADARGS
    assert 1 not in zk.closed


def test_a_failure_after_the_zxid_was_taken_leaves_no_gap(
        zk: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    import zkfast.core.server as server_mod

    zk.session(1)
    real = server_mod.encode_txn

    def broken(*args: Any) -> bytes:
        raise OverflowError("boom")

    monkeypatch.setattr(server_mod, "encode_txn", broken)
    zk.send(1, (1, 1, ("/x", b"", OPEN, 0)))
    assert "internal error" in zk.closed[1]
    monkeypatch.setattr(server_mod, "encode_txn", real)
    zk.session(2)
    assert zk.call(2, 1, 1, ("/x", b"", OPEN, 0))[:3] == (1, 3, 0)
    assert [z for z, _ in zk.txns] == [1, 2, 3]


def test_empty_and_relative_paths_as_apache_3_8_0_sees_them(zk: Harness) -> None:
    zk.session(1)
    zk.call(1, 1, 1, ("/d", b"", OPEN, 0))
    # "" reads as the root, but checkWatches never finds a watch on it (PathParentIterator)
    assert zk.call(1, 2, 3, ("", True))[2] == 0
    assert zk.call(1, 3, 17, ("", 2))[2] == NOWATCHER
    # Apache counts every key starting with "/" for "": all nodes but the "" alias
    assert zk.call(1, 4, 104, ("",))[3] == (len(zk.core.tree.nodes),)
    # a relative path: NoWatcher while no recursive watch exists, then the iterator throws
    assert zk.call(1, 5, 17, ("d/a", 1))[2] == NOWATCHER
    zk.call(1, 6, 106, ("/d", 1))
    assert zk.call(1, 7, 17, ("d/a", 1))[2] == MARSHAL
    assert zk.call(1, 8, 17, ("/d", 3))[2] == 0
    # setWatches: "" is the root too
    zk.call(1, 9, 5, ("/", b"x", -1))
    out = zk.send(1, (10, 101, (0, [""], [""], [""])))
    assert [r[3] for r in out if r[0] == -1] == [(3, 3, ""), (1, 3, ""), (4, 3, "")]


def test_enforced_hard_quotas_read_the_limits_and_stats_nodes() -> None:
    zk = Harness(enforce_quota=True)
    zk.session(1)
    stats = "/zookeeper/quota/q/zookeeper_stats"
    zk.call(1, 1, 1, ("/q", b"", OPEN, 0))
    zk.call(1, 2, 1, ("/zookeeper/quota/q", b"", OPEN, 0))
    zk.call(1, 3, 1, ("/zookeeper/quota/q/zookeeper_limits",
                      b"count=-1,bytes=-1,countHardLimit=3,byteHardLimit=10", OPEN, 0))
    # whatever the client writes, the server counts /q's subtree into a new stats node
    zk.call(1, 4, 1, (stats, b"count=0,bytes=0", OPEN, 0))
    assert zk.core.tree.nodes[stats].data == b"count=1,bytes=0"
    assert zk.call(1, 5, 1, ("/q/a", b"12345", OPEN, 0))[2] == 0
    assert zk.call(1, 6, 1, ("/q/b", b"123456", OPEN, 0))[2] == -125  # 11 bytes > 10
    assert zk.call(1, 7, 1, ("/q/b", b"1", OPEN, 0))[2] == 0
    assert zk.core.tree.nodes[stats].data == b"count=3,bytes=6"
    assert zk.call(1, 8, 1, ("/q/c", b"", OPEN, 0))[2] == -125  # a 4th node
    assert zk.call(1, 9, 5, ("/q/b", b"12345", -1))[2] == 0  # 6 + 4 = 10: at the limit
    assert zk.call(1, 10, 5, ("/q/b", b"123456", -1))[2] == -125
    assert zk.core.tree.nodes[stats].data == b"count=3,bytes=10"
    assert zk.call(1, 11, 1, ("/other", b"x" * 100, OPEN, 0))[2] == 0  # no quota there
    zk.call(1, 12, 5, ("/zookeeper/quota/q/zookeeper_limits", b"count=oops", -1))
    assert zk.call(1, 13, 1, ("/q/d", b"", OPEN, 0))[2] == MARSHAL  # NumberFormatException


# ====================================================================== storage failure


def test_storage_failure_stops_every_txn_and_acknowledges_nothing(caplog: Any) -> None:
    """Apache's sync thread dies and the server goes to State.ERROR: nothing is logged,
    applied or answered after it, and no session expires into a closeSession txn."""
    zk = Harness(auto_durable=False)
    zk.connect(1, timeout=4000)
    zk.step(TxnsDurable(1))
    [sid] = list(zk.core.sessions.sessions)
    zk.send(1, (1, 1, ("/a", b"x", OPEN, 0)))
    assert [z for z, _ in zk.txns] == [1, 2]
    zk.connect(2)  # its createSession txn (3) is in flight too
    assert [z for z, _ in zk.txns] == [1, 2, 3]
    assert [s for s, _ in zk.core.applied_sessions()] == [sid]
    with caplog.at_level("ERROR", logger="zkfast.server"):
        zk.step(StorageFailed("fsync: EIO"))
    assert "storage failed: fsync: EIO" in caplog.text and "never be acknowledged" in caplog.text
    assert set(zk.closed) == {1, 2}
    assert zk.core.deadline_ms() is None
    # a late durability report changes nothing and answers nobody
    assert zk.core.step(TxnsDurable(3), zk.now) == []
    assert "/a" not in zk.core.tree.nodes and zk.core.tree.last_processed_zxid == 1
    # new connections are refused before any createSession txn
    zk.connect(3)
    assert 3 in zk.closed and 3 not in zk.handshake
    # time passes beyond every session timeout: no closeSession txn is prepared
    zk.advance(60000)
    zk.advance(60000)
    assert [z for z, _ in zk.txns] == [1, 2, 3]
    assert [s for s, _ in zk.core.applied_sessions()] == [sid]


def test_applied_sessions_skip_sessions_still_being_created() -> None:
    zk = Harness(auto_durable=False)
    zk.connect(1, timeout=6000)
    assert zk.core.applied_sessions() == []
    zk.step(TxnsDurable(1))
    (sid, timeout), = zk.core.applied_sessions()
    assert timeout == 6000 and sid == decode_txn(zk.txns[0][1])[0][0]


def test_null_data_travels_as_null_through_txns_and_replies(zk: Harness) -> None:
    """Apache keeps null data null: the txn carries -1 and getData answers a null buffer."""
    zk.session(1)
    assert zk.call(1, 1, 1, ("/n", None, OPEN, 0))[2] == 0
    header, record, _ = decode_txn(zk.txns[-1][1])
    assert header[4] == 1 and record[1] is None
    data, stat = zk.call(1, 2, 4, ("/n", False))[3]
    assert data is None and stat[8] == 0
    assert zk.call(1, 3, 5, ("/n", b"", -1))[2] == 0
    assert zk.call(1, 4, 4, ("/n", False))[3][0] == b""
    assert zk.call(1, 5, 5, ("/n", None, -1))[2] == 0
    assert decode_txn(zk.txns[-1][1])[1][1] is None
    assert zk.call(1, 6, 4, ("/n", False))[3][0] is None


@pytest.mark.parametrize(("flags", "ttl"), [(0, -1), (1, -5), (3, -(1 << 62))])
def test_create_ttl_with_a_plain_mode_and_a_negative_ttl_is_bad_arguments(
    flags: int, ttl: int
) -> None:
    """3.8.0 preps it and then dies applying it; zkfast answers BadArguments (an error txn)."""
    zk = Harness(extended_types_enabled=True)
    zk.session(1)
    assert zk.call(1, 1, 21, (f"/t{flags}", b"", OPEN, flags, ttl))[2] == BADARGS
    assert decode_txn(zk.txns[-1][1])[0][4] == -1
    assert zk.call(1, 2, 1, ("/still-serving", b"", OPEN, 0))[2] == 0


# ====================================================================== stored ACLs


def test_znodes_with_equal_acls_share_one_list(zk: Harness) -> None:
    """Each request decodes its own ACL; the tree keeps one list per distinct ACL (the memory
    side of ReferenceCountedACLCache), never the implicit open ACL of the system nodes."""
    from zkfast.core.datatree import OPEN_ACL_UNSAFE
    from zkfast.storage.tree_io import tree_to_nodes

    zk.session(1)
    for i, path in enumerate(("/a", "/b", "/a/c")):
        assert zk.call(1, i + 1, 1, (path, b"", [(31, ("world", "anyone"))], 0))[2] == 0
    nodes = zk.core.tree.nodes
    shared = nodes["/a"].acl
    assert nodes["/b"].acl is shared and nodes["/a/c"].acl is shared
    assert shared == OPEN and shared is not OPEN_ACL_UNSAFE
    other = [(1, ("world", "anyone"))]
    assert zk.call(1, 4, 7, ("/b", other, -1))[2] == 0
    assert zk.call(1, 5, 1, ("/d", b"", other, 0))[2] == 0
    assert nodes["/b"].acl == other and nodes["/d"].acl is nodes["/b"].acl
    assert nodes["/a"].acl is shared
    # A snapshot still gives the implicit open ACL (id -1) to the system nodes only.
    implicit = {n.path for n in tree_to_nodes(zk.core.tree) if n.acl is None}
    assert implicit == {"", "/zookeeper", "/zookeeper/quota"}


def test_a_requested_acl_is_fixed_up_once_unless_it_names_auth(zk: Harness) -> None:
    """The same entries get the same stored list (duplicates dropped once); an ``auth`` entry
    expands to each connection's own ids, and an invalid ACL stays invalid."""
    zk.session(1)
    zk.session(2)
    twice = [(31, ("world", "anyone")), (31, ("world", "anyone"))]
    assert zk.call(1, 1, 1, ("/d1", b"", twice, 0))[2] == 0
    assert zk.call(2, 1, 1, ("/d2", b"", twice, 0))[2] == 0
    nodes = zk.core.tree.nodes
    assert nodes["/d1"].acl == OPEN and nodes["/d2"].acl is nodes["/d1"].acl
    for conn, user in ((1, b"bob:pw"), (2, b"amy:pw")):
        zk.step(ClientFramesReceived(conn, [cc.encode_auth("digest", user)[4:]]))
        zk.take(conn)
    auth = [(31, ("auth", ""))]
    assert zk.call(1, 2, 1, ("/a1", b"", auth, 0))[2] == 0
    assert zk.call(2, 2, 1, ("/a2", b"", auth, 0))[2] == 0
    assert nodes["/a1"].acl == [(31, ("digest", digest_id("bob:pw")))]
    assert nodes["/a2"].acl == [(31, ("digest", digest_id("amy:pw")))]
    bad = [(31, ("digest", "nocolon"))]
    for xid in (3, 4):
        assert zk.call(1, xid, 1, (f"/bad{xid}", b"", bad, 0))[2] == INVALIDACL


def test_the_table_of_shared_acls_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from zkfast.core import requests

    monkeypatch.setattr(requests, "ACL_SHARED_MAX", 4)
    zk = Harness()
    zk.session(1)
    acls = [[(31, ("digest", digest_id(f"u{i}:p")))] for i in range(10)]
    for i, acl in enumerate(acls):
        assert zk.call(1, i + 1, 1, (f"/n{i}", b"", acl, 0))[2] == 0
        assert len(zk.core.prepper._acls) <= 4
        assert len(zk.core.prepper._requested_acls) <= 4
    assert [zk.core.tree.nodes[f"/n{i}"].acl for i in range(10)] == acls


def test_committed_txns_share_acls_on_a_learner() -> None:
    """A learner decodes each committed txn: creates, setACL and multi sub-txns get the
    shared lists too."""
    from zkfast.core.datatree import DataTree
    from zkfast.core.requests import PendingView, Prepper

    prepper = Prepper(PendingView(DataTree(), True), validate_path=lambda p: True,
                      check_acl=lambda a, p, i: True, fixup_acl=lambda a, i: list(a),
                      is_session_live=lambda s: True, extended_types_enabled=False)
    a1, a2, a3 = (list(OPEN) for _ in range(3))
    r1 = prepper.share_txn_acls(1, ("/x", b"", a1, False, 1))
    r2 = prepper.share_txn_acls(7, ("/x", a2, 1))
    (_, r3), (_, r4) = prepper.share_txn_acls(14, [(15, ("/y", b"", a3, False, 2)),
                                                   (-1, (-101,))])
    assert r1 == ("/x", b"", OPEN, False, 1) and r2 == ("/x", OPEN, 1)
    assert r1[2] is a1 and r2[1] is a1 and r3[2] is a1 and r4 == (-101,)
    assert prepper.share_txn_acls(5, ("/x", b"", 3)) == ("/x", b"", 3)
