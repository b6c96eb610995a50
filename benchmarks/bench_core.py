"""pytest-benchmark of the core kernels at server size, in both builds.

Each benchmark runs one server-sized operation (10k frames or replies), on the compiled core
and on the pure twin, and asserts its result. The compiled/pure ratios go in
benchmarks/RESULTS-core.md with the command that produced them:

    pytest benchmarks/bench_core.py --benchmark-only --benchmark-group-by=group

CI runs this file with ``--benchmark-disable`` (each body once, as a test).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from zkfast import _core_py
from zkfast.core.datatree import OPEN_ACL_UNSAFE, DataTree, ZNode
from zkfast.storage import snapshot, tree_io
from zkfast.wire import jute

_compiled: ModuleType | None
try:
    _compiled = importlib.import_module("zkfast._core")
except ImportError:  # pragma: no cover - the compiled core is not built
    _compiled = None

N = 10_000
FRAME_BYTES_MAX = 0xFFFFF
IMPLS = [
    pytest.param(
        _compiled,
        id="compiled",
        marks=pytest.mark.skipif(_compiled is None, reason="compiled core not built"),
    ),
    pytest.param(_core_py, id="pure"),
]
STAT = (0x100000003, 0x1000004D2, 1700000000000, 1700000123456, 12, 4, 0, 0, 100, 2, 0x100000007)
ACL_OPEN = [(31, ("world", "anyone"))]


@pytest.fixture(params=IMPLS)
def core(request: pytest.FixtureRequest) -> ModuleType:
    return request.param  # type: ignore[no-any-return]


def request_frame(xid: int, op: int, body: tuple[Any, ...]) -> bytes:
    out = bytearray(jute.encode(jute.REQUEST_HEADER, (xid, op)))
    _core_py.encode_record(jute.REQUESTS[op], body, out)
    return bytes(out)


def mixed_requests() -> list[bytes]:
    """10k requests as a client mix sends them: getData, setData and create, in turn."""
    frames = []
    for i in range(N):
        path = f"/app/service/member-{i:06d}"
        kind = i % 3
        if kind == 0:
            frames.append(request_frame(i + 1, 4, (path, True)))
        elif kind == 1:
            frames.append(request_frame(i + 1, 5, (path, b"v" * 100, -1)))
        else:
            frames.append(request_frame(i + 1, 1, (path, b"payload" * 8, ACL_OPEN, 0)))
    return frames


def run(benchmark: Any, fn: Callable[[], Any]) -> Any:
    return benchmark.pedantic(fn, rounds=15, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="split 10k frames")
def test_split_10k_frames(benchmark: Any, core: ModuleType) -> None:
    frames = mixed_requests()
    stream = b"".join(len(f).to_bytes(4, "big") + f for f in frames)

    got, pos = run(benchmark, lambda: core.split_frames(stream, 0, FRAME_BYTES_MAX))
    assert pos == len(stream)
    assert got == frames


@pytest.mark.benchmark(group="decode 10k requests")
def test_decode_10k_requests(benchmark: Any, core: ModuleType) -> None:
    frames = mixed_requests()
    requests = jute.REQUESTS
    header = core.decode_request_header
    decode = core.decode_record

    def decode_all() -> list[tuple[int, int, tuple[Any, ...]]]:
        out = []
        for frame in frames:
            xid, op = header(frame)
            record, _ = decode(requests[op], frame, 8)
            out.append((xid, op, record))
        return out

    got = run(benchmark, decode_all)
    assert len(got) == N
    assert got[0] == (1, 4, ("/app/service/member-000000", True))
    assert got[1] == (2, 5, ("/app/service/member-000001", b"v" * 100, -1))
    assert got[2] == (3, 1, ("/app/service/member-000002", b"payload" * 8, ACL_OPEN, 0))
    assert sum(1 for _, op, _ in got if op == 5) == N // 3


@pytest.mark.benchmark(group="encode 10k getData replies")
def test_encode_10k_getdata_replies(benchmark: Any, core: ModuleType) -> None:
    data = b"d" * 100
    layout = jute.GET_DATA_RESPONSE
    reply = core.encode_reply_frame

    def encode_all() -> list[bytes]:
        return [reply(xid, 0x100000007, 0, layout, (data, STAT)) for xid in range(1, N + 1)]

    got = run(benchmark, encode_all)
    assert len(got) == N
    assert all(len(f) == 4 + 16 + 4 + 100 + 68 for f in got)
    assert _core_py.decode_record(jute.REPLY_HEADER + layout, got[-1], 4) == (
        (N, 0x100000007, 0, data, STAT),
        len(got[-1]),
    )


@pytest.mark.benchmark(group="encode 10k stats")
def test_encode_10k_stats(benchmark: Any, core: ModuleType) -> None:
    encode_stat = core.encode_stat

    def encode_all() -> bytearray:
        out = bytearray()
        for _ in range(N):
            encode_stat(STAT, out)
        return out

    got = run(benchmark, encode_all)
    assert len(got) == N * 68
    assert bytes(got[-68:]) == jute.encode(jute.STAT, STAT)


@pytest.mark.benchmark(group="settle 10k proposals' acks")
@pytest.mark.parametrize("voters", [1, 3, 5, 7])
def test_settle_acks(benchmark: Any, core: ModuleType, voters: int) -> None:
    """The leader's ack path: after each ACK, does the proposal hold a quorum yet?

    Acks arrive from the leader (sid 1) and then its followers in sid order; an observer's
    (sid 99) ack is ignored, as SyncedLearnerTracker does. One round settles 10k proposals.
    """
    sids = list(range(1, voters + 1))
    args = ({s: 0 for s in sids}, {s: 1 for s in sids}, {0: voters // 2}, 1)
    order = [1, 99, *sids[1:]]
    count_quorum = core.count_quorum

    def settle_all() -> tuple[int, int]:
        committed = checks = 0
        for _ in range(N):
            acked: set[int] = set()
            for sid in order:
                acked.add(sid)
                checks += 1
                if count_quorum(acked, *args):
                    committed += 1
                    break
        return committed, checks

    committed, checks = run(benchmark, settle_all)
    assert committed == N
    # The leader's ack, the observer's, then followers until more than half: voters//2 + 2.
    assert checks == N * (voters // 2 + 2 if voters > 1 else 1)


@pytest.mark.benchmark(group="order 10k votes")
def test_order_10k_votes(benchmark: Any, core: ModuleType) -> None:
    """One election round's worth of totalOrderPredicate calls: keep the best of 10k votes."""
    votes = [(sid % 7 + 1, 0x300000000 + (sid * 7919) % 5000, 3) for sid in range(N)]
    vote_greater = core.vote_greater

    def best_vote() -> tuple[int, int, int]:
        best = (0, -1, 0)
        for sid, zxid, epoch in votes:
            if vote_greater(sid, zxid, epoch, best[0], best[1], best[2], 1):
                best = (sid, zxid, epoch)
        return best

    best = run(benchmark, best_vote)
    top = max(votes, key=lambda v: (v[2], v[1], v[0]))
    assert best == top


