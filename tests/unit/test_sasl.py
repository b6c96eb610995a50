"""DIGEST-MD5 server (RFC 2831, as Apache ZooKeeper 3.8.0's JDK SaslServer) and JAAS parsing.

The exchanges run our server against pure-sasl's client (the one kazoo uses), plus a
hand-written RFC 2831 client for the cases pure-sasl cannot produce. Behaviours marked
"Apache 3.8.0" were observed on the Debian 3.8.0 server with the same tokens.
"""

from __future__ import annotations

import base64
import hashlib
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from puresasl.client import SASLClient

from zkfast.core.sasl import (
    DigestMD5Server,
    SaslError,
    _authorized_id,
    _response_value,
    _session_key,
    parse_directives,
    parse_jaas_server_users,
)

USERS = {"bob": "pw", "super": "superpw", "caf": "café", "euro": "€uro", "é": "pé", "€": "p€"}


def server(users: dict[str, str] | None = None, seed: int = 7, **kw: str) -> DigestMD5Server:
    return DigestMD5Server(USERS if users is None else users, random.Random(seed), **kw)


def pure_client(username: str, password: str) -> SASLClient:
    return SASLClient(
        host="zk-sasl-md5",
        service="zookeeper",
        mechanism="DIGEST-MD5",
        username=username,
        password=password,
    )


def run_kazoo_loop(srv: DigestMD5Server, cli: SASLClient) -> int:
    """The token loop of kazoo's ``_authenticate_with_sasl``; returns the tokens sent."""
    challenge = None
    sent = 0
    while not cli.complete:
        response = cli.process(challenge=challenge)
        if cli.complete and not response:
            break
        challenge = srv.step(response or b"")
        sent += 1
    return sent


def rfc_response(
    nonce: bytes,
    *,
    username: str = "bob",
    password: str = "pw",
    realm: str | None = "zk-sasl-md5",
    cnonce: bytes = b"OA6MHXh6VqTrRk",
    digest_uri: str = "zookeeper/zk-sasl-md5",
    nc: str = "00000001",
    qop: str | None = "auth",
    authzid: str | None = None,
    upper: bool = False,
    extra: bytes = b"",
    charset: bool = True,
) -> bytes:
    """An RFC 2831 digest-response, hashed independently of the module under test."""

    def enc(s: str) -> bytes:
        return s.encode("latin-1") if all(ord(c) <= 0xFF for c in s) else s.encode("utf-8")

    inner = hashlib.md5(enc(username) + b":" + enc(realm or "") + b":" + enc(password)).digest()
    a1 = inner + b":" + nonce + b":" + cnonce + (b":" + authzid.encode() if authzid else b"")
    ha1 = hashlib.md5(a1).hexdigest()
    ha2 = hashlib.md5(b"AUTHENTICATE:" + digest_uri.encode()).hexdigest()
    kd = f"{ha1}:{nonce.decode()}:{nc}:{cnonce.decode()}:{qop or 'auth'}:{ha2}"
    resp = hashlib.md5(kd.encode()).hexdigest()
    if upper:
        resp = resp.upper()
    parts = [b"charset=utf-8"] if charset else []
    parts.append(b'username="' + username.encode("utf-8") + b'"')
    if realm is not None:
        parts.append(b'realm="' + realm.encode() + b'"')
    parts += [
        b'nonce="' + nonce + b'"',
        b"nc=" + nc.encode(),
        b'cnonce="' + cnonce + b'"',
        b'digest-uri="' + digest_uri.encode() + b'"',
        b"response=" + resp.encode(),
    ]
    if qop is not None:
        parts.append(b"qop=" + qop.encode())
    if authzid is not None:
        parts.append(b'authzid="' + authzid.encode() + b'"')
    return b",".join(parts) + extra


def challenge_nonce(srv: DigestMD5Server) -> bytes:
    return parse_directives(srv.step(b""))["nonce"]


# ---- the exchange


def test_pure_sasl_client_logs_in_and_verifies_rspauth() -> None:
    srv = server()
    cli = pure_client("bob", "pw")
    assert run_kazoo_loop(srv, cli) == 2  # empty token, then the digest-response
    assert cli.complete  # pure-sasl checked our rspauth
    assert srv.complete
    assert srv.authorized_id == "bob"


