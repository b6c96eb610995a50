"""QuorumNode: three (or four) nodes, each with a real ServerCore, synced and broadcasting.

A small deterministic in-memory runtime plays the network and the disks (docs/zab.md §1-§2):
election messages and quorum bytes are delivered after 1 ms, FIFO per link; SNAP streams are
split off with the real ``QuorumStreamSplitter``; AppendTxns, WriteEpoch, TruncateLog and
TakeSnapshot complete after 1 ms (TruncateLog rebuilds the tree from the snapshot and the
logged txns up to the zxid). Clients speak raw frames. The checks follow the ZAB paper's
invariants and zk-formats §4.4/§4.5: sync by DIFF, TRUNC and SNAP, broadcast through leader
and follower, INFORM to observers, leader loss, equal digests at equal zxids.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from zkfast.config import QuorumConfig, ServerConfig
from zkfast.core.actions import (
    AppendTxns,
    CloseClient,
    CloseQuorumConn,
    ConnectToLeader,
    RoleChanged,
    SendQuorumPacket,
    SendToClient,
    SendToPeer,
    TakeSnapshot,
    TruncateLog,
    WriteEpoch,
)
from zkfast.core.datatree import DataTree
from zkfast.core.election import Decision, Vote
from zkfast.core.events import (
    ClientConnected,
    ClientFramesReceived,
    EpochDurable,
    LeaderConnected,
    LeaderConnectFailed,
    LeaderDisconnected,
    LeaderPacketsReceived,
    LearnerConnected,
    LearnerDisconnected,
    LearnerPacketsReceived,
    LogTruncated,
    PeerMessageReceived,
    SnapshotDurable,
    Ticked,
    TxnsDurable,
)
from zkfast.core.node import QuorumNode
from zkfast.core.server import ServerCore
from zkfast.quorum import verifier_from_properties
from zkfast.storage.snapshot import decode_sync_snapshot, encode_sync_snapshot
from zkfast.wire import client_codec as cc
from zkfast.wire.peer_codec import (
    LearnerInfo,
    PacketType,
    QuorumPacket,
    QuorumStreamSplitter,
    ServerState,
    decode_quorum_packet,
    encode_int_body,
    encode_learner_info,
    encode_quorum_packet,
)
from zkfast.wire.txn_codec import decode_txn, encode_txn

T0 = 1_700_000_000_000
OPEN = [(31, ("world", "anyone"))]


@dataclass
class Disk:
    """What survives a crash: the txn log, the epochs and the newest snapshot."""

    log: list[tuple[int, bytes]] = field(default_factory=list)
    accepted: int = 0
    current: int = 0
    snap_zxid: int = 0
    snap: bytes | None = None

    def last_zxid(self) -> int:
        return self.log[-1][0] if self.log else self.snap_zxid

    def rebuild(self, upto: int | None = None) -> tuple[DataTree, list[tuple[int, int]]]:
        """Snapshot + log replay, as recovery does (up to ``upto``)."""
        if self.snap is not None:
            tree, sessions = decode_sync_snapshot(self.snap, zxid=self.snap_zxid)
        else:
            tree, sessions = DataTree(), []
        live = dict(sessions)
        for zxid, data in self.log:
            if zxid <= tree.last_processed_zxid or (upto is not None and zxid > upto):
                continue
            header, record, _ = decode_txn(data)
            tree.apply_txn(header, record)
            if header[4] == -10:
                live[header[0]] = record[0]
            elif header[4] == -11:
                live.pop(header[0], None)
        return tree, sorted(live.items())


class History:
    """TxnHistory over a Disk's log."""

    def __init__(self, disk: Disk) -> None:
        self.disk = disk

    def txns_after(self, zxid: int, limit_bytes: int) -> list[tuple[int, bytes]] | None:
        zs = [z for z, _ in self.disk.log]
        if zxid not in zs:
            return None
        out = self.disk.log[zs.index(zxid) + 1:]
        if sum(len(d) for _, d in out) > limit_bytes:
            return None
        return list(out)


