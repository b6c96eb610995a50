"""Simulated clients on shared znodes, recording a Jepsen-style history for the checker.

A ``RegisterClient`` keeps one session and one request in flight (so its history is
per-session FIFO by construction) against a few shared paths, each used as a CAS register:
``create``, ``setData`` (unconditional, or conditional on the version it last saw), ``delete``
(sometimes conditional) and ``getData``. Every request is an operation in a shared
``linearizability.History``: invoked when sent; ``ok`` with its result when the reply arrives
(NONODE, NODEEXISTS and BADVERSION are results: the server decides them in the total order);
unknown (``info``) when the connection ends first or the server answers with any other error
(the write may still have been, or may later be, applied). ``finish`` checks the history.

The server side is anything with ``client_open(client, conn_id)`` and
``client_frames(client, conn_id, frames)``, found through the host's ``server_for(client)``;
the host calls back ``closed(conn_id)`` and ``received(conn_id, data)``.
"""

from __future__ import annotations

import struct
from typing import Any

from .linearizability import BADVERSION, NODEEXISTS, NONODE, History, Op, Result, check
from .rawclient import OP, OPEN_ACL, Reader, Writer, read_connect_response, take_frames

__all__ = ["RegisterClient", "check_history", "ERRORS", "arm_read_timeout", "READ_TIMEOUT_MS"]

CONNECT_TIMEOUT_MS = 10000
#: A client gives up on a connection that answers nothing for this long: ZooKeeper's
#: readTimeout (2/3 of the session timeout), or connectTimeout (session timeout / servers).
READ_TIMEOUT_MS = CONNECT_TIMEOUT_MS * 2 // 3


def arm_read_timeout(client: Any, world: Any, server: Any) -> None:
    """Close the client's connection if nothing arrives on it within ``READ_TIMEOUT_MS``
    while it waits (for the handshake or a reply). The close reaches the server as a FIN."""
    conn_id, seen = client.conn_id, client.frames_seen

    def check() -> None:
        if (client.conn_id == conn_id and conn_id is not None and client.frames_seen == seen
                and (client.pending or not client.connected) and not client.stopped):
            world.log(f"c{client.cid} read timeout on conn {conn_id}")
            server.reset(conn_id, client)
    world.after(READ_TIMEOUT_MS, check)
#: Reply error codes that are results of an ordered operation.
ERRORS = {0: None, -101: NONODE, -110: NODEEXISTS, -103: BADVERSION}


