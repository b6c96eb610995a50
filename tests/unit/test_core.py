"""Unit tests of the core primitives, run on both the pure twin and the compiled core.

Every primitive and every error path: frames, jute types, nested names in ProtocolError,
encode range/type checks, the per-request fast paths and zxid arithmetic. The worked hex
examples come from docs/zk-formats.md (produced by Apache ZooKeeper 3.8.0).
"""

from __future__ import annotations

import importlib
import pickle
from types import ModuleType
from typing import Any

import pytest

from zkfast import _core_py
from zkfast.wire import jute

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


@pytest.fixture(params=IMPLS)
def core(request: pytest.FixtureRequest) -> ModuleType:
    return request.param  # type: ignore[no-any-return]


def perr(exc: Any) -> tuple[Any, ...]:
    assert issubclass(type(exc), ValueError)
    return (type(exc).__name__, exc.field, exc.offset, exc.expected, exc.found)


def i32(v: int) -> bytes:
    return v.to_bytes(4, "big", signed=True)


def i64(v: int) -> bytes:
    return v.to_bytes(8, "big", signed=True)


def s(text: str) -> bytes:
    raw = text.encode()
    return i32(len(raw)) + raw


INT = (("v", 1, None),)
LONG = (("v", 2, None),)
BOOL = (("v", 3, None),)
USTR = (("v", 4, None),)
BUF = (("v", 5, None),)
BYTE = (("v", 8, None),)


# ----------------------------------------------------------------------------- identity


def test_implementation_names() -> None:
    assert _core_py.IMPLEMENTATION == "pure"
    if _compiled is not None:
        assert _compiled.IMPLEMENTATION == "compiled"


def test_same_public_api(core: ModuleType) -> None:
    assert sorted(core.__all__) == sorted(_core_py.__all__)
    for name in _core_py.__all__:
        assert hasattr(core, name), name
    for code in (
        "T_INT",
        "T_LONG",
        "T_BOOL",
        "T_USTRING",
        "T_BUFFER",
        "T_VECTOR",
        "T_RECORD",
        "T_BYTE",
        "STAT_BYTES",
        "REPLY_HEADER_BYTES",
    ):
        assert getattr(core, code) == getattr(_core_py, code)


def test_protocol_error_shape(core: ModuleType) -> None:
    e = core.ProtocolError("a.b", 7, "4 bytes of int", "2 bytes left")
    assert issubclass(type(e), ValueError)
    assert (e.field, e.offset, e.expected, e.found) == ("a.b", 7, "4 bytes of int", "2 bytes left")
    assert str(e) == "a.b at offset 7: expected 4 bytes of int, found 2 bytes left"
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is core.ProtocolError and vars(back) == vars(e)


# ----------------------------------------------------------------------------- frames


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_split_frames_whole_and_partial(core: ModuleType, wrap: Any) -> None:
    stream = i32(3) + b"abc" + i32(0) + i32(2) + b"xy" + i32(5) + b"12"
    frames, pos = core.split_frames(wrap(stream), 0, 100)
    assert frames == [b"abc", b"", b"xy"]
    assert all(type(f) is bytes for f in frames)
    assert pos == 4 + 3 + 4 + 4 + 2  # the incomplete last frame stays
    assert core.split_frames(wrap(stream), pos, 100) == ([], pos)


def test_split_frames_header_incomplete_and_offsets(core: ModuleType) -> None:
    assert core.split_frames(b"", 0, 10) == ([], 0)
    assert core.split_frames(b"\x00\x00\x00", 0, 10) == ([], 0)
    buf = b"junk" + i32(1) + b"Z"
    assert core.split_frames(buf, 4, 10) == ([b"Z"], 9)
    assert core.split_frames(buf, 9, 10) == ([], 9)
    assert core.split_frames(buf, 50, 10) == ([], 50)
    with pytest.raises(ValueError):
        core.split_frames(buf, -1, 10)


def test_split_frames_limit_is_inclusive(core: ModuleType) -> None:
    assert core.split_frames(i32(4) + b"abcd", 0, 4) == ([b"abcd"], 8)
    with pytest.raises(core.ProtocolError) as ei:
        core.split_frames(i32(5) + b"abcde", 0, 4)
    assert perr(ei.value)[1:] == ("frame.length", 0, "0..4", "5")


