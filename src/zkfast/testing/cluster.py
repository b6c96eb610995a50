"""Simulated deployments: N quorum peers, or one standalone server with M clients.

Each node is the real core (``QuorumPeerCore`` or ``ServerCore``) behind the real ``Driver``
(``sim_env.PeerDriver`` for the peer actions) on a sim Env. A standalone server also runs the
real ``DiskTxnLog`` over a ``SimDisk`` and restarts through the real ``storage.recovery``.
Crashing a node drops its in-memory state and its connections; restarting it rebuilds the
core from what its disk kept.

Observers (``checkers``) hook into ``on_role``, ``on_send``, ``on_append``, ``on_recovered``.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..config import QuorumConfig, ServerConfig
from ..core.actions import RoleChanged
from ..core.events import (
    ClientConnected,
    ClientDisconnected,
    ClientFramesReceived,
    EpochDurable,
    LeaderConnected,
    LeaderConnectFailed,
    LeaderDisconnected,
    LeaderPacketsReceived,
    LearnerConnected,
    LearnerDisconnected,
    LearnerPacketsReceived,
    PeerMessageReceived,
    StorageFailed,
    TxnsDurable,
)
from ..core.peer import QuorumPeerCore
from ..core.server import ServerCore
from ..quorum import QuorumVerifier, verifier_from_properties
from ..runtime.disk_log import DiskTxnLog, LogSettings
from ..runtime.driver import Driver
from ..storage import epochs as epoch_files
from ..storage.recovery import Recovered, recover
from ..wire.peer_codec import (
    PacketType,
    ServerState,
    decode_notification,
    decode_quorum_packet,
    split_quorum_packets,
)
from .linearizability import History
from .rawclient import OP, OPEN_ACL, Reader, Writer, read_connect_response, take_frames
from .sim_env import (
    DiskFaults,
    NetFaults,
    Network,
    PeerDriver,
    SimDisk,
    SimLoop,
    SimPeerEnv,
    SimServerEnv,
    World,
)
from .workload import RegisterClient, arm_read_timeout

__all__ = ["PeerCluster", "PeerNode", "StandaloneCluster", "StandaloneNode", "SimClient",
           "make_verifier"]

DATA = "/data/version-2"
#: An election link sends at most one message per this many ms (its send slot holds one).
SEND_SLOT_MS = 1


def make_verifier(n: int, observers: tuple[int, ...] = ()) -> QuorumVerifier:
    """server.1..n, quorum ports 2000+sid, election ports 3000+sid; ``observers`` observe."""
    return verifier_from_properties({
        f"server.{s}": f"10.0.0.{s}:{2000 + s}:{3000 + s}"
                       + (":observer" if s in observers else "")
        for s in range(1, n + 1)})


# ============================================================================ peers


@dataclass
class _QConn:
    learner: int
    learner_conn: int
    leader: int
    leader_conn: int


class PeerNode:
    """One quorum peer: a QuorumPeerCore, a PeerDriver, a SimPeerEnv, a SimDisk of epochs."""

    def __init__(self, cluster: PeerCluster, sid: int, last_zxid: int) -> None:
        self.cluster = cluster
        self.sid = sid
        self.disk = SimDisk(random.Random(cluster.world.rng.random()), cluster.disk_faults,
                            cluster.world)
        #: Paused: events wait in ``_held`` (in order) until ``unpause``.
        self.paused = False
        self._held: list[Callable[[], None]] = []
        #: Peers log no txns yet (sync and broadcast come later): the last zxid is fixed.
        self.last_zxid = last_zxid
        self.core: QuorumPeerCore | None = None
        self.driver: PeerDriver | None = None
        self.env: SimPeerEnv | None = None
        self.role: RoleChanged | None = None
        self.incarnation = 0
        self._epoch_free_at = 0

    @property
    def alive(self) -> bool:
        return self.driver is not None

    def alive_check(self, env: Any) -> Callable[[], bool]:
        return lambda: self.env is env

    def start(self) -> None:
        c, w = self.cluster, self.cluster.world
        d = self.disk

        def read(kind: str) -> bytes | None:
            name = epoch_files.epoch_file_name(kind)
            return d.get(DATA, name) if name in d.list(DATA) else None
        st = epoch_files.resolve_epochs(read("accepted"), read("current"), self.last_zxid)
        try:
            for kind, epoch in st.writes:
                d.write_atomic(DATA, epoch_files.epoch_file_name(kind),
                               epoch_files.format_epoch(epoch))
        except OSError as e:
            # The process exits at startup; a supervisor starts it again later.
            w.log(f"p{self.sid} START FAILED {e}")
            w.after(w.rng.randint(100, 2_000), lambda: None if self.alive else self.start())
            return
        self.incarnation += 1
        cfg = c.config_for(self.sid)
        core = QuorumPeerCore(cfg, last_zxid=self.last_zxid, accepted_epoch=st.accepted_epoch,
                              current_epoch=st.current_epoch, now_ms=w.now_ms())
        env = SimPeerEnv(w, self)
        drv = PeerDriver(core, env)
        env.driver = drv
        self.core, self.env, self.driver = core, env, drv
        w.log(f"p{self.sid} START acceptedEpoch={st.accepted_epoch} "
              f"currentEpoch={st.current_epoch} zxid={self.last_zxid:#x}")
        c.on_start(self)
        drv.start(core.start(w.now_ms()))
        # Links come up: the other peers re-send their last message (QuorumCnxManager).
        for other in c.nodes.values():
            if other is not self and other.alive:
                payload = c.last_sent.get((other.sid, self.sid))
                if payload is not None:
                    c.deliver_election(other.sid, self.sid, payload)

    def crash(self) -> None:
        w = self.cluster.world
        w.log(f"p{self.sid} CRASH")
        self.driver = self.core = self.env = None
        self.role = None
        self.paused = False
        self._held.clear()
        self.disk.crash()
        self.cluster.drop_conns_of(self.sid)

    def wipe(self) -> None:
        """Crash and lose the data directory (a replaced disk); the peer comes back empty."""
        w = self.cluster.world
        if self.alive:
            self.crash()
        w.fault("wipe", f"p{self.sid} WIPE")
        self.disk = SimDisk(random.Random(w.rng.random()), self.cluster.disk_faults, w)
        self.last_zxid = 0
        self.cluster.on_wipe(self)

    def run(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` in this process now, or after what waits (paused, or catching up)."""
        if self.paused or self._held:
            self._held.append(fn)
        else:
            fn()

    def pause(self) -> None:
        """Stop the process (SIGSTOP, a long GC pause): nothing runs, events wait."""
        if self.alive and not self.paused:
            self.paused = True
            self.cluster.world.fault("pause", f"p{self.sid} PAUSE")

    def unpause(self) -> None:
        if not self.paused:
            return
        self.paused = False
        w = self.cluster.world
        w.log(f"p{self.sid} UNPAUSE ({len(self._held)} events waited)")
        if self._held:
            w.after(0, self._drain)

    def _drain(self) -> None:
        """One waiting event per step, oldest first; what arrives meanwhile queues behind
        (a resumed process reads its sockets in order)."""
        if self.paused or not self._held:
            return
        self._held.pop(0)()
        if self._held and not self.paused:
            self.cluster.world.after(0, self._drain)

    def step(self, event: Any) -> None:
        drv = self.driver
        if drv is None:
            return
        if self.paused or self._held:
            self._held.append(lambda: drv.step(event) if self.driver is drv else None)
            return
        drv.step(event)

    # ---- SimPeerEnv callbacks
    def send_to_peer(self, sid: int, payload: bytes) -> None:
        self.cluster.last_sent[(self.sid, sid)] = payload
        self.cluster.deliver_election(self.sid, sid, payload)

    def write_epoch(self, kind: str, epoch: int) -> None:
        """Epoch writes run one at a time, in the order asked (as aio_peers does): the
        temporary file is written and fsync'd, renamed into place (visible, but a crash may
        still keep the old file), and durable when the directory fsync returns."""
        env = self.env
        w = self.cluster.world
        renamed_at = max(w.now, self._epoch_free_at) + self.disk.fsync_ms()
        self._epoch_free_at = renamed_at + self.disk.fsync_ms()
        w.log(f"p{self.sid} WRITE {kind}Epoch={epoch} (durable at {self._epoch_free_at})")
        name = epoch_files.epoch_file_name(kind)
        disk = self.disk

        def renamed() -> None:
            if self.env is env:
                disk.rename_into_place(DATA, name, epoch_files.format_epoch(epoch))

        def done() -> None:
            if self.env is env:
                disk.rename_durable(DATA, name)
                w.log(f"p{self.sid} {kind}Epoch={epoch} durable")
                self.step(EpochDurable(kind, epoch))
        w.at(renamed_at, renamed)
        w.at(self._epoch_free_at, done)

    def connect_to_leader(self, conn_id: int, host: str, port: int) -> None:
        self.cluster.connect(self.sid, conn_id, port)

    def send_quorum_packet(self, conn_id: int, data: bytes) -> None:
        self.cluster.send_packet(self.sid, conn_id, data)

    def close_quorum_conn(self, conn_id: int, reason: str) -> None:
        qc = self.cluster.conns.get((self.sid, conn_id))
        if qc is not None:
            self.cluster.drop_conn(qc, closer=self.sid)

    def role_changed(self, a: RoleChanged) -> None:
        self.role = a
        self.cluster.world.log(f"p{self.sid} ROLE {a.state}/{a.zab_state} leader={a.leader_sid}")
        if a.state != "LEADING":
            for (sid, _), qc in sorted(self.cluster.conns.items()):
                if sid == self.sid and qc.leader == self.sid:
                    self.cluster.drop_conn(qc, closer=self.sid)


