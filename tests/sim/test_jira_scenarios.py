"""Known ZooKeeper failures, scripted on the simulated ensemble against zkfast's real cores.

Each test names the Apache JIRA it replays, says in its docstring what broke there, and drives
the fault order that triggered it (crashes, partitions, slow fsyncs, stalls, client ops) on an
``scenarios_sim.Ensemble``. The ensemble's ``ZabChecker`` runs after every step (one leader per
epoch, durable epochs never go back, one txn per zxid, equal digests at equal zxids, apply and
commit only on a durable voter quorum, acks and NEWLEADER acks only after the own fsync, no
TRUNC below a commit), so each scenario asserts those at every step as well as the property the
bug broke; most end with ``converge()`` (every peer in BROADCAST at one zxid with one digest,
every acknowledged write present). JIRAs with no meaningful analogue in zkfast are listed with
the reason in docs/simulator.md ("Scripted JIRA scenarios and mutations").
"""

from __future__ import annotations

import pytest

from zkfast.storage.recovery import RecoveryError, recover
from zkfast.testing.cluster import DATA
from zkfast.testing.scenarios_sim import Ensemble

# ---------------------------------------------------------------------------- helpers


def _others(ens: Ensemble, sid: int) -> list[int]:
    return [s for s in sorted(ens.nodes) if s != sid]


def _epoch(ens: Ensemble, sid: int) -> int:
    return int(ens.peer(sid).current_epoch)


# ---------------------------------------------------------------------------- election


def test_zookeeper_1732_a_restarted_server_joins_the_established_ensemble() -> None:
    """ZOOKEEPER-1732: the established peers answered a joining server with votes whose
    peerEpoch was the epoch at election time, not the epoch their leader then established, so
    the joiner's check of the leader failed and it could never join. Here: the leader changes
    twice (epochs move past the election-time epoch), then each server restarts and must be
    following the established leader, in its epoch, within a few seconds."""
    ens = Ensemble(1732, n=5)
    ens.start()
    ld = ens.wait_leader()
    cl = ens.client(ld)
    ens.writes(cl, "/a", 3)
    for _ in range(2):
        old = ld
        ens.crash(old)
        ld = ens.wait_leader()
        ens.restart(old)
        ens.wait_broadcast(old)
    epoch = _epoch(ens, ld)
    assert epoch >= 3
    for sid in _others(ens, ld):
        if ens.nodes[sid].alive:
            ens.crash(sid)
        ens.restart(sid)
        took = ens.run_until(lambda s=sid: ens.broadcasting(s), 6_000,  # type: ignore[misc]
                             f"p{sid} rejoins")
        assert ens.peer(sid).leader_sid == ld and _epoch(ens, sid) == epoch, took
    assert ens.leader() == ld and _epoch(ens, ld) == epoch  # nobody forced a new election
    ens.converge()


def test_zookeeper_975_a_restarted_peer_never_leads_an_online_ensemble() -> None:
    """ZOOKEEPER-975: a peer (re)joining an ensemble that was up and serving went LEADING on
    its own (stale notifications of LOOKING peers made it elect itself) instead of following.
    Here: the highest sid, with every committed txn (so a fresh election would pick it),
    restarts while the others serve; it must follow, never lead, and no new epoch starts."""
    ens = Ensemble(975, n=5)
    ens.start()
    ld = ens.wait_leader()
    assert ld == 5  # equal zxids: the highest sid wins the first election
    ens.crash(5)
    ld = ens.wait_leader()
    cl = ens.client(ld)
    ens.writes(cl, "/a", 2)
    epoch = _epoch(ens, ld)
    for i in range(3):
        since = ens.now
        ens.restart(5)
        ens.wait_broadcast(5, limit_ms=6_000)
        assert not any(r.startswith("LEADING") for r in ens.roles_of(5, since)), \
            ens.roles_of(5, since)
        assert ens.peer(5).leader_sid == ld and _epoch(ens, 5) == epoch
        ens.crash(5)
        ens.run(50 * i)
    assert ens.leader() == ld and _epoch(ens, ld) == epoch
    ens.converge()


