"""Watches: one-shot data/exist/child semantics, event types and paths, ordering against replies,
persistent and persistent-recursive watches (addWatch), removeWatches/checkWatches, and watches
restored by setWatches on a new connection (zk-formats §1.3, §2.7).

kazoo 2.11 has no addWatch and never sends setWatches after a reconnect, so those parts use the
raw protocol client.
"""

from __future__ import annotations

import queue

import pytest
from kazoo.exceptions import NoNodeError
from kazoo.protocol.states import EventType, WatchedEvent

from zkfast.testing.rawclient import OP, OPEN_ACL, Acl, Writer

CREATED, DELETED, CHANGED, CHILD = 1, 2, 3, 4
SYNC_CONNECTED = 3
OK, NO_NODE, NO_WATCHER, MARSHALLING_ERROR = 0, -101, -121, -5
PERSISTENT, PERSISTENT_RECURSIVE = 0, 1
WATCHER_CHILDREN, WATCHER_DATA, WATCHER_ANY = 1, 2, 3


class Recorder:
    """A kazoo watch callback that queues what it receives."""

    def __init__(self) -> None:
        self.events: queue.Queue[WatchedEvent] = queue.Queue()

    def __call__(self, event: WatchedEvent) -> None:
        self.events.put(event)

    def next(self, timeout_s: float = 30.0) -> WatchedEvent:
        return self.events.get(timeout=timeout_s)

    def pending(self) -> int:
        return self.events.qsize()


def barrier(zk, watcher_client, path: str) -> None:
    """Make sure every notification caused so far has reached `watcher_client`'s callbacks.

    One more watch on the same connection fires after all earlier notifications (a connection
    delivers notifications in order, and kazoo dispatches callbacks in order)."""
    sentinel = Recorder()
    watcher_client.exists(path, watch=sentinel)
    zk.create(path)
    assert sentinel.next().type == EventType.CREATED


def test_data_watch_fires_once(kazoo_client, znode):
    zk, watcher = kazoo_client(), kazoo_client()
    path = zk.create(f"{znode}/d", b"0")
    rec = Recorder()
    watcher.get(path, watch=rec)
    zk.set(path, b"1")
    ev = rec.next()
    assert (ev.type, ev.path, ev.state) == (EventType.CHANGED, path, "CONNECTED")
    zk.set(path, b"2")
    zk.delete(path)
    barrier(zk, watcher, f"{znode}/barrier")
    assert rec.pending() == 0


def test_data_watch_on_delete(kazoo_client, znode):
    zk, watcher = kazoo_client(), kazoo_client()
    path = zk.create(f"{znode}/d")
    rec = Recorder()
    watcher.get(path, watch=rec)
    zk.delete(path)
    ev = rec.next()
    assert (ev.type, ev.path) == (EventType.DELETED, path)


def test_exists_watch_on_missing_node_fires_created(kazoo_client, znode):
    zk, watcher = kazoo_client(), kazoo_client()
    rec = Recorder()
    assert watcher.exists(f"{znode}/later", watch=rec) is None
    zk.create(f"{znode}/later", b"x")
    ev = rec.next()
    assert (ev.type, ev.path) == (EventType.CREATED, f"{znode}/later")
    zk.set(f"{znode}/later", b"y")
    barrier(zk, watcher, f"{znode}/barrier")
    assert rec.pending() == 0


def test_exists_watch_on_existing_node(kazoo_client, znode):
    zk, watcher = kazoo_client(), kazoo_client()
    path = zk.create(f"{znode}/e")
    changed, deleted = Recorder(), Recorder()
    watcher.exists(path, watch=changed)
    zk.set(path, b"v")
    assert changed.next().type == EventType.CHANGED
    watcher.exists(path, watch=deleted)
    zk.delete(path)
    assert deleted.next().type == EventType.DELETED


def test_get_on_missing_node_registers_no_watch(kazoo_client, znode):
    zk, watcher = kazoo_client(), kazoo_client()
    rec = Recorder()
    with pytest.raises(NoNodeError):
        watcher.get(f"{znode}/nothing", watch=rec)
    with pytest.raises(NoNodeError):
        watcher.get_children(f"{znode}/nothing", watch=rec)
    zk.create(f"{znode}/nothing")
    zk.create(f"{znode}/nothing/child")
    barrier(zk, watcher, f"{znode}/barrier")
    assert rec.pending() == 0


