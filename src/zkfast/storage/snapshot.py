"""The ZooKeeper 3.8 snapshot format (``version-2/snapshot.<hexzxid>``), as bytes only.

Theory of operation
-------------------
A snapshot is one jute stream (zk-formats §6.3): a FileHeader (``ZKSN``, version 2, dbid -1),
the session table, the ACL cache (each distinct ACL list under a long id; -1 is the open ACL
and is never stored), the nodes in pre-order (root as ``""`` first, a parent before its
children) ended by the path ``"/"``, then a seal (the Adler32 of every byte so far, followed by
``"/"``), the digest section (zxid, version, digest; zxid 0 means none) and a second seal. Readers
of 3.9+ streams may find a third section (lastProcessedZxid and seal); it is optional both ways.

A learner's SNAP sync carries the same body without the FileHeader, the seals and the
digest section (``ZKDatabase.serializeSnapshot``: sessions, ACL cache, nodes ended by ``"/"``),
followed by the ustring ``"BenWasHere"`` (``LearnerHandler.syncFollower``);
``encode_sync_body``/``decode_sync_body`` read and write it, and ``encode_sync_snapshot`` /
``decode_sync_snapshot`` go straight between it and a DataTree (through ``tree_io``).

This module turns plain values into those bytes and back; it knows nothing of the DataTree
(``storage/tree_io.py`` maps between the two; the two sync-snapshot functions call into it)
and does no IO. ``SnapshotReader`` reads a stream whole or a piece at a time (pieces a caller
pulls from a file); ``read_file_header``, ``read_head`` and ``read_tail`` are the parts of a
file around its node records, which ``decode_snapshot`` reads as ``SnapshotNode``s and
``tree_io`` has the core load straight into a tree. ``snapshot_head``/``snapshot_tail`` (and
``sync_head``/``SYNC_TAIL``) are the two ends the core's one-buffer encoder writes around the
node records.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._impl import ProtocolError, core
from ..wire import jute

if TYPE_CHECKING:
    from ..core.datatree import DataTree

__all__ = [
    "SNAP_MAGIC",
    "SnapshotCorrupt",
    "SnapshotNode",
    "Snapshot",
    "encode_snapshot",
    "assemble_snapshot",
    "snapshot_head",
    "snapshot_tail",
    "decode_snapshot",
    "looks_complete",
    "SnapshotReader",
    "AclCache",
    "read_file_header",
    "read_head",
    "read_tail",
    "SYNC_SIGNATURE",
    "SYNC_TAIL",
    "sync_head",
    "read_sync_signature",
    "encode_sync_body",
    "decode_sync_body",
    "encode_sync_snapshot",
    "decode_sync_snapshot",
]

SNAP_MAGIC = 0x5A4B534E  # "ZKSN"
SNAP_VERSION = 2
OPEN_ACL_ID = -1
_HEADER = struct.Struct(">iiq")
_INT = struct.Struct(">i")
_LONG = struct.Struct(">q")
_SESSION = struct.Struct(">qi")
_DIGEST = struct.Struct(">qiq")
_SEAL_MARK = b"\x00\x00\x00\x01/"
_ACL_VECTOR = (("acl", core.T_VECTOR, ("acl", core.T_RECORD, jute.ACL)),)


class SnapshotCorrupt(ValueError):
    """The snapshot cannot be read: recovery must try an older one or refuse to start."""


@dataclass(slots=True)
class SnapshotNode:
    """One znode as a snapshot holds it: the persisted stat is the 9-field STAT_PERSISTED."""

    path: str
    #: None is null data (written as length -1), which Apache keeps distinct from empty.
    data: bytes | None
    #: None is the implicit open ACL of ACL id -1 (the system nodes Apache creates at start);
    #: an explicit ``world:anyone`` list is a list like any other.
    acl: list[tuple[int, tuple[str, str]]] | None
    stat: tuple[int, ...]


@dataclass(slots=True)
class Snapshot:
    """Everything a snapshot file carries."""

    sessions: list[tuple[int, int]] = field(default_factory=list)
    nodes: list[SnapshotNode] = field(default_factory=list)
    #: (zxid, digest version, digest) or None when the writer had digests off.
    digest: tuple[int, int, int] | None = None
    #: The 3.9+ optional lastProcessedZxid section, when present.
    last_processed_zxid: int | None = None


def _acl_key(acl: list[tuple[int, tuple[str, str]]]) -> tuple[Any, ...]:
    return tuple((perms, scheme, ident) for perms, (scheme, ident) in acl)


def encode_snapshot(sessions: Iterable[tuple[int, int]], nodes: Iterable[SnapshotNode],
                    digest: tuple[int, int, int] | None) -> bytes:
    """The bytes of a snapshot (uncompressed). ``nodes`` must come in pre-order, root first."""
    node_list = list(nodes)
    if not node_list or node_list[0].path != "":
        raise ValueError("a snapshot starts with the root node, written as the path ''")
    acl_ids: dict[tuple[Any, ...], int] = {}
    acl_lists: list[list[tuple[int, tuple[str, str]]]] = []
    node_acl_ids: list[int] = []
    for node in node_list:
        if node.acl is None:
            node_acl_ids.append(OPEN_ACL_ID)
            continue
        key = _acl_key(node.acl)
        aid = acl_ids.get(key)
        if aid is None:
            aid = len(acl_ids) + 1
            acl_ids[key] = aid
            acl_lists.append(node.acl)
        node_acl_ids.append(aid)
    records = bytearray()
    for node, aid in zip(node_list, node_acl_ids, strict=True):
        core.encode_record(((("path", core.T_USTRING, None)),), (node.path,), records)
        core.encode_record((("data", core.T_BUFFER, None),), (node.data,), records)
        records += _LONG.pack(aid)
        core.encode_record(jute.STAT_PERSISTED, node.stat, records)
    return assemble_snapshot(sessions, acl_lists, records, digest)


def assemble_snapshot(sessions: Iterable[tuple[int, int]],
                      acl_lists: list[list[tuple[int, tuple[str, str]]]],
                      node_records: bytes | bytearray,
                      digest: tuple[int, int, int] | None) -> bytes:
    """A snapshot from already encoded node records (``core.encode_snapshot_nodes``).

    ``acl_lists[i]`` is the ACL list of id ``i + 1``; ``node_records`` holds every node's
    record (path, data, aclId, StatPersisted) in pre-order, root first, without the end mark.
    The records are copied once (into the result); the seal's Adler-32 runs over the pieces.
    (``core.encode_snapshot`` writes the same stream without the copy: ``snapshot_head`` and
    ``snapshot_tail`` are its two ends.)
    """
    head = snapshot_head(sessions, acl_lists)
    check = zlib.adler32(node_records, zlib.adler32(head))
    return b"".join((head, node_records, snapshot_tail(check, digest)))


def snapshot_head(sessions: Iterable[tuple[int, int]],
                  acl_lists: list[list[tuple[int, tuple[str, str]]]]) -> bytes:
    """What precedes a snapshot file's node records: the FileHeader, sessions, ACL cache."""
    head = bytearray(_HEADER.pack(SNAP_MAGIC, SNAP_VERSION, -1))
    _append_head(head, sessions, acl_lists)
    return bytes(head)


