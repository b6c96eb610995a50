"""Fuzz the decoders: hostile bytes give a decoded record or a ProtocolError, nothing else.

Valid client frames are built for every request layout in ``wire.jute.REQUESTS`` (and replies
and txns for the other tables), then mutated the ways a broken or malicious peer would:
flipped bytes, lying lengths and counts, truncation, insertion, splices of two frames. Every
decoder (split_frames, decode_request_header, decode_record with the right and the wrong
layout) runs on both implementations; whatever a decoder returns must re-encode and decode
to itself, and both twins must agree. The mutations come from a seeded ``random.Random``, so a
failure names its seed and replays.

The quorum port gets the same treatment: a leader's stream around a SNAP (packets, the
snapshot stream, packets) is mutated and fed to ``QuorumStreamSplitter`` whole and in random
pieces: both give the same items (or both a ProtocolError), the items are exactly the bytes
consumed, and each decodes or fails with its decoder's own error; the SNAP stream decoder and
every packet body decoder see mutated and random bytes.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zkfast import _core_py
from zkfast._impl import ProtocolError
from zkfast.core.datatree import DataTree
from zkfast.storage.snapshot import SnapshotCorrupt, decode_sync_snapshot, encode_sync_snapshot
from zkfast.wire import jute
from zkfast.wire.peer_codec import (
    PacketType,
    QuorumPacket,
    QuorumStreamSplitter,
    decode_config_body,
    decode_inform_and_activate,
    decode_int_body,
    decode_learner_info,
    decode_long_body,
    decode_quorum_packet,
    decode_request_body,
    decode_revalidate_reply,
    decode_revalidate_request,
    decode_session_timeouts,
    encode_quorum_packet,
)
from zkfast.wire.txn_codec import decode_txn, encode_txn

_compiled: ModuleType | None
try:
    _compiled = importlib.import_module("zkfast._core")
except ImportError:  # pragma: no cover - the compiled core is not built
    _compiled = None

IMPLS = [
    pytest.param(_core_py, id="pure"),
    pytest.param(
        _compiled,
        id="compiled",
        marks=pytest.mark.skipif(_compiled is None, reason="compiled core not built"),
    ),
]

T_INT, T_LONG, T_BOOL, T_USTRING, T_BUFFER, T_VECTOR, T_RECORD, T_BYTE = range(1, 9)
FRAME_BYTES_MAX = 0xFFFFF
PATHS = ["/", "/zookeeper", "/a/b/c", "/é/ü", "/\u4e2d\u6587", "", "/x" * 30]
INTERESTING_INTS = [0, 1, -1, -2, 3, 0x7F, 0x80, 0xFF, 0x7FFFFFFF, -(2**31), 0x10000, 4096]

ALL_LAYOUTS: list[tuple[str, Any]] = (
    [(f"request {op}", layout) for op, layout in sorted(jute.REQUESTS.items())]
    + [(f"response {op}", layout) for op, layout in sorted(jute.RESPONSES.items())]
    + [(f"txn {t}", layout) for t, layout in sorted(jute.TXNS.items())]
    + [
        ("connect request", jute.CONNECT_REQUEST),
        ("connect response", jute.CONNECT_RESPONSE),
        ("reply header", jute.REPLY_HEADER),
        ("watcher event", jute.WATCHER_EVENT),
        ("auth packet", jute.AUTH_PACKET),
        ("multi header", jute.MULTI_HEADER),
        ("txn header", jute.TXN_HEADER),
        ("stat persisted", jute.STAT_PERSISTED),
    ]
)


@pytest.fixture(params=IMPLS)
def core(request: pytest.FixtureRequest) -> ModuleType:
    return request.param  # type: ignore[no-any-return]


# ----------------------------------------------------------------------------- valid frames


def value_for(spec: tuple[str, int, Any], rng: random.Random) -> Any:
    _, code, sub = spec
    if code == T_INT:
        return rng.choice([0, 1, -1, 17, 2**31 - 1, -(2**31), rng.randrange(-(2**31), 2**31)])
    if code == T_LONG:
        return rng.choice([0, -1, 0x100000003, 2**63 - 1, rng.randrange(-(2**63), 2**63)])
    if code == T_BOOL:
        return rng.random() < 0.5
    if code == T_BYTE:
        return rng.randrange(-128, 128)
    if code == T_USTRING:
        return None if rng.random() < 0.1 else rng.choice(PATHS)
    if code == T_BUFFER:
        return None if rng.random() < 0.1 else rng.randbytes(rng.choice([0, 1, 5, 16, 40]))
    if code == T_VECTOR:
        if rng.random() < 0.1:
            return None
        return [value_for(sub, rng) for _ in range(rng.randrange(4))]
    return tuple(value_for(s, rng) for s in sub)


def request_frames(rng: random.Random) -> Iterator[tuple[int, bytes]]:
    """One valid request frame (without its length prefix) per opcode, with random values."""
    for op, layout in sorted(jute.REQUESTS.items()):
        values = tuple(value_for(spec, rng) for spec in layout)
        out = bytearray(jute.encode(jute.REQUEST_HEADER, (rng.randrange(1, 2**31), op)))
        _core_py.encode_record(layout, values, out)
        yield op, bytes(out)


def mutate(frame: bytes, rng: random.Random, other: bytes) -> bytes:
    raw = bytearray(frame)
    for _ in range(rng.randrange(1, 4)):
        kind = rng.randrange(7)
        if kind == 0 and raw:
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        elif kind == 1 and raw:
            raw[rng.randrange(len(raw))] = rng.choice([0x00, 0xFF, 0x7F, 0x80])
        elif kind == 2 and raw:
            del raw[rng.randrange(len(raw)) :]
        elif kind == 3:
            i = rng.randrange(len(raw) + 1)
            raw[i:i] = rng.randbytes(rng.randrange(1, 6))
        elif kind == 4 and len(raw) >= 4:
            i = rng.randrange(len(raw) - 3)
            v = rng.choice([*INTERESTING_INTS, len(raw), len(raw) - i, len(raw) - i - 3])
            raw[i : i + 4] = (v & 0xFFFFFFFF).to_bytes(4, "big")
        elif kind == 5 and raw:
            i = rng.randrange(len(raw))
            del raw[i : i + rng.randrange(1, 9)]
        elif kind == 6:
            cut = rng.randrange(len(raw) + 1)
            raw = raw[:cut] + other[rng.randrange(len(other) + 1) :]
    return bytes(raw)


# ----------------------------------------------------------------------------- checks


def decode_or_protocol_error(core: ModuleType, layout: Any, buf: bytes, offset: int) -> Any:
    """Run one decode; only a record or the core's ProtocolError may come out."""
    try:
        values, pos = core.decode_record(layout, buf, offset)
    except core.ProtocolError as exc:
        e: Any = exc
        assert issubclass(type(e), ValueError)
        assert isinstance(e.field, str) and e.field
        assert isinstance(e.offset, int) and offset <= e.offset <= len(buf)
        assert isinstance(e.expected, str) and isinstance(e.found, str)
        return ("ProtocolError", e.field, e.offset, e.expected, e.found)
    assert offset <= pos <= len(buf)
    # What was decoded is a value the encoder takes, and it decodes to itself again.
    again = bytearray()
    core.encode_record(layout, values, again)
    assert core.decode_record(layout, bytes(again)) == (values, len(again))
    return ("ok", values, pos)


