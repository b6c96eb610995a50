"""runtime/tls: ssl.* settings -> SSLContext, real handshakes, and x509 ids as the JDK writes them.

Handshakes run between `build_server_context` and Python ssl clients, in memory (two
SSLObjects pumping bytes to each other) and over loopback sockets with asyncio and uvloop,
the way the runtime serves them. The x509 ids are checked against the JDK itself
(`X500Principal.getName()` via a one-file Java program) when java is installed.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from zkfast.config import TlsConfig
from zkfast.runtime.tls import (
    APACHE_DEFAULT_CIPHERSUITES,
    TlsConfigError,
    build_server_context,
    cert_ids_from_ssl_object,
    java_cipher_to_openssl,
    rfc2253_subject,
    store_type,
)
from zkfast.testing.certs import Pki, issue, make_ca, make_pki

CLIENT_ID = "CN=client,OU=tests,O=zkfast,C=US"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def pki_encrypted(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki-enc"), encrypt_pem_keys=True, password="s3cret")


def pem_cfg(pki: Pki, **kw: object) -> TlsConfig:
    base: dict[str, object] = {
        "keystore_location": str(pki.server_pem),
        "keystore_type": "PEM",
        "truststore_location": str(pki.ca_pem),
        "truststore_type": "PEM",
    }
    base.update(kw)
    return TlsConfig(**base)  # type: ignore[arg-type]


def p12_cfg(pki: Pki, **kw: object) -> TlsConfig:
    base: dict[str, object] = {
        "keystore_location": str(pki.server_p12),
        "keystore_password": pki.password,
        "truststore_location": str(pki.ca_p12),
        "truststore_password": pki.password,
    }
    base.update(kw)
    return TlsConfig(**base)  # type: ignore[arg-type]


def client_ctx(
    pki: Pki, *, cert: str | None = "client", max_tls: str = "TLSv1.3"
) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_pem))
    ctx.maximum_version = getattr(ssl.TLSVersion, max_tls.replace("TLSv1.", "TLSv1_"))
    if cert == "client":
        ctx.load_cert_chain(
            str(pki.client_cert_pem), str(pki.client_key_pem), password=pki.password
        )
    elif cert == "rogue":
        ctx.load_cert_chain(str(pki.rogue_client_cert_pem), str(pki.rogue_client_key_pem))
    return ctx


def handshake(
    server: ssl.SSLContext, client: ssl.SSLContext
) -> tuple[ssl.SSLObject, ssl.SSLObject]:
    """A full handshake in memory, then one application byte each way (TLS 1.3 reports a
    rejected client certificate only after the client thinks it is done)."""
    s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
    srv = server.wrap_bio(s_in, s_out, server_side=True)
    cli = client.wrap_bio(c_in, c_out, server_hostname="localhost")

    def pump() -> None:
        c_in.write(s_out.read())
        s_in.write(c_out.read())

    def attempt(fn: Callable[[], object]) -> bool:
        try:
            fn()
            return True
        except ssl.SSLWantReadError:
            return False

    done_s = done_c = False
    for _ in range(20):
        done_c = done_c or attempt(cli.do_handshake)
        pump()
        done_s = done_s or attempt(srv.do_handshake)
        pump()
        if done_s and done_c:
            break
    assert done_s and done_c
    cli.write(b"x")
    pump()
    assert srv.read(1) == b"x"
    srv.write(b"y")
    pump()
    assert cli.read(1) == b"y"
    return srv, cli


# ---- stores and settings


def test_store_type_from_setting_or_extension() -> None:
    assert store_type("pkcs12", "x.bin", "k") == "PKCS12"
    assert store_type(None, "/a/b.P12", "k") == "PKCS12"
    assert store_type(None, "b.pem", "k") == "PEM"
    assert store_type(None, "b.jks", "k") == "JKS"
    with pytest.raises(TlsConfigError, match="ssl.keyStore.type"):
        store_type(None, "b.bin", "ssl.keyStore.type")
    with pytest.raises(TlsConfigError, match="ssl.keyStore.type"):
        store_type("pkcs13", "b.p12", "ssl.keyStore.type")


def test_jks_is_refused_naming_the_key(pki: Pki, tmp_path: Path) -> None:
    jks = tmp_path / "server.jks"
    jks.write_bytes(b"\xfe\xed\xfe\xed")
    with pytest.raises(TlsConfigError, match=r"ssl\.keyStore\.type=JKS.*ssl\.keyStore\.location"):
        build_server_context(pem_cfg(pki, keystore_location=str(jks), keystore_type=None))
    with pytest.raises(TlsConfigError, match=r"ssl\.trustStore\.type=JKS"):
        build_server_context(pem_cfg(pki, truststore_location=str(jks), truststore_type="JKS"))


def test_missing_keystore_is_an_error(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(TlsConfigError, match="ssl.keyStore.location is required"):
        build_server_context(TlsConfig())
    with pytest.raises(TlsConfigError, match="cannot be read"):
        build_server_context(pem_cfg(pki, keystore_location=str(tmp_path / "nope.pem")))


def test_pem_keystore_needs_key_and_certificate_in_one_file(pki: Pki) -> None:
    with pytest.raises(TlsConfigError, match="one file"):
        build_server_context(pem_cfg(pki, keystore_location=str(pki.server_cert_pem)))


def test_pem_keystore_key_after_certificate_also_loads(pki: Pki, tmp_path: Path) -> None:
    swapped = tmp_path / "swapped.pem"
    swapped.write_bytes(pki.server_cert_pem.read_bytes() + pki.server_key_pem.read_bytes())
    srv, _ = handshake(
        build_server_context(pem_cfg(pki, keystore_location=str(swapped))), client_ctx(pki)
    )
    assert cert_ids_from_ssl_object(srv) == (CLIENT_ID,)


def test_encrypted_pem_key_uses_the_keystore_password(pki_encrypted: Pki) -> None:
    good = pem_cfg(pki_encrypted, keystore_password="s3cret")
    srv, _ = handshake(build_server_context(good), client_ctx(pki_encrypted))
    assert cert_ids_from_ssl_object(srv) == (CLIENT_ID,)
    with pytest.raises(TlsConfigError, match="ssl.keyStore.password"):
        build_server_context(pem_cfg(pki_encrypted, keystore_password="wrong"))


def test_pkcs12_wrong_password_names_the_key(pki: Pki) -> None:
    with pytest.raises(TlsConfigError, match="ssl.keyStore.password"):
        build_server_context(p12_cfg(pki, keystore_password="wrong"))
    with pytest.raises(TlsConfigError, match="ssl.trustStore.password"):
        build_server_context(p12_cfg(pki, truststore_password="wrong"))


def test_pkcs12_truststore_without_a_key_is_not_a_keystore(pki: Pki) -> None:
    with pytest.raises(TlsConfigError, match="no private key"):
        build_server_context(p12_cfg(pki, keystore_location=str(pki.ca_p12)))


def test_pkcs12_temporary_files_are_removed(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    build_server_context(p12_cfg(pki))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("client_auth", "mode"),
    [
        ("need", ssl.CERT_REQUIRED),
        ("NEED", ssl.CERT_REQUIRED),
        ("want", ssl.CERT_OPTIONAL),
        ("none", ssl.CERT_NONE),
    ],
)
def test_client_auth_mapping(pki: Pki, client_auth: str, mode: ssl.VerifyMode) -> None:
    assert build_server_context(pem_cfg(pki, client_auth=client_auth)).verify_mode == mode


def test_bad_client_auth_value(pki: Pki) -> None:
    with pytest.raises(TlsConfigError, match="ssl.clientAuth"):
        build_server_context(pem_cfg(pki, client_auth="maybe"))


def test_protocols(pki: Pki) -> None:
    ctx = build_server_context(pem_cfg(pki))
    assert (ctx.minimum_version, ctx.maximum_version) == (
        ssl.TLSVersion.TLSv1_2,
        ssl.TLSVersion.TLSv1_2,
    )
    ctx = build_server_context(pem_cfg(pki, protocol="TLSv1.3"))
    assert (ctx.minimum_version, ctx.maximum_version) == (
        ssl.TLSVersion.TLSv1_3,
        ssl.TLSVersion.TLSv1_3,
    )
    ctx = build_server_context(pem_cfg(pki, enabled_protocols=("TLSv1.3", "TLSv1.2")))
    assert (ctx.minimum_version, ctx.maximum_version) == (
        ssl.TLSVersion.TLSv1_2,
        ssl.TLSVersion.TLSv1_3,
    )
    with pytest.raises(TlsConfigError, match="ssl.protocol"):
        build_server_context(pem_cfg(pki, protocol="SSLv3"))
    with pytest.raises(TlsConfigError, match="ssl.enabledProtocols"):
        build_server_context(pem_cfg(pki, enabled_protocols=("TLSv9",)))


def test_tls12_only_server_refuses_a_tls13_only_client(pki: Pki) -> None:
    cli = client_ctx(pki)
    cli.minimum_version = ssl.TLSVersion.TLSv1_3
    with pytest.raises(ssl.SSLError):
        handshake(build_server_context(pem_cfg(pki)), cli)


@pytest.mark.parametrize(
    ("java", "openssl"),
    [
        ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"),
        ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384"),
        ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "ECDHE-RSA-AES128-SHA256"),
        ("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "ECDHE-ECDSA-AES256-SHA"),
        ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA-CHACHA20-POLY1305"),
        ("TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", "DHE-RSA-AES128-GCM-SHA256"),
        ("TLS_RSA_WITH_AES_128_GCM_SHA256", "AES128-GCM-SHA256"),
        ("TLS_AES_128_GCM_SHA256", None),
    ],
)
def test_java_cipher_names(java: str, openssl: str | None) -> None:
    assert java_cipher_to_openssl(java) == openssl


@pytest.mark.parametrize(
    "bad", ["TLS_FOO_WITH_BAR", "ECDHE-RSA-AES128-GCM-SHA256", "TLS_RSA_WITH_RC4_128_MD5"]
)
def test_unknown_cipher_names_are_refused(pki: Pki, bad: str) -> None:
    with pytest.raises(TlsConfigError, match="ssl.ciphersuites"):
        build_server_context(pem_cfg(pki, ciphersuites=(bad,)))


def test_ciphersuites_restrict_the_tls12_handshake(pki: Pki) -> None:
    suite = "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"
    srv, cli = handshake(build_server_context(pem_cfg(pki, ciphersuites=(suite,))), client_ctx(pki))
    assert srv.cipher()[0] == "ECDHE-ECDSA-AES256-GCM-SHA384"  # type: ignore[index]
    assert cli.version() == "TLSv1.2"


def test_default_ciphersuites_are_apaches(pki: Pki) -> None:
    """Apache 3.8's default list, less what this OpenSSL build refuses (SHA-1 MAC suites)."""
    ctx = build_server_context(pem_cfg(pki))
    names = {c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"}
    apache = {java_cipher_to_openssl(s) for s in APACHE_DEFAULT_CIPHERSUITES}
    assert names <= apache
    assert {
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
    } <= names


# ---- handshakes and ids


@pytest.mark.parametrize("cfg", [pem_cfg, p12_cfg], ids=["pem", "pkcs12"])
@pytest.mark.parametrize("max_tls", ["TLSv1.2", "TLSv1.3"])
def test_need_with_a_client_certificate(
    pki: Pki, cfg: Callable[..., TlsConfig], max_tls: str
) -> None:
    protocols = ("TLSv1.2", "TLSv1.3")
    srv, cli = handshake(
        build_server_context(cfg(pki, enabled_protocols=protocols)),
        client_ctx(pki, max_tls=max_tls),
    )
    assert cli.version() == max_tls
    assert cert_ids_from_ssl_object(srv) == (CLIENT_ID,)


@pytest.mark.parametrize("max_tls", ["TLSv1.2", "TLSv1.3"])
def test_need_without_a_client_certificate_fails(pki: Pki, max_tls: str) -> None:
    ctx = build_server_context(pem_cfg(pki, enabled_protocols=("TLSv1.2", "TLSv1.3")))
    with pytest.raises(ssl.SSLError):
        handshake(ctx, client_ctx(pki, cert=None, max_tls=max_tls))


@pytest.mark.parametrize("client_auth", ["need", "want"])
def test_untrusted_client_certificate_fails(pki: Pki, client_auth: str) -> None:
    with pytest.raises(ssl.SSLError):
        handshake(
            build_server_context(pem_cfg(pki, client_auth=client_auth)),
            client_ctx(pki, cert="rogue"),
        )


def test_want_without_a_certificate_has_no_ids(pki: Pki) -> None:
    srv, _ = handshake(
        build_server_context(pem_cfg(pki, client_auth="want")), client_ctx(pki, cert=None)
    )
    assert cert_ids_from_ssl_object(srv) == ()


def test_want_with_a_certificate_has_its_id(pki: Pki) -> None:
    srv, _ = handshake(build_server_context(p12_cfg(pki, client_auth="want")), client_ctx(pki))
    assert cert_ids_from_ssl_object(srv) == (CLIENT_ID,)


def test_none_asks_for_no_certificate(pki: Pki) -> None:
    srv, _ = handshake(build_server_context(pem_cfg(pki, client_auth="none")), client_ctx(pki))
    assert cert_ids_from_ssl_object(srv) == ()


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_factory(
    request: pytest.FixtureRequest,
) -> Iterator[Callable[[], asyncio.AbstractEventLoop]]:
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        yield uvloop.new_event_loop
    else:
        yield asyncio.new_event_loop


def test_loopback_server_sees_the_client_id(
    pki: Pki, loop_factory: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    """The runtime's path: a TLS server socket, then transport.get_extra_info("ssl_object")."""

    async def main() -> tuple[str, ...]:
        got: asyncio.Future[tuple[str, ...]] = asyncio.get_running_loop().create_future()

        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            got.set_result(cert_ids_from_ssl_object(writer.get_extra_info("ssl_object")))
            writer.write(await reader.readexactly(4))
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(
            on_client, "127.0.0.1", 0, ssl=build_server_context(p12_cfg(pki))
        )
        try:
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_ctx(pki), server_hostname="localhost"
            )
            writer.write(b"ping")
            assert await reader.readexactly(4) == b"ping"
            writer.close()
            return await got
        finally:
            server.close()
            await server.wait_closed()

    loop = loop_factory()
    try:
        assert loop.run_until_complete(main()) == (CLIENT_ID,)
    finally:
        loop.close()


# ---- RFC 2253 names, as the JDK writes them

A = x509.NameAttribute
SUBJECTS: list[tuple[x509.Name, str]] = [
    (
        x509.Name(
            [
                A(NameOID.COUNTRY_NAME, "US"),
                A(NameOID.ORGANIZATION_NAME, "zkfast"),
                A(NameOID.COMMON_NAME, "c"),
            ]
        ),
        "CN=c,O=zkfast,C=US",
    ),
    (
        x509.Name([A(NameOID.COMMON_NAME, 'a,b=c+d<e>f#g;h"i\\j')]),
        'CN=a\\,b\\=c\\+d\\<e\\>f\\#g\\;h\\"i\\\\j',
    ),
    (x509.Name([A(NameOID.COMMON_NAME, "#lead")]), "CN=\\#lead"),
    (x509.Name([A(NameOID.COMMON_NAME, "  spaced  ")]), "CN=\\ \\ spaced\\ \\ "),
    (x509.Name([A(NameOID.COMMON_NAME, "café 日本 😀")]), "CN=café 日本 😀"),
    (
        x509.Name([A(NameOID.EMAIL_ADDRESS, "bob@example.com"), A(NameOID.COMMON_NAME, "bob")]),
        "CN=bob,1.2.840.113549.1.9.1=#160f626f62406578616d706c652e636f6d",
    ),
    (
        x509.Name(
            [
                A(NameOID.DOMAIN_COMPONENT, "com"),
                A(NameOID.USER_ID, "u1"),
                A(NameOID.STREET_ADDRESS, "1 Main St"),
                A(NameOID.LOCALITY_NAME, "Town"),
                A(NameOID.STATE_OR_PROVINCE_NAME, "ST"),
                A(NameOID.SERIAL_NUMBER, "42"),
            ]
        ),
        "2.5.4.5=#13023432,ST=ST,L=Town,STREET=1 Main St,UID=u1,DC=com",
    ),
    (
        x509.Name(
            [
                x509.RelativeDistinguishedName(
                    [A(NameOID.COMMON_NAME, "m"), A(NameOID.ORGANIZATIONAL_UNIT_NAME, "u")]
                ),
                x509.RelativeDistinguishedName([A(NameOID.ORGANIZATION_NAME, "o")]),
            ]
        ),
        "O=o,CN=m+OU=u",  # DER (SET OF) order, as the JDK keeps it
    ),
    (
        x509.Name(
            [
                A(NameOID.COMMON_NAME, "bmp", _ASN1Type.BMPString),
                A(NameOID.LOCALITY_NAME, "u", _ASN1Type.UniversalString),
                A(NameOID.ORGANIZATION_NAME, "é", _ASN1Type.T61String),
            ]
        ),
        "O=é,L=#1c0400000075,CN=\\00b\\00m\\00p",
    ),
    (x509.Name([A(NameOID.COMMON_NAME, "nul\x00in")]), "CN=nul\\00in"),
    (x509.Name([A(NameOID.COMMON_NAME, "\r")]), "CN=\\\r"),
    (x509.Name([A(x509.ObjectIdentifier("1.2.3.4"), "custom")]), "1.2.3.4=#0c06637573746f6d"),
]


@pytest.fixture(scope="module")
def subject_certs(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, bytes, str]]:
    ca = make_ca()
    d = tmp_path_factory.mktemp("subjects")
    out = []
    for i, (subject, expected) in enumerate(SUBJECTS):
        cert = issue(ca, subject, server=False).cert
        path = d / f"c{i}.pem"
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        out.append((path, cert.public_bytes(serialization.Encoding.DER), expected))
    return out


