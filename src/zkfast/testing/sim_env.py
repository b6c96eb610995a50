"""The simulator's world: a virtual clock, a seeded network and a faulty disk per node.

Everything here is deterministic given one ``random.Random``: events run in (time, sequence)
order from one heap, time is integer milliseconds, and every random choice (delays, drops,
duplicates, torn bytes, fsync latency) comes from the world's rng. Nothing reads a wall clock.

Pieces:

- ``World``: the clock and the event heap (``at``/``run_until``/``step``), the rng, a trace.
- ``NetFaults`` + ``Network``: election messages are datagrams on a link that may be delayed,
  dropped, duplicated and reordered; quorum and client connections are streams (FIFO, as TCP),
  which a fault resets instead; ``partition``/``heal`` cut links between groups of nodes.
- ``SimDisk``: ``storage.recovery.MemoryFiles`` whose fsyncs complete only when the simulated
  fsync returns; ``crash()`` loses unsynced writes and may keep a torn part of the last write.
- ``SimLoop``: the two loop methods ``DiskTxnLog`` uses (``call_soon``, ``run_in_executor``),
  on the virtual clock, so the real txn log runs unchanged over a ``SimDisk``.
- ``SimServerEnv``: the ``runtime.env.Env`` of a standalone server under the real ``Driver``.
- ``PeerDriver`` + ``SimPeerEnv``: the same ``Driver`` dispatching a ``QuorumPeerCore``'s
  actions (what ``runtime/aio_peers.py`` does in production).
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..core.actions import (
    CloseQuorumConn,
    ConnectToLeader,
    RoleChanged,
    SendQuorumPacket,
    SendToPeer,
    WriteEpoch,
)
from ..runtime.driver import Driver
from ..storage.recovery import MemoryFiles, _MemHandle

__all__ = [
    "EPOCH_BASE_MS", "World", "NetFaults", "Network", "SimDisk", "SimLoop", "SimFuture",
    "SimServerEnv", "SimPeerEnv", "PeerDriver", "DiskFaults",
]

#: The virtual clock starts here (ServerCore stamps ctime/mtime with wall-clock-like ms).
EPOCH_BASE_MS = 1_600_000_000_000


@dataclass(order=True)
class _Item:
    at: int
    seq: int
    fn: Callable[[], None] = field(compare=False)


class World:
    """Virtual time, one event heap, one rng and a bounded trace of what happened."""

    def __init__(self, seed: int, *, trace_max: int = 400, verbose: bool = False) -> None:
        self.seed = seed
        #: Trace every message and packet too (slower; for replaying a failing seed).
        self.verbose = verbose
        self.rng = random.Random(seed)
        self.now = 0
        self._seq = 0
        self._queue: list[_Item] = []
        self.trace: list[str] = []
        self._trace_max = trace_max
        #: A digest of the whole trace: equal seeds must give equal digests.
        self._digest = hashlib.blake2b(digest_size=8)
        self.steps = 0
        #: Called after every event (checkers hook in here).
        self.after_step: list[Callable[[], None]] = []
        #: Faults injected so far, by kind (the campaign summary adds them up).
        self.faults: dict[str, int] = {}
        #: When the run logged ``HEALING`` (its fault phase ended), or None before.
        self.healing_since: int | None = None

    def fault(self, kind: str, text: str | None = None) -> None:
        """Count one injected fault (and trace it when ``text`` is given)."""
        self.faults[kind] = self.faults.get(kind, 0) + 1
        if text is not None:
            self.log(text)

    def now_ms(self) -> int:
        """Wall-clock-like ms (virtual), for cores that stamp times."""
        return EPOCH_BASE_MS + self.now

    def at(self, when: int, fn: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._queue, _Item(max(when, self.now), self._seq, fn))

    def after(self, delay_ms: int, fn: Callable[[], None]) -> None:
        self.at(self.now + delay_ms, fn)

    def log(self, text: str) -> None:
        if text == "HEALING" and self.healing_since is None:
            self.healing_since = self.now
        line = f"{self.now:>8} {text}"
        self._digest.update(line.encode())
        self.trace.append(line)
        if len(self.trace) > 2 * self._trace_max:
            del self.trace[: len(self.trace) - self._trace_max]

    def step(self) -> bool:
        """Run the next event (and the per-step hooks); False when nothing is left."""
        if not self._queue:
            return False
        item = heapq.heappop(self._queue)
        self.now = max(self.now, item.at)
        item.fn()
        self.steps += 1
        for hook in self.after_step:
            hook()
        return True

    def run_until(self, t: int, *, steps_max: int | None = None) -> None:
        n = 0
        while self._queue and self._queue[0].at <= t:
            self.step()
            n += 1
            if steps_max is not None and n >= steps_max:
                return
        self.now = max(self.now, t)

    def digest(self) -> str:
        """A short hash of every trace line so far (a determinism check)."""
        return self._digest.hexdigest()

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.trace[-n:])


# ============================================================================ network


@dataclass
class NetFaults:
    """Per-message fault rates (0..1) and the delay range in ms."""

    delay_min_ms: int = 1
    delay_max_ms: int = 5
    drop: float = 0.0
    duplicate: float = 0.0
    #: Datagrams only: deliver out of order (a stream keeps FIFO).
    reorder: float = 0.0
    #: Streams only: a send resets the connection instead (TCP RST or a dead middlebox).
    reset: float = 0.0

    @classmethod
    def calm(cls) -> NetFaults:
        return cls()


class Network:
    """Links between named nodes (ints for peers, ``("c", n)`` tuples for clients).

    Cuts are directed: ``partition`` cuts both directions between groups, ``cut_one_way``
    only one (asymmetric reachability, a broken route). A datagram on a cut direction is lost.
    A stream send on a cut direction resets the connection (the route is gone and TCP gives
    up); a send into a *black hole* is lost silently and so is everything after it on that
    connection (TCP would retransmit forever): the ends notice only by their own timeouts.
    ``stall`` holds every byte on a direction until a time (a congested or frozen route),
    FIFO kept. A reset loses whatever was not delivered yet, in flight or not sent.
    """

    def __init__(self, world: World, faults: NetFaults | None = None) -> None:
        self.world = world
        self.faults = faults or NetFaults()
        #: Directed cuts (a, b): nothing from a reaches b.
        self._blocked: set[tuple[Any, Any]] = set()
        #: Directed black holes: stream bytes vanish, connections hang.
        self._holes: set[tuple[Any, Any]] = set()
        #: Connections that lost bytes to a black hole: nothing more gets through.
        self._hung: set[Any] = set()
        #: Per directed link, the time its last stream byte arrives (FIFO).
        self._fifo: dict[tuple[Any, Any], int] = {}

    def linked(self, a: Any, b: Any) -> bool:
        """Can a reach b (and b reach a)? Streams need both directions."""
        return (a, b) not in self._blocked and (b, a) not in self._blocked

    def reaches(self, a: Any, b: Any) -> bool:
        """Does a datagram from a reach b?"""
        return (a, b) not in self._blocked

    def partition(self, groups: list[list[Any]]) -> None:
        """Cut every link between members of different groups (others stay as they are)."""
        for i, g in enumerate(groups):
            for h in groups[i + 1:]:
                for a in g:
                    for b in h:
                        self._blocked.add((a, b))
                        self._blocked.add((b, a))
        self.world.fault("partition", "PARTITION "
                         + " | ".join(",".join(map(str, g)) for g in groups))

    def cut_one_way(self, src: list[Any], dst: list[Any]) -> None:
        """Nothing from ``src`` reaches ``dst``; the other direction still works."""
        for a in src:
            for b in dst:
                if a != b:
                    self._blocked.add((a, b))
        self.world.fault("one_way_cut", "CUT " + ",".join(map(str, src)) + " -> "
                         + ",".join(map(str, dst)))

    def black_hole(self, a: Any, b: Any) -> None:
        """Stream bytes from a to b vanish without a reset (until ``heal``)."""
        self._holes.add((a, b))
        self.world.fault("black_hole", f"BLACKHOLE {a} -> {b}")

    def stall(self, a: Any, b: Any, until: int) -> None:
        """Nothing on a->b arrives before ``until`` (order kept)."""
        self._fifo[(a, b)] = max(self._fifo.get((a, b), 0), until)
        self.world.fault("stall", f"STALL {a} -> {b} until {until}")

    def heal(self) -> None:
        self._blocked.clear()
        self._holes.clear()
        self.world.log("HEAL")

    def _delay(self) -> int:
        f = self.faults
        return self.world.rng.randint(f.delay_min_ms, max(f.delay_min_ms, f.delay_max_ms))

    def datagram(self, a: Any, b: Any, deliver: Callable[[], None]) -> None:
        """Send one message a->b: maybe dropped, duplicated, delayed out of order."""
        rng, f, w = self.world.rng, self.faults, self.world
        if not self.reaches(a, b):
            return
        if rng.random() < f.drop:
            w.fault("drop")
            return
        copies = 1
        if rng.random() < f.duplicate:
            w.fault("duplicate")
            copies = 2
        for _ in range(copies):
            d = self._delay()
            if rng.random() < f.reorder:
                w.fault("reorder")
                d += rng.randint(0, 10 * max(1, f.delay_max_ms))
                w.after(d, lambda: deliver() if self.reaches(a, b) else None)
            else:
                t = max(w.now + d, self._fifo.get((a, b), 0))
                self._fifo[(a, b)] = t
                w.at(t, lambda: deliver() if self.reaches(a, b) else None)

    def stream(self, a: Any, b: Any, deliver: Callable[[], None],
               reset: Callable[[], None], conn: Any = None) -> None:
        """Send bytes a->b on a connection: FIFO; a cut or a reset fault breaks it; a black
        hole swallows them (and, for a named ``conn``, everything after them)."""
        w = self.world
        if conn is not None and conn in self._hung:
            return
        if (a, b) in self._holes:
            if conn is not None:
                self._hung.add(conn)
            return
        if not self.linked(a, b):
            w.after(0, reset)
            return
        if w.rng.random() < self.faults.reset:
            w.fault("reset", f"RESET {a} -> {b}")
            w.after(0, reset)
            return
        t = max(w.now + self._delay(), self._fifo.get((a, b), 0))
        self._fifo[(a, b)] = t
        w.at(t, deliver)

    def forget(self, conn: Any) -> None:
        """A connection closed: its hung state goes with it."""
        self._hung.discard(conn)

    def stream_time(self, a: Any, b: Any) -> int:
        """When a close sent now on a->b arrives (after the bytes already in flight)."""
        t = max(self.world.now + self._delay(), self._fifo.get((a, b), 0))
        self._fifo[(a, b)] = t
        return t


# ============================================================================ disk


@dataclass
class DiskFaults:
    """fsync latency (ms), crash behaviour and injected errors."""

    fsync_min_ms: int = 1
    fsync_max_ms: int = 3
    #: Chance an fsync takes ``fsync_slow_ms`` instead.
    slow: float = 0.0
    fsync_slow_ms: int = 200
    #: Chance a crash keeps part of the unsynced bytes of one log (a torn last write).
    torn: float = 0.0
    #: Chance one writer job fails (StorageFailed): on a write, extend, create or fsync.
    error: float = 0.0
    #: Of those failures, the share that is ENOSPC (the rest is EIO).
    enospc: float = 0.0
    #: Chance a metadata operation (truncate, remove, write_atomic, directory fsync) fails
    #: with EIO; at startup that stops the process, which is restarted later.
    meta_error: float = 0.0


class _SimHandle(_MemHandle):
    def sync(self) -> None:
        self.fs.before("sync", self.name)
        assert isinstance(self.fs, SimDisk)
        self.fs.pending_syncs.append((self.directory, self.name))


class SimDisk(MemoryFiles):
    """A ``MemoryFiles`` whose log fsyncs take effect only when the simulated fsync returns.

    The writer job of ``DiskTxnLog`` runs at once (its writes land in the page cache), its
    ``sync``/``sync_dir`` calls are queued, and ``complete_syncs()`` applies them when the
    ``SimLoop`` finishes the job. A crash in between loses them.
    """

    def __init__(self, rng: random.Random, faults: DiskFaults | None = None,
                 world: World | None = None) -> None:
        super().__init__()
        self.rng = rng
        self.faults = faults or DiskFaults()
        self.world = world
        self.pending_syncs: list[tuple[str, str | None]] = []
        self.fail_next = False
        self.fail_errno = 5
        self.crashes = 0
        #: Renames done but whose directory fsync has not returned: (directory, name) ->
        #: (new content, old content or None). A crash keeps either, as a disk may.
        self.renames: dict[tuple[str, str], tuple[bytes, bytes | None]] = {}

    def _fault(self, kind: str) -> None:
        if self.world is not None:
            self.world.fault(kind)

    def before(self, op: str, name: str) -> None:
        if self.fail_next and op in ("write", "extend", "create", "sync"):
            self.fail_next = False
            err = self.fail_errno
            self._fault("enospc" if err == 28 else "eio")
            raise OSError(err, f"simulated {'ENOSPC' if err == 28 else 'EIO'} on {op}", name)
        if op in ("truncate", "remove", "write_atomic", "sync_dir") and (
                self.faults.meta_error > 0 and self.rng.random() < self.faults.meta_error):
            self._fault("eio_" + op)
            raise OSError(5, f"simulated EIO on {op}", name)

    def arm_failure(self) -> None:
        """The next write, extend, create or fsync fails (EIO, or ENOSPC at its share)."""
        self.fail_next = True
        self.fail_errno = 28 if self.rng.random() < self.faults.enospc else 5

    def create_log(self, directory: str, name: str) -> _MemHandle:
        self.before("create", name)
        self.dirs.setdefault(directory, {})[name] = _MemFileFactory()
        self.unsynced_names.setdefault(directory, set()).add(name)
        return _SimHandle(self, directory, name)

    def sync_dir(self, directory: str) -> None:
        self.before("sync_dir", directory)
        self.pending_syncs.append((directory, None))

    def rename_into_place(self, directory: str, name: str, data: bytes) -> None:
        """The rename of an fsync'd temporary file onto ``name``: visible at once, durable
        only at ``rename_durable`` (the directory fsync)."""
        old = self.get(directory, name) if name in self.list(directory) else None
        self.put(directory, name, data)
        prev = self.renames.get((directory, name))
        self.renames[(directory, name)] = (data, prev[1] if prev is not None else old)

    def rename_durable(self, directory: str, name: str) -> None:
        self.renames.pop((directory, name), None)

    def complete_syncs(self) -> None:
        for directory, name in self.pending_syncs:
            if name is None:
                self.unsynced_names.pop(directory, None)
            elif name in self.dirs.get(directory, {}):
                f = self.dirs[directory][name]
                f.synced = bytes(f.data)
        self.pending_syncs.clear()

    def fsync_ms(self) -> int:
        f = self.faults
        if self.rng.random() < f.slow:
            self._fault("slow_fsync")
            return f.fsync_slow_ms
        return self.rng.randint(f.fsync_min_ms, max(f.fsync_min_ms, f.fsync_max_ms))

    def crash(self) -> None:
        """Power loss: unsynced writes are lost, or (torn) partly kept for one log file."""
        self.pending_syncs.clear()
        self.crashes += 1
        # A rename whose directory fsync did not return: the disk kept the old or the new name.
        for (d, n), (_new, old_data) in sorted(self.renames.items()):
            if self.rng.random() < 0.5:
                continue
            self._fault("rename_lost")
            if old_data is None:
                self.dirs[d].pop(n, None)
            else:
                self.put(d, n, old_data)
        self.renames.clear()
        torn: tuple[str, str, bytes] | None = None
        if self.rng.random() < self.faults.torn:
            cands = []
            for d in sorted(self.dirs):
                for n in sorted(self.dirs[d]):
                    f = self.dirs[d][n]
                    if (n.startswith("log.") and f.synced is not None
                            and n not in self.unsynced_names.get(d, set())
                            and bytes(f.data) != f.synced):
                        cands.append((d, n))
            if cands:
                d, n = self.rng.choice(cands)
                f = self.dirs[d][n]
                old, new = f.synced or b"", bytes(f.data)
                first = next((i for i in range(len(new)) if i >= len(old) or new[i] != old[i]),
                             len(new))
                keep = self.rng.randint(1, max(1, min(len(new) - first, 300)))
                torn = (d, n, new[: first + keep] + old[first + keep:])
        super().crash()
        if torn is not None:
            self._fault("torn_write")
            d, n, data = torn
            self.dirs[d][n].data = bytearray(data)
            self.dirs[d][n].synced = data


def _MemFileFactory() -> Any:  # noqa: N802 - a stand-in for the private _MemFile class
    from ..storage.recovery import _MemFile
    return _MemFile()


class SimFuture:
    """The part of ``asyncio.Future`` that ``DiskTxnLog`` uses."""

    def __init__(self) -> None:
        self._exc: BaseException | None = None
        self._callbacks: list[Callable[[SimFuture], None]] = []

    def add_done_callback(self, cb: Callable[[SimFuture], None]) -> None:
        self._callbacks.append(cb)

    def exception(self) -> BaseException | None:
        return self._exc

    def finish(self, exc: BaseException | None) -> None:
        self._exc = exc
        for cb in self._callbacks:
            cb(self)


class SimLoop:
    """``call_soon`` and ``run_in_executor`` on the virtual clock, for ``DiskTxnLog``.

    A writer job runs its writes at once and completes after the disk's fsync latency; a crash
    (``alive`` false) means the completion never arrives, as the process is gone.
    """

    def __init__(self, world: World, disk: SimDisk, alive: Callable[[], bool],
                 run: Callable[[Callable[[], None]], None] | None = None) -> None:
        self.world = world
        self.disk = disk
        self.alive = alive
        #: Runs a callback in the process (a paused process holds it until resumed).
        self.run: Callable[[Callable[[], None]], None] = run or (lambda fn: fn())

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        self.world.after(0, lambda: self.run(lambda: fn(*args) if self.alive() else None))

    def run_in_executor(self, _executor: Any, fn: Callable[..., Any], *args: Any) -> SimFuture:
        fut = SimFuture()
        exc: BaseException | None = None
        if self.disk.rng.random() < self.disk.faults.error:
            self.disk.arm_failure()
        try:
            fn(*args)
        except OSError as e:
            exc = e
        self.disk.fail_next = False
        delay = self.disk.fsync_ms()

        def done() -> None:
            if not self.alive():
                return
            # The fsync returned (the disk has the bytes) even if the process is paused;
            # the process learns it when it runs.
            if exc is None:
                self.disk.complete_syncs()
            else:
                self.disk.pending_syncs.clear()
            self.run(lambda: fut.finish(exc) if self.alive() else None)
        self.world.after(delay, done)
        return fut


# ============================================================================ envs


class _Timer:
    """One re-armable timer on the world's clock (a generation number cancels old ones)."""

    def __init__(self, world: World, fire: Callable[[], None], alive: Callable[[], bool]) -> None:
        self.world = world
        self.fire = fire
        self.alive = alive
        self.gen = 0

    def set(self, deadline_ms: int | None) -> None:
        self.gen += 1
        if deadline_ms is None:
            return
        gen = self.gen

        def go() -> None:
            if self.gen == gen and self.alive():
                self.fire()
        self.world.at(deadline_ms - EPOCH_BASE_MS, go)