def check_frame(core: ModuleType, frame: bytes) -> Any:
    """Everything the server does with one request frame, on hostile bytes."""
    try:
        xid, op = core.decode_request_header(frame)
    except core.ProtocolError as e:
        assert len(frame) < 8 and e.field in ("xid", "type")
        return ("short", e.field, e.offset, e.expected, e.found)
    layout = jute.REQUESTS.get(op)
    if layout is None:
        return ("unknown op", xid, op)  # the codec answers these; no decoder runs
    return (xid, op, decode_or_protocol_error(core, layout, frame, 8))


SEEDS = list(range(12))


@pytest.mark.parametrize("seed", SEEDS)
def test_mutated_request_frames(core: ModuleType, seed: int) -> None:
    rng = random.Random(seed)
    frames = [f for _, f in request_frames(rng)]
    for _ in range(10):
        for frame in frames:
            bad = mutate(frame, rng, rng.choice(frames))
            result = check_frame(core, bad)
            if _compiled is not None:
                assert result == check_frame(_core_py if core is _compiled else _compiled, bad), (
                    seed,
                    bad.hex(),
                )


@pytest.mark.parametrize("seed", SEEDS[:4])
def test_every_layout_on_mutated_and_foreign_bytes(core: ModuleType, seed: int) -> None:
    """Decode every known layout over other layouts' encodings, mutated or not."""
    rng = random.Random(1000 + seed)
    samples = []
    for _, layout in ALL_LAYOUTS:
        values = tuple(value_for(spec, rng) for spec in layout)
        samples.append(jute.encode(layout, values))
    for _, layout in ALL_LAYOUTS:
        for buf in rng.sample(samples, 8):
            decode_or_protocol_error(core, layout, buf, 0)
            bad = mutate(buf, rng, rng.choice(samples))
            decode_or_protocol_error(core, layout, bad, rng.randrange(len(bad) + 1))


