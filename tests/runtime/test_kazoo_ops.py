"""Every client operation through kazoo (and the raw client where kazoo has no API), checked the same
way against zkfast and Apache ZooKeeper 3.8: results, exact Stat relations, sequential names and
error codes (zk-formats §1.3, §2.1-§2.5)."""

from __future__ import annotations

import pytest
from kazoo.exceptions import (
    BadArgumentsError,
    BadVersionError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    ReconfigDisabledError,
)
from kazoo.protocol.states import ZnodeStat

from zkfast.testing.procs import wait_until
from zkfast.testing.rawclient import OP, OPEN_ACL, Reader, Writer

OPEN = OPEN_ACL

# error codes (zk-formats §1.3)
OK, UNIMPLEMENTED, BAD_ARGUMENTS = 0, -6, -8
NO_NODE, NODE_EXISTS, NOT_EMPTY, BAD_VERSION = -101, -110, -111, -103
CONTAINER, PERSISTENT_WITH_TTL, PERSISTENT_SEQUENTIAL_WITH_TTL = 4, 5, 6


def check_fresh_stat(stat: ZnodeStat, data_length: int, owner: int = 0) -> None:
    assert stat.czxid == stat.mzxid == stat.pzxid > 0
    assert stat.ctime == stat.mtime > 0
    assert (stat.version, stat.cversion, stat.aversion) == (0, 0, 0)
    assert stat.ephemeralOwner == owner
    assert stat.dataLength == data_length
    assert stat.numChildren == 0


def test_create_persistent_get_exists(kazoo_client, znode):
    zk = kazoo_client()
    assert zk.create(f"{znode}/a", b"hello") == f"{znode}/a"
    data, stat = zk.get(f"{znode}/a")
    assert data == b"hello"
    check_fresh_stat(stat, 5)
    assert zk.exists(f"{znode}/a") == stat
    assert zk.last_zxid >= stat.czxid
    assert zk.exists(f"{znode}/missing") is None
    empty, stat = zk.get(zk.create(f"{znode}/empty"))
    assert empty == b""
    check_fresh_stat(stat, 0)


def test_create2_returns_the_stored_stat(kazoo_client, znode):
    zk = kazoo_client()
    path, stat = zk.create(f"{znode}/c2", b"xyz", include_data=True)
    assert path == f"{znode}/c2"
    check_fresh_stat(stat, 3)
    assert stat == zk.exists(path)
    assert stat.czxid == zk.last_zxid  # the reply header carries the txn zxid


def test_create_ephemeral_owner_is_the_session(kazoo_client, znode):
    zk = kazoo_client()
    path = zk.create(f"{znode}/eph", b"e", ephemeral=True)
    check_fresh_stat(zk.exists(path), 1, owner=zk.client_id[0])
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create(f"{path}/child")
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create(f"{path}/child", ephemeral=True)


def test_sequential_suffix_follows_parent_cversion(kazoo_client, znode):
    zk = kazoo_client()
    assert zk.create(f"{znode}/s-", sequence=True) == f"{znode}/s-0000000000"
    assert zk.create(f"{znode}/s-", sequence=True) == f"{znode}/s-0000000001"
    zk.create(f"{znode}/plain")  # any child creation bumps the counter
    zk.delete(f"{znode}/s-0000000000")  # deletes do not
    assert zk.create(f"{znode}/s-", sequence=True) == f"{znode}/s-0000000003"
    assert zk.create(f"{znode}/", sequence=True) == f"{znode}/0000000004"
    eph = zk.create(f"{znode}/e-", b"v", ephemeral=True, sequence=True)
    assert eph == f"{znode}/e-0000000005"
    assert zk.exists(eph).ephemeralOwner == zk.client_id[0]
    # a sequential name that collides with an existing node is NodeExists
    zk.create(f"{znode}/x0000000007")  # takes counter value 6; the next sequence number is 7
    with pytest.raises(NodeExistsError):
        zk.create(f"{znode}/x", sequence=True)


