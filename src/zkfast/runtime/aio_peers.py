"""The quorum peer's network and epoch files over asyncio: QuorumCnxManager's job and the quorum port.

``PeerRuntime`` is the network half of a quorum peer's ``PeerEnv`` (runtime/env.py): the
``QuorumDriver`` hands it the peer actions of the process's one ``QuorumNode``
(``send_to_peer``, ``write_epoch``, ``connect_to_leader``, ``send_quorum_packet``,
``close_quorum_conn``, ``role_changed``), and it feeds what the network and the epoch files
report back through ``step`` (the same Driver, so the node has one timer and one event path;
docs/architecture.md, "Quorum peer"; docs/zab.md §1). It never steps from inside one of those
calls: every event comes from a socket callback, a timer or a task. It owns three things.

Election port (Apache's ``QuorumCnxManager``)
    One listener on this peer's election address (``server.N``'s second port; every interface
    with ``quorumListenOnAllIPs``), bound with ``electionPortBindRetry`` attempts 1 s apart
    (0 = forever); when binding finally fails the peer stops, as Apache's Listener halts it.
    Every connection starts with the dialler's handshake (``peer_codec.encode_handshake``:
    protocol version, sid, election address; a first long >= 0 is a pre-3.5 peer's bare sid).
    Tie-break (``initiateConnection``/``handleConnection``): only a connection dialled by the
    higher sid survives. A dialler whose target has the higher sid writes its handshake and
    closes (the target dials back when it sees the header); a receiver that sees a lower sid
    closes and dials back; a receiver that sees a higher sid keeps the connection as *the* link
    to that peer, replacing an older one. After the handshake both directions carry
    ``int32 length`` + message, the length in 1..512 KiB: anything else (and a handshake that
    does not parse or does not arrive within ``cnxTimeout``) drops that connection, never the
    listener or the peer.

    Sending: a per-peer slot keeps only the newest ``SendToPeer`` payload (the capacity-1 queue
    of ``QuorumCnxManager.toSend``); it is written as soon as a link is up and its transport is
    not above its write high-water mark. With no link, ``SendToPeer`` dials (``connectOne``),
    with a ``cnxTimeout`` connect timeout; a failed dial is retried with back-off (100 ms
    doubling to 3.2 s) while the slot still holds a message. On a new link the runtime sends
    the slot, or, when empty, re-sends the last message sent to that peer
    (``SendWorker.run``); the core tolerates the duplicate. ``PeerLinkUp``/``PeerLinkDown``
    report links.

Quorum port
    Leader side: a listener on this peer's quorum address, open exactly while the last
    ``RoleChanged`` says LEADING; accepted connections get ids from 1 (below
    ``peer.LEARNER_CONN_ID_BASE``) and report ``LearnerConnected``/``LearnerPacketsReceived``/
    ``LearnerDisconnected``. Learner side: ``ConnectToLeader`` is one attempt with an
    initLimit*tickTime connect timeout, answered by ``LeaderConnected`` or
    ``LeaderConnectFailed``; then ``LeaderPacketsReceived``/``LeaderDisconnected``.

    Reading: each connection splits its stream with ``peer_codec.QuorumStreamSplitter``: whole
    QuorumPackets, each bounded by jute.maxbuffer (plus headroom), except that the item right
    after a SNAP packet is the raw snapshot stream, whose total size has no bound (the
    splitter bounds each record inside it). Everything one read completed goes into one
    ``*PacketsReceived``; a ``ProtocolError`` closes that connection (and reports it).

    Writing: ``SendQuorumPacket`` bytes go to the transport as they are (a SNAP stream can be
    the whole database). A learner that does not read cannot make the leader hold its
    proposals without bound: when a connection's unsent bytes exceed
    ``QUORUM_WRITE_BUFFER_MAX_BYTES`` beyond the largest single write still draining (so one
    big snapshot fits), the connection is aborted and reported closed, as Apache's leader
    drops a learner that falls syncLimit behind.

Epoch files
    ``WriteEpoch`` writes ``<dataDir>/version-2/acceptedEpoch|currentEpoch`` atomically (a
    ``.tmp`` file, fsync, rename, fsync of the directory) in the default executor, then reports
    ``EpochDurable``. Writes run one at a time, in the order the core asked for them.

Every event goes through ``step`` (``AioEnv.step_global``: an exception from the node, a
broken invariant, is logged and stops the peer); nothing the network sends can do that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from collections.abc import Callable
from typing import Any, cast

from .._impl import ProtocolError
from ..config import ServerConfig
from ..core.actions import (
    CloseQuorumConn,
    ConnectToLeader,
    RoleChanged,
    SendQuorumPacket,
    SendToPeer,
    WriteEpoch,
)
from ..core.events import (
    EpochDurable,
    LeaderConnected,
    LeaderConnectFailed,
    LeaderDisconnected,
    LeaderPacketsReceived,
    LearnerConnected,
    LearnerDisconnected,
    LearnerPacketsReceived,
    PeerLinkDown,
    PeerLinkUp,
    PeerMessageReceived,
)
from ..core.peer import LEARNER_CONN_ID_BASE
from ..storage.epochs import epoch_file_name, format_epoch
from ..wire.peer_codec import (
    ELECTION_MESSAGE_BYTES_MAX,
    PROTOCOL_V1,
    ElectionHandshake,
    QuorumStreamSplitter,
    decode_handshake,
    encode_handshake,
)

__all__ = ["PeerRuntime", "write_file_atomically"]

log = logging.getLogger("zkfast.peers")

_LEN = struct.Struct(">i")
#: Reconnect back-off of an election link with a message waiting.
RECONNECT_DELAY_MIN_S = 0.1
RECONNECT_DELAY_MAX_S = 3.2
#: Pause between attempts to bind the election port (QuorumCnxManager.Listener).
BIND_RETRY_DELAY_S = 1.0
#: Unsent bytes a quorum connection may hold beyond its largest write still draining; past
#: that the peer is not reading and the connection is aborted. The environment variable
#: ``ZKFAST_QUORUM_WRITE_BUFFER_MAX_BYTES`` overrides it (tests lower it).
QUORUM_WRITE_BUFFER_MAX_BYTES = 64 << 20
#: The transport's own flow-control marks for quorum connections (pause_writing above HIGH).
QUORUM_WRITE_HIGH_WATER_BYTES = 4 << 20
QUORUM_WRITE_LOW_WATER_BYTES = 1 << 20


def write_file_atomically(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` via ``path.tmp``: write, fsync, rename, fsync the directory."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _write_buffer_max_bytes() -> int:
    """``QUORUM_WRITE_BUFFER_MAX_BYTES``, or the environment's override when it parses."""
    text = os.environ.get("ZKFAST_QUORUM_WRITE_BUFFER_MAX_BYTES")
    if text:
        try:
            return max(0, int(text))
        except ValueError:
            log.warning("ZKFAST_QUORUM_WRITE_BUFFER_MAX_BYTES=%r is not a number; using %d",
                        text, QUORUM_WRITE_BUFFER_MAX_BYTES)
    return QUORUM_WRITE_BUFFER_MAX_BYTES