class RegisterClient:
    """One session on shared paths; one request in flight; every op in ``history``."""

    def __init__(self, host: Any, cid: int, keys: list[str], history: History,
                 observer: Any = None) -> None:
        self.host = host
        #: ``ClientChecker`` (zab mode): sees every send and reply, and turns on the session
        #: workload (pipelined sync/write + read, ephemerals, close, abandon, idle pings).
        self.obs = observer
        self.cid = cid
        self.name = ("c", cid)
        self.keys = keys
        self.history = history
        self.session_id = 0
        self.passwd = b"\0" * 16
        self.last_zxid = 0
        self.conn_id: int | None = None
        self.connected = False
        #: Reads from the server so far (the read timeout watches it).
        self.frames_seen = 0
        self._buf = bytearray()
        self._xid = 0
        #: xid -> (path, 0 for a write, -1 for a read): what ``StandaloneChecker`` reads.
        self.pending: dict[int, tuple[str, int]] = {}
        self._op: tuple[int, Op] | None = None
        #: The version each path had when this client last saw it (for conditional ops).
        self.seen_version: dict[str, int] = {}
        self.acks = 0
        #: Operations completed with a known result.
        self.done = 0
        self.ops_sent = 0
        self.stopped = False
        self._n = 0
        #: Requests in flight on this connection, in send order: (xid, kind, key).
        self.inflight: list[tuple[int, str, str]] = []
        #: xid -> history op of an in-flight request (writes and reads on the registers).
        self._hops: dict[int, Op] = {}
        #: The session timeout asked for (session mode: 4 s, the minimum at a 2 s tick, or 10 s).
        self.timeout_ms = CONNECT_TIMEOUT_MS
        self.timeout_asked = CONNECT_TIMEOUT_MS
        if observer is not None:
            self.timeout_asked = host.world.rng.choice([4_000, CONNECT_TIMEOUT_MS])
        #: When the current connection's session was established (ms), and the last send.
        self.connected_at = 0
        self.last_sent_ms = 0
        self._idle_until = 0

    # ---- connection
    def connect(self) -> None:
        if self.stopped or self.conn_id is not None:
            return
        h = self.host
        conn_id = h.new_conn_id()
        self.conn_id = conn_id
        self.connected = False
        self._buf.clear()
        h.conn_clients[conn_id] = self
        w = Writer().int(0).long(self.last_zxid).int(self.timeout_asked).long(self.session_id)
        w.buffer(self.passwd).bool(False)
        srv = h.server_for(self)
        srv.client_open(self, conn_id)
        srv.client_frames(self, conn_id, [bytes(w.out)])
        arm_read_timeout(self, h.world, srv)

    def _unknown(self) -> None:
        if self._op is not None:
            self.history.info(self._op[1])
            self._op = None
        for xid in sorted(self._hops):
            self.history.info(self._hops[xid])
        self._hops.clear()
        if self.obs is not None and any(k == "close" for _, k, _ in self.inflight):
            self.obs.abandoned(self, self.session_id)  # closed or left to expire: unknown
            self.session_id, self.passwd = 0, b"\0" * 16
        self.inflight.clear()
        self.pending.clear()

    def closed(self, conn_id: int) -> None:
        """The connection ended (reset, partition, server close or crash)."""
        if conn_id != self.conn_id:
            return
        self.conn_id = None
        self.connected = False
        self._unknown()
        w = self.host.world
        w.after(w.rng.randint(10, 500), self.connect)

    def received(self, conn_id: int, data: bytes) -> None:
        if conn_id != self.conn_id:
            return
        self.frames_seen += 1
        self._buf += data
        for frame in take_frames(self._buf):
            self._frame(frame)

    def _frame(self, frame: bytes) -> None:
        r = Reader(frame)
        if not self.connected:
            timeout, sid, pw = read_connect_response(r)
            if timeout <= 0:  # expired: the server closes; start a new session
                if self.obs is not None and self.session_id:
                    self.obs.expired(self, self.session_id)
                self.session_id, self.passwd = 0, b"\0" * 16
                return
            self.session_id, self.passwd = sid, pw
            self.connected = True
            self.timeout_ms = timeout
            self.connected_at = self.last_sent_ms = self.host.world.now
            self._idle_until = 0
            if self.obs is not None:
                self.obs.connected(self)
            self._next_op()
            return
        xid, zxid, err = r.int(), r.long(), r.int()
        if xid == -1:
            return  # a notification
        if self.obs is not None:
            self.obs.reply_header(self, xid, zxid, err)
        if xid < 0:
            return  # a ping
        if zxid > 0:
            self.last_zxid = max(self.last_zxid, zxid)
        self.pending.pop(xid, None)
        if self.obs is not None:
            self._session_reply(r, xid, zxid, err)
            return
        if self._op is None or self._op[0] != xid:
            return
        op = self._op[1]
        self._op = None
        now = self.host.world.now
        if err not in ERRORS:
            self.history.info(op)
        else:
            error = ERRORS[err]
            out_value: bytes | None = None
            out_version: int | None = None
            if error is None and op.kind == "read":
                out_value = r.buffer()
                out_version = self._stat_version(r)
            elif error is None and op.kind == "set":
                out_version = self._stat_version(r)
            elif error is None and op.kind == "create":
                out_version = 0
            if out_version is not None:
                self.seen_version[op.key] = out_version
            self.history.ok(op, error=error, out_value=out_value,
                            out_version=out_version if op.kind != "create" else None,
                            at_ms=now)
            self.done += 1
            if error is None and op.kind != "read":
                self.acks += 1
        w = self.host.world
        w.after(w.rng.randint(0, self.host.think_ms), self._next_op)

    def _session_reply(self, r: Reader, xid: int, zxid: int, err: int) -> None:
        """A reply in session mode: FIFO (the oldest request in flight), history, checks."""
        obs = self.obs
        head = self.inflight.pop(0) if self.inflight else None
        if head is None or head[0] != xid:
            obs.out_of_order(self, xid, head)
        assert head is not None
        _, kind, key = head
        op = self._hops.pop(xid, None)
        stat = None
        out_value: bytes | None = None
        if err == 0 and kind in ("read", "set"):
            if kind == "read":
                out_value = r.buffer()
            stat = r.stat()
        if err == -112:
            obs.expired(self, self.session_id)
        if op is not None:
            now = self.host.world.now
            if err not in ERRORS:
                self.history.info(op)
            else:
                error = ERRORS[err]
                out_version = None if stat is None else stat.version
                if out_version is not None:
                    self.seen_version[op.key] = out_version
                elif error is None and kind == "create":
                    self.seen_version[op.key] = 0
                self.history.ok(op, error=error,
                                out_value=out_value,
                                out_version=out_version, at_ms=now)
                self.done += 1
                if error is None and kind != "read":
                    self.acks += 1
        obs.replied(self, xid, kind, key, zxid, err, stat)
        if kind == "close" and err == 0:
            self.session_id, self.passwd = 0, b"\0" * 16
            self.inflight.clear()
            return  # the server closes the connection; the next one starts a new session
        if not self.inflight:
            w = self.host.world
            w.after(w.rng.randint(0, self.host.think_ms), self._next_op)

    def _send(self, frames: list[tuple[int, str, str, bytes, Op | None]]) -> None:
        h = self.host
        for xid, kind, key, _frame, op in frames:
            self.inflight.append((xid, kind, key))
            if op is not None:
                self._hops[xid] = op
            self.pending[xid] = (key, -1 if kind in ("read", "sync") else 0)
            self.ops_sent += 1
            self.obs.sent(self, xid, kind, key)
        self.last_sent_ms = h.world.now
        srv = h.server_for(self)
        srv.client_frames(self, self.conn_id, [f[3] for f in frames])
        arm_read_timeout(self, h.world, srv)

    def _ping(self) -> None:
        """While idle: a ping every third of the session timeout (ZooKeeper's client pings
        after readTimeout/2 of silence)."""
        if self.stopped or not self.connected or self.conn_id is None or self.inflight:
            return
        h = self.host
        if h.world.now >= self._idle_until:
            self._next_op()
            return
        self.last_sent_ms = h.world.now
        h.server_for(self).client_frames(self, self.conn_id, [struct.pack(">ii", -2, OP["ping"])])
        h.world.after(min(self.timeout_ms // 3, self._idle_until - h.world.now), self._ping)

    def _session_op(self) -> None:
        h = self.host
        w = h.world
        rng = w.rng
        key = self.keys[rng.randrange(len(self.keys))]
        what = rng.choices(("plain", "write_read", "sync_read", "ephemeral", "close", "abandon",
                            "idle"), (60, 14, 14, 5, 2, 2, 3))[0]
        if what == "abandon":
            # The client goes away without closing: the session must expire.
            self.obs.abandoned(self, self.session_id)
            conn = self.conn_id
            assert conn is not None
            self.session_id, self.passwd = 0, b"\0" * 16
            h.server_for(self).reset(conn, self)
            return
        if what == "idle":
            self._idle_until = w.now + rng.randint(2_000, 3 * self.timeout_ms // 2)
            self._ping()
            return
        frames: list[tuple[int, str, str, bytes, Op | None]] = []
        if what == "sync_read":
            self._xid += 1
            frames.append((self._xid, "sync", key,
                           bytes(Writer().int(self._xid).int(OP["sync"]).string(key).out), None))
        elif what == "ephemeral":
            self._n += 1
            path = f"/e{self.cid}.{self._n}"
            self._xid += 1
            b = Writer().int(self._xid).int(OP["create"]).string(path).buffer(b"e")
            b.acls(OPEN_ACL).int(1)
            frames.append((self._xid, "ephemeral", path, bytes(b.out), None))
        elif what == "close":
            self._xid += 1
            frames.append((self._xid, "close", "",
                           bytes(Writer().int(self._xid).int(OP["closeSession"]).out), None))
        if what in ("plain", "write_read"):
            frames.append(self._register_op(key, write=what == "write_read"))
        if what in ("write_read", "sync_read"):
            frames.append(self._register_op(key, kind="read"))
        self._send(frames)

    def _register_op(self, key: str, *, write: bool = False, kind: str | None = None
                     ) -> tuple[int, str, str, bytes, Op | None]:
        h = self.host
        rng = h.world.rng
        if kind is None:
            kind = rng.choices(("read", "set", "create", "delete"),
                               (0 if write else 35, 40, 15, 10))[0]
        self._n += 1
        value = f"r{self.cid}.{self._n}".encode() if kind in ("create", "set") else None
        version = -1
        if kind in ("set", "delete") and rng.random() < 0.6:
            seen = self.seen_version.get(key, 0)
            version = seen if rng.random() < 0.8 else seen + rng.randint(-1, 1)
        self._xid += 1
        xid = self._xid
        b = Writer().int(xid)
        if kind == "read":
            b.int(OP["getData"]).string(key).bool(False)
        elif kind == "set":
            b.int(OP["setData"]).string(key).buffer(value).int(version)
        elif kind == "create":
            b.int(OP["create"]).string(key).buffer(value).acls(OPEN_ACL).int(0)
        else:
            b.int(OP["delete"]).string(key).int(version)
        op = self.history.invoke(self.cid, kind, key, value=value, version=version,
                                 at_ms=h.world.now)
        return xid, kind, key, bytes(b.out), op

    @staticmethod
    def _stat_version(r: Reader) -> int:
        return r.stat().version

    # ---- workload
    def _next_op(self) -> None:
        if self.stopped or not self.connected or self._op is not None or self.conn_id is None:
            return
        if self.obs is not None:
            if not self.inflight and self.host.world.now >= self._idle_until:
                self._session_op()
            return
        h = self.host
        rng = h.world.rng
        key = self.keys[rng.randrange(len(self.keys))]
        xid, kind, key, frame, op = self._register_op(key)
        assert op is not None
        self._op = (xid, op)
        self.pending[xid] = (key, -1 if kind == "read" else 0)
        self.ops_sent += 1
        srv = h.server_for(self)
        srv.client_frames(self, self.conn_id, [frame])
        arm_read_timeout(self, h.world, srv)


def check_history(history: History, *, steps_max: int = 2_000_000) -> Result:
    """Close the history (pending ops become unknown) and check it per key."""
    history.close()
    return check(history.ops, steps_max=steps_max)