class SimServerEnv:
    """The ``Env`` of one standalone server incarnation: client streams, txn log, timer.

    ``owner`` is the node object (``cluster.StandaloneNode``); it routes sends and closes to
    the simulated clients and says whether this incarnation still runs.
    """

    def __init__(self, world: World, owner: Any, txn_log: Any) -> None:
        self.world = world
        self.owner = owner
        self.txn_log = txn_log
        self.driver: Driver | None = None
        self.timer = _Timer(world, self._fire, owner.alive_check(self))

    def _fire(self) -> None:
        drv = self.driver
        assert drv is not None
        # A paused process runs its timer when it is resumed (if it still runs by then).
        self.owner.run(lambda: drv.timer_fired() if self.driver is drv
                       and self.owner.env is self else None)

    def now_ms(self) -> int:
        return self.world.now_ms()

    def send(self, conn_id: int, data: bytes) -> None:
        self.owner.server_send(conn_id, data)

    def close(self, conn_id: int, reason: str) -> None:
        self.owner.server_close(conn_id, reason)

    def pause(self, conn_id: int) -> None:
        self.owner.server_pause(conn_id, True)

    def resume(self, conn_id: int) -> None:
        self.owner.server_pause(conn_id, False)

    def append_txns(self, txns: list[tuple[int, bytes]]) -> None:
        self.owner.appended(txns)
        self.txn_log.append(txns)

    def set_timer(self, deadline_ms: int | None) -> None:
        self.timer.set(deadline_ms)


