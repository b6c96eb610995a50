"""The client port: one asyncio Protocol per connection, feeding the Driver in batches.

A connection goes through these states:

    accepted --(over maxClientCnxns / maxCnxns)--> rejected: logged, closed; the core never hears
    accepted --(first 4 bytes a four-letter word)--> answered (admin), closed; the core never hears
             --(otherwise)--> ClientConnected sent; framing: every read -> one ClientFramesReceived
             --(no complete frame in sessionlessCnxnTimeout)--> closed
    any --(ProtocolError / unexpected exception / send buffer over its bound)--> closed
    closed --> ClientDisconnected sent (exactly once, if ClientConnected was)

The core hears of a connection only once its first 4 bytes show it is not a four-letter word,
so a 4lw connection is never a client of the core; admin lists it itself as the asking
connection (``remote=``), which is how Apache's stat/cons/srvr/mntr count it.

Framing (zk-formats §1.1): each ``data_received`` calls ``split_frames`` once, and every
complete frame of that read goes to the core in one event. When nothing is pending from the last
read (the common case) the read's own bytes are split, without a copy, and only an incomplete
tail is kept in the connection's ``bytearray``; otherwise the read is appended there and split
from a read offset. The consumed prefix is dropped when the buffer is fully consumed
(``clear()``) or when it has grown large. A length above ``jute.maxbuffer`` is a
``ProtocolError`` raised before any payload is buffered, so one connection holds at most
``jute.maxbuffer`` + one read of unconsumed bytes.

Reading pauses for two independent reasons, and resumes only when neither holds: the core asked
(``PauseClient``: too many requests outstanding) and the transport's write buffer is above its
high-water mark (a client that does not read its replies must not get to send more requests).
Notifications can still be queued to such a client; ``client_send_buffer_bytes_max`` bounds that.

Failure isolation (STYLE §5): a ``ProtocolError`` closes that connection with a log line naming
the peer; any other exception while handling one connection's event is logged with its
traceback and closes that connection; the server and the other clients go on. A failed
``assert`` is our own broken invariant and stops the server.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any, cast

from .._impl import ProtocolError, core
from ..config import ServerConfig
from ..core.events import ClientConnected, ClientDisconnected, ClientFramesReceived, Event
from ..wire.constants import FOUR_LETTER_WORDS
from .aio_env import AioEnv

__all__ = ["ClientConnection", "ClientHub"]

log = logging.getLogger("zkfast.client")

#: "telnet close" (IAC IP IAC DO TIMING-MARK): Apache closes the connection on it.
TELNET_CLOSE = b"\xff\xf4\xff\xfd"
#: Drop the consumed prefix of a read buffer once it is this large (and half the buffer).
_COMPACT_BYTES = 64 * 1024


class ClientHub:
    """What every connection of the client ports shares: ids, limits, the Env, the core.

    Args:
        env: the Env whose connection table and Driver the connections use.
        config: limits (maxClientCnxns, maxCnxns, jute.maxbuffer, send buffer bound).
        four_letter: answers a four-letter word asked from ``(host, port)``
            (``admin.run_four_letter_word`` bound to the core); None when no admin module is
            available (the connection is then closed).
        cert_ids_of: the x509 ids of a TLS peer from its ``ssl_object`` (``tls.py``).
        on_fatal: called when the core broke an invariant: the server must stop.
    """

    def __init__(
        self,
        env: AioEnv,
        config: ServerConfig,
        *,
        four_letter: Callable[[bytes, tuple[str, int]], bytes] | None = None,
        cert_ids_of: Callable[[Any], tuple[str, ...]] | None = None,
        on_fatal: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.env = env
        self.config = config
        self.four_letter = four_letter
        self.cert_ids_of = cert_ids_of
        self.on_fatal = on_fatal if on_fatal is not None else env.on_fatal
        self.frame_bytes_max = config.jute_maxbuffer_bytes
        self._next_conn_id = 1
        self.per_ip: dict[str, int] = {}
        self.total = 0
        #: Every accepted connection not yet lost, including ones still being rejected.
        self.live: set[ClientConnection] = set()

    def protocol_factory(self, *, secure: bool) -> Callable[[], ClientConnection]:
        """A factory for ``loop.create_server``."""
        return lambda: ClientConnection(self, secure=secure)

    # ---- admission ---------------------------------------------------------------------------
    def admit(self, host: str) -> int | None:
        """A new conn id, or None when a connection limit refuses this peer (logged)."""
        per_ip_max = self.config.max_client_cnxns
        if per_ip_max > 0 and self.per_ip.get(host, 0) >= per_ip_max:
            # NIOServerCnxnFactory.AcceptThread.doAccept's wording.
            log.warning("Too many connections from /%s - max is %d", host, per_ip_max)
            return None
        total_max = self.config.max_cnxns
        if total_max > 0 and self.total >= total_max:
            log.warning("Too many connections from /%s - max is %d (maxCnxns)", host, total_max)
            return None
        conn_id = self._next_conn_id
        self._next_conn_id += 1
        self.per_ip[host] = self.per_ip.get(host, 0) + 1
        self.total += 1
        return conn_id

    def release(self, host: str) -> None:
        n = self.per_ip.get(host, 0) - 1
        if n > 0:
            self.per_ip[host] = n
        else:
            self.per_ip.pop(host, None)
        self.total -= 1

    # ---- events ------------------------------------------------------------------------------
    def deliver(self, conn: ClientConnection, event: Event) -> None:
        """Step the Driver with one connection's event, isolating that connection's failures."""
        driver = self.env.driver
        if driver is None:
            conn.abort("server is not running")
            return
        try:
            driver.step(event)
        except AssertionError as exc:
            log.critical("conn %d (%s): an invariant broke handling %s; stopping the server",
                         conn.conn_id, conn.peer, type(event).__name__, exc_info=True)
            self.on_fatal(exc)
        except Exception:  # noqa: BLE001 - one bad connection never takes the server down
            log.error("conn %d (%s): unexpected error handling %s; closing the connection",
                      conn.conn_id, conn.peer, type(event).__name__, exc_info=True)
            conn.abort("internal error")

    def close_all(self, reason: str) -> None:
        """Close every connection (flushing what was written; see ClientConnection.close)."""
        for conn in list(self.live):
            conn.close(reason)

    def abort_all(self) -> None:
        for conn in list(self.live):
            conn.abort("server stopped")


class ClientConnection(asyncio.Protocol):
    """One client connection on the plain or the secure client port."""

    __slots__ = (
        "hub", "secure", "conn_id", "peer", "host", "port", "cert_ids", "transport", "_buf", "_off", "_first_seen",
        "_announced", "_closing", "_paused_by_core", "_paused_by_writes", "_reading_paused",
        "_linger", "_sessionless",
    )

    def __init__(self, hub: ClientHub, *, secure: bool) -> None:
        self.hub = hub
        self.secure = secure
        self.conn_id = 0
        self.peer = "?"
        self.host = ""
        self.port = 0
        self.cert_ids: tuple[str, ...] = ()
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._off = 0
        self._first_seen = False
        self._announced = False
        self._closing = False
        self._paused_by_core = False
        self._paused_by_writes = False
        self._reading_paused = False
        self._linger: asyncio.TimerHandle | None = None
        self._sessionless: asyncio.TimerHandle | None = None

    # ---- asyncio callbacks ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike: no isinstance.
        self.transport = cast(asyncio.Transport, transport)
        hub = self.hub
        hub.live.add(self)
        transport = self.transport
        peername = transport.get_extra_info("peername")
        host, port = (str(peername[0]), int(peername[1])) if peername else ("", 0)
        self.host, self.port = host, port
        self.peer = f"/{host}:{port}" if ":" not in host else f"/[{host}]:{port}"
        conn_id = hub.admit(host)
        if conn_id is None:
            self._closing = True
            transport.close()
            return
        self.conn_id = conn_id
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if hub.config.tcp_keepalive:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            except (OSError, AttributeError):
                pass  # not TCP (a test's socketpair), or the platform refuses: harmless
        if self.secure and hub.cert_ids_of is not None:
            ssl_obj = transport.get_extra_info("ssl_object")
            if ssl_obj is not None:
                try:
                    self.cert_ids = hub.cert_ids_of(ssl_obj)
                except Exception:  # noqa: BLE001 - a certificate we cannot name: no x509 id
                    log.warning("conn %d (%s): cannot read the client certificate's subject",
                                conn_id, self.peer, exc_info=True)
        hub.env.conns[conn_id] = self
        self._sessionless = hub.env.loop.call_later(
            hub.config.sessionless_cnxn_timeout_ms / 1000.0, self._sessionless_expired)
        log.debug("conn %d: accepted %s%s", conn_id, self.peer, " (TLS)" if self.secure else "")

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        buf = self._buf
        if not self._first_seen:
            buf += data
            if len(buf) < 4:
                return
            self._first_seen = True
            first = bytes(buf[:4])
            if first in FOUR_LETTER_WORDS:
                self._four_letter_word(first)
                return
            if first == TELNET_CLOSE:
                self.close("telnet close")
                return
            self._announced = True
            self.hub.deliver(self, ClientConnected(self.conn_id, self.host, self.port,
                                                   self.secure, self.cert_ids))
            if self._closing:
                return  # the core failed on it (logged by deliver)
            src: bytes | bytearray = buf
        elif buf:
            buf += data  # completes (or extends) the partial frame left by the last read
            src = buf
        else:
            src = data  # the common case: nothing pending, split the read itself (no copy)
        try:
            frames, off = core.split_frames(src, self._off if src is buf else 0,
                                            self.hub.frame_bytes_max)
        except ProtocolError as e:
            log.warning("conn %d (%s): closing: bad frame from the client: %s",
                        self.conn_id, self.peer, e)
            self.abort("protocol error")
            return
        if src is not buf:
            if off < len(data):
                buf += memoryview(data)[off:]  # keep the incomplete tail for the next read
            self._off = 0
        elif off == len(buf):
            buf.clear()
            self._off = 0
        elif off >= _COMPACT_BYTES and off * 2 >= len(buf):
            del buf[:off]
            self._off = 0
        else:
            self._off = off
        if frames:
            if self._sessionless is not None:
                self._sessionless.cancel()
                self._sessionless = None
            self.hub.deliver(self, ClientFramesReceived(self.conn_id, frames))

    def eof_received(self) -> bool | None:
        return None  # a half-closed client is done: close (pending writes are still flushed)

    def pause_writing(self) -> None:
        self._paused_by_writes = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._paused_by_writes = False
        self._update_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        hub = self.hub
        hub.live.discard(self)
        self._closing = True
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if self._sessionless is not None:
            self._sessionless.cancel()
            self._sessionless = None
        if not self.conn_id:
            return  # rejected at admission: never counted, never announced
        hub.env.conns.pop(self.conn_id, None)
        hub.release(self.host)
        if exc is not None:
            log.debug("conn %d (%s): lost: %s", self.conn_id, self.peer, exc)
        if self._announced:
            self._announced = False
            hub.deliver(self, ClientDisconnected(self.conn_id))

    # ---- ClientLink (called by the Env for the core's actions) --------------------------------
    def send(self, data: bytes) -> None:
        t = self.transport
        if self._closing or t is None or t.is_closing():
            return  # the peer is gone: connection_lost is on its way; drop, as the Env promises
        t.write(data)
        if t.get_write_buffer_size() > self.hub.config.client_send_buffer_bytes_max:
            log.warning("conn %d (%s): closing: the client is not reading (%d bytes queued, "
                        "bound %d)", self.conn_id, self.peer, t.get_write_buffer_size(),
                        self.hub.config.client_send_buffer_bytes_max)
            self.abort("send buffer full")

    def close(self, reason: str) -> None:
        """Close after flushing what was written; reset if the flush takes too long."""
        t = self.transport
        if self._closing or t is None:
            return
        self._closing = True
        log.debug("conn %d (%s): closing: %s", self.conn_id, self.peer, reason)
        t.close()
        if t.get_write_buffer_size() > 0:
            delay_s = self.hub.config.client_close_flush_ms / 1000.0
            self._linger = self.hub.env.loop.call_later(delay_s, t.abort)

    def abort(self, reason: str) -> None:
        """Close now, dropping anything not yet written."""
        t = self.transport
        if t is None:
            return
        self._closing = True
        log.debug("conn %d (%s): reset: %s", self.conn_id, self.peer, reason)
        t.abort()

    def pause_by_core(self) -> None:
        self._paused_by_core = True
        self._update_reading()

    def resume_by_core(self) -> None:
        self._paused_by_core = False
        self._update_reading()

    # ---- internals -----------------------------------------------------------------------------
    def _update_reading(self) -> None:
        t = self.transport
        if t is None or self._closing or t.is_closing():
            return
        want_paused = self._paused_by_core or self._paused_by_writes
        if want_paused == self._reading_paused:
            return
        self._reading_paused = want_paused
        if want_paused:
            t.pause_reading()
        else:
            t.resume_reading()

    def _sessionless_expired(self) -> None:
        """No request arrived in time: close, as Apache's connection expirer does.

        Once the first frame (the ConnectRequest) is in, the core owns the connection's life
        (session timeouts); until then only the runtime knows it exists.
        """
        self._sessionless = None
        if not self._closing:
            log.info("conn %d (%s): closing: no request within %d ms", self.conn_id, self.peer,
                     self.hub.config.sessionless_cnxn_timeout_ms)
            self.close("no request")

    def _four_letter_word(self, word: bytes) -> None:
        """Answer a four-letter word in plain text and close (NIOServerCnxn.checkFourLetterWord)."""
        answer = b""
        fn = self.hub.four_letter
        if fn is None:
            log.warning("conn %d (%s): four-letter word %r, but this build has no admin "
                        "module; closing", self.conn_id, self.peer, word.decode("ascii"))
        else:
            try:
                answer = fn(word, (self.host, self.port))
            except Exception:  # noqa: BLE001 - one bad command never takes the server down
                log.error("conn %d (%s): four-letter word %r failed; closing", self.conn_id,
                          self.peer, word.decode("ascii"), exc_info=True)
                self.abort("four-letter word failed")
                return
        log.debug("conn %d (%s): four-letter word %r", self.conn_id, self.peer, word)
        if answer and self.transport is not None:
            self.transport.write(answer)
        self.close("four-letter word answered")
