"""Hypothesis: the compiled core and its pure twin are the same function.

For random layouts and values each twin decodes what the other encodes; on random or mutated
bytes both return the same record or raise ProtocolErrors with the same field, offset,
expected and found; split_frames agrees on random streams cut at random points; the fast
paths and zxid arithmetic agree, errors included.

The default run keeps example counts moderate; each property has a ``slow`` twin with many
more examples (``pytest -m slow tests/property/test_core_twins.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zkfast import _core_py as pure
from zkfast.wire import jute

compiled = pytest.importorskip("zkfast._core", reason="compiled core not built")

FAST = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
SLOW = settings(
    max_examples=4000,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)


@pytest.fixture(autouse=True)
def _slow_only_when_asked(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("slow") and "slow" not in (
        request.config.getoption("markexpr") or ""
    ):
        pytest.skip("long property run: select it with -m slow")


def twin_tests(
    prop: Callable[..., None], *strategies: Any, fast_examples: int | None = None
) -> tuple[Any, Any]:
    """The property as a default test and as a ``slow`` test with more examples."""
    fast_settings = FAST if fast_examples is None else settings(FAST, max_examples=fast_examples)
    fast = fast_settings(given(*strategies)(prop))  # type: ignore[no-untyped-call]
    slow = pytest.mark.slow(SLOW(given(*strategies)(prop)))  # type: ignore[no-untyped-call]
    return fast, slow


# ----------------------------------------------------------------------------- strategies

T_INT, T_LONG, T_BOOL, T_USTRING, T_BUFFER, T_VECTOR, T_RECORD, T_BYTE = range(1, 9)
NAMES = st.sampled_from(["a", "path", "data", "stat", "acl", "x"])
LEAF_CODES = st.sampled_from([T_INT, T_LONG, T_BOOL, T_USTRING, T_BUFFER, T_BYTE])

leaf_spec = st.tuples(NAMES, LEAF_CODES, st.none())


def _extender(record_min: int) -> Callable[[st.SearchStrategy[Any]], st.SearchStrategy[Any]]:
    def extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        vector = st.tuples(NAMES, st.just(T_VECTOR), children)
        record = st.tuples(
            NAMES, st.just(T_RECORD), st.lists(children, min_size=record_min, max_size=4).map(tuple)
        )
        return vector | record

    return extend


# Nested records have at least one field: a vector of empty records takes no bytes per
# element, so "a count above the bytes left is a lie" would reject its honest encoding.
# Real layouts never nest empty records; ``odd_layouts`` keeps them for the hostile-bytes
# properties, where the twins must still agree.
field_spec = st.recursive(leaf_spec, _extender(1), max_leaves=8)
layouts = st.lists(field_spec, max_size=5).map(tuple)
odd_layouts = st.lists(st.recursive(leaf_spec, _extender(0), max_leaves=8), max_size=5).map(tuple)
real_layouts = st.sampled_from(
    [
        jute.CREATE_REQUEST,
        jute.SET_DATA_REQUEST,
        jute.SET_WATCHES2,
        jute.GET_DATA_RESPONSE,
        jute.GET_ACL_RESPONSE,
        jute.MULTI_TXN,
        jute.WHO_AM_I_RESPONSE,
        jute.CONNECT_REQUEST,
        jute.REPLY_HEADER + jute.GET_CHILDREN2_RESPONSE,
        jute.TXN_HEADER + jute.CREATE_TXN,
        # The compiled writer's Stat fast path triggers on its own STAT_LAYOUT object.
        (("data", T_BUFFER, None), ("stat", T_RECORD, compiled.STAT_LAYOUT)),
        (("stat", T_RECORD, pure.STAT_LAYOUT), ("x", T_INT, None)),
    ]
)
any_layout = layouts | real_layouts

any_text = st.text(alphabet=st.characters() | st.integers(0xD800, 0xDFFF).map(chr), max_size=12)
plain_text = st.text(alphabet=st.characters(codec="utf-8", max_codepoint=0xFFFF), max_size=12)


def values_for(spec: tuple[str, int, Any], text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    _, code, sub = spec
    if code == T_INT:
        return st.integers(-(2**31), 2**31 - 1)
    if code == T_LONG:
        return st.integers(-(2**63), 2**63 - 1)
    if code == T_BOOL:
        return st.booleans()
    if code == T_BYTE:
        return st.integers(-128, 127)
    if code == T_USTRING:
        return st.none() | text
    if code == T_BUFFER:
        return st.none() | st.binary(max_size=16)
    if code == T_VECTOR:
        return st.none() | st.lists(values_for(sub, text), max_size=3)
    return record_values(sub, text)


def record_values(layout: tuple[Any, ...], text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.tuples(*(values_for(spec, text) for spec in layout))


@st.composite
def layout_and_values(draw: st.DrawFn, text: st.SearchStrategy[str] = any_text) -> Any:
    layout = draw(any_layout)
    return layout, draw(record_values(layout, text))


def outcome(fn: Callable[..., Any], *args: Any) -> Any:
    """A comparable result: the value, or the ProtocolError's attributes."""
    try:
        return ("ok", fn(*args))
    except (pure.ProtocolError, compiled.ProtocolError) as e:
        return ("ProtocolError", e.field, e.offset, e.expected, e.found)


