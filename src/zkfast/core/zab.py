"""ZAB sync and broadcast: the pieces both roles share, sans-IO.

Theory of operation
-------------------
``core/peer.py`` runs the roles (election, discovery, sync, broadcast); this module holds the
data and decisions it uses once the epoch is agreed (docs/zab.md §4, zk-formats §4.4/§4.5):

* ``CommittedLog``: the last ``zookeeper.commitLogCount`` committed txns, oldest first
  (``ZKDatabase.committedLog``). Filled at recovery, by every commit on the leader and every
  applied txn on a learner; replaced after a TRUNC reload, emptied by a SNAP.
* ``plan_sync``: ``LearnerHandler.syncFollower`` + ``queueCommittedProposals`` as a pure
  function of the learner's last zxid, the committed log, the on-disk log (``TxnHistory``) and
  ``forceSnapshotSync``. The result says DIFF, TRUNC or SNAP, the op packet's zxid, the
  PROPOSAL+COMMIT pairs that follow, and the zxid forwarding starts after.
* ``ProposalTracker``: the leader's outstanding proposals (``Leader.outstandingProposals``)
  with one ack set each; a proposal commits when its voters' acks form a quorum
  (``_core.AckTracker``, the compiled counter; observers never count) and every earlier one
  has committed: commits leave strictly in zxid order.
* ``LearnerLog``: a learner's logged proposals not yet committed (``pendingTxns``), the zxid
  handed to the log last and the one durable last, and the zxids still to ACK.
* The small bodies of REQUEST, PING and REVALIDATE (zk-formats §4.2).
* ``ZabService`` and ``TxnHistory``: what the peer calls on the ServerCore and reads from the
  log (docs/zab.md §1, §3).
* ``ZabTrace``: the optional observer of the peer's safety decisions (docs/zab.md §5): an ack
  sent after our own fsync, a commit and who counted for it, a leader's truncation decision.

Nothing here does IO or keeps time; broken invariants of our own are AssertionErrors and bad
bytes from a peer are ``ProtocolError``.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from .._impl import ProtocolError
from .._impl import core as _core

if TYPE_CHECKING:
    from ..quorum import QuorumVerifier
    from .datatree import DataTree

__all__ = [
    "ZabService",
    "ZabTrace",
    "TxnHistory",
    "CommittedLog",
    "SyncPlan",
    "plan_sync",
    "ProposalTracker",
    "LearnerLog",
    "decode_request_body",
    "encode_request_body",
    "decode_ping_body",
    "encode_ping_body",
    "decode_revalidate_request",
    "encode_revalidate_request",
    "decode_revalidate_reply",
    "encode_revalidate_reply",
    "is_epoch_start",
    "SNAP_SIGNATURE",
]

#: The ustring that ends a SNAP stream (LearnerHandler.run, Learner.syncWithLeader).
SNAP_SIGNATURE = "BenWasHere"
_COUNTER_MASK = 0xFFFFFFFF


def is_epoch_start(zxid: int) -> bool:
    """A zxid whose counter is 0: the start of an epoch, with no txn behind it."""
    return zxid & _COUNTER_MASK == 0


class TxnHistory(Protocol):
    """The on-disk txn log, for DIFF syncs older than the committed log."""

    def txns_after(self, zxid: int, limit_bytes: int) -> list[tuple[int, bytes]] | None:
        """Every logged txn with zxid > ``zxid``, in order, starting exactly at the txn that
        follows ``zxid`` in the log; None when the log does not reach back to ``zxid`` or the
        txns would exceed limit_bytes."""


class ZabTrace(Protocol):
    """Called with one safety decision of the peer (docs/zab.md §5); never set in production.

    Events and their fields: ``"ack"`` (a follower sent ACK(zxid) of a proposal: ``zxid``,
    ``durable``: its own log's durable zxid then), ``"newleader_ack"`` (``zxid`` = epoch<<32,
    ``need``: the last txn logged at NEWLEADER, ``durable``, ``current_epoch``), ``"commit"``
    (the leader commits ``zxid``; ``acks``: the sids counted, ``voters``: the voting members
    then), ``"sync_plan"`` (the leader's decision for learner ``sid``: ``kind``, ``zxid``,
    ``peer_last``, ``last_zxid``), ``"truncate"`` (a learner asks its log cut after ``zxid``;
    ``last``: its last logged zxid) and ``"truncated"`` (the reload ended at ``landed``).
    """

    def __call__(self, event: str, **fields: Any) -> None: ...


class ZabService(Protocol):
    """The ServerCore methods the quorum roles call (docs/zab.md §3)."""

    forward: Callable[[int, int, int, bytes, list[tuple[str, str]]], None] | None
    revalidate_request: Callable[[int, int], None] | None

    @property
    def last_processed_zxid(self) -> int: ...

    def step(self, event: Any, now_ms: int) -> list[Any]: ...

    def deadline_ms(self) -> int | None: ...

    def flush_actions(self) -> list[Any]: ...

    def set_mode(self, mode: str, epoch: int, *, now_ms: int | None = None) -> None: ...

    def load_database(self, tree: DataTree, sessions: list[tuple[int, int]], *,
                      now_ms: int | None = None) -> None: ...

    def init_config_node(self, config_text: str, config_version: int, *,
                         now_ms: int | None = None) -> None: ...

    def sync_snapshot_body(self) -> bytes: ...

    def submit_learner_request(self, session_id: int, cxid: int, op: int, body: bytes,
                               auth_ids: list[tuple[str, str]], *, owner: int | None = None,
                               now_ms: int | None = None) -> None: ...

    def commit(self, zxid: int, *, now_ms: int | None = None) -> None: ...

    def touch_sessions(self, pairs: list[tuple[int, int]], *,
                       now_ms: int | None = None) -> None: ...

    def revalidate(self, session_id: int, timeout: int, *, owner: int | None = None,
                   now_ms: int | None = None) -> bool: ...

    def apply_committed(self, zxid: int, txn_bytes: bytes, *,
                        now_ms: int | None = None) -> None: ...

    def sync_done(self, *, now_ms: int | None = None) -> None: ...

    def revalidated(self, session_id: int, valid: bool, *,
                    now_ms: int | None = None) -> None: ...

    def touched_sessions(self) -> list[tuple[int, int]]: ...


# --------------------------------------------------------------------------- committed log


class CommittedLog:
    """``ZKDatabase.committedLog``: the newest ``count_max`` committed ``(zxid, txn bytes)``."""

    __slots__ = ("count_max", "entries")

    def __init__(self, count_max: int, entries: Iterable[tuple[int, bytes]] = ()) -> None:
        assert count_max > 0, "commitLogCount must be positive"
        self.count_max = count_max
        self.entries: deque[tuple[int, bytes]] = deque()
        self.reset(entries)

    def reset(self, entries: Iterable[tuple[int, bytes]]) -> None:
        """Start over from these entries (recovery, a TRUNC reload); a SNAP passes none."""
        self.entries.clear()
        for zxid, data in entries:
            self.append(zxid, data)

    def append(self, zxid: int, data: bytes) -> None:
        """One more committed txn; zxids only go up."""
        e = self.entries
        assert not e or zxid > e[-1][0], (
            f"committed log zxid 0x{zxid:x} after 0x{e[-1][0]:x}")
        e.append((zxid, data))
        if len(e) > self.count_max:
            e.popleft()

    @property
    def min_zxid(self) -> int | None:
        return self.entries[0][0] if self.entries else None

    @property
    def max_zxid(self) -> int | None:
        return self.entries[-1][0] if self.entries else None

    def __len__(self) -> int:
        return len(self.entries)


# --------------------------------------------------------------------------- sync decision


@dataclass(frozen=True, slots=True)
class SyncPlan:
    """What the leader sends a learner after its ACKEPOCH.

    ``kind`` is "DIFF", "TRUNC" or "SNAP"; ``zxid`` the op packet's zxid (for SNAP the
    leader's lastProcessedZxid); ``txns`` the PROPOSAL+COMMIT pairs that follow the op packet
    (none with SNAP); ``last_zxid`` the zxid the learner has after them, from which
    ``startForwarding`` continues. ``source`` is the branch of ``syncFollower`` that decided
    it, for the leader's log lines: "force" (forceSnapshotSync), "in_sync" (the learner is at
    lastProcessedZxid: an empty DIFF), "trunc" (the learner is past the committed log: a
    TRUNC alone), "committed_log" (walked the committed log), "txnlog" (walked the on-disk
    log, then the committed log), or "" (a SNAP nothing else could replace).
    """

    kind: str
    zxid: int
    txns: tuple[tuple[int, bytes], ...] = ()
    last_zxid: int = 0
    source: str = ""


class _Walk:
    """``queueCommittedProposals`` over one iterator, sharing ``needOpPacket`` across calls."""

    def __init__(self, peer_last: int) -> None:
        self.peer_last = peer_last
        self.op: tuple[str, int] | None = None
        self.txns: list[tuple[int, bytes]] = []
        self.snap = False

    def run(self, entries: Iterable[tuple[int, bytes]], queued: int, max_zxid: int | None,
            last_committed: int) -> int:
        peer_last = self.peer_last
        new_epoch = is_epoch_start(peer_last)
        prev = -1
        for zxid, data in entries:
            if max_zxid is not None and zxid > max_zxid:
                break
            if zxid < peer_last:
                prev = zxid
                continue
            if self.op is None:
                if zxid == peer_last:
                    self.op = ("DIFF", last_committed)
                    continue
                if new_epoch:
                    self.op = ("DIFF", last_committed)
                elif zxid > peer_last:
                    if zxid >> 32 != peer_last >> 32:
                        # A TRUNC may not cross an epoch boundary: the learner cannot truncate
                        # into the previous epoch's log. Syncing falls back to SNAP.
                        self.snap = True
                        return queued
                    self.op = ("TRUNC", prev)
            if zxid <= queued:
                continue
            self.txns.append((zxid, data))
            queued = zxid
        if self.op is None and new_epoch:
            self.op = ("DIFF", last_committed)
        return queued


def plan_sync(peer_last: int, *, committed: CommittedLog, last_processed: int,
              history: TxnHistory | None, force_snap: bool, snapshot_size_factor: float,
              snapshot_bytes: int) -> SyncPlan:
    """``LearnerHandler.syncFollower``: how to bring a learner at ``peer_last`` up to date.

    Args:
        peer_last: the learner's last logged zxid (its ACKEPOCH zxid).
        committed: the leader's committed log.
        last_processed: the leader's lastProcessedZxid.
        history: the on-disk log, or None.
        force_snap: zookeeper.forceSnapshotSync.
        snapshot_size_factor: zookeeper.snapshotSizeFactor (negative: no log reading).
        snapshot_bytes: the size of the newest snapshot (0: no limit, as in Apache).
    """
    snap = SyncPlan("SNAP", last_processed, (), last_processed)
    if force_snap:
        return replace(snap, source="force")
    if peer_last == last_processed:
        return SyncPlan("DIFF", peer_last, (), peer_last, "in_sync")
    if committed.entries:
        min_c = committed.min_zxid
        max_c = committed.max_zxid
        assert min_c is not None and max_c is not None
    else:
        min_c = max_c = last_processed
    if peer_last > max_c and not is_epoch_start(peer_last):
        return SyncPlan("TRUNC", max_c, (), max_c, "trunc")
    walk = _Walk(peer_last)
    if min_c <= peer_last <= max_c:
        source = "committed_log"
        last = walk.run(committed.entries, peer_last, None, max_c)
    elif peer_last < min_c and history is not None and snapshot_size_factor >= 0:
        limit = int(snapshot_bytes * snapshot_size_factor)
        from_log = history.txns_after(peer_last, limit if limit > 0 else 1 << 62)
        if not from_log:
            return snap
        source = "txnlog"
        # txns_after starts right after peer_last, so peer_last itself is in the log.
        walk.op = ("DIFF", max_c)
        last = walk.run(from_log, peer_last, min_c, max_c)
        if walk.snap or last < min_c:
            return snap  # a gap between the end of the log and the committed log
        last = walk.run(committed.entries, last, None, max_c)
    else:
        return snap
    if walk.snap or walk.op is None:
        return snap
    kind, zxid = walk.op
    return SyncPlan(kind, zxid, tuple(walk.txns), last, source)


# --------------------------------------------------------------------------- leader acks


class ProposalTracker(_core.AckTracker):
    """The leader's outstanding proposals and their ack sets (``Leader.processAck``).

    The counting is ``_core.AckTracker`` over ``verifier``'s quorum tables: ``ack``,
    ``ack_upto``, ``forget``, ``ready``, ``after``; ``outstanding`` is how many wait.
    """

    __slots__ = ("verifier",)

    def __init__(self, verifier: QuorumVerifier, *, last_committed: int) -> None:
        super().__init__(*verifier.quorum_tables(), last_committed=last_committed)
        self.verifier = verifier


# --------------------------------------------------------------------------- learner log


class LearnerLog:
    """A learner's proposals: logged (AppendTxns), durable (TxnsDurable), committed, acked."""

    __slots__ = ("pending", "logged_zxid", "durable_zxid", "to_ack")

    def __init__(self, last_zxid: int) -> None:
        #: Logged, not yet committed, in zxid order (Apache's pendingTxns).
        self.pending: deque[tuple[int, bytes]] = deque()
        self.logged_zxid = last_zxid
        self.durable_zxid = last_zxid
        #: Logged proposals still to ACK once durable (followers in BROADCAST).
        self.to_ack: deque[int] = deque()

    def logged(self, zxid: int, data: bytes) -> None:
        self.pending.append((zxid, data))
        self.logged_zxid = max(self.logged_zxid, zxid)

    def durable(self, zxid: int) -> None:
        self.durable_zxid = max(self.durable_zxid, zxid)

    def acks_due(self) -> list[int]:
        out: list[int] = []
        while self.to_ack and self.to_ack[0] <= self.durable_zxid:
            out.append(self.to_ack.popleft())
        return out


