"""The real disk txn log and recovery over a fault-injecting in-memory disk: group commit
reports only synced txns, lost unsynced writes and torn last writes recover to every
acknowledged txn, and an fsync error is StorageFailed with no acknowledgement ever after."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from zkfast.core.datatree import DataTree
from zkfast.runtime.disk_log import DiskTxnLog, LogSettings
from zkfast.storage import tree_io
from zkfast.storage.recovery import MemoryFiles, recover
from zkfast.wire.txn_codec import encode_txn

SNAP = "/d/version-2"
LOGS = "/d/version-2"
SID = 0x0100000000000001
OPEN = [(31, ("world", "anyone"))]


class FaultyFiles(MemoryFiles):
    """MemoryFiles that records every operation and fails the ones a test asks for."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[str, str]] = []
        self.fail_on: set[str] = set()
        self.lock = threading.Lock()

    def before(self, op: str, name: str) -> None:
        with self.lock:
            self.ops.append((op, name))
        if op in self.fail_on:
            raise OSError(5, f"injected {op} error", name)

    def crash_torn(self, name: str, keep: int) -> None:
        """Crash, but ``keep`` bytes written after the last sync of ``name`` made it to disk."""
        f = self.dirs[LOGS][name]
        old = f.synced or b""
        new = bytes(f.data)
        first = next(i for i in range(len(new)) if i >= len(old) or new[i] != old[i])
        partial = new[: first + keep] + old[first + keep:]
        self.crash()
        self.dirs[LOGS][name].data = bytearray(partial)
        self.dirs[LOGS][name].synced = partial


def txn(zxid: int) -> tuple[int, bytes]:
    return zxid, encode_txn((SID, zxid, zxid, 1000 + zxid, 1),
                            (f"/n{zxid}", b"v" * 20, OPEN, False, zxid), None)


class Harness:
    def __init__(self, files: FaultyFiles, settings: LogSettings) -> None:
        self.files = files
        self.settings = settings
        self.durable: list[int] = []
        self.failed: list[str] = []
        self.snapshots_due = 0
        self.log: DiskTxnLog | None = None

    async def start(self) -> DiskTxnLog:
        lg = DiskTxnLog(asyncio.get_running_loop(), LOGS, self.settings, files=self.files)
        lg.on_durable = self._durable
        lg.on_failed = self.failed.append
        lg.on_snapshot_due = self._due
        self.log = lg
        return lg

    def _durable(self, zxid: int) -> None:
        with self.files.lock:
            self.files.ops.append(("durable", hex(zxid)))
        self.durable.append(zxid)

    def _due(self) -> None:
        self.snapshots_due += 1

    async def until(self, cond: Callable[[], bool]) -> None:
        for _ in range(10000):
            if cond():
                return
            await asyncio.sleep(0.001)
        raise AssertionError("condition not reached")