class Cluster:
    """N QuorumNodes on a virtual clock (see the module docstring)."""

    def __init__(self, n: int = 3, *, observers: tuple[int, ...] = (),
                 commit_log_count: int = 500, force_snap: bool = False,
                 reconfig_enabled: bool = False) -> None:
        props = {}
        for sid in range(1, n + 1):
            kind = "observer" if sid in observers else "participant"
            props[f"server.{sid}"] = f"127.0.0.1:{2000 + sid}:{3000 + sid}:{kind}"
        self.verifier = verifier_from_properties(props)
        self.commit_log_count = commit_log_count
        self.force_snap = force_snap
        self.reconfig_enabled = reconfig_enabled
        self.now = T0
        self._seq = 0
        self._queue: list[tuple[int, int, Any]] = []
        self.nodes: dict[int, QuorumNode] = {}
        self.disks: dict[int, Disk] = {sid: Disk() for sid in self.verifier.servers}
        self.roles: dict[int, RoleChanged] = {}
        self._timer: dict[int, int] = {}
        self._conns: dict[tuple[int, int], tuple[int, int, int, int]] = {}
        self._splitters: dict[tuple[int, int], QuorumStreamSplitter] = {}
        self._next_conn = 1
        self._streaming: set[tuple[int, int]] = set()
        self.blocked: set[frozenset[int]] = set()
        self.sent: dict[tuple[int, int], list[bytes]] = {}
        self.closed: dict[tuple[int, int], str] = {}
        self.packets: list[tuple[int, str]] = []  # (sender, packet type) log

    # ------------------------------------------------------------------ scheduling

    def at(self, when: int, fn: Any) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (when, self._seq, fn))

    def run(self, ms: int) -> None:
        end = self.now + ms
        while self._queue and self._queue[0][0] <= end:
            when, _, fn = heapq.heappop(self._queue)
            self.now = max(self.now, when)
            fn()
        self.now = end

    def run_until(self, cond: Any, limit_ms: int = 120_000) -> None:
        end = self.now + limit_ms
        while not cond():
            assert self.now < end, f"condition not reached by {self.now - T0} ms: {self.roles}"
            self.run(10)

    # ------------------------------------------------------------------ nodes

    def config(self, sid: int) -> ServerConfig:
        q = QuorumConfig(my_sid=sid, verifier=self.verifier,
                         peer_type="participant" if self.verifier.servers[sid].is_participant
                         else "observer", init_limit_ticks=5, sync_limit_ticks=2,
                         commit_log_count=self.commit_log_count,
                         force_snapshot_sync=self.force_snap,
                         reconfig_enabled=self.reconfig_enabled)
        return ServerConfig(data_dir="/nonexistent", tick_ms=2000, server_id=sid, quorum=q)

    def start(self, sid: int) -> None:
        d = self.disks[sid]
        tree, sessions = d.rebuild()
        cfg = self.config(sid)
        service = ServerCore(cfg, now_ms=self.now, rng=random.Random(sid), tree=tree,
                             sessions=sessions)
        node = QuorumNode(cfg, service=service, last_zxid=tree.last_processed_zxid,
                          accepted_epoch=d.accepted, current_epoch=d.current, now_ms=self.now,
                          committed=[t for t in d.log if t[0] > d.snap_zxid][-self.commit_log_count:],
                          history=History(d))
        self.nodes[sid] = node
        self._apply(sid, node.start(self.now))

    def kill(self, sid: int) -> None:
        self.nodes.pop(sid, None)
        self.roles.pop(sid, None)
        self._timer[sid] = self._timer.get(sid, 0) + 1
        for key, c in sorted(self._conns.items()):
            if key[0] == sid:
                self._drop(c, closer=sid)

    def partition(self, a: set[int], b: set[int]) -> None:
        for x in a:
            for y in b:
                self.blocked.add(frozenset((x, y)))
        for key, c in sorted(self._conns.items()):
            if key[0] == c[0] and frozenset((c[0], c[2])) in self.blocked:
                self._drop(c, closer=None)

    def step(self, sid: int, ev: Any) -> None:
        node = self.nodes.get(sid)
        if node is not None:
            self._apply(sid, node.step(ev, self.now))

    def _apply(self, sid: int, actions: list[Any]) -> None:
        for a in actions:
            self._action(sid, a)
        node = self.nodes.get(sid)
        if node is None:
            return
        gen = self._timer.get(sid, 0) + 1
        self._timer[sid] = gen
        d = node.deadline_ms()
        if d is not None:
            def fire(sid: int = sid, gen: int = gen) -> None:
                if self._timer.get(sid) == gen:
                    self.step(sid, Ticked())
            self.at(max(d, self.now), fire)

    def _later(self, sid: int, ev: Any) -> None:
        self.at(self.now + 1, lambda: self.step(sid, ev))

    def _action(self, sid: int, a: Any) -> None:  # noqa: C901 - one dispatch
        d = self.disks[sid]
        t = type(a)
        if t is SendToPeer:
            if a.sid in self.nodes and frozenset((sid, a.sid)) not in self.blocked:
                self._later(a.sid, PeerMessageReceived(sid, a.payload))
        elif t is WriteEpoch:
            setattr(d, a.kind, a.epoch)
            self._later(sid, EpochDurable(a.kind, a.epoch))
        elif t is AppendTxns:
            assert not d.log or a.txns[0][0] > d.log[-1][0], "the log went backwards"
            d.log.extend(a.txns)
            self._later(sid, TxnsDurable(a.txns[-1][0]))
        elif t is TruncateLog:
            d.log = [x for x in d.log if x[0] <= a.zxid]
            tree, sessions = d.rebuild(a.zxid)
            tail = [x for x in d.log if x[0] > d.snap_zxid][-self.commit_log_count:]
            self._later(sid, LogTruncated(a.zxid, tree, sessions, tail))
        elif t is TakeSnapshot:
            svc = self.nodes[sid].service
            d.snap = encode_sync_snapshot(svc.tree, svc.applied_sessions())
            d.snap_zxid = a.zxid
            self._later(sid, SnapshotDurable(a.zxid))
        elif t is RoleChanged:
            self.roles[sid] = a
            if a.state != "LEADING":
                for key, c in sorted(self._conns.items()):
                    if key == (sid, c[3]) and c[2] == sid:
                        self._drop(c, closer=sid)
        elif t is ConnectToLeader:
            self._connect(sid, a)
        elif t is SendQuorumPacket:
            self._send(sid, a.conn_id, a.data)
        elif t is CloseQuorumConn:
            c = self._conns.get((sid, a.conn_id))
            if c is not None:
                self._drop(c, closer=sid)
        elif t is SendToClient:
            self.sent.setdefault((sid, a.conn_id), []).extend(cc.split_reply_frames(a.data))
        elif t is CloseClient:
            self.closed[(sid, a.conn_id)] = a.reason
        else:
            raise AssertionError(f"unexpected action {a!r}")

    def _connect(self, sid: int, a: ConnectToLeader) -> None:
        target = a.port - 2000

        def attempt() -> None:
            role = self.roles.get(target)
            if (sid not in self.nodes or target not in self.nodes or role is None
                    or role.state != "LEADING"
                    or frozenset((sid, target)) in self.blocked):
                self.step(sid, LeaderConnectFailed(a.conn_id, "refused"))
                return
            lconn = self._next_conn
            self._next_conn += 1
            c = (sid, a.conn_id, target, lconn)
            self._conns[(sid, a.conn_id)] = c
            self._conns[(target, lconn)] = c
            self._splitters[(sid, a.conn_id)] = QuorumStreamSplitter(1 << 20)
            self._splitters[(target, lconn)] = QuorumStreamSplitter(1 << 20, snapshots=False)
            self.step(target, LearnerConnected(lconn, f"127.0.0.1:{40000 + sid}"))
            self.step(sid, LeaderConnected(a.conn_id))
        self.at(self.now + 1, attempt)

    def _send(self, sid: int, conn_id: int, data: bytes) -> None:
        c = self._conns.get((sid, conn_id))
        if c is None:
            return
        if sid == c[0]:
            dest, key = c[2], (c[2], c[3])
        else:
            dest, key = c[0], (c[0], c[1])
        splitter = self._splitters[key]

        def deliver() -> None:
            if self._conns.get((sid, conn_id)) is not c:
                return
            items = splitter.feed(data)
            if not items:
                return
            for item in items:
                if key in self._streaming:
                    self._streaming.discard(key)  # the SNAP stream, not a packet
                    continue
                kind = PacketType(decode_quorum_packet(item).type)
                self.packets.append((sid, kind.name))
                if kind == PacketType.SNAP and sid == c[2]:
                    self._streaming.add(key)
            if sid == c[0]:
                self.step(dest, LearnerPacketsReceived(c[3], items))
            else:
                self.step(dest, LeaderPacketsReceived(c[1], items))
        self.at(self.now + 1, deliver)

    def _drop(self, c: tuple[int, int, int, int], closer: int | None) -> None:
        learner, lconn, leader, rconn = c
        if self._conns.pop((learner, lconn), None) is None:
            return
        self._conns.pop((leader, rconn), None)
        if closer != learner:
            self._later(learner, LeaderDisconnected(lconn))
        if closer != leader:
            self._later(leader, LearnerDisconnected(rconn))

    # ------------------------------------------------------------------ views

    def leader(self) -> int | None:
        ls = [s for s, r in self.roles.items() if r.state == "LEADING"
              and r.zab_state == "BROADCAST" and s in self.nodes]
        return ls[0] if len(ls) == 1 else None

    def broadcasting(self, sids: set[int] | None = None) -> bool:
        sids = set(self.nodes) if sids is None else sids
        return all(s in self.roles and self.roles[s].zab_state == "BROADCAST" for s in sids)

    def zxid(self, sid: int) -> int:
        return self.nodes[sid].service.tree.last_processed_zxid

    def digest(self, sid: int) -> int:
        return self.nodes[sid].service.tree.digest()

    # ------------------------------------------------------------------ clients

    def connect(self, sid: int, conn_id: int) -> int:
        self.step(sid, ClientConnected(conn_id, "127.0.0.1", 50000 + conn_id))
        self.step(sid, ClientFramesReceived(conn_id, [cc.encode_connect_request(30000)[4:]]))
        self.run_until(lambda: bool(self.sent.get((sid, conn_id))), 10_000)
        _, session_id, _, _, _ = cc.decode_connect_response(self.sent[(sid, conn_id)][0])
        assert session_id != 0
        return session_id

    def request(self, sid: int, conn_id: int, xid: int, op: int, rec: Any) -> tuple[int, int]:
        """Send one request, run until its reply; returns (reply zxid, err)."""
        before = len(self.sent.get((sid, conn_id), []))
        self.step(sid, ClientFramesReceived(conn_id, [cc.encode_request(xid, op, rec)[4:]]))
        self.run_until(lambda: len(self.sent.get((sid, conn_id), [])) > before, 10_000)
        frame = self.sent[(sid, conn_id)][before]
        rxid, zxid, err, _ = cc.decode_reply(frame, op)
        assert rxid == xid
        return zxid, err


