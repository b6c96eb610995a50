"""The process harness and the TCP proxy themselves (zkfast.testing.procs), on both server kinds:
readiness, stop/kill by handle, logs, RSS, and proxy pause/resume/drop seen by a kazoo client."""

from __future__ import annotations

import os
import signal
import threading

import pytest
from kazoo.client import KazooState

from zkfast.testing.procs import (
    ServerStartError,
    TcpProxy,
    apache_server,
    four_letter_word,
    free_port,
    wait_until,
    zkfast_server,
)


def test_server_process_lifecycle(server_kind, tmp_path, start_server):
    server = start_server(server_kind, tmp_path / "s")
    try:
        assert server.running
        assert server.hosts == f"127.0.0.1:{server.client_port}"
        assert four_letter_word(server.client_port, "ruok") == "imok"
        assert server.rss_bytes() > 1 << 20
        assert server.data_dir.is_dir() and server.cfg_path.is_file()
        assert "4lw.commands.whitelist=*" in server.cfg_path.read_text()
        pid = server.pid
    finally:
        server.stop()
    assert not server.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped, not a zombie
    assert server.stop() == server.returncode  # idempotent
    assert "==== start" in server.log_text()


def test_kill_and_restart_on_the_same_port(server_kind, tmp_path, kazoo_client, start_server):
    with start_server(server_kind, tmp_path / "k") as server:
        port = server.client_port
        assert server.kill() == -signal.SIGKILL
        assert not server.running
        server.start()
        assert server.client_port == port
        zk = kazoo_client(hosts=server.hosts)
        assert zk.exists("/zookeeper") is not None
        zk.stop()


def test_start_failure_reports_the_log(server_kind, tmp_path):
    factory = apache_server if server_kind == "apache" else zkfast_server
    port = free_port()
    with pytest.raises(ServerStartError, match="exited"):
        # a negative tickTime is refused by both servers at startup
        factory(tmp_path / "bad", cfg={"clientPort": str(port), "tickTime": "-5"}, timeout_s=60)


def test_proxy_pause_resume_and_drop(zk_server, kazoo_client, znode):
    with TcpProxy(zk_server.client_port) as proxy:
        states: list[str] = []
        zk = kazoo_client(hosts=proxy.hosts, timeout=30.0)
        zk.add_listener(states.append)
        assert proxy.connection_count() == 1
        proxy.pause()
        result: list[object] = []
        t = threading.Thread(target=lambda: result.append(zk.create(f"{znode}/p")))
        t.start()
        observer = kazoo_client()
        # held by the proxy: the create does not reach the server while paused
        assert observer.exists(f"{znode}/p") is None
        proxy.resume()
        t.join(60)
        assert result == [f"{znode}/p"]
        assert proxy.drop_connections() == 1
        wait_until(lambda: KazooState.SUSPENDED in states, 30, "kazoo saw the drop")
        wait_until(lambda: zk.state == KazooState.CONNECTED, 30, "kazoo reconnected")
        assert proxy.accepted >= 2
        assert zk.exists(f"{znode}/p") is not None
        proxy.stop()
        wait_until(lambda: zk.state == KazooState.SUSPENDED, 30, "kazoo lost its route")


def test_proxy_partition_and_heal(zk_server, kazoo_client, znode):
    with TcpProxy(zk_server.client_port) as proxy:
        states: list[str] = []
        zk = kazoo_client(hosts=proxy.hosts, timeout=30.0)
        zk.add_listener(states.append)
        assert proxy.partition() == 1
        wait_until(lambda: KazooState.SUSPENDED in states, 30, "kazoo saw the partition")
        wait_until(lambda: proxy.accepted >= 2, 30, "kazoo tried again")
        assert zk.state != KazooState.CONNECTED  # held: no handshake gets through
        proxy.heal()
        wait_until(lambda: zk.state == KazooState.CONNECTED, 30, "kazoo reconnected")
        assert zk.exists(znode) is not None
