"""The simulated world itself: network cuts, black holes and stalls, the disk's rename and
error model, paused processes, the register clients' history, and the campaign runner."""

from __future__ import annotations

import random
from typing import Any

import pytest

from zkfast.testing import sim_env, vopr
from zkfast.testing.cluster import PeerCluster, StandaloneCluster
from zkfast.testing.linearizability import INFO, OK, check
from zkfast.testing.sim_env import DiskFaults, Network, SimDisk, World


def test_one_way_cut_and_heal() -> None:
    w = World(1)
    net = Network(w)
    got: list[str] = []
    net.cut_one_way([1], [2])
    net.datagram(1, 2, lambda: got.append("1->2"))
    net.datagram(2, 1, lambda: got.append("2->1"))
    w.run_until(100)
    assert got == ["2->1"]
    assert not net.linked(1, 2) and net.reaches(2, 1) and not net.reaches(1, 2)
    resets: list[str] = []
    net.stream(2, 1, lambda: got.append("s"), lambda: resets.append("r"))
    w.run_until(200)
    assert resets == ["r"]  # a connection needs both directions
    net.heal()
    net.datagram(1, 2, lambda: got.append("1->2"))
    w.run_until(300)
    assert got == ["2->1", "1->2"]
    assert w.faults == {"one_way_cut": 1}


def test_black_hole_hangs_the_connection_until_it_is_forgotten() -> None:
    w = World(2)
    net = Network(w)
    got: list[int] = []
    net.stream("a", "b", lambda: got.append(1), lambda: got.append(-1), conn="x")
    net.black_hole("a", "b")
    net.stream("a", "b", lambda: got.append(2), lambda: got.append(-2), conn="x")
    net.heal()
    # FIFO as TCP: once bytes vanished, nothing after them arrives on that connection.
    net.stream("a", "b", lambda: got.append(3), lambda: got.append(-3), conn="x")
    net.stream("a", "b", lambda: got.append(4), lambda: got.append(-4), conn="y")
    w.run_until(100)
    assert got == [1, 4]
    net.forget("x")
    net.stream("a", "b", lambda: got.append(5), lambda: got.append(-5), conn="x")
    w.run_until(200)
    assert got == [1, 4, 5]


def test_stall_delays_in_order() -> None:
    w = World(3)
    net = Network(w)
    got: list[tuple[int, int]] = []
    net.stall("a", "b", 500)
    for i in range(3):
        net.stream("a", "b", lambda i=i: got.append((i, w.now)), lambda: None)  # type: ignore[misc]
    w.run_until(1000)
    assert [i for i, _ in got] == [0, 1, 2]
    assert all(t >= 500 for _, t in got)


def test_a_rename_is_durable_only_after_the_directory_fsync() -> None:
    kept = {True: 0, False: 0}
    for seed in range(40):
        d = SimDisk(random.Random(seed))
        d.put("/d", "f", b"old")
        d.rename_into_place("/d", "f", b"new")
        assert d.get("/d", "f") == b"new"
        d.crash()
        kept[d.get("/d", "f") == b"new"] += 1
    assert kept[True] > 0 and kept[False] > 0  # either may survive
    d = SimDisk(random.Random(0))
    d.rename_into_place("/d", "g", b"new")
    d.rename_durable("/d", "g")
    d.crash()
    assert d.get("/d", "g") == b"new"


def test_injected_disk_errors() -> None:
    w = World(4)
    d = SimDisk(random.Random(0), DiskFaults(enospc=1.0), w)
    h = d.create_log("/d", "log.1")
    d.arm_failure()
    with pytest.raises(OSError) as e:
        h.write_at(0, b"x")
    assert e.value.errno == 28
    h.write_at(0, b"x")  # one failure per arming
    d = SimDisk(random.Random(0), DiskFaults(meta_error=1.0), w)
    with pytest.raises(OSError):
        d.truncate("/d", "nothing", 0)
    assert w.faults == {"enospc": 1, "eio_truncate": 1}