def test_child_watch(kazoo_client, znode):
    zk, watcher = kazoo_client(), kazoo_client()
    rec = Recorder()
    assert watcher.get_children(znode, watch=rec) == []
    zk.create(f"{znode}/c1")
    ev = rec.next()
    assert (ev.type, ev.path) == (EventType.CHILD, znode)
    zk.create(f"{znode}/c2")  # one-shot: not seen
    watcher.get_children(znode, watch=rec)
    zk.delete(f"{znode}/c1")
    ev = rec.next()
    assert (ev.type, ev.path) == (EventType.CHILD, znode)
    # data changes of the parent or of a child do not fire child watches
    watcher.get_children(znode, watch=rec)
    zk.set(znode, b"data")
    zk.set(f"{znode}/c2", b"data")
    barrier(zk, watcher, f"{znode}/barrier")  # creating the barrier child fires it
    ev = rec.next()
    assert (ev.type, ev.path) == (EventType.CHILD, znode)
    assert rec.pending() == 0


def test_child_watch_on_deleted_node(kazoo_client, znode):
    zk, watcher = kazoo_client(), kazoo_client()
    path = zk.create(f"{znode}/p")
    rec = Recorder()
    watcher.get_children(path, watch=rec)
    zk.delete(path)
    ev = rec.next()
    assert (ev.type, ev.path) == (EventType.DELETED, path)


def test_set_acl_fires_no_watch(kazoo_client, znode):
    zk, watcher = kazoo_client(), kazoo_client()
    path = zk.create(f"{znode}/a")
    rec = Recorder()
    watcher.get(path, watch=rec)
    watcher.exists(path, watch=rec)
    zk.set_acls(path, zk.get_acls(path)[0])
    barrier(zk, watcher, f"{znode}/barrier")
    assert rec.pending() == 0


def test_notification_precedes_reply_and_has_zxid_minus_one(raw_client, znode):
    raw = raw_client()
    assert raw.create(f"{znode}/n")[0] == OK
    assert raw.get_data(f"{znode}/n", watch=True)[0] == OK
    err, _ = raw.set_data(f"{znode}/n", b"x")
    assert err == OK
    # the notification was read before the setData reply returned
    assert [(e.type, e.state, e.path) for e in raw.events] == [
        (CHANGED, SYNC_CONNECTED, f"{znode}/n")
    ]
    assert raw.events[0].zxid == -1  # 3.8 sends -1 in the notification header


def test_watch_fires_on_every_connection_that_set_it(raw_client, znode):
    a, b, writer = raw_client(), raw_client(), raw_client()
    assert writer.create(f"{znode}/m")[0] == OK
    for c in (a, b):
        assert c.exists(f"{znode}/m", watch=True)[0] == OK
        assert c.get_data(f"{znode}/m", watch=True)[0] == OK  # same watcher: one event
    assert writer.set_data(f"{znode}/m", b"1")[0] == OK
    for c in (a, b):
        assert [(e.type, e.path) for e in c.wait_events(1)] == [(CHANGED, f"{znode}/m")]
        c.ping()
        assert len(c.events) == 1


def test_delete_fires_data_and_child_watch_once(raw_client, znode):
    raw, writer = raw_client(), raw_client()
    assert writer.create(f"{znode}/x")[0] == OK
    assert raw.get_data(f"{znode}/x", watch=True)[0] == OK
    assert raw.get_children(f"{znode}/x", watch=True)[0] == OK
    assert raw.get_children(znode, watch=True)[0] == OK
    assert writer.delete(f"{znode}/x") == OK
    events = raw.wait_events(2)
    raw.ping()
    assert sorted((e.type, e.path) for e in raw.events) == [
        (DELETED, f"{znode}/x"),
        (CHILD, znode),
    ]
    assert len(events) == 2


