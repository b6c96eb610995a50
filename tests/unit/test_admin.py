"""Four-letter words: the texts Apache 3.8.0 prints, over a ServerCore driven with frames."""

from __future__ import annotations

import random
import re
from dataclasses import replace

import pytest

from zkfast.config import ServerConfig
from zkfast.core.actions import AppendTxns, CloseClient, SendToClient
from zkfast.core.events import (
    ClientConnected,
    ClientFramesReceived,
    FourLetterWordReceived,
    StorageFailed,
    TxnsDurable,
)
from zkfast.core.server import ServerCore
from zkfast.runtime.admin import java_date, java_double, run_four_letter_word, version_string
from zkfast.wire import client_codec as cc

T0 = 1_700_000_000_000
OPEN = [(31, ("world", "anyone"))]
ALL = frozenset({"*"})


def drive(core: ServerCore, ev: object, now: int = T0, fsync_ms: int = 0) -> list[object]:
    """Step, then report every appended txn durable ``fsync_ms`` later."""
    actions = core.step(ev, now)  # type: ignore[arg-type]
    for a in list(actions):
        if isinstance(a, AppendTxns):
            actions += drive(core, TxnsDurable(a.txns[-1][0]), now + fsync_ms)
    return actions


@pytest.fixture
def core() -> ServerCore:
    c = ServerCore(ServerConfig(four_letter_whitelist=ALL, tick_ms=2000, data_dir="/nonexistent"),
                   now_ms=T0, rng=random.Random(3))
    drive(c, ClientConnected(1, "127.0.0.1", 33220))
    drive(c, ClientFramesReceived(1, [cc.encode_connect_request(30000)[4:]]))
    drive(c, ClientFramesReceived(1, [cc.encode_request(1, 4, ("/zookeeper", True))[4:]]))
    drive(c, ClientFramesReceived(1, [cc.encode_request(2, 1, ("/eph", b"x", OPEN, 1))[4:]]),
          T0, fsync_ms=14)
    return c


def word(core: ServerCore, w: str, now: int = T0 + 1000) -> str:
    return run_four_letter_word(w.encode(), core, core.config, now).decode()


def sid(core: ServerCore) -> str:
    return f"0x{core.conns[1].session_id:x}"


def test_ruok_isro_gtmk(core: ServerCore) -> None:
    assert word(core, "ruok") == "imok"
    assert word(core, "isro") == "rw"
    assert word(core, "gtmk") == "306"


def test_srvr_block(core: ServerCore) -> None:
    assert word(core, "srvr") == (
        f"Zookeeper version: {version_string()}\n"
        "Latency min/avg/max: 0/4.6667/14\n"
        "Received: 3\nSent: 3\nConnections: 1\nOutstanding: 0\nZxid: 0x2\n"
        "Mode: standalone\nNode count: 6\n")
    assert re.fullmatch(r"3\.8\.0-zkfast-\S+, built on \d{4}-\d\d-\d\d \d\d:\d\d UTC",
                        version_string())


def test_stat_lists_clients(core: ServerCore) -> None:
    text = word(core, "stat")
    assert "\nClients:\n /127.0.0.1:33220[1](queued=0,recved=3,sent=3)\n\nLatency" in text
    assert text.endswith("Mode: standalone\nNode count: 6\n")


def test_cons_line(core: ServerCore) -> None:
    assert word(core, "cons") == (
        f" /127.0.0.1:33220[1](queued=0,recved=3,sent=3,sid={sid(core)},lop=CREA,est={T0},"
        f"to=30000,lcxid=0x2,lzxid=0x2,lresp={T0 + 14},llat=14,minlat=0,avglat=4,maxlat=14)\n\n")


def test_crst_and_srst(core: ServerCore) -> None:
    assert word(core, "crst") == "Connection stats reset.\n"
    assert ",lop=NA," in word(core, "cons")
    assert word(core, "srst") == "Server stats reset.\n"
    assert "Latency min/avg/max: 0/0.0/0\nReceived: 0\nSent: 0\n" in word(core, "srvr")


def test_watch_words(core: ServerCore) -> None:
    assert word(core, "wchs") == "1 connections watching 1 paths\nTotal watches:1\n"
    assert word(core, "wchc") == f"{sid(core)}\n\t/zookeeper\n\n"
    assert word(core, "wchp") == f"/zookeeper\n\t{sid(core)}\n\n"


