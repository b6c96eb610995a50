"""Hypothesis: the storage kernels of the compiled core and of its pure twin agree.

``encode_snapshot_nodes`` on random trees (any names, null/empty/binary data, the implicit
open ACL, equal ACL lists as distinct objects, extreme stats) gives the same bytes and ACL lists
in both twins, and a snapshot assembled from them is byte for byte what
``encode_snapshot(tree_to_nodes(tree))`` writes. ``node_digest`` matches a reference written
from ``DigestCalculator`` with Python's zlib on random nodes (lone surrogates and astral
characters in paths included). Out-of-range stat fields raise the same errors in both.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zkfast import _core_py as pure
from zkfast._core_py import ZNODE_FIELDS
from zkfast.core.datatree import OPEN_ACL_UNSAFE, DataTree, ZNode
from zkfast.storage import snapshot, tree_io

compiled = pytest.importorskip("zkfast._core", reason="compiled core not built")

FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

I32 = st.integers(-(1 << 31), (1 << 31) - 1)
I64 = st.integers(-(1 << 63), (1 << 63) - 1)
NAMES = st.text(st.characters(blacklist_characters="/"), min_size=1, max_size=6)
DATA = st.one_of(st.none(), st.just(b""), st.binary(max_size=40), st.binary(min_size=500,
                                                                              max_size=900))
ACLS = st.sampled_from([
    [(31, ("world", "anyone"))],
    [(1, ("digest", "u:x"))],
    [(31, ("ip", "10.0.0.1")), (1, ("world", "anyone"))],
    [],
])


@st.composite
def znodes(draw: st.DrawFn, data: st.SearchStrategy[Any] = DATA) -> ZNode:
    acl = draw(st.one_of(st.just(OPEN_ACL_UNSAFE), ACLS.map(list)))
    return ZNode(draw(data), acl, draw(I64), draw(I64), draw(I64), draw(I64), draw(I32),
                 draw(I32), draw(I32), draw(I64), draw(I64))


@st.composite
def trees(draw: st.DrawFn) -> DataTree:
    """A DataTree of random shape, loaded the way a snapshot is (``from_nodes``)."""
    paths = ["/"]
    nodes: list[tuple[str, ZNode]] = [("/", draw(znodes()))]
    for _ in range(draw(st.integers(0, 25))):
        parent = draw(st.sampled_from(paths))
        path = ("" if parent == "/" else parent) + "/" + draw(NAMES)
        if path in paths:
            continue
        paths.append(path)
        nodes.append((path, draw(znodes())))
    return DataTree.from_nodes(nodes, last_processed_zxid=draw(st.integers(0, 1 << 40)))


def outcome(fn: Any, *args: Any) -> Any:
    try:
        return ("ok", fn(*args))
    except Exception as exc:  # noqa: BLE001 - the outcome is compared
        return (type(exc).__name__, str(exc))


@FAST
@given(trees(), st.lists(st.tuples(I64, I32), max_size=3))
def test_encode_snapshot_nodes_twins_and_old_writer(tree: DataTree, sessions: Any) -> None:
    outs = []
    for core in (pure, compiled):
        out = bytearray(b"keep")
        acls = core.encode_snapshot_nodes(tree.nodes, OPEN_ACL_UNSAFE, out)
        assert out[:4] == b"keep"
        outs.append((bytes(out), [list(a) for a in acls]))
    assert outs[0] == outs[1]
    digest = (tree.last_processed_zxid, 2, tree.digest()) if tree.last_processed_zxid else None
    old = snapshot.encode_snapshot(sessions, tree_io.tree_to_nodes(tree), digest)
    assert tree_io.encode_tree(tree, sessions) == old
    # (Paths with characters beyond U+FFFF come back as replacement characters, as in Java.)
    assert len(snapshot.decode_snapshot(old).nodes) == len(tree.nodes)


def test_encode_snapshot_nodes_shares_ids_by_value() -> None:
    tree = DataTree()
    a1, a2, b = [(1, ("digest", "u:x"))], [(1, ("digest", "u:x"))], [(3, ("ip", "1.2.3.4"))]
    nodes = [("/", ZNode(b"", OPEN_ACL_UNSAFE)), ("/a", ZNode(b"1", a1)),
             ("/b", ZNode(None, b)), ("/c", ZNode(b"", a2))]
    tree = DataTree.from_nodes(nodes)
    for core in (pure, compiled):
        out = bytearray()
        acls = core.encode_snapshot_nodes(tree.nodes, OPEN_ACL_UNSAFE, out)
        assert acls == [a1, b] and acls[0] is a1
        ids = [n.acl for n in snapshot.decode_snapshot(
            snapshot.assemble_snapshot([], acls, out, None)).nodes]
        assert ids == [None, a1, b, a1]


@pytest.mark.parametrize("field", ["czxid", "version", "ephemeral_owner", "pzxid"])
def test_encode_snapshot_nodes_overflow(field: str) -> None:
    # The pure class holds any int; the compiled one refuses it when it is set.
    with pytest.raises(OverflowError):
        setattr(compiled.ZNode(b"x", []), field, 1 << 70)
    node = pure.ZNode(b"x", [(1, ("world", "anyone"))])
    setattr(node, field, 1 << 70)
    nodes = {"/": pure.ZNode(b"", OPEN_ACL_UNSAFE, children={"n": node}), "/n": node}
    got = []
    for core in (pure, compiled):
        out = bytearray(b"keep")
        got.append(outcome(core.encode_snapshot_nodes, nodes, OPEN_ACL_UNSAFE, out))
        assert out == b"keep"
    assert got[0] == got[1]
    assert got[0][0] == "OverflowError"
    assert outcome(pure.node_digest, "/n", node) == outcome(compiled.node_digest, "/n", node)


def reference_digest(path: str, node: ZNode) -> int:
    """``DigestCalculator.calculateDigest``, written out with Python's zlib."""
    if path.startswith("/zookeeper/"):
        return 0
    if path == "/":
        path = ""
    crc = zlib.crc32(path.encode("utf-8", "replace"))
    if node.data:
        crc = zlib.crc32(node.data, crc)
    return zlib.crc32(struct.pack(">qqqqqiiiq", node.czxid, node.mzxid, node.pzxid, node.ctime,
                                  node.mtime, node.version, node.cversion, node.aversion,
                                  node.ephemeral_owner), crc)


