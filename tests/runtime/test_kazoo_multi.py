"""Transactions (multi): atomic commit with one zxid, rollback results per op (zk-formats §2.6)."""

from __future__ import annotations

import pytest
from kazoo.exceptions import (
    BadVersionError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    RuntimeInconsistency,
)
from kazoo.protocol.states import ZnodeStat

from zkfast.testing.rawclient import OP, OPEN_ACL, Reader, Writer

OK, NO_NODE, BAD_VERSION, NODE_EXISTS, RUNTIME_INCONSISTENCY = 0, -101, -103, -110, -2
MARSHALLING_ERROR = -5


def create_record(path: str, data: bytes = b"", flags: int = 0, ttl: int | None = None) -> bytes:
    w = Writer().string(path).buffer(data).acls(OPEN_ACL).int(flags)
    if ttl is not None:
        w.long(ttl)
    return bytes(w.out)


def test_commit_results_and_shared_zxid(kazoo_client, znode):
    zk = kazoo_client()
    zk.create(f"{znode}/old", b"o")
    zk.create(f"{znode}/gone")
    tx = zk.transaction()
    tx.create(f"{znode}/new", b"n")
    tx.set_data(f"{znode}/old", b"changed", version=0)
    tx.check(f"{znode}/old", 1)  # sees the set_data before it
    tx.delete(f"{znode}/gone")
    tx.create(f"{znode}/seq-", sequence=True)
    results = tx.commit()
    assert results[0] == f"{znode}/new"
    assert isinstance(results[1], ZnodeStat) and results[1].version == 1
    assert results[2] is True and results[3] is True
    assert results[4] == f"{znode}/seq-0000000003"
    new = zk.exists(f"{znode}/new")
    assert new.czxid == results[1].mzxid == zk.exists(znode).pzxid  # one txn, one zxid
    assert zk.get(f"{znode}/old")[0] == b"changed"
    assert zk.exists(f"{znode}/gone") is None


def test_rollback_results_and_nothing_applied(kazoo_client, znode):
    zk = kazoo_client()
    zk.create(f"{znode}/v", b"x")
    before = zk.exists(znode)
    tx = zk.transaction()
    tx.create(f"{znode}/a")
    tx.set_data(f"{znode}/v", b"y")
    tx.check(f"{znode}/v", 0)  # fails: the set_data above made it version 1
    tx.create(f"{znode}/b")
    tx.delete(f"{znode}/v")
    results = tx.commit()
    assert [type(r) for r in results] == [
        RolledBackError,
        RolledBackError,
        BadVersionError,
        RuntimeInconsistency,
        RuntimeInconsistency,
    ]
    assert zk.exists(f"{znode}/a") is None and zk.exists(f"{znode}/b") is None
    assert zk.get(f"{znode}/v") == (b"x", zk.exists(f"{znode}/v"))
    assert zk.exists(f"{znode}/v").version == 0
    assert zk.exists(znode) == before


@pytest.mark.parametrize(
    ("build", "error"),
    [
        (lambda tx, p: tx.create(f"{p}/v"), NodeExistsError),
        (lambda tx, p: tx.create(f"{p}/none/x"), NoNodeError),
        (lambda tx, p: tx.delete(f"{p}/none"), NoNodeError),
        (lambda tx, p: tx.delete(p), NotEmptyError),
        (lambda tx, p: tx.set_data(f"{p}/v", b"", version=3), BadVersionError),
        (lambda tx, p: tx.check(f"{p}/none", 0), NoNodeError),
    ],
)
def test_first_op_failure(kazoo_client, znode, build, error):
    zk = kazoo_client()
    zk.create(f"{znode}/v")
    tx = zk.transaction()
    build(tx, znode)
    tx.create(f"{znode}/after")
    results = tx.commit()
    assert [type(r) for r in results] == [error, RuntimeInconsistency]
    assert zk.exists(f"{znode}/after") is None