def bench_tree(leaves: int, fanout: int = 1000) -> DataTree:
    """A tree as a create load leaves it: /bench/gNNNN/nNNNNNNN, 100-byte values, one ACL
    list per node (equal lists, distinct objects, as decoded from each create)."""
    def nodes() -> Any:
        yield "/", ZNode(b"", OPEN_ACL_UNSAFE)
        yield "/zookeeper", ZNode(b"", OPEN_ACL_UNSAFE)
        yield "/zookeeper/quota", ZNode(b"", OPEN_ACL_UNSAFE)
        yield "/bench", ZNode(b"", list(ACL_OPEN), 1, 1)
        z = 1
        for g in range((leaves + fanout - 1) // fanout):
            z += 1
            yield f"/bench/g{g:04d}", ZNode(b"", list(ACL_OPEN), z, z)
            for i in range(g * fanout, min(leaves, (g + 1) * fanout)):
                z += 1
                yield (f"/bench/g{g:04d}/n{i:07d}",
                       ZNode(b"v" * 100, list(ACL_OPEN), z, z, 1_700_000_000_000 + z,
                             1_700_000_000_000 + z, 0, 0, 0, 0, z))

    return DataTree.from_nodes(nodes(), last_processed_zxid=leaves + 2)


@pytest.mark.benchmark(group="digest 10k znodes")
def test_digest_10k_znodes(benchmark: Any, core: ModuleType) -> None:
    """The tree digest's per-node CRC, as 10k setData/create applies compute it."""
    tree = bench_tree(N)
    items = [(p, n) for p, n in tree.nodes.items() if p.startswith("/bench/g")][:N]
    node_digest = core.node_digest

    def digest_all() -> int:
        total = 0
        for path, node in items:
            total += node_digest(path, node)
        return total

    got = run(benchmark, digest_all)
    assert got == sum(_core_py.node_digest(p, n) for p, n in items)


@pytest.mark.benchmark(group="serialize a 100k-znode tree")
def test_serialize_100k_tree(benchmark: Any, core: ModuleType) -> None:
    """A snapshot's node records: walk, ACL ids and encoding of 100k znodes."""
    tree = bench_tree(100_000)

    def serialize() -> tuple[bytearray, list[Any]]:
        out = bytearray()
        acls = core.encode_snapshot_nodes(tree.nodes, OPEN_ACL_UNSAFE, out)
        return out, acls

    out, acls = benchmark.pedantic(serialize, rounds=5, iterations=1, warmup_rounds=1)
    assert acls == [ACL_OPEN]
    raw = snapshot.assemble_snapshot([], acls, out, None)
    assert raw == snapshot.encode_snapshot([], tree_io.tree_to_nodes(tree), None)


def create_load_tree(children: int) -> DataTree:
    """The tree a create load leaves: ``children`` znodes under one parent, named as the load
    generator names them (8 sessions interleaved: s000-0, s001-0, ..., s007-0, s000-1, ...),
    so creation order is not name order; 128-byte values, one ACL list object per node."""
    def nodes() -> Any:
        yield "/", ZNode(b"", OPEN_ACL_UNSAFE)
        yield "/zookeeper", ZNode(b"", OPEN_ACL_UNSAFE)
        yield "/zookeeper/quota", ZNode(b"", OPEN_ACL_UNSAFE)
        yield "/zkload", ZNode(b"", list(ACL_OPEN), 1, 1)
        yield "/zkload/create", ZNode(b"", list(ACL_OPEN), 2, 2)
        for i in range(children):
            z = 3 + i
            yield (f"/zkload/create/s{i % 8:03d}-{i // 8}",
                   ZNode(b"v" * 128, list(ACL_OPEN), z, z, 1_700_000_000_000 + z,
                         1_700_000_000_000 + z, 0, 0, 0, 0, z))

    return DataTree.from_nodes(nodes(), last_processed_zxid=children + 2)


@pytest.mark.benchmark(group="snapshot of 100k creates under one parent")
def test_snapshot_create_load_tree(benchmark: Any, core: ModuleType) -> None:
    """The forked writer's work during a create load: node records of the whole tree, then
    the file bytes (sessions, ACLs, seals, digest) as ``tree_io.encode_tree`` assembles them."""
    tree = create_load_tree(100_000)

    def write() -> bytes:
        records = bytearray()
        acls = core.encode_snapshot_nodes(tree.nodes, OPEN_ACL_UNSAFE, records)
        digest = (tree.last_processed_zxid, 2, tree.digest())
        return snapshot.assemble_snapshot([(1, 30000)] * 8, acls, records, digest)

    raw = benchmark.pedantic(write, rounds=5, iterations=1, warmup_rounds=1)
    assert raw == tree_io.encode_tree(tree, [(1, 30000)] * 8)
    assert len(snapshot.decode_snapshot(raw).nodes) == len(tree.nodes)


@pytest.mark.benchmark(group="load a 100k-znode snapshot")
def test_load_100k_snapshot(benchmark: Any, core: ModuleType) -> None:
    """Restore's kernel: a 100k-znode snapshot stream decoded straight into a tree
    (``SnapshotLoader``: records, ACL ids, parent links, digests; then the tree's indexes)."""
    tree = bench_tree(100_000)
    raw = tree_io.encode_tree(tree, [(1, 30000)])

    def load() -> DataTree:
        return tree_io.tree_from_stream(raw, tree.last_processed_zxid,
                                        loader=core.SnapshotLoader)[0]

    got = benchmark.pedantic(load, rounds=5, iterations=1, warmup_rounds=1)
    assert got.digest() == tree.digest() and len(got.nodes) == len(tree.nodes)
    assert tree_io.encode_tree(got, [(1, 30000)]) == raw


@pytest.mark.benchmark(group="snapshot stream of a 100k-znode tree")
def test_encode_100k_snapshot_stream(benchmark: Any, core: ModuleType) -> None:
    """The start-up snapshot's encode: the whole file stream in one bytes object
    (``encode_snapshot``: head, node records, seals, digest), as ``encode_tree`` calls it."""
    tree = bench_tree(100_000)
    digest = (tree.last_processed_zxid, 2, tree.digest())

    def encode() -> bytes:
        return core.encode_snapshot(  # type: ignore[no-any-return]
            tree.nodes, OPEN_ACL_UNSAFE, lambda acls: snapshot.snapshot_head([], acls),
            lambda check: snapshot.snapshot_tail(check, digest),
            tree.approximate_data_size + 76 * len(tree.nodes))

    raw = benchmark.pedantic(encode, rounds=5, iterations=1, warmup_rounds=1)
    assert raw == snapshot.encode_snapshot([], tree_io.tree_to_nodes(tree), digest)