@FAST
@given(st.one_of(st.text(max_size=20).map(lambda t: "/" + t), st.sampled_from(
    ["/", "", "/zookeeper", "/zookeeper/quota", "/zookeeper/x/y", "/a\ud800b", "/\U0001f600"])),
       znodes(st.one_of(DATA, st.binary(min_size=2000, max_size=3000))))
def test_node_digest_twins(path: str, node: ZNode) -> None:
    want = reference_digest(path, node)
    assert pure.node_digest(path, node) == want
    assert compiled.node_digest(path, node) == want
    if node.data is not None:
        node.data = bytearray(node.data)  # any bytes-like object
        assert compiled.node_digest(path, node) == want
        assert pure.node_digest(path, node) == want


def test_fresh_tree_digest_unchanged() -> None:
    # Verified against Apache ZooKeeper 3.8.0 (zk-formats §5).
    from zkfast.core.datatree import FRESH_TREE_DIGEST

    assert DataTree().digest() == FRESH_TREE_DIGEST
    assert DataTree().recompute_digest() == FRESH_TREE_DIGEST


class _PlainNode:
    """A znode-shaped object without slots (attributes in a __dict__)."""

    def __init__(self, node: ZNode) -> None:
        for name in (*ZNODE_FIELDS, "_digest"):
            if name != "children":
                setattr(self, name, getattr(node, name))
        self.children: dict[str, Any] = {}