def test_zookeeper_764_an_observer_never_leads() -> None:
    """ZOOKEEPER-764: an observer was elected leader because one peer's view of who votes
    differed from another's. Here: 3 voters and 2 observers with the highest sids (they win
    every tie on sid); voters crash and return in several orders. No observer ever enters
    LEADING, and with fewer than two voters up nothing is established (an observer never
    completes a quorum)."""
    ens = Ensemble(764, n=5, observers=2)
    ens.start()
    ens.wait_leader()
    cl = ens.client(4)
    ens.writes(cl, "/o", 2)
    for down in ([1, 2], [3, 2], [1, 3], [3]):
        ens.crash(*[s for s in down if ens.nodes[s].alive])
        before = dict(ens.checker.epoch_leader)
        ens.run(12_000)
        if len(down) >= 2:
            assert ens.leader() is None
            assert ens.checker.epoch_leader == before  # one voter plus observers: no quorum
        ens.restart(*[s for s in down if not ens.nodes[s].alive])
        ens.wait_leader()
    for sid in (4, 5):
        assert not any(r.startswith("LEADING") for r in ens.roles_of(sid)), ens.roles_of(sid)
    assert set(ens.checker.epoch_leader.values()) <= {1, 2, 3}
    ens.converge()


def test_zookeeper_569_the_elected_leader_dies_at_once() -> None:
    """ZOOKEEPER-569: when the elected leader failed right after the election, the other
    peers kept voting for it and the election never ended. Here: the elected leader crashes
    the moment it is LEADING (DISCOVERY), twice in a row; the rest must elect another leader
    and serve within initLimit plus an election."""
    ens = Ensemble(569, n=7)
    ens.start()
    ld = ens.wait_leader()
    cl = ens.client(ld)
    ens.writes(cl, "/a", 2)
    ens.crash(ld)
    for _ in range(2):
        ens.run_until(lambda: any(ens.state(s) == "LEADING/DISCOVERY" for s in ens.nodes),
                      10_000, "a peer decides to lead")
        victim = next(s for s in sorted(ens.nodes) if ens.state(s) == "LEADING/DISCOVERY")
        ens.crash(victim)
    took = ens.run_until(lambda: ens.leader() is not None,
                         ens.init_limit * ens.tick_ms + 5_000, "a serving leader")
    assert ens.leader() is not None, took
    ens.converge()


def test_zookeeper_2164_restarted_members_rejoin() -> None:
    """ZOOKEEPER-2164: quorum members restarted one at a time could not rejoin (the election
    connection back to them was never made). Here: every member, the leader last, restarts
    in turn; each must be back in BROADCAST within a few seconds, and the ensemble serves
    writes between the restarts."""
    ens = Ensemble(2164, n=5)
    ens.start()
    ld = ens.wait_leader()
    order = [*_others(ens, ld), ld]
    for i, sid in enumerate(order):
        ens.crash(sid)
        ens.run(500)
        ens.restart(sid)
        ens.wait_broadcast(sid, limit_ms=12_000)
        ld = ens.wait_leader()
        ens.write(ens.client(ld), f"/r{i}", b"x")
    ens.converge()


def test_zookeeper_2930_a_silent_peer_does_not_block_the_election() -> None:
    """ZOOKEEPER-2930: a connect to an unreachable member blocked the election sender, so the
    others could not elect while it timed out. zkfast's cores never wait on a link (the
    runtime dials asynchronously); here two members become silent black holes (their quorum
    bytes vanish without a reset, their notifications are lost), the leader crashes, and the
    remaining four of seven must elect and serve within initLimit."""
    ens = Ensemble(2930, n=7)
    ens.start()
    ld = ens.wait_leader()
    silent = [s for s in _others(ens, ld)][:2]
    net = ens.cluster.net
    live = [s for s in sorted(ens.nodes) if s not in silent]
    for s in silent:
        for o in live:
            net.black_hole(s, o)
            net.black_hole(o, s)
    net.cut_one_way(silent, live)
    net.cut_one_way(live, silent)
    ens.crash(ld)
    took = ens.run_until(lambda: ens.leader() is not None, ens.init_limit * ens.tick_ms,
                         "a leader among the reachable four")
    new = ens.leader()
    assert new is not None and new not in silent, took
    ens.write(ens.client(new), "/after", b"x")
    for s in silent:  # they never saw the new epoch: a restart lets them dial again
        ens.crash(s)
    ens.converge()