def test_split_frames_bad_length_names_its_offset(core: ModuleType) -> None:
    stream = i32(1) + b"a" + i32(-1) + b"zzzz"
    with pytest.raises(core.ProtocolError) as ei:
        core.split_frames(stream, 0, 1 << 20)
    assert perr(ei.value)[1:] == ("frame.length", 5, "0..1048576", "-1")
    # Checked before anything is allocated: a 2 GiB claim in a 4-byte buffer.
    with pytest.raises(core.ProtocolError) as ei:
        core.split_frames(i32(0x7FFFFFFF), 0, 0xFFFFF)
    assert perr(ei.value)[1:] == ("frame.length", 0, "0..1048575", "2147483647")


def test_split_frames_huge_limit(core: ModuleType) -> None:
    assert core.split_frames(i32(1) + b"q", 0, 1 << 40) == ([b"q"], 5)


# ----------------------------------------------------------------------------- decode primitives


def test_decode_int_long_edges(core: ModuleType) -> None:
    for v in (0, 1, -1, 2**31 - 1, -(2**31)):
        assert core.decode_record(INT, i32(v)) == ((v,), 4)
    for v in (0, -1, 2**63 - 1, -(2**63), 0x100000003):
        assert core.decode_record(LONG, i64(v)) == ((v,), 8)


def test_decode_bool_and_byte(core: ModuleType) -> None:
    assert core.decode_record(BOOL, b"\x00") == ((False,), 1)
    assert core.decode_record(BOOL, b"\x01") == ((True,), 1)
    assert core.decode_record(BOOL, b"\x7f") == ((True,), 1)  # any non-zero byte is true
    v = core.decode_record(BOOL, b"\x02")[0][0]
    assert v is True
    assert core.decode_record(BYTE, b"\xff") == ((-1,), 1)
    assert core.decode_record(BYTE, b"\x80") == ((-128,), 1)
    assert core.decode_record(BYTE, b"\x7f") == ((127,), 1)


def test_decode_ustring(core: ModuleType) -> None:
    assert core.decode_record(USTR, i32(-1)) == ((None,), 4)
    assert core.decode_record(USTR, i32(0)) == (("",), 4)
    assert core.decode_record(USTR, s("/zoo/é")) == (("/zoo/é",), 4 + 7)
    # Invalid UTF-8 decodes with replacement characters, never an error.
    (v,), _ = core.decode_record(USTR, i32(3) + b"a\xffb")
    assert v == "a\ufffdb"
    (v,), _ = core.decode_record(USTR, i32(3) + b"\xed\xa0\x80")  # a CESU-8 lone surrogate
    assert v == b"\xed\xa0\x80".decode("utf-8", "replace")


def test_decode_buffer(core: ModuleType) -> None:
    assert core.decode_record(BUF, i32(-1)) == ((None,), 4)
    assert core.decode_record(BUF, i32(0)) == ((b"",), 4)
    ((v,), pos) = core.decode_record(BUF, bytearray(i32(2) + b"\x00\xff"))
    assert v == b"\x00\xff" and type(v) is bytes and pos == 6


def test_decode_vectors_and_nesting(core: ModuleType) -> None:
    acl = i32(1) + i32(31) + s("world") + s("anyone")
    rec, pos = core.decode_record(jute.SET_ACL_REQUEST, s("/a") + acl + i32(-1))
    assert rec == ("/a", [(31, ("world", "anyone"))], -1)
    assert pos == 6 + len(acl) + 4
    rec, _ = core.decode_record(jute.GET_CHILDREN_RESPONSE, i32(-1))
    assert rec == (None,)
    rec, _ = core.decode_record(jute.GET_CHILDREN_RESPONSE, i32(0))
    assert rec == ([],)
    rec, _ = core.decode_record(jute.GET_CHILDREN_RESPONSE, i32(2) + s("a") + i32(-1))
    assert rec == (["a", None],)


