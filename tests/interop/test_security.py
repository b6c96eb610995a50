"""End to end: TLS on the secureClientPort, x509 ids and ACLs, SASL DIGEST-MD5 and sasl ACLs.

Every test runs against a zkfast server and against Apache ZooKeeper 3.8.0 (the Debian jars)
configured the same way, so each expectation is proven on the real thing. Servers are
started lazily, one per (kind, setup), and stopped through their own handles when the module
ends. Negative cases use a raw socket and look for the server's answer (a failed handshake,
an error code, or the connection closed): nothing waits for a timeout to expire.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import struct
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from kazoo.client import KazooClient
from kazoo.exceptions import InvalidACLError, NoAuthError
from kazoo.security import ACL, Id, Permissions, make_acl

from zkfast.runtime.tls import rfc2253_subject
from zkfast.testing.certs import Pki, issue, make_pki, name
from zkfast.testing.procs import (
    APACHE_JARS,
    JAVA_DIR,
    ServerProcess,
    apache_available,
    apache_server,
    free_port,
    wait_until,
    zkfast_server,
)

KINDS = [
    "zkfast",
    pytest.param(
        "apache",
        marks=[
            pytest.mark.interop,
            pytest.mark.skipif(not apache_available(), reason="Apache ZooKeeper not installed"),
        ],
    ),
]

# A subject with characters RFC 2253 escapes, and an attribute written as an OID, so the
# x509 id the server derives is really the JDK's rendering and not a near miss.
CLIENT_SUBJECT = name(
    (NameOID.COUNTRY_NAME, "US"),
    (NameOID.ORGANIZATION_NAME, "zkfast, inc."),
    (NameOID.ORGANIZATIONAL_UNIT_NAME, "tests+interop"),
    (NameOID.COMMON_NAME, 'client "one"'),
    (NameOID.EMAIL_ADDRESS, "client@example.com"),
)
EXPECTED_CLIENT_ID = (
    "1.2.840.113549.1.9.1=#1612636c69656e74406578616d706c652e636f6d,"
    'CN=client \\"one\\",OU=tests\\+interop,O=zkfast\\, inc.,C=US'
)

SASL_USERS = {"bob": "bob-pw", "alice": "alice-pw", "super": "super-pw"}
SASL_PROVIDER = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"


class Certs:
    """The test PKI plus a second trusted client ("other")."""

    def __init__(self, pki: Pki) -> None:
        self.pki = pki
        other = issue(pki.ca, name((NameOID.COMMON_NAME, "other")), server=False)
        self.other_cert_pem = pki.directory / "other-cert.pem"
        self.other_key_pem = pki.directory / "other-key.pem"
        self.other_cert_pem.write_bytes(other.cert_pem())
        self.other_key_pem.write_bytes(other.key_pem())
        self.client_id = rfc2253_subject(pki.client.cert.public_bytes(serialization.Encoding.DER))
        self.other_id = rfc2253_subject(other.cert.public_bytes(serialization.Encoding.DER))

    def files(self, who: str | None) -> dict[str, str]:
        """kazoo's TLS keyword arguments for client `who` ("client", "other", "rogue", None)."""
        kw = {"use_ssl": True, "verify_certs": True, "ca": str(self.pki.ca_pem)}
        if who == "client":
            kw.update(certfile=str(self.pki.client_cert_pem), keyfile=str(self.pki.client_key_pem))
        elif who == "other":
            kw.update(certfile=str(self.other_cert_pem), keyfile=str(self.other_key_pem))
        elif who == "rogue":
            kw.update(
                certfile=str(self.pki.rogue_client_cert_pem),
                keyfile=str(self.pki.rogue_client_key_pem),
            )
        return kw  # type: ignore[return-value]

    def ssl_context(self, who: str | None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_pem))
        kw = self.files(who)
        if "certfile" in kw:
            ctx.load_cert_chain(kw["certfile"], kw["keyfile"])
        return ctx


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return Certs(make_pki(tmp_path_factory.mktemp("pki"), client_subject=CLIENT_SUBJECT))


