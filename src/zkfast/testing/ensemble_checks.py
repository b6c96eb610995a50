"""Kazoo workloads and replica checks for real ensembles (`procs.Ensemble`), any mix of kinds.

What a replicated service must show, as reusable pieces for the runtime and interop tests:

* `Clients`: kazoo clients that are always stopped and closed (a context manager).
* `run_workload`: every client operation through every server of an ensemble, with the
  results checked from clients on *other* servers: create in every mode (persistent,
  sequential, ephemeral, ephemeral sequential), getData/setData with versions, children,
  multi, delete, data and child watches firing on a client of another server than the writer,
  and `sync` then read. It returns the znodes it left, for later comparison.
* `AckedWriter`: a thread that creates ``<root>/n<i>`` one at a time through a client that may
  move between servers, and remembers every create that was acknowledged; `check_acked` then
  reads every one of them from every server (no acknowledged write lost).
* `tree_dump` / `assert_same_trees`: every znode's data and stat, read through one client per
  server after `sync`, compared across servers.
* `pad_to_digest_point` / `assert_same_digests`: each server's data tree digest at an equal
  zxid, from the `hash` four-letter word. Apache 3.8 keeps a digest for every zxid whose
  counter is a multiple of 128 (``DataTree.DIGEST_LOG_INTERVAL``); zkfast reports its current
  one, so the ensemble is first brought to such a zxid with a few setData calls.

Everything polls with generous bounds; nothing sleeps to wait for the servers.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadVersionError,
    ConnectionLoss,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    OperationTimeoutError,
    SessionExpiredError,
    SessionMovedError,
)
from kazoo.protocol.states import EventType

from ..storage.txnlog import scan_log
from .procs import Ensemble, wait_until

__all__ = [
    "AckedWriter",
    "Clients",
    "assert_same_digests",
    "assert_same_trees",
    "check_acked",
    "equal_zxids",
    "logged_zxids",
    "write_some",
    "pad_to_digest_point",
    "run_workload",
    "tree_dump",
    "DIGEST_LOG_INTERVAL",
]

#: Apache's DataTree keeps a digest for every zxid that is a multiple of this.
DIGEST_LOG_INTERVAL = 128
WAIT_S = 60.0


class Clients:
    """Kazoo clients made by `connect`, all stopped and closed on exit."""

    def __init__(self) -> None:
        self.clients: list[KazooClient] = []

    def connect(self, hosts: str, *, timeout_s: float = 10.0, start_timeout_s: float = 60.0,
                **kwargs: Any) -> KazooClient:
        """A started client of `hosts` (a session timeout of `timeout_s`)."""
        client = KazooClient(hosts=hosts, timeout=timeout_s, **kwargs)
        self.clients.append(client)
        client.start(timeout=start_timeout_s)
        return client

    def close(self, client: KazooClient) -> None:
        """Stop `client` (its session is closed, as `KazooClient.stop` does) and close it."""
        try:
            client.stop()
        finally:
            client.close()

    def __enter__(self) -> Clients:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for client in self.clients:
            try:
                client.stop()
                client.close()
            except Exception:  # noqa: BLE001 - teardown goes on for the others
                pass


# ------------------------------------------------------------------------------ reading


def _sync(client: KazooClient, path: str = "/") -> None:
    client.sync(path)


def read_after_sync(client: KazooClient, path: str) -> tuple[bytes, Any] | None:
    """`sync` then getData through `client`'s server; None when the znode does not exist."""
    _sync(client, path if client.exists(path) is not None else "/")
    try:
        return client.get(path)  # type: ignore[no-any-return]
    except NoNodeError:
        return None


def tree_dump(client: KazooClient, root: str = "/", *,
              skip: Iterable[str] = ("/zookeeper",)) -> dict[str, tuple[bytes, tuple[int, ...]]]:
    """Every znode under `root` (outside `skip`): path -> (data, stat tuple), after `sync`.

    The stat includes czxid, mzxid, pzxid, ctime, mtime, versions, ephemeralOwner and the
    child count: all of it comes from the txns, so every replica must agree on it.
    """
    skipped = set(skip)
    _sync(client, root)
    out: dict[str, tuple[bytes, tuple[int, ...]]] = {}
    todo = [root]
    while todo:
        path = todo.pop()
        if path in skipped:
            continue
        try:
            data, stat = client.get(path)
            children = client.get_children(path)
        except NoNodeError:
            continue
        out[path] = (data, (stat.czxid, stat.mzxid, stat.pzxid, stat.ctime, stat.mtime,
                            stat.version, stat.cversion, stat.aversion, stat.ephemeralOwner,
                            stat.dataLength, stat.numChildren))
        base = path.rstrip("/")
        todo.extend(f"{base}/{c}" for c in sorted(children))
    return out