def test_parent_stat_on_child_create_and_delete(kazoo_client, znode):
    zk = kazoo_client()
    before = zk.exists(znode)
    _, child = zk.create(f"{znode}/k", include_data=True)
    parent = zk.exists(znode)
    assert parent.cversion == before.cversion + 1
    assert parent.pzxid == child.czxid
    assert parent.numChildren == 1
    assert (parent.mzxid, parent.version) == (before.mzxid, before.version)
    zk.delete(f"{znode}/k")
    delete_zxid = zk.last_zxid
    parent = zk.exists(znode)
    # the visible cversion is 2*creations - numChildren, so a delete raises it too
    assert parent.cversion == before.cversion + 2
    assert parent.pzxid == delete_zxid > child.czxid
    assert parent.numChildren == 0


def test_set_data_versions(kazoo_client, znode):
    zk = kazoo_client()
    path = zk.create(f"{znode}/v", b"0")
    created = zk.exists(path)
    stat = zk.set(path, b"one", version=0)
    assert stat.version == 1
    assert stat.czxid == created.czxid
    assert stat.mzxid == zk.last_zxid > created.mzxid
    assert stat.pzxid == created.pzxid
    assert stat.mtime >= created.mtime
    assert stat.ctime == created.ctime
    assert stat.dataLength == 3
    with pytest.raises(BadVersionError):
        zk.set(path, b"two", version=0)
    with pytest.raises(BadVersionError):
        zk.set(path, b"two", version=5)
    assert zk.set(path, b"two", version=-1).version == 2
    assert zk.get(path)[0] == b"two"
    assert zk.set(path, b"").dataLength == 0
    with pytest.raises(NoNodeError):
        zk.set(f"{znode}/missing", b"x")


def test_delete_versions_and_errors(kazoo_client, znode):
    zk = kazoo_client()
    path = zk.create(f"{znode}/d", b"x")
    zk.set(path, b"y")
    with pytest.raises(BadVersionError):
        zk.delete(path, version=0)
    zk.create(f"{path}/child")
    with pytest.raises(NotEmptyError):
        zk.delete(path, version=1)
    with pytest.raises(NoNodeError):
        zk.delete(f"{path}/nothing")
    with pytest.raises(NoNodeError):
        zk.delete(f"{znode}/no/such/parent")
    zk.delete(f"{path}/child")
    zk.delete(path, version=1)
    assert zk.exists(path) is None


def test_create_errors(kazoo_client, znode):
    zk = kazoo_client()
    zk.create(f"{znode}/dup")
    with pytest.raises(NodeExistsError):
        zk.create(f"{znode}/dup")
    with pytest.raises(NoNodeError):
        zk.create(f"{znode}/no/parent")
    with pytest.raises(NoNodeError):
        zk.get(f"{znode}/none")
    with pytest.raises(NoNodeError):
        zk.get_children(f"{znode}/none")


def test_system_nodes(kazoo_client):
    zk = kazoo_client()
    assert "zookeeper" in zk.get_children("/")
    assert set(zk.get_children("/zookeeper")) == {"quota", "config"}
    root = zk.exists("/")
    assert root.czxid == 0 and root.ephemeralOwner == 0
    for path in ("/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"):
        with pytest.raises(BadArgumentsError):
            zk.delete(path)


def test_get_children_and_include_data(kazoo_client, znode):
    zk = kazoo_client()
    for name in ("b", "a", "c"):
        zk.create(f"{znode}/{name}", name.encode())
    assert sorted(zk.get_children(znode)) == ["a", "b", "c"]
    children, stat = zk.get_children(znode, include_data=True)
    assert sorted(children) == ["a", "b", "c"]
    assert stat == zk.exists(znode)
    assert stat.numChildren == 3
    assert zk.get_children(f"{znode}/a") == []


def test_ensure_path_and_sync(kazoo_client, znode):
    zk = kazoo_client()
    assert zk.ensure_path(f"{znode}/x/y/z")
    assert zk.exists(f"{znode}/x/y/z") is not None
    assert zk.ensure_path(f"{znode}/x/y/z")  # already there: no error
    assert zk.sync(f"{znode}/x") == f"{znode}/x"
    # sync does no checks: a missing path is fine
    assert zk.sync(f"{znode}/missing") == f"{znode}/missing"


