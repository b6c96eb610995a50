"""A simulated ensemble: N ``QuorumNode``s (peer + ServerCore) with real txn logs and clients.

Each ``ZabNode`` is one quorum peer process: a ``QuorumNode`` behind the real
``QuorumDriver``, the real ``DiskTxnLog`` over a ``SimDisk`` (through ``SimLoop``), its epoch
files, and recovery through the real ``storage.recovery.recover`` at every start. The election
links and quorum connections are ``PeerCluster``'s (a ``QuorumStreamSplitter`` per receiving
end, as ``runtime/aio_peers.py`` reads them); the client side is ``StandaloneNode``'s, with the
peer's sid as its network name. ``TruncateLog`` waits for the log to go idle, cuts it with
``storage.recovery.truncate_log``, opens a fresh log and reloads the database (``LogTruncated``);
``TakeSnapshot`` encodes the service's tree at once and makes it durable one fsync later
(``SnapshotDurable``). Log-roll snapshots are not taken (recovery replays every log).

Register clients connect to a server the seed picks for each connection, and move on when it
fails, with their session (a reconnect at another server revalidates it with the leader).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from ..core.actions import (
    RoleChanged,
    TakeSnapshot,
    TruncateLog,
)
from ..core.events import (
    EpochDurable,
    LeaderPacketsReceived,
    LearnerPacketsReceived,
    LogTruncated,
    SnapshotDurable,
    TxnsDurable,
)
from ..core.node import QuorumNode
from ..core.server import ServerCore
from ..runtime.disk_log import DiskTxnLog, LogSettings
from ..runtime.driver import QuorumDriver
from ..storage import epochs as epoch_files
from ..storage.recovery import LogHistory, RecoveryError, recover, truncate_log
from ..storage.tree_io import encode_tree, snapshot_file_name
from ..wire.peer_codec import PacketType, QuorumStreamSplitter, decode_quorum_packet
from .checkers import ClientChecker
from .cluster import DATA, PeerCluster, StandaloneNode
from .linearizability import History
from .sim_env import DiskFaults, NetFaults, SimLoop, SimServerEnv, World
from .workload import RegisterClient

__all__ = ["ZabCluster", "ZabNode"]

PACKET_BYTES_MAX = 1 << 20


class ZabEnv(SimServerEnv):
    """Env + PeerEnv of one peer process incarnation."""

    def send_to_peer(self, a: Any) -> None:
        self.owner.send_to_peer(a.sid, a.payload)

    def write_epoch(self, a: Any) -> None:
        self.owner.write_epoch(a.kind, a.epoch)

    def connect_to_leader(self, a: Any) -> None:
        self.owner.cluster.connect(self.owner.sid, a.conn_id, a.port)

    def send_quorum_packet(self, a: Any) -> None:
        self.owner.cluster.send_packet(self.owner.sid, a.conn_id, a.data)

    def close_quorum_conn(self, a: Any) -> None:
        c = self.owner.cluster
        qc = c.conns.get((self.owner.sid, a.conn_id))
        if qc is not None:
            c.drop_conn(qc, closer=self.owner.sid)

    def role_changed(self, a: RoleChanged) -> None:
        self.owner.role_changed(a)

    def truncate_log(self, a: TruncateLog) -> None:
        self.owner.truncate_log(a.zxid)

    def take_snapshot(self, a: TakeSnapshot) -> None:
        self.owner.take_snapshot(a.zxid)


class ZabNode(StandaloneNode):
    """One quorum peer process (see the module docstring)."""

    def __init__(self, cluster: ZabCluster, sid: int) -> None:
        super().__init__(cluster)  # type: ignore[arg-type]
        self.zc = cluster
        self.sid = sid
        self.net_name = sid
        self.label = f"p{sid}"
        self.qnode: QuorumNode | None = None
        self.peer: Any = None
        self.role: RoleChanged | None = None
        self.incarnation = 0
        self._epoch_free_at = 0
        self.truncations = 0
        self.snapshots = 0

    @property
    def paused(self) -> bool:
        """The process is paused (``pause``/``unpause``)."""
        return self.stopped

    def start(self) -> bool:
        c, w = self.zc, self.zc.world
        cfg = c.config_for(self.sid)
        assert cfg.quorum is not None
        d = self.disk
        try:
            rec = recover(d, DATA, DATA, commit_log_count=cfg.quorum.commit_log_count,
                          log=lambda m: w.log(f"p{self.sid} recovery: {m}"))

            def read(kind: str) -> bytes | None:
                name = epoch_files.epoch_file_name(kind)
                return d.get(DATA, name) if name in d.list(DATA) else None
            st = epoch_files.resolve_epochs(read("accepted"), read("current"), rec.last_zxid)
            for kind, epoch in st.writes:
                d.write_atomic(DATA, epoch_files.epoch_file_name(kind),
                               epoch_files.format_epoch(epoch))
        except OSError as e:
            w.log(f"p{self.sid} START FAILED {e}")
            d.crash()

            def again() -> None:
                if not self.alive:
                    self.start()
            w.after(w.rng.randint(100, 2_000), again)
            return False
        self.recovered = rec
        c.on_recovered(self, rec)
        c.on_epoch(self, "accepted", st.accepted_epoch)
        c.on_epoch(self, "current", st.current_epoch)
        self.incarnation += 1
        service = ServerCore(cfg, now_ms=w.now_ms(), rng=random.Random(w.rng.random()),
                             tree=rec.tree, sessions=rec.sessions)
        node = QuorumNode(cfg, service=service, last_zxid=rec.last_zxid,
                          accepted_epoch=st.accepted_epoch, current_epoch=st.current_epoch,
                          now_ms=w.now_ms(), committed=list(rec.committed),
                          history=LogHistory(d, DATA))
        if c.trace_hooks:
            node.peer.trace = lambda event, **f: c.on_trace(self, event, f)
        holder: list[ZabEnv] = []
        env = ZabEnv(w, self, None)
        holder.append(env)
        env.txn_log = self._new_log(env)
        drv = QuorumDriver(node, env, env)
        env.driver = drv
        self.qnode, self.peer, self.env, self.driver = node, node.peer, env, drv
        self.core = service
        self.txn_log = env.txn_log
        self.durable_zxid = self.last_appended = rec.last_zxid
        self.failed = False
        self.conns.clear()
        self.conn_paused.clear()
        w.log(f"p{self.sid} START last_zxid={rec.last_zxid:#x} acceptedEpoch="
              f"{st.accepted_epoch} currentEpoch={st.current_epoch} "
              f"replayed={rec.txns_replayed} truncated={rec.truncated}")
        drv.start(node.start(w.now_ms()))
        for other in c.zab_nodes.values():
            if other is not self and other.alive:
                payload = c.last_sent.get((other.sid, self.sid))
                if payload is not None:
                    c.deliver_election(other.sid, self.sid, payload)
        return True

    def _new_log(self, env: ZabEnv) -> DiskTxnLog:
        w = self.zc.world
        loop: Any = SimLoop(w, self.disk, lambda: self.env is env, self.run)
        lg = DiskTxnLog(loop, DATA, LogSettings(pre_alloc_size_kb=4, snap_count=100000),
                        files=self.disk, rng=random.Random(w.rng.random()))
        lg.on_durable = lambda z: self._durable_z(env, lg, z)
        lg.on_failed = lambda reason: self._failed_z(env, lg, reason)
        return lg

    def _durable_z(self, env: ZabEnv, lg: DiskTxnLog, zxid: int) -> None:
        if self.env is env and env.txn_log is lg and self.driver is not None:
            self.durable_zxid = max(self.durable_zxid, zxid)
            self.zc.on_durable(self, zxid)
            self.driver.step(TxnsDurable(zxid))

    def _failed_z(self, env: ZabEnv, lg: DiskTxnLog, reason: str) -> None:
        if self.env is env and env.txn_log is lg and self.driver is not None:
            self.zc.world.log(f"p{self.sid} STORAGE FAILED {reason}")
            self.failed = True
            self.driver.step(StorageFailedEvent(reason))

    def crash(self) -> None:
        w = self.zc.world
        super().crash()
        w.log(f"p{self.sid} down")
        self.qnode = self.peer = None
        self.role = None
        self.zc.drop_conns_of(self.sid)

    def step(self, event: Any) -> None:
        self._step(event)

    # ---- peer side
    def send_to_peer(self, sid: int, payload: bytes) -> None:
        self.zc.last_sent[(self.sid, sid)] = payload
        self.zc.deliver_election(self.sid, sid, payload)

    def write_epoch(self, kind: str, epoch: int) -> None:
        """As ``PeerNode.write_epoch``: fsync'd temporary file, rename, directory fsync."""
        env = self.env
        w = self.zc.world
        renamed_at = max(w.now, self._epoch_free_at) + self.disk.fsync_ms()
        self._epoch_free_at = renamed_at + self.disk.fsync_ms()
        name = epoch_files.epoch_file_name(kind)
        disk = self.disk

        def renamed() -> None:
            if self.env is env:
                disk.rename_into_place(DATA, name, epoch_files.format_epoch(epoch))

        def done() -> None:
            if self.env is env:
                disk.rename_durable(DATA, name)
                self.zc.on_epoch(self, kind, epoch)
                self.step(EpochDurable(kind, epoch))
        w.at(renamed_at, renamed)
        w.at(self._epoch_free_at, done)

    def role_changed(self, a: RoleChanged) -> None:
        self.role = a
        self.zc.world.log(f"p{self.sid} ROLE {a.state}/{a.zab_state} leader={a.leader_sid}")
        if a.state != "LEADING":
            for (sid, _), qc in sorted(self.zc.conns.items()):
                if sid == self.sid and qc.leader == self.sid:
                    self.zc.drop_conn(qc, closer=self.sid)

    def truncate_log(self, zxid: int) -> None:
        """Wait for the log to finish what it was handed, cut it after ``zxid``, reload."""
        env = self.env
        w = self.zc.world
        assert isinstance(env, ZabEnv)

        def attempt() -> None:
            if self.env is not env:
                return
            lg = env.txn_log
            if lg._busy or lg._scheduled or lg._queued_zxid is not None:  # noqa: SLF001
                w.after(1, attempt)
                return
            if lg.failed is not None:
                return  # StorageFailed stops the process
            try:
                kept = truncate_log(self.disk, DATA, zxid, DATA)
                assert self.zc.config_for(self.sid).quorum is not None
                rec = recover(self.disk, DATA, DATA,
                              commit_log_count=self.zc.commit_log_count)
            except (OSError, RecoveryError) as e:
                # The runtime stops the peer (NodeStorage.on_failed); a restart recovers.
                w.log(f"p{self.sid} TRUNCATE FAILED {e}")
                self.failed = True
                return
            self.truncations += 1
            w.log(f"p{self.sid} TRUNCATED after {zxid:#x} (kept {kept:#x}); reloaded at "
                  f"{rec.last_zxid:#x}")
            self.zc.on_truncated(self, rec.last_zxid)
            env.txn_log = self._new_log(env)
            self.txn_log = env.txn_log
            self.durable_zxid = rec.last_zxid
            self.last_appended = rec.last_zxid
            self.step(LogTruncated(zxid, rec.tree, rec.sessions, list(rec.committed)))
        w.after(0, attempt)

    def take_snapshot(self, zxid: int) -> None:
        """The service's tree now, durable one fsync (file) + one (directory) later."""
        env = self.env
        w = self.zc.world
        svc = self.core
        assert svc is not None
        tree = svc.tree
        name = snapshot_file_name(tree.last_processed_zxid)
        data = encode_tree(tree, svc.applied_sessions())
        delay = self.disk.fsync_ms() + self.disk.fsync_ms()

        def done() -> None:
            if self.env is not env:
                return
            try:
                if name not in self.disk.list(DATA):
                    self.disk.write_atomic(DATA, name, data)
            except OSError as e:
                w.log(f"p{self.sid} SNAPSHOT FAILED {e}")
                self.failed = True
                return
            self.snapshots += 1
            # Everything up to the snapshot's zxid is durable here now (a SNAP sync).
            self.durable_zxid = max(self.durable_zxid, tree.last_processed_zxid)
            w.log(f"p{self.sid} SNAPSHOT {name} durable")
            self.step(SnapshotDurable(zxid))
        w.after(delay, done)


