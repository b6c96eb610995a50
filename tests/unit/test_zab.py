"""core/zab.py: the sync decision (zk-formats §4.4, LearnerHandler.syncFollower and
queueCommittedProposals), the proposal tracker (Leader.processAck/tryToCommit) and the
quorum packet bodies."""

from __future__ import annotations

import pytest

from zkfast._impl import ProtocolError
from zkfast.core.zab import (
    CommittedLog,
    ProposalTracker,
    decode_ping_body,
    decode_request_body,
    decode_revalidate_reply,
    encode_ping_body,
    encode_request_body,
    encode_revalidate_reply,
    plan_sync,
)
from zkfast.quorum import QuorumVerifier, verifier_from_properties


def z(epoch: int, counter: int) -> int:
    return epoch << 32 | counter


def log_of(*zxids: int, count: int = 500) -> CommittedLog:
    return CommittedLog(count, [(x, b"t%x" % x) for x in zxids])


class Hist:
    def __init__(self, *zxids: int) -> None:
        self.txns = [(x, b"t%x" % x) for x in zxids]

    def txns_after(self, zxid: int, limit_bytes: int) -> list[tuple[int, bytes]] | None:
        zs = [x for x, _ in self.txns]
        return self.txns[zs.index(zxid) + 1:] if zxid in zs else None


def plan(peer_last: int, committed: CommittedLog, last: int, *, history: Hist | None = None,
         force: bool = False, factor: float = 0.33) -> tuple[str, int, list[int], int]:
    p = plan_sync(peer_last, committed=committed, last_processed=last, history=history,
                  force_snap=force, snapshot_size_factor=factor, snapshot_bytes=0)
    return p.kind, p.zxid, [x for x, _ in p.txns], p.last_zxid


def test_forced_snap_and_in_sync() -> None:
    c = log_of(z(1, 1), z(1, 2))
    assert plan(z(1, 2), c, z(1, 2), force=True) == ("SNAP", z(1, 2), [], z(1, 2))
    assert plan(z(1, 2), c, z(1, 2)) == ("DIFF", z(1, 2), [], z(1, 2))


def test_diff_within_the_committed_log() -> None:
    c = log_of(z(1, 1), z(1, 2), z(1, 3), z(2, 1))
    assert plan(z(1, 2), c, z(2, 1)) == ("DIFF", z(2, 1), [z(1, 3), z(2, 1)], z(2, 1))


def test_trunc_when_ahead_of_the_committed_log() -> None:
    c = log_of(z(1, 1), z(1, 2))
    assert plan(z(1, 5), c, z(1, 2)) == ("TRUNC", z(1, 2), [], z(1, 2))


def test_trunc_and_diff_for_a_txn_the_leader_never_had() -> None:
    # The learner logged a (1,3) that never committed; the leader's log has no (1,3).
    # Same epoch: TRUNC to (1,2), then the leader's txns after it.
    c = log_of(z(1, 1), z(1, 2), z(1, 4), z(1, 5))
    assert plan(z(1, 3), c, z(1, 5)) == ("TRUNC", z(1, 2), [z(1, 4), z(1, 5)], z(1, 5))


def test_no_trunc_across_an_epoch_boundary() -> None:
    c = log_of(z(1, 1), z(1, 2), z(2, 1), z(2, 2))
    assert plan(z(1, 3), c, z(2, 2))[0] == "SNAP"


def test_a_learner_at_an_epoch_start_gets_a_diff() -> None:
    c = log_of(z(1, 1), z(1, 2), z(3, 1))
    assert plan(z(2, 0), c, z(3, 1)) == ("DIFF", z(3, 1), [z(3, 1)], z(3, 1))


def test_older_than_the_committed_log_reads_the_txn_log() -> None:
    c = log_of(z(1, 4), z(1, 5), count=2)
    h = Hist(z(1, 1), z(1, 2), z(1, 3), z(1, 4), z(1, 5))
    assert plan(z(1, 2), c, z(1, 5), history=h) == (
        "DIFF", z(1, 5), [z(1, 3), z(1, 4), z(1, 5)], z(1, 5))
    # Not in the log, no log, or log reading off: SNAP.
    assert plan(z(1, 2), c, z(1, 5), history=Hist(z(1, 3)))[0] == "SNAP"
    assert plan(z(1, 2), c, z(1, 5))[0] == "SNAP"
    assert plan(z(1, 2), c, z(1, 5), history=h, factor=-1)[0] == "SNAP"
    # A gap between the end of the txn log and the committed log: SNAP.
    assert plan(z(1, 1), c, z(1, 5), history=Hist(z(1, 1), z(1, 2)))[0] == "SNAP"


