"""The durable txn log: group commit of ``log.<zxid>`` files, with rolling and snapshot triggers.

Theory of operation
-------------------
``DiskTxnLog`` is the ``TxnLog`` of ``aio_env``. ``append`` runs on the event loop: it encodes
each txn as a log entry (``storage/txnlog.py``), assigns it to the current log file, and queues
the bytes. One writer job at a time runs in a dedicated executor thread: it takes everything
queued so far, creates new files (16-byte header), preallocates (Apache's FilePadding rule,
``txnlog.preallocated_size``), writes, then fdatasyncs every file it touched (and the
directory when it created a file). Only when that job returns does the loop report
``on_durable(last zxid of the job)``: a txn is never acknowledged before its fsync. Appends
made while a job runs wait for the next job, so the batch grows with the fsync latency (group
commit, as ``SyncRequestProcessor`` batches up to its flush). With ``forceSync=no`` the fsyncs
are skipped and completion is still reported.

Rolling (``SyncRequestProcessor.shouldSnapshot``): after each txn, if the txns in the current
log exceed ``snapCount/2 + randRoll`` or its bytes exceed ``snapSizeLimitInKb*1024/2 +
randSize`` (both random offsets drawn anew at each roll, so the servers of an ensemble do not
snapshot together), the next txn starts a new file ``log.<its zxid>`` and
``on_snapshot_due()`` is called on the loop, so the server can take a snapshot at that point.

Jumps: a zxid that does not follow the previous one (zxid + 1, or the start of a newer epoch)
is what a learner logs after a SNAP sync replaced its database: the next txn opens a new file
``log.<its zxid>`` (Apache's learner starts a new log there too), so no log file ever holds a
hole, and recovery, which starts at the log holding the snapshot's zxid, reads on without one.

Truncation (a learner's TRUNC): ``await truncate(zxid)`` waits until every queued txn is
written and reported, closes the files, runs ``storage.recovery.truncate_log`` in the writer
thread, and then takes appends again from the txn after the cut (in a new file, as after a
restart). No append may be made while it runs.

Failure: any error from a write, preallocation or fsync means the data on disk is unknown.
The log reports ``on_failed(reason)`` once and refuses every later append (nothing after it
is reported durable); the server stops accepting writes and says so. It does not retry:
after a failed fsync the kernel may have dropped the dirty pages (the "fsyncgate" lesson).

``OsFiles`` is the real ``storage.recovery.Files``; tests hand in a faulty one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .._impl import core
from ..storage.recovery import Files, LogHandle, truncate_log
from ..storage.txnlog import encode_entry, encode_file_header, log_file_name, preallocated_size

__all__ = ["DiskTxnLog", "OsFiles", "LogSettings"]

log = logging.getLogger("zkfast.txnlog")


# ============================================================================ real files


class _OsHandle:
    __slots__ = ("fd", "path")

    def __init__(self, fd: int, path: str) -> None:
        self.fd = fd
        self.path = path

    def write_at(self, offset: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.pwrite(self.fd, view, offset)
            view = view[n:]
            offset += n

    def extend(self, size: int) -> None:
        if os.fstat(self.fd).st_size < size:
            os.ftruncate(self.fd, size)

    def sync(self) -> None:
        os.fdatasync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


class OsFiles:
    """``storage.recovery.Files`` over the real file system."""

    def list(self, directory: str) -> list[str]:
        try:
            return sorted(os.listdir(directory))
        except FileNotFoundError:
            return []

    def size(self, directory: str, name: str) -> int:
        return os.stat(os.path.join(directory, name)).st_size

    def read(self, directory: str, name: str, offset: int = 0, length: int = -1) -> bytes:
        with open(os.path.join(directory, name), "rb") as f:
            f.seek(offset)
            return f.read() if length < 0 else f.read(length)

    def truncate(self, directory: str, name: str, size: int) -> None:
        fd = os.open(os.path.join(directory, name), os.O_WRONLY)
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        finally:
            os.close(fd)

    def remove(self, directory: str, name: str) -> None:
        os.unlink(os.path.join(directory, name))

    def write_atomic(self, directory: str, name: str, data: bytes) -> None:
        os.makedirs(directory, exist_ok=True)
        tmp = os.path.join(directory, f"tmp.{name}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _OsHandle(fd, tmp).write_at(0, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, os.path.join(directory, name))
        self.sync_dir(directory)

    def create_log(self, directory: str, name: str) -> LogHandle:
        path = os.path.join(directory, name)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        return _OsHandle(fd, path)

    def sync_dir(self, directory: str) -> None:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def rename(self, directory: str, old: str, new: str) -> None:
        os.replace(os.path.join(directory, old), os.path.join(directory, new))
        self.sync_dir(directory)


# ============================================================================ the log


def _follows(prev: int, zxid: int) -> bool:
    """Whether ``zxid`` is the txn right after ``prev`` (or the first of a newer epoch)."""
    if zxid == prev + 1:
        return True
    return core.zxid_epoch(zxid) > core.zxid_epoch(prev) and core.zxid_counter(zxid) <= 1


@dataclass(frozen=True, slots=True)
class LogSettings:
    """The txn log knobs of zoo.cfg."""

    force_sync: bool = True
    snap_count: int = 100000
    snap_size_limit_kb: int = 4194304
    pre_alloc_size_kb: int = 65536


class _Segment:
    """One log file: where its next bytes go and what is queued for it."""

    __slots__ = ("name", "handle", "position", "size", "pending")

    def __init__(self, name: str) -> None:
        self.name = name
        self.handle: LogHandle | None = None
        self.position = 0
        self.size = 0
        self.pending = bytearray()


def _unset_durable(zxid: int) -> None:  # pragma: no cover - replaced by AioEnv
    raise RuntimeError("txn log used before AioEnv attached its callbacks")


def _unset_failed(reason: str) -> None:  # pragma: no cover - replaced by AioEnv
    raise RuntimeError("txn log used before AioEnv attached its callbacks")


class DiskTxnLog:
    """Group-committing txn log in ``log_dir`` (see the module docstring).

    Args:
        loop: the event loop the callbacks run on.
        log_dir: the ``version-2`` directory of dataLogDir.
        settings: forceSync, snapCount, snapSizeLimitInKb, preAllocSize.
        files: the file system (default: ``OsFiles``).
        rng: the source of the random roll offsets.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, log_dir: str,
                 settings: LogSettings = LogSettings(), *, files: Files | None = None,
                 rng: random.Random | None = None) -> None:
        self._loop = loop
        self._dir = log_dir
        self._settings = settings
        self._files: Files = files if files is not None else OsFiles()
        self._rng = rng or random.Random()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zkfast-txnlog")
        self._segments: list[_Segment] = []
        self._current: _Segment | None = None
        self._roll_next = False
        self._queued_zxid: int | None = None
        self._last_zxid: int | None = None
        self._busy = False
        self._scheduled = False
        self._closed = False
        self._truncating = False
        #: Set when the log becomes idle (no job running, nothing queued).
        self._idle: asyncio.Event | None = None
        self.failed: str | None = None
        self._log_count = 0
        self._log_bytes = 0
        self._rand_roll = 0
        self._rand_size = 0
        self._reset_snapshot_stats()
        self.on_durable: Callable[[int], None] = _unset_durable
        self.on_failed: Callable[[str], None] = _unset_failed
        #: Called on the loop when a roll point is reached (the server takes a snapshot).
        self.on_snapshot_due: Callable[[], None] = lambda: None
        #: Writer jobs completed (each one fsync round): for tests and metrics.
        self.batches_synced = 0

    # ---- rolling
    def _reset_snapshot_stats(self) -> None:
        s = self._settings
        self._rand_roll = self._rng.randrange(max(1, s.snap_count // 2))
        snap_bytes = s.snap_size_limit_kb * 1024
        self._rand_size = self._rng.randrange(snap_bytes // 2) if snap_bytes >= 2 else 0
        self._log_count = 0

    def _should_snapshot(self) -> bool:
        s = self._settings
        snap_bytes = s.snap_size_limit_kb * 1024
        return self._log_count > s.snap_count // 2 + self._rand_roll or (
            snap_bytes > 0 and self._log_bytes > snap_bytes // 2 + self._rand_size)

    # ---- TxnLog protocol
    def append(self, txns: list[tuple[int, bytes]]) -> None:
        if self._closed or not txns:
            return
        assert not self._truncating, "txn log: append while a truncation runs"
        if self.failed is not None:
            log.debug("txn log failed earlier (%s): %d txns refused", self.failed, len(txns))
            return
        snapshot_due = False
        for zxid, data in txns:
            prev = self._last_zxid
            assert prev is None or zxid > prev, (
                f"txn log: zxid went back from {prev:#x} to {zxid:#x}")
            self._last_zxid = zxid
            seg = self._current
            if seg is not None and prev is not None and not _follows(prev, zxid):
                log.info("txn log: zxid jumps from %#x to %#x (a SNAP sync); next txns go to "
                         "a new file", prev, zxid)
                self._roll_next = True
            if seg is None or self._roll_next:
                seg = _Segment(log_file_name(zxid))
                self._segments.append(seg)
                self._current = seg
                self._roll_next = False
                self._log_bytes = 0
                if len(self._segments) > 1:
                    log.info("rolling the txn log: next txns go to %s", seg.name)
            entry = encode_entry(data)
            seg.pending += entry
            self._log_count += 1
            self._log_bytes += len(entry)
            if self._should_snapshot():
                self._reset_snapshot_stats()
                self._roll_next = True
                snapshot_due = True
        self._queued_zxid = self._last_zxid
        if not self._busy and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._start_job)
        if snapshot_due:
            self._loop.call_soon(self._snapshot_due)

    def _snapshot_due(self) -> None:
        if not self._closed and self.failed is None:
            self.on_snapshot_due()

    def _start_job(self) -> None:
        self._scheduled = False
        if self._closed or self.failed is not None or self._busy or self._queued_zxid is None:
            if self._idle is not None and not self._busy:
                self._idle.set()
            return
        work = [(seg, bytes(seg.pending)) for seg in self._segments if seg.pending]
        for seg in self._segments:
            seg.pending.clear()
        # Files no longer current get their last bytes in this job: close them after it.
        finished = [seg for seg in self._segments if seg is not self._current]
        self._segments = [seg for seg in self._segments if seg is self._current]
        zxid = self._queued_zxid
        self._queued_zxid = None
        self._busy = True
        fut = self._loop.run_in_executor(self._executor, self._write, work, finished)
        fut.add_done_callback(lambda f: self._job_done(f, zxid))

    def _write(self, work: list[tuple[_Segment, bytes]], finished: list[_Segment]) -> None:
        """The writer thread: create, preallocate, write, then fsync (see the docstring)."""
        try:
            self._write_and_sync(work)
        finally:
            for seg in finished:
                if seg.handle is not None:
                    with contextlib.suppress(OSError):
                        seg.handle.close()
                    seg.handle = None

    def _write_and_sync(self, work: list[tuple[_Segment, bytes]]) -> None:
        files = self._files
        prealloc = self._settings.pre_alloc_size_kb * 1024
        created = False
        for seg, data in work:
            if seg.handle is None:
                seg.handle = files.create_log(self._dir, seg.name)
                header = encode_file_header()
                seg.handle.write_at(0, header)
                seg.position = seg.size = len(header)
                created = True
            end = seg.position + len(data)
            new_size = preallocated_size(seg.position, seg.size, prealloc)
            while prealloc > 0 and new_size < end:
                new_size = preallocated_size(new_size, new_size, prealloc)
            if new_size > seg.size:
                seg.handle.extend(new_size)
                seg.size = new_size
            seg.handle.write_at(seg.position, data)
            seg.position = end
            if seg.size < end:
                seg.size = end
        if self._settings.force_sync:
            for seg, _ in work:
                assert seg.handle is not None
                seg.handle.sync()
            if created:
                files.sync_dir(self._dir)

    def _job_done(self, fut: asyncio.Future[None], zxid: int) -> None:
        self._busy = False
        if self._closed:
            return
        self._job_finished(fut, zxid)
        if self._idle is not None and (self.failed is not None or (
                not self._busy and self._queued_zxid is None and not self._scheduled)):
            self._idle.set()

    def _job_finished(self, fut: asyncio.Future[None], zxid: int) -> None:
        exc = fut.exception()
        if exc is not None:
            reason = f"writing the txn log in {self._dir} failed: {exc!r}"
            self.failed = reason
            log.error("%s; no further txn is accepted, the server stops taking writes "
                      "(restart it once the disk is healthy)", reason)
            self.on_failed(reason)
            return
        self.batches_synced += 1
        self.on_durable(zxid)
        if self._queued_zxid is not None and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._start_job)

    @property
    def last_zxid(self) -> int | None:
        """The zxid of the last txn appended (or kept by a truncation); None before any."""
        return self._last_zxid

    async def truncate(self, zxid: int, snap_dir: str | None = None) -> int:
        """A learner's TRUNC: cut the log after ``zxid`` (see the module docstring).

        Every txn appended before the call is written and reported durable (or the log fails)
        first; then the files are closed and ``truncate_log(files, log_dir, zxid, snap_dir)``
        runs in the writer thread. Appends resume with the txn after the cut, in a new file.

        Returns:
            What ``truncate_log`` returns: the last zxid left in the log, -1 if none.

        Raises:
            RecoveryError: the truncation was refused; nothing changed on disk.
            OSError: the log failed earlier (``failed``) or the truncation failed; the log
                accepts nothing more.
        """
        assert not self._truncating, "txn log: truncations overlap"
        if self._closed:
            raise OSError(f"txn log in {self._dir} is closed")
        self._truncating = True
        try:
            while self.failed is None and (self._busy or self._scheduled
                                           or self._queued_zxid is not None):
                self._idle = asyncio.Event()
                if not self._busy and not self._scheduled:
                    self._scheduled = True
                    self._loop.call_soon(self._start_job)
                await self._idle.wait()
            self._idle = None
            if self.failed is not None:
                raise OSError(self.failed)
            segments = self._segments
            self._segments = []
            self._current = None
            self._roll_next = False
            fut = self._loop.run_in_executor(self._executor, self._truncate_files, segments,
                                             zxid, snap_dir)
            try:
                kept = await fut
            except OSError as exc:
                self.failed = f"truncating the txn log in {self._dir} failed: {exc!r}"
                log.error("%s; no further txn is accepted", self.failed)
                self.on_failed(self.failed)
                raise
            self._last_zxid = kept if kept >= 0 else None
            self._log_bytes = 0
            self._reset_snapshot_stats()
            return kept
        finally:
            self._truncating = False
            self._idle = None

    def _truncate_files(self, segments: list[_Segment], zxid: int, snap_dir: str | None) -> int:
        for seg in segments:
            if seg.handle is not None:
                with contextlib.suppress(OSError):
                    seg.handle.close()
                seg.handle = None
        return truncate_log(self._files, self._dir, zxid, snap_dir,
                            log=lambda msg: log.info("%s", msg))

    def close(self) -> None:
        """Stop: wait for the writer job in flight, close the files (unqueued txns are dropped:
        they were never acknowledged)."""
        if self._closed:
            return
        self._closed = True
        self._executor.shutdown(wait=True)
        for seg in self._segments:
            if seg.handle is not None:
                with contextlib.suppress(OSError):
                    seg.handle.close()
                seg.handle = None
