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
(current epoch, or -1). The other bodies (zk-formats §4.2) are plain ``DataOutputStream``
bytes: REQUEST ``{long sessionId; int cxid; int type}`` + the request record; a learner's PING
``{long sessionId; int timeout}*``; REVALIDATE ``{long sessionId; int timeout}`` one way and
``{long sessionId; boolean valid}`` back; COMMITANDACTIVATE ``long designatedLeader``;
INFORMANDACTIVATE ``long designatedLeader`` + txn bytes; NEWLEADER the config text.

The leader's stream is not only packets: right after a SNAP packet it writes, on the same
archive, the snapshot body of ``ZKDatabase.serializeSnapshot`` (``SerializeUtils``: ``int``
session count, ``{long id; int timeout}*``; ``DataTree.serialize``: the ACL map ``int`` count,
``{long id; vector<ACL>}*``, the nodes ``{ustring path; buffer data; long aclId;
StatPersisted}*`` ended by the path ``"/"``; no digest, no seals) and then the ustring
``"BenWasHere"`` (``LearnerHandler.syncFollower``). ``QuorumStreamSplitter`` splits such a
stream: it returns each packet's bytes and, after a SNAP packet, the whole snapshot stream as
one item, found by parsing it record by record as the bytes arrive.

Every decoder raises ``ProtocolError`` naming the field on malformed input; the caller drops
that link (never the peer).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
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
    "QuorumStreamSplitter",
    "SNAPSHOT_STREAM_BYTES_MAX",
    "SYNC_SNAPSHOT_SIGNATURE",
    "LearnerRequest",
    "encode_request_body",
    "decode_request_body",
    "encode_session_timeouts",
    "decode_session_timeouts",
    "encode_revalidate_request",
    "decode_revalidate_request",
    "encode_revalidate_reply",
    "decode_revalidate_reply",
    "encode_long_body",
    "decode_long_body",
    "encode_inform_and_activate",
    "decode_inform_and_activate",
    "encode_config_body",
    "decode_config_body",
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


# --------------------------------------------------------------------------- packet bodies

_REQUEST_HEAD = struct.Struct(">qii")
_SESSION_TIMEOUT = struct.Struct(">qi")
_REVALIDATE_REPLY = struct.Struct(">q?")


def _body_size(data: bytes | None, field: str, n: int) -> bytes:
    if data is None or len(data) < n:
        raise ProtocolError(field, 0, f"{n} bytes", "null" if data is None else
                            f"{len(data)} bytes")
    return data


@dataclass(frozen=True, slots=True)
class LearnerRequest:
    """The body of a REQUEST packet (``Learner.request`` / ``LearnerHandler.run``)."""

    session_id: int
    cxid: int
    #: The client OpCode (createSession -10, closeSession -11, sync 9, ...).
    op: int
    #: The request record after the RequestHeader (createSession: ``int timeout``;
    #: closeSession: empty).
    body: bytes


def encode_request_body(session_id: int, cxid: int, op: int, body: bytes) -> bytes:
    """REQUEST data: ``long sessionId; int cxid; int type`` + the request record bytes."""
    return _REQUEST_HEAD.pack(session_id, cxid, op) + body


def decode_request_body(data: bytes | None) -> LearnerRequest:
    """Split REQUEST data; whatever follows the 16-byte head is the body.

    Raises:
        ProtocolError: null or shorter than 16 bytes (Apache's ``ByteBuffer.getLong`` fails
            and the learner's link goes).
    """
    data = _body_size(data, "REQUEST.data", _REQUEST_HEAD.size)
    session_id, cxid, op = _REQUEST_HEAD.unpack_from(data, 0)
    return LearnerRequest(session_id, cxid, op, bytes(data[_REQUEST_HEAD.size:]))


def encode_session_timeouts(pairs: Iterable[tuple[int, int]]) -> bytes:
    """A learner's PING data: ``{long sessionId; int timeout}`` per touched session."""
    pack = _SESSION_TIMEOUT.pack
    return b"".join(pack(sid, timeout) for sid, timeout in pairs)