def assert_same_trees(ens: Ensemble, sids: Sequence[int] | None = None, root: str = "/") -> int:
    """Dump the tree under `root` through a fresh client of each server in `sids` and assert
    that they are equal (poll: a server may still be applying the last commits). Returns the
    number of znodes compared."""
    chosen = list(ens.kinds) if sids is None else list(sids)
    with Clients() as clients:
        per = {sid: clients.connect(ens.servers[sid].hosts) for sid in chosen}
        dumps: dict[int, dict[str, tuple[bytes, tuple[int, ...]]]] = {}

        def equal() -> bool:
            dumps.clear()
            dumps.update({sid: tree_dump(c, root) for sid, c in per.items()})
            first = dumps[chosen[0]]
            return all(d == first for d in dumps.values())
        try:
            wait_until(equal, WAIT_S, f"equal trees under {root} on {chosen}")
        except TimeoutError:
            first = dumps[chosen[0]]
            diffs = {sid: _diff(first, d) for sid, d in dumps.items() if d != first}
            raise AssertionError(f"trees differ from peer {chosen[0]}'s: {diffs}") from None
        return len(dumps[chosen[0]])


def _diff(a: dict[str, Any], b: dict[str, Any], limit: int = 10) -> list[str]:
    out = []
    for path in sorted(set(a) | set(b)):
        if a.get(path) != b.get(path):
            out.append(f"{path}: {a.get(path)!r} != {b.get(path)!r}")
            if len(out) >= limit:
                break
    return out


# ------------------------------------------------------------------------------ digests


def pad_to_digest_point(ens: Ensemble, client: KazooClient, sids: Sequence[int] | None = None,
                        path: str = "/digest-pad") -> int:
    """setData on `path` until the ensemble's last zxid is a multiple of 128, then wait until
    every server in `sids` has applied it. Returns that zxid.

    Nothing else may write meanwhile (closing a session is a txn too).
    """
    chosen = list(ens.kinds) if sids is None else list(sids)
    if client.exists(path) is None:
        client.create(path, b"")
    while True:
        stat = client.set(path, b"pad")
        if stat.mzxid % DIGEST_LOG_INTERVAL == 0:
            zxid = int(stat.mzxid)
            break
    wait_until(lambda: all(ens.last_zxid(s) == zxid for s in chosen), WAIT_S,
               f"every peer at zxid 0x{zxid:x}")
    return zxid


def assert_same_digests(ens: Ensemble, zxid: int, sids: Sequence[int] | None = None) -> int:
    """Every server in `sids` reports a digest for `zxid` in `hash`, and all are equal.
    Returns the digest."""
    chosen = list(ens.kinds) if sids is None else list(sids)
    got: dict[int, dict[int, int]] = {}

    def have() -> bool:
        got.update({sid: ens.digests(sid) for sid in chosen})
        return all(zxid in got[sid] for sid in chosen)
    try:
        wait_until(have, WAIT_S, f"a digest for 0x{zxid:x} on every peer")
    except TimeoutError:
        raise AssertionError(f"no digest for 0x{zxid:x}: {got}") from None
    values = {sid: got[sid][zxid] for sid in chosen}
    assert len(set(values.values())) == 1, f"digests at 0x{zxid:x} differ: {values}"
    return next(iter(values.values()))


# ------------------------------------------------------------------------------ workload


def _event_box() -> tuple[threading.Event, list[Any], Any]:
    fired = threading.Event()
    events: list[Any] = []

    def watcher(event: Any) -> None:
        events.append(event)
        fired.set()
    return fired, events, watcher


def _wait_event(fired: threading.Event, what: str) -> None:
    assert fired.wait(WAIT_S), f"watch did not fire: {what}"


def _eventually(client: KazooClient, path: str, present: bool) -> None:
    def check() -> bool:
        return (client.exists(path) is not None) == present
    wait_until(check, WAIT_S, f"{path} {'present' if present else 'gone'} via {client.hosts}")


def run_workload(ens: Ensemble, root: str, sids: Sequence[int] | None = None) -> None:
    """Every client operation through every server in `sids`, checked from other servers.

    For each server X in turn (Y = the next one), a client on X writes and a client on Y
    reads, watches and checks, so every write is forwarded by learners and every read served
    by a replica other than the writer's.
    """
    chosen = list(ens.kinds) if sids is None else list(sids)
    with Clients() as clients:
        c = {sid: clients.connect(ens.servers[sid].hosts) for sid in chosen}
        c[chosen[0]].ensure_path(root)
        for i, x in enumerate(chosen):
            y = chosen[(i + 1) % len(chosen)]
            _one_round(clients, c[x], c[y], f"{root}/via{x}", ens.servers[x].hosts)
        # Every server saw every round.
        for sid in chosen:
            _sync(c[sid], root)
            names = sorted(c[sid].get_children(root))
            assert names == sorted(f"via{x}" for x in chosen), (sid, names)