def test_dump(core: ServerCore) -> None:
    text = word(core, "dump")
    expiry = core.sessions.sessions[core.conns[1].session_id].expiry_ms
    assert text == (
        "SessionTracker dump:\nSession Sets (1)/(1):\n"
        f"1 expire at {java_date(expiry)}:\n\t{sid(core)}\n"
        "ephemeral nodes dump:\nSessions with Ephemerals (1):\n"
        f"{sid(core)}:\n\t/eph\n"
        "Connections dump:\nConnections Sets (1)/(1):\n"
        f"1 expire at {java_date(expiry)}:\n\tip: /127.0.0.1:33220 sessionId: {sid(core)}\n")


def test_conf_and_dirs(core: ServerCore) -> None:
    text = word(core, "conf")
    assert text.splitlines() == [
        "clientPort=2181", "secureClientPort=-1", "dataDir=/nonexistent/version-2",
        "dataDirSize=0", "dataLogDir=/nonexistent/version-2", "dataLogSize=0",
        "tickTime=2000", "maxClientCnxns=60", "minSessionTimeout=4000",
        "maxSessionTimeout=40000", "clientPortListenBacklog=-1", "serverId=0"]
    assert word(core, "dirs") == "datadir_size: 0\nlogdir_size: 0\n"


def test_mntr_gauges(core: ServerCore) -> None:
    lines = dict(line.split("\t", 1) for line in word(core, "mntr").splitlines())
    assert lines["zk_version"] == version_string()
    assert lines["zk_server_state"] == "standalone"
    assert lines["zk_ephemerals_count"] == "1"
    assert lines["zk_znode_count"] == "6"
    assert lines["zk_watch_count"] == "1"
    assert lines["zk_global_sessions"] == "1"
    assert lines["zk_packets_received"] == "3"
    assert lines["zk_avg_latency"] == "4.6667"
    assert lines["zk_uptime"] == "1000"
    assert lines["zk_approximate_data_size"] == str(core.tree.approximate_data_size)
    assert list(lines)[:2] == ["zk_version", "zk_server_state"]


def test_envi_starts_with_versions(core: ServerCore) -> None:
    text = word(core, "envi")
    assert text.startswith(f"Environment:\nzookeeper.version={version_string()}\nhost.name=")


def test_whitelist_and_not_serving(core: ServerCore) -> None:
    only_srvr = replace(core.config, four_letter_whitelist=frozenset({"srvr"}))
    out = run_four_letter_word(b"ruok", core, only_srvr, T0).decode()
    assert out == "ruok is not executed because it is not in the whitelist.\n"
    assert run_four_letter_word(b"srvr", core, only_srvr, T0).startswith(b"Zookeeper version")
    ro = replace(only_srvr, readonly_mode_enabled=True)
    assert run_four_letter_word(b"isro", core, ro, T0) == b"rw"
    drive(core, StorageFailed("disk full"))
    assert word(core, "srvr") == "This ZooKeeper instance is not currently serving requests\n"
    assert word(core, "isro") == "null"
    assert word(core, "ruok") == "imok"


def test_four_letter_word_event_through_the_core() -> None:
    c = ServerCore(ServerConfig(four_letter_whitelist=ALL), now_ms=T0, rng=random.Random(1),
                   four_letter_words=run_four_letter_word)
    drive(c, ClientConnected(5, "127.0.0.1", 1))
    actions = drive(c, FourLetterWordReceived(5, b"ruok"))
    assert actions == [SendToClient(5, b"imok"), CloseClient(5, "four letter word")]
    assert 5 not in c.conns


def test_java_number_and_date_formats() -> None:
    assert java_double(0) == "0.0"
    assert java_double(6.0526) == "6.0526"
    assert java_double(2.0) == "2.0"
    assert java_double(0.0001) == "1.0E-4"
    assert java_date(1795719235000) == "Thu Nov 26 18:53:55 UTC 2026"


def test_the_asking_connection_is_listed_when_the_runtime_names_it(core: ServerCore) -> None:
    out = run_four_letter_word(b"stat", core, core.config, T0, remote=("127.0.0.1", 33260))
    text = out.decode()
    assert ("Clients:\n /127.0.0.1:33220[1](queued=0,recved=3,sent=3)\n"
            " /127.0.0.1:33260[0](queued=0,recved=1,sent=0)\n\n") in text
    assert "Received: 4\n" in text and "Connections: 2\n" in text
    cons = run_four_letter_word(b"cons", core, core.config, T0, remote=("127.0.0.1", 9))
    assert cons.decode().endswith(" /127.0.0.1:9[0](queued=0,recved=1,sent=0)\n\n")
    assert "Connections: 1\n" in word(core, "srvr")  # nothing leaks into the next word