def elect(c: Cluster, sids: tuple[int, ...] = (1, 2, 3)) -> int:
    for sid in sids:
        c.start(sid)
    c.run_until(lambda: c.leader() is not None and c.broadcasting(set(sids)))
    leader = c.leader()
    assert leader is not None
    return leader


def create(c: Cluster, sid: int, conn_id: int, xid: int, path: str, data: bytes = b"d"
           ) -> tuple[int, int]:
    return c.request(sid, conn_id, xid, 1, (path, data, OPEN, 0))


def settle(c: Cluster, ms: int = 3000) -> None:
    c.run(ms)


def assert_converged(c: Cluster, sids: tuple[int, ...] | None = None) -> None:
    sids = tuple(c.nodes) if sids is None else sids
    zx = {c.zxid(s) for s in sids}
    assert len(zx) == 1, {s: hex(c.zxid(s)) for s in sids}
    dg = {c.digest(s) for s in sids}
    assert len(dg) == 1, {s: c.digest(s) for s in sids}


# ---------------------------------------------------------------------------- tests


def test_election_then_broadcast_through_leader_and_follower() -> None:
    """ZAB paper: a leader in BROADCAST; writes through either member reach every tree."""
    c = Cluster()
    leader = elect(c)
    assert leader == 3  # equal zxids: the largest sid wins
    epoch = c.nodes[leader].peer.current_epoch
    c.connect(leader, 1)
    zxid, err = create(c, leader, 1, 1, "/a")
    assert err == 0 and zxid == (epoch << 32) | 2  # createSession took | 1
    follower = 1 if leader != 1 else 2
    c.connect(follower, 2)
    zxid2, err = create(c, follower, 2, 1, "/b", b"x")
    assert err == 0 and zxid2 > zxid
    settle(c)
    assert_converged(c)
    for sid in (1, 2, 3):
        assert {"/a", "/b"} <= set(c.nodes[sid].service.tree.nodes)
    # The follower's sync goes through the leader.
    zxid3, err = c.request(follower, 2, 2, 9, ("/b",))
    assert err == 0 and zxid3 >= zxid2
    # Every node's log holds the same txns (the leader's own log included).
    logs = {sid: [z for z, _ in c.disks[sid].log] for sid in (1, 2, 3)}
    assert logs[1] == logs[2] == logs[3]


