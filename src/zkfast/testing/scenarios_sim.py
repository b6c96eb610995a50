"""Scripted scenarios on the simulated ensemble (``zab_cluster``), for known-failure tests.

``Ensemble`` wraps a ``ZabCluster`` on a calm network with a ``ZabChecker`` attached, so every
invariant of the checker holds at every step of a script (a broken one raises ``Violation``
out of ``run``), and adds what scripts need: waiting for a serving leader, pinned clients whose
acknowledged writes are remembered, per-node disk latency, role history, convergence at the
end (every node in BROADCAST at one zxid with one digest, every acknowledged write present).

``ScriptClient`` is one session on one chosen server that sends exactly the requests the
script asks for (pipelined if asked), and records each reply in arrival order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .checkers import ZabChecker
from .rawclient import OP, OPEN_ACL, Reader, Writer, read_connect_response, take_frames
from .sim_env import DiskFaults, NetFaults, World
from .zab_cluster import ZabCluster, ZabNode

__all__ = ["Ensemble", "ScriptClient", "Reply", "ScenarioFailed"]

SESSION_TIMEOUT_MS = 30_000


class ScenarioFailed(AssertionError):
    """A scripted scenario did not reach a state it waited for."""


@dataclass
class Reply:
    xid: int
    zxid: int
    err: int
    op: str
    path: str
    data: bytes | None = None


@dataclass
class _Pending:
    op: str
    path: str
    value: bytes | None


class ScriptClient:
    """One session on one server of an ``Ensemble``; requests only when the script asks."""

    def __init__(self, ens: Ensemble, cid: int, sid: int) -> None:
        self.ens = ens
        self.cid = cid
        self.name = ("c", cid)
        self.sid = sid
        self.session_id = 0
        self.passwd = b"\0" * 16
        self.last_zxid = 0
        self.conn_id: int | None = None
        self.connected = False
        self.frames_seen = 0
        self.stopped = False
        self._buf = bytearray()
        self._xid = 0
        self.pending: dict[int, _Pending] = {}
        self.replies: list[Reply] = []
        #: Connections that ended (by either side), and the requests they left unanswered.
        self.closes = 0
        self.unknown: list[_Pending] = []

    # ---- connection
    def connect(self, sid: int | None = None) -> None:
        if sid is not None:
            self.sid = sid
        ens = self.ens
        conn_id = ens.cluster.new_conn_id()
        self.conn_id = conn_id
        self.connected = False
        self._buf.clear()
        ens.cluster.conn_clients[conn_id] = self
        w = Writer().int(0).long(self.last_zxid).int(SESSION_TIMEOUT_MS).long(self.session_id)
        w.buffer(self.passwd).bool(False)
        node: Any = ens.nodes[self.sid]  # a StandaloneNode serves any client-shaped object
        node.client_open(self, conn_id)
        node.client_frames(self, conn_id, [bytes(w.out)])

    def closed(self, conn_id: int) -> None:
        if conn_id != self.conn_id:
            return
        self.conn_id = None
        self.connected = False
        self.closes += 1
        self.unknown.extend(self.pending[x] for x in sorted(self.pending))
        self.pending.clear()

    def received(self, conn_id: int, data: bytes) -> None:
        if conn_id != self.conn_id:
            return
        self.frames_seen += 1
        self._buf += data
        for frame in take_frames(self._buf):
            self._frame(frame)

    def _frame(self, frame: bytes) -> None:
        r = Reader(frame)
        if not self.connected:
            timeout, sid, pw = read_connect_response(r)
            if timeout <= 0:
                self.session_id, self.passwd = 0, b"\0" * 16
                return
            self.session_id, self.passwd = sid, pw
            self.connected = True
            return
        xid, zxid, err = r.int(), r.long(), r.int()
        if xid < 0:
            return
        if zxid > 0:
            self.last_zxid = max(self.last_zxid, zxid)
        p = self.pending.pop(xid, None)
        if p is None:
            return
        data = r.buffer() if p.op == "get" and err == 0 else None
        self.replies.append(Reply(xid, zxid, err, p.op, p.path, data))
        if err == 0 and p.op in ("create", "set") and p.value is not None:
            self.ens.acked[p.path] = (p.value, zxid)

    # ---- requests
    def _send(self, op: str, path: str, body: Writer, value: bytes | None = None) -> int:
        assert self.conn_id is not None and self.connected, f"c{self.cid} is not connected"
        self._xid += 1
        frame = Writer().int(self._xid).int(OP[_OPS[op]])
        frame.out += body.out
        self.pending[self._xid] = _Pending(op, path, value)
        node: Any = self.ens.nodes[self.sid]
        node.client_frames(self, self.conn_id, [bytes(frame.out)])
        return self._xid

    def create(self, path: str, value: bytes) -> int:
        w = Writer().string(path).buffer(value)
        w.acls(OPEN_ACL).int(0)
        return self._send("create", path, w, value)

    def set(self, path: str, value: bytes) -> int:
        return self._send("set", path, Writer().string(path).buffer(value).int(-1), value)

    def get(self, path: str) -> int:
        return self._send("get", path, Writer().string(path).bool(False))

    def sync(self, path: str) -> int:
        return self._send("sync", path, Writer().string(path))

    def reply(self, xid: int) -> Reply | None:
        for r in self.replies:
            if r.xid == xid:
                return r
        return None


_OPS = {"create": "create", "set": "setData", "get": "getData", "sync": "sync"}


@dataclass
class Transition:
    at: int
    sid: int
    state: str
    zab: str
    epoch: int


@dataclass
class Ensemble:
    """A ``ZabCluster`` of ``n`` peers (the last ``observers`` of them observe) on a calm
    network, checked every step by ``ZabChecker``."""

    seed: int
    n: int = 3
    observers: int = 0
    delay_max_ms: int = 2
    tick_ms: int = 2000
    init_limit: int = 5
    #: zookeeper.forceSnapshotSync on every peer (every sync is a SNAP).
    force_snap: bool = False
    verbose: bool = False
    world: World = field(init=False)
    cluster: ZabCluster = field(init=False)
    checker: ZabChecker = field(init=False)
    #: path -> (value, zxid) of every acknowledged create/setData (the latest per path).
    acked: dict[str, tuple[bytes, int]] = field(init=False, default_factory=dict)
    transitions: list[Transition] = field(init=False, default_factory=list)
    #: Every safety decision the cores traced: (time, sid, event, fields).
    traces: list[tuple[int, int, str, dict[str, Any]]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.world = World(self.seed, verbose=self.verbose, trace_max=2000)
        obs = tuple(range(self.n - self.observers + 1, self.n + 1))
        self.cluster = ZabCluster(self.world, self.n, observers=obs, registers=0,
                                  net_faults=NetFaults(delay_min_ms=1,
                                                       delay_max_ms=self.delay_max_ms),
                                  disk_faults=DiskFaults(), tick_ms=self.tick_ms,
                                  init_limit=self.init_limit)
        self.checker = ZabChecker(self.cluster)
        if self.force_snap:
            plain = self.cluster.config_for

            def forced(sid: int) -> Any:
                cfg = plain(sid)
                assert cfg.quorum is not None
                return dataclasses.replace(
                    cfg, quorum=dataclasses.replace(cfg.quorum, force_snapshot_sync=True))
            self.cluster.config_for = forced  # type: ignore[method-assign]
        self.cluster.trace_hooks.append(
            lambda node, event, f: self.traces.append((self.world.now, node.sid, event, f)))
        self._last: dict[int, tuple[str, str, int]] = {}
        self._clients = 0
        self.world.after_step.append(self._watch_roles)

    # ---- access
    @property
    def nodes(self) -> dict[int, ZabNode]:
        return self.cluster.zab_nodes

    @property
    def now(self) -> int:
        return self.world.now

    def peer(self, sid: int) -> Any:
        p = self.nodes[sid].peer
        assert p is not None, f"p{sid} is down"
        return p

    def state(self, sid: int) -> str:
        """``"STATE/ZAB"`` of a live peer, ``"down"`` otherwise."""
        p = self.nodes[sid].peer
        return "down" if p is None else f"{p.state.name}/{p.zab_state.name}"

    def tree_zxid(self, sid: int) -> int:
        core = self.nodes[sid].core
        assert core is not None
        return int(core.tree.last_processed_zxid)

    def data(self, sid: int, path: str) -> bytes | None:
        core = self.nodes[sid].core
        assert core is not None
        zn = core.tree.nodes.get(path)
        return None if zn is None or zn.data is None else bytes(zn.data)

    def _watch_roles(self) -> None:
        for sid, nd in self.nodes.items():
            p = nd.peer
            cur = ("DOWN", "", -1) if p is None else (p.state.name, p.zab_state.name,
                                                      p.current_epoch)
            if self._last.get(sid) != cur:
                self._last[sid] = cur
                self.transitions.append(Transition(self.world.now, sid, *cur))

    def traced(self, event: str, since: int = 0, **match: Any) -> list[dict[str, Any]]:
        """The fields of every ``event`` traced since ``since`` whose fields match."""
        return [dict(f, at=t, by=sid) for t, sid, e, f in self.traces
                if e == event and t >= since and all(f.get(k) == v for k, v in match.items())]

    def roles_of(self, sid: int, since: int = 0) -> list[str]:
        return [f"{t.state}/{t.zab}" for t in self.transitions if t.sid == sid and t.at >= since]

    # ---- time
    def start(self, *sids: int) -> None:
        """Start the given peers (all when none is named)."""
        for sid in sids or sorted(self.nodes):
            assert self.nodes[sid].start(), f"p{sid} failed to start"

    def run(self, ms: int) -> None:
        self.world.run_until(self.world.now + ms)

    def run_until(self, pred: Callable[[], bool], limit_ms: int, what: str = "",
                  step_ms: int = 5) -> int:
        """Run until ``pred()``; returns the time it took. ``ScenarioFailed`` past the limit."""
        start = self.world.now
        while not pred():
            if self.world.now - start >= limit_ms:
                raise ScenarioFailed(f"not within {limit_ms} ms: {what}\n{self.tail()}")
            self.world.run_until(self.world.now + step_ms)
        return self.world.now - start

    def tail(self, n: int = 80) -> str:
        return self.world.tail(n)

    # ---- roles
    def leader(self) -> int | None:
        """The leader in BROADCAST followed by a quorum in BROADCAST, if any."""
        return self.checker.settled()

    def wait_leader(self, limit_ms: int = 30_000) -> int:
        self.run_until(lambda: self.leader() is not None, limit_ms, "a serving leader")
        ld = self.leader()
        assert ld is not None
        return ld

    def broadcasting(self, sid: int) -> bool:
        p = self.nodes[sid].peer
        return p is not None and p.zab_state.name == "BROADCAST"

    def wait_broadcast(self, *sids: int, limit_ms: int = 30_000) -> None:
        self.run_until(lambda: all(self.broadcasting(s) for s in sids), limit_ms,
                       f"p{sids} in BROADCAST")

    def followers(self, leader: int) -> list[int]:
        return [s for s in sorted(self.nodes) if s != leader and self.broadcasting(s)]

    # ---- faults
    def crash(self, *sids: int) -> None:
        for sid in sids:
            self.world.fault("crash", f"SCRIPT crash p{sid}")
            self.nodes[sid].crash()

    def restart(self, *sids: int) -> None:
        for sid in sids:
            self.world.log(f"SCRIPT restart p{sid}")
            assert self.nodes[sid].start(), f"p{sid} failed to restart"

    def partition(self, *groups: list[int]) -> None:
        self.cluster.partition([list(g) for g in groups])

    def heal(self) -> None:
        self.cluster.heal()

    def fsync_ms(self, sid: int, lo: int, hi: int | None = None) -> None:
        """This peer's fsyncs (log, epoch files, snapshots) take ``lo``..``hi`` ms from now."""
        self.nodes[sid].disk.faults = DiskFaults(fsync_min_ms=lo, fsync_max_ms=hi or lo)

    # ---- clients
    def client(self, sid: int) -> ScriptClient:
        """A connected session on ``sid`` (which must be serving)."""
        self._clients += 1
        cl = ScriptClient(self, 1000 + self._clients, sid)
        cl.connect()
        self.run_until(lambda: cl.connected, 5_000, f"c{cl.cid} connected to p{sid}")
        return cl

    def write(self, cl: ScriptClient, path: str, value: bytes, *, create: bool = True,
              limit_ms: int = 10_000) -> Reply:
        """One write through ``cl``, waited for; fails unless it succeeds."""
        xid = cl.create(path, value) if create else cl.set(path, value)
        self.run_until(lambda: cl.reply(xid) is not None or xid not in cl.pending,
                       limit_ms, f"reply to {path}")
        r = cl.reply(xid)
        assert r is not None and r.err == 0, f"write {path} failed: {r}\n{self.tail()}"
        return r

    def writes(self, cl: ScriptClient, prefix: str, count: int) -> list[Reply]:
        return [self.write(cl, f"{prefix}{i}", f"{prefix}{i}".encode()) for i in range(count)]

    def background_writes(self, cl: ScriptClient, prefix: str, count: int,
                          gap_ms: int) -> None:
        """Create ``prefix0..`` through ``cl``, one every ``gap_ms``, without waiting for
        replies (skipped while ``cl`` is not connected)."""
        def one(i: int) -> None:
            if i >= count:
                return
            if cl.connected and cl.conn_id is not None:
                cl.create(f"{prefix}{i}", f"{prefix}{i}".encode())
            self.world.after(gap_ms, lambda: one(i + 1))
        one(0)

    # ---- the end
    def converge(self, limit_ms: int = 120_000, *, skip: tuple[int, ...] = ()) -> int:
        """Heal the network, start every peer that is down, and wait until every peer is in
        BROADCAST under one leader with one tree (equal zxid, equal digest); then every
        acknowledged write must be in it. Returns the leader."""
        self.world.log("SCRIPT converge")
        self.heal()
        sids = [s for s in sorted(self.nodes) if s not in skip]
        for sid in sids:
            nd = self.nodes[sid]
            nd.unpause()
            nd.disk.faults = DiskFaults()
            if not nd.alive:
                nd.start()

        def done() -> bool:
            ld = self.leader()
            if ld is None or not all(self.broadcasting(s) for s in sids):
                return False
            z = self.tree_zxid(ld)
            return all(self.tree_zxid(s) == z for s in sids)
        self.run_until(done, limit_ms, "every peer in BROADCAST at one zxid")
        ld = self.leader()
        assert ld is not None
        digests = {s: self.nodes[s].core.tree.digest() for s in sids}  # type: ignore[union-attr]
        assert len(set(digests.values())) == 1, f"trees differ at one zxid: {digests}"
        self.assert_acked(ld)
        return ld

    def assert_acked(self, sid: int) -> None:
        """Every acknowledged write is in ``sid``'s tree (with its value)."""
        for path, (value, zxid) in sorted(self.acked.items()):
            got = self.data(sid, path)
            assert got == value, (f"acknowledged {path}={value!r} (zxid {zxid:#x}) lost on "
                                  f"p{sid}: {got!r}\n{self.tail()}")
