"""The database reloads of ZAB sync over the real data directories: ``TruncateLog`` and
``TakeSnapshot`` (docs/zab.md §2, §4 learner step 1).

Theory of operation
-------------------
``NodeStorage`` is the disk half of a quorum peer's ``PeerEnv`` (runtime/env.py). It reports
back by stepping the node through ``step`` (``AioEnv.step_global``), always from a later loop
callback, never from inside the action.

``TruncateLog(z)`` (a TRUNC from the leader: this peer logged txns the ensemble never
committed). In order, on the loop:

1. the snapshotter's running child, if any, is killed (``Snapshotter.cancel``): it might be
   writing a snapshot above ``z`` that would outlive the truncation;
2. the disk log finishes what it was handed before (the action's contract), then cuts itself
   after ``z`` (``DiskTxnLog.truncate``: later files deleted, the file holding ``z`` cut after
   it, snapshots above ``z`` set aside; ``storage.truncate_log``), so the next append follows
   ``z``;
3. the database is recovered from dataDir/dataLogDir as at start
   (``server.recover_database``), in an executor thread with the cyclic collector paused
   (``GcPolicy``), which ends at ``z``;
4. ``LogTruncated(z, tree, sessions, committed)`` goes to the node.

``TakeSnapshot(z)`` (the learner loaded a SNAP): the service's tree *now* is snapshotted by a
forked child (``Snapshotter.start``), which writes ``tmp.snapshot.*``, fsyncs it, renames it
and fsyncs the directory; then ``SnapshotDurable(z)``. A snapshot of that zxid already on disk
counts. When a child is already running (a log-roll snapshot), the request waits for it and
then snapshots the tree as it is then: its zxid may be past ``z``, which covers ``z`` as well
(every txn in it was applied, so committed). ``SnapshotDurable`` still names ``z``.

Failure of either (an ``OSError``, a ``RecoveryError``, a child that failed) leaves the node
waiting for an event that will not come, and the disk in a state recovery must judge: the
peer stops (``on_failed``; the process exits 1), as Apache's learner gives up on an
IOException in ``syncWithLeader``. A supervisor restarts it and recovery decides.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import Any

from ..config import ServerConfig
from ..core.actions import TakeSnapshot, TruncateLog
from ..core.events import LogTruncated, SnapshotDurable
from .server import GcPolicy, recover_database
from .snapshotter import Snapshotter

__all__ = ["NodeStorage"]

log = logging.getLogger("zkfast.sync")


class NodeStorage:
    """``TruncateLog`` and ``TakeSnapshot`` for one quorum peer (see the module docstring).

    Args:
        loop: the running loop.
        config: dataDir/dataLogDir and the recovery settings.
        txn_log: the disk log (``DiskTxnLog``): ``truncate(zxid, snap_dir)`` is awaited.
        snapshotter: the peer's snapshotter.
        files: the ``storage.recovery.Files`` the log and recovery use.
        service: returns the node's current ServerCore (``tree``, ``applied_sessions()``).
        step: feeds one event to the node.
        on_failed: called once when a reload or a snapshot failed: the peer must stop.
        gc_policy: paused around a reload, as around recovery at start.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, config: ServerConfig, *, txn_log: Any,
                 snapshotter: Snapshotter, files: Any, service: Callable[[], Any],
                 step: Callable[[Any], None], on_failed: Callable[[BaseException], None],
                 gc_policy: GcPolicy | None = None) -> None:
        self.loop = loop
        self.config = config
        self.txn_log = txn_log
        self.snapshotter = snapshotter
        self.files = files
        self.service = service
        self.step = step
        self.on_failed = on_failed
        self.gc_policy = gc_policy
        self.snap_dir = os.path.join(config.data_dir, "version-2")
        self.log_dir = os.path.join(config.log_dir, "version-2")
        self.closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        #: Counters for tests and logs.
        self.truncations = 0
        self.snapshots = 0

    # ---- TruncateLog
    def truncate_log(self, a: TruncateLog) -> None:
        """Start the truncation and reload of ``a.zxid``; ``LogTruncated`` follows."""
        log.info("truncating the txn log after zxid 0x%x and reloading the database", a.zxid)
        task = self.loop.create_task(self._truncate(a.zxid))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _truncate(self, zxid: int) -> None:
        try:
            self.snapshotter.cancel()
            await self.txn_log.truncate(zxid, self.snap_dir)
            rec = await self.loop.run_in_executor(None, self._reload)
        except Exception as exc:  # noqa: BLE001 - the disk is suspect: stop the peer
            self._fail(exc, f"truncating the txn log after zxid 0x{zxid:x} failed")
            return
        if self.closed:
            return
        if rec.last_zxid != zxid:
            log.warning("after truncating at zxid 0x%x the database ends at 0x%x", zxid,
                        rec.last_zxid)
        self.truncations += 1
        self.step(LogTruncated(zxid, rec.tree, rec.sessions, list(rec.committed)))

    def _reload(self) -> Any:
        """Recover the database from the data directories (an executor thread)."""
        policy = self.gc_policy
        if policy is not None:
            policy.pause()
        try:
            return recover_database(self.config, self.files, self.snap_dir, self.log_dir)
        finally:
            if policy is not None:
                policy.resume()

    # ---- TakeSnapshot
    def take_snapshot(self, a: TakeSnapshot) -> None:
        """Snapshot the service's tree now (or once the running child ends)."""
        if self.snapshotter.busy:
            log.info("snapshot for zxid 0x%x waits for the snapshot being written", a.zxid)
            self.snapshotter.when_idle(lambda: self._snapshot(a.zxid))
            return
        self._snapshot(a.zxid)

    def _snapshot(self, zxid: int) -> None:
        if self.closed:
            return
        service = self.service()
        tree = service.tree
        if tree.last_processed_zxid != zxid:
            log.info("snapshot asked for zxid 0x%x; the tree is at 0x%x", zxid,
                     tree.last_processed_zxid)

        def done(name: str | None, msg: str) -> None:
            if name is None and msg != "same":
                self._fail(OSError(msg), f"the snapshot for zxid 0x{zxid:x} failed")
                return
            self.snapshots += 1
            if not self.closed:
                self.step(SnapshotDurable(zxid))

        try:
            started = self.snapshotter.start(tree, service.applied_sessions(), on_done=done)
        except OSError as exc:
            self._fail(exc, f"cannot start the snapshot for zxid 0x{zxid:x}")
            return
        if not started:
            # busy again (only a closing snapshotter says no otherwise): wait once more
            self.snapshotter.when_idle(lambda: self._snapshot(zxid))
            return
        if self.gc_policy is not None:
            # As after a log-roll snapshot: keep the collector off the pages now shared.
            self.gc_policy.freeze(tree.last_processed_zxid)

    # ---- lifecycle
    def _fail(self, exc: BaseException, what: str) -> None:
        if self.closed:
            return
        log.critical("%s: %s; stopping the peer", what, exc, exc_info=exc)
        self.closed = True
        self.on_failed(exc)

    def close(self) -> None:
        """Stop reporting (a reload still in its executor thread finishes unobserved)."""
        self.closed = True
        for t in list(self._tasks):
            t.cancel()