def test_decode_offset_and_end(core: ModuleType) -> None:
    buf = b"\xaa\xbb" + i32(7) + i32(8)
    assert core.decode_record(INT, buf, 2) == ((7,), 6)
    assert core.decode_record(INT + INT, buf, 2, -1) == ((7, 8), 10)
    assert core.decode_record(INT + INT, buf, 2, 999) == ((7, 8), 10)
    with pytest.raises(core.ProtocolError) as ei:
        core.decode_record(INT + INT, buf, 2, 8)  # ``end`` cuts the second int
    assert perr(ei.value)[1:] == ("v", 6, "4 bytes of int", "2 bytes left")
    with pytest.raises(core.ProtocolError) as ei:
        core.decode_record(INT, buf, 20)
    assert perr(ei.value)[1:] == ("v", 20, "4 bytes of int", "0 bytes left")
    with pytest.raises(ValueError):
        core.decode_record(INT, buf, -1)
    assert core.decode_record((), b"", 0) == ((), 0)


def test_decode_memoryview_slice(core: ModuleType) -> None:
    mv = memoryview(b"xx" + s("/p") + b"\x01")[2:]
    assert core.decode_record(jute.PATH_WATCH_REQUEST, mv) == (("/p", True), 7)


# ----------------------------------------------------------------------------- decode errors


@pytest.mark.parametrize(
    ("layout", "buf", "expect"),
    [
        (INT, b"\x00\x00", ("v", 0, "4 bytes of int", "2 bytes left")),
        (LONG, b"\x00" * 7, ("v", 0, "8 bytes of long", "7 bytes left")),
        (BOOL, b"", ("v", 0, "1 bytes of boolean", "0 bytes left")),
        (BYTE, b"", ("v", 0, "1 bytes of byte", "0 bytes left")),
        (USTR, b"\x00", ("v", 0, "4 bytes of length", "1 bytes left")),
        (USTR, i32(-2), ("v.length", 0, "-1..0", "-2")),
        (USTR, i32(5) + b"abcd", ("v.length", 0, "-1..4", "5")),
        (BUF, i32(-(2**31)), ("v.length", 0, "-1..0", "-2147483648")),
        (BUF, i32(2**31 - 1) + b"x", ("v.length", 0, "-1..1", "2147483647")),
        ((("kids", 6, ("k", 4, None)),), i32(3) + b"ab", ("kids.count", 0, "-1..2", "3")),
        ((("kids", 6, ("k", 4, None)),), i32(-7), ("kids.count", 0, "-1..0", "-7")),
        (
            (("kids", 6, ("k", 4, None)),),
            i32(2) + s("a") + i32(9),
            ("kids[1].k.length", 9, "-1..0", "9"),
        ),
        ((("x", 99, None),), b"", ("x", 0, "a known jute type", "type code 99")),
    ],
)
def test_decode_errors(core: ModuleType, layout: Any, buf: bytes, expect: tuple[Any, ...]) -> None:
    with pytest.raises(core.ProtocolError) as ei:
        core.decode_record(layout, buf)
    assert perr(ei.value)[1:] == expect


def test_decode_error_names_nested_fields(core: ModuleType) -> None:
    body = s("/a") + s("hi") + i32(2) + i32(31) + s("world") + s("anyone") + i32(1) + s("dig")
    with pytest.raises(core.ProtocolError) as ei:
        core.decode_record(jute.CREATE_REQUEST, body)
    assert perr(ei.value)[1:] == (
        "acl[1].acl.id.id",
        len(body),
        "4 bytes of length",
        "0 bytes left",
    )
    stat_cut = b"\x00" * 32  # czxid, mzxid, ctime, mtime
    with pytest.raises(core.ProtocolError) as ei:
        core.decode_record(jute.GET_DATA_RESPONSE, i32(0) + stat_cut)
    assert perr(ei.value)[1:] == ("stat.version", 36, "4 bytes of int", "0 bytes left")
    multi = (("txns", 6, ("txn", 7, (("type", 1, None), ("data", 5, None)))),)
    with pytest.raises(core.ProtocolError) as ei:
        core.decode_record(multi, i32(1) + i32(5) + i32(10) + b"short")
    assert perr(ei.value)[1:] == ("txns[0].txn.data.length", 8, "-1..5", "10")


