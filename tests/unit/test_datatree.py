"""DataTree: the fresh tree, every txn kind's stat arithmetic, replay rules and the digest.

Expected values come from Apache ZooKeeper 3.8.0's DataTree/DataNode/DigestCalculator
(zk-formats §2.1, §2.3, §5).
"""

from __future__ import annotations

import struct
import zlib

import pytest

from zkfast.core.datatree import (
    CONFIG_PATH,
    FRESH_TREE_DIGEST,
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    DataTree,
    ZNode,
    node_digest,
    parent_of,
    validate_path,
)
from zkfast.wire.constants import CONTAINER_EPHEMERAL_OWNER, EventType

SESSION = 0x0100000A5B3C0000
CREATED = EventType.NodeCreated
DELETED = EventType.NodeDeleted
CHANGED = EventType.NodeDataChanged
CHILDREN = EventType.NodeChildrenChanged
DIGEST_ACL = [(31, ("digest", "u:x"))]


def hdr(zxid: int, type_: int, client: int = SESSION) -> tuple[int, int, int, int, int]:
    return (client, 7, zxid, 1_700_000_000_000 + zxid, type_)


def create(t: DataTree, zxid: int, path: str, data: bytes = b"", *, eph: bool = False,
           pcv: int = -1, type_: int = 1, client: int = SESSION) -> list:
    return t.apply_txn(hdr(zxid, type_, client), (path, data, OPEN_ACL_UNSAFE, eph, pcv))


def stat(t: DataTree, path: str) -> dict[str, int]:
    names = ("czxid mzxid ctime mtime version cversion aversion ephemeralOwner dataLength "
             "numChildren pzxid").split()
    return dict(zip(names, t.stat_of(t.nodes[path]), strict=True))


def check_digest(t: DataTree) -> None:
    assert t.digest() == t.recompute_digest()


# --------------------------------------------------------------------------- fresh tree


def test_fresh_tree_nodes_acls_and_stats() -> None:
    t = DataTree()
    assert set(t.nodes) == {"/", "/zookeeper", "/zookeeper/quota", CONFIG_PATH}
    assert t.nodes["/"].acl == OPEN_ACL_UNSAFE
    assert t.nodes["/zookeeper"].acl == OPEN_ACL_UNSAFE
    assert t.nodes["/zookeeper/quota"].acl == OPEN_ACL_UNSAFE
    assert t.nodes[CONFIG_PATH].acl == READ_ACL_UNSAFE
    assert t.nodes[CONFIG_PATH].aversion == -1
    assert t.nodes["/zookeeper"].aversion == 0
    assert t.children_of("/") == ["zookeeper"]
    assert t.children_of("/zookeeper") == ["config", "quota"]
    # copyStat: cversion 2*0 - numChildren.
    assert stat(t, "/")["cversion"] == -1
    assert stat(t, "/zookeeper")["cversion"] == -2
    assert stat(t, CONFIG_PATH)["aversion"] == -1
    assert all(v == 0 for k, v in stat(t, "/zookeeper/quota").items())
    assert t.last_processed_zxid == 0


def test_fresh_tree_counters() -> None:
    t = DataTree()
    assert t.digest() == FRESH_TREE_DIGEST == 0x51C6D660
    assert t.recompute_digest() == FRESH_TREE_DIGEST
    assert t.node_count == 5  # srvr "Node count" of a fresh 3.8.0 standalone server
    assert t.count_descendants("/") == 3
    assert t.count_descendants("/zookeeper") == 2
    assert t.count_descendants("/zookeeper/quota") == 0
    assert t.count_descendants("/missing") == 0
    # "" (0) + "/" (1) + "/zookeeper" (10) + "/zookeeper/quota" (16) + "/zookeeper/config" (17)
    assert t.approximate_data_size == 44
    assert t.ephemerals_count == 0


def test_node_digest_formula() -> None:
    n = ZNode(b"hi", OPEN_ACL_UNSAFE, 5, 6, 7, 8, 1, 2, 3, -1, 9)
    expected = zlib.crc32(b"/a" + b"hi" + struct.pack(">qqqqqiiiq", 5, 6, 9, 7, 8, 1, 2, 3, -1))
    assert node_digest("/a", n) == expected
    root = ZNode(b"", OPEN_ACL_UNSAFE)
    assert node_digest("/", root) == node_digest("", root) == zlib.crc32(bytes(60))
    assert node_digest("/zookeeper/quota", n) == 0
    assert node_digest("/zookeeper", n) != 0
    assert node_digest("/zookeeperx", n) != 0


# --------------------------------------------------------------------------- create


def test_create_sets_stat_and_parent() -> None:
    t = DataTree()
    trig = create(t, 0x100000001, "/a", b"hello")
    assert trig == [("/a", CREATED), ("/", CHILDREN)]
    s = stat(t, "/a")
    assert s == {
        "czxid": 0x100000001, "mzxid": 0x100000001, "ctime": 1_700_000_000_000 + 0x100000001,
        "mtime": 1_700_000_000_000 + 0x100000001, "version": 0, "cversion": 0, "aversion": 0,
        "ephemeralOwner": 0, "dataLength": 5, "numChildren": 0, "pzxid": 0x100000001,
    }
    root = t.nodes["/"]
    assert root.cversion == 1 and root.pzxid == 0x100000001
    assert stat(t, "/")["cversion"] == 2 * 1 - 2
    assert t.last_processed_zxid == 0x100000001
    assert t.node_count == 6
    assert t.approximate_data_size == 44 + 2 + 5
    check_digest(t)