# ---------------------------------------------------------------------------- sync


def test_zookeeper_3911_diff_txns_are_durable_before_the_newleader_ack() -> None:
    """ZOOKEEPER-3911: followers acked NEWLEADER before the txns of their DIFF were on disk;
    the leader started serving those txns (committed by that NEWLEADER quorum), the quorum
    crashed, and the txns were gone after recovery. Here: the leader logs a txn W that no
    follower gets, the followers crash, come back with slow disks and sync W by DIFF from the
    same leader, which serves W in BROADCAST; at that moment every peer crashes. The two
    followers alone must recover an ensemble that has W."""
    ens = Ensemble(3911, n=3)
    ens.start()
    ld = ens.wait_leader()
    a, b = _others(ens, ld)
    cl = ens.client(ld)
    ens.writes(cl, "/c", 2)
    ens.partition([ld], [a, b])
    cl.create("/w", b"w")  # logged by the leader alone: not committed
    ens.run_until(lambda: ens.nodes[ld].durable_zxid == ens.nodes[ld].last_appended
                  and ens.nodes[ld].last_appended > max(z for _, z in ens.acked.values()),
                  2_000, "W durable on the leader")
    ens.crash(a, b)
    ens.heal()
    ens.run_until(lambda: ens.state(ld).startswith("LOOKING"), 10_000, "the leader steps down")
    for s in (a, b):
        ens.fsync_ms(s, 400)
        ens.restart(s)
    ens.run_until(lambda: ens.state(ld) == "LEADING/BROADCAST", 20_000, "the leader serves W")
    assert ens.data(ld, "/w") == b"w"
    assert ens.traced("sync_plan", kind="DIFF")
    ens.crash(ld, a, b)
    ens.restart(a, b)
    new = ens.wait_leader()
    assert ens.data(new, "/w") == b"w", "a txn served by a NEWLEADER quorum was lost"
    ens.converge()


def test_zookeeper_1319_a_late_learner_misses_nothing_across_a_restart_and_growth() -> None:
    """ZOOKEEPER-1319: after every server restarted, the new leader did not move its last
    proposed zxid to the new epoch before NEWLEADER, so a learner joining later (the cluster
    was being expanded) was forwarded from the wrong point and missed txns. Here: two of
    three servers run, write, all of them restart, then the third (an empty data directory,
    as a new member) joins while writes keep arriving; it must end with every txn."""
    ens = Ensemble(1319, n=3)
    ens.start(1, 2)
    ld = ens.wait_leader()
    ens.writes(ens.client(ld), "/a", 4)
    ens.crash(1, 2)
    ens.restart(1, 2)
    ld = ens.wait_leader()
    cl = ens.client(ld)
    ens.writes(cl, "/b", 3)
    ens.background_writes(cl, "/c", 40, 7)
    ens.run(30)
    ens.start(3)
    ens.wait_broadcast(3)
    ens.run(400)
    assert len(ens.acked) >= 40
    ens.converge()


