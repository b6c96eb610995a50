"""ACLs and authentication: world, digest, ip and auth schemes, per-permission checks of each
operation, InvalidACL, setACL versions, getACL redaction, the super digest, whoAmI and failed auth
(zk-formats §2.4, §2.5). Apache 3.8.0 is the judge: exists does not check READ there."""

from __future__ import annotations

import pytest
from kazoo.exceptions import (
    AuthFailedError,
    BadVersionError,
    InvalidACLError,
    NoAuthError,
)
from kazoo.security import (
    ACL,
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    Id,
    Permissions,
    make_acl,
    make_digest_acl,
    make_digest_acl_credential,
)

from zkfast.testing.rawclient import OP, Acl, Reader, Writer
from zkfast.testing.rawclient import OPEN_ACL as OPEN_ACL_RAW

OK, NO_AUTH, INVALID_ACL, AUTH_FAILED, NO_NODE = 0, -102, -114, -115, -101
ALL = Permissions.ALL


def authed(kazoo_client, user: str, password: str):
    zk = kazoo_client()
    zk.add_auth("digest", f"{user}:{password}")
    return zk


def test_default_acl_is_open(kazoo_client, znode):
    zk = kazoo_client()
    path = zk.create(f"{znode}/open")
    acls, stat = zk.get_acls(path)
    assert acls == [ACL(ALL, Id("world", "anyone"))]
    assert stat.aversion == 0 and stat == zk.exists(path)


def test_system_node_acls(kazoo_client):
    zk = kazoo_client()
    assert zk.get_acls("/")[0] == [ACL(ALL, Id("world", "anyone"))]
    config_acl, config_stat = zk.get_acls("/zookeeper/config")
    assert config_acl == [ACL(Permissions.READ, Id("world", "anyone"))]
    assert config_stat.aversion == -1


def test_digest_acl_protects_every_operation(kazoo_client, znode):
    owner = authed(kazoo_client, "alice", "pw")
    stranger = kazoo_client()
    acl = [make_digest_acl("alice", "pw", all=True)]
    path = owner.create(f"{znode}/secret", b"s", acl=acl)
    assert owner.get(path)[0] == b"s"
    for op in (
        lambda: stranger.get(path),
        lambda: stranger.get_children(path),
        lambda: stranger.set(path, b"x"),
        lambda: stranger.get_acls(path),
        lambda: stranger.set_acls(path, OPEN_ACL_UNSAFE),
        lambda: stranger.create(f"{path}/child"),
    ):
        with pytest.raises(NoAuthError):
            op()
    assert stranger.exists(path) is not None  # 3.8.0: exists checks no permission
    owner.create(f"{path}/child")
    with pytest.raises(NoAuthError):
        stranger.delete(f"{path}/child")  # delete needs DELETE on the parent
    owner.delete(f"{path}/child")
    stranger.delete(path)  # the root-level parent is open, so this is allowed


def test_each_permission_bit(kazoo_client, znode):
    owner = authed(kazoo_client, "bob", "pw")
    cred = make_digest_acl_credential("bob", "pw")
    user = kazoo_client()

    def node_with(perms: int) -> str:
        acl = [ACL(perms, Id("world", "anyone")), ACL(ALL, Id("digest", cred))]
        return owner.create(f"{znode}/n", b"d", acl=acl)

    path = node_with(Permissions.READ)
    assert user.get(path)[0] == b"d"
    assert user.get_children(path) == []
    with pytest.raises(NoAuthError):
        user.set(path, b"x")
    with pytest.raises(NoAuthError):
        user.create(f"{path}/c")
    owner.delete(path)

    path = node_with(Permissions.WRITE)
    with pytest.raises(NoAuthError):
        user.get(path)
    assert user.set(path, b"w").version == 1
    owner.delete(path)

    path = node_with(Permissions.CREATE)
    assert user.create(f"{path}/c") == f"{path}/c"
    with pytest.raises(NoAuthError):
        user.delete(f"{path}/c")
    owner.delete(f"{path}/c")
    owner.delete(path)

    path = node_with(Permissions.DELETE)
    owner.create(f"{path}/c")
    user.delete(f"{path}/c")
    owner.delete(path)

    path = node_with(Permissions.ADMIN)
    acls, _ = user.get_acls(path)  # ADMIN alone allows getACL, and shows digests unmasked
    assert ACL(ALL, Id("digest", cred)) in acls
    user.set_acls(path, OPEN_ACL_UNSAFE)
    assert user.get(path)[0] == b"d"
    user.delete(path)


def test_get_acl_masks_digest_without_admin(kazoo_client, znode):
    owner = authed(kazoo_client, "carol", "pw")
    cred = make_digest_acl_credential("carol", "pw")
    reader = kazoo_client()
    acl = [ACL(Permissions.READ, Id("world", "anyone")), ACL(ALL, Id("digest", cred))]
    path = owner.create(f"{znode}/masked", acl=acl)
    assert owner.get_acls(path)[0] == acl
    assert reader.get_acls(path)[0] == [acl[0], ACL(ALL, Id("digest", "carol:x"))]


