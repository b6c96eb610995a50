"""The Env protocol: everything a Driver needs from the outside world.

Production implements it over asyncio/uvloop (``aio_env.py``); the simulator implements it over
a virtual clock, a seeded network and a faulty in-memory disk. An Env reports back to the
Driver by calling ``Driver.step`` with events (``TxnsDurable``, ``ClientFramesReceived``, ...).
"""

from __future__ import annotations

from typing import Protocol

from ..core.actions import (
    CloseQuorumConn,
    ConnectToLeader,
    RoleChanged,
    SendQuorumPacket,
    SendToPeer,
    TakeSnapshot,
    TruncateLog,
    WriteEpoch,
)

__all__ = ["Env", "PeerEnv"]


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


class PeerEnv(Protocol):
    """What a quorum peer's Driver needs beyond the ``Env``: the peer network, the epoch files,
    and the reloads of the database that ZAB sync asks for.

    Production splits it between ``aio_peers.PeerRuntime`` (network, epochs, role) and
    ``quorum_server.QuorumPeerServer`` (``TruncateLog``, ``TakeSnapshot``); the simulator has
    its own. Each reports back by stepping the same Driver (``EpochDurable``, ``LogTruncated``,
    ``SnapshotDurable``, the peer and quorum connection events), never from inside the call.
    """

    def send_to_peer(self, a: SendToPeer) -> None:
        """Put ``a.payload`` in the election send slot of ``a.sid`` (dial when unlinked)."""

    def write_epoch(self, a: WriteEpoch) -> None:
        """Write the epoch file atomically, then report ``EpochDurable``."""

    def connect_to_leader(self, a: ConnectToLeader) -> None:
        """One connection attempt; report ``LeaderConnected`` or ``LeaderConnectFailed``."""

    def send_quorum_packet(self, a: SendQuorumPacket) -> None:
        """Write bytes to a quorum connection (dropped if it is gone)."""

    def close_quorum_conn(self, a: CloseQuorumConn) -> None:
        """Close a quorum connection (no ``*Disconnected`` needs to follow)."""

    def role_changed(self, a: RoleChanged) -> None:
        """Open or close the quorum listener; tell whoever watches roles."""

    def truncate_log(self, a: TruncateLog) -> None:
        """Cut the txn log after ``a.zxid``, reload the database, report ``LogTruncated``."""

    def take_snapshot(self, a: TakeSnapshot) -> None:
        """Snapshot the service's tree now, make it durable, report ``SnapshotDurable``."""
