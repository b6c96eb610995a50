"""DataTree <-> snapshot nodes, and snapshot file bytes (plain, gzip, snappy-java stream).

Theory of operation
-------------------
A snapshot (``storage/snapshot.py``) holds nodes as ``SnapshotNode(path, data, acl, stat)`` in
pre-order, the root written as ``""``. This module maps a ``DataTree`` to that list and back.
Siblings are written in the order the tree keeps them (``ZNode.children``: creation order, or
the order of the snapshot the tree was restored from), so the same history gives the same
bytes; Apache writes them in its HashSet order and no reader depends on the order.
Writing a snapshot does not build that list: ``encode_tree`` has the core walk the tree and
encode each znode straight into the stream (``core.encode_snapshot_nodes``), the same bytes
``encode_snapshot(tree_to_nodes(tree))`` gives (a property test holds them equal).

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

No IO here: callers read and write the files.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from typing import Any

from .._impl import core
from ..core.datatree import OPEN_ACL_UNSAFE, DataTree, ZNode
from .snapshot import Snapshot, SnapshotCorrupt, SnapshotNode, assemble_snapshot, decode_snapshot

__all__ = [
    "tree_to_nodes",
    "tree_from_snapshot",
    "encode_tree",
    "snapshot_file_name",
    "snapshot_extension",
    "compress_snapshot",
    "decompress_snapshot",
    "quick_valid",
    "SNAPPY_MAGIC",
]

SNAPPY_MAGIC = b"\x82SNAPPY\x00"
_SNAPPY_HEADER = SNAPPY_MAGIC + struct.pack(">ii", 1, 1)
#: SnappyOutputStream.DEFAULT_BLOCK_SIZE.
_SNAPPY_BLOCK_BYTES = 32 * 1024
_INT = struct.Struct(">i")
_GZIP_MAGIC = b"\x1f\x8b"
_SEAL_TAIL = b"\x00\x00\x00\x01/"


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


def encode_tree(tree: DataTree, sessions: list[tuple[int, int]], *,
                digest_enabled: bool = True) -> bytes:
    """The plain snapshot stream of ``tree`` (at ``tree.last_processed_zxid``) and sessions."""
    digest = (tree.last_processed_zxid, 2, tree.digest()) if digest_enabled else None
    if digest is not None and digest[0] == 0:
        digest = None
    records = bytearray()
    acl_lists = core.encode_snapshot_nodes(tree.nodes, OPEN_ACL_UNSAFE, records)
    return assemble_snapshot(sessions, acl_lists, records, digest)


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


def decompress_snapshot(name: str, data: bytes) -> bytes:
    """The plain snapshot stream inside a snapshot file (the mode comes from the name).

    Raises:
        SnapshotCorrupt: a damaged or truncated gzip / snappy stream.
    """
    mode = _stream_mode(name)
    if mode == "":
        return data
    if mode == "gz":
        d = zlib.decompressobj(31)
        try:
            out = d.decompress(data) + d.flush()
        except zlib.error as exc:
            raise SnapshotCorrupt(f"{name}: bad gzip stream: {exc}") from exc
        if not d.eof:
            raise SnapshotCorrupt(f"{name}: gzip stream is truncated")
        return out
    import cramjam

    if data[:8] != SNAPPY_MAGIC or len(data) < 16:
        raise SnapshotCorrupt(f"{name}: no snappy-java stream header")
    parts = []
    pos = 16
    while pos < len(data):
        if len(data) - pos < 4:
            raise SnapshotCorrupt(f"{name}: snappy block length cut at offset {pos}")
        (n,) = _INT.unpack_from(data, pos)
        pos += 4
        if n < 0 or n > len(data) - pos:
            raise SnapshotCorrupt(f"{name}: snappy block of {n} bytes at offset {pos - 4} "
                                  "runs past the end")
        try:
            parts.append(bytes(cramjam.snappy.decompress_raw(data[pos:pos + n])))
        except Exception as exc:  # cramjam raises its own DecompressionError
            raise SnapshotCorrupt(f"{name}: bad snappy block at offset {pos}: {exc}") from exc
        pos += n
    return b"".join(parts)


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
