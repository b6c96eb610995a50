"""What the clients of an ensemble see (``checkers.ClientChecker``): each check fails on a bad
history fed to it directly, and seeded ensemble runs (``vopr.run_zab``) catch a server broken
on purpose (a monkeypatch for the duration of one test): a follower that answers reads from a
stale copy of its tree, a closeSession that leaves the ephemerals, sessions that never expire,
and sessions that expire four times too early."""

from __future__ import annotations

import copy
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest

from zkfast.core.datatree import DataTree
from zkfast.core.server import ServerCore
from zkfast.core.sessions import SessionTracker
from zkfast.testing import vopr, zab_cluster
from zkfast.testing.checkers import EXPIRY_SLACK_MS, ClientChecker, Violation
from zkfast.testing.cluster import make_verifier
from zkfast.testing.linearizability import History
from zkfast.testing.mutations import patch_attr
from zkfast.testing.rawclient import Writer
from zkfast.testing.sim_env import World
from zkfast.testing.workload import RegisterClient

# ------------------------------------------------------------------ a world of fakes


class _Server:
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def client_open(self, cl: Any, conn_id: int) -> None:
        pass

    def client_frames(self, cl: Any, conn_id: int, frames: list[bytes]) -> None:
        self.frames += frames

    def reset(self, conn_id: int, cl: Any) -> None:
        cl.closed(conn_id)


def _peer(state: str, leader: int) -> Any:
    return SimpleNamespace(state=SimpleNamespace(name=state),
                           zab_state=SimpleNamespace(name="BROADCAST"), leader_sid=leader,
                           current_epoch=1)


def _node(sid: int, state: str = "FOLLOWING", zxid: int = 0) -> Any:
    tree = DataTree()
    tree.last_processed_zxid = zxid
    core = SimpleNamespace(tree=tree, sessions=SessionTracker(tick_ms=2000, now_ms=0))
    return SimpleNamespace(sid=sid, core=core, peer=_peer(state, 1))


class _Host:
    """Three servers (p1 leads), one client checker, clients made by ``client``."""

    def __init__(self) -> None:
        self.world = World(0)
        self.think_ms = 0
        self.conn_clients: dict[int, Any] = {}
        self.append_hooks: list[Any] = []
        self.send_hooks: list[Any] = []
        self.zab_nodes = {1: _node(1, "LEADING"), 2: _node(2), 3: _node(3)}
        self.verifier = make_verifier(3)
        self.reg_clients: list[RegisterClient] = []
        self._client_server: dict[int, tuple[int | None, int]] = {}
        self.server = _Server()
        self._conn = 0
        self.checker = ClientChecker(self)

    def new_conn_id(self) -> int:
        self._conn += 1
        return self._conn

    def server_for(self, cl: Any) -> _Server:
        self._client_server[cl.cid] = (cl.conn_id, 2)
        return self.server

    def client(self, cid: int, session: int) -> RegisterClient:
        cl = RegisterClient(self, cid, ["/r0"], History(), self.checker)
        cl.connect()
        assert cl.conn_id is not None
        cl.stopped = True  # no workload of its own: the test sends
        _feed(cl, Writer().int(0).int(10_000).long(session).buffer(b"\0" * 16).out)
        cl.stopped = False
        self.reg_clients.append(cl)
        return cl


def _feed(cl: RegisterClient, payload: bytes | bytearray) -> None:
    assert cl.conn_id is not None
    cl.received(cl.conn_id, struct.pack(">i", len(payload)) + bytes(payload))


def _stat(czxid: int, mzxid: int, version: int = 0) -> bytes:
    return struct.pack(">qqqqiiiqiiq", czxid, mzxid, 0, 0, version, 0, 0, 0, 1, 0, czxid)


def _reply(cl: RegisterClient, xid: int, zxid: int, err: int = 0, body: bytes = b"") -> None:
    _feed(cl, Writer().int(xid).long(zxid).int(err).out + body)


def _inflight(cl: RegisterClient, *reqs: tuple[int, str, str]) -> None:
    cl.stopped = True  # replies must not start the client's own workload
    for xid, kind, key in reqs:
        cl.inflight.append((xid, kind, key))
        cl.obs.sent(cl, xid, kind, key)


