"""ServerCore: the standalone ZooKeeper service as a sans-IO state machine.

Theory of operation
-------------------
``ServerCore.step(event, now_ms) -> list[action]`` is the whole server; ``deadline_ms()`` says
when it next needs a ``Ticked``. It mirrors Apache 3.8's standalone pipeline
(``PrepRequestProcessor -> SyncRequestProcessor -> FinalRequestProcessor``):

* ``ClientConnected`` creates a ``ClientConn``. Its first frame is a ConnectRequest
  (``ZooKeeperServer.processConnectRequest``): a client that saw a newer zxid is closed without
  a reply; the timeout is clamped to [min, max]; a new session is created in the tracker at
  once and a createSession txn is prepped, the ConnectResponse leaving when that txn is
  applied; a resumed session first closes the connection that held it, then is valid only if
  the password matches and the session is live, otherwise the reply is
  ``timeOut=0, sessionId=0, passwd=16 zero bytes`` and the connection closes.
* ``ClientFramesReceived`` handles every frame of one read in one pass. Each request touches its
  session (a closing/unknown session drops it, as ``ZooKeeperServer.touch`` does). auth (xid
  -4) and sasl (102) are answered on the spot. Writes are prepped immediately, in arrival
  order, against the pending view (``core/requests.py``) and take the next zxid, failed ones
  as error txns; the txn bytes go out in one ``AppendTxns`` per step. Reads on a connection
  with nothing queued are answered from the committed tree at once (the fast path); otherwise
  they queue behind the connection's earlier requests so replies keep request order.
* ``TxnsDurable(z)`` applies every in-flight txn up to ``z`` in zxid order: apply to the
  ``DataTree``, forget its pending change records, fire watches (notifications are queued
  before the reply, and reach only connections with READ on the node, or on the parent for
  NodeChildrenChanged: Debian's 3.8.0 carries that CVE-2024-23944 fix), build the reply with
  ``zxid = lastProcessedZxid``, then drain the owning connection's queue so any read behind
  that write runs before the next txn is applied.
* Every txn carries the TxnDigest Apache would write (``digest_enabled``): the tree digest
  after it, computed at prep time from the pending change records (none on a failed single
  op; the current digest on createSession, closeSession and multi).
* Backpressure: a connection with more than ``outstanding_requests_max_per_conn`` queued
  requests is closed; while more than ``outstanding_requests_max`` txns are in flight,
  connections with queued requests are paused (``PauseClient``) until half have drained.
* ``Ticked``: expired sessions (``SessionTracker.poll_expired``) get closeSession txns; every
  ``container_check_interval_ms`` the ContainerManager pass issues deleteContainer txns for
  empty used containers and expired TTL nodes.
* ``ClientDisconnected`` forgets the connection and its watches; its session lives on until
  it expires.

Each step returns ``AppendTxns`` first, then one ``SendToClient`` per connection (all of its
replies and notifications, in order), then the ``CloseClient`` actions. Our own broken
invariants (a zxid out of order) are assertions; a bad client only closes its connection.
"""

from __future__ import annotations

import logging
import struct
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._impl import ProtocolError
from ..config import ServerConfig
from ..wire import client_codec as cc
from ..wire import jute
from ..wire.txn_codec import encode_txn
from . import acl as acl_mod
from .actions import AppendTxns, CloseClient, PauseClient, ResumeClient, SendToClient
from .client_conn import AWAIT_CONNECT, CLOSED, CONNECTING, OPEN, ClientConn, Slot
from .datatree import DataTree, validate_path
from .events import (
    ClientConnected,
    ClientDisconnected,
    ClientFramesReceived,
    FourLetterWordReceived,
    ReadOnlyModeChanged,
    StorageFailed,
    Ticked,
    TxnsDurable,
)
from .read_only import ReadOnlyService
from .requests import (
    KeeperError,
    PendingView,
    Prepper,
    java_clone_order,
    java_hash_order,
    java_string_hash,
)
from .sessions import SessionTracker, generate_passwd
from .watches import WatchManager

if TYPE_CHECKING:  # a core imports no random module: the rng is injected
    import random

__all__ = ["ServerCore", "ServerStats", "java_auth_order"]

log = logging.getLogger("zkfast.server")

_ZERO_PASSWD = b"\0" * 16
_U64 = (1 << 64) - 1
_READ_OPS = frozenset({3, 4, 6, 8, 11, 12, 17, 18, 22, 101, 103, 104, 105, 106, 107})
_WRITE_OPS = frozenset({1, 2, 5, 7, 14, 15, 16, 19, 20, 21})
_CREATE_LAYOUT = {1: jute.CREATE_RESPONSE}
_DELETING = frozenset({2, 20, -11, 14})
_NODE_CHILDREN_CHANGED = 4
_REQUEST_HEADER = struct.Struct(">ii")
_PLAIN_CREATES = frozenset({1, 15, 19})
_TTL_FLAGS = frozenset({5, 6})
_MARSHALLING = -5
_UNIMPLEMENTED = -6
_NONODE = -101
_NOAUTH = -102
_BADARGUMENTS = -8
_NOWATCHER = -121
_AUTHFAILED = -115
_RECONFIGDISABLED = -123

#: Apache's lastOp names (FinalRequestProcessor), for cons.
_LAST_OP = {
    1: "CREA", 15: "CREA", 19: "CREA", 21: "CREA", 2: "DELE", 20: "DELE", 5: "SETD", 7: "SETA",
    16: "RECO", 14: "MULT", 22: "MLTR", -11: "CLOS", 9: "SYNC", 13: "CHEC", 3: "EXIS",
    4: "GETD", 101: "SETW", 105: "STW2", 106: "ADDW", 6: "GETA", 8: "GETC", 12: "GETC",
    104: "GETACN", 17: "CHKW", 18: "REMW", 107: "HOMI", 103: "GETE", 11: "PING", -10: "SESS",
}


