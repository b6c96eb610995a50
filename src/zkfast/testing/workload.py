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
from .rawclient import OP, OPEN_ACL, Reader, Writer

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

    def __init__(self, host: Any, cid: int, keys: list[str], history: History) -> None:
        self.host = host
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
        w = Writer().int(0).long(self.last_zxid).int(CONNECT_TIMEOUT_MS).long(self.session_id)
        w.buffer(self.passwd).bool(False)
        srv = h.server_for(self)
        srv.client_open(self, conn_id)
        srv.client_frames(self, conn_id, [bytes(w.out)])
        arm_read_timeout(self, h.world, srv)

    def _unknown(self) -> None:
        if self._op is not None:
            self.history.info(self._op[1])
            self._op = None
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
        while len(self._buf) >= 4:
            (n,) = struct.unpack_from(">i", self._buf, 0)
            if len(self._buf) < 4 + n:
                break
            frame = bytes(self._buf[4:4 + n])
            del self._buf[:4 + n]
            self._frame(frame)

    def _frame(self, frame: bytes) -> None:
        r = Reader(frame)
        if not self.connected:
            r.int()
            timeout = r.int()
            sid = r.long()
            pw = r.buffer() or b""
            if timeout <= 0:  # expired: the server closes; start a new session
                self.session_id, self.passwd = 0, b"\0" * 16
                return
            self.session_id, self.passwd = sid, pw
            self.connected = True
            self._next_op()
            return
        xid, zxid, err = r.int(), r.long(), r.int()
        if xid < 0:
            return  # ping or notification
        self.last_zxid = max(self.last_zxid, zxid)
        self.pending.pop(xid, None)
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

    @staticmethod
    def _stat_version(r: Reader) -> int:
        return r.stat().version

    # ---- workload
    def _next_op(self) -> None:
        if self.stopped or not self.connected or self._op is not None or self.conn_id is None:
            return
        h = self.host
        rng = h.world.rng
        key = self.keys[rng.randrange(len(self.keys))]
        kind = rng.choices(("read", "set", "create", "delete"), (35, 40, 15, 10))[0]
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
        self._op = (xid, op)
        self.pending[xid] = (key, -1 if kind == "read" else 0)
        self.ops_sent += 1
        srv = h.server_for(self)
        srv.client_frames(self, self.conn_id, [bytes(b.out)])
        arm_read_timeout(self, h.world, srv)


def check_history(history: History, *, steps_max: int = 2_000_000) -> Result:
    """Close the history (pending ops become unknown) and check it per key."""
    history.close()
    return check(history.ops, steps_max=steps_max)
