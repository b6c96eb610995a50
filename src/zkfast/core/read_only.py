"""Read-only mode of a quorum peer's ServerCore (Apache's ReadOnlyZooKeeperServer).

Theory of operation
-------------------
A peer with ``readonlymode.enabled`` that has been LOOKING for max(2 s, tickTime) serves clients
that asked for read-only service from the data tree it recovered, and nothing else. The runtime
tells its ServerCore with ``ReadOnlyModeChanged(True)``; ``ServerCore`` then hands client frames
and ticks to a ``ReadOnlyService`` until ``ReadOnlyModeChanged(False)`` (the peer left LOOKING:
Apache shuts the read-only server down). Both switches close every client connection.

What the service does, as Apache 3.8 does it:

* ConnectRequest (``ZooKeeperServer.processConnectRequest`` with the ``validateSession`` of
  ReadOnlyZooKeeperServer): no readOnly byte, or readOnly false, closes the connection without a
  reply ("Refusing session request for not-read-only client"); then a client that saw a newer
  zxid is closed; the timeout is clamped to [min, max]. A new session is created by a local
  tracker whose ids start like any tracker of this server (``initializeNextSessionId(myid)``),
  with no txn: the ConnectResponse (readOnly=true) leaves at once. Reconnecting a session this
  service created is checked like any reconnect (password, session live); reconnecting a session
  the data tree knows (a global session) is refused by closing the connection.
* Requests. Pings and reads (exists, getData, getACL, getChildren, getChildren2,
  getAllChildrenNumber, getEphemerals, multiRead, whoAmI, the watch requests) are answered from
  the tree, as the standalone fast path answers them. ``ReadOnlyRequestProcessor`` answers
  sync, create, create2, createTTL, createContainer, delete, deleteContainer, setData, reconfig,
  setACL, multi and check with a bare reply header ``(xid, lastProcessedZxid, NOTREADONLY)``;
  the connection stays open. auth and sasl packets work as on any server. closeSession forgets
  the local session (no txn), replies and closes. Other opcodes are Unimplemented and close.
* Sessions are local: they expire on this server (the expiry buckets of ``SessionTracker``)
  and an expired one only has its connection closed: no closeSession txn is ever issued, so
  nothing is appended to the txn log and the tree never changes.
* Watches register as usual; the tree does not change, so none fires (a setWatches replay
  still reports what changed since the client's last zxid).

Apache 3.8 builds a LearnerSessionTracker whose sessions are local only with
``localSessionsEnabled``; without it (its default) its read-only createSession runs through
the in-memory PrepRequestProcessor with a zxid counter starting at 0 and the session is never
expired. zkfast always uses local sessions, which the operator cannot tell apart except that an
idle read-only session expires after its timeout.
"""

from __future__ import annotations

import logging
import struct
from typing import TYPE_CHECKING

from .._impl import ProtocolError
from ..wire import client_codec as cc
from .client_conn import AWAIT_CONNECT, CLOSED, OPEN, ClientConn
from .events import ClientFramesReceived, Ticked
from .sessions import SessionTracker, generate_passwd

if TYPE_CHECKING:
    from .server import ServerCore

__all__ = ["ReadOnlyService", "NOT_READ_ONLY_OPS", "READ_ONLY_OPS"]

log = logging.getLogger("zkfast.server")

_REQUEST_HEADER = struct.Struct(">ii")
_ZERO_PASSWD = b"\0" * 16
_U64 = (1 << 64) - 1
NOTREADONLY = -119
_UNIMPLEMENTED = -6

#: Pings and reads: served from the tree (the standalone ServerCore's read set).
READ_ONLY_OPS = frozenset({3, 4, 6, 8, 11, 12, 17, 18, 22, 101, 103, 104, 105, 106, 107})
#: ReadOnlyRequestProcessor's list: sync, create, delete, setData, setACL, check, multi,
#: create2, reconfig, createContainer, deleteContainer, createTTL.
NOT_READ_ONLY_OPS = frozenset({9, 1, 2, 5, 7, 13, 14, 15, 16, 19, 20, 21})