def test_challenge_is_apache_3_8_0s() -> None:
    challenge = server().step(b"")
    d = parse_directives(challenge)
    assert challenge.startswith(b'realm="zk-sasl-md5",nonce="')
    assert challenge.endswith(b'",charset=utf-8,algorithm=md5-sess')
    assert set(d) == {"realm", "nonce", "charset", "algorithm"}
    assert len(d["nonce"]) == 40  # 30 random bytes, base64


def test_nonce_comes_from_the_injected_rng() -> None:
    assert server(seed=1).step(b"") == server(seed=1).step(b"")
    assert server(seed=1).step(b"") != server(seed=2).step(b"")


def test_non_empty_first_token_is_ignored_as_apache_does() -> None:
    srv = server()
    assert parse_directives(srv.step(b"junk"))["realm"] == b"zk-sasl-md5"


def test_rfc2831_section4_example_vector() -> None:
    nonce, cnonce = b"OA6MG9tEQGm2hh", b"OA6MHXh6VqTrRk"
    key = _session_key("chris", "elwood.innosoft.com", "secret", nonce, cnonce, None)
    a2 = b"AUTHENTICATE:imap/elwood.innosoft.com"
    assert _response_value(key, nonce, cnonce, "auth", a2) == b"d388dad90d4bbd760a152321f2143af7"
    rspauth = _response_value(key, nonce, cnonce, "auth", b":imap/elwood.innosoft.com")
    assert rspauth == b"ea40f60335c427b5527b84dbabcdfffd"


def test_response_and_rspauth_from_a_hand_written_client() -> None:
    srv = server()
    nonce = challenge_nonce(srv)
    reply = srv.step(rfc_response(nonce))
    key = _session_key("bob", "zk-sasl-md5", "pw", nonce, b"OA6MHXh6VqTrRk", None)
    expected = _response_value(key, nonce, b"OA6MHXh6VqTrRk", "auth", b":zookeeper/zk-sasl-md5")
    assert reply == b"rspauth=" + expected
    assert srv.complete and srv.authorized_id == "bob"


@pytest.mark.parametrize("user", ["caf", "euro"])
def test_latin1_when_it_fits_else_utf8(user: str) -> None:
    # Apache 3.8.0 accepted the latin-1 hash of "café" (pure-sasl hashes UTF-8 and fails there).
    srv = server()
    srv.step(rfc_response(challenge_nonce(srv), username=user, password=USERS[user]))
    assert srv.authorized_id == user


@pytest.mark.parametrize("charset", [True, False])
@pytest.mark.parametrize("user", ["é", "€"])
def test_non_ascii_usernames_with_or_without_charset(user: str, charset: bool) -> None:
    # Apache 3.8.0 accepted all four: names are read as UTF-8, hashed as 8859-1 when they fit.
    srv = server()
    srv.step(
        rfc_response(challenge_nonce(srv), username=user, password=USERS[user], charset=charset)
    )
    assert srv.authorized_id == user


def test_authzid_is_hashed_but_the_authorized_id_is_the_username() -> None:
    # Apache 3.8.0: a login as bob asking for authzid "alice" is authorized as sasl:bob.
    srv = server()
    srv.step(rfc_response(challenge_nonce(srv), authzid="alice"))
    assert srv.authorized_id == "bob"


def test_digest_uri_matches_ignoring_case_and_rspauth_uses_the_clients_spelling() -> None:
    srv = server()
    nonce = challenge_nonce(srv)
    uri = "ZooKeeper/ZK-SASL-MD5"
    reply = srv.step(rfc_response(nonce, digest_uri=uri))
    key = _session_key("bob", "zk-sasl-md5", "pw", nonce, b"OA6MHXh6VqTrRk", None)
    assert reply == b"rspauth=" + _response_value(
        key, nonce, b"OA6MHXh6VqTrRk", "auth", b":" + uri.encode()
    )


def test_unknown_directives_are_ignored_and_qop_defaults_to_auth() -> None:
    srv = server()
    srv.step(rfc_response(challenge_nonce(srv), qop=None, extra=b',foo="bar",x=1'))
    assert srv.complete


def test_super_password_property_replaces_the_jaas_password_of_super() -> None:
    srv = server(super_password="other")
    with pytest.raises(SaslError):
        srv.step(rfc_response(challenge_nonce(srv), username="super", password="superpw"))
    srv = server(super_password="other")
    srv.step(rfc_response(challenge_nonce(srv), username="super", password="other"))
    assert srv.authorized_id == "super"


# ---- failures


