"""SASL DIGEST-MD5 for the client port (opcode 102), and the JAAS ``Server`` section.

Theory of operation
-------------------
A ``DigestMD5Server`` is one connection's server side of RFC 2831, behaving as the JDK's
DIGEST-MD5 ``SaslServer`` does when Apache ZooKeeper creates it (``ZooKeeperSaslServer``,
``ServerCnxnFactory.createSaslServer``: protocol ``zookeeper``, server name ``zk-sasl-md5``,
callbacks from ``SaslServerCallbackHandler``). It is a plain object with three states::

    AWAIT_FIRST --step(b"")--> AWAIT_RESPONSE --step(digest-response)--> COMPLETE
                                    |
                                    +--- bad response --> FAILED (every later step raises)

1. The client's first token is empty (DIGEST-MD5 has no initial response; Apache 3.8.0 on JDK 17
   ignores a non-empty one, and so does zkfast). The server answers with the digest-challenge,
   exactly as Apache 3.8.0 sends it (no qop directive, which means "auth")::

       realm="zk-sasl-md5",nonce="<40 base64 chars>",charset=utf-8,algorithm=md5-sess

   The nonce is 30 bytes of the injected ``random.Random``, base64-encoded (the JDK draws 30
   bytes from SecureRandom; the runtime injects a ``random.SystemRandom`` in production and the
   simulator a seeded one).
2. The client's digest-response is checked as the JDK checks it: realm (absent means ""), which
   must be the offered one; nonce equal to ours; cnonce present; nc, if present, equal to 1;
   qop, if present, ``auth``; charset, if present, ``utf-8``; digest-uri present, of the form
   ``zookeeper/<host>`` with the server name matched case-insensitively; then the response hash
   against the password of the user (an unknown user fails: the callback handler has no
   password for it). The response hex must be lower case, as the JDK compares bytes. The
   reply is ``rspauth=<hex>`` and the exchange is complete. Usernames, realm and passwords
   are hashed as ISO 8859-1 when every character fits, else as UTF-8 (the JDK's rule).

   Apache 3.8.0 shares one callback handler between connections, so an unknown user there
   is checked against the password of the last user that logged in; zkfast does not copy
   that flaw: an unknown user always fails.
3. The authorized id is what ``SaslServerCallbackHandler.handleAuthorizeCallback`` makes of the
   authentication id (the username), not of the authzid the client may send: a plain name stays
   as it is; ``service/host@REALM`` keeps host and realm (Apache's defaults for
   ``zookeeper.kerberos.removeHostFromPrincipal``/``removeRealmFromPrincipal`` are false). The
   core then adds the auth id ``("sasl", authorized_id)``.

Only ``qop=auth`` is offered, as in ZooKeeper: no integrity or confidentiality layer follows.

Super user (documented for the core and for operators)
------------------------------------------------------
``user_super="pw"`` in the JAAS ``Server`` section creates a SASL user whose authorized id is
``super``. Apache's ``SASLAuthenticationProvider.matches(id, expr)`` is true when ``id ==
"super"`` or ``id == expr`` (or ``expr`` equals ``-Dzookeeper.letAnySaslUserDoX``), so
``sasl:super`` passes every ``sasl:*`` ACL entry, and nothing else: a node whose ACL has only
digest, ip, x509 or world entries stays closed to it (checked on Apache 3.8.0). Full
super-user rights (the id ``("super", "")``, before any ACL check) come only from
``-Dzookeeper.superUser=<authorized id>`` (``ZooKeeperServer.isSaslSuperUser``). Separately,
``-Dzookeeper.SASLAuthenticationProvider.superPassword=<pw>`` replaces the password checked
for the user ``super`` (``SaslServerCallbackHandler.handlePasswordCallback``); pass it to
``DigestMD5Server`` as ``super_password``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a core imports no random module: the rng is injected
    import random

__all__ = [
    "DigestMD5Server",
    "SaslError",
    "parse_jaas_server_users",
    "DIGEST_REALM",
    "DIGEST_SERVICE",
]

#: The server name (and so the realm) ZooKeeper hard-codes for DIGEST-MD5 (``SecurityUtils``).
DIGEST_REALM = "zk-sasl-md5"
#: The SASL protocol (service) name.
DIGEST_SERVICE = "zookeeper"
#: The JDK refuses digest-responses longer than this (``DigestMD5Server.evaluateResponse``).
RESPONSE_BYTES_MAX = 4096
#: Random bytes in a nonce, as the JDK draws them (``DigestMD5Base.generateNonce``).
NONCE_RANDOM_BYTES = 30

_AWAIT_FIRST = "await-first"
_AWAIT_RESPONSE = "await-response"
_COMPLETE = "complete"
_FAILED = "failed"

# Directives the JDK knows in a digest-response; any other name is ignored.
_RESPONSE_DIRECTIVES = frozenset(
    {
        "realm",
        "qop",
        "algorithm",
        "nonce",
        "maxbuf",
        "charset",
        "cipher",
        "rspauth",
        "stale",
        "username",
        "cnonce",
        "nc",
        "digest-uri",
        "response",
        "authzid",
    }
)


class SaslError(Exception):
    """A SASL exchange failed: bad token, wrong password, unknown user or misuse.

    The core answers it as Apache does: AuthFailed (-115) in the reply header, then close.
    """


class DigestMD5Server:
    """Server side of one DIGEST-MD5 exchange (RFC 2831), as ZooKeeper's JDK SaslServer.

    Args:
        users: user -> password, from the JAAS ``Server`` section (``user_<name>="<pw>"``).
        rng: source of the nonce.
        service: the SASL protocol name; the digest-uri must start with it.
        host: the server name: offered as the realm and expected in the digest-uri.
        super_password: zookeeper.SASLAuthenticationProvider.superPassword, which replaces
            the password of the user ``super`` when set.
    """

    __slots__ = (
        "_users",
        "_rng",
        "_service",
        "_host",
        "_super_password",
        "_state",
        "_nonce",
        "authorized_id",
    )

    def __init__(
        self,
        users: dict[str, str],
        rng: random.Random,
        service: str = DIGEST_SERVICE,
        host: str = DIGEST_REALM,
        *,
        super_password: str | None = None,
    ) -> None:
        self._users = dict(users)
        self._rng = rng
        self._service = service
        self._host = host
        self._super_password = super_password
        self._state = _AWAIT_FIRST
        self._nonce = b""
        #: The SASL authorized id once ``complete``; None before.
        self.authorized_id: str | None = None

    @property
    def complete(self) -> bool:
        """True once the client's response was verified and rspauth returned."""
        return self._state == _COMPLETE

    def step(self, token: bytes) -> bytes:
        """Consume one client token and return the server's token.

        Raises:
            SaslError: on a malformed or wrong response, an unknown user, or any step after
                completion or failure.
        """
        state = self._state
        if state == _COMPLETE:  # the login stands; only this extra token is refused
            raise SaslError("DIGEST-MD5: authentication already completed")
        self._state = _FAILED  # any exception leaves the exchange failed, as the JDK does
        if state == _AWAIT_FIRST:
            # A non-empty first token is ignored, as Apache 3.8.0 on JDK 17 does.
            challenge = self._challenge()
            self._state = _AWAIT_RESPONSE
            return challenge
        if state == _AWAIT_RESPONSE:
            rspauth = self._verify(token)
            self._state = _COMPLETE
            return rspauth
        raise SaslError("DIGEST-MD5: server at illegal state")

    # ---- step 1: the challenge

    def _challenge(self) -> bytes:
        raw = bytes(self._rng.getrandbits(8) for _ in range(NONCE_RANDOM_BYTES))
        self._nonce = base64.b64encode(raw)
        return b"".join(
            [
                b'realm="',
                _quote(self._host.encode("utf-8")),
                b'",nonce="',
                self._nonce,
                b'",charset=utf-8,algorithm=md5-sess',
            ]
        )

    # ---- step 2: the response

    def _verify(self, token: bytes) -> bytes:
        if len(token) > RESPONSE_BYTES_MAX:
            raise SaslError(
                f"DIGEST-MD5: invalid digest response length {len(token)} "
                f"(at most {RESPONSE_BYTES_MAX})"
            )
        d = parse_directives(token)
        text = _decoder(d)

        realm = text("realm") if "realm" in d else ""
        if realm != self._host:
            raise SaslError(f"DIGEST-MD5: digest response format violation: realm {realm!r}")
        if "username" not in d:
            raise SaslError("DIGEST-MD5: digest response format violation: missing username")
        username = text("username")
        if d.get("nonce") != self._nonce:
            raise SaslError("DIGEST-MD5: digest response format violation: mismatched nonce")
        cnonce = d.get("cnonce")
        if not cnonce:
            raise SaslError("DIGEST-MD5: digest response format violation: missing cnonce")
        if "nc" in d and _parse_nc(text("nc")) != 1:
            raise SaslError(f"DIGEST-MD5: nonce count does not match: {text('nc')!r}")
        qop = text("qop") if "qop" in d else "auth"
        if qop != "auth":
            raise SaslError(f"DIGEST-MD5: client selected an unsupported qop {qop!r}")
        if "charset" in d and text("charset").lower() != "utf-8":
            raise SaslError(f"DIGEST-MD5: incompatible charset value {text('charset')!r}")
        if "digest-uri" not in d:
            raise SaslError("DIGEST-MD5: digest response format violation: missing digest-uri")
        digest_uri = text("digest-uri")
        self._check_digest_uri(digest_uri)
        response = d.get("response")
        if response is None:
            raise SaslError("DIGEST-MD5: digest response format violation: missing response")
        authzid = d.get("authzid") or None

        password = self._password_of(username)
        if password is None:
            raise SaslError(f"DIGEST-MD5: cannot acquire password for {username} in realm {realm}")
        session_key = _session_key(username, realm, password, self._nonce, cnonce, authzid)
        expected = _response_value(
            session_key, self._nonce, cnonce, qop, b"AUTHENTICATE:" + digest_uri.encode("utf-8")
        )
        # Compared as bytes, as the JDK does: an upper-case hex response is refused.
        if not hmac.compare_digest(response, expected):
            raise SaslError("DIGEST-MD5: digest response format violation: mismatched response")

        self.authorized_id = _authorized_id(username)
        rspauth = _response_value(
            session_key, self._nonce, cnonce, qop, b":" + digest_uri.encode("utf-8")
        )
        return b"rspauth=" + rspauth

    def _check_digest_uri(self, digest_uri: str) -> None:
        # The JDK compares the whole "protocol/serverName" ignoring case.
        if digest_uri.lower() != f"{self._service}/{self._host}".lower():
            raise SaslError(
                f"DIGEST-MD5: digest response format violation: nonexistent digest-uri "
                f"{digest_uri!r}, expected {self._service}/{self._host}"
            )

    def _password_of(self, username: str) -> str | None:
        if username not in self._users:
            return None
        if username == "super" and self._super_password is not None:
            return self._super_password
        return self._users[username]


