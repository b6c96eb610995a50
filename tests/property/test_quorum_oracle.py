"""Hypothesis: quorum counting and vote ordering against naive oracles, pure vs compiled.

The oracle restates Apache's rules as directly as possible: QuorumMaj counts voting members
(``size > half``), QuorumHierarchical counts groups holding more than half of their weight
among groups of non-zero weight (``QuorumHierarchical.containsQuorum`` after
``SyncedLearnerTracker`` dropped non-voters), and ``totalOrderPredicate`` compares (epoch,
zxid, sid) with weight-0 candidates never winning.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zkfast import _core_py as pure
from zkfast.quorum import QuorumServer, QuorumVerifier

compiled = pytest.importorskip("zkfast._core", reason="compiled core not built")
TWINS = [pure, compiled]
FAST = settings(max_examples=300, deadline=None)
LONG = st.integers(-(1 << 63), (1 << 63) - 1)


def _server(sid: int, observer: bool) -> QuorumServer:
    return QuorumServer(sid, ((f"h{sid}", 1, 2),), "observer" if observer else "participant")


@st.composite
def majority_systems(draw):  # type: ignore[no-untyped-def]
    sids = draw(st.sets(st.integers(1, 40), min_size=1, max_size=12))
    observers = draw(st.sets(st.sampled_from(sorted(sids)))) if len(sids) > 1 else set()
    servers = {s: _server(s, s in observers) for s in sids}
    acks = draw(st.lists(st.integers(0, 45), max_size=20))
    return servers, acks


@st.composite
def hierarchical_systems(draw):  # type: ignore[no-untyped-def]
    sids = sorted(draw(st.sets(st.integers(1, 40), min_size=1, max_size=12)))
    groups: dict[int, list[int]] = {}
    for s in sids:
        groups.setdefault(draw(st.integers(1, 4)), []).append(s)
    weights = {s: draw(st.integers(0, 3)) for s in sids}
    acks = draw(st.lists(st.sampled_from(sids + [99]), max_size=20))
    return {s: _server(s, False) for s in sids}, groups, weights, acks


def maj_oracle(servers: dict[int, QuorumServer], acks: list[int]) -> bool:
    voters = {s for s, q in servers.items() if q.is_participant}
    return len(set(acks) & voters) > len(voters) // 2


def hier_oracle(groups: dict[int, list[int]], weights: dict[int, int], acks: list[int]) -> bool:
    if not acks:
        return False
    live_groups = [g for g, ss in groups.items() if sum(weights[s] for s in ss) > 0]
    held = 0
    for ss in groups.values():
        total = sum(weights[s] for s in ss)
        got = sum(weights[s] for s in ss if s in set(acks))
        if got > total // 2:
            held += 1
    return held > len(live_groups) // 2


@FAST
@given(majority_systems())
def test_majority_against_oracle(system) -> None:  # type: ignore[no-untyped-def]
    servers, acks = system
    assert QuorumVerifier(servers).contains_quorum(acks) == maj_oracle(servers, acks)


@FAST
@given(hierarchical_systems())
def test_hierarchical_against_oracle(system) -> None:  # type: ignore[no-untyped-def]
    servers, groups, weights, acks = system
    v = QuorumVerifier(servers, groups=groups, weights=weights)
    assert v.contains_quorum(acks) == hier_oracle(groups, weights, acks)


@FAST
@given(hierarchical_systems())
def test_count_quorum_twins_agree(system) -> None:  # type: ignore[no-untyped-def]
    servers, groups, weights, acks = system
    v = QuorumVerifier(servers, groups=groups, weights=weights)
    args = (acks, v._member_group, v._member_weight, v._group_half, v._groups_min)
    assert pure.count_quorum(*args) == compiled.count_quorum(*args)


def vote_oracle(new: tuple[int, int, int], cur: tuple[int, int, int], weight: int) -> bool:
    if weight == 0:
        return False
    (ni, nz, ne), (ci, cz, ce) = new, cur
    return (ne, nz, ni) > (ce, cz, ci)


@FAST
@given(LONG, LONG, LONG, LONG, LONG, LONG, st.integers(0, 3))
def test_vote_greater_against_oracle(ni, nz, ne, ci, cz, ce, w) -> None:  # type: ignore
    for twin in TWINS:
        assert twin.vote_greater(ni, nz, ne, ci, cz, ce, w) == vote_oracle(
            (ni, nz, ne), (ci, cz, ce), w)


@FAST
@given(st.lists(st.tuples(st.integers(1, 5), st.integers(-1, 3), st.integers(0, 2)),
                min_size=1, max_size=8))
def test_vote_order_is_total_and_strict(votes) -> None:  # type: ignore[no-untyped-def]
    # Among weight-1 candidates exactly one is not beaten: the ensemble agrees on a winner.
    distinct = list(dict.fromkeys(votes))
    unbeaten = [v for v in distinct
                if not any(compiled.vote_greater(w[0], w[1], w[2], v[0], v[1], v[2])
                           for w in distinct)]
    assert len(unbeaten) == 1
    assert unbeaten[0] == max(distinct, key=lambda v: (v[2], v[1], v[0]))
