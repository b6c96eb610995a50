"""Storage benchmarks: restart time, snapshot time and durable write throughput, zkfast and
Apache ZooKeeper 3.8 side by side on the same data, as ratios.

Subcommands
-----------
``restart``
    1. **Dataset** (once per size, cached under ``--cache``): the snapshot file is generated
       directly (``storage.tree_io``: a DataTree built from snapshot nodes, then
       ``encode_tree``, digest included). Layout: ``/bench/gNNNN/nNNNNNNN``, ``--fanout``
       leaves per group, ``--value-bytes`` of data per leaf, the open ACL of a client list.
       A zkfast server (forceSync=no) is then started on it and ``--tail`` pipelined setData
       txns are sent, so the dataDir holds ``snapshot.<z>`` plus ``log.<z+1>``: a restart must
       read the snapshot and replay a log tail, and, as both servers do after a replay, write
       a fresh snapshot before serving.
    2. For every repetition, each server (the order alternates) gets a fresh copy of that
       dataDir (same file system, so in the page cache for both) and is timed from spawning
       the process until a raw client has completed a session handshake and ``exists /bench``
       (polled every 10 ms; Apache accepts connections before its database is loaded, so a
       served request is the only fair readiness signal). RSS (VmRSS) and peak RSS (VmHWM)
       are read right then. ``zk_znode_count`` (mntr) and a sample of leaves (data and Stat)
       are compared between the two servers of each repetition.
    3. **Snapshot while serving**: both servers run with ``snapCount=--snap-count``; a writer
       thread then keeps ``--window`` setData requests in flight until a log roll has
       triggered a background snapshot and the new ``snapshot.<zxid>`` file is complete. The
       ``version-2`` directory is polled every 5 ms: *start* is when the new ``log.<zxid>``
       appears (both servers request the snapshot at the roll), *end* is when the new
       snapshot is complete under its final name (zkfast renames ``tmp.snapshot.*``; Apache
       3.8 with forceSync writes ``snapshot.*.tmp`` via AtomicFileOutputStream and renames;
       a plain file must also pass the seal check). The servers' own figures are reported
       too: zkfast's child logs the time from fork to rename ("written in the background in N
       ms"), Apache logs ``Snapshot taken in N ms`` around ``FileTxnSnapLog.save``. Also the
       startup snapshot each server writes after replaying the tail (zkfast "written (...) in
       N ms", in-process; Apache's first "Snapshot taken").

``sync``
    Durable write throughput: ``benchmarks/load.py``'s generator (setData, create) with
    forceSync=yes on both servers and many sessions; during the middle of the measured
    window ``perf stat -e syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync -p <pid>``
    counts the server's syncs (all threads), which gives syncs per second and txns per sync
    (the group-commit batch size).

``profile``
    cProfile of ``storage.recovery.recover`` on a cached dataset, in-process.

Usage:
    python benchmarks/storage.py restart --sizes 100000,1000000 --repetitions 2 --write-results
    python benchmarks/storage.py sync --seconds 10 --repetitions 2 --write-results
    python benchmarks/storage.py profile --size 1000000
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import json
import os
import pstats
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
try:
    import zkfast  # noqa: F401
except ImportError:  # a source checkout that is not installed
    sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(BENCH_DIR))

import load  # noqa: E402  (benchmarks/load.py)
from zkfast.core.datatree import DataTree  # noqa: E402
from zkfast.storage.snapshot import Snapshot, SnapshotNode  # noqa: E402
from zkfast.storage.tree_io import (  # noqa: E402
    encode_tree,
    quick_valid,
    snapshot_file_name,
    tree_from_snapshot,
    tree_to_nodes,
)
from zkfast.testing.procs import (  # noqa: E402
    ServerProcess,
    apache_available,
    apache_server,
    four_letter_word,
    zkfast_server,
)
from zkfast.testing.rawclient import OP, RawClient, Reader, Writer  # noqa: E402

RESULTS_MD = BENCH_DIR / "RESULTS.md"
RESULTS_MARKER = "<!-- load.py inserts new load runs above this line -->"
OPEN_ACL = [(31, ("world", "anyone"))]
APACHE_HEAP = "2g"
SERVER_KINDS = ("zkfast", "apache")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ dataset


def leaf_path(i: int, fanout: int) -> str:
    return f"/bench/g{i // fanout:04d}/n{i:07d}"


def build_tree(leaves: int, *, fanout: int = 1000, value_bytes: int = 100,
               base_ms: int = 1_700_000_000_000) -> DataTree:
    """The dataset as a DataTree, through the snapshot-loading path (``tree_from_snapshot``).

    zxids are those of the creates that would have made it, in order: /bench is zxid 1, each
    group is created just before its leaves; parents' cversion/pzxid match.
    """
    nodes = list(tree_to_nodes(DataTree()))  # root and the /zookeeper system nodes
    root = nodes[0]
    groups = (leaves + fanout - 1) // fanout
    z = 1
    bench_index = len(nodes)
    nodes.append(SnapshotNode("/bench", b"", OPEN_ACL, ()))
    bench_z = z
    value = bytes((i * 7 + 3) & 0xFF for i in range(value_bytes))
    last_group_z = 0
    for g in range(groups):
        z += 1
        gz = z
        last_group_z = gz
        gi = len(nodes)
        nodes.append(SnapshotNode(f"/bench/g{g:04d}", b"", OPEN_ACL, ()))
        first, last = g * fanout, min(leaves, (g + 1) * fanout)
        for i in range(first, last):
            z += 1
            nodes.append(SnapshotNode(leaf_path(i, fanout), value, OPEN_ACL,
                                      (z, z, base_ms + z, base_ms + z, 0, 0, 0, 0, z)))
        nodes[gi].stat = (gz, gz, base_ms + gz, base_ms + gz, 0, last - first, 0, 0,
                          z if last > first else gz)
    nodes[bench_index].stat = (bench_z, bench_z, base_ms + bench_z, base_ms + bench_z, 0,
                               groups, 0, 0, last_group_z or bench_z)
    rs = list(root.stat)
    rs[5], rs[8] = rs[5] + 1, bench_z  # cversion, pzxid: /bench was created at zxid 1
    root.stat = tuple(rs)
    return tree_from_snapshot(Snapshot(nodes=nodes), z)


def write_snapshot_dir(tree: DataTree, data_dir: Path) -> Path:
    """``data_dir/version-2/snapshot.<zxid>`` of ``tree`` (plain stream, digest included)."""
    v2 = data_dir / "version-2"
    v2.mkdir(parents=True, exist_ok=True)
    path = v2 / snapshot_file_name(tree.last_processed_zxid)
    tmp = path.with_name("build." + path.name)
    tmp.write_bytes(encode_tree(tree, []))
    os.replace(tmp, path)
    return path


def _set_data_body(path: str, data: bytes) -> bytes:
    return bytes(Writer().string(path).buffer(data).int(-1).out)


def pipelined(client: RawClient, bodies: Sequence[tuple[int, bytes]], window: int = 200,
              stop: Callable[[], bool] | None = None, counter: list[int] | None = None) -> int:
    """Send requests keeping up to ``window`` in flight; returns how many were answered OK
    (``counter[0]`` is also raised by each, as the replies come).

    Replies come in request order (one session); errors are counted as not OK.
    """
    sent = done = ok = 0
    n = len(bodies)
    while done < n:
        while sent < n and sent - done < window and not (stop is not None and stop()):
            op, body = bodies[sent]
            client.send(op, body)
            sent += 1
        if sent == done:
            break
        reply = client._read_reply()
        if reply.xid < 0:
            continue
        done += 1
        if reply.err == 0:
            ok += 1
            if counter is not None:
                counter[0] += 1
    return ok


def tail_values(tail: int, leaves: int, fanout: int) -> list[tuple[str, bytes]]:
    """The (path, data) of the tail's setData txns: distinct leaves, spread over the tree."""
    rng = random.Random(7)
    picks = rng.sample(range(leaves), min(tail, leaves))
    return [(leaf_path(i, fanout), f"tail-{k:06d}".encode()) for k, i in enumerate(picks)]


