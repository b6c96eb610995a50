"""Seeded simulations of leader election (STYLE §7 `sim/`): real QuorumPeerCores behind the
real Driver on a seeded network with delay, drop, duplication, reordering, partitions, crashes
and slow epoch fsyncs. Checked after every step: one established leader per epoch, epochs never
go backwards (across restarts too); after healing, a leader followed by a quorum within a bound.

``ZKFAST_SIM_SEED=N pytest tests/sim`` replays one seed; ``-m slow`` runs many more."""

from __future__ import annotations

import os

import pytest

from zkfast.testing import vopr
from zkfast.testing.checkers import PeerChecker
from zkfast.testing.cluster import PeerCluster
from zkfast.testing.sim_env import DiskFaults, World

ENV_SEED = os.environ.get("ZKFAST_SIM_SEED")
#: Under the first simulator (commit bbc7348), 91 and 115 tripped the core's "acceptedEpoch
#: went backwards" assert because epoch writes completed out of order (the runtime runs them
#: one at a time), and 895 tripped it for real (a slow acceptedEpoch write outlived the role
#: that asked for it; scripted below). Later simulator changes draw other runs from them.
FIXED = [int(ENV_SEED)] if ENV_SEED else [*range(24), 91, 115, 895]
SLOW = [] if ENV_SEED else list(range(24, 1000))


def _check(res: vopr.RunResult) -> None:
    assert res.ok, (f"seed {res.seed}: {res.error}\n{res.summary}\n{res.trace}\n"
                    f"replay: python -m zkfast.testing.vopr --seed {res.seed} --mode election")


@pytest.mark.parametrize("seed", FIXED)
def test_election_seed(seed: int) -> None:
    _check(vopr.run_election(seed))


@pytest.mark.slow
@pytest.mark.parametrize("seed", SLOW)
def test_election_seed_slow(seed: int) -> None:
    _check(vopr.run_election(seed))


@pytest.mark.parametrize("peers", [3, 5])
def test_same_seed_same_run(peers: int) -> None:
    a = vopr.run_election(5, peers=peers)
    b = vopr.run_election(5, peers=peers)
    assert a.ok and b.ok
    assert (a.digest, a.stats) == (b.digest, b.stats)


def test_calm_cluster_elects_the_highest_zxid_and_agrees() -> None:
    world = World(1)
    c = PeerCluster(world, 5, last_zxids={1: 0x100000001, 2: 0x200000003, 3: 0x200000002,
                                          4: 0, 5: 0x100000009})
    checker = PeerChecker(c)
    c.start_all()
    world.run_until(20_000)
    assert checker.settled() == 2
    checker.check_agreement()
    assert checker.epoch_leader == {3: 2}
    assert all(n.core is not None and n.core.accepted_epoch == 3 for n in c.live())


def test_epochs_survive_a_crash_through_the_disk() -> None:
    world = World(2)
    c = PeerCluster(world, 3, disk_faults=DiskFaults(slow=1.0, fsync_slow_ms=300))
    checker = PeerChecker(c)
    c.start_all()
    world.run_until(20_000)
    leader = checker.settled()
    assert leader is not None
    epoch = c.nodes[leader].core.current_epoch  # type: ignore[union-attr]
    for sid in sorted(c.nodes):
        c.nodes[sid].crash()
    for sid in sorted(c.nodes):
        c.nodes[sid].start()
        assert c.nodes[sid].core.accepted_epoch == epoch  # type: ignore[union-attr]
    world.run_until(60_000)
    assert checker.settled() is not None
    assert max(checker.epoch_leader) == epoch + 1


def test_a_slow_epoch_write_across_a_role_change_never_goes_back() -> None:
    """Seed 895's story, scripted: p2 and p3 follow p1 and ask for acceptedEpoch=3 on a slow
    disk; p1 is cut off before the write returns, p2 leads p3. Epochs must be decided against
    the epoch already asked for, not the last durable one, or p2 proposes 2 and its disk goes
    3 -> 2 (the core asserts "acceptedEpoch went backwards")."""
    world = World(895)
    c = PeerCluster(world, 3, last_zxids={1: 0x200000002, 2: 0x100000004, 3: 0x100000003})
    for sid in (2, 3):
        c.nodes[sid].disk.faults = DiskFaults(fsync_min_ms=500, fsync_max_ms=500)
    checker = PeerChecker(c)
    c.start_all()
    world.run_until(400)
    assert c.nodes[1].role is not None and c.nodes[1].role.state == "LEADING"
    assert c.nodes[2].disk.list("/data/version-2")  # its acceptedEpoch write is in flight
    c.partition([[2, 3], [1]])
    world.run_until(5_000)
    assert checker.epoch_leader == {4: 2}  # p1 never got its epoch 3 acked
    for sid in (2, 3):
        core = c.nodes[sid].core
        assert core is not None and core.accepted_epoch == 4
    c.heal()
    world.run_until(60_000)
    assert checker.settled() == 2
    checker.check_agreement()
