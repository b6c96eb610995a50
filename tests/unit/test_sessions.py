"""Session table: Apache's id layout, the Java Random password, ExpiryQueue bucketing."""

from __future__ import annotations

import pytest

from zkfast.core.sessions import (
    SessionTracker,
    generate_passwd,
    initial_session_id,
    round_to_next_interval,
)


def test_password_matches_zookeeper_3_8() -> None:
    # zk-formats §1.2, verified against ZooKeeper 3.8.0.
    assert generate_passwd(0x0100000A5B3C0000) == bytes.fromhex("068ca4031b34fa78543d3d685cdd3e5e")
    # The Apache server in this repository's tests answered session 0x100000798940000 with:
    assert generate_passwd(0x100000798940000) == bytes.fromhex("8ea9976e03f765981caa1b7884de0eae")


def test_initial_session_id_layout() -> None:
    assert initial_session_id(0xA5B3C, 1) == 0x0100000A5B3C0000
    # The top byte is the server id; the time is shifted so it cannot reach it.
    sid = initial_session_id(1_700_000_000_000, 5)
    assert sid >> 56 == 5
    # A server id >= 128 makes the id negative (a signed Java long).
    assert initial_session_id(1_700_000_000_000, 200) < 0


def test_ids_are_consecutive() -> None:
    t = SessionTracker(tick_ms=2000, now_ms=1_000_000, server_id=1)
    a = t.create_session(30000, 1_000_000)
    b = t.create_session(30000, 1_000_000)
    assert b == a + 1
    assert a == initial_session_id(1_000_000, 1)


def test_round_to_next_interval() -> None:
    assert round_to_next_interval(0, 2000) == 2000
    assert round_to_next_interval(1999, 2000) == 2000
    assert round_to_next_interval(2000, 2000) == 4000


def test_expiry_in_tick_buckets() -> None:
    t = SessionTracker(tick_ms=2000, now_ms=10_000)
    sid = t.create_session(4000, 10_500)  # bucket round(14_500) = 16_000
    assert t.sessions[sid].expiry_ms == 16_000
    assert t.deadline_ms() == 16_000
    assert t.poll_expired(15_999) == []
    assert t.poll_expired(16_000) == [sid]
    assert t.sessions[sid].closing
    assert not t.touch(sid, 4000, 16_001)  # a closing session can no longer be touched
    assert t.remove(sid) is not None
    assert t.deadline_ms() is None


def test_touch_moves_the_bucket() -> None:
    t = SessionTracker(tick_ms=1000, now_ms=0)
    sid = t.create_session(3000, 0)
    assert t.touch(sid, 3000, 2500)
    assert t.sessions[sid].expiry_ms == 6000
    assert t.poll_expired(4000) == []
    assert t.poll_expired(6000) == [sid]


def test_unknown_session_cannot_be_touched() -> None:
    t = SessionTracker(tick_ms=1000, now_ms=0)
    assert not t.touch(42, 3000, 0)
    assert not t.is_live(42)


def test_poll_catches_up_after_a_long_pause_in_bucket_order() -> None:
    t = SessionTracker(tick_ms=1000, now_ms=0)
    ids = [t.create_session(timeout, 0) for timeout in (5000, 2000, 9000, 2000)]
    assert t.poll_expired(100_000) == [ids[1], ids[3], ids[0], ids[2]]
    assert t.expiry_view() == []


def test_bad_tick() -> None:
    with pytest.raises(ValueError):
        SessionTracker(tick_ms=0, now_ms=0)


def test_allocate_id_does_not_track_and_retracked_starts_over() -> None:
    t = SessionTracker(tick_ms=2000, now_ms=1_000_000, server_id=2)
    sid = t.allocate_id()
    assert sid >> 56 == 2 and sid not in t.sessions
    assert t.create_session(4000, 1_000_000) == sid + 1
    t.add_session(7, 6000, 1_000_000)
    t.set_closing(7)
    fresh = t.retracked(now_ms=2_000_000, server_id=5)
    assert sorted(fresh.sessions) == sorted(t.sessions)
    assert fresh.is_live(7) and fresh.sessions[7].timeout_ms == 6000
    assert fresh.sessions[7].expiry_ms == round_to_next_interval(2_006_000, 2000)
    assert fresh.allocate_id() >> 56 == 5
