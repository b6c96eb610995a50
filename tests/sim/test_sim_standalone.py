"""Seeded simulations of the standalone server (STYLE §7 `sim/`): the real ServerCore behind
the real Driver, the real DiskTxnLog over a faulty in-memory disk (slow fsync, lost unsynced
writes, torn last write, EIO), crashes and restarts through the real recovery, and clients on a
network that delays, resets and partitions their connections. Checked: every acknowledged
write survives every crash; appended and acknowledged zxids strictly increase; no write reply
before its txn is durable; after healing every client gets writes acknowledged again.

``ZKFAST_SIM_SEED=N pytest tests/sim`` replays one seed; ``-m slow`` runs many more."""

from __future__ import annotations

import os

import pytest

from zkfast.testing import sim_env, vopr

ENV_SEED = os.environ.get("ZKFAST_SIM_SEED")
FIXED = [int(ENV_SEED)] if ENV_SEED else list(range(24))
SLOW = [] if ENV_SEED else list(range(24, 1000))


def _check(res: vopr.RunResult) -> None:
    assert res.ok, (f"seed {res.seed}: {res.error}\n{res.summary}\n{res.trace}\n"
                    f"replay: python -m zkfast.testing.vopr --seed {res.seed} --mode standalone")


@pytest.mark.parametrize("seed", FIXED)
def test_standalone_seed(seed: int) -> None:
    res = vopr.run_standalone(seed)
    _check(res)
    assert res.stats["acks"] > 0 and res.stats["recoveries"] >= 2


@pytest.mark.slow
@pytest.mark.parametrize("seed", SLOW)
def test_standalone_seed_slow(seed: int) -> None:
    _check(vopr.run_standalone(seed))


def test_same_seed_same_run() -> None:
    a, b = vopr.run_standalone(3), vopr.run_standalone(3)
    assert a.ok and b.ok
    assert (a.digest, a.stats) == (b.digest, b.stats)


def test_a_lying_fsync_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checker is not vacuous: a disk whose fsync keeps nothing loses acknowledged writes
    at the next crash, and the run says so."""
    monkeypatch.setattr(sim_env.SimDisk, "complete_syncs",
                        lambda self: self.pending_syncs.clear())
    res = vopr.run_standalone(0)
    assert not res.ok and "acknowledged" in res.error


def test_an_early_durable_report_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A log that reports durable before its fsync returns is
    found by some seed (lost acknowledged writes, or a log recovery refuses)."""
    real = sim_env.SimLoop.run_in_executor

    def early(self: sim_env.SimLoop, ex: object, fn: object, *args: object) -> object:
        fut = real(self, ex, fn, *args)  # type: ignore[arg-type]
        finish = fut.finish
        self.world.after(0, lambda: finish(None))
        fut.finish = lambda exc: None  # type: ignore[method-assign]
        return fut

    monkeypatch.setattr(sim_env.SimLoop, "run_in_executor", early)
    assert any(not vopr.run_standalone(seed).ok for seed in range(16))
