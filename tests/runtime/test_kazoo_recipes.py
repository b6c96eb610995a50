"""kazoo's recipes and chroot handling: what applications actually build on the primitives
(ephemeral-sequential locks with exists watches, versioned counters, queues, elections,
DataWatch/ChildrenWatch re-arming)."""

from __future__ import annotations

import queue
import threading

from zkfast.testing.procs import wait_until


def test_lock_is_mutually_exclusive_and_handed_over(kazoo_client, znode):
    a, b = kazoo_client(), kazoo_client()
    lock_a = a.Lock(f"{znode}/lock", "a")
    lock_b = b.Lock(f"{znode}/lock", "b")
    assert lock_a.acquire(timeout=30)
    assert not lock_b.acquire(blocking=False)
    got = threading.Event()

    def wait_for_lock() -> None:
        if lock_b.acquire(timeout=60):
            got.set()

    t = threading.Thread(target=wait_for_lock)
    t.start()
    wait_until(lambda: len(lock_a.contenders()) == 2, 30, "b queued behind a")
    assert lock_a.contenders() == ["a", "b"]
    assert not got.is_set()
    lock_a.release()  # deletes a's node: b's exists watch fires
    t.join(60)
    assert got.is_set()
    lock_b.release()


def test_lock_freed_when_holder_session_closes(kazoo_client, znode):
    a, b = kazoo_client(), kazoo_client()
    assert a.Lock(f"{znode}/lock").acquire(timeout=30)
    lock_b = b.Lock(f"{znode}/lock")
    result: list[bool] = []
    t = threading.Thread(target=lambda: result.append(lock_b.acquire(timeout=60)))
    t.start()
    wait_until(lambda: len(b.get_children(f"{znode}/lock")) == 2, 30, "b queued")
    a.stop()
    t.join(60)
    assert result == [True]


def test_counter_with_concurrent_clients(kazoo_client, znode):
    clients = [kazoo_client() for _ in range(3)]
    errors: list[BaseException] = []

    def bump(zk) -> None:
        counter = zk.Counter(f"{znode}/count")
        try:
            for _ in range(20):
                counter += 1
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=bump, args=(zk,)) for zk in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert clients[0].Counter(f"{znode}/count").value == 60


def test_queue_is_fifo(kazoo_client, znode):
    producer, consumer = kazoo_client(), kazoo_client()
    q = producer.Queue(f"{znode}/q")
    for i in range(10):
        q.put(f"item{i}".encode())
    cq = consumer.Queue(f"{znode}/q")
    assert [cq.get() for _ in range(10)] == [f"item{i}".encode() for i in range(10)]
    assert cq.get() is None


def test_locking_queue_uses_multi(kazoo_client, znode):
    zk = kazoo_client()
    lq = zk.LockingQueue(f"{znode}/lq")
    lq.put(b"first", priority=5)
    lq.put(b"urgent", priority=1)
    assert lq.get(timeout=30) == b"urgent"
    assert lq.consume()  # a multi: delete the entry and its lock together
    assert lq.get(timeout=30) == b"first"
    assert lq.consume()
    assert len(lq) == 0


def test_election_picks_one_leader(kazoo_client, znode):
    a, b = kazoo_client(), kazoo_client()
    led: queue.Queue[str] = queue.Queue()
    release = threading.Event()

    def lead(name: str) -> None:
        led.put(name)
        release.wait(60)

    ea, eb = a.Election(f"{znode}/el", "a"), b.Election(f"{znode}/el", "b")
    ta = threading.Thread(target=ea.run, args=(lead, "a"))
    ta.start()
    assert led.get(timeout=30) == "a"
    tb = threading.Thread(target=eb.run, args=(lead, "b"))
    tb.start()
    wait_until(lambda: len(ea.contenders()) == 2, 30, "b is a contender")
    assert led.empty()
    release.set()  # a's leadership ends: its lock node goes, b takes over
    assert led.get(timeout=30) == "b"
    ta.join(30)
    tb.join(30)


def test_data_watch_and_children_watch_recipes(kazoo_client, znode):
    zk, writer = kazoo_client(), kazoo_client()
    data_seen: queue.Queue[bytes | None] = queue.Queue()
    children_seen: queue.Queue[list[str]] = queue.Queue()
    zk.DataWatch(f"{znode}/w", lambda data, stat: data_seen.put(data))
    zk.ChildrenWatch(znode, lambda children: children_seen.put(sorted(children)))
    assert data_seen.get(timeout=30) is None
    assert children_seen.get(timeout=30) == []
    writer.create(f"{znode}/w", b"1")
    assert data_seen.get(timeout=30) == b"1"
    assert children_seen.get(timeout=30) == ["w"]
    for value in (b"2", b"3"):  # the recipe re-arms its one-shot watch each time
        writer.set(f"{znode}/w", value)
        assert data_seen.get(timeout=30) == value
    writer.create(f"{znode}/x")
    assert children_seen.get(timeout=30) == ["w", "x"]


def test_chroot_client(kazoo_client, zk_server, znode):
    plain = kazoo_client()
    rooted = kazoo_client(hosts=f"{zk_server.hosts}{znode}")
    assert rooted.create("/inside", b"v") == "/inside"
    assert plain.get(f"{znode}/inside")[0] == b"v"
    assert rooted.create("/seq-", sequence=True) == "/seq-0000000001"
    tx = rooted.transaction()
    tx.create("/t1")
    tx.check("/inside", 0)
    assert tx.commit() == ["/t1", True]
    events: queue.Queue[str] = queue.Queue()
    rooted.exists("/later", watch=lambda ev: events.put(ev.path))
    plain.create(f"{znode}/later")
    assert events.get(timeout=30) == "/later"
    assert sorted(rooted.get_children("/")) == ["inside", "later", "seq-0000000001", "t1"]