# ---- RFC 2831 hashing (the JDK's DigestMD5Base.generateResponseValue)


def _latin1_or_utf8(value: str) -> bytes:
    """The JDK's ``stringToByte_8859_1`` with UTF-8 negotiated: 8859-1 if it fits, else UTF-8."""
    if all(ord(c) <= 0xFF for c in value):
        return value.encode("latin-1")
    return value.encode("utf-8")


def _session_key(
    username: str, realm: str, password: str, nonce: bytes, cnonce: bytes, authzid: bytes | None
) -> bytes:
    """H(A1) for md5-sess: H(H(user:realm:pw):nonce:cnonce[:authzid])."""
    inner = hashlib.md5(
        _latin1_or_utf8(username) + b":" + _latin1_or_utf8(realm) + b":" + _latin1_or_utf8(password)
    ).digest()
    a1 = inner + b":" + nonce + b":" + cnonce
    if authzid is not None:
        a1 += b":" + authzid
    return hashlib.md5(a1).digest()


def _response_value(session_key: bytes, nonce: bytes, cnonce: bytes, qop: str, a2: bytes) -> bytes:
    """KD(HEX(H(A1)), nonce:nc:cnonce:qop:HEX(H(A2))) as lower-case hex (nc is always 1)."""
    kd = b":".join(
        [
            session_key.hex().encode("ascii"),
            nonce,
            b"00000001",
            cnonce,
            qop.encode("ascii"),
            hashlib.md5(a2).hexdigest().encode("ascii"),
        ]
    )
    return hashlib.md5(kd).hexdigest().encode("ascii")