def test_auth_scheme_expands_to_authenticated_ids(kazoo_client, znode):
    zk = authed(kazoo_client, "dave", "pw")
    zk.add_auth("digest", "erin:pw2")
    path = zk.create(f"{znode}/auth", acl=[make_acl("auth", "", all=True)])
    acls = sorted(zk.get_acls(path)[0], key=lambda a: a.id.id)
    assert acls == [
        ACL(ALL, Id("digest", make_digest_acl_credential("dave", "pw"))),
        ACL(ALL, Id("digest", make_digest_acl_credential("erin", "pw2"))),
    ]
    anonymous = kazoo_client()
    with pytest.raises(InvalidACLError):
        anonymous.create(f"{znode}/auth2", acl=[make_acl("auth", "", all=True)])
    with pytest.raises(NoAuthError):
        anonymous.get(path)


def test_ip_scheme(kazoo_client, znode):
    zk = kazoo_client()
    here = zk.create(f"{znode}/here", b"h", acl=[make_acl("ip", "127.0.0.1", all=True)])
    subnet = zk.create(f"{znode}/subnet", b"s", acl=[make_acl("ip", "127.0.0.0/8", all=True)])
    elsewhere = zk.create(f"{znode}/else", b"e", acl=[make_acl("ip", "10.1.2.3", all=True)])
    other_net = zk.create(f"{znode}/othernet", acl=[make_acl("ip", "10.0.0.0/8", all=True)])
    assert zk.get(here)[0] == b"h"
    assert zk.get(subnet)[0] == b"s"
    for path in (elsewhere, other_net):
        with pytest.raises(NoAuthError):
            zk.get(path)


@pytest.mark.parametrize(
    "acl",
    [
        [],
        [Acl(31, "bogus", "x")],
        [Acl(31, "digest", "nocolon")],
        [Acl(31, "ip", "not-an-ip")],
        [Acl(31, "ip", "127.0.0.1/99")],
        [Acl(31, "world", "anyone"), Acl(31, "bogus", "x")],
    ],
    ids=["empty", "unknown-scheme", "digest-no-colon", "bad-ip", "bad-mask", "one-bad"],
)
def test_invalid_acls(raw_client, znode, acl):
    raw = raw_client()
    assert raw.create(f"{znode}/bad", acl=acl)[0] == INVALID_ACL
    assert raw.create(f"{znode}/good")[0] == OK
    w = Writer()
    reply = raw.call(OP["setACL"], bytes(w.string(f"{znode}/good").acls(acl).int(-1).out))
    assert reply.err == INVALID_ACL


def test_duplicate_acl_entries_are_removed(raw_client, znode):
    raw = raw_client()
    acl = [Acl(31, "world", "anyone"), Acl(31, "world", "anyone")]
    assert raw.create(f"{znode}/dup", acl=acl)[0] == OK
    reply = raw.call(OP["getACL"], bytes(Writer().string(f"{znode}/dup").out))
    assert Reader(reply.body).acls() == [Acl(31, "world", "anyone")]


def test_set_acl_versions(kazoo_client, znode):
    zk = kazoo_client()
    path = zk.create(f"{znode}/v")
    before = zk.exists(path)
    stat = zk.set_acls(path, READ_ACL_UNSAFE + [make_acl("world", "anyone", admin=True)], version=0)
    assert stat.aversion == 1
    assert (stat.version, stat.mzxid, stat.cversion) == (
        before.version,
        before.mzxid,
        before.cversion,
    )
    with pytest.raises(BadVersionError):
        zk.set_acls(path, OPEN_ACL_UNSAFE, version=0)
    assert zk.set_acls(path, OPEN_ACL_UNSAFE, version=-1).aversion == 2


def test_super_digest_bypasses_acls(kazoo_client, znode, super_credentials):
    super_user, super_password = super_credentials
    owner = authed(kazoo_client, "frank", "pw")
    path = owner.create(f"{znode}/locked", b"l", acl=[make_digest_acl("frank", "pw", all=True)])
    owner.create(f"{path}/kid")
    root = authed(kazoo_client, super_user, super_password)
    assert root.get(path)[0] == b"l"
    assert root.set(path, b"m").version == 1
    acls, _ = root.get_acls(path)
    assert acls == [make_digest_acl("frank", "pw", all=True)]  # unmasked
    root.delete(f"{path}/kid")
    root.delete(path)
    impostor = authed(kazoo_client, super_user, "wrong")
    with pytest.raises(NoAuthError):
        impostor.get(owner.create(f"{znode}/l2", acl=[make_digest_acl("frank", "pw", all=True)]))


def test_unknown_auth_scheme_fails_and_closes(raw_client):
    raw = raw_client()
    reply = raw.auth("nosuchscheme", b"whatever")
    assert (reply.xid, reply.err) == (-4, AUTH_FAILED)
    with pytest.raises(ConnectionError):
        raw.ping()


