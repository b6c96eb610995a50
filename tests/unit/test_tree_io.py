"""DataTree <-> snapshot nodes and snapshot file streams, against Apache ZooKeeper 3.8.0 files."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest

from zkfast.core.datatree import OPEN_ACL_UNSAFE, DataTree
from zkfast.storage import tree_io
from zkfast.storage.snapshot import SnapshotCorrupt, decode_snapshot

DATA = Path(__file__).resolve().parent.parent / "testdata"
APACHE_SNAPSHOTS = ["apache-3.8.0-snapshot.0", "apache-3.8.0-snapshot.f"]


def _txn_tree() -> DataTree:
    """A tree with client nodes, an ephemeral, an explicit open ACL and a shared ACL."""
    tree = DataTree()
    digest_acl = [(31, ("digest", "u:abc="))]
    ops = [
        (1, ("/a", b"A", list(OPEN_ACL_UNSAFE), False, 1)),
        (1, ("/a/b", b"B", digest_acl, False, 1)),
        (1, ("/c", b"", list(digest_acl), True, 2)),
        (5, ("/a", b"A2", 1)),
    ]
    for i, (t, rec) in enumerate(ops, start=1):
        tree.apply_txn((0x77, i, i, 1000 + i, t), rec)
    return tree


@pytest.mark.parametrize("name", APACHE_SNAPSHOTS)
def test_apache_snapshot_round_trips_through_a_tree(name: str) -> None:
    raw = (DATA / name).read_bytes()
    snap = decode_snapshot(raw)
    zxid = int(name.rsplit(".", 1)[1], 16)
    tree = tree_io.tree_from_snapshot(snap, zxid)
    assert tree.last_processed_zxid == zxid
    again = list(tree_io.tree_to_nodes(tree))
    assert sorted((n.path, n.data, n.acl, n.stat) for n in again) == \
        sorted((n.path, n.data, n.acl, n.stat) for n in snap.nodes)
    # The implicit open ACL (id -1) stays implicit; everything else keeps an explicit list.
    implicit = {n.path for n in snap.nodes if n.acl is None}
    assert {n.path for n in again if n.acl is None} == implicit
    assert {"", "/zookeeper", "/zookeeper/quota"} <= implicit
    if snap.digest is not None and snap.digest[0] == zxid:
        assert tree.digest() == snap.digest[2]
    # Our encoding of it decodes to the same content.
    mine = decode_snapshot(tree_io.encode_tree(tree, snap.sessions))
    assert [(n.path, n.data, n.acl, n.stat) for n in mine.nodes] == \
        [(n.path, n.data, n.acl, n.stat) for n in again]
    assert mine.sessions == snap.sessions


def test_snapshot_zero_of_apache_equals_a_fresh_tree_byte_for_byte() -> None:
    raw = (DATA / "apache-3.8.0-snapshot.0").read_bytes()
    assert tree_io.encode_tree(DataTree(), []) == raw


def test_system_nodes_keep_the_implicit_acl_and_clients_get_explicit_ids() -> None:
    tree = _txn_tree()
    nodes = {n.path: n for n in tree_io.tree_to_nodes(tree)}
    assert nodes[""].acl is None and nodes["/zookeeper"].acl is None
    assert nodes["/zookeeper/config"].acl == [(1, ("world", "anyone"))]
    assert nodes["/a"].acl == list(OPEN_ACL_UNSAFE)  # a client's world:anyone is explicit
    back = tree_io.tree_from_snapshot(decode_snapshot(tree_io.encode_tree(tree, [])), 4)
    assert back.nodes["/"].acl is OPEN_ACL_UNSAFE
    assert back.nodes["/a"].acl is not OPEN_ACL_UNSAFE
    # Equal ACL lists share one object, as they share one id in Apache's ACL cache.
    assert back.nodes["/a/b"].acl is back.nodes["/c"].acl


def test_pre_order_and_restored_tree_state() -> None:
    tree = _txn_tree()
    paths = [n.path for n in tree_io.tree_to_nodes(tree)]
    assert paths[0] == ""
    for i, p in enumerate(paths[1:], start=1):
        parent = p.rsplit("/", 1)[0]
        assert parent in paths[:i]
    back = tree_io.tree_from_snapshot(decode_snapshot(tree_io.encode_tree(tree, [(0x77, 5000)])),
                                      tree.last_processed_zxid)
    assert back.digest() == tree.digest()
    assert back.ephemerals == {0x77: {"/c"}}
    assert back.stat_of(back.nodes["/a"]) == tree.stat_of(tree.nodes["/a"])


def test_siblings_in_link_order_and_the_same_history_gives_the_same_bytes() -> None:
    """Siblings are written in creation order (not by name); a tree restored from that
    snapshot, then given the same further txns as the original, writes the same bytes; a
    delete keeps the order of the others."""
    def creates(tree: DataTree, names: list[str], first: int) -> None:
        for i, name in enumerate(names, start=first):
            tree.apply_txn((0x77, i, i, 1000 + i, 1), (f"/p/{name}", b"x", list(OPEN_ACL_UNSAFE),
                                                      False, -1))

    tree = DataTree()
    tree.apply_txn((0x77, 1, 1, 1000, 1), ("/p", b"", list(OPEN_ACL_UNSAFE), False, 1))
    creates(tree, ["m", "b", "z", "a"], 2)
    paths = [n.path for n in tree_io.tree_to_nodes(tree)]
    assert paths[-4:] == ["/p/m", "/p/b", "/p/z", "/p/a"]
    raw = tree_io.encode_tree(tree, [])
    back = tree_io.tree_from_snapshot(decode_snapshot(raw), tree.last_processed_zxid)
    assert tree_io.encode_tree(back, []) == raw
    for t in (tree, back):
        creates(t, ["c", "y"], 6)
        t.apply_txn((0x77, 8, 8, 1008, 2), ("/p/b",))
    assert tree_io.encode_tree(back, []) == tree_io.encode_tree(tree, [])
    assert list(back.nodes["/p"].children) == ["m", "z", "a", "c", "y"]


@pytest.mark.parametrize("method", ["", "gz", "snappy"])
def test_compressed_streams_round_trip(method: str) -> None:
    if method == "snappy":
        pytest.importorskip("cramjam")
    plain = tree_io.encode_tree(_txn_tree(), [(1, 2)]) * 3000  # several snappy blocks
    name = tree_io.snapshot_file_name(0x1F, method)
    assert name == "snapshot.1f" + ("." + method if method else "")
    data = tree_io.compress_snapshot(plain, method)
    assert tree_io.decompress_snapshot(name, data) == plain
    assert tree_io.quick_valid(name, len(data), data[:16], data[-5:])
    if method == "gz":
        assert gzip.decompress(data) == plain  # a standard gzip member, as GZIPOutputStream
    if method == "snappy":
        assert data[:16] == b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)
        (first,) = struct.unpack_from(">i", data, 16)
        assert 0 < first < len(data)
        with pytest.raises(SnapshotCorrupt):
            tree_io.decompress_snapshot(name, data[: len(data) // 2])


def test_quick_validity_of_a_plain_snapshot() -> None:
    raw = (DATA / "apache-3.8.0-snapshot.f").read_bytes()
    assert tree_io.quick_valid("snapshot.f", len(raw), raw[:16], raw[-5:])
    cut = raw[:-3]
    assert not tree_io.quick_valid("snapshot.f", len(cut), cut[:16], cut[-5:])


def test_null_data_round_trips_as_length_minus_one() -> None:
    """Apache writes a null buffer as -1; empty data stays empty."""
    t = DataTree()
    t.apply_txn((1, 1, 1, 5, 1), ("/null", None, [(31, ("world", "anyone"))], False, -1))
    t.apply_txn((1, 2, 2, 5, 1), ("/empty", b"", [(31, ("world", "anyone"))], False, -1))
    raw = tree_io.encode_tree(t, [])
    assert struct.pack(">i", 5) + b"/null" + struct.pack(">i", -1) in raw
    assert struct.pack(">i", 6) + b"/empty" + struct.pack(">i", 0) in raw
    back = tree_io.tree_from_snapshot(decode_snapshot(raw), 2)
    assert back.nodes["/null"].data is None and back.nodes["/empty"].data == b""
    assert back.digest() == t.digest()
    assert tree_io.encode_tree(back, []) == raw
