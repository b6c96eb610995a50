"""Test certificates: a CA, a server certificate and client certificates, as PEM and PKCS12.

`make_pki(directory)` writes everything a TLS test needs, for zkfast, for Apache ZooKeeper 3.8
(which reads the same PEM and PKCS12 files) and for Python clients (kazoo takes a CA file,
a certificate file and a key file):

    ca.pem                 the CA certificate (a PEM truststore)
    ca.p12                 the CA certificate as a Java-readable PKCS12 truststore
    server.pem             the server's private key and certificate in one file (PEM keystore)
    server.p12             the same as PKCS12, protected by `password`
    server-cert.pem, server-key.pem
    client.pem / client.p12 / client-cert.pem / client-key.pem   likewise for the client
    rogue-client-cert.pem, rogue-client-key.pem   a client certificate from another CA

Keys are EC P-256 (fast to generate); PEM keys are unencrypted PKCS#8 unless
`encrypt_pem_keys`. The server certificate names `localhost` and `127.0.0.1`.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Issued", "Pki", "issue", "make_ca", "make_pki", "name"]

PrivateKey = ec.EllipticCurvePrivateKey

_EPOCH_SLACK = datetime.timedelta(days=1)
_LIFETIME = datetime.timedelta(days=30)


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: PrivateKey

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self, password: str | None = None) -> bytes:
        enc: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password.encode())
            if password
            else serialization.NoEncryption()
        )
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc
        )


@dataclass(frozen=True)
class Pki:
    """Paths of the files `make_pki` wrote, and the passwords protecting them."""

    directory: Path
    password: str
    ca: Issued
    server: Issued
    client: Issued
    rogue_client: Issued
    ca_pem: Path
    ca_p12: Path
    server_pem: Path
    server_p12: Path
    server_cert_pem: Path
    server_key_pem: Path
    client_pem: Path
    client_p12: Path
    client_cert_pem: Path
    client_key_pem: Path
    rogue_client_cert_pem: Path
    rogue_client_key_pem: Path


def name(*pairs: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    """An x509 Name from (oid, value) pairs, in DER order (the most general first)."""
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in pairs])


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def make_ca(common_name: str = "zkfast test CA") -> Issued:
    """A self-signed CA certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = name((NameOID.ORGANIZATION_NAME, "zkfast"), (NameOID.COMMON_NAME, common_name))
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _EPOCH_SLACK)
        .not_valid_after(now + _LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def issue(
    ca: Issued,
    subject: x509.Name,
    *,
    server: bool,
    dns_names: tuple[str, ...] = (),
    ip_addresses: tuple[str, ...] = (),
) -> Issued:
    """A leaf certificate signed by `ca`, for TLS server or client use."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _EPOCH_SLACK)
        .not_valid_after(now + _LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    alt: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    alt += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def _p12(issued: Issued, ca: Issued, alias: str, password: str) -> bytes:
    return pkcs12.serialize_key_and_certificates(
        alias.encode(),
        issued.key,
        issued.cert,
        [ca.cert],
        serialization.BestAvailableEncryption(password.encode()),
    )


DEFAULT_CLIENT_SUBJECT = name(
    (NameOID.COUNTRY_NAME, "US"),
    (NameOID.ORGANIZATION_NAME, "zkfast"),
    (NameOID.ORGANIZATIONAL_UNIT_NAME, "tests"),
    (NameOID.COMMON_NAME, "client"),
)


def make_pki(
    directory: Path | str,
    *,
    password: str = "changeit",
    client_subject: x509.Name = DEFAULT_CLIENT_SUBJECT,
    encrypt_pem_keys: bool = False,
) -> Pki:
    """Write a CA, a server and a client certificate (and a rogue client) into `directory`.

    Args:
        password: protects every PKCS12 file (and the PEM keys when `encrypt_pem_keys`).
        client_subject: the client certificate's subject (its x509 id is this name in
            RFC 2253 form).
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ca = make_ca()
    server = issue(
        ca,
        name((NameOID.ORGANIZATION_NAME, "zkfast"), (NameOID.COMMON_NAME, "localhost")),
        server=True,
        dns_names=("localhost",),
        ip_addresses=("127.0.0.1",),
    )
    client = issue(ca, client_subject, server=False)
    rogue_ca = make_ca("rogue CA")
    rogue = issue(rogue_ca, name((NameOID.COMMON_NAME, "rogue")), server=False)
    key_pw = password if encrypt_pem_keys else None
    return Pki(
        directory=d,
        password=password,
        ca=ca,
        server=server,
        client=client,
        rogue_client=rogue,
        ca_pem=_write(d / "ca.pem", ca.cert_pem()),
        ca_p12=_write(
            d / "ca.p12",
            pkcs12.serialize_java_truststore(
                [pkcs12.PKCS12Certificate(ca.cert, b"ca")],
                serialization.BestAvailableEncryption(password.encode()),
            ),
        ),
        server_pem=_write(d / "server.pem", server.key_pem(key_pw) + server.cert_pem()),
        server_p12=_write(d / "server.p12", _p12(server, ca, "server", password)),
        server_cert_pem=_write(d / "server-cert.pem", server.cert_pem()),
        server_key_pem=_write(d / "server-key.pem", server.key_pem(key_pw)),
        client_pem=_write(d / "client.pem", client.key_pem(key_pw) + client.cert_pem()),
        client_p12=_write(d / "client.p12", _p12(client, ca, "client", password)),
        client_cert_pem=_write(d / "client-cert.pem", client.cert_pem()),
        client_key_pem=_write(d / "client-key.pem", client.key_pem(key_pw)),
        rogue_client_cert_pem=_write(d / "rogue-client-cert.pem", rogue.cert_pem()),
        rogue_client_key_pem=_write(d / "rogue-client-key.pem", rogue.key_pem()),
    )