def test_delete_recursive(kazoo_client, znode):
    zk = kazoo_client()
    zk.ensure_path(f"{znode}/r/a/b")
    zk.create(f"{znode}/r/c", b"1")
    zk.delete(f"{znode}/r", recursive=True)
    assert zk.exists(f"{znode}/r") is None


def test_large_data_round_trip(kazoo_client, znode):
    zk = kazoo_client()
    blob = bytes(range(256)) * 3000  # 768000 bytes, under jute.maxbuffer
    path = zk.create(f"{znode}/big", blob)
    data, stat = zk.get(path)
    assert data == blob
    assert stat.dataLength == len(blob)


def test_unicode_paths_and_data(kazoo_client, znode):
    zk = kazoo_client()
    path = zk.create(f"{znode}/ünï-код-名", "dåtä".encode())
    assert zk.get(path)[0] == "dåtä".encode()
    assert "ünï-код-名" in zk.get_children(znode)


def test_four_letter_words_and_server_version(kazoo_client, zk_server):
    zk = kazoo_client()
    assert zk.command(b"ruok") == "imok"
    assert zk.server_version()[:2] == (3, 8)
    assert "Zookeeper version" in zk_server.four_letter_word("srvr")


# Apache 3.8 checks the parent before validatePath on create, and reads do not validate at all,
# so the code depends on the op (probed on Apache 3.8.0). "P" stands for an existing parent that
# has an existing child "a". Columns: create, sequential create, setData, getData, exists,
# getChildren, delete.
PATH_CASES = [
    ("", (-8, -8, -8, 0, 0, 0, -8)),  # the empty path reads as the root
    ("a", (-8, -8, -8, -101, -101, -101, -8)),
    ("P/a/", (-8, 0, -8, -101, -101, -101, -101)),
    ("P//a", (-101, -101, -8, -101, -101, -101, -101)),
    ("P/a//b", (-101, -101, -8, -101, -101, -101, -101)),
    ("P/a/./b", (-101, -101, -8, -101, -101, -101, -101)),
    ("P/a/.", (-8, 0, -8, -101, -101, -101, -101)),
    ("P/a/..", (-8, 0, -8, -101, -101, -101, -101)),
    ("P/a/../b", (-101, -101, -8, -101, -101, -101, -101)),
    ("P/.", (-8, 0, -8, -101, -101, -101, -101)),
    ("P/..", (-8, 0, -8, -101, -101, -101, -101)),
    ("P/a\u0001", (-8, -8, -8, -101, -101, -101, -101)),
    ("P/a\u007f", (-8, -8, -8, -101, -101, -101, -101)),
    ("P/a\uf000", (-8, -8, -8, -101, -101, -101, -101)),
    ("P/a\ufff0", (-8, -8, -8, -101, -101, -101, -101)),
    ("P/a\u0000", (-8, -8, -8, -101, -8, -101, -8)),
    ("P/", (-8, 0, -8, -101, -101, -101, -101)),
    ("/", (-110, None, 0, 0, 0, 0, -8)),
]


@pytest.mark.parametrize(("case", "expected"), PATH_CASES, ids=[repr(c) for c, _ in PATH_CASES])
def test_path_validation_per_operation(raw_client, znode, case, expected):
    raw = raw_client()
    assert raw.create(f"{znode}/a")[0] == OK
    path = case.replace("P", znode, 1) if case.startswith("P") else case
    got = (
        raw.create(path)[0],
        raw.create(path, flags=2)[0] if expected[1] is not None else None,
        raw.set_data(path, b"")[0],
        raw.get_data(path)[0],
        raw.exists(path)[0],
        raw.get_children(path)[0],
        raw.delete(path),
    )
    assert got == expected


def test_path_rules_allow_dots_inside_names(kazoo_client, znode):
    zk = kazoo_client()
    for name in ("a.b", "...", ".a", "a.", "zookeeper"):
        assert zk.create(f"{znode}/{name}") == f"{znode}/{name}"