class PeerCluster:
    """N peers on one seeded network (election links, quorum connections)."""

    def __init__(self, world: World, n: int, *, net_faults: NetFaults | None = None,
                 disk_faults: DiskFaults | None = None, tick_ms: int = 2000,
                 init_limit: int = 5, last_zxids: dict[int, int] | None = None,
                 observers: tuple[int, ...] = (), readonly: bool = False) -> None:
        self.world = world
        self.net = Network(world, net_faults)
        self.disk_faults = disk_faults or DiskFaults()
        self.verifier = make_verifier(n, observers)
        self.readonly = readonly
        self.tick_ms = tick_ms
        self.init_limit = init_limit
        self.last_sent: dict[tuple[int, int], bytes] = {}
        self._slot: dict[tuple[int, int], bytes] = {}
        self._slot_free_at: dict[tuple[int, int], int] = {}
        self.conns: dict[tuple[int, int], _QConn] = {}
        self._next_leader_conn = 1
        self.on_start_hooks: list[Callable[[PeerNode], None]] = []
        self.on_wipe_hooks: list[Callable[[PeerNode], None]] = []
        zx = last_zxids or {}
        self.nodes: dict[int, PeerNode] = {
            sid: PeerNode(self, sid, zx.get(sid, 0)) for sid in range(1, n + 1)}

    def config_for(self, sid: int) -> ServerConfig:
        kind = "participant" if self.verifier.servers[sid].is_participant else "observer"
        q = QuorumConfig(my_sid=sid, verifier=self.verifier, peer_type=kind,
                         init_limit_ticks=self.init_limit, sync_limit_ticks=2)
        return ServerConfig(data_dir="/data", tick_ms=self.tick_ms, server_id=sid, quorum=q,
                            readonly_mode_enabled=self.readonly)

    def on_start(self, node: PeerNode) -> None:
        for h in self.on_start_hooks:
            h(node)

    def on_wipe(self, node: PeerNode) -> None:
        for h in self.on_wipe_hooks:
            h(node)

    def start_all(self) -> None:
        for sid in sorted(self.nodes):
            self.nodes[sid].start()

    def live(self) -> list[PeerNode]:
        return [n for _, n in sorted(self.nodes.items()) if n.alive]

    # ---- election links
    def deliver_election(self, a: int, b: int, payload: bytes) -> None:
        """Queue a notification on link a->b: one send slot holding only the newest message
        (QuorumCnxManager's queue of capacity 1), sent at most once per ``SEND_SLOT_MS``."""
        key = (a, b)
        waiting = key in self._slot
        self._slot[key] = payload
        if waiting:
            return  # replaces the message not sent yet
        when = max(self.world.now, self._slot_free_at.get(key, 0))
        self._slot_free_at[key] = when + SEND_SLOT_MS

        def transmit() -> None:
            p = self._slot.pop(key, None)
            if p is not None and self.nodes[a].alive:
                self._transmit(a, b, p)
        self.world.at(when, transmit)

    def _transmit(self, a: int, b: int, payload: bytes) -> None:
        def deliver() -> None:
            if self.nodes[a].alive:
                if self.world.verbose and self.nodes[b].alive:
                    n = decode_notification(payload)
                    self.world.log(f"p{b} <- p{a} {ServerState(n.state).name} "
                                   f"leader={n.leader} zxid={n.zxid:#x} "
                                   f"round={n.election_epoch} peerEpoch={n.peer_epoch}")
                self.nodes[b].step(PeerMessageReceived(a, payload))
        self.net.datagram(a, b, deliver)

    def partition(self, groups: list[list[int]]) -> None:
        self.net.partition([list(g) for g in groups])
        for key, qc in sorted(self.conns.items()):
            if key == (qc.learner, qc.learner_conn) and not self.net.linked(qc.learner,
                                                                            qc.leader):
                self.drop_conn(qc, closer=None)

    def heal(self) -> None:
        self.net.heal()
        for (a, b), payload in sorted(self.last_sent.items()):
            if self.nodes[a].alive and self.nodes[b].alive:
                self.deliver_election(a, b, payload)

    # ---- quorum connections
    def _owner_of_port(self, port: int) -> int | None:
        for sid, s in self.verifier.servers.items():
            if s.quorum_port == port:
                return sid
        return None

    def connect(self, sid: int, conn_id: int, port: int) -> None:
        target = self._owner_of_port(port)
        me = self.nodes[sid]
        env = me.env

        def attempt() -> None:
            if me.env is not env:
                return
            t = self.nodes.get(target) if target is not None else None
            if (t is None or not t.alive or not self.net.linked(sid, t.sid) or t.role is None
                    or t.role.state != "LEADING"):
                me.step(LeaderConnectFailed(conn_id, "connection refused"))
                return
            lconn = self._next_leader_conn
            self._next_leader_conn += 1
            qc = _QConn(sid, conn_id, t.sid, lconn)
            self.conns[(sid, conn_id)] = qc
            self.conns[(t.sid, lconn)] = qc
            t.step(LearnerConnected(lconn, f"10.0.0.{sid}:{40000 + conn_id % 1000}"))
            me.step(LeaderConnected(conn_id))
        self.world.after(self.net._delay(), attempt)

    def send_packet(self, sid: int, conn_id: int, data: bytes) -> None:
        qc = self.conns.get((sid, conn_id))
        if qc is None:
            return
        packets, used = split_quorum_packets(data, 0, 1 << 20)
        assert used == len(data), "a SendQuorumPacket held a partial packet"
        to_leader = sid == qc.learner
        dest = qc.leader if to_leader else qc.learner

        def deliver() -> None:
            if self.conns.get((sid, conn_id)) is not qc:
                return
            if self.world.verbose:
                kinds = [PacketType(decode_quorum_packet(p).type).name for p in packets]
                self.world.log(f"p{dest} <= p{sid} {' '.join(kinds)}")
            if to_leader:
                self.nodes[dest].step(LearnerPacketsReceived(qc.leader_conn, packets))
            else:
                self.nodes[dest].step(LeaderPacketsReceived(qc.learner_conn, packets))
        self.net.stream(sid, dest, deliver, lambda: self.drop_conn(qc, closer=None),
                        conn=("q", qc.learner, qc.learner_conn))

    def drop_conn(self, qc: _QConn, closer: int | None) -> None:
        if self.conns.pop((qc.learner, qc.learner_conn), None) is None:
            return
        self.conns.pop((qc.leader, qc.leader_conn), None)
        self.net.forget(("q", qc.learner, qc.learner_conn))
        self.world.log(f"qconn p{qc.learner}-p{qc.leader} closed")
        ln, ld = self.nodes[qc.learner], self.nodes[qc.leader]
        if closer != qc.learner:
            env = ln.env
            self.world.at(self.net.stream_time(qc.leader, qc.learner),
                          lambda: ln.step(LeaderDisconnected(qc.learner_conn))
                          if ln.env is env else None)
        if closer != qc.leader:
            env2 = ld.env
            self.world.at(self.net.stream_time(qc.learner, qc.leader),
                          lambda: ld.step(LearnerDisconnected(qc.leader_conn))
                          if ld.env is env2 else None)

    def drop_conns_of(self, sid: int) -> None:
        for key, qc in sorted(self.conns.items()):
            if key[0] == sid:
                self.drop_conn(qc, closer=sid)


