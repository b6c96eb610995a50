"""A small blocking ZooKeeper client that speaks the wire protocol directly, for tests.

kazoo covers the common API; this client covers what kazoo cannot send or observe: TTL and
container creates, multi with create2 results, addWatch / removeWatches / checkWatches,
setWatches after a reconnect, getEphemerals, getAllChildrenNumber, whoAmI, a standalone `check`,
and the exact ReplyHeader fields (xid, zxid, err) and notification frames.

It has its own tiny jute encoder/decoder (zk-formats §0-§2) and does not import zkfast's codecs, so
it can judge them. One thread: `call()` sends a request and reads frames until the reply with the
same xid arrives; notifications read on the way are kept in `events`.
"""

from __future__ import annotations

import builtins
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = [
    "Acl",
    "OP",
    "OPEN_ACL",
    "RawClient",
    "Reader",
    "Reply",
    "Stat",
    "WatchEvent",
    "Writer",
]

OP = {
    "create": 1,
    "delete": 2,
    "exists": 3,
    "getData": 4,
    "setData": 5,
    "getACL": 6,
    "setACL": 7,
    "getChildren": 8,
    "sync": 9,
    "ping": 11,
    "getChildren2": 12,
    "check": 13,
    "multi": 14,
    "create2": 15,
    "checkWatches": 17,
    "removeWatches": 18,
    "createContainer": 19,
    "createTTL": 21,
    "multiRead": 22,
    "auth": 100,
    "setWatches": 101,
    "getEphemerals": 103,
    "getAllChildrenNumber": 104,
    "setWatches2": 105,
    "addWatch": 106,
    "whoAmI": 107,
    "closeSession": -11,
}


class Stat(NamedTuple):
    czxid: int
    mzxid: int
    ctime: int
    mtime: int
    version: int
    cversion: int
    aversion: int
    ephemeralOwner: int  # noqa: N815 (ZooKeeper's field name)
    dataLength: int  # noqa: N815
    numChildren: int  # noqa: N815
    pzxid: int


class Acl(NamedTuple):
    perms: int
    scheme: str
    id: str


OPEN_ACL = [Acl(31, "world", "anyone")]


class WatchEvent(NamedTuple):
    type: int
    state: int
    path: str
    zxid: int  # the ReplyHeader zxid of the notification frame


class Reply(NamedTuple):
    xid: int
    zxid: int
    err: int
    body: bytes


class Writer:
    """Jute encoder: chain the field writers, then take `bytes(w.out)`."""

    def __init__(self) -> None:
        self.out = bytearray()

    def int(self, v: builtins.int) -> Writer:
        self.out += struct.pack(">i", v)
        return self

    def long(self, v: builtins.int) -> Writer:
        self.out += struct.pack(">q", v)
        return self

    def bool(self, v: bool) -> Writer:
        self.out.append(1 if v else 0)
        return self

    def buffer(self, v: bytes | None) -> Writer:
        if v is None:
            return self.int(-1)
        self.int(len(v))
        self.out += v
        return self

    def string(self, v: str | None) -> Writer:
        return self.buffer(None if v is None else v.encode("utf-8"))

    def strings(self, vs: Sequence[str]) -> Writer:
        self.int(len(vs))
        for v in vs:
            self.string(v)
        return self

    def acls(self, acls: Sequence[Acl]) -> Writer:
        self.int(len(acls))
        for a in acls:
            self.int(a.perms).string(a.scheme).string(a.id)
        return self


class Reader:
    """Jute decoder over one frame body."""

    def __init__(self, data: bytes, offset: builtins.int = 0) -> None:
        self.data = data
        self.offset = offset

    def _take(self, fmt: str) -> builtins.int:
        (v,) = struct.unpack_from(fmt, self.data, self.offset)
        self.offset += struct.calcsize(fmt)
        return int(v)

    def int(self) -> builtins.int:
        return self._take(">i")

    def long(self) -> builtins.int:
        return self._take(">q")

    def bool(self) -> bool:
        return self._take(">b") != 0

    def buffer(self) -> bytes | None:
        n = self.int()
        if n < 0:
            return None
        v = self.data[self.offset : self.offset + n]
        assert len(v) == n, "truncated buffer"
        self.offset += n
        return bytes(v)

    def string(self) -> str | None:
        v = self.buffer()
        return None if v is None else v.decode("utf-8")

    def strings(self) -> list[str]:
        n = self.int()
        return [s for s in (self.string() for _ in range(max(n, 0))) if s is not None]

    def stat(self) -> Stat:
        v = struct.unpack_from(">qqqqiiiqiiq", self.data, self.offset)
        self.offset += 68
        return Stat(*v)

    def acls(self) -> list[Acl]:
        out = []
        for _ in range(self.int()):
            perms = self.int()
            out.append(Acl(perms, self.string() or "", self.string() or ""))
        return out

    @property
    def remaining(self) -> builtins.int:
        return len(self.data) - self.offset


