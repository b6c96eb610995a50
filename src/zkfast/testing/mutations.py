"""Deliberately broken builds of the ZAB cores, to show the simulator catches each broken rule.

Each mutation is a context manager that monkeypatches one decision of the real core classes
(``core/peer.py``, ``core/zab.py``, ``core/election.py``; for the compiled ack counter, the
tracker class ``core/peer.py`` builds) for as long as it is active, and
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

from .._impl import core as _core
from ..core import peer as peer_module
from ..core.election import FastLeaderElection
from ..core.peer import QuorumPeerCore
from ..core.zab import LearnerLog, ProposalTracker
from ..wire.peer_codec import PacketType, QuorumPacket

__all__ = ["MUTATIONS", "mutation", "patch_attr",
           "ack_before_fsync", "count_non_voter", "skip_truncate",
           "newleader_ack_early", "vote_ignores_zxid"]


@contextmanager
def patch_attr(owner: Any, name: str, value: Any) -> Iterator[None]:
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
    with patch_attr(LearnerLog, "acks_due", acks_due):
        yield


@contextmanager
def count_non_voter() -> Iterator[None]:
    """The leader counts an ack from any server, and a quorum as a majority of whoever
    acked, voters or not. Observers connect as followers (FOLLOWERINFO) and ack proposals,
    as a server configured as an observer on its own side only would; unmutated, the leader
    ignores those acks."""
    class CountsAnyone(ProposalTracker):
        """Every server is a weight-1 member of one group needing a voter majority."""

        __slots__ = ()

        def __init__(self, verifier: Any, *, last_committed: int) -> None:
            everyone = list(verifier.servers)
            _core.AckTracker.__init__(
                self, {s: 0 for s in everyone}, {s: 1 for s in everyone},
                {0: len(verifier.voting_members) // 2}, 1, last_committed=last_committed)
            self.verifier = verifier

    init = QuorumPeerCore.__init__

    def observer_as_follower(self: QuorumPeerCore, *args: Any, **kw: Any) -> None:
        init(self, *args, **kw)
        self.participant = True  # the election keeps it a non-voter; its learner role acks

    with patch_attr(peer_module, "ProposalTracker", CountsAnyone), \
            patch_attr(QuorumPeerCore, "__init__", observer_as_follower):
        yield


@contextmanager
def skip_truncate() -> Iterator[None]:
    """A learner told to TRUNC keeps its log and tree as they are (handles it as a DIFF)."""
    sync_first = QuorumPeerCore.__dict__["_sync_first"]

    def patched(self: QuorumPeerCore, lrn: Any, pkt: QuorumPacket, now_ms: int) -> None:
        if pkt.type == PacketType.TRUNC:
            pkt = QuorumPacket(PacketType.DIFF, pkt.zxid)
        sync_first(self, lrn, pkt, now_ms)
    with patch_attr(QuorumPeerCore, "_sync_first", patched):
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
    with patch_attr(QuorumPeerCore, "_check_newleader_durable", check):
        yield


@contextmanager
def vote_ignores_zxid() -> Iterator[None]:
    """The election's total order compares server ids only (not epoch, then zxid)."""
    def greater(self: FastLeaderElection, new_id: int, new_zxid: int, new_epoch: int,
                cur_id: int, cur_zxid: int, cur_epoch: int) -> bool:
        return new_id > cur_id and self.verifier.weight(new_id) > 0
    with patch_attr(FastLeaderElection, "_greater", greater):
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
