"""Deliberately broken builds of the ZAB cores, to show the simulator catches each broken rule.

Each mutation is a context manager that monkeypatches one decision of the real core classes
(``core/peer.py``, ``core/zab.py``, ``core/election.py``) for as long as it is active, and
restores them after; nothing in the core files changes. ``tests/sim/test_mutations.py`` runs
seeded simulations (``vopr.run_zab``) and scripted scenarios under each one and expects a
violation naming the rule, and the same runs clean without it.

| name | the rule it breaks | caught by |
| --- | --- | --- |
| ``ack_before_fsync`` | a follower ACKs a proposal only once its log holds it durably | ``ZabChecker`` "ack" trace |
| ``count_non_voter`` | only voters count toward a commit quorum | ``ZabChecker`` "commit" trace |
| ``skip_truncate`` | a learner cuts its log at TRUNC | equal digests at equal zxids |
| ``newleader_ack_early`` | a learner ACKs NEWLEADER only with its synced txns and currentEpoch durable | ``ZabChecker`` "newleader_ack" trace |
| ``vote_ignores_zxid`` | the election prefers the longest log (epoch, zxid, then sid) | no TRUNC below a commit |
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..core.election import FastLeaderElection
from ..core.peer import QuorumPeerCore
from ..core.zab import LearnerLog, ProposalTracker, is_epoch_start
from ..wire.peer_codec import PacketType, QuorumPacket

__all__ = ["MUTATIONS", "mutation", "ack_before_fsync", "count_non_voter", "skip_truncate",
           "newleader_ack_early", "vote_ignores_zxid"]


@contextmanager
def _patched(owner: Any, name: str, value: Any) -> Iterator[None]:
    old = owner.__dict__[name]
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, old)


@contextmanager
def ack_before_fsync() -> Iterator[None]:
    """A follower ACKs every logged proposal at once, before its fsync returns."""
    def acks_due(self: LearnerLog) -> list[int]:
        out = list(self.to_ack)
        self.to_ack.clear()
        return out
    with _patched(LearnerLog, "acks_due", acks_due):
        yield


@contextmanager
def count_non_voter() -> Iterator[None]:
    """The leader counts an ack from any server, and a quorum as a majority of whoever
    acked, voters or not. Observers connect as followers (FOLLOWERINFO) and ack proposals,
    as a server configured as an observer on its own side only would; unmutated, the leader
    ignores those acks."""
    def ack(self: ProposalTracker, sid: int, zxid: int) -> list[tuple[int, bytes]]:
        if is_epoch_start(zxid) or zxid <= self.last_committed:
            return []
        p = self.outstanding.get(zxid)
        if p is None:
            return []
        p.acks.add(sid)
        return self.ready()

    def ready(self: ProposalTracker) -> list[tuple[int, bytes]]:
        half = len(self.verifier.voting_members) // 2
        out: list[tuple[int, bytes]] = []
        while self.outstanding:
            zxid = next(iter(self.outstanding))
            p = self.outstanding[zxid]
            if len(p.acks) <= half:
                break
            del self.outstanding[zxid]
            self.last_committed = zxid
            out.append((zxid, p.data))
            if self.committed_acks is not None:
                self.committed_acks.append((zxid, frozenset(p.acks)))
        return out

    init = QuorumPeerCore.__init__

    def observer_as_follower(self: QuorumPeerCore, *args: Any, **kw: Any) -> None:
        init(self, *args, **kw)
        self.participant = True  # the election keeps it a non-voter; its learner role acks

    with _patched(ProposalTracker, "ack", ack), _patched(ProposalTracker, "ready", ready), \
            _patched(QuorumPeerCore, "__init__", observer_as_follower):
        yield


@contextmanager
def skip_truncate() -> Iterator[None]:
    """A learner told to TRUNC keeps its log and tree as they are (handles it as a DIFF)."""
    sync_first = QuorumPeerCore.__dict__["_sync_first"]

    def patched(self: QuorumPeerCore, lrn: Any, pkt: QuorumPacket, now_ms: int) -> None:
        if pkt.type == PacketType.TRUNC:
            pkt = QuorumPacket(PacketType.DIFF, pkt.zxid)
        sync_first(self, lrn, pkt, now_ms)
    with _patched(QuorumPeerCore, "_sync_first", patched):
        yield


@contextmanager
def newleader_ack_early() -> Iterator[None]:
    """A learner ACKs NEWLEADER as soon as it arrives: before its synced txns are durable and
    before currentEpoch is (it asks for the currentEpoch write at the same time)."""
    def check(self: QuorumPeerCore, lrn: Any) -> None:
        if lrn.phase != "newleader":
            return
        self._write_epoch("current", lrn.newleader_zxid >> 32)
        self._ack_newleader(lrn)
    with _patched(QuorumPeerCore, "_check_newleader_durable", check):
        yield


@contextmanager
def vote_ignores_zxid() -> Iterator[None]:
    """The election's total order compares server ids only (not epoch, then zxid)."""
    def greater(self: FastLeaderElection, new_id: int, new_zxid: int, new_epoch: int,
                cur_id: int, cur_zxid: int, cur_epoch: int) -> bool:
        return new_id > cur_id and self.verifier.weight(new_id) > 0
    with _patched(FastLeaderElection, "_greater", greater):
        yield


#: name -> the context manager of each mutation.
MUTATIONS: dict[str, Callable[[], Any]] = {
    "ack_before_fsync": ack_before_fsync,
    "count_non_voter": count_non_voter,
    "skip_truncate": skip_truncate,
    "newleader_ack_early": newleader_ack_early,
    "vote_ignores_zxid": vote_ignores_zxid,
}


def mutation(name: str) -> Any:
    """The context manager of mutation ``name`` (``MUTATIONS``); KeyError if unknown."""
    return MUTATIONS[name]()