def test_zookeeper_962_882_a_diff_synced_learner_recovers_what_it_was_sent() -> None:
    """ZOOKEEPER-962 (with ZOOKEEPER-882): a follower that received a DIFF applied the txns
    without logging them in order with its snapshot, and recovery replayed the txn at the
    snapshot's zxid again (882), so a restart after a DIFF left a tree that differed from the
    leader's at the same zxid. Here: a learner syncs by DIFF while writes go on, crashes as
    soon as it serves, and restarts; its recovered tree must have the leader's digest at that
    zxid (checked by ZabChecker) and every acknowledged write; then it leads."""
    ens = Ensemble(962, n=3)
    ens.start()
    ld = ens.wait_leader()
    late = _others(ens, ld)[0]
    cl = ens.client(ld)
    ens.writes(cl, "/p", 2)
    ens.crash(late)
    ens.writes(cl, "/d", 6)
    since = ens.now
    ens.restart(late)
    ens.background_writes(cl, "/e", 10, 3)
    ens.wait_broadcast(late)
    assert ens.traced("sync_plan", since, sid=late, kind="DIFF")
    ens.run(20)
    ens.crash(late)
    ens.restart(late)
    rec = ens.nodes[late].recovered
    assert rec is not None and rec.last_zxid >= max(z for p, (_, z) in ens.acked.items()
                                                    if p.startswith("/d"))
    ens.wait_broadcast(late)
    ens.crash(ld)  # the learner now carries the data into the next epoch
    ens.wait_leader()
    ens.converge()


def test_zookeeper_2033_a_follower_restarts_right_after_a_new_epoch() -> None:
    """ZOOKEEPER-2033: a follower restarted just after a new epoch began (no txn in it yet)
    could not start again: the leader's sync decision for a learner exactly at the leader's
    last zxid was not an empty DIFF. Here: the leader changes (epoch 2, no txns), a follower
    restarts at once, with a slow disk so it dies again between its log and epoch writes;
    it must restart, get an empty DIFF, and serve."""
    ens = Ensemble(2033, n=3)
    ens.start()
    ld = ens.wait_leader()
    ens.writes(ens.client(ld), "/a", 3)
    ens.crash(ld)
    ld2 = ens.wait_leader()
    f = next(s for s in _others(ens, ld2) if ens.nodes[s].alive)
    last = ens.tree_zxid(f)
    ens.crash(f)
    ens.fsync_ms(f, 150)
    since = ens.now
    ens.restart(f)
    ens.run_until(lambda: ens.state(f) == "FOLLOWING/SYNCHRONIZATION", 5_000, "syncing")
    ens.run(40)
    ens.crash(f)  # between the sync and the currentEpoch write
    ens.restart(f)
    ens.wait_broadcast(f, limit_ms=10_000)
    plans = ens.traced("sync_plan", since, sid=f)
    assert plans and all(p["kind"] == "DIFF" and p["peer_last"] == last for p in plans), plans
    ens.converge()


def test_zookeeper_1427_epoch_files_survive_crashes_mid_write() -> None:
    """ZOOKEEPER-1427: acceptedEpoch/currentEpoch were rewritten in place, and a crash mid-
    write left an empty or partial file the server refused at start. zkfast writes a fsync'd
    temporary file and renames it (the simulator keeps either name on a crash before the
    directory fsync). Here: with slow epoch fsyncs, servers crash at many points of their
    epoch writes while leaders change; every restart must succeed, durable epochs never go
    back (ZabChecker), and the ensemble converges."""
    ens = Ensemble(1427, n=3)
    ens.start()
    ens.wait_leader()
    for s in ens.nodes:
        ens.fsync_ms(s, 60, 140)
    for i, delay in enumerate((5, 30, 70, 120, 180, 260, 15, 90)):
        ld = ens.leader() or ens.wait_leader(limit_ms=60_000)
        victim = _others(ens, ld)[i % 2]
        ens.crash(ld)
        ens.run(delay)
        ens.crash(victim)
        ens.restart(victim)
        ens.run(delay)
        ens.restart(ld)
        ens.wait_leader(limit_ms=60_000)
    assert ens.world.faults.get("rename_lost", 0) > 0
    ens.converge()


