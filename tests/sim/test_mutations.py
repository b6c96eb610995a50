"""Mutation check: the simulator catches each deliberately broken ZAB rule (``mutations``).

For each mutation a fixed set of seeded ensemble runs (``vopr.run_zab``) and, where seeds hit
it rarely, a scripted scenario, must report a violation naming the broken invariant; the
same seeds and scenario run clean without the mutation. Measured on the dev machine: each
mutation is caught by its first seed within 0.1-0.3 s of wall time (``skip_truncate``: 25 of
seeds 0..99, its scripted scenario in ~0.05 s); this file runs in ~10 s.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from zkfast.testing import vopr
from zkfast.testing.checkers import Violation
from zkfast.testing.mutations import MUTATIONS, mutation
from zkfast.testing.scenarios_sim import Ensemble, ScenarioFailed

#: name -> (seeds, run_zab keyword arguments, what the violation must say)
SEEDED: dict[str, tuple[list[int], dict[str, int], tuple[str, ...]]] = {
    "ack_before_fsync": ([0, 1, 2], {}, ("sent ACK", "before its log held it durably")),
    "count_non_voter": ([0, 1, 2], {"observers": 2}, ("counted non-voters",)),
    "newleader_ack_early": ([0, 1], {}, ("acked NEWLEADER",)),
    # 25 of seeds 0..99 hit a TRUNC whose cut matters; these four do.
    "skip_truncate": ([2, 16, 17, 24], {}, ("has digest", "logged zxid")),
}


def _run(seed: int, kw: dict[str, int]) -> vopr.RunResult:
    return vopr.run_zab(seed, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(SEEDED))
def test_seeds_catch_the_mutation(name: str) -> None:
    seeds, kw, says = SEEDED[name]
    with mutation(name):
        results = [_run(s, kw) for s in seeds]
    for r in results:
        assert not r.ok, f"{name}: seed {r.seed} ran clean under the mutation"
        first = r.error.splitlines()[0]
        assert any(s in first for s in says), f"{name}: seed {r.seed}: {first}"


@pytest.mark.parametrize("name", sorted(SEEDED))
def test_the_same_seeds_are_clean_without_it(name: str) -> None:
    seeds, kw, _ = SEEDED[name]
    for s in seeds:
        r = _run(s, kw)
        assert r.ok, f"seed {s}: {r.error}"


def test_every_mutation_is_checked() -> None:
    assert set(MUTATIONS) == set(SEEDED) | set(SCRIPTED)


# ---------------------------------------------------------------------------- scripted


def _truncated_old_leader() -> None:
    """The old leader logs a txn nobody else has and is cut off; the others elect and commit
    more; the old leader returns (TRUNC) and then applies the new leader's txns."""
    ens = Ensemble(4, n=3)
    ens.start()
    ld = ens.wait_leader()
    cl = ens.client(ld)
    ens.writes(cl, "/c", 2)
    ens.partition([ld], [s for s in sorted(ens.nodes) if s != ld])
    cl.create("/x", b"x")
    ens.run(50)
    ens.crash(ld)
    ens.heal()
    new = ens.wait_leader()
    ens.restart(ld)
    ens.wait_broadcast(ld)
    assert ens.traced("sync_plan", sid=ld, kind="TRUNC")
    ens.writes(ens.client(new), "/after", 3)
    ens.converge()


def _stale_highest_sid() -> None:
    """The highest sid misses a commit (partitioned); the leader of that commit dies; the two
    left must elect the one with the commit."""
    ens = Ensemble(5, n=3)
    ens.start()
    ld = ens.wait_leader()
    assert ld == 3
    ens.writes(ens.client(ld), "/a", 2)
    ens.partition([3], [1, 2])
    ens.run_until(lambda: ens.leader() in (1, 2), 30_000, "a leader of p1, p2")
    new = ens.wait_leader()
    ens.writes(ens.client(new), "/b", 2)
    ens.crash(new)
    ens.heal()
    ens.wait_leader(limit_ms=40_000)
    ens.converge(limit_ms=40_000)


#: name -> (scenario, the error it must raise under the mutation, what the error says)
SCRIPTED: dict[str, tuple[Callable[[], None], type[BaseException], str]] = {
    "skip_truncate": (_truncated_old_leader, Violation, "has digest"),
    # Zab's own check (a leader turns away a learner ahead of it) keeps the data safe: the
    # stale leader never gets a quorum, and the ensemble never serves again.
    "vote_ignores_zxid": (_stale_highest_sid, ScenarioFailed, "a serving leader"),
}


@pytest.mark.parametrize("name", sorted(SCRIPTED))
def test_scripted_scenario_catches_the_mutation(name: str) -> None:
    scenario, error, says = SCRIPTED[name]
    with mutation(name), pytest.raises(error) as e:
        scenario()
    assert says in str(e.value).splitlines()[0]


@pytest.mark.parametrize("name", sorted(SCRIPTED))
def test_scripted_scenario_is_clean_without_it(name: str) -> None:
    SCRIPTED[name][0]()


# ---------------------------------------------------------------------------- the runner flag


def test_vopr_mutation_flag(capsys: pytest.CaptureFixture[str]) -> None:
    """``--mutation NAME`` runs the seed with the rule broken (exit 1, the violation named),
    then puts it back: the same seed runs clean after."""
    argv = ["--seed", "0", "--mode", "zab"]
    assert vopr.main([*argv, "--mutation", "ack_before_fsync"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("mutation=ack_before_fsync\n") and "sent ACK" in out
    assert vopr.main(argv) == 0
    with pytest.raises(SystemExit):
        vopr.main([*argv, "--mutation", "no_such_rule"])