def test_clients_are_closed_while_not_serving() -> None:
    c = Cluster()
    c.start(1)
    c.run(100)
    c.step(1, ClientConnected(9, "127.0.0.1", 1))
    c.step(1, ClientFramesReceived(9, [cc.encode_connect_request(30000)[4:]]))
    assert c.closed[(1, 9)] == "ZooKeeperServer not running"


def test_sync_by_diff_after_a_restart() -> None:
    """zk-formats §4.4 rule 4: a follower within the committed log gets DIFF + txns."""
    c = Cluster()
    leader = elect(c)
    c.connect(leader, 1)
    create(c, leader, 1, 1, "/a")
    settle(c)
    follower = 1 if leader != 1 else 2
    c.kill(follower)
    for i in range(5):
        create(c, leader, 1, 2 + i, f"/n{i}")
    c.packets.clear()
    c.start(follower)
    c.run_until(lambda: c.broadcasting({follower}))
    assert (leader, "DIFF") in c.packets and (leader, "SNAP") not in c.packets
    settle(c)
    assert_converged(c)


def test_sync_by_trunc_drops_an_uncommitted_txn_of_an_old_epoch() -> None:
    """zk-formats §4.4 rule 3: a follower with a txn nobody else has is truncated."""
    c = Cluster()
    leader = elect(c)
    c.connect(leader, 1)
    create(c, leader, 1, 1, "/a")
    settle(c)
    follower = 1 if leader != 1 else 2
    c.kill(follower)
    # The follower logged a proposal of that epoch that never committed.
    d = c.disks[follower]
    ghost_zxid = d.log[-1][0] + 1
    header = (0x99, 1, ghost_zxid, T0, 1)
    d.log.append((ghost_zxid, encode_txn(header, ("/ghost", b"", OPEN, False, 0), None)))
    c.packets.clear()
    c.start(follower)
    c.run_until(lambda: c.broadcasting({follower}))
    assert (leader, "TRUNC") in c.packets
    assert ghost_zxid not in [z for z, _ in c.disks[follower].log]
    assert "/ghost" not in c.nodes[follower].service.tree.nodes
    create(c, leader, 1, 2, "/after")
    settle(c)
    assert_converged(c)


