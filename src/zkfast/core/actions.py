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
    "SendToPeer",
    "WriteEpoch",
    "ConnectToLeader",
    "SendQuorumPacket",
    "CloseQuorumConn",
    "RoleChanged",
    "TruncateLog",
    "TakeSnapshot",
    "PeerAction",
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


# --------------------------------------------------------------------------- quorum peer (issue 4)


@dataclass(frozen=True, slots=True)
class SendToPeer:
    """Send one election message to ``sid`` (the runtime adds the int32 length prefix).

    The runtime keeps one send slot per peer holding only the newest message (QuorumCnxManager's
    queue of capacity 1), connects on demand, and re-sends the last message on a new connection.
    """

    sid: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class WriteEpoch:
    """Write ``<dataDir>/version-2/<kind>Epoch`` atomically (tmp, fsync, rename) with
    ``storage.epochs.format_epoch(epoch)``, then report ``EpochDurable(kind, epoch)``.

    ``kind`` is ``"accepted"`` or ``"current"``.
    """

    kind: str
    epoch: int


@dataclass(frozen=True, slots=True)
class ConnectToLeader:
    """Open a quorum-port connection to the leader; report ``LeaderConnected(conn_id)`` or
    ``LeaderConnectFailed(conn_id, reason)`` (one attempt per action, connect timeout
    ``cnxTimeout``; the core decides about retries)."""

    conn_id: int
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class SendQuorumPacket:
    """Write bytes (whole jute QuorumPackets, no extra framing) to a quorum connection."""

    conn_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class CloseQuorumConn:
    """Close a quorum connection (learner or leader side); ``reason`` is for the log.

    No ``LearnerDisconnected``/``LeaderDisconnected`` is expected for it afterwards (one may
    still arrive; the core ignores unknown conn ids).
    """

    conn_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class RoleChanged:
    """The peer's role changed; the runtime switches its services to match.

    ``state`` is ServerState name ("LOOKING", "FOLLOWING", "LEADING", "OBSERVING"),
    ``zab_state`` the ZabState name ("ELECTION", "DISCOVERY", "SYNCHRONIZATION", "BROADCAST").
    The runtime listens on the quorum port exactly while ``state == "LEADING"`` (closing the
    listener and every learner connection otherwise). Clients are not served while LOOKING,
    except read-only when ``read_only`` is true (readonlymode.enabled, after the grace period).
    """

    state: str
    zab_state: str
    leader_sid: int | None
    read_only: bool = False


# --------------------------------------------------------------------------- ZAB sync (issue 5)


@dataclass(frozen=True, slots=True)
class TruncateLog:
    """Cut the txn log after ``zxid`` (later log files deleted, snapshots above ``zxid`` set
    aside), reload the database from snapshot + log up to ``zxid``, then report
    ``LogTruncated``. Appends asked for before this action are done first."""

    zxid: int


@dataclass(frozen=True, slots=True)
class TakeSnapshot:
    """Write a snapshot of the service's tree as it is at this moment (fork) for ``zxid``,
    make it durable, then report ``SnapshotDurable(zxid)``."""

    zxid: int


PeerAction = (
    SendToPeer | WriteEpoch | ConnectToLeader | SendQuorumPacket | CloseQuorumConn | RoleChanged
    | TruncateLog | TakeSnapshot
)

Action = SendToClient | CloseClient | AppendTxns | PauseClient | ResumeClient
