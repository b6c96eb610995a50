"""A server restart (SIGTERM) or crash (SIGKILL) on the same port and dataDir: acknowledged writes,
sessions and their ephemerals, sequence counters and the zxid survive, and a kazoo client resumes
its session by itself."""

from __future__ import annotations

import time

from kazoo.client import KazooState

from zkfast.testing.procs import wait_until

# reconnect attempts every 0.1-0.5 s while the server is down (kazoo backs off to 60 s otherwise)
FAST_RETRY = {"max_tries": -1, "delay": 0.1, "max_delay": 0.5}


def _reconnected(zk, states, session_id: int) -> None:
    wait_until(
        lambda: zk.state == KazooState.CONNECTED and KazooState.SUSPENDED in states,
        90,
        "kazoo reconnected",
    )
    assert zk.client_id[0] == session_id
    assert KazooState.LOST not in states


def test_graceful_restart_keeps_data_sessions_and_counters(kazoo_client, zk_server, znode):
    zk = kazoo_client(timeout=30.0, connection_retry=FAST_RETRY)
    states: list[str] = []
    zk.add_listener(states.append)
    session_id = zk.client_id[0]
    zk.create(f"{znode}/data", b"kept")
    zk.set(f"{znode}/data", b"kept2")
    eph = zk.create(f"{znode}/eph", b"e", ephemeral=True)
    seq = zk.create(f"{znode}/s-", sequence=True)
    before = zk.exists(f"{znode}/data")
    last_zxid = zk.last_zxid

    zk_server.restart()
    fresh = kazoo_client()  # a new client has seen no zxid, so any server state lets it in
    data, stat = fresh.get(f"{znode}/data")
    assert data == b"kept2" and stat == before
    assert fresh.exists(eph).ephemeralOwner == session_id
    assert fresh.exists(seq) is not None
    _reconnected(zk, states, session_id)
    assert zk.create(f"{znode}/s-", sequence=True) > seq
    zk.create(f"{znode}/after")
    assert zk.last_zxid > last_zxid  # zxids never go back


def test_crash_keeps_acknowledged_writes(kazoo_client, zk_server, znode):
    zk = kazoo_client(timeout=30.0, connection_retry=FAST_RETRY)
    states: list[str] = []
    zk.add_listener(states.append)
    session_id = zk.client_id[0]
    paths = [zk.create(f"{znode}/n{i}", str(i).encode()) for i in range(50)]
    tx = zk.transaction()
    tx.create(f"{znode}/tx1")
    tx.create(f"{znode}/tx2")
    tx.commit()
    eph = zk.create(f"{znode}/eph", ephemeral=True)

    zk_server.kill()
    zk_server.start()
    fresh = kazoo_client()
    assert [fresh.get(p)[0] for p in paths] == [str(i).encode() for i in range(50)]
    assert fresh.exists(f"{znode}/tx1") and fresh.exists(f"{znode}/tx2")
    assert fresh.exists(eph).ephemeralOwner == session_id
    _reconnected(zk, states, session_id)


def test_session_of_a_closed_client_stays_closed_after_restart(kazoo_client, zk_server, znode):
    owner = kazoo_client()
    eph = owner.create(f"{znode}/gone", ephemeral=True)
    owner.stop()
    zk_server.restart()
    zk = kazoo_client()
    assert zk.exists(eph) is None


def test_ctime_is_wall_clock_milliseconds(kazoo_client, znode):
    zk = kazoo_client()
    stat = zk.exists(zk.create(f"{znode}/t"))
    now_ms = time.time() * 1000
    assert abs(stat.ctime - now_ms) < 24 * 3600 * 1000  # milliseconds since the epoch, not seconds