@pytest.mark.parametrize(("name", "layout"), ALL_LAYOUTS, ids=[n for n, _ in ALL_LAYOUTS])
def test_every_strict_prefix_is_a_protocol_error(core: ModuleType, name: str, layout: Any) -> None:
    """A jute record has no optional fields: any prefix of a valid encoding is short."""
    rng = random.Random(name)
    for _ in range(3):
        values = tuple(value_for(spec, rng) for spec in layout)
        raw = jute.encode(layout, values)
        assert core.decode_record(layout, raw)[1] == len(raw)
        for k in range(len(raw)):
            with pytest.raises(core.ProtocolError):
                core.decode_record(layout, raw[:k])


@pytest.mark.parametrize("seed", SEEDS[:6])
def test_split_frames_on_mutated_streams(core: ModuleType, seed: int) -> None:
    rng = random.Random(2000 + seed)
    frames = [f for _, f in request_frames(rng)]
    stream = b"".join(len(f).to_bytes(4, "big") + f for f in frames)
    for _ in range(40):
        bad = mutate(stream, rng, stream)
        buf = bytearray()
        pos = last = 0
        for cut in sorted(rng.sample(range(len(bad) + 1), min(5, len(bad) + 1))) + [len(bad)]:
            buf += bad[last:cut]  # one socket read
            last = cut
            try:
                got, pos = core.split_frames(buf, pos, rng.choice([64, 4096, FRAME_BYTES_MAX]))
            except core.ProtocolError as e:
                assert e.field == "frame.length" and pos <= e.offset <= len(buf) - 4
                break  # the runtime closes the connection here
            assert pos <= len(buf)
            for frame in got:
                check_frame(core, frame)


def test_valid_frames_decode_exactly(core: ModuleType) -> None:
    rng = random.Random(7)
    for op, frame in request_frames(rng):
        xid, got_op = core.decode_request_header(frame)
        assert got_op == op
        values, pos = core.decode_record(jute.REQUESTS[op], frame, 8)
        assert pos == len(frame)
        out = bytearray(jute.encode(jute.REQUEST_HEADER, (xid, op)))
        core.encode_record(jute.REQUESTS[op], values, out)
        assert bytes(out) == frame


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=80), which=st.integers(0, len(ALL_LAYOUTS) - 1))
def test_random_bytes_every_decoder(core: ModuleType, data: bytes, which: int) -> None:
    decode_or_protocol_error(core, ALL_LAYOUTS[which][1], data, 0)
    check_frame(core, data)
    try:
        core.split_frames(data, 0, 64)
    except core.ProtocolError as e:
        assert e.field == "frame.length"


# ----------------------------------------------------------------------------- quorum stream