def test_a_paused_peer_runs_its_events_late_and_in_order() -> None:
    w = World(5)
    c = PeerCluster(w, 3)
    c.start_all()
    w.run_until(300)
    node = c.nodes[1]
    node.pause()
    before = w.steps
    w.run_until(5_000)
    assert node.paused and node._held  # messages and timers wait
    assert w.steps > before
    node.unpause()
    w.run_until(40_000)
    assert not node._held
    roles = sorted(n.role.state for n in c.live() if n.role is not None)
    assert roles.count("LEADING") == 1


def test_what_arrives_while_a_resumed_process_catches_up_waits_its_turn() -> None:
    """Zab seed 1492: a quorum packet delivered in the very step after an unpause ran before
    the packets held during the pause, so a follower logged 0x...c1 before 0x...ab (a
    resumed process reads its sockets in order)."""
    w = World(5)
    pc, sc = PeerCluster(w, 3), StandaloneCluster(w, 1)
    pc.start_all()
    sc.node.start()
    nodes: list[Any] = [pc.nodes[1], sc.node]
    for node in nodes:
        seen: list[int] = []
        node.pause()
        for i in range(3):
            node.run(lambda i=i, seen=seen: seen.append(i))
        node.unpause()
        node.run(lambda seen=seen: seen.append(3))  # in the same step as the unpause
        w.run_until(w.now + 1)
        assert seen == [0, 1, 2, 3]


def test_register_clients_record_a_linearizable_history() -> None:
    w = World(6)
    c = StandaloneCluster(w, 0, registers=3, keys=2, think_ms=5)
    c.start()
    w.run_until(3_000)
    c.node.crash()
    c.node.start()
    w.run_until(6_000)
    for cl in c.reg_clients:
        cl.stopped = True
    w.run_until(7_000)
    c.history.close()
    ops = c.history.ops
    assert len(ops) > 50
    assert {o.kind for o in ops} == {"create", "set", "delete", "read"}
    assert any(o.status == OK and o.error for o in ops)  # NONODE, NODEEXISTS, BADVERSION
    assert any(o.status == INFO for o in ops)  # cut off by the crash
    assert check(ops).ok


def test_a_stale_read_from_the_server_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checker is not vacuous in the world: a client that sees the first value it ever
    read for a key (a server answering from a stale copy) makes the run fail."""
    from zkfast.testing import workload

    first: dict[tuple[int, str], bytes] = {}
    real = workload.RegisterClient._frame

    def stale(self: workload.RegisterClient, frame: bytes) -> None:
        op = self._op[1] if self._op is not None else None
        real(self, frame)
        if op is not None and op.kind == "read" and op.out_value is not None:
            op.out_value = first.setdefault((self.cid, op.key), op.out_value)
            op.out_version = None

    monkeypatch.setattr(workload.RegisterClient, "_frame", stale)
    results = [vopr.run_standalone(seed) for seed in range(6)]
    assert any(not r.ok and "linearizability" in r.error for r in results)


def test_campaign_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert vopr.main(["--seeds", "0..3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("runs=4 steps=") and out[-1].endswith(" violations=0")
    assert any(line.startswith("faults injected: ") for line in out)


def test_one_run_prints_the_seed_first(capsys: pytest.CaptureFixture[str]) -> None:
    assert vopr.main(["--seed", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "seed=3"
    assert out[-1].startswith("runs=1 steps=") and out[-1].endswith(" violations=0")


def test_a_violation_names_seed_invariant_and_events(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sim_env.SimDisk, "complete_syncs",
                        lambda self: self.pending_syncs.clear())
    assert vopr.main(["--seeds", "1..1", "--mode", "standalone"]) == 1
    out = capsys.readouterr().out
    assert "VIOLATION seed=1 mode=standalone:" in out and "--- last events ---" in out
    assert "replay: python -m zkfast.testing.vopr --seed 1 --mode standalone" in out
    assert out.splitlines()[-1].endswith(" violations=1")
