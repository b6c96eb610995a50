"""ACL checks and the authentication schemes behind them, as Apache ZooKeeper 3.8.0 decides them.

Theory of operation
-------------------
An ACL is a list of ``(perms, (scheme, id))`` entries, as ``wire/jute.ACL`` decodes them; a
connection's identity is a list of auth ids ``(scheme, id)`` (``ServerCnxn.authInfo``):
``("ip", "10.0.0.7")`` from the socket, ``("digest", "user:base64sha1")`` from an AuthPacket,
``("super", "")`` when that digest equals the configured super digest, and ``sasl``/``x509``
ids when those providers are configured.

``check_acl`` mirrors ``ZooKeeperServer.checkACL``: access is granted when ACLs are skipped
(``zookeeper.skipACL``), when the ACL list is empty, when the connection holds any ``super``
id, or when an entry carrying one of the wanted permission bits is ``world:anyone`` or is
matched by the entry scheme's provider against one of the connection's ids *of that scheme*.

``fixup_acl`` mirrors ``PrepRequestProcessor.fixupACL`` (run on create and setACL): duplicates
are dropped keeping the first, an empty list or a null entry/id/scheme is invalid, ``auth``
expands to every id of the connection whose provider says ``isAuthenticated`` (digest, sasl,
x509: never ip, never super, which has no provider), and any other scheme must be a registered
provider whose ``isValid`` accepts the id. ``None`` means InvalidACL.

Providers (``ProviderRegistry``): ``ip`` and ``digest`` are always registered in 3.8.0;
``sasl`` and ``x509`` only when configured (``authProvider.N``); the ``schemes`` argument says
which are. Their rules:

* digest: ``isValid`` = exactly two parts when split on ``:`` after Java drops trailing empty
  parts; ``matches`` = exact string equality. The id of ``user:pass`` is
  ``user:`` + base64(sha1(``user:pass``)) (``generateDigest``).
* ip: 3.8.0's ``IPAuthenticationProvider`` understands IPv4 only (``a.b.c.d`` or
  ``a.b.c.d/bits``, bits 0..32); an IPv6 ACL is invalid and an IPv6 client matches nothing.
* sasl: exact match, and the id ``super`` matches every sasl entry. ``isValid`` is Kerberos
  principal syntax (``KerberosName``).
* x509: exact DN match, or the configured super user; ``isValid`` approximates
  ``X500Principal`` parsing (RFC 2253 attribute=value RDNs).

getACL (``FinalRequestProcessor``, 3.8.0 redacts, ZOOKEEPER-1392): a caller without ADMIN on
the node sees each digest id with everything from its first ``:`` replaced by ``:x``.
"""

from __future__ import annotations

import hashlib
import re
from base64 import b64encode
from collections.abc import Collection, Sequence

__all__ = [
    "AuthId",
    "AclEntry",
    "DEFAULT_SCHEMES",
    "ALL_SCHEMES",
    "check_acl",
    "fixup_acl",
    "digest_id",
    "digest_auth_ids",
    "digest_is_valid",
    "ip_is_valid",
    "ip_matches",
    "sasl_is_valid",
    "x509_is_valid",
    "redact_acl_for_getacl",
]

AuthId = tuple[str, str]
AclEntry = tuple[int, tuple[str, str]]

#: Providers 3.8.0 registers with no configuration (``ProviderRegistry.initialize``).
DEFAULT_SCHEMES: frozenset[str] = frozenset({"ip", "digest"})
#: Every provider zkfast implements.
ALL_SCHEMES: frozenset[str] = frozenset({"ip", "digest", "sasl", "x509"})

# AuthenticationProvider.isAuthenticated: which ids an "auth" ACL may expand to.
_AUTHENTICATED = frozenset({"digest", "sasl", "x509"})


# ---------------------------------------------------------------------- scheme rules