def _read_body(czxid: int, mzxid: int) -> bytes:
    return bytes(Writer().buffer(b"v").out) + _stat(czxid, mzxid)


@pytest.fixture
def host() -> _Host:
    return _Host()


# ------------------------------------------------------------------ bad histories


def test_fifo_a_reply_out_of_request_order(host: _Host) -> None:
    cl = host.client(101, 0x10)
    _inflight(cl, (1, "set", "/r0"), (2, "read", "/r0"))
    with pytest.raises(Violation, match="FIFO: c101 .* xid 2, expected xid 1"):
        _reply(cl, 2, 0x100, 0, _read_body(1, 1))


def test_fifo_in_order_passes(host: _Host) -> None:
    cl = host.client(101, 0x10)
    _inflight(cl, (1, "set", "/r0"), (2, "read", "/r0"))
    _reply(cl, 1, 0x105, 0, _stat(0x101, 0x105, 1))
    _reply(cl, 2, 0x105, 0, _read_body(0x101, 0x105))
    assert host.checker.counts["read-your-writes"] == 1


def test_an_older_view_after_a_reconnect(host: _Host) -> None:
    cl = host.client(101, 0x10)
    _inflight(cl, (1, "read", "/r0"))
    _reply(cl, 1, 0x205, -101)
    assert cl.conn_id is not None
    host.server.reset(cl.conn_id, cl)
    cl.conn_id = None
    cl2 = cl
    cl2.stopped = False
    cl2.connect()
    cl2.stopped = True
    _feed(cl2, Writer().int(0).int(10_000).long(0x10).buffer(b"\0" * 16).out)
    _inflight(cl2, (2, "read", "/r0"))
    with pytest.raises(Violation, match="older view: c101 .* 0x200 after seeing 0x205"):
        _reply(cl2, 2, 0x200, -101)


def test_a_server_behind_must_refuse_the_session(host: _Host) -> None:
    cl = host.client(101, 0x10)
    cl.connected, cl.last_zxid = False, 0x300
    resp = Writer().int(0).int(10_000).long(0x10).buffer(b"\0" * 16).out
    frame = struct.pack(">i", len(resp)) + bytes(resp)
    with pytest.raises(Violation, match="p2 accepted c101's session at zxid 0x2ff"):
        host.checker.on_send(_node(2, zxid=0x2FF), cl, frame)
    host.checker.on_send(_node(2, zxid=0x300), cl, frame)  # caught up: fine


def test_read_your_writes_a_stale_node(host: _Host) -> None:
    cl = host.client(101, 0x10)
    _inflight(cl, (1, "set", "/r0"), (2, "read", "/r0"))
    _reply(cl, 1, 0x105, 0, _stat(0x101, 0x105, 1))
    with pytest.raises(Violation, match="read-your-writes: c101 .* older than the set at 0x105"):
        _reply(cl, 2, 0x106, 0, _read_body(0x101, 0x103))


def test_read_your_writes_nonode_needs_a_delete_in_between(host: _Host) -> None:
    cl = host.client(101, 0x10)
    _inflight(cl, (1, "create", "/r0"), (2, "read", "/r0"), (3, "read", "/r0"))
    _reply(cl, 1, 0x105)
    with pytest.raises(Violation, match="read-your-writes: .* saw NONODE"):
        _reply(cl, 2, 0x107, -101)
    # A delete of /r0 logged at 0x106 (someone else's) makes the same NONODE fine.
    txn = struct.pack(">qiqqi", 0x20, 1, 0x106, 0, 2) + bytes(Writer().string("/r0").int(-1).out)
    host.checker.on_append(host.zab_nodes[1], [(0x106, txn)])
    cl.inflight.insert(0, (2, "read", "/r0"))
    _reply(cl, 2, 0x107, -101)
    _reply(cl, 3, 0x107, -101)


def test_read_your_writes_after_a_delete(host: _Host) -> None:
    cl = host.client(101, 0x10)
    _inflight(cl, (1, "delete", "/r0"), (2, "read", "/r0"))
    _reply(cl, 1, 0x108)
    with pytest.raises(Violation, match="older than the delete at 0x108"):
        _reply(cl, 2, 0x109, 0, _read_body(0x101, 0x107))


