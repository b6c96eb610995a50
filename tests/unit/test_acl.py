"""ACL checks, fixups and scheme providers, as Apache ZooKeeper 3.8.0 decides them."""

from __future__ import annotations

import pytest

from zkfast.core.acl import (
    ALL_SCHEMES,
    check_acl,
    digest_auth_ids,
    digest_id,
    digest_is_valid,
    fixup_acl,
    ip_is_valid,
    ip_matches,
    redact_acl_for_getacl,
    sasl_is_valid,
    x509_is_valid,
)

READ, WRITE, CREATE, DELETE, ADMIN, ALL = 1, 2, 4, 8, 16, 31
WORLD = ("world", "anyone")
ALICE = digest_id("alice:secret")
BOB = digest_id("bob:secret")


# --------------------------------------------------------------------------- digest


def test_digest_id_known_values() -> None:
    # The superDigest example of the ZooKeeper administrator's guide.
    assert digest_id("super:test") == "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
    assert digest_id("user:pass") == "user:smGaoVKd/cQkjm7b88GyorAUz20="
    assert digest_id("a:b:c").startswith("a:")  # the user ends at the first ':'
    assert digest_id("nocolon").startswith("nocolon:")


def test_digest_auth_ids_and_super() -> None:
    sup = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
    assert digest_auth_ids(b"super:test", sup) == [("super", ""), ("digest", sup)]
    assert digest_auth_ids(b"super:wrong", sup) == [("digest", digest_id("super:wrong"))]
    assert digest_auth_ids(b"alice:secret") == [("digest", ALICE)]


@pytest.mark.parametrize(
    "id_, ok",
    [("u:p", True), (":p", True), ("u:p:", True), ("u:", False), ("u", False), ("", False),
     (":", False), ("u::", False), ("a:b:c", False), ("a::b", False)],
)
def test_digest_is_valid_java_split(id_: str, ok: bool) -> None:
    assert digest_is_valid(id_) is ok


# --------------------------------------------------------------------------- ip


@pytest.mark.parametrize(
    "client, expr, ok",
    [
        ("10.1.2.3", "10.1.2.3", True),
        ("10.1.2.4", "10.1.2.3", False),
        ("10.1.2.3", "10.0.0.0/8", True),
        ("11.1.2.3", "10.0.0.0/8", False),
        ("10.1.2.3", "10.1.2.0/24", True),
        ("10.1.3.3", "10.1.2.0/24", False),
        ("10.1.2.3", "10.1.2.128/25", False),
        ("10.1.2.200", "10.1.2.128/25", True),
        ("1.2.3.4", "0.0.0.0/0", True),
        ("1.2.3.4", "1.2.3.5/31", True),
        ("1.2.3.4", "1.2.3.5/32", False),
        ("1.2.3.4", "1.2.3.4/33", False),
        ("1.2.3.4", "1.2.3.4/-1", False),
        ("1.2.3.4", "1.2.3.4/x", False),
        ("1.2.3.4", "1.2.3.4/8/1", False),
        ("1.2.3.4", "1.2.3", False),
        ("1.2.3.4", "1.2.3.4.", False),
        ("1.2.3.4", "1.2.3.256", False),
        ("1.2.3.4", "01.2.3.+4", True),  # Integer.parseInt accepts these
        ("::1", "::1", False),  # 3.8.0's provider is IPv4 only
        ("0:0:0:0:0:0:0:1", "0.0.0.0/0", False),
        ("bad", "1.2.3.4", False),
    ],
)
def test_ip_matches(client: str, expr: str, ok: bool) -> None:
    assert ip_matches(client, expr) is ok


@pytest.mark.parametrize(
    "expr, ok",
    [("1.2.3.4", True), ("1.2.3.4/0", True), ("1.2.3.4/32", True), ("1.2.3.4/33", False),
     ("1.2.3.4/", False), ("1.2.3", False), ("::1", False), ("fe80::/10", False),
     ("a.b.c.d", False), (" 1.2.3.4", False), ("1_0.2.3.4", False), ("", False)],
)
def test_ip_is_valid(expr: str, ok: bool) -> None:
    assert ip_is_valid(expr) is ok