@dataclass
class Dataset:
    leaves: int
    fanout: int
    value_bytes: int
    tail: int
    data_dir: str
    snapshot_zxid: int
    snapshot_bytes: int
    log_files: list[str]
    build_s: float
    tail_s: float
    digest: int


def build_dataset(cache: Path, leaves: int, *, fanout: int = 1000, value_bytes: int = 100,
                  tail: int = 20000, python: str = sys.executable) -> Dataset:
    """Build (or reuse) the dataDir for ``leaves`` (see the module docstring)."""
    home = cache / f"ds-{leaves}-f{fanout}-v{value_bytes}-t{tail}"
    meta = home / "dataset.json"
    if meta.exists():
        return Dataset(**json.loads(meta.read_text()))
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    data_dir = home / "data"
    t0 = time.monotonic()
    tree = build_tree(leaves, fanout=fanout, value_bytes=value_bytes)
    snap = write_snapshot_dir(tree, data_dir)
    zxid, digest = tree.last_processed_zxid, tree.digest()
    del tree
    build_s = time.monotonic() - t0
    log(f"dataset {leaves}: snapshot {snap.name} ({snap.stat().st_size / 2**20:.0f} MiB) "
        f"in {build_s:.1f} s")
    t0 = time.monotonic()
    if tail:
        server = zkfast_server(home / "tail-writer",
                               cfg={"dataDir": str(data_dir), "forceSync": "no",
                                    "snapCount": str(10 * tail + 100000)},
                               python=python, start=False)
        server.start(timeout_s=600)
        try:
            client = RawClient("127.0.0.1", server.client_port, io_timeout_s=120.0)
            client.connect()
            bodies = [(OP["setData"], _set_data_body(p, d))
                      for p, d in tail_values(tail, leaves, fanout)]
            ok = pipelined(client, bodies)
            assert ok == len(bodies), f"tail: {ok} of {len(bodies)} setData succeeded"
            client.close_session()
        finally:
            server.stop()
    tail_s = time.monotonic() - t0
    names = sorted(os.listdir(data_dir / "version-2"))
    ds = Dataset(leaves, fanout, value_bytes, tail, str(data_dir), zxid, snap.stat().st_size,
                 [n for n in names if n.startswith("log.")], build_s, tail_s, digest)
    assert [n for n in names if n.startswith("snapshot.")] == [snap.name], names
    meta.write_text(json.dumps(asdict(ds), indent=1))
    return ds


