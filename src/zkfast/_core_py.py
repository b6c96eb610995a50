"""Pure-Python twin of ``zkfast._core``: the reference semantics of the compiled hot paths.

Everything here is written for clarity; ``_core.pyx`` must behave identically (the property
tests compare the two on random input, both ways). Nothing here does IO, reads a clock or keeps
global state.

Contents:

* ``ProtocolError``: the one exception a decoder raises. It names the field, the byte offset,
  what was expected and what was found.
* Frame splitting: ``split_frames`` cuts every complete ``int32 length + payload`` frame out of
  a receive buffer in one call, validating each length before anything is allocated.
* Jute records: a record *layout* is a tuple of field specs ``(name, code, sub)`` where ``code``
  is one of the ``T_*`` constants and ``sub`` is the element spec of a vector (itself a
  ``(name, code, sub)`` triple) or the layout of a nested record. ``decode_record`` walks a
  layout over a buffer and returns a tuple of values (nested records as tuples, vectors as
  lists, null strings/buffers/vectors as ``None``); ``encode_record`` is its inverse.
* Per-request fast paths: ``decode_request_header`` (xid and opcode of a request frame),
  ``encode_reply_frame`` (length prefix + ReplyHeader + optional body, one bytes object) and
  ``encode_stat`` (the 68-byte wire Stat). They behave exactly like the generic walk over
  ``REQUEST_HEADER``/``REPLY_HEADER``/``STAT`` would, including the ProtocolError fields.
  ``STAT_LAYOUT`` is the wire Stat layout; a layout that nests this very object gets the
  compiled ``encode_stat`` path for free. ``java_utf8`` is the ustring encoder on its own.
* zxid arithmetic: ``make_zxid``, ``zxid_epoch``, ``zxid_counter`` with range checks.
* Elections and quorums: ``vote_greater`` (FastLeaderElection.totalOrderPredicate) and
  ``count_quorum`` (QuorumHierarchical.containsQuorum; QuorumMaj is its one-group case), the
  loops ``core/election.py`` and ``quorum.py`` run per notification and per ack, and
  ``AckTracker``, the leader's outstanding proposals and their acks (``core/zab.py``).
* Snapshots: ``ZNode``; ``node_digest`` (one znode's CRC of the tree digest);
  ``encode_snapshot_nodes`` and ``encode_snapshot`` (a tree's node records, and a whole
  stream in one object); ``SnapshotLoader`` (node records straight into a tree's znodes, a
  piece at a time, the reverse of the two).

Conventions shared by both twins:

* Layouts are tuples all the way down (the compiled decoder rejects a list with ``TypeError``).
* Buffers are byte buffers (``bytes``, ``bytearray`` or a contiguous byte ``memoryview``).
  A negative ``offset`` is a caller bug (``ValueError``); outside bytes never are: anything
  wrong with them is a ``ProtocolError``.
* Encoders check every integer against its jute width (``OverflowError``), every value's type
  (``TypeError``: ``int`` for numbers, ``str`` for ustrings, a bytes-like for buffers) and every
  record's arity (``ValueError``). On any error ``out`` is left exactly as it was.
* A ustring is written as Java's ``BinaryOutputArchive.writeString`` writes it: each UTF-16
  code unit on its own (1-3 bytes), so lone surrogates pass through and a character beyond
  U+FFFF becomes two 3-byte surrogates (6 bytes, CESU-8) rather than 4-byte UTF-8. That keeps
  txn logs, snapshots and digests byte-identical with Apache's. It is read back with standard
  UTF-8 and ``'replace'``, as Java's reader does.
* A ``byte`` field encodes ``-128..255`` (signed or unsigned view of one byte) and decodes signed.
"""

from __future__ import annotations

import struct
import zlib
from operator import index as _index
from types import MappingProxyType
from typing import Any

__all__ = [
    "ProtocolError",
    "T_INT",
    "T_LONG",
    "T_BOOL",
    "T_USTRING",
    "T_BUFFER",
    "T_VECTOR",
    "T_RECORD",
    "T_BYTE",
    "split_frames",
    "decode_record",
    "encode_record",
    "decode_request_header",
    "encode_reply_frame",
    "encode_stat",
    "java_utf8",
    "STAT_BYTES",
    "STAT_LAYOUT",
    "REPLY_HEADER_BYTES",
    "make_zxid",
    "zxid_epoch",
    "zxid_counter",
    "vote_greater",
    "count_quorum",
    "AckTracker",
    "encode_snapshot_nodes",
    "encode_snapshot",
    "SnapshotLoader",
    "node_digest",
    "ZNode",
    "ZNODE_FIELDS",
    "IMPLEMENTATION",
]

IMPLEMENTATION = "pure"

T_INT = 1
T_LONG = 2
T_BOOL = 3
T_USTRING = 4
T_BUFFER = 5
T_VECTOR = 6
T_RECORD = 7
T_BYTE = 8

_INT = struct.Struct(">i")
_LONG = struct.Struct(">q")
_REQUEST_HEADER = struct.Struct(">ii")
_REPLY_FRAME_HEAD = struct.Struct(">iiqi")

#: Size in bytes of the wire Stat record and of a ReplyHeader.
STAT_BYTES = 68
REPLY_HEADER_BYTES = 16

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1

