"""Assembles a quorum peer process: config -> recovery -> epochs -> one QuorumNode + its ports.

``QuorumPeerServer`` is ``ZkfastServer`` for a zoo.cfg with ``server.N`` lines (``config.quorum``
set). Start order (Apache's ``QuorumPeer.start``: ``loadDataBase``, ``startServerCnxnFactory``,
``startLeaderElection``):

1. recover the database from dataDir/dataLogDir (``ZkfastServer._restore``) for the last
   logged zxid and the committed tail (the last commitLogCount txns replayed);
2. read ``version-2/acceptedEpoch``, ``currentEpoch`` (and ``currentEpoch.tmp``), decide with
   ``storage.epochs.resolve_epochs`` and write the files it lists atomically; a
   ``CorruptDataError`` stops the start (Apache refuses to start the same way);
3. build the one sans-IO ``core.node.QuorumNode`` (docs/zab.md §1) over a ``ServerCore`` of the
   recovered database, the epochs, the committed tail and a ``LogHistory`` over the real log
   directory (the DIFF source when this peer leads);
4. bind the client port (four-letter words answer at once);
5. ``aio_peers.PeerRuntime`` binds the election port, and the node's first election round
   runs.

One Driver. ``driver.QuorumDriver`` steps the node with every event: client events from
``aio_client``, ``TxnsDurable`` from the disk log, election and quorum-port events from
``PeerRuntime``, ``EpochDurable`` from the epoch writer, ``LogTruncated``/``SnapshotDurable``
from ``node_storage.NodeStorage``, and ``Ticked`` from its one timer (``node.deadline_ms()``).
It carries out client and txn-log actions through ``AioEnv``, peer actions through
``PeerRuntime`` and ``TruncateLog``/``TakeSnapshot`` through ``NodeStorage``. An exception from
the node on an event that belongs to no client is a broken invariant: the peer stops (exit 1).

Client service. Whether clients are served (a role in BROADCAST, or the read-only service
while LOOKING) is the node's business (it closes the connections and answers "not running");
this module keeps what is IO: the quorum listener follows ``RoleChanged`` (in PeerRuntime),
and the role is logged with Apache's ``LOOKING``/``LEADING``/``FOLLOWING``/``OBSERVING``
lines. Four-letter words read ``node.service`` and ``node.status()``: the serving words answer
"This ZooKeeper instance is not currently serving requests" unless the node serves;
``srvr``/``stat`` say ``Mode: leader|follower|observer|read-only``; ``mntr`` adds the quorum
lines of the status (``zk_peer_state``, election metrics, a leader's learner counts).

Shutdown (SIGTERM): the quorum and election sockets close first (no new proposals arrive),
then the client connections, then the disk log finishes its batch in flight and closes, and
the snapshotter stops.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Callable
from typing import Any

from .. import ZK_COMPAT_VERSION, __version__
from .._impl import IMPLEMENTATION
from ..config import ServerConfig
from ..core.actions import (
    CloseQuorumConn,
    ConnectToLeader,
    RoleChanged,
    SendQuorumPacket,
    SendToPeer,
    TakeSnapshot,
    TruncateLog,
    WriteEpoch,
)
from ..core.node import QuorumNode
from ..core.server import ServerCore
from ..storage.epochs import (
    ACCEPTED_EPOCH_FILE,
    CURRENT_EPOCH_FILE,
    epoch_file_name,
    format_epoch,
    resolve_epochs,
)
from ..storage.recovery import LogHistory
from .aio_client import ClientHub
from .aio_env import AioEnv
from .aio_peers import PeerRuntime, write_file_atomically
from .driver import QuorumDriver
from .node_storage import NodeStorage
from .server import DEFAULT_BACKLOG, GcPolicy, ZkfastServer, _bound, _fmt

__all__ = ["QuorumPeerServer", "NodeView", "read_epochs"]

log = logging.getLogger("zkfast.quorum")


class NodeView:
    """What runtime/admin reads: the node's ServerCore, plus ``peer_status()``.

    ``storage_failed`` also reports "not serving" while the node does not serve (no role in
    BROADCAST, not read-only): the serving four-letter words refuse then, as Apache's do while
    its ZooKeeperServer is not running.
    """

    def __init__(self, node: Any) -> None:
        object.__setattr__(self, "_node", node)

    def peer_status(self) -> Any:
        return self._node.status()

    @property
    def storage_failed(self) -> str | None:
        failed: str | None = self._node.service.storage_failed
        if failed is not None:
            return failed
        node = self._node
        if not (node.serving or node.read_only):
            return "not serving"
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._node.service, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._node.service, name, value)


class _AioPeerEnv:
    """The ``PeerEnv`` of a process: network and epochs to PeerRuntime, reloads to
    NodeStorage."""

    def __init__(self, peers: PeerRuntime, storage: NodeStorage) -> None:
        self.peers = peers
        self.storage = storage

    def send_to_peer(self, a: SendToPeer) -> None:
        self.peers.send_to_peer(a)

    def write_epoch(self, a: WriteEpoch) -> None:
        self.peers.write_epoch(a)

    def connect_to_leader(self, a: ConnectToLeader) -> None:
        self.peers.connect_to_leader(a)

    def send_quorum_packet(self, a: SendQuorumPacket) -> None:
        self.peers.send_quorum_packet(a)

    def close_quorum_conn(self, a: CloseQuorumConn) -> None:
        self.peers.close_quorum_conn(a)

    def role_changed(self, a: RoleChanged) -> None:
        self.peers.role_changed(a)

    def truncate_log(self, a: TruncateLog) -> None:
        self.storage.truncate_log(a)

    def take_snapshot(self, a: TakeSnapshot) -> None:
        self.storage.take_snapshot(a)


def read_epochs(data_dir: str) -> tuple[bytes | None, bytes | None, bytes | None]:
    """The contents of acceptedEpoch, currentEpoch and currentEpoch.tmp (None when missing)."""
    out: list[bytes | None] = []
    for name in (ACCEPTED_EPOCH_FILE, CURRENT_EPOCH_FILE, CURRENT_EPOCH_FILE + ".tmp"):
        try:
            with open(os.path.join(data_dir, "version-2", name), "rb") as f:
                out.append(f.read())
        except FileNotFoundError:
            out.append(None)
    return out[0], out[1], out[2]


class QuorumPeerServer(ZkfastServer):
    """One quorum peer inside the running event loop (see the module docstring)."""

    def __init__(self, config: ServerConfig, *, gc_policy: GcPolicy | None = None) -> None:
        assert config.quorum is not None, "QuorumPeerServer needs server.N lines"
        super().__init__(config, durable=True, gc_policy=gc_policy)
        self.node: QuorumNode | None = None
        self.peer_runtime: PeerRuntime | None = None
        self.node_storage: NodeStorage | None = None
        self.driver: QuorumDriver | None = None
        self.role: RoleChanged | None = None
        #: Called with every RoleChanged (tests and benchmarks watch elections with it).
        self.on_role_changed: Callable[[RoleChanged], None] | None = None

    async def start(self) -> None:
        """Recover, resolve the epochs, build the node, bind the client port, start electing.

        Raises:
            RecoveryError, CorruptDataError: the data directory cannot be used.
            OSError: a port cannot be bound.
        """
        loop = asyncio.get_running_loop()
        cfg = self.config
        q = cfg.quorum
        assert q is not None
        self._stop_requested = asyncio.Event()
        if cfg.secure_client_port is not None:
            log.warning("secureClientPort is not served by quorum peers yet; ignoring it")
        for d in {cfg.data_dir, cfg.log_dir}:
            os.makedirs(d, exist_ok=True)
        if self.gc_policy is not None:
            self.gc_policy.install()
        txn_log, rec = self._restore(loop)
        accepted, current, current_tmp = read_epochs(cfg.data_dir)
        epochs = resolve_epochs(accepted, current, rec.last_zxid, current_tmp=current_tmp)
        for kind, epoch in epochs.writes:
            write_file_atomically(os.path.join(cfg.data_dir, "version-2", epoch_file_name(kind)),
                                  format_epoch(epoch))
        env = AioEnv(loop, txn_log)
        env.on_fatal = self._fatal
        env.on_storage_failed = self._storage_failed
        service = ServerCore(cfg, now_ms=env.now_ms(), rng=random.SystemRandom(),
                             tree=rec.tree, sessions=rec.sessions)
        files = self._files
        node = QuorumNode(cfg, service=service, last_zxid=rec.last_zxid,
                          accepted_epoch=epochs.accepted_epoch,
                          current_epoch=epochs.current_epoch, now_ms=env.now_ms(),
                          committed=list(rec.committed),
                          history=LogHistory(files, os.path.join(cfg.log_dir, "version-2"),
                                             snap_dir=os.path.join(cfg.data_dir, "version-2")),
                          snapshot_bytes=_snapshot_bytes(files, cfg, rec))
        self.node = node
        self.env, self.core = env, service
        peers = PeerRuntime(env.step_global, cfg, loop, on_role_changed=self._role_changed,
                            on_fatal=self._fatal)
        self.peer_runtime = peers
        assert self.snapshotter is not None
        storage = NodeStorage(loop, cfg, txn_log=txn_log, snapshotter=self.snapshotter,
                              files=files, service=lambda: node.service,
                              step=env.step_global, on_failed=self._fatal,
                              gc_policy=self.gc_policy)
        self.node_storage = storage
        driver = QuorumDriver(node, env, _AioPeerEnv(peers, storage))
        env.driver = driver
        self.driver = driver
        self._attach_snapshots(txn_log, service)
        self._start_gc_policy(loop, service)
        hub = ClientHub(env, cfg, four_letter=_four_letter_fn(NodeView(node), cfg, env),
                        on_fatal=self._fatal)
        self.hub = hub
        backlog = cfg.client_port_listen_backlog if cfg.client_port_listen_backlog > 0 \
            else DEFAULT_BACKLOG
        client_host: str | None = cfg.client_port_address or None
        client_port = cfg.client_port
        my = q.my_server
        if client_port is None and my.client_addr is not None:
            host, port = my.client_addr
            client_host, client_port = (None if host in ("", "0.0.0.0") else host), port
        try:
            if client_port is not None:
                srv = await loop.create_server(
                    hub.protocol_factory(secure=False), host=client_host, port=client_port,
                    backlog=backlog, reuse_address=True)
                self._servers.append(srv)
                self.client_addresses = _bound(srv)
            await peers.start()
        except OSError:
            for bound in self._servers:
                bound.close()
            peers.stop()
            env.shutdown()
            if self.snapshotter is not None:
                self.snapshotter.close()
            raise
        driver.start(node.start(env.now_ms()))
        loop_name = type(loop).__module__.split(".")[0]
        log.info(
            "zkfast %s (ZooKeeper %s protocol) quorum peer myid=%d (%s) of %d servers: clients "
            "on %s; election port %s; quorum port %s; last zxid 0x%x, acceptedEpoch %d, "
            "currentEpoch %d; core=%s; loop=%s; dataDir=%s",
            __version__, ZK_COMPAT_VERSION, q.my_sid, q.peer_type, len(q.verifier.servers),
            _fmt(self.client_addresses) or "-", my.election_port, my.quorum_port,
            rec.last_zxid, epochs.accepted_epoch, epochs.current_epoch, IMPLEMENTATION,
            loop_name, os.path.abspath(cfg.data_dir))

    def _role_changed(self, a: RoleChanged) -> None:
        self.role = a
        # Apache's QuorumPeer.run log lines, which operators and tests grep for.
        if a.zab_state in ("ELECTION", "DISCOVERY"):
            log.info("%s", a.state if not a.read_only else "LOOKING (read-only)")
        if self.on_role_changed is not None:
            self.on_role_changed(a)

    async def stop(self) -> None:
        """Close the quorum and election sockets, then shut down as a standalone server does
        (clients, disk log, snapshotter)."""
        if self.peer_runtime is not None:
            self.peer_runtime.stop()
        if self.node_storage is not None:
            self.node_storage.close()
        await super().stop()


def _snapshot_bytes(files: Any, config: ServerConfig, rec: Any) -> int:
    """The size of the snapshot recovery started from (``zookeeper.snapshotSizeFactor``)."""
    if not rec.snapshot_name:
        return 0
    try:
        return int(files.size(os.path.join(config.data_dir, "version-2"), rec.snapshot_name))
    except OSError:
        return 0


def _four_letter_fn(view: Any, config: ServerConfig, env: AioEnv
                    ) -> Callable[[bytes, tuple[str, int]], bytes] | None:
    try:
        from .admin import run_four_letter_word
    except ImportError:
        log.warning("runtime/admin is missing: four-letter words will not be answered")
        return None
    return lambda word, remote: run_four_letter_word(word, view, config, env.now_ms(),
                                                     remote=remote)