def test_sync_by_snap_when_forced() -> None:
    c = Cluster(force_snap=True)
    leader = elect(c)
    c.connect(leader, 1)
    create(c, leader, 1, 1, "/a")
    settle(c)
    follower = 2 if leader != 2 else 1
    c.kill(follower)
    create(c, leader, 1, 2, "/b")
    c.packets.clear()
    c.start(follower)
    c.run_until(lambda: c.broadcasting({follower}))
    assert (leader, "SNAP") in c.packets
    assert c.disks[follower].snap is not None
    create(c, leader, 1, 3, "/c")
    settle(c)
    assert_converged(c)
    # The follower's disk alone rebuilds the same tree (snapshot + the log after it).
    tree, _ = c.disks[follower].rebuild()
    assert tree.digest() == c.digest(leader)


@pytest.mark.parametrize("reconfig_enabled", [False, True])
def test_a_snap_takes_the_config_node_from_the_local_config(reconfig_enabled: bool) -> None:
    """ZOOKEEPER-2819: with reconfig disabled, a learner's /zookeeper/config after a SNAP is
    its own config (version -1, mzxid the config version), not what the leader's snapshot
    held (during a rolling restart the two may differ); with reconfig on, the leader's."""
    c = Cluster(force_snap=True, reconfig_enabled=reconfig_enabled)
    leader = elect(c)
    c.connect(leader, 1)
    create(c, leader, 1, 1, "/a")
    settle(c)
    follower = 2 if leader != 2 else 1
    c.kill(follower)
    leaders = c.nodes[leader].service.tree.get_node("/zookeeper/config")
    assert leaders is not None
    leaders.data = b"server.9=127.0.0.1:2009:3009:participant\nversion=0"
    c.packets.clear()
    c.start(follower)
    c.run_until(lambda: c.broadcasting({follower}))
    assert (leader, "SNAP") in c.packets
    node = c.nodes[follower].service.tree.get_node("/zookeeper/config")
    assert node is not None
    if reconfig_enabled:
        assert node.data == leaders.data
    else:
        assert node.data == c.verifier.to_config_text().encode()
        assert (node.version, node.mzxid, node.aversion) == (-1, c.verifier.version, -1)
    settle(c)
    assert_converged(c)  # the config node is outside the digest


def test_sync_by_snap_when_far_behind() -> None:
    """Rule 6: a learner older than the committed log, without the txn log, gets SNAP."""
    c = Cluster(commit_log_count=3)
    leader = elect(c)
    c.connect(leader, 1)
    settle(c)
    follower = 1 if leader != 1 else 2
    c.kill(follower)
    for i in range(8):
        create(c, leader, 1, 1 + i, f"/n{i}")
    c.disks[leader].log = c.disks[leader].log[-2:]  # the old log files are gone
    c.packets.clear()
    c.start(follower)
    c.run_until(lambda: c.broadcasting({follower}))
    assert (leader, "SNAP") in c.packets
    settle(c)
    assert_converged(c)


def test_observer_gets_inform() -> None:
    c = Cluster(4, observers=(4,))
    leader = elect(c, (1, 2, 3, 4))
    c.connect(leader, 1)
    c.packets.clear()
    create(c, leader, 1, 1, "/o")
    settle(c)
    assert (leader, "INFORM") in c.packets
    assert_converged(c)
    c.connect(4, 5)
    zxid, err = create(c, 4, 5, 1, "/from-observer")
    assert err == 0
    settle(c)
    assert_converged(c)