def _one_round(clients: Clients, w: KazooClient, r: KazooClient, base: str,
               w_hosts: str) -> None:
    # -- persistent create, getData/setData with versions, seen after sync elsewhere
    w.create(base, b"base")
    assert read_after_sync(r, base) is not None
    data_fired, data_events, data_watch = _event_box()
    child_fired, child_events, child_watch = _event_box()
    data, stat = r.get(base, watch=data_watch)
    assert data == b"base" and stat.version == 0
    assert r.get_children(base, watch=child_watch) == []
    stat = w.set(base, b"v1", version=0)
    assert stat.version == 1
    try:
        w.set(base, b"stale", version=0)
        raise AssertionError("setData with a stale version succeeded")
    except BadVersionError:
        pass
    _wait_event(data_fired, f"data watch on {base} (written through {w_hosts})")
    assert data_events[0].type == EventType.CHANGED and data_events[0].path == base
    got = read_after_sync(r, base)
    assert got is not None and got[0] == b"v1" and got[1].version == 1 and got[1].mzxid == \
        stat.mzxid

    # -- every create mode; a child watch fires on the other server
    w.create(f"{base}/p", b"p")
    _wait_event(child_fired, f"child watch on {base}")
    assert child_events[0].type == EventType.CHILD
    seq1 = w.create(f"{base}/s-", b"s", sequence=True)
    seq2 = w.create(f"{base}/s-", b"s", sequence=True)
    assert seq1 < seq2 and seq1.startswith(f"{base}/s-")
    owner = clients.connect(w_hosts)
    eph = owner.create(f"{base}/e", b"e", ephemeral=True)
    eseq = owner.create(f"{base}/es-", b"es", ephemeral=True, sequence=True)
    _sync(r, base)
    kids = sorted(r.get_children(base))
    assert kids == sorted(["p", "e", seq1.rsplit("/", 1)[1], seq2.rsplit("/", 1)[1],
                           eseq.rsplit("/", 1)[1]]), kids
    _, estat = r.get(eph)
    assert estat.ephemeralOwner == owner.client_id[0]
    # -- the ephemerals go everywhere when their session closes
    gone_fired, _, gone_watch = _event_box()
    assert r.exists(eph, watch=gone_watch) is not None
    clients.close(owner)
    _wait_event(gone_fired, f"{eph} deleted after its session closed")
    _eventually(r, eseq, present=False)
    _eventually(w, eph, present=False)

    # -- multi: all or nothing, results seen on the other server
    t = w.transaction()
    t.create(f"{base}/m1", b"m1")
    t.set_data(f"{base}/p", b"p2", version=0)
    t.check(f"{base}/m1", 0)
    t.delete(seq1)
    results = t.commit()
    assert results[0] == f"{base}/m1" and results[3] is True, results
    bad = w.transaction()
    bad.create(f"{base}/m2", b"m2")
    bad.check(f"{base}/p", 99)
    results = bad.commit()
    assert isinstance(results[1], BadVersionError), results
    _sync(r, base)
    assert r.exists(f"{base}/m2") is None and r.exists(seq1) is None
    assert r.get(f"{base}/p")[0] == b"p2"

    # -- delete with versions; a NotEmpty parent; the delete watch fires elsewhere
    del_fired, del_events, del_watch = _event_box()
    r.get(f"{base}/m1", watch=del_watch)
    try:
        w.delete(f"{base}/m1", version=5)
        raise AssertionError("delete with a wrong version succeeded")
    except BadVersionError:
        pass
    w.delete(f"{base}/m1", version=0)
    _wait_event(del_fired, f"delete watch on {base}/m1")
    assert del_events[0].type == EventType.DELETED
    try:
        w.delete(base)
        raise AssertionError("delete of a parent with children succeeded")
    except NotEmptyError:
        pass
    try:
        w.create(f"{base}/p", b"again")
        raise AssertionError("create of an existing znode succeeded")
    except NodeExistsError:
        pass

    # -- sync then read: a write through one server is read through the other at once
    for k in range(5):
        w.set(f"{base}/p", f"sync{k}".encode())
        got = read_after_sync(r, f"{base}/p")
        assert got is not None and got[0] == f"sync{k}".encode(), (k, got)