def _parse_nc(value: str) -> int:
    try:
        return int(value, 16)
    except ValueError:
        raise SaslError(f"DIGEST-MD5: bad nonce count {value!r}") from None


_KERBEROS_NAME = re.compile(r"([^/@]*)(/([^/@]*))?@([^/@]*)")


def _authorized_id(authentication_id: str) -> str:
    """Apache's ``handleAuthorizeCallback`` with default properties and no auth_to_local rules.

    ``KerberosName(name)``: without ``@`` the whole name is the short name; ``a/b@R`` gives
    ``a`` + ``/b`` + ``@R`` (host and realm kept, the defaults); a name with ``@`` that does
    not parse is refused (Apache throws there, and the exchange fails).
    """
    m = _KERBEROS_NAME.fullmatch(authentication_id)
    if m is None:
        if "@" in authentication_id:
            raise SaslError(f"DIGEST-MD5: malformed principal name {authentication_id!r}")
        return authentication_id
    service, host, realm = m.group(1), m.group(3), m.group(4)
    return service + (f"/{host}" if host is not None else "") + f"@{realm}"


# ---- directive lists (RFC 2831 §7.1: #rule, quoted-string with backslash quoting)


def parse_directives(token: bytes) -> dict[str, bytes]:
    """Parse ``name=value,name="quoted"`` into raw byte values.

    Names are case-insensitive (lower-cased here). Unknown directives are ignored (RFC 2831
    §2.1.2, and the JDK); a known one may appear once (the JDK refuses a repeat in a response).

    Raises:
        SaslError: on a malformed list or a repeated directive.
    """
    out: dict[str, bytes] = {}
    i, n = 0, len(token)
    while True:
        while i < n and token[i] in b" \t\r\n,":
            i += 1
        if i >= n:
            return out
        eq = token.find(b"=", i)
        if eq < 0:
            raise SaslError(f"DIGEST-MD5: directive without value at offset {i}")
        name = token[i:eq].strip().lower().decode("ascii", "replace")
        i = eq + 1
        while i < n and token[i] in b" \t":
            i += 1
        if i < n and token[i] == 0x22:  # '"'
            value = bytearray()
            i += 1
            while True:
                if i >= n:
                    raise SaslError(f"DIGEST-MD5: unterminated quoted value of {name!r}")
                c = token[i]
                if c == 0x5C and i + 1 < n:  # backslash quotes the next byte
                    value.append(token[i + 1])
                    i += 2
                    continue
                i += 1
                if c == 0x22:
                    break
                value.append(c)
            while i < n and token[i] in b" \t\r\n":
                i += 1
            if i < n and token[i] != 0x2C:  # ','
                raise SaslError(f"DIGEST-MD5: junk after quoted value of {name!r} at offset {i}")
            raw = bytes(value)
        else:
            end = token.find(b",", i)
            end = n if end < 0 else end
            raw = token[i:end].strip()
            i = end
        if name not in _RESPONSE_DIRECTIVES:
            continue
        if name in out:
            raise SaslError(f"DIGEST-MD5: directive {name!r} appears more than once")
        out[name] = raw


