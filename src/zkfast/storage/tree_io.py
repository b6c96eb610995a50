"""DataTree <-> snapshot nodes, and snapshot file bytes (plain, gzip, snappy-java stream).

Theory of operation
-------------------
A snapshot (``storage/snapshot.py``) holds nodes as ``SnapshotNode(path, data, acl, stat)`` in
pre-order, the root written as ``""``. This module maps a ``DataTree`` to that list and back.
Siblings are written in the order the tree keeps them (``ZNode.children``: creation order, or
the order of the snapshot the tree was restored from), so the same history gives the same
bytes; Apache writes them in its HashSet order and no reader depends on the order.

Neither direction builds that list on the paths recovery and snapshots take. Writing:
``encode_tree`` has the core walk the tree and encode each znode straight into the stream
(``core.encode_snapshot``), the same bytes ``encode_snapshot(tree_to_nodes(tree))`` gives (a
property test holds them equal); the stream is built in the one bytes object returned, so a
snapshot of the tree is held once. Reading: ``read_snapshot_file`` pulls the file a piece at a
time through the caller's ``read(offset, length)``, decompresses each piece, reads the sessions
and ACL cache, and has the core decode the node records straight into the tree's znodes
(``core.SnapshotLoader``: no ``SnapshotNode``, no per-node Python); a piece is dropped as soon
as its records are in the tree, so reading holds the tree and about two pieces, never the
whole file. The tree is what ``tree_from_snapshot(decode_snapshot(...))`` builds, the old path
kept for tools and tests (a property test holds the two equal).

ACLs follow Apache's ``ReferenceCountedACLCache``: a node refers to its ACL list by a long id;
the id ``-1`` is the implicit open ACL (``convertLong(-1)`` is ``OPEN_ACL_UNSAFE``) and is given
only to the nodes Apache builds with it, the root, ``/zookeeper`` and ``/zookeeper/quota``; every
list set by a client, even ``world:anyone:cdrwa``, gets a real id, and equal lists share one id.
zkfast marks the implicit open ACL by identity: those nodes hold the module constant
``datatree.OPEN_ACL_UNSAFE`` itself, which no client-supplied list ever is. Loading maps id -1
(``acl=None``) back to that constant and interns every other list, so nodes with equal ACLs
share one list object as they share one id in Apache. An Apache snapshot therefore decodes,
becomes a tree and encodes again to the same nodes (ids may be numbered differently; readers
only need them to be consistent within the file).

Snapshot files are one of three streams, chosen by the name's extension as
``SnapStream.getStreamMode`` does: none (the plain checked stream), ``.gz`` (a gzip member), or
``.snappy`` (snappy-java's ``SnappyOutputStream`` framing: the 8-byte magic ``\\x82SNAPPY\\0``,
version 1 and compatible-version 1 as big-endian ints, then blocks of ``int length`` + a raw
snappy block of at most 32 KiB of input). Compression and decompression here are pure
functions; cramjam supplies raw snappy.

No IO here: callers read and write the files (``read_snapshot_file`` takes a read function).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .._impl import core
from ..core.datatree import OPEN_ACL_UNSAFE, AclEntry, DataTree, ZNode
from .snapshot import (
    SYNC_TAIL,
    AclCache,
    Snapshot,
    SnapshotCorrupt,
    SnapshotNode,
    SnapshotReader,
    decode_snapshot,
    read_file_header,
    read_head,
    read_sync_signature,
    read_tail,
    snapshot_head,
    snapshot_tail,
    sync_head,
)

__all__ = [
    "tree_to_nodes",
    "tree_from_snapshot",
    "read_snapshot_file",
    "tree_from_stream",
    "tree_from_sync_stream",
    "encode_tree",
    "encode_sync_tree",
    "snapshot_file_name",
    "snapshot_extension",
    "snapshot_pieces",
    "compress_snapshot",
    "decompress_snapshot",
    "quick_valid",
    "SNAPPY_MAGIC",
    "PIECE_BYTES",
]

SNAPPY_MAGIC = b"\x82SNAPPY\x00"
_SNAPPY_HEADER = SNAPPY_MAGIC + struct.pack(">ii", 1, 1)
#: SnappyOutputStream.DEFAULT_BLOCK_SIZE.
_SNAPPY_BLOCK_BYTES = 32 * 1024
_INT = struct.Struct(">i")
_GZIP_MAGIC = b"\x1f\x8b"
_SEAL_TAIL = b"\x00\x00\x00\x01/"
#: How much of a snapshot file is read (and, compressed, decompressed) at a time.
PIECE_BYTES = 8 << 20
#: Bytes of a node record besides its path and data: two lengths, aclId, StatPersisted.
_RECORD_OVERHEAD_BYTES = 4 + 4 + 8 + 60
#: ``core.SnapshotLoader`` or a twin's: ``(acls, nodes) -> loader``.
Loader = Callable[[dict[int, list[AclEntry]], dict[str, ZNode]], Any]


def tree_to_nodes(tree: DataTree) -> Iterator[SnapshotNode]:
    """The tree's nodes in snapshot pre-order (root as ``""``, children in the tree's order)."""
    stack = [("", tree.nodes["/"])]
    while stack:
        path, node = stack.pop()
        acl = None if node.acl is OPEN_ACL_UNSAFE else node.acl
        yield SnapshotNode(path, node.data, acl, node.stat_persisted())
        for name, child in reversed(node.children.items()):
            stack.append((f"{path}/{name}", child))


def tree_from_snapshot(snap: Snapshot, zxid: int, *,
                       extended_types_enabled: bool = False) -> DataTree:
    """Build a DataTree from a decoded snapshot whose file name says ``zxid``.

    Raises:
        SnapshotCorrupt: a node without its parent, or no root.
    """
    interned: dict[tuple[Any, ...], list[tuple[int, tuple[str, str]]]] = {}

    def acl_of(acl: list[tuple[int, tuple[str, str]]] | None) -> list[tuple[int,
                                                                            tuple[str, str]]]:
        if acl is None:
            return OPEN_ACL_UNSAFE
        key = tuple(acl)
        got = interned.get(key)
        if got is None:
            got = interned[key] = list(acl)
        return got

    def gen() -> Iterator[tuple[str, ZNode]]:
        for n in snap.nodes:
            if len(n.stat) != 9:
                raise SnapshotCorrupt(f"node {n.path!r}: stat has {len(n.stat)} fields, not 9")
            czxid, mzxid, ctime, mtime, version, cversion, aversion, owner, pzxid = n.stat
            yield n.path, ZNode(n.data, acl_of(n.acl), czxid, mzxid, ctime, mtime, version,
                                cversion, aversion, owner, pzxid)

    try:
        return DataTree.from_nodes(gen(), last_processed_zxid=zxid,
                                   extended_types_enabled=extended_types_enabled)
    except ValueError as exc:
        if isinstance(exc, SnapshotCorrupt):
            raise
        raise SnapshotCorrupt(str(exc)) from exc


def _interned(acls: AclCache) -> dict[int, list[AclEntry]]:
    """Each ACL id's list as the tree holds it: id -1's ``None`` is the constant
    ``OPEN_ACL_UNSAFE``, and equal lists are one (new) list object."""
    interned: dict[tuple[Any, ...], list[AclEntry]] = {}
    out: dict[int, list[AclEntry]] = {}
    for aid, acl in acls.items():
        if acl is None:
            out[aid] = OPEN_ACL_UNSAFE
            continue
        key = tuple(acl)
        got = interned.get(key)
        if got is None:
            got = interned[key] = list(acl)
        out[aid] = got
    return out


def _load_tree(r: SnapshotReader, acls: AclCache, zxid: int, extended_types_enabled: bool,
               after_nodes: Callable[[], None], loader: Loader | None) -> DataTree:
    """The tree of the node records at ``r`` (up to the end mark), with ``after_nodes`` (the
    stream's remainder) read before the tree is finished."""

    def fill(loader: Any) -> None:
        while True:
            r.pos = loader.feed(r.data, r.pos, r.base, r.exhausted)
            if loader.done:
                break
            r.pull()  # at the end: the next feed is final, and completes or raises
        after_nodes()

    try:
        return DataTree.from_snapshot_records(fill, _interned(acls), last_processed_zxid=zxid,
                                              extended_types_enabled=extended_types_enabled,
                                              loader=loader)
    except SnapshotCorrupt:
        raise
    except ValueError as exc:
        # A record's ProtocolError ("nodes[i].<field> at offset ..."), or DataTree.from_nodes's
        # errors: no parent, no root.
        raise SnapshotCorrupt(str(exc)) from exc


def _load_file_stream(r: SnapshotReader, zxid: int, extended_types_enabled: bool,
                      loader: Loader | None) -> tuple[DataTree, Snapshot]:
    snap = Snapshot()
    read_file_header(r)
    snap.sessions, acls = read_head(r)

    def after_nodes() -> None:
        read_tail(r, snap)
        r.drain()

    return _load_tree(r, acls, zxid, extended_types_enabled, after_nodes, loader), snap


def read_snapshot_file(name: str, read: Callable[[int, int], bytes], zxid: int, *,
                       extended_types_enabled: bool = False, piece_bytes: int = PIECE_BYTES,
                       loader: Loader | None = None) -> tuple[DataTree, Snapshot]:
    """Load the snapshot file ``name`` (its zxid: ``zxid``) into a tree, a piece at a time.

    ``read(offset, length)`` returns up to ``length`` bytes of the file from ``offset`` (fewer
    only at its end). The pieces are decompressed as the name says and the node records go
    straight into the tree (module docstring). The tree is the one ``tree_from_snapshot``
    builds from ``decode_file``'s result; the ``Snapshot`` returned has that result's
    sessions, digest and lastProcessedZxid, and no nodes. ``loader`` replaces
    ``core.SnapshotLoader`` (tests and benchmarks pass either twin's).

    Raises:
        SnapshotCorrupt: anything ``decode_file`` or ``tree_from_snapshot`` refuses.
        OSError: from ``read``.
    """
    r = SnapshotReader(pieces=snapshot_pieces(name, read, piece_bytes))
    return _load_file_stream(r, zxid, extended_types_enabled, loader)


def tree_from_stream(data: bytes | bytearray | memoryview, zxid: int, *,
                     extended_types_enabled: bool = False, loader: Loader | None = None
                     ) -> tuple[DataTree, Snapshot]:
    """``read_snapshot_file`` of a plain snapshot stream already in memory."""
    return _load_file_stream(SnapshotReader(data), zxid, extended_types_enabled, loader)


def tree_from_sync_stream(blob: bytes | bytearray | memoryview, zxid: int, *,
                          extended_types_enabled: bool = False, loader: Loader | None = None
                          ) -> tuple[DataTree, list[tuple[int, int]]]:
    """The tree and sessions of a SNAP stream (``snapshot.decode_sync_snapshot``)."""
    r = SnapshotReader(blob)
    sessions, acls = read_head(r)
    tree = _load_tree(r, acls, zxid, extended_types_enabled, lambda: read_sync_signature(r),
                      loader)
    return tree, [(int(a), int(b)) for a, b in sessions]


def _records_size_hint(tree: DataTree) -> int:
    """About the bytes of the tree's node records (path and data sizes are kept per tree)."""
    return tree.approximate_data_size + _RECORD_OVERHEAD_BYTES * len(tree.nodes)


def encode_tree(tree: DataTree, sessions: list[tuple[int, int]], *,
                digest_enabled: bool = True) -> bytes:
    """The plain snapshot stream of ``tree`` (at ``tree.last_processed_zxid``) and sessions."""
    digest = (tree.last_processed_zxid, 2, tree.digest()) if digest_enabled else None
    if digest is not None and digest[0] == 0:
        digest = None
    return core.encode_snapshot(tree.nodes, OPEN_ACL_UNSAFE,
                                lambda acls: snapshot_head(sessions, acls),
                                lambda check: snapshot_tail(check, digest),
                                _records_size_hint(tree))


def encode_sync_tree(tree: DataTree, sessions: Iterable[tuple[int, int]]) -> bytes:
    """The SNAP stream of ``tree`` and ``sessions`` (``snapshot.encode_sync_snapshot``)."""
    session_list = list(sessions)
    return core.encode_snapshot(tree.nodes, OPEN_ACL_UNSAFE,
                                lambda acls: sync_head(session_list, acls),
                                lambda check: SYNC_TAIL, _records_size_hint(tree))


def snapshot_extension(method: str) -> str:
    """The file name extension of a compression method ("", "gz" or "snappy")."""
    if method in ("", "checked"):
        return ""
    if method in ("gz", "snappy"):
        return "." + method
    raise ValueError(f"unknown snapshot.compression.method {method!r}")


def snapshot_file_name(zxid: int, method: str = "") -> str:
    """``snapshot.<hex zxid>`` plus the compression method's extension."""
    return f"snapshot.{zxid & 0xFFFFFFFFFFFFFFFF:x}{snapshot_extension(method)}"


def _stream_mode(name: str) -> str:
    ext = name.rsplit(".", 1)[-1] if name.count(".") >= 2 else ""
    return ext if ext in ("gz", "snappy") else ""


def compress_snapshot(data: bytes, method: str) -> bytes:
    """Wrap a plain snapshot stream in the file format of ``method``."""
    if method in ("", "checked"):
        return data
    if method == "gz":
        c = zlib.compressobj(6, zlib.DEFLATED, 31)
        return c.compress(data) + c.flush()
    if method == "snappy":
        import cramjam

        out = bytearray(_SNAPPY_HEADER)
        view = memoryview(data)
        for i in range(0, len(data), _SNAPPY_BLOCK_BYTES):
            block = bytes(cramjam.snappy.compress_raw(view[i:i + _SNAPPY_BLOCK_BYTES]))
            out += _INT.pack(len(block))
            out += block
        return bytes(out)
    raise ValueError(f"unknown snapshot.compression.method {method!r}")


def _file_pieces(read: Callable[[int, int], bytes], piece_bytes: int) -> Iterator[bytes]:
    offset = 0
    while True:
        piece = read(offset, piece_bytes)
        if piece:
            yield piece
        if len(piece) < piece_bytes:
            return
        offset += len(piece)


def _gunzip_pieces(name: str, raw: Iterator[bytes], piece_bytes: int) -> Iterator[bytes]:
    d = zlib.decompressobj(31)
    try:
        for piece in raw:
            data = piece
            while data and not d.eof:
                out = d.decompress(data, piece_bytes)
                if out:
                    yield out
                data = d.unconsumed_tail
            if d.eof:
                break  # bytes after the gzip member are ignored
        out = d.flush()
    except zlib.error as exc:
        raise SnapshotCorrupt(f"{name}: bad gzip stream: {exc}") from exc
    if out:
        yield out
    if not d.eof:
        raise SnapshotCorrupt(f"{name}: gzip stream is truncated")


class _Pending:
    """File bytes read but not consumed yet (for the snappy framing)."""

    __slots__ = ("raw", "buf", "at")

    def __init__(self, raw: Iterator[bytes]) -> None:
        self.raw = raw
        self.buf = bytearray()
        self.at = 0  # file offset of buf[0]

    def need(self, n: int) -> bool:
        while len(self.buf) < n:
            piece = next(self.raw, None)
            if piece is None:
                return False
            self.buf += piece
        return True

    def take(self, n: int) -> bytes:
        out = bytes(self.buf[:n])
        del self.buf[:n]
        self.at += n
        return out


def _unsnappy_pieces(name: str, raw: Iterator[bytes], piece_bytes: int) -> Iterator[bytes]:
    import cramjam

    src = _Pending(raw)
    src.need(16)
    if bytes(src.buf[:8]) != SNAPPY_MAGIC or len(src.buf) < 16:
        raise SnapshotCorrupt(f"{name}: no snappy-java stream header")
    src.take(16)
    parts: list[bytes] = []
    size = 0
    while src.need(1):
        if not src.need(4):
            raise SnapshotCorrupt(f"{name}: snappy block length cut at offset {src.at}")
        (n,) = _INT.unpack(src.take(4))
        if n < 0 or not src.need(n):
            raise SnapshotCorrupt(f"{name}: snappy block of {n} bytes at offset {src.at - 4} "
                                  "runs past the end")
        at = src.at
        try:
            block = bytes(cramjam.snappy.decompress_raw(src.take(n)))
        except Exception as exc:  # cramjam raises its own DecompressionError
            raise SnapshotCorrupt(f"{name}: bad snappy block at offset {at}: {exc}") from exc
        parts.append(block)
        size += len(block)
        if size >= piece_bytes:
            yield b"".join(parts)
            parts, size = [], 0
    if parts:
        yield b"".join(parts)


def snapshot_pieces(name: str, read: Callable[[int, int], bytes],
                    piece_bytes: int = PIECE_BYTES) -> Iterator[bytes]:
    """The plain snapshot stream inside the file ``name``, in pieces of about
    ``piece_bytes``, from ``read(offset, length)`` (see ``read_snapshot_file``).

    Raises (while iterating):
        SnapshotCorrupt: a damaged or truncated gzip / snappy stream.
    """
    raw = _file_pieces(read, piece_bytes)
    mode = _stream_mode(name)
    if mode == "gz":
        return _gunzip_pieces(name, raw, piece_bytes)
    if mode == "snappy":
        return _unsnappy_pieces(name, raw, piece_bytes)
    return raw


def decompress_snapshot(name: str, data: bytes) -> bytes:
    """The plain snapshot stream inside a snapshot file (the mode comes from the name).

    Raises:
        SnapshotCorrupt: a damaged or truncated gzip / snappy stream.
    """
    if _stream_mode(name) == "":
        return data
    view = memoryview(data)
    return b"".join(snapshot_pieces(name, lambda offset, n: bytes(view[offset:offset + n])))


def quick_valid(name: str, size: int, head: bytes, tail: bytes) -> bool:
    """Apache's ``SnapStream.isValidSnapshot`` given the file's size, first and last bytes.

    Plain: at least 10 bytes and ends with the seal marker ``int 1, '/'``; gzip: starts with
    the gzip magic; snappy: starts with the snappy-java magic.
    """
    mode = _stream_mode(name)
    if mode == "gz":
        return head[:2] == _GZIP_MAGIC
    if mode == "snappy":
        return head[:8] == SNAPPY_MAGIC
    return size >= 10 and tail[-5:] == _SEAL_TAIL


def decode_file(name: str, data: bytes) -> Snapshot:
    """Decompress (by name) and decode a snapshot file.

    Raises:
        SnapshotCorrupt: anything wrong with the bytes.
    """
    return decode_snapshot(decompress_snapshot(name, data))
