"""``core.SnapshotLoader`` and the piecewise snapshot reading around it, on both twins.

The loader's errors name the record and field with stream offsets, exactly alike in both
twins; a record cut by the end of a piece waits for the next one; recovery reads a snapshot
file a piece at a time (never whole) and keeps at most about two pieces buffered; the
one-buffer stream encoder writes what ``assemble_snapshot`` writes; a loaded tree holds no
object the cyclic collector tracks per znode.
"""

from __future__ import annotations

import gc
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from zkfast import _core_py
from zkfast._impl import core as impl_core
from zkfast.core.datatree import OPEN_ACL_UNSAFE, DataTree
from zkfast.storage import snapshot, tree_io
from zkfast.storage.recovery import MemoryFiles, recover
from zkfast.storage.snapshot import SnapshotCorrupt, SnapshotReader

try:
    from zkfast import _core as _compiled
except ImportError:  # pragma: no cover - the compiled core is not built
    _compiled = None  # type: ignore[assignment]

TWINS = [
    pytest.param(_core_py, id="pure"),
    pytest.param(_compiled, id="compiled",
                 marks=pytest.mark.skipif(_compiled is None, reason="compiled core not built")),
]
DATA = Path(__file__).resolve().parent.parent / "testdata"
_STAT = struct.Struct(">qqqqiiiqq")
ACL = [(1, ("digest", "u:x"))]


@pytest.fixture(params=TWINS)
def core(request: pytest.FixtureRequest) -> ModuleType:
    return request.param  # type: ignore[no-any-return]


def rec(path: bytes, data: bytes | None = b"d", aid: int = -1, owner: int = 0) -> bytes:
    out = struct.pack(">i", len(path)) + path
    out += struct.pack(">i", -1) if data is None else struct.pack(">i", len(data)) + data
    return out + struct.pack(">q", aid) + _STAT.pack(1, 2, 3, 4, 5, 6, 7, owner, 9)


END = struct.pack(">i", 1) + b"/"


def load(core: ModuleType, buf: bytes, **kw: Any) -> tuple[Any, dict[str, Any]]:
    nodes: dict[str, Any] = {}
    loader = core.SnapshotLoader({-1: OPEN_ACL_UNSAFE, 1: ACL}, nodes)
    loader.feed(buf, **kw)
    return loader, nodes


def error_of(fn: Callable[[], Any]) -> tuple[str, str]:
    with pytest.raises(ValueError) as info:
        fn()
    return type(info.value).__name__, str(info.value)


def test_records_become_linked_znodes(core: ModuleType) -> None:
    quota = [b"/zookeeper", b"/zookeeper/quota", b"/zookeeper/quota/q",
             b"/zookeeper/quota/q/zookeeper_limits"]
    buf = rec(b"", b"") + rec(b"/a", b"x", 1) + rec(b"/a/b", None, owner=0x55) + \
        b"".join(rec(p) for p in quota) + END + b"tail"
    loader, nodes = load(core, buf)
    assert loader.done and loader.count == 7
    assert list(nodes) == ["/", "/a", "/a/b", *(p.decode() for p in quota)]
    assert nodes["/"].acl is OPEN_ACL_UNSAFE and nodes["/a"].acl is ACL
    assert nodes["/a/b"].data is None and nodes["/"].data == b""
    assert list(nodes["/"].children) == ["a", "zookeeper"]
    assert nodes["/a"].children["b"] is nodes["/a/b"]
    assert nodes["/a/b"].stat_persisted() == (1, 2, 3, 4, 5, 6, 7, 0x55, 9)
    assert loader.owned == [("/a/b", 0x55)]
    assert loader.quota_limits == ["/zookeeper/quota/q/zookeeper_limits"]
    digests = {p: core.node_digest(p, n) for p, n in nodes.items()}
    assert {p: n._digest for p, n in nodes.items()} == digests
    assert digests["/zookeeper/quota/q/zookeeper_limits"] == 0
    assert loader.digest == sum(digests.values())
    assert loader.data_size == 1 + 3 + 4 + sum(len(p) + 1 for p in quota)