def test_persistent_watch(raw_client, znode):
    raw, writer = raw_client(), raw_client()
    assert raw.add_watch(znode, PERSISTENT).err == OK
    assert writer.set_data(znode, b"1")[0] == OK
    assert writer.set_data(znode, b"2")[0] == OK
    assert writer.create(f"{znode}/c")[0] == OK
    assert writer.set_data(f"{znode}/c", b"x")[0] == OK  # not a descendant watch
    assert writer.delete(f"{znode}/c") == OK
    assert writer.delete(znode) == OK
    assert writer.create(znode)[0] == OK
    events = raw.wait_events(6)
    raw.ping()
    assert [(e.type, e.path) for e in raw.events] == [
        (CHANGED, znode),
        (CHANGED, znode),
        (CHILD, znode),
        (CHILD, znode),
        (DELETED, znode),
        (CREATED, znode),  # it outlives the node
    ]
    assert len(events) == 6


def test_persistent_recursive_watch(raw_client, znode):
    raw, writer = raw_client(), raw_client()
    assert raw.add_watch(znode, PERSISTENT_RECURSIVE).err == OK
    assert writer.create(f"{znode}/a")[0] == OK
    assert writer.create(f"{znode}/a/b")[0] == OK
    assert writer.set_data(f"{znode}/a/b", b"x")[0] == OK
    assert writer.delete(f"{znode}/a/b") == OK
    assert writer.set_data(znode, b"y")[0] == OK
    assert writer.create(f"{znode}x")[0] == OK  # a sibling with the same prefix: not watched
    assert writer.set_data(znode, b"z")[0] == OK
    raw.wait_events(6)
    raw.ping()
    # no NodeChildrenChanged for recursive watches
    assert [(e.type, e.path) for e in raw.events] == [
        (CREATED, f"{znode}/a"),
        (CREATED, f"{znode}/a/b"),
        (CHANGED, f"{znode}/a/b"),
        (DELETED, f"{znode}/a/b"),
        (CHANGED, znode),
        (CHANGED, znode),
    ]
    assert writer.delete(f"{znode}x") == OK


def test_add_watch_on_missing_path_and_bad_mode(raw_client, znode):
    raw, writer = raw_client(), raw_client()
    reply = raw.add_watch(f"{znode}/future", PERSISTENT)
    assert (reply.err, reply.body) == (OK, b"\x00\x00\x00\x00")  # ErrorResponse{err=0}
    assert writer.create(f"{znode}/future")[0] == OK
    assert [(e.type, e.path) for e in raw.wait_events(1)] == [(CREATED, f"{znode}/future")]


def _watches_request(op: str, raw, path: str, watcher_type: int) -> int:
    return raw.call(OP[op], bytes(Writer().string(path).int(watcher_type).out)).err


def test_remove_and_check_watches(raw_client, znode):
    raw, writer = raw_client(), raw_client()
    assert raw.get_data(znode, watch=True)[0] == OK
    assert raw.get_children(znode, watch=True)[0] == OK
    assert _watches_request("checkWatches", raw, znode, WATCHER_DATA) == OK
    assert _watches_request("checkWatches", raw, znode, WATCHER_CHILDREN) == OK
    assert _watches_request("removeWatches", raw, znode, WATCHER_DATA) == OK
    assert _watches_request("checkWatches", raw, znode, WATCHER_DATA) == NO_WATCHER
    assert _watches_request("removeWatches", raw, znode, WATCHER_DATA) == NO_WATCHER
    assert _watches_request("checkWatches", raw, znode, WATCHER_ANY) == OK
    assert _watches_request("removeWatches", raw, znode, WATCHER_ANY) == OK
    assert _watches_request("checkWatches", raw, znode, WATCHER_ANY) == NO_WATCHER
    assert _watches_request("checkWatches", raw, f"{znode}/none", WATCHER_ANY) == NO_WATCHER
    # removed watches do not fire; a fresh one does
    assert writer.set_data(znode, b"1")[0] == OK
    assert writer.create(f"{znode}/c")[0] == OK
    assert raw.exists(znode, watch=True)[0] == OK
    assert writer.set_data(znode, b"2")[0] == OK
    assert [(e.type, e.path) for e in raw.wait_events(1)] == [(CHANGED, znode)]


