"""Peer-to-peer wire formats: the election port and the quorum port (zk-formats §3, §4).

Election port (``QuorumCnxManager``, ``FastLeaderElection``):

* the connection header the dialling side writes: ``long protocolVersion`` (-65536 = V1,
  -65535 = V2), ``long sid``, ``int addrLen``, ``addr`` (UTF-8 ``host:port``, V2 ``|``-joined);
  a first long >= 0 is a pre-3.5 peer that sent only its sid;
* after it, ``int32 len`` + message both ways; the message is a notification:
  ``int state, long leader, long zxid, long electionEpoch`` [``long peerEpoch`` [``int version``
  [``int configLen, config``]]], read by length: < 28 bytes is dropped, exactly 28 has no
  peerEpoch (it is the zxid's epoch), exactly 40 has no version; the config is read only
  when version > 1.

Quorum port: back-to-back jute ``QuorumPacket{int type; long zxid; buffer data;
vector<Id> authinfo}`` with no extra length prefix (``split_quorum_packets`` finds the record
boundaries), ``LearnerInfo{long serverid; int protocolVersion; long configVersion}`` in
FOLLOWERINFO/OBSERVERINFO, ``int`` bodies in LEADERINFO (leader protocol version) and ACKEPOCH
(current epoch, or -1).

Every decoder raises ``ProtocolError`` naming the field on malformed input; the caller drops
that link (never the peer).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from .._impl import ProtocolError, core

__all__ = [
    "ServerState",
    "ZabState",
    "PacketType",
    "PROTOCOL_V1",
    "PROTOCOL_V2",
    "NOTIFICATION_VERSION",
    "LEARNER_PROTOCOL_VERSION",
    "ELECTION_MESSAGE_BYTES_MAX",
    "ELECTION_ADDR_BYTES_MAX",
    "Notification",
    "ElectionHandshake",
    "encode_notification",
    "decode_notification",
    "encode_handshake",
    "decode_handshake",
    "QuorumPacket",
    "QUORUM_PACKET",
    "encode_quorum_packet",
    "decode_quorum_packet",
    "split_quorum_packets",
    "LearnerInfo",
    "encode_learner_info",
    "decode_learner_info",
    "encode_int_body",
    "decode_int_body",
]


class ServerState(IntEnum):
    """QuorumPeer.ServerState; the ordinal is the notification ``state`` field."""

    LOOKING = 0
    FOLLOWING = 1
    LEADING = 2
    OBSERVING = 3


class ZabState(IntEnum):
    """QuorumPeer.ZabState (not on the wire; ``mntr`` prints the name)."""

    ELECTION = 0
    DISCOVERY = 1
    SYNCHRONIZATION = 2
    BROADCAST = 3


class PacketType(IntEnum):
    """Leader.java packet type constants (zk-formats §4.2)."""

    REQUEST = 1
    PROPOSAL = 2
    ACK = 3
    COMMIT = 4
    PING = 5
    REVALIDATE = 6
    SYNC = 7
    INFORM = 8
    COMMITANDACTIVATE = 9
    NEWLEADER = 10
    FOLLOWERINFO = 11
    UPTODATE = 12
    DIFF = 13
    TRUNC = 14
    SNAP = 15
    OBSERVERINFO = 16
    LEADERINFO = 17
    ACKEPOCH = 18
    INFORMANDACTIVATE = 19


PROTOCOL_V1 = -65536
PROTOCOL_V2 = -65535
#: Notification.CURRENTVERSION.
NOTIFICATION_VERSION = 2
#: LearnerInfo.protocolVersion / LEADERINFO body (ZAB 1.0).
LEARNER_PROTOCOL_VERSION = 0x10000
#: QuorumCnxManager.PACKETMAXSIZE: an election message length outside 1..this drops the link.
ELECTION_MESSAGE_BYTES_MAX = 512 * 1024
#: QuorumCnxManager.maxBuffer for the handshake address.
ELECTION_ADDR_BYTES_MAX = 2048

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1

_HEAD = struct.Struct(">iqqq")  # state, leader, zxid, electionEpoch: 28 bytes
_LONG = struct.Struct(">q")
_INT = struct.Struct(">i")
_FULL = struct.Struct(">iqqqqii")  # ... peerEpoch, version, configLen: 44 bytes


# --------------------------------------------------------------------------- notifications


@dataclass(frozen=True, slots=True)
class Notification:
    """One election notification (FastLeaderElection.Notification / ToSend)."""

    state: int
    leader: int
    zxid: int
    election_epoch: int
    peer_epoch: int
    #: 0 for the 28/40-byte legacy layouts, else the sender's version (2 today).
    version: int = NOTIFICATION_VERSION
    #: The sender's QuorumVerifier text (None unless version > 1).
    config: str | None = None


def encode_notification(n: Notification) -> bytes:
    """The current 44+ byte layout (``FastLeaderElection.buildMsg``), without the length prefix.

    The version field is always written as 2 (CURRENTVERSION), as Apache does.
    """
    cfg = (n.config or "").encode("utf-8")
    return _FULL.pack(n.state, n.leader, n.zxid, n.election_epoch, n.peer_epoch,
                      NOTIFICATION_VERSION, len(cfg)) + cfg


def decode_notification(payload: bytes | bytearray | memoryview) -> Notification:
    """Parse a notification by its length, as ``WorkerReceiver.run`` does.

    Raises:
        ProtocolError: shorter than 28 bytes, an unknown state, a bad config length or
            truncated config; Apache skips such a message, and so does zkfast.
    """
    cap = len(payload)
    if cap < 28:
        raise ProtocolError("notification", 0, "at least 28 bytes", f"{cap} bytes")
    state, leader, zxid, election_epoch = _HEAD.unpack_from(payload, 0)
    if not 0 <= state <= 3:
        raise ProtocolError("notification.state", 0, "0..3", str(state))
    version = 0
    config: str | None = None
    if cap == 28:
        peer_epoch = zxid >> 32
    else:
        if cap < 36:
            raise ProtocolError("notification.peerEpoch", 28, "8 bytes", f"{cap - 28} bytes left")
        (peer_epoch,) = _LONG.unpack_from(payload, 28)
        if cap != 40:
            if cap < 40:
                raise ProtocolError("notification.version", 36, "4 bytes",
                                    f"{cap - 36} bytes left")
            (version,) = _INT.unpack_from(payload, 36)
    if version > 1:
        if cap < 44:
            raise ProtocolError("notification.configLength", 40, "4 bytes",
                                f"{cap - 40} bytes left")
        (n,) = _INT.unpack_from(payload, 40)
        if n < 0 or n > cap or 44 + n > cap:
            raise ProtocolError("notification.configLength", 40, f"0..{cap - 44}", str(n))
        config = bytes(payload[44:44 + n]).decode("utf-8", "replace")
    return Notification(state, leader, zxid, election_epoch, peer_epoch, version, config)


# --------------------------------------------------------------------------- handshake


@dataclass(frozen=True, slots=True)
class ElectionHandshake:
    """The header the dialling side of an election connection writes."""

    sid: int
    #: PROTOCOL_V1, PROTOCOL_V2, or None for a pre-3.5 peer (sid only).
    protocol_version: int | None = PROTOCOL_V1
    #: The dialler's election address(es), ``host:port`` (``|``-joined for V2).
    addr: str = ""


def encode_handshake(h: ElectionHandshake) -> bytes:
    """Encode the connection header (``QuorumCnxManager.initiateConnection``)."""
    if h.protocol_version is None:
        return _LONG.pack(h.sid)
    addr = h.addr.encode("utf-8")
    return _LONG.pack(h.protocol_version) + _LONG.pack(h.sid) + _INT.pack(len(addr)) + addr


def decode_handshake(buf: bytes | bytearray | memoryview) -> tuple[ElectionHandshake, int] | None:
    """Parse the connection header from the start of ``buf``.

    Returns ``(handshake, bytes_used)``, or None while more bytes are needed.

    Raises:
        ProtocolError: an unknown protocol version or an address length outside 1..2048.
    """
    if len(buf) < 8:
        return None
    (first,) = _LONG.unpack_from(buf, 0)
    if first >= 0:
        return ElectionHandshake(first, None, ""), 8
    if first not in (PROTOCOL_V1, PROTOCOL_V2):
        raise ProtocolError("handshake.protocolVersion", 0, f"{PROTOCOL_V1} or {PROTOCOL_V2}",
                            str(first))
    if len(buf) < 20:
        return None
    (sid,) = _LONG.unpack_from(buf, 8)
    (n,) = _INT.unpack_from(buf, 16)
    if not 0 < n <= ELECTION_ADDR_BYTES_MAX:
        raise ProtocolError("handshake.addrLen", 16, f"1..{ELECTION_ADDR_BYTES_MAX}", str(n))
    if len(buf) < 20 + n:
        return None
    addr = bytes(buf[20:20 + n]).decode("utf-8", "replace")
    return ElectionHandshake(sid, first, addr), 20 + n


# --------------------------------------------------------------------------- quorum packets

_ID = (("scheme", core.T_USTRING, None), ("id", core.T_USTRING, None))
QUORUM_PACKET: tuple[tuple[str, int, Any], ...] = (
    ("type", core.T_INT, None),
    ("zxid", core.T_LONG, None),
    ("data", core.T_BUFFER, None),
    ("authinfo", core.T_VECTOR, ("authinfo", core.T_RECORD, _ID)),
)
_LEARNER_INFO = struct.Struct(">qiq")


@dataclass(frozen=True, slots=True)
class QuorumPacket:
    """``QuorumPacket`` (zookeeper.jute): data and authinfo may be None (null on the wire)."""

    type: int
    zxid: int
    data: bytes | None = None
    authinfo: tuple[tuple[str, str], ...] | None = None


def encode_quorum_packet(p: QuorumPacket) -> bytes:
    """Jute-encode one packet (no length prefix)."""
    out = bytearray()
    auth = None if p.authinfo is None else [tuple(a) for a in p.authinfo]
    core.encode_record(QUORUM_PACKET, (p.type, p.zxid, p.data, auth), out)
    return bytes(out)


def decode_quorum_packet(buf: bytes | bytearray | memoryview) -> QuorumPacket:
    """Decode exactly one packet.

    Raises:
        ProtocolError: truncated, bad lengths, or trailing bytes.
    """
    (t, zxid, data, auth), end = core.decode_record(QUORUM_PACKET, buf, 0, len(buf))
    if end != len(buf):
        raise ProtocolError("QuorumPacket", end, "end of packet", f"{len(buf) - end} more bytes")
    return QuorumPacket(t, zxid, data, None if auth is None else tuple(tuple(a) for a in auth))


def split_quorum_packets(buf: bytes | bytearray | memoryview, offset: int,
                         packet_bytes_max: int) -> tuple[list[bytes], int]:
    """Find the whole QuorumPackets in ``buf[offset:]``.

    Returns the packets' bytes and the offset of the first incomplete one.

    Raises:
        ProtocolError: a negative length other than -1, or a packet larger than
            ``packet_bytes_max`` (the runtime closes the connection).
    """
    out: list[bytes] = []
    n = len(buf)
    pos = offset
    while True:
        end = _packet_end(buf, pos, n, packet_bytes_max)
        if end < 0:
            return out, pos
        out.append(bytes(buf[pos:end]))
        pos = end


def _read_len(buf: Any, at: int, field: str, limit: int) -> int:
    v = int(_INT.unpack_from(buf, at)[0])
    if v < -1 or v > limit:
        raise ProtocolError(field, at, f"-1..{limit}", str(v))
    return v


def _packet_end(buf: Any, start: int, n: int, limit: int) -> int:
    """The end offset of the packet at ``start``, or -1 if it is not all there yet."""
    p = start + 12
    if p + 4 > n:
        return -1
    dlen = _read_len(buf, p, "QuorumPacket.data.length", limit)
    p += 4 + max(dlen, 0)
    if p + 4 > n:
        if p - start > limit:
            raise ProtocolError("QuorumPacket", start, f"at most {limit} bytes", "more")
        return -1
    count = _read_len(buf, p, "QuorumPacket.authinfo.count", limit)
    p += 4
    for i in range(max(count, 0)):
        for f in ("scheme", "id"):
            if p + 4 > n:
                return -1
            slen = _read_len(buf, p, f"QuorumPacket.authinfo[{i}].{f}.length", limit)
            p += 4 + max(slen, 0)
            if p - start > limit:
                raise ProtocolError("QuorumPacket", start, f"at most {limit} bytes", "more")
    if p > n:
        return -1
    if p - start > limit:
        raise ProtocolError("QuorumPacket", start, f"at most {limit} bytes", f"{p - start}")
    return p


@dataclass(frozen=True, slots=True)
class LearnerInfo:
    """``LearnerInfo{long serverid; int protocolVersion; long configVersion}``."""

    sid: int
    protocol_version: int = LEARNER_PROTOCOL_VERSION
    config_version: int = 0


def encode_learner_info(li: LearnerInfo) -> bytes:
    return _LEARNER_INFO.pack(li.sid, li.protocol_version, li.config_version)


def decode_learner_info(data: bytes | None) -> LearnerInfo:
    """Parse FOLLOWERINFO/OBSERVERINFO data as ``LearnerHandler.run`` does.

    8 bytes (pre-3.4) hold only the sid; 12 add the protocol version; 20 the config version.

    Raises:
        ProtocolError: null or shorter than 8 bytes.
    """
    if data is None or len(data) < 8:
        raise ProtocolError("LearnerInfo.serverid", 0, "8 bytes",
                            "null" if data is None else f"{len(data)} bytes")
    (sid,) = _LONG.unpack_from(data, 0)
    proto = 0
    cfg = 0
    if len(data) >= 12:
        (proto,) = _INT.unpack_from(data, 8)
    if len(data) >= 20:
        (cfg,) = _LONG.unpack_from(data, 12)
    return LearnerInfo(sid, proto, cfg)


def encode_int_body(v: int) -> bytes:
    """A 4-byte big-endian int body (LEADERINFO, ACKEPOCH); the value is truncated to 32 bits
    as Java's ``(int)`` cast does."""
    v &= 0xFFFFFFFF
    return _INT.pack(v - (1 << 32) if v >> 31 else v)


def decode_int_body(data: bytes | None, field: str) -> int:
    """Read the leading int of a LEADERINFO/ACKEPOCH body.

    Raises:
        ProtocolError: null or shorter than 4 bytes.
    """
    if data is None or len(data) < 4:
        raise ProtocolError(field, 0, "4 bytes", "null" if data is None else f"{len(data)} bytes")
    return int(_INT.unpack_from(data, 0)[0])