class ReadOnlyService:
    """The read-only client service over a ServerCore's tree (see the module docstring).

    Args:
        core: the ServerCore whose tree, connections, watches and read handlers it uses.
        now_ms: when read-only service starts (the local tracker's clock origin).
    """

    def __init__(self, core: ServerCore, now_ms: int) -> None:
        self.core = core
        config = core.config
        # LearnerSessionTracker / LocalSessionTracker: ids from initializeNextSessionId(myid).
        self.sessions = SessionTracker(tick_ms=config.tick_ms, now_ms=now_ms,
                                       server_id=config.server_id)

    def deadline_ms(self) -> int | None:
        """When the next local session may expire."""
        return self.sessions.deadline_ms()

    # ================================================================== events

    def on_frames(self, ev: ClientFramesReceived) -> None:
        core = self.core
        conn = core.conns.get(ev.conn_id)
        if conn is None:
            return
        stats = core.stats
        for frame in ev.frames:
            if conn.state == CLOSED:
                return
            conn.packets_received += 1
            stats.packets_received += 1
            try:
                if conn.state == AWAIT_CONNECT:
                    self._on_connect_request(conn, frame)
                else:
                    self._on_request(conn, frame)
            except ProtocolError as e:
                core.close_conn(conn, f"malformed request: {e}")
            except AssertionError:
                raise
            except Exception as e:  # noqa: BLE001 - one bad client never takes the server down
                core.close_conn(conn, f"internal error on session 0x{conn.session_id & _U64:x}: "
                                      f"{type(e).__name__}: {e}")

    def on_ticked(self, ev: Ticked) -> None:
        """Expire local sessions: close their connections; no closeSession txn."""
        core = self.core
        for sid in self.sessions.poll_expired(core._now_ms):
            self.sessions.remove(sid)
            conn_id = core.session_conn.get(sid)
            conn = core.conns.get(conn_id) if conn_id is not None else None
            log.info("read-only mode: session 0x%x expired (local session, no txn)", sid & _U64)
            if conn is not None:
                core.close_conn(conn, "session expired")

    def close_all(self, reason: str) -> None:
        """Close every client connection (entering or leaving read-only service)."""
        core = self.core
        for conn in list(core.conns.values()):
            core.close_conn(conn, reason)

    # ================================================================== connect

    def _on_connect_request(self, conn: ClientConn, frame: bytes) -> None:
        core = self.core
        request = core.decode_connect(conn, frame)
        if request is None:
            return
        last_zxid, timeout_asked, session_id, passwd, read_only = request
        # Apache's processConnectRequest refuses a read-write client before it looks at zxids.
        if not read_only:
            core.close_conn(conn, "Refusing session request for not-read-only client")
            return
        timeout = core.admit_connect(conn, last_zxid, timeout_asked)
        if timeout is None:
            return
        tree_zxid = core.tree.last_processed_zxid
        now = core._now_ms
        buf = core._buf(conn.conn_id)
        if session_id == 0:
            sid = self.sessions.create_session(timeout, now)
            self._attach(conn, sid)
            conn.state = OPEN
            cc.append_connect_response(buf, timeout, sid, generate_passwd(sid), True)
            core._sent(conn, 1)
            conn.update_for_response(0, tree_zxid, "SESS", now, now)
            core.stats.update_latency(0)
            return
        if session_id in core.sessions.sessions:
            # ReadOnlyZooKeeperServer.validateSession: a global session is not renewed here.
            core.close_conn(conn, "Refusing global session reconnection in RO mode")
            return
        old = core.session_conn.get(session_id)
        if old is not None and old != conn.conn_id:
            old_conn = core.conns.get(old)
            if old_conn is not None:
                core.close_conn(old_conn, "client reconnected on another connection")
        conn.session_id = session_id
        valid = passwd == generate_passwd(session_id) and \
            self.sessions.touch(session_id, timeout, now)
        if not valid:
            cc.append_connect_response(buf, 0, 0, _ZERO_PASSWD, True)
            core._sent(conn, 1)
            core.close_conn(conn, "session expired or invalid password")
            return
        self._attach(conn, session_id)
        conn.state = OPEN
        cc.append_connect_response(buf, timeout, session_id, generate_passwd(session_id), True)
        core._sent(conn, 1)

    def _attach(self, conn: ClientConn, sid: int) -> None:
        conn.session_id = sid
        self.core.session_conn[sid] = conn.conn_id
        s = self.sessions.sessions.get(sid)
        if s is not None:
            s.conn_id = conn.conn_id

    # ================================================================== requests

    def _on_request(self, conn: ClientConn, frame: bytes) -> None:
        core = self.core
        if len(frame) < 8:
            raise ProtocolError("RequestHeader", 0, "8 bytes", f"{len(frame)} bytes")
        xid, op = _REQUEST_HEADER.unpack_from(frame, 0)
        if op == 100:
            core._on_auth(conn, xid, frame)
            return
        if op == 102:
            core._on_sasl(conn, xid, frame)
            return
        now = core._now_ms
        if not self.sessions.touch(conn.session_id, conn.timeout_ms, now):
            return  # MissingSessionException: the request is dropped
        if op in READ_ONLY_OPS:
            core._run_read(conn, xid, op, frame, now)
            return
        buf = core._buf(conn.conn_id)
        zxid = core.tree.last_processed_zxid
        if op in NOT_READ_ONLY_OPS:
            cc.append_reply(buf, xid, zxid, NOTREADONLY)
            core._sent(conn, 1)
            return
        if op == -11:
            # A local closeSession: no txn; FinalRequestProcessor replies, then closes.
            self.sessions.remove(conn.session_id)
            cc.append_reply(buf, xid, zxid, 0)
            core._sent(conn, 1)
            conn.update_for_response(xid, zxid, "CLOS", now, now)
            core.close_conn(conn, "client closed the session")
            return
        cc.append_reply(buf, xid, -1, _UNIMPLEMENTED)
        core._sent(conn, 1)
        core.close_conn(conn, f"unimplemented request type {op}")
