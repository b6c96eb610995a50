"""zoo.cfg settings and system properties that clients can observe: session timeout bounds,
maxClientCnxns, enforced quotas, skipACL. Each test starts its own server of each kind."""

from __future__ import annotations

import pytest
from kazoo.security import make_digest_acl

from zkfast.testing.rawclient import RawClient

OK, QUOTA_EXCEEDED = 0, -125


def test_min_and_max_session_timeout(server_kind, start_server, tmp_path):
    server = start_server(
        server_kind, tmp_path, cfg={"minSessionTimeout": "1000", "maxSessionTimeout": "1500"}
    )
    granted = {}
    for asked in (100, 1200, 60000):
        with RawClient("127.0.0.1", server.client_port) as raw:
            granted[asked] = raw.connect(timeout_ms=asked)
    assert granted == {100: 1000, 1200: 1200, 60000: 1500}


def test_max_client_connections_per_address(server_kind, start_server, tmp_path):
    server = start_server(server_kind, tmp_path, cfg={"maxClientCnxns": "3"})
    clients = [RawClient("127.0.0.1", server.client_port) for _ in range(4)]
    try:
        for c in clients[:3]:
            assert c.connect() > 0
        with pytest.raises(ConnectionError):
            clients[3].connect()  # refused: closed before any handshake reply
        clients[0].close_session()
        # a freed slot can be used again (the server notices the close asynchronously)
        retry = RawClient("127.0.0.1", server.client_port)
        for _ in range(200):
            try:
                assert retry.connect() > 0
                break
            except ConnectionError:
                continue
        else:
            pytest.fail("no connection slot after a session closed")
        retry.close()
    finally:
        for c in clients:
            c.close()


def test_enforced_quota(server_kind, start_server, tmp_path):
    server = start_server(server_kind, tmp_path, props={"zookeeper.enforceQuota": "true"})
    with RawClient("127.0.0.1", server.client_port) as raw:
        raw.connect()
        assert raw.create("/q")[0] == OK
        assert raw.create("/zookeeper/quota/q")[0] == OK
        assert (
            raw.create(
                "/zookeeper/quota/q/zookeeper_limits",
                b"count=-1,bytes=-1,countHardLimit=3,byteHardLimit=10",
            )[0]
            == OK
        )
        assert raw.create("/zookeeper/quota/q/zookeeper_stats", b"count=0,bytes=0")[0] == OK
        assert raw.create("/q/a", b"12345")[0] == OK
        assert raw.create("/q/b", b"123456")[0] == QUOTA_EXCEEDED  # 11 bytes > 10
        assert raw.create("/q/b", b"1")[0] == OK  # 3 nodes
        assert raw.create("/q/c")[0] == QUOTA_EXCEEDED  # a 4th node
        assert raw.set_data("/q/a", b"1234567890")[0] == QUOTA_EXCEEDED
        assert raw.set_data("/q/a", b"123")[0] == OK


def test_skip_acl(server_kind, start_server, tmp_path, kazoo_client):
    server = start_server(server_kind, tmp_path, props={"zookeeper.skipACL": "yes"})
    owner = kazoo_client(hosts=server.hosts)
    owner.add_auth("digest", "kim:pw")
    path = owner.create("/locked", b"x", acl=[make_digest_acl("kim", "pw", all=True)])
    stranger = kazoo_client(hosts=server.hosts)
    assert stranger.get(path)[0] == b"x"
    stranger.set(path, b"y")
    stranger.delete(path)