def test_leader_loss_then_a_new_leader_keeps_every_commit() -> None:
    c = Cluster()
    leader = elect(c)
    c.connect(leader, 1)
    for i in range(3):
        create(c, leader, 1, 1 + i, f"/k{i}")
    settle(c)
    old_epoch = c.nodes[leader].peer.current_epoch
    c.kill(leader)
    rest = tuple(s for s in (1, 2, 3) if s != leader)
    c.run_until(lambda: c.leader() is not None and c.broadcasting(set(rest)))
    new = c.leader()
    assert new != leader and c.nodes[new].peer.current_epoch > old_epoch
    for s in rest:
        assert {"/k0", "/k1", "/k2"} <= set(c.nodes[s].service.tree.nodes)
    c.start(leader)
    c.run_until(lambda: c.broadcasting({leader}))
    settle(c)
    assert_converged(c)


def test_a_follower_partitioned_away_goes_looking_and_rejoins() -> None:
    c = Cluster()
    leader = elect(c)
    follower = 1 if leader != 1 else 2
    c.partition({follower}, {1, 2, 3} - {follower})
    c.run_until(lambda: c.roles[follower].state == "LOOKING", 30_000)
    c.blocked.clear()
    c.run_until(lambda: c.broadcasting({1, 2, 3}), 60_000)
    settle(c)
    assert_converged(c)


def test_leader_without_a_quorum_steps_down() -> None:
    c = Cluster()
    leader = elect(c)
    others = {1, 2, 3} - {leader}
    c.partition({leader}, others)
    c.run_until(lambda: c.roles[leader].state == "LOOKING", 30_000)


# ---------------------------------------------------------------------------- a learner by hand
#
# Follower 1 of a three-node ensemble, driven event by event; the test plays leader 3. These
# script the simulator's zab findings (docs/simulator.md) at the one point each turned on.

LEADER = 3


def txn(zxid: int, path: str | None = None) -> tuple[int, bytes]:
    header = (0x77, zxid & 0xFFFF, zxid, T0, 1)
    return zxid, encode_txn(header, (path or f"/t{zxid:x}", b"", OPEN, False, 0), None)


def pkt(kind: PacketType, zxid: int, data: bytes | None = None) -> bytes:
    return encode_quorum_packet(QuorumPacket(kind, zxid, data))


class Learner:
    """One follower QuorumNode and what it did (see above)."""

    def __init__(self, log: list[tuple[int, bytes]], *, epoch: int) -> None:
        self.decision = Decision(Vote(LEADER, 0, 1, epoch, ServerState.LEADING),
                                 ServerState.FOLLOWING)
        self.disk = Disk(log=list(log), accepted=epoch, current=epoch)
        self.cfg = Cluster().config(1)
        tree, sessions = self.disk.rebuild()
        self.now = T0
        service = ServerCore(self.cfg, now_ms=T0, rng=random.Random(1), tree=tree,
                             sessions=sessions)
        self.node = QuorumNode(self.cfg, service=service, last_zxid=tree.last_processed_zxid,
                               accepted_epoch=epoch, current_epoch=epoch, now_ms=T0,
                               history=History(self.disk))
        self.trace: list[tuple[str, dict[str, Any]]] = []
        self.node.peer.trace = lambda event, **f: self.trace.append((event, f))
        self.node.start(T0)
        self.conn = -1

    def step(self, ev: Any) -> list[Any]:
        self.now += 1
        return self.node.step(ev, self.now)

    @staticmethod
    def packets(actions: list[Any]) -> list[tuple[str, int]]:
        """(type name, zxid) of every quorum packet among the actions."""
        out = []
        for a in actions:
            if type(a) is SendQuorumPacket:
                sp = QuorumStreamSplitter(1 << 20, snapshots=False)
                for item in sp.feed(a.data):
                    p = decode_quorum_packet(item)
                    out.append((PacketType(p.type).name, p.zxid))
        return out

    def follow(self, epoch: int) -> list[Any]:
        """Elect leader 3 by hand, connect, LEADERINFO; returns the actions after it."""
        self.node.peer._enter_role(self.decision, self.now)  # noqa: SLF001 - no election here
        acts = self.step(Ticked())
        self.conn = [a for a in acts if type(a) is ConnectToLeader][-1].conn_id
        self.step(LeaderConnected(self.conn))
        acts = self.leader(pkt(PacketType.LEADERINFO, epoch << 32, encode_int_body(0x10000)))
        for a in acts:
            if type(a) is WriteEpoch:
                acts += self.step(EpochDurable(a.kind, a.epoch))
        return acts

    def leader(self, *items: bytes) -> list[Any]:
        return self.step(LeaderPacketsReceived(self.conn, list(items)))

    def reload(self, target: int, upto: int | None = None) -> list[Any]:
        """The env's answer to TruncateLog(target): the log cut, the tree rebuilt."""
        upto = target if upto is None else upto
        self.disk.log = [x for x in self.disk.log if x[0] <= upto]
        tree, sessions = self.disk.rebuild(upto)
        return self.step(LogTruncated(target, tree, sessions, list(self.disk.log)))

    @property
    def state(self) -> str:
        return f"{self.node.peer.state.name}/{self.node.peer.zab_state.name}"


