"""Server configuration: zoo.cfg and -D properties -> one frozen dataclass.

Every limit carries its unit in its name. The defaults are Apache ZooKeeper 3.8's, except where
a comment says why zkfast differs.

How a zoo.cfg becomes a ``ServerConfig`` (mirroring ``QuorumPeerConfig.parseProperties``):

* The file is read as a Java ``Properties`` file (``parse_properties``): ``#``/``!`` comments,
  ``=``, ``:`` or whitespace separators, backslash line continuations and escapes. Keys and
  values are trimmed, the last duplicate wins.
* Apache knows a fixed set of zoo.cfg keys (``dataDir``, ``clientPort``, ``server.N``, ...). Any
  other key becomes the Java system property ``zookeeper.<key>``, which is how
  ``4lw.commands.whitelist``, ``snapCount`` or ``ssl.keyStore.location`` reach the server. zkfast
  folds both into one namespace: a ``-Dname=value`` argument names the same setting with or
  without the ``zookeeper.`` prefix, and overrides the file (Apache's -D only reaches the system
  properties; letting it override any key is a superset that never changes a valid config).
* A key zkfast does not act on is logged (a warning when it may change behaviour, an info line
  for Apache knobs that have no meaning here) and kept in ``ServerConfig.unused``; it never stops
  the server. A bad value is a ``ConfigError`` naming the key.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .quorum import QuorumConfigError, QuorumServer, QuorumVerifier, verifier_from_properties

__all__ = [
    "ConfigError",
    "ServerConfig",
    "TlsConfig",
    "QuorumConfig",
    "load_config",
    "parse_properties",
    "config_from_properties",
    "DEFAULT_DATA_DIR",
]

log = logging.getLogger("zkfast.config")

#: Where a server started without a zoo.cfg keeps its data (relative to the working directory).
DEFAULT_DATA_DIR = "zkfast-data"


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the key and the offending value."""


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """The ``ssl.*`` keys of the secure client port."""

    keystore_location: str | None = None
    keystore_password: str | None = None
    #: "PEM", "PKCS12" or "JKS" (JKS is refused with a clear error: Python cannot read it).
    keystore_type: str | None = None
    truststore_location: str | None = None
    truststore_password: str | None = None
    truststore_type: str | None = None
    #: "need" (Apache's default), "want" or "none".
    client_auth: str = "need"
    protocol: str = "TLSv1.2"
    enabled_protocols: tuple[str, ...] = ()
    ciphersuites: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class QuorumConfig:
    """The quorum part of a zoo.cfg (plus its dynamic config file), frozen at start.

    Present only when the server runs as a quorum peer (``ServerConfig.quorum``); a standalone
    server has None there.
    """

    #: This peer's id (the myid file).
    my_sid: int
    #: The servers, groups, weights and version (``quorum.QuorumVerifier``).
    verifier: QuorumVerifier
    #: "participant" or "observer", as the server list says (it wins over peerType).
    peer_type: str = "participant"
    init_limit_ticks: int = 10
    sync_limit_ticks: int = 5
    connect_to_learner_master_limit_ticks: int = 0
    #: zookeeper.cnxTimeout: election connect timeout.
    cnx_timeout_ms: int = 5000
    #: zookeeper.electionPortBindRetry: attempts to bind the election port (0 = forever).
    election_port_bind_retry: int = 3
    standalone_enabled: bool = True
    reconfig_enabled: bool = False
    quorum_listen_on_all_ips: bool = False
    multi_address_enabled: bool = False
    #: dynamicConfigFile, when the servers came from one.
    dynamic_config_file: str | None = None
    #: zookeeper.fastleader.minNotificationInterval / maxNotificationInterval.
    min_notification_interval_ms: int = 200
    max_notification_interval_ms: int = 60000
    #: FastLeaderElection.finalizeWait (a constant in Apache).
    finalize_wait_ms: int = 200
    #: zookeeper.forceSnapshotSync: the leader syncs every learner with SNAP (a testing aid,
    #: LearnerHandler.syncFollower).
    force_snapshot_sync: bool = False
    #: zookeeper.commitLogCount: committed txns the leader keeps in memory for DIFF syncs
    #: (ZKDatabase.committedLog). Apache raises a value under 500 to 500; tests building a
    #: QuorumConfig directly may go lower.
    commit_log_count: int = 500
    #: zookeeper.snapshotSizeFactor: a DIFF may read txns from the on-disk log up to this
    #: fraction of the latest snapshot's size; negative turns reading the log off.
    snapshot_size_factor: float = 0.33

    @property
    def my_server(self) -> QuorumServer:
        return self.verifier.servers[self.my_sid]

    @property
    def is_observer(self) -> bool:
        return self.peer_type == "observer"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything a standalone server needs, frozen at start."""

    data_dir: str = DEFAULT_DATA_DIR
    data_log_dir: str | None = None  # defaults to data_dir
    #: Apache's ZooKeeperServer.DEFAULT_TICK_TIME (the sample zoo.cfg says 2000; most set it).
    tick_ms: int = 3000
    #: None = no plain listener (Apache: clientPort unset or 0). 0 here binds an ephemeral port
    #: (tests construct ServerConfig directly for that; zoo.cfg's 0 means "unset", as in Apache).
    client_port: int | None = 2181
    #: "" = every interface, IPv4 and IPv6, like Java's ``new InetSocketAddress(port)``.
    client_port_address: str = ""
    secure_client_port: int | None = None
    secure_client_port_address: str = ""
    #: -1 = the runtime's default backlog (see runtime/server.py).
    client_port_listen_backlog: int = -1
    #: Connections per client IP; 0 (or less) = unlimited, as in Apache.
    max_client_cnxns: int = 60
    #: zookeeper.maxCnxns: connections in total; 0 = unlimited.
    max_cnxns: int = 0
    #: -1 means "2 ticks" / "20 ticks", as in Apache.
    session_timeout_ms_min: int = -1
    session_timeout_ms_max: int = -1
    four_letter_whitelist: frozenset[str] = frozenset({"srvr"})
    readonly_mode_enabled: bool = False
    #: jute.maxbuffer: the largest frame and the largest znode data, in bytes.
    jute_maxbuffer_bytes: int = 0xFFFFF
    extended_types_enabled: bool = False
    #: zookeeper.DigestAuthenticationProvider.superDigest: "super:<base64 sha1>".
    super_digest: str | None = None
    skip_acl: bool = False
    #: zookeeper.enforceQuota: hard quotas (zookeeper_limits) fail writes with QUOTAEXCEEDED;
    #: off, exceeding a quota is only logged, as in Apache.
    enforce_quota: bool = False
    #: Server id (myid); 0 for a standalone server, as in Apache.
    server_id: int = 0
    #: Requests a connection may have in flight before it is closed.
    outstanding_requests_max_per_conn: int = 1000
    #: zookeeper.globalOutstandingLimit: in flight across all connections before reads pause.
    outstanding_requests_max: int = 1000
    #: Bytes queued for one client (replies and notifications it is not reading) before the
    #: runtime drops the connection: Apache lets this grow without bound; zkfast bounds it.
    client_send_buffer_bytes_max: int = 64 << 20
    #: How long a closing connection may take to flush what was written before it is reset
    #: (a client that stopped reading would otherwise hold its socket forever).
    client_close_flush_ms: int = 5000
    #: zookeeper.nio.sessionlessCnxnTimeout: a connection that sends no complete request in
    #: this long is closed (NIOServerCnxnFactory's expiry of connections without a session).
    sessionless_cnxn_timeout_ms: int = 10000
    #: zookeeper.tcpKeepAlive: SO_KEEPALIVE on client connections (Apache's default: off).
    tcp_keepalive: bool = False
    tls: TlsConfig = field(default_factory=TlsConfig)
    #: java.security.auth.login.config: JAAS file whose "Server" section lists SASL users.
    jaas_config_path: str | None = None
    #: SASL DIGEST-MD5 users (from the JAAS Server section): user -> password.
    sasl_users: tuple[tuple[str, str], ...] = ()
    #: Auth schemes enabled (authProvider.N plus the built-in ones).
    auth_providers: frozenset[str] = frozenset({"digest", "ip", "world", "x509", "sasl"})
    #: zookeeper.superUser (and any zookeeper.superUser.<suffix>): a SASL authorized id equal
    #: to one of these also gets ("super", "") (ZooKeeperServer.isSaslSuperUser).
    sasl_super_users: tuple[str, ...] = ()
    #: zookeeper.SASLAuthenticationProvider.superPassword: the password of the SASL user
    #: "super", replacing the JAAS one (SaslServerCallbackHandler).
    sasl_super_password: str | None = None
    #: zookeeper.X509AuthenticationProvider.superUser: a client certificate whose id equals
    #: it also gets ("super", <id>) (X509AuthenticationProvider.handleAuthentication).
    x509_super_user: str | None = None
    # ---- storage (issue 3 fills these in; accepted and reported now)
    force_sync: bool = True
    snap_count: int = 100000
    snap_size_limit_kb: int = 4194304
    pre_alloc_size_kb: int = 65536
    snapshot_compression_method: str = ""
    autopurge_snap_retain_count: int = 3
    autopurge_purge_interval_hours: int = 0
    digest_enabled: bool = True
    #: zookeeper.snapshot.trust.empty: replay txn logs even when no snapshot exists.
    snapshot_trust_empty: bool = False
    close_session_txn_enabled: bool = True
    # ---- container and TTL reaper (ContainerManager; Apache reads these without "zookeeper.")
    #: znode.container.checkIntervalMs: how often empty containers and expired TTL nodes are
    #: looked for.
    container_check_interval_ms: int = 60000
    #: znode.container.maxPerMinute: deletions the reaper issues per minute at most.
    container_max_per_minute: int = 10000
    #: znode.container.maxNeverUsedIntervalMs: a container that never had a child is deleted
    #: after this long; 0 = never (Apache's default).
    container_max_never_used_interval_ms: int = 0
    #: The path of the zoo.cfg this came from, if any (for conf and logs).
    config_path: str | None = None
    #: Keys zkfast accepted but does not act on: name -> value (reported by ``conf``).
    unused: tuple[tuple[str, str], ...] = ()
    #: The quorum settings; None for a standalone server.
    quorum: QuorumConfig | None = None

    @property
    def session_timeout_min_ms(self) -> int:
        return self.session_timeout_ms_min if self.session_timeout_ms_min > 0 else 2 * self.tick_ms

    @property
    def session_timeout_max_ms(self) -> int:
        return self.session_timeout_ms_max if self.session_timeout_ms_max > 0 else 20 * self.tick_ms

    @property
    def log_dir(self) -> str:
        return self.data_log_dir or self.data_dir


# --------------------------------------------------------------------------- Java Properties


_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _logical_lines(text: str) -> list[str]:
    """Join backslash-continued natural lines, dropping comments and blank lines.

    As in ``java.util.Properties.load``: a line continues when it ends in an odd number of
    backslashes; the continuation's leading whitespace is dropped; a comment line never continues.
    """
    out: list[str] = []
    pending: str | None = None
    # Java's line terminators only: str.splitlines would also split on \f, \v and \u2028,
    # which Properties treats as ordinary characters (\f as whitespace).
    for raw in re.split(r"\r\n|\r|\n", text):
        line = raw.lstrip(" \t\f")
        if pending is None:
            if not line or line[0] in "#!":
                continue
        trailing = len(line) - len(line.rstrip("\\"))
        continued = trailing % 2 == 1
        if continued:
            line = line[:-1]
        pending = line if pending is None else pending + line
        if not continued:
            out.append(pending)
            pending = None
    if pending is not None:
        out.append(pending)
    return out


def _unescape(s: str) -> str:
    if "\\" not in s:
        return s
    out: list[str] = []
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c != "\\" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        nxt = s[i + 1]
        if nxt == "u" and i + 6 <= n and re.fullmatch(r"[0-9a-fA-F]{4}", s[i + 2 : i + 6]):
            out.append(chr(int(s[i + 2 : i + 6], 16)))
            i += 6
            continue
        out.append(_ESCAPES.get(nxt, nxt))
        i += 2
    return "".join(out)


_JAVA_TRIM = "".join(chr(i) for i in range(33))


def _java_trim(s: str) -> str:
    """String.trim: strips code points up to U+0020 only (not Python's Unicode whitespace)."""
    return s.strip(_JAVA_TRIM)


def parse_properties(text: str) -> dict[str, str]:
    """Parse Java ``Properties`` text into an ordered dict (last duplicate wins).

    Keys and values are trimmed, as ``QuorumPeerConfig.parseProperties`` trims both.
    """
    props: dict[str, str] = {}
    for line in _logical_lines(text):
        i, n = 0, len(line)
        while i < n:
            c = line[i]
            if c == "\\":
                i += 2
                continue
            if c in "=: \t\f":
                break
            i += 1
        key = line[:i]
        j = i
        while j < n and line[j] in " \t\f":
            j += 1
        if j < n and line[j] in "=:":
            j += 1
        value = line[j:]
        props[_java_trim(_unescape(key))] = _java_trim(_unescape(value))
    return props


# --------------------------------------------------------------------------- value parsers

_INT_RE = re.compile(r"[+-]?[0-9]+")
_INT32 = (-(1 << 31), (1 << 31) - 1)
_INT64 = (-(1 << 63), (1 << 63) - 1)


def _int(key: str, value: str, *, lo: int | None = None, hi: int | None = None,
         bits: int = 32) -> int:
    """Integer.parseInt / Long.parseLong semantics (decimal, optional sign), then a range check."""
    rng = _INT32 if bits == 32 else _INT64
    if not _INT_RE.fullmatch(value) or not rng[0] <= int(value) <= rng[1]:
        raise ConfigError(f"{key}: expected a {bits}-bit integer, found {value!r}")
    v = int(value)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        bounds = f"{lo if lo is not None else '-inf'}..{hi if hi is not None else 'inf'}"
        raise ConfigError(f"{key}: {v} is out of range {bounds}")
    return v


def _strict_bool(key: str, value: str) -> bool:
    """QuorumPeerConfig.parseBoolean: only true/false (any case); anything else is an error."""
    if value.lower() == "true":
        return True
    if value.lower() == "false":
        return False
    raise ConfigError(f"{key}: invalid option {value!r}; choose 'true' or 'false'")


def _java_bool(key: str, value: str) -> bool:
    """Boolean.parseBoolean, as Apache reads its system properties: only "true" is true.

    Apache silently takes "yes" as false; zkfast does the same but says so in the log.
    """
    if value.lower() not in ("true", "false"):
        log.warning("%s=%r is not 'true' or 'false'; taken as false, as Apache does", key, value)
    return value.lower() == "true"


def _port(key: str, value: str) -> int | None:
    """A port; 0 means "not set", as in Apache."""
    port = _int(key, value, lo=0, hi=65535)
    return port or None


def _csv(value: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in value.split(",") if p.strip())


# --------------------------------------------------------------------------- key tables

#: Apache's four-letter words as strings (the whitelist speaks strings).
_ALL_WORDS = (
    "ruok", "isro", "srvr", "stat", "cons", "conf", "mntr", "wchs", "wchc",
    "wchp", "dirs", "envi", "dump", "crst", "srst", "gtmk", "stmk", "hash",
)

#: authProvider.N class names -> the scheme zkfast implements natively.
_AUTH_PROVIDER_CLASSES = {
    "org.apache.zookeeper.server.auth.DigestAuthenticationProvider": "digest",
    "org.apache.zookeeper.server.auth.IPAuthenticationProvider": "ip",
    "org.apache.zookeeper.server.auth.SASLAuthenticationProvider": "sasl",
    "org.apache.zookeeper.server.auth.X509AuthenticationProvider": "x509",
}

#: Keys and prefixes Apache knows whose effect does not exist in a standalone zkfast (quorum
#: settings, JVM/metrics/thread-pool knobs): accepted with an info line. Anything else zkfast
#: does not act on is a warning, because it might change behaviour a user relies on.
#: Quiet keys that a quorum peer does use (read by ``_check_mode``).
_QUORUM_KEYS = frozenset({
    "initLimit", "syncLimit", "connectToLearnerMasterLimit", "cnxTimeout", "forceSnapshotSync",
    "commitLogCount", "snapshotSizeFactor",
})
_QUIET_KEYS = frozenset({
    "initLimit", "syncLimit", "connectToLearnerMasterLimit", "quorumListenOnAllIPs", "syncEnabled",
    "reconfigEnabled", "sslQuorum", "portUnification", "sslQuorumReloadCertFiles",
    "observerMasterPort", "quorum.cnxn.threads.size", "oraclePath", "serverCnxnFactory",
    "metricsProvider.className", "jvm.pause.monitor", "jvm.pause.info-threshold.ms",
    "jvm.pause.warn-threshold.ms", "jvm.pause.sleep-time.ms", "multiAddress.enabled",
    "multiAddress.reachabilityCheckEnabled", "multiAddress.reachabilityCheckTimeoutMs",
    "leaderServes", "cnxTimeout", "electionPortBindRetry", "fsync.warningthresholdms",
    "txnLogSizeLimitInKb", "audit.enable", "flushDelay", "maxWriteQueuePollTime", "maxBatchSize",
    "clientCnxnSocket", "log.dir", "log.file", "root.logger", "log4j.configuration",
    "jmx.log4j.disable", "datadir.autocreate", "ssl.hostnameVerification",
    "ssl.handshakeDetectionTimeoutMillis", "version", "standaloneEnabled",
    "forceSnapshotSync", "commitLogCount", "snapshotSizeFactor",
})
_QUIET_PREFIXES = (
    "quorum.auth.", "ssl.quorum.", "metricsProvider.", "nio.", "netty.", "commitProcessor.",
    "learner.", "leader.", "request_throttle", "connection_throttle",
    "group.", "weight.", "com.sun.management.",
)
#: Apache bool keys parsed strictly by parseProperties: a bad value is an error there too.
_STRICT_BOOL_KEYS = frozenset({
    "localSessionsEnabled", "localSessionsUpgradingEnabled", "quorumListenOnAllIPs",
    "syncEnabled", "standaloneEnabled", "reconfigEnabled", "sslQuorum", "portUnification",
    "sslQuorumReloadCertFiles", "quorum.auth.enableSasl", "quorum.auth.serverRequireSasl",
    "quorum.auth.learnerRequireSasl", "multiAddress.enabled",
    "multiAddress.reachabilityCheckEnabled", "jvm.pause.monitor",
})
_INT_KEYS = frozenset({
    "initLimit", "syncLimit", "connectToLearnerMasterLimit", "observerMasterPort",
    "quorum.cnxn.threads.size", "multiAddress.reachabilityCheckTimeoutMs",
})
_LONG_KEYS = frozenset({
    "jvm.pause.info-threshold.ms", "jvm.pause.warn-threshold.ms", "jvm.pause.sleep-time.ms",
})


def _normalize_property(name: str) -> str:
    """A -D name -> the zoo.cfg key form: ``zookeeper.snapCount`` and ``snapCount`` are one key."""
    name = name.strip()
    if name.startswith("zookeeper."):
        return name[len("zookeeper."):]
    return name


def _store_type(key: str, explicit: str | None, location: str | None) -> str | None:
    """KeyStoreFileType.fromPropertyValueOrFileName: the explicit type, else the file extension."""
    if explicit:
        t = explicit.strip().upper()
        if t in ("PKCS12", "P12", "PFX"):
            t = "PKCS12"
    elif location:
        ext = os.path.splitext(location)[1].lower()
        t = {".pem": "PEM", ".crt": "PEM", ".key": "PEM", ".p12": "PKCS12", ".pfx": "PKCS12",
             ".jks": "JKS", ".bcfks": "BCFKS"}.get(ext, "")
        if not t:
            raise ConfigError(
                f"{key}: cannot tell the store type of {location!r} from its extension; "
                f"set {key.rsplit('.', 1)[0]}.type to PEM or PKCS12")
    else:
        return None
    if t in ("JKS", "BCFKS"):
        raise ConfigError(
            f"{key}: {t} stores cannot be read by zkfast (Python's ssl has no Java keystore "
            f"support); convert it to PKCS12 (keytool -importkeystore -deststoretype pkcs12) or PEM")
    if t not in ("PEM", "PKCS12"):
        raise ConfigError(f"{key}: unknown store type {t!r}; zkfast reads PEM and PKCS12")
    return t


@dataclass
class _Builder:
    """Mutable working state of one parse; becomes a frozen ServerConfig at the end."""

    kw: dict[str, object] = field(default_factory=dict)
    tls: dict[str, object] = field(default_factory=dict)
    unused: dict[str, str] = field(default_factory=dict)
    whitelist: tuple[str, ...] | None = None
    auth_providers: set[str] = field(default_factory=lambda: {"digest", "ip", "world"})
    servers: dict[int, str] = field(default_factory=dict)
    standalone_enabled: bool = True
    dynamic_config_file: str | None = None
    sasl_section: str = "Server"
    keystore_password_path: str | None = None
    truststore_password_path: str | None = None


def _apply(b: _Builder, key: str, value: str) -> bool:
    """Apply one key; False when zkfast does not act on it (the caller logs and records it)."""
    kw = b.kw
    simple: dict[str, Callable[[], None]] = {
        "dataDir": lambda: kw.__setitem__("data_dir", value),
        "dataLogDir": lambda: kw.__setitem__("data_log_dir", value or None),
        "clientPort": lambda: kw.__setitem__("client_port", _port(key, value)),
        "clientPortAddress": lambda: kw.__setitem__("client_port_address", value),
        "secureClientPort": lambda: kw.__setitem__("secure_client_port", _port(key, value)),
        "secureClientPortAddress": lambda: kw.__setitem__("secure_client_port_address", value),
        "clientPortListenBacklog": lambda: kw.__setitem__(
            "client_port_listen_backlog", _int(key, value)),
        "tickTime": lambda: kw.__setitem__("tick_ms", _int(key, value)),
        "maxClientCnxns": lambda: kw.__setitem__("max_client_cnxns", _int(key, value)),
        "maxCnxns": lambda: kw.__setitem__("max_cnxns", _int(key, value)),
        "minSessionTimeout": lambda: kw.__setitem__("session_timeout_ms_min", _int(key, value)),
        "maxSessionTimeout": lambda: kw.__setitem__("session_timeout_ms_max", _int(key, value)),
        "autopurge.snapRetainCount": lambda: kw.__setitem__(
            "autopurge_snap_retain_count", _int(key, value)),
        "autopurge.purgeInterval": lambda: kw.__setitem__(
            "autopurge_purge_interval_hours", _int(key, value)),
        "readonlymode.enabled": lambda: kw.__setitem__(
            "readonly_mode_enabled", _java_bool(key, value)),
        "jute.maxbuffer": lambda: kw.__setitem__(
            "jute_maxbuffer_bytes", _int(key, value, lo=1)),
        "extendedTypesEnabled": lambda: kw.__setitem__(
            "extended_types_enabled", _java_bool(key, value)),
        "DigestAuthenticationProvider.superDigest": lambda: kw.__setitem__(
            "super_digest", value or None),
        # ZooKeeperServer: skipACL only when the property is exactly "yes".
        "skipACL": lambda: kw.__setitem__("skip_acl", value == "yes"),
        "snapCount": lambda: kw.__setitem__("snap_count", _int(key, value)),
        "snapSizeLimitInKb": lambda: kw.__setitem__(
            "snap_size_limit_kb", _int(key, value, bits=64)),
        "preAllocSize": lambda: kw.__setitem__("pre_alloc_size_kb", _int(key, value, bits=64)),
        # FileTxnLog: fsync is skipped only when the property is exactly "no".
        "forceSync": lambda: kw.__setitem__("force_sync", value != "no"),
        "snapshot.compression.method": lambda: kw.__setitem__(
            "snapshot_compression_method", _compression(key, value)),
        "digest.enabled": lambda: kw.__setitem__("digest_enabled", _java_bool(key, value)),
        "snapshot.trust.empty": lambda: kw.__setitem__(
            "snapshot_trust_empty", _java_bool(key, value)),
        "closeSessionTxn.enabled": lambda: kw.__setitem__(
            "close_session_txn_enabled", _java_bool(key, value)),
        "globalOutstandingLimit": lambda: kw.__setitem__(
            "outstanding_requests_max", _int(key, value, lo=1)),
        "java.security.auth.login.config": lambda: kw.__setitem__(
            "jaas_config_path", value or None),
        "ssl.keyStore.location": lambda: b.tls.__setitem__("keystore_location", value or None),
        "ssl.keyStore.password": lambda: b.tls.__setitem__("keystore_password", value),
        "ssl.keyStore.passwordPath": lambda: setattr(b, "keystore_password_path", value),
        "ssl.keyStore.type": lambda: b.tls.__setitem__("keystore_type", value or None),
        "ssl.trustStore.location": lambda: b.tls.__setitem__(
            "truststore_location", value or None),
        "ssl.trustStore.password": lambda: b.tls.__setitem__("truststore_password", value),
        "ssl.trustStore.passwordPath": lambda: setattr(b, "truststore_password_path", value),
        "ssl.trustStore.type": lambda: b.tls.__setitem__("truststore_type", value or None),
        "ssl.clientAuth": lambda: b.tls.__setitem__("client_auth", _client_auth(key, value)),
        "ssl.protocol": lambda: b.tls.__setitem__("protocol", value or "TLSv1.2"),
        "ssl.enabledProtocols": lambda: b.tls.__setitem__("enabled_protocols", _csv(value)),
        "ssl.ciphersuites": lambda: b.tls.__setitem__("ciphersuites", _csv(value)),
        "sasl.serverconfig": lambda: setattr(b, "sasl_section", value or "Server"),
        "4lw.commands.whitelist": lambda: setattr(b, "whitelist", _csv(value)),
        "dynamicConfigFile": lambda: setattr(b, "dynamic_config_file", value),
        "tcpKeepAlive": lambda: kw.__setitem__("tcp_keepalive", _java_bool(key, value)),
        "enforceQuota": lambda: kw.__setitem__("enforce_quota", _java_bool(key, value)),
        "SASLAuthenticationProvider.superPassword": lambda: kw.__setitem__(
            "sasl_super_password", value),
        "X509AuthenticationProvider.superUser": lambda: kw.__setitem__(
            "x509_super_user", value),
        "nio.sessionlessCnxnTimeout": lambda: kw.__setitem__(
            "sessionless_cnxn_timeout_ms", _int(key, value, lo=1)),
        "znode.container.checkIntervalMs": lambda: kw.__setitem__(
            "container_check_interval_ms", _int(key, value, lo=1)),
        "znode.container.maxPerMinute": lambda: kw.__setitem__(
            "container_max_per_minute", _int(key, value, lo=1)),
        "znode.container.maxNeverUsedIntervalMs": lambda: kw.__setitem__(
            "container_max_never_used_interval_ms", _int(key, value, lo=0, bits=64)),
    }
    if key in simple:
        simple[key]()
        return True
    if key == "superUser" or key.startswith("superUser."):
        if value:  # isSaslSuperUser never matches an empty id
            users: tuple[str, ...] = kw.get("sasl_super_users", ())  # type: ignore[assignment]
            kw["sasl_super_users"] = users + (value,)
        return True
    if key == "standaloneEnabled":
        b.standalone_enabled = _strict_bool(key, value)
        return True
    if key == "electionAlg":
        if _int(key, value) != 3:
            raise ConfigError(f"{key}: invalid value {value!r}; only 3 is supported")
        return False
    if key == "peerType":
        if value.lower() not in ("participant", "observer"):
            raise ConfigError(f"{key}: unrecognised peer type {value!r}")
        return False
    if key.startswith("server."):
        sid = key[len("server."):]
        b.servers[_int(key, sid, bits=64)] = value
        return False
    if key.startswith("authProvider."):
        scheme = _AUTH_PROVIDER_CLASSES.get(value)
        if scheme is None:
            log.warning("%s=%s: zkfast cannot load Java auth providers; only the built-in "
                        "digest, ip, sasl and x509 schemes exist", key, value)
            return False
        b.auth_providers.add(scheme)
        return True
    if key.startswith("admin."):
        return False
    # Apache-parsed keys: validate their shape even though zkfast ignores them, so a config
    # Apache rejects is not silently accepted here.
    if key in _STRICT_BOOL_KEYS:
        _strict_bool(key, value)
    elif key in _INT_KEYS:
        _int(key, value)
    elif key in _LONG_KEYS:
        _int(key, value, bits=64)
    if key == "localSessionsEnabled" and value.lower() == "true":
        log.warning("localSessionsEnabled=true: zkfast has no local sessions yet; every "
                    "session is global")
    return False


def _compression(key: str, value: str) -> str:
    """SnapStream.getStreamMode: "", "gz" or "snappy"; Apache falls back to none on others."""
    if value in ("", "gz", "snappy"):
        return value
    log.warning("%s=%r is not gz or snappy; snapshots are not compressed", key, value)
    return ""


def _client_auth(key: str, value: str) -> str:
    """ClientAuth.fromPropertyValue: empty -> need; NONE/WANT/NEED in any case."""
    v = value.strip().lower() or "need"
    if v not in ("need", "want", "none"):
        raise ConfigError(f"{key}: invalid value {value!r}; choose need, want or none")
    return v


def _read_password_file(key: str, path: str) -> str:
    """X509Util: a *.passwordPath file holds the password (its content, trailing newline off)."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().rstrip("\r\n")
    except OSError as e:
        raise ConfigError(f"{key}: cannot read password file {path!r}: {e.strerror}") from e


# --------------------------------------------------------------------------- quorum keys


def _dynamic_props(b: _Builder, file_keys: Mapping[str, str],
                   merged: Mapping[str, str]) -> dict[str, str]:
    """The server/group/weight/version keys, from zoo.cfg or from the dynamic config file."""
    if b.dynamic_config_file is None:
        return {k: v for k, v in merged.items()
                if k.startswith(("server.", "group", "weight"))}
    for k in file_keys:
        if k.startswith(("server.", "group", "weight")):
            raise ConfigError(f"{k}: must be in a separate dynamic config file "
                              f"(dynamicConfigFile is set)")
    try:
        with open(b.dynamic_config_file, encoding="utf-8", errors="replace") as f:
            dyn = parse_properties(f.read())
    except OSError as e:
        raise ConfigError(f"dynamicConfigFile: cannot read {b.dynamic_config_file!r}: "
                          f"{e.strerror}") from e
    if "version" in dyn:
        raise ConfigError(f"dynamicConfigFile: {b.dynamic_config_file} must not hold a "
                          f"version line (the version is the file name's suffix)")
    for k in dyn:
        if not k.startswith(("server.", "group", "weight")):
            raise ConfigError(f"{k}: unrecognised parameter in the dynamic config file "
                              f"{b.dynamic_config_file}")
    # QuorumPeerConfig.getVersionFromFilename: the hex after the last '.', if it parses.
    suffix = b.dynamic_config_file.rsplit(".", 1)[-1] if "." in b.dynamic_config_file else ""
    if suffix and re.fullmatch(r"[+-]?[0-9a-fA-F]{1,16}", suffix):
        dyn["version"] = suffix.lstrip("+")
    return dyn


def _read_myid(data_dir: str) -> int | None:
    path = os.path.join(data_dir, "myid")
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            first = f.readline().strip()
    except OSError as e:
        raise ConfigError(f"myid: cannot read {path}: {e.strerror}") from e
    if not re.fullmatch(r"[+-]?[0-9]+", first) or not -(1 << 63) <= int(first) < (1 << 63):
        raise ConfigError(f"myid: the file {path} holds {first!r}, which is not a number")
    return int(first)


def _check_ports(verifier: QuorumVerifier) -> None:
    """Two servers on one host cannot share a port (quorum or election)."""
    seen: dict[tuple[str, int], str] = {}
    for sid in sorted(verifier.servers):
        for host, qport, eport in verifier.servers[sid].addrs:
            for port, what in ((qport, "quorum"), (eport, "election")):
                key = (host.lower(), port)
                if key in seen:
                    raise ConfigError(f"server.{sid}: {what} port {host}:{port} clashes with "
                                      f"{seen[key]}")
                seen[key] = f"the {what} port of server.{sid}"


def _check_mode(b: _Builder, file_keys: Mapping[str, str],
                merged: Mapping[str, str]) -> QuorumConfig | None:
    """Standalone or quorum, decided as QuorumPeerConfig.parseDynamicConfig/isDistributed do.

    Returns the QuorumConfig of a quorum peer, or None for a standalone server.
    """
    props = _dynamic_props(b, file_keys, merged)
    multi = merged.get("multiAddress.enabled", "false").lower() == "true"
    try:
        verifier = verifier_from_properties(
            props, multi_address=multi,
            key_order=None if b.dynamic_config_file is not None else list(file_keys))
    except QuorumConfigError as e:
        raise ConfigError(str(e)) from e
    participants = len(verifier.voting_members)
    observers = len(verifier.observing_members)
    if participants == 0:
        if not b.standalone_enabled and verifier.servers:
            raise ConfigError("standaloneEnabled: false needs at least one participant server.N")
        if observers:
            raise ConfigError("server.N: observers without participants is an invalid "
                              "configuration")
        return None
    if participants == 1 and b.standalone_enabled:
        if observers:
            raise ConfigError("server.N: observers without a quorum is an invalid configuration")
        # Apache logs this too (HBase writes one server line) and then runs standalone.
        log.error("Invalid configuration, only one server specified (ignoring)")
        return None
    if participants <= 2:
        log.warning("No server failure will be tolerated. You need at least 3 servers.")
    elif participants % 2 == 0:
        log.warning("Non-optimal configuration, consider an odd number of servers.")
    return _quorum_config(b, merged, verifier)


def _quorum_config(b: _Builder, merged: Mapping[str, str],
                   verifier: QuorumVerifier) -> QuorumConfig:
    kw = b.kw
    data_dir = kw.get("data_dir")
    if not data_dir:
        raise ConfigError("dataDir is not set (it is required)")
    my_sid = _read_myid(str(data_dir))
    if my_sid is None:
        raise ConfigError(f"myid: the file {os.path.join(str(data_dir), 'myid')} is missing "
                          f"(a quorum peer needs its id there)")
    if my_sid not in verifier.servers:
        raise ConfigError(f"myid: {my_sid} is not in the server list "
                          f"(server.{'/'.join(str(s) for s in sorted(verifier.servers))})")
    _check_ports(verifier)
    limits: dict[str, int] = {}
    for key in ("initLimit", "syncLimit"):
        v = _int(key, merged[key], lo=0) if key in merged else 0
        if v == 0:
            raise ConfigError(f"{key} is not set (it is required in quorum mode)")
        limits[key] = v
    me = verifier.servers[my_sid]
    peer_type = "participant" if me.is_participant else "observer"
    wanted = merged.get("peerType", "participant").lower()
    if wanted != peer_type:
        log.warning("Peer type from servers list (%s) doesn't match peerType (%s). "
                    "Defaulting to servers list.", peer_type, wanted)
    # setupClientPort: the client address on my server line wins over clientPort; both set
    # and different is an error.
    if me.client_addr is not None:
        host, port = me.client_addr
        static = kw.get("client_port")
        static_host = str(kw.get("client_port_address", "") or "")
        if static is not None and (static != port or (
                static_host not in ("", "0.0.0.0", "::") and static_host != host)):
            raise ConfigError(f"clientPort: the client address of server.{my_sid} in the "
                              f"static config ({static_host or '0.0.0.0'}:{static}) differs "
                              f"from the one on its server line ({host}:{port})")
        kw["client_port"] = port
        kw["client_port_address"] = "" if host == "0.0.0.0" else host
    client_port = kw.get("client_port")
    if isinstance(client_port, int):
        for h, qp, ep in me.addrs:
            if client_port in (qp, ep):
                raise ConfigError(f"clientPort: {client_port} clashes with the quorum/election "
                                  f"ports of server.{my_sid} ({h}:{qp}:{ep})")

    def opt(key: str, default: int, lo: int = 0) -> int:
        return _int(key, merged[key], lo=lo) if key in merged else default

    def flag(key: str, default: bool) -> bool:
        return _strict_bool(key, merged[key]) if key in merged else default

    min_ms = opt("fastleader.minNotificationInterval", 200, lo=1)
    force_snap = _java_bool("forceSnapshotSync", merged["forceSnapshotSync"]) \
        if "forceSnapshotSync" in merged else False
    max_ms = opt("fastleader.maxNotificationInterval", 60000, lo=1)
    return QuorumConfig(
        my_sid=my_sid,
        verifier=verifier,
        peer_type=peer_type,
        init_limit_ticks=limits["initLimit"],
        sync_limit_ticks=limits["syncLimit"],
        connect_to_learner_master_limit_ticks=opt("connectToLearnerMasterLimit", 0),
        cnx_timeout_ms=opt("cnxTimeout", 5000, lo=1),
        election_port_bind_retry=opt("electionPortBindRetry", 3),
        standalone_enabled=b.standalone_enabled,
        reconfig_enabled=flag("reconfigEnabled", False),
        quorum_listen_on_all_ips=flag("quorumListenOnAllIPs", False),
        multi_address_enabled=flag("multiAddress.enabled", False),
        dynamic_config_file=b.dynamic_config_file,
        min_notification_interval_ms=min_ms,
        max_notification_interval_ms=max(max_ms, min_ms),
        force_snapshot_sync=force_snap,
        commit_log_count=_commit_log_count(merged.get("commitLogCount")),
        snapshot_size_factor=_snapshot_size_factor(merged.get("snapshotSizeFactor")),
    )


def _commit_log_count(value: str | None) -> int:
    """ZKDatabase's zookeeper.commitLogCount: unparsable -> 500; under 500 -> 500."""
    if value is None:
        return 500
    try:
        n = _int("commitLogCount", value)
    except ConfigError:
        log.error("Error parsing commitLogCount=%r - use default value 500", value)
        return 500
    if n < 500:
        log.warning("The configured commitLogCount %d is less than the recommended 500, going "
                    "to use the recommended one", n)
        return 500
    return n


def _snapshot_size_factor(value: str | None) -> float:
    """ZKDatabase's zookeeper.snapshotSizeFactor: unparsable or above 1 -> 0.33."""
    if value is None:
        return 0.33
    try:
        f = float(value.strip().rstrip("dDfF"))
    except ValueError:
        log.error("Error parsing snapshotSizeFactor=%r, using default value 0.33", value)
        return 0.33
    if f > 1 or f != f:
        log.warning("The configured snapshotSizeFactor %r is invalid, going to use the default "
                    "0.33", value)
        return 0.33
    return f


# --------------------------------------------------------------------------- the entry points


def load_config(path: str | None, overrides: Mapping[str, str] | None = None) -> ServerConfig:
    """Read a zoo.cfg (or the built-in defaults when ``path`` is None) plus -D overrides.

    Without a file, zkfast serves on 127.0.0.1:2181 with its data in ./zkfast-data: a server
    started by hand should not listen on every interface, and Apache has no file-less mode to be
    compatible with.

    Args:
        path: a zoo.cfg in Java Properties syntax, or None.
        overrides: -D properties, names with or without the ``zookeeper.`` prefix.

    Raises:
        ConfigError: the file cannot be read, or a value is bad (the message names the key).
    """
    if path is None:
        props = {"dataDir": DEFAULT_DATA_DIR, "clientPort": "2181",
                 "clientPortAddress": "127.0.0.1"}
    else:
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise ConfigError(f"cannot read the configuration file {path!r}: {e.strerror}") from e
        # Java reads Properties as ISO-8859-1; zkfast prefers UTF-8 (paths with non-ASCII names
        # then mean what the user wrote) and falls back to Latin-1 for anything else.
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        props = parse_properties(text)
        _check_duplicate_servers(text)
    return config_from_properties(props, overrides or {}, config_path=path)


def _check_duplicate_servers(text: str) -> None:
    """A server.N (or group/weight) key written twice is a mistake Java would hide (the last
    one wins); zkfast refuses it."""
    seen: set[str] = set()
    for line in _logical_lines(text):
        for key in parse_properties(line):
            if key.startswith(("server.", "group.", "weight.")):
                if key in seen:
                    raise ConfigError(f"{key}: given twice in the configuration file")
                seen.add(key)


def config_from_properties(props: Mapping[str, str], overrides: Mapping[str, str],
                           *, config_path: str | None = None) -> ServerConfig:
    """Build a ServerConfig from parsed zoo.cfg keys and -D overrides (see the module docstring).

    Raises:
        ConfigError: a value is bad; the message names the key.
    """
    merged: dict[str, str] = {}
    for k, v in props.items():
        merged[_normalize_property(k)] = v
    for k, v in overrides.items():
        merged[_normalize_property(k)] = v.strip()
    b = _Builder()
    is_quorum = any(k.startswith("server.") for k in merged)
    for key, value in merged.items():
        if _apply(b, key, value):
            continue
        b.unused[key] = value
        if key.startswith("server.") or key in ("electionAlg", "peerType", "dynamicConfigFile"):
            continue  # quorum layout: judged as a whole by _check_mode
        if key.startswith("admin."):
            if merged.get("admin.enableServer", "true").lower() != "false":
                log.warning("%s: zkfast has no HTTP admin server yet; the key is ignored "
                            "(use the four-letter words on the client port)", key)
            continue
        if key in _QUIET_KEYS or key.startswith(_QUIET_PREFIXES):
            if key in _QUORUM_KEYS and is_quorum:
                continue  # read by _check_mode for the quorum peer
            log.info("%s=%s: accepted; it has no effect on a %s zkfast server", key, value,
                     "quorum peer of a" if is_quorum else "standalone")
            continue
        if not key.startswith("authProvider."):
            log.warning("unknown configuration key %r (Apache would set the system property "
                        "zookeeper.%s); zkfast ignores it", key, key)
    quorum = _check_mode(b, props, merged)
    return _finish(b, merged, config_path, quorum)


def _finish(b: _Builder, merged: Mapping[str, str], config_path: str | None,
            quorum: QuorumConfig | None = None) -> ServerConfig:
    """Cross-key checks and derived values (QuorumPeerConfig's checks after the key loop)."""
    kw = b.kw
    data_dir = kw.get("data_dir")
    if not data_dir:
        raise ConfigError("dataDir is not set (it is required)")
    if "clientPortAddress" in merged and kw.get("client_port") is None:
        raise ConfigError("clientPortAddress is set but clientPort is not set")
    if "secureClientPortAddress" in merged and kw.get("secure_client_port") is None:
        raise ConfigError("secureClientPortAddress is set but secureClientPort is not set")
    kw.setdefault("client_port", None)
    if kw["client_port"] is None and kw.get("secure_client_port") is None:
        # Apache starts and serves nothing; zkfast refuses a server nobody can reach.
        raise ConfigError("clientPort is not set (nor secureClientPort): the server would "
                          "have no port to serve on")
    tick = int(kw.get("tick_ms", 3000))  # type: ignore[call-overload]
    if tick <= 0:
        raise ConfigError(f"tickTime: must be positive, found {tick}")
    smin = int(kw.get("session_timeout_ms_min", -1))  # type: ignore[call-overload]
    smax = int(kw.get("session_timeout_ms_max", -1))  # type: ignore[call-overload]
    eff_min = 2 * tick if smin == -1 else smin
    eff_max = 20 * tick if smax == -1 else smax
    if eff_min > eff_max:
        raise ConfigError(f"minSessionTimeout ({eff_min} ms) must not be larger than "
                          f"maxSessionTimeout ({eff_max} ms)")
    retain = int(kw.get("autopurge_snap_retain_count", 3))  # type: ignore[call-overload]
    if retain < 3:
        log.warning("Invalid autopurge.snapRetainCount: %d. Defaulting to 3", retain)
        kw["autopurge_snap_retain_count"] = 3
    snap = int(kw.get("snap_count", 100000))  # type: ignore[call-overload]
    if snap < 2:
        log.warning("snapCount should be 2 or more; %d changed to 2", snap)
        kw["snap_count"] = 2

    # Four-letter words (FourLetterCommands.isEnabled): "*" enables all; srvr is always on
    # (zkServer.sh status needs it); isro too in read-only mode.
    words: set[str] = {"srvr"}
    if b.whitelist is not None:
        for w in b.whitelist:
            if w == "*":
                words.update(_ALL_WORDS)
                break
            words.add(w)
    if kw.get("readonly_mode_enabled"):
        words.add("isro")
    kw["four_letter_whitelist"] = frozenset(words)

    # TLS: ClientX509Util reads the ssl.* properties; QuorumPeerConfig.configureSSLAuth
    # registers the x509 provider whenever a secure port is configured.
    if kw.get("secure_client_port") is not None:
        b.auth_providers.add("x509")
        tls = b.tls
        if not tls.get("keystore_location"):
            raise ConfigError("ssl.keyStore.location is not set, but secureClientPort needs a "
                              "server certificate")
        tls["keystore_type"] = _store_type(
            "ssl.keyStore.type" if tls.get("keystore_type") else "ssl.keyStore.location",
            tls.get("keystore_type"), tls.get("keystore_location"))  # type: ignore[arg-type]
        tls["truststore_type"] = _store_type(
            "ssl.trustStore.type" if tls.get("truststore_type") else "ssl.trustStore.location",
            tls.get("truststore_type"), tls.get("truststore_location"))  # type: ignore[arg-type]
        if b.keystore_password_path and not tls.get("keystore_password"):
            tls["keystore_password"] = _read_password_file(
                "ssl.keyStore.passwordPath", b.keystore_password_path)
        if b.truststore_password_path and not tls.get("truststore_password"):
            tls["truststore_password"] = _read_password_file(
                "ssl.trustStore.passwordPath", b.truststore_password_path)
        kw["tls"] = TlsConfig(**tls)  # type: ignore[arg-type]
    elif b.tls:
        log.info("ssl.* keys are set but secureClientPort is not: no TLS listener")
        kw["tls"] = TlsConfig(**b.tls)  # type: ignore[arg-type]
    kw["auth_providers"] = frozenset(b.auth_providers)

    jaas = kw.get("jaas_config_path")
    if jaas:
        kw["sasl_users"] = _load_jaas(str(jaas), b.sasl_section)

    _check_myid(str(data_dir))
    if quorum is not None:
        kw["quorum"] = quorum
        kw["server_id"] = quorum.my_sid
    kw["config_path"] = config_path
    kw["unused"] = tuple(b.unused.items())
    return ServerConfig(**kw)  # type: ignore[arg-type]


def _load_jaas(path: str, section: str) -> tuple[tuple[str, str], ...]:
    """The SASL users of the JAAS file's server section (``user_<name>="<password>"``)."""
    key = "java.security.auth.login.config"
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"{key}: cannot read JAAS file {path!r}: {e.strerror}") from e
    try:
        from .core.sasl import parse_jaas_server_users
    except ImportError as e:  # pragma: no cover - until core/sasl.py lands
        raise ConfigError(f"{key}: this build of zkfast has no SASL support ({e})") from e
    try:
        users = parse_jaas_server_users(text, section)
    except ValueError as e:
        raise ConfigError(f"{key}: {path}: {e}") from e
    if not users:
        log.warning("%s: %s has no user_<name> entries in its Server section; SASL logins "
                    "will fail", key, path)
    return tuple(sorted(users.items()))


def _check_myid(data_dir: str) -> None:
    """QuorumPeerConfig.setupMyId reads dataDir/myid when it exists; a non-number is an error.

    A standalone server does not use the id (its sid is 0, as Apache's standalone server's is).
    """
    path = os.path.join(data_dir, "myid")
    if not os.path.isfile(path):
        return
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            first = f.readline().strip()
    except OSError:
        return
    if not re.fullmatch(r"[+-]?[0-9]+", first):
        raise ConfigError(f"myid: the file {path} holds {first!r}, which is not a number")
