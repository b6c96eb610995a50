"""Input events of the server cores: frozen, slotted, past-tense.

The runtime (or the simulator) turns socket reads, fsync completions and timers into these and
feeds them to ``Driver.step``. One event carries a whole batch: every frame one socket read held,
every txn one fsync made durable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .datatree import DataTree

__all__ = [
    "Event",
    "ClientConnected",
    "ClientFramesReceived",
    "FourLetterWordReceived",
    "ClientDisconnected",
    "TxnsDurable",
    "StorageFailed",
    "Ticked",
    "ReadOnlyModeChanged",
    "PeerMessageReceived",
    "PeerLinkUp",
    "PeerLinkDown",
    "EpochDurable",
    "LearnerConnected",
    "LearnerPacketsReceived",
    "LearnerDisconnected",
    "LeaderConnected",
    "LeaderPacketsReceived",
    "LeaderConnectFailed",
    "LeaderDisconnected",
    "LogTruncated",
    "SnapshotDurable",
    "PeerEvent",
    "NodeEvent",
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


@dataclass(frozen=True, slots=True)
class ReadOnlyModeChanged:
    """A quorum peer's ServerCore starts (True) or stops (False) its read-only service.

    The peer's ``RoleChanged.read_only`` switched (Apache's ReadOnlyZooKeeperServer startup
    after the LOOKING grace period, and its shutdown when LOOKING ends). Entering and leaving
    close every client connection.
    """

    read_only: bool


# --------------------------------------------------------------------------- quorum peer (issue 4)


@dataclass(frozen=True, slots=True)
class PeerMessageReceived:
    """One election message from peer ``sid`` (the bytes after its int32 length prefix).

    The runtime has already done QuorumCnxManager's handshake and length check (1..524288).
    """

    sid: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class PeerLinkUp:
    """An election connection to/from ``sid`` finished its handshake."""

    sid: int


@dataclass(frozen=True, slots=True)
class PeerLinkDown:
    """The election connection to ``sid`` closed (it will be re-dialled on the next send)."""

    sid: int


@dataclass(frozen=True, slots=True)
class EpochDurable:
    """``<dataDir>/version-2/<kind>Epoch`` now holds ``epoch`` on disk.

    ``kind`` is ``"accepted"`` or ``"current"``.
    """

    kind: str
    epoch: int


@dataclass(frozen=True, slots=True)
class LearnerConnected:
    """Leader side: a learner connected to the quorum port (``remote`` is ``host:port``)."""

    conn_id: int
    remote: str


@dataclass(frozen=True, slots=True)
class LearnerPacketsReceived:
    """Leader side: every whole jute QuorumPacket one read of a learner connection held."""

    conn_id: int
    packets: list[bytes]


@dataclass(frozen=True, slots=True)
class LearnerDisconnected:
    """Leader side: a learner connection closed or broke."""

    conn_id: int


@dataclass(frozen=True, slots=True)
class LeaderConnected:
    """Learner side: the ``ConnectToLeader(conn_id, ...)`` connection is established."""

    conn_id: int


@dataclass(frozen=True, slots=True)
class LeaderPacketsReceived:
    """Learner side: every whole jute QuorumPacket one read of the leader connection held."""

    conn_id: int
    packets: list[bytes]


@dataclass(frozen=True, slots=True)
class LeaderConnectFailed:
    """Learner side: one connect attempt of ``ConnectToLeader(conn_id, ...)`` failed."""

    conn_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class LeaderDisconnected:
    """Learner side: the leader connection closed or broke."""

    conn_id: int


# --------------------------------------------------------------------------- ZAB sync (issue 5)


@dataclass(frozen=True, slots=True)
class LogTruncated:
    """The ``TruncateLog(zxid)`` is done: the log ends at ``zxid`` and the database was
    reloaded from snapshot + log up to it.

    ``tree`` is the reloaded DataTree, ``sessions`` its ``(session_id, timeout_ms)`` list and
    ``committed`` the replayed tail of the log (the last <= commitLogCount ``(zxid, txn
    bytes)``, oldest first), as at recovery.
    """

    zxid: int
    tree: DataTree
    sessions: list[tuple[int, int]]
    committed: list[tuple[int, bytes]]


@dataclass(frozen=True, slots=True)
class SnapshotDurable:
    """The snapshot asked for by ``TakeSnapshot(zxid)`` is on disk (file and directory
    fsync'd)."""

    zxid: int


PeerEvent = (
    PeerMessageReceived
    | PeerLinkUp
    | PeerLinkDown
    | EpochDurable
    | LearnerConnected
    | LearnerPacketsReceived
    | LearnerDisconnected
    | LeaderConnected
    | LeaderPacketsReceived
    | LeaderConnectFailed
    | LeaderDisconnected
    | Ticked
)

NodeEvent = (
    LogTruncated
    | SnapshotDurable
)
"""Events only a QuorumNode handles (besides every PeerEvent and Event)."""

Event = (
    ClientConnected
    | ClientFramesReceived
    | FourLetterWordReceived
    | ClientDisconnected
    | TxnsDurable
    | StorageFailed
    | Ticked
    | ReadOnlyModeChanged
)