def error_outcome(fn: Callable[..., Any], *args: Any) -> Any:
    """Like ``outcome`` for encoders: the exception class and (range/arity errors) message."""
    try:
        return ("ok", fn(*args))
    except (OverflowError, ValueError) as e:
        return (type(e).__name__, str(e))
    except TypeError:
        return ("TypeError",)


def encode_with(core: Any, layout: Any, values: Any) -> bytes:
    out = bytearray()
    core.encode_record(layout, values, out)
    return bytes(out)


# ----------------------------------------------------------------------------- round trips


def prop_cross_round_trip(lv: Any) -> None:
    layout, values = lv
    a = encode_with(pure, layout, values)
    b = encode_with(compiled, layout, values)
    assert a == b
    via_compiled = compiled.decode_record(layout, a)
    via_pure = pure.decode_record(layout, b)
    assert via_compiled == via_pure
    assert via_compiled[1] == len(a)


def prop_exact_round_trip(lv: Any) -> None:
    # Without surrogates or characters beyond the BMP a ustring comes back unchanged.
    layout, values = lv
    for enc_core, dec_core in ((pure, compiled), (compiled, pure)):
        raw = encode_with(enc_core, layout, values)
        assert dec_core.decode_record(layout, raw) == (values, len(raw))
        shifted = b"\x00" * 3 + raw + b"\xff"
        assert dec_core.decode_record(layout, shifted, 3, 3 + len(raw)) == (values, 3 + len(raw))


test_cross_round_trip, test_cross_round_trip_slow = twin_tests(
    prop_cross_round_trip, layout_and_values()
)
test_exact_round_trip, test_exact_round_trip_slow = twin_tests(
    prop_exact_round_trip, layout_and_values(plain_text)
)


# ----------------------------------------------------------------------------- hostile bytes


def prop_random_bytes(layout: Any, buf: bytes, offset: int, end: int) -> None:
    assert outcome(pure.decode_record, layout, buf, offset, end) == outcome(
        compiled.decode_record, layout, buf, offset, end
    )


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    layout, values = draw(layout_and_values())
    raw = bytearray(encode_with(pure, layout, values))
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "length"]))
        if kind == "flip" and raw:
            i = draw(st.integers(0, len(raw) - 1))
            raw[i] = draw(st.integers(0, 255))
        elif kind == "cut" and raw:
            del raw[draw(st.integers(0, len(raw) - 1)) :]
        elif kind == "insert":
            i = draw(st.integers(0, len(raw)))
            raw[i:i] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "length" and len(raw) >= 4:
            i = draw(st.integers(0, len(raw) - 4))
            raw[i : i + 4] = draw(
                st.sampled_from([-1, -2, 0, 1, 0x7FFFFFFF, -(2**31), len(raw)])
            ).to_bytes(4, "big", signed=True)
    return layout, bytes(raw)


def prop_mutated_bytes(lb: Any) -> None:
    layout, raw = lb
    for args in ((layout, raw), (layout, bytearray(raw)), (layout, memoryview(raw), 0, -1)):
        assert outcome(pure.decode_record, *args) == outcome(compiled.decode_record, *args)


test_random_bytes, test_random_bytes_slow = twin_tests(
    prop_random_bytes,
    any_layout | odd_layouts,
    st.binary(max_size=64),
    st.integers(0, 70),
    st.integers(-1, 70),
)
test_mutated_bytes, test_mutated_bytes_slow = twin_tests(prop_mutated_bytes, mutated())


