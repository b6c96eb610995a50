"""Seeded fault stories on the in-test network: crashes, restarts and partitions with jittered
(but per-link FIFO) delays, then a heal. Checked: at most one leader establishes each epoch
(the ZAB paper's primary uniqueness, §III), epochs never go back on a peer, and once every
peer is up and connected the ensemble agrees on one leader (liveness after GST).

A failing seed prints itself; replay with ``pytest tests/scenarios -k "seed_<n>"``.
"""

from __future__ import annotations

import random

import pytest
from harness import Network, make_verifier

from zkfast.wire.peer_codec import ServerState

SEEDS = range(24)


def run_story(seed: int) -> Network:
    rng = random.Random(seed)
    n = rng.choice([3, 5])
    net = Network(make_verifier(n), rng=rng, jitter_ms=rng.choice([0, 5, 50]),
                  trace_messages=False, tick_ms=500, init_limit=4)
    for sid in range(1, n + 1):
        net.start(sid, last_zxid=rng.choice([0, 0x100000001, 0x100000002]), accepted_epoch=1,
                  current_epoch=1)
        net.run_until(net.now + rng.randint(0, 300))
    epochs = {sid: 1 for sid in range(1, n + 1)}
    for _ in range(rng.randint(2, 6)):
        net.run_until(net.now + rng.randint(100, 4000))
        for sid, p in net.peers.items():
            assert p.accepted_epoch >= epochs[sid], f"seed {seed}: epoch went back on p{sid}"
            epochs[sid] = p.accepted_epoch
        fault = rng.choice(["kill", "restart", "partition", "heal"])
        if fault == "kill" and len(net.peers) > 1:
            net.kill(rng.choice(sorted(net.peers)))
        elif fault == "restart":
            down = [s for s in range(1, n + 1) if s not in net.peers]
            if down:
                net.start(rng.choice(down))
        elif fault == "partition":
            sids = list(range(1, n + 1))
            rng.shuffle(sids)
            cut = rng.randint(1, n - 1)
            net.partition(set(sids[:cut]), set(sids[cut:]))
        else:
            net.heal()
    net.heal()
    for sid in range(1, n + 1):
        if sid not in net.peers:
            net.start(sid)
    net.run_until_stable(limit_ms=300_000, quiet_ms=3000)
    return net


@pytest.mark.parametrize("seed", SEEDS, ids=[f"seed_{s}" for s in SEEDS])
def test_random_faults(seed: int) -> None:
    net = run_story(seed)
    by_epoch: dict[int, set[int]] = {}
    for sid, epoch in net.established:
        by_epoch.setdefault(epoch, set()).add(sid)
    assert all(len(s) == 1 for s in by_epoch.values()), (seed, by_epoch)
    leaders = net.leaders()
    assert len(leaders) == 1, (seed, net.states())
    for sid, p in net.peers.items():
        assert p.state != ServerState.LOOKING and p.leader_sid == leaders[0], (seed, sid)
