"""The snapshot loader: the compiled core, its pure twin and the old path build the same tree.

A snapshot stream is generated from raw node records (so paths can be anything a file may
hold: non-ASCII and invalid UTF-8, CESU-8 surrogates, no leading slash, trailing or double
slashes, duplicates, a missing parent or root, a second root; data null, empty or binary;
ACL ids -1, shared, unknown; owners of sessions, containers and TTL nodes; a quota'd subtree),
then loaded four ways: ``tree_io.tree_from_stream`` with each twin's ``SnapshotLoader``, and
``tree_io.read_snapshot_file`` with each, in random small pieces. All four give the same tree
(every node's data, ACL and ACL sharing, stat, children in order, cached digest; the digest,
data size, ephemeral/container/TTL indexes and quotas) or the same ``SnapshotCorrupt``
message. The old path, ``tree_from_snapshot(decode_snapshot(...))``, accepts exactly the
same streams and builds the same tree. The Apache-written fixtures go through the same checks.

The fuzz half mutates valid streams (plain, gzip, snappy and SNAP-sync) the ways a broken
disk or peer would; every outcome is a tree or a ``SnapshotCorrupt``, and the four loads and
the old path agree on it.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zkfast import _core_py as pure
from zkfast._core_py import java_utf8
from zkfast.core.datatree import OPEN_ACL_UNSAFE, DataTree
from zkfast.storage import snapshot, tree_io
from zkfast.storage.snapshot import SnapshotCorrupt
from zkfast.wire.constants import CONTAINER_EPHEMERAL_OWNER

compiled = pytest.importorskip("zkfast._core", reason="compiled core not built")

LOADERS = {"pure": pure.SnapshotLoader, "compiled": compiled.SnapshotLoader}
DATA_DIR = Path(__file__).resolve().parent.parent / "testdata"
APACHE = ["apache-3.8.0-snapshot.0", "apache-3.8.0-snapshot.f"]
FAST = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

I32 = st.integers(-(1 << 31), (1 << 31) - 1)
I64 = st.integers(-(1 << 63), (1 << 63) - 1)
TTL_OWNER = -0x0100000000000000 | 5000
OWNERS = st.one_of(st.just(0), st.just(0), st.sampled_from([
    0x100000A5B3C0000, 0x200000001, CONTAINER_EPHEMERAL_OWNER, TTL_OWNER,
    -0x0100000000000000 | 0x0000010000000007]), I64)
NAMES = st.one_of(
    st.text(st.characters(blacklist_characters="/"), min_size=1, max_size=5).map(java_utf8),
    st.sampled_from([b"a", b"n0000001", b"zookeeper", b"\xff\xfe", b"\xc3", b".", b""]),
)
WEIRD_PATHS = [b"abc", b"x", b"/a/", b"//", b"/nope/x", b"", b"/zookeeper/quota", b"/\xe9t\xe9",
               b"/zookeeper/x", b"/zookeeper"]
DATA = st.one_of(st.none(), st.just(b""), st.binary(max_size=24),
                 st.binary(min_size=480, max_size=600))
ACLS = [[(31, ("world", "anyone"))], [(1, ("digest", "u:x"))],
        [(31, ("ip", "10.0.0.1")), (1, ("world", "anyone"))], [], [(1, ("digest", "u:x"))]]
QUOTA_RECORDS = [  # (path, data): a quota'd /q with a limits and a stats node
    (b"/zookeeper", b""), (b"/zookeeper/quota", b""), (b"/zookeeper/quota/q", b""),
    (b"/zookeeper/quota/q/zookeeper_limits", b"count=5,bytes=-1"),
    (b"/zookeeper/quota/q/zookeeper_stats", b"count=0,bytes=0"),
    (b"/q", b"12345"), (b"/q/x", b"ab"), (b"/q/x/y", None),
]
_STAT = struct.Struct(">qqqqiiiqq")


def node_record(path: bytes, data: bytes | None, aid: int, stat: tuple[int, ...]) -> bytes:
    out = struct.pack(">i", len(path)) + path
    out += struct.pack(">i", -1) if data is None else struct.pack(">i", len(data)) + data
    return out + struct.pack(">q", aid) + _STAT.pack(*stat)


@st.composite
def stats(draw: st.DrawFn) -> tuple[int, ...]:
    return (draw(I64), draw(I64), draw(I64), draw(I64), draw(I32), draw(I32), draw(I32),
            draw(OWNERS), draw(I64))


@st.composite
def raw_snapshots(draw: st.DrawFn) -> tuple[bytes, int, bool]:
    """A snapshot stream of arbitrary node records, its zxid and extendedTypesEnabled."""
    acl_lists = [list(a) for a in draw(st.lists(st.sampled_from(ACLS), max_size=4))]
    aids = st.sampled_from([-1, -1, *range(1, len(acl_lists) + 1)]) if acl_lists else \
        st.just(-1)
    if draw(st.integers(0, 30)) == 0:
        aids = st.one_of(aids, st.sampled_from([0, 99, -2]))
    records = []
    paths: list[bytes] = []
    if draw(st.integers(0, 40)) != 0:
        records.append(node_record(b"", draw(DATA), draw(aids), draw(stats())))
        paths.append(b"")
    if draw(st.booleans()):
        for path, data in QUOTA_RECORDS:
            records.append(node_record(path, data, draw(aids), draw(stats())))
            paths.append(path)
    for _ in range(draw(st.integers(0, 25))):
        kind = draw(st.integers(0, 20))
        if kind == 0:
            path = draw(st.sampled_from(WEIRD_PATHS))
        elif kind == 1 and paths:
            path = draw(st.sampled_from(paths))  # a duplicate
        else:
            parent = draw(st.sampled_from(paths)) if paths else b""
            path = parent + b"/" + draw(NAMES)
        records.append(node_record(path, draw(DATA), draw(aids), draw(stats())))
        paths.append(path)
    sessions = draw(st.lists(st.tuples(I64, I32), max_size=3))
    zxid = draw(st.integers(0, 1 << 40))
    digest = draw(st.one_of(st.none(), st.tuples(st.integers(1, 1 << 40), st.just(2), I64)))
    stream = snapshot.assemble_snapshot(sessions, acl_lists, b"".join(records), digest)
    return stream, zxid, draw(st.booleans())


def tree_state(tree: DataTree) -> Any:
    """Everything observable about a loaded tree, ZNode class aside."""
    acl_ids: dict[int, int] = {}
    nodes = {}
    for path, n in tree.nodes.items():
        acl_ref = "open" if n.acl is OPEN_ACL_UNSAFE else acl_ids.setdefault(id(n.acl),
                                                                           len(acl_ids))
        kids = [(name, child is tree.nodes.get(("" if path == "/" else path) + "/" + name),
                 child.stat_persisted(), child.data) for name, child in n.children.items()]
        nodes[path] = (n.data, acl_ref, list(n.acl), n.stat_persisted(), kids, n._digest)
    return (nodes, list(tree.nodes), tree.digest(), tree.recompute_digest(),
            tree.approximate_data_size, tree.ephemerals, tree.containers, tree.ttls,
            sorted(tree._quota_paths), tree.last_processed_zxid, tree.extended_types_enabled)


def outcome(fn: Callable[[], tuple[DataTree, Any]]) -> Any:
    try:
        tree, extra = fn()
    except SnapshotCorrupt as exc:
        return ("corrupt", str(exc))
    return ("ok", tree_state(tree), extra)


def snap_extra(snap: snapshot.Snapshot) -> Any:
    return (snap.sessions, snap.digest, snap.last_processed_zxid)


def new_loads(name: str, data: bytes, zxid: int, ext: bool, pieces: list[int]
              ) -> dict[str, Any]:
    """Each twin, whole and in pieces of the given sizes (for a plain stream, whole too)."""
    out: dict[str, Any] = {}
    for kind, loader in LOADERS.items():
        if "." not in name[len("snapshot."):]:
            out[f"{kind} whole"] = outcome(lambda loader=loader: _extra(tree_io.tree_from_stream(
                data, zxid, extended_types_enabled=ext, loader=loader)))
        for size in pieces:
            out[f"{kind} pieces of {size}"] = outcome(
                lambda loader=loader, size=size: _extra(tree_io.read_snapshot_file(
                    name, lambda o, n: data[o:o + n], zxid, extended_types_enabled=ext,
                    piece_bytes=size, loader=loader)))
    return out


def _extra(got: tuple[DataTree, snapshot.Snapshot]) -> tuple[DataTree, Any]:
    return got[0], snap_extra(got[1])


def old_load(name: str, data: bytes, zxid: int, ext: bool) -> Any:
    def load() -> tuple[DataTree, Any]:
        snap = tree_io.decode_file(name, data)
        return tree_io.tree_from_snapshot(snap, zxid, extended_types_enabled=ext), \
            snap_extra(snap)
    return outcome(load)


def check_agree(name: str, data: bytes, zxid: int, ext: bool, pieces: list[int]) -> Any:
    """The four new loads agree exactly; the old path agrees on the tree, or also refuses."""
    got = new_loads(name, data, zxid, ext, pieces)
    first = next(iter(got.values()))
    for key, value in got.items():
        assert value == first, key
    old = old_load(name, data, zxid, ext)
    assert old[0] == first[0], (old, first)
    if old[0] == "ok":
        assert old == first
    return first


@FAST
@given(raw_snapshots(), st.lists(st.integers(1, 300), min_size=1, max_size=2))
def test_loaders_build_the_old_paths_tree(raw: tuple[bytes, int, bool], pieces: list[int]
                                          ) -> None:
    stream, zxid, ext = raw
    check_agree("snapshot.1", stream, zxid, ext, pieces)


@FAST
@given(st.data())
def test_valid_trees_round_trip(data: st.DataObject) -> None:
    """A tree the server could hold (through apply_txn) loads back to itself, and writes
    the same bytes again."""
    tree = DataTree(extended_types_enabled=data.draw(st.booleans()))
    paths = ["/"]
    for z in range(1, data.draw(st.integers(0, 30)) + 1):
        parent = data.draw(st.sampled_from(paths))
        # (beyond U+FFFF a name is written as CESU-8 and read back as U+FFFD, as in Java)
        name = data.draw(st.text(st.characters(blacklist_characters="/", blacklist_categories=(
            "Cs",), max_codepoint=0xFFFF), min_size=1, max_size=4))
        path = ("" if parent == "/" else parent) + "/" + name
        acl = data.draw(st.sampled_from(ACLS[:3]))
        owner = data.draw(st.sampled_from([0, 0, 0x77]))
        tree.apply_txn((owner, z, z, 1000 + z, 1), (path, data.draw(DATA), list(acl),
                                                   owner != 0, -1))
        if path in tree.nodes and path not in paths:
            paths.append(path)
    stream = tree_io.encode_tree(tree, [(0x77, 3000)])
    first = check_agree("snapshot.1", stream, tree.last_processed_zxid,
                        tree.extended_types_enabled, [data.draw(st.integers(1, 200))])
    assert first[0] == "ok"
    back, _ = tree_io.tree_from_stream(stream, tree.last_processed_zxid,
                                       extended_types_enabled=tree.extended_types_enabled)
    assert back.digest() == tree.digest()
    assert back.approximate_data_size == tree.approximate_data_size
    assert back.ephemerals == tree.ephemerals
    assert tree_io.encode_tree(back, [(0x77, 3000)]) == stream


@pytest.mark.parametrize("name", APACHE)
@pytest.mark.parametrize("method", ["", "gz", "snappy"])
def test_apache_snapshots_load_alike(name: str, method: str) -> None:
    if method == "snappy":
        pytest.importorskip("cramjam")
    raw = (DATA_DIR / name).read_bytes()
    zxid = int(name.rsplit(".", 1)[1], 16)
    data = tree_io.compress_snapshot(raw, method)
    file = tree_io.snapshot_file_name(zxid, method)
    first = check_agree(file, data, zxid, False, [1, 7, 64, 1 << 20])
    assert first[0] == "ok"
    nodes = first[1][0]
    assert nodes["/"][1] == "open" and nodes["/zookeeper"][1] == "open"


# ----------------------------------------------------------------------------- fuzz


def mutate(blob: bytes, rng: random.Random) -> bytes:
    """Flipped bytes, lying lengths, truncation, insertion, deletion."""
    raw = bytearray(blob)
    for _ in range(rng.randrange(1, 4)):
        kind = rng.randrange(6)
        if kind == 0 and raw:
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        elif kind == 1 and raw:
            raw[rng.randrange(len(raw))] = rng.choice([0x00, 0xFF, 0x7F, 0x80, 0x2F])
        elif kind == 2 and raw:
            del raw[rng.randrange(len(raw)):]
        elif kind == 3:
            i = rng.randrange(len(raw) + 1)
            raw[i:i] = rng.randbytes(rng.randrange(1, 6))
        elif kind == 4 and len(raw) >= 4:
            i = rng.randrange(len(raw) - 3)
            v = rng.choice([0, 1, -1, -2, 0x7FFFFFFF, -(2**31), 60, 68, len(raw) - i,
                            len(raw) - i - 4, len(raw)])
            raw[i:i + 4] = (v & 0xFFFFFFFF).to_bytes(4, "big")
        elif kind == 5 and raw:
            i = rng.randrange(len(raw))
            del raw[i:i + rng.randrange(1, 9)]
    return bytes(raw)


def fuzz_tree(rng: random.Random) -> DataTree:
    tree = DataTree(extended_types_enabled=rng.random() < 0.5)
    paths = ["/"]
    for z in range(1, rng.randrange(2, 12)):
        parent = rng.choice(paths)
        path = ("" if parent == "/" else parent) + "/" + rng.choice(["a", "b", "é", "n1", "z"])
        acl = rng.choice(ACLS[:3])
        owner = rng.choice([0, 0, 0x55])
        tree.apply_txn((owner, z, z, 100 + z, 1), (path, rng.randbytes(rng.randrange(6)),
                                                   list(acl), owner != 0, -1))
        if path in tree.nodes and path not in paths:
            paths.append(path)
    return tree


SEEDS = list(range(10))


@pytest.mark.parametrize("seed", SEEDS)
def test_mutated_snapshot_files(seed: int) -> None:
    rng = random.Random(7000 + seed)
    for _ in range(40):
        tree = fuzz_tree(rng)
        stream = tree_io.encode_tree(tree, [(0x55, 4000)] if rng.random() < 0.5 else [])
        bad = mutate(stream, rng)
        check_agree("snapshot.2", bad, tree.last_processed_zxid, tree.extended_types_enabled,
                    [rng.randrange(1, 64)])


@pytest.mark.parametrize("seed", SEEDS[:5])
@pytest.mark.parametrize("method", ["gz", "snappy"])
def test_mutated_compressed_snapshot_files(seed: int, method: str) -> None:
    if method == "snappy":
        pytest.importorskip("cramjam")
    rng = random.Random(8000 + seed)
    for _ in range(25):
        tree = fuzz_tree(rng)
        # several snappy blocks, so the framing is exercised too
        stream = tree_io.encode_tree(tree, [(rng.randrange(1 << 40), 4000)
                                            for _ in range(rng.choice([0, 3000]))])
        bad = mutate(tree_io.compress_snapshot(stream, method), rng)
        check_agree(f"snapshot.2.{method}", bad, tree.last_processed_zxid,
                    tree.extended_types_enabled, [rng.randrange(1, 5000)])


def sync_outcomes(blob: bytes, ext: bool) -> tuple[Any, Any, Any]:
    """A SNAP stream through each twin's loader, and through the old path."""
    def new(loader: Any) -> Any:
        return outcome(lambda: tree_io.tree_from_sync_stream(
            blob, 9, extended_types_enabled=ext, loader=loader))

    def old() -> tuple[DataTree, Any]:
        snap = snapshot.decode_sync_body(blob)
        return tree_io.tree_from_snapshot(snap, 9, extended_types_enabled=ext), snap.sessions

    return new(LOADERS["pure"]), new(LOADERS["compiled"]), outcome(old)


@pytest.mark.parametrize("seed", SEEDS[:6])
def test_mutated_sync_streams(seed: int) -> None:
    """A SNAP stream: decode_sync_snapshot (the loader) against the old path, both twins."""
    rng = random.Random(9000 + seed)
    for _ in range(40):
        tree = fuzz_tree(rng)
        bad = mutate(snapshot.encode_sync_snapshot(tree, [(0x55, 4000)]), rng)
        by_pure, by_compiled, want = sync_outcomes(bad, tree.extended_types_enabled)
        assert by_pure == by_compiled
        assert want[0] == by_pure[0]
        if want[0] == "ok":
            assert want == by_pure