class _PropertyNode(ZNode):
    """A ZNode subclass whose mzxid is computed: no slot to read for it."""

    __slots__ = ()

    @property  # type: ignore[override]
    def mzxid(self) -> int:
        return self.czxid + 1

    @mzxid.setter
    def mzxid(self, value: int) -> None:
        pass


def test_encode_snapshot_nodes_reads_any_znode_shape() -> None:
    """Slot reads are a shortcut: other shapes, mixed in one tree, encode as the twin does,
    and a slot left unset is an AttributeError in both."""
    leaf = ZNode(b"x", [(1, ("world", "anyone"))], 5, 6, 7, 8, 1, 2, 3, 0, 9)
    plain = _PlainNode(leaf)
    prop = _PropertyNode(b"y", [(1, ("world", "anyone"))], 10, 0, 7, 8, 1, 2, 3, 0, 11)
    unset = pure.ZNode(b"z", OPEN_ACL_UNSAFE)
    del unset.pzxid
    root = ZNode(b"", OPEN_ACL_UNSAFE, children={"a": leaf, "b": plain, "c": prop})
    plain_root = _PlainNode(root)
    plain_root.children = {"a": leaf, "c": prop}
    for nodes in ({"/": root}, {"/": plain_root}, {"/": _PropertyNode(b"", [], children={
            "p": plain})}, {"/": ZNode(b"", OPEN_ACL_UNSAFE, children={"u": unset})}):
        got = []
        for core in (pure, compiled):
            out = bytearray()
            got.append((outcome(core.encode_snapshot_nodes, nodes, OPEN_ACL_UNSAFE, out),
                        bytes(out)))
        assert got[0] == got[1]
    assert got[0][0][0] == "AttributeError"
    out = bytearray()
    compiled.encode_snapshot_nodes({"/": root}, OPEN_ACL_UNSAFE, out)
    paths = [n.path for n in snapshot.decode_snapshot(
        snapshot.assemble_snapshot([], [[(1, ("world", "anyone"))]], out, None)).nodes]
    assert paths == ["", "/a", "/b", "/c"]


@pytest.mark.parametrize("cls", [pure.ZNode, compiled.ZNode], ids=["pure", "compiled"])
def test_znode_class_twins(cls: Any) -> None:
    """Both ZNode classes: constructor order, leaves with a read-only empty mapping,
    link/unlink, the digest cache, copies."""
    import copy

    n = cls(b"d", [], 1, 2, 3, 4, 5, 6, 7, -8, 9)
    assert tuple(getattr(n, f) for f in ZNODE_FIELDS[:-1]) == (b"d", [], 1, 2, 3, 4, 5, 6, 7,
                                                                -8, 9)
    assert n.stat_persisted() == (1, 2, 3, 4, 5, 6, 7, -8, 9)
    assert len(n.children) == 0 and list(n.children) == []
    with pytest.raises(TypeError):
        n.children["x"] = n  # a leaf's mapping is shared: it cannot be written
    a, b = cls(b"a", []), cls(b"b", [])
    assert n.link("a", a) is a and n.link("a", b) is a and n.link("b", b) is b
    assert list(n.children.items()) == [("a", a), ("b", b)]
    assert n.unlink("a") is a and n.unlink("a") is None and list(n.children) == ["b"]
    assert n.unlink("b") is b and len(n.children) == 0
    n.children = {"b": b}
    assert n.children["b"] is b
    n.children = None
    assert len(n.children) == 0
    assert n._digest is None
    n._digest = 0xFFFFFFFF
    assert n._digest == 0xFFFFFFFF
    n.link("a", a)
    c = copy.deepcopy(n)
    assert c is not n and c._digest == 0xFFFFFFFF and c.stat_persisted() == n.stat_persisted()
    assert list(c.children) == ["a"] and c.children["a"] is not a
    assert c.children["a"].data == b"a"
    n._digest = None
    assert n._digest is None
