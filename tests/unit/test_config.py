"""zoo.cfg and -D parsing (config.py), checked against Apache 3.8's QuorumPeerConfig behaviour.

Each key family gets its Apache default, its parsed value, and its errors (which must name the
key); the Java Properties syntax is checked on the cases java.util.Properties.load defines.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from zkfast.config import (
    DEFAULT_DATA_DIR,
    ConfigError,
    ServerConfig,
    config_from_properties,
    load_config,
    parse_properties,
)

ALL_WORDS = {"ruok", "isro", "srvr", "stat", "cons", "conf", "mntr", "wchs", "wchc",
             "wchp", "dirs", "envi", "dump", "crst", "srst", "gtmk", "stmk", "hash"}


def cfg(tmp_path: Path, text: str, **overrides: str) -> ServerConfig:
    path = tmp_path / "zoo.cfg"
    path.write_text(text, "utf-8")
    return load_config(str(path), overrides)


def base(tmp_path: Path) -> str:
    return f"dataDir={tmp_path / 'data'}\nclientPort=2181\n"


# --------------------------------------------------------------------------- Java Properties


def test_properties_comments_separators_and_trimming():
    text = (
        "# a comment\n"
        "! another comment\n"
        "   \n"
        "a=1\n"
        "b:2\n"
        "c 3\n"
        "  d   =   4   \n"
        "e\t:\t5\n"
        "f=\n"
        "g\n"
        "h==x\n"
    )
    assert parse_properties(text) == {
        "a": "1", "b": "2", "c": "3", "d": "4", "e": "5", "f": "", "g": "", "h": "=x"}


def test_properties_continuations_and_escapes():
    text = (
        "list=a,\\\n"
        "     b,\\\n"
        "     c\n"
        "odd=ends in a backslash \\\\\n"
        "key\\ with\\ spaces=v\n"
        "colon\\:key=w\n"
        "uni=\\u0041\\u00e9\n"
        "tab=x\\ty\n"
        "# comment \\\n"
        "after=comment lines never continue\n"
    )
    props = parse_properties(text)
    assert props["list"] == "a,b,c"
    assert props["odd"] == "ends in a backslash \\"
    assert props["key with spaces"] == "v"
    assert props["colon:key"] == "w"
    assert props["uni"] == "A\u00e9"
    assert props["tab"] == "x\ty"
    assert props["after"] == "comment lines never continue"


def test_properties_crlf_and_last_duplicate_wins():
    assert parse_properties("a=1\r\nb=2\r\na=3\r\n") == {"a": "3", "b": "2"}


def test_apache_sample_zoo_cfg_loads_unchanged(tmp_path):
    sample = Path("/etc/zookeeper/conf_example/zoo.cfg")
    text = sample.read_text() if sample.exists() else (
        "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir=/tmp/zookeeper\nclientPort=2181\n")
    c = cfg(tmp_path, text)
    assert (c.tick_ms, c.client_port, c.data_dir) == (2000, 2181, "/tmp/zookeeper")
    assert dict(c.unused)["initLimit"] == "10"


# --------------------------------------------------------------------------- defaults


def test_defaults_are_apaches(tmp_path):
    c = cfg(tmp_path, base(tmp_path))
    assert c.tick_ms == 3000  # ZooKeeperServer.DEFAULT_TICK_TIME
    assert c.session_timeout_min_ms == 6000 and c.session_timeout_max_ms == 60000
    assert c.max_client_cnxns == 60
    assert c.client_port_listen_backlog == -1
    assert c.four_letter_whitelist == frozenset({"srvr"})
    assert c.jute_maxbuffer_bytes == 0xFFFFF
    assert c.client_port_address == ""  # every interface, like InetSocketAddress(port)
    assert c.secure_client_port is None
    assert c.log_dir == c.data_dir
    assert c.auth_providers == frozenset({"digest", "ip", "world"})
    assert (c.extended_types_enabled, c.skip_acl, c.readonly_mode_enabled) == (False,) * 3
    assert (c.force_sync, c.digest_enabled, c.close_session_txn_enabled) == (True,) * 3
    assert (c.snap_count, c.pre_alloc_size_kb, c.snapshot_compression_method) == (
        100000, 65536, "")
    assert c.outstanding_requests_max == 1000
    assert c.config_path == str(tmp_path / "zoo.cfg")


def test_no_file_serves_loopback_2181_with_local_data():
    c = load_config(None, {})
    assert (c.client_port_address, c.client_port) == ("127.0.0.1", 2181)
    assert c.data_dir == DEFAULT_DATA_DIR == "zkfast-data"
    assert c.config_path is None and c.unused == ()


def test_no_file_takes_overrides():
    c = load_config(None, {"clientPort": "12345", "zookeeper.4lw.commands.whitelist": "ruok"})
    assert c.client_port == 12345 and "ruok" in c.four_letter_whitelist


# --------------------------------------------------------------------------- key families


def test_ports_addresses_and_timeouts(tmp_path):
    c = cfg(tmp_path, base(tmp_path) + (
        "clientPortAddress=127.0.0.2\ntickTime=500\nminSessionTimeout=1500\n"
        "maxSessionTimeout=90000\nmaxClientCnxns=0\nclientPortListenBacklog=77\n"
        f"dataLogDir={tmp_path / 'logs'}\n"))
    assert c.client_port_address == "127.0.0.2"
    assert (c.tick_ms, c.session_timeout_min_ms, c.session_timeout_max_ms) == (500, 1500, 90000)
    assert c.max_client_cnxns == 0 and c.client_port_listen_backlog == 77
    assert c.log_dir == str(tmp_path / "logs")


def test_session_timeouts_default_from_tick(tmp_path):
    c = cfg(tmp_path, base(tmp_path) + "tickTime=100\n")
    assert (c.session_timeout_min_ms, c.session_timeout_max_ms) == (200, 2000)


def test_four_letter_whitelist(tmp_path):
    c = cfg(tmp_path, base(tmp_path) + "4lw.commands.whitelist=ruok, stat ,,mntr\n")
    assert c.four_letter_whitelist == {"ruok", "stat", "mntr", "srvr"}  # srvr always on
    c = cfg(tmp_path, base(tmp_path) + "4lw.commands.whitelist=*\n")
    assert c.four_letter_whitelist == ALL_WORDS
    c = cfg(tmp_path, base(tmp_path) + "4lw.commands.whitelist=\n")
    assert c.four_letter_whitelist == {"srvr"}


def test_readonly_mode_adds_isro(tmp_path):
    c = cfg(tmp_path, base(tmp_path), **{"readonlymode.enabled": "true"})
    assert c.readonly_mode_enabled and c.four_letter_whitelist == {"srvr", "isro"}
    c = cfg(tmp_path, base(tmp_path) + "readonlymode.enabled=true\n")
    assert "isro" in c.four_letter_whitelist


def test_system_property_keys_in_zoo_cfg(tmp_path):
    c = cfg(tmp_path, base(tmp_path) + (
        "jute.maxbuffer=4194304\nextendedTypesEnabled=true\n"
        "DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=\n"
        "skipACL=yes\nsnapCount=5000\nsnapSizeLimitInKb=1024\npreAllocSize=1024\n"
        "forceSync=no\nsnapshot.compression.method=gz\ndigest.enabled=false\n"
        "closeSessionTxn.enabled=false\nglobalOutstandingLimit=50\n"
        "autopurge.snapRetainCount=5\nautopurge.purgeInterval=2\nmaxCnxns=99\n"
        "znode.container.checkIntervalMs=200\nznode.container.maxPerMinute=7\n"
        "tcpKeepAlive=true\nnio.sessionlessCnxnTimeout=3000\nenforceQuota=true\n"))
    assert c.tcp_keepalive and c.sessionless_cnxn_timeout_ms == 3000 and c.enforce_quota
    assert c.jute_maxbuffer_bytes == 4194304
    assert c.extended_types_enabled
    assert c.super_digest == "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
    assert c.skip_acl
    assert (c.snap_count, c.snap_size_limit_kb, c.pre_alloc_size_kb) == (5000, 1024, 1024)
    assert not c.force_sync and c.snapshot_compression_method == "gz"
    assert not c.digest_enabled and not c.close_session_txn_enabled
    assert c.outstanding_requests_max == 50
    assert (c.autopurge_snap_retain_count, c.autopurge_purge_interval_hours) == (5, 2)
    assert c.max_cnxns == 99
    assert (c.container_check_interval_ms, c.container_max_per_minute) == (200, 7)
    assert c.unused == ()


def test_apache_odd_boolean_spellings(tmp_path, caplog):
    # skipACL needs exactly "yes", forceSync is off only for exactly "no"; Boolean.parseBoolean
    # takes anything but "true" as false (zkfast logs it)
    c = cfg(tmp_path, base(tmp_path) + "skipACL=true\nforceSync=false\nextendedTypesEnabled=yes\n")
    assert not c.skip_acl and c.force_sync and not c.extended_types_enabled
    assert "extendedTypesEnabled='yes' is not 'true' or 'false'" in caplog.text


def test_snap_retain_count_below_three_is_raised(tmp_path, caplog):
    c = cfg(tmp_path, base(tmp_path) + "autopurge.snapRetainCount=1\n")
    assert c.autopurge_snap_retain_count == 3
    assert "Invalid autopurge.snapRetainCount: 1" in caplog.text


def test_auth_providers(tmp_path, caplog):
    c = cfg(tmp_path, base(tmp_path) + (
        "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n"
        "authProvider.sasl2=org.apache.zookeeper.server.auth.IPAuthenticationProvider\n"
        "authProvider.2=com.example.MyProvider\n"))
    assert c.auth_providers == {"digest", "ip", "world", "sasl"}
    assert "com.example.MyProvider" in caplog.text
    assert dict(c.unused) == {"authProvider.2": "com.example.MyProvider"}


def test_serverCnxnFactory_and_quorum_tuning_are_accepted_quietly(tmp_path, caplog):
    caplog.set_level(logging.INFO, "zkfast.config")
    c = cfg(tmp_path, base(tmp_path) + (
        "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n"
        "initLimit=10\nsyncLimit=5\nelectionAlg=3\nmetricsProvider.httpPort=7000\n"))
    assert {"serverCnxnFactory", "initLimit", "syncLimit", "metricsProvider.httpPort"} <= set(
        dict(c.unused))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_admin_server_keys_warn(tmp_path, caplog):
    cfg(tmp_path, base(tmp_path) + "admin.serverPort=8081\n")
    assert "admin.serverPort: zkfast has no HTTP admin server yet" in caplog.text
    caplog.clear()
    cfg(tmp_path, base(tmp_path) + "admin.enableServer=false\nadmin.serverPort=8081\n")
    assert "admin server" not in caplog.text


def test_unknown_key_is_a_warning_naming_it(tmp_path, caplog):
    c = cfg(tmp_path, base(tmp_path) + "fooBarTypo=1\n")
    assert "unknown configuration key 'fooBarTypo'" in caplog.text
    assert dict(c.unused) == {"fooBarTypo": "1"}
    caplog.clear()
    load_config(None, {"zookeeper.someUnknownProperty": "x"})
    assert "'someUnknownProperty'" in caplog.text


# --------------------------------------------------------------------------- -D overrides


def test_overrides_with_and_without_prefix(tmp_path):
    c = cfg(tmp_path, base(tmp_path) + "extendedTypesEnabled=false\n", **{
        "zookeeper.extendedTypesEnabled": "true",
        "jute.maxbuffer": "2000000",
        "zookeeper.DigestAuthenticationProvider.superDigest": "super:abc",
        "zookeeper.skipACL": "yes",
    })
    assert c.extended_types_enabled  # -D wins over the file
    assert c.jute_maxbuffer_bytes == 2000000
    assert c.super_digest == "super:abc" and c.skip_acl


def test_override_any_zoo_cfg_key(tmp_path):
    c = cfg(tmp_path, base(tmp_path), clientPort="3000", tickTime="1000")
    assert c.client_port == 3000 and c.tick_ms == 1000


def test_jaas_login_config(tmp_path):
    pytest.importorskip("zkfast.core.sasl")
    jaas = tmp_path / "jaas.conf"
    jaas.write_text('Server {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n'
                    '  user_super="adminsecret"\n  user_bob="bobsecret";\n};\n')
    c = cfg(tmp_path, base(tmp_path), **{"java.security.auth.login.config": str(jaas)})
    assert c.jaas_config_path == str(jaas)
    assert dict(c.sasl_users) == {"super": "adminsecret", "bob": "bobsecret"}
    with pytest.raises(ConfigError, match="java.security.auth.login.config"):
        cfg(tmp_path, base(tmp_path),
            **{"java.security.auth.login.config": str(tmp_path / "missing.conf")})
    other = tmp_path / "other.conf"
    other.write_text('Client {\n  x required user_a="b";\n};\n')
    with pytest.raises(ConfigError, match="java.security.auth.login.config"):
        cfg(tmp_path, base(tmp_path), **{"java.security.auth.login.config": str(other)})


# --------------------------------------------------------------------------- TLS


def test_secure_port_and_ssl_keys(tmp_path):
    pw = tmp_path / "pw.txt"
    pw.write_text("s3cret\n")
    c = cfg(tmp_path, base(tmp_path) + (
        "secureClientPort=2281\nsecureClientPortAddress=127.0.0.1\n"
        "ssl.keyStore.location=/etc/zk/server.pem\n"
        f"ssl.keyStore.passwordPath={pw}\n"
        "ssl.trustStore.location=/etc/zk/ca.p12\nssl.trustStore.password=tpw\n"
        "ssl.clientAuth=WANT\nssl.protocol=TLSv1.3\n"
        "ssl.enabledProtocols=TLSv1.2, TLSv1.3\n"
        "ssl.ciphersuites=TLS_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\n"))
    t = c.tls
    assert (c.secure_client_port, c.secure_client_port_address) == (2281, "127.0.0.1")
    assert (t.keystore_location, t.keystore_type, t.keystore_password) == (
        "/etc/zk/server.pem", "PEM", "s3cret")
    assert (t.truststore_location, t.truststore_type, t.truststore_password) == (
        "/etc/zk/ca.p12", "PKCS12", "tpw")
    assert (t.client_auth, t.protocol) == ("want", "TLSv1.3")
    assert t.enabled_protocols == ("TLSv1.2", "TLSv1.3")
    assert t.ciphersuites == ("TLS_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")
    assert "x509" in c.auth_providers  # QuorumPeerConfig.configureSSLAuth


def test_secure_only_server(tmp_path):
    c = cfg(tmp_path, f"dataDir={tmp_path}\nsecureClientPort=2281\n"
                      "ssl.keyStore.location=k.pem\n")
    assert c.client_port is None and c.secure_client_port == 2281
    assert c.tls.client_auth == "need"


@pytest.mark.parametrize("extra, key", [
    ("ssl.keyStore.location=/x/server.jks\n", "ssl.keyStore.location"),
    ("ssl.keyStore.location=/x/server.bin\nssl.keyStore.type=JKS\n", "ssl.keyStore.type"),
    ("ssl.keyStore.location=/x/server.bin\n", "ssl.keyStore.location"),
    ("", "ssl.keyStore.location"),
    ("ssl.keyStore.location=/x/s.pem\nssl.clientAuth=maybe\n", "ssl.clientAuth"),
    ("ssl.keyStore.location=/x/s.pem\nssl.keyStore.passwordPath=/nonexistent/pw\n",
     "ssl.keyStore.passwordPath"),
])
def test_tls_errors_name_the_key(tmp_path, extra, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        cfg(tmp_path, base(tmp_path) + "secureClientPort=2281\n" + extra)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("text, key", [
    ("clientPort=abc\n", "clientPort"),
    ("clientPort=70000\n", "clientPort"),
    ("clientPort=2181\ntickTime=2s\n", "tickTime"),
    ("clientPort=2181\ntickTime=0\n", "tickTime"),
    ("clientPort=2181\nmaxClientCnxns=1_0\n", "maxClientCnxns"),
    ("clientPort=2181\nminSessionTimeout=50000\nmaxSessionTimeout=40000\n", "minSessionTimeout"),
    ("clientPort=2181\ntickTime=5000\nminSessionTimeout=200000\n", "maxSessionTimeout"),
    ("clientPortAddress=127.0.0.1\nsecureClientPort=2281\nssl.keyStore.location=a.pem\n",
     "clientPortAddress is set but clientPort is not set"),
    ("clientPort=2181\nsecureClientPortAddress=127.0.0.1\n", "secureClientPortAddress"),
    ("clientPort=2181\njute.maxbuffer=-5\n", "jute.maxbuffer"),
    ("clientPort=2181\nglobalOutstandingLimit=lots\n", "globalOutstandingLimit"),
    ("clientPort=2181\nsnapCount=1e5\n", "snapCount"),
    ("clientPort=2181\nelectionAlg=1\n", "electionAlg"),
    ("clientPort=2181\nstandaloneEnabled=yes\n", "standaloneEnabled"),
    ("clientPort=2181\nlocalSessionsEnabled=maybe\n", "localSessionsEnabled"),
    ("clientPort=2181\ninitLimit=ten\n", "initLimit"),
    ("clientPort=2181\npeerType=watcher\n", "peerType"),
    ("", "clientPort is not set"),
])
def test_bad_values_raise_naming_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError, match=key):
        cfg(tmp_path, f"dataDir={tmp_path}\n" + text)


def test_missing_data_dir(tmp_path):
    with pytest.raises(ConfigError, match="dataDir is not set"):
        cfg(tmp_path, "clientPort=2181\n")


def test_unreadable_file():
    with pytest.raises(ConfigError, match="/nonexistent/zoo.cfg"):
        load_config("/nonexistent/zoo.cfg", {})


def test_bad_myid_is_an_error(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "myid").write_text("one\n")
    with pytest.raises(ConfigError, match="myid"):
        cfg(tmp_path, base(tmp_path))
    (tmp_path / "data" / "myid").write_text("1\n")
    assert cfg(tmp_path, base(tmp_path)).server_id == 0  # standalone sid stays 0


# --------------------------------------------------------------------------- quorum layout


def test_one_server_line_stays_standalone(tmp_path, caplog):
    c = cfg(tmp_path, base(tmp_path) + "server.1=localhost:2888:3888\n")
    assert c.client_port == 2181
    assert "only one server specified (ignoring)" in caplog.text


def test_quorum_needs_myid_and_builds_a_quorum_config(tmp_path):
    text = base(tmp_path) + ("initLimit=5\nsyncLimit=2\nserver.1=a:2888:3888\n"
                             "server.2=b:2888:3888\nserver.3=c:2888:3888\n")
    with pytest.raises(ConfigError, match="myid"):
        cfg(tmp_path, text)
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "myid").write_text("2\n")
    c = cfg(tmp_path, text)
    assert c.quorum is not None and c.quorum.my_sid == 2 and c.server_id == 2


def test_single_server_without_standalone_is_a_quorum(tmp_path):
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "myid").write_text("1\n")
    c = cfg(tmp_path, base(tmp_path) + "standaloneEnabled=false\ninitLimit=5\nsyncLimit=2\n"
                                       "server.1=a:2888:3888\n")
    assert c.quorum is not None and c.quorum.verifier.voting_members == {1}


def test_observers_without_a_quorum(tmp_path):
    with pytest.raises(ConfigError, match="observers"):
        cfg(tmp_path, base(tmp_path) + "server.1=a:2888:3888\nserver.2=b:2888:3888:observer\n")


def test_dynamic_config_file(tmp_path):
    dyn = tmp_path / "zoo.cfg.dynamic.100000000"
    dyn.write_text("server.1=a:2888:3888:participant;2181\n")
    c = cfg(tmp_path, base(tmp_path) + f"dynamicConfigFile={dyn}\n")
    assert c.client_port == 2181
    dyn.write_text("server.1=a:2888:3888\nserver.2=b:2888:3888\nserver.3=c:2888:3888\n")
    with pytest.raises(ConfigError, match="myid"):
        cfg(tmp_path, base(tmp_path) + f"dynamicConfigFile={dyn}\n")
    with pytest.raises(ConfigError, match="server.1: must be in a separate dynamic config"):
        cfg(tmp_path, base(tmp_path) + f"dynamicConfigFile={dyn}\nserver.1=a:2888:3888\n")
    with pytest.raises(ConfigError, match="dynamicConfigFile"):
        cfg(tmp_path, base(tmp_path) + f"dynamicConfigFile={tmp_path / 'nope'}\n")


def test_positional_form_properties():
    c = config_from_properties({"clientPort": "2182", "dataDir": "/tmp/d", "tickTime": "100"},
                               {})
    assert (c.client_port, c.data_dir, c.tick_ms, c.client_port_address) == (
        2182, "/tmp/d", 100, "")


def test_properties_use_java_line_ends_and_trim():
    props = parse_properties("a=1\fb\nc= x\u2028y\u00a0\r\nd=\\\r  e")
    assert props == {"a": "1\fb", "c": "x\u2028y\u00a0", "d": "e"}


def test_super_user_properties(tmp_path: Path) -> None:
    """zookeeper.superUser[.*], the SASL super password and the X509 super user."""
    c = cfg(tmp_path, f"dataDir={tmp_path}\nclientPort=2181\nsuperUser.2=carol\n",
            **{"zookeeper.superUser": "bob",
               "zookeeper.SASLAuthenticationProvider.superPassword": "pw",
               "zookeeper.X509AuthenticationProvider.superUser": "CN=root"})
    assert sorted(c.sasl_super_users) == ["bob", "carol"]
    assert c.sasl_super_password == "pw" and c.x509_super_user == "CN=root"
    plain = cfg(tmp_path, f"dataDir={tmp_path}\nclientPort=2181\n")
    assert plain.sasl_super_users == () and plain.x509_super_user is None