# ----------------------------------------------------------------------------- worked examples


def test_worked_getdata_frame(core: ModuleType) -> None:
    wire = bytes.fromhex("00000011000000010000000400000004 2f666f6f01".replace(" ", ""))
    frames, pos = core.split_frames(wire, 0, 0xFFFFF)
    assert pos == len(wire) and len(frames) == 1
    assert core.decode_request_header(frames[0]) == (1, 4)
    assert core.decode_record(jute.REQUEST_HEADER, frames[0]) == ((1, 4), 8)
    assert core.decode_record(jute.PATH_WATCH_REQUEST, frames[0], 8) == (("/foo", True), 17)


def test_worked_create_frame(core: ModuleType) -> None:
    wire = bytes.fromhex(
        "00000033000000020000000100000002 2f610000000268690000000100"
        "00001f00000005776f726c6400000006616e796f6e6500000000".replace(" ", "")
    )
    (frame,), _ = core.split_frames(wire, 0, 0xFFFFF)
    assert core.decode_request_header(frame) == (2, 1)
    rec, pos = core.decode_record(jute.CREATE_REQUEST, frame, 8)
    assert rec == ("/a", b"hi", [(31, ("world", "anyone"))], 0) and pos == len(frame)
    out = bytearray(jute.encode(jute.REQUEST_HEADER, (2, 1)))
    core.encode_record(jute.CREATE_REQUEST, rec, out)
    assert i32(len(out)) + bytes(out) == wire


def test_worked_ping_and_replies(core: ModuleType) -> None:
    assert core.decode_request_header(bytes.fromhex("fffffffe0000000b")) == (-2, 11)
    assert core.encode_reply_frame(1, 0x100000003, -101, None, None) == bytes.fromhex(
        "00000010000000010000000100000003ffffff9b"
    )
    notification = core.encode_reply_frame(-1, -1, 0, jute.WATCHER_EVENT, (3, 3, "/foo"))
    assert notification == bytes.fromhex(
        "00000020ffffffffffffffffffffffff00000000000000030000000300000004 2f666f6f".replace(" ", "")
    )


# ----------------------------------------------------------------------------- encode


def enc(core: ModuleType, layout: Any, values: Any) -> bytes:
    out = bytearray()
    core.encode_record(layout, values, out)
    return bytes(out)


def test_encode_primitives(core: ModuleType) -> None:
    assert enc(core, INT, (-1,)) == b"\xff" * 4
    assert enc(core, LONG, (2**63 - 1,)) == b"\x7f" + b"\xff" * 7
    assert enc(core, BOOL, (True,)) == b"\x01"
    assert enc(core, BOOL, (0,)) == b"\x00"
    assert enc(core, BOOL, ("x",)) == b"\x01"
    assert enc(core, BYTE, (-1,)) == b"\xff"
    assert enc(core, BYTE, (255,)) == b"\xff"
    assert enc(core, USTR, (None,)) == b"\xff" * 4
    assert enc(core, USTR, ("",)) == i32(0)
    assert enc(core, BUF, (None,)) == b"\xff" * 4
    assert enc(core, BUF, (bytearray(b"ab"),)) == i32(2) + b"ab"
    assert enc(core, BUF, (memoryview(b"xabc")[1:],)) == i32(3) + b"abc"
    assert enc(core, INT, (True,)) == i32(1)  # bool is an int


def test_encode_ustring_like_java(core: ModuleType) -> None:
    assert enc(core, USTR, ("é",)) == i32(2) + b"\xc3\xa9"
    assert enc(core, USTR, ("\u20ac",)) == i32(3) + b"\xe2\x82\xac"
    assert enc(core, USTR, ("\x00",)) == i32(1) + b"\x00"
    assert enc(core, USTR, ("\ud800",)) == i32(3) + b"\xed\xa0\x80"  # lone surrogate passes
    # Beyond the BMP: two 3-byte surrogates (BinaryOutputArchive.stringToByteBuffer).
    assert enc(core, USTR, ("a\U0001f600",)) == i32(7) + b"a\xed\xa0\xbd\xed\xb8\x80"
    assert core.java_utf8("\U0010ffff") == b"\xed\xaf\xbf\xed\xbf\xbf"


