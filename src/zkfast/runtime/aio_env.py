"""The production Env: the Driver's actions carried out over asyncio (or uvloop).

``AioEnv`` owns the table of live client connections (``conn_id -> ClientConnection``, filled by
``aio_client``), the Driver's one timer, and the txn log. It turns the outside world back into
events: a timer firing becomes ``Ticked``, a durable batch becomes ``TxnsDurable``.

Time: cores think in wall-clock milliseconds (they stamp ctime/mtime with it), asyncio schedules
on its monotonic ``loop.time()``. ``set_timer`` converts a wall-clock deadline into loop time at
the moment it is armed; a wall-clock jump after that only shifts one timer, and the core asks
again on the next step anyway.

The txn log sits behind the small ``TxnLog`` interface (``append`` plus ``on_durable`` /
``on_failed`` callbacks). ``MemoryTxnLog`` keeps nothing and reports a batch durable on the next
loop iteration: every append made while one loop iteration ran becomes one ``TxnsDurable``, the
same group commit a disk log does with one fsync. The server runs on the durable
``runtime/disk_log.DiskTxnLog`` through the same interface; ``MemoryTxnLog`` remains for tests
and for cores run without a data directory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from ..core.events import Event, StorageFailed, TxnsDurable
from .driver import Driver

__all__ = ["AioEnv", "ClientLink", "MemoryTxnLog", "TxnLog"]

log = logging.getLogger("zkfast.runtime")


class ClientLink(Protocol):
    """What the Env needs from one client connection (``aio_client.ClientConnection``)."""

    def send(self, data: bytes) -> None: ...

    def close(self, reason: str) -> None: ...

    def pause_by_core(self) -> None: ...

    def resume_by_core(self) -> None: ...


class TxnLog(Protocol):
    """Where ``AppendTxns`` goes. Completion is reported through the two callbacks."""

    #: Called with the last zxid of every batch that became durable, in zxid order.
    on_durable: Callable[[int], None]
    #: Called once when the log can no longer be written.
    on_failed: Callable[[str], None]

    def append(self, txns: list[tuple[int, bytes]]) -> None: ...

    def close(self) -> None: ...


def _unset_durable(zxid: int) -> None:  # pragma: no cover - replaced by AioEnv
    raise RuntimeError("txn log used before AioEnv attached its callbacks")


def _unset_failed(reason: str) -> None:  # pragma: no cover - replaced by AioEnv
    raise RuntimeError("txn log used before AioEnv attached its callbacks")


class MemoryTxnLog:
    """A txn log that keeps nothing: every append is "durable" on the next loop iteration.

    Appends made during one loop iteration are reported together, as one ``on_durable`` call
    with the last zxid, so the core sees the same batching a group-committing disk log gives.
    """

    __slots__ = ("_loop", "_last_zxid", "_scheduled", "_closed", "on_durable", "on_failed")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._last_zxid: int | None = None
        self._scheduled = False
        self._closed = False
        self.on_durable: Callable[[int], None] = _unset_durable
        self.on_failed: Callable[[str], None] = _unset_failed

    def append(self, txns: list[tuple[int, bytes]]) -> None:
        if self._closed or not txns:
            return
        last = txns[-1][0]
        assert self._last_zxid is None or last > self._last_zxid, (
            f"txn log: zxid went back from {self._last_zxid:#x} to {last:#x}")
        self._last_zxid = last
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if self._closed or self._last_zxid is None:
            return
        self.on_durable(self._last_zxid)

    def close(self) -> None:
        self._closed = True


class AioEnv:
    """The Env of ``runtime/env.py`` over an asyncio event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, txn_log: TxnLog | None = None) -> None:
        self.loop = loop
        self.conns: dict[int, ClientLink] = {}
        self.driver: Driver | None = None
        self.txn_log: TxnLog = txn_log if txn_log is not None else MemoryTxnLog(loop)
        self.txn_log.on_durable = self._txns_durable
        self.txn_log.on_failed = self._storage_failed
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        #: Called when an event that belongs to no connection failed inside the core: the core's
        #: state can no longer be trusted, so the server stops (set by runtime/server.py).
        self.on_fatal: Callable[[BaseException], None] = self._default_fatal
        #: Called after the core has heard of a txn log failure (set by runtime/server.py, which
        #: shuts the process down as Apache's standalone server does).
        self.on_storage_failed: Callable[[str], None] = lambda reason: None

    # ---- Env protocol -----------------------------------------------------------------------
    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def send(self, conn_id: int, data: bytes) -> None:
        conn = self.conns.get(conn_id)
        if conn is not None:
            conn.send(data)

    def close(self, conn_id: int, reason: str) -> None:
        conn = self.conns.get(conn_id)
        if conn is not None:
            conn.close(reason)

    def pause(self, conn_id: int) -> None:
        conn = self.conns.get(conn_id)
        if conn is not None:
            conn.pause_by_core()

    def resume(self, conn_id: int) -> None:
        conn = self.conns.get(conn_id)
        if conn is not None:
            conn.resume_by_core()

    def append_txns(self, txns: list[tuple[int, bytes]]) -> None:
        self.txn_log.append(txns)

    def set_timer(self, deadline_ms: int | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if deadline_ms is None or self._closed:
            return
        delay_s = max(0.0, (deadline_ms - time.time() * 1000) / 1000.0)
        self._timer = self.loop.call_at(self.loop.time() + delay_s, self._timer_fired)

    # ---- events from the outside world --------------------------------------------------------
    def step_global(self, event: Event) -> None:
        """Feed an event that belongs to no connection; a failure there stops the server."""
        if self._closed or self.driver is None:
            return
        try:
            self.driver.step(event)
        except Exception as exc:  # noqa: BLE001 - the core's state is suspect: stop, loudly
            log.critical("core failed on %r; stopping the server", event, exc_info=True)
            self.on_fatal(exc)

    def _timer_fired(self) -> None:
        self._timer = None
        if self._closed or self.driver is None:
            return
        try:
            self.driver.timer_fired()
        except Exception as exc:  # noqa: BLE001 - see step_global
            log.critical("core failed on a timer tick; stopping the server", exc_info=True)
            self.on_fatal(exc)

    def _txns_durable(self, zxid: int) -> None:
        self.step_global(TxnsDurable(zxid))

    def _storage_failed(self, reason: str) -> None:
        log.error("txn log failed: %s", reason)
        self.step_global(StorageFailed(reason))
        self.on_storage_failed(reason)

    def _default_fatal(self, exc: BaseException) -> None:
        self.loop.stop()

    def shutdown(self) -> None:
        """Stop the timer and the txn log; connections are closed by their owner first."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.txn_log.close()
