"""ServerCore's ensemble modes (docs/zab.md §3), a leader and a learner driven against each other.

The test plays the quorum node by hand: a learner's forwarded request goes to
``leader.submit_learner_request``, the leader's AppendTxns txns are committed at once
(``leader.commit``) and handed to every learner (``apply_committed``), a forwarded sync is
answered (``sync_done``) once the last proposal before it is committed, a REVALIDATE is
answered by ``leader.revalidate``. Clients speak raw frames. The central check: a client on a
follower gets byte for byte the replies and notifications the same client gets on the leader
(Apache's FinalRequestProcessor answers on a follower from applying the committed txn).
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from zkfast.config import ServerConfig
from zkfast.core.actions import AppendTxns, CloseClient, SendToClient
from zkfast.core.datatree import DataTree
from zkfast.core.events import (
    ClientConnected,
    ClientDisconnected,
    ClientFramesReceived,
    Ticked,
    TxnsDurable,
)
from zkfast.core.server import ServerCore
from zkfast.core.sessions import generate_passwd
from zkfast.wire import client_codec as cc
from zkfast.wire.txn_codec import decode_txn

OPEN = [(31, ("world", "anyone"))]
T0 = 1_700_000_000_000
EPOCH = 3
NONODE, BADVERSION, NODEEXISTS, NOTEMPTY, BADARGS, SESSIONEXPIRED = (
    -101, -103, -110, -111, -8, -112)


class Member:
    """One ServerCore with what it sent to each client connection."""

    def __init__(self, myid: int, **cfg: Any) -> None:
        base: dict[str, Any] = dict(tick_ms=2000, server_id=myid)
        base.update(cfg)
        self.core = ServerCore(ServerConfig(**base), now_ms=T0, rng=random.Random(myid))
        self.sent: dict[int, list[bytes]] = {}
        self.closed: dict[int, str] = {}
        self.appended: list[tuple[int, bytes]] = []

    def take(self, actions: list[Any]) -> None:
        for a in actions:
            if isinstance(a, AppendTxns):
                self.appended.extend(a.txns)
            elif isinstance(a, SendToClient):
                assert a.conn_id not in self.closed, "sent after close"
                self.sent.setdefault(a.conn_id, []).extend(cc.split_reply_frames(a.data))
            elif isinstance(a, CloseClient):
                self.closed[a.conn_id] = a.reason


class Ensemble:
    """A leader and learners wired as a quorum node would wire them (commits are instant)."""

    def __init__(self, leader_id: int = 1, learner_ids: tuple[int, ...] = (2,),
                 observer_ids: tuple[int, ...] = (), **cfg: Any) -> None:
        self.now = T0
        self.leader = Member(leader_id, **cfg)
        self.learners: dict[int, Member] = {}
        self.requests: list[tuple[int, int, int, int, bytes, list[tuple[str, str]]]] = []
        self.revalidations: list[tuple[int, int, int]] = []
        self.syncs: list[tuple[int, int]] = []  # (learner, zxid whose commit releases it)
        self.committed: list[tuple[int, bytes]] = []
        self.hold = False  # True: proposals wait (not committed) until release()
        self.leader.core.set_mode("leader", EPOCH, now_ms=self.now)
        for myid in learner_ids + observer_ids:
            m = Member(myid, **cfg)
            self.learners[myid] = m
            m.core.forward = self._forwarder(myid)
            m.core.revalidate_request = self._revalidator(myid)
            m.core.set_mode("observer" if myid in observer_ids else "follower", EPOCH,
                            now_ms=self.now)

    def _forwarder(self, myid: int) -> Any:
        def forward(sid: int, cxid: int, op: int, body: bytes,
                    auth: list[tuple[str, str]]) -> None:
            self.requests.append((myid, sid, cxid, op, body, auth))
        return forward

    def _revalidator(self, myid: int) -> Any:
        def revalidate(sid: int, timeout: int) -> None:
            self.revalidations.append((myid, sid, timeout))
        return revalidate

    def member(self, myid: int) -> Member:
        return self.leader if myid == self.leader.core.config.server_id else self.learners[myid]

    # -------------------------------------------------------------- the node's part
    def step(self, myid: int, ev: Any) -> None:
        m = self.member(myid)
        m.take(m.core.step(ev, self.now))
        self.pump()

    def pump(self) -> None:
        leader = self.leader
        while True:
            busy = False
            while self.requests:
                busy = True
                myid, sid, cxid, op, body, auth = self.requests.pop(0)
                if op == 9:  # the peer answers a learner's sync after what is outstanding
                    self.syncs.append((myid, leader.core.last_proposed_zxid))
                else:
                    leader.core.submit_learner_request(sid, cxid, op, body, auth,
                                                       owner=myid, now_ms=self.now)
            while self.revalidations:
                busy = True
                myid, sid, timeout = self.revalidations.pop(0)
                valid = leader.core.revalidate(sid, timeout, owner=myid, now_ms=self.now)
                m = self.learners[myid]
                m.core.revalidated(sid, valid, now_ms=self.now)
                m.take(m.core.flush_actions())
            leader.take(leader.core.flush_actions())
            if not self.hold:
                busy |= self.release()
            if not busy:
                return

    def release(self) -> bool:
        """Commit every proposal handed out so far, then answer the syncs it releases."""
        leader = self.leader
        fresh = leader.appended[len(self.committed):]
        for z, txn in fresh:
            self.committed.append((z, txn))
            leader.core.commit(z, now_ms=self.now)
            leader.take(leader.core.flush_actions())
            for m in self.learners.values():
                m.core.apply_committed(z, txn, now_ms=self.now)
                m.take(m.core.flush_actions())
        last = self.committed[-1][0] if self.committed else 0
        released = [s for s in self.syncs if s[1] <= last]
        self.syncs = [s for s in self.syncs if s[1] > last]
        for myid, _ in released:
            m = self.learners[myid]
            m.core.sync_done(now_ms=self.now)
            m.take(m.core.flush_actions())
        return bool(fresh or released)

    def ping(self) -> None:
        """Every learner's PING reply: its touched sessions go to the leader's tracker."""
        for m in self.learners.values():
            self.leader.core.touch_sessions(m.core.touched_sessions(), now_ms=self.now)

    def advance(self, ms: int) -> None:
        self.now += ms
        for myid in [self.leader.core.config.server_id, *self.learners]:
            self.step(myid, Ticked())

    # -------------------------------------------------------------- clients
    def connect(self, myid: int, conn_id: int, timeout: int = 30000, session_id: int = 0,
                passwd: bytes = b"\0" * 16) -> tuple[int, int, int, bytes, bool | None] | None:
        self.step(myid, ClientConnected(conn_id, f"10.0.0.{conn_id}", 40000 + conn_id))
        frame = cc.encode_connect_request(timeout, session_id, passwd, 0, False)
        self.step(myid, ClientFramesReceived(conn_id, [frame[4:]]))
        frames = self.member(myid).sent.get(conn_id)
        return cc.decode_connect_response(frames[0]) if frames else None

    def send(self, myid: int, conn_id: int, *reqs: tuple[int, int, Any]) -> None:
        self.step(myid, ClientFramesReceived(conn_id, [frame(*r) for r in reqs]))

    def raw(self, myid: int, conn_id: int) -> list[bytes]:
        return self.member(myid).sent.get(conn_id, [])


def frame(xid: int, op: int, rec: Any) -> bytes:
    """A request frame without its length prefix; a bytes ``rec`` is the raw body."""
    if op == 100:
        return cc.encode_auth(*rec)[4:]
    if isinstance(rec, bytes):
        return cc.encode_request(xid, op, ())[4:] + rec
    return cc.encode_request(xid, op, rec)[4:]


def replies(frames: list[bytes], ops: dict[int, int]) -> list[tuple[int, int, int, Any]]:
    """Decode frames (after the ConnectResponse) given xid -> opcode."""
    return [cc.decode_reply(f, ops.get(int.from_bytes(f[:4], "big", signed=True)))
            for f in frames[1:]]


# ====================================================================== the central check

#: A client session's script: batches of (xid, op, record). Reads ride behind writes in a batch.
SCRIPT: list[list[tuple[int, int, Any]]] = [
    [(1, 1, ("/a", b"one", OPEN, 0)), (2, 4, ("/a", True))],
    [(3, 15, ("/a/b", b"two", OPEN, 0)), (4, 5, ("/a", b"uno", 0)), (5, 12, ("/a", True))],
    [(6, 5, ("/a", b"x", 7)), (7, 1, ("/a", b"", OPEN, 0)), (8, 2, ("/a", -1))],
    [(9, 1, ("/nope/x", b"", OPEN, 0)), (10, 7, ("/a/b", OPEN, 0)), (11, 6, ("/a/b",))],
    [(12, 14, [(1, ("/m", b"", OPEN, 0)), (15, ("/m/c", b"c", OPEN, 0)),
               (19, ("/m/k", b"", OPEN, 4)), (5, ("/m", b"d1", -1)),
               (5, ("/m", b"d2", 1)), (13, ("/m", 2)), (2, ("/m/c", -1))]),
     (13, 4, ("/m", False))],
    [(14, 14, [(1, ("/n", b"", OPEN, 0)), (13, ("/m", 99)), (2, ("/m", -1))]),
     (15, 3, ("/n", False))],
    [(16, 1, ("/e", b"eph", OPEN, 1)), (17, 1, ("/s-", b"", OPEN, 2)),
     (18, 1, ("/s-", b"", OPEN, 2)), (19, 8, ("/", False))],
    [(20, 9, ("/a",)), (21, 4, ("/a/b", False))],
    [(22, 2, ("/a/b", 5)), (23, 2, ("/a/b", -1)), (24, 3, ("/a/b", True)),
     (25, 1, ("/a/b", b"again", OPEN, 0))],
    [(26, 20, b"\0\0\0\x04/m/k"), (27, 5, ("/zookeeper", b"", -1))],
    [(-4, 100, ("digest", b"user:secret")), (29, 1, ("/t", b"", [(31, ("auth", ""))], 0)),
     (30, 6, ("/t",)), (-2, 11, ()), (31, 3, ("/t", False))],
    [(32, 14, [(1, ("/p", b"", OPEN, 0)), (5, ("/p", b"v", -1)), (19, ("/p/c", b"", OPEN, 4)),
               (5, ("/p", b"w", -1)), (2, ("/p/c", -1)), (5, ("/p", b"x", 2))])],
    [(28, -11, ())],
]
SCRIPT_OPS = {xid: op for batch in SCRIPT for xid, op, _ in batch}


def run_script(serving_id: int, leader_id: int, learner_id: int) -> Ensemble:
    ens = Ensemble(leader_id=leader_id, learner_ids=(learner_id,))
    assert ens.connect(serving_id, 7) is not None
    for batch in SCRIPT:
        ens.now += 5
        ens.send(serving_id, 7, *batch)
    return ens


def test_a_follower_answers_byte_for_byte_as_the_leader() -> None:
    # The client's server has myid 1 in both runs, so session ids (and ephemeral owners)
    # agree; every time comes from the same clock.
    on_leader = run_script(serving_id=1, leader_id=1, learner_id=2)
    on_follower = run_script(serving_id=1, leader_id=2, learner_id=1)
    a = on_leader.raw(1, 7)
    b = on_follower.raw(1, 7)
    decoded = replies(a, SCRIPT_OPS)
    assert [r[0] for r in decoded if r[0] != -1] == [x for b in SCRIPT for x, _, _ in b]
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        assert x == y, (i, cc.decode_reply(x, None), cc.decode_reply(y, None))
    assert on_leader.member(1).closed == on_follower.member(1).closed == {
        7: "client closed the session"}
    # Both trees agree with each other and across the runs.
    for ens in (on_leader, on_follower):
        digests = {m.core.tree.digest() for m in (ens.leader, *ens.learners.values())}
        assert len(digests) == 1
    assert on_leader.leader.core.tree.digest() == on_follower.leader.core.tree.digest()


def test_script_outcomes_as_a_client_sees_them() -> None:
    ens = run_script(serving_id=2, leader_id=1, learner_id=2)
    got = {r[0]: r for r in replies(ens.raw(2, 7), SCRIPT_OPS) if r[0] != -1}
    events = [r[3] for r in replies(ens.raw(2, 7), SCRIPT_OPS) if r[0] == -1]
    assert got[1][2] == 0 and got[1][3] == ("/a",)
    assert got[2][3][0] == b"one"
    assert got[3][3][0] == "/a/b" and got[3][3][1][0] == got[3][1]  # create2: czxid = zxid
    assert got[4][3][0][4] == 1  # setData: version 1
    assert got[6][2] == BADVERSION and got[7][2] == NODEEXISTS and got[8][2] == NOTEMPTY
    assert got[9][2] == NONODE
    multi = got[12][3]
    assert [r[0] for r in multi] == [1, 1, 15, 5, 5, 13, 2]  # a create2 op answers as create
    assert multi[3][2][0][4] == 1 and multi[4][2][0][4] == 2  # each setData's own Stat
    assert [(r[0], r[1]) for r in got[14][3]] == [(-1, 0), (-1, BADVERSION), (-1, -2)]
    assert got[15][2] == NONODE
    seq = got[17][3][0]
    assert seq.startswith("/s-") and got[18][3] == (f"/s-{int(seq[3:]) + 1:010d}",)
    assert got[20][2] == 0 and got[20][3] == ("/a",)
    assert got[22][2] == BADVERSION and got[23][2] == 0 and got[24][2] == NONODE
    assert got[26][2] == BADARGS  # deleteContainer from a client (NUL in the path)
    assert got[28][2] == 0
    stats = [r[2] for r in got[32][3]]  # each op's Stat as that op left the node
    assert [(st[0][4], st[0][9]) for st in (stats[1], stats[3], stats[5])] == [
        (1, 0), (2, 1), (3, 0)]
    assert stats[2][1][0] == got[32][1]  # the container's own Stat
    acl = got[30][3][0]  # the auth ACL expanded from the ids the follower forwarded
    assert [e[1][0] for e in acl] == ["digest"] and acl[0][1][1].startswith("user:")
    # watches fired on the follower: getData /a (changed), getChildren /a (child deleted),
    # exists /a/b (created again)
    assert (3, 3, "/a") in events and (4, 3, "/a") in events and (1, 3, "/a/b") in events
    # the leader logged one txn per write (and the createSession), all committed everywhere
    assert [z & 0xFFFFFFFF for z, _ in ens.committed] == list(range(1, len(ens.committed) + 1))
    assert all(z >> 32 == EPOCH for z, _ in ens.committed)
    assert ens.learners[2].core.last_processed_zxid == ens.committed[-1][0]


# ====================================================================== sessions


def test_create_session_through_a_follower_waits_for_the_commit() -> None:
    ens = Ensemble()
    ens.hold = True
    assert ens.connect(2, 1, timeout=8000) is None
    follower = ens.learners[2].core
    # forwarded and prepped at once, committed later
    sid = hdr_sid(ens)
    assert sid not in follower.sessions.sessions and ens.raw(2, 1) == []
    ens.hold = False
    ens.pump()
    hdr, rec, _ = decode_txn(ens.committed[-1][1])
    assert hdr[4] == -10 and hdr[1] == 0 and rec == (8000,)
    pv, timeout, got_sid, passwd, ro = cc.decode_connect_response(ens.raw(2, 1)[0])
    assert (timeout, got_sid, passwd) == (8000, hdr[0], generate_passwd(hdr[0]))
    assert got_sid >> 56 == 2  # made with the follower's myid
    assert sid == got_sid
    assert got_sid in follower.sessions.sessions and got_sid in ens.leader.core.sessions.sessions


def hdr_sid(ens: Ensemble) -> int:
    """The session id of the createSession the leader prepped last."""
    return decode_txn(ens.leader.appended[-1][1])[0][0]


def test_frames_sent_before_the_session_exists_are_held() -> None:
    ens = Ensemble()
    ens.hold = True
    ens.step(2, ClientConnected(1, "10.0.0.1", 1))
    connect = cc.encode_connect_request(30000)[4:]
    ens.step(2, ClientFramesReceived(1, [connect, cc.encode_request(1, 1, ("/h", b"",
                                                                           OPEN, 0))[4:]]))
    ens.step(2, ClientFramesReceived(1, [cc.encode_request(2, 3, ("/h", False))[4:]]))
    assert ens.raw(2, 1) == []
    assert [d[4] for d in decoded_txns(ens.leader.appended)] == [-10]
    ens.hold = False
    ens.pump()
    got = replies(ens.raw(2, 1), {1: 1, 2: 3})
    assert [(r[0], r[2]) for r in got] == [(1, 0), (2, 0)]


def decoded_txns(txns: list[tuple[int, bytes]]) -> list[tuple[int, int, int, int, int]]:
    return [decode_txn(b)[0] for _, b in txns]


def test_close_session_through_a_follower_closes_and_removes_ephemerals() -> None:
    ens = Ensemble()
    ens.connect(2, 1)
    ens.send(2, 1, (1, 1, ("/eph", b"", OPEN, 1)))
    ens.connect(1, 9)
    ens.send(1, 9, (1, 3, ("/eph", True)))
    ens.send(2, 1, (2, -11, ()))
    assert ens.learners[2].closed == {1: "client closed the session"}
    assert "/eph" not in ens.leader.core.tree.nodes
    assert "/eph" not in ens.learners[2].core.tree.nodes
    ev = replies(ens.raw(1, 9), {1: 3})[-1]
    assert ev[0] == -1 and ev[3] == (2, 3, "/eph")  # NodeDeleted on the leader's client
    sid = cc.decode_connect_response(ens.raw(2, 1)[0])[2]
    assert sid not in ens.leader.core.sessions.sessions
    assert sid not in ens.learners[2].core.sessions.sessions


def test_expiry_at_the_leader_removes_ephemerals_and_closes_the_follower_client() -> None:
    ens = Ensemble()
    ens.connect(2, 1, timeout=4000)
    ens.send(2, 1, (1, 1, ("/eph", b"", OPEN, 1)))
    ens.connect(2, 2, timeout=4000)
    ens.send(2, 2, (1, 4, ("/eph", True)))
    sid2 = cc.decode_connect_response(ens.raw(2, 2)[0])[2]
    for _ in range(6):  # client 2 pings, its follower passes the touches on
        ens.now += 1000
        ens.send(2, 2, (-2, 11, ()))
        ens.ping()
        ens.advance(0)
    assert ens.learners[2].closed == {1: "session expired"}
    assert "/eph" not in ens.learners[2].core.tree.nodes
    assert "/eph" not in ens.leader.core.tree.nodes
    ev = [r for r in replies(ens.raw(2, 2), {1: 4}) if r[0] == -1]
    assert ev[-1][3] == (2, 3, "/eph")
    assert sid2 in ens.leader.core.sessions.sessions
    last = decoded_txns(ens.committed)[-1]
    assert last[4] == -11 and last[1] == 0  # the expirer's closeSession, cxid 0


def test_touched_sessions_are_collected_once() -> None:
    ens = Ensemble()
    ens.connect(2, 1, timeout=6000)
    follower = ens.learners[2].core
    sid = cc.decode_connect_response(ens.raw(2, 1)[0])[2]
    assert follower.touched_sessions() == []  # the connect itself touches nothing
    ens.send(2, 1, (-2, 11, ()))
    ens.send(2, 1, (1, 3, ("/", False)))
    assert follower.touched_sessions() == [(sid, 6000)]
    assert follower.touched_sessions() == []


def test_revalidate_through_the_leader() -> None:
    ens = Ensemble()
    first = ens.connect(1, 1, timeout=6000)
    assert first is not None
    sid = first[2]
    # move to the follower: the leader says the session is live
    resp = ens.connect(2, 2, timeout=6000, session_id=sid, passwd=generate_passwd(sid))
    assert resp is not None and resp[1:4] == (6000, sid, generate_passwd(sid))
    assert ens.leader.closed == {}  # the old connection is on another server
    ens.send(2, 2, (1, 1, ("/x", b"", OPEN, 1)))
    assert ens.leader.core.tree.nodes["/x"].ephemeral_owner == sid
    # a wrong password is refused without asking the leader
    bad = ens.connect(2, 3, session_id=sid, passwd=b"\1" * 16)
    assert bad is not None and bad[1:4] == (0, 0, b"\0" * 16)
    assert ens.learners[2].closed[3] == "session expired or invalid password"
    # a session the leader does not know is invalid
    ghost = (2 << 56) | 12345
    gone = ens.connect(2, 4, session_id=ghost, passwd=generate_passwd(ghost))
    assert gone is not None and gone[1:4] == (0, 0, b"\0" * 16)
    assert 4 in ens.learners[2].closed


def test_revalidation_closes_the_connection_that_held_the_session() -> None:
    ens = Ensemble()
    sid = ens.connect(2, 1)[2]  # type: ignore[index]
    ens.connect(2, 2, session_id=sid, passwd=generate_passwd(sid))
    assert ens.learners[2].closed == {1: "client reconnected on another connection"}
    assert cc.decode_connect_response(ens.raw(2, 2)[0])[2] == sid


def test_learner_session_ids_use_myid_and_the_leader_tracks_them() -> None:
    ens = Ensemble(leader_id=3, learner_ids=(5,))
    a = ens.connect(3, 1)
    b = ens.connect(5, 2)
    assert a is not None and b is not None
    assert a[2] >> 56 == 3 and b[2] >> 56 == 5
    assert set(ens.leader.core.sessions.sessions) == {a[2], b[2]}
    assert set(ens.learners[5].core.sessions.sessions) == {a[2], b[2]}


# ====================================================================== sync, observers


def test_sync_on_a_follower_waits_for_the_leaders_sync() -> None:
    ens = Ensemble()
    ens.connect(2, 1)
    ens.connect(1, 2)
    ens.hold = True
    ens.send(1, 2, (1, 1, ("/late", b"", OPEN, 0)))
    ens.send(2, 1, (1, 9, ("/",)), (2, 3, ("/late", False)))
    assert len(ens.raw(2, 1)) == 1  # nothing yet: the sync waits, the read behind it too
    ens.hold = False
    ens.pump()
    got = replies(ens.raw(2, 1), {1: 9, 2: 3})
    assert [(r[0], r[2]) for r in got] == [(1, 0), (2, 0)]
    assert got[0][1] == ens.committed[-1][0]


def test_sync_done_answers_the_oldest_forwarded_sync_first() -> None:
    ens = Ensemble()
    ens.connect(2, 1)
    ens.connect(2, 2)
    ens.hold = True
    ens.send(2, 1, (5, 9, ("/",)))
    ens.send(2, 2, (6, 9, ("/",)))
    follower = ens.learners[2].core
    ens.syncs.clear()
    follower.sync_done(now_ms=ens.now)
    ens.learners[2].take(follower.flush_actions())
    assert len(ens.raw(2, 1)) == 2 and len(ens.raw(2, 2)) == 1


def test_an_observer_serves_like_a_follower() -> None:
    ens = Ensemble(learner_ids=(), observer_ids=(4,))
    ens.connect(4, 1)
    ens.send(4, 1, (1, 15, ("/o", b"v", OPEN, 0)), (2, 4, ("/o", False)))
    got = replies(ens.raw(4, 1), {1: 15, 2: 4})
    assert [(r[0], r[2]) for r in got] == [(1, 0), (2, 0)]
    assert ens.learners[4].core.mode == "observer"


def test_learners_reap_nothing_and_expire_nothing() -> None:
    ens = Ensemble()
    ens.connect(2, 1, timeout=4000)
    ens.send(2, 1, (1, 19, ("/c", b"", OPEN, 4)), (2, 1, ("/c/x", b"", OPEN, 0)),
             (3, 2, ("/c/x", -1)))
    follower = ens.learners[2].core
    assert follower.deadline_ms() is None
    n = len(ens.leader.appended)
    ens.now += 10 * 60_000
    ens.step(2, Ticked())
    assert len(ens.leader.appended) == n and not ens.requests
    ens.advance(0)  # the leader expires the session and reaps the container
    types = [h[4] for h in decoded_txns(ens.leader.appended[n:])]
    assert sorted(types) == [-11, 20]
    assert "/c" not in follower.tree.nodes


# ====================================================================== leader specifics


def test_leader_zxids_continue_in_the_new_epoch() -> None:
    ens = Ensemble()
    ens.connect(1, 1)
    assert ens.leader.appended[0][0] == (EPOCH << 32) | 1


def test_learner_requests_are_prepped_like_local_ones() -> None:
    leader = ServerCore(ServerConfig(tick_ms=2000, server_id=1), now_ms=T0,
                        rng=random.Random(1))
    leader.set_mode("leader", 1, now_ms=T0)
    sid = (2 << 56) | 77
    leader.submit_learner_request(sid, 0, -10, b"\0\0\x75\x30", [], now_ms=T0)
    body = cc.encode_request(1, 1, ("/p", b"d", [(31, ("auth", ""))], 0))[12:]
    leader.submit_learner_request(sid, 1, 1, body, [("ip", "1.2.3.4"), ("digest", "u:h")],
                                  now_ms=T0)
    leader.submit_learner_request(sid, 2, 2, cc.encode_request(2, 2, ("/q", -1))[12:], [],
                                  now_ms=T0)
    leader.submit_learner_request(sid, 3, 20, b"\0\0\0\x02/p", [], now_ms=T0)
    leader.submit_learner_request(sid, 4, 5, b"\xff", [], now_ms=T0)
    leader.submit_learner_request(sid + 1, 5, 5, cc.encode_request(5, 5, ("/p", b"", -1))[12:],
                                  [], now_ms=T0)
    actions = leader.flush_actions()
    (append,) = [a for a in actions if isinstance(a, AppendTxns)]
    txns = [decode_txn(b) for _, b in append.txns]
    assert [t[0][4] for t in txns] == [-10, 1, -1, -1, -1, -1]
    assert [t[0][1] for t in txns] == [0, 1, 2, 3, 4, 5]
    assert txns[0][1] == (30000,)
    assert txns[1][1][2] == [(31, ("digest", "u:h"))]  # auth ACL from the learner's ids
    assert [t[1][0] for t in txns[2:]] == [NONODE, BADARGS, -5, SESSIONEXPIRED]
    assert leader.sessions.is_live(sid)
    leader.step(TxnsDurable(append.txns[-1][0]), T0)  # durable is not committed
    assert leader.last_processed_zxid == 0
    leader.commit(append.txns[-1][0], now_ms=T0)
    assert leader.last_processed_zxid == append.txns[-1][0]
    assert not [a for a in leader.flush_actions() if isinstance(a, SendToClient)]


def test_revalidate_and_touch_sessions_on_the_leader() -> None:
    leader = ServerCore(ServerConfig(tick_ms=2000, server_id=1), now_ms=T0,
                        rng=random.Random(1), sessions=[(11, 4000)])
    leader.set_mode("leader", 1, now_ms=T0 + 100_000)  # restored sessions tracked from now
    assert leader.revalidate(11, 4000, now_ms=T0 + 100_000)
    assert not leader.revalidate(12, 4000)
    leader.touch_sessions([(11, 4000)], now_ms=T0 + 103_000)
    leader.step(Ticked(), T0 + 106_000)
    assert leader.sessions.is_live(11)
    actions = leader.step(Ticked(), T0 + 110_000)
    assert [decode_txn(b)[0][4] for a in actions if isinstance(a, AppendTxns)
            for _, b in a.txns] == [-11]
    assert not leader.revalidate(11, 4000)  # closing


# ====================================================================== off, databases


def test_off_closes_clients_and_fast_forwards_the_handed_out_txns() -> None:
    ens = Ensemble()
    ens.connect(1, 1)
    ens.connect(2, 2)
    ens.send(1, 1, (1, 4, ("/ff", True)))
    ens.hold = True
    ens.send(1, 1, (2, 1, ("/ff", b"", OPEN, 0)), (3, 5, ("/ff", b"z", -1)))
    ens.send(2, 2, (1, 1, ("/never", b"", OPEN, 0)))
    leader, follower = ens.leader, ens.learners[2]
    assert "/ff" not in leader.core.tree.nodes
    before = len(ens.raw(1, 1))
    # a learner going off closes its clients and drops its forwarded requests
    follower.core.set_mode("off", EPOCH)
    follower.take(follower.core.flush_actions())
    assert follower.closed == {2: "ZooKeeperServer not running"}
    leader.core.set_mode("off", EPOCH)
    leader.take(leader.core.flush_actions())
    assert leader.closed == {1: "ZooKeeperServer not running"}
    assert len(ens.raw(1, 1)) == before  # no replies, no notifications
    assert leader.core.tree.nodes["/ff"].data == b"z"
    assert "/never" in leader.core.tree.nodes
    assert leader.core.last_processed_zxid == leader.appended[-1][0]
    assert leader.core.watches.by_path() == {}
    # the learner's logged, uncommitted proposals are applied with no one to answer
    for z, txn in leader.appended[len(ens.committed):]:
        follower.core.apply_committed(z, txn)
    assert follower.core.tree.digest() == leader.core.tree.digest()
    assert not follower.core.flush_actions()
    # connections are refused while off, learner requests are not prepped
    follower.take(follower.core.step(ClientConnected(5, "h", 1), ens.now))
    follower.take(follower.core.step(
        ClientFramesReceived(5, [cc.encode_connect_request(30000)[4:]]), ens.now))
    assert follower.closed[5] == "ZooKeeperServer not running"
    leader.core.submit_learner_request(1, 1, 2, b"\0\0\0\x02/x\xff\xff\xff\xff", [])
    assert leader.core.flush_actions() == []
    assert leader.core.deadline_ms() is None


def test_off_then_leader_continues_from_the_fast_forwarded_tree() -> None:
    ens = Ensemble()
    ens.connect(2, 1)
    old = ens.learners[2].core
    sid = cc.decode_connect_response(ens.raw(2, 1)[0])[2]
    old.set_mode("off", EPOCH)
    old.set_mode("leader", EPOCH + 1, now_ms=ens.now)
    assert old.sessions.is_live(sid)
    assert old.next_zxid == ((EPOCH + 1) << 32) | 1
    old.step(ClientConnected(3, "h", 1), ens.now)
    actions = old.step(ClientFramesReceived(3, [cc.encode_connect_request(30000)[4:]]),
                       ens.now)
    (append,) = [a for a in actions if isinstance(a, AppendTxns)]
    assert [z for z, _ in append.txns] == [((EPOCH + 1) << 32) | 1]
    assert decode_txn(append.txns[0][1])[0][0] >> 56 == 2  # this server's myid
    assert old.flush_actions() == []


def test_load_database_and_sync_snapshot_body() -> None:
    snapshot = pytest.importorskip("zkfast.storage.snapshot")
    if not hasattr(snapshot, "decode_sync_snapshot"):
        pytest.skip("storage.snapshot has no decode_sync_snapshot yet")
    ens = Ensemble()
    ens.connect(1, 1)
    ens.send(1, 1, (1, 1, ("/snap", b"s", OPEN, 1)), (2, 1, ("/snap2", b"", OPEN, 0)))
    leader = ens.leader.core
    blob = leader.sync_snapshot_body()
    tree, sessions = snapshot.decode_sync_snapshot(blob, zxid=leader.last_processed_zxid)
    fresh = Member(6)
    fresh.core.set_mode("off", 0)
    fresh.core.load_database(tree, sessions, now_ms=ens.now)
    assert fresh.core.tree.digest() == leader.tree.digest()
    assert fresh.core.last_processed_zxid == leader.last_processed_zxid
    assert sorted(fresh.core.sessions.sessions) == sorted(leader.sessions.sessions)
    fresh.core.forward = lambda *a: None
    fresh.core.set_mode("follower", EPOCH, now_ms=ens.now)
    assert fresh.core.prepper.view.tree is tree


def test_load_database_replaces_view_and_sessions() -> None:
    core = ServerCore(ServerConfig(tick_ms=2000, server_id=4), now_ms=T0,
                      rng=random.Random(1))
    core.set_mode("off", 0)
    tree = DataTree()
    tree.last_processed_zxid = (2 << 32) | 9
    core.load_database(tree, [(5, 6000)], now_ms=T0)
    assert core.tree is tree and core.view.tree is tree and core.prepper.view is core.view
    assert core.next_zxid == tree.last_processed_zxid + 1
    assert list(core.sessions.sessions) == [5]
    core.set_mode("leader", 3, now_ms=T0)
    assert core.prepper.is_session_live(5)
    assert core.sessions.allocate_id() >> 56 == 4


def test_standalone_is_unchanged_by_the_mode_machinery() -> None:
    core = ServerCore(ServerConfig(tick_ms=2000, server_id=9), now_ms=T0,
                      rng=random.Random(1))
    assert core.mode == "standalone"
    core.step(ClientConnected(1, "h", 1), T0)
    actions = core.step(ClientFramesReceived(1, [cc.encode_connect_request(30000)[4:]]), T0)
    (append,) = [a for a in actions if isinstance(a, AppendTxns)]
    assert decode_txn(append.txns[0][1])[0][0] >> 56 == 1  # standalone: server id 1
    core.step(TxnsDurable(append.txns[-1][0]), T0)
    core.step(ClientDisconnected(1), T0)


def test_a_commit_for_a_gone_connection_answers_no_one() -> None:
    ens = Ensemble()
    ens.connect(2, 1)
    ens.hold = True
    ens.send(2, 1, (1, 1, ("/gone", b"", OPEN, 0)), (2, 9, ("/",)))
    ens.step(2, ClientDisconnected(1))
    ens.hold = False
    ens.pump()
    follower = ens.learners[2].core
    assert "/gone" in follower.tree.nodes
    assert not follower._forwarded and not follower._forwarded_syncs
    assert len(ens.raw(2, 1)) == 1  # only the ConnectResponse


def test_a_write_from_the_connection_a_session_left_is_session_moved() -> None:
    """SessionTrackerImpl.checkSession with owners: the session moved from follower 2 to
    follower 3 (REVALIDATE made 3 its owner); a write still arriving through 2's old
    connection becomes a SESSIONMOVED error txn, and 2 closes that connection without a
    reply (FinalRequestProcessor), while the session goes on through 3 and the leader."""
    ens = Ensemble(learner_ids=(2, 3))
    sid = ens.connect(2, 1)[2]  # type: ignore[index]
    ens.send(2, 1, (1, 1, ("/a", b"", OPEN, 0)))
    assert len(ens.raw(2, 1)) == 2
    moved = ens.connect(3, 2, session_id=sid, passwd=generate_passwd(sid))
    assert moved is not None and moved[2] == sid
    assert 1 not in ens.learners[2].closed  # the old connection is on another server
    ens.send(2, 1, (2, 1, ("/b", b"", OPEN, 0)))
    assert ens.learners[2].closed[1] == "session moved to another server"
    assert len(ens.raw(2, 1)) == 2  # no reply to the moved write
    assert "/b" not in ens.leader.core.tree.nodes
    ens.send(3, 2, (3, 1, ("/c", b"", OPEN, 0)))
    assert cc.decode_reply(ens.raw(3, 2)[-1], 1)[2] == 0
    assert "/c" in ens.leader.core.tree.nodes
    # back on the leader itself: the leader's own connections own it now
    again = ens.connect(1, 3, session_id=sid, passwd=generate_passwd(sid))
    assert again is not None and again[2] == sid
    ens.send(3, 2, (4, 1, ("/d", b"", OPEN, 0)))
    assert ens.learners[3].closed[2] == "session moved to another server"
    ens.send(1, 3, (5, 1, ("/e", b"", OPEN, 0)))
    assert cc.decode_reply(ens.raw(1, 3)[-1], 1)[2] == 0