@pytest.mark.parametrize(
    "kw",
    [
        {"password": "wrong"},
        {"username": "zed"},  # unknown user
        {"realm": None},  # Apache 3.8.0: missing realm -> AuthFailed
        {"realm": "other"},
        {"upper": True},  # Apache 3.8.0: upper-case hex -> AuthFailed
        {"nc": "00000002"},
        {"nc": "zz"},
        {"qop": "auth-int"},
        {"digest-uri": "zookeeper/elsewhere"},
        {"digest-uri": "ldap/zk-sasl-md5"},
        {"cnonce": b""},
    ],
    ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()),
)
def test_bad_responses_raise_and_leave_the_exchange_failed(kw: dict[str, object]) -> None:
    srv = server()
    nonce = challenge_nonce(srv)
    if "digest-uri" in kw:
        kw = {"digest_uri": kw["digest-uri"]}
    with pytest.raises(SaslError):
        srv.step(rfc_response(nonce, **kw))  # type: ignore[arg-type]
    assert not srv.complete and srv.authorized_id is None
    with pytest.raises(SaslError):  # no second chance on the same server
        srv.step(rfc_response(nonce))


@pytest.mark.parametrize(
    "token",
    [
        b"",
        b"garbage",
        b'username="bob',  # unterminated quote
        b'username="bob"x,nonce="n"',
        b'username="bob",username="bob"',  # repeated directive
        b"x" * 4097,
        b'username="\xff\xfe",realm="zk-sasl-md5"',
    ],
)
def test_malformed_responses_raise(token: bytes) -> None:
    srv = server()
    srv.step(b"")
    with pytest.raises(SaslError):
        srv.step(token)


def test_wrong_nonce_raises() -> None:
    srv = server()
    srv.step(b"")
    with pytest.raises(SaslError):
        srv.step(rfc_response(b"A" * 40))


def test_step_after_completion_raises() -> None:
    srv = server()
    srv.step(rfc_response(challenge_nonce(srv)))
    with pytest.raises(SaslError):
        srv.step(b"")
    assert srv.complete and srv.authorized_id == "bob"


def test_pure_sasl_with_a_wrong_password_fails() -> None:
    with pytest.raises(SaslError):
        run_kazoo_loop(server(), pure_client("bob", "nope"))


@pytest.mark.parametrize(
    ("name", "authorized"),
    [
        ("bob", "bob"),
        ("a/b", "a/b"),
        ("zk/host@EXAMPLE.COM", "zk/host@EXAMPLE.COM"),
        ("bob@EXAMPLE.COM", "bob@EXAMPLE.COM"),
    ],
)
def test_authorized_id_is_apaches_kerberos_canonical_form(name: str, authorized: str) -> None:
    assert _authorized_id(name) == authorized


def test_malformed_principal_is_refused() -> None:
    with pytest.raises(SaslError):
        _authorized_id("a@b@c")


# ---- JAAS


JAAS = """
/* the server side */
Server {
    // digest users
    org.apache.zookeeper.server.auth.DigestLoginModule required
        user_super="adminsecret"
        user_bob="bob's \\"pw\\""   / a lone slash comments out the line too
        user_eve="tab\\there";
    com.example.OtherModule optional debug=true user_carol=plain;
};

Client {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    username="bob"
    password="pw";
};
"""


def test_jaas_server_section_users() -> None:
    assert parse_jaas_server_users(JAAS) == {
        "super": "adminsecret",
        "bob": 'bob\'s "pw"',
        "eve": "tab\there",
        "carol": "plain",
    }


def test_jaas_other_section_name() -> None:
    assert parse_jaas_server_users(JAAS, section="Client") == {}


def test_jaas_later_entry_overrides() -> None:
    text = 'Server { A required user_x="1"; B required user_x="2"; };'
    assert parse_jaas_server_users(text) == {"x": "2"}


@pytest.mark.parametrize(
    "text",
    [
        'Client { A required user_x="1"; };',  # no Server section
        'Server { A required user_x="1"; }',  # missing ';'
        'Server { A mandatory user_x="1"; };',  # bad flag
        "Server { A required user_x=; };",
        'Server { A required user_x="1 };',
        "Server { A required; }; Server { B required; };",  # duplicate section
        "/* unterminated",
        'Server { A required user_x="1" ! ; };',
        "Server { A required user_x='1'; };",  # the JDK accepts no single quotes here
        'Server { A required\n # no hash comments\n user_x="1"; };',
        "Server { A required user_x=123; };",  # a number token, not a value
        "Server { };",  # the JDK sees no Server section
        'Server { A required user_x="${user.home}"; };',  # JVM property expansion
    ],
)
def test_jaas_errors(text: str) -> None:
    with pytest.raises(ValueError):
        parse_jaas_server_users(text)