def test_container_node(raw_client, kazoo_client, znode):
    raw = raw_client()
    zk = kazoo_client()
    err, path, stat = raw.create(f"{znode}/cont", b"c", flags=CONTAINER)
    assert (err, path) == (OK, f"{znode}/cont")
    assert stat.ephemeralOwner == 0  # clients see 0 for containers
    err, never_used, _ = raw.create(f"{znode}/never", flags=CONTAINER)
    assert err == OK
    zk.create(f"{path}/child")
    zk.delete(f"{path}/child")
    # the container reaper (znode.container.checkIntervalMs=200) removes the emptied container...
    wait_until(lambda: zk.exists(path) is None, 30, "emptied container removed")
    # ...but not one that never had a child
    assert zk.exists(never_used) is not None


def test_container_sequential_flag_is_rejected(raw_client, znode):
    raw = raw_client()
    err, _, _ = raw.create(f"{znode}/cs", flags=7)
    assert err == BAD_ARGUMENTS


def test_ttl_nodes(raw_client, kazoo_client, znode):
    raw = raw_client()
    zk = kazoo_client()
    err, path, stat = raw.create(f"{znode}/ttl", b"t", flags=PERSISTENT_WITH_TTL, ttl=300)
    assert (err, path) == (OK, f"{znode}/ttl")
    assert stat.ephemeralOwner == 0
    check_fresh_stat(zk.exists(path), 1)
    err, seq, _ = raw.create(f"{znode}/ttls-", flags=PERSISTENT_SEQUENTIAL_WITH_TTL, ttl=300)
    assert err == OK and seq.startswith(f"{znode}/ttls-") and len(seq) == len(znode) + 16
    err, keep, _ = raw.create(f"{znode}/ttl-kept", flags=PERSISTENT_WITH_TTL, ttl=300)
    zk.create(f"{keep}/child")  # a TTL node with children is not removed
    wait_until(lambda: zk.exists(path) is None and zk.exists(seq) is None, 30, "TTL nodes expired")
    assert zk.exists(keep) is not None


@pytest.mark.parametrize(
    ("flags", "ttl"),
    [
        (PERSISTENT_WITH_TTL, 0),
        (PERSISTENT_WITH_TTL, -5),
        (PERSISTENT_WITH_TTL, 1 << 40),
        (0, 100),
        (1, 100),
    ],
)
def test_ttl_out_of_range_or_wrong_mode(raw_client, znode, flags, ttl):
    raw = raw_client()
    err, _, _ = raw.create(f"{znode}/bad-ttl", flags=flags, ttl=ttl)
    assert err == BAD_ARGUMENTS


def test_ttl_mode_through_plain_create_is_bad_arguments(raw_client, znode):
    raw = raw_client()
    err, _, _ = raw.create(f"{znode}/ttl-plain", flags=PERSISTENT_WITH_TTL, op="create2")
    assert err == BAD_ARGUMENTS


@pytest.mark.parametrize("flags", [-1, 8, 42])
def test_invalid_create_flags(raw_client, znode, flags):
    raw = raw_client()
    err, _, _ = raw.create(f"{znode}/flags", flags=flags)
    assert err == BAD_ARGUMENTS


def test_plain_create_reply_has_path_only(raw_client, znode):
    raw = raw_client()
    reply = raw.call(
        OP["create"],
        bytes(
            Writer()
            .string(f"{znode}/p")
            .buffer(b"")
            .acls(
                [
                    __import__("zkfast.testing.rawclient", fromlist=["Acl"]).Acl(
                        31, "world", "anyone"
                    )
                ]
            )
            .int(0)
            .out
        ),
    )
    assert reply.err == OK
    r = Reader(reply.body)
    assert r.string() == f"{znode}/p"
    assert r.remaining == 0


def test_get_all_children_number(raw_client, kazoo_client, znode):
    zk = kazoo_client()
    zk.ensure_path(f"{znode}/a/b/c")
    zk.create(f"{znode}/d")
    raw = raw_client()

    def count(path: str) -> tuple[int, int | None]:
        reply = raw.call(OP["getAllChildrenNumber"], bytes(Writer().string(path).out))
        return reply.err, (Reader(reply.body).int() if reply.err == 0 else None)

    assert count(znode) == (OK, 4)
    assert count(f"{znode}/a/b/c") == (OK, 0)
    assert count(f"{znode}/missing") == (NO_NODE, None)


