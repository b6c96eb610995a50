"""Sessions: handshake fields, timeout negotiation, ephemerals removed on close and on expiry,
resuming a session on a new connection, wrong passwords, and expiry of a client whose traffic is
stalled by a TCP proxy (zk-formats §1.2).

The server runs with tickTime=200, so sessions may last 400..4000 ms.
"""

from __future__ import annotations

import socket
import struct
import threading

import pytest
from kazoo.client import KazooState

from zkfast.testing.procs import TcpProxy, wait_until
from zkfast.testing.rawclient import Reader, Writer

SERVER_CFG = {"tickTime": "200"}
OK, NO_NODE = 0, -101
EPHEMERAL = 1


def java_random_passwd(session_id: int) -> bytes:
    """`ZooKeeperServer.generatePasswd`: java.util.Random(sessionId ^ 0xB3415C00).nextBytes(16)."""
    mask = (1 << 48) - 1
    seed = ((session_id ^ 0xB3415C00) ^ 0x5DEECE66D) & mask
    out = bytearray()
    while len(out) < 16:
        seed = (seed * 0x5DEECE66D + 0xB) & mask
        r = seed >> 16
        for _ in range(min(4, 16 - len(out))):
            out.append(r & 0xFF)
            r >>= 8
    return bytes(out)


def test_java_random_passwd_reference_value():
    assert java_random_passwd(0x0100000A5B3C0000) == bytes.fromhex(
        "068ca4031b34fa78543d3d685cdd3e5e"
    )


def test_handshake_session_id_and_password(raw_client):
    a, b = raw_client(), raw_client()
    assert a.session_id != b.session_id
    for c in (a, b):
        assert c.session_id >> 56 == 1  # standalone: the session tracker's server id is 1
        assert c.passwd == java_random_passwd(c.session_id)


@pytest.mark.parametrize(
    ("asked", "granted"), [(-5, 400), (0, 400), (100, 400), (1000, 1000), (60000, 4000)]
)
def test_session_timeout_is_clamped(raw_client, asked, granted):
    raw = raw_client(connect=False)
    assert raw.connect(timeout_ms=asked) == granted


def test_ephemerals_removed_on_close(kazoo_client, znode):
    owner, observer = kazoo_client(), kazoo_client()
    paths = [owner.create(f"{znode}/e{i}", ephemeral=True) for i in range(3)]
    paths.append(owner.create(f"{znode}/s-", ephemeral=True, sequence=True))
    persistent = owner.create(f"{znode}/kept")
    assert all(observer.exists(p) for p in paths)
    owner.stop()  # closeSession is a txn: once it is answered the ephemerals are gone
    assert [observer.exists(p) for p in paths] == [None] * 4
    assert observer.exists(persistent) is not None


def test_server_closes_the_connection_after_close_session(raw_client, znode):
    raw = raw_client()
    assert raw.create(f"{znode}/e", flags=EPHEMERAL)[0] == OK
    reply = raw.call(-11)
    assert (reply.err, reply.body) == (OK, b"")
    with pytest.raises(ConnectionError):
        raw.ping()
    other = raw_client()
    assert other.exists(f"{znode}/e")[0] == NO_NODE
    # the closed session cannot be resumed
    assert raw.connect() == 0


def test_resume_session_on_new_connection_keeps_ephemerals(raw_client, kazoo_client, znode):
    raw = raw_client()
    err, path, _ = raw.create(f"{znode}/eph", b"mine", flags=EPHEMERAL)
    assert err == OK
    sid, passwd = raw.session_id, raw.passwd
    raw.close()  # drop the connection, not the session
    resumed = kazoo_client(client_id=(sid, passwd))
    assert resumed.client_id[0] == sid
    assert resumed.get(path)[0] == b"mine"
    assert resumed.exists(path).ephemeralOwner == sid
    resumed.stop()  # now the session ends, and its ephemeral with it
    assert kazoo_client().exists(path) is None


def test_resuming_on_a_new_connection_closes_the_old_one(raw_client, znode):
    first = raw_client()
    second = raw_client(connect=False)
    assert second.connect(session_id=first.session_id, passwd=first.passwd) > 0
    assert second.session_id == first.session_id
    with pytest.raises(ConnectionError):
        first.ping()
    assert second.exists(znode)[0] == OK


def test_wrong_password_is_expired(raw_client):
    owner = raw_client()
    thief = raw_client(connect=False)
    wrong = bytes(b ^ 0xFF for b in owner.passwd)
    assert thief.connect(session_id=owner.session_id, passwd=wrong) == 0
    assert thief.session_id == 0  # the reply carried session id 0
    with pytest.raises(ConnectionError):
        thief.ping()  # and the server closed the connection
    # Apache 3.8 closes the session's current connection before it checks the password
    # (ZooKeeperServer.processConnectRequest), but the session itself survives
    with pytest.raises(ConnectionError):
        owner.ping()
    assert owner.connect() > 0
    assert owner.ping().err == OK


def test_unknown_session_is_expired(raw_client):
    raw = raw_client(connect=False)
    sid = 0x01FF_FFFF_FFFF_0001
    assert raw.connect(session_id=sid, passwd=java_random_passwd(sid)) == 0