def _java_parse_int(text: str) -> int | None:
    """``Integer.parseInt``: optional sign, then decimal digits (Unicode digits included)."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if not body or not body.isdecimal():
        return None
    value = int(text)
    if not -0x80000000 <= value <= 0x7FFFFFFF:
        return None
    return value


def _v4_addr(addr: str) -> int | None:
    """``IPAuthenticationProvider.v4addr2Bytes`` as one 32-bit integer, or None."""
    parts = addr.split(".")
    if len(parts) != 4:
        return None
    value = 0
    for part in parts:
        octet = _java_parse_int(part)
        if octet is None or not 0 <= octet <= 255:
            return None
        value = (value << 8) | octet
    return value


def _ip_expr(expr: str) -> tuple[int, int] | None:
    """Parse an ip ACL id ``addr`` or ``addr/bits`` into (address, prefix bits), or None."""
    addr_text, sep, bits_text = expr.partition("/")
    addr = _v4_addr(addr_text)
    if addr is None:
        return None
    bits = 32
    if sep:
        parsed = _java_parse_int(bits_text)
        if parsed is None or not 0 <= parsed <= 32:
            return None
        bits = parsed
    return addr, bits


def ip_is_valid(expr: str) -> bool:
    """``IPAuthenticationProvider.isValid`` (3.8.0: IPv4 only)."""
    return _ip_expr(expr) is not None


def ip_matches(client_id: str, acl_expr: str) -> bool:
    """``IPAuthenticationProvider.matches``: the client address within ``addr/bits``."""
    parsed = _ip_expr(acl_expr)
    if parsed is None:
        return False
    acl_addr, bits = parsed
    remote = _v4_addr(client_id)
    if remote is None:
        return False
    mask = (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF
    return (remote & mask) == (acl_addr & mask)


def digest_is_valid(id_: str) -> bool:
    """``DigestAuthenticationProvider.isValid``: Java ``split(":")`` yields two parts."""
    parts = id_.split(":")
    while parts and parts[-1] == "":
        parts.pop()  # Java's String.split drops trailing empty strings
    return len(parts) == 2


def _exact(client_id: str, acl_expr: str) -> bool:
    return client_id == acl_expr


def _sasl_matches(client_id: str, acl_expr: str) -> bool:
    # SASLAuthenticationProvider.matches: the principal "super" passes every sasl entry.
    return client_id == "super" or client_id == acl_expr


_KERBEROS_NAME = re.compile(r"([^/@]*)(/([^/@]*))?@([^/@]*)")


def sasl_is_valid(id_: str) -> bool:
    """``SASLAuthenticationProvider.isValid``: ``KerberosName`` accepts it."""
    return _KERBEROS_NAME.fullmatch(id_) is not None or "@" not in id_


_X500_KEYWORDS = frozenset(
    {
        "CN", "C", "L", "S", "ST", "O", "OU", "T", "IP", "STREET", "DC", "DNQUALIFIER", "DNQ",
        "SURNAME", "GIVENNAME", "INITIALS", "GENERATION", "EMAIL", "EMAILADDRESS", "UID",
        "SERIALNUMBER",
    }
)
_X500_OID = re.compile(r"(?:OID\.)?[0-9]+(?:\.[0-9]+)+", re.IGNORECASE)


def _split_unescaped(text: str, seps: str) -> list[str] | None:
    """Split on unescaped separators outside quotes; None on a dangling escape or quote."""
    out: list[str] = []
    cur: list[str] = []
    i = 0
    quoted = False
    while i < len(text):
        c = text[i]
        if c == "\\":
            if i + 1 >= len(text):
                return None
            cur.append(text[i : i + 2])
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c in seps and not quoted:
            out.append("".join(cur))
            cur = []
            i += 1
            continue
        cur.append(c)
        i += 1
    if quoted:
        return None
    out.append("".join(cur))
    return out


def x509_is_valid(id_: str) -> bool:
    """Approximates ``new X500Principal(id)``: RDNs of ``type=value`` with a known type.

    Apache's x509 provider is registered only when configured; the approximation accepts the
    DNs ``X509AuthenticationProvider`` itself produces (``getName()`` RFC 2253 form).
    """
    if id_.strip() == "":
        return True
    rdns = _split_unescaped(id_, ",;")
    if rdns is None:
        return False
    for rdn in rdns:
        avas = _split_unescaped(rdn, "+")
        if avas is None:
            return False
        for ava in avas:
            attr, eq, _ = ava.partition("=")
            attr = attr.strip()
            if not eq or not attr:
                return False
            if attr.upper() not in _X500_KEYWORDS and _X500_OID.fullmatch(attr) is None:
                return False
    return True


_MATCHERS = {"ip": ip_matches, "digest": _exact, "sasl": _sasl_matches, "x509": _exact}
_VALIDATORS = {
    "ip": ip_is_valid,
    "digest": digest_is_valid,
    "sasl": sasl_is_valid,
    "x509": x509_is_valid,
}


# ---------------------------------------------------------------------- digest scheme


def digest_id(id_password: str) -> str:
    """``DigestAuthenticationProvider.generateDigest``: ``user:`` + base64(sha1(``user:pass``)).

    The user is the text before the first ``:`` (all of it when there is none).
    """
    user = id_password.split(":", 1)[0]
    sha = hashlib.sha1(id_password.encode("utf-8", "replace")).digest()
    return user + ":" + b64encode(sha).decode("ascii")


def digest_auth_ids(auth: bytes, super_digest: str | None = None) -> list[AuthId]:
    """The ids a ``digest`` AuthPacket grants (``DigestAuthenticationProvider.handleAuthentication``).

    Args:
        auth: the AuthPacket's auth bytes, ``user:password`` (Java decodes them as UTF-8 with
            replacement).
        super_digest: ``zookeeper.DigestAuthenticationProvider.superDigest``
            (``super:<base64 sha1>``); a match adds ``("super", "")`` first.
    """
    digest = digest_id(auth.decode("utf-8", "replace"))
    if super_digest is not None and digest == super_digest:
        return [("super", ""), ("digest", digest)]
    return [("digest", digest)]


# ---------------------------------------------------------------------- checks


def check_acl(
    acl: Sequence[AclEntry] | None,
    perm: int,
    auth_ids: Sequence[AuthId],
    *,
    skip_acl: bool = False,
    schemes: Collection[str] = DEFAULT_SCHEMES,
    x509_super_user: str | None = None,
) -> bool:
    """``ZooKeeperServer.checkACL``: may a connection holding ``auth_ids`` do ``perm``?

    Args:
        acl: the node's ACL list (empty or None grants everything).
        perm: the wanted permission bit(s); an entry qualifies if it shares any of them.
        auth_ids: the connection's ``(scheme, id)`` list.
        skip_acl: ``zookeeper.skipACL``.
        schemes: registered providers; an entry of an unregistered scheme matches nothing.
        x509_super_user: ``zookeeper.X509AuthenticationProvider.superUser``.
    """
    if skip_acl or not acl:
        return True
    for scheme, _ in auth_ids:
        if scheme == "super":
            return True
    for perms, (scheme, id_) in acl:
        if not perms & perm:
            continue
        if scheme == "world":
            if id_ == "anyone":
                return True
            continue
        if scheme not in schemes:
            continue
        match = _MATCHERS.get(scheme)
        if match is None:
            continue
        for auth_scheme, auth_id in auth_ids:
            if auth_scheme == scheme:
                if match(auth_id, id_):
                    return True
                if scheme == "x509" and x509_super_user is not None and auth_id == x509_super_user:
                    return True
    return False


def fixup_acl(
    acl: Sequence[AclEntry | None] | None,
    auth_ids: Sequence[AuthId],
    *,
    schemes: Collection[str] = DEFAULT_SCHEMES,
) -> list[AclEntry] | None:
    """``PrepRequestProcessor.fixupACL``: the ACL to store, or None for InvalidACL.

    A ``world`` entry with a null id is InvalidACL here (Apache hits a NullPointerException).
    """
    if not acl:
        return None
    unique: list[AclEntry | None] = []
    for entry in acl:
        if entry not in unique:
            unique.append(entry)
    fixed: list[AclEntry] = []
    for entry in unique:
        if entry is None:
            return None
        perms, ident = entry
        if ident is None or ident[0] is None:
            return None
        scheme, id_ = ident
        if scheme == "world" and id_ == "anyone":
            fixed.append(entry)
        elif scheme == "auth":
            expanded = False
            for auth_scheme, auth_id in auth_ids:
                if auth_scheme in _AUTHENTICATED and auth_scheme in schemes:
                    expanded = True
                    fixed.append((perms, (auth_scheme, auth_id)))
            if not expanded:
                return None
        else:
            valid = _VALIDATORS.get(scheme)
            if scheme not in schemes or valid is None or id_ is None or not valid(id_):
                return None
            fixed.append(entry)
    return fixed


# Java's "." stops at any line terminator, not only "\n" as Python's does.
_DIGEST_SECRET = re.compile(":[^\n\r\u0085\u2028\u2029]*")


def redact_acl_for_getacl(acl: Sequence[AclEntry], has_admin: bool) -> list[AclEntry]:
    """The ACL a getACL reply shows: digest ids become ``user:x`` unless the caller has ADMIN.

    Mirrors 3.8.0 ``FinalRequestProcessor`` (``id.replaceAll(":.*", ":x")``).
    """
    if has_admin:
        return list(acl)
    out: list[AclEntry] = []
    for perms, (scheme, id_) in acl:
        if scheme == "digest":
            out.append((perms, (scheme, _DIGEST_SECRET.sub(":x", id_))))
        else:
            out.append((perms, (scheme, id_)))
    return out