_TYPE_NAMES = {
    T_INT: "int",
    T_LONG: "long",
    T_BOOL: "boolean",
    T_USTRING: "ustring",
    T_BUFFER: "buffer",
    T_VECTOR: "vector",
    T_RECORD: "record",
    T_BYTE: "byte",
}


class ProtocolError(ValueError):
    """Malformed outside input: names the field, the offset, what was expected and found."""

    def __init__(self, field: str, offset: int, expected: str, found: str) -> None:
        super().__init__(f"{field} at offset {offset}: expected {expected}, found {found}")
        self.field = field
        self.offset = offset
        self.expected = expected
        self.found = found

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.field, self.offset, self.expected, self.found))


# --------------------------------------------------------------------------- frames


def split_frames(
    buf: bytes | bytearray | memoryview, offset: int, frame_bytes_max: int
) -> tuple[list[bytes], int]:
    """Cut every complete length-prefixed frame out of ``buf`` starting at ``offset``.

    Returns the payloads (without their 4-byte length) and the offset just past the last
    complete frame; an incomplete tail is left for the next call.

    Raises:
        ProtocolError: a length is negative or above ``frame_bytes_max``.
    """
    if offset < 0:
        raise ValueError(f"offset {offset} is negative")
    frames: list[bytes] = []
    end = len(buf)
    pos = offset
    while end - pos >= 4:
        (n,) = _INT.unpack_from(buf, pos)
        if n < 0 or n > frame_bytes_max:
            raise ProtocolError("frame.length", pos, f"0..{frame_bytes_max}", str(n))
        if end - pos - 4 < n:
            break
        frames.append(bytes(buf[pos + 4 : pos + 4 + n]))
        pos += 4 + n
    return frames, pos


# --------------------------------------------------------------------------- jute decode


def _need(field: str, pos: int, end: int, n: int, what: str) -> None:
    if end - pos < n:
        raise ProtocolError(field, pos, f"{n} bytes of {what}", f"{max(end - pos, 0)} bytes left")


def _decode_value(
    spec: tuple[str, int, Any], buf: Any, pos: int, end: int, prefix: str
) -> tuple[Any, int]:
    name, code, sub = spec
    field = prefix + name
    if code == T_INT:
        _need(field, pos, end, 4, "int")
        return _INT.unpack_from(buf, pos)[0], pos + 4
    if code == T_LONG:
        _need(field, pos, end, 8, "long")
        return _LONG.unpack_from(buf, pos)[0], pos + 8
    if code == T_BOOL:
        _need(field, pos, end, 1, "boolean")
        return buf[pos] != 0, pos + 1
    if code == T_BYTE:
        _need(field, pos, end, 1, "byte")
        b = buf[pos]
        return (b - 256 if b > 127 else b), pos + 1
    if code == T_USTRING or code == T_BUFFER:
        _need(field, pos, end, 4, "length")
        (n,) = _INT.unpack_from(buf, pos)
        if n == -1:
            return None, pos + 4
        if n < 0 or n > end - pos - 4:
            raise ProtocolError(field + ".length", pos, f"-1..{end - pos - 4}", str(n))
        raw = bytes(buf[pos + 4 : pos + 4 + n])
        if code == T_USTRING:
            return raw.decode("utf-8", "replace"), pos + 4 + n
        return raw, pos + 4 + n
    if code == T_VECTOR:
        _need(field, pos, end, 4, "count")
        (n,) = _INT.unpack_from(buf, pos)
        if n == -1:
            return None, pos + 4
        # Every element takes at least one byte, so a count above the bytes left is a lie.
        if n < 0 or n > end - pos - 4:
            raise ProtocolError(field + ".count", pos, f"-1..{end - pos - 4}", str(n))
        pos += 4
        items = []
        for i in range(n):
            value, pos = _decode_value(sub, buf, pos, end, f"{field}[{i}].")
            items.append(value)
        return items, pos
    if code == T_RECORD:
        return _decode_fields(sub, buf, pos, end, field + ".")
    raise ProtocolError(field, pos, "a known jute type", f"type code {code}")


def _decode_fields(
    layout: tuple[Any, ...], buf: Any, pos: int, end: int, prefix: str
) -> tuple[tuple[Any, ...], int]:
    values = []
    for spec in layout:
        value, pos = _decode_value(spec, buf, pos, end, prefix)
        values.append(value)
    return tuple(values), pos


def decode_record(
    layout: tuple[Any, ...], buf: bytes | bytearray | memoryview, offset: int = 0, end: int = -1
) -> tuple[tuple[Any, ...], int]:
    """Decode one record of ``layout`` from ``buf[offset:end]``.

    Returns the field values as a tuple and the offset just past the record.

    Raises:
        ProtocolError: the bytes run out or a length/count is out of range.
    """
    if offset < 0:
        raise ValueError(f"offset {offset} is negative")
    if end < 0 or end > len(buf):
        end = len(buf)
    return _decode_fields(layout, buf, offset, end, "")


def decode_request_header(frame: bytes | bytearray | memoryview) -> tuple[int, int]:
    """Return ``(xid, type)`` of a request frame (the payload, without its length prefix).

    Same result and errors as ``decode_record(REQUEST_HEADER, frame)``; the body starts at 8.

    Raises:
        ProtocolError: the frame is shorter than 8 bytes.
    """
    n = len(frame)
    if n < 8:
        if n < 4:
            raise ProtocolError("xid", 0, "4 bytes of int", f"{n} bytes left")
        raise ProtocolError("type", 4, "4 bytes of int", f"{n - 4} bytes left")
    xid, type_ = _REQUEST_HEADER.unpack_from(frame, 0)
    return xid, type_


