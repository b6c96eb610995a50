"""Input events of the server cores: frozen, slotted, past-tense.

The runtime (or the simulator) turns socket reads, fsync completions and timers into these and
feeds them to ``Driver.step``. One event carries a whole batch: every frame one socket read held,
every txn one fsync made durable.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Event",
    "ClientConnected",
    "ClientFramesReceived",
    "FourLetterWordReceived",
    "ClientDisconnected",
    "TxnsDurable",
    "StorageFailed",
    "Ticked",
]


@dataclass(frozen=True, slots=True)
class ClientConnected:
    """A client TCP (or TLS) connection was accepted."""

    conn_id: int
    remote_host: str
    remote_port: int
    #: True on the secureClientPort.
    secure: bool = False
    #: x509 ids (the subject DN, RFC 2253 form) of a verified client certificate, if any.
    cert_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ClientFramesReceived:
    """Every complete frame one read of a client socket held, length prefixes stripped."""

    conn_id: int
    frames: list[bytes]


@dataclass(frozen=True, slots=True)
class FourLetterWordReceived:
    """The first 4 bytes of a new connection were a four-letter word."""

    conn_id: int
    word: bytes


@dataclass(frozen=True, slots=True)
class ClientDisconnected:
    """The client closed its connection, or it broke."""

    conn_id: int


@dataclass(frozen=True, slots=True)
class TxnsDurable:
    """Every txn appended up to and including ``zxid`` is on disk (or forceSync is off)."""

    zxid: int


@dataclass(frozen=True, slots=True)
class StorageFailed:
    """The txn log could not be written or synced: the server must stop accepting writes."""

    reason: str


@dataclass(frozen=True, slots=True)
class Ticked:
    """Time passed: the deadline the core asked for (``deadline_ms``) has been reached."""


Event = (
    ClientConnected
    | ClientFramesReceived
    | FourLetterWordReceived
    | ClientDisconnected
    | TxnsDurable
    | StorageFailed
    | Ticked
)
