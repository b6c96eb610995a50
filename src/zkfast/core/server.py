"""ServerCore: the ZooKeeper service (standalone, or one ensemble member) as a sans-IO state machine.

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

Ensemble modes (docs/zab.md §3)
-------------------------------
A quorum peer's node drives the same object through ``set_mode`` and direct calls, and
collects what they produced with ``flush_actions``. Every call takes an optional ``now_ms``
(default: the time of the last ``step``).

* ``standalone`` is all of the above; session ids use server id 1, as Apache's standalone does.
* ``leader`` (``LeaderZooKeeperServer``): the same pipeline, zxids from ``epoch << 32 | 1``,
  session ids from ``myid``. The tracker is global: every session of the database is tracked
  from the moment the mode starts, learners' sessions from their createSession's prep
  (``submit_learner_request``), touched by learners' PINGs (``touch_sessions``) and
  REVALIDATEs (``revalidate``), and expired here. ``submit_learner_request`` preps exactly
  like a local write with no connection to answer; ``commit(z)`` applies as ``TxnsDurable``
  does standalone. Only the leader reaps containers and TTL nodes.
* ``follower``/``observer`` (``FollowerZooKeeperServer``, ``FollowerRequestProcessor``,
  ``CommitProcessor``): writes, closeSession and sync go out through ``forward`` with the
  connection's auth ids in ``authInfo`` order, and take a slot in the connection's queue;
  reads are answered from the committed tree, behind the slots. A new session's id is made
  here but the session is tracked only once its createSession commits, and its
  ConnectResponse leaves then; a resumed one is checked by the leader (``revalidate_request``
  -> ``revalidated``). Frames that arrive meanwhile are held. ``apply_committed`` applies one
  committed txn, fires watches, and answers the head of the session's forwarded queue when
  the cxid matches, with the results of this apply (``DataTree.apply_multi_results`` for a
  multi). ``sync_done`` answers the oldest forwarded sync. Nothing expires here: touched
  sessions are collected for the PING reply (``touched_sessions``).
* ``off`` (LOOKING): every client is closed ("ZooKeeperServer not running"), watches and
  forwarded requests are dropped, and every txn handed out in AppendTxns is applied without
  replies (``fastForwardDataBase``); connections are refused until the next mode.
  ``load_database`` replaces the tree and sessions (SNAP, TRUNC); ``sync_snapshot_body``
  serializes them for a SNAP.
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
from ..wire.txn_codec import decode_txn, encode_txn
from . import acl as acl_mod
from .actions import AppendTxns, CloseClient, PauseClient, ResumeClient, SendToClient
from .client_conn import AWAIT_CONNECT, CLOSED, CONNECTING, OPEN, ClientConn, Slot
from .datatree import CONFIG_PATH, DataTree, validate_path
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

__all__ = ["ServerCore", "ServerStats", "java_auth_order", "MODES"]

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
_SESSIONMOVED = -118
#: The owner of sessions whose connection is on the leader itself (Apache's ``ServerCnxn.me``);
#: a learner's sessions are owned by its sid.
LOCAL_OWNER = -1
_UNIMPLEMENTED = -6
_NONODE = -101
_NOAUTH = -102
_BADARGUMENTS = -8
_NOWATCHER = -121
_AUTHFAILED = -115
_RECONFIGDISABLED = -123
_SYNC_WAITING = 1 << 64  # a forwarded sync's slot.zxid until the leader's SYNC arrives
_REQUEST_PREFIX = struct.Struct(">qii")
_TIMEOUT = struct.Struct(">i")
#: The service modes (docs/zab.md §3).
MODES = ("standalone", "leader", "follower", "observer", "off")

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


def _refuse_touch(session_id: int, timeout_ms: int, now_ms: int) -> bool:
    """Off: no session is served."""
    return False


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
        #: docs/zab.md §3: "standalone" (the default), "leader", "follower", "observer", "off".
        self.mode = "standalone"
        #: Leader only: session id -> owner (LOCAL_OWNER or the learner's sid), as
        #: SessionTrackerImpl keeps it for SESSIONMOVED.
        self._owners: dict[int, int] = {}
        self.epoch = 0
        #: Learner modes: hand a request to the leader, ``(session_id, cxid, op, body,
        #: auth_ids)``; set by the quorum node before the service becomes a learner.
        self.forward: Callable[[int, int, int, bytes, list[tuple[str, str]]], None] | None = None
        #: Learner modes: ask the leader whether a resumed session is live,
        #: ``(session_id, timeout_ms)``; the answer comes back through ``revalidated``.
        self.revalidate_request: Callable[[int, int], None] | None = None
        self._learner = False
        self._serving = True
        self._expiring = True
        self._touch: Callable[[int, int, int], bool] = self.sessions.touch
        self._touched: dict[int, int] = {}
        self._forwarded: dict[int, deque[tuple[int, Slot]]] = {}
        self._forwarded_syncs: deque[tuple[int, Slot]] = deque()
        self._revalidating: dict[int, int] = {}
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
        if not self._expiring:
            return None  # learners and a server that is off expire and reap nothing
        d = self.sessions.deadline_ms()
        c = self._next_container_check_ms
        if c is not None and (self.tree.containers or self.tree.ttls):
            d = c if d is None or c < d else d
        return d

    def flush_actions(self) -> list[Any]:
        """The actions produced since the last ``step`` or ``flush_actions``, in ``step``'s
        order (the quorum node calls it after the direct calls of docs/zab.md §3)."""
        return self._flush_actions()

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
        self._handle_frames(conn, ev.frames)

    def _handle_frames(self, conn: ClientConn, frames: list[bytes]) -> None:
        stats = self.stats
        it = iter(frames)
        for frame in it:
            state = conn.state
            if state != OPEN:
                if state == CLOSED:
                    return
                if state == AWAIT_CONNECT:
                    conn.packets_received += 1
                    stats.packets_received += 1
                    self._on_connect_request(conn, frame)
                    continue
                if conn.held is not None:
                    # A learner's session is not set up yet (Apache disables receive until
                    # finishSessionInit): the frames wait, in order.
                    conn.held.append(frame)
                    conn.held.extend(it)
                    return
            conn.packets_received += 1
            stats.packets_received += 1
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
        if not self._serving:
            self.close_conn(conn, "ZooKeeperServer not running")
            return
        request = self.decode_connect(conn, frame)
        if request is None:
            return
        last_zxid, timeout_asked, session_id, passwd, read_only = request
        timeout = self.admit_connect(conn, last_zxid, timeout_asked)
        if timeout is None:
            return
        now = self._now_ms
        if session_id == 0 and self._learner:
            # LearnerSessionTracker.createSession: an id, tracked only once committed; the
            # createSession goes to the leader with cxid 0 and the timeout as its body.
            sid = self.sessions.allocate_id()
            self._attach(conn, sid)
            conn.state = CONNECTING
            conn.held = []
            slot = Slot("connect", 0, -10, 0, None, now)
            conn.pending.append(slot)
            self._forward_request(conn, 0, -10, _TIMEOUT.pack(timeout), slot, [])
            return
        if session_id == 0:
            sid = self.sessions.create_session(timeout, now)
            if self.mode == "leader":
                self._owners[sid] = LOCAL_OWNER
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
        if self._learner and passwd == generate_passwd(session_id):
            # LearnerZooKeeperServer.revalidateSession: the leader's tracker decides.
            self._attach(conn, session_id)
            conn.state = CONNECTING
            conn.held = []
            self._revalidating[session_id] = conn.conn_id
            assert self.revalidate_request is not None, "a learner service needs revalidate_request"
            self.revalidate_request(session_id, timeout)
            return
        valid = passwd == generate_passwd(session_id) and \
            self.sessions.touch(session_id, timeout, now)
        if valid and self.mode == "leader":
            self._owners[session_id] = LOCAL_OWNER  # ZooKeeperServer.revalidateSession
        self._finish_resume(conn, session_id, valid)

    def _finish_resume(self, conn: ClientConn, session_id: int, valid: bool) -> None:
        """ZooKeeperServer.finishSessionInit for a resumed session."""
        buf = self._buf(conn.conn_id)
        ro = conn.read_only_byte
        if not valid:
            cc.append_connect_response(buf, 0, 0, _ZERO_PASSWD, ro if ro is None else False)
            self._sent(conn, 1)
            self.close_conn(conn, "session expired or invalid password")
            return
        self._attach(conn, session_id)
        conn.state = OPEN
        cc.append_connect_response(buf, conn.timeout_ms, session_id,
                                   generate_passwd(session_id), None if ro is None else False)
        self._sent(conn, 1)
        self._release_held(conn)

    def _release_held(self, conn: ClientConn) -> None:
        """Handle the frames a learner connection received while its session was set up."""
        held = conn.held
        conn.held = None
        if held:
            self._handle_frames(conn, held)

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
            if not self._touch(conn.session_id, conn.timeout_ms, now):
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
        if not self._touch(conn.session_id, conn.timeout_ms, now):
            return  # MissingSessionException: the request is dropped
        if self._learner:
            self._on_learner_request(conn, xid, op, frame, now)
            return
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
        self._unimplemented(conn, xid, op)

    def _unimplemented(self, conn: ClientConn, xid: int, op: int) -> None:
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
        zxid = self.next_zxid  # _next_zxid, inlined: the hot path of every write
        self.next_zxid = zxid + 1
        sid = conn.session_id
        if self.mode == "leader" and self._owner_moved(sid, LOCAL_OWNER):
            header_type, record, digest, results = -1, (_SESSIONMOVED,), None, None
        else:
            header_type, record, digest, results = self._prep(sid, xid, op, frame, 8,
                                                              conn.auth_ids, zxid, now)
        slot = Slot("write", xid, op, zxid, None, now)
        conn.pending.append(slot)
        self._propose((sid, xid, zxid, now, header_type), record, digest, conn.conn_id, slot,
                      results)

    def _owner_moved(self, sid: int, owner: int) -> bool:
        """The owner half of ``SessionTrackerImpl.checkSession`` (leader only): a live
        session's first owner sticks until a REVALIDATE or resume moves it; a write from
        another owner is SESSIONMOVED. A session that is not live is left to prep
        (SESSIONEXPIRED)."""
        if not self.sessions.is_live(sid):
            return False
        current = self._owners.get(sid)
        if current is None:
            self._owners[sid] = owner
            return False
        return current != owner

    def _prep(self, sid: int, xid: int, op: int, frame: bytes, offset: int,
              auth_ids: list[tuple[str, str]], zxid: int, now: int
              ) -> tuple[int, Any, int | None, Any]:
        """PrepRequestProcessor for one write: ``(txn type, record, digest, results)``; a
        failure is an error txn (type -1). The body starts at ``offset`` of ``frame``."""
        prepper = self.prepper
        header_type = op
        results: Any = None
        digest: int | None = None
        record: Any
        view = self.view
        mark = len(view.changes)
        try:
            if op == 20:
                # 3.8 reads the deleteContainer path from the request's whole backing array:
                # a client's RequestHeader, or the (sessionId, cxid, type) a learner's REQUEST
                # packet starts with; either way it contains NUL: BadArguments.
                raw = frame if offset else _REQUEST_PREFIX.pack(sid, xid, op) + frame
                path = raw.decode("utf-8", "replace")
                header_type, record, _ = prepper.delete_container(path, zxid)
            elif op == 16:
                raise KeeperError(_RECONFIGDISABLED if not getattr(
                    self.config, "reconfig_enabled", False) else _UNIMPLEMENTED)
            elif op == 14:
                try:
                    ops = cc.decode_request(14, frame, offset)
                except ProtocolError:
                    raise KeeperError(_MARSHALLING) from None
                for sub_op, sub in ops:
                    if sub_op in _PLAIN_CREATES and sub[3] in _TTL_FLAGS:
                        # 3.8 rebuilds such an op as a createTTL Op without a TTL request
                        # behind it, and prep fails on it as a whole: MarshallingError.
                        raise KeeperError(_MARSHALLING)
                record, results, _failed = prepper.multi(ops, sid, auth_ids, zxid, now)
                if self.digest_enabled:
                    digest = self.view.current_tree_digest()
            else:
                try:
                    rec = cc.decode_request(op, frame, offset)
                except ProtocolError:
                    raise KeeperError(_MARSHALLING) from None
                header_type, record, has_digest = prepper.ops[op](
                    op, rec, sid, auth_ids, zxid, now)
                results = record[0]
                if has_digest and self.digest_enabled:
                    # current_tree_digest(): the op has just added its records.
                    changes = view.changes
                    digest = changes[-1].tree_digest if changes else \
                        view.current_tree_digest()
        except KeeperError as e:
            header_type, record, digest = -1, (e.code,), None
        except Exception:  # noqa: BLE001 - PrepRequestProcessor's catch-all
            # Apache answers any other failure in prep with a MarshallingError txn. The zxid
            # is taken, so it must still be proposed; drop whatever records prep left.
            view.truncate(mark)
            header_type, record, digest, results = -1, (_MARSHALLING,), None, None
        return header_type, record, digest, results

    def _on_close_session(self, conn: ClientConn, xid: int) -> None:
        slot = Slot("close", xid, -11, self.next_zxid, None, self._now_ms)
        conn.pending.append(slot)
        self._close_session_txn(conn.session_id, xid, conn.conn_id, slot)

    def _close_session_txn(self, sid: int, xid: int, conn_id: int | None,
                           slot: Slot | None) -> None:
        zxid = self._next_zxid()
        header_type, record, _ = self.prepper.close_session(sid, zxid)
        self.sessions.set_closing(sid)
        digest = self.view.current_tree_digest() if self.digest_enabled else None
        if not self.config.close_session_txn_enabled:
            record = None
        self._propose((sid, xid, zxid, self._now_ms, header_type), record, digest, conn_id,
                      slot, None)

    def _expire_session(self, sid: int) -> None:
        """SessionTrackerImpl expirer -> ZooKeeperServer.expire: a closeSession txn."""
        self._close_session_txn(sid, 0, None, None)

    # ================================================================== learner requests

    def _on_learner_request(self, conn: ClientConn, xid: int, op: int, frame: bytes,
                            now: int) -> None:
        """FollowerRequestProcessor: writes, closeSession and sync go to the leader; each
        reply waits in the connection's queue for the committed txn with this session id and
        cxid (``apply_committed``), a sync's for the leader's SYNC (``sync_done``)."""
        if op == 9:
            try:
                rec = cc.decode_request(9, frame)
            except ProtocolError:
                rec = None  # forwarded anyway; FinalRequestProcessor answers MarshallingError
            slot = Slot("sync", xid, 9, _SYNC_WAITING, rec, now)
            conn.pending.append(slot)
            self._forwarded_syncs.append((conn.conn_id, slot))
            self._forward_request(conn, xid, 9, frame[8:], None, java_auth_order(conn.auth_ids))
            return
        if op in _WRITE_OPS:
            if op == 16:
                try:
                    cc.decode_request(16, frame)
                except ProtocolError:
                    self._read_or_queue(conn, xid, op, frame, now)
                    return
            kind = "write"
        elif op == -11:
            kind = "close"
        else:
            self._unimplemented(conn, xid, op)
            return
        slot = Slot(kind, xid, op, 0, None, now)
        conn.pending.append(slot)
        self._forward_request(conn, xid, op, frame[8:], slot, java_auth_order(conn.auth_ids))

    def _forward_request(self, conn: ClientConn, cxid: int, op: int, body: bytes,
                         slot: Slot | None, auth_ids: list[tuple[str, str]]) -> None:
        """Learner.request: hand the request to the leader; ``slot`` (None for a sync) is
        answered by the committed txn of (session id, cxid)."""
        sid = conn.session_id
        if slot is not None:
            queue = self._forwarded.get(sid)
            if queue is None:
                queue = self._forwarded[sid] = deque()
            queue.append((conn.conn_id, slot))
        assert self.forward is not None, "a learner service needs forward"
        self.forward(sid, cxid, op, body, auth_ids)

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
        # In a quorum mode durable is not committed: the peer acks it, and the service
        # applies at ``commit`` (leader) or ``apply_committed`` (learner).
        if self.mode == "standalone":
            self._apply_upto(ev.zxid)

    def _apply_upto(self, upto: int) -> None:
        if self.storage_failed is not None:
            return  # nothing is applied or acknowledged after a storage failure
        inflight = self._inflight
        tree = self.tree
        view = self.view
        conns = self.conns
        while inflight and inflight[0].zxid <= upto:
            t = inflight.popleft()
            applied = tree.last_processed_zxid
            assert t.zxid > applied or applied == 0, "txns must apply in zxid order"
            htype = t.header[4]
            doomed = self._doomed_acls(htype, t.record) if htype in _DELETING else None
            triggers = tree.apply_txn(t.header, t.record)
            view.applied(t.zxid)
            if htype == -10:
                self._after_create_session(t)
            elif htype == -11:
                self._after_close_session(t)
            if triggers:
                self._notify(triggers, doomed)
            slot = t.slot
            if slot is not None and t.conn_id is not None:
                conn = conns.get(t.conn_id)
                if conn is not None:
                    self._complete_write(conn, slot, t)
                    if conn.pending:
                        self._drain(conn)
            if self._paused and len(inflight) <= self.config.outstanding_requests_max // 2:
                for conn_id in self._paused:
                    if conn_id in conns:
                        self._extra.append(ResumeClient(conn_id))
                self._paused.clear()
            if self._sync_waiters:
                waiters = self._sync_waiters.pop(t.zxid, None)
                if waiters:
                    for conn_id in waiters:
                        c = conns.get(conn_id)
                        if c is not None:
                            self._drain(c)

    def _notify(self, triggers: list[Any], doomed: dict[str, Any] | None) -> None:
        """Fire the watches of one applied txn (before its reply)."""
        tree = self.tree
        conns = self.conns
        watches = self.watches
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
        self._owners.pop(sid, None)
        conn_id = self.session_conn.get(sid)
        if t.conn_id is None and conn_id is not None:
            # Expired (or closed elsewhere): the session's connection goes too.
            conn = self.conns.get(conn_id)
            if conn is not None:
                self.close_conn(conn, "session expired")

    def _complete_write(self, conn: ClientConn, slot: Slot, t: _Inflight) -> None:
        """Build the reply of an applied txn (FinalRequestProcessor).

        A write at the head of its connection's queue (the usual case) is answered at once:
        the reply goes straight into the connection's output. Otherwise it is kept in
        ``slot`` until ``_drain`` reaches it.
        """
        pending = conn.pending
        direct = bool(pending) and pending[0] is slot and slot.kind == "write" \
            and conn.state != CLOSED
        out = self._buf(conn.conn_id) if direct else bytearray()
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
            if t.record[0] == _SESSIONMOVED:
                # FinalRequestProcessor: SessionMovedException is a connection-level error:
                # no reply, the connection is closed (the session lives on elsewhere).
                slot.reply = b""
                slot.done = True
                slot.zxid = zxid
                self.close_conn(conn, "session moved to another server")
                return
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
        if direct:
            # _drain's work for this slot, inlined (_sent, _finished).
            pending.popleft()
            conn.packets_sent += 1
            stats = self.stats
            stats.packets_sent += 1
            now = self._now_ms
            conn.update_for_response(slot.xid, zxid, _LAST_OP.get(op, "NA"), slot.received_ms,
                                     now)
            stats.update_latency(now - slot.received_ms)
            return
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
            elif op == -1:  # a sub-txn a learner's tree could not apply: (-1, code, None)
                out.append((-1, path, None))
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

    # ================================================================== ensemble modes

    def set_mode(self, mode: str, epoch: int, *, now_ms: int | None = None) -> None:
        """Serve as ``mode`` (docs/zab.md §3); ``epoch`` is the new leader's epoch.

        Leaving any serving mode first stops serving (see ``_stop_serving``: every client
        closed, the txns handed out in AppendTxns applied). Entering a quorum mode starts a
        fresh session tracker (``SessionTrackerImpl``'s constructor): every session of the
        database is tracked from now, none closing, new ids made with ``server_id = myid``;
        and fresh ServerStats, as each role starts a ZooKeeperServer of its own. A leader's
        zxids continue at ``epoch << 32 | 1``.
        """
        if mode not in MODES:
            raise ValueError(f"unknown service mode {mode!r}")
        if now_ms is not None:
            self._now_ms = now_ms
        now = self._now_ms
        if self.mode != "off" and mode != self.mode:
            self._stop_serving()
        log.info("service mode %s -> %s (epoch %d) at zxid 0x%x", self.mode, mode, epoch,
                 self.tree.last_processed_zxid)
        self.mode = mode
        self._owners.clear()  # a new leader's tracker knows no owners yet
        self.epoch = epoch
        if mode in ("leader", "follower", "observer"):
            self.sessions = self.sessions.retracked(now_ms=now,
                                                    server_id=self.config.server_id)
            self.stats = ServerStats(now)
        if mode == "leader":
            assert self.tree.last_processed_zxid < (epoch + 1) << 32, \
                "a leader's epoch is above every zxid it holds"
            self.last_proposed_zxid = max(epoch << 32, self.tree.last_processed_zxid)
            self.next_zxid = self.last_proposed_zxid + 1
            interval = self.container_check_interval_ms
            self._next_container_check_ms = now + interval if interval > 0 else None
        self._bind_mode()

    def _bind_mode(self) -> None:
        mode = self.mode
        self._learner = mode in ("follower", "observer")
        self._serving = mode != "off"
        self._expiring = mode in ("standalone", "leader")
        self.prepper.is_session_live = self.sessions.is_live
        if self._learner:
            self._touch = self._learner_touch
        elif self._serving:
            self._touch = self.sessions.touch
        else:
            self._touch = _refuse_touch

    def _stop_serving(self) -> None:
        """ZooKeeperServer.shutdown: close every client, then ``fastForwardDataBase``."""
        for conn in list(self.conns.values()):
            self.close_conn(conn, "ZooKeeperServer not running")
        self._sync_waiters.clear()
        self._forwarded.clear()
        self._forwarded_syncs.clear()
        self._revalidating.clear()
        self._touched.clear()
        self._paused.clear()
        if self._inflight:
            self._apply_upto(self._inflight[-1].zxid)
        self.watches = WatchManager()

    @property
    def last_processed_zxid(self) -> int:
        """The zxid of the last applied txn."""
        return self.tree.last_processed_zxid

    def load_database(self, tree: DataTree, sessions: list[tuple[int, int]], *,
                      now_ms: int | None = None) -> None:
        """Replace the tree and the session table (a SNAP from the leader, a TRUNC reload);
        the pending view, the zxid counters and the children caches start over from it."""
        if now_ms is not None:
            self._now_ms = now_ms
        assert not self._inflight, "the database is replaced only while nothing is in flight"
        self.tree = tree
        self.view = PendingView(tree, self.digest_enabled)
        self.prepper.view = self.view
        self.next_zxid = tree.last_processed_zxid + 1
        self.last_proposed_zxid = tree.last_processed_zxid
        self._children_cache.clear()
        self._children_cap.clear()
        server_id = 1 if self.mode == "standalone" else self.config.server_id
        tracker = SessionTracker(tick_ms=self.config.tick_ms, now_ms=self._now_ms,
                                 server_id=server_id)
        for sid, timeout in sessions:
            tracker.add_session(sid, timeout, self._now_ms)
        self.sessions = tracker
        self._bind_mode()

    def init_config_node(self, config_text: str, config_version: int, *,
                         now_ms: int | None = None) -> None:
        """``ZKDatabase.initConfigInZKDatabase``: ``/zookeeper/config`` holds ``config_text``
        (the local quorum config), with version -1, mzxid the config version and mtime now.
        Outside the digest (``/zookeeper/``) and the txn log; lastProcessedZxid stays."""
        if now_ms is not None:
            self._now_ms = now_ms
        tree = self.tree
        last = tree.last_processed_zxid
        header = (0, 0, config_version, self._now_ms, 5)  # setData
        tree.apply_txn(header, (CONFIG_PATH, config_text.encode(), -1))
        tree.last_processed_zxid = last

    def sync_snapshot_body(self) -> bytes:
        """What a leader streams after SNAP: ``ZKDatabase.serializeSnapshot`` of the applied
        tree and its sessions, then ``"BenWasHere"``."""
        from ..storage.snapshot import encode_sync_snapshot

        return encode_sync_snapshot(self.tree, self.applied_sessions())

    # ------------------------------------------------------------------ leader

    def submit_learner_request(self, session_id: int, cxid: int, op: int, body: bytes,
                               auth_ids: list[tuple[str, str]], *, owner: int | None = None,
                               now_ms: int | None = None) -> None:
        """A learner's REQUEST (``LeaderZooKeeperServer.submitLearnerRequest``): prepped in
        arrival order like a local write, no local connection to answer. createSession's
        body is its int timeout (the session is tracked here at once, ``trackSession``);
        error txns take their zxid too. The txn leaves in the next AppendTxns."""
        if now_ms is not None:
            self._now_ms = now_ms
        now = self._now_ms
        if self.storage_failed is not None:
            return
        if self.mode != "leader":
            log.warning("learner request on session 0x%x while %s: dropped",
                        session_id & _U64, self.mode)
            return
        if op == -10:
            if len(body) < 4:
                log.warning("createSession 0x%x from a learner without a timeout: dropped",
                            session_id & _U64)
                return
            (timeout,) = _TIMEOUT.unpack_from(body, 0)
            self.sessions.add_session(session_id, timeout, now)
            if owner is not None:
                self._owners[session_id] = owner
            zxid = self._next_zxid()
            digest = self.view.current_tree_digest() if self.digest_enabled else None
            self._propose((session_id, cxid, zxid, now, -10), (timeout,), digest, None, None,
                          None)
        elif op == -11:
            self._close_session_txn(session_id, cxid, None, None)
        elif op in _WRITE_OPS or op == 13:
            zxid = self._next_zxid()
            if owner is not None and self._owner_moved(session_id, owner):
                header_type, record, digest, results = -1, (_SESSIONMOVED,), None, None
            else:
                header_type, record, digest, results = self._prep(
                    session_id, cxid, op, body, 0, auth_ids, zxid, now)
            self._propose((session_id, cxid, zxid, now, header_type), record, digest, None,
                          None, results)
        else:
            # PrepRequestProcessor logs an unknown type and makes no txn.
            log.warning("learner request of type %d on session 0x%x: no txn", op,
                        session_id & _U64)

    def commit(self, zxid: int, *, now_ms: int | None = None) -> None:
        """Apply every txn handed out in AppendTxns up to ``zxid`` and answer the local
        clients (what ``TxnsDurable`` does standalone)."""
        if now_ms is not None:
            self._now_ms = now_ms
        self._apply_upto(zxid)

    def touch_sessions(self, pairs: list[tuple[int, int]], *,
                       now_ms: int | None = None) -> None:
        """The ``(session_id, timeout_ms)`` list of a learner's PING (``touchSession``)."""
        if now_ms is not None:
            self._now_ms = now_ms
        now = self._now_ms
        touch = self.sessions.touch
        for sid, timeout in pairs:
            touch(sid, timeout, now)

    def revalidate(self, session_id: int, timeout: int, *, owner: int | None = None,
                   now_ms: int | None = None) -> bool:
        """A learner's REVALIDATE (``checkIfValidGlobalSession``): touch the session and
        say whether it is live (tracked and not closing); a live session is now owned by
        ``owner`` (``Leader.revalidateSession`` → ``setOwner``)."""
        if now_ms is not None:
            self._now_ms = now_ms
        valid = self.sessions.touch(session_id, timeout, self._now_ms)
        if valid and owner is not None:
            self._owners[session_id] = owner
        return valid

    # ------------------------------------------------------------------ learner

    def _learner_touch(self, session_id: int, timeout_ms: int, now_ms: int) -> bool:
        """LearnerSessionTracker.touchSession: a global session is noted for the next PING."""
        if session_id in self.sessions.sessions:
            self._touched[session_id] = timeout_ms
            return True
        return False

    def touched_sessions(self) -> list[tuple[int, int]]:
        """``(session_id, timeout_ms)`` of every session touched since the last call (the
        body of a learner's PING reply); forgets them."""
        touched = list(self._touched.items())
        self._touched.clear()
        return touched

    def revalidated(self, session_id: int, valid: bool, *, now_ms: int | None = None) -> None:
        """The leader's REVALIDATE reply (``Learner.revalidate``): finish the ConnectResponse
        of the connection that resumed ``session_id`` (valid: the session; otherwise the
        zero-session reply and a close)."""
        if now_ms is not None:
            self._now_ms = now_ms
        conn_id = self._revalidating.pop(session_id, None)
        conn = self.conns.get(conn_id) if conn_id is not None else None
        if conn is None or conn.state != CONNECTING or conn.session_id != session_id:
            log.warning("REVALIDATE reply for session 0x%x: no connection waits for it",
                        session_id & _U64)
            return
        self._finish_resume(conn, session_id, valid)

    def sync_done(self, *, now_ms: int | None = None) -> None:
        """The leader's SYNC: answer the oldest forwarded sync (everything committed before
        it has been applied by now)."""
        if now_ms is not None:
            self._now_ms = now_ms
        if not self._forwarded_syncs:
            log.warning("SYNC from the leader with no sync forwarded")
            return
        conn_id, slot = self._forwarded_syncs.popleft()
        slot.zxid = 0
        conn = self.conns.get(conn_id)
        if conn is not None and conn.state != CLOSED:
            self._drain(conn)

    def apply_committed(self, zxid: int, txn_bytes: bytes, *,
                        now_ms: int | None = None) -> None:
        """Apply one committed txn (in zxid order) on a learner, or while off.

        Watches fire; a createSession adds the session to the table, a closeSession removes
        it and closes the local connection that held it; the local request the txn belongs
        to (the head of its session's forwarded queue, same cxid) is answered as Apache's
        FinalRequestProcessor answers it, with results taken from this apply.
        """
        if now_ms is not None:
            self._now_ms = now_ms
        header, record, _digest = decode_txn(txn_bytes)
        assert header[2] == zxid, f"txn bytes of 0x{header[2]:x} committed as 0x{zxid:x}"
        record = self.prepper.share_txn_acls(header[4], record)
        tree = self.tree
        assert zxid > tree.last_processed_zxid, \
            f"committed txn 0x{zxid:x} at or below the applied 0x{tree.last_processed_zxid:x}"
        assert not self._inflight, "a service with txns of its own in flight applies no others"
        sid, cxid, _, _, htype = header
        match: tuple[int, Slot] | None = None
        queue = self._forwarded.get(sid)
        if queue:
            conn_id, slot = queue[0]
            if slot.xid == cxid and (htype == -11) == (slot.opcode == -11) \
                    and (htype == -10) == (slot.opcode == -10):
                match = queue.popleft()
                if not queue:
                    del self._forwarded[sid]
        doomed = self._doomed_acls(htype, record) if htype in _DELETING else None
        results: Any = None
        if htype == 14 and match is not None:
            triggers, results = tree.apply_multi_results(header, record)
        else:
            triggers = tree.apply_txn(header, record)
        self.view.applied(zxid)
        self.last_proposed_zxid = zxid
        self.next_zxid = zxid + 1
        t = _Inflight(zxid, header, record, match[0] if match else None,
                      match[1] if match else None, results)
        if htype == -10:
            s = self.sessions.add_session(sid, record[0], self._now_ms)
            owner = self.session_conn.get(sid)
            if owner is not None:
                s.conn_id = owner
            self._after_create_session(t)
        elif htype == -11:
            self._touched.pop(sid, None)
            self._after_close_session(t)
        if triggers:
            self._notify(triggers, doomed)
        if match is not None:
            conn = self.conns.get(match[0])
            if conn is not None and conn.state != CLOSED:
                self._complete_write(conn, match[1], t)
                self._drain(conn)
                if conn.held is not None and conn.state == OPEN:
                    self._release_held(conn)

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
        if self.storage_failed is not None or not self._expiring:
            return  # no closeSession / deleteContainer txns after a storage failure, nor
            # on a learner or while off (the leader expires and reaps)
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