def test_empty_committed_log_uses_last_processed() -> None:
    c = log_of()
    assert plan(z(1, 3), c, z(1, 2)) == ("TRUNC", z(1, 2), [], z(1, 2))
    assert plan(z(1, 1), c, z(1, 2))[0] == "SNAP"


def test_the_plan_names_the_branch_that_decided_it() -> None:
    """SyncPlan.source: which of syncFollower's branches decided, for the leader's log lines
    (an in-sync DIFF and a TRUNC past the committed log are logged apart from the walks)."""
    c = log_of(z(1, 1), z(1, 2), z(1, 4), z(1, 5))
    h = Hist(z(1, 1), z(1, 2), z(1, 3), z(1, 4), z(1, 5))

    def source(peer_last: int, committed: CommittedLog, last: int, **kw: object) -> str:
        return plan_sync(peer_last, committed=committed, last_processed=last,
                         history=kw.get("history"),  # type: ignore[arg-type]
                         force_snap=bool(kw.get("force")), snapshot_size_factor=0.33,
                         snapshot_bytes=0).source

    assert source(z(1, 5), c, z(1, 5), force=True) == "force"
    assert source(z(1, 5), c, z(1, 5)) == "in_sync"
    assert source(z(1, 9), c, z(1, 5)) == "trunc"
    assert source(z(1, 3), c, z(1, 5)) == "committed_log"  # TRUNC to (1,2), then a walk
    assert source(z(1, 2), log_of(z(1, 4), z(1, 5)), z(1, 5), history=h) == "txnlog"
    assert source(z(1, 2), log_of(z(1, 4), z(1, 5)), z(1, 5)) == ""  # SNAP


def test_committed_log_is_bounded() -> None:
    c = log_of(1, 2, 3, 4, count=3)
    assert (c.min_zxid, c.max_zxid, len(c)) == (2, 4, 3)
    with pytest.raises(AssertionError):
        c.append(4, b"")


def verifier(n: int, observers: tuple[int, ...] = ()) -> QuorumVerifier:
    props = {f"server.{s}": f"h:{2000 + s}:{3000 + s}:"
             f"{'observer' if s in observers else 'participant'}" for s in range(1, n + 1)}
    return verifier_from_properties(props)


def test_tracker_commits_in_order_on_a_voter_quorum() -> None:
    t = ProposalTracker(verifier(3, ()), last_committed=z(1, 0))
    t.propose(z(1, 1), b"a")
    t.propose(z(1, 2), b"b")
    assert t.ack_upto(1, z(1, 2)) == []
    assert t.ack(2, z(1, 2)) == []  # (1,1) first
    assert t.ack(2, z(1, 1)) == [(z(1, 1), b"a"), (z(1, 2), b"b")]
    assert t.ack(3, z(1, 1)) == []  # already committed
    assert t.ack(3, z(1, 0)) == []  # the UPTODATE ack


def test_observers_never_count() -> None:
    t = ProposalTracker(verifier(4, (3, 4)), last_committed=0)
    t.propose(1, b"a")
    assert t.ack(3, 1) == [] and t.ack(4, 1) == []
    assert t.ack_upto(1, 1) == []
    assert t.ack(2, 1) == [(1, b"a")]


def test_a_learner_that_syncs_again_acks_again() -> None:
    """An ack given before a new sync no longer counts for the proposals the sync cuts and
    sends again (a TRUNC to the committed zxid); those below stay acked."""
    t = ProposalTracker(verifier(5, ()), last_committed=z(1, 0))
    t.committed_acks = []
    for c in (1, 2, 3):
        t.propose(z(1, c), b"%d" % c)
    t.ack_upto(1, z(1, 3))
    assert t.ack(2, z(1, 1)) == [] and t.ack(2, z(1, 2)) == []
    assert t.ack(3, z(1, 1)) == [(z(1, 1), b"1")]
    t.forget(2, z(1, 1))
    assert t.ack(3, z(1, 2)) == []  # {1, 3}: p2's old ack is gone
    assert t.ack(4, z(1, 2)) == [(z(1, 2), b"2")]
    assert t.committed_acks == [(z(1, 1), frozenset({1, 2, 3})),
                                (z(1, 2), frozenset({1, 3, 4}))]


def test_bodies() -> None:
    assert decode_request_body(encode_request_body(7, 3, 1, b"xyz")) == (7, 3, 1, b"xyz")
    assert decode_ping_body(encode_ping_body([(1, 2), (3, 4)])) == [(1, 2), (3, 4)]
    assert decode_ping_body(None) == []
    assert decode_revalidate_reply(encode_revalidate_reply(9, True)) == (9, True)
    with pytest.raises(ProtocolError):
        decode_ping_body(b"\0" * 13)
    with pytest.raises(ProtocolError):
        decode_request_body(b"\0" * 8)
