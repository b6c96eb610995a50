"""The write path of one ServerCore, in-process: CPU, instructions and memory per create/setData.

No sockets, no disk and no Apache here: one connection's create or setData frames (the shape
``loadgen/ZkLoad.java`` sends: 128-byte values, the open ACL, creates under one parent) are fed
to ``ServerCore.step`` in batches of ``--batch``, each batch followed by the ``TxnsDurable``
that applies it (an in-memory log). What it reports covers prep, the txn encoding, the apply and
the replies, the part of a write that no load generator or kernel disturbs:

- CPU µs per op (``time.process_time`` around the steps only; frames are built outside);
- RSS growth per op after the run (for create: bytes per znode left in the server), and the
  objects left tracked by the cyclic collector (everything alive before the run is frozen).

For numbers that do not move with a busy machine, count instructions with callgrind over two
sizes and take the difference per op (it includes about 13k instructions per op of frame
building)::

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python benchmarks/write_path.py --ops 20000 --workload create   # minus --ops 2000

Not a pytest-benchmark: a tool for before/after comparisons of the write path (results in
``RESULTS.md``, "Whole-server load").
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from collections.abc import Sequence

from zkfast.config import ServerConfig
from zkfast.core.events import ClientConnected, ClientFramesReceived, TxnsDurable
from zkfast.core.server import ServerCore
from zkfast.wire import client_codec as cc

T0 = 1_700_000_000_000
OPEN = [(31, ("world", "anyone"))]
DATA_ZNODES = 1000


def rss_kib() -> int:
    """VmRSS of this process."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def frames(workload: str, lo: int, hi: int, value: bytes) -> list[bytes]:
    """Request frames ``lo..hi-1`` (without the length prefix), as the load generator's."""
    out = []
    for i in range(lo, hi):
        if workload == "create":
            rec: tuple[object, ...] = (f"/zkload/create/s000-{i}", value, OPEN, 0)
            out.append(cc.encode_request(i, 1, rec)[4:])
        else:
            rec = (f"/zkload/data/{i % DATA_ZNODES:07d}", value, -1)
            out.append(cc.encode_request(i, 5, rec)[4:])
    return out


def setup(value: bytes) -> ServerCore:
    """A core with one open session and the generator's parents and data znodes."""
    core = ServerCore(ServerConfig(), now_ms=T0, rng=random.Random(1))
    core.step(ClientConnected(1, "127.0.0.1", 5000, False, ()), T0)
    core.step(ClientFramesReceived(1, [cc.encode_connect_request(30000)[4:]]), T0)
    core.step(TxnsDurable(core.last_proposed_zxid), T0)
    paths = ["/zkload", "/zkload/create", "/zkload/data"]
    paths += [f"/zkload/data/{i:07d}" for i in range(DATA_ZNODES)]
    reqs = [cc.encode_request(1, 1, (p, value if p.count("/") == 3 else b"", OPEN, 0))[4:]
            for p in paths]
    for i in range(0, len(reqs), 256):
        core.step(ClientFramesReceived(1, reqs[i:i + 256]), T0)
        core.step(TxnsDurable(core.last_proposed_zxid), T0)
    return core


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--workload", choices=("create", "setData"), default="create")
    p.add_argument("--ops", type=int, default=200_000)
    p.add_argument("--batch", type=int, default=256, help="frames per ClientFramesReceived")
    p.add_argument("--value-bytes", type=int, default=128)
    args = p.parse_args(argv)
    value = b"x" * args.value_bytes
    core = setup(value)
    gc.collect()
    gc.freeze()
    rss0 = rss_kib()
    spent = 0.0
    for lo in range(0, args.ops, args.batch):
        batch = frames(args.workload, lo, min(args.ops, lo + args.batch), value)
        t0 = time.process_time()
        core.step(ClientFramesReceived(1, batch), T0)
        core.step(TxnsDurable(core.last_proposed_zxid), T0)
        spent += time.process_time() - t0
    del batch
    gc.collect()
    grown = (rss_kib() - rss0) * 1024
    n = max(1, args.ops)
    print(f"{args.workload}: {args.ops} ops, {spent / n * 1e6:.2f} µs CPU per op, RSS "
          f"+{grown / 2**20:.1f} MiB = {grown / n:.0f} bytes per op, "
          f"{len(gc.get_objects())} objects tracked by the collector (not frozen)")
    assert core.tree.last_processed_zxid == core.last_proposed_zxid
    return 0


if __name__ == "__main__":
    sys.exit(main())
