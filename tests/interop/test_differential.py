"""Differential test: the same seeded op sequence against Apache ZooKeeper 3.8 and zkfast.

Each seed gets a fresh Apache server and a fresh zkfast server with the same settings (TTL nodes
enabled). The normalised traces (every ReplyHeader, error code, reply body with every Stat field
except ctime/mtime, session ids mapped to session indexes, sequential names, the notifications
each session received and their order, and a final dump of the tree) must be equal. See
`zkfast.testing.differential` for what is generated and normalised.

Seeds: a few fixed ones by default, more under the `slow` marker. `ZKFAST_DIFF_SEED=17` (or
`17,18`) replays exactly those seeds instead. The seed and the first differing steps are printed
on failure. `test_apache_is_deterministic` runs one seed twice against Apache: it proves the
normalisation leaves nothing nondeterministic, so any difference against zkfast is zkfast's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from zkfast.testing.differential import (
    SERVER_PROPS,
    Step,
    Trace,
    close_order_steps,
    compare,
    format_step,
    generate,
    run_seed,
    run_steps,
    sweep_steps,
)
from zkfast.testing.procs import ServerProcess, apache_available, apache_server, zkfast_server

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(not apache_available(), reason="Apache ZooKeeper 3.8 is not installed"),
]

#: The same -D properties for both servers (TTL nodes, a super digest).
PROPS = dict(SERVER_PROPS)
DEFAULT_SEEDS = [1, 2, 3]
SLOW_SEEDS = list(range(100, 120))
STEPS = 150


def _env_seeds() -> list[int] | None:
    raw = os.environ.get("ZKFAST_DIFF_SEED", "").strip()
    return [int(s) for s in raw.split(",") if s.strip()] if raw else None


def _seed_params() -> list[object]:
    replay = _env_seeds()
    if replay is not None:
        return list(replay)
    return [*DEFAULT_SEEDS, *(pytest.param(s, marks=pytest.mark.slow) for s in SLOW_SEEDS)]


def _reference(make: Callable[[], ServerProcess], seed: int) -> tuple[list[Step], Trace]:
    """Generate the steps of `seed` against a fresh reference server (it steers the generator)."""
    server = make()
    try:
        return run_seed(seed, "127.0.0.1", server.client_port, STEPS)
    except OSError:
        if not server.running:
            pytest.fail(f"the reference Apache server died on seed {seed}:\n{server.log_tail(30)}")
        raise
    finally:
        server.stop()


def _replay(make: Callable[[], ServerProcess], steps: list[Step]) -> Trace:
    server = make()
    try:
        return run_steps(steps, "127.0.0.1", server.client_port)
    finally:
        server.stop()


def _report(seed: int, diffs: list[str], kinds: str) -> str:
    return (
        f"seed {seed}: {kinds} differ (replay: ZKFAST_DIFF_SEED={seed} pytest "
        f"tests/interop/test_differential.py)\n" + "\n".join(diffs)
    )


@pytest.mark.parametrize("seed", _seed_params())
def test_zkfast_matches_apache(seed: int, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    replay = _env_seeds()
    if (
        seed in SLOW_SEEDS
        and not replay
        and "slow" not in (request.config.getoption("markexpr") or "")
    ):
        pytest.skip("a slow seed: run with -m slow")
    print(f"differential seed {seed}")
    steps, expected = _reference(lambda: apache_server(tmp_path / "apache", jvm_props=PROPS), seed)
    actual = _replay(lambda: zkfast_server(tmp_path / "zkfast", props=PROPS), steps)
    diffs = compare(steps, expected, actual)
    assert not diffs, _report(seed, diffs, "Apache (expected) and zkfast (actual)")


def test_path_sweep_matches_apache(tmp_path: Path) -> None:
    """Every path-taking op over malformed, system and edge-character paths (no seed)."""
    steps = sweep_steps()
    expected = _replay(lambda: apache_server(tmp_path / "apache", jvm_props=PROPS), steps)
    actual = _replay(lambda: zkfast_server(tmp_path / "zkfast", props=PROPS), steps)
    diffs = compare(steps, expected, actual, limit=10)
    assert not diffs, "the path sweep differs (Apache expected, zkfast actual):\n" + "\n".join(
        diffs
    )


def test_session_close_order_matches_apache(tmp_path: Path) -> None:
    """Ephemerals of a closing session go (and notify) in Apache's order, for several sizes."""
    steps = close_order_steps()
    expected = _replay(lambda: apache_server(tmp_path / "apache", jvm_props=PROPS), steps)
    actual = _replay(lambda: zkfast_server(tmp_path / "zkfast", props=PROPS), steps)
    diffs = compare(steps, expected, actual, limit=10)
    assert not diffs, "deletion order at session close differs:\n" + "\n".join(diffs)


def test_apache_is_deterministic(tmp_path: Path) -> None:
    """Two fresh Apache servers give equal normalised traces for the same seed."""
    seed = DEFAULT_SEEDS[0]
    steps, first = _reference(lambda: apache_server(tmp_path / "a1", jvm_props=PROPS), seed)
    steps2, second = _reference(lambda: apache_server(tmp_path / "a2", jvm_props=PROPS), seed)
    assert steps == steps2
    diffs = compare(steps, first, second)
    assert not diffs, _report(seed, diffs, "two Apache runs")
    # the run exercised errors and watches, not just the happy path
    errs = {r[4] for r in first.records if len(r) > 4 and isinstance(r[4], int) and r[4] < 0}
    assert {-101, -110, -103, -111, -114}.issubset(errs), sorted(errs)
    assert any(r[-1] for r in first.records if isinstance(r[-1], list) and r[0] != "tree")


def test_generator_is_seeded() -> None:
    assert generate(5) == generate(5)
    assert generate(5) != generate(6)
    assert all(format_step(s) for s in generate(5))
