"""Scripted multi-peer election stories with golden transcripts (testdata/<name>.txt).

Each story runs QuorumPeerCores on the deterministic in-test network of ``harness.py`` (1 ms
links, 1 ms disk, tickTime 2000 ms, initLimit 5) and records every election message, epoch
write, quorum packet and role change. The asserts state the outcome; the transcript pins the
path. Regenerate with ``pytest tests/scenarios --rewrite`` and read the diff.

References: Junqueira, Reed, Serafini, "Zab: High-performance broadcast for primary-backup
systems" (DSN 2011), §IV phases 0-1 (leader election, discovery); Medeiros, "ZooKeeper's atomic
broadcast protocol: Theory and practice" (2012), §3.2 (Fast Leader Election); ZooKeeper JIRAs
cited per test.
"""

from __future__ import annotations

from collections.abc import Callable

from harness import Network, make_verifier

from zkfast.wire.peer_codec import Notification, ServerState

Golden = Callable[[str, str], None]


def finish(net: Network, golden: Golden, name: str) -> None:
    lines = [f"FINAL p{sid} {p.state.name}/{p.zab_state.name} leader={p.leader_sid} "
             f"round={p.election.logical_clock} acceptedEpoch={p.accepted_epoch} "
             f"currentEpoch={p.current_epoch}" for sid, p in sorted(net.peers.items())]
    golden(name, net.transcript() + "\n".join(lines) + "\n")


def assert_one_leader(net: Network, leader: int) -> None:
    assert net.leaders() == [leader]
    for sid, p in net.peers.items():
        assert p.leader_sid == leader, (sid, p.leader_sid)
        assert p.state != ServerState.LOOKING
        assert p.zab_state.name == "SYNCHRONIZATION"  # held after the epoch handshake


def test_all_start_together(golden: Golden) -> None:
    """Equal zxids and epochs: the highest sid wins in one round (ZAB paper §IV-A; FLE's
    totalOrderPredicate breaks ties by sid)."""
    net = Network(make_verifier(3))
    for sid in (1, 2, 3):
        net.start(sid)
    net.run_until_stable()
    assert_one_leader(net, 3)
    assert {p.accepted_epoch for p in net.peers.values()} == {1}
    assert net.peers[3].current_epoch == 1
    finish(net, golden, "all_start_together")


def test_staggered_starts(golden: Golden) -> None:
    """Two peers elect the better of them; the third arrives later and follows it through
    outofelection and checkLeader (ZOOKEEPER-1732), not by starting a new round."""
    net = Network(make_verifier(3))
    net.start(1)
    net.run_until(300)
    net.start(2)
    net.run_until(3000)
    assert net.leaders() == [2]
    net.start(3)
    net.run_until_stable()
    assert_one_leader(net, 2)
    finish(net, golden, "staggered_starts")


def test_late_joiners_follow_the_established_leader(golden: Golden) -> None:
    """Peers 4 and 5 have higher sids but join an ensemble led by 3: they must follow it
    (ZOOKEEPER-1732: join only when a quorum follows the same leader that says LEADING)."""
    net = Network(make_verifier(5))
    for sid in (1, 2, 3):
        net.start(sid)
    net.run_until_stable()
    assert net.leaders() == [3]
    net.start(4)
    net.run_until(net.now + 1000)
    net.start(5)
    net.run_until_stable()
    assert_one_leader(net, 3)
    finish(net, golden, "late_joiners")


def test_leader_dies(golden: Golden) -> None:
    """The leader is killed: its followers lose the quorum connection, go LOOKING with their
    state intact and elect the best survivor with a new epoch (ZAB paper §IV, recovery)."""
    net = Network(make_verifier(3))
    for sid in (1, 2, 3):
        net.start(sid)
    net.run_until_stable()
    net.kill(3)
    net.run_until_stable()
    assert_one_leader(net, 2)
    assert net.peers[2].accepted_epoch == 2
    finish(net, golden, "leader_dies")


def test_minority_partition(golden: Golden) -> None:
    """{1,2} | {3,4,5}: the majority keeps its leader; the minority goes LOOKING, serves
    read-only after max(2 s, tickTime), and follows the leader again after the heal
    (ZOOKEEPER-704 read-only mode; ZOOKEEPER-1732)."""
    net = Network(make_verifier(5), readonly=True)
    for sid in (1, 2, 3, 4, 5):
        net.start(sid)
    net.run_until_stable()
    assert net.leaders() == [5]
    net.partition({1, 2}, {3, 4, 5})
    net.run_until(net.now + 5000)
    assert net.leaders() == [5]
    for sid in (1, 2):
        st = net.peers[sid].status()
        assert st.state == "LOOKING" and st.read_only and st.server_state == "read-only"
    assert net.peers[3].state == ServerState.FOLLOWING
    net.heal()
    net.run_until_stable()
    assert_one_leader(net, 5)
    assert not any(p.read_only for p in net.peers.values())
    finish(net, golden, "minority_partition")


