"""Restore a database from its snapshots and txn logs, and decide what autopurge deletes.

Theory of operation
-------------------
``recover(files, snap_dir, log_dir, ...)`` mirrors ``FileTxnSnapLog.restore`` and
``ZKDatabase.loadDataBase``, with stricter refusals where Apache would carry on with lost data:

1. Snapshots: the names ``snapshot.<hex>[.gz|.snappy]`` newest first; up to 100 that pass the
   quick check (``SnapStream.isValidSnapshot``: the seal marker at the end of a plain file, the
   gzip / snappy magic at the start of a compressed one) are read in turn, and the first that
   decodes completely (seals included) is used; its zxid is the one in its name
   (``FileSnap.deserialize``). A snapshot that fails is logged and the next older one tried.
   A file is read a piece at a time and decoded straight into the tree
   (``tree_io.read_snapshot_file``), so it is never held whole, compressed or not.
2. Logs: ``log.<hex>`` sorted by start zxid; replay starts with the log that has the largest
   start zxid <= the snapshot zxid (or the first log) and runs through every later one
   (``FileTxnLog.getLogFiles``). Txns at or below the snapshot zxid are skipped; every other
   txn must follow the previous one (zxid + 1, or counter 1 of a newer epoch): a hole means a
   log file is missing, and recovery refuses. Each txn is applied to the tree; createSession
   adds its session, closeSession removes it (``FileTxnSnapLog.processTransaction``); equal
   ACL lists in the replayed txns reach the tree as one shared list. A txn's
   TxnDigest, when present, is compared with the tree's digest (``DataTree.compareDigest``); a
   mismatch is reported, not fatal, as in Apache.
3. Endings. A log ends where a complete entry does not follow (``txnlog.scan_log``): zeros
   (preallocation) end any log quietly. A torn entry at the end of the *last* log is what a crash
   mid-write leaves: it is logged and the file truncated to its last complete entry. A torn
   entry at the end of an earlier log is left alone if the next log carries on without a hole.
   Bytes after a run of zeros in the last log (an unsynced batch whose pages reached the disk
   out of order) are cut off the same way: their zxids are about to be reused.
   A checksum failure on a complete entry is corruption and recovery refuses, except on the
   very last entry of the last log with nothing after it: that is a write whose pages reached
   the disk out of order before its fsync returned, so it was never acknowledged.
4. Refusals (``RecoveryError``, saying what was found and what to do): snapshot files exist but
   none is valid; logs hold txns but there is no snapshot (unless ``trust_empty_snapshot``,
   Apache's ``zookeeper.snapshot.trust.empty`` of ZOOKEEPER-3056); a corrupt log; a hole.
   Nothing at all gives an empty database at zxid 0 and writes ``snapshot.0`` (Apache's
   ``datadir.autocreate`` path saves the empty tree at once).
5. Sessions that own ephemerals but are not in the session table are killed: their ephemerals
   are deleted at the last zxid without a txn (``ZooKeeperServer.loadData``).

``recover`` also hands back the last ``commit_log_count`` txns it replayed, ``(zxid, txn
bytes)``: a leader's committed log starts with them (``ZKDatabase.loadDataBase`` feeds its
``committedLog`` the same way).

``truncate_log`` is a learner's TRUNC (``FileTxnSnapLog.truncateLog``, ``FileTxnLog.truncate``):
the log is cut right after the last txn <= zxid, later log files are deleted, and snapshots
newer than zxid are set aside (renamed ``truncated.snapshot.<hex>``, a name neither zkfast nor
Apache reads), so that the following ``recover`` reloads exactly up to zxid. Apache 3.8 leaves
those snapshots in place, and its reload then starts from a snapshot holding the very txns the
leader told it to drop. Every intermediate state a crash can leave is a prefix of the old
history (snapshots first, then the later files newest first, then the cut), so recovery stays
possible throughout. ``LogHistory`` reads the logged txns after a zxid for a leader's DIFF
(``ZKDatabase.getProposalsFromTxnLog``).

``purge_plan`` is ``PurgeTxnLog.purge``: keep the newest ``retain`` valid snapshots; delete
snapshots older than the oldest kept one, and logs older than it except the log that holds its
next txns (the one with the largest start zxid <= its zxid).

All file access goes through the small ``Files`` interface, so the simulator and the tests can
hand in a faulty disk (``MemoryFiles`` keeps what was synced apart from what was only written).
No IO and no clock here.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from .._impl import ProtocolError, core
from ..core.datatree import DataTree
from ..wire.txn_codec import decode_txn
from .snapshot import SnapshotCorrupt
from .tree_io import quick_valid, read_snapshot_file
from .txnlog import FILE_HEADER_BYTES, LogCorrupt, LogScan, parse_file_zxid, scan_log

__all__ = [
    "Files",
    "LogHandle",
    "MemoryFiles",
    "Recovered",
    "RecoveryError",
    "recover",
    "purge_plan",
    "truncate_log",
    "LogHistory",
    "COMMIT_LOG_COUNT",
    "SET_ASIDE_PREFIX",
    "list_snapshots",
    "list_logs",
    "SNAPSHOTS_TRIED_MAX",
]

#: Logs are read in chunks until a run of zeros longer than any entry follows the last
#: non-zero byte: from there on it is preallocated space (an entry is at most jute.maxbuffer
#: plus its header, and always ends with a non-zero 'B').
_LOG_CHUNK_BYTES = 256 << 10
ENTRY_BYTES_MAX = (1 << 20) + 4096
#: FileSnap.deserialize looks at up to 100 snapshots that pass the quick check.
SNAPSHOTS_TRIED_MAX = 100
_QUICK_BYTES = 16
#: ``zookeeper.commitLogCount``: the replayed txns ``recover`` hands back.
COMMIT_LOG_COUNT = 500
#: Snapshots newer than a truncation point are renamed with this prefix.
SET_ASIDE_PREFIX = "truncated."
#: TxnHeader ``{long clientId; int cxid; long zxid; ...}``: the zxid's offset in a txn.
_TXN_ZXID = struct.Struct(">q")
_TXN_ZXID_OFFSET = 12


class RecoveryError(Exception):
    """The data directory cannot be restored safely; the message says what to do."""


class LogHandle(Protocol):
    """One open txn log file being appended to."""

    def write_at(self, offset: int, data: bytes) -> None: ...

    def extend(self, size: int) -> None:
        """Grow the file to ``size`` bytes of zeros (preallocation)."""

    def sync(self) -> None:
        """fdatasync: everything written so far survives a crash once this returns."""

    def close(self) -> None: ...


class Files(Protocol):
    """The file operations storage needs; names are plain file names inside a directory."""

    def list(self, directory: str) -> list[str]: ...

    def size(self, directory: str, name: str) -> int: ...

    def read(self, directory: str, name: str, offset: int = 0, length: int = -1) -> bytes: ...

    def truncate(self, directory: str, name: str, size: int) -> None:
        """Cut a file to ``size`` bytes and make that durable."""

    def remove(self, directory: str, name: str) -> None: ...

    def write_atomic(self, directory: str, name: str, data: bytes) -> None:
        """Write a whole file durably under ``name`` (temporary file, fsync, rename, dir fsync)."""

    def create_log(self, directory: str, name: str) -> LogHandle:
        """Create (or empty) a log file for appending."""

    def sync_dir(self, directory: str) -> None: ...

    def rename(self, directory: str, old: str, new: str) -> None:
        """Rename a file within ``directory`` (replacing ``new``) and make that durable."""


# ============================================================================ memory files


class _MemFile:
    __slots__ = ("data", "synced")

    def __init__(self) -> None:
        self.data = bytearray()
        #: What survives a crash: the content as of the last sync (None: the name itself is
        #: not durable yet, the directory was not synced since the file was created).
        self.synced: bytes | None = None


class _MemHandle:
    def __init__(self, fs: MemoryFiles, directory: str, name: str) -> None:
        self.fs = fs
        self.directory = directory
        self.name = name

    def _file(self) -> _MemFile:
        return self.fs.dirs[self.directory][self.name]

    def write_at(self, offset: int, data: bytes) -> None:
        self.fs.before("write", self.name)
        f = self._file()
        if len(f.data) < offset:
            f.data.extend(bytes(offset - len(f.data)))
        f.data[offset:offset + len(data)] = data

    def extend(self, size: int) -> None:
        self.fs.before("extend", self.name)
        f = self._file()
        if len(f.data) < size:
            f.data.extend(bytes(size - len(f.data)))

    def sync(self) -> None:
        self.fs.before("sync", self.name)
        f = self._file()
        f.synced = bytes(f.data)

    def close(self) -> None:
        pass


class MemoryFiles:
    """An in-memory ``Files`` that knows what a crash would keep.

    ``crash()`` drops everything not synced: a file's content goes back to its last sync, a
    file whose directory entry was never synced disappears. ``before(op, name)`` is called
    before every write/extend/sync: a test replaces it to inject an error.
    """

    def __init__(self) -> None:
        self.dirs: dict[str, dict[str, _MemFile]] = {}
        #: Names created since the directory's last sync: lost by a crash.
        self.unsynced_names: dict[str, set[str]] = {}

    def before(self, op: str, name: str) -> None:
        """Hook for fault injection (raise OSError to fail the operation)."""

    def put(self, directory: str, name: str, data: bytes) -> None:
        """Create a durable file (test setup)."""
        f = _MemFile()
        f.data = bytearray(data)
        f.synced = bytes(data)
        self.dirs.setdefault(directory, {})[name] = f

    def get(self, directory: str, name: str) -> bytes:
        return bytes(self.dirs[directory][name].data)

    def crash(self) -> None:
        """Forget everything that was not synced."""
        for directory, files in self.dirs.items():
            for name in list(files):
                f = files[name]
                if name in self.unsynced_names.get(directory, set()) or f.synced is None:
                    del files[name]
                    continue
                f.data = bytearray(f.synced)
        self.unsynced_names.clear()

    # ---- Files protocol
    def list(self, directory: str) -> list[str]:
        return sorted(self.dirs.get(directory, {}))

    def size(self, directory: str, name: str) -> int:
        return len(self.dirs[directory][name].data)

    def read(self, directory: str, name: str, offset: int = 0, length: int = -1) -> bytes:
        data = self.dirs[directory][name].data
        end = len(data) if length < 0 else offset + length
        return bytes(data[offset:end])

    def truncate(self, directory: str, name: str, size: int) -> None:
        self.before("truncate", name)
        f = self.dirs[directory][name]
        del f.data[size:]
        f.synced = bytes(f.data)

    def remove(self, directory: str, name: str) -> None:
        self.before("remove", name)
        del self.dirs[directory][name]

    def write_atomic(self, directory: str, name: str, data: bytes) -> None:
        self.before("write_atomic", name)
        self.put(directory, name, data)

    def create_log(self, directory: str, name: str) -> LogHandle:
        self.before("create", name)
        self.dirs.setdefault(directory, {})[name] = _MemFile()
        self.unsynced_names.setdefault(directory, set()).add(name)
        return _MemHandle(self, directory, name)

    def sync_dir(self, directory: str) -> None:
        self.before("sync_dir", directory)
        self.unsynced_names.pop(directory, None)

    def rename(self, directory: str, old: str, new: str) -> None:
        self.before("rename", old)
        files = self.dirs[directory]
        files[new] = files.pop(old)
        self.unsynced_names.get(directory, set()).discard(old)


# ============================================================================ recovery


@dataclass
class Recovered:
    """The restored database and how it was found."""

    tree: DataTree
    #: ``(session_id, timeout_ms)`` of every session alive at the last zxid, sorted.
    sessions: list[tuple[int, int]]
    last_zxid: int
    #: The snapshot used (None: started from an empty tree).
    snapshot_name: str | None = None
    snapshot_zxid: int = 0
    txns_replayed: int = 0
    logs_read: list[str] = field(default_factory=list)
    #: Files whose torn tail was cut off, as "name@offset".
    truncated: list[str] = field(default_factory=list)
    #: A snapshot.0 was written for a brand-new database.
    created: bool = False
    #: Sessions that owned ephemerals but were not in the session table.
    killed_sessions: list[int] = field(default_factory=list)
    #: The first zxid whose TxnDigest did not match the tree, if any.
    digest_mismatch_zxid: int | None = None
    #: The last ``commit_log_count`` txns replayed, ``(zxid, txn bytes)`` in zxid order (the
    #: seed of a leader's committed log; empty when nothing was replayed).
    committed: list[tuple[int, bytes]] = field(default_factory=list)


def list_snapshots(files: Files, snap_dir: str) -> list[tuple[int, str]]:
    """``(zxid, name)`` of every snapshot file name, newest first."""
    out = []
    for name in files.list(snap_dir):
        z = parse_file_zxid(name, "snapshot")
        if z is not None:
            out.append((z, name))
    out.sort(reverse=True)
    return out


def list_logs(files: Files, log_dir: str) -> list[tuple[int, str]]:
    """``(start zxid, name)`` of every txn log file name, oldest first."""
    out = []
    for name in files.list(log_dir):
        z = parse_file_zxid(name, "log")
        if z is not None:
            out.append((z, name))
    out.sort()
    return out


def is_quick_valid(files: Files, directory: str, name: str) -> bool:
    """``SnapStream.isValidSnapshot`` over ``files``."""
    try:
        size = files.size(directory, name)
        head = files.read(directory, name, 0, _QUICK_BYTES)
        tail = files.read(directory, name, max(0, size - 5), 5)
    except OSError:
        return False
    return quick_valid(name, size, head, tail)


def valid_snapshots(files: Files, snap_dir: str, n: int) -> list[tuple[int, str]]:
    """``FileSnap.findNValidSnapshots``: up to ``n`` quick-valid snapshots, newest first."""
    out = []
    for z, name in list_snapshots(files, snap_dir):
        if is_quick_valid(files, snap_dir, name):
            out.append((z, name))
            if len(out) >= n:
                break
    return out


def _follows(prev: int, zxid: int) -> bool:
    if zxid == prev + 1:
        return True
    return core.zxid_epoch(zxid) > core.zxid_epoch(prev) and core.zxid_counter(zxid) <= 1


def recover(files: Files, snap_dir: str, log_dir: str, *, trust_empty_snapshot: bool = False,
            extended_types_enabled: bool = False, digest_enabled: bool = True,
            entry_bytes_max: int = ENTRY_BYTES_MAX,
            commit_log_count: int = COMMIT_LOG_COUNT,
            log: Callable[[str], None] = lambda msg: None) -> Recovered:
    """Restore the database (see the module docstring).

    Args:
        files: the file system.
        snap_dir: the ``version-2`` directory of dataDir; ``log_dir`` that of dataLogDir.
        trust_empty_snapshot: replay logs even without a snapshot (ZOOKEEPER-3056).
        entry_bytes_max: the largest log entry possible (jute.maxbuffer plus headers).
        commit_log_count: how many of the last replayed txns ``Recovered.committed`` keeps.
        log: receives one line per notable finding (torn tails, skipped snapshots).

    Raises:
        RecoveryError: the data cannot be restored without losing or inventing txns.
    """
    snaps = list_snapshots(files, snap_dir)
    logs = list_logs(files, log_dir)
    tree: DataTree | None = None
    sessions: dict[int, int] = {}
    used: tuple[int, str] | None = None
    tried = 0
    failures: list[str] = []
    for z, name in snaps:
        if tried >= SNAPSHOTS_TRIED_MAX:
            break
        if not is_quick_valid(files, snap_dir, name):
            failures.append(f"{name}: incomplete (fails the quick validity check)")
            continue
        tried += 1
        try:
            # A piece at a time, straight into the tree (tree_io.read_snapshot_file).
            tree, snap = read_snapshot_file(name, partial(files.read, snap_dir, name), z,
                                            extended_types_enabled=extended_types_enabled)
        except (SnapshotCorrupt, ProtocolError, OSError) as exc:
            failures.append(f"{name}: {exc}")
            log(f"problem reading snapshot {name}: {exc}; trying an older one")
            continue
        if digest_enabled and snap.digest is not None and snap.digest[0] == z \
                and snap.digest[2] != tree.digest():
            log(f"snapshot {name}: digest 0x{snap.digest[2]:x} in the file, tree digest "
                f"0x{tree.digest():x}")
        sessions = dict(snap.sessions)
        used = (z, name)
        break
    has_txns = any(_log_has_entries(files, log_dir, name) for _, name in logs)
    if used is None:
        if snaps:
            raise RecoveryError(
                f"no valid snapshot in {snap_dir} ({'; '.join(failures[:5])}). zkfast will not "
                "guess at the data: restore the snapshots from a backup, or move the snapshot "
                "and log files away to start with an empty database")
        if has_txns and not trust_empty_snapshot:
            raise RecoveryError(
                f"txn logs in {log_dir} but no snapshot in {snap_dir}: the logs alone may not "
                "hold the whole database. Restore the snapshot, or set "
                "zookeeper.snapshot.trust.empty=true if the logs start at zxid 1 (upgrades "
                "from ZooKeeper before 3.5.3)")
        tree = DataTree(extended_types_enabled=extended_types_enabled)
        if not has_txns:
            from .tree_io import encode_tree

            files.write_atomic(snap_dir, "snapshot.0",
                               encode_tree(tree, [], digest_enabled=digest_enabled))
            return Recovered(tree, [], 0, created=True)
        log("no snapshot found; replaying the txn logs over an empty tree "
            "(snapshot.trust.empty)")
    assert tree is not None
    result = Recovered(tree, [], tree.last_processed_zxid,
                       snapshot_name=used[1] if used else None,
                       snapshot_zxid=used[0] if used else 0)
    tail: deque[tuple[int, bytes]] = deque(maxlen=max(commit_log_count, 0))
    _replay(files, log_dir, logs, tree, sessions, result, digest_enabled, entry_bytes_max, log,
            tail)
    result.committed = list(tail)
    # ZooKeeperServer.loadData: sessions owning ephemerals but absent from the table die now.
    for owner in sorted(o for o in tree.ephemerals if o not in sessions):
        tree.apply_txn((owner, 0, tree.last_processed_zxid, 0, -11), None)
        result.killed_sessions.append(owner)
    result.sessions = sorted(sessions.items())
    result.last_zxid = tree.last_processed_zxid
    return result


def _log_has_entries(files: Files, log_dir: str, name: str) -> bool:
    try:
        head = files.read(log_dir, name, 0, FILE_HEADER_BYTES + 12)
    except OSError:
        return True
    return len(head) > FILE_HEADER_BYTES + 11 and any(head[FILE_HEADER_BYTES:])




def _read_log(files: Files, log_dir: str, name: str, entry_bytes_max: int) -> bytes:
    out = bytearray()
    zero_run = 0
    while True:
        chunk = files.read(log_dir, name, len(out), _LOG_CHUNK_BYTES)
        out += chunk
        trimmed = len(chunk.rstrip(b"\0"))
        zero_run = zero_run + len(chunk) if trimmed == 0 else len(chunk) - trimmed
        if len(chunk) < _LOG_CHUNK_BYTES or zero_run > entry_bytes_max:
            return bytes(out)


def _nothing_after(data: bytes, offset: int) -> bool:
    """Whether the entry at ``offset`` is followed by no complete entry (zeros or torn)."""
    if len(data) - offset < 12:
        return True
    length = int.from_bytes(data[offset + 8:offset + 12], "big", signed=True)
    if length <= 0:
        return False
    end = offset + 12 + length + 1
    try:
        rest = scan_log(data[:FILE_HEADER_BYTES] + data[end:])
    except LogCorrupt:
        return False
    return not rest.entries


#: Txn types whose record holds an ACL list, and its index there (CreateTxn, CreateTxn of
#: create2, CreateContainerTxn, CreateTTLTxn, SetACLTxn).
_ACL_FIELD = {1: 2, 15: 2, 19: 2, 21: 2, 7: 1}


def _share_acls(htype: int, record: Any, acl_lists: dict[tuple[Any, ...], list[Any]]) -> Any:
    """``record`` with its ACL list replaced by the one list kept for equal ACLs, so the
    znodes a replay creates share lists as a snapshot's load and live writes
    (``Prepper.stored_acl``) do, instead of each keeping the list its txn decoded to."""
    if htype == 14:
        return [(t, _share_acls(t, r, acl_lists)) for t, r in record]
    i = _ACL_FIELD.get(htype)
    if i is None or type(record) is not tuple or len(record) <= i:
        return record
    acl = record[i]
    if type(acl) is not list:
        return record
    shared = acl_lists.setdefault(tuple(acl), acl)
    if shared is acl:
        return record
    return (*record[:i], shared, *record[i + 1:])


def _replay(files: Files, log_dir: str, logs: list[tuple[int, str]], tree: DataTree,
            sessions: dict[int, int], result: Recovered, digest_enabled: bool,
            entry_bytes_max: int, log: Callable[[str], None],
            tail: deque[tuple[int, bytes]]) -> None:
    snap_zxid = tree.last_processed_zxid
    acl_lists: dict[tuple[Any, ...], list[Any]] = {}
    start = 0
    for i, (z, _name) in enumerate(logs):
        if z <= snap_zxid:
            start = i
    last = snap_zxid
    for i in range(start, len(logs)):
        z, name = logs[i]
        is_last = i == len(logs) - 1
        data = _read_log(files, log_dir, name, entry_bytes_max)
        if is_last and (len(data) < FILE_HEADER_BYTES or not any(data[:FILE_HEADER_BYTES])):
            log(f"txn log {name} has no complete file header ({len(data)} bytes): a crash "
                "right after it was created; it holds no txns")
            continue
        try:
            scan = scan_log(data)
        except LogCorrupt as exc:
            if not (is_last and _nothing_after(data, exc.offset)):
                raise RecoveryError(
                    f"txn log {log_dir}/{name} is corrupt at offset {exc.offset}: "
                    f"{exc.reason}. Its txns cannot be trusted, so zkfast will not start: "
                    "restore the data directory from a backup, or cut the log at that offset "
                    "(zkfast-txnlog-dump --recover; every txn after it is lost) if that loss "
                    "is acceptable") from exc
            # The very last entry of the last log, with nothing after it: the pages of an
            # unsynced write reached the disk out of order. That is a torn tail.
            log(f"txn log {name}: the last entry (offset {exc.offset}) fails its checksum "
                f"({exc.reason}) and nothing follows it: a torn write")
            scan = LogScan(scan_log(data[:exc.offset]).entries, exc.offset, "torn")
        result.logs_read.append(name)
        for offset, txn in scan.entries:
            try:
                header, record, digest = decode_txn(txn)
            except ProtocolError as exc:
                raise RecoveryError(
                    f"txn log {log_dir}/{name}: the entry at offset {offset} passes its "
                    f"checksum but does not decode ({exc}); restore from a backup") from exc
            zxid = header[2]
            if zxid <= last:
                continue
            if not _follows(last, zxid):
                raise RecoveryError(
                    f"txn log hole: after zxid 0x{last:x} the next txn found is 0x{zxid:x} "
                    f"(in {log_dir}/{name}); a log file between them is missing. Restore it "
                    "from a backup; zkfast will not start with txns missing")
            htype = header[4]
            if htype == -10:
                sessions[header[0]] = record[0]
            elif htype == -11:
                sessions.pop(header[0], None)
            elif htype in _ACL_FIELD or htype == 14:
                record = _share_acls(htype, record, acl_lists)
            tree.apply_txn(header, record)
            last = zxid
            result.txns_replayed += 1
            tail.append((zxid, txn))
            if digest_enabled and digest is not None and result.digest_mismatch_zxid is None \
                    and digest != tree.digest():
                result.digest_mismatch_zxid = zxid
                log(f"digest mismatch at zxid 0x{zxid:x}: the log says 0x{digest:x}, the tree "
                    f"has 0x{tree.digest():x}")
        stale = is_last and scan.tail == "zeros" and \
            data.count(0, scan.end_offset) != len(data) - scan.end_offset
        if stale:
            # Pages of one unsynced batch can reach the disk out of order: a hole of zeros,
            # then entries that were never acknowledged. Their zxids will be reused.
            log(f"txn log {name}: unacknowledged bytes after a gap at offset "
                f"{scan.end_offset}; truncating the file to {scan.end_offset} bytes")
            files.truncate(log_dir, name, scan.end_offset)
            result.truncated.append(f"{name}@{scan.end_offset}")
        elif scan.tail == "torn":
            if is_last:
                log(f"txn log {name}: torn entry at offset {scan.end_offset} (a crash "
                    f"mid-write); truncating the file to {scan.end_offset} bytes")
                files.truncate(log_dir, name, scan.end_offset)
                result.truncated.append(f"{name}@{scan.end_offset}")
            else:
                log(f"txn log {name}: ends with a torn entry at offset {scan.end_offset}; the "
                    "next log carries on")


# ============================================================================ TRUNC, DIFF


def _txn_zxid(txn: bytes) -> int | None:
    if len(txn) < _TXN_ZXID_OFFSET + 8:
        return None
    return int(_TXN_ZXID.unpack_from(txn, _TXN_ZXID_OFFSET)[0])


def truncate_log(files: Files, log_dir: str, zxid: int, snap_dir: str | None = None, *,
                 entry_bytes_max: int = ENTRY_BYTES_MAX,
                 log: Callable[[str], None] = lambda msg: None) -> int:
    """Cut the txn log right after ``zxid`` and set aside newer snapshots (module docstring).

    Args:
        files: the file system.
        log_dir: the ``version-2`` directory of dataLogDir.
        zxid: the last zxid to keep (the TRUNC packet's).
        snap_dir: that of dataDir (default: ``log_dir``, as dataLogDir defaults to dataDir).

    Returns:
        The zxid of the last txn left in the logs (<= ``zxid``), -1 when none is left.

    Raises:
        RecoveryError: nothing was changed because the result could not be recovered: every
            snapshot is newer than ``zxid``, no log reaches from the newest older snapshot to
            ``zxid``, or the log to cut is corrupt before the cut.
    """
    sdir = log_dir if snap_dir is None else snap_dir
    snaps = list_snapshots(files, sdir)
    newer = [name for z, name in snaps if z > zxid]
    base = [z for z, name in snaps if z <= zxid and is_quick_valid(files, sdir, name)]
    logs = list_logs(files, log_dir)
    if snaps and not base:
        raise RecoveryError(
            f"cannot truncate the txn log to 0x{zxid:x}: every snapshot in {sdir} is newer "
            "(the state at that zxid cannot be rebuilt); this server needs a full SNAP sync: "
            "move its data directory away and restart it")
    if base and base[0] < zxid and logs and not any(
            z <= base[0] or _follows(base[0], z) for z, _ in logs):
        raise RecoveryError(
            f"cannot truncate the txn log to 0x{zxid:x}: no log follows snapshot "
            f"0x{base[0]:x}; move the data directory away and restart for a SNAP sync")
    keep = [(z, name) for z, name in logs if z <= zxid]
    later = [name for z, name in logs if z > zxid]
    cut: tuple[str, int] | None = None
    last_kept = -1
    if keep:
        _z, name = keep[-1]
        data = _read_log(files, log_dir, name, entry_bytes_max)
        if len(data) >= FILE_HEADER_BYTES and any(data[:FILE_HEADER_BYTES]):
            try:
                scan = scan_log(data)
            except LogCorrupt as exc:
                good = scan_log(data[:exc.offset]) if exc.offset >= FILE_HEADER_BYTES \
                    else LogScan([], FILE_HEADER_BYTES, "torn")
                if any((_txn_zxid(t) or 0) > zxid for _, t in good.entries):
                    scan = good
                else:
                    raise RecoveryError(
                        f"cannot truncate {log_dir}/{name} to 0x{zxid:x}: it is corrupt at "
                        f"offset {exc.offset} ({exc.reason}), before the cut") from exc
            end = scan.end_offset
            for offset, txn in scan.entries:
                tz = _txn_zxid(txn)
                if tz is not None and tz > zxid:
                    end = offset
                    break
                if tz is not None:
                    last_kept = tz
            if end < len(data) or files.size(log_dir, name) > end:
                cut = (name, end)
    for name in newer:
        log(f"truncating to 0x{zxid:x}: snapshot {name} is newer; set aside as "
            f"{SET_ASIDE_PREFIX}{name}")
        files.rename(sdir, name, SET_ASIDE_PREFIX + name)
    for name in reversed(later):
        log(f"truncating to 0x{zxid:x}: deleting txn log {name}")
        files.remove(log_dir, name)
    if later:
        files.sync_dir(log_dir)
    if cut is not None:
        log(f"truncating to 0x{zxid:x}: txn log {cut[0]} cut at offset {cut[1]}")
        files.truncate(log_dir, cut[0], cut[1])
    return last_kept


class LogHistory:
    """``TxnHistory`` over the txn log files (docs/zab.md §1): what a leader's DIFF reads
    beyond its in-memory committed log (``ZKDatabase.getProposalsFromTxnLog``).

    Reads the files on each call; the log being appended meanwhile is fine (an entry still
    being written reads as a torn tail and ends the walk).

    The log is the history only where no snapshot stands in for it: a snapshot at a zxid the
    log does not hold (a SNAP sync's) replaced everything before it, and what the log still
    holds from before it may be txns the ensemble never committed (the reason for the SNAP),
    while the txns the snapshot brought are in no log. So every snapshot above ``zxid`` must
    be at a txn the walk passes; otherwise the answer is None (the leader sends a SNAP).
    """

    def __init__(self, files: Files, log_dir: str, *, snap_dir: str | None = None,
                 entry_bytes_max: int = ENTRY_BYTES_MAX) -> None:
        self.files = files
        self.log_dir = log_dir
        #: dataDir's ``version-2`` (default: ``log_dir``, as dataLogDir defaults to dataDir).
        self.snap_dir = log_dir if snap_dir is None else snap_dir
        self.entry_bytes_max = entry_bytes_max

    def txns_after(self, zxid: int, limit_bytes: int) -> list[tuple[int, bytes]] | None:
        """Every logged txn with zxid > ``zxid``, in order, starting right after ``zxid``.

        None when ``zxid`` itself is not in the log (Apache: "Unable to find proposals from
        txnlog"), when the txns after it are not contiguous (a log file missing, or the jump
        after a SNAP), when a snapshot above ``zxid`` is at a zxid the log does not hold (see
        the class docstring), when a log is corrupt, or when their bytes exceed
        ``limit_bytes``.
        """
        try:
            snaps = {z for z, _ in list_snapshots(self.files, self.snap_dir) if z > zxid}
        except OSError:
            return None
        logs = list_logs(self.files, self.log_dir)
        start = None
        for i, (z, _name) in enumerate(logs):
            if z <= zxid:
                start = i
        if start is None:
            return None
        out: list[tuple[int, bytes]] = []
        found = False
        last = zxid
        total = 0
        for _z, name in logs[start:]:
            try:
                data = _read_log(self.files, self.log_dir, name, self.entry_bytes_max)
                if len(data) < FILE_HEADER_BYTES or not any(data[:FILE_HEADER_BYTES]):
                    continue
                scan = scan_log(data)
            except (OSError, LogCorrupt):
                return None
            for _offset, txn in scan.entries:
                tz = _txn_zxid(txn)
                if tz is None:
                    return None
                if not found:
                    if tz < zxid:
                        continue
                    if tz > zxid:
                        return None
                    found = True
                    continue
                if tz <= last:
                    continue
                if not _follows(last, tz):
                    return None
                total += len(txn)
                if total > limit_bytes:
                    return None
                out.append((tz, txn))
                last = tz
                snaps.discard(tz)
        if snaps:
            return None  # a snapshot the log does not pass through: the log is not history
        return out if found else None


# ============================================================================ purge


def purge_plan(files: Files, snap_dir: str, log_dir: str, retain: int
               ) -> list[tuple[str, str]]:
    """``PurgeTxnLog.purge``: the ``(directory, name)`` files to delete, keeping ``retain``
    valid snapshots and every log needed to replay from the oldest of them."""
    keep = valid_snapshots(files, snap_dir, retain)
    if not keep:
        return []
    least = keep[-1][0]
    logs = list_logs(files, log_dir)
    retained_logs = set()
    start = None
    for z, name in logs:
        if z <= least:
            start = name
    if start is not None:
        retained_logs.add(start)
    out: list[tuple[str, str]] = []
    for z, name in logs:
        if z < least and name not in retained_logs:
            out.append((log_dir, name))
    for z, name in list_snapshots(files, snap_dir):
        if z < least:
            out.append((snap_dir, name))
    return out
