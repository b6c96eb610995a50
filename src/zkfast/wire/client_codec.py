"""Client protocol codec: ConnectRequest/Response, request bodies by opcode, replies, notifications.

Theory of operation
-------------------
Frames arrive with their 4-byte length already stripped (``_core.split_frames``). The first
frame of a connection is a ConnectRequest (zk-formats §1.2); its optional trailing readOnly byte
is read by hand, and ``None`` records that the client did not send it (Apache's
``ServerCnxn.isOldClient``), so the ConnectResponse carries the byte only when it was sent.
Every later frame is ``RequestHeader{xid, type}`` plus a body whose layout depends on the opcode
(``wire.jute.REQUESTS``); multi and multiRead are walked op by op (``MultiHeader`` + op record,
up to the ``done`` trailer), as ``MultiOperationRecord.deserialize`` does. Outside bytes are
never trusted: every decoder raises ``ProtocolError`` and nothing else.

Replies are *appended* to a caller-owned ``bytearray`` with their length prefix, so a server
step builds every reply of one connection into one buffer (one ``SendToClient`` per step). The
client-side encoders/decoders at the bottom (``encode_connect_request``, ``encode_request``,
``decode_reply``...) exist for tests, fuzzers and tools; they produce exactly what the Java
client puts on the wire.
"""

from __future__ import annotations

import struct
from typing import Any

from .._impl import ProtocolError, core
from . import jute

__all__ = [
    "MULTI_WRITE_OPS",
    "MULTI_READ_OPS",
    "decode_connect_request",
    "append_connect_response",
    "decode_request_header",
    "decode_request",
    "decode_multi",
    "decode_auth_packet",
    "append_reply",
    "append_multi_reply",
    "append_notification",
    "encode_connect_request",
    "decode_connect_response",
    "encode_request",
    "encode_auth",
    "decode_reply",
    "decode_multi_reply",
    "split_reply_frames",
]

_INT = struct.Struct(">i")
_HDR = struct.Struct(">ii")
_REPLY_HDR = struct.Struct(">iiqi")  # length, xid, zxid, err
_encode_reply_frame = core.encode_reply_frame
_NOTIFY = struct.Struct(">iiqiii")  # length, xid, zxid, err, type, state
_MULTI_HDR = struct.Struct(">i?i")

_encode = core.encode_record
_decode = core.decode_record

#: Op types a multi may carry, and the request layout of each (MultiOperationRecord).
MULTI_WRITE_OPS: dict[int, jute.Layout] = {
    1: jute.CREATE_REQUEST,
    15: jute.CREATE_REQUEST,
    19: jute.CREATE_REQUEST,
    21: jute.CREATE_TTL_REQUEST,
    2: jute.DELETE_REQUEST,
    5: jute.SET_DATA_REQUEST,
    13: jute.CHECK_VERSION_REQUEST,
}
#: Op types a multiRead may carry.
MULTI_READ_OPS: dict[int, jute.Layout] = {
    4: jute.PATH_WATCH_REQUEST,
    8: jute.PATH_WATCH_REQUEST,
}

#: Result body layout of a multi/multiRead result by its result type (MultiResponse).
_MULTI_RESULT_LAYOUTS: dict[int, jute.Layout | None] = {
    1: jute.CREATE_RESPONSE,
    15: jute.CREATE2_RESPONSE,
    19: jute.CREATE2_RESPONSE,
    21: jute.CREATE2_RESPONSE,
    2: None,
    13: None,
    5: jute.STAT_RESPONSE,
    4: jute.GET_DATA_RESPONSE,
    8: jute.GET_CHILDREN_RESPONSE,
    -1: jute.ERROR_RESPONSE,
}

_MULTI_TRAILER = _MULTI_HDR.pack(-1, True, -1)

# ------------------------------------------------------------------ server side: decode


def decode_connect_request(frame: bytes) -> tuple[int, int, int, int, bytes, bool | None]:
    """Decode a ConnectRequest frame.

    Returns:
        ``(protocol_version, last_zxid_seen, timeout_ms, session_id, passwd, read_only)``;
        ``read_only`` is ``None`` when the client left the trailing byte out. A null password
        becomes ``b""`` (Apache treats it as an empty array).

    Raises:
        ProtocolError: the frame is too short or a length is out of range.
    """
    (pv, last_zxid, timeout, session_id, passwd), pos = _decode(jute.CONNECT_REQUEST, frame)
    read_only: bool | None = None
    if pos < len(frame):
        read_only = frame[pos] != 0
    return pv, last_zxid, timeout, session_id, passwd if passwd is not None else b"", read_only