def decode_session_timeouts(data: bytes | None) -> list[tuple[int, int]]:
    """Read a learner's PING data (``LearnerHandler.run``'s ``while (dis.available() > 0)``).

    Null or empty data is no session. Raises:
        ProtocolError: a length that is not a multiple of 12 (Apache's ``readLong``/``readInt``
            hit EOF and the link goes).
    """
    if not data:
        return []
    if len(data) % _SESSION_TIMEOUT.size:
        raise ProtocolError("PING.data", len(data) - len(data) % _SESSION_TIMEOUT.size,
                            "12 bytes per session", f"{len(data)} bytes")
    return [(int(a), int(b)) for a, b in _SESSION_TIMEOUT.iter_unpack(data)]


def encode_revalidate_request(session_id: int, timeout_ms: int) -> bytes:
    """REVALIDATE from a learner: ``long sessionId; int timeout`` (``Learner.validateSession``)."""
    return _SESSION_TIMEOUT.pack(session_id, timeout_ms)


def decode_revalidate_request(data: bytes | None) -> tuple[int, int]:
    """``(session_id, timeout_ms)`` of a learner's REVALIDATE.

    Raises:
        ProtocolError: null or shorter than 12 bytes.
    """
    data = _body_size(data, "REVALIDATE.data", _SESSION_TIMEOUT.size)
    session_id, timeout = _SESSION_TIMEOUT.unpack_from(data, 0)
    return int(session_id), int(timeout)


def encode_revalidate_reply(session_id: int, valid: bool) -> bytes:
    """The leader's REVALIDATE reply: ``long sessionId; boolean valid``."""
    return _REVALIDATE_REPLY.pack(session_id, valid)


def decode_revalidate_reply(data: bytes | None) -> tuple[int, bool]:
    """``(session_id, valid)``; any non-zero byte is true (``DataInputStream.readBoolean``).

    Raises:
        ProtocolError: null or shorter than 9 bytes.
    """
    data = _body_size(data, "REVALIDATE.data", _REVALIDATE_REPLY.size)
    (session_id,) = _LONG.unpack_from(data, 0)
    return int(session_id), data[8] != 0


def encode_long_body(v: int) -> bytes:
    """An 8-byte big-endian long body (COMMITANDACTIVATE's designated leader)."""
    return _LONG.pack(v)


def decode_long_body(data: bytes | None, field: str) -> int:
    """Read the leading long of a body.

    Raises:
        ProtocolError: null or shorter than 8 bytes.
    """
    data = _body_size(data, field, 8)
    return int(_LONG.unpack_from(data, 0)[0])


def encode_inform_and_activate(designated_leader: int, txn: bytes) -> bytes:
    """INFORMANDACTIVATE data: ``long designatedLeader`` + the txn bytes."""
    return _LONG.pack(designated_leader) + txn


def decode_inform_and_activate(data: bytes | None) -> tuple[int, bytes]:
    """``(designated_leader, txn_bytes)`` of INFORMANDACTIVATE.

    Raises:
        ProtocolError: null or shorter than 8 bytes.
    """
    data = _body_size(data, "INFORMANDACTIVATE.data", 8)
    return int(_LONG.unpack_from(data, 0)[0]), bytes(data[8:])


def encode_config_body(config: str) -> bytes:
    """NEWLEADER data: the last-seen config text, UTF-8 (``QuorumVerifier.toString``)."""
    return config.encode("utf-8")


def decode_config_body(data: bytes | None) -> str | None:
    """NEWLEADER data as text (None when null: a pre-3.4 leader); bad UTF-8 is replaced."""
    return None if data is None else bytes(data).decode("utf-8", "replace")


# --------------------------------------------------------------------------- the stream splitter

#: The ustring that ends a SNAP stream (``LearnerHandler.syncFollower``).
SYNC_SNAPSHOT_SIGNATURE = "BenWasHere"
#: Default bound on one SNAP stream held in memory (a named limit, not Apache's: Apache
#: streams the snapshot into its tree; zkfast holds the bytes until the end is found).
SNAPSHOT_STREAM_BYTES_MAX = 1 << 36