def test_create_parent_cversion_explicit_and_minus_one() -> None:
    t = DataTree()
    create(t, 1, "/p")
    create(t, 2, "/p/x", pcv=5)  # Prep's parentCVersion is applied as given
    assert t.nodes["/p"].cversion == 5 and t.nodes["/p"].pzxid == 2
    create(t, 3, "/p/y", pcv=-1)  # -1: parent + 1 (CreateTxnV0 logs)
    assert t.nodes["/p"].cversion == 6 and t.nodes["/p"].pzxid == 3
    # Not larger: neither cversion nor pzxid move, but the child is linked.
    trig = create(t, 4, "/p/z", pcv=6)
    assert trig == [("/p/z", CREATED), ("/p", CHILDREN)]
    assert t.nodes["/p"].cversion == 6 and t.nodes["/p"].pzxid == 3
    assert t.children_of("/p") == ["x", "y", "z"]
    check_digest(t)


def test_client_cversion_counts_creates_and_deletes() -> None:
    t = DataTree()
    create(t, 1, "/p")
    for i, name in enumerate("abc"):
        create(t, 2 + i, f"/p/{name}", pcv=i + 1)
    t.apply_txn(hdr(5, 2), ("/p/b",))
    # 3 creates + 1 delete = 4 changes; persisted cversion stays 3.
    assert t.nodes["/p"].cversion == 3
    assert stat(t, "/p")["cversion"] == 4
    assert stat(t, "/p")["numChildren"] == 2
    assert stat(t, "/p")["pzxid"] == 5


def test_cversion_wraps_like_java_int() -> None:
    t = DataTree()
    create(t, 1, "/p")
    t.nodes["/p"].cversion = 0x7FFFFFFF
    create(t, 2, "/p/a", pcv=-1)
    # Integer.MAX_VALUE + 1 wraps negative, which is not larger: nothing moves.
    assert t.nodes["/p"].cversion == 0x7FFFFFFF and t.nodes["/p"].pzxid == 1
    assert stat(t, "/p")["cversion"] == -3  # (2*MAX - 1) as a Java int


def test_create_on_missing_parent_changes_nothing() -> None:
    t = DataTree()
    before = t.digest()
    assert create(t, 9, "/no/child") == []
    assert "/no/child" not in t.nodes and t.digest() == before
    assert t.last_processed_zxid == 9


def test_ephemeral_create_and_sets() -> None:
    t = DataTree()
    create(t, 1, "/e", eph=True)
    create(t, 2, "/f", eph=True, client=0)  # ephemeral flag with clientId 0: owner 0
    assert t.ephemerals == {SESSION: {"/e"}}
    assert stat(t, "/e")["ephemeralOwner"] == SESSION
    assert stat(t, "/f")["ephemeralOwner"] == 0
    assert t.ephemerals_count == 1


def test_container_node() -> None:
    t = DataTree()
    trig = t.apply_txn(hdr(1, 19), ("/c", b"", OPEN_ACL_UNSAFE, 1))
    assert trig == [("/c", CREATED), ("/", CHILDREN)]
    assert t.nodes["/c"].ephemeral_owner == CONTAINER_EPHEMERAL_OWNER
    assert stat(t, "/c")["ephemeralOwner"] == 0  # clients see 0 for containers
    assert t.containers == {"/c"} and t.ephemerals == {}
    t.apply_txn(hdr(2, 20), ("/c",))  # deleteContainer
    assert t.containers == set() and "/c" not in t.nodes
    check_digest(t)


def test_ttl_node_with_extended_types() -> None:
    t = DataTree(extended_types_enabled=True)
    t.apply_txn(hdr(1, 21), ("/t", b"x", OPEN_ACL_UNSAFE, 1, 5000))
    assert t.nodes["/t"].ephemeral_owner == -0x0100000000000000 | 5000
    assert t.nodes["/t"].ephemeral_owner & 0xFFFFFFFFFFFFFFFF == 0xFF00000000001388
    assert stat(t, "/t")["ephemeralOwner"] == 0
    assert t.ttls == {"/t"} and t.ephemerals == {}
    t.apply_txn(hdr(2, 2), ("/t",))
    assert t.ttls == set()
    check_digest(t)


def test_ttl_owner_without_extended_types_is_a_session() -> None:
    # EphemeralType.get only recognises TTL owners when extendedTypesEnabled is set.
    t = DataTree()
    t.apply_txn(hdr(1, 21), ("/t", b"", OPEN_ACL_UNSAFE, 1, 5000))
    owner = -0x0100000000000000 | 5000
    assert t.ttls == set() and t.ephemerals == {owner: {"/t"}}
    assert stat(t, "/t")["ephemeralOwner"] == owner


def test_create_txn_v0_without_parent_cversion() -> None:
    t = DataTree()
    create(t, 1, "/p")
    t.apply_txn(hdr(2, 1), ("/p/a", b"", OPEN_ACL_UNSAFE, False))
    assert t.nodes["/p"].cversion == 1 and t.nodes["/p"].pzxid == 2


def test_close_session_accepts_a_bare_path_list() -> None:
    t = _with_ephemerals()
    trig = t.apply_txn(hdr(6, -11), ["/e3"])
    assert trig[:2] == [("/e3", DELETED), ("/", CHILDREN)] and SESSION not in t.ephemerals