# --------------------------------------------------------------------------- check_acl


def test_empty_acl_and_skip_acl_grant() -> None:
    assert check_acl([], ALL, [])
    assert check_acl(None, ALL, [])
    assert check_acl([(READ, ("digest", ALICE))], WRITE, [], skip_acl=True)
    assert not check_acl([(READ, ("digest", ALICE))], WRITE, [])


def test_world_anyone_and_perm_bits() -> None:
    acl = [(READ | WRITE, WORLD)]
    assert check_acl(acl, READ, [])
    assert check_acl(acl, WRITE, [("ip", "1.2.3.4")])
    assert not check_acl(acl, ADMIN, [])
    assert check_acl(acl, READ | ADMIN, [])  # getACL asks READ|ADMIN: any shared bit
    assert not check_acl([(ALL, ("world", "other"))], READ, [])


def test_super_grants_everything() -> None:
    acl = [(READ, ("digest", ALICE))]
    assert check_acl(acl, ADMIN, [("super", "")])
    assert check_acl(acl, ADMIN, [("ip", "1.1.1.1"), ("super", "")])


def test_digest_entry_needs_exact_id_of_same_scheme() -> None:
    acl = [(READ, ("digest", ALICE)), (ALL, ("digest", BOB))]
    assert check_acl(acl, READ, [("digest", ALICE)])
    assert not check_acl(acl, WRITE, [("digest", ALICE)])
    assert check_acl(acl, WRITE, [("digest", ALICE), ("digest", BOB)])
    assert not check_acl(acl, READ, [("sasl", ALICE)])
    assert not check_acl(acl, READ, [("digest", "alice:x")])


def test_ip_entry() -> None:
    acl = [(ALL, ("ip", "192.168.0.0/16"))]
    assert check_acl(acl, READ, [("ip", "192.168.4.5")])
    assert not check_acl(acl, READ, [("ip", "10.0.0.1")])
    assert not check_acl(acl, READ, [("digest", "192.168.4.5")])


def test_unregistered_schemes_match_nothing() -> None:
    acl = [(ALL, ("sasl", "alice")), (ALL, ("x509", "CN=a")), (ALL, ("foo", "bar"))]
    ids = [("sasl", "alice"), ("x509", "CN=a"), ("foo", "bar")]
    assert not check_acl(acl, READ, ids)
    assert check_acl(acl, READ, [("sasl", "alice")], schemes=ALL_SCHEMES)
    assert check_acl(acl, READ, [("x509", "CN=a")], schemes=ALL_SCHEMES)
    assert not check_acl(acl, READ, [("foo", "bar")], schemes=ALL_SCHEMES | {"foo"})


def test_sasl_super_principal_and_x509_super_user() -> None:
    acl = [(ALL, ("sasl", "alice")), (READ, ("x509", "CN=a"))]
    assert check_acl(acl, WRITE, [("sasl", "super")], schemes=ALL_SCHEMES)
    assert not check_acl(acl, WRITE, [("sasl", "bob")], schemes=ALL_SCHEMES)
    assert check_acl(acl, READ, [("x509", "CN=root")], schemes=ALL_SCHEMES,
                     x509_super_user="CN=root")
    assert not check_acl(acl, WRITE, [("x509", "CN=root")], schemes=ALL_SCHEMES,
                         x509_super_user="CN=root")


# --------------------------------------------------------------------------- fixup_acl


def test_fixup_keeps_valid_entries_and_drops_duplicates() -> None:
    acl = [(ALL, WORLD), (READ, ("ip", "10.0.0.0/8")), (ALL, WORLD), (READ, ("digest", ALICE))]
    assert fixup_acl(acl, []) == [(ALL, WORLD), (READ, ("ip", "10.0.0.0/8")),
                                  (READ, ("digest", ALICE))]