# ------------------------------------------------------------------------------ restart


def status_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def wait_served(server: ServerProcess, path: str = "/bench", timeout_s: float = 900.0) -> None:
    """Poll (10 ms) until a session handshake and ``exists path`` are answered."""
    deadline = time.monotonic() + timeout_s
    while True:
        if not server.running:
            raise RuntimeError(f"{server.kind} exited while starting:\n{server.log_tail()}")
        client = RawClient("127.0.0.1", server.client_port, io_timeout_s=5.0)
        try:
            if client.connect() > 0:
                err, _ = client.exists(path)
                if err == 0:
                    client.close_session()
                    return
        except (OSError, AssertionError, ConnectionError):
            pass
        finally:
            client.close()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.kind} not serving after {timeout_s} s")
        time.sleep(0.01)  # polling interval


def mntr(server: ServerProcess) -> dict[str, str]:
    out = {}
    for line in four_letter_word(server.client_port, "mntr", timeout_s=30.0).splitlines():
        if "\t" in line:
            k, v = line.split("\t", 1)
            out[k] = v
    return out


def sample_nodes(server: ServerProcess, paths: Sequence[str]) -> list[tuple[str, bytes, tuple]]:
    """(path, data, Stat) of each path, pipelined on one session."""
    client = RawClient("127.0.0.1", server.client_port, io_timeout_s=120.0)
    client.connect()
    try:
        out = []
        for p in paths:
            client.send(OP["getData"], bytes(Writer().string(p).bool(False).out))
        for p in paths:
            reply = client._read_reply()
            while reply.xid < 0:
                reply = client._read_reply()
            assert reply.err == 0, (p, reply.err)
            r = Reader(reply.body)
            data = r.buffer() or b""
            out.append((p, data, tuple(r.stat())))
        client.close_session()
        return out
    finally:
        client.close()


def _snapshot_names(v2: Path) -> set[str]:
    return {n for n in os.listdir(v2) if n.startswith("snapshot.") and not n.endswith(".tmp")}


def _complete(v2: Path, name: str) -> bool:
    p = v2 / name
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(16)
            f.seek(max(0, size - 16))
            tail = f.read()
    except FileNotFoundError:
        return False
    return quick_valid(name, size, head, tail)


def snapshot_while_serving(server: ServerProcess, ds: Dataset, window: int,
                           timeout_s: float = 900.0) -> dict[str, Any]:
    """Drive setData until a log roll's snapshot is complete (see the module docstring)."""
    v2 = Path(server.data_dir) / "version-2"
    logs0 = {n for n in os.listdir(v2) if n.startswith("log.")}
    snaps0 = _snapshot_names(v2)
    stop = threading.Event()
    counter = [0]

    def writer() -> None:
        client = RawClient("127.0.0.1", server.client_port, io_timeout_s=300.0)
        client.connect()
        rng = random.Random(11)
        try:
            while not stop.is_set():
                bodies = [(OP["setData"], _set_data_body(
                    leaf_path(rng.randrange(ds.leaves), ds.fanout), b"w" * 16))
                    for _ in range(window * 4)]
                pipelined(client, bodies, window, stop.is_set, counter)
            client.close_session()
        finally:
            client.close()

    th = threading.Thread(target=writer, daemon=True)
    t_begin = time.monotonic()
    th.start()
    t_roll = t_done = None
    ops_roll = 0
    new_snap = None
    deadline = t_begin + timeout_s
    try:
        while time.monotonic() < deadline:
            names = os.listdir(v2)
            now = time.monotonic()
            if t_roll is None and any(n.startswith("log.") and n not in logs0 for n in names):
                t_roll, ops_roll = now, counter[0]
            if t_roll is not None:
                fresh = sorted(_snapshot_names(v2) - snaps0)
                if fresh and _complete(v2, fresh[-1]):
                    t_done, new_snap = now, fresh[-1]
                    break
            time.sleep(0.005)  # polling interval
    finally:
        ops_done = counter[0]
        stop.set()
        th.join(timeout=300)
    if t_roll is None or t_done is None:
        raise RuntimeError(f"{server.kind}: no snapshot after {timeout_s} s:\n"
                           f"{server.log_tail()}")
    return {
        "poll_ms": (t_done - t_roll) * 1000,
        "snapshot": new_snap,
        "snapshot_mib": (v2 / new_snap).stat().st_size / 2**20,
        "writes_before_roll": ops_roll,
        "writes_during": ops_done - ops_roll,
        "writes_per_s_during": (ops_done - ops_roll) / max(1e-9, t_done - t_roll),
    }