# ============================================================================ standalone


CONNECT_TIMEOUT_MS = 10000
ERR_OK, ERR_NONODE, ERR_NODEEXISTS = 0, -101, -110


@dataclass
class PathModel:
    """What one client wrote to one of its paths: values in issue order, the last acked."""

    values: list[bytes] = field(default_factory=list)
    acked_index: int | None = None
    acked_zxid: int = 0
    exists: bool = False  # the client's belief, to pick create or setData


class SimClient:
    """A ZooKeeper client on the seeded network: one session, one request in flight."""

    def __init__(self, cluster: StandaloneCluster, cid: int, paths: int) -> None:
        self.cluster = cluster
        self.cid = cid
        self.name = ("c", cid)
        self.session_id = 0
        self.passwd = b"\0" * 16
        self.last_zxid = 0
        self.conn_id: int | None = None
        self.connected = False
        #: Reads from the server so far (the read timeout watches it).
        self.frames_seen = 0
        self._buf = bytearray()
        self._xid = 0
        #: xid -> (path, value index of a write, or -1 - the acked index a read must see)
        self.pending: dict[int, tuple[str, int]] = {}
        self.paths = {f"/c{cid}_{k}": PathModel() for k in range(paths)}
        self.acks = 0
        self.ops_sent = 0
        self.stopped = False

    def connect(self) -> None:
        if self.stopped or self.conn_id is not None:
            return
        c = self.cluster
        conn_id = c.new_conn_id()
        self.conn_id = conn_id
        self.connected = False
        self._buf.clear()
        self.pending.clear()
        c.conn_clients[conn_id] = self
        w = Writer().int(0).long(self.last_zxid).int(CONNECT_TIMEOUT_MS).long(self.session_id)
        w.buffer(self.passwd).bool(False)
        c.node.client_open(self, conn_id)
        c.node.client_frames(self, conn_id, [bytes(w.out)])
        arm_read_timeout(self, c.world, c.node)

    def closed(self, conn_id: int) -> None:
        """The connection ended (reset, partition, server close or crash)."""
        if conn_id != self.conn_id:
            return
        self.conn_id = None
        self.connected = False
        self.pending.clear()
        self.cluster.world.after(self.cluster.world.rng.randint(10, 500), self.connect)

    def received(self, conn_id: int, data: bytes) -> None:
        if conn_id != self.conn_id:
            return
        self.frames_seen += 1
        self._buf += data
        for frame in take_frames(self._buf):
            self._frame(frame)

    def _frame(self, frame: bytes) -> None:
        r = Reader(frame)
        if not self.connected:
            timeout, sid, pw = read_connect_response(r)
            if timeout <= 0:  # expired: the server closes; start a new session
                self.session_id, self.passwd = 0, b"\0" * 16
                return
            self.session_id, self.passwd = sid, pw
            self.connected = True
            self._next_op()
            return
        xid, zxid, err = r.int(), r.long(), r.int()
        if xid < 0:
            return  # ping or notification
        self.last_zxid = max(self.last_zxid, zxid)
        got = self.pending.pop(xid, None)
        if got is None:
            return
        path, idx = got
        pm = self.paths[path]
        if idx < 0:  # a read: data, stat
            data = r.buffer() if err == ERR_OK else None
            self.cluster.on_read(self, path, -idx - 1, err, data)
        elif err == ERR_OK:
            pm.exists = True
            if pm.acked_index is None or idx > pm.acked_index:
                pm.acked_index, pm.acked_zxid = idx, zxid
            self.acks += 1
            self.cluster.on_ack(self, path, idx, zxid)
        elif err == ERR_NODEEXISTS:
            pm.exists = True
        elif err == ERR_NONODE:
            pm.exists = False
        w = self.cluster.world
        w.after(w.rng.randint(0, self.cluster.think_ms), self._next_op)

    def _next_op(self) -> None:
        if self.stopped or not self.connected or self.pending or self.conn_id is None:
            return
        rng = self.cluster.world.rng
        path = sorted(self.paths)[rng.randrange(len(self.paths))]
        pm = self.paths[path]
        if pm.acked_index is not None and rng.random() < self.cluster.read_ratio:
            self._xid += 1
            body = Writer().int(self._xid).int(OP["getData"]).string(path).bool(False)
            self.pending[self._xid] = (path, -pm.acked_index - 1)
            self.ops_sent += 1
            self.cluster.node.client_frames(self, self.conn_id, [bytes(body.out)])
            arm_read_timeout(self, self.cluster.world, self.cluster.node)
            return
        value = f"{self.cid}:{len(pm.values)}:{rng.randrange(1 << 30)}".encode()
        pm.values.append(value)
        self._xid += 1
        if pm.exists:
            body = Writer().int(self._xid).int(OP["setData"]).string(path).buffer(value).int(-1)
        else:
            body = Writer().int(self._xid).int(OP["create"]).string(path).buffer(value)
            body.acls(OPEN_ACL).int(0)
        self.pending[self._xid] = (path, len(pm.values) - 1)
        self.ops_sent += 1
        self.cluster.node.client_frames(self, self.conn_id, [bytes(body.out)])
        arm_read_timeout(self, self.cluster.world, self.cluster.node)