def test_create2_returns_same_triggers_and_stat() -> None:
    t = DataTree()
    assert create(t, 1, "/a", b"d", type_=15) == [("/a", CREATED), ("/", CHILDREN)]
    assert stat(t, "/a")["dataLength"] == 1


# --------------------------------------------------------------------------- delete


def test_delete_updates_parent_and_fires() -> None:
    t = DataTree()
    create(t, 1, "/a")
    create(t, 2, "/a/b", b"xyz")
    trig = t.apply_txn(hdr(3, 2), ("/a/b",))
    assert trig == [("/a/b", DELETED), ("/a", CHILDREN)]
    assert "/a/b" not in t.nodes and t.children_of("/a") == []
    assert t.nodes["/a"].pzxid == 3 and t.nodes["/a"].cversion == 1
    assert t.approximate_data_size == 44 + 2
    check_digest(t)


def test_delete_pzxid_only_moves_forward() -> None:
    t = DataTree()
    create(t, 1, "/a")
    create(t, 10, "/a/b", pcv=1)
    t.apply_txn(hdr(5, 2), ("/a/b",))  # a replayed, older delete
    assert t.nodes["/a"].pzxid == 10
    check_digest(t)


def test_delete_missing_child_still_moves_parent_pzxid() -> None:
    t = DataTree()
    create(t, 1, "/a")
    assert t.apply_txn(hdr(7, 2), ("/a/gone",)) == []
    assert t.nodes["/a"].pzxid == 7
    check_digest(t)
    before = t.digest()
    assert t.apply_txn(hdr(8, 2), ("/nope/gone",)) == []  # missing parent: no change
    assert t.digest() == before


def test_delete_ephemeral_leaves_session_entry() -> None:
    t = DataTree()
    create(t, 1, "/e", eph=True)
    t.apply_txn(hdr(2, 2), ("/e",))
    assert t.ephemerals == {SESSION: set()}  # Apache keeps the (empty) set until closeSession
    assert t.ephemerals_count == 0


# --------------------------------------------------------------------------- setData / setACL


def test_set_data() -> None:
    t = DataTree()
    create(t, 1, "/a", b"12")
    trig = t.apply_txn(hdr(2, 5), ("/a", b"12345", 1))
    assert trig == [("/a", CHANGED)]
    s = stat(t, "/a")
    assert (s["mzxid"], s["version"], s["dataLength"], s["czxid"]) == (2, 1, 5, 1)
    assert s["mtime"] == 1_700_000_000_000 + 2 and s["ctime"] == 1_700_000_000_000 + 1
    assert t.approximate_data_size == 44 + 2 + 5
    # The txn's version is copied, whatever it is (decided by the leader).
    t.apply_txn(hdr(3, 5), ("/a", None, 41))
    # Null data stays null (Apache's DataNode.data), measured as 0 bytes.
    assert t.nodes["/a"].data is None and t.nodes["/a"].version == 41
    assert stat(t, "/a")["dataLength"] == 0
    assert t.approximate_data_size == 44 + 2
    check_digest(t)
    before = t.digest()
    assert t.apply_txn(hdr(4, 5), ("/nope", b"x", 1)) == []
    assert t.digest() == before


def test_reconfig_is_set_data_on_config_and_outside_digest() -> None:
    t = DataTree()
    trig = t.apply_txn(hdr(0x100000002, 16), (CONFIG_PATH, b"server.1=a:1:2\nversion=1", -1))
    assert trig == [(CONFIG_PATH, CHANGED)]
    assert t.nodes[CONFIG_PATH].version == -1
    assert t.nodes[CONFIG_PATH].mzxid == 0x100000002
    assert t.digest() == FRESH_TREE_DIGEST  # nodes under /zookeeper/ are not hashed
    t.apply_txn(hdr(0x100000003, 5), ("/zookeeper", b"x", 1))
    assert t.digest() != FRESH_TREE_DIGEST  # /zookeeper itself is
    check_digest(t)


def test_set_acl() -> None:
    t = DataTree()
    create(t, 1, "/a")
    assert t.apply_txn(hdr(2, 7), ("/a", DIGEST_ACL, 1)) == []
    n = t.nodes["/a"]
    assert n.acl == DIGEST_ACL and n.aversion == 1 and n.mzxid == 1 and n.version == 0
    check_digest(t)
    assert t.apply_txn(hdr(3, 7), ("/nope", DIGEST_ACL, 1)) == []


def test_check_error_and_create_session_change_nothing() -> None:
    t = DataTree()
    create(t, 1, "/a")
    before = t.digest()
    assert t.apply_txn(hdr(2, 13), ("/a", 1)) == []
    assert t.apply_txn(hdr(3, -1), (-101,)) == []
    assert t.apply_txn(hdr(4, -10, 0x77), (30000,)) == []
    assert t.digest() == before and t.last_processed_zxid == 4


def test_last_processed_zxid_never_goes_back() -> None:
    t = DataTree()
    create(t, 10, "/a")
    t.apply_txn(hdr(3, 5), ("/a", b"x", 1))
    assert t.last_processed_zxid == 10


# --------------------------------------------------------------------------- closeSession