def append_connect_response(out: bytearray, timeout_ms: int, session_id: int, passwd: bytes,
                            read_only: bool | None) -> None:
    """Append a length-prefixed ConnectResponse (readOnly byte only if ``read_only`` is not None)."""
    body = bytearray()
    _encode(jute.CONNECT_RESPONSE, (0, timeout_ms, session_id, passwd), body)
    if read_only is not None:
        body.append(1 if read_only else 0)
    out += _INT.pack(len(body))
    out += body


def decode_request_header(frame: bytes) -> tuple[int, int]:
    """Return ``(xid, type)`` of a request frame; the body starts at offset 8.

    Raises:
        ProtocolError: fewer than 8 bytes.
    """
    if len(frame) < 8:
        raise ProtocolError("RequestHeader", 0, "8 bytes", f"{len(frame)} bytes")
    xid, op = _HDR.unpack_from(frame, 0)
    return xid, op


def decode_multi(frame: bytes, offset: int, allowed: dict[int, jute.Layout]
                 ) -> list[tuple[int, tuple[Any, ...]]]:
    """Walk a MultiOperationRecord: returns ``[(op_type, op_record), ...]``.

    Raises:
        ProtocolError: truncated input, or an op type not in ``allowed`` (Apache's
        "Invalid type of op" IOException).
    """
    ops: list[tuple[int, tuple[Any, ...]]] = []
    end = len(frame)
    pos = offset
    while True:
        if end - pos < 9:
            raise ProtocolError("MultiHeader", pos, "9 bytes", f"{end - pos} bytes")
        op, done, _err = _MULTI_HDR.unpack_from(frame, pos)
        pos += 9
        if done:
            return ops
        layout = allowed.get(op)
        if layout is None:
            raise ProtocolError("MultiHeader.type", pos - 9, "a multi op type", str(op))
        record, pos = _decode(layout, frame, pos, end)
        ops.append((op, record))


def decode_request(opcode: int, frame: bytes, offset: int = 8) -> Any:
    """Decode the body of a request of ``opcode`` starting at ``offset``.

    Returns the record tuple; for multi (14) and multiRead (22) a list of ``(type, record)``.

    Raises:
        ProtocolError: truncated or malformed body, or an opcode without a request layout.
    """
    if opcode == 14:
        return decode_multi(frame, offset, MULTI_WRITE_OPS)
    if opcode == 22:
        return decode_multi(frame, offset, MULTI_READ_OPS)
    layout = jute.REQUESTS.get(opcode)
    if layout is None:
        raise ProtocolError("RequestHeader.type", 4, "a known opcode", str(opcode))
    return _decode(layout, frame, offset)[0]


def decode_auth_packet(frame: bytes, offset: int = 8) -> tuple[int, str | None, bytes | None]:
    """Decode the AuthPacket ``(type, scheme, auth)`` of an xid -4 request."""
    return _decode(jute.AUTH_PACKET, frame, offset)[0]


# ------------------------------------------------------------------ server side: encode


def append_reply(out: bytearray, xid: int, zxid: int, err: int,
                 layout: jute.Layout | None = None, body: Any = None) -> None:
    """Append a length-prefixed ``ReplyHeader`` [+ response record] to ``out``."""
    # One compiled call builds the whole frame (length, header, body with the Stat fast path).
    out += _encode_reply_frame(xid, zxid, err, layout, body)


def append_multi_reply(out: bytearray, xid: int, zxid: int,
                       results: list[tuple[int, int, Any]]) -> None:
    """Append a reply whose body is a MultiResponse.

    ``results`` holds ``(result_type, err, body)`` per op: ``result_type`` is the op's result
    type (1 create, 15 create2/TTL/container, 2 delete, 5 setData, 13 check, 4 getData,
    8 getChildren) or -1 for an ErrorResult whose body is ignored (ErrorResponse{err} is written).
    The ReplyHeader err is always 0, as Apache's FinalRequestProcessor sends it.
    """
    start = len(out)
    out += _REPLY_HDR.pack(0, xid, zxid, 0)
    for rtype, err, body in results:
        out += _MULTI_HDR.pack(rtype, False, err if rtype == -1 else 0)
        if rtype == -1:
            out += _INT.pack(err)
            continue
        layout = _MULTI_RESULT_LAYOUTS[rtype]
        if layout is not None:
            _encode(layout, body, out)
    out += _MULTI_TRAILER
    _INT.pack_into(out, start, len(out) - start - 4)