# --------------------------------------------------------------------------- jute encode

#: The wire Stat layout (``wire.jute.STAT`` should be this very object: the compiled writer
#: recognises it by identity and writes it with the ``encode_stat`` fast path).
STAT_LAYOUT: tuple[tuple[str, int, None], ...] = tuple(
    (name, T_LONG if width == 8 else T_INT, None)
    for name, width in (
        ("czxid", 8),
        ("mzxid", 8),
        ("ctime", 8),
        ("mtime", 8),
        ("version", 4),
        ("cversion", 4),
        ("aversion", 4),
        ("ephemeralOwner", 8),
        ("dataLength", 4),
        ("numChildren", 4),
        ("pzxid", 8),
    )
)


def _check_int(name: str, value: Any, lo: int, hi: int, what: str) -> int:
    v = _index(value)  # TypeError for floats, strings, None
    if not lo <= v <= hi:
        raise OverflowError(f"{name}: {v} does not fit in {what}")
    return v


def java_utf8(text: str) -> bytes:
    """``text`` encoded as Java's jute writer does: UTF-8 per UTF-16 code unit (CESU-8)."""
    if not text.isascii() and max(text) > "\uffff":
        text = "".join(
            c if c <= "\uffff" else chr(0xD7C0 + (ord(c) >> 10)) + chr(0xDC00 + (ord(c) & 0x3FF))
            for c in text
        )
    return text.encode("utf-8", "surrogatepass")


def _encode_value(spec: tuple[str, int, Any], value: Any, out: bytearray) -> None:
    name, code, sub = spec
    if code == T_INT:
        out += _INT.pack(_check_int(name, value, INT32_MIN, INT32_MAX, "an int"))
    elif code == T_LONG:
        out += _LONG.pack(_check_int(name, value, INT64_MIN, INT64_MAX, "a long"))
    elif code == T_BOOL:
        out.append(1 if value else 0)
    elif code == T_BYTE:
        out.append(_check_int(name, value, -128, 255, "a byte") & 0xFF)
    elif code == T_USTRING:
        if value is None:
            out += b"\xff\xff\xff\xff"
        elif not isinstance(value, str):
            raise TypeError(f"{name}: ustring needs str or None, got {type(value).__name__}")
        else:
            raw = java_utf8(value)
            if len(raw) > INT32_MAX:
                raise OverflowError(f"{len(raw)} bytes do not fit in a jute length")
            out += _INT.pack(len(raw))
            out += raw
    elif code == T_BUFFER:
        if value is None:
            out += b"\xff\xff\xff\xff"
        elif isinstance(value, str):
            raise TypeError(f"{name}: buffer needs a bytes-like object or None, got str")
        else:
            with memoryview(value) as view:  # TypeError for anything without a buffer
                if view.nbytes > INT32_MAX:
                    raise OverflowError(f"{view.nbytes} bytes do not fit in a jute length")
                out += _INT.pack(view.nbytes)
                out += view
    elif code == T_VECTOR:
        if value is None:
            out += b"\xff\xff\xff\xff"
        else:
            out += _INT.pack(len(value))
            for item in value:
                _encode_value(sub, item, out)
    elif code == T_RECORD:
        _encode_fields(sub, value, out)
    else:
        raise ValueError(f"{name}: unknown jute type code {code}")


def _encode_fields(layout: tuple[Any, ...], values: Any, out: bytearray) -> None:
    if len(values) != len(layout):
        raise ValueError(f"record needs {len(layout)} values, got {len(values)}")
    for spec, value in zip(layout, values, strict=True):
        _encode_value(spec, value, out)


def encode_record(layout: tuple[Any, ...], values: Any, out: bytearray) -> None:
    """Append the jute encoding of ``values`` (a sequence matching ``layout``) to ``out``.

    Raises:
        OverflowError: an integer does not fit its jute width.
        TypeError: a value has the wrong type.
        ValueError: a record has the wrong number of values, or a layout an unknown code.
    """
    record = bytearray()  # built aside, so a failure leaves ``out`` untouched
    _encode_fields(layout, values, record)
    out += record


def encode_stat(stat: Any, out: bytearray) -> None:
    """Append the 68-byte wire Stat (11 fields, ``STAT`` layout order) to ``out``.

    Same bytes and errors as ``encode_record(STAT, stat, out)``.
    """
    record = bytearray()
    _encode_fields(STAT_LAYOUT, stat, record)
    out += record


