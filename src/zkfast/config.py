"""Server configuration: zoo.cfg and -D properties -> one frozen dataclass.

Every limit carries its unit in its name. The defaults are Apache ZooKeeper 3.8's, except where
a comment says why zkfast differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ServerConfig", "TlsConfig"]


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
class ServerConfig:
    """Everything a standalone server needs, frozen at start."""

    data_dir: str = "zkfast-data"
    data_log_dir: str | None = None  # defaults to data_dir
    tick_ms: int = 2000
    client_port: int | None = 2181
    client_port_address: str = "0.0.0.0"
    secure_client_port: int | None = None
    secure_client_port_address: str = "0.0.0.0"
    client_port_listen_backlog: int = -1
    max_client_cnxns: int = 60
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
    #: Server id (myid); 0 for a standalone server, as in Apache.
    server_id: int = 0
    #: Requests a connection may have in flight before it is closed.
    outstanding_requests_max_per_conn: int = 1000
    #: zookeeper.globalOutstandingLimit: in flight across all connections before reads pause.
    outstanding_requests_max: int = 1000
    tls: TlsConfig = field(default_factory=TlsConfig)
    #: java.security.auth.login.config: JAAS file whose "Server" section lists SASL users.
    jaas_config_path: str | None = None
    #: SASL DIGEST-MD5 users (from the JAAS Server section): user -> password.
    sasl_users: tuple[tuple[str, str], ...] = ()
    #: Auth schemes enabled (authProvider.N plus the built-in ones).
    auth_providers: frozenset[str] = frozenset({"digest", "ip", "world", "x509", "sasl"})
    # ---- storage (issue 3 fills these in; accepted and reported now)
    force_sync: bool = True
    snap_count: int = 100000
    snap_size_limit_kb: int = 4194304
    pre_alloc_size_kb: int = 65536
    snapshot_compression_method: str = ""
    autopurge_snap_retain_count: int = 3
    autopurge_purge_interval_hours: int = 0
    digest_enabled: bool = True
    close_session_txn_enabled: bool = True
    #: The path of the zoo.cfg this came from, if any (for conf and logs).
    config_path: str | None = None
    #: Keys zkfast accepted but does not act on: name -> value (reported by ``conf``).
    unused: tuple[tuple[str, str], ...] = ()

    @property
    def session_timeout_min_ms(self) -> int:
        return self.session_timeout_ms_min if self.session_timeout_ms_min > 0 else 2 * self.tick_ms

    @property
    def session_timeout_max_ms(self) -> int:
        return self.session_timeout_ms_max if self.session_timeout_ms_max > 0 else 20 * self.tick_ms

    @property
    def log_dir(self) -> str:
        return self.data_log_dir or self.data_dir