def append_notification(out: bytearray, event_type: int, state: int, path: str) -> None:
    """Append a watch notification: ``ReplyHeader(-1, -1, 0)`` + WatcherEvent (3.8: zxid -1)."""
    raw = path.encode("utf-8", "surrogatepass")
    out += _NOTIFY.pack(28 + len(raw), -1, -1, 0, event_type, state)
    out += _INT.pack(len(raw))
    out += raw


# ------------------------------------------------------------------ client side (tests, tools)


def encode_connect_request(timeout_ms: int, session_id: int = 0, passwd: bytes = b"\0" * 16,
                           last_zxid_seen: int = 0, read_only: bool | None = False) -> bytes:
    """A length-prefixed ConnectRequest as a client sends it (no readOnly byte if None)."""
    body = bytearray()
    _encode(jute.CONNECT_REQUEST, (0, last_zxid_seen, timeout_ms, session_id, passwd), body)
    if read_only is not None:
        body.append(1 if read_only else 0)
    return _INT.pack(len(body)) + bytes(body)


def decode_connect_response(frame: bytes) -> tuple[int, int, int, bytes, bool | None]:
    """``(protocol_version, timeout_ms, session_id, passwd, read_only|None)`` of a frame."""
    (pv, timeout, sid, passwd), pos = _decode(jute.CONNECT_RESPONSE, frame)
    ro = frame[pos] != 0 if pos < len(frame) else None
    return pv, timeout, sid, passwd, ro


def encode_request(xid: int, opcode: int, record: Any = ()) -> bytes:
    """A length-prefixed request frame. For multi/multiRead ``record`` is ``[(type, rec)]``."""
    out = bytearray(b"\0\0\0\0")
    out += _HDR.pack(xid, opcode)
    if opcode in (14, 22):
        table = MULTI_WRITE_OPS if opcode == 14 else MULTI_READ_OPS
        for op, rec in record:
            out += _MULTI_HDR.pack(op, False, -1)
            _encode(table[op], rec, out)
        out += _MULTI_TRAILER
    else:
        layout = jute.REQUESTS.get(opcode, jute.EMPTY)
        _encode(layout, record, out)
    _INT.pack_into(out, 0, len(out) - 4)
    return bytes(out)


def encode_auth(scheme: str, auth: bytes) -> bytes:
    """A length-prefixed auth request (xid -4, type 100)."""
    out = bytearray(b"\0\0\0\0")
    out += _HDR.pack(-4, 100)
    _encode(jute.AUTH_PACKET, (0, scheme, auth), out)
    _INT.pack_into(out, 0, len(out) - 4)
    return bytes(out)


def split_reply_frames(data: bytes) -> list[bytes]:
    """Cut a stream of length-prefixed frames (e.g. one SendToClient) into payloads."""
    frames, pos = core.split_frames(data, 0, 1 << 30)
    if pos != len(data):
        raise ProtocolError("frame", pos, "complete frames", f"{len(data) - pos} trailing bytes")
    return frames


def decode_multi_reply(frame: bytes, offset: int) -> list[tuple[int, int, Any]]:
    """Walk a MultiResponse: ``[(result_type, err, body), ...]``."""
    out: list[tuple[int, int, Any]] = []
    pos = offset
    while True:
        op, done, err = _MULTI_HDR.unpack_from(frame, pos)
        pos += 9
        if done:
            return out
        layout = _MULTI_RESULT_LAYOUTS[op]
        body: Any = None
        if layout is not None:
            body, pos = _decode(layout, frame, pos)
        if op == -1:
            err, body = body[0], None  # ErrorResult: the code is the result
        out.append((op, err, body))


def decode_reply(frame: bytes, opcode: int | None) -> tuple[int, int, int, Any]:
    """Decode a reply frame as a client would: ``(xid, zxid, err, body)``.

    ``opcode`` picks the response layout (notifications, xid -1, are recognised by themselves);
    the body is ``None`` when ``err != 0`` or the op has no response record.
    """
    xid, zxid, err = struct.unpack_from(">iqi", frame, 0)
    if xid == -1:
        return xid, zxid, err, _decode(jute.WATCHER_EVENT, frame, 16)[0]
    if len(frame) == 16 or opcode is None:
        return xid, zxid, err, None
    if opcode in (14, 22):
        return xid, zxid, err, decode_multi_reply(frame, 16)
    if err != 0:
        return xid, zxid, err, None
    layout = jute.RESPONSES.get(opcode)
    if layout is None:
        return xid, zxid, err, None
    return xid, zxid, err, _decode(layout, frame, 16)[0]