def _decoder(d: dict[str, bytes]) -> Callable[[str], str]:
    def text(name: str) -> str:
        try:
            return d[name].decode("utf-8")
        except UnicodeDecodeError:
            raise SaslError(f"DIGEST-MD5: {name} is not UTF-8") from None

    return text


def _quote(value: bytes) -> bytes:
    """Backslash-quote ``"`` and ``\\`` for a quoted-string (the JDK's writeQuotedStringValue)."""
    return value.replace(b"\\", b"\\\\").replace(b'"', b'\\"')


# ---- JAAS configuration files (the syntax of the JDK's ConfigFile)


class _JaasSyntaxError(ValueError):
    pass


# The JDK's ConfigFile reads JAAS files with a java.io.StreamTokenizer: words are letters,
# digits, ".", "-", "$", "_", "*" and any character from U+00A0 up, but a token starting
# with a digit or "." is a number, which no rule accepts; '"' quotes (single quotes parse but
# are accepted nowhere); "//" and "/* */" are comments, and so is a lone "/" to the end of
# the line; "#" is an error. Each behaviour here was checked against JDK 17.
_WORD_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ$_-*")
_WORD_CHARS = _WORD_START | frozenset("0123456789.")
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def _is_word_char(c: str, first: bool) -> bool:
    return c in (_WORD_START if first else _WORD_CHARS) or ord(c) >= 160


def _jaas_string(text: str, i: int) -> tuple[str, int]:
    """The double-quoted string starting at text[i] == '"' (StreamTokenizer escapes)."""
    buf: list[str] = []
    i += 1
    n = len(text)
    while True:
        if i >= n or text[i] == "\n":
            raise _JaasSyntaxError("unterminated quoted string")
        ch = text[i]
        if ch == '"':
            return "".join(buf), i + 1
        if ch == "\\" and i + 1 < n:
            esc = text[i + 1]
            if esc in "01234567":
                j = i + 1
                while j < n and j < i + 4 and text[j] in "01234567":
                    j += 1
                buf.append(chr(int(text[i + 1 : j], 8) & 0xFF))
                i = j
                continue
            buf.append(_ESCAPES.get(esc, esc))
            i += 2
            continue
        buf.append(ch)
        i += 1