def snapshot_tail(check: int, digest: tuple[int, int, int] | None) -> bytes:
    """What follows a snapshot file's node records, given ``check``, the Adler-32 of every
    byte before it: the end mark, seal #1, the digest section and seal #2."""
    zxid, version, value = digest if digest is not None else (0, 2, 0)
    tail = bytearray(_SEAL_MARK)
    check = zlib.adler32(_SEAL_MARK, check)
    tail += _LONG.pack(check)
    tail += _SEAL_MARK
    tail += _DIGEST.pack(zxid, version, value)
    check = zlib.adler32(memoryview(tail)[len(_SEAL_MARK):], check)  # the mark is counted
    tail += _LONG.pack(check)
    tail += _SEAL_MARK
    return bytes(tail)


def _append_head(out: bytearray, sessions: Iterable[tuple[int, int]],
                 acl_lists: list[list[tuple[int, tuple[str, str]]]]) -> None:
    """Sessions and the ACL cache: what precedes the node records (``serializeSnapshot``)."""
    session_list = list(sessions)
    out += _INT.pack(len(session_list))
    for sid, timeout in session_list:
        out += _SESSION.pack(sid, timeout)
    out += _INT.pack(len(acl_lists))
    for aid, acl in enumerate(acl_lists, 1):
        out += _LONG.pack(aid)
        core.encode_record(_ACL_VECTOR, (acl,), out)