def encode_reply_frame(
    xid: int, zxid: int, err: int, layout: tuple[Any, ...] | None, body: Any
) -> bytes:
    """One reply frame: int32 length, ReplyHeader ``(xid, zxid, err)``, then ``body``.

    ``layout`` and ``body`` are both ``None`` for a header-only reply (errors, pings, replies
    without a response record); otherwise ``body`` is encoded with ``layout``.

    Raises:
        OverflowError, TypeError, ValueError: as ``encode_record``; ValueError also when only
        one of ``layout``/``body`` is ``None``.
    """
    xid = _check_int("xid", xid, INT32_MIN, INT32_MAX, "an int")
    zxid = _check_int("zxid", zxid, INT64_MIN, INT64_MAX, "a long")
    err = _check_int("err", err, INT32_MIN, INT32_MAX, "an int")
    if (layout is None) != (body is None):
        raise ValueError("reply layout and body must both be given or both be None")
    out = bytearray(_REPLY_FRAME_HEAD.pack(REPLY_HEADER_BYTES, xid, zxid, err))
    if layout is not None:
        _encode_fields(layout, body, out)
        n = len(out) - 4
        if n > INT32_MAX:
            raise OverflowError(f"reply of {n} bytes does not fit in a frame")
        _INT.pack_into(out, 0, n)
    return bytes(out)


# --------------------------------------------------------------------------- zxid


def make_zxid(epoch: int, counter: int) -> int:
    """Return the zxid ``epoch << 32 | counter``; both halves must fit in 32 bits.

    The result is the signed long Java holds (an epoch of 2^31 or more gives a negative zxid).
    """
    epoch, counter = _index(epoch), _index(counter)
    if not 0 <= epoch <= 0xFFFFFFFF:
        raise OverflowError(f"epoch {epoch} does not fit in 32 bits")
    if not 0 <= counter <= 0xFFFFFFFF:
        raise OverflowError(f"counter {counter} does not fit in 32 bits")
    z = (epoch << 32) | counter
    return z - (1 << 64) if z > INT64_MAX else z


def zxid_epoch(zxid: int) -> int:
    """The epoch half of a zxid (``zxid >> 32`` as ZooKeeper computes it, signed)."""
    zxid = _index(zxid)
    if not INT64_MIN <= zxid <= INT64_MAX:
        raise OverflowError(f"zxid {zxid} does not fit in 64 bits")
    return zxid >> 32


def zxid_counter(zxid: int) -> int:
    """The counter half of a zxid (its low 32 bits)."""
    zxid = _index(zxid)
    if not INT64_MIN <= zxid <= INT64_MAX:
        raise OverflowError(f"zxid {zxid} does not fit in 64 bits")
    return zxid & 0xFFFFFFFF


# --------------------------------------------------------------------------- votes and quorums


def vote_greater(
    new_id: int,
    new_zxid: int,
    new_epoch: int,
    cur_id: int,
    cur_zxid: int,
    cur_epoch: int,
    new_weight: int = 1,
) -> bool:
    """FastLeaderElection.totalOrderPredicate: is the vote (new_*) better than (cur_*)?

    A candidate whose voting weight is 0 never wins. Otherwise the order is lexicographic on
    (epoch, zxid, sid), all compared as signed longs.

    Raises:
        OverflowError: an argument does not fit in a signed long (as the compiled core, which
            compares C longs).
        TypeError: an argument is not an int.
    """
    names = ("new_id", "new_zxid", "new_epoch", "cur_id", "cur_zxid", "cur_epoch", "new_weight")
    args = (new_id, new_zxid, new_epoch, cur_id, cur_zxid, cur_epoch, new_weight)
    new_id, new_zxid, new_epoch, cur_id, cur_zxid, cur_epoch, new_weight = (
        _check_int(name, v, INT64_MIN, INT64_MAX, "a long")
        for name, v in zip(names, args, strict=True)
    )
    if new_weight == 0:
        return False
    if new_epoch != cur_epoch:
        return new_epoch > cur_epoch
    if new_zxid != cur_zxid:
        return new_zxid > cur_zxid
    return new_id > cur_id


def count_quorum(
    sids: Any,
    member_group: dict[int, int],
    member_weight: dict[int, int],
    group_half: dict[int, int],
    groups_min: int,
) -> bool:
    """Does the set ``sids`` hold a quorum? (QuorumHierarchical.containsQuorum, which with one
    group of weight-1 members is QuorumMaj's ``size > half``.)

    Args:
        sids: the acking/voting sids (duplicates count once; sids that are not voting
            members — absent from ``member_group`` — are skipped, as SyncedLearnerTracker does).
        member_group: voting sid -> group id.
        member_weight: voting sid -> weight.
        group_half: group id -> half its total weight (integer division); a group counts when
            the weight acked in it is greater.
        groups_min: how many groups must count (``numGroups // 2 + 1`` over non-zero groups).
    """
    acked: dict[int, int] = {}
    seen: set[int] = set()
    for sid in sids:
        if sid in seen:
            continue
        seen.add(sid)
        gid = member_group.get(sid)
        if gid is None:
            continue
        acked[gid] = acked.get(gid, 0) + member_weight[sid]
    if not seen:
        return False
    counted = 0
    for gid, weight in acked.items():
        if weight > group_half[gid]:
            counted += 1
    return counted >= groups_min


