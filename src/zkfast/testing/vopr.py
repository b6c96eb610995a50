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
import logging
import sys
import traceback
from dataclasses import dataclass, field

from .checkers import PeerChecker, StandaloneChecker, Violation
from .cluster import PeerCluster, StandaloneCluster
from .sim_env import DiskFaults, NetFaults, World

__all__ = ["RunResult", "run", "run_election", "run_standalone", "main"]

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


def run_election(seed: int, *, peers: int | None = None, steps: int | None = None,
                 fault_ms: int | None = None, verbose: bool = False) -> RunResult:
    """Election under faults: N peers, partitions, crashes, restarts; then heal and converge."""
    world = World(seed, verbose=verbose)
    rng = world.rng
    n = peers or rng.choice([3, 5])
    net = _net_faults(world, datagrams=True)
    disk = DiskFaults(slow=rng.choice([0.0, 0.1, 0.5]), fsync_slow_ms=rng.choice([50, 500]))
    last_zxids = {sid: (rng.randint(0, 2) << 32) | rng.randint(0, 5) for sid in range(1, n + 1)}
    observers = (n,) if n == 5 and rng.random() < 0.3 else ()
    readonly = rng.random() < 0.3
    cluster = PeerCluster(world, n, net_faults=net, disk_faults=disk, last_zxids=last_zxids,
                          observers=observers, readonly=readonly)
    checker = PeerChecker(cluster)
    fault_end = fault_ms if fault_ms is not None else rng.randint(10_000, 60_000)
    fault_gap_ms = rng.choice([1_000, 5_000, 12_000])
    steps_max = steps if steps is not None else 200_000
    summary = (f"mode=election peers={n} observers={observers} readonly={readonly} "
               f"fault_ms={fault_end} gap_ms={fault_gap_ms} net={net} "
               f"disk_slow={disk.slow} zxids={[hex(z) for z in last_zxids.values()]}")
    stats = {"crashes": 0, "partitions": 0}

    faulting = [True]

    def fault() -> None:
        if world.now >= fault_end or not faulting[0]:
            return
        r = rng.random()
        dead = [s for s, nd in sorted(cluster.nodes.items()) if not nd.alive]
        live = [s for s, nd in sorted(cluster.nodes.items()) if nd.alive]
        if r < 0.25 and live:
            cluster.nodes[rng.choice(live)].crash()
            stats["crashes"] += 1
        elif r < 0.5 and dead:
            cluster.nodes[rng.choice(dead)].start()
        elif r < 0.75:
            sids = sorted(cluster.nodes)
            rng.shuffle(sids)
            k = rng.randint(1, n - 1)
            cluster.partition([sorted(sids[:k]), sorted(sids[k:])])
            stats["partitions"] += 1
        else:
            cluster.heal()
        world.after(rng.randint(fault_gap_ms // 10, fault_gap_ms), fault)

    def body() -> None:
        cluster.start_all()
        world.after(rng.randint(0, fault_gap_ms), fault)
        world.run_until(fault_end, steps_max=steps_max)
        # Heal: calm network, every peer up.
        faulting[0] = False
        world.log("HEALING")
        cluster.net.faults = NetFaults.calm()
        cluster.heal()
        for sid in sorted(cluster.nodes):
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


def run_standalone(seed: int, *, steps: int | None = None,
                   fault_ms: int | None = None, verbose: bool = False) -> RunResult:
    """A standalone server with clients writing under crashes, torn/lost writes, slow fsync,
    EIO, connection resets and client partitions; every acknowledged write must survive."""
    world = World(seed, verbose=verbose)
    rng = world.rng
    n_clients = rng.randint(1, 5)
    net = _net_faults(world, datagrams=False)
    disk = DiskFaults(slow=rng.choice([0.0, 0.1, 0.5]), fsync_slow_ms=rng.choice([50, 300]),
                      torn=rng.choice([0.0, 0.5, 1.0]), error=rng.choice([0.0, 0.0, 0.01]))
    cluster = StandaloneCluster(world, n_clients, net_faults=net, disk_faults=disk,
                                paths=rng.randint(1, 4), think_ms=rng.choice([0, 5, 50]),
                                snap_count=rng.choice([10, 100, 100000]),
                                read_ratio=rng.choice([0.0, 0.3, 0.6]))
    checker = StandaloneChecker(cluster)
    fault_end = fault_ms if fault_ms is not None else rng.randint(3_000, 10_000)
    steps_max = steps if steps is not None else 200_000
    summary = (f"mode=standalone clients={n_clients} fault_ms={fault_end} net={net} "
               f"disk={disk}")
    stats = {"crashes": 0}
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
            node.start()
        world.after(delay, go)

    def watch_failed() -> None:
        if node.failed and node.alive and not restart_pending[0]:
            restart_later(rng.randint(10, 2_000))
    world.after_step.append(watch_failed)

    faulting = [True]

    def fault() -> None:
        if world.now >= fault_end or not faulting[0]:
            return
        r = rng.random()
        if r < 0.3 and node.alive and not restart_pending[0]:
            node.crash()
            stats["crashes"] += 1
            restart_later(rng.randint(0, 3_000))
        elif r < 0.6:
            cl = rng.choice(cluster.clients)
            cluster.net.partition([[cl.name], ["srv"]])
            if cl.conn_id is not None and cl.conn_id in node.conns:
                node.reset(cl.conn_id, cl)
        else:
            cluster.net.heal()
        world.after(rng.randint(100, 3_000), fault)

    def body() -> None:
        cluster.start()
        world.after(rng.randint(100, 2_000), fault)
        world.run_until(fault_end, steps_max=steps_max)
        faulting[0] = False
        world.log("HEALING")
        cluster.net.faults = NetFaults(delay_min_ms=1, delay_max_ms=net.delay_max_ms)
        cluster.net.heal()
        disk.error = 0.0
        if not node.alive and not restart_pending[0]:
            node.start()
        base = {cl.cid: cl.acks for cl in cluster.clients}
        deadline = world.now + STANDALONE_LIVENESS_MS
        while world.now < deadline:
            world.run_until(world.now + 100)
            if all(cl.acks > base[cl.cid] for cl in cluster.clients):
                break
        else:
            raise Violation("liveness: a client got no write acknowledged within "
                            f"{STANDALONE_LIVENESS_MS} ms of healing")
        for cl in cluster.clients:
            cl.stopped = True
        world.run_until(world.now + 1_000)
        node.crash()  # a last power loss: recovery must still hold every acknowledged write
        node.start()

    return _finish(world, "standalone", summary, body, stats,
                   lambda: {"acks": sum(cl.acks for cl in cluster.clients),
                            "ops": sum(cl.ops_sent for cl in cluster.clients),
                            "recoveries": checker.recoveries, "reads": checker.reads,
                            "digests_compared": checker.digests_compared,
                            "max_acked_zxid": checker.max_acked_zxid})


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
    try:
        body()  # type: ignore[operator]
    except Violation as e:
        return RunResult(world.seed, mode, False, summary, f"{e}", world.tail(), stats)
    except Exception as e:  # noqa: BLE001 - a core's assert or a crash is a finding too
        return RunResult(world.seed, mode, False, summary,
                         f"{type(e).__name__}: {e}\n{traceback.format_exc()}", world.tail(),
                         stats)
    stats.update(more())  # type: ignore[operator]
    stats["virtual_ms"] = world.now
    stats["steps"] = world.steps
    return RunResult(world.seed, mode, True, summary, trace=world.tail(), stats=stats,
                     digest=world.digest())


def run(seed: int, *, mode: str | None = None, peers: int | None = None,
        steps: int | None = None, verbose: bool = False) -> RunResult:
    """One seeded run; the seed picks the mode when ``mode`` is None."""
    if mode is None:
        mode = "election" if seed % 2 == 0 else "standalone"
    if mode == "election":
        return run_election(seed, peers=peers, steps=steps, verbose=verbose)
    if mode == "standalone":
        return run_standalone(seed, steps=steps, verbose=verbose)
    raise ValueError(f"unknown mode {mode!r}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m zkfast.testing.vopr", description=__doc__)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--steps", type=int, default=None, help="events in the fault phase (max)")
    p.add_argument("--peers", type=int, choices=(3, 5), default=None)
    p.add_argument("--mode", choices=("election", "standalone"), default=None)
    p.add_argument("--trace", action="store_true", help="print the trace tail on success too")
    p.add_argument("--verbose", action="store_true",
                   help="trace every election message and quorum packet as well")
    args = p.parse_args(argv)
    print(f"seed={args.seed}", flush=True)
    res = run(args.seed, mode=args.mode, peers=args.peers, steps=args.steps,
              verbose=args.verbose)
    print(res.summary)
    if res.ok:
        print("ok " + " ".join(f"{k}={v}" for k, v in sorted(res.stats.items()))
              + f" digest={res.digest}")
        if args.trace:
            print(res.trace)
        return 0
    print(f"VIOLATION seed={res.seed} mode={res.mode}: {res.error}")
    print("--- trace (last events) ---")
    print(res.trace)
    print(f"replay: python -m zkfast.testing.vopr --seed {res.seed} --mode {res.mode}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
