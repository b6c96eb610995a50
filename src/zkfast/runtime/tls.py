"""TLS for the secure client port: ``ssl.*`` settings -> ``ssl.SSLContext``, and x509 ids.

``build_server_context`` reads the stores Apache ZooKeeper 3.8 reads (``X509Util``):

* keystore: PEM (private key and certificate chain in one file, as Apache's ``PemReader``
  takes it; an encrypted PKCS#8 key is opened with ``ssl.keyStore.password``) or PKCS12
  (opened with the ``cryptography`` package and handed to OpenSSL through 0600 temporary
  files that are removed at once). JKS and BCFKS cannot be read by Python: they are refused
  with an error naming ``ssl.keyStore.type`` / ``ssl.keyStore.location``. Without an explicit
  type, the type follows the file name (``.pem``, ``.p12``, ``.jks``, ``.bcfks``), as in
  Apache's ``KeyStoreFileType.fromFilename``.
* truststore: PEM (every certificate in the file) or PKCS12 (every certificate in it); with no
  truststore the system's default CAs are trusted (Apache falls back to the JVM's).
* ``ssl.clientAuth``: ``need`` (Apache's default) -> CERT_REQUIRED, ``want`` ->
  CERT_OPTIONAL, ``none`` -> CERT_NONE. The server never checks a client's host name
  (Apache's ``ClientX509Util`` turns client host name verification off).
* ``ssl.protocol`` (default TLSv1.2) and ``ssl.enabledProtocols`` (default: just the
  protocol): the TLS versions between the lowest and the highest listed are allowed.
* ``ssl.ciphersuites``: Java/IANA suite names, translated to OpenSSL's. Empty means Apache
  3.8's default list (ECDHE with AES-GCM first, then AES-CBC). TLS 1.3 suites
  (``TLS_AES_128_GCM_SHA256`` ...) are accepted but OpenSSL keeps its own TLS 1.3 list:
  Python cannot restrict it.

``cert_ids_from_ssl_object`` gives the x509 id Apache's ``X509AuthenticationProvider``
records for a verified client certificate: the subject's ``X500Principal.getName()``, the
RFC 2253 form as the JDK writes it (see ``rfc2253_subject``).
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from zkfast.config import TlsConfig

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.serialization.pkcs12 import PKCS12KeyAndCertificates

__all__ = [
    "APACHE_DEFAULT_CIPHERSUITES",
    "TlsConfigError",
    "build_server_context",
    "cert_ids_from_ssl_object",
    "java_cipher_to_openssl",
    "rfc2253_subject",
    "store_type",
]


class TlsConfigError(ValueError):
    """An ``ssl.*`` setting is missing, unreadable or unsupported; the message names the key."""


#: Apache 3.8.0's ``X509Util.getDefaultCipherSuites`` on Java 9 and later.
APACHE_DEFAULT_CIPHERSUITES: tuple[str, ...] = (
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
)

_TLS13_SUITES = frozenset(
    {
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_256_GCM_SHA384",
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS_AES_128_CCM_SHA256",
        "TLS_AES_128_CCM_8_SHA256",
    }
)

_VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}

_CLIENT_AUTH = {
    "need": ssl.CERT_REQUIRED,
    "want": ssl.CERT_OPTIONAL,
    "none": ssl.CERT_NONE,
}

_EXTENSIONS = {".jks": "JKS", ".pem": "PEM", ".p12": "PKCS12", ".bcfks": "BCFKS"}


def store_type(explicit: str | None, location: str, key: str) -> str:
    """The store type: the explicit ``ssl.*.type`` (any case), else from the file name.

    Raises:
        TlsConfigError: unknown type, or no type and an unknown file extension.
    """
    if explicit:
        t = explicit.strip().upper()
        if t in ("PEM", "PKCS12", "JKS", "BCFKS"):
            return t
        raise TlsConfigError(f"{key}={explicit!r}: expected PEM, PKCS12, JKS or BCFKS")
    ext = Path(location).suffix.lower()
    if ext in _EXTENSIONS:
        return _EXTENSIONS[ext]
    raise TlsConfigError(
        f"{key} is not set and the type of {location!r} cannot be told from its extension "
        f"(.pem, .p12, .jks, .bcfks)"
    )


# ---- the context


def build_server_context(tls: TlsConfig) -> ssl.SSLContext:
    """An ``ssl.SSLContext`` for the secure client port, configured as Apache's ``ssl.*`` keys.

    Raises:
        TlsConfigError: a setting is missing, unsupported (JKS) or a store cannot be read.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _set_versions(ctx, tls)
    _set_ciphers(ctx, tls.ciphersuites)
    _load_keystore(ctx, tls)
    client_auth = (tls.client_auth or "need").strip().lower()
    if client_auth not in _CLIENT_AUTH:
        raise TlsConfigError(f"ssl.clientAuth={tls.client_auth!r}: expected need, want or none")
    ctx.verify_mode = _CLIENT_AUTH[client_auth]
    if ctx.verify_mode != ssl.CERT_NONE:
        _load_truststore(ctx, tls)
    return ctx