def test_kazoo_unknown_auth_scheme_raises(kazoo_client):
    zk = kazoo_client()
    with pytest.raises(AuthFailedError):
        zk.add_auth("nosuchscheme", "whatever")


def test_digest_auth_reply_and_who_am_i(raw_client):
    raw = raw_client()

    def who_am_i() -> list[tuple[str, str]]:
        reply = raw.call(OP["whoAmI"])
        assert reply.err == OK
        r = Reader(reply.body)
        return sorted((r.string(), r.string()) for _ in range(r.int()))

    assert who_am_i() == [("ip", "127.0.0.1")]
    reply = raw.auth("digest", b"gina:pw")
    assert (reply.xid, reply.err) == (-4, OK)
    assert who_am_i() == [("digest", "gina"), ("ip", "127.0.0.1")]
    raw.auth("digest", b"hank:pw")
    assert who_am_i() == [("digest", "gina"), ("digest", "hank"), ("ip", "127.0.0.1")]


def _digest(user: str, password: str) -> str:
    return make_digest_acl_credential(user, password)


def test_check_order_permission_before_existence_and_version(raw_client, znode):
    owner, stranger = raw_client(), raw_client()
    assert owner.auth("digest", b"ivy:pw").err == OK
    mine = [Acl(31, "digest", _digest("ivy", "pw"))]
    read_only = [Acl(1, "world", "anyone"), Acl(31, "digest", _digest("ivy", "pw"))]
    assert owner.create(f"{znode}/locked", acl=mine)[0] == OK
    assert owner.create(f"{znode}/locked/kid", acl=mine)[0] == OK
    assert owner.create(f"{znode}/ro", acl=read_only)[0] == OK
    # create: parent CREATE is checked before the node's existence
    assert stranger.create(f"{znode}/locked/kid")[0] == NO_AUTH
    # create: InvalidACL comes before the parent lookup
    assert stranger.create(f"{znode}/none/x", acl=[Acl(31, "bogus", "x")])[0] == INVALID_ACL
    # delete: parent DELETE before the node's existence and version
    assert stranger.delete(f"{znode}/locked/none") == NO_AUTH
    assert stranger.delete(f"{znode}/locked/kid", version=99) == NO_AUTH
    # setData: WRITE before the version
    assert stranger.set_data(f"{znode}/ro", b"x", version=99)[0] == NO_AUTH
    # setACL: ADMIN before the version
    reply = stranger.call(
        OP["setACL"], bytes(Writer().string(f"{znode}/ro").acls(OPEN_ACL_RAW).int(99).out)
    )
    assert reply.err == NO_AUTH
    # getACL: READ is enough
    assert stranger.call(OP["getACL"], bytes(Writer().string(f"{znode}/ro").out)).err == OK
    assert stranger.call(OP["getACL"], bytes(Writer().string(f"{znode}/none").out)).err == NO_NODE
    # reads: NoNode for a missing node, NoAuth without READ
    assert stranger.get_data(f"{znode}/locked/none")[0] == NO_NODE
    assert stranger.get_data(f"{znode}/locked")[0] == NO_AUTH
    assert stranger.get_children(f"{znode}/locked")[0] == NO_AUTH


def test_check_in_multi_needs_read(raw_client, znode):
    owner, stranger = raw_client(), raw_client()
    assert owner.auth("digest", b"jo:pw").err == OK
    assert owner.create(f"{znode}/c", acl=[Acl(31, "digest", _digest("jo", "pw"))])[0] == OK
    check = bytes(Writer().string(f"{znode}/c").int(0).out)
    err, results = stranger.multi([(OP["check"], check)])
    assert (err, [e for _, e, _ in results]) == (OK, [NO_AUTH])
    err, results = owner.multi([(OP["check"], check)])
    assert [(t, e) for t, e, _ in results] == [(OP["check"], OK)]


@pytest.mark.parametrize(
    ("scheme", "credential", "err"),
    [
        ("digest", b"nocolon", OK),
        ("digest", b"a:b:c", OK),
        ("digest", b"", OK),
        ("ip", b"ignored", OK),  # the ip provider takes the address of the connection
        ("world", b"anyone", AUTH_FAILED),
        ("super", b"x", AUTH_FAILED),
    ],
)
def test_auth_packet_edge_cases(raw_client, scheme, credential, err):
    raw = raw_client()
    assert raw.auth(scheme, credential).err == err
    if err == OK:
        assert raw.ping().err == OK
    else:
        with pytest.raises(ConnectionError):
            raw.ping()


def test_system_node_permissions(kazoo_client, super_credentials):
    zk = kazoo_client()
    with pytest.raises(NoAuthError):
        zk.set("/zookeeper/config", b"x")  # READ only
    with pytest.raises(NoAuthError):
        zk.create("/zookeeper/config/child")
    path = zk.create("/zookeeper/mine", b"ok")  # /zookeeper itself is open
    zk.delete(path)
    root = authed(kazoo_client, *super_credentials)
    assert root.get("/zookeeper/config")[0] == b""