def _with_ephemerals() -> DataTree:
    t = DataTree()
    create(t, 1, "/p")
    create(t, 2, "/p/e1", eph=True)
    create(t, 3, "/p/e2", eph=True)
    create(t, 4, "/e3", eph=True)
    create(t, 5, "/other", eph=True, client=0x99)
    return t


def test_close_session_with_paths_in_txn() -> None:
    t = _with_ephemerals()
    trig = t.apply_txn(hdr(6, -11), (["/p/e2", "/p/e1"],))
    # The txn's list first; /e3 was missed by the txn and is deleted after it.
    assert trig == [
        ("/p/e2", DELETED), ("/p", CHILDREN),
        ("/p/e1", DELETED), ("/p", CHILDREN),
        ("/e3", DELETED), ("/", CHILDREN),
    ]
    assert SESSION not in t.ephemerals and t.ephemerals == {0x99: {"/other"}}
    assert set(t.nodes) - {"/", "/zookeeper", "/zookeeper/quota", CONFIG_PATH} == {"/p", "/other"}
    assert t.nodes["/p"].pzxid == 6 and t.nodes["/"].pzxid == 6
    check_digest(t)


@pytest.mark.parametrize("record", [None, (None,), ([],), []])
def test_close_session_without_paths(record: object) -> None:
    t = _with_ephemerals()
    trig = t.apply_txn(hdr(6, -11), record)
    assert sorted(p for p, e in trig if e == DELETED) == ["/e3", "/p/e1", "/p/e2"]
    assert SESSION not in t.ephemerals
    check_digest(t)


def test_close_session_ignores_missing_paths() -> None:
    t = _with_ephemerals()
    trig = t.apply_txn(hdr(6, -11), (["/p/e1", "/p/gone"],))
    deleted = [p for p, e in trig if e == DELETED]
    assert deleted[0] == "/p/e1" and set(deleted) == {"/p/e1", "/p/e2", "/e3"}


# --------------------------------------------------------------------------- multi


def test_multi_applies_each_op_in_order() -> None:
    t = DataTree()
    create(t, 1, "/a", b"0")
    subs = [
        (1, ("/a/b", b"", OPEN_ACL_UNSAFE, False, 1)),
        (5, ("/a", b"1", 1)),
        (13, ("/a", 2)),
        (19, ("/a/c", b"", OPEN_ACL_UNSAFE, 2)),
        (2, ("/a/b",)),
    ]
    trig = t.apply_txn(hdr(2, 14), subs)
    assert trig == [
        ("/a/b", CREATED), ("/a", CHILDREN),
        ("/a", CHANGED),
        ("/a/c", CREATED), ("/a", CHILDREN),
        ("/a/b", DELETED), ("/a", CHILDREN),
    ]
    assert t.children_of("/a") == ["c"] and t.nodes["/a"].version == 1
    assert t.nodes["/a/c"].czxid == 2 and t.containers == {"/a/c"}
    assert t.last_processed_zxid == 2
    check_digest(t)


def test_failed_multi_changes_nothing() -> None:
    t = DataTree()
    create(t, 1, "/a")
    before = t.digest()
    subs = [(-1, (0,)), (-1, (-101,)), (-1, (-2,))]
    assert t.apply_txn(hdr(2, 14), subs) == []
    # Even a well-formed op next to an error sub-txn is not applied (processTxn 'failed').
    subs2 = [(1, ("/a/x", b"", OPEN_ACL_UNSAFE, False, 1)), (-1, (-110,))]
    assert t.apply_txn(hdr(3, 14), subs2) == []
    assert t.digest() == before and "/a/x" not in t.nodes
    assert t.last_processed_zxid == 3


def test_multi_unknown_sub_type_stops_there() -> None:
    t = DataTree()
    subs = [
        (1, ("/a", b"", OPEN_ACL_UNSAFE, False, 1)),
        (15, ("/b", b"", OPEN_ACL_UNSAFE, False, 2)),  # create2 is never a sub-txn type
        (1, ("/c", b"", OPEN_ACL_UNSAFE, False, 3)),
    ]
    assert t.apply_txn(hdr(1, 14), subs) == [("/a", CREATED), ("/", CHILDREN)]
    assert "/b" not in t.nodes and "/c" not in t.nodes


def test_multi_sub_failures_are_absorbed_one_by_one() -> None:
    t = DataTree()
    create(t, 1, "/a")
    subs = [(5, ("/missing", b"x", 1)), (1, ("/b", b"", OPEN_ACL_UNSAFE, False, 2))]
    assert t.apply_txn(hdr(2, 14), subs) == [("/b", CREATED), ("/", CHILDREN)]


# --------------------------------------------------------------------------- replay


def _log() -> list[tuple[tuple[int, int, int, int, int], object]]:
    acl = OPEN_ACL_UNSAFE
    return [
        (hdr(1, 1), ("/a", b"1", acl, False, 1)),
        (hdr(2, 5), ("/a", b"2", 1)),
        (hdr(3, 1), ("/a/b", b"", acl, True, 1)),
        (hdr(4, 15), ("/a/c", b"", acl, False, 2)),
        (hdr(5, 2), ("/a/b",)),
        (hdr(6, 7), ("/a", DIGEST_ACL, 1)),
        (hdr(7, 14), [(1, ("/d", b"", acl, False, 3)), (5, ("/d", b"z", 1))]),
        (hdr(8, 1), ("/a/e", b"", acl, True, 3)),
        (hdr(9, -11), (["/a/e"],)),
        (hdr(10, 19), ("/k", b"", acl, 4)),
    ]