def java_auth_order(ids: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The iteration order of ``ServerCnxn.authInfo`` (a ConcurrentHashMap key set of Ids).

    ``Id.hashCode`` is ``37*(37*17 + scheme.hashCode()) + id.hashCode()``; the map spreads it
    (``h ^ h>>>16``) into ``n`` bins (16, doubling past 3/4 load) and iterates bin by bin,
    insertion order inside a bin. whoAmI and ``auth:`` ACL expansion list ids in this order.
    """
    n = 16
    while len(ids) > n * 3 // 4:
        n *= 2
    keyed = []
    for i, (scheme, id_) in enumerate(ids):
        h = (37 * ((37 * 17 + java_string_hash(scheme)) & 0xFFFFFFFF)
             + java_string_hash(id_)) & 0xFFFFFFFF
        keyed.append(((h ^ (h >> 16)) & (n - 1), i, (scheme, id_)))
    keyed.sort()
    return [k[2] for k in keyed]


def _auth_order_if_needed(acl: Any, ids: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Only an ``auth`` ACL entry expands the connection's ids, in authInfo's hash order."""
    if acl:
        for entry in acl:
            if entry is not None and entry[1] is not None and entry[1][0] == "auth":
                return java_auth_order(ids)
    return ids


def _czxid(node: Any) -> int:
    return node.czxid if node is not None else 0


class ServerStats:
    """Server-wide counters for srvr/stat/mntr (Apache ``ServerStats``)."""

    __slots__ = ("packets_received", "packets_sent", "min_latency_ms", "max_latency_ms",
                 "total_latency_ms", "count", "started_ms")

    def __init__(self, now_ms: int) -> None:
        self.started_ms = now_ms
        self.reset()

    def reset(self) -> None:
        """``srst``: ServerStats.reset (latency and packet counters)."""
        self.packets_received = 0
        self.packets_sent = 0
        self.min_latency_ms = -1
        self.max_latency_ms = 0
        self.total_latency_ms = 0
        self.count = 0

    def update_latency(self, latency_ms: int) -> None:
        if self.min_latency_ms < 0 or latency_ms < self.min_latency_ms:
            self.min_latency_ms = latency_ms
        if latency_ms > self.max_latency_ms:
            self.max_latency_ms = latency_ms
        self.total_latency_ms += latency_ms
        self.count += 1

    @property
    def min_latency(self) -> int:
        return self.min_latency_ms if self.min_latency_ms >= 0 else 0

    @property
    def avg_latency(self) -> float:
        return self.total_latency_ms / self.count if self.count else 0.0


class _Inflight:
    """A prepped txn waiting to be durable and applied."""

    __slots__ = ("zxid", "header", "record", "conn_id", "slot", "results")

    def __init__(self, zxid: int, header: tuple[int, int, int, int, int], record: Any,
                 conn_id: int | None, slot: Slot | None, results: Any) -> None:
        self.zxid = zxid
        self.header = header
        self.record = record
        self.conn_id = conn_id
        self.slot = slot
        self.results = results


class ServerCore:
    """The standalone service (see the module docstring).

    Args:
        config: the frozen server configuration.
        now_ms: wall-clock ms at start (session ids and expiry buckets start from it).
        rng: randomness for SASL nonces (session passwords are derived, not random).
        tree: a restored ``DataTree`` (default: a fresh one at zxid 0).
        sessions: restored ``(session_id, timeout_ms)`` pairs, tracked as live.
        four_letter_words: ``(word, core, config, now_ms) -> bytes`` for a
            ``FourLetterWordReceived`` event (the runtime passes
            ``zkfast.runtime.admin.run_four_letter_word``; without it the connection is just
            closed). The runtime may also call that function itself and never send the event.
    """

    def __init__(self, config: ServerConfig, *, now_ms: int, rng: random.Random,
                 tree: DataTree | None = None,
                 sessions: list[tuple[int, int]] | None = None,
                 four_letter_words: Callable[[bytes, Any, ServerConfig, int], bytes] | None
                 = None) -> None:
        self.config = config
        self.four_letter_words = four_letter_words
        self.rng = rng
        self.tree = tree if tree is not None else DataTree(
            extended_types_enabled=config.extended_types_enabled)
        self.watches = WatchManager()
        # A standalone ZooKeeperServer builds its tracker with createSessionTrackerServerId = 1,
        # so standalone session ids start 0x01... whatever myid says.
        self.sessions = SessionTracker(tick_ms=config.tick_ms, now_ms=now_ms, server_id=1)
        for sid, timeout in sessions or ():
            self.sessions.add_session(sid, timeout, now_ms)
        self.stats = ServerStats(now_ms)
        self.conns: dict[int, ClientConn] = {}
        self.session_conn: dict[int, int] = {}
        self.view = PendingView(self.tree, config.digest_enabled)
        self.digest_enabled = config.digest_enabled
        # ProviderRegistry: ip and digest always; sasl/x509 as configured (config.py fills
        # auth_providers from authProvider.N and the secure port).
        self._schemes = frozenset(acl_mod.DEFAULT_SCHEMES
                                  | (set(config.auth_providers) & acl_mod.ALL_SCHEMES))
        skip = config.skip_acl
        sch = self._schemes
        _check = acl_mod.check_acl
        _fix = acl_mod.fixup_acl
        x509_super = config.x509_super_user
        self.check_acl: Callable[[Any, int, Any], bool] = (
            lambda a, perm, ids: _check(a, perm, ids, skip_acl=skip, schemes=sch,
                                        x509_super_user=x509_super))
        self.prepper = Prepper(
            self.view, validate_path=validate_path, check_acl=self.check_acl,
            fixup_acl=lambda a, ids: _fix(a, _auth_order_if_needed(a, ids), schemes=sch),
            is_session_live=self.sessions.is_live,
            extended_types_enabled=config.extended_types_enabled,
            enforce_quota=getattr(config, "enforce_quota", False))
        self.next_zxid = self.tree.last_processed_zxid + 1
        self.last_proposed_zxid = self.tree.last_processed_zxid
        self._inflight: deque[_Inflight] = deque()
        self._sync_waiters: dict[int, list[int]] = {}
        self._out: dict[int, bytearray] = {}
        self._closes: list[CloseClient] = []
        self._append: list[tuple[int, bytes]] = []
        self._extra: list[Any] = []
        self._paused: dict[int, None] = {}
        self._children_cache: dict[str, tuple[tuple[int, int], list[str]]] = {}
        self._children_cap: dict[str, tuple[int, int]] = {}
        self._now_ms = now_ms
        self.storage_failed: str | None = None
        interval = getattr(config, "container_check_interval_ms", 60000)
        self.container_check_interval_ms = interval
        self._next_container_check_ms = now_ms + interval if interval > 0 else None
        self._handlers: dict[type, Callable[[Any], None]] = {
            ClientFramesReceived: self._on_frames,
            TxnsDurable: self._on_durable,
            ClientConnected: self._on_connected,
            ClientDisconnected: self._on_disconnected,
            Ticked: self._on_ticked,
            StorageFailed: self._on_storage_failed,
            FourLetterWordReceived: self._on_four_letter_word,
            ReadOnlyModeChanged: self._on_read_only_changed,
        }
        #: The read-only service while a quorum peer serves in read-only mode (None otherwise).
        self.read_only_service: ReadOnlyService | None = None
        self._reads: dict[int, Callable[[ClientConn, Any], tuple[Any, Any]]] = {
            3: self._read_exists, 4: self._read_get_data, 6: self._read_get_acl,
            8: self._read_get_children, 12: self._read_get_children2,
            17: self._read_check_watches, 18: self._read_remove_watches,
            101: self._read_set_watches, 105: self._read_set_watches,
            103: self._read_get_ephemerals, 104: self._read_all_children_number,
            106: self._read_add_watch, 107: self._read_who_am_i,
            16: self._read_bad_reconfig,
        }

    # ================================================================== driver interface

    def step(self, event: Any, now_ms: int) -> list[Any]:
        """Handle one event; return the actions it causes (see the module docstring)."""
        self._now_ms = now_ms
        self._handlers[type(event)](event)
        return self._flush_actions()

    def deadline_ms(self) -> int | None:
        """The next time a ``Ticked`` is needed (session expiry, container check); None
        once storage has failed (nothing is expired or reaped any more)."""
        if self.storage_failed is not None:
            return None
        if self.read_only_service is not None:
            return self.read_only_service.deadline_ms()
        d = self.sessions.deadline_ms()
        c = self._next_container_check_ms
        if c is not None and (self.tree.containers or self.tree.ttls):
            d = c if d is None or c < d else d
        return d

    def _flush_actions(self) -> list[Any]:
        actions: list[Any] = []
        if self._append:
            actions.append(AppendTxns(self._append))
            self._append = []
        if self._out:
            for conn_id, buf in self._out.items():
                if buf:
                    actions.append(SendToClient(conn_id, bytes(buf)))
            self._out = {}
        if self._extra:
            actions.extend(self._extra)
            self._extra = []
        if self._closes:
            actions.extend(self._closes)
            self._closes = []
        return actions

    # ================================================================== connections

    def _on_connected(self, ev: ClientConnected) -> None:
        conn = ClientConn(ev.conn_id, ev.remote_host, ev.remote_port, self._now_ms, ev.secure)
        x509_super = self.config.x509_super_user
        for dn in ev.cert_ids:
            if dn == x509_super:
                # X509AuthenticationProvider.handleAuthentication adds ("super", id) first.
                conn.auth_ids.append(("super", dn))
            conn.auth_ids.append(("x509", dn))
        self.conns[ev.conn_id] = conn

    def _on_disconnected(self, ev: ClientDisconnected) -> None:
        conn = self.conns.get(ev.conn_id)
        if conn is not None:
            self._forget(conn)
        self._out.pop(ev.conn_id, None)

    def _forget(self, conn: ClientConn) -> None:
        conn.state = CLOSED
        self._paused.pop(conn.conn_id, None)
        self.conns.pop(conn.conn_id, None)
        self.watches.remove_conn(conn.conn_id)
        if conn.session_id and self.session_conn.get(conn.session_id) == conn.conn_id:
            del self.session_conn[conn.session_id]
            s = self.sessions.sessions.get(conn.session_id)
            if s is not None and s.conn_id == conn.conn_id:
                s.conn_id = None
        conn.pending.clear()

    def close_conn(self, conn: ClientConn, reason: str) -> None:
        """Close a connection after what was queued for it (CloseClient follows the sends)."""
        if conn.state == CLOSED:
            return
        self._forget(conn)
        self._closes.append(CloseClient(conn.conn_id, reason))

    def _buf(self, conn_id: int) -> bytearray:
        buf = self._out.get(conn_id)
        if buf is None:
            buf = self._out[conn_id] = bytearray()
        return buf

    def _on_four_letter_word(self, ev: FourLetterWordReceived) -> None:
        if self.four_letter_words is not None:
            text = self.four_letter_words(ev.word, self, self.config, self._now_ms)
            self._buf(ev.conn_id).extend(text)
        conn = self.conns.get(ev.conn_id)
        if conn is not None:
            self._forget(conn)
        self._closes.append(CloseClient(ev.conn_id, "four letter word"))

    def _on_storage_failed(self, ev: StorageFailed) -> None:
        """The txn log cannot be trusted: stop serving for good.

        Apache's SyncRequestProcessor dies on the IO error; ZooKeeperCriticalThread moves
        the server to State.ERROR and the standalone main shuts it down. zkfast keeps the
        process (four-letter words answer "not serving") but prepares no txn ever again:
        every connection closes, new ones are refused at their ConnectRequest, txns in
        flight are never applied nor acknowledged (a late ``TxnsDurable`` is ignored), and
        ticks no longer expire sessions or reap containers, so no closeSession txn piles up.
        """
        if self.storage_failed is not None:
            return
        self.storage_failed = ev.reason
        log.error("storage failed: %s; serving stops: no more txns, %d in flight (up to "
                  "zxid 0x%x) will never be acknowledged, %d connections closed", ev.reason,
                  len(self._inflight), self.last_proposed_zxid, len(self.conns))
        self._sync_waiters.clear()
        for conn in list(self.conns.values()):
            self.close_conn(conn, f"storage failed: {ev.reason}")

    # ================================================================== read-only mode

    def set_read_only(self, read_only: bool, now_ms: int) -> list[Any]:
        """Start or stop the read-only service (core/read_only.py); same as stepping
        ``ReadOnlyModeChanged(read_only)``."""
        return self.step(ReadOnlyModeChanged(read_only), now_ms)

    def _on_read_only_changed(self, ev: ReadOnlyModeChanged) -> None:
        """ReadOnlyZooKeeperServer startup/shutdown: both close every client connection."""
        svc = self.read_only_service
        if ev.read_only == (svc is not None):
            return
        # Apache starts (and later drops) a ZooKeeperServer of its own, with fresh ServerStats.
        self.stats = ServerStats(self._now_ms)
        if ev.read_only:
            svc = ReadOnlyService(self, self._now_ms)
            svc.close_all("read-only service starting")
            self.read_only_service = svc
            self._handlers[ClientFramesReceived] = svc.on_frames
            self._handlers[Ticked] = svc.on_ticked
            log.info("read-only service started (serving the tree at zxid 0x%x)",
                     self.tree.last_processed_zxid)
        else:
            assert svc is not None
            svc.close_all("read-only service stopped")
            self.read_only_service = None
            self._handlers[ClientFramesReceived] = self._on_frames
            self._handlers[Ticked] = self._on_ticked
            log.info("read-only service stopped")

    # ================================================================== frames

    def _on_frames(self, ev: ClientFramesReceived) -> None:
        conn = self.conns.get(ev.conn_id)
        if conn is None:
            return
        stats = self.stats
        for frame in ev.frames:
            if conn.state == CLOSED:
                return
            conn.packets_received += 1
            stats.packets_received += 1
            if conn.state == AWAIT_CONNECT:
                self._on_connect_request(conn, frame)
                continue
            try:
                self._on_request(conn, frame)
            except ProtocolError as e:
                self.close_conn(conn, f"malformed request: {e}")
            except AssertionError:
                raise  # our own broken invariant: stop the server
            except Exception as e:  # noqa: BLE001 - one bad client never takes the server down
                self._unwind_unproposed()
                self.close_conn(conn, f"internal error on session 0x{conn.session_id & _U64:x}: "
                                      f"{type(e).__name__}: {e}")
        if conn.state == CLOSED:
            return
        if len(conn.pending) > self.config.outstanding_requests_max_per_conn:
            self.close_conn(conn, "too many outstanding requests")
        elif conn.pending and len(self._inflight) > self.config.outstanding_requests_max \
                and conn.conn_id not in self._paused:
            # zookeeper.globalOutstandingLimit (ZooKeeperServer.shouldThrottle): stop reading
            # from connections that have requests in flight until the backlog drains.
            self._paused[conn.conn_id] = None
            self._extra.append(PauseClient(conn.conn_id))

    def _unwind_unproposed(self) -> None:
        """Give back a zxid taken by a request that failed before it was proposed, with the
        change records its prep left, so the next txn has no gap."""
        last = self.last_proposed_zxid
        if self.next_zxid != last + 1:
            view = self.view
            mark = len(view.changes)
            while mark and view.changes[mark - 1].zxid > last:
                mark -= 1
            view.truncate(mark)
            self.next_zxid = last + 1

    def decode_connect(self, conn: ClientConn, frame: bytes
                       ) -> tuple[int, int, int, bytes | None, bool | None] | None:
        """Decode a ConnectRequest: ``(lastZxidSeen, timeout, session_id, passwd, readOnly)``.

        Closes the connection and returns None when the request is malformed or the server no
        longer serves (a failed txn log). Shared by the read-write and read-only services.
        """
        try:
            _pv, last_zxid, timeout, session_id, passwd, read_only = \
                cc.decode_connect_request(frame)
        except ProtocolError as e:
            self.close_conn(conn, f"malformed ConnectRequest: {e}")
            return None
        if self.storage_failed is not None:
            self.close_conn(conn, "not serving")
            return None
        conn.read_only_byte = read_only
        return last_zxid, timeout, session_id, passwd, read_only

    def admit_connect(self, conn: ClientConn, last_zxid: int, timeout: int) -> int | None:
        """Refuse a client that has seen a newer zxid than ours (it must try another server);
        otherwise return the session timeout negotiated into [min, max] and note it on ``conn``.
        """
        ours = self.tree.last_processed_zxid
        if last_zxid > ours:
            self.close_conn(conn, f"client has seen zxid 0x{last_zxid:x}, ours is 0x{ours:x}")
            return None
        config = self.config
        timeout = max(config.session_timeout_min_ms, min(timeout, config.session_timeout_max_ms))
        conn.timeout_ms = timeout
        return timeout

    def _on_connect_request(self, conn: ClientConn, frame: bytes) -> None:
        request = self.decode_connect(conn, frame)
        if request is None:
            return
        last_zxid, timeout_asked, session_id, passwd, read_only = request
        timeout = self.admit_connect(conn, last_zxid, timeout_asked)
        if timeout is None:
            return
        now = self._now_ms
        if session_id == 0:
            sid = self.sessions.create_session(timeout, now)
            self._attach(conn, sid)
            conn.state = CONNECTING
            zxid = self._next_zxid()
            header = (sid, 0, zxid, now, -10)
            slot = Slot("connect", 0, -10, zxid, None, now)
            conn.pending.append(slot)
            digest = self.view.current_tree_digest() if self.digest_enabled else None
            self._propose(header, (timeout,), digest, conn.conn_id, slot, None)
            return
        old = self.session_conn.get(session_id)
        if old is not None and old != conn.conn_id:
            old_conn = self.conns.get(old)
            if old_conn is not None:
                self.close_conn(old_conn, "client reconnected on another connection")
        conn.session_id = session_id
        valid = passwd == generate_passwd(session_id) and \
            self.sessions.touch(session_id, timeout, now)
        buf = self._buf(conn.conn_id)
        if not valid:
            cc.append_connect_response(buf, 0, 0, _ZERO_PASSWD, read_only if read_only is None
                                       else False)
            self._sent(conn, 1)
            self.close_conn(conn, "session expired or invalid password")
            return
        self._attach(conn, session_id)
        conn.state = OPEN
        cc.append_connect_response(buf, timeout, session_id, generate_passwd(session_id),
                                   None if read_only is None else False)
        self._sent(conn, 1)

    def _attach(self, conn: ClientConn, sid: int) -> None:
        conn.session_id = sid
        self.session_conn[sid] = conn.conn_id
        s = self.sessions.sessions.get(sid)
        if s is not None:
            s.conn_id = conn.conn_id

    def _sent(self, conn: ClientConn, n: int) -> None:
        conn.packets_sent += n
        self.stats.packets_sent += n

    def _on_request(self, conn: ClientConn, frame: bytes) -> None:
        if len(frame) < 8:
            raise ProtocolError("RequestHeader", 0, "8 bytes", f"{len(frame)} bytes")
        xid, op = _REQUEST_HEADER.unpack_from(frame, 0)
        if op in _READ_OPS:  # the fast path: reads and pings
            now = self._now_ms
            if not self.sessions.touch(conn.session_id, conn.timeout_ms, now):
                return
            if conn.pending:
                conn.pending.append(Slot("read", xid, op, 0, frame, now))
            else:
                self._run_read(conn, xid, op, frame, now)
            return
        if op == 100:
            self._on_auth(conn, xid, frame)
            return
        if op == 102:
            self._on_sasl(conn, xid, frame)
            return
        now = self._now_ms
        if not self.sessions.touch(conn.session_id, conn.timeout_ms, now):
            return  # MissingSessionException: the request is dropped
        if op == 9:
            self._on_sync(conn, xid, frame)
            return
        if op in _WRITE_OPS:
            if op == 16:
                try:
                    cc.decode_request(16, frame)
                except ProtocolError:
                    # Decoded before the txn header exists: MarshallingError, no txn.
                    self._read_or_queue(conn, xid, op, frame, now)
                    return
            self._on_write(conn, xid, op, frame)
            return
        if op == -11:
            self._on_close_session(conn, xid)
            return
        # Request.isValid: unknown opcodes and check alone (ZOOKEEPER: a lone check has no
        # reply body in 3.8) get Unimplemented, then the connection closes.
        buf = self._buf(conn.conn_id)
        cc.append_reply(buf, xid, -1, _UNIMPLEMENTED)
        self._sent(conn, 1)
        self.close_conn(conn, f"unimplemented request type {op}")

    def _read_or_queue(self, conn: ClientConn, xid: int, op: int, frame: bytes,
                       now: int) -> None:
        if conn.pending:
            conn.pending.append(Slot("read", xid, op, 0, frame, now))
        else:
            self._run_read(conn, xid, op, frame, now)

    # ================================================================== auth and sasl

    def _on_auth(self, conn: ClientConn, xid: int, frame: bytes) -> None:
        _type, scheme, auth = cc.decode_auth_packet(frame)
        ok = False
        if scheme == "digest":
            for id_ in acl_mod.digest_auth_ids(auth or b"", self.config.super_digest):
                if id_ not in conn.auth_ids:
                    conn.auth_ids.append(id_)
            ok = True
        elif scheme == "ip":
            ident = ("ip", conn.remote_host)
            if ident not in conn.auth_ids:
                conn.auth_ids.append(ident)
            ok = True
        buf = self._buf(conn.conn_id)
        cc.append_reply(buf, xid, 0, 0 if ok else _AUTHFAILED)
        self._sent(conn, 1)
        if not ok:
            self.close_conn(conn, f"auth failed for scheme {scheme!r}")

    def _on_sasl(self, conn: ClientConn, xid: int, frame: bytes) -> None:
        (token,) = cc.decode_request(102, frame)
        buf = self._buf(conn.conn_id)
        users = dict(self.config.sasl_users)
        if not users:
            # No SASL server on this connection: Apache's NullPointerException path answers
            # OK with a null token.
            cc.append_reply(buf, xid, 0, 0, jute.SASL_TOKEN, (None,))
            self._sent(conn, 1)
            return
        try:
            from .sasl import DigestMD5Server, SaslError
        except ImportError:
            cc.append_reply(buf, xid, 0, _AUTHFAILED, jute.SASL_TOKEN, (None,))
            self._sent(conn, 1)
            self.close_conn(conn, "SASL unavailable")
            return
        if conn.sasl is None:
            conn.sasl = DigestMD5Server(users, self.rng,
                                        super_password=self.config.sasl_super_password)
        try:
            reply = conn.sasl.step(token or b"")
        except SaslError as e:
            cc.append_reply(buf, xid, 0, _AUTHFAILED, jute.SASL_TOKEN, (None,))
            self._sent(conn, 1)
            self.close_conn(conn, f"SASL authentication failed: {e}")
            return
        if conn.sasl.complete and conn.sasl.authorized_id is not None:
            authorized = conn.sasl.authorized_id
            ident = ("sasl", authorized)
            if ident not in conn.auth_ids:
                conn.auth_ids.append(ident)
            # ZooKeeperServer.isSaslSuperUser: zookeeper.superUser[.*] names the id.
            if authorized and authorized in self.config.sasl_super_users \
                    and ("super", "") not in conn.auth_ids:
                conn.auth_ids.append(("super", ""))
        cc.append_reply(buf, xid, 0, 0, jute.SASL_TOKEN, (reply,))
        self._sent(conn, 1)

    # ================================================================== writes

    def _next_zxid(self) -> int:
        z = self.next_zxid
        self.next_zxid = z + 1
        return z

    def _propose(self, header: tuple[int, int, int, int, int], record: Any,
                 digest: int | None, conn_id: int | None, slot: Slot | None,
                 results: Any) -> None:
        zxid = header[2]
        assert zxid == self.last_proposed_zxid + 1, "zxids must be proposed without gaps"
        data = encode_txn(header, record, digest)
        self.last_proposed_zxid = zxid
        self._append.append((zxid, data))
        self._inflight.append(_Inflight(zxid, header, record, conn_id, slot, results))

    def _on_write(self, conn: ClientConn, xid: int, op: int, frame: bytes) -> None:
        now = self._now_ms
        zxid = self._next_zxid()
        sid = conn.session_id
        prepper = self.prepper
        header_type = op
        results: Any = None
        digest: int | None = None
        record: Any
        view = self.view
        mark = len(view.changes)
        try:
            if op == 20:
                # 3.8 reads the deleteContainer path from the whole request buffer, header
                # included, so a client-sent one always contains NUL: BadArguments.
                path = frame.decode("utf-8", "replace")
                header_type, record, _ = prepper.delete_container(path, zxid)
            elif op == 16:
                raise KeeperError(_RECONFIGDISABLED if not getattr(
                    self.config, "reconfig_enabled", False) else _UNIMPLEMENTED)
            elif op == 14:
                try:
                    ops = cc.decode_request(14, frame)
                except ProtocolError:
                    raise KeeperError(_MARSHALLING) from None
                for sub_op, sub in ops:
                    if sub_op in _PLAIN_CREATES and sub[3] in _TTL_FLAGS:
                        # 3.8 rebuilds such an op as a createTTL Op without a TTL request
                        # behind it, and prep fails on it as a whole: MarshallingError.
                        raise KeeperError(_MARSHALLING)
                record, results, _failed = prepper.multi(ops, sid, conn.auth_ids, zxid, now)
                if self.digest_enabled:
                    digest = self.view.current_tree_digest()
            else:
                try:
                    rec = cc.decode_request(op, frame)
                except ProtocolError:
                    raise KeeperError(_MARSHALLING) from None
                header_type, record, has_digest = prepper.ops[op](
                    op, rec, sid, conn.auth_ids, zxid, now)
                results = record[0]
                if self.digest_enabled and has_digest:
                    digest = self.view.current_tree_digest()
        except KeeperError as e:
            header_type, record, digest = -1, (e.code,), None
        except Exception:  # noqa: BLE001 - PrepRequestProcessor's catch-all
            # Apache answers any other failure in prep with a MarshallingError txn. The zxid
            # is taken, so it must still be proposed; drop whatever records prep left.
            view.truncate(mark)
            header_type, record, digest, results = -1, (_MARSHALLING,), None, None
        slot = Slot("write", xid, op, zxid, None, now)
        conn.pending.append(slot)
        self._propose((sid, xid, zxid, now, header_type), record, digest, conn.conn_id, slot,
                      results)

    def _on_close_session(self, conn: ClientConn, xid: int) -> None:
        now = self._now_ms
        zxid = self._next_zxid()
        sid = conn.session_id
        header_type, record, _ = self.prepper.close_session(sid, zxid)
        self.sessions.set_closing(sid)
        slot = Slot("close", xid, -11, zxid, None, now)
        conn.pending.append(slot)
        digest = self.view.current_tree_digest() if self.digest_enabled else None
        if not self.config.close_session_txn_enabled:
            record = None
        self._propose((sid, xid, zxid, now, header_type), record, digest, conn.conn_id, slot,
                      None)

    def _expire_session(self, sid: int) -> None:
        """SessionTrackerImpl expirer -> ZooKeeperServer.expire: a closeSession txn."""
        zxid = self._next_zxid()
        header_type, record, _ = self.prepper.close_session(sid, zxid)
        digest = self.view.current_tree_digest() if self.digest_enabled else None
        if not self.config.close_session_txn_enabled:
            record = None
        self._propose((sid, 0, zxid, self._now_ms, header_type), record, digest, None, None,
                      None)

    def _on_sync(self, conn: ClientConn, xid: int, frame: bytes) -> None:
        now = self._now_ms
        try:
            rec = cc.decode_request(9, frame)
        except ProtocolError:
            rec = None
        target = self.last_proposed_zxid
        if target <= self.tree.last_processed_zxid and not conn.pending:
            self._reply_sync(conn, xid, rec, now, now)
            return
        slot = Slot("sync", xid, 9, target, rec, now)
        conn.pending.append(slot)
        if target > self.tree.last_processed_zxid:
            self._sync_waiters.setdefault(target, []).append(conn.conn_id)

    def _reply_sync(self, conn: ClientConn, xid: int, rec: Any, received_ms: int,
                    now: int) -> None:
        buf = self._buf(conn.conn_id)
        zxid = self.tree.last_processed_zxid
        if rec is None:
            cc.append_reply(buf, xid, zxid, _MARSHALLING)
        else:
            cc.append_reply(buf, xid, zxid, 0, jute.SYNC_RESPONSE, rec)
        self._sent(conn, 1)
        self._finished(conn, xid, zxid, 9, received_ms, now)

    def _finished(self, conn: ClientConn, xid: int, zxid: int, op: int, received_ms: int,
                  now: int) -> None:
        conn.update_for_response(xid, zxid, _LAST_OP.get(op, "NA"), received_ms, now)
        self.stats.update_latency(now - received_ms)

    # ================================================================== apply

    def _on_durable(self, ev: TxnsDurable) -> None:
        if self.storage_failed is not None:
            return  # nothing is applied or acknowledged after a storage failure
        inflight = self._inflight
        tree = self.tree
        view = self.view
        watches = self.watches
        conns = self.conns
        while inflight and inflight[0].zxid <= ev.zxid:
            t = inflight.popleft()
            assert t.zxid == tree.last_processed_zxid + 1 or tree.last_processed_zxid == 0 \
                or t.zxid > tree.last_processed_zxid, "txns must apply in zxid order"
            htype = t.header[4]
            doomed = self._doomed_acls(htype, t.record) if htype in _DELETING else None
            triggers = tree.apply_txn(t.header, t.record)
            view.applied(t.zxid)
            if htype == -10:
                self._after_create_session(t)
            elif htype == -11:
                self._after_close_session(t)
            for path, event_type in triggers:
                if event_type == _NODE_CHILDREN_CHANGED:
                    self._track_children_capacity(path)
                fired = watches.trigger(path, event_type)
                if not fired:
                    continue
                # CVE-2024-23944 (ZOOKEEPER-4799), in Debian's 3.8.0: a notification reaches
                # only connections with READ on the node (the parent, for a children change);
                # a one-shot watch is consumed either way.
                node = tree.nodes.get(path)
                acl = node.acl if node is not None else (doomed.get(path) if doomed else None)
                for conn_id in fired:
                    c = conns.get(conn_id)
                    if c is None:
                        continue
                    if acl is not None and not self.check_acl(acl, 1, c.auth_ids):
                        continue
                    cc.append_notification(self._buf(conn_id), int(event_type), 3, path)
                    self._sent(c, 1)
            slot = t.slot
            if slot is not None and t.conn_id is not None:
                conn = conns.get(t.conn_id)
                if conn is not None:
                    self._complete_write(conn, slot, t)
                    self._drain(conn)
            if self._paused and len(inflight) <= self.config.outstanding_requests_max // 2:
                for conn_id in self._paused:
                    if conn_id in conns:
                        self._extra.append(ResumeClient(conn_id))
                self._paused.clear()
            waiters = self._sync_waiters.pop(t.zxid, None)
            if waiters:
                for conn_id in waiters:
                    c = conns.get(conn_id)
                    if c is not None:
                        self._drain(c)

    def _doomed_acls(self, htype: int, record: Any) -> dict[str, Any]:
        """ACLs of the nodes a txn is about to delete (their NodeDeleted is checked on them)."""
        nodes = self.tree.nodes
        paths: list[str] = []
        if htype in (2, 20):
            paths.append(record[0])
        elif htype == -11:
            if record is not None and record[0]:
                paths.extend(record[0])
        else:  # multi
            paths.extend(sub[0] for t, sub in record if t in (2, 20))
        out: dict[str, Any] = {}
        for p in paths:
            node = nodes.get(p)
            if node is not None:
                out[p] = node.acl
        return out

    def _after_create_session(self, t: _Inflight) -> None:
        conn = self.conns.get(t.conn_id) if t.conn_id is not None else None
        if conn is not None and conn.state == CONNECTING:
            conn.state = OPEN

    def _after_close_session(self, t: _Inflight) -> None:
        sid = t.header[0]
        self.sessions.remove(sid)
        conn_id = self.session_conn.get(sid)
        if t.conn_id is None and conn_id is not None:
            # Expired (or closed elsewhere): the session's connection goes too.
            conn = self.conns.get(conn_id)
            if conn is not None:
                self.close_conn(conn, "session expired")

    def _complete_write(self, conn: ClientConn, slot: Slot, t: _Inflight) -> None:
        """Build the reply of an applied txn into ``slot`` (FinalRequestProcessor)."""
        out = bytearray()
        tree = self.tree
        zxid = tree.last_processed_zxid
        header_type = t.header[4]
        op = slot.opcode
        if op == -10:
            ro = conn.read_only_byte
            cc.append_connect_response(out, conn.timeout_ms, conn.session_id,
                                       generate_passwd(conn.session_id),
                                       None if ro is None else False)
        elif header_type == -1:
            cc.append_reply(out, slot.xid, zxid, t.record[0])
        elif op == 14:
            cc.append_multi_reply(out, slot.xid, zxid, self._multi_results(t))
        elif op == 1:
            cc.append_reply(out, slot.xid, zxid, 0, jute.CREATE_RESPONSE, (t.record[0],))
        elif op in (15, 19, 21):
            path = t.record[0]
            node = tree.nodes.get(path)
            if node is None:
                cc.append_reply(out, slot.xid, zxid, _NONODE)
            else:
                cc.append_reply(out, slot.xid, zxid, 0, jute.CREATE2_RESPONSE,
                                (path, tree.stat_of(node)))
        elif op in (5, 7):
            node = tree.nodes.get(t.record[0])
            if node is None:
                cc.append_reply(out, slot.xid, zxid, _NONODE)
            else:
                cc.append_reply(out, slot.xid, zxid, 0, jute.STAT_RESPONSE,
                                (tree.stat_of(node),))
        else:  # delete, deleteContainer, closeSession
            cc.append_reply(out, slot.xid, zxid, 0)
        slot.reply = bytes(out)
        slot.done = True
        slot.zxid = zxid

    def _multi_results(self, t: _Inflight) -> list[tuple[int, int, Any]]:
        failed = any(sub_type == -1 for sub_type, _ in t.record)
        out: list[tuple[int, int, Any]] = []
        if failed:
            seen_error = False
            for sub_type, sub in t.record:
                if sub_type == -1:
                    out.append((-1, sub[0], None))
                    seen_error = True
                else:
                    out.append((-1, -2 if seen_error else 0, None))
            return out
        for op, path, stat in t.results:
            if op == 1:
                out.append((1, 0, (path,)))
            elif op in (15, 19, 21):
                out.append((15, 0, (path, stat)))
            elif op == 5:
                out.append((5, 0, (stat,)))
            else:  # delete, check
                out.append((op, 0, None))
        return out

    def _drain(self, conn: ClientConn) -> None:
        """Send every finished reply at the head of the connection's queue, in order."""
        pending = conn.pending
        now = self._now_ms
        processed = self.tree.last_processed_zxid
        while pending and conn.state != CLOSED:
            slot = pending[0]
            kind = slot.kind
            if kind == "read":
                pending.popleft()
                self._run_read(conn, slot.xid, slot.opcode, slot.record, slot.received_ms)
                continue
            if kind == "sync":
                if slot.zxid > processed:
                    return
                pending.popleft()
                self._reply_sync(conn, slot.xid, slot.record, slot.received_ms, now)
                continue
            if not slot.done:
                return
            pending.popleft()
            assert slot.reply is not None
            self._buf(conn.conn_id).extend(slot.reply)
            self._sent(conn, 1)
            if kind == "connect":
                conn.update_for_response(0, slot.zxid, "SESS", slot.received_ms, now)
                self.stats.update_latency(now - slot.received_ms)
            else:
                self._finished(conn, slot.xid, slot.zxid, slot.opcode, slot.received_ms, now)
            if kind == "close":
                self.close_conn(conn, "client closed the session")
                return

    # ================================================================== reads

    def _run_read(self, conn: ClientConn, xid: int, op: int, frame: bytes,
                  received_ms: int) -> None:
        """Answer one read from the committed tree (FinalRequestProcessor)."""
        buf = self._out.get(conn.conn_id)
        if buf is None:
            buf = self._out[conn.conn_id] = bytearray()
        zxid = self.tree.last_processed_zxid
        if op == 11:
            cc.append_reply(buf, -2, zxid, 0)
        elif op == 22:
            try:
                ops = cc.decode_request(22, frame)
            except ProtocolError:
                cc.append_reply(buf, xid, zxid, _MARSHALLING)
            else:
                try:
                    results = self._multi_read(conn, ops)
                except ProtocolError:
                    cc.append_reply(buf, xid, zxid, _MARSHALLING)
                else:
                    cc.append_multi_reply(buf, xid, zxid, results)
        else:
            try:
                rec = cc.decode_request(op, frame)
                layout, body = self._reads[op](conn, rec)
            except ProtocolError:
                cc.append_reply(buf, xid, zxid, _MARSHALLING)
            except KeeperError as e:
                cc.append_reply(buf, xid, zxid, e.code)
            else:
                cc.append_reply(buf, xid, zxid, 0, layout, body)
        conn.packets_sent += 1
        stats = self.stats
        stats.packets_sent += 1
        now = self._now_ms
        conn.update_for_response(xid, zxid, _LAST_OP.get(op, "NA"), received_ms, now)
        stats.update_latency(now - received_ms)

    def _lookup(self, path: str | None) -> Any:
        """The node at ``path``; Apache's map also holds the root under ``""``."""
        if path is None:
            raise ProtocolError("path", 8, "a string", "null")  # NPE: MarshallingError
        return self.tree.nodes.get(path or "/")

    def _node_for_read(self, conn: ClientConn, path: str, perm: int) -> Any:
        node = self._lookup(path)
        if node is None:
            raise KeeperError(_NONODE)
        if not self.check_acl(node.acl, perm, conn.auth_ids):
            raise KeeperError(_NOAUTH)
        return node

    def _read_exists(self, conn: ClientConn, rec: Any) -> tuple[Any, Any]:
        path: str
        path, watch = rec
        if path is not None and "\0" in path:
            raise KeeperError(_BADARGUMENTS)
        node = self._lookup(path)
        if watch:
            if node is None:
                self.watches.add_exist_watch(path, conn.conn_id)
            else:
                self.watches.add_data_watch(path, conn.conn_id)
        if node is None:
            raise KeeperError(_NONODE)
        return jute.STAT_RESPONSE, (self.tree.stat_of(node),)

    def _read_get_data(self, conn: ClientConn, rec: Any) -> tuple[Any, Any]:
        path, watch = rec
        node = self._node_for_read(conn, path, 1)
        if watch:
            self.watches.add_data_watch(path, conn.conn_id)
        return jute.GET_DATA_RESPONSE, (node.data, self.tree.stat_of(node))

    def _read_get_acl(self, conn: ClientConn, rec: Any) -> tuple[Any, Any]:
        (path,) = rec
        node = self._node_for_read(conn, path, 1 | 16)
        admin = self.check_acl(node.acl, 16, conn.auth_ids)
        acl = acl_mod.redact_acl_for_getacl(node.acl, admin)
        return jute.GET_ACL_RESPONSE, (acl, self.tree.stat_of(node))

    def _children(self, path: str, node: Any) -> list[str]:
        """Child names in the order Apache lists them: its ``DataNode.children`` HashSet
        (capacity 8, growing at 3/4 load), iterated bin by bin, creation order inside a bin.
        Cached per parent until its pzxid or child count moves."""
        children = node.children
        if not children:
            return []
        key = (node.pzxid, len(children))
        hit = self._children_cache.get(path)
        if hit is not None and hit[0] == key:
            return hit[1]
        nodes = self.tree.nodes
        base = "" if path == "/" else path
        names = sorted(children, key=lambda n: _czxid(nodes.get(base + "/" + n)))
        # A HashMap never shrinks: remember the largest table seen for this node.
        cap = 8
        seen = self._children_cap.get(path)
        if seen is not None and seen[0] == node.czxid:
            cap = seen[1]
        while len(names) > cap * 3 // 4:
            cap *= 2
        ordered = java_hash_order(names, cap)
        if len(self._children_cache) > 65536:
            self._children_cache.clear()
            self._children_cap.clear()
        self._children_cache[path] = (key, ordered)
        self._children_cap[path] = (node.czxid, cap)
        return ordered

    def _track_children_capacity(self, path: str) -> None:
        """Grow the remembered HashSet capacity of ``path``'s children after a create."""
        node = self.tree.nodes.get(path)
        if node is None:
            return
        n = len(node.children)
        seen = self._children_cap.get(path)
        cap = seen[1] if seen is not None and seen[0] == node.czxid else 8
        if n <= cap * 3 // 4 and seen is not None:
            return
        while n > cap * 3 // 4:
            cap *= 2
        self._children_cap[path] = (node.czxid, cap)

    def _read_get_children(self, conn: ClientConn, rec: Any) -> tuple[Any, Any]:
        path, watch = rec
        node = self._node_for_read(conn, path, 1)
        if watch:
            self.watches.add_child_watch(path, conn.conn_id)
        return jute.GET_CHILDREN_RESPONSE, (self._children(path or "/", node),)

    def _read_get_children2(self, conn: ClientConn, rec: Any) -> tuple[Any, Any]:
        path, watch = rec
        node = self._node_for_read(conn, path, 1)
        if watch:
            self.watches.add_child_watch(path, conn.conn_id)
        return jute.GET_CHILDREN2_RESPONSE, (self._children(path or "/", node),
                                             self.tree.stat_of(node))

    def _read_all_children_number(self, conn: ClientConn, rec: Any) -> tuple[Any, Any]:
        (path,) = rec
        self._node_for_read(conn, path, 1)
        if path == "":
            # Apache counts the keys that start with "/": every node but the "" alias.
            return jute.GET_ALL_CHILDREN_NUMBER_RESPONSE, (len(self.tree.nodes),)
        return jute.GET_ALL_CHILDREN_NUMBER_RESPONSE, (self.tree.count_descendants(path),)

    def _read_get_ephemerals(self, conn: ClientConn, rec: Any) -> tuple[Any, Any]:
        (prefix,) = rec
        # DataTree.getEphemerals clones the session's HashSet: Java hash order.
        nodes = self.tree.nodes
        owned = sorted(self.tree.ephemerals.get(conn.session_id, ()),
                       key=lambda p: _czxid(nodes.get(p)))
        mine = java_clone_order(owned)
        if prefix is None or not prefix.strip() or prefix.strip() == "/":
            return jute.GET_EPHEMERALS_RESPONSE, (mine,)
        return jute.GET_EPHEMERALS_RESPONSE, ([p for p in mine if p.startswith(prefix)],)

    def _watcher_type(self, t: int) -> int:
        if t not in (1, 2, 3):
            raise ProtocolError("WatcherType", 0, "1..3", str(t))  # MarshallingError in 3.8
        return t

    def _read_check_watches(self, conn: ClientConn, rec: Any) -> tuple[Any, Any]:
        path, t = rec
        t = self._watcher_type(t)
        if path is None:
            raise ProtocolError("path", 8, "a string", "null")
        try:
            found = self.watches.contains_watcher(path, conn.conn_id, t)
        except ValueError:
            raise ProtocolError("path", 8, "an absolute path", repr(path)) from None
        if not found:
            raise KeeperError(_NOWATCHER)
        return None, None

    def _read_remove_watches(self, conn: ClientConn, rec: Any) -> tuple[Any, Any]:
        path, t = rec
        if not self.watches.remove_watches(path, conn.conn_id, self._watcher_type(t)):
            raise KeeperError(_NOWATCHER)
        return None, None

    def _read_add_watch(self, conn: ClientConn, rec: Any) -> tuple[Any, Any]:
        path, mode = rec
        if mode not in (0, 1):
            raise ProtocolError("AddWatchRequest.mode", 0, "0 or 1", str(mode))
        self.watches.add_persistent(path, conn.conn_id, mode == 1)
        return jute.ERROR_RESPONSE, (0,)

    def _read_bad_reconfig(self, conn: ClientConn, rec: Any) -> tuple[Any, Any]:
        raise ProtocolError("ReconfigRequest", 8, "a ReconfigRequest", "undecodable body")

    def _read_who_am_i(self, conn: ClientConn, rec: Any) -> tuple[Any, Any]:
        infos = []
        for scheme, id_ in java_auth_order(conn.auth_ids):
            if scheme == "digest":
                user = id_.split(":")[0]
            elif scheme in ("ip", "sasl", "x509"):
                user = id_
            else:
                user = ""
            infos.append((scheme, user))
        return jute.WHO_AM_I_RESPONSE, (infos,)

    def _read_set_watches(self, conn: ClientConn, rec: Any) -> tuple[Any, Any]:
        """DataTree.setWatches: fire what the client missed, register the rest (§2.7)."""
        rz = rec[0]
        data, exist, child = rec[1] or (), rec[2] or (), rec[3] or ()
        persistent = rec[4] or () if len(rec) > 4 else ()
        recursive = rec[5] or () if len(rec) > 5 else ()
        nodes = self.tree.nodes
        watches = self.watches
        cid = conn.conn_id
        buf = self._buf(cid)
        sent = 0
        root = nodes.get("/")
        for path in data:
            node = nodes.get(path) if path else root
            if node is None:
                cc.append_notification(buf, 2, 3, path)
                sent += 1
            elif node.mzxid > rz:
                cc.append_notification(buf, 3, 3, path)
                sent += 1
            else:
                watches.add_data_watch(path, cid)
        for path in exist:
            if (path in nodes) if path else root is not None:
                cc.append_notification(buf, 1, 3, path)
                sent += 1
            else:
                watches.add_exist_watch(path, cid)
        for path in child:
            node = nodes.get(path) if path else root
            if node is None:
                cc.append_notification(buf, 2, 3, path)
                sent += 1
            elif node.pzxid > rz:
                cc.append_notification(buf, 4, 3, path)
                sent += 1
            else:
                watches.add_child_watch(path, cid)
        for path in persistent:
            watches.add_persistent(path, cid, False)
        for path in recursive:
            watches.add_persistent(path, cid, True)
        if sent:
            self._sent(conn, sent)
        return None, None

    def _multi_read(self, conn: ClientConn, ops: list[tuple[int, Any]]
                    ) -> list[tuple[int, int, Any]]:
        out: list[tuple[int, int, Any]] = []
        for op, rec in ops:
            try:
                if op == 4:
                    _, body = self._read_get_data(conn, rec)
                    out.append((4, 0, body))
                else:
                    _, body = self._read_get_children(conn, rec)
                    out.append((8, 0, body))
            except KeeperError as e:
                out.append((-1, e.code, None))
        return out

    # ================================================================== timers

    def _on_ticked(self, ev: Ticked) -> None:
        if self.storage_failed is not None:
            return  # no closeSession / deleteContainer txns after a storage failure
        now = self._now_ms
        for sid in self.sessions.poll_expired(now):
            self._expire_session(sid)
        nxt = self._next_container_check_ms
        if nxt is not None and now >= nxt:
            self._next_container_check_ms = now + self.container_check_interval_ms
            self._check_containers(now)

    def _check_containers(self, now: int) -> None:
        """ContainerManager.checkContainers: deleteContainer for every candidate."""
        tree = self.tree
        candidates: list[str] = []
        for path in sorted(tree.containers):
            node = tree.nodes.get(path)
            if node is not None and not node.children and node.cversion > 0:
                candidates.append(path)
        for path in sorted(tree.ttls):
            node = tree.nodes.get(path)
            if node is None or node.children:
                continue
            ttl = node.ephemeral_owner & 0x000000FFFFFFFFFF
            if ttl != 0 and now - node.mtime > ttl:
                candidates.append(path)
        for path in candidates:
            zxid = self._next_zxid()
            digest: int | None = None
            try:
                header_type, record, _ = self.prepper.delete_container(path, zxid)
                if self.digest_enabled:
                    digest = self.view.current_tree_digest()
            except KeeperError as e:
                header_type, record = -1, (e.code,)
            self._propose((0, 0, zxid, now, header_type), record, digest, None, None, None)

    # ================================================================== snapshots for admin

    @property
    def outstanding_requests(self) -> int:
        return sum(len(c.pending) for c in self.conns.values())

    def applied_sessions(self) -> list[tuple[int, int]]:
        """``(session_id, timeout_ms)`` of every session in the applied state, sorted.

        That is the tracker less the sessions whose createSession txn is still in flight: a
        snapshot of the tree at ``last_processed_zxid`` must not hold a session its zxid does
        not include. Sessions whose closeSession is in flight are still listed (their close
        is not applied yet).
        """
        pending = {t.header[0] for t in self._inflight if t.header[4] == -10}
        return sorted((sid, s.timeout_ms) for sid, s in self.sessions.sessions.items()
                      if sid not in pending)