def _set_versions(ctx: ssl.SSLContext, tls: TlsConfig) -> None:
    names = list(tls.enabled_protocols) or [tls.protocol or "TLSv1.2"]
    versions: list[ssl.TLSVersion] = []
    for n in names:
        n = n.strip()
        if n == "TLS":  # Java's generic name: every version it enables by default
            versions += [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]
        elif n in _VERSIONS:
            versions.append(_VERSIONS[n])
        else:
            key = "ssl.enabledProtocols" if tls.enabled_protocols else "ssl.protocol"
            raise TlsConfigError(f"{key}: unsupported protocol {n!r}")
    ctx.minimum_version = min(versions)
    ctx.maximum_version = max(versions)


def java_cipher_to_openssl(suite: str) -> str | None:
    """OpenSSL's name of a Java/IANA TLS 1.2 cipher suite name; None for a TLS 1.3 suite.

    Raises:
        TlsConfigError: the name is not a suite OpenSSL can use.
    """
    s = suite.strip()
    if s in _TLS13_SUITES:
        return None
    kx, sep, rest = s.removeprefix("TLS_").partition("_WITH_")
    if not s.startswith("TLS_") or not sep:
        raise TlsConfigError(f"ssl.ciphersuites: unknown cipher suite {suite!r}")
    kx_names = {"ECDHE_ECDSA": "ECDHE-ECDSA-", "ECDHE_RSA": "ECDHE-RSA-", "DHE_RSA": "DHE-RSA-"}
    kx_names["RSA"] = ""
    if kx not in kx_names:
        raise TlsConfigError(f"ssl.ciphersuites: unsupported key exchange in {suite!r}")
    bulk = {
        "AES_128_GCM_SHA256": "AES128-GCM-SHA256",
        "AES_256_GCM_SHA384": "AES256-GCM-SHA384",
        "AES_128_CBC_SHA256": "AES128-SHA256",
        "AES_256_CBC_SHA384": "AES256-SHA384",
        "AES_256_CBC_SHA256": "AES256-SHA256",
        "AES_128_CBC_SHA": "AES128-SHA",
        "AES_256_CBC_SHA": "AES256-SHA",
        "CHACHA20_POLY1305_SHA256": "CHACHA20-POLY1305",
    }.get(rest)
    if bulk is None:
        raise TlsConfigError(f"ssl.ciphersuites: unsupported cipher in {suite!r}")
    if kx == "RSA" and bulk == "CHACHA20-POLY1305":
        raise TlsConfigError(f"ssl.ciphersuites: unknown cipher suite {suite!r}")
    return kx_names[kx] + bulk


def _set_ciphers(ctx: ssl.SSLContext, suites: tuple[str, ...]) -> None:
    wanted = list(suites) or list(APACHE_DEFAULT_CIPHERSUITES)
    names = [n for n in (java_cipher_to_openssl(s) for s in wanted) if n is not None]
    if not names:  # only TLS 1.3 suites were named: TLS 1.2 gets none
        if ctx.maximum_version != ssl.TLSVersion.TLSv1_3:
            raise TlsConfigError("ssl.ciphersuites: no TLS 1.2 suite for the enabled protocols")
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        return
    try:
        ctx.set_ciphers(":".join(names))
    except ssl.SSLError as e:
        raise TlsConfigError(f"ssl.ciphersuites: OpenSSL accepts none of {wanted}: {e}") from None