def test_client_ahead_of_server_is_refused(raw_client):
    raw = raw_client(connect=False)
    with pytest.raises(ConnectionError):
        raw.connect(last_zxid=0x7FFF_0000_0000_0000)


def test_idle_session_expires_and_its_ephemerals_go(raw_client, kazoo_client, znode):
    idle = raw_client(connect=False)
    assert idle.connect(timeout_ms=400) == 400
    busy = raw_client(connect=False)
    assert busy.connect(timeout_ms=400) == 400
    assert idle.create(f"{znode}/idle", flags=EPHEMERAL)[0] == OK
    assert busy.create(f"{znode}/busy", flags=EPHEMERAL)[0] == OK
    observer = kazoo_client()
    deleted = threading.Event()
    observer.exists(f"{znode}/idle", watch=lambda ev: deleted.set())

    def idle_expired() -> bool:
        assert busy.ping().err == OK  # the busy session keeps pinging meanwhile
        return observer.exists(f"{znode}/idle") is None

    wait_until(idle_expired, 60, "idle session expired")
    assert deleted.wait(30)
    assert observer.exists(f"{znode}/busy") is not None  # pings kept it alive
    with pytest.raises(ConnectionError):
        idle.ping()  # the server closed the expired session's connection
    assert idle.connect(timeout_ms=400) == 0  # and it cannot be resumed


def test_stalled_client_expires_and_kazoo_reports_lost(kazoo_client, zk_server, znode):
    with TcpProxy(zk_server.client_port) as proxy:
        states: list[str] = []
        client = kazoo_client(hosts=proxy.hosts, timeout=1.0)
        client.add_listener(states.append)
        old_session = client.client_id
        path = client.create(f"{znode}/eph", ephemeral=True)
        observer = kazoo_client()
        proxy.pause()  # no bytes either way: pings stop reaching the server
        wait_until(lambda: observer.exists(path) is None, 60, "ephemeral of stalled session gone")
        proxy.resume()
        wait_until(lambda: KazooState.LOST in states, 60, "kazoo saw the session expire")
        assert states[0] == KazooState.SUSPENDED
        # kazoo then starts a new session
        wait_until(lambda: client.state == KazooState.CONNECTED, 60, "kazoo reconnected")
        assert client.client_id[0] != old_session[0]
        assert client.exists(path) is None


@pytest.mark.parametrize("read_only_byte", [False, True])
def test_connect_response_mirrors_the_read_only_byte(zk_server, read_only_byte):
    # clients from 3.3 and earlier send a 44-byte ConnectRequest with no readOnly byte; the
    # server then leaves it out of the ConnectResponse as well
    payload = Writer().int(0).long(0).int(3000).long(0).buffer(b"\0" * 16)
    if read_only_byte:
        payload.bool(False)
    with socket.create_connection(("127.0.0.1", zk_server.client_port), timeout=30) as s:
        s.sendall(struct.pack(">i", len(payload.out)) + bytes(payload.out))
        header = _recv_exactly(s, 4)
        (length,) = struct.unpack(">i", header)
        body = _recv_exactly(s, length)
    assert length == (37 if read_only_byte else 36)
    r = Reader(body)
    assert (r.int(), r.int()) == (0, 3000)
    assert r.long() != 0 and len(r.buffer() or b"") == 16
    if read_only_byte:
        assert r.bool() is False
    assert r.remaining == 0


def _recv_exactly(s: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        assert chunk, "connection closed early"
        out += chunk
    return out


def test_requests_pipelined_behind_the_connect_request(zk_server, znode):
    # a client may write requests before the ConnectResponse arrives; they are served after it
    connect = Writer().int(0).long(0).int(3000).long(0).buffer(b"\0" * 16).bool(False)
    get = Writer().int(1).int(4).string(znode).bool(False)  # xid 1, getData
    exists = Writer().int(2).int(3).string(f"{znode}/none").bool(False)  # xid 2, exists
    frames = b"".join(struct.pack(">i", len(w.out)) + bytes(w.out) for w in (connect, get, exists))
    with socket.create_connection(("127.0.0.1", zk_server.client_port), timeout=30) as s:
        s.sendall(frames)
        replies = []
        for _ in range(3):
            (length,) = struct.unpack(">i", _recv_exactly(s, 4))
            replies.append(_recv_exactly(s, length))
    assert len(replies[0]) == 37  # the ConnectResponse first
    first, second = Reader(replies[1]), Reader(replies[2])
    assert (first.int(), first.long() > 0, first.int()) == (1, True, OK)
    assert (second.int(), second.long() > 0, second.int()) == (2, True, NO_NODE)


def test_dropped_connection_keeps_the_session(kazoo_client, zk_server, znode):
    with TcpProxy(zk_server.client_port) as proxy:
        states: list[str] = []
        zk = kazoo_client(hosts=proxy.hosts, timeout=4.0)
        zk.add_listener(states.append)
        session = zk.client_id
        path = zk.create(f"{znode}/eph", ephemeral=True)
        assert proxy.drop_connections() == 1
        wait_until(lambda: KazooState.SUSPENDED in states, 30, "kazoo saw the drop")
        wait_until(lambda: zk.state == KazooState.CONNECTED, 30, "kazoo reconnected")
        assert zk.client_id == session
        assert zk.exists(path).ephemeralOwner == session[0]
        assert KazooState.LOST not in states
