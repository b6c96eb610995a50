"""Output actions of the server cores: frozen, slotted, imperative.

A core returns a list of these from ``step``; the Driver hands them to the Env. Replies are
already encoded with their length prefixes, and one ``SendToClient`` carries every reply and
notification one step produced for that connection, in the order the client must see them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Action",
    "SendToClient",
    "CloseClient",
    "AppendTxns",
    "PauseClient",
    "ResumeClient",
]


@dataclass(frozen=True, slots=True)
class SendToClient:
    """Write these bytes (complete frames, length-prefixed) to the connection."""

    conn_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class CloseClient:
    """Close the connection after flushing what was sent before; ``reason`` is for the log."""

    conn_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class AppendTxns:
    """Append txns to the log, in order; answer with ``TxnsDurable(last zxid)`` once synced.

    Each entry is ``(zxid, txn_bytes)`` where txn_bytes is TxnHeader + record [+ TxnDigest],
    exactly the bytes a ZooKeeper 3.8 txn log entry holds.
    """

    txns: list[tuple[int, bytes]]


@dataclass(frozen=True, slots=True)
class PauseClient:
    """Stop reading from the connection (too many requests outstanding)."""

    conn_id: int


@dataclass(frozen=True, slots=True)
class ResumeClient:
    """Read from the connection again."""

    conn_id: int


Action = SendToClient | CloseClient | AppendTxns | PauseClient | ResumeClient