def test_encode_vectors_and_records(core: ModuleType) -> None:
    assert enc(core, jute.GET_CHILDREN_RESPONSE, (None,)) == i32(-1)
    assert enc(core, jute.GET_CHILDREN_RESPONSE, ([],)) == i32(0)
    assert enc(core, jute.GET_CHILDREN_RESPONSE, (("a", "b"),)) == i32(2) + s("a") + s("b")
    assert enc(core, jute.ID, ["x", None]) == s("x") + i32(-1)


@pytest.mark.parametrize(
    ("layout", "values", "exc"),
    [
        (INT, (2**31,), OverflowError),
        (INT, (-(2**31) - 1,), OverflowError),
        (LONG, (2**63,), OverflowError),
        (LONG, (-(2**63) - 1,), OverflowError),
        (LONG, (2**200,), OverflowError),
        (BYTE, (256,), OverflowError),
        (BYTE, (-129,), OverflowError),
        (INT, (1.0,), TypeError),
        (LONG, ("1",), TypeError),
        (INT, (None,), TypeError),
        (USTR, (b"bytes",), TypeError),
        (USTR, (5,), TypeError),
        (BUF, ("text",), TypeError),
        (BUF, (5,), TypeError),
        (INT, (), ValueError),
        (INT, (1, 2), ValueError),
        (jute.ACL, (1, ("a",)), ValueError),
        ((("x", 42, None),), (1,), ValueError),
        ((("v", 6, ("e", 1, None)),), ([1, 2**40],), OverflowError),
    ],
)
def test_encode_errors_leave_out_untouched(
    core: ModuleType, layout: Any, values: Any, exc: type[Exception]
) -> None:
    out = bytearray(b"keep")
    with pytest.raises(exc):
        core.encode_record(layout, values, out)
    assert out == b"keep"


def test_encode_overflow_messages_match(core: ModuleType) -> None:
    with pytest.raises(OverflowError) as ei:
        core.encode_record(jute.REQUEST_HEADER, (1, 2**31), bytearray())
    assert str(ei.value) == "type: 2147483648 does not fit in an int"


def test_encode_appends(core: ModuleType) -> None:
    out = bytearray(b"head")
    core.encode_record(INT, (5,), out)
    core.encode_record(USTR, ("z",), out)
    assert out == b"head" + i32(5) + s("z")


# ----------------------------------------------------------------------------- fast paths

STAT = (
    0x100000003,
    0x100000004,
    1700000000000,
    1700000000001,
    3,
    -1,
    2,
    0x0100000A5B3C0000,
    5,
    2,
    0x100000005,
)


def test_decode_request_header(core: ModuleType) -> None:
    assert core.decode_request_header(i32(7) + i32(4) + b"body") == (7, 4)
    assert core.decode_request_header(bytearray(i32(-8) + i32(101))) == (-8, 101)
    assert core.decode_request_header(memoryview(i32(2**31 - 1) + i32(-11))) == (2**31 - 1, -11)
    for n in range(8):
        frame = bytes(range(n))
        with pytest.raises(core.ProtocolError) as fast:
            core.decode_request_header(frame)
        with pytest.raises(core.ProtocolError) as walk:
            core.decode_record(jute.REQUEST_HEADER, frame)
        assert perr(fast.value) == perr(walk.value)


def test_encode_stat(core: ModuleType) -> None:
    out = bytearray(b"x")
    core.encode_stat(STAT, out)
    assert len(out) == 1 + core.STAT_BYTES == 69
    assert bytes(out[1:]) == jute.encode(jute.STAT, STAT)
    assert core.decode_record(jute.STAT, out, 1) == (STAT, 69)
    core.encode_stat(list(STAT), out)
    assert len(out) == 137