def looks_complete(data: bytes) -> bool:
    """Apache's quick validity check of a plain snapshot: long enough and ends with ``"/"``."""
    return len(data) >= 10 and data[-5:] == _SEAL_MARK


class SnapshotReader:
    """A snapshot stream read front to back: whole (``data``), or pulled a piece at a time
    from ``pieces`` (decompressed file contents, say), holding only what is not consumed yet.

    ``data[pos:]`` is what is buffered and not consumed; ``base`` is the stream offset of
    ``data[0]``, so ``offset`` is the stream offset of the next byte, and error messages give
    stream offsets. ``pull`` appends the next piece (dropping the consumed bytes, whose
    Adler-32 it keeps for the seals); ``exhausted`` is true once the pieces are all pulled.
    """

    __slots__ = ("data", "pos", "base", "_check", "_pieces")

    def __init__(self, data: bytes | bytearray | memoryview = b"",
                 pieces: Iterator[bytes] | None = None) -> None:
        self.data = data
        self.pos = 0
        self.base = 0
        self._check = 1  # Adler-32 of the stream before data[0]
        self._pieces = pieces

    @property
    def offset(self) -> int:
        """The stream offset of the next unconsumed byte."""
        return self.base + self.pos

    @property
    def exhausted(self) -> bool:
        """Every piece has been pulled: what is buffered runs to the end of the stream."""
        return self._pieces is None

    def pull(self) -> bool:
        """Buffer the next non-empty piece; False (and nothing changes) at the end."""
        pieces = self._pieces
        if pieces is None:
            return False
        for piece in pieces:
            if piece:
                break
        else:
            self._pieces = None
            return False
        data, pos = self.data, self.pos
        if pos:
            self._check = zlib.adler32(memoryview(data)[:pos], self._check)
            self.base += pos
        self.data = b"".join((memoryview(data)[pos:], piece)) if pos < len(data) else piece
        self.pos = 0
        return True

    def need(self, n: int) -> bool:
        """Whether ``n`` more bytes are there (pulling pieces as needed)."""
        while len(self.data) - self.pos < n:
            if not self.pull():
                return False
        return True

    def drain(self) -> None:
        """Read the rest of the stream and drop it (trailing bytes are ignored, as Apache
        ignores them; a damaged compressed tail is still noticed)."""
        pieces = self._pieces
        if pieces is not None:
            for _ in pieces:
                pass
            self._pieces = None

    def check(self) -> int:
        """The Adler-32 of every stream byte before ``offset``."""
        return zlib.adler32(memoryview(self.data)[: self.pos], self._check)

    def take(self, fmt: struct.Struct, what: str) -> tuple[Any, ...]:
        if not self.need(fmt.size):
            raise SnapshotCorrupt(f"truncated at offset {self.offset} reading {what}")
        values = fmt.unpack_from(self.data, self.pos)
        self.pos += fmt.size
        return values

    def record(self, layout: tuple[Any, ...], what: str) -> tuple[Any, ...]:
        while True:
            try:
                values, self.pos = core.decode_record(layout, self.data, self.pos)
                return values
            except ProtocolError as exc:
                if self.pull():
                    continue  # perhaps only cut by the end of the piece
                if self.base:
                    exc = ProtocolError(exc.field, exc.offset + self.base, exc.expected,
                                        exc.found)
                raise SnapshotCorrupt(f"{what}: {exc}") from exc

    def seal(self, n: int) -> bool:
        """Check seal ``n``; False when the stream ends where an optional section would start."""
        if not self.need(1):
            return False
        expected = self.check()
        (stored,) = self.take(_LONG, f"seal #{n}")
        if stored & 0xFFFFFFFF != expected or stored >> 32:
            raise SnapshotCorrupt(f"seal #{n} mismatch: stored 0x{stored & (2**64 - 1):x}, "
                                  f"computed 0x{expected:x}")
        (mark,) = self.record((("mark", core.T_USTRING, None),), f"seal #{n} marker")
        if mark != "/":
            raise SnapshotCorrupt(f"seal #{n} marker is {mark!r}, expected '/'")
        return True