# ----------------------------------------------------------------------------- frames


@st.composite
def cut_stream(draw: st.DrawFn) -> Any:
    payloads = draw(st.lists(st.binary(max_size=40), max_size=8))
    stream = b"".join(len(p).to_bytes(4, "big") + p for p in payloads)
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    return payloads, stream, cuts


def prop_split_frames_cut(data: Any) -> None:
    payloads, stream, cuts = data
    got: dict[str, list[bytes]] = {}
    for core in (pure, compiled):
        buf = bytearray()
        pos = 0
        frames: list[bytes] = []
        last = 0
        for cut in [*cuts, len(stream)]:
            buf += stream[last:cut]
            last = cut
            new, pos = core.split_frames(buf, pos, 64)
            frames += new
            if pos > 16:  # the runtime drops consumed bytes now and then
                del buf[:pos]
                pos = 0
        assert pos == len(buf)
        got[core.IMPLEMENTATION] = frames
    assert got["pure"] == got["compiled"] == payloads


def prop_split_frames_garbage(buf: bytes, offset: int, limit: int) -> None:
    assert outcome(pure.split_frames, buf, offset, limit) == outcome(
        compiled.split_frames, buf, offset, limit
    )


test_split_frames_cut, test_split_frames_cut_slow = twin_tests(prop_split_frames_cut, cut_stream())
test_split_frames_garbage, test_split_frames_garbage_slow = twin_tests(
    prop_split_frames_garbage,
    st.binary(max_size=48),
    st.integers(0, 50),
    st.sampled_from([0, 1, 7, 64, 0xFFFFF, 2**31 - 1, 2**40]),
)


# ----------------------------------------------------------------------------- fast paths

wide_int = st.integers(-(2**64), 2**64) | st.sampled_from(
    [2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1]
)


def prop_request_header(frame: bytes) -> None:
    a = outcome(pure.decode_request_header, frame)
    assert a == outcome(compiled.decode_request_header, frame)
    b = outcome(pure.decode_record, jute.REQUEST_HEADER, frame)
    assert a == (b if b[0] != "ok" else ("ok", b[1][0]))


def prop_reply_frame(xid: int, zxid: int, err: int, body: Any) -> None:
    layout, values = body if body is not None else (None, None)
    a = error_outcome(pure.encode_reply_frame, xid, zxid, err, layout, values)
    assert a == error_outcome(compiled.encode_reply_frame, xid, zxid, err, layout, values)
    if a[0] == "ok":
        head = jute.encode(jute.REPLY_HEADER, (xid, zxid, err))
        tail = b"" if layout is None else jute.encode(layout, values)
        assert a[1] == (len(head) + len(tail)).to_bytes(4, "big") + head + tail


def prop_stat(stat: Any) -> None:
    outs = []
    for core in (pure, compiled):
        out = bytearray(b"p")
        outs.append((error_outcome(core.encode_stat, stat, out), bytes(out)))
    assert outs[0] == outs[1]
    walk = error_outcome(pure.encode_record, jute.STAT, stat, bytearray())
    assert outs[0][0][0] == walk[0] and outs[0][0][1:] == walk[1:]


def prop_zxid(epoch: int, counter: int, zxid: int) -> None:
    for fn, args in (
        ("make_zxid", (epoch, counter)),
        ("zxid_epoch", (zxid,)),
        ("zxid_counter", (zxid,)),
    ):
        assert error_outcome(getattr(pure, fn), *args) == error_outcome(
            getattr(compiled, fn), *args
        )


stat_values = st.lists(wide_int | st.integers(-5, 5), min_size=10, max_size=12)
reply_bodies = st.none() | layout_and_values()

test_request_header, test_request_header_slow = twin_tests(
    prop_request_header, st.binary(max_size=12)
)
test_reply_frame, test_reply_frame_slow = twin_tests(
    prop_reply_frame, wide_int, wide_int, wide_int, reply_bodies
)
test_stat, test_stat_slow = twin_tests(prop_stat, stat_values)
test_zxid, test_zxid_slow = twin_tests(
    prop_zxid, wide_int | st.integers(0, 2**32), wide_int | st.integers(0, 2**32), wide_int
)


# ----------------------------------------------------------------------------- encode errors