class AckTracker:
    """The leader's outstanding proposals and who acked each (``Leader.outstandingProposals``
    and ``Leader.processAck``); proposals commit strictly in zxid order.

    The quorum tables are ``count_quorum``'s (``QuorumVerifier.quorum_tables()``); only the
    voting members in ``member_group`` count, so an observer's ack is ignored, as is an ack of
    an epoch start (the UPTODATE ack), of a committed zxid or of one never proposed.
    ``committed_acks``, when a list, gets ``(zxid, frozenset(acks))`` of each commit.

    Raises (constructor): KeyError when a member's group has no ``group_half`` entry or a
    member has no weight; OverflowError when a sid, weight (0..2^63-1), half, ``groups_min``,
    ``last_committed`` or a group's summed member weight does not fit in a long.
    """

    __slots__ = ("_member_group", "_member_weight", "_group_half", "_groups_min", "_proposals",
                 "last_committed", "last_proposed", "committed_acks")

    def __init__(
        self,
        member_group: dict[int, int],
        member_weight: dict[int, int],
        group_half: dict[int, int],
        groups_min: int,
        *,
        last_committed: int,
    ) -> None:
        self._groups_min = _check_int("groups_min", groups_min, INT64_MIN, INT64_MAX, "a long")
        self.last_committed = _check_int("last_committed", last_committed, INT64_MIN,
                                         INT64_MAX, "a long")
        self.last_proposed = self.last_committed
        for half in group_half.values():
            _check_int("group_half", half, INT64_MIN, INT64_MAX, "a long")
        summed: dict[int, int] = {}
        for sid, gid in member_group.items():
            _check_int("sid", sid, INT64_MIN, INT64_MAX, "a long")
            if gid not in group_half:
                raise KeyError(gid)
            w = _check_int("weight", member_weight[sid], 0, INT64_MAX, "a long")
            summed[gid] = summed.get(gid, 0) + w
            if summed[gid] > INT64_MAX:
                raise OverflowError(f"weight: group {gid} sums to more than a long")
        self._member_group = dict(member_group)
        self._member_weight = dict(member_weight)
        self._group_half = dict(group_half)
        #: zxid -> (data, sids that acked it), in zxid order.
        self._proposals: dict[int, tuple[Any, set[int]]] = {}
        self.committed_acks: list[tuple[int, frozenset[int]]] | None = None

    @property
    def outstanding(self) -> int:
        """How many proposals wait for their quorum."""
        return len(self._proposals)

    def propose(self, zxid: int, data: Any) -> None:
        """Track a new proposal; zxids go up strictly (AssertionError otherwise)."""
        zxid = _check_int("zxid", zxid, INT64_MIN, INT64_MAX, "a long")
        if zxid <= self.last_proposed:
            raise AssertionError(f"proposal 0x{zxid:x} is not after 0x{self.last_proposed:x}")
        self._proposals[zxid] = (data, set())
        self.last_proposed = zxid

    def ack(self, sid: int, zxid: int) -> list[tuple[int, Any]]:
        """Count one ack; returns the proposals that commit now, in zxid order."""
        if zxid & 0xFFFFFFFF == 0 or zxid <= self.last_committed:
            return []
        p = self._proposals.get(zxid)
        if p is None or sid not in self._member_group:
            return []
        p[1].add(sid)
        return self.ready()

    def ack_upto(self, sid: int, zxid: int) -> list[tuple[int, Any]]:
        """``sid`` acks every outstanding proposal up to ``zxid`` (its log is durable)."""
        if sid in self._member_group:
            for z, p in self._proposals.items():
                if z > zxid:
                    break
                p[1].add(sid)
        return self.ready()

    def forget(self, sid: int, after: int) -> None:
        """Drop ``sid``'s acks of the outstanding proposals above ``after``."""
        for z, p in self._proposals.items():
            if z > after:
                p[1].discard(sid)

    def ready(self) -> list[tuple[int, Any]]:
        """Commit the proposals at the head that have their quorum, in zxid order."""
        out: list[tuple[int, Any]] = []
        while self._proposals:
            zxid = next(iter(self._proposals))
            data, acks = self._proposals[zxid]
            if not count_quorum(acks, self._member_group, self._member_weight,
                                self._group_half, self._groups_min):
                break
            del self._proposals[zxid]
            if zxid <= self.last_committed:
                raise AssertionError("commits must go up")
            self.last_committed = zxid
            out.append((zxid, data))
            if self.committed_acks is not None:
                self.committed_acks.append((zxid, frozenset(acks)))
        return out

    def after(self, zxid: int) -> list[tuple[int, Any]]:
        """Outstanding proposals above ``zxid``, in zxid order."""
        return [(z, p[0]) for z, p in self._proposals.items() if z > zxid]


# --------------------------------------------------------------------------- data tree

#: aclId, then StatPersisted: czxid, mzxid, ctime, mtime, version, cversion, aversion,
#: ephemeralOwner, pzxid.
_SNAP_NODE_TAIL = struct.Struct(">qqqqqiiiqq")
_SNAP_TAIL_FIELDS = (
    ("aclId", 8), ("czxid", 8), ("mzxid", 8), ("ctime", 8), ("mtime", 8), ("version", 4),
    ("cversion", 4), ("aversion", 4), ("ephemeralOwner", 8), ("pzxid", 8),
)
_NULL_LENGTH = _INT.pack(-1)
#: czxid, mzxid, pzxid, ctime, mtime, version, cversion, aversion, ephemeralOwner.
_DIGEST_STAT = struct.Struct(">qqqqqiiiq")
_DIGEST_STAT_FIELDS = (
    ("czxid", 8), ("mzxid", 8), ("pzxid", 8), ("ctime", 8), ("mtime", 8), ("version", 4),
    ("cversion", 4), ("aversion", 4), ("ephemeralOwner", 8),
)
_DIGEST_EXCLUDED_PREFIX = "/zookeeper/"