def _jaas_tokens(text: str) -> list[tuple[str, str]]:
    """Tokens as (kind, value), kind in {"word", "str", "sym"}; comments dropped."""
    if "${" in text:
        # The JDK expands ${system.property} in JAAS files; zkfast cannot know the JVM's
        # properties, so it refuses rather than use a different password.
        raise _JaasSyntaxError("${...} property expansion is not supported")
    toks: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if ord(c) <= 32:
            i += 1
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:
                raise _JaasSyntaxError("unterminated /* comment")
            i = j + 2
        elif c == "/":  # "//" and a lone "/" both comment out the rest of the line
            j = text.find("\n", i)
            i = n if j < 0 else j + 1
        elif c == '"':
            value, i = _jaas_string(text, i)
            toks.append(("str", value))
        elif _is_word_char(c, first=True):
            j = i + 1
            while j < n and _is_word_char(text[j], first=False):
                j += 1
            toks.append(("word", text[i:j]))
            i = j
        elif c in "{};=":
            toks.append(("sym", c))
            i += 1
        else:
            raise _JaasSyntaxError(f"unexpected character {c!r} at offset {i}")
    return toks


def _parse_jaas(text: str) -> dict[str, list[tuple[str, str, dict[str, str]]]]:
    """Sections -> [(login module class, flag, options)], in file order."""
    toks = _jaas_tokens(text)
    pos = 0

    def take(kind: str, what: str, value: str | None = None) -> str:
        nonlocal pos
        if pos >= len(toks):
            raise _JaasSyntaxError(f"expected {what}, found end of file")
        k, v = toks[pos]
        if k != kind or (value is not None and v != value):
            raise _JaasSyntaxError(f"expected {what}, found {v!r}")
        pos += 1
        return v

    def peek_sym(sym: str) -> bool:
        return pos < len(toks) and toks[pos] == ("sym", sym)

    sections: dict[str, list[tuple[str, str, dict[str, str]]]] = {}
    while pos < len(toks):
        name = take(toks[pos][0] if toks[pos][0] in ("word", "str") else "word", "section name")
        if name in sections:
            raise _JaasSyntaxError(f"more than one section named {name!r}")
        take("sym", "'{'", "{")
        entries: list[tuple[str, str, dict[str, str]]] = []
        while not peek_sym("}"):
            module = take("word", "login module class name")
            flag = take("word", "control flag")
            if flag.upper() not in ("REQUIRED", "REQUISITE", "SUFFICIENT", "OPTIONAL"):
                raise _JaasSyntaxError(f"invalid control flag {flag!r}")
            options: dict[str, str] = {}
            while not peek_sym(";"):
                key = take("word", "option key")
                take("sym", "'='", "=")
                if pos < len(toks) and toks[pos][0] in ("word", "str"):
                    options[key] = toks[pos][1]
                    pos += 1
                else:
                    raise _JaasSyntaxError(f"expected a value for option {key!r}")
            take("sym", "';'", ";")
            entries.append((module, flag, options))
        take("sym", "'}'", "}")
        take("sym", "';'", ";")
        sections[name] = entries
    return sections


def parse_jaas_server_users(text: str, section: str = "Server") -> dict[str, str]:
    """DIGEST-MD5 users of a JAAS file's ``Server`` section: ``user_<name>="<pw>"`` options.

    Every login module entry of the section contributes, as in Apache's
    ``SaslServerCallbackHandler``; a later entry overrides an earlier one. The syntax is the
    JDK's (see ``_jaas_tokens``): ``//`` and ``/* */`` comments, double-quoted values with
    backslash escapes, unquoted words; ``${property}`` expansion is refused.

    Args:
        text: the whole JAAS configuration file.
        section: the login context name (Apache: -Dzookeeper.sasl.serverconfig, "Server").

    Raises:
        ValueError: the file does not parse, or has no such section (Apache refuses to start).
    """
    try:
        sections = _parse_jaas(text)
    except _JaasSyntaxError as e:
        raise ValueError(f"JAAS configuration: {e}") from None
    if not sections.get(section):  # the JDK treats an empty section as no section
        raise ValueError(f"JAAS configuration has no {section!r} section: server cannot start")
    users: dict[str, str] = {}
    for _module, _flag, options in sections[section]:
        for key, value in options.items():
            if key.startswith("user_"):
                users[key[len("user_") :]] = value
    return users