def test_hierarchical_weight_zero_never_wins(golden: Golden) -> None:
    """Three groups of three; peer 9 has the newest zxid but weight 0, so it never wins
    (totalOrderPredicate, ZOOKEEPER-1089 hierarchical quorums) and follows peer 8."""
    groups = "group.1=1:2:3\ngroup.2=4:5:6\ngroup.3=7:8:9\nweight.9=0\n"
    net = Network(make_verifier(9, extra=groups), trace_messages=False)
    zxids = {9: 0x100000009, 8: 0x100000007}
    for sid in range(1, 10):
        net.start(sid, last_zxid=zxids.get(sid, 0x100000005), accepted_epoch=1, current_epoch=1)
    net.run_until_stable()
    assert_one_leader(net, 8)
    assert net.peers[8].accepted_epoch == 2
    finish(net, golden, "hierarchical_weight_zero")


def test_weighted_group_needs_the_heavy_peer(golden: Golden) -> None:
    """One group, weights 2/1/1: peers 2 and 3 hold 2 of 4 weight, not more than half, so they
    cannot elect; peer 1 joining makes a quorum (QuorumHierarchical.containsQuorum)."""
    net = Network(make_verifier(3, extra="group.1=1:2:3\nweight.1=2\n"))
    net.start(2)
    net.start(3)
    net.run_until(3000)
    assert net.leaders() == []
    assert all(p.state == ServerState.LOOKING for p in net.peers.values())
    net.start(1)
    net.run_until_stable()
    assert_one_leader(net, 3)
    finish(net, golden, "weighted_group")


def test_observers_present(golden: Golden) -> None:
    """Observers 4 and 5 (higher sids) look for the leader without voting and end OBSERVING
    (ZOOKEEPER-368 observers); voters answer them with their current vote."""
    net = Network(make_verifier(5, observers=(4, 5)))
    for sid in (1, 2, 3, 4, 5):
        net.start(sid)
    net.run_until_stable()
    assert_one_leader(net, 3)
    assert net.peers[4].state == ServerState.OBSERVING
    assert net.peers[5].state == ServerState.OBSERVING
    assert net.peers[3].status().learners == (1, 2, 4, 5)
    finish(net, golden, "observers_present")


def test_vote_order_epoch_then_zxid_then_sid(golden: Golden) -> None:
    """Peer 5 has the highest sid but an older epoch; 2 and 4 tie on (epoch, zxid) above the
    rest: the tie goes to the higher sid, 4 (FLE totalOrderPredicate; ZAB paper §IV-A)."""
    net = Network(make_verifier(5))
    disks = {1: (0x200000003, 2), 2: (0x200000005, 2), 3: (0x200000003, 2),
             4: (0x200000005, 2), 5: (0x100000009, 1)}
    for sid, (zxid, epoch) in disks.items():
        net.start(sid, last_zxid=zxid, accepted_epoch=epoch, current_epoch=epoch)
    net.run_until_stable()
    assert_one_leader(net, 4)
    assert net.peers[4].accepted_epoch == 3
    finish(net, golden, "vote_ties")


def test_stale_and_newer_rounds(golden: Golden) -> None:
    """A LOOKING peer drops a notification from an older round and answers it with its
    proposal; a newer round makes it adopt the round and clear its votes; a better vote
    during finalizeWait sends it back to collecting votes (FastLeaderElection.lookForLeader).
    The leader it settles on never listens: after 5 failed connects (Learner.connectToLeader)
    it is LOOKING again, in a new round."""
    net = Network(make_verifier(3))
    net.start(1, last_zxid=0x100000002, accepted_epoch=1, current_epoch=1)
    net.run_until(50)
    peer = net.peers[1]
    assert peer.election.logical_clock == 1
    net.inject(2, 1, Notification(ServerState.LOOKING, 2, 0x100000001, 0, 1))  # old round
    net.run_until(60)
    assert peer.election.logical_clock == 1 and 2 not in peer.election.recvset
    net.inject(2, 1, Notification(ServerState.LOOKING, 2, 0x100000001, 7, 1))  # newer, worse
    net.run_until(70)
    assert peer.election.logical_clock == 7
    assert peer.election.proposed_leader == 1 and set(peer.election.recvset) == {1, 2}
    net.inject(2, 1, Notification(ServerState.LOOKING, 1, 0x100000002, 7, 1))  # agrees: quorum
    net.run_until(150)
    assert peer.election.finalize_deadline_ms is not None
    net.inject(3, 1, Notification(ServerState.LOOKING, 3, 0x100000002, 7, 1))  # better: 3
    net.run_until(160)
    # It adopted 3; its own new vote (looped back) and 3's make a quorum for 3 at once, so a
    # new finalizeWait runs, restarted by every notification that is not better.
    assert peer.election.proposed_leader == 3
    assert peer.election.finalize_deadline_ms == 151 + 200
    net.inject(2, 1, Notification(ServerState.LOOKING, 1, 0x100000002, 7, 1))  # worse: dropped
    net.run_until(200)
    assert peer.election.finalize_deadline_ms == 161 + 200
    assert peer.election.recvset[2].id == 1  # discarded during finalize, never recorded
    net.run_until(500)
    assert peer.state == ServerState.FOLLOWING and peer.leader_sid == 3
    net.run_until(15_000)  # the leader never listens: connect retries fail, back to LOOKING
    assert peer.state == ServerState.LOOKING and peer.looking_count == 2
    finish(net, golden, "stale_rounds")