#: A client of the standalone server: one that writes its own paths, or a register client.
AnyClient = SimClient | RegisterClient


class StandaloneNode:
    """One standalone server: ServerCore + Driver + SimServerEnv + DiskTxnLog on a SimDisk."""

    def __init__(self, cluster: StandaloneCluster) -> None:
        self.cluster = cluster
        w = cluster.world
        self.disk = SimDisk(random.Random(w.rng.random()), cluster.disk_faults, w)
        #: The process is paused (SIGSTOP): events wait in ``_held`` until ``unpause``.
        self.stopped = False
        self._held: list[Callable[[], None]] = []
        self.core: ServerCore | None = None
        self.driver: Driver | None = None
        self.env: SimServerEnv | None = None
        self.txn_log: DiskTxnLog | None = None
        self.durable_zxid = 0
        self.last_appended = 0
        self.recovered: Recovered | None = None
        #: Open connections of this incarnation: conn_id -> (client, paused, held frames)
        self.conns: dict[int, AnyClient] = {}
        self.conn_paused: dict[int, list[list[bytes]]] = {}
        self.failed = False
        #: This server's name on the network.
        self.net_name: Any = "srv"
        #: How the trace names this process.
        self.label = "srv"

    @property
    def alive(self) -> bool:
        return self.driver is not None

    def alive_check(self, env: Any) -> Callable[[], bool]:
        return lambda: self.env is env

    def start(self) -> bool:
        """Recover from the disk and run; False when startup failed on a disk error (the
        process exited; the caller starts it again later)."""
        c, w = self.cluster, self.cluster.world
        try:
            rec = recover(self.disk, DATA, DATA, log=lambda m: w.log(f"srv recovery: {m}"))
        except OSError as e:
            w.log(f"srv START FAILED {e}")
            self.disk.crash()  # the process is gone; unsynced state too
            return False
        self.recovered = rec
        c.on_recovered(self, rec)
        cfg = ServerConfig(data_dir="/data", tick_ms=2000)
        core = ServerCore(cfg, now_ms=w.now_ms(), rng=random.Random(w.rng.random()),
                          tree=rec.tree, sessions=rec.sessions)
        holder: list[SimServerEnv] = []
        loop: Any = SimLoop(w, self.disk, lambda: bool(holder) and self.env is holder[0],
                            self.run)
        lg = DiskTxnLog(loop,
                        DATA, LogSettings(pre_alloc_size_kb=4, snap_count=c.snap_count),
                        files=self.disk, rng=random.Random(w.rng.random()))
        env = SimServerEnv(w, self, lg)
        holder.append(env)
        drv = Driver(core, env)
        env.driver = drv
        lg.on_durable = lambda z: self._durable(env, z)
        lg.on_failed = lambda reason: self._failed(env, reason)
        self.core, self.env, self.driver, self.txn_log = core, env, drv, lg
        self.durable_zxid = self.last_appended = rec.last_zxid
        self.failed = False
        w.log(f"srv START last_zxid={rec.last_zxid:#x} replayed={rec.txns_replayed} "
              f"truncated={rec.truncated}")
        self.conns.clear()
        self.conn_paused.clear()
        return True

    def run(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` in this process now, or after what waits (paused, or catching up)."""
        if self.stopped or self._held:
            self._held.append(fn)
        else:
            fn()

    def pause(self) -> None:
        """Stop the process (SIGSTOP, a long GC pause): nothing runs, events wait."""
        if self.alive and not self.stopped:
            self.stopped = True
            self.cluster.world.fault("pause", f"{self.label} PAUSE")

    def unpause(self) -> None:
        if not self.stopped:
            return
        self.stopped = False
        w = self.cluster.world
        w.log(f"{self.label} UNPAUSE ({len(self._held)} events waited)")
        if self._held:
            w.after(0, self._drain)

    def _drain(self) -> None:
        """One waiting event per step, oldest first; what arrives meanwhile queues behind
        (a resumed process reads its sockets in order)."""
        if self.stopped or not self._held:
            return
        self._held.pop(0)()
        if self._held and not self.stopped:
            self.cluster.world.after(0, self._drain)

    def _step(self, event: Any) -> None:
        drv = self.driver
        if drv is None:
            return
        self.run(lambda: drv.step(event) if self.driver is drv else None)

    def crash(self) -> None:
        w = self.cluster.world
        w.log(f"{self.label} CRASH")
        self.driver = self.core = self.env = None
        self.txn_log = None
        self.stopped = False
        self._held.clear()
        self.disk.crash()
        conns, self.conns = self.conns, {}
        self.conn_paused.clear()
        for conn_id, cl in sorted(conns.items()):
            t = self.cluster.net.stream_time(self.net_name, cl.name)
            w.at(t, functools.partial(cl.closed, conn_id))

    def _durable(self, env: SimServerEnv, zxid: int) -> None:
        if self.env is env and self.driver is not None:
            self.durable_zxid = max(self.durable_zxid, zxid)
            self.driver.step(TxnsDurable(zxid))  # the log calls back inside the process
            if self.core is not None:
                self.cluster.on_applied(self, self.core.tree.last_processed_zxid,
                                        self.core.tree.digest())

    def _failed(self, env: SimServerEnv, reason: str) -> None:
        if self.env is env and self.driver is not None:
            self.cluster.world.log(f"srv STORAGE FAILED {reason}")
            self.failed = True
            self.driver.step(StorageFailed(reason))

    # ---- client side of the network
    def client_open(self, cl: AnyClient, conn_id: int) -> None:
        env = self.env

        def deliver() -> None:
            if self.env is not env or self.driver is None or self.failed:
                self.cluster.world.after(0, lambda: cl.closed(conn_id))
                return
            self.conns[conn_id] = cl
            self._step(ClientConnected(conn_id, f"10.1.0.{cl.cid}", 50000 + cl.cid))
        self.cluster.net.stream(cl.name, self.net_name, deliver, lambda: cl.closed(conn_id),
                                conn=("client", conn_id))

    def client_frames(self, cl: AnyClient, conn_id: int, frames: list[bytes]) -> None:
        def deliver() -> None:
            if conn_id not in self.conns or self.driver is None:
                return
            held = self.conn_paused.get(conn_id)
            if held is not None:
                held.append(frames)
                return
            self._step(ClientFramesReceived(conn_id, frames))
        self.cluster.net.stream(cl.name, self.net_name, deliver, lambda: self.reset(conn_id, cl),
                                conn=("client", conn_id))

    def reset(self, conn_id: int, cl: AnyClient) -> None:
        """The connection broke: both ends learn it."""
        if self.conns.pop(conn_id, None) is not None:
            self.conn_paused.pop(conn_id, None)
            self._step(ClientDisconnected(conn_id))
        self.cluster.net.forget(("client", conn_id))
        cl.closed(conn_id)

    # ---- SimServerEnv callbacks
    def server_send(self, conn_id: int, data: bytes) -> None:
        cl = self.conns.get(conn_id)
        if cl is None:
            return
        self.cluster.on_send(self, cl, data)
        self.cluster.net.stream(self.net_name, cl.name, lambda: cl.received(conn_id, data),
                                lambda: self.reset(conn_id, cl), conn=("client", conn_id))

    def server_close(self, conn_id: int, reason: str) -> None:
        cl = self.conns.pop(conn_id, None)
        if cl is None:
            return
        self.conn_paused.pop(conn_id, None)
        w = self.cluster.world
        w.at(self.cluster.net.stream_time(self.net_name, cl.name), lambda: cl.closed(conn_id))
        env = self.env
        w.after(0, lambda: self._step(ClientDisconnected(conn_id))
                if self.env is env and self.driver is not None else None)

    def server_pause(self, conn_id: int, pause: bool) -> None:
        if pause:
            self.conn_paused.setdefault(conn_id, [])
            return
        held = self.conn_paused.pop(conn_id, None) or []
        env = self.env

        def feed(frames: list[bytes]) -> None:
            if self.env is env and self.driver is not None and conn_id in self.conns:
                self._step(ClientFramesReceived(conn_id, frames))
        for frames in held:
            self.cluster.world.after(0, functools.partial(feed, frames))

    def appended(self, txns: list[tuple[int, bytes]]) -> None:
        self.cluster.on_append(self, txns)
        self.last_appended = txns[-1][0]


class StandaloneCluster:
    """One standalone server; M clients each writing its own paths, and R register clients
    sharing ``keys`` shared paths (their operations go into ``history``)."""

    def __init__(self, world: World, clients: int, *, net_faults: NetFaults | None = None,
                 disk_faults: DiskFaults | None = None, paths: int = 3,
                 think_ms: int = 20, snap_count: int = 100000,
                 read_ratio: float = 0.0, registers: int = 0, keys: int = 2) -> None:
        self.world = world
        self.read_ratio = read_ratio
        self.net = Network(world, net_faults)
        self.disk_faults = disk_faults or DiskFaults()
        self.think_ms = think_ms
        self.snap_count = snap_count
        self._next_conn = 0
        self.conn_clients: dict[int, AnyClient] = {}
        self.node = StandaloneNode(self)
        self.clients = [SimClient(self, i, paths) for i in range(1, clients + 1)]
        self.history = History()
        self.keys = [f"/r{k}" for k in range(keys)]
        self.reg_clients = [RegisterClient(self, 100 + i, self.keys, self.history)
                            for i in range(1, registers + 1)]
        self.ack_hooks: list[Callable[[SimClient, str, int, int], None]] = []
        self.send_hooks: list[Callable[[StandaloneNode, AnyClient, bytes], None]] = []
        self.append_hooks: list[Callable[[StandaloneNode, list[tuple[int, bytes]]], None]] = []
        self.recovered_hooks: list[Callable[[StandaloneNode, Recovered], None]] = []
        self.applied_hooks: list[Callable[[StandaloneNode, int, int], None]] = []
        self.read_hooks: list[Callable[[SimClient, str, int, int, bytes | None], None]] = []

    def new_conn_id(self) -> int:
        self._next_conn += 1
        return self._next_conn

    def server_for(self, client: Any) -> StandaloneNode:
        return self.node

    def all_clients(self) -> list[AnyClient]:
        return [*self.clients, *self.reg_clients]

    def start(self) -> None:
        self.node.start()
        for cl in self.all_clients():
            self.world.after(self.world.rng.randint(0, 50), cl.connect)

    def on_ack(self, cl: SimClient, path: str, idx: int, zxid: int) -> None:
        for h in self.ack_hooks:
            h(cl, path, idx, zxid)

    def on_applied(self, node: StandaloneNode, zxid: int, digest: int) -> None:
        for h in self.applied_hooks:
            h(node, zxid, digest)

    def on_read(self, cl: SimClient, path: str, acked_index: int, err: int,
                data: bytes | None) -> None:
        for h in self.read_hooks:
            h(cl, path, acked_index, err, data)

    def on_send(self, node: StandaloneNode, cl: AnyClient, data: bytes) -> None:
        for h in self.send_hooks:
            h(node, cl, data)

    def on_append(self, node: StandaloneNode, txns: list[tuple[int, bytes]]) -> None:
        for h in self.append_hooks:
            h(node, txns)

    def on_recovered(self, node: StandaloneNode, rec: Recovered) -> None:
        for h in self.recovered_hooks:
            h(node, rec)