def z2(counter: int) -> int:
    return (2 << 32) | counter


def test_a_durable_report_from_before_a_trunc_acks_nothing() -> None:
    """Sim seed 17: the log reported the pre-TRUNC txns durable after TruncateLog left; the
    learner counted that for the txns it logged again after the cut, wrote currentEpoch and
    ACKed NEWLEADER (and then the proposals) before they were durable, and the leader
    committed on acks that no log backed."""
    ln = Learner([txn(z2(1)), txn(z2(2)), txn(z2(3))], epoch=2)
    acts = ln.follow(2)
    assert ("ACKEPOCH", z2(3)) in ln.packets(acts)
    acts = ln.leader(pkt(PacketType.TRUNC, z2(1)))
    assert [a for a in acts if type(a) is TruncateLog] == [TruncateLog(z2(1))]
    assert ("truncate", {"zxid": z2(1), "last": z2(3)}) in ln.trace
    # Buffered until the reload: the proposals above the cut again, NEWLEADER.
    assert not ln.leader(pkt(PacketType.PROPOSAL, z2(2), txn(z2(2))[1]),
                         pkt(PacketType.PROPOSAL, z2(3), txn(z2(3))[1]),
                         pkt(PacketType.NEWLEADER, 2 << 32, b""))
    assert not ln.step(TxnsDurable(z2(3)))  # the old log's last word
    acts = ln.reload(z2(1))
    assert [t for a in acts if type(a) is AppendTxns for t, _ in a.txns] == [z2(2), z2(3)]
    assert not [a for a in acts if type(a) is WriteEpoch] and not ln.packets(acts)
    acts = ln.step(TxnsDurable(z2(3)))
    assert [a for a in acts if type(a) is WriteEpoch] == [WriteEpoch("current", 2)]
    acts = ln.step(EpochDurable("current", 2))
    assert ln.packets(acts) == [("ACK", 2 << 32)]
    assert ln.trace[-1] == ("newleader_ack", {"zxid": 2 << 32, "need": z2(3),
                                              "durable": z2(3), "current_epoch": 2})


def test_proposals_during_the_current_epoch_write_are_logged() -> None:
    """Sim seed 17 too: a PROPOSAL arriving while currentEpoch was being written (after
    NEWLEADER) ended the learner's role as an unexpected packet."""
    ln = Learner([txn(z2(1))], epoch=2)
    ln.follow(2)
    ln.leader(pkt(PacketType.DIFF, z2(1)), pkt(PacketType.NEWLEADER, 2 << 32, b""))
    acts = ln.step(Ticked())
    acts = ln.leader(pkt(PacketType.PROPOSAL, z2(2), txn(z2(2))[1]))
    assert ln.state == "FOLLOWING/SYNCHRONIZATION"
    assert [t for a in acts if type(a) is AppendTxns for t, _ in a.txns] == [z2(2)]
    assert ln.packets(ln.step(EpochDurable("current", 2))) == [("ACK", 2 << 32)]
    ln.step(TxnsDurable(z2(2)))
    acts = ln.leader(pkt(PacketType.UPTODATE, -1))
    assert ln.packets(acts) == [("ACK", 2 << 32), ("ACK", z2(2))]
    assert ln.state == "FOLLOWING/BROADCAST"
    assert ("ack", {"zxid": z2(2), "durable": z2(2)}) in ln.trace


