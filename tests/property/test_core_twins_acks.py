"""Hypothesis: ``AckTracker`` compiled, pure, and the reference tracker agree on every step.

The reference is the leader's tracker as ``core/zab.py`` first wrote it (a dict of proposals
with a set of acks each, ``QuorumVerifier.contains_quorum`` per check), kept here as the
oracle. Random verifiers (majority or hierarchical with zero weights, observers) and random
sequences of proposals, acks (from voters, observers and strangers; of outstanding,
committed, epoch-start and unknown zxids), own acks up to a zxid, forgets and reads: every
call returns the same on all three, and every commit carries a quorum of voters only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zkfast import _core_py as pure
from zkfast.quorum import QuorumVerifier, verifier_from_properties

compiled = pytest.importorskip("zkfast._core", reason="compiled core not built")

FAST = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SLOW = settings(FAST, max_examples=4000)


@pytest.fixture(autouse=True)
def _slow_only_when_asked(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("slow") and "slow" not in (
        request.config.getoption("markexpr") or ""
    ):
        pytest.skip("long property run: select it with -m slow")


# ----------------------------------------------------------------------------- the oracle


@dataclass(slots=True)
class _Proposal:
    data: bytes
    acks: set[int] = field(default_factory=set)


class OracleTracker:
    """The leader's outstanding proposals and their ack sets (``Leader.processAck``)."""

    def __init__(self, verifier: QuorumVerifier, *, last_committed: int) -> None:
        self.verifier = verifier
        self.outstanding: dict[int, _Proposal] = {}
        self.last_committed = last_committed
        self.last_proposed = last_committed
        self.committed_acks: list[tuple[int, frozenset[int]]] | None = None

    def propose(self, zxid: int, data: bytes) -> None:
        assert zxid > self.last_proposed
        self.outstanding[zxid] = _Proposal(data)
        self.last_proposed = zxid

    def ack(self, sid: int, zxid: int) -> list[tuple[int, bytes]]:
        if zxid & 0xFFFFFFFF == 0 or zxid <= self.last_committed:
            return []
        p = self.outstanding.get(zxid)
        if p is None or sid not in self.verifier.voting_members:
            return []
        p.acks.add(sid)
        return self.ready()

    def ack_upto(self, sid: int, zxid: int) -> list[tuple[int, bytes]]:
        if sid in self.verifier.voting_members:
            for z, p in self.outstanding.items():
                if z > zxid:
                    break
                p.acks.add(sid)
        return self.ready()

    def forget(self, sid: int, after: int) -> None:
        for z, p in self.outstanding.items():
            if z > after:
                p.acks.discard(sid)

    def ready(self) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        while self.outstanding:
            zxid = next(iter(self.outstanding))
            p = self.outstanding[zxid]
            if not self.verifier.contains_quorum(p.acks):
                break
            del self.outstanding[zxid]
            self.last_committed = zxid
            out.append((zxid, p.data))
            if self.committed_acks is not None:
                self.committed_acks.append((zxid, frozenset(p.acks)))
        return out

    def after(self, zxid: int) -> list[tuple[int, bytes]]:
        return [(z, p.data) for z, p in self.outstanding.items() if z > zxid]


# ----------------------------------------------------------------------------- strategies


@st.composite
def verifiers(draw: st.DrawFn) -> QuorumVerifier:
    """Majority or hierarchical, 1-9 participants, 0-2 observers, sids maybe sparse/large."""
    n = draw(st.integers(1, 9))
    n_obs = draw(st.integers(0, 2))
    base = draw(st.sampled_from([1, 1, 100, 2**40]))
    sids = [base]
    for _ in range(n + n_obs - 1):
        sids.append(sids[-1] + draw(st.sampled_from([1, 1, 3])))
    props = {f"server.{s}": f"h{s}:{2000 + i}:{3000 + i}"
             + (":observer" if i >= n else "") for i, s in enumerate(sids)}
    if draw(st.booleans()):
        voters = sids[:n]
        cuts = sorted(draw(st.sets(st.integers(1, max(1, n - 1)), max_size=3)))
        bounds = [0, *[c for c in cuts if c < n], n]
        for gid, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False), start=1):
            if a < b:
                props[f"group.{gid}"] = ":".join(str(s) for s in voters[a:b])
        for s in voters:
            props[f"weight.{s}"] = str(draw(st.sampled_from([0, 1, 1, 1, 2, 3])))
    return verifier_from_properties(props)


KINDS = ["propose"] * 3 + ["ack"] * 6 + ["ack_upto"] * 2 + ["forget", "after", "ready"]
#: (kind, server index, zxid pick, proposal gap); each kind reads what it needs.
OPS = st.lists(
    st.tuples(st.sampled_from(KINDS), st.integers(0, 12),
              st.integers(0, 4) | st.integers(-3, 40), st.sampled_from([1, 1, 1, 2, 5, "epoch"])),
    min_size=20,
    max_size=200,
)