def tls_cfg(certs: Certs, setup: str) -> dict[str, str]:
    """zoo.cfg entries of a TLS setup "<store>-<clientAuth>", e.g. "pem-need"."""
    store, client_auth = setup.split("-")
    pki = certs.pki
    cfg = {
        "secureClientPort": str(free_port()),
        "secureClientPortAddress": "127.0.0.1",
        "serverCnxnFactory": "org.apache.zookeeper.server.NettyServerCnxnFactory",
        "ssl.clientAuth": client_auth,
    }
    if store == "pem":
        cfg.update(
            {
                "ssl.keyStore.location": str(pki.server_pem),
                "ssl.keyStore.type": "PEM",
                "ssl.trustStore.location": str(pki.ca_pem),
                "ssl.trustStore.type": "PEM",
            }
        )
    else:
        cfg.update(
            {
                "ssl.keyStore.location": str(pki.server_p12),
                "ssl.keyStore.password": pki.password,
                "ssl.keyStore.type": "PKCS12",
                "ssl.trustStore.location": str(pki.ca_p12),
                "ssl.trustStore.password": pki.password,
                "ssl.trustStore.type": "PKCS12",
            }
        )
    return cfg


class Servers:
    """Starts one server per (kind, setup) on first use; stops them all at the end."""

    def __init__(self, root: Path, certs: Certs) -> None:
        self.root = root
        self.certs = certs
        self.running: dict[tuple[str, str], ServerProcess] = {}
        jaas = root / "jaas.conf"
        users = "\n".join(f'        user_{u}="{p}"' for u, p in SASL_USERS.items())
        jaas.write_text(
            "/* zkfast interop */\nServer {\n"
            "    org.apache.zookeeper.server.auth.DigestLoginModule required\n"
            f"{users};\n}};\n"
        )
        self.jaas = jaas

    def get(self, kind: str, setup: str) -> ServerProcess:
        key = (kind, setup)
        if key not in self.running:
            workdir = self.root / f"{kind}-{setup}"
            base, _, extra = setup.partition("+")
            props: dict[str, str] = {}
            if base == "sasl":
                cfg: dict[str, str] = {}
                props = {
                    "java.security.auth.login.config": str(self.jaas),
                    "zookeeper.authProvider.1": SASL_PROVIDER,
                }
            else:
                cfg = tls_cfg(self.certs, base)
            if extra == "superuser":  # the SASL authorized id bob is a super user
                props["zookeeper.superUser"] = "bob"
            elif extra == "x509super":  # the client certificate's id is a super user
                props["zookeeper.X509AuthenticationProvider.superUser"] = EXPECTED_CLIENT_ID
            start = apache_server if kind == "apache" else zkfast_server
            server = start(workdir, cfg, props, start=False)  # type: ignore[operator]
            self.running[key] = server
            server.start()
            if base != "sasl":
                # The readiness poll used the plain port; the secure one may bind a moment later.
                port = secure_port(server)
                wait_until(lambda: _accepts(port), what=f"secure port {port} of {kind}")
        return self.running[key]

    def stop_all(self) -> None:
        for server in self.running.values():
            server.stop()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[Servers]:
    s = Servers(tmp_path_factory.mktemp("servers"), certs)
    try:
        yield s
    finally:
        s.stop_all()


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        return True
    except OSError:
        return False


def secure_port(server: ServerProcess) -> int:
    return int(
        next(
            line.split("=", 1)[1]
            for line in server.cfg_path.read_text().splitlines()
            if line.startswith("secureClientPort=")
        )
    )


@pytest.fixture
def clients() -> Iterator[Callable[..., KazooClient]]:
    """Factory of started kazoo clients, all stopped and closed at teardown."""
    made: list[KazooClient] = []

    def make(hosts: str, **kw: Any) -> KazooClient:
        kw.setdefault("timeout", 10.0)
        client = KazooClient(hosts=hosts, **kw)
        made.append(client)
        client.start(timeout=30)
        return client

    yield make
    for client in made:
        try:
            client.stop()
        finally:
            client.close()


# ---- raw protocol helpers (for the cases kazoo would only retry)


def _frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise EOFError("closed by the server")
        out += chunk
    return out


