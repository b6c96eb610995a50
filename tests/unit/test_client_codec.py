"""Client codec: byte-exact against the worked examples of zk-formats §1 and Apache 3.8.0 replies."""

from __future__ import annotations

import pytest

from zkfast._impl import ProtocolError
from zkfast.wire import client_codec as cc
from zkfast.wire import jute

OPEN = [(31, ("world", "anyone"))]


def h(s: str) -> bytes:
    return bytes.fromhex(s.replace(" ", "").replace("|", ""))


def test_connect_request_example_with_read_only_byte() -> None:
    frame = h("00 00 00 2d | 00 00 00 00 | 00 00 00 00 00 00 00 00 | 00 00 75 30 | "
              "00 00 00 00 00 00 00 00 | 00 00 00 10" + " 00" * 16 + "| 00")
    assert cc.encode_connect_request(30000) == frame
    pv, last, timeout, sid, passwd, ro = cc.decode_connect_request(frame[4:])
    assert (pv, last, timeout, sid, passwd, ro) == (0, 0, 30000, 0, b"\0" * 16, False)


def test_connect_request_without_read_only_byte_is_an_old_client() -> None:
    frame = cc.encode_connect_request(5000, read_only=None)
    assert len(frame) == 4 + 44
    assert cc.decode_connect_request(frame[4:])[5] is None


def test_connect_request_truncated_raises() -> None:
    with pytest.raises(ProtocolError):
        cc.decode_connect_request(b"\0" * 20)


def test_connect_response_example() -> None:
    out = bytearray()
    passwd = h("06 8c a4 03 1b 34 fa 78 54 3d 3d 68 5c dd 3e 5e")
    cc.append_connect_response(out, 30000, 0x0100000A5B3C0000, passwd, False)
    assert bytes(out) == h("00 00 00 25 | 00 00 00 00 | 00 00 75 30 | 01 00 00 0a 5b 3c 00 00 |"
                           " 00 00 00 10 06 8c a4 03 1b 34 fa 78 54 3d 3d 68 5c dd 3e 5e | 00")
    out2 = bytearray()
    cc.append_connect_response(out2, 30000, 1, passwd, None)
    assert len(out2) == 4 + 36  # no readOnly byte for an old client
    assert cc.decode_connect_response(bytes(out2[4:]))[4] is None


def test_get_data_and_create_request_examples() -> None:
    assert cc.encode_request(1, 4, ("/foo", True)) == h(
        "00 00 00 11 00 00 00 01 00 00 00 04 00 00 00 04 2f 66 6f 6f 01")
    create = h("00 00 00 33 00 00 00 02 00 00 00 01 | 00 00 00 02 2f 61 | 00 00 00 02 68 69 |"
               " 00 00 00 01 00 00 00 1f 00 00 00 05 77 6f 72 6c 64 00 00 00 06 61 6e 79 6f 6e 65"
               " | 00 00 00 00")
    assert cc.encode_request(2, 1, ("/a", b"hi", OPEN, 0)) == create
    assert cc.decode_request_header(create[4:]) == (2, 1)
    assert cc.decode_request(1, create[4:]) == ("/a", b"hi", OPEN, 0)


def test_error_reply_and_notification_examples() -> None:
    out = bytearray()
    cc.append_reply(out, 1, 0x100000003, -101)
    assert bytes(out) == h("00 00 00 10 00 00 00 01 00 00 00 01 00 00 00 03 ff ff ff 9b")
    out = bytearray()
    cc.append_notification(out, 3, 3, "/foo")
    assert bytes(out) == h("00 00 00 20 ff ff ff ff ff ff ff ff ff ff ff ff 00 00 00 00 |"
                           " 00 00 00 03 00 00 00 03 00 00 00 04 2f 66 6f 6f")
    assert cc.decode_reply(bytes(out[4:]), None) == (-1, -1, 0, (3, 3, "/foo"))


def test_reply_with_body_round_trips() -> None:
    out = bytearray()
    stat = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
    cc.append_reply(out, 7, 9, 0, jute.GET_DATA_RESPONSE, (b"data", stat))
    (frame,) = cc.split_reply_frames(bytes(out))
    assert cc.decode_reply(frame, 4) == (7, 9, 0, (b"data", stat))


def test_empty_multi_reply_matches_apache() -> None:
    # Apache 3.8.0 answered a multi with no ops (xid 6, zxid 7) with exactly these bytes.
    out = bytearray()
    cc.append_multi_reply(out, 6, 7, [])
    assert bytes(out) == h("0000001900000006000000000000000700000000ffffffff01ffffffff")


def test_multi_request_round_trip_and_results() -> None:
    ops = [(1, ("/a", b"", OPEN, 0)), (5, ("/a", b"x", -1)), (2, ("/a", -1)),
           (13, ("/a", 3)), (15, ("/b", b"", OPEN, 0))]
    frame = cc.encode_request(9, 14, ops)
    assert cc.decode_request(14, frame[4:]) == ops
    out = bytearray()
    stat = tuple(range(11))
    results = [(1, 0, ("/a",)), (5, 0, (stat,)), (2, 0, None), (13, 0, None),
               (15, 0, ("/b", stat)), (-1, -101, None)]
    cc.append_multi_reply(out, 9, 12, results)
    (reply,) = cc.split_reply_frames(bytes(out))
    assert cc.decode_reply(reply, 14) == (9, 12, 0, results)


def test_multi_rejects_foreign_op_types_and_truncation() -> None:
    read_in_multi = cc.encode_request(1, 22, [(4, ("/a", False))])
    with pytest.raises(ProtocolError):
        cc.decode_request(14, read_in_multi[4:])
    write_in_read = cc.encode_request(1, 14, [(2, ("/a", -1))])
    with pytest.raises(ProtocolError):
        cc.decode_request(22, write_in_read[4:])
    with pytest.raises(ProtocolError):
        cc.decode_request(14, write_in_read[4:-3])


def test_short_header_and_body_raise() -> None:
    with pytest.raises(ProtocolError):
        cc.decode_request_header(b"\0\0\0")
    with pytest.raises(ProtocolError):
        cc.decode_request(3, b"\0\0\0\1\0\0\0\3\0\0\0\x04/a")
    with pytest.raises(ProtocolError):
        cc.decode_request(99, b"\0" * 8)


def test_auth_packet() -> None:
    frame = cc.encode_auth("digest", b"u:p")
    assert cc.decode_request_header(frame[4:]) == (-4, 100)
    assert cc.decode_auth_packet(frame[4:]) == (0, "digest", b"u:p")