def prop_trackers_agree(verifier: QuorumVerifier, ops: list[Any], epoch: int,
                        trace: bool) -> None:
    start = epoch << 32
    tables = verifier.quorum_tables()
    oracle = OracleTracker(verifier, last_committed=start)
    twins = [m.AckTracker(*tables, last_committed=start) for m in (pure, compiled)]
    trackers: list[Any] = [oracle, *twins]
    if trace:
        for t in trackers:
            t.committed_acks = []
    servers = sorted(verifier.servers)
    proposed = [start]
    for op in ops:
        kind = op[0]
        if kind == "propose":
            gap = op[3]
            last = proposed[-1]
            if gap == "epoch" and last >> 32 < 0x7FFFFFFF:
                z = ((last >> 32) + 1) << 32 | 1
            else:
                z = last + (1 if gap == "epoch" else gap)
            for t in trackers:
                t.propose(z, b"%d" % z)
            proposed.append(z)
            continue
        if kind == "after":
            args: tuple[Any, ...] = (_pick(proposed, op[2]),)
        elif kind == "ready":
            args = ()
        else:
            i = op[1] % (len(servers) + 1)  # the last: a sid in no server line
            sid = servers[i] if i < len(servers) else 10**6 + op[1]
            args = (sid, _pick(proposed, op[2]))
        results = [getattr(t, kind)(*args) for t in trackers]
        assert results[1] == results[0] and results[2] == results[0], (kind, args, results)
        for t in twins:
            assert t.outstanding == len(oracle.outstanding)
            assert (t.last_committed, t.last_proposed) == (oracle.last_committed,
                                                            oracle.last_proposed)
    if trace:
        assert twins[0].committed_acks == oracle.committed_acks
        assert twins[1].committed_acks == oracle.committed_acks
        for _, acks in oracle.committed_acks or ():
            assert acks <= verifier.voting_members and verifier.contains_quorum(acks)


def _pick(proposed: list[int], i: int) -> int:
    """A proposed zxid, the newest first (i >= 0); an epoch start (-1); one never proposed
    (-2, -3)."""
    if i >= 0:
        return proposed[-1 - i % len(proposed)]
    last = proposed[-1]
    return {-1: (last >> 32) << 32, -2: last + 7, -3: proposed[0] - 1}[i]


ARGS = (verifiers(), OPS, st.sampled_from([1, 2, 0x7FFFFFFE]), st.booleans())
test_trackers_agree = FAST(given(*ARGS)(prop_trackers_agree))  # type: ignore[no-untyped-call]
test_trackers_agree_slow = pytest.mark.slow(
    SLOW(given(*ARGS)(prop_trackers_agree)))  # type: ignore[no-untyped-call]


@pytest.mark.parametrize("core", [pure, compiled], ids=["pure", "compiled"])
def test_observers_never_count(core: Any) -> None:
    v = verifier_from_properties({f"server.{s}": f"h:{s}:{s + 10}"
                                  + (":observer" if s > 3 else "") for s in range(1, 8)})
    t = core.AckTracker(*v.quorum_tables(), last_committed=1 << 32)
    t.propose((1 << 32) + 1, b"a")
    for obs in (4, 5, 6, 7):
        assert t.ack(obs, (1 << 32) + 1) == []
        assert t.ack_upto(obs, 1 << 40) == []
    assert t.ack(1, (1 << 32) + 1) == []
    assert t.ack(2, (1 << 32) + 1) == [((1 << 32) + 1, b"a")]


@pytest.mark.parametrize("core", [pure, compiled], ids=["pure", "compiled"])
def test_bad_tables_and_zxids(core: Any) -> None:
    with pytest.raises(KeyError):
        core.AckTracker({1: 5}, {1: 1}, {0: 0}, 1, last_committed=0)
    with pytest.raises(KeyError):
        core.AckTracker({1: 0}, {}, {0: 0}, 1, last_committed=0)
    with pytest.raises(OverflowError):
        core.AckTracker({1: 0}, {1: -1}, {0: 0}, 1, last_committed=0)
    with pytest.raises(OverflowError):
        core.AckTracker({1: 0, 2: 0}, {1: 2**62, 2: 2**62}, {0: 2**62}, 1, last_committed=0)
    t = core.AckTracker({1: 0}, {1: 1}, {0: 0}, 1, last_committed=5)
    with pytest.raises(AssertionError, match="proposal 0x5 is not after 0x5"):
        t.propose(5, b"")
    with pytest.raises(OverflowError):
        t.propose(2**63, b"")
    t.propose(2**63 - 1, b"x")
    assert t.ack(1, 2**64) == [] and t.ack(1, -(2**64)) == []
    assert t.after(-(2**70)) == [(2**63 - 1, b"x")] and t.after(2**70) == []
    assert t.ack_upto(1, 2**70) == [(2**63 - 1, b"x")]
