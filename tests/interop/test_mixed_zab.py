"""zkfast and Apache ZooKeeper 3.8 replicate together (issue 5).

Mixed ensembles of three voters and an observer, in both directions:

* a zkfast leader with Apache followers and an Apache observer;
* an Apache leader with zkfast followers and a zkfast observer.

Who leads is forced by the election's total order, the highest (currentEpoch, last zxid, sid):
the intended leader (sid 3) starts from a dataDir holding a short txn history written by a
standalone server of its own kind, the others start empty, and it starts first (two peers of
the quicker-starting kind would otherwise elect each other before it is up). The learners sync from it (the path is whatever the leader picks for a learner with no
history), then the same kazoo workload as tests/runtime/test_zab_ensemble.py runs through every
server. The leader is then SIGKILLed: the voters of the other kind elect one of theirs, take
writes, and the old leader rejoins as their follower. Every server ends with the same tree and
the same digest at an equal zxid (Apache's digest log, `hash`).

Each sync path is also forced across kinds (a learner of one kind, the leader of the other):
DIFF and SNAP for a follower that missed writes, TRUNC for an old leader holding a proposal
nobody else got.

The rolling replacement starts from an all-Apache ensemble under a steady write load and
replaces each server in turn (voters and the observer) by zkfast on its own dataDir, ports and
myid; it ends all-zkfast holding every acknowledged write.

Each test also runs with Apache in every role (`all-apache`, marked slow): the reference for
what the assertions expect. Every process is stopped through its own handle; every wait polls.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from zkfast.testing.ensemble_checks import (
    AckedWriter,
    Clients,
    assert_same_digests,
    assert_same_trees,
    check_acked,
    equal_zxids,
    logged_zxids,
    pad_to_digest_point,
    run_workload,
    write_some,
)
from zkfast.testing.procs import (
    Ensemble,
    apache_available,
    apache_server,
    wait_until,
    zkfast_server,
)

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(not apache_available(), reason="needs the Debian Apache ZooKeeper 3.8"),
]

CFG = {"tickTime": "500", "initLimit": "10", "syncLimit": "5"}
SERVE_S = 120.0
HISTORY_TXNS = 5
LEADER = 3
OBSERVER = 4

#: id -> kinds of sids 1..4 (sid 3 leads, sid 4 observes).
MIXES = {
    "zkfast-leader-apache-learners": ("apache", "apache", "zkfast", "apache"),
    "apache-leader-zkfast-learners": ("zkfast", "zkfast", "apache", "zkfast"),
    "all-apache": ("apache", "apache", "apache", "apache"),
}


#: LearnerHandler.syncFollower's first line: sid, maxCommittedLog, peerLastZxid.
_SYNCHRONIZING = re.compile(
    r"Synchronizing with Learner sid: (\d+) maxCommittedLog=0x([0-9a-f]+) "
    r"minCommittedLog=0x[0-9a-f]+ lastProcessedZxid=0x[0-9a-f]+ peerLastZxid=0x([0-9a-f]+)")


def _leader_logged(ens: Ensemble, leader: int, path: str, learner: int) -> bool:
    """The leader's INFO lines (the same words from either kind) tell it synced `learner`
    by `path`: "Sending DIFF ... sid: N", "Sending snapshot ...", or for TRUNC (whose own
    line is DEBUG when the learner is past the committed log) "Synchronizing with Learner
    sid: N" with the learner's last zxid past the leader's committed log."""
    if path == "TRUNC":
        return any(int(m.group(3), 16) > int(m.group(2), 16)
                   for m in _SYNCHRONIZING.finditer(ens.servers[leader].log_text())
                   if int(m.group(1)) == learner)
    lines = ens.leader_sync_lines(leader)
    if path == "SNAP":
        return any(line.startswith("Sending snapshot") for line in lines)
    return any(line.startswith(f"Sending {path}") and line.rstrip().endswith(
        (f"sid: {learner}", f"sid:{learner}")) for line in lines)


def _params() -> list[object]:
    return [pytest.param(name, id=name, marks=[pytest.mark.slow] if name == "all-apache" else [])
            for name in MIXES]