def test_remove_persistent_watch_with_any(raw_client, znode):
    raw, writer = raw_client(), raw_client()
    assert raw.add_watch(znode, PERSISTENT).err == OK
    assert _watches_request("checkWatches", raw, znode, WATCHER_ANY) == OK
    assert _watches_request("removeWatches", raw, znode, WATCHER_ANY) == OK
    assert writer.set_data(znode, b"1")[0] == OK
    assert raw.exists(znode, watch=True)[0] == OK
    assert writer.set_data(znode, b"2")[0] == OK
    assert len(raw.wait_events(1)) == 1
    raw.ping()
    assert len(raw.events) == 1


def _set_watches(raw, relative_zxid: int, data=(), exist=(), child=()) -> int:
    w = Writer().long(relative_zxid).strings(list(data)).strings(list(exist)).strings(list(child))
    return raw.call(OP["setWatches"], bytes(w.out)).err


def test_set_watches_after_reconnect(raw_client, znode):
    raw, writer = raw_client(), raw_client()
    for name in ("d-changed", "d-same", "d-deleted", "c-changed", "c-same"):
        assert writer.create(f"{znode}/{name}")[0] == OK
    assert raw.exists(znode)[0] == OK  # a reply carries the zxid the client has seen
    last_seen = raw.last_zxid
    raw.close()  # the session lives on; its watches are gone with the connection
    assert writer.set_data(f"{znode}/d-changed", b"x")[0] == OK
    assert writer.delete(f"{znode}/d-deleted") == OK
    assert writer.create(f"{znode}/e-created")[0] == OK
    assert writer.create(f"{znode}/c-changed/kid")[0] == OK
    assert raw.connect() > 0
    assert (
        _set_watches(
            raw,
            last_seen,
            data=[f"{znode}/d-changed", f"{znode}/d-same", f"{znode}/d-deleted"],
            exist=[f"{znode}/e-created", f"{znode}/e-missing"],
            child=[f"{znode}/c-changed", f"{znode}/c-same"],
        )
        == OK
    )
    raw.ping()
    # what changed while away is reported at once
    assert sorted((e.type, e.path) for e in raw.events) == sorted(
        [
            (CHANGED, f"{znode}/d-changed"),
            (DELETED, f"{znode}/d-deleted"),
            (CREATED, f"{znode}/e-created"),
            (CHILD, f"{znode}/c-changed"),
        ]
    )
    raw.events.clear()
    # the rest was registered and fires later
    assert writer.set_data(f"{znode}/d-same", b"y")[0] == OK
    assert writer.create(f"{znode}/e-missing")[0] == OK
    assert writer.create(f"{znode}/c-same/kid")[0] == OK
    raw.wait_events(3)
    assert sorted((e.type, e.path) for e in raw.events) == sorted(
        [
            (CHANGED, f"{znode}/d-same"),
            (CREATED, f"{znode}/e-missing"),
            (CHILD, f"{znode}/c-same"),
        ]
    )


def test_set_watches2_restores_persistent_watches(raw_client, znode):
    raw, writer = raw_client(), raw_client()
    assert raw.exists(znode)[0] == OK
    raw.close()
    assert raw.connect() > 0
    w = Writer().long(raw.last_zxid).strings([]).strings([]).strings([])
    w.strings([znode]).strings([f"{znode}/r"])
    assert raw.call(OP["setWatches2"], bytes(w.out)).err == OK
    assert writer.set_data(znode, b"1")[0] == OK
    assert writer.create(f"{znode}/r")[0] == OK
    assert writer.create(f"{znode}/r/deep")[0] == OK
    raw.wait_events(4)
    raw.ping()
    assert [(e.type, e.path) for e in raw.events] == [
        (CHANGED, znode),
        (CREATED, f"{znode}/r"),  # a recursive watch covers its own path; data events first
        (CHILD, znode),
        (CREATED, f"{znode}/r/deep"),
    ]