def test_zookeeper_1069_a_crash_right_after_a_log_file_is_created() -> None:
    """ZOOKEEPER-1069: a server stopped right after it created a txn log wrote the padding
    before the file header, and the log could not be read at the next start. Here: a
    follower's disk keeps a torn part of unsynced writes on a crash; it crashes while the
    first writes of new log files are unsynced, several times; each restart must recover
    (torn tails cut) and rejoin, and the ensemble converges."""
    ens = Ensemble(1069, n=3)
    ens.start()
    ld = ens.wait_leader()
    f = _others(ens, ld)[0]
    cl = ens.client(ld)
    for i in range(4):
        ens.nodes[f].disk.faults.torn = 1.0
        ens.nodes[f].disk.faults.fsync_min_ms = ens.nodes[f].disk.faults.fsync_max_ms = 80
        cl.create(f"/t{i}", b"t" * 200)
        ens.run_until(lambda: ens.nodes[f].last_appended > ens.nodes[f].durable_zxid, 2_000,
                      "an unsynced append on the follower")
        ens.crash(f)
        ens.restart(f)
        ens.wait_broadcast(f)
        ens.run(200)
    assert ens.world.faults.get("torn_write", 0) > 0
    ens.converge()


def test_zookeeper_1156_a_trunc_keeps_the_txn_at_its_zxid() -> None:
    """ZOOKEEPER-1156 (with 1154): the learner's log truncation computed the cut position
    wrong and removed the txn at the TRUNC zxid too (a committed txn), and a leader elected
    without the highest-zxid peer did not TRUNC that peer's extra txns. Here: the leader logs
    two txns nobody else gets and is cut off; the others elect a leader that has every
    committed txn; the old leader returns, must be sent TRUNC to the last committed zxid,
    land exactly there (ZabChecker: no reload above it; the scenario: not below), and keep
    every acknowledged write."""
    ens = Ensemble(1156, n=3)
    ens.start()
    ld = ens.wait_leader()
    cl = ens.client(ld)
    ens.writes(cl, "/c", 3)
    committed = ens.tree_zxid(ld)
    ens.partition([ld], _others(ens, ld))
    cl.create("/x1", b"x")
    cl.create("/x2", b"x")
    ens.run(50)
    assert ens.nodes[ld].last_appended == committed + 2
    ens.crash(ld)
    ens.heal()
    ens.wait_leader()
    since = ens.now
    ens.restart(ld)
    ens.wait_broadcast(ld)
    plans = ens.traced("sync_plan", since, sid=ld)
    assert [p["kind"] for p in plans] == ["TRUNC"] and plans[0]["zxid"] == committed, plans
    landed = ens.traced("truncated", since)
    assert [t["landed"] for t in landed] == [committed], landed
    assert ens.data(ld, "/x1") is None and ens.data(ld, "/c2") == b"/c2"
    ens.converge()


def test_zookeeper_1489_appends_after_a_trunc_survive_a_restart() -> None:
    """ZOOKEEPER-1489: after a TRUNC the learner kept appending through the log it had open
    before the cut, at the old position, and the txns it logged after the truncation were
    unreadable at the next start (data loss). Here: a learner is truncated, logs and acks
    more txns, and crashes; its recovery must hold every txn it acked after the cut, and it
    must then be able to carry them as a leader."""
    ens = Ensemble(1489, n=3)
    ens.start()
    ld = ens.wait_leader()
    cl = ens.client(ld)
    ens.writes(cl, "/c", 2)
    ens.partition([ld], _others(ens, ld))
    cl.create("/x", b"x")
    ens.run(50)
    old = ld
    ens.crash(old)
    ens.heal()
    ld = ens.wait_leader()
    since = ens.now
    ens.restart(old)
    ens.wait_broadcast(old)
    assert ens.traced("truncated", since)
    cl = ens.client(ld)
    ens.writes(cl, "/after", 5)
    ens.run_until(lambda: ens.nodes[old].durable_zxid >= ens.tree_zxid(ld), 2_000,
                  "the truncated learner has the new txns durable")
    ens.crash(old)
    ens.restart(old)
    rec = ens.nodes[old].recovered
    assert rec is not None and rec.last_zxid == ens.tree_zxid(ld)
    ens.wait_broadcast(old)
    others = _others(ens, old)
    ens.crash(*[s for s in others if s != ld][:1])
    ens.crash(ld)
    ens.restart(*others)
    ens.converge()