@pytest.mark.parametrize(
    "acl",
    [
        None,
        [],
        [None],
        [(ALL, None)],
        [(ALL, (None, "x"))],
        [(ALL, ("world", "someone"))],
        [(ALL, ("digest", "nocolon"))],
        [(ALL, ("digest", None))],
        [(ALL, ("ip", "::1"))],
        [(ALL, ("ip", "1.2.3.4/40"))],
        [(ALL, ("super", ""))],
        [(ALL, ("sasl", "alice"))],  # sasl not registered by default
        [(ALL, ("x509", "CN=a"))],
        [(ALL, ("unknown", "x"))],
        [(ALL, WORLD), (ALL, ("digest", "bad"))],
    ],
)
def test_fixup_invalid(acl: list | None) -> None:
    assert fixup_acl(acl, [("digest", ALICE)]) is None


def test_fixup_auth_expands_to_authenticated_ids() -> None:
    ids = [("ip", "1.2.3.4"), ("super", ""), ("digest", ALICE), ("digest", BOB)]
    assert fixup_acl([(READ | WRITE, ("auth", ""))], ids) == [
        (READ | WRITE, ("digest", ALICE)), (READ | WRITE, ("digest", BOB)),
    ]
    # The auth entry's own id is ignored; other entries keep their place.
    assert fixup_acl([(ALL, WORLD), (ADMIN, ("auth", "whatever"))], ids) == [
        (ALL, WORLD), (ADMIN, ("digest", ALICE)), (ADMIN, ("digest", BOB)),
    ]


def test_fixup_auth_without_authenticated_ids_is_invalid() -> None:
    assert fixup_acl([(ALL, ("auth", ""))], []) is None
    assert fixup_acl([(ALL, ("auth", ""))], [("ip", "1.2.3.4"), ("super", "")]) is None
    # sasl ids expand only when the sasl provider is registered.
    assert fixup_acl([(ALL, ("auth", ""))], [("sasl", "alice")]) is None
    assert fixup_acl([(ALL, ("auth", ""))], [("sasl", "alice")], schemes=ALL_SCHEMES) == [
        (ALL, ("sasl", "alice"))
    ]


def test_fixup_with_all_schemes() -> None:
    acl = [(ALL, ("sasl", "zk/host@REALM")), (READ, ("x509", "CN=a,O=b"))]
    assert fixup_acl(acl, [], schemes=ALL_SCHEMES) == acl
    assert fixup_acl([(ALL, ("sasl", "a@b@c"))], [], schemes=ALL_SCHEMES) is None
    assert fixup_acl([(ALL, ("x509", "nonsense"))], [], schemes=ALL_SCHEMES) is None


@pytest.mark.parametrize(
    "id_, ok",
    [("alice", True), ("zk/host@REALM", True), ("a@R", True), ("a/b/c", True),
     ("a@b@c", False), ("a/b/c@R", False), ("@", True)],
)
def test_sasl_is_valid(id_: str, ok: bool) -> None:
    assert sasl_is_valid(id_) is ok


@pytest.mark.parametrize(
    "id_, ok",
    [("CN=a", True), ("CN=a,O=b,C=US", True), ("cn=a+uid=x", True), ("2.5.4.3=a", True),
     ("", True), ("CN=a\\,b", True), ('CN="a,b"', True), ("nonsense", False),
     ("XX=a", False), ("CN=a,", False), ('CN="a', False)],
)
def test_x509_is_valid(id_: str, ok: bool) -> None:
    assert x509_is_valid(id_) is ok


# --------------------------------------------------------------------------- getACL


def test_redaction_without_admin() -> None:
    acl = [(ALL, ("digest", ALICE)), (READ, WORLD), (READ, ("ip", "1.2.3.4"))]
    assert redact_acl_for_getacl(acl, has_admin=True) == acl
    assert redact_acl_for_getacl(acl, has_admin=False) == [
        (ALL, ("digest", "alice:x")), (READ, WORLD), (READ, ("ip", "1.2.3.4")),
    ]
    assert redact_acl_for_getacl([(1, ("digest", "a:b:c"))], False) == [(1, ("digest", "a:x"))]
    assert redact_acl_for_getacl([(1, ("digest", "nocolon"))], False) == [
        (1, ("digest", "nocolon"))
    ]
    # Java's '.' stops at every line terminator; each line's secret is masked.
    assert redact_acl_for_getacl([(1, ("digest", "a:b\rc:d"))], False) == [
        (1, ("digest", "a:x\rc:x"))
    ]