def test_close_session_fires_the_watches_of_others(kazoo_client, znode):
    zk, watcher, other = kazoo_client(), kazoo_client(), kazoo_client()
    path = other.create(f"{znode}/eph", ephemeral=True)
    rec, parent = Recorder(), Recorder()
    watcher.exists(path, watch=rec)
    watcher.get_children(znode, watch=parent)
    other.stop()  # closeSession deletes the ephemeral: NodeDeleted and NodeChildrenChanged
    assert (rec.next().type, rec.pending()) == (EventType.DELETED, 0)
    assert parent.next().type == EventType.CHILD
    assert zk.exists(path) is None


def test_notifications_need_read_permission(raw_client, znode):
    # Debian's 3.8.0 carries the ZOOKEEPER-4799 fix (CVE-2024-23944): a watcher without READ
    # on the node (on the parent, for NodeChildrenChanged) gets no notification
    owner, stranger = raw_client(), raw_client()
    assert owner.auth("digest", b"owner:pw").err == OK
    secret_acl = [Acl(31, "digest", "owner:" + _sha1_b64("owner:pw"))]
    assert owner.create(f"{znode}/sec", acl=secret_acl)[0] == OK
    assert owner.create(f"{znode}/sec/kid", acl=OPEN_ACL)[0] == OK
    assert stranger.exists(f"{znode}/sec", watch=True)[0] == OK  # 3.8.0: exists needs no READ
    assert stranger.exists(f"{znode}/sec/kid", watch=True)[0] == OK
    assert owner.set_data(f"{znode}/sec", b"x")[0] == OK  # filtered
    assert owner.delete(f"{znode}/sec/kid") == OK  # kid's own ACL is open: delivered
    assert owner.exists(f"{znode}/other")[0] == NO_NODE
    assert stranger.exists(f"{znode}/other", watch=True)[0] == NO_NODE
    assert owner.create(f"{znode}/other")[0] == OK
    stranger.wait_events(2)
    stranger.ping()
    assert [(e.type, e.path) for e in stranger.events] == [
        (DELETED, f"{znode}/sec/kid"),
        (CREATED, f"{znode}/other"),
    ]


def _sha1_b64(credential: str) -> str:
    import base64
    import hashlib

    return base64.b64encode(hashlib.sha1(credential.encode()).digest()).decode()


def test_multi_fires_watches_in_op_order(raw_client, znode):
    raw, writer = raw_client(), raw_client()
    for name in ("a", "b", "c"):
        assert writer.create(f"{znode}/{name}")[0] == OK
        assert raw.get_data(f"{znode}/{name}", watch=True)[0] == OK
    assert raw.get_children(znode, watch=True)[0] == OK
    assert raw.exists(f"{znode}/d", watch=True)[0] == NO_NODE

    def set_op(name: str) -> tuple[int, bytes]:
        return OP["setData"], bytes(Writer().string(f"{znode}/{name}").buffer(b"v").int(-1).out)

    create_d = bytes(Writer().string(f"{znode}/d").buffer(b"").acls(OPEN_ACL).int(0).out)
    err, results = writer.multi([set_op("c"), set_op("a"), (OP["create"], create_d), set_op("b")])
    assert err == OK and [e for _, e, _ in results] == [OK] * 4
    raw.wait_events(5)
    raw.ping()
    assert [(e.type, e.path) for e in raw.events] == [
        (CHANGED, f"{znode}/c"),
        (CHANGED, f"{znode}/a"),
        (CREATED, f"{znode}/d"),
        (CHILD, znode),
        (CHANGED, f"{znode}/b"),
    ]


def test_failed_multi_fires_nothing(raw_client, znode):
    raw, writer = raw_client(), raw_client()
    assert writer.create(f"{znode}/a")[0] == OK
    assert raw.get_data(f"{znode}/a", watch=True)[0] == OK
    set_a = bytes(Writer().string(f"{znode}/a").buffer(b"v").int(-1).out)
    bad_check = bytes(Writer().string(f"{znode}/a").int(42).out)
    err, results = writer.multi([(OP["setData"], set_a), (OP["check"], bad_check)])
    assert [e for _, e, _ in results] == [OK, -103]
    assert writer.set_data(f"{znode}/a", b"w")[0] == OK
    assert [(e.type, e.path) for e in raw.wait_events(1)] == [(CHANGED, f"{znode}/a")]
    raw.ping()
    assert len(raw.events) == 1


