"""Session table: ids, passwords, and expiry in tick-sized buckets (SessionTrackerImpl, ExpiryQueue).

Theory of operation
-------------------
A session is *live* from the moment the tracker creates it (before its createSession txn is
durable, as in Apache, so a quick expiry still finds it) until ``remove`` is called when its
closeSession txn is applied. In between it may be *closing*: a closeSession was prepped, or the
session expired; a closing session can no longer be touched, so requests on it are dropped
(``ZooKeeperServer.touch`` -> MissingSessionException).

Expiry mirrors ``ExpiryQueue`` with ``expirationInterval = tickTime``: touching a session at
``now`` moves it to the bucket ``roundToNextInterval(now + timeout)`` where
``roundToNextInterval(t) = (t // tick + 1) * tick``. The queue remembers the next bucket time
(initially ``roundToNextInterval(start)``); ``poll_expired(now)`` hands back every session in
every bucket at or before ``now`` (Apache's expirer thread drains them one interval at a time;
the set of sessions expired by a given time is the same) and marks them closing. The server then
issues a closeSession txn for each. ``deadline_ms`` is the next bucket time while any session
is tracked.

Session ids follow ``SessionTrackerImpl.initializeNextSessionId``: the first is
``((now_ms << 24) >>> 8) | (sid << 56)`` as a signed 64-bit value, and each new session takes the
next one. Passwords are ``java.util.Random(session_id ^ 0xB3415C00).nextBytes(16)``, reproduced
exactly (zk-formats §1.2), so any Apache server verifies a zkfast password and vice versa.

In a quorum (docs/zab.md §3) ids are made with ``server_id = myid``. A learner's table is the
set of committed sessions: it allocates an id without tracking it (``allocate_id``;
``LearnerSessionTracker.createSession``), adds the session when its createSession txn is applied
and never polls for expiry; the leader's table expires for everyone. Each role starts from
``retracked``: every session of the database touched from now, none closing.

This module is a core: no clock, no IO; time comes in as ``now_ms``.
"""

from __future__ import annotations

__all__ = [
    "Session",
    "SessionTracker",
    "generate_passwd",
    "initial_session_id",
    "round_to_next_interval",
    "SUPER_SECRET",
]

#: ZooKeeperServer.superSecret, XORed into the session id to seed the password generator.
SUPER_SECRET = 0xB3415C00
_MASK48 = (1 << 48) - 1
_MASK64 = (1 << 64) - 1
_MULT = 0x5DEECE66D
_CONTAINER_OWNER = -(1 << 63)


def _signed64(v: int) -> int:
    v &= _MASK64
    return v - (1 << 64) if v >> 63 else v


def generate_passwd(session_id: int) -> bytes:
    """The 16-byte password of a session: ``new Random(id ^ superSecret).nextBytes(16)``.

    ``java.util.Random`` is a 48-bit LCG; ``nextBytes`` takes ``nextInt()`` four bytes at a time,
    low byte first.
    """
    seed = ((session_id ^ SUPER_SECRET) ^ _MULT) & _MASK48
    out = bytearray()
    while len(out) < 16:
        seed = (seed * _MULT + 0xB) & _MASK48
        r = seed >> 16
        for _ in range(min(4, 16 - len(out))):
            out.append(r & 0xFF)
            r >>= 8
    return bytes(out)


def initial_session_id(now_ms: int, server_id: int) -> int:
    """``SessionTrackerImpl.initializeNextSessionId``: the first session id of this server."""
    nxt = ((now_ms << 24) & _MASK64) >> 8
    nxt |= (server_id << 56) & _MASK64
    sid = _signed64(nxt)
    if sid == _CONTAINER_OWNER:
        sid += 1  # never hand out the container marker (EphemeralType.CONTAINER_EPHEMERAL_OWNER)
    return sid