@pytest.fixture(scope="module")
def histories(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """kind -> a dataDir with a few txns (/h0../h4) written by a standalone server of that kind."""
    out: dict[str, Path] = {}
    for kind in ("zkfast", "apache"):
        work = tmp_path_factory.mktemp(f"history-{kind}")
        make = zkfast_server if kind == "zkfast" else apache_server
        server = make(work)
        try:
            with Clients() as clients:
                c = clients.connect(server.hosts)
                for i in range(HISTORY_TXNS):
                    c.create(f"/h{i}", f"history {i}".encode())
        finally:
            server.stop()
        out[kind] = server.data_dir
    yield out


def _start_leader_first(ens: Ensemble) -> None:
    """Start sid 3 (the longest history) with one other voter, and the rest once that pair
    serves. With only those two up, a quorum needs sid 3's vote, which goes to its own
    longer history: sid 3 leads whatever the start-up timing. (Started together, two peers
    of a quicker-starting kind can form a quorum and elect before sid 3's first notification
    reaches them, as Apache peers would too.)"""
    others = [s for s in ens.kinds if s != LEADER]
    first = next(s for s in others if s not in ens.observers)
    ens.start([LEADER])
    ens.start([first])
    assert ens.wait_serving([LEADER, first], timeout_s=SERVE_S) == LEADER
    rest = [s for s in others if s != first]
    if rest:
        ens.start(rest)


def _check_end(ens: Ensemble) -> None:
    assert_same_trees(ens)
    with Clients() as clients:
        c = clients.connect(ens.servers[1].hosts)
        zxid = pad_to_digest_point(ens, c)
        assert_same_digests(ens, zxid)


@pytest.mark.parametrize("mix", _params())
def test_mixed_ensemble_serves_the_workload_and_survives_its_leader(tmp_path, histories, mix):
    kinds = MIXES[mix]
    data = {LEADER: histories[kinds[LEADER - 1]]}
    with Ensemble(tmp_path / "ens", kinds, cfg=CFG, data_dirs=data, observers=[OBSERVER]) as ens:
        _start_leader_first(ens)
        assert ens.wait_serving(timeout_s=SERVE_S) == LEADER
        for sid in (1, 2, OBSERVER):
            assert ens.sync_path(sid) in ("DIFF", "SNAP"), ens.servers[sid].log_tail(40)
        with Clients() as clients:
            for sid in ens.kinds:
                c = clients.connect(ens.servers[sid].hosts)
                c.sync("/")
                assert c.get("/h4")[0] == b"history 4", sid
        run_workload(ens, "/mixed")
        # The leader dies: the two voters of the other kind elect one of theirs (with the
        # observer), take writes, and the old leader comes back as their follower.
        ens.servers[LEADER].kill()
        rest = [s for s in ens.kinds if s != LEADER]
        assert ens.wait_serving(rest, timeout_s=SERVE_S) == 2
        with Clients() as clients:
            c = clients.connect(ens.servers[OBSERVER].hosts)
            for i in range(5):
                c.create(f"/mixed/after-failover-{i}", b"x")
        ens.start([LEADER])
        assert ens.wait_serving(timeout_s=SERVE_S) == 2
        assert ens.sync_path(LEADER) in ("DIFF", "SNAP", "TRUNC"), \
            ens.servers[LEADER].log_tail(40)
        _check_end(ens)


#: id -> (the leader's kind, the learner's kind)
DIRECTIONS = {
    "zkfast-leader-apache-learner": ("zkfast", "apache"),
    "apache-leader-zkfast-learner": ("apache", "zkfast"),
}


@pytest.mark.parametrize("path", ["DIFF", "SNAP"])
@pytest.mark.parametrize("direction", list(DIRECTIONS))
def test_a_learner_of_the_other_kind_catches_up(tmp_path, histories, direction, path):
    """The leader (sid 3, with a history) is of one kind, the followers of the other;
    follower 1 is SIGKILLed, misses a few writes and comes back: DIFF, or SNAP when the
    leader forces snapshot syncs (zookeeper.forceSnapshotSync, given to both kinds)."""
    leader_kind, learner_kind = DIRECTIONS[direction]
    props = {"zookeeper.forceSnapshotSync": "true"} if path == "SNAP" else {}
    kinds = (learner_kind, learner_kind, leader_kind)
    with Ensemble(tmp_path / "ens", kinds, cfg=CFG, props=props, jvm_props=props,
                  data_dirs={LEADER: histories[leader_kind]}) as ens:
        _start_leader_first(ens)
        assert ens.wait_serving(timeout_s=SERVE_S) == LEADER
        write_some(ens, LEADER, "/sync", 5)
        ens.servers[1].kill()
        last = write_some(ens, 2, "/sync", 10)
        ens.start([1])
        assert ens.wait_serving(timeout_s=SERVE_S) == LEADER
        assert ens.sync_path(1) == path, ens.servers[1].log_tail(40)
        assert _leader_logged(ens, LEADER, path, 1), ens.leader_sync_lines(LEADER)
        wait_until(lambda: (ens.last_zxid(1) or 0) >= last, SERVE_S, "caught up")
        _check_end(ens)


@pytest.mark.parametrize("direction", list(DIRECTIONS))
def test_an_old_leader_of_the_other_kind_is_truncated(tmp_path, histories, direction):
    """tests/runtime/test_zab_ensemble.py's TRUNC story across kinds: the old leader (sid 3)
    is of the learner's kind, the two voters that elect the new leader (sid 2) of the other."""
    new_leader_kind, old_leader_kind = DIRECTIONS[direction]
    kinds = (new_leader_kind, new_leader_kind, old_leader_kind)
    cfg = {**CFG, "maxSessionTimeout": "120000"}
    with Ensemble(tmp_path / "ens", kinds, cfg=cfg, proxied=True,
                  data_dirs={LEADER: histories[old_leader_kind]}) as ens:
        _start_leader_first(ens)
        assert ens.wait_serving(timeout_s=SERVE_S) == LEADER
        with Clients() as clients:
            c = clients.connect(ens.servers[LEADER].hosts, timeout_s=120.0)
            for i in range(5):
                c.create(f"/c{i}", b"committed")
            committed = wait_until(lambda: equal_zxids(ens), SERVE_S, "every peer at one zxid")
            assert isinstance(committed, int)
            ens.pause(LEADER)
            c.create_async("/lost", b"never acknowledged")
            data_dir = ens.servers[LEADER].data_dir
            wait_until(lambda: max(logged_zxids(data_dir)) > committed, SERVE_S,
                       "the leader logged the proposal")
            ens.servers[LEADER].kill()
        ens.drop(LEADER)
        assert ens.wait_serving([1, 2], timeout_s=SERVE_S) == 2
        ens.resume(LEADER)
        ens.start([LEADER])
        assert ens.wait_serving(timeout_s=SERVE_S) == 2
        assert ens.sync_path(LEADER) == "TRUNC", ens.servers[LEADER].log_tail(40)
        assert _leader_logged(ens, 2, "TRUNC", LEADER), ens.servers[2].log_tail(40)
        after = write_some(ens, 1, "/after", 3)
        wait_until(lambda: (ens.last_zxid(LEADER) or 0) >= after, SERVE_S, "caught up")
        with Clients() as clients:
            for sid in ens.kinds:
                c = clients.connect(ens.servers[sid].hosts)
                c.sync("/")
                assert c.exists("/lost") is None, sid
        _check_end(ens)


def _rolling_params() -> list[object]:
    return [
        pytest.param("zkfast", id="apache-to-zkfast"),
        pytest.param("apache", id="apache-to-apache", marks=pytest.mark.slow),
    ]


@pytest.mark.parametrize("new_kind", _rolling_params())
def test_rolling_replacement_under_load_keeps_every_acknowledged_write(tmp_path, new_kind):
    """Apache voters 1-3 and observer 4 under a steady stream of creates; each server in turn
    is stopped and replaced by `new_kind` on its own dataDir; the writer's session lives on
    through every step (it moves to another server when its own goes)."""
    with Ensemble(tmp_path / "ens", ["apache"] * 4, cfg=CFG, observers=[OBSERVER]) as ens:
        ens.start()
        ens.wait_serving(timeout_s=SERVE_S)
        run_workload(ens, "/before")
        hosts = ",".join(ens.servers[s].hosts for s in ens.kinds)
        writer = AckedWriter(hosts, "/acked").start()
        try:
            writer.wait_acked(20)
            for sid in (1, 2, 3, 4):
                ens.replace(sid, new_kind, timeout_s=SERVE_S)
                leader = ens.wait_serving(timeout_s=SERVE_S)
                if leader != sid:  # the replacement may win the election (the longest log)
                    assert ens.sync_path(sid) in ("DIFF", "SNAP", "TRUNC"), \
                        ens.servers[sid].log_tail(40)
                writer.more(20)
        finally:
            acked = writer.stop()
        assert set(ens.kinds.values()) == {new_kind}
        check_acked(ens, "/acked", acked)
        run_workload(ens, "/after")
        _check_end(ens)