def take_frames(buf: bytearray) -> list[bytes]:
    """Remove every complete length-prefixed frame from the front of ``buf``; return them."""
    out: list[bytes] = []
    while len(buf) >= 4:
        (n,) = struct.unpack_from(">i", buf, 0)
        if len(buf) < 4 + n:
            break
        out.append(bytes(buf[4:4 + n]))
        del buf[:4 + n]
    return out


def read_connect_response(r: Reader) -> tuple[builtins.int, builtins.int, bytes]:
    """``(timeout, session_id, passwd)`` of a ConnectResponse frame (protocolVersion skipped);
    a timeout <= 0 means the session is gone."""
    r.int()
    timeout = r.int()
    sid = r.long()
    return timeout, sid, r.buffer() or b""


@dataclass
class RawClient:
    """One TCP connection to a server; `connect()` performs the session handshake."""

    host: str
    port: int
    io_timeout_s: float = 30.0
    events: list[WatchEvent] = field(default_factory=list)
    session_id: int = 0
    passwd: bytes = b"\0" * 16
    negotiated_timeout_ms: int = 0
    last_zxid: int = 0
    sock: socket.socket | None = None
    _xid: int = 0
    _buf: bytearray = field(default_factory=bytearray)

    # -- connection -------------------------------------------------------------------------
    def connect(
        self,
        timeout_ms: int = 30000,
        session_id: int | None = None,
        passwd: bytes | None = None,
        last_zxid: int | None = None,
        read_only: bool = False,
    ) -> int:
        """Open the socket and handshake; resumes `session_id` when given. Returns the timeout
        the server granted (0 means the session is expired or invalid)."""
        self.close()
        self._buf.clear()
        self.sock = socket.create_connection((self.host, self.port), timeout=self.io_timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sid = self.session_id if session_id is None else session_id
        pw = self.passwd if passwd is None else passwd
        lz = self.last_zxid if last_zxid is None else last_zxid
        w = Writer().int(0).long(lz).int(timeout_ms).long(sid).buffer(pw).bool(read_only)
        self._send_frame(bytes(w.out))
        r = Reader(self._read_frame())
        r.int()  # protocolVersion
        self.negotiated_timeout_ms = r.int()
        got_sid = r.long()
        got_pw = r.buffer() or b""
        if self.negotiated_timeout_ms > 0:
            self.session_id, self.passwd = got_sid, got_pw
        return self.negotiated_timeout_ms

    def close(self) -> None:
        """Close the socket without ending the session."""
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def close_session(self) -> Reply:
        reply = self.call(OP["closeSession"], b"")
        self.close()
        return reply

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- frames -----------------------------------------------------------------------------
    def _send_frame(self, payload: bytes) -> None:
        assert self.sock is not None, "not connected"
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)

    def _read_frame(self) -> bytes:
        assert self.sock is not None, "not connected"
        while True:
            if len(self._buf) >= 4:
                (n,) = struct.unpack_from(">i", self._buf, 0)
                if len(self._buf) >= 4 + n:
                    frame = bytes(self._buf[4 : 4 + n])
                    del self._buf[: 4 + n]
                    return frame
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self._buf += chunk

    def _read_reply(self) -> Reply:
        frame = self._read_frame()
        r = Reader(frame)
        xid, zxid, err = r.int(), r.long(), r.int()
        return Reply(xid, zxid, err, frame[r.offset :])

    def _note(self, reply: Reply) -> bool:
        """Keep a notification; True if `reply` was one."""
        if reply.xid != -1:
            return False
        r = Reader(reply.body)
        etype, state = r.int(), r.int()
        self.events.append(WatchEvent(etype, state, r.string() or "", reply.zxid))
        return True

    # -- requests ---------------------------------------------------------------------------
    def send(self, op: int, body: bytes = b"", xid: int | None = None) -> int:
        if xid is None:
            self._xid += 1
            xid = self._xid
        self._send_frame(struct.pack(">ii", xid, op) + body)
        return xid

    def call(self, op: int, body: bytes = b"", xid: int | None = None) -> Reply:
        """Send one request and return its reply; notifications met on the way go to `events`.

        Raises:
            ConnectionError: the server closed the connection first.
            AssertionError: a reply with another xid arrived (replies must keep request order).
        """
        xid = self.send(op, body, xid)
        while True:
            reply = self._read_reply()
            if self._note(reply) or reply.xid == -2:
                continue
            assert reply.xid == xid, f"reply xid {reply.xid} != request xid {xid}"
            if reply.zxid > 0:
                self.last_zxid = max(self.last_zxid, reply.zxid)
            return reply

    def ping(self) -> Reply:
        self._send_frame(struct.pack(">ii", -2, OP["ping"]))
        while True:
            reply = self._read_reply()
            if not self._note(reply):
                return reply

    def wait_events(self, count: int, timeout_s: float = 30.0) -> list[WatchEvent]:
        """Read until at least `count` notifications are held, pinging while idle."""
        assert self.sock is not None, "not connected"
        deadline = time.monotonic() + timeout_s
        while len(self.events) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.events)} of {count} events: {self.events}")
            self.ping()
        return list(self.events)

    def auth(self, scheme: str, credential: bytes) -> Reply:
        body = bytes(Writer().int(0).string(scheme).buffer(credential).out)
        return self.call(OP["auth"], body, xid=-4)

    # -- typed helpers ----------------------------------------------------------------------
    def create(
        self,
        path: str,
        data: bytes = b"",
        flags: int = 0,
        acl: Sequence[Acl] = OPEN_ACL,
        ttl: int | None = None,
        op: str | None = None,
    ) -> tuple[int, str | None, Stat | None]:
        """create2 (or createTTL when `ttl` is given, createContainer for flags 4).

        Returns (err, created path, stat)."""
        w = Writer().string(path).buffer(data).acls(acl).int(flags)
        if op is None:
            op = (
                "createTTL" if ttl is not None else ("createContainer" if flags == 4 else "create2")
            )
        if op == "createTTL":
            w.long(-1 if ttl is None else ttl)
        reply = self.call(OP[op], bytes(w.out))
        if reply.err:
            return reply.err, None, None
        r = Reader(reply.body)
        created = r.string()
        stat = r.stat() if op != "create" else None
        return 0, created, stat

    def exists(self, path: str, watch: bool = False) -> tuple[int, Stat | None]:
        reply = self.call(OP["exists"], bytes(Writer().string(path).bool(watch).out))
        return reply.err, (Reader(reply.body).stat() if reply.err == 0 else None)

    def get_data(self, path: str, watch: bool = False) -> tuple[int, bytes | None, Stat | None]:
        reply = self.call(OP["getData"], bytes(Writer().string(path).bool(watch).out))
        if reply.err:
            return reply.err, None, None
        r = Reader(reply.body)
        return 0, r.buffer(), r.stat()

    def get_children(self, path: str, watch: bool = False) -> tuple[int, list[str]]:
        reply = self.call(OP["getChildren"], bytes(Writer().string(path).bool(watch).out))
        return reply.err, (sorted(Reader(reply.body).strings()) if reply.err == 0 else [])

    def set_data(self, path: str, data: bytes, version: int = -1) -> tuple[int, Stat | None]:
        reply = self.call(OP["setData"], bytes(Writer().string(path).buffer(data).int(version).out))
        return reply.err, (Reader(reply.body).stat() if reply.err == 0 else None)

    def delete(self, path: str, version: int = -1) -> int:
        return self.call(OP["delete"], bytes(Writer().string(path).int(version).out)).err

    def add_watch(self, path: str, mode: int) -> Reply:
        return self.call(OP["addWatch"], bytes(Writer().string(path).int(mode).out))

    def multi(self, ops: Sequence[tuple[int, bytes]]) -> tuple[int, list[tuple[int, int, bytes]]]:
        """Send a multi of (opcode, record bytes). Returns (header err, [(type, err, body)]).

        For an error result (type -1) `err` is its ErrorResponse code; body slices are raw."""
        w = Writer()
        for op, record in ops:
            w.int(op).bool(False).int(-1)
            w.out += record
        w.int(-1).bool(True).int(-1)
        reply = self.call(OP["multi"], bytes(w.out))
        return reply.err, (self.parse_multi(reply.body) if reply.err == 0 else [])

    @staticmethod
    def parse_multi(body: bytes) -> list[tuple[int, int, bytes]]:
        r = Reader(body)
        out: list[tuple[int, int, bytes]] = []
        while True:
            mtype, done, merr = r.int(), r.bool(), r.int()
            if done:
                return out
            start = r.offset
            if mtype == -1:
                merr = r.int()
            elif mtype == OP["create"]:
                r.string()
            elif mtype in (OP["create2"], OP["createTTL"], OP["createContainer"]):
                r.string()
                r.stat()
            elif mtype == OP["setData"]:
                r.stat()
            elif mtype == OP["getData"]:
                r.buffer()
                r.stat()
            elif mtype == OP["getChildren"]:
                r.strings()
            out.append((mtype, merr, body[start : r.offset]))