def test_get_ephemerals(raw_client, znode):
    raw = raw_client()
    other = raw_client()
    for name in ("e1", "e2", "x/e3"):
        if "/" in name:
            assert raw.create(f"{znode}/x")[0] == OK
        assert raw.create(f"{znode}/{name}", flags=1)[0] == OK
    assert other.create(f"{znode}/theirs", flags=1)[0] == OK

    def ephemerals(prefix: str) -> list[str]:
        reply = raw.call(OP["getEphemerals"], bytes(Writer().string(prefix).out))
        assert reply.err == OK
        return sorted(Reader(reply.body).strings())

    assert ephemerals(znode) == [f"{znode}/e1", f"{znode}/e2", f"{znode}/x/e3"]
    assert ephemerals(f"{znode}/e") == [f"{znode}/e1", f"{znode}/e2"]  # a plain string prefix
    assert ephemerals("/") == [f"{znode}/e1", f"{znode}/e2", f"{znode}/x/e3"]
    assert ephemerals(f"{znode}/zzz") == []


def test_unknown_opcode_is_unimplemented(raw_client):
    raw = raw_client()
    reply = raw.call(10, b"")
    assert reply.err == UNIMPLEMENTED


def test_reply_zxid_tracks_last_processed(raw_client, znode):
    raw = raw_client()
    err, _, stat = raw.create(f"{znode}/z")
    assert err == OK
    create_zxid = raw.last_zxid
    assert create_zxid == stat.czxid
    read = raw.call(OP["exists"], bytes(Writer().string(f"{znode}/z").bool(False).out))
    assert read.zxid >= create_zxid  # reads carry the server's last processed zxid
    failed = raw.call(OP["delete"], bytes(Writer().string(f"{znode}/z").int(7).out))
    assert failed.err == BAD_VERSION
    assert failed.zxid > create_zxid  # a failed write still consumes a zxid


def test_multi_read(raw_client, kazoo_client, znode):
    zk = kazoo_client()
    zk.create(f"{znode}/m1", b"one")
    zk.create(f"{znode}/m1/k")
    raw = raw_client()
    w = Writer()
    for op, path in (
        (OP["getData"], f"{znode}/m1"),
        (OP["getChildren"], f"{znode}/m1"),
        (OP["getData"], f"{znode}/none"),
        (OP["getChildren"], f"{znode}/none"),
    ):
        w.int(op).bool(False).int(-1).string(path).bool(False)
    w.int(-1).bool(True).int(-1)
    reply = raw.call(OP["multiRead"], bytes(w.out))
    assert reply.err == OK
    results = raw.parse_multi(reply.body)
    assert [(t, e) for t, e, _ in results] == [
        (OP["getData"], 0),
        (OP["getChildren"], 0),
        (-1, NO_NODE),
        (-1, NO_NODE),
    ]
    r = Reader(results[0][2])
    assert r.buffer() == b"one"
    assert r.stat().numChildren == 1
    assert Reader(results[1][2]).strings() == ["k"]


def test_pipelined_requests_see_earlier_writes(raw_client, znode):
    raw = raw_client()
    path = f"{znode}/pipe"
    w = Writer
    xids = [
        raw.send(OP["create"], bytes(w().string(path).buffer(b"").acls(OPEN).int(0).out)),
        raw.send(OP["create"], bytes(w().string(path).buffer(b"").acls(OPEN).int(0).out)),
        raw.send(OP["setData"], bytes(w().string(path).buffer(b"1").int(0).out)),
        raw.send(OP["setData"], bytes(w().string(path).buffer(b"2").int(0).out)),
        raw.send(OP["getData"], bytes(w().string(path).bool(False).out)),
        raw.send(OP["delete"], bytes(w().string(path).int(1).out)),
        raw.send(OP["exists"], bytes(w().string(path).bool(False).out)),
    ]
    replies = [raw._read_reply() for _ in xids]
    assert [r.xid for r in replies] == xids  # replies keep request order
    assert [r.err for r in replies] == [OK, NODE_EXISTS, OK, BAD_VERSION, OK, OK, NO_NODE]
    assert Reader(replies[4].body).buffer() == b"1"
    zxids = [r.zxid for r in replies]
    assert zxids == sorted(zxids)