def test_rfc2253_subjects(subject_certs: list[tuple[Path, bytes, str]]) -> None:
    for _path, der, expected in subject_certs:
        assert rfc2253_subject(der) == expected


JAVA_DN = """
import java.io.FileInputStream;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
public class Dn {
  public static void main(String[] args) throws Exception {
    CertificateFactory cf = CertificateFactory.getInstance("X.509");
    for (String f : args) {
      X509Certificate c = (X509Certificate) cf.generateCertificate(new FileInputStream(f));
      byte[] b = c.getSubjectX500Principal().getName().getBytes("UTF-8");
      System.out.println(java.util.Base64.getEncoder().encodeToString(b));
    }
  }
}
"""


@pytest.mark.interop  # runs the JDK (a few seconds): `-m "not interop"` skips it
@pytest.mark.skipif(shutil.which("java") is None, reason="needs java")
def test_rfc2253_subjects_match_the_jdks_x500principal(
    subject_certs: list[tuple[Path, bytes, str]], tmp_path: Path
) -> None:
    src = tmp_path / "Dn.java"
    src.write_text(JAVA_DN)
    out = subprocess.run(
        ["java", str(src), *(str(p) for p, _, _ in subject_certs)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    java_names = [base64.b64decode(line).decode("utf-8") for line in out.stdout.split()]
    assert java_names == [rfc2253_subject(der) for _, der, _ in subject_certs]


@pytest.mark.parametrize("junk", [b"", b"\x30", b"\x30\x05\x02\x01", b"\x04\x00"])
def test_rfc2253_subject_rejects_junk(junk: bytes) -> None:
    with pytest.raises((ValueError, IndexError)):
        rfc2253_subject(junk)