JAAS_CASES = {
    "basic": 'Server { M required user_bob="pw"; };',
    "hash_comment": 'Server { M required\n # c\n user_bob="pw"; };',
    "slash_comment": 'Server { M required // c\n user_bob="pw"; };',
    "star_comment": 'Server { M required /* c */ user_bob="pw"; };',
    "lone_slash": 'Server { M required / x\n user_a="1"; };',
    "single_quote": "Server { M required user_bob='pw'; };",
    "unquoted_word": "Server { M required user_bob=pw; };",
    "unquoted_num": "Server { M required user_bob=123; };",
    "escapes": 'Server { M required user_bob="a\\"b\\\\c\\nd\\te\\101"; };',
    "key_chars": 'Server { M required user_b.o-b$*_9="pw"; };',
    "at_key": 'Server { M required user_bob@x="pw"; };',
    "dup_section": 'Server { M required user_a="1"; }; Server { M required user_b="2"; };',
    "two_modules": 'Server { M required user_a="1"; N optional user_a="2" user_b="3"; };',
    "upper_flag": 'Server { M REQUIRED user_a="1"; };',
    "bad_flag": 'Server { M mandatory user_a="1"; };',
    "no_final_semicolon": 'Server { M required user_a="1"; }',
    "quoted_section": '"Server" { M required user_a="1"; };',
    "empty_value": 'Server { M required user_a=""; };',
    "unicode": 'Server { M required user_é="pé€"; };',
    "empty_name": 'Server { M required user_="x"; };',
    "empty_section": "Server { };",
    "dup_option": 'Server { M required user_a="1" user_a="2"; };',
    "other_section_only": 'Client { M required user_a="1"; };',
}

JAVA_JAAS = """
import java.io.File;
import java.security.URIParameter;
import java.util.*;
import javax.security.auth.login.*;
public class Jaas {
  public static void main(String[] args) throws Exception {
    Base64.Encoder b64 = Base64.getEncoder();
    for (String f : args) {
      StringBuilder sb = new StringBuilder(f);
      try {
        Configuration c = Configuration.getInstance("JavaLoginConfig", new URIParameter(new File(f).toURI()));
        AppConfigurationEntry[] es = c.getAppConfigurationEntry("Server");
        if (es == null) { System.out.println(f + " ERROR"); continue; }
        sb.append(" OK");
        for (AppConfigurationEntry e : es)
          for (Map.Entry<String, ?> o : e.getOptions().entrySet())
            if (o.getKey().startsWith("user_"))
              sb.append(' ').append(b64.encodeToString(o.getKey().substring(5).getBytes("UTF-8")))
                .append(':').append(b64.encodeToString(((String) o.getValue()).getBytes("UTF-8")));
      } catch (Exception e) {
        System.out.println(f + " ERROR");
        continue;
      }
      System.out.println(sb);
    }
  }
}
"""


@pytest.mark.interop  # runs the JDK (a few seconds): `-m "not interop"` skips it
@pytest.mark.skipif(shutil.which("java") is None, reason="needs java")
def test_jaas_parsing_matches_the_jdks_config_file(tmp_path: Path) -> None:
    for case, text in JAAS_CASES.items():
        (tmp_path / f"{case}.conf").write_text(text, "utf-8")
    (tmp_path / "Jaas.java").write_text(JAVA_JAAS)
    files = [f"{case}.conf" for case in JAAS_CASES]
    out = subprocess.run(
        ["java", "Jaas.java", *files],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    java: dict[str, object] = {}
    for line in out.splitlines():
        name, status, *pairs = line.split(" ")
        if status == "ERROR":
            java[name[: -len(".conf")]] = "ERROR"
            continue
        users: dict[str, str] = {}
        for pair in pairs:  # a later module's option replaces an earlier one, as in Apache
            k, v = pair.split(":")
            users[base64.b64decode(k).decode()] = base64.b64decode(v).decode()
        java[name[: -len(".conf")]] = users
    ours: dict[str, object] = {}
    for case, text in JAAS_CASES.items():
        try:
            ours[case] = parse_jaas_server_users(text)
        except ValueError:
            ours[case] = "ERROR"
    assert ours == java