def test_a_trunc_waits_for_the_snap_snapshot_and_its_txns() -> None:
    """Sim seed 24: a TRUNC came while the SNAP snapshot of the last sync was not durable, so
    the txns logged after the SNAP were still held back (docs/zab.md §2); the cut found an
    empty log and the learner then logged those txns below the zxid it had been cut to."""
    ln = Learner([], epoch=1)
    ln.follow(2)
    snap_tree = Disk(log=[txn(z2(1))]).rebuild()[0]
    stream = encode_sync_snapshot(snap_tree, [])
    acts = ln.leader(pkt(PacketType.SNAP, z2(1)), stream,
                     pkt(PacketType.PROPOSAL, z2(2), txn(z2(2))[1]),
                     pkt(PacketType.PROPOSAL, z2(3), txn(z2(3))[1]))
    assert [a for a in acts if type(a) is TakeSnapshot] == [TakeSnapshot(z2(1))]
    assert not [a for a in acts if type(a) is AppendTxns]
    ln.step(LeaderDisconnected(ln.conn))
    assert ln.node.peer.state.name == "LOOKING"
    acts = ln.follow(2)
    assert ("ACKEPOCH", z2(3)) in ln.packets(acts)
    acts = ln.leader(pkt(PacketType.TRUNC, z2(2)))
    assert not [a for a in acts if type(a) is TruncateLog]
    acts = ln.step(SnapshotDurable(z2(1)))
    kinds = [type(a) for a in acts if type(a) in (AppendTxns, TruncateLog)]
    assert kinds == [AppendTxns, TruncateLog]
    assert [t for a in acts if type(a) is AppendTxns for t, _ in a.txns] == [z2(2), z2(3)]
    assert [a for a in acts if type(a) is TruncateLog] == [TruncateLog(z2(2))]


def test_a_reload_below_the_trunc_zxid_syncs_again() -> None:
    """The data directory could not rebuild the TRUNC zxid (the reload ends below it): the
    learner must not take the leader's txns that follow that zxid; it goes LOOKING and
    proposes where it really is."""
    ln = Learner([txn(z2(1)), txn(z2(2)), txn(z2(3))], epoch=2)
    ln.follow(2)
    ln.leader(pkt(PacketType.TRUNC, z2(2)), pkt(PacketType.NEWLEADER, 2 << 32, b""))
    acts = ln.reload(z2(2), upto=z2(1))
    assert ln.node.peer.state.name == "LOOKING"
    assert not [a for a in acts if type(a) is AppendTxns]
    assert ln.node.peer.last_zxid == z2(1)
    assert ("truncated", {"zxid": z2(2), "landed": z2(1)}) in ln.trace


def test_ackepoch_waits_for_a_truncation_of_the_last_role() -> None:
    """A TRUNC's reload outlived the role that asked for it: the next role's ACKEPOCH must
    name the zxid the log ends at after the cut, not the one before it."""
    ln = Learner([txn(z2(1)), txn(z2(2)), txn(z2(3))], epoch=2)
    ln.follow(2)
    ln.leader(pkt(PacketType.TRUNC, z2(1)))
    ln.step(LeaderDisconnected(ln.conn))
    acts = ln.follow(2)
    assert not [p for p in ln.packets(acts) if p[0] == "ACKEPOCH"]
    acts = ln.reload(z2(1))
    assert ("ACKEPOCH", z2(1)) in ln.packets(acts)


def test_a_new_leader_counts_itself_for_newleader_only_once_its_log_is_durable() -> None:
    """A follower logged a proposal, lost its leader before the fsync returned and was
    elected: its own NEWLEADER ack must wait for that fsync, as Apache's leader loaded its
    history from disk."""
    ln = Learner([txn(z2(1))], epoch=2)
    ln.follow(2)
    ln.leader(pkt(PacketType.DIFF, z2(1)), pkt(PacketType.NEWLEADER, 2 << 32, b""))
    ln.step(EpochDurable("current", 2))
    ln.leader(pkt(PacketType.UPTODATE, -1), pkt(PacketType.PROPOSAL, z2(2), txn(z2(2))[1]))
    ln.step(LeaderDisconnected(ln.conn))  # z2(2) logged, its fsync still running
    peer = ln.node.peer
    peer._enter_role(Decision(Vote(1, z2(2), 2, 2, ServerState.LEADING),  # noqa: SLF001
                              ServerState.LEADING), ln.now)
    ln.step(LearnerConnected(7, "127.0.0.1:40002"))
    info = encode_learner_info(LearnerInfo(2, 0x10000, 0))
    acts = ln.step(LearnerPacketsReceived(7, [pkt(PacketType.FOLLOWERINFO, 2 << 32, info)]))
    assert [a for a in acts if type(a) is WriteEpoch] == [WriteEpoch("accepted", 3)]
    ln.step(EpochDurable("accepted", 3))
    acts = ln.step(LearnerPacketsReceived(7, [pkt(PacketType.ACKEPOCH, z2(1),
                                                  encode_int_body(2))]))
    assert [a for a in acts if type(a) is WriteEpoch] == [WriteEpoch("current", 3)]
    ln.step(EpochDurable("current", 3))
    assert ln.state == "LEADING/SYNCHRONIZATION"
    ln.step(LearnerPacketsReceived(7, [pkt(PacketType.ACK, 3 << 32)]))
    assert ln.state == "LEADING/SYNCHRONIZATION"  # {2} and not us: no quorum yet
    ln.step(TxnsDurable(z2(2)))
    assert ln.state == "LEADING/BROADCAST"