def _snapshot(t: DataTree) -> dict[str, tuple]:
    return {p: (n.data, n.stat_persisted(), sorted(n.children), n.acl) for p, n in t.nodes.items()}


def test_replaying_the_log_over_its_result_is_idempotent() -> None:
    t = DataTree()
    for h, r in _log():
        t.apply_txn(h, r)
    state, digest = _snapshot(t), t.digest()
    for h, r in _log():
        t.apply_txn(h, r)
    assert _snapshot(t) == state
    assert t.digest() == digest == t.recompute_digest()
    assert t.last_processed_zxid == 10


def test_replayed_create_on_existing_node_repairs_parent() -> None:
    # Fuzzy snapshot: the parent was serialized before later creates under it.
    t = DataTree()
    create(t, 1, "/p")
    create(t, 2, "/p/n", pcv=1)
    assert create(t, 9, "/p/n", pcv=4) == []  # NodeExists: no triggers, node untouched
    assert t.nodes["/p"].cversion == 4 and t.nodes["/p"].pzxid == 9
    assert t.nodes["/p/n"].czxid == 2
    check_digest(t)
    assert create(t, 10, "/p/n", pcv=3) == []  # smaller: no change
    assert t.nodes["/p"].cversion == 4 and t.nodes["/p"].pzxid == 9
    create(t, 11, "/p/n", pcv=-1)  # -1 means current + 1
    assert t.nodes["/p"].cversion == 5 and t.nodes["/p"].pzxid == 11


def test_repair_only_for_plain_create() -> None:
    t = DataTree()
    create(t, 1, "/p")
    create(t, 2, "/p/n", pcv=1)
    create(t, 9, "/p/n", pcv=4, type_=15)  # create2: Apache only repairs OpCode.create
    assert t.nodes["/p"].cversion == 1 and t.nodes["/p"].pzxid == 2
    # ...but a create sub-txn inside a multi is a create.
    t.apply_txn(hdr(10, 14), [(1, ("/p/n", b"", OPEN_ACL_UNSAFE, False, 6))])
    assert t.nodes["/p"].cversion == 6 and t.nodes["/p"].pzxid == 10


# --------------------------------------------------------------------------- queries


def test_children_descendants_and_counts() -> None:
    t = DataTree()
    create(t, 1, "/a")
    create(t, 2, "/a/z", pcv=1)
    create(t, 3, "/a/b", pcv=2)
    create(t, 4, "/a/b/c", pcv=1)
    create(t, 5, "/ab")
    assert t.children_of("/a") == ["b", "z"]
    assert t.count_descendants("/a") == 3  # not /ab
    assert t.count_descendants("/") == 8
    assert t.node_count == 10
    assert t.get_node("/a/b/c") is t.nodes["/a/b/c"] and t.get_node("/x") is None
    with pytest.raises(KeyError):
        t.children_of("/x")


def test_from_nodes_rebuilds_indexes() -> None:
    t = DataTree()
    for h, r in _log():
        t.apply_txn(h, r)
    create(t, 11, "/a/eph", eph=True)
    loaded = [
        ("" if p == "/" else p, ZNode(n.data, n.acl, *n.stat_persisted()))
        for p, n in sorted(t.nodes.items(), key=lambda kv: kv[0].count("/") if kv[0] != "/" else 0)
    ]
    u = DataTree.from_nodes(loaded, last_processed_zxid=11)
    assert _snapshot(u) == _snapshot(t)
    assert u.digest() == t.digest() == u.recompute_digest()
    assert u.ephemerals == t.ephemerals and u.containers == t.containers == {"/k"}
    assert u.approximate_data_size == t.approximate_data_size
    assert u.last_processed_zxid == 11
    with pytest.raises(ValueError):
        DataTree.from_nodes([("", ZNode(b"", [])), ("/x/y", ZNode(b"", []))])


def test_digest_tracks_a_longer_history() -> None:
    t = DataTree()
    zxid = 0
    for i in range(40):
        zxid += 1
        create(t, zxid, f"/n{i % 7}" + ("" if i < 7 else f"/c{i}"), bytes([i]) * i,
               pcv=-1, eph=i % 3 == 0)
        if i % 5 == 4:
            zxid += 1
            t.apply_txn(hdr(zxid, 5), (f"/n{i % 7}", b"v%d" % i, i))
        if i % 9 == 8:
            zxid += 1
            t.apply_txn(hdr(zxid, -11), None)
        assert t.digest() == t.recompute_digest()


# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    "path, ok",
    [
        ("/", True),
        ("/a", True),
        ("/a/b/c", True),
        ("/a.b", True),
        ("/...", True),
        ("/a/..b", True),
        ("/a/.b", True),
        ("/\u00e9t\u00e9", True),
        ("/\u00a0", True),
        ("/\ufeff", True),
        ("", False),
        ("a", False),
        ("a/b", False),
        ("/a/", False),
        ("//", False),
        ("/a//b", False),
        ("/.", False),
        ("/..", False),
        ("/a/.", False),
        ("/a/../b", False),
        ("/./a", False),
        ("/a\x00", False),
        ("/a\x01", False),
        ("/a\x1f", False),
        ("/a\x7f", False),
        ("/a\x9f", False),
        ("/a\ud800", False),
        ("/a\ue000", False),
        ("/a\uf8ff", False),
        ("/a\ufff0", False),
        ("/a\uffff", False),
        ("/a\U0001f600", False),  # astral: a surrogate pair in Java
        ("/a\uf900", True),
        ("/a\ufffe"[:-1] + "\uffef", True),
    ],
)
def test_validate_path(path: str, ok: bool) -> None:
    assert validate_path(path) is ok