def test_sync_then_read_misses_a_write_acknowledged_to_another(host: _Host) -> None:
    a, b = host.client(101, 0x10), host.client(102, 0x11)
    _inflight(b, (1, "set", "/r0"))
    _reply(b, 1, 0x110, 0, _stat(0x101, 0x110, 3))
    _inflight(a, (1, "sync", "/r0"), (2, "read", "/r0"))
    _reply(a, 1, 0x110)
    with pytest.raises(Violation, match="sync then read: c101 .* older than the set at 0x110"):
        _reply(a, 2, 0x110, 0, _read_body(0x101, 0x10F))


def test_a_sync_answered_below_an_acknowledged_write(host: _Host) -> None:
    a, b = host.client(101, 0x10), host.client(102, 0x11)
    _inflight(b, (1, "set", "/r0"))
    _reply(b, 1, 0x110, 0, _stat(0x101, 0x110, 3))
    _inflight(a, (1, "sync", "/r0"), (2, "read", "/r0"))
    with pytest.raises(Violation, match="sync: c101's sync answered at zxid 0x10f"):
        _reply(a, 1, 0x10F)


def test_ephemerals_of_a_session_nobody_was_given(host: _Host) -> None:
    host.zab_nodes[3].core.tree.ephemerals[0x99] = {"/e9"}
    with pytest.raises(Violation, match="p3 holds ephemerals .* session 0x99, which no client"):
        host.checker.check()


def test_ephemerals_after_an_acknowledged_close(host: _Host) -> None:
    cl = host.client(101, 0x10)
    _inflight(cl, (1, "ephemeral", "/e101.1"), (2, "close", ""))
    _reply(cl, 1, 0x120)
    _reply(cl, 2, 0x121)
    tree = host.zab_nodes[2].core.tree
    tree.ephemerals[0x10] = {"/e101.1"}
    tree.last_processed_zxid = 0x120
    host.checker.check()  # not yet at the close: fine
    host.world.now = 100
    tree.last_processed_zxid = 0x121
    with pytest.raises(Violation, match="p2 at zxid 0x121 holds ephemerals .* closed at 0x121"):
        host.checker.check()


def test_an_abandoned_session_must_expire_after_healing(host: _Host) -> None:
    cl = host.client(101, 0x10)
    host.checker.abandoned(cl, 0x10)
    host.zab_nodes[1].core.sessions.add_session(0x10, 10_000, 0)
    host.world.log("HEALING")
    host.checker.check()
    host.world.now = 10_000 + EXPIRY_SLACK_MS - 100
    host.checker.check()  # not due yet
    host.world.now = 10_000 + EXPIRY_SLACK_MS
    with pytest.raises(Violation, match="session expiry: session 0x10 .* still live"):
        host.checker.check()


def test_a_session_observed_expired_loses_its_ephemerals(host: _Host) -> None:
    cl = host.client(101, 0x10)
    host.checker.expired(cl, 0x10)
    host.zab_nodes[2].core.tree.ephemerals[0x10] = {"/e101.1"}
    host.world.log("HEALING")
    host.checker.check()
    host.world.now = 20_000
    with pytest.raises(Violation, match="p2 still holds ephemerals of ended session 0x10"):
        host.checker.check()


def test_a_pinging_session_must_not_expire(host: _Host) -> None:
    host.world.log("HEALING")
    host.checker.check()  # the leader settles at 0, p2 serves from 0
    host.world.now = 500
    host.client(101, 0x10)  # connected at 500
    host.zab_nodes[1].core.sessions.add_session(0x10, 10_000, 500)
    host.world.now = 600
    host.checker.check()
    assert host.checker.counts["kept_alive"] == 1
    host.zab_nodes[1].core.sessions.set_closing(0x10)
    host.world.now = 700
    with pytest.raises(Violation, match="session expiry: session 0x10 of c101, .* is closing"):
        host.checker.check()