def test_zookeeper_2325_3644_logs_without_their_snapshot() -> None:
    """ZOOKEEPER-2325: a server whose snapshots were all missing (or empty) started with an
    empty tree and zxid 0 although its logs held txns, and then served or synced that empty
    tree. ZOOKEEPER-3644: with snapshot.trust.empty set, recovery without a snapshot did not
    replay the logs either. Here: a learner synced by SNAP (its log starts above the
    snapshot) loses its snapshot files: the start must be refused, not come up empty, also
    when trusting an empty snapshot (the logs have a hole below them). A peer whose logs
    reach back to zxid 0 and that loses its snapshot.0 is refused by default, and with
    trust_empty_snapshot replays every log to the tree it had (the live digest)."""
    ens = Ensemble(2325, n=3, force_snap=True)
    ens.start()
    ld = ens.wait_leader()
    cl = ens.client(ld)
    ens.writes(cl, "/a", 3)
    late = _others(ens, ld)[0]
    ens.crash(late)
    ens.writes(cl, "/b", 3)
    since = ens.now
    ens.restart(late)
    ens.wait_broadcast(late)
    assert ens.traced("sync_plan", since, sid=late, kind="SNAP")
    ens.writes(cl, "/c", 3)
    ens.run_until(lambda: ens.nodes[late].durable_zxid == ens.tree_zxid(ld), 2_000,
                  "the learner logged the txns after its snapshot")
    ens.crash(late)
    disk = ens.nodes[late].disk
    snaps = {n: disk.get(DATA, n) for n in disk.list(DATA) if n.startswith("snapshot.")}
    assert snaps and any(n.startswith("log.") for n in disk.list(DATA))
    for n in sorted(snaps):
        disk.remove(DATA, n)
    with pytest.raises(RecoveryError):
        ens.nodes[late].start()
    with pytest.raises(RecoveryError):
        recover(disk, DATA, DATA, trust_empty_snapshot=True)
    for n, data in sorted(snaps.items()):
        disk.put(DATA, n, data)
    ens.restart(late)
    ens.wait_broadcast(late)
    # The leader never synced from anyone: snapshot.0 and every log from zxid 1.
    last = ens.tree_zxid(ld)
    ens.crash(ld)
    disk = ens.nodes[ld].disk
    assert "snapshot.0" in disk.list(DATA)
    zero = disk.get(DATA, "snapshot.0")
    disk.remove(DATA, "snapshot.0")
    with pytest.raises(RecoveryError):
        recover(disk, DATA, DATA)
    rec = recover(disk, DATA, DATA, trust_empty_snapshot=True)
    assert rec.last_zxid == last and rec.tree.digest() == ens.checker.digests[last]
    disk.put(DATA, "snapshot.0", zero)
    ens.converge()


def test_zookeeper_2872_an_interrupted_snap_sync_loses_nothing() -> None:
    """ZOOKEEPER-2872: a learner that got a SNAP wrote the snapshot without fsync and went on
    logging the txns after it; a crash then left txn logs above a snapshot that was not on
    disk (a hole), and the learner came back without data it had acked. Here: a learner on
    a slow disk is crashed while its SNAP snapshot is being written, then again right after
    the snapshot is durable while the txns after it are not; each restart must come back
    consistent (digests, no hole, epochs) and the ensemble must converge with every write."""
    ens = Ensemble(2872, n=3, force_snap=True)
    ens.start()
    ld = ens.wait_leader()
    cl = ens.client(ld)
    ens.writes(cl, "/a", 4)
    late = _others(ens, ld)[0]
    ens.crash(late)
    ens.writes(cl, "/b", 4)
    for phase in ("snapshot", "after"):
        ens.fsync_ms(late, 300)
        ens.restart(late)
        ens.background_writes(cl, f"/{phase}", 10, 20)
        peer = ens.peer(late)
        ens.run_until(lambda p=peer: p._snap_wait is not None, 10_000,  # type: ignore[misc]
                      "the SNAP stream loaded")
        if phase == "after":
            ens.run_until(lambda p=peer: p._snap_wait is None, 2_000,  # type: ignore[misc]
                          "the SNAP snapshot durable")
        ens.crash(late)
        ens.fsync_ms(late, 1, 3)
        ens.restart(late)
        ens.wait_broadcast(late, limit_ms=15_000)
        ens.run(300)
        ens.crash(late)
    ens.converge()


