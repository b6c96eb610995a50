"""Requests: "prep" (request -> txn or error, against a pending view) and "final" (reads -> reply).

Theory of operation
-------------------
Prep mirrors Apache's ``PrepRequestProcessor``. A write is validated against the *pending view*:
the committed ``DataTree`` overlaid with the change records of txns that were prepped but are
not applied yet (``outstandingChanges`` / ``outstandingChangesForPath``). ``PendingView.get``
returns the newest ``ChangeRecord`` for a path (built from the tree when nothing is pending)
or ``None`` for "no node"; every successful write adds the records it implies (the node and its
parent), tagged with the txn's zxid, and ``PendingView.applied(zxid)`` forgets them once that
txn is in the tree. Checks run in Apache's order and raise ``KeeperError(code)``; the caller
turns that into an ``error`` txn that still takes its zxid (zk-formats §2.5).

A record ``PendingView.get`` builds from the tree (``zxid`` -1) belongs to the prep that asked
for it: nothing else refers to it, so the op that changes the path takes it over as its own
record (``_own``) instead of copying it; a record already pending is copied (``duplicate``).

Stored ACLs are shared: ``Prepper.stored_acl`` runs ``fixupACL`` and hands back one list object
per distinct ACL (the in-memory half of Apache's ``ReferenceCountedACLCache``), so the thousands
of znodes a client creates with the same ACL hold one list, not one list, two tuples and two
strings each. Znodes never change an ACL list in place (setACL stores a new one). The shared
lists are never ``datatree.OPEN_ACL_UNSAFE`` itself, which marks the implicit open ACL of the
system nodes (``storage/tree_io.py``).

A multi preps its ops in order against the same view with one zxid. On the first failure the
records it added are rolled back (``rollbackPendingChanges``) and the sub-txn list becomes: the
txns of the ops before, ``ErrorTxn(code)`` for the failing op, ``ErrorTxn(-2)`` after it, which
is exactly what Apache logs; the client sees 0 / code / -2 results.

Digests (``TxnDigest``) follow ``PrepRequestProcessor.precalculateDigest``: each change record
carries its node digest and the tree digest after it, so the digest of a txn is known at prep
time, before it is applied. A failed single op carries no digest; createSession, closeSession and
multi carry the current (pending) tree digest.

Final: the read handlers (``FinalRequestProcessor``) answer from the committed tree and register
watches. They raise ``KeeperError`` for NoNode/NoAuth/BadArguments/NoWatcher. Everything here is
sans-IO and deterministic.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from ..wire.constants import (
    CONTAINER_EPHEMERAL_OWNER,
    TTL_EPHEMERAL_OWNER_MASK,
    TTL_MAX_MS,
    Err,
)
from .datatree import node_digest as _node_digest
from .datatree import parse_stats_track as _parse_stats_track

__all__ = [
    "KeeperError",
    "ChangeRecord",
    "PendingView",
    "Prepper",
    "ttl_ephemeral_owner",
    "ephemeral_kind",
    "SPECIAL_PATHS",
    "java_string_hash",
    "java_hash_order",
    "java_clone_order",
    "WRITE_OPS",
]

_MASK64 = (1 << 64) - 1

#: Paths a delete may never remove (ZKDatabase.isSpecialPath).
SPECIAL_PATHS = frozenset({"/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"})

#: Opcodes that become txns.
WRITE_OPS = frozenset({1, 2, 5, 7, 13, 14, 15, 16, 19, 20, 21, -10, -11})

# Error codes as plain ints (hot path; IntEnum comparisons are slower).
_BADARGUMENTS = int(Err.BADARGUMENTS)
_UNIMPLEMENTED = int(Err.UNIMPLEMENTED)
_NONODE = int(Err.NONODE)
_NOAUTH = int(Err.NOAUTH)
_BADVERSION = int(Err.BADVERSION)
_NODEEXISTS = int(Err.NODEEXISTS)
_NOTEMPTY = int(Err.NOTEMPTY)
_NOCHILDRENFOREPHEMERALS = int(Err.NOCHILDRENFOREPHEMERALS)
_INVALIDACL = int(Err.INVALIDACL)
_SESSIONEXPIRED = int(Err.SESSIONEXPIRED)
_RUNTIMEINCONSISTENCY = int(Err.RUNTIMEINCONSISTENCY)
_QUOTAEXCEEDED = int(Err.QUOTAEXCEEDED)

_PERM_READ, _PERM_WRITE, _PERM_CREATE, _PERM_DELETE, _PERM_ADMIN = 1, 2, 4, 8, 16

#: Distinct ACLs ``Prepper.stored_acl`` keeps for sharing; past this the table starts over
#: (lists already stored stay shared; a client cycling through ACLs cannot grow it forever).
ACL_SHARED_MAX = 4096


class KeeperError(Exception):
    """An expected request outcome other than OK (KeeperException.Code value in ``code``)."""

    __slots__ = ("code",)

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _signed64(v: int) -> int:
    v &= _MASK64
    return v - (1 << 64) if v >> 63 else v


def ttl_ephemeral_owner(ttl_ms: int) -> int:
    """EphemeralType.TTL.toEphemeralOwner: ``0xFF00000000000000 | ttl`` as a signed long."""
    return _signed64(TTL_EPHEMERAL_OWNER_MASK | ttl_ms)


def ephemeral_kind(owner: int) -> str:
    """EphemeralType.get: "void" (0), "container", "ttl" or "normal" (a session)."""
    if owner == 0:
        return "void"
    if owner == CONTAINER_EPHEMERAL_OWNER:
        return "container"
    if (owner & 0xFF00000000000000) == 0xFF00000000000000 and owner < 0:
        return "ttl"
    return "normal"


class ChangeRecord:
    """The pending state of one path (Apache's ``ChangeRecord``); ``exists`` False = deleted."""

    __slots__ = ("zxid", "path", "exists", "data", "acl", "czxid", "mzxid", "ctime", "mtime",
                 "version", "cversion", "aversion", "ephemeral_owner", "pzxid", "child_count",
                 "node_digest", "tree_digest")

    def __init__(self, zxid: int, path: str, exists: bool = False, data: bytes | None = b"",
                 acl: list[Any] | None = None, czxid: int = 0, mzxid: int = 0, ctime: int = 0,
                 mtime: int = 0, version: int = 0, cversion: int = 0, aversion: int = 0,
                 ephemeral_owner: int = 0, pzxid: int = 0, child_count: int = 0,
                 node_digest: int = 0) -> None:
        # One store per slot: records are made on every write (positional calls on the hot
        # path set them all at once).
        self.zxid = zxid
        self.path = path
        self.exists = exists
        self.data = data
        self.acl: list[Any] = [] if acl is None else acl
        self.czxid = czxid
        self.mzxid = mzxid
        self.ctime = ctime
        self.mtime = mtime
        self.version = version
        self.cversion = cversion
        self.aversion = aversion
        self.ephemeral_owner = ephemeral_owner
        self.pzxid = pzxid
        self.child_count = child_count
        self.node_digest = node_digest
        self.tree_digest = 0

    def duplicate(self, zxid: int) -> ChangeRecord:
        return ChangeRecord(zxid, self.path, self.exists, self.data, self.acl, self.czxid,
                            self.mzxid, self.ctime, self.mtime, self.version, self.cversion,
                            self.aversion, self.ephemeral_owner, self.pzxid, self.child_count,
                            self.node_digest)

    def compute_digest(self) -> int:
        """This record's node digest (datatree.node_digest reads the same attribute names)."""
        return _node_digest(self.path, self)  # type: ignore[arg-type]


class PendingView:
    """The committed tree plus the change records of prepped, not yet applied txns."""

    __slots__ = ("tree", "by_path", "changes", "digest_enabled", "_saved")

    def __init__(self, tree: Any, digest_enabled: bool) -> None:
        self.tree = tree
        self.by_path: dict[str, ChangeRecord] = {}
        self.changes: deque[ChangeRecord] = deque()
        self.digest_enabled = digest_enabled
        #: path -> record before the multi being prepped touched it (for rollback).
        self._saved: dict[str, ChangeRecord | None] | None = None

    def get(self, path: str) -> ChangeRecord | None:
        """getRecordForPath: the newest pending record, else one built from the tree."""
        if not path:
            path = "/"
        rec = self.by_path.get(path)
        if rec is not None:
            return rec if rec.exists else None
        node = self.tree.nodes.get(path)
        if node is None:
            return None
        rec = ChangeRecord(-1, path, True, node.data, node.acl, node.czxid, node.mzxid,
                           node.ctime, node.mtime, node.version, node.cversion, node.aversion,
                           node.ephemeral_owner, node.pzxid, len(node.children))
        if self.digest_enabled:
            # The tree caches each node's digest (ZNode._digest); recomputing it per write
            # would double the CRC work of the write path.
            cached = node._digest
            rec.node_digest = cached if cached is not None else _node_digest(
                path, rec)  # type: ignore[arg-type]
        return rec

    def current_tree_digest(self) -> int:
        """getCurrentTreeDigest: the newest pending tree digest, else the tree's."""
        if self.changes:
            return self.changes[-1].tree_digest
        return _signed64(self.tree.digest())

    def add(self, rec: ChangeRecord, prev_node_digest: int) -> None:
        """addChangeRecord, with the tree digest precalculated (UPDATE/ADD/REMOVE)."""
        changes = self.changes
        if self.digest_enabled:
            # current_tree_digest() and _signed64, inlined: two records per create.
            new_digest = _node_digest(rec.path, rec) if rec.exists else 0  # type: ignore[arg-type]
            rec.node_digest = new_digest
            v = ((changes[-1].tree_digest if changes else self.tree.digest())
                 - prev_node_digest + new_digest) & _MASK64
            rec.tree_digest = v - (1 << 64) if v >> 63 else v
        saved = self._saved
        if saved is not None and rec.path not in saved:
            saved[rec.path] = self.by_path.get(rec.path)
        changes.append(rec)
        self.by_path[rec.path] = rec

    def begin_multi(self) -> int:
        self._saved = {}
        return len(self.changes)

    def end_multi(self, mark: int, rollback: bool) -> None:
        """Finish a multi; on ``rollback`` drop its records and restore the paths it touched."""
        saved = self._saved
        self._saved = None
        if not rollback or saved is None:
            return
        while len(self.changes) > mark:
            self.changes.pop()
        for path, rec in saved.items():
            if rec is None:
                self.by_path.pop(path, None)
            else:
                self.by_path[path] = rec

    def truncate(self, mark: int) -> None:
        """Drop every record added after ``mark`` (a prep that failed half-way)."""
        self._saved = None
        changes = self.changes
        dropped: set[str] = set()
        while len(changes) > mark:
            dropped.add(changes.pop().path)
        for path in dropped:
            self.by_path.pop(path, None)
        if dropped:
            for rec in changes:
                if rec.path in dropped:
                    self.by_path[rec.path] = rec

    def applied(self, zxid: int) -> None:
        """Forget the records of every txn up to ``zxid`` (now in the tree)."""
        changes = self.changes
        by_path = self.by_path
        while changes and changes[0].zxid <= zxid:
            rec = changes.popleft()
            if by_path.get(rec.path) is rec:
                del by_path[rec.path]


def _auth_free(acl: Any) -> bool:
    """No entry of ``acl`` uses the ``auth`` scheme (which fixupACL expands from the
    connection's ids): fixing it up depends on the entries alone."""
    for entry in acl:
        if entry is None or entry[1] is None or entry[1][0] == "auth":
            return False
    return True


def _own(rec: ChangeRecord, zxid: int) -> ChangeRecord:
    """The record a txn of ``zxid`` changes: ``rec`` itself when ``PendingView.get`` built it
    from the tree for this prep (zxid -1: nobody else holds it), else a copy of it."""
    if rec.zxid == -1:
        rec.zxid = zxid
        return rec
    return rec.duplicate(zxid)


def _parent_of(path: str) -> str:
    i = path.rfind("/")
    return path[:i] if i > 0 else "/"


class Prepper:
    """Turns write requests into txns against a ``PendingView`` (PrepRequestProcessor).

    Args:
        view: the pending view.
        validate_path: ``PathUtils.validatePath`` as a predicate.
        check_acl: ``(acl, perm, auth_ids) -> bool`` (skipACL, super, world, schemes).
        fixup_acl: ``(acl, auth_ids) -> list | None`` (None = InvalidACL).
        is_session_live: ``checkSession`` as a predicate.
        extended_types_enabled: zookeeper.extendedTypesEnabled (TTL nodes).
        enforce_quota: zookeeper.enforceQuota (hard quotas fail writes with QuotaExceeded).
    """

    __slots__ = ("view", "validate_path", "check_acl", "fixup_acl", "is_session_live",
                 "extended_types_enabled", "enforce_quota", "ops", "_acls", "_requested_acls")

    def __init__(self, view: PendingView, *, validate_path: Callable[[str], bool],
                 check_acl: Callable[[Any, int, Any], bool],
                 fixup_acl: Callable[[Any, Any], Any],
                 is_session_live: Callable[[int], bool],
                 extended_types_enabled: bool, enforce_quota: bool = False) -> None:
        self.view = view
        self.validate_path = validate_path
        self.check_acl = check_acl
        self.fixup_acl = fixup_acl
        self.is_session_live = is_session_live
        self.extended_types_enabled = extended_types_enabled
        self.enforce_quota = enforce_quota
        #: ACL entries -> the one list stored for them (``stored_acl``).
        self._acls: dict[tuple[Any, ...], list[Any]] = {}
        #: ACL entries as a request carries them (no ``auth`` entry, so fixupACL's answer
        #: depends on them alone) -> the list ``stored_acl`` gave for them.
        self._requested_acls: dict[tuple[Any, ...], list[Any]] = {}
        self.ops: dict[int, Callable[..., tuple[int, Any, bool]]] = {
            1: self.create, 15: self.create, 19: self.create, 21: self.create,
            2: self.delete, 5: self.set_data, 7: self.set_acl, 13: self.check,
        }

    # -------------------------------------------------------------- shared checks

    def stat_of(self, rec: ChangeRecord) -> tuple[int, ...]:
        """The wire Stat of a pending record (DataNode.copyStat: derived cversion, and 0 as
        the owner of containers and TTL nodes)."""
        owner = rec.ephemeral_owner
        kind = ephemeral_kind(owner)
        if kind == "container" or (kind == "ttl" and self.extended_types_enabled):
            owner = 0
        nc = rec.child_count
        cv = (2 * rec.cversion - nc) & 0xFFFFFFFF
        cv = cv - (1 << 32) if cv > 0x7FFFFFFF else cv
        return (rec.czxid, rec.mzxid, rec.ctime, rec.mtime, rec.version, cv, rec.aversion,
                owner, len(rec.data) if rec.data is not None else 0, nc, rec.pzxid)

    def _check_session(self, session_id: int) -> None:
        if not self.is_session_live(session_id):
            raise KeeperError(_SESSIONEXPIRED)

    def _valid(self, path: str) -> None:
        if not self.validate_path(path):
            raise KeeperError(_BADARGUMENTS)

    def _parent_for_delete(self, path: str) -> str:
        """getParentPathAndValidate."""
        i = path.rfind("/")
        if i == -1 or "\0" in path or path in SPECIAL_PATHS:
            raise KeeperError(_BADARGUMENTS)
        return path[:i] or "/"

    def _record(self, path: str) -> ChangeRecord:
        rec = self.view.get(path)
        if rec is None:
            raise KeeperError(_NONODE)
        return rec

    def stored_acl(self, acl: Any, auth: Any) -> list[Any]:
        """fixupACL, then the shared list of that ACL (see the module docstring).

        Raises:
            KeeperError: InvalidACL.
        """
        requested = self._requested_acls
        key: tuple[Any, ...] | None = None
        if acl:
            key = tuple(acl)
            got = requested.get(key)
            if got is not None:
                return got  # the same entries, fixed up before: the same answer
        fixed = self.fixup_acl(acl, auth)
        if fixed is None:
            raise KeeperError(_INVALIDACL)
        shared = self.shared_acl(fixed)
        if key is not None and _auth_free(acl):
            if len(requested) >= ACL_SHARED_MAX:
                requested.clear()
            requested[key] = shared
        return shared

    def shared_acl(self, acl: list[Any]) -> list[Any]:
        """The one list kept for ACLs equal to ``acl`` (``acl`` itself when it is new)."""
        key = tuple(acl)
        acls = self._acls
        shared = acls.get(key)
        if shared is None:
            if len(acls) >= ACL_SHARED_MAX:
                acls.clear()
            shared = acls[key] = acl
        return shared

    def share_txn_acls(self, txn_type: int, record: Any) -> Any:
        """``record`` with its ACL lists swapped for the shared ones: a learner applies
        txns decoded from the leader's bytes, whose lists are all new."""
        if txn_type in _CREATE_OPS:
            acl = record[2]
            if acl is not None:
                return (record[0], record[1], self.shared_acl(acl), *record[3:])
        elif txn_type == 7:
            if record[1] is not None:
                return (record[0], self.shared_acl(record[1]), *record[2:])
        elif txn_type == 14:
            return [(t, self.share_txn_acls(t, r)) for t, r in record]
        return record

    def _check_quota(self, path: str, bytes_diff: int, count_diff: int) -> None:
        """ZooKeeperServer.checkQuota (3.8): hard limits of the deepest quota'd ancestor.

        The quota'd ancestor comes from the committed tree's quota paths
        (``getMaxPrefixWithQuota``); its ``zookeeper_limits``/``zookeeper_stats`` nodes are read
        from the committed tree, as Apache does. Soft limits (``count``/``bytes``) are only
        logged there, so they pass here.
        """
        tree = self.view.tree
        prefix = tree.max_quota_prefix(path)
        if prefix is None:
            return
        nodes = tree.nodes
        limits = nodes.get(f"/zookeeper/quota{prefix}/zookeeper_limits")
        if limits is None:
            return
        limit = _stats_track(limits.data)
        count_hard = limit.get("countHardLimit", -1)
        byte_hard = limit.get("byteHardLimit", -1)
        check_count = count_diff != 0 and (limit.get("count", -1) > -1 or count_hard > -1)
        check_bytes = bytes_diff != 0 and (limit.get("bytes", -1) > -1 or byte_hard > -1)
        if not check_count and not check_bytes:
            return
        stats_node = nodes.get(f"/zookeeper/quota{prefix}/zookeeper_stats")
        if stats_node is None:
            return
        current = _stats_track(stats_node.data)
        if check_count and count_hard > -1 and current.get("count", -1) + count_diff > count_hard:
            raise KeeperError(_QUOTAEXCEEDED)
        if check_bytes and byte_hard > -1 and current.get("bytes", -1) + bytes_diff > byte_hard:
            raise KeeperError(_QUOTAEXCEEDED)

    # -------------------------------------------------------------- ops
    # Each returns (txn_type, txn_record, has_digest) and adds its change records.

    def create(self, opcode: int, rec: tuple[Any, ...], session_id: int, auth: Any,
               zxid: int, time_ms: int) -> tuple[int, Any, bool]:
        """create/create2/createContainer/createTTL (pRequest2TxnCreate)."""
        if opcode == 21:
            path, data, acl, flags, ttl = rec
        else:
            path, data, acl, flags = rec
            ttl = -1
        if not 0 <= flags <= 6:
            raise KeeperError(_BADARGUMENTS)  # CreateMode.fromFlag
        is_ttl = flags in (5, 6)
        if is_ttl and not self.extended_types_enabled:
            raise KeeperError(_UNIMPLEMENTED)
        # EphemeralType.validateTTL
        if is_ttl:
            if ttl > TTL_MAX_MS or ttl <= 0:
                raise KeeperError(_BADARGUMENTS)
        elif ttl >= 0 or opcode == 21:
            # 3.8.0 lets a createTTL with a plain mode and a negative TTL through, and then
            # dies applying it (EphemeralType.TTL.toEphemeralOwner throws in its SyncThread).
            # zkfast answers BadArguments instead: one bad request must not stop the server.
            raise KeeperError(_BADARGUMENTS)
        if not self.is_session_live(session_id):
            raise KeeperError(_SESSIONEXPIRED)
        if path is None:
            raise KeeperError(_BADARGUMENTS)
        i = path.rfind("/")
        if i == -1 or "\0" in path:
            raise KeeperError(_BADARGUMENTS)
        parent_path = path[:i] or "/"
        acl_list = self.stored_acl(acl, auth)
        view = self.view
        parent = self._record(parent_path)
        if not self.check_acl(parent.acl, _PERM_CREATE, auth):
            raise KeeperError(_NOAUTH)
        parent_cversion = parent.cversion
        if flags in (2, 3, 6):
            path = f"{path}{parent_cversion:010d}" if parent_cversion >= 0 else \
                f"{path}-{-parent_cversion:09d}"
        if not self.validate_path(path):
            raise KeeperError(_BADARGUMENTS)
        if view.get(path) is not None:
            raise KeeperError(_NODEEXISTS)
        parent_owner = parent.ephemeral_owner
        if parent_owner != 0 and ephemeral_kind(parent_owner) == "normal":
            raise KeeperError(_NOCHILDRENFOREPHEMERALS)
        if self.enforce_quota:
            self._check_quota(path, len(data) if data is not None else 0, 1)
        new_cversion = parent_cversion + 1
        txn: tuple[Any, ...]
        if opcode == 19:
            txn_type, txn = 19, (path, data, acl_list, new_cversion)
            owner = CONTAINER_EPHEMERAL_OWNER
        elif opcode == 21:
            txn_type, txn = 21, (path, data, acl_list, new_cversion, ttl)
            owner = ttl_ephemeral_owner(ttl)
        else:
            ephemeral = flags in (1, 3)
            txn_type, txn = opcode, (path, data, acl_list, ephemeral, new_cversion)
            owner = session_id if ephemeral else (ttl_ephemeral_owner(ttl) if is_ttl else 0)
        if flags == 4 and opcode != 19:
            owner = CONTAINER_EPHEMERAL_OWNER
        parent_digest = parent.node_digest
        p2 = _own(parent, zxid)
        p2.child_count += 1
        p2.cversion = new_cversion
        p2.pzxid = zxid
        view.add(p2, parent_digest)
        view.add(ChangeRecord(zxid, path, True, data, acl_list, zxid, zxid, time_ms, time_ms,
                              0, 0, 0, owner, zxid), 0)
        return txn_type, txn, True

    def delete(self, opcode: int, rec: tuple[Any, ...], session_id: int, auth: Any,
               zxid: int, time_ms: int) -> tuple[int, Any, bool]:
        path, version = rec
        self._check_session(session_id)
        if path is None:
            raise KeeperError(_BADARGUMENTS)
        parent_path = self._parent_for_delete(path)
        parent = self._record(parent_path)
        if not self.check_acl(parent.acl, _PERM_DELETE, auth):
            raise KeeperError(_NOAUTH)
        node = self._record(path)
        if version != -1 and version != node.version:
            raise KeeperError(_BADVERSION)
        if node.child_count > 0:
            raise KeeperError(_NOTEMPTY)
        self._remove(path, parent, node, zxid)
        return 2, (path,), True

    def delete_container(self, path: str, zxid: int) -> tuple[int, Any, bool]:
        """deleteContainer (issued by the container/TTL check, not by clients)."""
        parent_path = self._parent_for_delete(path)
        node = self._record(path)
        if node.child_count > 0:
            raise KeeperError(_NOTEMPTY)
        if ephemeral_kind(node.ephemeral_owner) == "normal":
            raise KeeperError(_BADVERSION)
        parent = self._record(parent_path)
        self._remove(path, parent, node, zxid)
        return 20, (path,), True

    def _remove(self, path: str, parent: ChangeRecord, node: ChangeRecord, zxid: int) -> None:
        view = self.view
        parent_digest = parent.node_digest
        p2 = _own(parent, zxid)
        p2.child_count -= 1
        p2.pzxid = zxid
        view.add(p2, parent_digest)
        gone = ChangeRecord(zxid, path)
        view.add(gone, node.node_digest)

    def set_data(self, opcode: int, rec: tuple[Any, ...], session_id: int, auth: Any,
                 zxid: int, time_ms: int) -> tuple[int, Any, bool]:
        path, data, version = rec
        if not self.is_session_live(session_id):
            raise KeeperError(_SESSIONEXPIRED)
        if path is None or not self.validate_path(path):
            raise KeeperError(_BADARGUMENTS)
        node = self.view.get(path)
        if node is None:
            raise KeeperError(_NONODE)
        if not self.check_acl(node.acl, _PERM_WRITE, auth):
            raise KeeperError(_NOAUTH)
        if self.enforce_quota:
            new_len = len(data) if data is not None else 0
            old_len = len(node.data) if node.data is not None else 0
            self._check_quota(path, new_len - old_len, 0)
        if version != -1 and version != node.version:
            raise KeeperError(_BADVERSION)
        new_version = _inc_version(node.version)
        old_digest = node.node_digest
        n2 = _own(node, zxid)
        n2.version = new_version
        n2.mtime = time_ms
        n2.mzxid = zxid
        n2.data = data
        self.view.add(n2, old_digest)
        return 5, (path, data, new_version), True

    def set_acl(self, opcode: int, rec: tuple[Any, ...], session_id: int, auth: Any,
                zxid: int, time_ms: int) -> tuple[int, Any, bool]:
        path, acl, version = rec
        self._check_session(session_id)
        if path is None:
            raise KeeperError(_BADARGUMENTS)
        self._valid(path)
        acl_list = self.stored_acl(acl, auth)
        node = self._record(path)
        if not self.check_acl(node.acl, _PERM_ADMIN, auth):
            raise KeeperError(_NOAUTH)
        if version != -1 and version != node.aversion:
            raise KeeperError(_BADVERSION)
        new_version = _inc_version(node.aversion)
        old_digest = node.node_digest
        n2 = _own(node, zxid)
        n2.aversion = new_version
        n2.acl = acl_list
        self.view.add(n2, old_digest)
        return 7, (path, acl_list, new_version), True

    def check(self, opcode: int, rec: tuple[Any, ...], session_id: int, auth: Any,
              zxid: int, time_ms: int) -> tuple[int, Any, bool]:
        path, version = rec
        self._check_session(session_id)
        if path is None:
            raise KeeperError(_BADARGUMENTS)
        self._valid(path)
        node = self._record(path)
        if not self.check_acl(node.acl, _PERM_READ, auth):
            raise KeeperError(_NOAUTH)
        if version != -1 and version != node.version:
            raise KeeperError(_BADVERSION)
        return 13, (path, _inc_version(node.version)), False

    def close_session(self, session_id: int, zxid: int) -> tuple[int, Any, bool]:
        """closeSession: every ephemeral of the session, pending ones included, is deleted.

        The paths are listed in the iteration order of the ``HashSet`` Apache builds them in
        (a copy of the tree's set, then the pending creates), because the tree deletes them,
        and fires their watches, in the txn's order.
        """
        view = self.view
        nodes = view.tree.nodes
        in_tree = view.tree.ephemerals.get(session_id, ())
        # The tree's own set, in its hash order (insertion order approximated by czxid).
        source = sorted(in_tree, key=lambda p: nodes[p].czxid if p in nodes else 0)
        owned: dict[str, None] = dict.fromkeys(java_clone_order(source))
        cap = _clone_capacity(len(source))
        for c in view.changes:
            if not c.exists:
                owned.pop(c.path, None)
            elif c.ephemeral_owner == session_id:
                owned[c.path] = None
        while len(owned) > cap * 3 // 4:
            cap *= 2
        paths = java_hash_order(list(owned), cap)
        for path in paths:
            node = view.get(path)
            if view.digest_enabled:
                parent = view.get(_parent_of(path))
                if parent is not None:
                    parent_digest = parent.node_digest
                    p2 = _own(parent, zxid)
                    p2.pzxid = zxid
                    view.add(p2, parent_digest)
            view.add(ChangeRecord(zxid, path), node.node_digest if node is not None else 0)
        return -11, (paths,), False

    def multi(self, ops: list[tuple[int, tuple[Any, ...]]], session_id: int, auth: Any,
              zxid: int, time_ms: int
              ) -> tuple[list[tuple[int, Any]], list[tuple[int, Any, Any]], int]:
        """Prep a multi; returns ``(sub_txns, results, failed_index)``.

        ``results`` is ``[(op_type, path, stat_or_None)]`` on success; ``failed_index`` is -1, or
        the index of the failing op (then ``sub_txns`` already holds the error txns and the
        caller reports 0 / code / -2 results).
        """
        view = self.view
        mark = view.begin_multi()
        txns: list[tuple[int, Any]] = []
        results: list[tuple[int, Any, Any]] = []
        failed = -1
        code = 0
        ops_table = self.ops
        for i, (op, rec) in enumerate(ops):
            if op in _CREATE_OPS:
                op, rec = _multi_create_op(op, rec)
            if failed >= 0:
                txns.append((-1, (_RUNTIMEINCONSISTENCY,)))
                results.append((-1, _RUNTIMEINCONSISTENCY, None))
                continue
            try:
                t, txn, _ = ops_table[op](op, rec, session_id, auth, zxid, time_ms)
            except KeeperError as e:
                failed = i
                code = e.code
                view.end_multi(mark, rollback=True)
                txns.append((-1, (code,)))
                results.append((-1, code, None))
                continue
            txns.append((t, txn))
            # The sub-result's Stat is the node as this op left it (later ops of the same
            # multi may change or delete it), exactly what the pending record holds.
            stat = self.stat_of(view.by_path[txn[0]]) if op in (5, 19, 21) else None
            results.append((op, txn[0], stat))
        if failed < 0:
            view.end_multi(mark, rollback=False)
        return txns, results, failed


#: StatsTrack(String): raises ValueError (Apache's NumberFormatException, which Prep answers
#: as MarshallingError) on text that does not parse.
_stats_track = _parse_stats_track


_CREATE_OPS = frozenset({1, 15, 19, 21})


def _multi_create_op(op: int, rec: tuple[Any, ...]) -> tuple[int, tuple[Any, ...]]:
    """The op a multi's create really is: 3.8's ``MultiOperationRecord`` rebuilds each create
    with ``Op.create(path, data, acl, flags[, ttl])``, whose opcode follows the flags, so a
    create2 becomes a plain create (answered without a Stat) and a flags-4 create a container.
    """
    flags = rec[3]
    if op == 21 and flags in (5, 6):
        return 21, rec
    if flags == 4:
        return 19, rec[:4]
    if flags in (5, 6):
        return 21, tuple(rec[:4]) + (-1,)  # a TTL mode without a TTL: BadArguments in prep
    return 1, rec[:4]


def java_string_hash(s: str) -> int:
    """``String.hashCode`` over UTF-16 code units, as an unsigned 32-bit value."""
    raw = s.encode("utf-16-be", "surrogatepass")
    h = 0
    for i in range(0, len(raw), 2):
        h = (31 * h + ((raw[i] << 8) | raw[i + 1])) & 0xFFFFFFFF
    return h


def _table_size_for(cap: int) -> int:
    n = 1
    while n < cap:
        n *= 2
    return n


def _hash_capacity(count: int) -> int:
    """The table size of a HashMap grown from 16 by adding ``count`` keys."""
    n = 16
    while count > n * 3 // 4:
        n *= 2
    return n


def _clone_capacity(count: int) -> int:
    """Table size of ``HashSet.clone()`` of ``count`` keys (HashMap.putMapEntries)."""
    return _table_size_for(int(count / 0.75 + 1.0))


def java_clone_order(keys: list[str]) -> list[str]:
    """Iteration order of ``set.clone()`` where ``set`` is a HashSet grown from 16 by adding
    ``keys`` in this order (DataTree.getEphemerals hands out such clones)."""
    source = java_hash_order(keys, _hash_capacity(len(keys)))
    return java_hash_order(source, _clone_capacity(len(keys)))


def java_hash_order(keys: list[str], capacity: int, hashes: list[int] | None = None
                    ) -> list[str]:
    """Iteration order of a Java ``HashMap``/``HashSet`` of ``keys`` (given in insertion
    order) with ``capacity`` bins: by bin ``(h ^ h>>>16) & (n-1)``, insertion order inside."""
    if hashes is None:
        hashes = [java_string_hash(k) for k in keys]
    mask = capacity - 1
    order = sorted(range(len(keys)), key=lambda i: ((hashes[i] ^ (hashes[i] >> 16)) & mask, i))
    return [keys[i] for i in order]


def _inc_version(v: int) -> int:
    """checkAndIncVersion: current + 1, wrapping as a Java int (3.8 keeps -1 after -2)."""
    v += 1
    return v - (1 << 32) if v > 0x7FFFFFFF else v