def test_parent_of() -> None:
    assert parent_of("/a") == "/"
    assert parent_of("/a/b") == "/a"


# --------------------------------------------------------------------------- Apache 3.8.0 log

# The txn entries (TxnHeader + record + TxnDigest) of a Debian ZooKeeper 3.8.0 standalone
# server's log.1, written by a kazoo session: creates (plain, sequential, ephemeral, non-ASCII
# path), setData (also on /), delete, setACL, a multi, a failed multi, a failed create (error
# txn, no digest) and two closeSessions. Its `mntr` after zxid 0x12 said zk_znode_count 10,
# zk_approximate_data_size 87, zk_ephemerals_count 1.
APACHE_LOG = [
    (
        "0100000cabd60000000000000000000000000001000001a21934bfeafffffff6000027100000000200000000"
        "51c6d660"
    ),
    (
        "0100000cabd60001000000000000000000000002000001a21934c0fcfffffff6000027100000000200000000"
        "51c6d660"
    ),
    (
        "0100000cabd60000000000010000000000000003000001a21934c10300000001000000022f61000000026869"
        "000000010000001f00000005776f726c6400000006616e796f6e65000000000100000002000000016260aaff"
    ),
    (
        "0100000cabd60000000000020000000000000004000001a21934c25d000000010000000f2f612f732d303030"
        "303030303030300000000178000000010000001f00000005776f726c6400000006616e796f6e650000000001"
        "0000000200000001f114e07e"
    ),
    (
        "0100000cabd60000000000030000000000000005000001a21934c265000000010000000f2f612f732d303030"
        "303030303030310000000179000000010000001f00000005776f726c6400000006616e796f6e650100000002"
        "0000000200000001e9796082"
    ),
    (
        "0100000cabd60001000000010000000000000006000001a21934c26c00000001000000032f65310000000365"
        "7068000000010000001f00000005776f726c6400000006616e796f6e6501000000020000000200000002b5c2"
        "afc9"
    ),
    (
        "0100000cabd60001000000020000000000000007000001a21934c29400000001000000052f612f6532000000"
        "00000000010000001f00000005776f726c6400000006616e796f6e6501000000030000000200000002fe3c1b"
        "26"
    ),
    (
        "0100000cabd60000000000040000000000000008000001a21934c29700000005000000022f61000000056865"
        "6c6c6f00000001000000020000000379ee9df7"
    ),
    (
        "0100000cabd60000000000050000000000000009000001a21934c29b000000020000000f2f612f732d303030"
        "303030303030300000000200000002ec3a0724"
    ),
    (
        "0100000cabd6000000000006000000000000000a000001a21934c29e00000001000000022f63000000000000"
        "00010000001f00000005776f726c6400000006616e796f6e6500000000030000000200000003ba49cb37"
    ),
    (
        "0100000cabd6000000000007000000000000000b000001a21934c2a100000001000000042f632f7800000001"
        "31000000010000001f00000005776f726c6400000006616e796f6e6500000000010000000200000003d60a47"
        "2a"
    ),
    (
        "0100000cabd6000000000008000000000000000c000001a21934c2b100000007000000042f632f7800000001"
        "0000001f000000066469676573740000001e753a4a7137774d79412f7732566435574944414b6475344f4949"
        "4645513d000000010000000200000003c14132eb"
    ),
    (
        "0100000cabd6000000000009000000000000000d000001a21934c2ba0000000e00000003000000010000002c"
        "000000032f6d31000000016d000000010000001f00000005776f726c6400000006616e796f6e650000000004"
        "0000000500000013000000022f61000000056d756c7469000000020000000200000008000000042f632f7800"
        "0000020000000302cb4afa"
    ),
    (
        "0100000cabd600000000000a000000000000000e000001a21934c2be0000000e00000002000000010000002c"
        "000000032f6d32000000016d000000010000001f00000005776f726c6400000006616e796f6e650000000005"
        "ffffffff00000004ffffff9b000000020000000302cb4afa"
    ),
    (
        "0100000cabd600000000000b000000000000000f000001a21934c2ce00000001000000062fc3a974c3a90000"
        "0002c3bc000000010000001f00000005776f726c6400000006616e796f6e6500000000050000000200000003"
        "2b094d35"
    ),
    (
        "0100000cabd600000000000c0000000000000010000001a21934c2d2ffffffffffffff92"
    ),
    (
        "0100000cabd600000000000d0000000000000011000001a21934c2d500000005000000012f00000008726f6f"
        "74646174610000000100000002000000030d249c1b"
    ),
    (
        "0100000cabd60001000000030000000000000012000001a21934c2d7fffffff500000002000000052f612f65"
        "32000000032f653100000002000000025102e02b"
    ),
    (
        "0100000cabd600000000000e0000000000000013000001a21934c532fffffff5000000010000000f2f612f73"
        "2d303030303030303030310000000200000001a2e43563"
    ),
]