def test_many_async_requests(kazoo_client, znode):
    zk = kazoo_client()
    creates = [zk.create_async(f"{znode}/n{i:04d}", str(i).encode()) for i in range(300)]
    assert [c.get(timeout=60) for c in creates] == [f"{znode}/n{i:04d}" for i in range(300)]
    gets = [zk.get_async(f"{znode}/n{i:04d}") for i in range(300)]
    assert [g.get(timeout=60)[0] for g in gets] == [str(i).encode() for i in range(300)]
    czxids = [zk.exists(f"{znode}/n{i:04d}").czxid for i in range(300)]
    assert czxids == sorted(czxids) and len(set(czxids)) == 300
    assert zk.exists(znode).numChildren == 300


def test_frame_over_jute_maxbuffer_closes_the_connection(raw_client, znode):
    raw = raw_client()
    with pytest.raises(ConnectionError):
        raw.create(f"{znode}/big", b"x" * 1048576)
    ok = raw_client()
    err, path, stat = ok.create(f"{znode}/fits", b"x" * (1048575 - 1000))
    assert err == OK and stat.dataLength == 1048575 - 1000


def test_system_nodes_content(raw_client):
    raw = raw_client()
    err, data, stat = raw.get_data("/zookeeper/config")
    assert (err, data) == (OK, b"")  # standalone, no dynamic config
    assert (stat.czxid, stat.version, stat.aversion) == (0, 0, -1)
    err, data, stat = raw.get_data("/zookeeper/quota")
    assert (err, data, stat.czxid, stat.aversion) == (OK, b"", 0, 0)


def test_quota_stats_are_kept_by_the_server(raw_client, znode):
    raw = raw_client()
    quota = f"/zookeeper/quota{znode}"
    assert raw.create(f"/zookeeper/quota{znode}")[0] == OK
    assert raw.create(f"{quota}/zookeeper_limits", b"count=5,bytes=100")[0] == OK
    assert raw.create(f"{quota}/zookeeper_stats", b"count=0,bytes=0")[0] == OK
    assert raw.create(f"{znode}/a", b"12345")[0] == OK
    assert raw.create(f"{znode}/b", b"xy")[0] == OK
    assert raw.get_data(f"{quota}/zookeeper_stats")[1] == b"count=3,bytes=7"
    assert raw.set_data(f"{znode}/a", b"1")[0] == OK
    assert raw.delete(f"{znode}/b") == OK
    assert raw.get_data(f"{quota}/zookeeper_stats")[1] == b"count=2,bytes=1"
    # exceeding a quota is only logged unless zookeeper.enforceQuota is set
    for i in range(5):
        assert raw.create(f"{znode}/more{i}")[0] == OK


def test_nested_quotas_count_in_the_deepest_one_and_null_data_counts_no_bytes(
    raw_client, znode
):
    raw = raw_client()
    outer = f"/zookeeper/quota{znode}"
    inner = f"{outer}/x"
    assert raw.create(outer)[0] == OK
    assert raw.create(f"{outer}/zookeeper_limits", b"count=100,bytes=1000")[0] == OK
    assert raw.create(f"{outer}/zookeeper_stats", b"junk")[0] == OK
    assert raw.get_data(f"{outer}/zookeeper_stats")[1] == b"count=1,bytes=0"
    assert raw.create(f"{znode}/x", None)[0] == OK  # null data: 0 bytes
    err, data, stat = raw.get_data(f"{znode}/x")
    assert (err, data, stat.dataLength) == (OK, None, 0)
    assert raw.create(inner)[0] == OK
    assert raw.create(f"{inner}/zookeeper_limits", b"count=9,bytes=9")[0] == OK
    assert raw.create(f"{inner}/zookeeper_stats")[0] == OK
    assert raw.get_data(f"{inner}/zookeeper_stats")[1] == b"count=1,bytes=0"
    assert raw.create(f"{znode}/x/y", b"abc")[0] == OK
    assert raw.get_data(f"{inner}/zookeeper_stats")[1] == b"count=2,bytes=3"
    assert raw.get_data(f"{outer}/zookeeper_stats")[1] == b"count=2,bytes=0"
    # extra keys survive an update, sorted after the "=" marker
    assert raw.set_data(f"{outer}/zookeeper_stats", b"count=2,bytes=0=;zeta=1;alpha=2")[0] == OK
    assert raw.delete(f"{inner}/zookeeper_limits") == OK  # /x is no longer quota'd itself
    assert raw.create(f"{znode}/x/z", b"12")[0] == OK
    assert raw.get_data(f"{inner}/zookeeper_stats")[1] == b"count=2,bytes=3"
    assert raw.get_data(f"{outer}/zookeeper_stats")[1] == b"count=3,bytes=2=;alpha=2;zeta=1"