def write_some(ens: Ensemble, sid: int, root: str, n: int) -> int:
    """`n` creates under `root` through server `sid`, pipelined; returns the zxid of the last
    (the session that made them is closed afterwards: one more txn)."""
    with Clients() as clients:
        c = clients.connect(ens.servers[sid].hosts)
        c.ensure_path(root)
        base = len(c.get_children(root))
        results = [c.create_async(f"{root}/x{base + i:06d}", b"w") for i in range(n)]
        for r in results:
            r.get(timeout=WAIT_S)
        return int(c.exists(root).pzxid)


def logged_zxids(data_dir: Path) -> list[int]:
    """Every zxid in the txn log files of a dataDir (TxnHeader: clientId, cxid, zxid, ...),
    whether committed or not: what a server has logged, read from its disk."""
    out: list[int] = []
    for f in sorted((data_dir / "version-2").glob("log.*")):
        for _, txn in scan_log(f.read_bytes()).entries:
            out.append(struct.unpack_from(">q", txn, 12)[0])
    return out


def equal_zxids(ens: Ensemble, sids: Sequence[int] | None = None) -> int | None:
    """The last applied zxid when every server in `sids` reports the same one, else None."""
    chosen = list(ens.kinds) if sids is None else list(sids)
    zxids = {ens.last_zxid(s) for s in chosen}
    return zxids.pop() if len(zxids) == 1 and None not in zxids else None


# ------------------------------------------------------------------------------ acked writes


class AckedWriter:
    """Creates ``<root>/n<i>`` for i = 0, 1, ... through one client, one at a time, until
    stopped; `acked` holds every i whose create was acknowledged (or found existing on a
    retry after a lost connection, which means an earlier attempt was committed).

    A create whose connection is lost is retried (same i) once the client is connected again,
    so the sequence has no holes. Writes are paced by `pace_s` (a rate limit that keeps the
    tree small, not a wait for anything).
    """

    def __init__(self, hosts: str, root: str, *, pace_s: float = 0.01,
                 session_timeout_s: float = 20.0) -> None:
        self.root = root
        self.pace_s = pace_s
        self.client = KazooClient(hosts=hosts, timeout=session_timeout_s)
        self.acked: list[int] = []
        self.retries = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="AckedWriter", daemon=True)

    def start(self) -> AckedWriter:
        self.client.start(timeout=60)
        self.client.ensure_path(self.root)
        self._thread.start()
        return self

    def wait_acked(self, n: int, timeout_s: float = 120.0) -> None:
        """Poll until at least `n` creates are acknowledged in total."""
        wait_until(lambda: len(self.acked) >= n or self.errors, timeout_s,
                   f"{n} acknowledged creates")
        assert not self.errors, self.errors

    def more(self, n: int, timeout_s: float = 120.0) -> None:
        """Poll until `n` more creates than now are acknowledged."""
        self.wait_acked(len(self.acked) + n, timeout_s)

    def stop(self) -> list[int]:
        self._stop.set()
        self._thread.join(timeout=120)
        try:
            self.client.stop()
        finally:
            self.client.close()
        assert not self.errors, self.errors
        return list(self.acked)

    def _run(self) -> None:
        i = 0
        try:
            while not self._stop.is_set():
                path = f"{self.root}/n{i:06d}"
                try:
                    self.client.create(path, str(i).encode())
                except NodeExistsError:
                    pass  # an attempt before a lost connection was committed
                except (ConnectionLoss, OperationTimeoutError, SessionMovedError):
                    self.retries += 1
                    wait_until(lambda: self.client.connected or self._stop.is_set(), 300.0,
                               "the writer's client connected again")
                    continue
                self.acked.append(i)
                i += 1
                self._stop.wait(self.pace_s)
        except SessionExpiredError as e:  # the writer's session must outlive every failover
            self.errors.append(e)
        except Exception as e:  # noqa: BLE001 - reported by wait_acked/stop
            self.errors.append(e)


def check_acked(ens: Ensemble, root: str, acked: Sequence[int],
                sids: Sequence[int] | None = None) -> None:
    """Every acknowledged create under `root` is on every server in `sids` (after sync)."""
    chosen = list(ens.kinds) if sids is None else list(sids)
    want = {f"n{i:06d}" for i in acked}
    with Clients() as clients:
        for sid in chosen:
            c = clients.connect(ens.servers[sid].hosts)
            _sync(c, root)
            have = set(c.get_children(root))
            missing = sorted(want - have)
            assert not missing, f"peer {sid} lost {len(missing)} acknowledged creates: " \
                                f"{missing[:10]}"


def iter_servers(ens: Ensemble, sids: Sequence[int] | None = None) -> Iterator[str]:
    """The client connect strings of `sids` (default: all), in sid order."""
    for sid in (list(ens.kinds) if sids is None else sids):
        yield ens.servers[sid].hosts