def test_ops_see_earlier_ops_of_the_same_multi(kazoo_client, znode):
    zk = kazoo_client()
    tx = zk.transaction()
    tx.create(f"{znode}/p")
    tx.create(f"{znode}/p/c")
    tx.delete(f"{znode}/p/c")
    tx.create(f"{znode}/p/c", b"again")
    tx.check(f"{znode}/p", 0)
    results = tx.commit()
    assert results == [f"{znode}/p", f"{znode}/p/c", True, f"{znode}/p/c", True]
    assert zk.get(f"{znode}/p/c")[0] == b"again"
    # cversion counts the two creations of c; the visible cversion is 2*2 - 1
    assert zk.exists(f"{znode}/p").cversion == 3


def test_multi_create_variants_raw(raw_client, znode):
    raw = raw_client()
    err, results = raw.multi(
        [
            (OP["create"], create_record(f"{znode}/c1", b"1")),
            (OP["create2"], create_record(f"{znode}/c2", b"22")),
            (OP["createContainer"], create_record(f"{znode}/c3", flags=4)),
            (OP["createTTL"], create_record(f"{znode}/c4", flags=5, ttl=60000)),
            (OP["setData"], bytes(Writer().string(f"{znode}/c1").buffer(b"one").int(0).out)),
            (OP["check"], bytes(Writer().string(f"{znode}/c2").int(0).out)),
            (OP["delete"], bytes(Writer().string(f"{znode}/c1").int(1).out)),
        ]
    )
    assert err == OK
    assert [(t, e) for t, e, _ in results] == [
        (OP["create"], 0),
        (OP["create"], 0),  # Apache 3.8.0: create2 inside multi answers as a plain create
        (OP["create2"], 0),  # container and TTL creates answer as create2
        (OP["create2"], 0),
        (OP["setData"], 0),
        (OP["check"], 0),
        (OP["delete"], 0),
    ]
    assert Reader(results[0][2]).string() == f"{znode}/c1"
    assert Reader(results[1][2]).string() == f"{znode}/c2"
    assert len(results[1][2]) == 4 + len(f"{znode}/c2")
    r = Reader(results[2][2])
    assert r.string() == f"{znode}/c3"
    c3 = r.stat()
    assert (c3.dataLength, c3.version, c3.ephemeralOwner) == (0, 0, 0)
    r = Reader(results[3][2])
    assert r.string() == f"{znode}/c4"
    assert r.stat().czxid == c3.czxid
    setstat = Reader(results[4][2]).stat()
    assert setstat.version == 1 and setstat.mzxid == setstat.czxid == c3.czxid
    assert setstat.mtime == setstat.ctime  # one txn, one time
    assert results[5][2] == b"" and results[6][2] == b""
    assert raw.exists(f"{znode}/c1")[0] == NO_NODE
    assert raw.exists(f"{znode}/c3")[1].ephemeralOwner == 0


def test_multi_rollback_raw_headers(raw_client, znode):
    raw = raw_client()
    assert raw.create(f"{znode}/x")[0] == OK
    err, results = raw.multi(
        [
            (OP["create2"], create_record(f"{znode}/y")),
            (OP["create"], create_record(f"{znode}/x")),
            (OP["delete"], bytes(Writer().string(f"{znode}/x").int(-1).out)),
        ]
    )
    assert err == OK  # the reply header of a failed multi is still 0
    assert [(t, e) for t, e, _ in results] == [
        (-1, OK),
        (-1, NODE_EXISTS),
        (-1, RUNTIME_INCONSISTENCY),
    ]
    assert raw.exists(f"{znode}/y")[0] == NO_NODE


def test_empty_multi(raw_client):
    raw = raw_client()
    assert raw.multi([]) == (OK, [])


def test_multi_with_a_read_op_is_marshalling_error(raw_client, znode):
    raw = raw_client()
    assert raw.exists(znode)[0] == OK
    before = raw.last_zxid
    w = Writer()
    w.int(OP["create"]).bool(False).int(-1)
    w.out += create_record(f"{znode}/a")
    w.int(OP["getData"]).bool(False).int(-1).string(znode).bool(False)
    w.int(-1).bool(True).int(-1)
    reply = raw.call(OP["multi"], bytes(w.out))
    assert (reply.err, reply.body) == (MARSHALLING_ERROR, b"")
    assert reply.zxid == before + 1  # Apache logs an error txn for it
    assert raw.ping().err == OK  # the connection stays open
    assert raw.exists(f"{znode}/a")[0] == NO_NODE