@contextlib.contextmanager
def _private_file(data: bytes) -> Iterator[str]:
    """A 0600 temporary file holding `data`, removed on exit."""
    fd, path = tempfile.mkstemp(prefix="zkfast-tls-", suffix=".pem")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _read(location: str, key: str) -> bytes:
    try:
        return Path(location).read_bytes()
    except OSError as e:
        raise TlsConfigError(f"{key}={location!r} cannot be read: {e.strerror}") from None


def _refuse_unreadable(kind: str, location: str, prefix: str) -> None:
    if kind in ("JKS", "BCFKS"):
        raise TlsConfigError(
            f"{prefix}.type={kind} ({prefix}.location={location!r}): zkfast cannot read {kind} "
            f"stores; convert it to PKCS12 (keytool -importkeystore -deststoretype PKCS12) "
            f"or PEM"
        )


def _load_keystore(ctx: ssl.SSLContext, tls: TlsConfig) -> None:
    location = tls.keystore_location
    if not location:
        raise TlsConfigError("ssl.keyStore.location is required for the secure client port")
    kind = store_type(tls.keystore_type, location, "ssl.keyStore.type")
    _refuse_unreadable(kind, location, "ssl.keyStore")
    raw = _read(location, "ssl.keyStore.location")
    if kind == "PEM":
        _load_pem_chain(ctx, raw, location, tls.keystore_password)
    else:
        _load_p12_chain(ctx, raw, location, tls.keystore_password)


def _load_pem_chain(ctx: ssl.SSLContext, raw: bytes, location: str, password: str | None) -> None:
    if b"PRIVATE KEY-----" not in raw or b"-----BEGIN CERTIFICATE-----" not in raw:
        raise TlsConfigError(
            f"ssl.keyStore.location={location!r}: a PEM keystore holds the private key and the "
            f"certificate chain in one file"
        )
    try:
        # OpenSSL wants the certificate before the key when both are in one file; the
        # file's order is free in Apache, so split and pass them separately.
        certs = b"".join(_pem_blocks(raw, b"CERTIFICATE"))
        key = b"".join(
            _pem_blocks(raw, b"PRIVATE KEY") + _pem_blocks(raw, b"ENCRYPTED PRIVATE KEY")
        )
        key += b"".join(_pem_blocks(raw, b"EC PRIVATE KEY") + _pem_blocks(raw, b"RSA PRIVATE KEY"))
        with _private_file(certs) as cert_path, _private_file(key) as key_path:
            ctx.load_cert_chain(cert_path, key_path, password=password or None)
    except (ssl.SSLError, ValueError, TypeError) as e:
        raise TlsConfigError(
            f"ssl.keyStore.location={location!r} (PEM) cannot be loaded; "
            f"check ssl.keyStore.password: {e}"
        ) from None


def _pem_blocks(raw: bytes, label: bytes) -> list[bytes]:
    begin, end = b"-----BEGIN " + label + b"-----", b"-----END " + label + b"-----"
    out: list[bytes] = []
    i = 0
    while True:
        start = raw.find(begin, i)
        if start < 0:
            return out
        stop = raw.find(end, start)
        if stop < 0:
            return out
        out.append(raw[start : stop + len(end)] + b"\n")
        i = stop + len(end)


def _load_p12(
    raw: bytes, location: str, password: str | None, key: str
) -> PKCS12KeyAndCertificates:
    try:
        from cryptography.hazmat.primitives.serialization import pkcs12
    except ImportError:  # pragma: no cover - cryptography is a dependency of TLS support
        raise TlsConfigError(
            f"{key}.location={location!r}: PKCS12 stores need the 'cryptography' package"
        ) from None
    try:
        return pkcs12.load_pkcs12(raw, password.encode() if password else None)
    except (ValueError, TypeError) as e:
        raise TlsConfigError(
            f"{key}.location={location!r} (PKCS12) cannot be opened; check {key}.password: {e}"
        ) from None