def _decode_log_entry(raw: bytes) -> tuple[tuple, object, int | None]:
    from zkfast._impl import core
    from zkfast.wire import jute

    header, off = core.decode_record(jute.TXN_HEADER, raw, 0)
    record, off = core.decode_record(jute.TXNS[header[4]], raw, off)
    if header[4] == 14:
        record = [(t, core.decode_record(jute.TXNS[t], d, 0)[0]) for t, d in record[0]]
    digest = None
    if off < len(raw):
        (_version, digest), off = core.decode_record(jute.TXN_DIGEST, raw, off)
    assert off == len(raw)
    return header, record, digest


def test_replay_of_an_apache_log_matches_every_txn_digest() -> None:
    t = DataTree()
    checked = 0
    for entry in APACHE_LOG:
        header, record, digest = _decode_log_entry(bytes.fromhex(entry))
        t.apply_txn(header, record)
        if digest is not None:
            assert t.digest() == digest & 0xFFFFFFFFFFFFFFFF, hex(header[2])
            checked += 1
        if header[2] == 0x12:
            assert (t.node_count, t.approximate_data_size, t.ephemerals_count) == (10, 87, 1)
    assert checked == len(APACHE_LOG) - 1  # the error txn carries no digest
    assert t.last_processed_zxid == 0x13
    assert t.digest() == t.recompute_digest()
    assert t.children_of("/a") == []
    assert t.nodes["/a"].cversion == 3 and t.nodes["/"].data == b"rootdata"
    # Replaying the whole log again changes nothing (restore over a fuzzy snapshot).
    before = t.digest()
    for entry in APACHE_LOG:
        header, record, _ = _decode_log_entry(bytes.fromhex(entry))
        t.apply_txn(header, record)
    assert t.digest() == before


# --------------------------------------------------------------------------- null data


def test_null_data_stays_null_and_hashes_like_empty() -> None:
    """Apache keeps a null buffer as null: dataLength 0, digest as for empty data."""
    t = DataTree()
    create(t, 1, "/n", None)  # type: ignore[arg-type]
    create(t, 2, "/e", b"")
    assert t.nodes["/n"].data is None and t.nodes["/e"].data == b""
    assert stat(t, "/n")["dataLength"] == 0
    assert node_digest("/x", t.nodes["/n"]) == node_digest("/x", t.nodes["/n"])
    n, e = t.nodes["/n"], t.nodes["/e"]
    e2 = ZNode(b"", e.acl, n.czxid, n.mzxid, n.ctime, n.mtime, 0, 0, 0, 0, n.pzxid)
    assert node_digest("/n", n) == node_digest("/n", e2)
    assert t.approximate_data_size == 44 + 2 + 2
    check_digest(t)
    t.apply_txn(hdr(3, 2), ("/n",))
    assert t.approximate_data_size == 44 + 2
    check_digest(t)


# --------------------------------------------------------------------------- quotas

STATS = "/zookeeper/quota/q/zookeeper_stats"
LIMITS = "/zookeeper/quota/q/zookeeper_limits"


def quota_tree() -> DataTree:
    t = DataTree()
    create(t, 1, "/q", b"ab")
    create(t, 2, "/q/a", b"12345")
    create(t, 3, "/zookeeper/quota/q")
    create(t, 4, LIMITS, b"count=5,bytes=100")
    return t


def test_stats_node_is_recounted_when_created_then_kept_by_every_write() -> None:
    """DataTree.updateQuotaForPath on the stats node's create, then updateQuotaStat."""
    t = quota_tree()
    digest = t.digest()
    create(t, 5, STATS, b"count=0,bytes=0")
    assert t.nodes[STATS].data == b"count=2,bytes=7"  # /q and /q/a
    create(t, 6, "/q/a/deep", b"xyz")
    create(t, 7, "/q/b", None)  # type: ignore[arg-type]
    assert t.nodes[STATS].data == b"count=4,bytes=10"
    t.apply_txn(hdr(8, 5), ("/q/a", b"1", 1))
    assert t.nodes[STATS].data == b"count=4,bytes=6"
    t.apply_txn(hdr(9, 2), ("/q/a/deep",))
    assert t.nodes[STATS].data == b"count=3,bytes=3"
    create(t, 10, "/other", b"not counted")
    t.apply_txn(hdr(11, 5), ("/q", None, 1))
    assert t.nodes[STATS].data == b"count=3,bytes=1"
    # Only the stats node's data moves: its stat stays, and /zookeeper/ is outside the digest.
    assert t.nodes[STATS].mzxid == 5 and t.nodes[STATS].version == 0
    check_digest(t)
    assert t.digest() != digest  # the /q nodes changed it, not the stats
    fresh = DataTree.from_nodes((p, n) for p, n in sorted(t.nodes.items()))
    assert fresh.digest() == t.digest()


def test_deepest_quota_wins_and_removing_the_limits_node_stops_the_counting() -> None:
    t = quota_tree()
    create(t, 5, STATS)
    create(t, 6, "/zookeeper/quota/q/a")
    create(t, 7, "/zookeeper/quota/q/a/zookeeper_limits", b"count=1,bytes=1")
    create(t, 8, "/zookeeper/quota/q/a/zookeeper_stats")
    inner = "/zookeeper/quota/q/a/zookeeper_stats"
    assert t.nodes[inner].data == b"count=1,bytes=5"
    assert t.max_quota_prefix("/q/a/x") == "/q/a" and t.max_quota_prefix("/q/b") == "/q"
    assert t.max_quota_prefix("/qq") is None and t.max_quota_prefix("/") is None
    create(t, 9, "/q/a/x", b"1")
    assert t.nodes[inner].data == b"count=2,bytes=6"
    assert t.nodes[STATS].data == b"count=2,bytes=7"  # only the deepest quota counts
    t.apply_txn(hdr(10, 2), (LIMITS,))
    create(t, 11, "/q/c", b"1")
    assert t.nodes[STATS].data == b"count=2,bytes=7"
    assert t.max_quota_prefix("/q/c") is None