@pytest.mark.parametrize("path", ["", "/a//b", "/no/such/node"])
def test_sync_checks_nothing_and_echoes_the_path(raw_client, path):
    raw = raw_client()
    reply = raw.call(OP["sync"], bytes(Writer().string(path).out))
    assert reply.err == OK
    assert Reader(reply.body).string() == path


def test_reconfig_is_disabled(kazoo_client):
    zk = kazoo_client()
    with pytest.raises(ReconfigDisabledError):
        zk.reconfig(joining=None, leaving="2", new_members=None)


def test_sasl_request_without_sasl_configured(raw_client):
    raw = raw_client()
    reply = raw.call(102, bytes(Writer().buffer(b"token").out))
    assert (reply.err, reply.zxid) == (OK, 0)
    assert Reader(reply.body).buffer() is None  # a null token back
    assert raw.ping().err == OK


# (opcode, flags) -> (err, sequential name, ephemeral owner), as Apache 3.8.0 answers; a
# createContainer request makes a container whatever its flags say (ephemeral ones included)
CREATE_MODES = {
    "create": {
        0: (OK, False, False),
        1: (OK, False, True),
        2: (OK, True, False),
        3: (OK, True, True),
        4: (OK, False, False),
        5: (BAD_ARGUMENTS,) * 3,
        6: (BAD_ARGUMENTS,) * 3,
    },
    "createContainer": {
        0: (OK, False, False),
        1: (OK, False, False),
        2: (OK, True, False),
        3: (OK, True, False),
        4: (OK, False, False),
        5: (BAD_ARGUMENTS,) * 3,
        6: (BAD_ARGUMENTS,) * 3,
    },
    "createTTL": {
        0: (BAD_ARGUMENTS,) * 3,
        1: (BAD_ARGUMENTS,) * 3,
        2: (BAD_ARGUMENTS,) * 3,
        3: (BAD_ARGUMENTS,) * 3,
        4: (BAD_ARGUMENTS,) * 3,
        5: (OK, False, False),
        6: (OK, True, False),
    },
}
CREATE_MODES["create2"] = CREATE_MODES["create"]


@pytest.mark.parametrize("op", sorted(CREATE_MODES))
def test_create_flags_per_opcode(raw_client, znode, op):
    raw = raw_client()
    got = {}
    for flags in range(7):
        ttl = (1 << 40) - 1 if op == "createTTL" else None  # the longest TTL: never reaped here
        err, path, _ = raw.create(f"{znode}/{op}-{flags}-", flags=flags, op=op, ttl=ttl)
        if err:
            got[flags] = (err,) * 3
            continue
        sequential = path != f"{znode}/{op}-{flags}-"
        owner = raw.exists(path)[1].ephemeralOwner
        assert owner in (0, raw.session_id)
        got[flags] = (OK, sequential, owner == raw.session_id)
    assert got == CREATE_MODES[op]


def test_get_all_children_number_of_root_counts_every_node(raw_client, kazoo_client, znode):
    zk = kazoo_client()
    zk.ensure_path(f"{znode}/x/y")
    total, pending = 0, ["/"]
    while pending:
        path = pending.pop()
        for child in zk.get_children(path):
            total += 1
            pending.append(f"{path.rstrip('/')}/{child}")
    raw = raw_client()
    reply = raw.call(OP["getAllChildrenNumber"], bytes(Writer().string("/").out))
    assert reply.err == OK
    assert Reader(reply.body).int() == total  # includes /zookeeper and its children