# --------------------------------------------------------------------------- packet bodies

_REQ = struct.Struct(">qii")
_TOUCH = struct.Struct(">qi")
_REVAL_REPLY = struct.Struct(">q?")


def decode_request_body(data: bytes | None) -> tuple[int, int, int, bytes]:
    """REQUEST data -> (session id, cxid, op, request body).

    Raises:
        ProtocolError: null or shorter than 16 bytes.
    """
    if data is None or len(data) < _REQ.size:
        raise ProtocolError("REQUEST.data", 0, "16 bytes or more",
                            "null" if data is None else f"{len(data)} bytes")
    sid, cxid, op = _REQ.unpack_from(data, 0)
    return int(sid), int(cxid), int(op), bytes(data[_REQ.size:])


def encode_request_body(session_id: int, cxid: int, op: int, body: bytes) -> bytes:
    return _REQ.pack(session_id, cxid, op) + body


def decode_ping_body(data: bytes | None) -> list[tuple[int, int]]:
    """A learner's PING reply: ``{long sessionId; int timeout}*`` (null or empty: none).

    Raises:
        ProtocolError: a trailing partial entry.
    """
    if not data:
        return []
    if len(data) % _TOUCH.size:
        raise ProtocolError("PING.data", len(data) - len(data) % _TOUCH.size,
                            "12-byte entries", f"{len(data) % _TOUCH.size} bytes left")
    return [(int(s), int(t)) for s, t in _TOUCH.iter_unpack(data)]