@st.composite
def bad_values(draw: st.DrawFn) -> Any:
    """A layout with values where one integer is pushed out of range (or made a float/str)."""
    layout, values = draw(layout_and_values(plain_text))
    wild = draw(st.sampled_from([2**31, -(2**31) - 1, 2**63, -(2**63) - 1, 256, -129, 1.5, "7"]))

    def poke(specs: Any, vals: Any) -> Any:
        out = list(vals)
        for i, (_, code, sub) in enumerate(specs):
            if code in (T_INT, T_LONG, T_BYTE) and draw(st.booleans()):
                out[i] = wild
            elif code == T_RECORD:
                out[i] = poke(sub, out[i])
        return tuple(out)

    return layout, poke(layout, values)


def prop_bad_values(lv: Any) -> None:
    layout, values = lv
    results = []
    for core in (pure, compiled):
        out = bytearray(b"keep")
        results.append((error_outcome(core.encode_record, layout, values, out), bytes(out)))
    assert results[0] == results[1]
    if results[0][0][0] != "ok":
        assert results[0][1] == b"keep"


# Drawing a poke decision per field makes these examples slow to generate: fewer by default.
test_bad_values, test_bad_values_slow = twin_tests(prop_bad_values, bad_values(), fast_examples=50)


# ----------------------------------------------------------------------------- votes and quorums

longs = st.integers(-(2**63), 2**63 - 1)
small = st.integers(-3, 3)  # ties are where the order is decided field by field


def prop_vote_greater(new: Any, cur: Any, weight: int) -> None:
    args = (*new, *cur, weight)
    a = error_outcome(pure.vote_greater, *args)
    assert a == error_outcome(compiled.vote_greater, *args)
    if all(-(2**63) <= v < 2**63 for v in args):
        (n_id, n_zxid, n_epoch), (c_id, c_zxid, c_epoch) = new, cur
        oracle = weight != 0 and (n_epoch, n_zxid, n_id) > (c_epoch, c_zxid, c_id)
        assert a == ("ok", oracle)


@st.composite
def verifier_and_acks(draw: st.DrawFn) -> Any:
    """A hierarchical (or, with one weight-1 group, majority) verifier and a set of acks."""
    n_groups = draw(st.integers(1, 4))
    groups: dict[int, dict[int, int]] = {}
    sid = 1
    for gid in range(1, n_groups + 1):
        members = {}
        for _ in range(draw(st.integers(1, 4))):
            members[sid] = draw(st.sampled_from([0, 1, 1, 1, 2, 3]))
            sid += 1
        groups[gid] = members
    if draw(st.booleans()):  # QuorumMaj: one group, every voter weighs 1
        groups = {0: {s: 1 for m in groups.values() for s in m}}
    acks = draw(st.lists(st.integers(1, sid + 2), max_size=2 * sid))  # dups and non-voters
    return groups, acks


def naive_quorum(groups: dict[int, dict[int, int]], acks: list[int]) -> bool:
    """QuorumHierarchical.containsQuorum, spelled out (QuorumMaj when there is one group)."""
    acked = set(acks)
    live_groups = [g for g, members in groups.items() if sum(members.values()) > 0]
    winning = 0
    for members in groups.values():
        total = sum(members.values())
        if sum(w for s, w in members.items() if s in acked) > total // 2:
            winning += 1
    return winning > len(live_groups) // 2


def prop_count_quorum(va: Any) -> None:
    groups, acks = va
    member_group = {s: g for g, members in groups.items() for s in members}
    member_weight = {s: w for members in groups.values() for s, w in members.items()}
    group_half = {g: sum(members.values()) // 2 for g, members in groups.items()}
    live = sum(1 for members in groups.values() if sum(members.values()) > 0)
    args = (member_group, member_weight, group_half, live // 2 + 1)
    a = pure.count_quorum(acks, *args)
    assert a is compiled.count_quorum(acks, *args)
    assert a is compiled.count_quorum(iter(acks), *args)
    assert a == naive_quorum(groups, acks)


test_vote_greater, test_vote_greater_slow = twin_tests(
    prop_vote_greater,
    st.tuples(small | longs, small | longs, small | longs),
    st.tuples(small | longs, small | longs, small | longs),
    st.sampled_from([0, 1, 2, 2**63, -1]),
)
test_count_quorum, test_count_quorum_slow = twin_tests(prop_count_quorum, verifier_and_acks())