def _overflow(fields: tuple[tuple[str, int], ...], values: tuple[Any, ...]) -> None:
    """Raise the OverflowError/TypeError of the first value that does not fit (after a
    ``struct.error``), as the field-by-field encoder would."""
    for (name, width), value in zip(fields, values, strict=True):
        if width == 8:
            _check_int(name, value, INT64_MIN, INT64_MAX, "a long")
        else:
            _check_int(name, value, INT32_MIN, INT32_MAX, "an int")
    raise AssertionError("struct.error without an out-of-range field")  # pragma: no cover


def encode_snapshot_nodes(nodes: Any, open_acl: Any, out: bytearray) -> list[Any]:
    """Append a snapshot's node records, in its pre-order, to ``out``; return the ACL lists.

    ``nodes`` maps the root's path ``"/"`` to a znode with the attributes ``data``, ``acl``,
    ``children`` (a dict: child name -> child znode) and the nine StatPersisted fields
    (``czxid mzxid ctime mtime version cversion aversion ephemeral_owner pzxid``). The walk
    starts at the root (written as the path ``""``) and visits each node's children in their
    dict order, a parent before its children. Each record is ``ustring path, buffer data, long aclId,
    StatPersisted``. A node whose ``acl`` is the object ``open_acl`` gets the id -1; every
    other list gets the id of the first equal list met (1, 2, ...). The returned list holds
    those first lists in id order: list ``i`` has the id ``i + 1``. The end marker is not
    written. On any error ``out`` is left as it was.

    Raises:
        KeyError: ``nodes`` has no ``"/"``.
        TypeError: a node's ``children`` is not a dict, or a child name not a str.
        OverflowError: a stat field does not fit its jute width.
    """
    body = bytearray()
    acls: list[Any] = []
    by_entries: dict[tuple[Any, ...], int] = {}
    by_value: dict[tuple[Any, ...], int] = {}
    pack = _SNAP_NODE_TAIL.pack
    pack_int = _INT.pack
    stack = [("", nodes["/"])]
    pop = stack.pop
    push = stack.append
    while stack:
        base, node = pop()
        text = base.encode() if base.isascii() else java_utf8(base)
        body += pack_int(len(text))
        body += text
        data = node.data
        if data is None:
            body += _NULL_LENGTH
        else:
            body += pack_int(len(data))
            body += data
        acl = node.acl
        if acl is open_acl:
            aid = -1
        else:
            # tuple(acl) is a cheap key for the usual list of (perms, (scheme, id)) tuples;
            # ids are given by the flattened value (lists inside a list would not hash).
            key: tuple[Any, ...] | None = tuple(acl)
            try:
                got = by_entries.get(key)  # type: ignore[arg-type]
            except TypeError:
                key = got = None
            if got is None:
                flat = tuple((perms, scheme, ident) for perms, (scheme, ident) in acl)
                got = by_value.get(flat)
                if got is None:
                    got = by_value[flat] = len(acls) + 1
                    acls.append(acl)
                if key is not None:
                    by_entries[key] = got
            aid = got
        fields = (aid, node.czxid, node.mzxid, node.ctime, node.mtime, node.version,
                  node.cversion, node.aversion, node.ephemeral_owner, node.pzxid)
        try:
            body += pack(*fields)
        except struct.error:
            _overflow(_SNAP_TAIL_FIELDS, fields)
        children = node.children
        if type(children) is not dict:
            if len(children):
                raise TypeError(f"children of {base or '/'!r} is not a dict")
            children = {}
        for name, child in reversed(children.items()):
            if type(name) is not str:
                raise TypeError(f"child name {name!r} of {base or '/'!r} is not a str")
            push((f"{base}/{name}", child))
    out += body
    return acls


_NO_CHILDREN: Any = MappingProxyType({})

#: The attributes of a ``ZNode``, in constructor order (then ``children``).
ZNODE_FIELDS = ("data", "acl", "czxid", "mzxid", "ctime", "mtime", "version", "cversion",
                "aversion", "ephemeral_owner", "pzxid", "children")