def sync_stream(rng: random.Random) -> bytes:
    """A leader's stream around a SNAP: packets, the snapshot stream, more packets."""
    tree = DataTree()
    for z in range(1, rng.randrange(2, 8)):
        acl = rng.choice([[(31, ("world", "anyone"))], [(1, ("digest", "u:x")), (31, ("ip", "a"))]])
        txn = encode_txn((5, z, z, 100, 1), (f"/n{z}", rng.randbytes(rng.randrange(4)), acl,
                                             rng.random() < 0.3, z), None)
        header, record, _ = decode_txn(txn)
        tree.apply_txn(header, record)
    sessions = [(rng.randrange(1, 2**40), rng.randrange(10**5)) for _ in range(rng.randrange(3))]
    pkt = [QuorumPacket(PacketType.LEADERINFO, 1 << 32, b"\0\1\0\0"),
           QuorumPacket(PacketType.SNAP, 7),
           QuorumPacket(PacketType.PROPOSAL, 8, rng.randbytes(20), (("digest", "u:x"),)),
           QuorumPacket(PacketType.NEWLEADER, 1 << 32, b"cfg")]
    return (encode_quorum_packet(pkt[0]) + encode_quorum_packet(pkt[1])
            + encode_sync_snapshot(tree, sessions) + encode_quorum_packet(pkt[2])
            + encode_quorum_packet(pkt[3]))


def split_all(data: bytes, cuts: list[int], limit: int) -> tuple[list[bytes], int] | None:
    """Feed ``data`` in pieces ending at ``cuts``: the items and the bytes left, or None when
    the splitter raised its ProtocolError (nothing else may come out)."""
    sp = QuorumStreamSplitter(limit)
    items: list[bytes] = []
    last = 0
    try:
        for cut in [*cuts, len(data)]:
            items += sp.feed(data[last:cut])
            last = cut
    except ProtocolError as e:
        assert isinstance(e.field, str) and e.field
        return None
    return items, sp.buffered_bytes


def check_items(items: list[bytes]) -> None:
    """Each item decodes as what it is, or fails with the decoder's own error."""
    after_snap = False
    for item in items:
        if after_snap:
            after_snap = False
            try:
                decode_sync_snapshot(item)
            except SnapshotCorrupt:
                pass
            continue
        try:
            p = decode_quorum_packet(item)
        except ProtocolError:
            continue
        after_snap = p.type == PacketType.SNAP


@pytest.mark.parametrize("seed", SEEDS)
def test_quorum_stream_splitter_on_mutated_streams(seed: int) -> None:
    rng = random.Random(3000 + seed)
    for _ in range(30):
        stream = sync_stream(rng)
        bad = mutate(stream, rng, sync_stream(rng))
        limit = rng.choice([64, 4096, 1 << 20])
        whole = split_all(bad, [], limit)
        cuts = sorted(rng.sample(range(len(bad) + 1), min(6, len(bad) + 1)))
        pieces = split_all(bad, cuts, limit)
        # The chunking never changes the outcome.
        assert whole == pieces, seed
        if whole is not None:
            items, left = whole
            assert b"".join(items) == bad[:len(bad) - left]
            check_items(items)
    good = sync_stream(rng)
    assert split_all(good, list(range(0, len(good), 3)), 1 << 20) == split_all(good, [], 1 << 20)


@pytest.mark.parametrize("seed", SEEDS[:6])
def test_sync_snapshot_decoder_on_mutated_bytes(seed: int) -> None:
    rng = random.Random(4000 + seed)
    tree = DataTree()
    blob = encode_sync_snapshot(tree, [(1, 2)])
    for _ in range(60):
        bad = mutate(blob, rng, blob)
        try:
            got, sessions = decode_sync_snapshot(bad, zxid=3)
        except SnapshotCorrupt:
            continue
        assert got.last_processed_zxid == 3
        assert encode_sync_snapshot(got, sessions)  # what decodes re-encodes


BODY_DECODERS: list[Any] = [
    decode_request_body, decode_session_timeouts, decode_revalidate_request,
    decode_revalidate_reply, decode_inform_and_activate, decode_config_body,
    lambda d: decode_long_body(d, "x"), lambda d: decode_int_body(d, "x"),
    decode_learner_info,
]


@settings(max_examples=300, deadline=None)
@given(data=st.one_of(st.none(), st.binary(max_size=40)),
       which=st.integers(0, len(BODY_DECODERS) - 1))
def test_random_bytes_every_quorum_body_decoder(data: bytes | None, which: int) -> None:
    try:
        BODY_DECODERS[which](data)
    except ProtocolError as e:
        assert isinstance(e.field, str) and e.field