@pytest.mark.parametrize(
    ("stat", "exc"),
    [
        (STAT[:10], ValueError),
        (STAT + (0,), ValueError),
        (STAT[:4] + (2**31,) + STAT[5:], OverflowError),
        (STAT[:10] + (2**63,), OverflowError),
        (STAT[:8] + ("5",) + STAT[9:], TypeError),
    ],
)
def test_encode_stat_errors(core: ModuleType, stat: Any, exc: type[Exception]) -> None:
    out = bytearray(b"k")
    with pytest.raises(exc) as fast:
        core.encode_stat(stat, out)
    with pytest.raises(exc) as walk:
        core.encode_record(jute.STAT, stat, bytearray())
    assert str(fast.value) == str(walk.value)
    assert out == b"k"


def test_encode_reply_frame(core: ModuleType) -> None:
    frame = core.encode_reply_frame(9, 0x100000005, 0, jute.GET_DATA_RESPONSE, (b"hello", STAT))
    assert type(frame) is bytes
    assert frame[:4] == i32(len(frame) - 4)
    assert frame[4:20] == jute.encode(jute.REPLY_HEADER, (9, 0x100000005, 0))
    assert frame[20:] == jute.encode(jute.GET_DATA_RESPONSE, (b"hello", STAT))
    frames, _ = core.split_frames(frame + frame, 0, 0xFFFFF)
    assert len(frames) == 2
    assert core.decode_record(jute.REPLY_HEADER + jute.GET_DATA_RESPONSE, frames[0]) == (
        (9, 0x100000005, 0, b"hello", STAT),
        len(frame) - 4,
    )
    assert core.encode_reply_frame(-2, 7, 0, None, None) == i32(16) + jute.encode(
        jute.REPLY_HEADER, (-2, 7, 0)
    )
    assert core.encode_reply_frame(4, 7, 0, (), ()) == i32(16) + jute.encode(
        jute.REPLY_HEADER, (4, 7, 0)
    )
    big = b"z" * 5000  # past the writer's first allocation
    frame = core.encode_reply_frame(1, 1, 0, jute.GET_DATA_RESPONSE, (big, STAT))
    assert len(frame) == 4 + 16 + 4 + 5000 + 68


def test_stat_layout_is_the_wire_stat(core: ModuleType) -> None:
    assert core.STAT_LAYOUT == jute.STAT
    # A layout nesting this very object takes the compiled writer's Stat fast path: same
    # bytes and same errors as the generic walk.
    fast = (("data", 5, None), ("stat", 7, core.STAT_LAYOUT))
    walk = (("data", 5, None), ("stat", 7, tuple(jute.STAT)))
    assert enc(core, fast, (b"d", STAT)) == enc(core, walk, (b"d", STAT))
    assert core.encode_reply_frame(3, 4, 0, fast, (b"d", STAT)) == core.encode_reply_frame(
        3, 4, 0, walk, (b"d", STAT)
    )
    for bad, exc in (
        (STAT[:4] + (2**31,) + STAT[5:], OverflowError),
        (STAT[:9], ValueError),
        (STAT[:8] + (1.5,) + STAT[9:], TypeError),
        (None, TypeError),
    ):
        out = bytearray(b"k")
        with pytest.raises(exc) as e_fast:
            core.encode_record(fast, (b"d", bad), out)
        with pytest.raises(exc) as e_walk:
            core.encode_record(walk, (b"d", bad), bytearray())
        assert out == b"k"
        if exc is not TypeError:
            assert str(e_fast.value) == str(e_walk.value)


@pytest.mark.parametrize(
    ("args", "exc", "msg"),
    [
        ((2**31, 0, 0, None, None), OverflowError, "xid: 2147483648 does not fit in an int"),
        (
            (0, 2**63, 0, None, None),
            OverflowError,
            "zxid: 9223372036854775808 does not fit in a long",
        ),
        (
            (0, 0, -(2**31) - 1, None, None),
            OverflowError,
            "err: -2147483649 does not fit in an int",
        ),
        ((0, 0.5, 0, None, None), TypeError, None),
        ((0, 0, 0, jute.STAT_RESPONSE, None), ValueError, None),
        ((0, 0, 0, None, (STAT,)), ValueError, None),
        ((0, 0, 0, jute.STAT_RESPONSE, (STAT[:3],)), ValueError, None),
    ],
)
def test_encode_reply_frame_errors(
    core: ModuleType, args: Any, exc: type[Exception], msg: str | None
) -> None:
    with pytest.raises(exc) as ei:
        core.encode_reply_frame(*args)
    if msg is not None:
        assert str(ei.value) == msg