class ZNode:
    """One znode: data, ACL, the persisted stat and its children.

    ``data`` is None for null data (distinct from ``b""``, see the module docstring). The stat
    fields are the nine of ``StatPersisted``; ``cversion`` is the persisted one (it counts
    child creations). ``_digest`` caches this node's CRC32 contribution to the tree
    digest (``None`` until computed; 0 for nodes under ``/zookeeper/``). ``children`` maps
    each child's name to its node, in the order the children were linked (creation order;
    after a restore, the snapshot's order): snapshots are written in that order, so the same
    history gives the same bytes without sorting, and a walk needs no path lookups.
    """

    __slots__ = (
        "data",
        "acl",
        "czxid",
        "mzxid",
        "ctime",
        "mtime",
        "version",
        "cversion",
        "aversion",
        "ephemeral_owner",
        "pzxid",
        "_kids",
        "_digest",
    )

    def __init__(
        self,
        data: bytes | None,
        acl: list[Any],
        czxid: int = 0,
        mzxid: int = 0,
        ctime: int = 0,
        mtime: int = 0,
        version: int = 0,
        cversion: int = 0,
        aversion: int = 0,
        ephemeral_owner: int = 0,
        pzxid: int = 0,
        children: dict[str, ZNode] | None = None,
    ) -> None:
        self.data = data
        self.acl = acl
        self.czxid = czxid
        self.mzxid = mzxid
        self.ctime = ctime
        self.mtime = mtime
        self.version = version
        self.cversion = cversion
        self.aversion = aversion
        self.ephemeral_owner = ephemeral_owner
        self.pzxid = pzxid
        self._kids = children
        self._digest: int | None = None

    @property
    def children(self) -> Any:
        """Child name -> node in link order; a shared read-only empty mapping for a leaf
        (link and unlink children with ``link`` / ``unlink``)."""
        return _NO_CHILDREN if self._kids is None else self._kids

    @children.setter
    def children(self, value: Any) -> None:
        if value is None or (type(value) is not dict and not len(value)):
            self._kids = None
        else:
            self._kids = value

    def link(self, name: str, child: Any) -> Any:
        """Link ``child`` as ``name`` unless the name is taken; return the node linked under
        ``name`` (``child``, or the one already there)."""
        if self._kids is None:
            self._kids = {name: child}
            return child
        return self._kids.setdefault(name, child)

    def unlink(self, name: str) -> Any:
        """Remove the child ``name`` if present; return it (or None)."""
        if self._kids is None:
            return None
        got = self._kids.pop(name, None)
        if not self._kids:
            self._kids = None
        return got

    def stat_persisted(self) -> tuple[int, int, int, int, int, int, int, int, int]:
        """The 9-field ``StatPersisted`` tuple (snapshot order)."""
        return (
            self.czxid, self.mzxid, self.ctime, self.mtime, self.version, self.cversion,
            self.aversion, self.ephemeral_owner, self.pzxid,
        )

    def __repr__(self) -> str:
        return (
            f"ZNode(data={self.data!r}, czxid={self.czxid:#x}, mzxid={self.mzxid:#x}, "
            f"pzxid={self.pzxid:#x}, version={self.version}, cversion={self.cversion}, "
            f"aversion={self.aversion}, ephemeral_owner={self.ephemeral_owner:#x}, "
            f"children={sorted(self.children)})"
        )



def node_digest(path: str, node: Any) -> int:
    """CRC32 (zlib's) of one znode as the tree digest counts it; 0 under ``/zookeeper/``.

    ``DigestCalculator.calculateDigest``: the path's bytes (Java ``String.getBytes()``: UTF-8,
    an unpaired surrogate becomes ``?``), the data unless null or empty, then czxid, mzxid,
    pzxid, ctime, mtime, version, cversion, aversion, ephemeralOwner big-endian. The root may
    be given as ``"/"`` or ``""`` (both hash as ``""``). ``node`` has the attributes of
    ``encode_snapshot_nodes``.

    Raises:
        OverflowError: a stat field does not fit its jute width.
    """
    if path.startswith(_DIGEST_EXCLUDED_PREFIX):
        return 0
    if path == "/":
        path = ""
    crc = zlib.crc32(path.encode("utf-8", "replace"))
    data = node.data
    if data:
        crc = zlib.crc32(data, crc)
    fields = (node.czxid, node.mzxid, node.pzxid, node.ctime, node.mtime, node.version,
              node.cversion, node.aversion, node.ephemeral_owner)
    try:
        packed = _DIGEST_STAT.pack(*fields)
    except struct.error:
        _overflow(_DIGEST_STAT_FIELDS, fields)
    return zlib.crc32(packed, crc)


def encode_snapshot(nodes: Any, open_acl: Any, head: Any, tail: Any,
                    size_hint: int = 0) -> bytes:
    """A whole snapshot stream in one bytes object: ``head(acl_lists)``, the node records of
    ``encode_snapshot_nodes``, then ``tail(check)``, where ``check`` is the Adler-32 of
    everything before the tail (the first seal of a snapshot file covers exactly that).

    ``size_hint`` (the expected size of the node records) only presizes the buffer: the
    compiled build writes the records once, into the object it returns, so writing a
    snapshot holds one copy of the stream. Errors as ``encode_snapshot_nodes``, and whatever
    ``head`` or ``tail`` raise.
    """
    records = bytearray()
    acls = encode_snapshot_nodes(nodes, open_acl, records)
    first = memoryview(head(acls))  # a bytes-like object (TypeError otherwise)
    check = zlib.adler32(records, zlib.adler32(first))
    return b"".join((first, records, memoryview(tail(check))))


_ROOT_KEY = "/"
_QUOTA_PREFIX = b"/zookeeper/quota/"
_QUOTA_LIMITS_SUFFIX = b"/zookeeper_limits"
_U64 = (1 << 64) - 1


