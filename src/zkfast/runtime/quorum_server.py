"""Assembles a quorum peer process: config -> recovery -> epochs -> QuorumPeerCore + client port.

``QuorumPeerServer`` is ``ZkfastServer`` for a zoo.cfg with ``server.N`` lines (``config.quorum``
set). Start order (Apache's ``QuorumPeer.start``: ``loadDataBase``, ``startServerCnxnFactory``,
``startLeaderElection``):

1. recover the database from dataDir/dataLogDir (``ZkfastServer._restore``) for the last
   logged zxid;
2. read ``version-2/acceptedEpoch``, ``currentEpoch`` (and ``currentEpoch.tmp``), decide with
   ``storage.epochs.resolve_epochs`` and write the files it lists atomically; a
   ``CorruptDataError`` stops the start (Apache refuses to start the same way);
3. bind the client port (four-letter words answer at once);
4. ``runtime/aio_peers.PeerRuntime`` binds the election port and runs the core's first election.

Client service. The ``ServerCore`` built from the recovered database sits behind
``ClientGate``, which the peer's ``RoleChanged`` switches. Until issue 5 brings ZAB sync and
broadcast, no role reaches BROADCAST, so the gate never serves sessions: a ConnectRequest is
answered by closing the connection, as Apache's ``ZooKeeperServer not running`` does, and the
ServerCore gets no ticks (restored sessions must not expire into txns a quorum never agreed
on). Four-letter words work throughout: while LOOKING the serving words say "This ZooKeeper
instance is not currently serving requests"; while a role is held (LEADING/FOLLOWING/
OBSERVING, in discovery or held at synchronization) ``srvr``/``stat`` show ``Mode: leader|
follower|observer`` and ``mntr`` adds ``zk_peer_state`` and the election metrics, read from
``QuorumPeerCore.status()``. (Apache answers "not serving" until its learner has synced;
zkfast shows the decided role, which the ensemble tests rely on.)

Read-only mode: the core emits ``RoleChanged(read_only=True)`` after the grace period (max(2 s,
tickTime) in LOOKING with ``readonlymode.enabled``). The gate then steps the ServerCore into its
read-only service (``ReadOnlyModeChanged(True)``, core/read_only.py): clients that asked for
read-only get local sessions (no txn) over the recovered tree, reads are served, writes get
NOTREADONLY, other clients are closed without a reply; ``isro`` says ``ro`` and ``srvr``
``Mode: read-only``. The next RoleChanged without ``read_only`` (the election ended) stops that
service and closes its connections, as Apache shuts its ReadOnlyZooKeeperServer down.
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
from ..core.actions import CloseClient, RoleChanged
from ..core.events import ClientFramesReceived, ReadOnlyModeChanged, Ticked
from ..core.peer import QuorumPeerCore
from ..storage.epochs import (
    ACCEPTED_EPOCH_FILE,
    CURRENT_EPOCH_FILE,
    epoch_file_name,
    format_epoch,
    resolve_epochs,
)
from .aio_client import ClientHub
from .aio_env import AioEnv
from .aio_peers import PeerRuntime, write_file_atomically
from .driver import Driver
from .server import DEFAULT_BACKLOG, GcPolicy, ZkfastServer, _bound, _durable_core, _fmt

__all__ = ["QuorumPeerServer", "ClientGate", "PeerCoreView", "read_epochs"]

log = logging.getLogger("zkfast.quorum")

NOT_RUNNING = "ZooKeeperServer not running"


class ClientGate:
    """The client service of a quorum peer: a ServerCore that serves only when told to.

    ``serving``: the full service (a role in BROADCAST). ``read_only``: the ServerCore runs its
    read-only service; a ``ReadOnlyModeChanged`` event passing through sets it.
    """

    def __init__(self, core: Any) -> None:
        self.core = core
        self.serving = False
        self.read_only = False

    def step(self, event: Any, now_ms: int) -> list[Any]:
        if self.serving or self.read_only:
            if type(event) is ReadOnlyModeChanged:
                self.read_only = event.read_only
            actions: list[Any] = self.core.step(event, now_ms)
            return actions
        t = type(event)
        if t is ReadOnlyModeChanged:
            self.read_only = event.read_only
        if t is Ticked:
            return []
        if t is ClientFramesReceived:
            # NIOServerCnxn.readConnectRequest: "ZooKeeperServer not running".
            return [CloseClient(event.conn_id, NOT_RUNNING)]
        actions = self.core.step(event, now_ms)
        return actions

    def deadline_ms(self) -> int | None:
        if not self.serving and not self.read_only:
            return None
        d: int | None = self.core.deadline_ms()
        return d


class PeerCoreView:
    """What runtime/admin reads: the ServerCore's attributes plus ``peer_status()``.

    ``storage_failed`` also reports "not serving" while the peer is LOOKING (and not
    read-only), which is when the serving four-letter words must refuse.
    """

    def __init__(self, core: Any, peer: QuorumPeerCore) -> None:
        object.__setattr__(self, "_core", core)
        object.__setattr__(self, "_peer", peer)

    def peer_status(self) -> Any:
        return self._peer.status()

    @property
    def storage_failed(self) -> str | None:
        failed: str | None = self._core.storage_failed
        if failed is not None:
            return failed
        if self._peer.status().server_state is None:
            return "not serving (looking for a leader)"
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._core, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._core, name, value)


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
        self.peer: QuorumPeerCore | None = None
        self.peer_runtime: PeerRuntime | None = None
        self.gate: ClientGate | None = None
        self.role: RoleChanged | None = None
        #: Called with every RoleChanged (tests and benchmarks watch elections with it).
        self.on_role_changed: Callable[[RoleChanged], None] | None = None

    async def start(self) -> None:
        """Recover, resolve the epochs, bind the client port, then start electing.

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
        server_core = _durable_core(cfg, env.now_ms(), random.SystemRandom(), rec)
        gate = ClientGate(server_core)
        env.driver = Driver(gate, env)
        env.on_fatal = self._fatal
        self.env, self.core, self.gate = env, server_core, gate
        self._start_gc_policy(loop, server_core)
        peer = QuorumPeerCore(cfg, last_zxid=rec.last_zxid,
                              accepted_epoch=epochs.accepted_epoch,
                              current_epoch=epochs.current_epoch, now_ms=env.now_ms())
        self.peer = peer
        view = PeerCoreView(server_core, peer)
        hub = ClientHub(env, cfg, four_letter=_four_letter_fn(view, cfg, env),
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
            rt = PeerRuntime(peer, cfg, loop, now_ms=env.now_ms,
                             on_role_changed=self._role_changed, on_fatal=self._fatal)
            self.peer_runtime = rt
            await rt.start()
        except OSError:
            for bound in self._servers:
                bound.close()
            env.shutdown()
            if self.snapshotter is not None:
                self.snapshotter.close()
            raise
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
        gate = self.gate
        if gate is not None and gate.serving and a.state == "LOOKING":
            # Leaving a serving role: ZooKeeperServer.shutdown closes every client.
            gate.serving = False
            if self.hub is not None:
                self.hub.close_all("ZooKeeperServer not running")
        want_ro = a.read_only and a.state == "LOOKING"
        env = self.env
        if gate is not None and gate.read_only != want_ro and env is not None \
                and env.driver is not None:
            # ReadOnlyZooKeeperServer startup / shutdown, through the Driver so the closes are
            # carried out and the session-expiry timer is re-armed.
            env.driver.step(ReadOnlyModeChanged(want_ro))
        # Apache's QuorumPeer.run log lines, which operators and tests grep for.
        if a.zab_state in ("ELECTION", "DISCOVERY"):
            log.info("%s", a.state if not a.read_only else "LOOKING (read-only)")
        if self.on_role_changed is not None:
            self.on_role_changed(a)

    async def stop(self) -> None:
        if self.peer_runtime is not None:
            self.peer_runtime.stop()
        await super().stop()


def _four_letter_fn(view: Any, config: ServerConfig, env: AioEnv
                    ) -> Callable[[bytes, tuple[str, int]], bytes] | None:
    try:
        from .admin import run_four_letter_word
    except ImportError:
        log.warning("runtime/admin is missing: four-letter words will not be answered")
        return None
    return lambda word, remote: run_four_letter_word(word, view, config, env.now_ms(),
                                                     remote=remote)