def test_a_kept_alive_session_is_not_told_it_expired(host: _Host) -> None:
    host.world.log("HEALING")
    host.checker.check()
    host.world.now = 500
    cl = host.client(101, 0x10)
    host.zab_nodes[1].core.sessions.add_session(0x10, 10_000, 500)
    host.world.now = 600
    host.checker.check()
    host.world.now = 1_500
    with pytest.raises(Violation, match="c101 was told session 0x10 expired at 1500 ms"):
        host.checker.expired(cl, 0x10)


def test_a_silent_client_may_expire(host: _Host) -> None:
    host.world.log("HEALING")
    host.checker.check()
    host.world.now = 500
    host.client(101, 0x10)
    host.world.now = 500 + 10_000 // 3 + 200  # no ping for over a third of the timeout
    host.checker.check()
    assert "kept_alive" not in host.checker.counts


# ------------------------------------------------------------------ broken servers


@contextmanager
def stale_follower_reads() -> Iterator[None]:
    """A learner answers reads from a copy of its nodes taken at its first read (with the
    current zxid in the reply header)."""
    real = ServerCore._lookup

    def lookup(self: ServerCore, path: str | None) -> Any:
        if not self._learner:
            return real(self, path)
        stale = self.__dict__.get("_stale_nodes")
        if stale is None:
            stale = self.__dict__["_stale_nodes"] = copy.deepcopy(self.tree.nodes)
        return stale.get(path or "/")
    with patch_attr(ServerCore, "_lookup", lookup):
        yield


@contextmanager
def close_keeps_ephemerals() -> Iterator[None]:
    """closeSession leaves the session's ephemerals in the tree."""
    def apply_close(self: DataTree, header: Any, record: Any, triggers: Any) -> None:
        pass
    with patch_attr(DataTree, "_apply_close_session", apply_close):
        yield


@contextmanager
def sessions_never_expire() -> Iterator[None]:
    """The expirer touches every session it finds due instead of expiring it."""
    real = SessionTracker.poll_expired

    def poll(self: SessionTracker, now_ms: int) -> list[int]:
        for sid in real(self, now_ms):
            s = self.sessions[sid]
            s.closing = False
            self._update_expiry(s, s.timeout_ms, now_ms)
        return []
    with patch_attr(SessionTracker, "poll_expired", poll):
        yield


@contextmanager
def sessions_expire_early() -> Iterator[None]:
    """Every touch gives a session a quarter of its timeout."""
    real = SessionTracker._update_expiry

    def update(self: SessionTracker, s: Any, timeout_ms: int, now_ms: int) -> None:
        real(self, s, timeout_ms // 4, now_ms)
    with patch_attr(SessionTracker, "_update_expiry", update):
        yield


#: name -> (the broken server, seeds, what the first violation line must say)
BROKEN = {
    "stale_follower_reads": (stale_follower_reads, [1, 2],
                             ("read-your-writes", "sync then read")),
    "close_keeps_ephemerals": (close_keeps_ephemerals, [1, 5], ("holds ephemerals",)),
    # Expiry is checked after healing only: 4 of seeds 1..30 heal long enough to see it.
    "sessions_never_expire": (sessions_never_expire, [8, 14], ("session expiry",)),
    "sessions_expire_early": (sessions_expire_early, [8, 16], ("session expiry",)),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_seeded_runs_catch_the_broken_server(name: str) -> None:
    broken, seeds, says = BROKEN[name]
    with broken():
        results = [vopr.run_zab(s) for s in seeds]
    for r in results:
        assert not r.ok, f"{name}: seed {r.seed} ran clean"
        first = r.error.splitlines()[0]
        assert any(s in first for s in says), f"{name}: seed {r.seed}: {first}"


def test_fixed_seeds_exercise_every_client_check(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Any] = []
    real = zab_cluster.ZabCluster

    def capture(*a: Any, **k: Any) -> Any:
        made.append(real(*a, **k))
        return made[-1]
    monkeypatch.setattr(vopr, "ZabCluster", capture)
    counts: dict[str, int] = {}
    for seed in range(1, 9):
        res = vopr.run_zab(seed)
        assert res.ok, f"seed {seed}: {res.error}"
        for k, v in made[-1].client_checker.counts.items():
            counts[k] = counts.get(k, 0) + v
    for what in ("accepts", "read-your-writes", "sync then read", "kept_alive"):
        assert counts.get(what, 0) > 0, (what, counts)