def test_stats_text_keeps_other_keys_and_a_bad_text_is_left_alone() -> None:
    t = quota_tree()
    create(t, 5, STATS)
    t.nodes[STATS].data = b"count=2,bytes=7=;countHardLimit=9;a=1"
    create(t, 6, "/q/b", b"12")
    assert t.nodes[STATS].data == b"count=3,bytes=9=;a=1;countHardLimit=9"
    t.nodes[STATS].data = b"count=x"
    create(t, 7, "/q/c", b"12")
    assert t.nodes[STATS].data == b"count=x"


def test_loading_a_tree_rebuilds_quotas_and_recounts_stats() -> None:
    """DataTree.setupQuota: leaf limits nodes mark their paths and recount the stats."""
    t = quota_tree()
    create(t, 5, STATS)
    t.nodes[STATS].data = b"count=40,bytes=40"
    loaded = DataTree.from_nodes((p, n) for p, n in sorted(t.nodes.items()))
    assert loaded.nodes[STATS].data == b"count=2,bytes=7"
    create(loaded, 6, "/q/z", b"1")
    assert loaded.nodes[STATS].data == b"count=3,bytes=8"


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        (b"", {}),
        (b"count=5,bytes=100", {"count": 5, "bytes": 100}),
        (b"count=-1,bytes=-1=;byteHardLimit=10;countHardLimit=3",
         {"count": -1, "bytes": -1, "byteHardLimit": 10, "countHardLimit": 3}),
        (b"count==4,bytes=1,", {"count": -1, "bytes": 1}),
    ],
)
def test_stats_track_text(text: bytes, parsed: dict[str, int]) -> None:
    from zkfast.core.datatree import format_stats_track, parse_stats_track

    assert parse_stats_track(text) == parsed
    if parsed:
        assert parse_stats_track(format_stats_track(parsed)) == parsed


@pytest.mark.parametrize("text", [b"count", b"count=x", b",count=1", b"=", b"count=1e3"])
def test_stats_track_rejects_what_java_rejects(text: bytes) -> None:
    from zkfast.core.datatree import parse_stats_track

    with pytest.raises(ValueError):
        parse_stats_track(text)


@pytest.mark.parametrize("ttl", [0, -1, -(1 << 62)])
def test_a_create_ttl_txn_with_a_ttl_out_of_range_creates_nothing(ttl: int) -> None:
    """Apache 3.8.0 logs such a txn (createTTL with a plain mode) and dies applying it;
    zkfast's apply absorbs it, alone or inside a multi."""
    t = DataTree(extended_types_enabled=True)
    digest = t.digest()
    assert t.apply_txn(hdr(1, 21), ("/t", b"", OPEN_ACL_UNSAFE, 1, ttl)) == []
    assert "/t" not in t.nodes and t.digest() == digest and t.last_processed_zxid == 1
    subs = [(21, ("/t", b"", OPEN_ACL_UNSAFE, 1, ttl)), (1, ("/u", b"", OPEN_ACL_UNSAFE, False, 1))]
    t.apply_txn(hdr(2, 14), subs)
    assert "/t" not in t.nodes and "/u" in t.nodes
    check_digest(t)


def test_apply_multi_results_matches_apply_txn_and_reports_each_ops_stat() -> None:
    subs = [
        (1, ("/m", b"", OPEN_ACL_UNSAFE, False, 1)),
        (5, ("/m", b"ab", 1)),
        (19, ("/m/k", b"k", OPEN_ACL_UNSAFE, 1)),
        (5, ("/m", b"abc", 2)),
        (13, ("/m", 2)),
        (20, ("/m/k",)),
        (2, ("/nope",)),
    ]
    plain, with_results = DataTree(), DataTree()
    triggers = plain.apply_txn(hdr(5, 14), subs)
    got_triggers, results = with_results.apply_multi_results(hdr(5, 14), subs)
    assert got_triggers == triggers
    assert with_results.digest() == plain.digest() and with_results.last_processed_zxid == 5
    assert [(r[0], r[1]) for r in results] == [
        (1, "/m"), (5, "/m"), (19, "/m/k"), (5, "/m"), (13, "/m"), (2, "/m/k"), (-1, -101)]
    assert results[1][2][4] == 1 and results[1][2][9] == 0  # version 1, no child yet
    assert results[3][2][4] == 2 and results[3][2][9] == 1  # version 2, one child
    assert results[2][2][0] == 5 and results[2][2][7] == 0  # a container reports owner 0
    failed = [(1, ("/x", b"", OPEN_ACL_UNSAFE, False, 1)), (-1, (-101,))]
    before = with_results.digest()
    assert with_results.apply_multi_results(hdr(6, 14), failed) == ([], [])
    assert with_results.digest() == before and with_results.last_processed_zxid == 6