#: The ACL cache as read: id -> list (None for the implicit open ACL of id -1).
AclCache = dict[int, list[tuple[int, tuple[str, str]]] | None]


def read_file_header(r: SnapshotReader) -> None:
    """The FileHeader of a snapshot file (magic, version 2)."""
    magic, version, _dbid = r.take(_HEADER, "file header")
    if magic != SNAP_MAGIC:
        raise SnapshotCorrupt(f"bad magic 0x{magic & 0xFFFFFFFF:08x}, expected 0x{SNAP_MAGIC:08x}")
    if version != SNAP_VERSION:
        raise SnapshotCorrupt(f"unsupported snapshot version {version}")


def read_head(r: SnapshotReader) -> tuple[list[tuple[int, int]], AclCache]:
    """The sessions ``(session_id, timeout_ms)`` and the ACL cache, up to the first node."""
    (count,) = r.take(_INT, "session count")
    if count < 0 or not r.need(count * _SESSION.size):
        raise SnapshotCorrupt(f"session count {count} at offset {r.offset - 4} is impossible")
    end = r.pos + count * _SESSION.size
    sessions = list(_SESSION.iter_unpack(memoryview(r.data)[r.pos:end]))
    r.pos = end
    (count,) = r.take(_INT, "ACL cache size")
    if count < 0 or not r.need(count * 12):
        raise SnapshotCorrupt(f"ACL cache size {count} at offset {r.offset - 4} is impossible")
    acls: AclCache = {OPEN_ACL_ID: None}
    for _ in range(count):
        (aid,) = r.take(_LONG, "ACL id")
        (acl,) = r.record(_ACL_VECTOR, "ACL list")
        acls[aid] = acl if acl is not None else []
    return sessions, acls


def _read_nodes(r: SnapshotReader, acls: AclCache) -> list[SnapshotNode]:
    """The nodes, up to and including the ``"/"`` end mark, as ``SnapshotNode``s."""
    nodes = []
    path_layout = (("path", core.T_USTRING, None),)
    node_layout = (("data", core.T_BUFFER, None), ("aclId", core.T_LONG, None),
                   ("stat", core.T_RECORD, jute.STAT_PERSISTED))
    while True:
        (path,) = r.record(path_layout, "node path")
        if path == "/":
            break
        if path is None:
            raise SnapshotCorrupt(f"null node path at offset {r.offset - 4}")
        node_data, aid, stat = r.record(node_layout, f"node {path!r}")
        if aid not in acls:
            raise SnapshotCorrupt(f"node {path!r} refers to ACL id {aid}, not in the ACL cache")
        nodes.append(SnapshotNode(path, node_data, acls[aid], stat))
    return nodes


def _read_body(r: SnapshotReader) -> Snapshot:
    """Sessions, ACL cache and nodes up to and including the ``"/"`` end mark."""
    snap = Snapshot()
    snap.sessions, acls = read_head(r)
    snap.nodes = _read_nodes(r, acls)
    return snap


def read_tail(r: SnapshotReader, snap: Snapshot) -> None:
    """Everything after the node list's end mark: seal #1, then the optional digest section
    and seal #2, then the optional 3.9+ lastProcessedZxid and seal #3 (into ``snap``)."""
    # The node list ends with "/" right away; seal #1 follows it.
    if not r.seal(1):
        raise SnapshotCorrupt("the stream ends before seal #1")
    if r.need(1):
        zxid, dversion, value = r.take(_DIGEST, "digest") if r.need(20) else (0, 0, 0)
        if dversion < 2:
            raise SnapshotCorrupt(f"digest version {dversion} is not supported")
        snap.digest = (zxid, dversion, value) if zxid != 0 else None
        r.seal(2)
        if r.need(8):
            (snap.last_processed_zxid,) = r.take(_LONG, "lastProcessedZxid")
            r.seal(3)


def decode_snapshot(data: bytes | bytearray | memoryview) -> Snapshot:
    """Read a whole (uncompressed) snapshot stream.

    Raises:
        SnapshotCorrupt: bad header, truncation, bad lengths, an unknown ACL id, or a seal that
            does not match.
    """
    r = SnapshotReader(data)
    read_file_header(r)
    snap = _read_body(r)
    read_tail(r, snap)
    return snap


