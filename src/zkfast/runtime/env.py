"""The Env protocol: everything a Driver needs from the outside world.

Production implements it over asyncio/uvloop (``aio_env.py``); the simulator implements it over
a virtual clock, a seeded network and a faulty in-memory disk. An Env reports back to the
Driver by calling ``Driver.step`` with events (``TxnsDurable``, ``ClientFramesReceived``, ...).
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Env"]


class Env(Protocol):
    def now_ms(self) -> int:
        """Wall-clock milliseconds since the Unix epoch (Stat ctime/mtime use it too)."""

    def send(self, conn_id: int, data: bytes) -> None:
        """Write bytes to a client connection (dropped if it is already gone)."""

    def close(self, conn_id: int, reason: str) -> None:
        """Flush and close a client connection."""

    def pause(self, conn_id: int) -> None:
        """Stop reading from a client connection."""

    def resume(self, conn_id: int) -> None:
        """Read from a client connection again."""

    def append_txns(self, txns: list[tuple[int, bytes]]) -> None:
        """Append txns to the log; report ``TxnsDurable`` (or ``StorageFailed``) later."""

    def set_timer(self, deadline_ms: int | None) -> None:
        """Call ``Driver.step(Ticked())`` at ``deadline_ms`` (replaces any earlier timer)."""