def test_set_watches_edge_cases(raw_client, znode):
    raw, writer = raw_client(), raw_client()
    for name in ("recreated", "child-gone", "exists-now", "data-same"):
        assert writer.create(f"{znode}/{name}")[0] == OK
    assert raw.exists(znode)[0] == OK
    last_seen = raw.last_zxid
    raw.close()
    assert writer.delete(f"{znode}/recreated") == OK
    assert writer.create(f"{znode}/recreated")[0] == OK  # gone and back: mzxid > last seen
    assert writer.delete(f"{znode}/child-gone") == OK
    assert raw.connect() > 0
    assert (
        _set_watches(
            raw,
            last_seen,
            data=[f"{znode}/recreated", f"{znode}/data-same"],
            exist=[f"{znode}/exists-now"],  # exists although unchanged: NodeCreated
            child=[f"{znode}/child-gone"],
        )
        == OK
    )
    raw.ping()
    assert sorted((e.type, e.path) for e in raw.events) == sorted(
        [
            (CHANGED, f"{znode}/recreated"),
            (CREATED, f"{znode}/exists-now"),
            (DELETED, f"{znode}/child-gone"),
        ]
    )


def test_set_watches_with_relative_zxid_zero_reports_everything(raw_client, znode):
    raw, writer = raw_client(), raw_client()
    assert writer.create(f"{znode}/a")[0] == OK
    assert writer.create(f"{znode}/a/kid")[0] == OK
    assert _set_watches(raw, 0, data=[f"{znode}/a"], child=[f"{znode}/a"]) == OK
    raw.ping()
    assert sorted((e.type, e.path) for e in raw.events) == [
        (CHANGED, f"{znode}/a"),
        (CHILD, f"{znode}/a"),
    ]


def test_create_and_delete_in_one_multi(raw_client, znode):
    raw, writer = raw_client(), raw_client()
    assert raw.exists(f"{znode}/blink", watch=True)[0] == NO_NODE
    assert raw.get_children(znode, watch=True)[0] == OK
    create = bytes(Writer().string(f"{znode}/blink").buffer(b"").acls(OPEN_ACL).int(0).out)
    delete = bytes(Writer().string(f"{znode}/blink").int(-1).out)
    err, results = writer.multi([(OP["create"], create), (OP["delete"], delete)])
    assert err == OK and [e for _, e, _ in results] == [OK, OK]
    raw.wait_events(2)
    raw.ping()
    # one-shot watches: each fires at the first op that touches it
    assert [(e.type, e.path) for e in raw.events] == [
        (CREATED, f"{znode}/blink"),
        (CHILD, znode),
    ]


@pytest.mark.parametrize("op", ["checkWatches", "removeWatches"])
@pytest.mark.parametrize("watcher_type", [0, 4, 5, 7])
def test_watcher_types_beyond_3_8_are_marshalling_errors(raw_client, znode, op, watcher_type):
    # 3.8 knows Children(1), Data(2), Any(3); Persistent(4)/PersistentRecursive(5) came in 3.9
    raw = raw_client()
    assert raw.add_watch(znode, PERSISTENT).err == OK
    assert _watches_request(op, raw, znode, watcher_type) == MARSHALLING_ERROR
    assert raw.ping().err == OK  # the connection stays open


@pytest.mark.parametrize("mode", [2, -1])
def test_add_watch_with_unknown_mode(raw_client, znode, mode):
    raw = raw_client()
    assert raw.add_watch(znode, mode).err == MARSHALLING_ERROR
    assert raw.ping().err == OK


def test_exists_watch_on_missing_node_is_a_data_watch(raw_client, znode):
    raw = raw_client()
    assert raw.exists(f"{znode}/nothing", watch=True)[0] == NO_NODE
    assert _watches_request("checkWatches", raw, f"{znode}/nothing", WATCHER_CHILDREN) == NO_WATCHER
    assert _watches_request("checkWatches", raw, f"{znode}/nothing", WATCHER_DATA) == OK
    assert _watches_request("removeWatches", raw, f"{znode}/nothing", WATCHER_DATA) == OK
    assert _watches_request("checkWatches", raw, f"{znode}/nothing", WATCHER_ANY) == NO_WATCHER