def iter_preorder(children: dict[str, list[str]], root: str = "") -> Iterator[str]:
    """Paths in the pre-order a snapshot needs, given each path's child names."""
    stack = [root]
    while stack:
        path = stack.pop()
        yield path
        base = path if path else ""
        for name in reversed(children.get(path, [])):
            stack.append(f"{base}/{name}")


# ============================================================================ SNAP sync

#: The ustring after a SNAP body (``LearnerHandler.syncFollower``, ``Learner.syncWithLeader``).
SYNC_SIGNATURE = "BenWasHere"
_SIGNATURE_BYTES = _INT.pack(len(SYNC_SIGNATURE)) + SYNC_SIGNATURE.encode()


def encode_sync_body(sessions: Iterable[tuple[int, int]],
                     acl_lists: list[list[tuple[int, tuple[str, str]]]],
                     node_records: bytes | bytearray) -> bytes:
    """The stream a leader writes after SNAP, from encoded node records (as
    ``assemble_snapshot``): body, ``"/"``, then the ``"BenWasHere"`` signature."""
    return b"".join((sync_head(sessions, acl_lists), node_records, SYNC_TAIL))


def sync_head(sessions: Iterable[tuple[int, int]],
              acl_lists: list[list[tuple[int, tuple[str, str]]]]) -> bytes:
    """What precedes the node records of a SNAP stream: sessions and the ACL cache."""
    head = bytearray()
    _append_head(head, sessions, acl_lists)
    return bytes(head)


#: What follows the node records of a SNAP stream: the end mark and the signature.
SYNC_TAIL = _SEAL_MARK + _SIGNATURE_BYTES


def read_sync_signature(r: SnapshotReader) -> None:
    """The signature after a SNAP stream's node list, and nothing after it."""
    (signature,) = r.record((("signature", core.T_USTRING, None),), "signature")
    if signature != SYNC_SIGNATURE:
        raise SnapshotCorrupt(f"SNAP stream signature is {signature!r}, expected "
                              f"{SYNC_SIGNATURE!r} (Learner.syncWithLeader: Missing signature)")
    if r.need(1):
        raise SnapshotCorrupt(f"{len(r.data) - r.pos} bytes after the SNAP stream signature")


def decode_sync_body(blob: bytes | bytearray | memoryview) -> Snapshot:
    """Read a SNAP stream (body + signature); the result has no digest.

    Raises:
        SnapshotCorrupt: truncation, bad lengths, an unknown ACL id, a missing or wrong
            signature, or bytes after it.
    """
    r = SnapshotReader(bytes(blob))
    snap = _read_body(r)
    read_sync_signature(r)
    return snap


def encode_sync_snapshot(tree: DataTree, sessions: Iterable[tuple[int, int]]) -> bytes:
    """What a leader sends after a SNAP packet: ``ZKDatabase.serializeSnapshot`` of ``tree``
    and ``sessions`` (``(session_id, timeout_ms)``), then ``"BenWasHere"``. The nodes come
    straight from the tree through the core's snapshot encoder, as ``tree_io.encode_tree``."""
    from .tree_io import encode_sync_tree

    return encode_sync_tree(tree, sessions)


def decode_sync_snapshot(blob: bytes | bytearray | memoryview, *, zxid: int = 0,
                         extended_types_enabled: bool = False
                         ) -> tuple[DataTree, list[tuple[int, int]]]:
    """The tree and the ``(session_id, timeout_ms)`` list of a SNAP stream.

    The tree is built as recovery builds one from a snapshot file (``tree_io``: the records
    decoded straight into the tree, ACL ids, ephemeral/container/TTL sets, digest, quotas);
    its ``last_processed_zxid`` is ``zxid``, the SNAP packet's zxid
    (``Learner.syncWithLeader``: ``setlastProcessedZxid``).

    Raises:
        SnapshotCorrupt: anything wrong with the bytes (see ``decode_sync_body``), a node
            without its parent, or no root.
    """
    from .tree_io import tree_from_sync_stream

    return tree_from_sync_stream(blob, zxid, extended_types_enabled=extended_types_enabled)