class SimPeerEnv:
    """The peer half of an Env: election links, epoch files, quorum connections."""

    def __init__(self, world: World, owner: Any) -> None:
        self.world = world
        self.owner = owner
        self.driver: Driver | None = None
        self.timer = _Timer(world, self._fire, owner.alive_check(self))

    def _fire(self) -> None:
        drv = self.driver
        assert drv is not None
        # A paused process runs its timer when it is resumed (if it still runs by then).
        self.owner.run(lambda: drv.timer_fired() if self.driver is drv
                       and self.owner.env is self else None)

    def now_ms(self) -> int:
        return self.world.now_ms()

    def set_timer(self, deadline_ms: int | None) -> None:
        self.timer.set(deadline_ms)

    def send_to_peer(self, a: SendToPeer) -> None:
        self.owner.send_to_peer(a.sid, a.payload)

    def write_epoch(self, a: WriteEpoch) -> None:
        self.owner.write_epoch(a.kind, a.epoch)

    def connect_to_leader(self, a: ConnectToLeader) -> None:
        self.owner.connect_to_leader(a.conn_id, a.host, a.port)

    def send_quorum_packet(self, a: SendQuorumPacket) -> None:
        self.owner.send_quorum_packet(a.conn_id, a.data)

    def close_quorum_conn(self, a: CloseQuorumConn) -> None:
        self.owner.close_quorum_conn(a.conn_id, a.reason)

    def role_changed(self, a: RoleChanged) -> None:
        self.owner.role_changed(a)


class PeerDriver(Driver):
    """The shared ``Driver`` with the peer actions routed to a ``SimPeerEnv`` as well.

    ``step``/``timer_fired`` (the event path, the one timer) are the Driver's own.
    """

    __slots__ = ()

    def __init__(self, core: Any, env: Any) -> None:
        super().__init__(core, env)
        self._dispatch.update({
            SendToPeer: env.send_to_peer,
            WriteEpoch: env.write_epoch,
            ConnectToLeader: env.connect_to_leader,
            SendQuorumPacket: env.send_quorum_packet,
            CloseQuorumConn: env.close_quorum_conn,
            RoleChanged: env.role_changed,
        })

    def start(self, actions: list[Any]) -> None:
        """Run the actions of ``QuorumPeerCore.start`` and arm the first timer."""
        for a in actions:
            self._dispatch[type(a)](a)
        deadline = self.core.deadline_ms()
        self._deadline_ms = deadline
        self.env.set_timer(deadline)
