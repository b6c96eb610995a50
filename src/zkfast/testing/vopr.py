"""Seeded simulation runner: ``python -m zkfast.testing.vopr --seed N``.

The seed is printed first and decides everything else: the mode (unless ``--mode``), the
cluster size (unless ``--peers``), the workload, the network and disk fault rates, and when
partitions, crashes and restarts happen. A run has a fault phase, then a healing phase in which
the network is calm and every node runs, and the cluster must converge within a bound of
virtual time. Checkers run after every step; a violation (or a core's own AssertionError)
exits 1 with the seed and the tail of the trace. The same seed replays the same run.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import logging
import sys
import time
import traceback
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from .checkers import PeerChecker, StandaloneChecker, Violation, ZabChecker
from .cluster import PeerCluster, SimClient, StandaloneCluster
from .linearizability import NONODE, History, check
from .mutations import MUTATIONS, mutation
from .sim_env import DiskFaults, NetFaults, World
from .workload import RegisterClient, check_history
from .zab_cluster import ZabCluster, ZabNode

__all__ = ["RunResult", "Campaign", "run", "run_election", "run_standalone", "main", "report",
           "mode_of", "MODES"]

#: After healing, a leader must be established (and followed by a quorum) within this.
ELECTION_LIVENESS_MS = 180_000
#: ... and stay so for initLimit*tickTime plus this long: a leader that proposed the same
#: epoch but never got a quorum gives up after initLimit, and its held learners with it.
ELECTION_STABLE_EXTRA_MS = 2_000
#: After healing, every client must get a write acknowledged within this.
STANDALONE_LIVENESS_MS = 60_000


@dataclass
class RunResult:
    seed: int
    mode: str
    ok: bool
    summary: str
    error: str = ""
    trace: str = ""
    stats: dict[str, int] = field(default_factory=dict)
    digest: str = ""
    #: Faults injected, by kind.
    faults: dict[str, int] = field(default_factory=dict)
    steps: int = 0


def _net_faults(world: World, *, datagrams: bool) -> NetFaults:
    rng = world.rng
    return NetFaults(
        delay_min_ms=1,
        delay_max_ms=rng.choice([2, 10, 50]),
        drop=rng.choice([0.0, 0.05, 0.2]) if datagrams else 0.0,
        duplicate=rng.choice([0.0, 0.01, 0.05]) if datagrams else 0.0,
        reorder=rng.choice([0.0, 0.1, 0.3]) if datagrams else 0.0,
        reset=rng.choice([0.0, 0.002, 0.02]),
    )


#: Fault kinds of a peer run, with their weights (the seed also scales some to zero).
PEER_FAULTS = {"crash": 18, "restart": 18, "partition": 14, "one_way_cut": 6, "heal": 16,
               "pause": 8, "stall": 8, "black_hole": 6, "wipe_observer": 3}



def _inject(kind: str, world: World, rng: Any, cluster: Any, nodes: Any, live: list[int],
            n: int) -> bool:
    """One fault of the kinds every quorum mode shares; False when ``kind`` is not one of
    them (or has no target now). ``live`` are the peers a crash or pause may hit."""
    dead = [s for s, nd in sorted(nodes.items()) if not nd.alive]
    if kind == "crash" and live:
        world.fault("crash")
        nodes[rng.choice(live)].crash()
    elif kind == "restart" and dead:
        world.fault("restart")
        nodes[rng.choice(dead)].start()
    elif kind in ("partition", "one_way_cut"):
        sids = sorted(nodes)
        rng.shuffle(sids)
        k = rng.randint(1, n - 1)
        side_a, side_b = sorted(sids[:k]), sorted(sids[k:])
        if kind == "partition":
            cluster.partition([side_a, side_b])
        else:
            cluster.net.cut_one_way(side_a, side_b)
    elif kind == "heal":
        cluster.heal()
    elif kind == "pause" and live:
        nd = nodes[rng.choice(live)]
        nd.pause()
        world.after(rng.randint(100, 3 * cluster.tick_ms), nd.unpause)
    elif kind in ("stall", "black_hole"):
        a, b = rng.sample(sorted(nodes), 2)
        if kind == "stall":
            cluster.net.stall(a, b, world.now + rng.randint(100, 5_000))
        else:
            cluster.net.black_hole(a, b)
    else:
        return False
    return True


def run_election(seed: int, *, peers: int | None = None, observers: int | None = None,
                 steps: int | None = None, fault_ms: int | None = None,
                 verbose: bool = False) -> RunResult:
    """Election under faults: 3-7 voters and 0-2 observers; crashes, restarts, pauses,
    symmetric and one-way partitions, stalls, black holes, wiped observers; then heal and
    converge."""
    world = World(seed, verbose=verbose)
    rng = world.rng
    voters = peers or rng.randint(3, 7)
    n_obs = observers if observers is not None else rng.choice([0, 0, 1, 2])
    n = voters + n_obs
    net = _net_faults(world, datagrams=True)
    disk = DiskFaults(slow=rng.choice([0.0, 0.1, 0.5]), fsync_slow_ms=rng.choice([50, 500]))
    last_zxids = {sid: (rng.randint(0, 2) << 32) | rng.randint(0, 5) for sid in range(1, n + 1)}
    obs = tuple(range(voters + 1, n + 1))
    readonly = rng.random() < 0.3
    cluster = PeerCluster(world, n, net_faults=net, disk_faults=disk, last_zxids=last_zxids,
                          observers=obs, readonly=readonly)
    checker = PeerChecker(cluster)
    fault_end = fault_ms if fault_ms is not None else rng.randint(10_000, 60_000)
    fault_gap_ms = rng.choice([1_000, 5_000, 12_000])
    steps_max = steps if steps is not None else 200_000
    weights = dict(PEER_FAULTS)
    for kind in ("one_way_cut", "pause", "stall", "black_hole"):
        if rng.random() < 0.3:
            weights[kind] = 0
    summary = (f"mode=election voters={voters} observers={obs} readonly={readonly} "
               f"fault_ms={fault_end} gap_ms={fault_gap_ms} net={net} "
               f"disk_slow={disk.slow} zxids={[hex(z) for z in last_zxids.values()]} "
               f"faults={weights}")
    stats: dict[str, int] = {}
    faulting = [True]
    kinds = sorted(weights)

    def fault() -> None:
        if world.now >= fault_end or not faulting[0]:
            return
        kind = rng.choices(kinds, [weights[k] for k in kinds])[0]
        nodes = cluster.nodes
        live = [s for s, nd in sorted(nodes.items()) if nd.alive and not nd.paused]
        if not _inject(kind, world, rng, cluster, nodes, live, n) \
                and kind == "wipe_observer" and obs:
            nodes[rng.choice(obs)].wipe()
        world.after(rng.randint(fault_gap_ms // 10, fault_gap_ms), fault)

    def body() -> None:
        cluster.start_all()
        world.after(rng.randint(0, fault_gap_ms), fault)
        world.run_until(fault_end, steps_max=steps_max)
        # Heal: calm network, every peer up and running.
        faulting[0] = False
        world.log("HEALING")
        cluster.net.faults = NetFaults.calm()
        cluster.heal()
        for sid in sorted(cluster.nodes):
            cluster.nodes[sid].unpause()
            if not cluster.nodes[sid].alive:
                cluster.nodes[sid].start()
        deadline = world.now + ELECTION_LIVENESS_MS
        stable_ms = cluster.init_limit * cluster.tick_ms + ELECTION_STABLE_EXTRA_MS
        stable_since: int | None = None
        while world.now < deadline:
            world.run_until(world.now + 100)
            if checker.settled() is not None:
                stable_since = world.now if stable_since is None else stable_since
                if world.now - stable_since >= stable_ms:
                    checker.check_agreement()
                    stats["stragglers"] = len(checker.stragglers())
                    return
            else:
                stable_since = None
        raise Violation(f"liveness: no leader followed by a quorum within "
                        f"{ELECTION_LIVENESS_MS} ms of healing")

    return _finish(world, "election", summary, body, stats,
                   lambda: {"established_epochs": len(checker.epoch_leader),
                            "checks": checker.checks})


#: Fault kinds of a standalone run, with their weights.
STANDALONE_FAULTS = {"crash": 25, "client_partition": 25, "heal": 25, "pause": 8,
                     "stall": 8, "black_hole": 5}


def run_standalone(seed: int, *, steps: int | None = None,
                   fault_ms: int | None = None, verbose: bool = False) -> RunResult:
    """A standalone server with clients under crashes, torn/lost writes, slow fsync, EIO and
    ENOSPC, failed restarts, pauses, connection resets, stalls, black holes and client
    partitions. Every acknowledged write must survive; the register clients' history on
    shared paths must be linearizable."""
    world = World(seed, verbose=verbose)
    rng = world.rng
    n_clients = rng.randint(1, 5)
    net = _net_faults(world, datagrams=False)
    disk = DiskFaults(slow=rng.choice([0.0, 0.1, 0.5]), fsync_slow_ms=rng.choice([50, 300]),
                      torn=rng.choice([0.0, 0.5, 1.0]), error=rng.choice([0.0, 0.0, 0.01]),
                      enospc=rng.choice([0.0, 0.5]), meta_error=rng.choice([0.0, 0.0, 0.2]))
    cluster = StandaloneCluster(world, n_clients, net_faults=net, disk_faults=disk,
                                paths=rng.randint(1, 4), think_ms=rng.choice([0, 5, 50]),
                                snap_count=rng.choice([10, 100, 100000]),
                                read_ratio=rng.choice([0.0, 0.3, 0.6]),
                                registers=rng.randint(1, 5), keys=rng.randint(1, 3))
    checker = StandaloneChecker(cluster)
    fault_end = fault_ms if fault_ms is not None else rng.randint(3_000, 10_000)
    steps_max = steps if steps is not None else 200_000
    weights = dict(STANDALONE_FAULTS)
    for kind in ("pause", "stall", "black_hole"):
        if rng.random() < 0.3:
            weights[kind] = 0
    summary = (f"mode=standalone clients={n_clients} registers={len(cluster.reg_clients)} "
               f"keys={len(cluster.keys)} fault_ms={fault_end} net={net} disk={disk} "
               f"faults={weights}")
    stats: dict[str, int] = {}
    node = cluster.node
    restart_pending = [False]

    def restart_later(delay: int) -> None:
        if restart_pending[0]:
            return
        restart_pending[0] = True

        def go() -> None:
            restart_pending[0] = False
            if node.alive:
                node.crash()  # the process stopped (exit 1 after StorageFailed)
            if not node.start():
                restart_later(rng.randint(100, 2_000))  # the supervisor tries again
        world.after(delay, go)

    def watch_failed() -> None:
        if node.failed and node.alive and not restart_pending[0]:
            restart_later(rng.randint(10, 2_000))
    world.after_step.append(watch_failed)

    faulting = [True]
    kinds = sorted(weights)
    clients = cluster.all_clients()

    def fault() -> None:
        if world.now >= fault_end or not faulting[0]:
            return
        kind = rng.choices(kinds, [weights[k] for k in kinds])[0]
        if kind == "crash" and node.alive and not restart_pending[0]:
            world.fault("crash")
            node.crash()
            restart_later(rng.randint(0, 3_000))
        elif kind == "client_partition":
            cl = rng.choice(clients)
            cluster.net.partition([[cl.name], ["srv"]])
            if cl.conn_id is not None and cl.conn_id in node.conns:
                node.reset(cl.conn_id, cl)
        elif kind == "heal":
            cluster.net.heal()
        elif kind == "pause" and node.alive and not node.stopped:
            node.pause()
            world.after(rng.randint(100, 3_000), node.unpause)
        elif kind in ("stall", "black_hole"):
            cl = rng.choice(clients)
            a, b = (cl.name, "srv") if rng.random() < 0.5 else ("srv", cl.name)
            if kind == "stall":
                cluster.net.stall(a, b, world.now + rng.randint(100, 3_000))
            else:
                cluster.net.black_hole(a, b)
        world.after(rng.randint(100, 3_000), fault)

    def body() -> None:
        cluster.start()
        world.after(rng.randint(100, 2_000), fault)
        world.run_until(fault_end, steps_max=steps_max)
        faulting[0] = False
        world.log("HEALING")
        cluster.net.faults = NetFaults(delay_min_ms=1, delay_max_ms=net.delay_max_ms)
        cluster.net.heal()
        disk.error = disk.meta_error = 0.0
        node.unpause()
        if not node.alive and not restart_pending[0]:
            restart_later(0)
        base = {cl.cid: _progress(cl) for cl in clients}
        deadline = world.now + STANDALONE_LIVENESS_MS
        while world.now < deadline:
            world.run_until(world.now + 100)
            if all(_progress(cl) > base[cl.cid] for cl in clients):
                break
        else:
            raise Violation("liveness: a client completed no operation within "
                            f"{STANDALONE_LIVENESS_MS} ms of healing")
        for cl in clients:
            cl.stopped = True
        world.run_until(world.now + 1_000)
        node.crash()  # a last power loss: recovery must still hold every acknowledged write
        if not node.start():
            raise Violation("the server does not start on a calm disk")
        res = check_history(cluster.history)
        stats["history_ops"] = len(cluster.history.ops)
        stats["lin_inconclusive"] = int(res.inconclusive)
        if res.violations():
            raise Violation("linearizability: " + res.explain())

    return _finish(world, "standalone", summary, body, stats,
                   lambda: {"acks": sum(cl.acks for cl in clients),
                            "ops": sum(cl.ops_sent for cl in clients),
                            "recoveries": checker.recoveries, "reads": checker.reads,
                            "digests_compared": checker.digests_compared,
                            "max_acked_zxid": checker.max_acked_zxid})


#: Fault kinds of an ensemble run, with their weights.
ZAB_FAULTS = {"crash": 18, "restart": 18, "partition": 14, "one_way_cut": 5, "heal": 16,
              "pause": 8, "stall": 8, "black_hole": 5}
#: After healing, a leader with a quorum must serve and every client complete an op within.
ZAB_LIVENESS_MS = 120_000


def run_zab(seed: int, *, peers: int | None = None, observers: int | None = None,
            steps: int | None = None, fault_ms: int | None = None,
            verbose: bool = False) -> RunResult:
    """An ensemble of QuorumNodes (election, sync, broadcast, the replicated service) with
    register clients on shared znodes, under crashes, restarts, pauses, partitions (symmetric
    and one-way), stalls, black holes, resets, slow fsyncs, torn writes and EIO. Checked every
    step (``ZabChecker``); at the end the writes' history must be linearizable, with the
    healed ensemble's final state as a last read of every key."""
    world = World(seed, verbose=verbose)
    rng = world.rng
    voters = peers or rng.randint(3, 7)
    n_obs = observers if observers is not None else rng.choice([0, 0, 1, 2])
    n = voters + n_obs
    net = _net_faults(world, datagrams=True)
    disk = DiskFaults(slow=rng.choice([0.0, 0.1, 0.5]), fsync_slow_ms=rng.choice([50, 300]),
                      torn=rng.choice([0.0, 0.5, 1.0]), error=rng.choice([0.0, 0.0, 0.005]),
                      enospc=rng.choice([0.0, 0.5]))
    obs = tuple(range(voters + 1, n + 1))
    cluster = ZabCluster(world, n, net_faults=net, disk_faults=disk, observers=obs,
                         registers=rng.randint(2, 5), keys=rng.randint(1, 3),
                         think_ms=rng.choice([0, 20, 100]))
    checker = ZabChecker(cluster)
    fault_end = fault_ms if fault_ms is not None else rng.randint(10_000, 40_000)
    fault_gap_ms = rng.choice([1_000, 3_000, 8_000])
    steps_max = steps if steps is not None else 300_000
    weights = dict(ZAB_FAULTS)
    for kind in ("one_way_cut", "pause", "stall", "black_hole"):
        if rng.random() < 0.3:
            weights[kind] = 0
    summary = (f"mode=zab voters={voters} observers={obs} registers={len(cluster.reg_clients)} "
               f"keys={len(cluster.keys)} fault_ms={fault_end} gap_ms={fault_gap_ms} net={net} "
               f"disk={disk} faults={weights}")
    stats: dict[str, int] = {}
    faulting = [True]
    kinds = sorted(weights)
    nodes = cluster.zab_nodes

    def fault() -> None:
        if world.now >= fault_end or not faulting[0]:
            return
        kind = rng.choices(kinds, [weights[k] for k in kinds])[0]
        live = [s for s, nd in sorted(nodes.items()) if nd.alive and not nd.stopped]
        _inject(kind, world, rng, cluster, nodes, live, n)
        world.after(rng.randint(fault_gap_ms // 10, fault_gap_ms), fault)

    def restart_failed() -> None:
        for sid, nd in sorted(nodes.items()):
            if nd.failed and nd.alive:
                world.log(f"p{sid} exits after a storage failure")
                nd.crash()
                world.after(rng.randint(100, 2_000), functools.partial(_restart, nd))
    world.after_step.append(restart_failed)

    def body() -> None:
        cluster.start()
        world.after(rng.randint(0, fault_gap_ms), fault)
        world.run_until(fault_end, steps_max=steps_max)
        faulting[0] = False
        world.log("HEALING")
        cluster.net.faults = NetFaults(delay_min_ms=1, delay_max_ms=net.delay_max_ms)
        cluster.heal()
        disk.error = 0.0
        for sid in sorted(nodes):
            nodes[sid].unpause()
            if not nodes[sid].alive:
                nodes[sid].start()
        clients = cluster.reg_clients
        base = {cl.cid: cl.done for cl in clients}
        deadline = world.now + ZAB_LIVENESS_MS
        while world.now < deadline:
            world.run_until(world.now + 100)
            if checker.settled() is not None and all(cl.done > base[cl.cid] for cl in clients):
                break
        else:
            raise Violation(f"liveness: no serving leader with a quorum, or a client completed "
                            f"no operation, within {ZAB_LIVENESS_MS} ms of healing "
                            f"(leader {checker.settled()})")
        for cl in clients:
            cl.stopped = True
        world.run_until(world.now + 5_000)
        leader = checker.settled()
        if leader is None:
            raise Violation("liveness: the ensemble lost its leader after healing")
        _check_zab_history(cluster, leader)
        stats["history_ops"] = len(cluster.history.ops)

    return _finish(world, "zab", summary, body, stats,
                   lambda: {"acks": sum(cl.acks for cl in cluster.reg_clients),
                            "ops": sum(cl.ops_sent for cl in cluster.reg_clients),
                            "established_epochs": len(checker.epoch_leader),
                            "commits_checked": checker.commits_checked,
                            "digests": len(checker.digests),
                            "truncations": sum(nd.truncations for nd in nodes.values()),
                            "snapshots": sum(nd.snapshots for nd in nodes.values()),
                            "checks": checker.checks})


def _restart(node: ZabNode) -> None:
    if not node.alive:
        node.start()


def _check_zab_history(cluster: ZabCluster, leader: int) -> None:
    """Writes linearizable per key, ending in the healed leader's state of every key.

    Reads are left out: ZooKeeper serves them from the server's own copy (sequentially
    consistent, not linearizable). The final state of each key, read from the leader's tree
    after every client stopped, is appended as a read that follows every other operation, so
    a write acknowledged and then lost fails the check.
    """
    hist = cluster.history
    hist.close()
    tree = cluster.zab_nodes[leader].core
    assert tree is not None
    ops = [op for op in hist.ops if op.kind != "read"]
    final = History()
    final._clock = max((op.complete or op.invoke for op in hist.ops), default=0) + 1
    for key in cluster.keys:
        zn = tree.tree.nodes.get(key)
        r = final.invoke("final", "read", key)
        if zn is None:
            final.ok(r, error=NONODE)
        else:
            final.ok(r, out_value=zn.data, out_version=zn.version)
        r.id = len(hist.ops) + len(final.ops)
    res = check(ops + final.ops)
    if res.violations():
        raise Violation("linearizability (writes, then the final state): " + res.explain())


def _progress(cl: SimClient | RegisterClient) -> int:
    """Writes acknowledged (own-path clients) or operations completed (register clients)."""
    return cl.done if isinstance(cl, RegisterClient) else cl.acks


class _TraceHandler(logging.Handler):
    """Puts the cores' log records into the world's trace (not on stderr)."""

    def __init__(self, world: World) -> None:
        super().__init__(logging.DEBUG)
        self.world = world

    def emit(self, record: logging.LogRecord) -> None:
        self.world.log(f"log {record.name}: {record.getMessage()}")


def _finish(world: World, mode: str, summary: str, body: object, stats: dict[str, int],
            more: object) -> RunResult:
    logger = logging.getLogger("zkfast")
    handler = _TraceHandler(world)
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        return _run_body(world, mode, summary, body, stats, more)
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _run_body(world: World, mode: str, summary: str, body: object, stats: dict[str, int],
              more: object) -> RunResult:
    res = RunResult(world.seed, mode, True, summary, stats=stats, faults=world.faults)
    try:
        body()  # type: ignore[operator]
    except Violation as e:
        res.ok, res.error = False, f"{e}"
    except Exception as e:  # noqa: BLE001 - a core's assert or a crash is a finding too
        res.ok, res.error = False, f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
    res.steps = world.steps
    res.trace = world.tail()
    if res.ok:
        stats.update(more())  # type: ignore[operator]
        stats["virtual_ms"] = world.now
        stats["steps"] = world.steps
        res.digest = world.digest()
    return res


MODES = ("election", "standalone", "zab")


#: The modes a seed picks by itself (seed mod 3).
SEED_MODES = ("election", "standalone", "zab")


def mode_of(seed: int) -> str:
    """The mode a seed runs when none is asked for."""
    return SEED_MODES[seed % len(SEED_MODES)]


def run(seed: int, *, mode: str | None = None, peers: int | None = None,
        steps: int | None = None, verbose: bool = False) -> RunResult:
    """One seeded run; the seed picks the mode when ``mode`` is None."""
    if mode is None:
        mode = mode_of(seed)
    if mode == "election":
        return run_election(seed, peers=peers, steps=steps, verbose=verbose)
    if mode == "standalone":
        return run_standalone(seed, steps=steps, verbose=verbose)
    if mode == "zab":
        return run_zab(seed, peers=peers, steps=steps, verbose=verbose)
    raise ValueError(f"unknown mode {mode!r}")


@dataclass
class Campaign:
    """What a series of runs found."""

    runs: int = 0
    steps: int = 0
    virtual_ms: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)
    violations: list[RunResult] = field(default_factory=list)

    def add(self, res: RunResult) -> None:
        self.runs += 1
        self.steps += res.steps
        self.virtual_ms += res.stats.get("virtual_ms", 0)
        self.modes[res.mode] = self.modes.get(res.mode, 0) + 1
        for k, v in res.faults.items():
            self.faults[k] = self.faults.get(k, 0) + v
        if not res.ok:
            self.violations.append(res)

    def summary(self, wall_s: float | None = None) -> str:
        """The campaign summary; its last line is ``runs=N steps=S violations=V``."""
        lines = ["modes: " + " ".join(f"{k}={v}" for k, v in sorted(self.modes.items())),
                 "faults injected: " + (" ".join(f"{k}={v}" for k, v in
                                                 sorted(self.faults.items())) or "none"),
                 f"faults total={sum(self.faults.values())} virtual_s={self.virtual_ms // 1000}"]
        if wall_s is not None and wall_s > 0:
            lines.append(f"wall_s={wall_s:.1f} steps_per_s={self.steps / wall_s:.0f}")
        if self.violations:
            lines.append("violating seeds: " + " ".join(
                f"{r.seed}({r.mode})" for r in self.violations))
        lines.append(f"runs={self.runs} steps={self.steps} violations={len(self.violations)}")
        return "\n".join(lines)


def report(res: RunResult, *, tail: int = 40) -> str:
    """A violation: the seed, the invariant, the last events, the replay command."""
    trace = "\n".join(res.trace.splitlines()[-tail:])
    return (f"VIOLATION seed={res.seed} mode={res.mode}: {res.error}\n{res.summary}\n"
            f"--- last events ---\n{trace}\n"
            f"replay: python -m zkfast.testing.vopr --seed {res.seed} --mode {res.mode}")


def _seed_range(text: str) -> range:
    a, sep, b = text.partition("..")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected A..B, got {text!r}")
    lo, hi = int(a), int(b)
    if hi < lo:
        raise argparse.ArgumentTypeError(f"empty seed range {text!r}")
    return range(lo, hi + 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="zkfast-sim", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--seed", type=int, help="one run (replays exactly)")
    which.add_argument("--seeds", type=_seed_range, metavar="A..B",
                       help="a campaign over seeds A to B (inclusive)")
    which.add_argument("--minutes", type=float,
                       help="a campaign over seeds --first, --first+1, ... for M minutes")
    p.add_argument("--first", type=int, default=0, help="first seed of --minutes")
    p.add_argument("--steps", type=int, default=None, help="events in the fault phase (max)")
    p.add_argument("--peers", type=int, choices=range(3, 8), default=None, metavar="3..7",
                   help="voters (election mode)")
    p.add_argument("--mode", choices=MODES, default=None)
    p.add_argument("--trace", action="store_true", help="print the trace tail on success too")
    p.add_argument("--verbose", action="store_true",
                   help="trace every election message and quorum packet as well")
    p.add_argument("--mutation", choices=sorted(MUTATIONS), default=None,
                   help="run with this rule deliberately broken (testing/mutations.py): the "
                        "runs must then report a violation")
    args = p.parse_args(argv)
    broken: AbstractContextManager[object] = (
        mutation(args.mutation) if args.mutation else nullcontext())
    with broken:
        return _main(args)


def _main(args: argparse.Namespace) -> int:
    if args.mutation:
        print(f"mutation={args.mutation}", flush=True)
    if args.seed is not None:
        return _one(args)
    seeds: Iterable[int] = args.seeds if args.seeds is not None else itertools.count(args.first)
    # Wall time decides only how many runs a --minutes campaign makes, never what one does.
    start = time.monotonic()
    stop_at = start + args.minutes * 60 if args.minutes is not None else None
    camp = Campaign()
    for seed in seeds:
        if stop_at is not None and time.monotonic() >= stop_at:
            break
        res = run(seed, mode=args.mode, peers=args.peers, steps=args.steps,
                  verbose=args.verbose)
        camp.add(res)
        if not res.ok:
            print(report(res), flush=True)
    print(camp.summary(time.monotonic() - start), flush=True)
    return 1 if camp.violations else 0


def _one(args: argparse.Namespace) -> int:
    print(f"seed={args.seed}", flush=True)
    res = run(args.seed, mode=args.mode, peers=args.peers, steps=args.steps,
              verbose=args.verbose)
    print(res.summary)
    camp = Campaign()
    camp.add(res)
    if res.ok:
        print("ok " + " ".join(f"{k}={v}" for k, v in sorted(res.stats.items()))
              + f" digest={res.digest}")
        if args.trace:
            print(res.trace)
    else:
        print(report(res, tail=80))
    print(camp.summary())
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main())