def test_the_parent_is_looked_up_as_from_nodes_does(core: ModuleType) -> None:
    # off the ancestor chain, no slash at all, a trailing slash, a re-read path
    buf = rec(b"") + rec(b"/a") + rec(b"/a/b") + rec(b"/c") + rec(b"/a/d") + rec(b"x") + \
        rec(b"/a/") + rec(b"/a", b"again") + rec(b"/a/e") + END
    _, nodes = load(core, buf)
    assert list(nodes["/"].children) == ["a", "c", "x"]
    assert nodes["/a"].data == b"again"  # the map takes the new node ...
    assert nodes["/"].children["a"].data == b"d"  # ... the old one stays linked
    assert list(nodes["/"].children["a"].children) == ["b", "d", ""]
    assert list(nodes["/a"].children) == ["e"]
    assert error_of(lambda: load(core, rec(b"") + rec(b"/a/b") + END)) == (
        "ValueError", "invalid snapshot: no parent for '/a/b'")
    assert error_of(lambda: load(core, rec(b"") + rec(b"ab") + END)) == (
        "ValueError", "invalid snapshot: no parent for 'ab'")


@pytest.mark.parametrize("buf, error", [
    (rec(b"")[:2], "nodes[0].path at offset 100: expected 4 bytes of length, found 2 bytes left"),
    (struct.pack(">i", -1), "nodes[0].path at offset 100: expected a path, found null"),
    (struct.pack(">i", -5), "nodes[0].path.length at offset 100: expected -1..0, found -5"),
    (struct.pack(">i", 9) + b"/a", "nodes[0].path.length at offset 100: expected -1..2, found 9"),
    (rec(b"/x")[:6], "nodes[0].data at offset 106: expected 4 bytes of length, found 0 bytes "
                     "left"),
    (rec(b"") + struct.pack(">i", 3) + b"/ab" + struct.pack(">i", -2),
     "nodes[1].data.length at offset 184: expected -1..0, found -2"),
    (rec(b"", b"")[:12], "nodes[0].aclId at offset 108: expected 8 bytes of long, found 4 bytes "
                         "left"),
    (rec(b"", b"")[:20], "nodes[0].stat at offset 116: expected 60 bytes of StatPersisted, "
                         "found 4 bytes left"),
    (rec(b"", b"", aid=7), "nodes[0].aclId at offset 108: expected an id of the ACL cache, "
                           "found 7"),
])
def test_malformed_records_are_protocol_errors_with_stream_offsets(
        core: ModuleType, buf: bytes, error: str) -> None:
    with pytest.raises(core.ProtocolError) as info:
        load(core, buf, base=100)
    assert str(info.value) == error


def test_a_record_cut_by_a_piece_waits_for_the_next(core: ModuleType) -> None:
    stream = rec(b"") + rec(b"/a", b"x" * 50) + rec(b"/a/b") + END + b"more"
    for cut in range(len(stream) - 4):  # (the end mark is whole from there)
        nodes: dict[str, Any] = {}
        loader = core.SnapshotLoader({-1: OPEN_ACL_UNSAFE}, nodes)
        pos = loader.feed(stream[:cut], 0, 0, False)
        assert not loader.done
        assert pos <= cut
        rest = stream[pos:]
        end = loader.feed(rest, 0, pos, True)
        assert loader.done and pos + end == len(stream) - 4
        assert list(nodes) == ["/", "/a", "/a/b"]
    # a bad length waits too (its message names the bytes left in the whole stream)
    loader = core.SnapshotLoader({-1: OPEN_ACL_UNSAFE}, {})
    bad = rec(b"") + struct.pack(">i", -3)
    assert loader.feed(bad, 0, 0, False) == len(bad) - 4
    with pytest.raises(core.ProtocolError, match="path.length at offset 77: expected -1..0"):
        loader.feed(bad, len(bad) - 4, 0, True)
    with pytest.raises(ValueError, match="outside the buffer"):
        loader.feed(b"", 1)


def test_the_reader_keeps_only_what_is_not_consumed() -> None:
    stream = bytes(range(256)) * 64
    pieces = [stream[i:i + 1000] for i in range(0, len(stream), 1000)]
    r = SnapshotReader(pieces=iter(pieces))
    biggest = 0
    while r.need(300):
        r.pos += 300
        biggest = max(biggest, len(r.data))
        assert r.check() == zlib.adler32(stream[:r.offset])
    assert biggest < 1300 and not r.pull() and r.exhausted


