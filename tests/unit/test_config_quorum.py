"""zoo.cfg quorum keys -> ServerConfig.quorum (QuorumPeerConfig's rules, errors naming keys)."""

from __future__ import annotations

from pathlib import Path

import pytest

from zkfast.config import ConfigError, ServerConfig, load_config

SERVERS = ("server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889\n"
           "server.3=127.0.0.1:2890:3890\n")


def cfg(tmp_path: Path, text: str, myid: str | None = "1", **overrides: str) -> ServerConfig:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    if myid is not None:
        (data / "myid").write_text(myid + "\n")
    path = tmp_path / "zoo.cfg"
    path.write_text(f"dataDir={data}\nclientPort=2181\ninitLimit=10\nsyncLimit=5\n" + text)
    return load_config(str(path), overrides)


def test_three_servers(tmp_path: Path) -> None:
    c = cfg(tmp_path, SERVERS + "tickTime=500\ncnxTimeout=700\nelectionPortBindRetry=9\n")
    q = c.quorum
    assert q is not None
    assert (q.my_sid, q.init_limit_ticks, q.sync_limit_ticks, q.cnx_timeout_ms,
            q.election_port_bind_retry, q.peer_type) == (1, 10, 5, 700, 9, "participant")
    assert q.verifier.voting_members == {1, 2, 3}
    assert c.server_id == 1 and c.tick_ms == 500
    assert q.my_server.election_port == 3888
    assert q.verifier.to_config_text() == (
        "server.1=127.0.0.1:2888:3888:participant\nserver.2=127.0.0.1:2889:3889:participant\n"
        "server.3=127.0.0.1:2890:3890:participant\nversion=0")


def test_fastleader_intervals_and_overrides(tmp_path: Path) -> None:
    c = cfg(tmp_path, SERVERS, **{"zookeeper.fastleader.minNotificationInterval": "50",
                                  "fastleader.maxNotificationInterval": "400"})
    assert c.quorum is not None
    assert (c.quorum.min_notification_interval_ms, c.quorum.max_notification_interval_ms) == (
        50, 400)


def test_standalone_stays_standalone(tmp_path: Path) -> None:
    c = cfg(tmp_path, "server.1=127.0.0.1:2888:3888\n")
    assert c.quorum is None and c.server_id == 0


def test_observer_from_the_server_list(tmp_path: Path) -> None:
    c = cfg(tmp_path, SERVERS + "server.4=127.0.0.1:2891:3891:observer\npeerType=participant\n",
            myid="4")
    assert c.quorum is not None and c.quorum.is_observer
    assert c.quorum.verifier.observing_members == {4}


def test_client_address_on_the_server_line(tmp_path: Path) -> None:
    text = SERVERS.replace("server.1=127.0.0.1:2888:3888", "server.1=127.0.0.1:2888:3888;2181")
    c = cfg(tmp_path, text)
    assert c.client_port == 2181
    text = SERVERS.replace("server.1=127.0.0.1:2888:3888",
                           "server.1=127.0.0.1:2888:3888;127.0.0.1:2200")
    with pytest.raises(ConfigError, match="clientPort"):
        cfg(tmp_path, text)


def test_hierarchical(tmp_path: Path) -> None:
    c = cfg(tmp_path, SERVERS + "group.1=1:2\ngroup.2=3\nweight.3=0\n")
    assert c.quorum is not None and c.quorum.verifier.hierarchical
    assert c.quorum.verifier.weight(3) == 0


@pytest.mark.parametrize("text,myid,key", [
    (SERVERS, None, "myid"),
    (SERVERS, "7", "myid"),
    (SERVERS, "x", "myid"),
    (SERVERS + "server.4=127.0.0.1:2888:3999\n", "1", "server.4"),       # clashing port
    (SERVERS.replace("2889:3889", "2889:2889"), "1", "server.2"),        # quorum == election
    (SERVERS + "server.x=127.0.0.1:1:2\n", "1", "server.x"),
    (SERVERS + "group.1=1:2\n", "1", "group"),                           # 3 in no group
    (SERVERS + "group.1=1:2:3\ngroup.2=3\n", "1", "group."),             # 3 twice
    (SERVERS + "electionAlg=1\n", "1", "electionAlg"),
    (SERVERS + "peerType=leader\n", "1", "peerType"),
    (SERVERS + "standaloneEnabled=maybe\n", "1", "standaloneEnabled"),
    (SERVERS + "server.5=h:1:2:boss\n", "1", "server.5"),
    (SERVERS.replace("clientPort=2181", "") + "clientPort=2888\n", "1", "clientPort"),
])
def test_errors_name_the_key(tmp_path: Path, text: str, myid: str | None, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        cfg(tmp_path, text, myid=myid)
    assert str(e.value).startswith(key), str(e.value)


def test_init_and_sync_limits_are_required(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "myid").write_text("1")
    path = tmp_path / "zoo.cfg"
    path.write_text(f"dataDir={data}\nclientPort=2181\nsyncLimit=5\n" + SERVERS)
    with pytest.raises(ConfigError, match="^initLimit"):
        load_config(str(path))


def test_dynamic_config_file(tmp_path: Path) -> None:
    dyn = tmp_path / "zoo.cfg.dynamic.100000000"
    dyn.write_text(SERVERS)
    c = cfg(tmp_path, f"dynamicConfigFile={dyn}\n")
    assert c.quorum is not None and c.quorum.verifier.version == 0x100000000
    assert c.quorum.dynamic_config_file == str(dyn)
    assert c.quorum.verifier.to_config_text().endswith("version=100000000")
    dyn.write_text(SERVERS + "version=5\n")
    with pytest.raises(ConfigError, match="^dynamicConfigFile"):
        cfg(tmp_path, f"dynamicConfigFile={dyn}\n")
    dyn.write_text(SERVERS + "tickTime=5\n")
    with pytest.raises(ConfigError, match="^tickTime"):
        cfg(tmp_path, f"dynamicConfigFile={dyn}\n")
    plain = tmp_path / "zoo.cfg.dynamic"
    plain.write_text(SERVERS)
    c = cfg(tmp_path, f"dynamicConfigFile={plain}\n")
    assert c.quorum is not None and c.quorum.verifier.version == 0


def test_duplicate_server_ids(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="^server.1: given twice"):
        cfg(tmp_path, SERVERS + "server.1=127.0.0.1:2999:3999\n")
    with pytest.raises(ConfigError, match="^server.0?1: server id 1 is given twice"):
        cfg(tmp_path, SERVERS + "server.01=127.0.0.1:2999:3999\n")