class SnapshotLoader:
    """Decodes a snapshot's node records straight into a tree's node map, in pieces.

    Each record (``ustring path; buffer data; long aclId; StatPersisted``) becomes a
    ``ZNode`` with the ACL list ``acls[aclId]`` (the caller maps every id of the ACL cache,
    -1 included, to the list its nodes share), stored in ``nodes`` under its path (the root,
    written as ``""``, under ``"/"``) and linked into its parent's children under the last
    component of its path, exactly as ``DataTree.from_nodes`` links nodes: the parent is
    ``nodes[path[:path.rfind("/")] or "/"]`` as it stands when the record is read; a name
    already taken keeps its node linked while ``nodes`` takes the new one. Each node's digest
    (``node_digest``) is cached on it and summed into ``digest`` (mod 2**64); ``data_size``
    sums ``len(path) + len(data)`` per node (``DataTree._put``). ``owned`` lists
    ``(path, ephemeralOwner)`` of every non-root node with an owner, ``quota_limits`` every path
    under ``/zookeeper/quota/`` ending in ``/zookeeper_limits``, both in stream order, for
    the tree's indexes. ``count`` is the number of nodes read; ``done`` turns true at the
    ``"/"`` that ends the node list.

    ``feed(buf, offset, base, final)`` reads the records of ``buf`` from ``offset`` and
    returns the offset after the last one it took (after the end mark once ``done``). With
    ``final`` false, a record cut off by the end of ``buf`` is left for the next call (feed it
    again with more bytes appended), and so is a record with a bad length (its error names
    the bytes left in the stream); with ``final`` true the end of ``buf`` is the end of the
    stream, and a cut record is an error. Whatever the pieces, the same stream gives the same
    nodes and the same error. ``base`` is the stream offset of ``buf[0]`` (error offsets
    are stream offsets). Lengths are checked against the bytes there before anything is
    allocated.

    Raises:
        ProtocolError: a null path, a length outside ``-1..bytes left``, a record cut off by
            the end of the stream, or an ACL id that ``acls`` does not have; the field is
            named ``nodes[i].path``, ``nodes[i].data``, ``nodes[i].aclId`` or
            ``nodes[i].stat`` (``i`` counts from 0, the root).
        ValueError: ``invalid snapshot: no parent for '<path>'`` (``from_nodes``'s error).
    """

    def __init__(self, acls: dict[int, Any], nodes: dict[str, Any]) -> None:
        self.acls = acls
        self.nodes = nodes
        self.owned: list[tuple[str, int]] = []
        self.quota_limits: list[str] = []
        self.count = 0
        self.done = False
        self.digest = 0
        self.data_size = 0

    def feed(self, buf: bytes | bytearray | memoryview, offset: int = 0, base: int = 0,
             final: bool = True) -> int:
        end = len(buf)
        if offset < 0 or offset > end:
            raise ValueError(f"offset {offset} is outside the buffer (0..{end})")
        pos: int = offset
        nodes = self.nodes
        while not self.done:
            i = self.count
            start = pos
            # ustring path
            if end - pos < 4:
                if not final:
                    return start
                _need(f"nodes[{i}].path", base + pos, base + end, 4, "length")
            (n,) = _INT.unpack_from(buf, pos)
            if n == -1:
                raise ProtocolError(f"nodes[{i}].path", base + pos, "a path", "null")
            if n < -1 or n > end - pos - 4:
                if not final:
                    return start  # the message names the bytes left in the stream
                raise ProtocolError(f"nodes[{i}].path.length", base + pos,
                                    f"-1..{end - pos - 4}", str(n))
            raw = bytes(buf[pos + 4:pos + 4 + n])
            pos += 4 + n
            if raw == b"/":
                self.done = True
                return pos
            # buffer data
            if end - pos < 4:
                if not final:
                    return start
                _need(f"nodes[{i}].data", base + pos, base + end, 4, "length")
            (n,) = _INT.unpack_from(buf, pos)
            if n < -1 or n > end - pos - 4:
                if not final:
                    return start  # the message names the bytes left in the stream
                raise ProtocolError(f"nodes[{i}].data.length", base + pos,
                                    f"-1..{end - pos - 4}", str(n))
            data = None if n == -1 else bytes(buf[pos + 4:pos + 4 + n])
            pos += 4 + max(n, 0)
            # long aclId, StatPersisted
            if end - pos < 68:
                if not final:
                    return start
                _need(f"nodes[{i}].aclId", base + pos, base + end, 8, "long")
                _need(f"nodes[{i}].stat", base + pos + 8, base + end, 60, "StatPersisted")
            aid, czxid, mzxid, ctime, mtime, version, cversion, aversion, owner, pzxid = \
                _SNAP_NODE_TAIL.unpack_from(buf, pos)
            acl = self.acls.get(aid)
            if acl is None:
                raise ProtocolError(f"nodes[{i}].aclId", base + pos, "an id of the ACL cache",
                                    str(aid))
            pos += 68
            path = raw.decode("utf-8", "replace")
            node = ZNode(data, acl, czxid, mzxid, ctime, mtime, version, cversion, aversion,
                         owner, pzxid)
            if path:
                cut = path.rfind("/")
                parent = nodes.get(path[:cut] or "/")
                if parent is None:
                    raise ValueError(f"invalid snapshot: no parent for {path!r}")
                parent.link(path[cut + 1:], node)
                if owner:
                    self.owned.append((path, owner))
                if raw.startswith(_QUOTA_PREFIX) and raw.endswith(_QUOTA_LIMITS_SUFFIX):
                    self.quota_limits.append(path)
            else:
                path = _ROOT_KEY
            nodes[path] = node
            h = node_digest(path, node)
            node._digest = h
            self.digest = (self.digest + h) & _U64
            self.data_size += len(path) + (len(data) if data is not None else 0)
            self.count = i + 1
        return pos