def encode_ping_body(pairs: Iterable[tuple[int, int]]) -> bytes:
    return b"".join(_TOUCH.pack(s, t) for s, t in pairs)


def decode_revalidate_request(data: bytes | None) -> tuple[int, int]:
    """REVALIDATE from a learner: ``{long sessionId; int timeout}``.

    Raises:
        ProtocolError: null or shorter than 12 bytes.
    """
    if data is None or len(data) < _TOUCH.size:
        raise ProtocolError("REVALIDATE.data", 0, "12 bytes",
                            "null" if data is None else f"{len(data)} bytes")
    s, t = _TOUCH.unpack_from(data, 0)
    return int(s), int(t)


def encode_revalidate_request(session_id: int, timeout: int) -> bytes:
    return _TOUCH.pack(session_id, timeout)


def decode_revalidate_reply(data: bytes | None) -> tuple[int, bool]:
    """REVALIDATE from the leader: ``{long sessionId; boolean valid}``.

    Raises:
        ProtocolError: null or shorter than 9 bytes.
    """
    if data is None or len(data) < _REVAL_REPLY.size:
        raise ProtocolError("REVALIDATE.data", 0, "9 bytes",
                            "null" if data is None else f"{len(data)} bytes")
    s, v = _REVAL_REPLY.unpack_from(data, 0)
    return int(s), bool(v)


def encode_revalidate_reply(session_id: int, valid: bool) -> bytes:
    return _REVAL_REPLY.pack(session_id, valid)