def read_counter(data: bytes, calls: list[tuple[int, int]]) -> Callable[[int, int], bytes]:
    def read(offset: int, length: int) -> bytes:
        assert length > 0
        calls.append((offset, length))
        return data[offset:offset + length]
    return read


@pytest.mark.parametrize("method", ["", "gz", "snappy"])
def test_a_snapshot_file_is_read_and_decompressed_a_piece_at_a_time(method: str) -> None:
    if method == "snappy":
        pytest.importorskip("cramjam")
    tree = DataTree()
    for z in range(1, 400):
        tree.apply_txn((0, z, z, z, 1), (f"/n{z}", bytes(200), list(ACL), False, -1))
    plain = tree_io.encode_tree(tree, [])
    data = tree_io.compress_snapshot(plain, method)
    calls: list[tuple[int, int]] = []
    biggest = [0]
    real_pull = SnapshotReader.pull

    def pull(self: SnapshotReader) -> bool:
        got = real_pull(self)
        biggest[0] = max(biggest[0], len(self.data))
        return got

    SnapshotReader.pull = pull  # type: ignore[method-assign]
    try:
        back, _ = tree_io.read_snapshot_file(tree_io.snapshot_file_name(9, method),
                                             read_counter(data, calls), 399, piece_bytes=4096)
    finally:
        SnapshotReader.pull = real_pull  # type: ignore[method-assign]
    assert back.digest() == tree.digest()
    assert [c[0] for c in calls] == list(range(0, len(data) + 1, 4096))[:len(calls)]
    assert len(calls) >= len(data) // 4096
    # a piece of plain stream, plus a cut record (a snappy batch may pass a piece by a block)
    assert biggest[0] <= 2 * 4096 + 32 * 1024 + 400


def test_recovery_never_reads_a_snapshot_whole() -> None:
    fs = MemoryFiles()
    tree = DataTree()
    tree.apply_txn((0, 1, 1, 1, 1), ("/a", b"x", list(ACL), False, -1))
    fs.put("s", "snapshot.1", tree_io.encode_tree(tree, [(5, 3000)]))
    real_read = fs.read
    seen: list[int] = []

    def read(directory: str, name: str, offset: int = 0, length: int = -1) -> bytes:
        if name.startswith("snapshot."):
            seen.append(length)
        return real_read(directory, name, offset, length)

    fs.read = read  # type: ignore[method-assign]
    rec_ = recover(fs, "s", "s")
    assert rec_.tree.digest() == tree.digest() and rec_.sessions == [(5, 3000)]
    assert seen and all(n > 0 for n in seen)


def encode_pieces(core: ModuleType, tree: DataTree, hint: int) -> bytes:
    return core.encode_snapshot(  # type: ignore[no-any-return]
        tree.nodes, OPEN_ACL_UNSAFE, lambda acls: snapshot.snapshot_head([(1, 2)], acls),
        lambda check: snapshot.snapshot_tail(check, (7, 2, tree.digest())), hint)


@pytest.mark.parametrize("hint", [0, 1, 100, 10_000, 1 << 20])
def test_the_one_buffer_encoder_writes_what_assemble_snapshot_writes(
        core: ModuleType, hint: int) -> None:
    tree = DataTree()
    for z in range(1, 60):
        acl = list(ACL) if z % 3 else [(31, ("world", "anyone"))]
        tree.apply_txn((0, z, z, z, 1), (f"/n{z % 7}/x{z}" if z > 7 else f"/n{z}",
                                         bytes(z * 11), acl, False, -1))
    records = bytearray()
    acls = core.encode_snapshot_nodes(tree.nodes, OPEN_ACL_UNSAFE, records)
    want = snapshot.assemble_snapshot([(1, 2)], acls, records, (7, 2, tree.digest()))
    got = encode_pieces(core, tree, hint)
    assert type(got) is bytes and got == want
    assert snapshot.decode_snapshot(got).digest == (7, 2, tree.digest())


def test_the_encoder_passes_on_errors_of_its_callbacks(core: ModuleType) -> None:
    tree = DataTree()

    def boom(_: Any) -> bytes:
        raise RuntimeError("head")

    with pytest.raises(RuntimeError, match="head"):
        core.encode_snapshot(tree.nodes, OPEN_ACL_UNSAFE, boom, lambda c: b"", 0)
    with pytest.raises(TypeError):
        core.encode_snapshot(tree.nodes, OPEN_ACL_UNSAFE, lambda a: 5, lambda c: b"", 0)