def _addr_text(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --------------------------------------------------------------------------- election links


class _ElectionConn(asyncio.Protocol):
    """One election-port TCP connection, incoming or dialled."""

    def __init__(self, rt: PeerRuntime, *, dialled_sid: int | None = None) -> None:
        self.rt = rt
        #: The peer's sid once known (dialled: the target; incoming: after the handshake).
        self.sid: int | None = dialled_sid
        self.incoming = dialled_sid is None
        self.is_link = False
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.write_paused = False
        self.closed = False
        self.remote = "?"
        self._handshake_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        peer = transport.get_extra_info("peername")
        if peer:
            self.remote = _addr_text(str(peer[0]), int(peer[1]))
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.incoming:
            self.rt.incoming.add(self)
            self._handshake_timer = self.rt.loop.call_later(
                self.rt.cnx_timeout_s, self.close, "no handshake within cnxTimeout")

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.buf += data
        try:
            if not self.is_link:
                if not self.incoming:
                    # The dialled side never writes before it is our link: Apache's receiver
                    # only speaks after the handshake, and only on a link it keeps.
                    return
                got = decode_handshake(self.buf)
                if got is None:
                    if len(self.buf) > 20 + 2048:
                        raise ProtocolError("handshake", 0, "a handshake", "too many bytes")
                    return
                hs, used = got
                del self.buf[:used]
                if self._handshake_timer is not None:
                    self._handshake_timer.cancel()
                    self._handshake_timer = None
                self.rt.incoming.discard(self)
                if not self.rt.handshake_received(self, hs):
                    return
            self._read_messages()
        except ProtocolError as e:
            log.warning("election connection from %s (sid %s): %s; dropping it", self.remote,
                        self.sid, e)
            self.close(f"protocol error: {e}")

    def _read_messages(self) -> None:
        buf = self.buf
        pos = 0
        n = len(buf)
        messages: list[bytes] = []
        while n - pos >= 4:
            (length,) = _LEN.unpack_from(buf, pos)
            if length <= 0 or length > ELECTION_MESSAGE_BYTES_MAX:
                del buf[:pos]
                for m in messages:
                    self.rt.message_received(self, m)
                raise ProtocolError("election message length", pos,
                                    f"1..{ELECTION_MESSAGE_BYTES_MAX}", str(length))
            if n - pos - 4 < length:
                break
            messages.append(bytes(buf[pos + 4:pos + 4 + length]))
            pos += 4 + length
        if pos:
            del buf[:pos]
        for m in messages:
            if self.closed:
                return
            self.rt.message_received(self, m)

    def write_message(self, payload: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(_LEN.pack(len(payload)) + payload)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.is_link and self.sid is not None:
            self.rt.flush_slot(self.sid)

    def close(self, reason: str = "") -> None:
        if self.closed:
            return
        if reason:
            log.debug("closing election connection %s (sid %s): %s", self.remote, self.sid,
                      reason)
        if self.transport is not None:
            self.transport.close()
        self._closed()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed()

    def _closed(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        self.rt.incoming.discard(self)
        self.rt.link_closed(self)


# --------------------------------------------------------------------------- quorum port


class _QuorumConn(asyncio.Protocol):
    """One quorum-port connection: a learner at the leader, or ours to the leader."""

    def __init__(self, rt: PeerRuntime, conn_id: int, *, learner_side: bool) -> None:
        self.rt = rt
        self.conn_id = conn_id
        #: True: we are the learner (the connection goes to a leader).
        self.learner_side = learner_side
        self.transport: asyncio.Transport | None = None
        # Only a learner reads SNAP streams; a leader reading a learner expects packets only.
        self.splitter = QuorumStreamSplitter(rt.packet_bytes_max, snapshots=learner_side)
        self.closed = False
        self.quiet = False  # closed at the core's request: no *Disconnected event
        self.remote = "?"
        #: The largest single write that may still sit in the transport's buffer.
        self.burst_bytes = 0
        self.write_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        peer = transport.get_extra_info("peername")
        if peer:
            self.remote = _addr_text(str(peer[0]), int(peer[1]))
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport.set_write_buffer_limits(QUORUM_WRITE_HIGH_WATER_BYTES,
                                               QUORUM_WRITE_LOW_WATER_BYTES)
        self.rt.quorum_conns[self.conn_id] = self
        if not self.learner_side:
            if self.rt.role_state != "LEADING":
                self.quiet = True
                self.close("not leading")
                return
            self.rt.step(LearnerConnected(self.conn_id, self.remote))

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            packets = self.splitter.feed(data)
        except ProtocolError as e:
            log.warning("quorum connection %s: %s; closing it", self.remote, e)
            self.close(f"protocol error: {e}")
            return
        if packets:
            if self.learner_side:
                self.rt.step(LeaderPacketsReceived(self.conn_id, packets))
            else:
                self.rt.step(LearnerPacketsReceived(self.conn_id, packets))

    def send(self, data: bytes) -> None:
        """Write ``data`` as it is; abort when the peer stopped reading (module docstring)."""
        t = self.transport
        if t is None or self.closed or t.is_closing():
            return
        n = len(data)
        if n > self.burst_bytes:
            self.burst_bytes = n
        t.write(data)
        buffered = t.get_write_buffer_size()
        if buffered > self.rt.write_buffer_max_bytes + self.burst_bytes:
            log.warning("quorum connection %s: %d bytes unsent (the peer is not reading); "
                        "dropping it", self.remote, buffered)
            # connection_lost follows from the loop, never from inside this call: the Driver
            # is in the middle of carrying out the node's actions.
            t.abort()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        # Below the low-water mark: whatever big write was buffered has gone out.
        self.write_paused = False
        self.burst_bytes = 0

    def close(self, reason: str = "") -> None:
        if self.closed:
            return
        if reason:
            log.debug("closing quorum connection %s: %s", self.remote, reason)
        if self.transport is not None:
            self.transport.close()
        self._lost()

    def buffered_bytes(self) -> int:
        """Bytes read but not yet handed to the node (a snapshot stream on its way)."""
        return self.splitter.buffered_bytes

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost()

    def _lost(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.rt.quorum_conns.get(self.conn_id) is self:
            del self.rt.quorum_conns[self.conn_id]
        if self.quiet:
            return
        if self.learner_side:
            self.rt.step(LeaderDisconnected(self.conn_id))
        else:
            self.rt.step(LearnerDisconnected(self.conn_id))


# --------------------------------------------------------------------------- the runtime


class PeerRuntime:
    """The network half of a quorum peer's ``PeerEnv`` (see the module docstring).

    Args:
        step: feeds one event to the node (``AioEnv.step_global``; the Driver carries out
            what the node answers).
        config: the server configuration (``config.quorum`` set).
        loop: the running loop.
        on_role_changed: called with every ``RoleChanged`` after the runtime handled it.
        on_fatal: called once when an epoch file cannot be written or carrying out an action
            failed: the peer must stop.
    """

    def __init__(self, step: Callable[[Any], None], config: ServerConfig,
                 loop: asyncio.AbstractEventLoop, *,
                 on_role_changed: Callable[[RoleChanged], None] | None = None,
                 on_fatal: Callable[[BaseException], None] | None = None) -> None:
        q = config.quorum
        assert q is not None
        self._step = step
        self.config = config
        self.quorum = q
        self.loop = loop
        self.my_sid = q.my_sid
        self.on_role_changed = on_role_changed
        self.on_fatal = on_fatal
        self.cnx_timeout_s = q.cnx_timeout_ms / 1000.0
        self.leader_connect_timeout_s = q.init_limit_ticks * config.tick_ms / 1000.0
        self.packet_bytes_max = max(config.jute_maxbuffer_bytes, 1 << 20) + 1024
        self.write_buffer_max_bytes = _write_buffer_max_bytes()
        self.epoch_dir = os.path.join(config.data_dir, "version-2")
        me = q.my_server
        self.election_host = "0.0.0.0" if q.quorum_listen_on_all_ips else me.host
        self.election_port = me.election_port
        self.quorum_host = "0.0.0.0" if q.quorum_listen_on_all_ips else me.host
        self.quorum_port = me.quorum_port
        self.handshake = encode_handshake(ElectionHandshake(
            self.my_sid, PROTOCOL_V1, _addr_text(me.host, me.election_port)))
        # election links
        self.links: dict[int, _ElectionConn] = {}
        self.incoming: set[_ElectionConn] = set()
        self.dialling: dict[int, asyncio.Task[None]] = {}
        self.slots: dict[int, bytes] = {}
        self.last_sent: dict[int, bytes] = {}
        self.retry_delay_s: dict[int, float] = {}
        self.retry_timers: dict[int, asyncio.TimerHandle] = {}
        # quorum port
        self.quorum_conns: dict[int, _QuorumConn] = {}
        self._next_learner_conn = 1
        self.role_state = "LOOKING"
        self._quorum_server: asyncio.AbstractServer | None = None
        #: ConnectToLeader attempts still connecting, by conn_id.
        self._attempts: dict[int, asyncio.Task[Any]] = {}
        self._quorum_opening: asyncio.Task[None] | None = None
        self._election_server: asyncio.AbstractServer | None = None
        # epochs
        self._epoch_writes: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        self._epoch_writer: asyncio.Task[None] | None = None
        # lifecycle
        self._tasks: set[asyncio.Task[Any]] = set()
        self.stopped = False
        self.failed: BaseException | None = None

    # ---- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Bind the election port (with retries) and start the epoch writer; the node's first
        election round is the caller's (``QuorumDriver.start``).

        Raises:
            OSError: the election port could not be bound after ``electionPortBindRetry``
                attempts.
        """
        attempts = self.quorum.election_port_bind_retry
        n = 0
        while True:
            n += 1
            try:
                self._election_server = await self.loop.create_server(
                    lambda: _ElectionConn(self), host=self.election_host,
                    port=self.election_port, reuse_address=True, backlog=128)
                break
            except OSError as e:
                log.error("cannot bind the election port %s (attempt %d%s): %s",
                          _addr_text(self.election_host, self.election_port), n,
                          f" of {attempts}" if attempts else "", e)
                if attempts and n >= attempts:
                    raise
                await asyncio.sleep(BIND_RETRY_DELAY_S)
        log.info("election port listening on %s; myid %d",
                 _addr_text(self.election_host, self.election_port), self.my_sid)
        self._epoch_writer = self.loop.create_task(self._run_epoch_writes())

    def stop(self) -> None:
        """Close every listener and connection; stop the retry timers and the tasks."""
        if self.stopped:
            return
        self.stopped = True
        for h in self.retry_timers.values():
            h.cancel()
        self.retry_timers.clear()
        for srv in (self._election_server, self._quorum_server):
            if srv is not None:
                srv.close()
        for t in list(self.dialling.values()) + list(self._tasks):
            t.cancel()
        if self._quorum_opening is not None:
            self._quorum_opening.cancel()
        if self._epoch_writer is not None:
            self._epoch_writer.cancel()
        for c in list(self.links.values()) + list(self.incoming):
            c.close("peer stopping")
        for qc in list(self.quorum_conns.values()):
            qc.quiet = True
            qc.close("peer stopping")

    # ---- stepping ------------------------------------------------------------------------
    def step(self, event: Any) -> None:
        """Feed one event to the node (nothing once stopped)."""
        if not self.stopped:
            self._step(event)

    def _fail(self, exc: BaseException, what: str) -> None:
        log.critical("%s; stopping the peer", what, exc_info=exc)
        self.failed = exc
        self.stop()
        if self.on_fatal is not None:
            self.on_fatal(exc)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        t = self.loop.create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    # ---- election: sending ---------------------------------------------------------------
    def send_to_peer(self, a: SendToPeer) -> None:
        sid = a.sid
        if sid == self.my_sid:
            return
        self.slots[sid] = a.payload
        if sid in self.links:
            self.flush_slot(sid)
        else:
            self._connect_one(sid)

    def flush_slot(self, sid: int) -> None:
        link = self.links.get(sid)
        if link is None or link.write_paused:
            return
        payload = self.slots.pop(sid, None)
        if payload is None:
            return
        link.write_message(payload)
        self.last_sent[sid] = payload

    def _connect_one(self, sid: int) -> None:
        """QuorumCnxManager.connectOne: dial unless a link or a dial to ``sid`` exists."""
        if self.stopped or sid in self.links or sid in self.dialling:
            return
        server = self.quorum.verifier.servers.get(sid)
        if server is None:
            log.warning("no server line for sid %d: cannot connect to it", sid)
            return
        h = self.retry_timers.pop(sid, None)
        if h is not None:
            h.cancel()
        task = self.loop.create_task(self._dial(sid, server.host, server.election_port))
        self.dialling[sid] = task

    async def _dial(self, sid: int, host: str, port: int) -> None:
        ok = False
        try:
            try:
                _, conn = await asyncio.wait_for(
                    self.loop.create_connection(lambda: _ElectionConn(self, dialled_sid=sid),
                                                host, port),
                    self.cnx_timeout_s)
            except (OSError, asyncio.TimeoutError) as e:
                log.debug("cannot open an election connection to sid %d at %s: %r", sid,
                          _addr_text(host, port), e)
                return
            assert isinstance(conn, _ElectionConn)
            assert conn.transport is not None
            if conn.closed or conn.transport.is_closing():
                # The target closed (or a proxy in front of it dropped) the connection before
                # our first write: uvloop refuses to write to a closed transport.
                log.debug("election connection to sid %d at %s closed at once", sid,
                          _addr_text(host, port))
                return
            conn.transport.write(self.handshake)
            ok = True
            if sid > self.my_sid:
                # initiateConnection: "Have smaller server identifier, so dropping the
                # connection": the peer dials back when it reads our header.
                conn.transport.close()
                conn.closed = True
                return
            self._link_up(conn)
        finally:
            if self.dialling.get(sid) is asyncio.current_task():
                del self.dialling[sid]
            if not ok or sid > self.my_sid:
                self._schedule_retry(sid, grow=not ok)

    def _schedule_retry(self, sid: int, *, grow: bool) -> None:
        """Dial again later while a message for ``sid`` waits and no link came up."""
        if self.stopped or sid in self.links or sid in self.retry_timers:
            return
        if sid not in self.slots and sid not in self.last_sent:
            return
        delay = self.retry_delay_s.get(sid, RECONNECT_DELAY_MIN_S)
        if grow:
            self.retry_delay_s[sid] = min(delay * 2, RECONNECT_DELAY_MAX_S)
        else:
            # A poke of a higher sid: wait for its dial-back before poking again.
            delay = max(delay, self.cnx_timeout_s)

        def retry() -> None:
            self.retry_timers.pop(sid, None)
            if sid not in self.links and (sid in self.slots or sid in self.last_sent):
                self._connect_one(sid)
        self.retry_timers[sid] = self.loop.call_later(delay, retry)

    # ---- election: links -----------------------------------------------------------------
    def handshake_received(self, conn: _ElectionConn, hs: ElectionHandshake) -> bool:
        """An incoming connection identified itself; True when it became our link."""
        sid = hs.sid
        conn.sid = sid
        if sid == self.my_sid:
            log.warning("election connection from %s claims our own sid %d; closing it",
                        conn.remote, sid)
            conn.close("own sid")
            return False
        if sid < self.my_sid:
            # handleConnection: the lower sid dialled; close and dial back.
            conn.close("lower sid dialled")
            self._connect_one(sid)
            return False
        if hs.protocol_version is None:
            log.info("election connection from sid %d (%s) speaks the pre-3.5 protocol", sid,
                     conn.remote)
        self._link_up(conn)
        return not conn.closed

    def _link_up(self, conn: _ElectionConn) -> None:
        sid = conn.sid
        assert sid is not None
        old = self.links.get(sid)
        if old is not None and old is not conn:
            old.is_link = False  # its close must not report this new link down
            old.close("replaced by a newer connection")
        conn.is_link = True
        self.links[sid] = conn
        self.retry_delay_s.pop(sid, None)
        h = self.retry_timers.pop(sid, None)
        if h is not None:
            h.cancel()
        log.debug("election link to sid %d up (%s)", sid, conn.remote)
        self.step(PeerLinkUp(sid))
        if conn.closed or self.links.get(sid) is not conn:
            return
        # SendWorker.run: with nothing queued, re-send the last message.
        if sid not in self.slots and sid in self.last_sent:
            self.slots[sid] = self.last_sent[sid]
        self.flush_slot(sid)
        if conn.buf:
            conn.data_received(b"")

    def link_closed(self, conn: _ElectionConn) -> None:
        sid = conn.sid
        if not conn.is_link or sid is None or self.links.get(sid) is not conn:
            return
        conn.is_link = False
        del self.links[sid]
        log.debug("election link to sid %d down", sid)
        self.step(PeerLinkDown(sid))
        self._schedule_retry(sid, grow=True)

    def message_received(self, conn: _ElectionConn, payload: bytes) -> None:
        if conn.sid is not None and conn.is_link:
            self.step(PeerMessageReceived(conn.sid, payload))

    # ---- quorum port ---------------------------------------------------------------------
    def role_changed(self, a: RoleChanged) -> None:
        was = self.role_state
        self.role_state = a.state
        log.info("role: %s/%s leader=%s%s", a.state, a.zab_state, a.leader_sid,
                 " read-only" if a.read_only else "")
        if a.state == "LEADING" and was != "LEADING":
            self._open_quorum_listener()
        elif a.state != "LEADING" and was == "LEADING":
            self._close_quorum_listener()
        if self.on_role_changed is not None:
            self.on_role_changed(a)

    def _open_quorum_listener(self) -> None:
        async def open_it() -> None:
            attempts = 0
            while self.role_state == "LEADING" and not self.stopped:
                attempts += 1
                try:
                    srv = await self.loop.create_server(
                        self._learner_protocol, host=self.quorum_host, port=self.quorum_port,
                        reuse_address=True, backlog=128)
                except OSError as e:
                    # Leader's LearnerCnxAcceptor: the port may still be held by a socket
                    # of a previous role; retry while we lead.
                    log.warning("cannot bind the quorum port %s (attempt %d): %s",
                                _addr_text(self.quorum_host, self.quorum_port), attempts, e)
                    await asyncio.sleep(0.2)
                    continue
                if self.role_state != "LEADING" or self.stopped:
                    srv.close()
                    return
                self._quorum_server = srv
                log.info("quorum port listening on %s",
                         _addr_text(self.quorum_host, self.quorum_port))
                return
        self._quorum_opening = self.loop.create_task(open_it())

    def _close_quorum_listener(self) -> None:
        if self._quorum_opening is not None:
            self._quorum_opening.cancel()
            self._quorum_opening = None
        if self._quorum_server is not None:
            self._quorum_server.close()
            self._quorum_server = None
        for qc in list(self.quorum_conns.values()):
            if not qc.learner_side:
                qc.quiet = True
                qc.close("no longer leading")

    def _learner_protocol(self) -> _QuorumConn:
        conn_id = self._next_learner_conn
        self._next_learner_conn += 1
        assert conn_id < LEARNER_CONN_ID_BASE
        return _QuorumConn(self, conn_id, learner_side=False)

    def connect_to_leader(self, a: ConnectToLeader) -> None:
        if self.stopped:
            return

        async def attempt() -> None:
            try:
                await asyncio.wait_for(self.loop.create_connection(
                    lambda: _QuorumConn(self, a.conn_id, learner_side=True), a.host, a.port),
                    self.leader_connect_timeout_s)
            except (OSError, asyncio.TimeoutError) as e:
                self.step(LeaderConnectFailed(a.conn_id, repr(e)))
                return
            finally:
                self._attempts.pop(a.conn_id, None)
            self.step(LeaderConnected(a.conn_id))
        self._attempts[a.conn_id] = self._spawn(attempt())

    def send_quorum_packet(self, a: SendQuorumPacket) -> None:
        qc = self.quorum_conns.get(a.conn_id)
        if qc is not None:
            qc.send(a.data)

    def close_quorum_conn(self, a: CloseQuorumConn) -> None:
        attempt = self._attempts.pop(a.conn_id, None)
        if attempt is not None:
            attempt.cancel()  # a ConnectToLeader still connecting: no event follows
        qc = self.quorum_conns.get(a.conn_id)
        if qc is not None:
            qc.quiet = True
            qc.close(a.reason)

    # ---- epochs --------------------------------------------------------------------------
    def write_epoch(self, a: WriteEpoch) -> None:
        self._epoch_writes.put_nowait((a.kind, a.epoch))

    async def _run_epoch_writes(self) -> None:
        while True:
            kind, epoch = await self._epoch_writes.get()
            path = os.path.join(self.epoch_dir, epoch_file_name(kind))
            try:
                await self.loop.run_in_executor(None, write_file_atomically, path,
                                                format_epoch(epoch))
            except OSError as e:
                self._fail(e, f"cannot write {path}")
                return
            self.step(EpochDurable(kind, epoch))
