"""Txn codec: byte-identical with Apache 3.8 txn log entries (zk-formats §5, §6.2)."""

from __future__ import annotations

import zlib

import pytest

from zkfast._impl import ProtocolError
from zkfast.wire import jute
from zkfast.wire.txn_codec import decode_txn, encode_txn

OPEN = [(31, ("world", "anyone"))]
SID = 0x0100000A5B3C0000
TIME = 0x18BCFE56800


def h(s: str) -> bytes:
    return bytes.fromhex(s.replace(" ", "").replace("|", ""))


def test_create_worked_example() -> None:
    header = (SID, 2, 0x100000004, TIME, 1)
    record = ("/a", b"hi", OPEN, False, 1)
    data = encode_txn(header, record, 0x1234)
    expected = h(
        "01 00 00 0a 5b 3c 00 00 | 00 00 00 02 | 00 00 00 01 00 00 00 04 | 00 00 01 8b cf e5 68 00"
        " | 00 00 00 01 00 00 00 02 2f 61 | 00 00 00 02 68 69 | 00 00 00 01 00 00 00 1f 00 00 00"
        " 05" + b"world".hex() + "00 00 00 06" + b"anyone".hex() + " | 00 | 00 00 00 01"
        " 00 00 00 02 00 00 00 00 00 00 12 34")
    assert data == expected
    assert len(data) == 88
    assert zlib.adler32(data) == 0x9E6609DE
    assert decode_txn(data) == (header, record, 0x1234)


def test_create_session_log_entry_example() -> None:
    data = encode_txn((SID, 0, 0x100000001, TIME, -10), (30000,), 0x51C6D660)
    assert data == h("01 00 00 0a 5b 3c 00 00 00 00 00 00 00 00 00 01 00 00 00 01 00 00 01 8b cf"
                     " e5 68 00 ff ff ff f6 | 00 00 75 30 | 00 00 00 02 00 00 00 00 51 c6 d6 60")
    assert zlib.adler32(data) == 0xB2570A34


def test_digest_is_optional() -> None:
    header = (SID, 3, 5, TIME, 2)
    data = encode_txn(header, ("/a",), None)
    assert decode_txn(data) == (header, ("/a",), None)


def test_multi_sub_txns_are_buffers() -> None:
    header = (SID, 4, 6, TIME, 14)
    subs = [(1, ("/m", b"", OPEN, False, 3)), (5, ("/m", b"v", 1)), (-1, (-101,)),
            (-1, (-2,)), (13, ("/m", 2)), (2, ("/m",))]
    data = encode_txn(header, subs, 77)
    # MultiTxn{vector<Txn{int type; buffer data}>}: check the first sub-record by hand.
    inner = bytearray()
    from zkfast._impl import core

    core.encode_record(jute.CREATE_TXN, subs[0][1], inner)
    assert data[32:36] == (6).to_bytes(4, "big")
    assert data[36:40] == (1).to_bytes(4, "big")
    assert data[40:44] == len(inner).to_bytes(4, "big")
    assert data[44:44 + len(inner)] == bytes(inner)
    assert decode_txn(data) == (header, subs, 77)


def test_close_session_without_record_before_3_6() -> None:
    header = (SID, 0, 9, TIME, -11)
    data = encode_txn(header, None, None)
    assert len(data) == 32
    assert decode_txn(data) == (header, None, None)
    assert decode_txn(encode_txn(header, (["/e1", "/e2"],), 5)) == (header, (["/e1", "/e2"],), 5)


def test_create_txn_v0_gets_parent_cversion_minus_one() -> None:
    header = (SID, 1, 2, TIME, 1)
    out = bytearray(encode_txn(header, ("/x", b"", OPEN, True, 0), None))
    v0 = bytes(out[:-4])  # drop parentCVersion
    assert decode_txn(v0) == (header, ("/x", b"", OPEN, True, -1), None)


def test_every_txn_type_round_trips() -> None:
    records = {
        19: ("/c", b"d", OPEN, 4),
        21: ("/t", b"d", OPEN, 4, 1000),
        20: ("/c",),
        7: ("/a", OPEN, 2),
        16: ("/zookeeper/config", b"server.1=...", -1),
        -1: (-110,),
        15: ("/b", b"", OPEN, False, 2),
    }
    for t, rec in records.items():
        header = (SID, 1, 10, TIME, t)
        assert decode_txn(encode_txn(header, rec, 1)) == (header, rec, 1)


def test_garbage_raises_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        decode_txn(b"\0" * 10)
    with pytest.raises(ProtocolError):
        decode_txn(encode_txn((1, 1, 1, 1, 99), None, None))
    bad_multi = encode_txn((1, 1, 1, 1, 14), [(2, ("/a",))], None)
    corrupted = bad_multi[:36] + (42).to_bytes(4, "big") + bad_multi[40:]
    with pytest.raises(ProtocolError):
        decode_txn(corrupted)