def StorageFailedEvent(reason: str) -> Any:  # noqa: N802 - the event, imported late
    from ..core.events import StorageFailed
    return StorageFailed(reason)


class ZabCluster(PeerCluster):
    """N peers (``ZabNode``s) on one network, with register clients on shared znodes."""

    def __init__(self, world: World, n: int, *, net_faults: NetFaults | None = None,
                 disk_faults: DiskFaults | None = None, observers: tuple[int, ...] = (),
                 registers: int = 3, keys: int = 2, think_ms: int = 20,
                 tick_ms: int = 2000, init_limit: int = 5, session_checks: bool = True) -> None:
        super().__init__(world, n, net_faults=net_faults, disk_faults=disk_faults,
                         tick_ms=tick_ms, init_limit=init_limit, observers=observers)
        self.think_ms = think_ms
        self.snap_count = 100000
        self.commit_log_count = 500
        self._next_conn = 0
        self.conn_clients: dict[int, Any] = {}
        self.zab_nodes: dict[int, ZabNode] = {sid: ZabNode(self, sid) for sid in range(1, n + 1)}
        self.nodes = self.zab_nodes  # type: ignore[assignment]
        self.history = History()
        self.keys = [f"/r{k}" for k in range(keys)]
        self._client_server: dict[int, tuple[int | None, int]] = {}
        self._splitters: dict[tuple[int, int], QuorumStreamSplitter] = {}
        # Observers (checkers) hook in here.
        self.append_hooks: list[Callable[[ZabNode, list[tuple[int, bytes]]], None]] = []
        self.send_hooks: list[Callable[..., None]] = []
        #: What the clients see (FIFO, views, sync, ephemerals, expiry): ``ClientChecker``.
        self.client_checker = ClientChecker(self) if session_checks else None
        self.reg_clients = [RegisterClient(self, 100 + i, self.keys, self.history,
                                           self.client_checker)
                            for i in range(1, registers + 1)]
        self.durable_hooks: list[Callable[[ZabNode, int], None]] = []
        self.recovered_hooks: list[Callable[[ZabNode, Any], None]] = []
        self.truncated_hooks: list[Callable[[ZabNode, int], None]] = []
        self.epoch_hooks: list[Callable[[ZabNode, str, int], None]] = []
        #: The cores' own safety decisions (``zab.ZabTrace``): (node, event, fields).
        self.trace_hooks: list[Callable[[ZabNode, str, dict[str, Any]], None]] = []

    # ---- what StandaloneNode and the clients ask of their host
    def new_conn_id(self) -> int:
        self._next_conn += 1
        return self._next_conn

    def server_for(self, client: Any) -> ZabNode:
        """The server of the client's current connection (picked when it opens)."""
        conn, sid = self._client_server.get(client.cid, (None, 0))
        if conn != client.conn_id or sid == 0:
            sid = self.world.rng.choice(sorted(self.zab_nodes))
            self._client_server[client.cid] = (client.conn_id, sid)
        return self.zab_nodes[sid]

    def on_send(self, node: Any, cl: Any, data: bytes) -> None:
        for h in self.send_hooks:
            h(node, cl, data)

    def on_append(self, node: Any, txns: list[tuple[int, bytes]]) -> None:
        for h in self.append_hooks:
            h(node, txns)

    def on_durable(self, node: ZabNode, zxid: int) -> None:
        for h in self.durable_hooks:
            h(node, zxid)

    def on_recovered(self, node: Any, rec: Any) -> None:
        for h in self.recovered_hooks:
            h(node, rec)

    def on_truncated(self, node: ZabNode, zxid: int) -> None:
        for h in self.truncated_hooks:
            h(node, zxid)

    def on_trace(self, node: ZabNode, event: str, fields: dict[str, Any]) -> None:
        if self.world.verbose:
            self.world.log(f"p{node.sid} TRACE {event} " + " ".join(
                f"{k}={v:#x}" if isinstance(v, int) and k != "sid" else f"{k}={v}"
                for k, v in sorted(fields.items())))
        for h in self.trace_hooks:
            h(node, event, fields)

    def on_epoch(self, node: ZabNode, kind: str, epoch: int) -> None:
        for h in self.epoch_hooks:
            h(node, kind, epoch)

    def on_applied(self, node: Any, zxid: int, digest: int) -> None:
        pass

    def start(self) -> None:
        self.start_all()
        for cl in self.reg_clients:
            self.world.after(self.world.rng.randint(0, 50), cl.connect)

    # ---- quorum connections carry a SNAP's raw stream: split them as the runtime does
    def send_packet(self, sid: int, conn_id: int, data: bytes) -> None:
        qc = self.conns.get((sid, conn_id))
        if qc is None:
            return
        to_leader = sid == qc.learner
        dest = qc.leader if to_leader else qc.learner
        dest_conn = qc.leader_conn if to_leader else qc.learner_conn

        def deliver() -> None:
            if self.conns.get((sid, conn_id)) is not qc:
                return
            key = (dest, dest_conn)
            sp = self._splitters.get(key)
            if sp is None:
                sp = QuorumStreamSplitter(PACKET_BYTES_MAX, snapshots=not to_leader)
                self._splitters[key] = sp
            items = sp.feed(data)
            if not items:
                return
            if self.world.verbose:
                kinds = []
                for it in items:
                    try:
                        kinds.append(PacketType(decode_quorum_packet(it).type).name)
                    except Exception:  # noqa: BLE001 - the SNAP stream is no packet
                        kinds.append(f"<{len(it)} bytes>")
                self.world.log(f"p{dest} <= p{sid} {' '.join(kinds)}")
            if to_leader:
                self.zab_nodes[dest].step(LearnerPacketsReceived(qc.leader_conn, items))
            else:
                self.zab_nodes[dest].step(LeaderPacketsReceived(qc.learner_conn, items))
        self.net.stream(sid, dest, deliver, lambda: self.drop_conn(qc, closer=None),
                        conn=("q", qc.learner, qc.learner_conn))

    def drop_conn(self, qc: Any, closer: int | None) -> None:
        self._splitters.pop((qc.learner, qc.learner_conn), None)
        self._splitters.pop((qc.leader, qc.leader_conn), None)
        super().drop_conn(qc, closer)