def _recv_frame(sock: socket.socket) -> bytes:
    (n,) = struct.unpack(">i", _recv_exact(sock, 4))
    return _recv_exact(sock, n)


CONNECT_REQUEST = struct.pack(">iqiqi", 0, 0, 30000, 0, 16) + b"\0" * 16 + b"\0"


def session_over(sock: socket.socket) -> bool:
    """Send a ConnectRequest; True if a session was granted, False if the server closed."""
    try:
        sock.sendall(_frame(CONNECT_REQUEST))
        reply = _recv_frame(sock)
    except (EOFError, ConnectionError, ssl.SSLError):
        return False
    _proto, timeout_ms, session_id = struct.unpack(">iiq", reply[:16])
    return timeout_ms > 0 and session_id != 0


def tls_session(certs: Certs, port: int, who: str | None) -> bool:
    """A TLS connection as `who`; True if the handshake and a session both succeed."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)  # a hang is a failure
    try:
        try:
            sock = certs.ssl_context(who).wrap_socket(raw, server_hostname="localhost")
        except (ssl.SSLError, ConnectionError, EOFError):
            return False
        with sock:
            return session_over(sock)
    finally:
        raw.close()


# ---- TLS


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("setup", ["pem-need", "pkcs12-need"])
def test_kazoo_over_tls_with_a_client_certificate(
    servers: Servers, certs: Certs, clients: Callable[..., KazooClient], kind: str, setup: str
) -> None:
    server = servers.get(kind, setup)
    zk = clients(f"127.0.0.1:{secure_port(server)}", **certs.files("client"))
    path = f"/tls-{setup}"
    zk.create(path, b"over tls")
    assert zk.get(path)[0] == b"over tls"
    # the plain port serves the same tree
    plain = clients(server.hosts)
    assert plain.get(path)[0] == b"over tls"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("setup", ["pem-need", "pkcs12-need"])
def test_need_refuses_clients_without_a_trusted_certificate(
    servers: Servers, certs: Certs, kind: str, setup: str
) -> None:
    port = secure_port(servers.get(kind, setup))
    assert tls_session(certs, port, "client")
    assert not tls_session(certs, port, None)
    assert not tls_session(certs, port, "rogue")


@pytest.mark.parametrize("kind", KINDS)
def test_want_accepts_clients_without_a_certificate(
    servers: Servers, certs: Certs, clients: Callable[..., KazooClient], kind: str
) -> None:
    server = servers.get(kind, "pkcs12-want")
    port = secure_port(server)
    assert tls_session(certs, port, None)
    assert tls_session(certs, port, "client")
    assert not tls_session(certs, port, "rogue")
    anonymous = clients(f"127.0.0.1:{port}", **certs.files(None))
    with pytest.raises(InvalidACLError):  # no x509 id to expand "auth" to
        anonymous.create("/want-anon", acl=[ACL(Permissions.ALL, Id("auth", ""))])
    named = clients(f"127.0.0.1:{port}", **certs.files("client"))
    named.create("/want-named", acl=[ACL(Permissions.ALL, Id("auth", ""))])
    assert named.get_acls("/want-named")[0] == [
        ACL(Permissions.ALL, Id("x509", EXPECTED_CLIENT_ID))
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_client_auth_none_asks_for_no_certificate(
    servers: Servers, certs: Certs, clients: Callable[..., KazooClient], kind: str
) -> None:
    port = secure_port(servers.get(kind, "pem-none"))
    assert tls_session(certs, port, None)
    zk = clients(f"127.0.0.1:{port}", **certs.files("client"))
    with pytest.raises(InvalidACLError):  # the certificate was never asked for: no x509 id
        zk.create("/none-auth", acl=[ACL(Permissions.ALL, Id("auth", ""))])


@pytest.mark.parametrize("kind", KINDS)
def test_x509_id_is_the_jdks_rfc2253_subject(
    servers: Servers, certs: Certs, clients: Callable[..., KazooClient], kind: str
) -> None:
    """The `auth` ACL expands to the id the server derived from the certificate."""
    assert certs.client_id == EXPECTED_CLIENT_ID
    server = servers.get(kind, "pem-need")
    zk = clients(f"127.0.0.1:{secure_port(server)}", **certs.files("client"))
    zk.create("/x509-auth", b"mine", acl=[ACL(Permissions.ALL, Id("auth", ""))])
    acls, _stat = zk.get_acls("/x509-auth")
    assert acls == [ACL(Permissions.ALL, Id("x509", EXPECTED_CLIENT_ID))]
    assert zk.get("/x509-auth")[0] == b"mine"


@pytest.mark.parametrize("kind", KINDS)
def test_x509_acl_admits_only_that_certificate(
    servers: Servers, certs: Certs, clients: Callable[..., KazooClient], kind: str
) -> None:
    server = servers.get(kind, "pem-need")
    port = secure_port(server)
    owner = clients(f"127.0.0.1:{port}", **certs.files("client"))
    acl = make_acl("x509", EXPECTED_CLIENT_ID, read=True, write=True)
    owner.create("/x509-acl", b"secret", acl=[acl])
    owner.set("/x509-acl", b"changed")
    assert owner.get("/x509-acl")[0] == b"changed"
    other = clients(f"127.0.0.1:{port}", **certs.files("other"))
    with pytest.raises(NoAuthError):
        other.get("/x509-acl")
    plain = clients(server.hosts)
    with pytest.raises(NoAuthError):
        plain.get("/x509-acl")
    # the other certificate's id works for the other client
    other.create("/x509-other", acl=[make_acl("x509", certs.other_id, all=True)])
    assert other.get_acls("/x509-other")[0][0].id == Id("x509", "CN=other")


# ---- SASL DIGEST-MD5


def sasl_kw(user: str, password: str) -> dict[str, Any]:
    return {"sasl_options": {"mechanism": "DIGEST-MD5", "username": user, "password": password}}


@pytest.mark.parametrize("kind", KINDS)
def test_sasl_login_and_sasl_acl(
    servers: Servers, clients: Callable[..., KazooClient], kind: str
) -> None:
    server = servers.get(kind, "sasl")
    bob = clients(server.hosts, **sasl_kw("bob", "bob-pw"))
    bob.create("/sasl-bob", b"bob's", acl=[make_acl("sasl", "bob", all=True)])
    assert bob.get("/sasl-bob")[0] == b"bob's"
    alice = clients(server.hosts, **sasl_kw("alice", "alice-pw"))
    with pytest.raises(NoAuthError):
        alice.get("/sasl-bob")
    anonymous = clients(server.hosts)
    with pytest.raises(NoAuthError):
        anonymous.get("/sasl-bob")


@pytest.mark.parametrize("kind", KINDS)
def test_sasl_auth_acl_expands_to_the_authorized_id(
    servers: Servers, clients: Callable[..., KazooClient], kind: str
) -> None:
    server = servers.get(kind, "sasl")
    alice = clients(server.hosts, **sasl_kw("alice", "alice-pw"))
    alice.create("/sasl-auth", acl=[ACL(Permissions.ALL, Id("auth", ""))])
    assert alice.get_acls("/sasl-auth")[0] == [ACL(Permissions.ALL, Id("sasl", "alice"))]


@pytest.mark.parametrize("kind", KINDS)
def test_sasl_super_passes_every_sasl_acl_and_nothing_else(
    servers: Servers, clients: Callable[..., KazooClient], kind: str
) -> None:
    """JAAS user_super logs in as sasl:super, which SASLAuthenticationProvider.matches lets
    through every sasl:* ACL entry; it is no super user for other schemes."""
    server = servers.get(kind, "sasl")
    bob = clients(server.hosts, **sasl_kw("bob", "bob-pw"))
    bob.create("/sasl-bob-only", b"b", acl=[make_acl("sasl", "bob", all=True)])
    bob.create("/digest-only", acl=[make_acl("digest", "someone:c29tZWhhc2g=", all=True)])
    su = clients(server.hosts, **sasl_kw("super", "super-pw"))
    assert su.get("/sasl-bob-only")[0] == b"b"
    su.set("/sasl-bob-only", b"by super")
    with pytest.raises(NoAuthError):
        su.get("/digest-only")


@pytest.mark.parametrize("kind", KINDS)
def test_zookeeper_super_user_makes_a_sasl_id_super(
    servers: Servers, clients: Callable[..., KazooClient], kind: str
) -> None:
    """-Dzookeeper.superUser=bob: bob's session also holds ("super", ""), past every ACL."""
    server = servers.get(kind, "sasl+superuser")
    alice = clients(server.hosts, **sasl_kw("alice", "alice-pw"))
    alice.create("/digest-closed", b"d", acl=[make_acl("digest", "someone:c29tZWhhc2g=", all=True)])
    with pytest.raises(NoAuthError):
        alice.get("/digest-closed")
    bob = clients(server.hosts, **sasl_kw("bob", "bob-pw"))
    assert bob.get("/digest-closed")[0] == b"d"