# ----------------------------------------------------------------------------- zxid


def test_zxid_round_trip(core: ModuleType) -> None:
    assert core.make_zxid(1, 3) == 0x100000003
    assert core.make_zxid(0, 0) == 0
    assert core.make_zxid(0x7FFFFFFF, 0xFFFFFFFF) == 2**63 - 1
    assert core.make_zxid(0x80000000, 0) == -(2**63)  # a signed Java long, as on the wire
    assert core.make_zxid(0xFFFFFFFF, 0xFFFFFFFF) == -1
    for z in (0, 1, 0x100000003, 2**63 - 1, -(2**63), -1, -0x100000001):
        e, c = core.zxid_epoch(z), core.zxid_counter(z)
        assert e == z >> 32 and c == z & 0xFFFFFFFF
        assert core.make_zxid(e & 0xFFFFFFFF, c) == z


def test_zxid_signed_epoch(core: ModuleType) -> None:
    assert core.zxid_epoch(-1) == -1  # ZxidUtils.getEpochFromZxid is a signed shift
    assert core.zxid_counter(-1) == 0xFFFFFFFF
    assert core.zxid_epoch(0x100000003) == 1
    assert core.zxid_counter(0x100000003) == 3


@pytest.mark.parametrize(
    ("fn", "args", "exc", "msg"),
    [
        ("make_zxid", (2**32, 0), OverflowError, "epoch 4294967296 does not fit in 32 bits"),
        ("make_zxid", (-1, 0), OverflowError, "epoch -1 does not fit in 32 bits"),
        ("make_zxid", (0, 2**32), OverflowError, "counter 4294967296 does not fit in 32 bits"),
        ("make_zxid", (0, -1), OverflowError, "counter -1 does not fit in 32 bits"),
        ("make_zxid", (2**70, 0), OverflowError, f"epoch {2**70} does not fit in 32 bits"),
        ("zxid_epoch", (2**63,), OverflowError, f"zxid {2**63} does not fit in 64 bits"),
        (
            "zxid_counter",
            (-(2**63) - 1,),
            OverflowError,
            f"zxid {-(2**63) - 1} does not fit in 64 bits",
        ),
        ("make_zxid", ("1", 0), TypeError, None),
        ("make_zxid", (1.5, 0), TypeError, None),
        ("zxid_epoch", (None,), TypeError, None),
    ],
)
def test_zxid_range_checks(
    core: ModuleType, fn: str, args: Any, exc: type[Exception], msg: str | None
) -> None:
    with pytest.raises(exc) as ei:
        getattr(core, fn)(*args)
    if msg is not None:
        assert str(ei.value) == msg


# ----------------------------------------------------------------------------- chooser


def test_impl_chooser_follows_environment() -> None:
    import os

    from zkfast import _impl

    if os.environ.get("ZKFAST_PURE") == "1":
        assert _impl.core is _core_py
    else:
        assert _impl.core is _compiled
    assert _impl.ProtocolError is _impl.core.ProtocolError
    assert _impl.IMPLEMENTATION == _impl.core.IMPLEMENTATION


# ----------------------------------------------------------------------------- votes and quorums


def test_vote_order_epoch_then_zxid_then_sid(core: ModuleType) -> None:
    # FastLeaderElection.totalOrderPredicate: (peerEpoch, zxid, sid), lexicographic.
    g = core.vote_greater
    assert g(1, 0x100000001, 2, 9, 0x2FFFFFFFF, 1) is True  # higher epoch wins over zxid, sid
    assert g(9, 0x200000005, 1, 1, 0x200000004, 1) is True  # same epoch: higher zxid
    assert g(1, 0x200000005, 1, 9, 0x200000004, 1) is True  # ... whatever the sid
    assert g(3, 7, 1, 2, 7, 1) is True  # same epoch and zxid: higher sid
    assert g(2, 7, 1, 3, 7, 1) is False
    assert g(3, 7, 1, 3, 7, 1) is False  # a vote is not greater than itself
    assert g(1, 0, 0, 2, -1, 0) is True  # zxids compare as signed longs: -1 (none) is lowest
    assert g(1, -(2**63), 0, 2, 2**63 - 1, 0) is False


