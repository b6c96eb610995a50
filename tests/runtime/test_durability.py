"""Durability of a real zkfast process: SIGKILL at random points under many writing sessions,
restarts that keep the tree and the sessions, ephemerals of sessions that expired while the
server was down, and the dataDir shared both ways with Apache ZooKeeper 3.8."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.security import make_acl, make_digest_acl

from zkfast.testing.procs import (
    ServerProcess,
    ServerStartError,
    apache_available,
    apache_server,
    wait_until,
    zkfast_server,
)

SEED = random.randrange(1 << 30)
#: Small snapCount: rolls and forked snapshots happen while the writers run.
PROPS = {"zookeeper.snapCount": "200", "zookeeper.preAllocSize": "256"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = zkfast_server(tmp_path / "zk", props=PROPS)
    try:
        yield srv
    finally:
        srv.stop()


def client(srv: ServerProcess, **kw: Any) -> KazooClient:
    zk = KazooClient(hosts=srv.hosts, timeout=kw.pop("timeout", 10.0), **kw)
    zk.start(timeout=30)
    return zk


def close(zk: KazooClient) -> None:
    try:
        zk.stop()
    finally:
        zk.close()


class Writer:
    """One session sending creates and setData asynchronously (a window of 16 in flight)."""

    WINDOW = 16

    def __init__(self, srv: ServerProcess, name: str) -> None:
        self.name = name
        self.zk = client(srv)
        self.zk.ensure_path("/d")
        self.zk.ensure_path("/c")
        self.counter = f"/c/{name}"
        self.zk.create(self.counter, b"-1")
        self.attempted: set[str] = set()
        self.acked: set[str] = set()
        self.sent_values: set[int] = {-1}
        self.acked_value = -1
        self.lock = threading.Lock()
        self.window = threading.Semaphore(self.WINDOW)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"writer-{name}", daemon=True)
        self.thread.start()

    def _slot(self) -> bool:
        while not self.stop.is_set():
            if self.window.acquire(timeout=0.05):
                return True
        return False

    def _run(self) -> None:
        i = 0
        while self._slot():
            path = f"/d/{self.name}-{i:06d}"
            with self.lock:
                self.attempted.add(path)
                self.sent_values.add(i)
            try:
                r = self.zk.create_async(path, str(i).encode())
                r.rawlink(lambda res, p=path: self._created(res, p))
                if i % 4 == 0 and self._slot():
                    s = self.zk.set_async(self.counter, str(i).encode())
                    s.rawlink(lambda res, v=i: self._set(res, v))
            except Exception:  # noqa: BLE001 - the server went away: stop sending
                return
            i += 1

    def _created(self, res: Any, path: str) -> None:
        if res.successful():
            with self.lock:
                self.acked.add(path)
        self.window.release()

    def _set(self, res: Any, value: int) -> None:
        if res.successful():
            with self.lock:
                self.acked_value = max(self.acked_value, value)
        self.window.release()

    def halt(self) -> None:
        self.stop.set()
        self.thread.join(30)
        close(self.zk)


def test_sigkill_at_random_points_keeps_every_acknowledged_write(server: ServerProcess) -> None:
    print(f"seed {SEED}")
    rng = random.Random(SEED)
    writers: list[Writer] = []
    for rnd in range(3):
        current = [Writer(server, f"r{rnd}w{k}") for k in range(6)]
        writers += current
        target = rng.randrange(50, 1500)
        wait_until(lambda c=current, t=target: sum(len(w.acked) for w in c) >= t, 120,
                   f"{target} acknowledged creates")
        server.kill()
        for w in current:
            w.halt()
        server.start()
        checker = client(server)
        try:
            present = set(f"/d/{n}" for n in checker.get_children("/d"))
            for w in writers:
                assert w.acked <= present, f"seed {SEED}: acknowledged creates lost"
                mine = {p for p in present if p.startswith(f"/d/{w.name}-")}
                assert mine <= w.attempted, f"seed {SEED}: a create nobody sent appeared"
                value = int(checker.get(w.counter)[0])
                assert value >= w.acked_value and value in w.sent_values, f"seed {SEED}"
        finally:
            close(checker)
    text = server.log_text()
    assert text.count("restored the database") == 4
    assert "snapshot" in text and "rolling the txn log" in text


def _dump(zk: KazooClient, path: str = "/") -> dict[str, tuple[bytes, Any]]:
    out = {}
    stack = [path]
    while stack:
        p = stack.pop()
        data, stat = zk.get(p)
        out[p] = (data, stat)
        for c in zk.get_children(p):
            stack.append(f"{p.rstrip('/')}/{c}")
    return out


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_restart_keeps_the_tree_and_the_sessions(server: ServerProcess, how: str) -> None:
    zk = client(server, timeout=30.0)
    try:
        sid, passwd = zk.client_id
        zk.create("/t/a/b", b"deep", makepath=True)
        zk.create("/t/s-", b"", sequence=True)
        zk.set_acls("/t/a", [make_acl("world", "anyone", read=True),
                            make_digest_acl("u", "p", all=True)])
        zk.create("/t/eph", b"e", ephemeral=True)
        for i in range(300):  # across a roll and a background snapshot
            zk.create(f"/t/n{i}", b"x" * (i % 50))
        observer = client(server)
        before = {k: v for k, v in _dump(observer).items() if not k.startswith("/zookeeper")}
        close(observer)
        if how == "stop":
            server.stop()
        else:
            server.kill()
        server.start()
        wait_until(lambda: zk.connected and zk.client_id == (sid, passwd), 60,
                   "the session resumed")
        observer = client(server)
        try:
            after = {k: v for k, v in _dump(observer).items() if not k.startswith("/zookeeper")}
            assert after == before
            assert observer.exists("/t/eph").ephemeralOwner == sid
            seq = observer.create("/t/s-", b"", sequence=True)
            assert int(seq[-10:]) == before["/t"][1].cversion  # the counter carried on
        finally:
            close(observer)
    finally:
        close(zk)


def test_ephemerals_of_sessions_that_expired_while_down_are_removed(
        server: ServerProcess) -> None:
    zk = client(server, timeout=4.0)  # negotiated to 4000 ms (tickTime 2000)
    zk.create("/gone", b"", ephemeral=True)
    sid = zk.client_id[0]
    server.kill()
    close(zk)  # the server is down: no closeSession is sent
    server.start()
    zk2 = client(server)
    try:
        stat = zk2.exists("/gone")
        assert stat is not None and stat.ephemeralOwner == sid  # the session came back...
        wait_until(lambda: zk2.exists("/gone") is None, 60, "the restored session to expire")
        server.stop()  # ...and its expiry is durable too
        server.start()
        wait_until(lambda: zk2.connected, 60, "reconnected")
        assert zk2.exists("/gone") is None
    finally:
        close(zk2)


# ---------------------------------------------------------------------- dataDir interop


def _fill(srv: ServerProcess, n: int) -> dict[str, tuple[bytes, Any]]:
    zk = client(srv)
    try:
        zk.create("/x/y", b"xy", makepath=True)
        zk.create("/x/acl", b"a", acl=[make_digest_acl("u", "p", all=True)])
        for i in range(n):
            zk.create(f"/x/n{i}", str(i).encode())
        zk.set("/x/y", b"xy2")
        zk.delete("/x/n0")
        zk.add_auth("digest", "u:p")
        return {k: v for k, v in _dump(zk).items() if not k.startswith("/zookeeper")}
    finally:
        close(zk)


def _read_back(srv: ServerProcess) -> dict[str, tuple[bytes, Any]]:
    zk = client(srv)
    try:
        zk.add_auth("digest", "u:p")
        return {k: v for k, v in _dump(zk).items() if not k.startswith("/zookeeper")}
    finally:
        close(zk)


@pytest.mark.interop
@pytest.mark.skipif(not apache_available(), reason="Apache ZooKeeper not installed")
@pytest.mark.parametrize("method", ["", "gz", "snappy"])
@pytest.mark.parametrize("writer", ["apache", "zkfast"])
def test_data_dir_moves_between_apache_and_zkfast(tmp_path: Path, writer: str,
                                                  method: str) -> None:
    if method == "snappy":
        pytest.importorskip("cramjam")
    data = tmp_path / "data"
    cfg = {"dataDir": str(data)}
    props = {"zookeeper.snapCount": "100", "zookeeper.snapshot.compression.method": method}

    def start(kind: str, sub: str) -> ServerProcess:
        if kind == "apache":
            return apache_server(tmp_path / sub, cfg=cfg, jvm_props=props)
        return zkfast_server(tmp_path / sub, cfg=cfg, props=props)

    reader = "zkfast" if writer == "apache" else "apache"
    first = start(writer, "w")
    try:
        before = _fill(first, 250)
    finally:
        first.kill()
    names = [p.name for p in (data / "version-2").iterdir()]
    snaps = [n for n in names if n.startswith("snapshot.") and n != "snapshot.0"]
    assert snaps and all(n.endswith(f".{method}") if method else n.count(".") == 1
                         for n in snaps), names
    newest = max(snaps, key=lambda n: int(n.split(".")[1], 16))
    second = start(reader, "r")
    try:
        assert _read_back(second) == before
        text = second.log_text()
        assert "problem reading snap" not in text
        if reader == "apache":  # the newest snapshot was the one read, not an older one
            assert f"Reading snapshot {data / 'version-2' / newest}" in text
        else:
            assert f"restored the database: snapshot {newest} " in text
        zk = client(second)
        try:
            zk.create("/x/after", b"")  # zxids carry on from the restored database
        finally:
            close(zk)
    finally:
        second.stop()


def test_autopurge_keeps_the_newest_snapshots_and_the_logs_they_need(tmp_path: Path) -> None:
    data = tmp_path / "data"
    v2 = data / "version-2"

    def snapshots() -> list[str]:
        return sorted(p.name for p in v2.iterdir() if p.name.startswith("snapshot."))

    first = zkfast_server(tmp_path / "a", cfg={"dataDir": str(data)},
                          props={"zookeeper.snapCount": "20"})
    created = 0
    try:
        zk = client(first)
        try:
            # A log-roll snapshot is skipped while the previous one is still being written
            # ("Too busy to snap"), so on a loaded machine write until six exist.
            while created < 400 or (len(snapshots()) <= 5 and created < 4000):
                zk.create(f"/p{created}", b"")
                created += 1
        finally:
            close(zk)
    finally:
        first.stop()
    assert len(snapshots()) > 5
    second = zkfast_server(tmp_path / "b", cfg={
        "dataDir": str(data), "autopurge.snapRetainCount": "3", "autopurge.purgeInterval": "1"})
    try:
        wait_until(lambda: len(snapshots()) == 3, 60, "autopurge at start")
        assert "autopurge deleted" in second.log_text()
        second.stop()
        second.start()  # what is left restores the whole database
        zk = client(second)
        try:
            assert len([c for c in zk.get_children("/") if c.startswith("p")]) == created
        finally:
            close(zk)
    finally:
        second.stop()


def test_background_snapshots_are_exact_and_data_log_dir_is_separate(tmp_path: Path) -> None:
    """Every snapshot forked while six sessions write equals the log replayed to its zxid."""
    from zkfast.core.datatree import DataTree
    from zkfast.runtime.disk_log import OsFiles
    from zkfast.storage.recovery import list_logs
    from zkfast.storage.tree_io import decode_file, tree_from_snapshot
    from zkfast.storage.txnlog import scan_log
    from zkfast.wire.txn_codec import decode_txn

    data, txlog = tmp_path / "data", tmp_path / "txlog"
    srv = zkfast_server(tmp_path / "zk", cfg={"dataDir": str(data), "dataLogDir": str(txlog)},
                        props={"zookeeper.snapCount": "60", "zookeeper.preAllocSize": "64"})
    try:
        writers = [Writer(srv, f"w{k}") for k in range(6)]
        wait_until(lambda: sum(len(w.acked) for w in writers) >= 1500, 120, "1500 creates")
        for w in writers:
            w.halt()
    finally:
        srv.stop()
    snap_dir, log_dir = data / "version-2", txlog / "version-2"
    assert not any(p.name.startswith("log.") for p in snap_dir.iterdir())
    assert not any(p.name.startswith("snapshot.") for p in log_dir.iterdir())
    digests: dict[int, int] = {}
    tree = DataTree()
    for _, name in list_logs(OsFiles(), str(log_dir)):
        for _, txn in scan_log((log_dir / name).read_bytes()).entries:
            header, record, _ = decode_txn(txn)
            if header[2] > tree.last_processed_zxid:
                tree.apply_txn(header, record)
                digests[header[2]] = tree.digest()
    snaps = [p for p in snap_dir.iterdir() if p.name.startswith("snapshot.")
             and p.name != "snapshot.0"]
    assert len(snaps) >= 5
    for p in snaps:
        zxid = int(p.name.split(".")[1], 16)
        snap_tree = tree_from_snapshot(decode_file(p.name, p.read_bytes()), zxid)
        assert snap_tree.digest() == digests[zxid], p.name


def test_a_corrupt_log_is_refused_at_start_with_what_to_do(tmp_path: Path) -> None:
    srv = zkfast_server(tmp_path / "zk", props={"zookeeper.preAllocSize": "64"})
    try:
        zk = client(srv)
        try:
            for i in range(20):
                zk.create(f"/c{i}", b"payload")
        finally:
            close(zk)
    finally:
        srv.stop()
    v2 = srv.data_dir / "version-2"
    log_file = max((p for p in v2.iterdir() if p.name.startswith("log.")),
                   key=lambda p: int(p.name[4:], 16))
    raw = bytearray(log_file.read_bytes())
    raw[16 + 12 + 3] ^= 0x40  # inside the first entry's txn: its checksum fails
    log_file.write_bytes(bytes(raw))
    with pytest.raises(ServerStartError):
        srv.start()
    assert srv.returncode == 3
    assert "is corrupt at offset 16" in srv.log_text()