# ---------------------------------------------------------------------------- clients


def test_zookeeper_1863_a_follower_answers_a_session_in_request_order() -> None:
    """ZOOKEEPER-1863: a race in the commit processor let a request complete before an
    earlier one of the same session, and the client saw an xid mismatch. zkfast has no
    processor threads, but a follower answers reads itself and writes only when the leader
    commits them, so the same order matters: a session pipelining writes, reads and syncs
    through a follower must get every reply in request order, and each read must see the
    session's own earlier write."""
    ens = Ensemble(1863, n=3, delay_max_ms=8)
    ens.start()
    ld = ens.wait_leader()
    f = _others(ens, ld)[0]
    cl = ens.client(f)
    ens.write(cl, "/k", b"0")
    sent: list[int] = []
    expect: dict[int, bytes] = {}
    for i in range(1, 25):
        sent.append(cl.set("/k", b"%d" % i))
        g = cl.get("/k")
        sent.append(g)
        expect[g] = b"%d" % i
        if i % 4 == 0:
            sent.append(cl.sync("/k"))
        sent.append(cl.create(f"/n{i}", b"v"))
    ens.run_until(lambda: not cl.pending, 10_000, "every reply")
    got = [r.xid for r in cl.replies if r.xid in set(sent)]
    assert got == sent, "replies out of request order"
    for xid, value in expect.items():
        r = cl.reply(xid)
        assert r is not None and r.err == 0 and r.data == value, (xid, r, value)
    ens.converge()


def test_zookeeper_4537_a_lone_client_is_never_left_waiting() -> None:
    """ZOOKEEPER-4537: the log-sync thread read "a commit is waiting" outside its lock and
    the commit thread changed it, so a lone client's request could wait until a timeout or
    another client's request woke the server. In zkfast the analogue is a durability report
    or an ack arriving before the proposal is counted (the leader acks its own proposal
    from TxnsDurable that may already cover it). Here: a single client, one write at a time,
    nothing else running, with the leader's or a follower's disk slow or fast, and one
    follower down: every write must complete within the slowest fsync plus a few ms."""
    for case, (slow, down) in enumerate(((None, False), ("leader", False),
                                         ("follower", False), ("leader", True),
                                         ("follower", True))):
        ens = Ensemble(4537 + case, n=3)
        ens.start()
        ld = ens.wait_leader()
        f, g = _others(ens, ld)
        if down:
            ens.crash(g)
            ens.run(4_500)
            ld = ens.wait_leader()
        if slow is not None:
            ens.fsync_ms(ld if slow == "leader" else f, 150)
        for target in (ld, f):
            cl = ens.client(target)
            for i in range(5):
                start = ens.now
                ens.write(cl, f"/{target}_{i}", b"v", limit_ms=400)
                assert ens.now - start <= 150 + 60, (case, target, ens.now - start)
        ens.converge()


def test_zookeeper_108_sync_orders_a_read_after_every_earlier_write() -> None:
    """ZOOKEEPER-108: sync was reordered with writes on the way through the quorum, so a read
    after sync on a follower could miss a write that had completed before the sync. Here: a
    follower lags (its link from the leader is stalled); another client's write completes
    through the rest of the quorum; a session on the lagging follower sends sync and getData
    at once and must read that write. Then the same with the write still outstanding at the
    leader when the sync arrives (the sync waits for its commit)."""
    ens = Ensemble(108, n=3)
    ens.start()
    ld = ens.wait_leader()
    f, g = _others(ens, ld)
    reader = ens.client(f)
    writer = ens.client(ld)
    ens.write(writer, "/x", b"old")
    ens.run(50)
    ens.cluster.net.stall(ld, f, ens.now + 400)
    ens.write(writer, "/x", b"new", create=False)
    assert ens.data(f, "/x") == b"old"  # the follower has not applied it yet
    reader.sync("/x")
    get = reader.get("/x")
    ens.run_until(lambda: reader.reply(get) is not None, 3_000, "the read after sync")
    r = reader.reply(get)
    assert r is not None and r.data == b"new", r
    # The write still outstanding at the leader when the sync arrives.
    ens.fsync_ms(ld, 200)
    ens.fsync_ms(g, 200)
    ens.fsync_ms(f, 200)
    writer.set("/x", b"newer")
    tracker = ens.peer(ld)._leader.tracker
    ens.run_until(lambda: bool(tracker.outstanding), 1_000, "the write proposed")
    reader.sync("/x")
    get = reader.get("/x")
    ens.run_until(lambda: reader.reply(get) is not None, 3_000, "the read after sync")
    r = reader.reply(get)
    assert r is not None and r.data == b"newer", r
    ens.converge()