# Snapshot stream phases.
_P_SESSION_COUNT = 0
_P_SESSIONS = 1
_P_ACL_COUNT = 2
_P_ACL_ENTRY = 3
_P_ACL_ITEM = 4
_P_NODES = 5
_P_SIGNATURE = 6
_SESSION_BYTES = 12
_NODE_TAIL_BYTES = 8 + 60  # long aclId + StatPersisted


class QuorumStreamSplitter:
    """Split one direction of a quorum connection into packets (and a SNAP's stream).

    ``feed(data)`` returns every item completed by ``data``, in order: the bytes of each
    QuorumPacket (as ``split_quorum_packets`` finds them) and, right after a packet of type
    SNAP, the whole snapshot stream that follows it (body + ``"BenWasHere"``) as one item.
    The stream's end is found by walking its records as bytes arrive; the walk resumes where
    it stopped, so a snapshot fed in small pieces is parsed once. Only the bytes of the
    current, incomplete item are kept.

    Args:
        packet_bytes_max: the largest packet, and the largest string or buffer inside a
            snapshot stream (``jute.maxbuffer``).
        snapshot_bytes_max: the largest snapshot stream held in memory.
        snapshots: whether a SNAP packet is followed by a stream (True on the learner's side of
            a connection; a leader reading a learner never expects one).

    Raises (from ``feed``):
        ProtocolError: a bad length or count, an oversized packet or stream. The splitter is
            unusable afterwards; the caller drops the link.
    """

    __slots__ = ("_buf", "_limit", "_snap_limit", "_snapshots", "_phase", "_scan", "_left",
                 "_entries", "_failed")

    def __init__(self, packet_bytes_max: int, *,
                 snapshot_bytes_max: int = SNAPSHOT_STREAM_BYTES_MAX,
                 snapshots: bool = True) -> None:
        self._buf = bytearray()
        self._limit = packet_bytes_max
        self._snap_limit = snapshot_bytes_max
        self._snapshots = snapshots
        #: None between packets; else the snapshot stream phase (_P_*).
        self._phase: int | None = None
        #: Offset in ``_buf`` of the next snapshot record to parse (the stream starts at 0).
        self._scan = 0
        #: Sessions left to skip, or ACLs left in the current ACL map entry.
        self._left = 0
        #: ACL map entries left.
        self._entries = 0
        self._failed = False

    @property
    def buffered_bytes(self) -> int:
        """Bytes held for the item in progress."""
        return len(self._buf)

    @property
    def in_snapshot(self) -> bool:
        """Whether the splitter is inside a SNAP stream."""
        return self._phase is not None

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Add received bytes; return the items they complete (see the class docstring)."""
        if self._failed:
            raise ProtocolError("QuorumStreamSplitter", 0, "a usable stream",
                                "an earlier error")
        buf = self._buf
        buf += data
        out: list[bytes] = []
        pos = 0
        n = len(buf)
        try:
            while True:
                if self._phase is not None:
                    end = self._snapshot_end(buf, n)
                    if end < 0:
                        break
                    out.append(bytes(buf[:end]))
                    del buf[:end]
                    n = len(buf)
                    continue
                end = _packet_end(buf, pos, n, self._limit)
                if end < 0:
                    break
                out.append(bytes(buf[pos:end]))
                if self._snapshots and _INT.unpack_from(buf, pos)[0] == PacketType.SNAP:
                    del buf[:end]
                    n = len(buf)
                    pos = 0
                    self._phase = _P_SESSION_COUNT
                    self._scan = 0
                    continue
                pos = end
        except ProtocolError:
            self._failed = True
            raise
        if pos:
            del buf[:pos]
        return out

    def _snapshot_end(self, buf: bytearray, n: int) -> int:
        """Walk the snapshot records from ``_scan``: the stream's end offset, or -1 when more
        bytes are needed (the walk then resumes at the first incomplete record)."""
        limit = self._limit
        p = self._scan
        phase = self._phase
        left = self._left
        entries = self._entries
        unpack_int = _INT.unpack_from
        while True:
            if phase == _P_NODES:
                # The bulk of a stream: one node record per turn, whole or not at all.
                done = False
                while True:
                    if p + 4 > n:
                        break
                    plen = unpack_int(buf, p)[0]
                    if plen == 1:
                        if p + 5 > n:
                            break
                        if buf[p + 4] == 0x2F:  # the path "/" ends the node list
                            p += 5
                            done = True
                            break
                    elif plen < -1 or plen > limit:
                        raise ProtocolError("snapshot.node.path.length", p, f"-1..{limit}",
                                            str(plen))
                    q = p + 4 + max(plen, 0)
                    if q + 4 > n:
                        break
                    dlen = unpack_int(buf, q)[0]
                    if dlen < -1 or dlen > limit:
                        raise ProtocolError("snapshot.node.data.length", q, f"-1..{limit}",
                                            str(dlen))
                    q += 4 + max(dlen, 0) + _NODE_TAIL_BYTES
                    if q > n:
                        break
                    p = q
                if not done:
                    break
                phase = _P_SIGNATURE
            elif phase == _P_SESSION_COUNT:
                if p + 4 > n:
                    break
                left = unpack_int(buf, p)[0]
                if left < 0 or left * _SESSION_BYTES > self._snap_limit:
                    raise ProtocolError("snapshot.sessions.count", p,
                                        f"0..{self._snap_limit // _SESSION_BYTES}", str(left))
                p += 4
                phase = _P_SESSIONS
            elif phase == _P_SESSIONS:
                if p + left * _SESSION_BYTES > n:
                    break
                p += left * _SESSION_BYTES
                left = 0
                phase = _P_ACL_COUNT
            elif phase == _P_ACL_COUNT:
                if p + 4 > n:
                    break
                entries = unpack_int(buf, p)[0]
                if entries < 0 or entries * 12 > self._snap_limit:
                    raise ProtocolError("snapshot.acls.count", p,
                                        f"0..{self._snap_limit // 12}", str(entries))
                p += 4
                phase = _P_ACL_ENTRY
            elif phase == _P_ACL_ENTRY:
                if entries == 0:
                    phase = _P_NODES
                    continue
                if p + 12 > n:
                    break
                items = unpack_int(buf, p + 8)[0]
                if items < -1 or items > limit:
                    raise ProtocolError("snapshot.acls.vector.count", p + 8, f"-1..{limit}",
                                        str(items))
                p += 12
                entries -= 1
                left = max(items, 0)
                phase = _P_ACL_ITEM
            elif phase == _P_ACL_ITEM:
                if left == 0:
                    phase = _P_ACL_ENTRY
                    continue
                # One ACL: int perms; ustring scheme; ustring id.
                q = p + 4
                for f in ("scheme", "id"):
                    if q + 4 > n:
                        q = -1
                        break
                    slen = unpack_int(buf, q)[0]
                    if slen < -1 or slen > limit:
                        raise ProtocolError(f"snapshot.acls.acl.{f}.length", q, f"-1..{limit}",
                                            str(slen))
                    q += 4 + max(slen, 0)
                if q < 0 or q > n:
                    break
                p = q
                left -= 1
            else:  # _P_SIGNATURE
                if p + 4 > n:
                    break
                slen = unpack_int(buf, p)[0]
                if slen < -1 or slen > limit:
                    raise ProtocolError("snapshot.signature.length", p, f"-1..{limit}",
                                        str(slen))
                end: int = p + 4 + max(slen, 0)
                if end > n:
                    break
                self._phase = None
                self._scan = self._left = self._entries = 0
                return end
        self._scan = p
        self._phase = phase
        self._left = left
        self._entries = entries
        if n > self._snap_limit:
            raise ProtocolError("snapshot", 0, f"at most {self._snap_limit} bytes", str(n))
        return -1