def _load_p12_chain(ctx: ssl.SSLContext, raw: bytes, location: str, password: str | None) -> None:
    from cryptography.hazmat.primitives import serialization

    p12 = _load_p12(raw, location, password, "ssl.keyStore")
    if p12.key is None or p12.cert is None:
        raise TlsConfigError(
            f"ssl.keyStore.location={location!r}: the PKCS12 keystore has no private key entry"
        )
    chain = [p12.cert.certificate] + [c.certificate for c in p12.additional_certs]
    pem_chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    key_pem = p12.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with _private_file(pem_chain) as cert_path, _private_file(key_pem) as key_path:
        try:
            ctx.load_cert_chain(cert_path, key_path)
        except ssl.SSLError as e:
            raise TlsConfigError(f"ssl.keyStore.location={location!r}: {e}") from None


def _load_truststore(ctx: ssl.SSLContext, tls: TlsConfig) -> None:
    location = tls.truststore_location
    if not location:
        ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)
        return
    kind = store_type(tls.truststore_type, location, "ssl.trustStore.type")
    _refuse_unreadable(kind, location, "ssl.trustStore")
    raw = _read(location, "ssl.trustStore.location")
    if kind == "PEM":
        pem = b"".join(_pem_blocks(raw, b"CERTIFICATE"))
    else:
        from cryptography.hazmat.primitives import serialization

        p12 = _load_p12(raw, location, tls.truststore_password, "ssl.trustStore")
        certs = ([p12.cert] if p12.cert is not None else []) + list(p12.additional_certs)
        pem = b"".join(c.certificate.public_bytes(serialization.Encoding.PEM) for c in certs)
    if not pem:
        raise TlsConfigError(f"ssl.trustStore.location={location!r} holds no certificate")
    try:
        ctx.load_verify_locations(cadata=pem.decode("ascii"))
    except ssl.SSLError as e:
        raise TlsConfigError(f"ssl.trustStore.location={location!r}: {e}") from None


# ---- x509 ids


def cert_ids_from_ssl_object(ssl_obj: ssl.SSLObject) -> tuple[str, ...]:
    """The x509 ids of the verified client certificate of a finished handshake.

    Returns ``(subject DN in RFC 2253 form,)``, or ``()`` when the client sent no certificate
    (``ssl.clientAuth=want``) or none was asked for (``none``). With ``need`` or ``want`` a
    certificate that OpenSSL did not verify never gets this far: the handshake fails.
    """
    der = ssl_obj.getpeercert(binary_form=True)
    if not der:
        return ()
    return (rfc2253_subject(der),)


# A minimal DER reader: enough to walk Certificate -> tbsCertificate -> subject and the
# attribute values, keeping each value's tag and bytes (the JDK's rendering depends on both).


def _tlv(buf: bytes, i: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at `i`."""
    if i + 2 > len(buf):
        raise ValueError(f"DER: truncated element at offset {i}")
    tag = buf[i]
    n = buf[i + 1]
    j = i + 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 4 or j + k > len(buf):
            raise ValueError(f"DER: bad length at offset {i}")
        n = int.from_bytes(buf[j : j + k], "big")
        j += k
    if j + n > len(buf):
        raise ValueError(f"DER: element at offset {i} overruns its parent")
    return tag, j, j + n


def _children(buf: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(tag, header start, content start, content end) of each element in [start, end)."""
    out = []
    i = start
    while i < end:
        tag, cs, ce = _tlv(buf, i)
        out.append((tag, i, cs, ce))
        i = ce
    return out


def _oid(content: bytes) -> str:
    arcs: list[int] = []
    value = 0
    for b in content:
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])


#: The attribute keywords the JDK writes in RFC 2253 names (``AVAKeyword``, rfc2253 = true).
_RFC2253_KEYWORDS = {
    "2.5.4.3": "CN",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.9": "STREET",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
}