def round_to_next_interval(t_ms: int, interval_ms: int) -> int:
    """``ExpiryQueue.roundToNextInterval``: the first bucket boundary strictly after ``t_ms``."""
    return (t_ms // interval_ms + 1) * interval_ms


class Session:
    """One session: id, negotiated timeout, closing flag, its bucket and its connection."""

    __slots__ = ("session_id", "timeout_ms", "closing", "expiry_ms", "conn_id")

    def __init__(self, session_id: int, timeout_ms: int) -> None:
        self.session_id = session_id
        self.timeout_ms = timeout_ms
        self.closing = False
        self.expiry_ms = 0
        #: The connection currently attached to the session, if any.
        self.conn_id: int | None = None

    def __repr__(self) -> str:
        return f"Session(0x{self.session_id & _MASK64:x}, {self.timeout_ms} ms)"


class SessionTracker:
    """The session table of a standalone server with ExpiryQueue bucketing."""

    __slots__ = ("tick_ms", "sessions", "_buckets", "_next_expiration_ms", "_next_session_id")

    def __init__(self, *, tick_ms: int, now_ms: int, server_id: int = 0) -> None:
        if tick_ms <= 0:
            raise ValueError(f"tick_ms must be positive, got {tick_ms}")
        self.tick_ms = tick_ms
        self.sessions: dict[int, Session] = {}
        self._buckets: dict[int, set[int]] = {}
        self._next_expiration_ms = round_to_next_interval(now_ms, tick_ms)
        self._next_session_id = initial_session_id(now_ms, server_id)

    # ------------------------------------------------------------------ lifecycle

    def create_session(self, timeout_ms: int, now_ms: int) -> int:
        """Allocate the next session id, track it and touch it; returns the id."""
        sid = self.allocate_id()
        self.add_session(sid, timeout_ms, now_ms)
        return sid

    def allocate_id(self) -> int:
        """The next session id, not tracked (``LearnerSessionTracker.createSession``: a learner
        tracks a session only once its createSession txn is applied)."""
        sid = self._next_session_id
        self._next_session_id = _signed64(sid + 1)
        return sid

    def retracked(self, *, now_ms: int, server_id: int) -> SessionTracker:
        """A fresh tracker holding every session of this one, each touched at ``now_ms`` and
        none closing, whose new ids are made with ``server_id`` from ``now_ms`` (a quorum
        role starting: ``SessionTrackerImpl``'s constructor tracks the database's sessions)."""
        fresh = SessionTracker(tick_ms=self.tick_ms, now_ms=now_ms, server_id=server_id)
        for sid in sorted(self.sessions):
            fresh.add_session(sid, self.sessions[sid].timeout_ms, now_ms)
        return fresh

    def add_session(self, session_id: int, timeout_ms: int, now_ms: int) -> Session:
        """Track a known session (``trackSession``/``addSession``, also used on restore)."""
        s = self.sessions.get(session_id)
        if s is None:
            s = Session(session_id, timeout_ms)
            self.sessions[session_id] = s
        else:
            s.timeout_ms = timeout_ms
        self._update_expiry(s, timeout_ms, now_ms)
        return s

    def touch(self, session_id: int, timeout_ms: int, now_ms: int) -> bool:
        """``touchSession``: False if the session is unknown or closing, else re-bucket it."""
        s = self.sessions.get(session_id)
        if s is None or s.closing:
            return False
        self._update_expiry(s, timeout_ms, now_ms)
        return True

    def set_closing(self, session_id: int) -> None:
        s = self.sessions.get(session_id)
        if s is not None:
            s.closing = True

    def remove(self, session_id: int) -> Session | None:
        """Forget a session (its closeSession txn was applied)."""
        s = self.sessions.pop(session_id, None)
        if s is not None:
            bucket = self._buckets.get(s.expiry_ms)
            if bucket is not None:
                bucket.discard(session_id)
                if not bucket:
                    del self._buckets[s.expiry_ms]
        return s

    def is_live(self, session_id: int) -> bool:
        """Tracked and not closing (``checkSession`` passes)."""
        s = self.sessions.get(session_id)
        return s is not None and not s.closing

    # ------------------------------------------------------------------ expiry

    def _update_expiry(self, s: Session, timeout_ms: int, now_ms: int) -> None:
        new = (now_ms + timeout_ms) // self.tick_ms * self.tick_ms + self.tick_ms
        old = s.expiry_ms
        if new == old:
            return
        bucket = self._buckets.get(new)
        if bucket is None:
            self._buckets[new] = bucket = set()
        bucket.add(s.session_id)
        s.expiry_ms = new
        if old:
            prev = self._buckets.get(old)
            if prev is not None:
                prev.discard(s.session_id)
                if not prev:
                    del self._buckets[old]

    def poll_expired(self, now_ms: int) -> list[int]:
        """Every session whose bucket time is ``<= now_ms``, marked closing.

        Bucket by bucket in time order (as the expirer drains them), id order inside one.
        """
        if now_ms < self._next_expiration_ms:
            return []
        tick = self.tick_ms
        due = sorted(t for t in self._buckets if t <= now_ms)
        expired: list[int] = []
        for t in due:
            expired.extend(sorted(self._buckets.pop(t)))
        self._next_expiration_ms = (now_ms // tick + 1) * tick
        for sid in expired:
            s = self.sessions.get(sid)
            if s is not None:
                s.closing = True
                s.expiry_ms = 0
        return expired

    def deadline_ms(self) -> int | None:
        """When ``poll_expired`` may next find something (None while no bucket is occupied)."""
        if not self._buckets:
            return None
        return max(self._next_expiration_ms, min(self._buckets))

    def expiry_view(self) -> list[tuple[int, list[int]]]:
        """``[(bucket_ms, [session ids])]`` in time order (the ``dump`` word)."""
        return [(t, sorted(self._buckets[t])) for t in sorted(self._buckets)]