@pytest.mark.parametrize("kind", KINDS)
def test_x509_super_user_property(
    servers: Servers, certs: Certs, clients: Callable[..., KazooClient], kind: str
) -> None:
    """-Dzookeeper.X509AuthenticationProvider.superUser=<id>: that certificate is a super user."""
    server = servers.get(kind, "pem-need+x509super")
    port = secure_port(server)
    other = clients(f"127.0.0.1:{port}", **certs.files("other"))
    other.create("/other-only", b"o", acl=[make_acl("x509", certs.other_id, all=True)])
    root = clients(f"127.0.0.1:{port}", **certs.files("client"))
    assert root.get("/other-only")[0] == b"o"
    root.set("/other-only", b"by super")


def _sasl_request(sock: socket.socket, xid: int, token: bytes) -> tuple[int, bytes | None]:
    sock.sendall(_frame(struct.pack(">ii", xid, 102) + struct.pack(">i", len(token)) + token))
    reply = _recv_frame(sock)
    rxid, _zxid, err = struct.unpack(">iqi", reply[:16])
    assert rxid == xid
    body = reply[16:]
    if len(body) < 4:
        return err, None
    (n,) = struct.unpack(">i", body[:4])
    return err, (body[4 : 4 + n] if n >= 0 else None)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("user", "password"), [("bob", "wrong"), ("nobody", "nobody-pw")])