# DER string tags the JDK prints as text in RFC 2253 form. Whatever the tag, the JDK decodes
# the value bytes as UTF-8 there (``AVA.toRFC2253String``), so a BMPString "bmp" prints as
# "\00b\00m\00p"; checked against JDK 17.
_STRING_TAGS = frozenset(
    {
        0x0C,  # UTF8String
        0x13,  # PrintableString
        0x14,  # T61String
        0x16,  # IA5String
        0x1B,  # GeneralString
        0x1E,  # BMPString
    }
)

_ESCAPED = ',=+<>#;"\\'


def _ava_rfc2253(oid: str, tag: int, content: bytes, tlv: bytes) -> str:
    keyword = _RFC2253_KEYWORDS.get(oid, oid)
    if keyword[0].isdigit() or tag not in _STRING_TAGS:
        return f"{keyword}=#{tlv.hex()}"
    text = content.decode("utf-8", "replace")
    chars: list[str] = []
    for c in text:
        if c in _ESCAPED:
            chars.append("\\" + c)
        elif c == "\x00":
            chars.append("\\00")
        else:
            chars.append(c)
    # Leading and trailing spaces (and CRs) are escaped too, one backslash each.
    lead = 0
    while lead < len(chars) and chars[lead] in (" ", "\r"):
        lead += 1
    trail = len(chars) - 1
    while trail >= 0 and chars[trail] in (" ", "\r"):
        trail -= 1
    out = [("\\" + c if i < lead or i > trail else c) for i, c in enumerate(chars)]
    return f"{keyword}={''.join(out)}"


def rfc2253_name(name_der: bytes) -> str:
    """An X.501 Name (DER) as the JDK's ``X500Principal.getName()`` writes it.

    RDNs last-to-first joined by ``,``; multi-valued RDNs joined by ``+`` in DER order; the
    keywords CN, C, L, ST, STREET, O, OU, DC and UID, any other attribute as its dotted OID
    with the value as ``#`` and the hex of its DER encoding (so is a value whose string type
    the JDK does not print, such as UniversalString); ``, = + < > # ; " \\`` are
    backslash-escaped wherever they occur, NUL becomes ``\\00``, and leading and trailing
    spaces are escaped.
    """
    tag, cs, ce = _tlv(name_der, 0)
    if tag != 0x30:
        raise ValueError("DER: a Name is a SEQUENCE")
    rdns: list[str] = []
    for rtag, _h, rcs, rce in _children(name_der, cs, ce):
        if rtag != 0x31:
            raise ValueError("DER: an RDN is a SET")
        avas: list[str] = []
        for atag, _h2, acs, ace in _children(name_der, rcs, rce):
            if atag != 0x30:
                raise ValueError("DER: an AttributeTypeAndValue is a SEQUENCE")
            parts = _children(name_der, acs, ace)
            if len(parts) != 2 or parts[0][0] != 0x06:
                raise ValueError("DER: an AttributeTypeAndValue is (OID, value)")
            oid = _oid(name_der[parts[0][2] : parts[0][3]])
            vtag, vh, vcs, vce = parts[1]
            avas.append(_ava_rfc2253(oid, vtag, name_der[vcs:vce], name_der[vh:vce]))
        rdns.append("+".join(avas))
    return ",".join(reversed(rdns))


def rfc2253_subject(cert_der: bytes) -> str:
    """The subject of a DER certificate, as ``X500Principal.getName()`` (see rfc2253_name).

    Raises:
        ValueError: the bytes are not a certificate.
    """
    _tag, cs, ce = _tlv(cert_der, 0)
    tbs = _children(cert_der, cs, ce)[0]
    fields = _children(cert_der, tbs[2], tbs[3])
    if fields and fields[0][0] == 0xA0:  # [0] EXPLICIT version
        fields = fields[1:]
    # serialNumber, signature, issuer, validity, subject
    if len(fields) < 5:
        raise ValueError("DER: tbsCertificate too short")
    _t, h, _c, e = fields[4]
    return rfc2253_name(cert_der[h:e])
