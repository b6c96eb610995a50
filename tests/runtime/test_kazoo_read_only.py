"""Read-only mode on real quorum peers: a peer cut off from its ensemble serves read-only clients.

The data is written beforehand by a standalone zkfast run whose dataDir is copied into peer 1
(ZAB replication is the next issue). Peers 2 and 3 start first and peer 1 is partitioned off
(TcpProxy) before it starts, so it stays LOOKING; with ``readonlymode.enabled`` it starts its
read-only service after max(2 s, tickTime): ``isro`` says ``ro``, a kazoo client with
``read_only=True`` reaches CONNECTED_RO and reads what was on disk, writes raise
NotReadOnlyCallError (NOTREADONLY, -119), and a ConnectRequest without the readOnly flag is
closed without a reply. zkfast's peer 1 then rejoins (``heal``): the read-only service stops
and the kazoo connection is closed.

The same assertions run with an Apache 3.8 peer 1 (``-Dreadonlymode.enabled=true``) on the same
copied dataDir, when the Debian jars are installed. Apache 3.8.0 serves read-only sessions only
with ``localSessionsEnabled=true``: with its default (false) its ReadOnlyRequestProcessor answers
the createSession of a ConnectRequest with a bare ReplyHeader(0, zxid, NOTREADONLY), which no
client can parse (`test_apache_default_config_answers_connect_with_notreadonly` pins that).
zkfast always gives read-only clients local sessions, i.e. it behaves like Apache with local
sessions on. Every process is stopped by its handle and every wait polls with a generous bound.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NotReadOnlyCallError
from kazoo.protocol.states import KeeperState

from zkfast.testing.procs import (
    LOOPBACK,
    Ensemble,
    apache_available,
    wait_until,
    zkfast_server,
)
from zkfast.wire import client_codec as cc

CFG = {"tickTime": "500", "initLimit": "10", "syncLimit": "5"}
SETTLE_S = 90.0
#: The session timeout of read-only sessions that must outlive the test's steps (at most
#: maxSessionTimeout, 20 ticks).
LIVE_TIMEOUT_MS = 10000


def _prepare_data(workdir: Path) -> Path:
    """A dataDir holding /ro (b"on disk") and /ro/a, /ro/b, written by a standalone run."""
    server = zkfast_server(workdir)
    try:
        zk = KazooClient(hosts=server.hosts, timeout=10.0)
        zk.start(timeout=30)
        try:
            zk.create("/ro", b"on disk")
            zk.create("/ro/a", b"A")
            zk.create("/ro/b", b"")
        finally:
            zk.stop()
            zk.close()
    finally:
        server.stop()
    return server.data_dir


def _isro(ens: Ensemble, sid: int) -> str | None:
    try:
        return ens.servers[sid].four_letter_word("isro", timeout_s=2.0).strip()
    except OSError:
        return None


def _closed_without_reply(port: int, read_only: bool | None) -> bool:
    """Send a ConnectRequest; True when the server closes the connection without a byte."""
    with socket.create_connection((LOOPBACK, port), timeout=10.0) as s:
        s.sendall(cc.encode_connect_request(30000, read_only=read_only))
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return data == b""
            data += chunk


@pytest.mark.parametrize("kind", ["zkfast", "apache"])
def test_partitioned_peer_serves_read_only_clients(tmp_path: Path, kind: str) -> None:
    if kind == "apache" and not apache_available():
        pytest.skip("Apache ZooKeeper jars not installed")
    data = _prepare_data(tmp_path / "prep")
    cfg = {**CFG, "localSessionsEnabled": "true"} if kind == "apache" else CFG
    with Ensemble(tmp_path / "ens", [kind, "zkfast", "zkfast"], cfg=cfg, proxied=True,
                  props={"readonlymode.enabled": "true"},
                  jvm_props={"readonlymode.enabled": "true"},
                  data_dirs={1: data}) as ens:
        ens.partition(1)
        ens.start([2, 3])
        ens.start([1])
        wait_until(lambda: _isro(ens, 1) == "ro", SETTLE_S, "peer 1 in read-only mode")
        assert ens.mode(1) == "read-only"
        srvr = ens.servers[1].four_letter_word("srvr").splitlines()
        assert srvr[1] == "READ-ONLY mode; serving only read-only clients"
        port = ens.ports[1][0]
        assert _closed_without_reply(port, read_only=False)
        assert _closed_without_reply(port, read_only=None)

        zk = KazooClient(hosts=ens.servers[1].hosts, read_only=True, timeout=10.0)
        zk.start(timeout=30)
        try:
            assert zk.client_state == KeeperState.CONNECTED_RO
            assert zk.client_id is not None and zk.client_id[0] >> 56 == 1  # myid 1
            value, stat = zk.get("/ro")
            assert value == b"on disk" and stat.numChildren == 2
            assert sorted(zk.get_children("/ro")) == ["a", "b"]
            assert zk.get("/ro/a")[0] == b"A"
            assert zk.exists("/missing") is None
            fired = []
            assert zk.get("/ro/a", watch=fired.append)[0] == b"A"
            with pytest.raises(NotReadOnlyCallError):
                zk.create("/ro/c", b"x")
            with pytest.raises(NotReadOnlyCallError):
                zk.set("/ro", b"changed")
            with pytest.raises(NotReadOnlyCallError):
                zk.delete("/ro/a")
            t = zk.transaction()
            t.create("/ro/d", b"")
            with pytest.raises(NotReadOnlyCallError):
                t.commit()
            # The connection stayed open through every refused write.
            assert zk.client_state == KeeperState.CONNECTED_RO
            assert zk.get("/ro")[0] == b"on disk"
            assert fired == []
            assert _isro(ens, 1) == "ro"
            if kind == "zkfast":
                # The peer rejoins: the read-only service stops and closes its connections.
                ens.heal(1)
                wait_until(lambda: _isro(ens, 1) == "rw", SETTLE_S, "peer 1 leaving read-only")
                wait_until(lambda: zk.client_state != KeeperState.CONNECTED_RO, SETTLE_S,
                           "the read-only connection closed")
        finally:
            zk.stop()
            zk.close()


def test_apache_default_config_answers_connect_with_notreadonly(tmp_path: Path) -> None:
    """Apache 3.8.0 without local sessions: the read-only createSession gets NOTREADONLY."""
    if not apache_available():
        pytest.skip("Apache ZooKeeper jars not installed")
    data = _prepare_data(tmp_path / "prep")
    with Ensemble(tmp_path / "ens", ["apache", "zkfast", "zkfast"], cfg=CFG, proxied=True,
                  jvm_props={"readonlymode.enabled": "true"}, data_dirs={1: data}) as ens:
        ens.partition(1)
        ens.start([2, 3])
        ens.start([1])
        wait_until(lambda: _isro(ens, 1) == "ro", SETTLE_S, "peer 1 in read-only mode")
        with socket.create_connection((LOOPBACK, ens.ports[1][0]), timeout=10.0) as s:
            s.sendall(cc.encode_connect_request(30000, read_only=True))
            data_in = b""
            while len(data_in) < 20:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data_in += chunk
        frames = cc.split_reply_frames(data_in)
        # xid 0 (the createSession), zxid 0x5 (the prepared txns), NOTREADONLY; no ConnectResponse.
        assert [cc.decode_reply(f, None)[:3] for f in frames] == [(0, 5, -119)]


def _recv_until_eof_or(s: socket.socket, n: int) -> tuple[bytes, bool]:
    """Read until ``n`` bytes arrived or the server closed; ``(bytes, closed)``."""
    data = b""
    while len(data) < n:
        chunk = s.recv(4096)
        if not chunk:
            return data, True
        data += chunk
    return data, False


def _ro_connect(port: int, session_id: int = 0, passwd: bytes = b"\0" * 16, *,
                timeout_ms: int = 1000
                ) -> tuple[socket.socket, tuple[int, int, int, bytes, bool | None] | None]:
    """A read-only ConnectRequest (session timeout `timeout_ms`, 1000 ms being the least
    either server grants at tickTime 500); the socket and the response (None: closed without
    one)."""
    s = socket.create_connection((LOOPBACK, port), timeout=30.0)
    s.sendall(cc.encode_connect_request(timeout_ms, session_id, passwd, 0, True))
    data, _ = _recv_until_eof_or(s, 41)  # a ConnectResponse with the readOnly byte
    if not data:
        return s, None
    return s, cc.decode_connect_response(cc.split_reply_frames(data)[0])


@pytest.mark.parametrize("kind", ["zkfast", "apache"])
def test_read_only_sessions_are_local(tmp_path: Path, kind: str) -> None:
    """Raw-socket session rules of the read-only service, the same on zkfast and Apache (with
    localSessionsEnabled): a session the data tree holds is not renewed; a read-only session
    reconnects while live, closeSession ends it with a reply, an idle one expires and its
    connection closes; writes are refused and the zxid never moves.

    Only the session meant to expire has the least timeout (1000 ms); the others ask for
    10000 ms, so that a test process stalled for a second on a loaded machine does not see
    them expire between two steps."""
    if kind == "apache" and not apache_available():
        pytest.skip("Apache ZooKeeper jars not installed")
    prep = zkfast_server(tmp_path / "prep")
    try:
        with socket.create_connection((LOOPBACK, prep.client_port), timeout=30.0) as s:
            s.sendall(cc.encode_connect_request(30000))
            data, _ = _recv_until_eof_or(s, 41)
            _, _, global_sid, global_pw, _ = cc.decode_connect_response(
                cc.split_reply_frames(data)[0])
            prep.kill()  # the session stays open in the log: a global session on restore
    finally:
        prep.stop()
    cfg = {**CFG, "localSessionsEnabled": "true"} if kind == "apache" else CFG
    with Ensemble(tmp_path / "ens", [kind, "zkfast", "zkfast"], cfg=cfg, proxied=True,
                  props={"readonlymode.enabled": "true"},
                  jvm_props={"readonlymode.enabled": "true"},
                  data_dirs={1: prep.data_dir}) as ens:
        ens.partition(1)
        ens.start([2, 3])
        ens.start([1])
        wait_until(lambda: _isro(ens, 1) == "ro", SETTLE_S, "peer 1 in read-only mode")
        port = ens.ports[1][0]

        s, resp = _ro_connect(port, global_sid, global_pw)
        assert resp is None  # "Refusing global session reconnection in RO mode"
        s.close()

        s1, resp = _ro_connect(port, timeout_ms=LIVE_TIMEOUT_MS)
        assert resp is not None and resp[1] == LIVE_TIMEOUT_MS and resp[4] is True
        sid, pw = resp[2], resp[3]
        assert sid >> 56 == 1
        s2, again = _ro_connect(port, sid, pw, timeout_ms=LIVE_TIMEOUT_MS)
        assert again is not None and again[1:3] == (LIVE_TIMEOUT_MS, sid) and again[4] is True
        assert _recv_until_eof_or(s1, 1) == (b"", True)  # the old connection is closed
        s1.close()
        s2.sendall(cc.encode_request(1, 5, ("/", b"x", -1)) + cc.encode_request(2, 4, ("/", False))
                   + cc.encode_request(3, -11, ()))
        data, closed = _recv_until_eof_or(s2, 1 << 20)
        replies = [cc.decode_reply(f, None)[:3] for f in cc.split_reply_frames(data)]
        assert replies == [(1, 1, -119), (2, 1, 0), (3, 1, 0)] and closed
        s2.close()
        s3, gone = _ro_connect(port, sid, pw)
        assert gone is not None and gone[1:3] == (0, 0) and gone[4] is True
        s3.close()

        s4, resp = _ro_connect(port)
        assert resp is not None and resp[1] == 1000
        assert _recv_until_eof_or(s4, 1) == (b"", True)  # idle past its timeout: closed
        s4.close()
        # A closed connection is not yet an expired session on Apache: its NIO connection
        # expiry (10 s buckets, touched with the session timeout) can fire on the same tick as
        # the session tracker and close the connection first. A reconnect in between either
        # revives the live session or is itself closed, unanswered, by the expiry's
        # closeSession (which closes whatever connection holds that session id by then).
        # The session is gone once the server counts no local session.
        wait_until(lambda: ens.mntr(1).get("zk_local_sessions") == "0", SETTLE_S,
                   "the idle read-only session expired")
        s5, gone = _ro_connect(port, resp[2], resp[3])
        assert gone is not None and gone[1:3] == (0, 0)
        s5.close()
        assert "Zxid: 0x1\n" in ens.servers[1].four_letter_word("srvr")