_ZK_BG = re.compile(r"snapshot (\S+) written in the background in (\d+) ms")
_ZK_START = re.compile(r"snapshot (\S+) written \(.*?\) in (\d+) ms")
_ZK_RESTORED = re.compile(r"restored the database:.*")
_AP_TAKEN = re.compile(r"Snapshot taken in (\d+) ms")
_AP_LOADED = re.compile(r"(Snapshot loaded in \d+ ms.*)")


def logged_snapshot_ms(server: ServerProcess) -> tuple[list[float], list[float]]:
    """(startup snapshot ms, background snapshot ms) from the server's own log lines."""
    text = server.log_text()
    if server.kind == "zkfast":
        return ([float(m.group(2)) for m in _ZK_START.finditer(text)],
                [float(m.group(2)) for m in _ZK_BG.finditer(text)])
    taken = [float(m.group(1)) for m in _AP_TAKEN.finditer(text)]
    return taken[:1], taken[1:]


@dataclass
class RestartResult:
    server: str
    leaves: int
    repetition: int
    startup_s: float
    rss_mib: float
    hwm_mib: float
    znode_count: int
    startup_snapshot_ms: float | None
    snapshot_poll_ms: float
    snapshot_logged_ms: float | None
    snapshot_mib: float
    writes_during_snapshot: int
    writes_per_s_during_snapshot: float
    rss_after_snapshot_mib: float
    loadavg_before: str
    sample_digest: str
    log_lines: list[str] = field(default_factory=list)


