"""Snapshots taken in the background from a consistent view, and autopurge of old files.

Theory of operation
-------------------
A snapshot must show the tree exactly as it was at one zxid while the server keeps applying
txns. ``Snapshotter.start`` gets that for free from the kernel: it ``fork()``s, and the child
sees the parent's memory as it was at the fork (copy-on-write) while the parent goes on. The
child serializes the tree and the session table (``storage/tree_io.py``), compresses the stream
per ``snapshot.compression.method``, writes ``tmp.snapshot.<hex zxid>[.gz|.snappy]``, fsyncs it,
renames it to ``snapshot.<hex zxid>...`` and fsyncs the directory, reports one line on a pipe
and ``_exit``s. The zxid is the tree's ``last_processed_zxid`` at the fork: every txn up to it
is applied (and was durable before it was applied), so replaying the logs from it is exact,
unlike Apache's fuzzy snapshot. The parent watches the pipe with ``loop.add_reader``; end of
file means the child is done, and it is reaped with a non-blocking ``waitpid``. The loop never
blocks. Only one child runs at a time; a request while one runs is skipped with a warning
(``SyncRequestProcessor``: "Too busy to snap, skipping").

The child asks to be killed if the server dies (``PR_SET_PDEATHSIG``), closes every
descriptor it inherited except its pipe (so a client socket the parent closes is really
closed), runs only code already imported by the parent, does no logging (the logging locks may
have been held by another thread at the fork) and leaves through ``os._exit``. Its garbage
collector is off, so it copies few pages it does not need; in the parent, the server's
``GcPolicy`` freezes everything alive right after the fork, so the parent's collector does not
walk (and copy) the pages the child is still reading either.

At start, ``write_now`` takes a snapshot in-process (``ZooKeeperServer.loadData`` snapshots
after every restore), before any client is served.

A quorum peer also snapshots on demand (ZAB sync, ``TakeSnapshot``: a learner that received a
SNAP must have it on disk before it acks NEWLEADER). Such a request cannot be skipped: it
passes a per-request ``on_done`` and, while a child runs, waits for it with ``when_idle``.
Before the txn log is truncated (``TruncateLog``), ``cancel`` kills a running child and
removes its temporary file, so no snapshot above the truncation point appears afterwards.

Autopurge (``DatadirCleanupManager``): with ``autopurge.purgeInterval`` > 0 hours, a purge runs
at start and then every interval; it deletes what ``storage.recovery.purge_plan`` lists
(``PurgeTxnLog``), in the default executor so the loop never waits on unlink.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import logging
import os
import signal
import time
from collections.abc import Callable

from ..core.datatree import DataTree
from ..storage.recovery import Files, purge_plan
from ..storage.tree_io import compress_snapshot, encode_tree, snapshot_file_name
from .disk_log import OsFiles

__all__ = ["Snapshotter"]

log = logging.getLogger("zkfast.snapshot")

_REAP_RETRY_S = 0.005
_PR_SET_PDEATHSIG = 1


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:  # pragma: no cover - not glibc/musl Linux
        return None


_LIBC = _libc()
try:
    _FD_MAX = max(1024, os.sysconf("SC_OPEN_MAX"))
except (ValueError, OSError):  # pragma: no cover - every Linux has it
    _FD_MAX = 1 << 16


class Snapshotter:
    """Writes snapshots into ``snap_dir`` (see the module docstring).

    Args:
        loop: the event loop that watches the child.
        snap_dir: the ``version-2`` directory of dataDir.
        log_dir: the ``version-2`` directory of dataLogDir (autopurge deletes logs there).
        compression: "" / "gz" / "snappy".
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, snap_dir: str, log_dir: str, *,
                 compression: str = "", digest_enabled: bool = True,
                 files: Files | None = None) -> None:
        self._loop = loop
        self._snap_dir = snap_dir
        self._log_dir = log_dir
        self._compression = compression
        self._digest_enabled = digest_enabled
        self._files: Files = files if files is not None else OsFiles()
        self._child: int | None = None
        self._child_fd: int | None = None
        self._child_out = bytearray()
        self._child_zxid = 0
        self._child_started = 0.0
        self._child_done: Callable[[str | None, str], None] | None = None
        self._idle_waiters: list[Callable[[], None]] = []
        self._purge_timer: asyncio.TimerHandle | None = None
        self._closed = False
        #: Called on the loop after each background snapshot: (file name or None, message).
        self.on_done: Callable[[str | None, str], None] = lambda name, msg: None
        self.snapshots_written = 0
        self.last_snapshot_name: str | None = None
        if compression == "snappy":
            import cramjam  # noqa: F401 - imported here so the forked child never imports

    @property
    def busy(self) -> bool:
        """A snapshot child is running."""
        return self._child is not None

    # ---- writing
    def _write_file(self, tree: DataTree, sessions: list[tuple[int, int]]) -> str | None:
        name = snapshot_file_name(tree.last_processed_zxid, self._compression)
        if name in self._files.list(self._snap_dir):
            return None
        data = compress_snapshot(
            encode_tree(tree, sessions, digest_enabled=self._digest_enabled), self._compression)
        self._files.write_atomic(self._snap_dir, name, data)
        return name

    def write_now(self, tree: DataTree, sessions: list[tuple[int, int]]) -> str | None:
        """Write a snapshot in this process (at start); None if that zxid already has one."""
        t0 = time.monotonic()
        name = self._write_file(tree, sessions)
        if name is not None:
            self.snapshots_written += 1
            self.last_snapshot_name = name
            log.info("snapshot %s written (%d nodes, %d sessions) in %.0f ms", name,
                     len(tree.nodes), len(sessions), (time.monotonic() - t0) * 1000)
        return name

    def start(self, tree: DataTree, sessions: list[tuple[int, int]], *,
              on_done: Callable[[str | None, str], None] | None = None) -> bool:
        """Fork a child that writes a snapshot of ``tree`` as it is now; False when busy.

        Args:
            on_done: called on the loop when this child ends, like ``self.on_done`` (which is
                called too): ``(name, "ok ...")`` written, ``(None, "same")`` a snapshot of
                that zxid exists already, ``(None, other)`` failed.
        """
        if self._closed:
            return False
        if self._child is not None:
            log.warning("Too busy to snap, skipping: the snapshot of zxid 0x%x is still being "
                        "written", self._child_zxid)
            return False
        r, w = os.pipe()
        zxid = tree.last_processed_zxid
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child; its effects are checked by the tests
            status = 1
            try:
                # Die with the server: a snapshot nobody will reap is not worth finishing.
                if _LIBC is not None:
                    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
                if os.getppid() != parent:
                    os._exit(1)
                os.close(r)
                # Drop every inherited descriptor (client sockets, the listener, log files):
                # a socket the parent closes must not stay open in here until the child exits.
                os.closerange(3, w)
                os.closerange(w + 1, _FD_MAX)
                gc.disable()
                t0 = time.monotonic()
                try:
                    name = self._write_file(tree, sessions)
                    ms = (time.monotonic() - t0) * 1000
                    msg = f"ok {name} {ms:.0f}" if name is not None else "same"
                    status = 0
                except Exception as exc:  # noqa: BLE001 - reported to the parent
                    msg = f"error {exc!r}"
                os.write(w, msg.encode("utf-8", "replace"))
            finally:
                os._exit(status)
        os.close(w)
        os.set_blocking(r, False)
        self._child, self._child_fd, self._child_zxid = pid, r, zxid
        self._child_done = on_done
        self._child_out = bytearray()
        self._child_started = time.monotonic()
        self._loop.add_reader(r, self._on_child_output)
        return True

    def _on_child_output(self) -> None:
        fd = self._child_fd
        assert fd is not None
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            return
        if chunk:
            self._child_out += chunk
            return
        self._loop.remove_reader(fd)
        os.close(fd)
        self._child_fd = None
        self._reap()

    def _reap(self) -> None:
        pid = self._child
        if pid is None:
            return
        got, status = os.waitpid(pid, os.WNOHANG)
        if got == 0:
            self._loop.call_later(_REAP_RETRY_S, self._reap)
            return
        self._child = None
        done, self._child_done = self._child_done, None
        msg = self._child_out.decode("utf-8", "replace")
        code = os.waitstatus_to_exitcode(status)
        name: str | None = None
        if code == 0 and msg.startswith("ok "):
            _, name, ms = msg.split(" ", 2)
            self.snapshots_written += 1
            self.last_snapshot_name = name
            log.info("snapshot %s written in the background in %s ms", name, ms)
        elif code == 0 and msg == "same":
            log.debug("snapshot of zxid 0x%x exists already", self._child_zxid)
        else:
            log.error("snapshot of zxid 0x%x failed (child exit %d): %s; the txn logs still "
                      "hold every txn", self._child_zxid, code, msg or "no message")
            if not msg.startswith("error"):
                msg = f"error: child exit {code}"
        self.on_done(name, msg)
        if done is not None:
            done(name, msg)
        self._run_idle_waiters()

    def when_idle(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` on the loop once no child runs (soon, if none runs now)."""
        self._idle_waiters.append(callback)
        if self._child is None:
            self._loop.call_soon(self._run_idle_waiters)

    def _run_idle_waiters(self) -> None:
        while self._idle_waiters and self._child is None and not self._closed:
            self._idle_waiters.pop(0)()

    def cancel(self) -> None:
        """Kill a running child (its snapshot is not wanted) and remove its temporary file.

        Its ``on_done`` is not called; idle waiters run next on the loop.
        """
        if self._child_fd is not None:
            self._loop.remove_reader(self._child_fd)
            os.close(self._child_fd)
            self._child_fd = None
        if self._child is not None:
            log.info("cancelling the snapshot of zxid 0x%x", self._child_zxid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._child, signal.SIGKILL)
            os.waitpid(self._child, 0)
            self._child = None
            self._child_done = None
            self.remove_temporaries()
        if self._idle_waiters:
            self._loop.call_soon(self._run_idle_waiters)

    # ---- autopurge
    def start_autopurge(self, retain: int, interval_hours: int) -> None:
        """Purge now and every ``interval_hours`` (nothing when the interval is 0)."""
        if interval_hours <= 0:
            log.info("autopurge disabled (autopurge.purgeInterval=0)")
            return
        log.info("autopurge: keeping %d snapshots, purging every %d h", retain, interval_hours)

        def tick() -> None:
            if self._closed:
                return
            self._loop.run_in_executor(None, self.purge, retain)
            self._purge_timer = self._loop.call_later(interval_hours * 3600.0, tick)

        tick()

    def purge(self, retain: int) -> list[str]:
        """Delete old snapshots and logs (``PurgeTxnLog.purge``); returns the deleted names."""
        deleted: list[str] = []
        try:
            plan = purge_plan(self._files, self._snap_dir, self._log_dir, retain)
        except OSError as exc:
            log.warning("autopurge: cannot list the data directories: %s", exc)
            return deleted
        for directory, name in plan:
            try:
                self._files.remove(directory, name)
                deleted.append(name)
            except OSError as exc:
                log.warning("autopurge: cannot delete %s/%s: %s", directory, name, exc)
        if deleted:
            log.info("autopurge deleted %d files: %s", len(deleted), " ".join(deleted))
        return deleted

    def remove_temporaries(self) -> None:
        """Delete ``tmp.snapshot.*`` left by a snapshot that a crash interrupted."""
        for name in self._files.list(self._snap_dir):
            if name.startswith("tmp.snapshot."):
                with contextlib.suppress(OSError):
                    self._files.remove(self._snap_dir, name)
                    log.info("removed %s, left by an interrupted snapshot", name)

    def close(self) -> None:
        """Stop autopurge; stop a running child (its temporary file is removed at next start)."""
        self._closed = True
        if self._purge_timer is not None:
            self._purge_timer.cancel()
            self._purge_timer = None
        if self._child_fd is not None:
            self._loop.remove_reader(self._child_fd)
            os.close(self._child_fd)
            self._child_fd = None
        if self._child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._child, signal.SIGKILL)
            os.waitpid(self._child, 0)
            self._child = None
        self._idle_waiters.clear()
