"""Assembles a running server: config -> core -> Driver -> AioEnv -> listeners; start and stop.

``ZkfastServer`` is the in-process handle (tests use it directly, on any event loop);
``run(config)`` is what the CLI calls: it picks the loop (uvloop when importable), installs the
SIGTERM/SIGINT handlers and returns the process exit code.

Storage: unless a txn log is handed in (or a custom core), the server is durable. ``start``
restores the database from ``dataDir/version-2`` and ``dataLogDir/version-2``
(``storage/recovery.py``; a ``RecoveryError`` stops the start), logs one summary line, writes a
snapshot when txns were replayed (as ``ZooKeeperServer.loadData`` does), and only then binds
the client port. Txns go to ``runtime/disk_log.DiskTxnLog``; at each log roll
``runtime/snapshotter.Snapshotter`` forks a background snapshot; autopurge runs there too.

Shutdown order mirrors ``ZooKeeperServerMain.shutdown``: stop accepting, close the client
connections (each one flushes what it was sent, with a bounded wait), then stop the timer and
the txn log. Sessions are not closed: they survive a restart, as in Apache.

Garbage collection (``GcPolicy``, installed by ``run``, i.e. in a server process): CPython's
cyclic collector is kept off the long-lived znode tree. Its full collections walk every tracked
object and free nothing in the tree: ZNodes hold no back-references (a parent knows its
children by name, a child does not point at its parent), so the tree forms no reference cycles,
and reference counting alone frees a deleted znode. When znodes were Python objects, each with
its own ACL list, those walks took 0.3-1.2 s each under a create load (the p99.9 of create), and
after a snapshot fork every page they touch is a copy-on-write fault. Today the tree gives the
collector almost nothing to walk: the compiled ``ZNode`` is not tracked at all, and the ACL
lists of created nodes are shared (``core/requests.py``), so a create leaves no tracked object
behind (measured over a 20 s create load, 400k znodes: 0.02 s of collection in all, frozen or
not); snapshot loads, replayed logs and learners share ACL lists too. The policy stays because
it costs nothing measurable and guards against anything that would again leave one tracked
object per znode: the collector is off during recovery (and the start-up snapshot), which then
ends with a ``gc.freeze()`` of everything alive (no collection: it would walk the whole
recovered tree). Afterwards the policy freezes again every ``freeze_every_txns`` applied txns
(checked on a loop timer) and after each snapshot fork, each time right after a
``gc.collect()`` over what is not yet frozen, so cyclic garbage made since the last freeze is
freed rather than frozen; with nothing per znode to walk, one such freeze costs well under a
millisecond. The collector then only ever sees objects younger than the last
freeze. The cores know nothing of this.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from .. import ZK_COMPAT_VERSION, __version__
from .._impl import IMPLEMENTATION
from ..config import ConfigError, ServerConfig
from .aio_client import ClientHub
from .aio_env import AioEnv, TxnLog
from .driver import Core, Driver
from .snapshotter import Snapshotter

__all__ = ["ZkfastServer", "CoreFactory", "GcPolicy", "recover_database", "run", "run_on_loop",
           "loop_factory"]

log = logging.getLogger("zkfast.server")

#: Builds the service core: ``(config, now_ms, rng) -> core``.
CoreFactory = Callable[[ServerConfig, int, random.Random], Core]
#: Listen backlog when clientPortListenBacklog is unset (-1). Java's default is 50, which drops
#: connections under a benchmark's connect storm; 511 is the usual Linux server choice.
DEFAULT_BACKLOG = 511
#: How long a shutdown waits for connections to flush before resetting them.
SHUTDOWN_FLUSH_S = 2.0

T = TypeVar("T")


class GcPolicy:
    """Keeps the cyclic collector off the long-lived tree (see the module docstring).

    Args:
        freeze_every_txns: freeze again once the tree's ``last_processed_zxid`` has moved by
            this many txns since the last freeze.
        threshold0: ``gc`` threshold for generation 0 (allocations minus deallocations of
            tracked objects between young collections). The default 700 runs a young
            collection every few hundred creates; 10,000 keeps short-lived objects (requests,
            replies) dying by refcount before a collection ever sees them. Generations 1 and 2
            keep their defaults: with the tree frozen they hold only recent objects.
        check_interval_s: how often the loop timer compares zxids.
    """

    def __init__(self, *, freeze_every_txns: int = 10_000, threshold0: int = 10_000,
                 check_interval_s: float = 0.5) -> None:
        self.freeze_every_txns = freeze_every_txns
        self.threshold0 = threshold0
        self.check_interval_s = check_interval_s
        self.freezes = 0
        self._frozen_zxid = 0
        self._was_enabled = True
        self._timer: asyncio.TimerHandle | None = None

    def install(self) -> None:
        """Set the thresholds (process-wide)."""
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(self.threshold0, gen1, gen2)

    def pause(self) -> None:
        """Turn the collector off (recovery: loading a snapshot allocates the whole tree, and
        every full collection meanwhile walks all of it for nothing)."""
        self._was_enabled = gc.isenabled()
        gc.disable()

    def resume(self) -> None:
        """After ``pause``: freeze what was built, without a collection (which would walk the
        whole recovered tree), then turn the collector back on."""
        gc.freeze()
        self.freezes += 1
        if self._was_enabled:
            gc.enable()

    def freeze(self, zxid: int | None = None) -> None:
        """Collect what is not frozen yet, then freeze everything alive (O(1) itself)."""
        gc.collect()
        gc.freeze()
        self.freezes += 1
        if zxid is not None:
            self._frozen_zxid = zxid

    def txns_applied(self, zxid: int) -> None:
        """Freeze when ``zxid`` (the last applied) is ``freeze_every_txns`` past the last
        freeze; a zxid that went back (a new epoch's counter, a truncated tree) counts too."""
        moved = zxid - self._frozen_zxid
        if moved >= self.freeze_every_txns or moved < 0:
            self.freeze(zxid)

    def start_timer(self, loop: asyncio.AbstractEventLoop, last_zxid: Callable[[], int]) -> None:
        """Check ``last_zxid()`` every ``check_interval_s`` on ``loop`` until ``stop_timer``."""

        def tick() -> None:
            self.txns_applied(last_zxid())
            self._timer = loop.call_later(self.check_interval_s, tick)

        self._timer = loop.call_later(self.check_interval_s, tick)

    def stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _default_core_factory(config: ServerConfig, now_ms: int, rng: random.Random) -> Core:
    from ..core.server import ServerCore

    core: Core = ServerCore(config, now_ms=now_ms, rng=rng)
    return core


def _four_letter_fn(core: Core, config: ServerConfig, env: AioEnv
                    ) -> Callable[[bytes, tuple[str, int]], bytes] | None:
    try:
        from .admin import run_four_letter_word
    except ImportError:
        log.warning("runtime/admin is missing: four-letter words will not be answered")
        return None
    return lambda word, remote: run_four_letter_word(word, core, config, env.now_ms(),
                                                     remote=remote)


class ZkfastServer:
    """One standalone server inside the running event loop.

    Args:
        config: the frozen configuration; ``client_port=0`` binds an ephemeral port (tests).
        core_factory: builds the core; the default is ``core.server.ServerCore``.
        txn_log: the txn log; the default is the durable disk log in dataLogDir (with a
            custom ``core_factory``: the in-memory log of aio_env.MemoryTxnLog).
        durable: restore from and write to the data directories; default: when neither a
            ``txn_log`` nor a ``core_factory`` is given.
        gc_policy: freeze the tree out of the cyclic collector (``run`` passes one; in-process
            tests leave the collector of their own process alone).
    """

    def __init__(self, config: ServerConfig, *, core_factory: CoreFactory | None = None,
                 txn_log: TxnLog | None = None, durable: bool | None = None,
                 gc_policy: GcPolicy | None = None) -> None:
        self.config = config
        self._durable = (txn_log is None and core_factory is None) if durable is None \
            else durable
        self._core_factory = core_factory or _default_core_factory
        self._txn_log = txn_log
        self.gc_policy = gc_policy
        self.snapshotter: Snapshotter | None = None
        #: The file system of the data directories (``disk_log.OsFiles`` once restored).
        self._files: Any = None
        self.env: AioEnv | None = None
        self.core: Core | None = None
        self.hub: ClientHub | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self.client_addresses: list[tuple[str, int]] = []
        self.secure_addresses: list[tuple[str, int]] = []
        self._stop_requested: asyncio.Event | None = None
        self._stopped = False
        self.exit_code = 0

    # ---- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Build the core and bind the listeners; returns once clients can connect.

        Raises:
            ConfigError: the TLS settings cannot be used (the message names the ssl.* key).
            OSError: a data directory cannot be created or a port cannot be bound (the
                listeners already bound are closed again).
        """
        loop = asyncio.get_running_loop()
        cfg = self.config
        self._stop_requested = asyncio.Event()
        # TLS first: a bad certificate setting fails before any data is touched.
        cert_ids_of = None
        ssl_ctx = None
        if cfg.secure_client_port is not None:
            from .tls import build_server_context, cert_ids_from_ssl_object

            try:
                ssl_ctx = build_server_context(cfg.tls)
            except ValueError as e:  # tls.TlsConfigError names the ssl.* key
                raise ConfigError(str(e)) from e
            cert_ids_of = cert_ids_from_ssl_object
        for d in {cfg.data_dir, cfg.log_dir}:
            os.makedirs(d, exist_ok=True)
        if self.gc_policy is not None:
            self.gc_policy.install()
        restored: Any = None
        if self._durable:
            restored = self._restore(loop)
            env = AioEnv(loop, restored[0])
            core = _durable_core(cfg, env.now_ms(), random.SystemRandom(), restored[1])
        else:
            env = AioEnv(loop, self._txn_log)
            core = self._core_factory(cfg, env.now_ms(), random.SystemRandom())
        env.driver = Driver(core, env)
        if restored is not None:
            self._attach_snapshots(restored[0], core)
        env.on_fatal = self._fatal
        env.on_storage_failed = self._storage_failed
        self.env, self.core = env, core
        env.set_timer(core.deadline_ms())
        self._start_gc_policy(loop, core)
        hub = ClientHub(env, cfg, four_letter=_four_letter_fn(core, cfg, env),
                        cert_ids_of=cert_ids_of, on_fatal=self._fatal)
        self.hub = hub
        backlog = cfg.client_port_listen_backlog if cfg.client_port_listen_backlog > 0 \
            else DEFAULT_BACKLOG
        try:
            if cfg.client_port is not None:
                srv = await loop.create_server(
                    hub.protocol_factory(secure=False), host=cfg.client_port_address or None,
                    port=cfg.client_port, backlog=backlog, reuse_address=True)
                self._servers.append(srv)
                self.client_addresses = _bound(srv)
            if cfg.secure_client_port is not None:
                srv = await loop.create_server(
                    hub.protocol_factory(secure=True),
                    host=cfg.secure_client_port_address or None, port=cfg.secure_client_port,
                    backlog=backlog, reuse_address=True, ssl=ssl_ctx)
                self._servers.append(srv)
                self.secure_addresses = _bound(srv)
        except OSError:
            for bound in self._servers:
                bound.close()
            env.shutdown()
            if self.snapshotter is not None:
                self.snapshotter.close()
            raise
        loop_name = type(loop).__module__.split(".")[0]
        log.info(
            "zkfast %s (ZooKeeper %s protocol) standalone: clients on %s%s; core=%s; loop=%s; "
            "dataDir=%s; %s",
            __version__, ZK_COMPAT_VERSION, _fmt(self.client_addresses) or "-",
            f"; TLS clients on {_fmt(self.secure_addresses)}" if self.secure_addresses else "",
            IMPLEMENTATION, loop_name, os.path.abspath(cfg.data_dir),
            f"txn log in {os.path.abspath(cfg.log_dir)}" if self._durable
            else "txn log in memory (nothing is persisted)")

    def _restore(self, loop: asyncio.AbstractEventLoop) -> tuple[Any, Any]:
        """Recover the database; build the disk log and the snapshotter."""
        from .disk_log import DiskTxnLog, LogSettings, OsFiles

        cfg = self.config
        snap_dir = os.path.join(cfg.data_dir, "version-2")
        log_dir = os.path.join(cfg.log_dir, "version-2")
        for d in (snap_dir, log_dir):
            os.makedirs(d, exist_ok=True)
        files = OsFiles()
        self._files = files
        snapshotter = Snapshotter(loop, snap_dir, log_dir,
                                  compression=cfg.snapshot_compression_method,
                                  digest_enabled=cfg.digest_enabled, files=files)
        snapshotter.remove_temporaries()
        policy = self.gc_policy
        if policy is not None:
            policy.pause()
        try:
            rec = self._recover(files, snap_dir, log_dir, snapshotter)
        finally:
            if policy is not None:
                policy.resume()
        snapshotter.start_autopurge(cfg.autopurge_snap_retain_count,
                                    cfg.autopurge_purge_interval_hours)
        self.snapshotter = snapshotter
        txn_log = DiskTxnLog(loop, log_dir, LogSettings(
            force_sync=cfg.force_sync, snap_count=cfg.snap_count,
            snap_size_limit_kb=cfg.snap_size_limit_kb,
            pre_alloc_size_kb=cfg.pre_alloc_size_kb), files=files)
        return txn_log, rec

    def _recover(self, files: Any, snap_dir: str, log_dir: str, snapshotter: Snapshotter) -> Any:
        """Restore the database, log the summary, snapshot it when txns were replayed."""
        rec = recover_database(self.config, files, snap_dir, log_dir)
        if rec.txns_replayed or rec.killed_sessions:
            snapshotter.write_now(rec.tree, rec.sessions)
        return rec

    def _start_gc_policy(self, loop: asyncio.AbstractEventLoop, core: Any) -> None:
        """Freeze the recovered tree and keep freezing as txns are applied (``GcPolicy``)."""
        policy = self.gc_policy
        if policy is None:
            return

        def last_zxid() -> int:
            tree = getattr(core, "tree", None)
            return int(tree.last_processed_zxid) if tree is not None else 0

        policy.freeze(last_zxid())
        policy.start_timer(loop, last_zxid)

    def _attach_snapshots(self, txn_log: Any, core: Any) -> None:
        snapshotter = self.snapshotter
        assert snapshotter is not None
        policy = self.gc_policy

        def snapshot_due() -> None:
            tree = core.tree
            if snapshotter.start(tree, _snapshot_sessions(core)) and policy is not None:
                # The child has its copy; keep the parent's collector off the pages they now
                # share, so it causes no copy-on-write faults while the child writes.
                policy.freeze(tree.last_processed_zxid)

        txn_log.on_snapshot_due = snapshot_due

    def request_stop(self, exit_code: int = 0) -> None:
        """Ask ``serve_until_stopped`` to shut down (signal handlers call this)."""
        if exit_code:
            self.exit_code = exit_code
        if self._stop_requested is not None:
            self._stop_requested.set()

    async def serve_until_stopped(self) -> int:
        """Serve until ``request_stop``; then shut down and return the exit code."""
        assert self._stop_requested is not None, "start() first"
        await self._stop_requested.wait()
        await self.stop()
        return self.exit_code

    async def stop(self) -> None:
        """Stop listening, close every connection (bounded flush), stop timer and txn log."""
        if self._stopped:
            return
        self._stopped = True
        log.info("shutting down")
        for srv in self._servers:
            srv.close()
        hub = self.hub
        if hub is not None:
            hub.close_all("server shutting down")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + SHUTDOWN_FLUSH_S
            while hub.live and loop.time() < deadline:
                await asyncio.sleep(0.01)
            hub.abort_all()
            while hub.live and loop.time() < deadline + 1.0:
                await asyncio.sleep(0.01)
        for srv in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(srv.wait_closed(), 2.0)
        if self.env is not None:
            self.env.shutdown()
        if self.snapshotter is not None:
            self.snapshotter.close()
        if self.gc_policy is not None:
            self.gc_policy.stop_timer()
        log.info("stopped")

    def _fatal(self, exc: BaseException) -> None:
        self.request_stop(1)

    def _storage_failed(self, reason: str) -> None:
        # Apache's standalone server shuts down when its txn log fails; zkfast does the same
        # (exit code 1), so a supervisor restarts it and recovery decides what the disk holds.
        # Nothing written after the failure was acknowledged: the core stopped at the event.
        log.error("stopping: the txn log failed (%s); no write after it was acknowledged", reason)
        self.request_stop(1)


def recover_database(config: ServerConfig, files: Any, snap_dir: str, log_dir: str) -> Any:
    """``storage.recovery.recover`` with the config's settings, and its summary log line.

    Raises:
        RecoveryError: the data cannot be restored (see ``storage.recovery``).
    """
    from ..storage.recovery import recover

    t0 = time.monotonic()
    rec = recover(files, snap_dir, log_dir,
                  trust_empty_snapshot=getattr(config, "snapshot_trust_empty", False),
                  extended_types_enabled=config.extended_types_enabled,
                  digest_enabled=config.digest_enabled,
                  entry_bytes_max=max(config.jute_maxbuffer_bytes, 1 << 20) + 4096,
                  commit_log_count=config.quorum.commit_log_count
                  if config.quorum is not None else 0,
                  log=log.warning)
    if rec.created:
        log.info("no snapshot or txn log found: created an empty database (%s)",
                 os.path.join(snap_dir, "snapshot.0"))
    log.info("restored the database: snapshot %s (zxid 0x%x), %d txns replayed from %s, "
             "last zxid 0x%x, %d znodes, %d sessions%s in %.0f ms",
             rec.snapshot_name or "none", rec.snapshot_zxid, rec.txns_replayed,
             " ".join(rec.logs_read) or "no log", rec.last_zxid, len(rec.tree.nodes),
             len(rec.sessions),
             f", {len(rec.killed_sessions)} dead sessions killed" if rec.killed_sessions
             else "", (time.monotonic() - t0) * 1000)
    return rec


def _durable_core(config: ServerConfig, now_ms: int, rng: random.Random, rec: Any) -> Core:
    from ..core.server import ServerCore

    core: Core = ServerCore(config, now_ms=now_ms, rng=rng, tree=rec.tree, sessions=rec.sessions)
    return core


def _snapshot_sessions(core: Any) -> list[tuple[int, int]]:
    """The sessions of the applied state: the tracker less those whose createSession txn is
    still in flight (a snapshot must not hold a session its zxid does not include)."""
    sessions: list[tuple[int, int]] = core.applied_sessions()
    return sessions


def _bound(srv: asyncio.AbstractServer) -> list[tuple[str, int]]:
    out = []
    for s in getattr(srv, "sockets", ()) or ():
        name = s.getsockname()
        out.append((str(name[0]), int(name[1])))
    return out


def _fmt(addrs: list[tuple[str, int]]) -> str:
    return ", ".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in addrs)


# --------------------------------------------------------------------------- process level


def loop_factory(kind: str = "auto") -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop factory: "uvloop", "asyncio", or "auto" (uvloop when importable).

    Raises:
        ImportError: ``kind == "uvloop"`` and uvloop is not installed.
    """
    if kind not in ("auto", "uvloop", "asyncio"):
        raise ValueError(f"unknown event loop kind {kind!r}")
    if kind != "asyncio":
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise
            log.warning("uvloop is not installed; running on asyncio's default event loop")
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def run_on_loop(coro: Coroutine[Any, Any, T], kind: str = "auto") -> T:
    """Run a coroutine to completion on a fresh loop of the given kind."""
    factory = loop_factory(kind)
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(coro)
    loop = factory()  # pragma: no cover - Python 3.10
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(coro)
    finally:
        loop.close()
        asyncio.set_event_loop(None)


def run(config: ServerConfig, *, loop_kind: str | None = None,
        core_factory: CoreFactory | None = None) -> int:
    """Serve until SIGTERM/SIGINT; return the exit code (0 clean, 1 after an internal failure).

    ``loop_kind`` defaults to the ``ZKFAST_LOOP`` environment variable, else "auto".

    Raises:
        OSError: a port cannot be bound or a data directory created.
    """
    kind = loop_kind or os.environ.get("ZKFAST_LOOP", "auto")

    async def main() -> int:
        server: ZkfastServer
        if getattr(config, "quorum", None) is not None and core_factory is None:
            from .quorum_server import QuorumPeerServer

            server = QuorumPeerServer(config, gc_policy=GcPolicy())
        else:
            server = ZkfastServer(config, core_factory=core_factory, gc_policy=GcPolicy())
        await server.start()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, _on_signal, server, signum)
        try:
            return await server.serve_until_stopped()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)

    return run_on_loop(main(), kind)


def _on_signal(server: ZkfastServer, signum: int) -> None:
    log.info("received %s", signal.Signals(signum).name)
    server.request_stop(0)