def test_vote_weight_zero_never_wins(core: ModuleType) -> None:
    assert core.vote_greater(5, 0x900000000, 9, 1, 0, 0, 0) is False
    assert core.vote_greater(5, 0x900000000, 9, 1, 0, 0, 3) is True
    assert core.vote_greater(5, 0x900000000, 9, 1, 0, 0) is True  # weight defaults to 1


@pytest.mark.parametrize(
    ("args", "exc", "msg"),
    [
        ((2**63, 0, 0, 0, 0, 0), OverflowError, f"new_id: {2**63} does not fit in a long"),
        ((0, 0, 0, 0, 0, -(2**63) - 1), OverflowError,
         f"cur_epoch: {-(2**63) - 1} does not fit in a long"),
        ((0, 0, 0, 0, 0, 0, 2**64), OverflowError,
         f"new_weight: {2**64} does not fit in a long"),
        ((0.5, 0, 0, 0, 0, 0), TypeError, None),
        ((0, None, 0, 0, 0, 0), TypeError, None),
    ],
)  # fmt: skip
def test_vote_range_checks(core: ModuleType, args: Any, exc: type[Exception],
                           msg: str | None) -> None:  # fmt: skip
    with pytest.raises(exc) as ei:
        core.vote_greater(*args)
    if msg is not None:
        assert str(ei.value) == msg


def majority(voters: list[int]) -> tuple[Any, ...]:
    """count_quorum arguments of QuorumMaj over ``voters`` (as quorum.QuorumVerifier builds)."""
    return ({s: 0 for s in voters}, {s: 1 for s in voters}, {0: len(voters) // 2}, 1)


def test_count_quorum_majority(core: ModuleType) -> None:
    five = majority([1, 2, 3, 4, 5])
    assert core.count_quorum([1, 2, 3], *five) is True
    assert core.count_quorum({2, 4, 5}, *five) is True
    assert core.count_quorum([1, 2], *five) is False
    assert core.count_quorum([1, 1, 2, 2], *five) is False  # duplicates count once
    assert core.count_quorum([1, 2, 6, 7, 8], *five) is False  # non-voters (observers) skipped
    assert core.count_quorum([], *five) is False
    assert core.count_quorum(iter([3, 4, 5]), *five) is True  # any iterable
    four = majority([1, 2, 3, 4])
    assert core.count_quorum([1, 2], *four) is False  # more than half: 2 of 4 is not
    assert core.count_quorum([1, 2, 3], *four) is True
    one = majority([7])
    assert core.count_quorum([7], *one) is True
    assert core.count_quorum([8], *one) is False


def test_count_quorum_hierarchical(core: ModuleType) -> None:
    # group.1=1:2:3, group.2=4:5:6, group.3=7:8:9; weight.3=0; weight.4=3 (group 2 weighs 5).
    group = {1: 1, 2: 1, 3: 1, 4: 2, 5: 2, 6: 2, 7: 3, 8: 3, 9: 3}
    weight = {1: 1, 2: 1, 3: 0, 4: 3, 5: 1, 6: 1, 7: 1, 8: 1, 9: 1}
    half = {1: 2 // 2, 2: 5 // 2, 3: 3 // 2}
    args = (group, weight, half, 3 // 2 + 1)  # two of three groups
    assert core.count_quorum([1, 2, 4], *args) is True  # group 1: 2 > 1; group 2: 3 > 2
    assert core.count_quorum([1, 3, 4], *args) is False  # sid 3 weighs nothing: 1 is not > 1
    assert core.count_quorum([5, 6, 7, 8], *args) is False  # group 2: 2 is not > 2; only group 3
    assert core.count_quorum([5, 6, 1, 2], *args) is False
    assert core.count_quorum([4, 7, 8], *args) is True
    assert core.count_quorum([1, 2, 7, 8, 9], *args) is True
    assert core.count_quorum([1, 2], *args) is False  # one group is not a majority of groups