def run(fn: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(fn())  # type: ignore[arg-type]


def fresh(**kw: Any) -> tuple[FaultyFiles, Harness]:
    files = FaultyFiles()
    files.put(SNAP, "snapshot.0", tree_io.encode_tree(DataTree(), []))
    return files, Harness(files, LogSettings(**{"pre_alloc_size_kb": 4, **kw}))


def recovered_zxid(files: MemoryFiles) -> int:
    return recover(files, SNAP, LOGS).last_zxid


def test_group_commit_reports_only_after_the_fsync() -> None:
    files, h = fresh()

    async def main() -> None:
        lg = await h.start()
        for z in range(1, 6):  # five appends in one loop iteration: one writer job
            lg.append([txn(z)])
        await h.until(lambda: h.durable)
        for z in range(6, 30):
            lg.append([txn(z)])
            await asyncio.sleep(0)
        await h.until(lambda: h.durable and h.durable[-1] == 29)
        lg.close()

    run(main)
    assert h.durable[0] == 5
    assert h.durable == sorted(h.durable)
    # Every durable report comes after a sync of the file holding its txns.
    ops = files.ops
    for i, (op, _) in enumerate(ops):
        if op == "durable":
            assert any(o == "sync" for o, _ in ops[:i])
            last_write = max(j for j, (o, _) in enumerate(ops[:i]) if o == "write")
            assert any(o == "sync" for o, _ in ops[last_write:i])
    assert ("sync_dir", LOGS) in ops  # the new log's name was made durable
    files.crash()
    assert recovered_zxid(files) == 29


def test_lost_unsynced_writes_lose_only_unacknowledged_txns() -> None:
    files, h = fresh()
    gate = threading.Event()
    in_sync = threading.Event()
    real_before = files.before
    seen: list[int] = []

    def slow_sync(op: str, name: str) -> None:
        real_before(op, name)
        if op == "sync" and h.durable:
            in_sync.set()
            gate.wait(10)  # the second batch is written but its fsync has not returned

    files.before = slow_sync  # type: ignore[method-assign]

    async def main() -> None:
        lg = await h.start()
        lg.append([txn(1), txn(2), txn(3)])
        await h.until(lambda: h.durable == [3])
        lg.append([txn(4), txn(5)])
        await h.until(in_sync.is_set)
        files.crash()  # power loss while the fsync of 4..5 is in flight
        seen.append(recovered_zxid(files))
        gate.set()
        await h.until(lambda: len(h.durable) == 2)
        lg.close()

    run(main)
    assert seen == [3]


def test_a_torn_last_write_is_cut_off_and_acknowledged_txns_survive() -> None:
    files, h = fresh(force_sync=True)
    block = threading.Event()
    in_sync = threading.Event()
    real_before = files.before
    lines: list[str] = []
    seen: list[Any] = []

    def hold_second_sync(op: str, name: str) -> None:
        real_before(op, name)
        if op == "sync" and h.durable:
            in_sync.set()
            block.wait(10)

    files.before = hold_second_sync  # type: ignore[method-assign]

    async def main() -> None:
        lg = await h.start()
        lg.append([txn(z) for z in range(1, 11)])
        await h.until(lambda: h.durable == [10])
        lg.append([txn(z) for z in range(11, 16)])
        await h.until(in_sync.is_set)
        files.crash_torn("log.1", 37)  # part of the entry of zxid 11 reached the platter
        seen.append(recover(files, SNAP, LOGS, log=lines.append))
        seen.append(recovered_zxid(files))  # the truncation held: a second start agrees
        block.set()
        await h.until(lambda: len(h.durable) == 2)
        lg.close()

    run(main)
    rec = seen[0]
    assert rec.last_zxid == 10
    assert rec.truncated and any("torn" in line for line in lines)
    assert seen[1] == 10


@pytest.mark.parametrize("failing", ["sync", "write", "extend"])
def test_an_io_error_is_storage_failed_and_nothing_is_acknowledged_after(failing: str) -> None:
    files, h = fresh()

    async def main() -> None:
        lg = await h.start()
        lg.append([txn(1)])
        await h.until(lambda: h.durable == [1])
        files.fail_on.add(failing)
        lg.append([txn(z) for z in range(2, 300)])  # past the preallocated space
        await h.until(lambda: bool(h.failed))
        files.fail_on.clear()
        lg.append([txn(300)])  # refused: the disk is not trusted any more
        for _ in range(20):
            await asyncio.sleep(0)
        lg.close()

    run(main)
    assert h.durable == [1]
    assert len(h.failed) == 1 and "injected" in h.failed[0]
    failed_at = max(i for i, o in enumerate(files.ops) if o == (failing, "log.1"))
    assert [o for o in files.ops[failed_at + 1:] if o[0] in ("write", "sync")] == []


def test_force_sync_no_skips_fsync_but_still_reports() -> None:
    files, h = fresh(force_sync=False)

    async def main() -> None:
        lg = await h.start()
        lg.append([txn(1), txn(2)])
        await h.until(lambda: h.durable == [2])
        lg.close()

    run(main)
    assert not any(op in ("sync", "sync_dir") for op, _ in files.ops)


def test_roll_and_snapshot_point_and_preallocation() -> None:
    files, h = fresh(snap_count=10, pre_alloc_size_kb=1)

    async def main() -> None:
        lg = await h.start()
        for z in range(1, 101):
            lg.append([txn(z)])
            if z % 7 == 0:
                await asyncio.sleep(0)
        await h.until(lambda: h.durable and h.durable[-1] == 100)
        lg.close()

    run(main)
    logs = [n for n in files.list(LOGS) if n.startswith("log.")]
    assert len(logs) >= 100 // 10  # a roll at most every snapCount txns, at least every half
    assert h.snapshots_due == len(logs) - 1 or h.snapshots_due == len(logs)
    for n in logs:
        assert files.size(LOGS, n) % 1024 in (0, 16)  # header + whole preAllocSize units
    files.crash()
    rec = recover(files, SNAP, LOGS)
    assert rec.last_zxid == 100 and rec.logs_read == sorted(logs, key=lambda n: int(n[4:], 16))


def test_a_server_on_a_failing_disk_stops_taking_writes_and_says_so(
        caplog: pytest.LogCaptureFixture) -> None:
    """The whole server (ZkfastServer, ServerCore, AioEnv) over the disk log: the write whose
    fsync fails is never acknowledged and the server stops with exit code 1."""
    from kazoo.client import KazooClient
    from kazoo.exceptions import KazooException

    from zkfast.config import ServerConfig
    from zkfast.runtime.server import ZkfastServer, run_on_loop

    files, _h = fresh()
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def serve() -> int:
        loop = asyncio.get_running_loop()
        lg = DiskTxnLog(loop, LOGS, LogSettings(pre_alloc_size_kb=4), files=files)
        srv = ZkfastServer(ServerConfig(data_dir="/nonexistent-unused", client_port=0,
                                        client_port_address="127.0.0.1",
                                        four_letter_whitelist=frozenset({"srvr", "ruok"})),
                           txn_log=lg)
        await srv.start()
        box.update(server=srv, loop=loop, port=srv.client_addresses[0][1])
        ready.set()
        return await srv.serve_until_stopped()

    thread = threading.Thread(target=lambda: box.update(code=run_on_loop(serve(), "asyncio")))
    thread.start()
    try:
        assert ready.wait(30)
        hosts = f"127.0.0.1:{box['port']}"
        zk = KazooClient(hosts=hosts, timeout=10.0)
        zk.start(timeout=30)
        try:
            zk.create("/a", b"acked")
            files.fail_on.add("sync")
            with pytest.raises(KazooException):
                zk.create("/b", b"never acknowledged")
        finally:
            zk.stop()
            zk.close()
        # The server stops on its own (exit code 1), as Apache's standalone server does.
        thread.join(60)
        assert not thread.is_alive() and box.get("code") == 1
        files.crash()  # the failed fsync: what was written may or may not be on the disk
        nodes = recover(files, SNAP, LOGS).tree.nodes
        assert "/a" in nodes and "/b" not in nodes
    finally:
        if "loop" in box and thread.is_alive():
            box["loop"].call_soon_threadsafe(box["server"].request_stop)
        thread.join(30)
    assert any("no further txn is accepted" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("seed", range(8))
def test_a_crash_at_any_disk_operation_keeps_every_acknowledged_txn(seed: int) -> None:
    """Seeded: random batches and rolls; the disk image before every operation (unsynced
    writes lost, or partly kept) recovers to a prefix of the txns holding every acknowledged
    one."""
    import copy
    import random as _random

    rng = _random.Random(seed)
    files, h = fresh(snap_count=rng.choice([4, 10, 50]), pre_alloc_size_kb=rng.choice([1, 4]))
    images: list[tuple[MemoryFiles, int]] = []
    real_before = files.before

    def hook(op: str, name: str) -> None:
        real_before(op, name)
        img = MemoryFiles()
        img.dirs = copy.deepcopy(files.dirs)
        img.unsynced_names = copy.deepcopy(files.unsynced_names)
        keep = rng.choice([None, rng.randrange(1, 200)])
        if keep is not None:  # part of the unsynced bytes of one log reached the disk
            logs = [n for n, f in img.dirs[LOGS].items()
                    if n.startswith("log.") and f.synced is not None
                    and bytes(f.data) != f.synced]
            if logs:
                f = img.dirs[LOGS][rng.choice(logs)]
                old, new = f.synced or b"", bytes(f.data)
                first = next(i for i in range(len(new)) if i >= len(old) or new[i] != old[i])
                f.synced = new[: first + keep] + old[first + keep:]
        img.crash()
        images.append((img, h.durable[-1] if h.durable else 0))

    files.before = hook  # type: ignore[method-assign]

    async def main() -> None:
        lg = await h.start()
        z = 1
        while z <= 200:
            n = rng.randrange(1, 12)
            lg.append([txn(i) for i in range(z, min(z + n, 201))])
            z += n
            if rng.random() < 0.5:
                await asyncio.sleep(0)
        await h.until(lambda: h.durable and h.durable[-1] == 200)
        lg.close()

    run(main)
    assert len(images) > 10
    for i, (img, acked) in enumerate(images):
        rec = recover(img, SNAP, LOGS)
        created = sorted(int(p[2:]) for p in rec.tree.nodes if p.startswith("/n"))
        assert created == list(range(1, rec.last_zxid + 1)), f"seed {seed} op {i}: no prefix"
        assert rec.last_zxid >= acked, f"seed {seed} op {i}: acknowledged {acked:#x} lost"