# ---------------------------------------------------------------------------- liveness


def test_zookeeper_1697_a_slow_sync_does_not_cost_the_leader_its_quorum() -> None:
    """ZOOKEEPER-1697: a learner still receiving a large snapshot had sent no ack yet, so the
    leader's "synced" check (last ack within syncLimit) did not count it, and when it was
    needed for the quorum the leader gave up, again and again. A new learner gets
    initLimit + syncLimit. Here: of five, two are down; a third returns and its sync takes
    longer than syncLimit (its link from the leader is stalled); meanwhile a follower dies,
    so the returning learner is needed for the quorum. The leader must keep leading in its
    epoch, and the learner must join it."""
    ens = Ensemble(1697, n=5, force_snap=True)
    ens.start()
    ld = ens.wait_leader()
    cl = ens.client(ld)
    ens.writes(cl, "/a", 3)
    a, b, c, d = _others(ens, ld)
    ens.crash(c, d)
    ens.writes(cl, "/b", 3)
    epoch = _epoch(ens, ld)
    since = ens.now
    ens.restart(c)
    ens.run_until(lambda: ens.state(c) == "FOLLOWING/DISCOVERY", 5_000, "c follows")
    sync_limit_ms = ens.cluster.config_for(c).quorum.sync_limit_ticks * ens.tick_ms  # type: ignore[union-attr]
    ens.cluster.net.stall(ld, c, ens.now + sync_limit_ms + 2_000)
    ens.crash(b)
    took = ens.run_until(lambda: ens.broadcasting(c), ens.init_limit * ens.tick_ms, "c synced")
    assert took > sync_limit_ms  # its sync did outlast syncLimit
    assert ens.leader() == ld and _epoch(ens, ld) == epoch
    assert ens.roles_of(ld, since) == [], ens.roles_of(ld, since)  # never stepped down
    ens.write(cl, "/after", b"x")
    ens.converge()


def test_zookeeper_87_a_follower_that_falls_behind_is_dropped(
        caplog: pytest.LogCaptureFixture) -> None:
    """ZOOKEEPER-87: a follower that could not keep up (it answered pings but did not ack
    proposals) stayed connected and counted as synced, ever further behind. The leader closes
    a learner whose oldest unacked proposal is syncLimit old. Here: a follower's log fsyncs
    take 9 s; while a client writes, the leader must drop it within syncLimit plus a tick,
    keep committing with the other follower, and take it back once its disk recovers."""
    ens = Ensemble(87, n=3)
    ens.start()
    ld = ens.wait_leader()
    f, g = _others(ens, ld)
    cl = ens.client(ld)
    ens.writes(cl, "/a", 2)
    ens.fsync_ms(f, 9_000)
    since = ens.now
    ens.background_writes(cl, "/w", 60, 100)
    took = ens.run_until(lambda: not ens.broadcasting(f), 2 * 2 * ens.tick_ms,
                         "the leader drops the lagging follower")
    assert took <= 2 * ens.tick_ms + ens.tick_ms, took
    assert "transaction timeout" in caplog.text
    assert ens.leader() == ld
    before = len(ens.acked)
    ens.run(2_000)
    assert len(ens.acked) > before  # the leader and g keep committing
    assert ens.now - since < 9_000
    ens.converge()