def test_sasl_failure_is_auth_failed_then_close(
    servers: Servers, kind: str, user: str, password: str
) -> None:
    from puresasl.client import SASLClient

    server = servers.get(kind, "sasl")
    with socket.create_connection(("127.0.0.1", server.client_port), timeout=30) as sock:
        assert session_over(sock)
        cli = SASLClient(
            host="zk-sasl-md5",
            service="zookeeper",
            mechanism="DIGEST-MD5",
            username=user,
            password=password,
        )
        err, challenge = _sasl_request(sock, 1, b"")
        assert err == 0 and challenge is not None
        err, _token = _sasl_request(sock, 2, cli.process(challenge))
        assert err == -115  # AuthFailed
        with pytest.raises((EOFError, ConnectionError)):
            while True:  # anything still queued (a close notice), then the end of the stream
                _recv_frame(sock)


def test_expected_client_id_is_computed_from_the_certificate(certs: Certs) -> None:
    cert = x509.load_pem_x509_certificate(certs.pki.client_cert_pem.read_bytes())
    assert rfc2253_subject(cert.public_bytes(serialization.Encoding.DER)) == EXPECTED_CLIENT_ID


# ---- the official Java client: the JDK's TLS stack and the JDK's DIGEST-MD5 client

JAVA_PROBE = """
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.zookeeper.*;
import org.apache.zookeeper.data.*;
public class Probe {
  public static void main(String[] args) throws Exception {
    CountDownLatch ready = new CountDownLatch(1);
    boolean sasl = args[2].equals("sasl");
    ZooKeeper zk = new ZooKeeper(args[0], 30000, e -> {
      System.out.println("EVENT " + e.getState());
      if (e.getState() == (sasl ? Watcher.Event.KeeperState.SaslAuthenticated
                                : Watcher.Event.KeeperState.SyncConnected)) ready.countDown();
      if (e.getState() == Watcher.Event.KeeperState.AuthFailed) ready.countDown();
    });
    try {
      if (!ready.await(60, TimeUnit.SECONDS)) { System.out.println("NOT READY"); return; }
      for (ClientInfo c : zk.whoAmI()) System.out.println("WHOAMI " + c.getAuthScheme() + " " + c.getUser());
      zk.create(args[1], "java".getBytes(), ZooDefs.Ids.CREATOR_ALL_ACL, CreateMode.PERSISTENT);
      for (ACL a : zk.getACL(args[1], new Stat())) System.out.println("ACL " + a.getId().getScheme() + " " + a.getId().getId() + " " + a.getPerms());
    } finally {
      zk.close();
    }
  }
}
"""