def run_restart_one(kind: str, ds: Dataset, rep: int, args: argparse.Namespace,
                    sample: Sequence[str]) -> tuple[RestartResult, list[Any]]:
    with tempfile.TemporaryDirectory(prefix=f"zkstore-{kind}-", dir=args.workdir) as tmp:
        work = Path(tmp)
        data = work / "data"
        shutil.copytree(ds.data_dir, data)
        cfg = {"dataDir": str(data), "forceSync": "yes", "snapCount": str(args.snap_count)}
        if kind == "apache":
            server = apache_server(work, cfg=cfg, heap=args.apache_heap, start=False)
        elif kind == "zkfast-nogc":
            # an experiment, not zkfast as shipped: the cyclic GC off for the whole process
            site = work / "nogc-site"
            site.mkdir()
            (site / "sitecustomize.py").write_text("import gc\ngc.disable()\n")
            env = {"PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(site)])}
            server = zkfast_server(work, cfg=cfg, python=args.python, env=env, start=False)
            server.kind = "zkfast"  # its log lines and readiness are zkfast's
        else:
            server = zkfast_server(work, cfg=cfg, python=args.python, start=False)
        before = load.loadavg()
        t0 = time.monotonic()
        server.start(wait=False)
        try:
            wait_served(server)
            startup = time.monotonic() - t0
            rss = server.rss_bytes() / 2**20
            hwm = status_kib(server.pid, "VmHWM") / 1024
            count = int(mntr(server).get("zk_znode_count", "0"))
            got = sample_nodes(server, sample)
            snap = snapshot_while_serving(server, ds, args.window)
            rss2 = server.rss_bytes() / 2**20
            # the servers log their own figure a moment after the rename (zkfast when the
            # child has exited): wait for that line, a bounded while
            deadline = time.monotonic() + 120.0
            while not logged_snapshot_ms(server)[1] and time.monotonic() < deadline:
                time.sleep(0.05)  # polling interval
            start_ms, bg_ms = logged_snapshot_ms(server)
            text = server.log_text()
            lines = [m.group(0) for m in _ZK_RESTORED.finditer(text)] + \
                [m.group(1) for m in _AP_LOADED.finditer(text)] + \
                [ln for ln in text.splitlines() if "igest" in ln and
                 ("mismatch" in ln.lower() or "don't match" in ln.lower())]
        finally:
            server.stop()
    import hashlib

    h = hashlib.sha256(repr(got).encode()).hexdigest()[:16]
    return RestartResult(kind, ds.leaves, rep, startup, rss, hwm, count,
                         start_ms[0] if start_ms else None, snap["poll_ms"],
                         bg_ms[0] if bg_ms else None, snap["snapshot_mib"],
                         snap["writes_during"], snap["writes_per_s_during"], rss2, before, h,
                         lines), got


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _med(xs: Sequence[float | None]) -> float | None:
    ys = [x for x in xs if x is not None]
    return statistics.median(ys) if ys else None


def _f(x: float | None, fmt: str = "{:,.2f}") -> str:
    return "–" if x is None else fmt.format(x)


def summarize_restart(results: list[RestartResult]) -> str:
    cols = [("restart s", "startup_s", "{:,.2f}"), ("RSS MiB", "rss_mib", "{:,.0f}"),
            ("peak RSS MiB", "hwm_mib", "{:,.0f}"),
            ("startup snapshot ms", "startup_snapshot_ms", "{:,.0f}"),
            ("snapshot ms (roll→file)", "snapshot_poll_ms", "{:,.0f}"),
            ("snapshot ms (logged)", "snapshot_logged_ms", "{:,.0f}"),
            ("snapshot MiB", "snapshot_mib", "{:,.0f}"),
            ("writes/s during snapshot", "writes_per_s_during_snapshot", "{:,.0f}"),
            ("RSS after snapshot MiB", "rss_after_snapshot_mib", "{:,.0f}")]
    out = []
    for leaves in sorted({r.leaves for r in results}):
        rs = [r for r in results if r.leaves == leaves]
        counts = sorted({r.znode_count for r in rs})
        out += [f"#### {leaves:,} leaf znodes (zk_znode_count {', '.join(map(str, counts))})", "",
                "| server | " + " | ".join(c[0] for c in cols) + " |",
                "|---|" + "---:|" * len(cols)]
        meds: dict[str, list[float | None]] = {}
        for kind in (*SERVER_KINDS, "zkfast-nogc"):
            ks = [r for r in rs if r.server == kind]
            if not ks:
                continue
            cells = []
            meds[kind] = []
            for _, attr, fmt in cols:
                vals = [getattr(r, attr) for r in ks]
                m = _med(vals)
                meds[kind].append(m)
                good = [v for v in vals if v is not None]
                rng = f" ({fmt.format(min(good))}–{fmt.format(max(good))})" if len(good) > 1 else ""
                cells.append(_f(m, fmt) + rng)
            out.append(f"| {kind} | " + " | ".join(cells) + " |")
        if "zkfast" in meds and "apache" in meds:
            out.append("| **zkfast/Apache** | " + " | ".join(
                f"**{_f(_ratio(a, b))}**" if i in (0, 1, 2, 4) else _f(_ratio(a, b))
                for i, (a, b) in enumerate(zip(meds["zkfast"], meds["apache"], strict=True))) + " |")
        out.append("")
    return "\n".join(out)


def restart_line(r: RestartResult) -> str:
    return (f"[{r.leaves} rep {r.repetition} {r.server:7s}] restart {r.startup_s:6.2f} s  "
            f"rss {r.rss_mib:6.0f} MiB (peak {r.hwm_mib:6.0f})  znodes {r.znode_count}  "
            f"startup snapshot {_f(r.startup_snapshot_ms, '{:.0f}')} ms  snapshot roll→file "
            f"{r.snapshot_poll_ms:6.0f} ms (logged {_f(r.snapshot_logged_ms, '{:.0f}')} ms, "
            f"{r.snapshot_mib:.0f} MiB, {r.writes_during_snapshot} writes during, "
            f"{r.writes_per_s_during_snapshot:,.0f}/s)  rss after {r.rss_after_snapshot_mib:.0f}"
            f"  sample {r.sample_digest}  (load {r.loadavg_before})")


def cmd_restart(args: argparse.Namespace) -> tuple[str, list[Any]]:
    results: list[RestartResult] = []
    turn = 0
    kinds = [k for k in args.servers.split(",") if k]
    for leaves in [int(x) for x in args.sizes.split(",")]:
        ds = build_dataset(args.cache, leaves, fanout=args.fanout, value_bytes=args.value_bytes,
                           tail=args.tail, python=args.python)
        log(f"dataset {leaves}: {ds.data_dir} snapshot zxid 0x{ds.snapshot_zxid:x} "
            f"{ds.snapshot_bytes / 2**20:.0f} MiB, logs {ds.log_files}")
        rng = random.Random(3)
        sample = sorted({leaf_path(rng.randrange(leaves), args.fanout) for _ in range(300)} |
                        {p for p, _ in tail_values(ds.tail, leaves, args.fanout)[:100]})
        for rep in range(args.repetitions):
            order = list(kinds) if turn % 2 == 0 else list(reversed(kinds))
            turn += 1
            got: dict[str, Any] = {}
            for kind in order:
                if args.quiet_cores is not None:
                    load.wait_for_quiet(args.quiet_cores, args.quiet_wait_seconds, sys.stderr)
                r, got[kind] = run_restart_one(kind, ds, rep, args, sample)
                results.append(r)
                log(restart_line(r))
                for ln in r.log_lines:
                    log(f"    {r.server}: {ln.strip()[:200]}")
            if "zkfast" in got and "apache" in got:
                same = got["zkfast"] == got["apache"]
                log(f"sampled nodes identical on both servers: {same}")
                if not same:
                    diff = [(a, b) for a, b in zip(got["zkfast"], got["apache"], strict=False) if a != b][:3]
                    log(f"    first differences: {diff}")
    return summarize_restart(results), [asdict(r) for r in results]


# ------------------------------------------------------------------------------ sync


def perf_sync_count(pid: int, seconds: float) -> dict[str, float]:
    """fdatasync/fsync calls of every thread of ``pid`` during ``seconds``."""
    out = subprocess.run(
        ["perf", "stat", "-x", ",", "-e",
         "syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync", "-p", str(pid),
         "--", "sleep", str(seconds)],
        capture_output=True, text=True, check=False)
    counts: dict[str, float] = {}
    for line in out.stderr.splitlines():
        parts = line.split(",")
        if len(parts) > 2 and parts[2].startswith("syscalls:"):
            try:
                counts[parts[2].split("_")[-1]] = float(parts[0])
            except ValueError:
                counts[parts[2].split("_")[-1]] = float("nan")
    return counts


def _counting_start(real_start: Any, counts: dict[str, float], delay_s: float,
                    window_s: float, enabled: bool) -> Any:
    """``load.start_server`` that also counts the server's syncs from ``delay_s`` after its
    start (inside the measured window) for ``window_s``."""

    def start(kind: str, workdir: Path, cfg: Any = None) -> tuple[ServerProcess, float]:
        server, startup = real_start(kind, workdir, cfg)
        if enabled:
            def count() -> None:
                time.sleep(delay_s)  # into the measured window
                counts.update(perf_sync_count(server.pid, window_s))
            threading.Thread(target=count, daemon=True).start()
        return server, startup

    return start


@dataclass
class SyncResult:
    run: Any
    fdatasync_per_s: float
    fsync_per_s: float
    txns_per_sync: float


def cmd_sync(args: argparse.Namespace) -> tuple[str, list[Any]]:
    largs = load.parse_args([
        "--workloads", args.workloads, "--seconds", str(args.seconds),
        "--warmup-seconds", str(args.warmup_seconds), "--sessions", str(args.sessions),
        "--outstanding", str(args.outstanding), "--force-sync", "--servers", args.servers])
    classpath = load.build_loadgen()
    results: list[SyncResult] = []
    turn = 0
    perf_ok = shutil.which("perf") is not None
    for rep in range(args.repetitions):
        for w in largs.workload_list:
            order = list(largs.server_list)
            if turn % 2 == 1:
                order.reverse()
            turn += 1
            for kind in order:
                if args.quiet_cores is not None:
                    load.wait_for_quiet(args.quiet_cores, args.quiet_wait_seconds, sys.stderr)
                counts: dict[str, float] = {}
                perf_window = max(1.0, args.seconds - 2.0)
                real_start = load.start_server
                start_and_count = _counting_start(real_start, counts,
                                                  args.warmup_seconds + 2.0, perf_window,
                                                  perf_ok)
                load.start_server = start_and_count  # type: ignore[assignment]
                try:
                    r = load.run_one(kind, w, rep, classpath, largs)
                finally:
                    load.start_server = real_start  # type: ignore[assignment]
                fds = counts.get("fdatasync", float("nan")) / perf_window
                fs = counts.get("fsync", float("nan")) / perf_window
                syncs = (0 if fds != fds else fds) + (0 if fs != fs else fs)
                sr = SyncResult(r, fds, fs, r.ops_per_s / syncs if syncs else float("nan"))
                results.append(sr)
                log(load.run_line(r) + f"  fdatasync/s {fds:,.0f} fsync/s {fs:,.0f} "
                    f"txns/sync {sr.txns_per_sync:,.1f}")
    table = load.summarize([s.run for s in results], largs.workload_list, largs.server_list)
    rows = ["| workload | server | ops/s | fdatasync/s | fsync/s | txns per sync |",
            "|---|---|---:|---:|---:|---:|"]
    for w in largs.workload_list:
        for kind in largs.server_list:
            ks = [s for s in results if s.run.workload == w and s.run.server == kind]
            if ks:
                rows.append(
                    f"| {w} | {kind} | {_f(_med([s.run.ops_per_s for s in ks]), '{:,.0f}')} | "
                    f"{_f(_med([s.fdatasync_per_s for s in ks]), '{:,.0f}')} | "
                    f"{_f(_med([s.fsync_per_s for s in ks]), '{:,.0f}')} | "
                    f"{_f(_med([s.txns_per_sync for s in ks]), '{:,.1f}')} |")
    lines = [load.run_line(s.run) + f"  fdatasync/s {s.fdatasync_per_s:,.0f} fsync/s "
             f"{s.fsync_per_s:,.0f} txns/sync {s.txns_per_sync:,.1f}" for s in results]
    text = "\n".join([table, "", "Syncs (perf, medians):", "", *rows, "",
                      "<details><summary>every run, in order</summary>", "", "```", *lines,
                      "```", "", "</details>"])
    return text, [{**asdict(s.run), "fdatasync_per_s": s.fdatasync_per_s,
                   "fsync_per_s": s.fsync_per_s, "txns_per_sync": s.txns_per_sync}
                  for s in results]


# ------------------------------------------------------------------------------ profile


def _status_mib(key: str) -> float:
    return status_kib(os.getpid(), key) / 1024


def _reset_peak_rss() -> bool:
    """Start a new VmHWM (``/proc/self/clear_refs`` 5, Linux >= 4.0); False if refused."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


class GcWatch:
    """Counts the cyclic collector's runs and their time (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.collections = 0
        self.seconds = 0.0
        self._t0 = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.collections += 1
            self.seconds += time.perf_counter() - self._t0


def _timed_restore(v2: str, gc_on: bool) -> dict[str, Any]:
    """``recover()`` and ``encode_tree`` on its tree, with the GC on or off: seconds, the
    collector's runs and time, objects it tracks afterwards, RSS and peak RSS per phase."""
    import gc

    from zkfast.runtime.disk_log import OsFiles
    from zkfast.storage.recovery import recover

    was = gc.isenabled()
    if not gc_on:
        gc.disable()
    watch = GcWatch()
    gc.callbacks.append(watch)
    out: dict[str, Any] = {"gc": gc_on, "rss_before_mib": _status_mib("VmRSS")}
    try:
        hwm_ok = _reset_peak_rss()
        t0 = time.perf_counter()
        rec = recover(OsFiles(), v2, v2)
        t1 = time.perf_counter()
        out.update(recover_s=t1 - t0, gc_runs=watch.collections, gc_s=watch.seconds,
                   tracked=len(gc.get_objects()), rss_after_recover_mib=_status_mib("VmRSS"),
                   peak_recover_mib=_status_mib("VmHWM") if hwm_ok else None)
        _reset_peak_rss()
        t2 = time.perf_counter()
        stream = encode_tree(rec.tree, rec.sessions)
        t3 = time.perf_counter()
        out.update(encode_tree_s=t3 - t2, snapshot_mib=len(stream) / 2**20,
                   peak_encode_mib=_status_mib("VmHWM") if hwm_ok else None)
        del stream
    finally:
        gc.callbacks.remove(watch)
        if was:
            gc.enable()
    del rec
    gc.collect()
    return out


def _profile_line(rep: int, r: dict[str, Any]) -> str:
    return (f"rep {rep} gc {'on ' if r['gc'] else 'off'}: recover() {r['recover_s']:.2f} s "
            f"({r['gc_runs']} collections, {r['gc_s'] * 1000:.0f} ms; {r['tracked']:,} objects "
            f"tracked after), encode_tree {r['encode_tree_s']:.2f} s; RSS "
            f"{r['rss_before_mib']:.0f} -> {r['rss_after_recover_mib']:.0f} MiB, peak during "
            f"recover {_f(r['peak_recover_mib'], '{:.0f}')}, during encode_tree "
            f"{_f(r['peak_encode_mib'], '{:.0f}')} MiB  (load {load.loadavg()})")


def cmd_profile(args: argparse.Namespace) -> tuple[str, list[Any]]:
    """In-process: recover() and encode_tree timed with the GC on and off (no profiler,
    alternating, ``--repetitions`` each), then one cProfile of recover()."""
    from zkfast.runtime.disk_log import OsFiles
    from zkfast.storage.recovery import recover

    ds = build_dataset(args.cache, args.size, fanout=args.fanout, value_bytes=args.value_bytes,
                       tail=args.tail, python=args.python)
    lines = []
    raw = []
    with tempfile.TemporaryDirectory(prefix="zkstore-prof-", dir=args.workdir) as tmp:
        data = Path(tmp) / "data"
        shutil.copytree(ds.data_dir, data)
        v2 = str(data / "version-2")
        for rep in range(args.repetitions):
            for gc_on in (True, False):
                # recovery writes nothing when the snapshot is valid and the tail intact
                r = _timed_restore(v2, gc_on)
                raw.append({"rep": rep, **r})
                lines.append(_profile_line(rep, r))
                log(lines[-1])
        prof = cProfile.Profile()
        t0 = time.monotonic()
        prof.enable()
        rec = recover(OsFiles(), v2, v2)
        prof.disable()
        wall = time.monotonic() - t0
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(25)
    s2 = io.StringIO()
    pstats.Stats(prof, stream=s2).sort_stats("tottime").print_stats(15)
    text = ("\n".join(lines) + "\n\n"
            f"recover() of {args.size:,} leaves: {wall:.2f} s under cProfile, "
            f"{len(rec.tree.nodes):,} nodes, {rec.txns_replayed} txns replayed\n\n"
            + s.getvalue() + "\n" + s2.getvalue())
    return text, raw


# ------------------------------------------------------------------------------ main


def write_results(section: str) -> None:
    text = RESULTS_MD.read_text("utf-8")
    if RESULTS_MARKER in text:
        text = text.replace(RESULTS_MARKER, section.rstrip() + "\n\n" + RESULTS_MARKER, 1)
    else:
        text = text.rstrip() + "\n\n" + section.rstrip() + "\n"
    RESULTS_MD.write_text(text, "utf-8")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--servers", default=",".join(SERVER_KINDS),
                        help="restart also takes zkfast-nogc: zkfast with the cyclic garbage "
                        "collector off in the whole process (an experiment, for the profile)")
    common.add_argument("--repetitions", type=int, default=1)
    common.add_argument("--quiet-cores", type=float)
    common.add_argument("--quiet-wait-seconds", type=float, default=120.0)
    common.add_argument("--json", type=Path)
    common.add_argument("--write-results", action="store_true")
    common.add_argument("--note", default="")
    common.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "zkstore-ds")
    common.add_argument("--workdir", default=None, help="parent of the per-run directories")
    common.add_argument("--fanout", type=int, default=1000)
    common.add_argument("--value-bytes", type=int, default=100)
    common.add_argument("--tail", type=int, default=20000, help="setData txns in the log tail")
    common.add_argument("--python", default=sys.executable)
    r = sub.add_parser("restart", parents=[common])
    r.add_argument("--sizes", default="100000,1000000")
    r.add_argument("--snap-count", type=int, default=20000)
    r.add_argument("--window", type=int, default=100, help="setData in flight while snapshotting")
    r.add_argument("--apache-heap", default=APACHE_HEAP)
    s = sub.add_parser("sync", parents=[common])
    s.add_argument("--workloads", default="setData,create")
    s.add_argument("--seconds", type=float, default=10.0)
    s.add_argument("--warmup-seconds", type=float, default=10.0)
    s.add_argument("--sessions", type=int, default=32)
    s.add_argument("--outstanding", type=int, default=16)
    pr = sub.add_parser("profile", parents=[common])
    pr.add_argument("--size", type=int, default=1000000)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if "apache" in args.servers and not apache_available():
        raise SystemExit("Apache ZooKeeper 3.8 jars or java not found")
    command = "python benchmarks/storage.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    started = dt.datetime.now(dt.timezone.utc)
    load_before = load.loadavg()
    text, raw = {"restart": cmd_restart, "sync": cmd_sync, "profile": cmd_profile}[args.cmd](args)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(raw, indent=1, default=str), "utf-8")
    if args.write_results and args.cmd != "profile":
        title = {"restart": "Storage: restart and snapshot time",
                 "sync": "Storage: durable write throughput (forceSync=yes)"}[args.cmd]
        section = "\n".join([
            f"### {title}, {started:%Y-%m-%d %H:%M} UTC", "", f"    {command.strip()}", "",
            f"- Machine: {load.machine_description()}. Load average before the run: "
            f"{load_before}; after: {load.loadavg()}.",
            f"- Build: {load.zkfast_build_description()}; Apache ZooKeeper 3.8.0 (Debian jars), "
            f"-Xmx{getattr(args, 'apache_heap', load.APACHE_HEAP)}.",
            "- Cells are medians over repetitions (min–max in brackets); the server order "
            "alternates between repetitions.",
        ] + ([f"- Note: {args.note}"] if args.note else []) + ["", text])
        write_results(section)
        log(f"wrote a section to {RESULTS_MD}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