def test_no_root_is_corrupt() -> None:
    stream = snapshot.assemble_snapshot([], [], rec(b"/a"), None)
    with pytest.raises(SnapshotCorrupt, match="no parent for '/a'"):
        tree_io.tree_from_stream(stream, 1)
    stream = snapshot.assemble_snapshot([], [], b"", None)
    with pytest.raises(SnapshotCorrupt, match="invalid snapshot: no root node"):
        tree_io.tree_from_stream(stream, 1)


@pytest.mark.skipif(impl_core.IMPLEMENTATION != "compiled", reason="a compiled-core property")
def test_a_loaded_tree_is_out_of_the_cyclic_collector() -> None:
    tree = DataTree()
    for z in range(1, 3000):
        tree.apply_txn((0x9, z, z, z, 1), (f"/g{z % 10}" if z < 10 else f"/g{z % 10}/n{z}",
                                           b"v", list(ACL), z % 100 == 0, -1))
    stream = tree_io.encode_tree(tree, [])
    gc.collect()
    before = len(gc.get_objects())
    back, _ = tree_io.tree_from_stream(stream, tree.last_processed_zxid)
    added = len(gc.get_objects()) - before
    assert added < 100, added  # the ACL lists, the ephemerals sets, the tree's own objects
    assert not gc.is_tracked(back.nodes)
    assert not any(gc.is_tracked(n) for n in back.nodes.values())
    assert not any(gc.is_tracked(n.children) for n in back.nodes.values()
                   if type(n.children) is dict)


def test_apache_snapshot_loads_from_pieces_of_every_size() -> None:
    raw = (DATA / "apache-3.8.0-snapshot.f").read_bytes()
    want = tree_io.tree_from_snapshot(snapshot.decode_snapshot(raw), 0xF)
    for size in range(1, 80):
        got, snap = tree_io.read_snapshot_file("snapshot.f", lambda o, n: raw[o:o + n], 0xF,
                                               piece_bytes=size)
        assert got.digest() == want.digest() == snap.digest[2]  # type: ignore[index]
        assert sorted(got.nodes) == sorted(want.nodes)


def test_replayed_znodes_share_acl_lists() -> None:
    """Log replay hands equal ACLs to the tree as one list (creates, create2, containers,
    setACL, inside a multi too), as the snapshot load and live writes do."""
    from zkfast.storage.txnlog import encode_entry, encode_file_header
    from zkfast.wire.txn_codec import encode_txn

    fs = MemoryFiles()
    fs.put("d", "snapshot.0", tree_io.encode_tree(DataTree(), []))
    txns = [
        encode_txn((5, 1, 1, 1, 1), ("/a", b"", list(ACL), False, 1), None),
        encode_txn((5, 2, 2, 2, 15), ("/b", b"", list(ACL), False, 2), None),
        encode_txn((5, 3, 3, 3, 19), ("/c", b"", list(ACL), 3), None),
        encode_txn((5, 4, 4, 4, 7), ("/a", list(ACL), 1), None),
        encode_txn((5, 5, 5, 5, 14), [(1, ("/d", b"", list(ACL), False, 4)),
                                      (19, ("/f", b"", [(31, ("world", "anyone"))], 5))], None),
        encode_txn((5, 6, 6, 6, 7), ("/b", [(31, ("world", "anyone"))], 1), None),
        encode_txn((5, 7, 7, 7, 1), ("/e", b"", [(31, ("world", "anyone"))], False, 6), None),
    ]
    fs.put("d", "log.1", encode_file_header() + b"".join(encode_entry(t) for t in txns))
    nodes = recover(fs, "d", "d").tree.nodes
    assert nodes["/a"].acl == ACL
    assert nodes["/a"].acl is nodes["/c"].acl is nodes["/d"].acl
    assert nodes["/b"].acl is nodes["/e"].acl is nodes["/f"].acl
    assert nodes["/b"].acl == [(31, ("world", "anyone"))]
    assert nodes["/b"].acl is not OPEN_ACL_UNSAFE