@pytest.fixture(scope="module")
def java_probe(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., list[str]]:
    """Compile Probe.java once; returns run(workdir, hosts, path, mode, props) -> its lines."""
    if shutil.which("java") is None or shutil.which("javac") is None:
        pytest.skip("needs java and javac")
    classes = tmp_path_factory.mktemp("probe")
    (classes / "Probe.java").write_text(JAVA_PROBE)
    classpath = ":".join(str(JAVA_DIR / j) for j in APACHE_JARS)
    subprocess.run(
        ["javac", "-cp", classpath, "-d", str(classes), str(classes / "Probe.java")],
        check=True,
        capture_output=True,
        timeout=300,
    )

    def run(workdir: Path, hosts: str, path: str, mode: str, props: dict[str, str]) -> list[str]:
        argv = ["java", *(f"-D{k}={v}" for k, v in props.items())]
        argv += ["-cp", f"{classes}:{classpath}", "Probe", hosts, path, mode]
        # the timeout only turns a hang into a failure; nothing depends on it
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=180, cwd=workdir)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        keep = ("WHOAMI", "ACL", "NOT")
        return [line for line in proc.stdout.splitlines() if line.split(" ")[0] in keep]

    return run


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("store", ["PEM", "PKCS12"])
def test_java_client_over_tls_gets_the_x509_id(
    servers: Servers,
    certs: Certs,
    java_probe: Callable[..., list[str]],
    tmp_path: Path,
    kind: str,
    store: str,
) -> None:
    server = servers.get(kind, "pem-need")
    pki = certs.pki
    if store == "PEM":
        client_ks = pki.directory / "java-client.pem"
        client_ks.write_bytes(pki.client.key_pem() + pki.client.cert_pem())
        stores = {"keyStore.location": str(client_ks), "trustStore.location": str(pki.ca_pem)}
    else:
        stores = {
            "keyStore.location": str(pki.client_p12),
            "keyStore.password": pki.password,
            "trustStore.location": str(pki.ca_p12),
            "trustStore.password": pki.password,
        }
    props = {
        "zookeeper.client.secure": "true",
        "zookeeper.clientCnxnSocket": "org.apache.zookeeper.ClientCnxnSocketNetty",
        "zookeeper.ssl.keyStore.type": store,
        "zookeeper.ssl.trustStore.type": store,
        **{f"zookeeper.ssl.{k}": v for k, v in stores.items()},
    }
    path = f"/java-tls-{store}"
    lines = java_probe(tmp_path, f"127.0.0.1:{secure_port(server)}", path, "tls", props)
    assert f"WHOAMI x509 {EXPECTED_CLIENT_ID}" in lines
    assert lines[-1] == f"ACL x509 {EXPECTED_CLIENT_ID} 31"


@pytest.mark.parametrize("kind", KINDS)
def test_java_client_sasl_digest_md5(
    servers: Servers, java_probe: Callable[..., list[str]], tmp_path: Path, kind: str
) -> None:
    """The JDK's DIGEST-MD5 client (it sends authzid and charset, unlike pure-sasl)."""
    server = servers.get(kind, "sasl")
    jaas = tmp_path / "client-jaas.conf"
    jaas.write_text(
        "Client {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n"
        '  username="bob"\n  password="bob-pw";\n};\n'
    )
    props = {"java.security.auth.login.config": str(jaas)}
    lines = java_probe(tmp_path, server.hosts, "/java-sasl", "sasl", props)
    assert "WHOAMI sasl bob" in lines
    assert lines[-1] == "ACL sasl bob 31"
