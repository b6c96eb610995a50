"""Ensemble benchmark (issue 5): 3-node zkfast and Apache ZooKeeper 3.8 ensembles side by side.

Two measurements, each on fresh 3-node ensembles on loopback (`zkfast.testing.procs.Ensemble`),
the two kinds alternating so that neither always runs first on a warmer machine:

* **Load**: the Java load generator of `load.py` (`loadgen/ZkLoad.java`, the official client's
  async API) with ``--spread``: session i talks to server i mod 3 only (so two thirds of the
  sessions are on followers: their writes are forwarded to the leader and committed by a
  quorum), and each session syncs before the load starts. Workloads getData / setData /
  create / mixed (90% getData, 10% setData), 128-byte values; ops/s and latency from the
  generator, CPU of the three servers together (and of the generator, and of everything else
  on the machine) over the measured window, RSS of the three servers together after the load,
  and startup (process launch until every server is in ZAB's broadcast phase). Tables and
  ratios come from `load.summarize`.
* **Failover**: SIGKILL of the leader, then a raw client session (`testing.rawclient`) on
  each surviving server retries setData until one is acknowledged: the time from the kill to
  that first acknowledged write through another server. Retries poll every 5 ms with a
  reconnect (resuming the same session) whenever the server closed the connection. Median
  and min-max over ``--failover-tries`` fresh ensembles per kind.

Usage:
    python benchmarks/ensemble.py [--workloads getData,setData,create,mixed] [--seconds N]
        [--warmup-seconds N] [--sessions N] [--outstanding N] [--servers zkfast,apache]
        [--repetitions N] [--failover-tries N] [--skip-load] [--skip-failover]
        [--write-results] [--json PATH]

`--write-results` inserts a dated section into the "Ensemble (issue 5)" part of
benchmarks/RESULTS.md with the exact command.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import load  # noqa: E402
from zkfast.testing.procs import Ensemble, apache_available  # noqa: E402
from zkfast.testing.rawclient import RawClient  # noqa: E402

RESULTS_MD = BENCH_DIR / "RESULTS.md"
SECTION_MARKER = "<!-- ensemble.py inserts new ensemble runs above this line -->"
#: Load runs: load.py's zoo.cfg (tickTime 2000, forceSync=no) plus the quorum limits.
LOAD_CFG = {**load.SERVER_CFG, "initLimit": "10", "syncLimit": "5"}
#: Failover runs: election.py's settings (tickTime 500), forceSync left at its default (yes).
FAILOVER_CFG = {"tickTime": "500", "initLimit": "10", "syncLimit": "5"}
SERVE_S = 120.0
POLL_S = 0.005
FAILOVER_LIMIT_S = 120.0


def _ensemble(kind: str, workdir: Path, cfg: dict[str, str]) -> Ensemble:
    return Ensemble(workdir, [kind] * 3, cfg=cfg)


def start_ensemble(kind: str, workdir: Path, cfg: dict[str, str]) -> tuple[Ensemble, float]:
    """Start a fresh 3-node ensemble; return it and the seconds until every server serves."""
    ens = _ensemble(kind, workdir, cfg)
    t0 = time.monotonic()
    try:
        ens.start(timeout_s=SERVE_S)
        ens.wait_serving(timeout_s=SERVE_S)
    except BaseException:
        ens.stop()
        raise
    return ens, time.monotonic() - t0


# ------------------------------------------------------------------------------- load


def _cpu(pids: Sequence[int]) -> float:
    return sum(load.cpu_seconds(p) for p in pids)


def run_loadgen(classpath: str, ens: Ensemble, workload: str,
                args: argparse.Namespace) -> tuple[dict[str, Any], float, float, float]:
    """Run ZkLoad --spread over the ensemble's servers; CPU sampled at the window markers.

    Returns:
        (the generator's JSON result, servers' CPU cores, generator CPU cores, other CPU
        cores), CPU as average cores busy during the measured window.
    """
    hosts = ",".join(ens.servers[s].hosts for s in sorted(ens.kinds))
    pids = [ens.servers[s].pid for s in sorted(ens.kinds)]
    cmd = [
        "java", "-Xms256m", "-Xmx1g", "-Dzookeeper.sasl.client=false",
        f"-Dzookeeper.clientCnxnSocket={load.CLIENT_SOCKETS[args.client_socket]}",
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=error",
        "-cp", classpath, "ZkLoad", "--hosts", hosts, "--spread",
        "--workload", workload,
        "--sessions", str(args.sessions), "--outstanding", str(args.outstanding),
        "--warmup-seconds", str(args.warmup_seconds), "--seconds", str(args.seconds),
        "--znodes", str(args.znodes), "--value-bytes", str(args.value_bytes),
        "--issue-mode", args.issue_mode, "--root", args.root,
    ]
    if not args.cleanup:
        cmd.append("--no-cleanup")
    samples: dict[str, tuple[float, float, float, float]] = {}
    result: dict[str, Any] | None = None
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.strip()
                if line in ("#WINDOW_START", "#WINDOW_END"):
                    samples[line] = (time.monotonic(), _cpu(pids), load.cpu_seconds(proc.pid),
                                     load.machine_busy_seconds())
                elif line.startswith("{"):
                    result = json.loads(line)
            rc = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        stderr.seek(0)
        err_text = stderr.read().decode("utf-8", "replace")
    if rc != 0 or result is None or len(samples) != 2:
        raise RuntimeError(f"load generator failed (rc={rc}):\n{err_text[-4000:]}")
    (t0, s0, g0, m0), (t1, s1, g1, m1) = samples["#WINDOW_START"], samples["#WINDOW_END"]
    wall = t1 - t0
    server_cores, loadgen_cores = (s1 - s0) / wall, (g1 - g0) / wall
    other_cores = max(0.0, (m1 - m0) / wall - server_cores - loadgen_cores)
    return result, server_cores, loadgen_cores, other_cores


def run_one(kind: str, workload: str, repetition: int, classpath: str,
            args: argparse.Namespace) -> load.RunResult:
    with tempfile.TemporaryDirectory(prefix=f"zkens-{kind}-") as tmp:
        before = load.loadavg()
        ens, startup = start_ensemble(kind, Path(tmp), LOAD_CFG)
        try:
            res, s_cores, g_cores, o_cores = run_loadgen(classpath, ens, workload, args)
            rss = sum(ens.servers[s].rss_bytes() for s in ens.kinds)
        finally:
            ens.stop()
    return load.RunResult(
        server=kind, workload=workload, repetition=repetition, startup_s=startup,
        ops=int(res["ops"]), errors=int(res["errors"]), errors_total=int(res["errors_total"]),
        ops_per_s=float(res["ops_per_s"] or 0.0), p50_us=float(res["p50_us"] or 0.0),
        p99_us=float(res["p99_us"] or 0.0), p999_us=float(res["p999_us"] or 0.0),
        mean_us=float(res["mean_us"] or 0.0), window_s=float(res["window_s"]),
        server_cpu_cores=s_cores, loadgen_cpu_cores=g_cores, other_cpu_cores=o_cores,
        rss_bytes=rss, loadavg_before=before,
        server_cpu_us_per_op=load._per_op(s_cores, res),
        loadgen_cpu_us_per_op=load._per_op(g_cores, res), loadgen=res,
    )


# ------------------------------------------------------------------------------- failover


@dataclass
class FailoverResult:
    server: str
    attempt: int
    leader: int
    #: SIGKILL of the leader -> first acknowledged setData through a surviving server
    failover_ms: float
    #: which surviving server acknowledged it, and who leads afterwards
    acked_by: int
    new_leader: int | None


def _try_write(client: RawClient) -> bool:
    """One setData through `client`, reconnecting (same session) when needed; True if acked."""
    try:
        if client.sock is None and client.connect(timeout_ms=30000) == 0:
            raise RuntimeError("the session expired during the failover")
        err, _ = client.set_data("/failover", b"x")
        if err == 0:
            return True
        client.close()  # e.g. CONNECTIONLOSS: try again on a fresh connection
    except (OSError, ConnectionError):
        client.close()
    return False


def failover_once(kind: str, workdir: Path, attempt: int) -> FailoverResult:
    ens, _ = start_ensemble(kind, workdir, FAILOVER_CFG)
    clients: dict[int, RawClient] = {}
    try:
        leader = ens.wait_serving(timeout_s=SERVE_S)
        rest = [s for s in sorted(ens.kinds) if s != leader]
        for sid in rest:
            c = RawClient("127.0.0.1", ens.servers[sid].client_port, io_timeout_s=5.0)
            assert c.connect(timeout_ms=30000) > 0
            clients[sid] = c
        err, _, _ = clients[rest[0]].create("/failover", b"")
        assert err == 0, err
        for c in clients.values():
            assert _try_write(c)
        t0 = time.monotonic()
        ens.servers[leader].kill()
        deadline = t0 + FAILOVER_LIMIT_S
        while True:
            for sid in rest:
                if _try_write(clients[sid]):
                    ms = (time.monotonic() - t0) * 1000
                    return FailoverResult(kind, attempt, leader, ms, sid, ens.serving(rest))
            if time.monotonic() > deadline:
                raise TimeoutError(f"{kind}: no write acknowledged {FAILOVER_LIMIT_S}s after "
                                   "the leader's SIGKILL")
            time.sleep(POLL_S)  # polling interval, not a timing assumption
    finally:
        for c in clients.values():
            c.close()
        ens.stop()


def failover_table(results: list[FailoverResult], kinds: Sequence[str]) -> str:
    lines = ["| ensemble | SIGKILL leader → first acknowledged write, ms | tries |",
             "|---|---:|---:|"]
    med: dict[str, float] = {}
    for kind in kinds:
        xs = [r.failover_ms for r in results if r.server == kind]
        if not xs:
            continue
        med[kind] = statistics.median(xs)
        lines.append(f"| {kind} ×3 | {med[kind]:,.0f} ({min(xs):,.0f}–{max(xs):,.0f}) "
                     f"| {len(xs)} |")
    if "zkfast" in med and "apache" in med:
        lines.append(f"| **zkfast/Apache** | **{med['zkfast'] / max(med['apache'], 1e-9):.2f}** "
                     "|  |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--workloads", default=",".join(load.WORKLOADS))
    p.add_argument("--servers", default=",".join(load.SERVER_KINDS))
    p.add_argument("--seconds", type=float, default=10.0, help="measured window per run")
    p.add_argument("--warmup-seconds", type=float, default=10.0)
    p.add_argument("--sessions", type=int, default=9, help="spread over the 3 servers")
    p.add_argument("--outstanding", type=int, default=32, help="requests in flight per session")
    p.add_argument("--znodes", type=int, default=1000)
    p.add_argument("--value-bytes", type=int, default=128)
    p.add_argument("--root", default="/zkload")
    p.add_argument("--cleanup", action="store_true")
    p.add_argument("--repetitions", type=int, default=1)
    p.add_argument("--issue-mode", choices=("callback", "thread"), default="callback")
    p.add_argument("--client-socket", choices=sorted(load.CLIENT_SOCKETS), default="netty")
    p.add_argument("--failover-tries", type=int, default=5)
    p.add_argument("--skip-load", action="store_true")
    p.add_argument("--skip-failover", action="store_true")
    p.add_argument("--write-results", action="store_true")
    p.add_argument("--json", type=Path)
    p.add_argument("--note", default="")
    args = p.parse_args(argv)
    args.workload_list = [w for w in args.workloads.split(",") if w]
    args.server_list = [s for s in args.servers.split(",") if s]
    for w in args.workload_list:
        if w not in load.WORKLOADS:
            p.error(f"unknown workload {w!r}")
    for s in args.server_list:
        if s not in load.SERVER_KINDS:
            p.error(f"unknown server {s!r}")
    return args


def run_load(args: argparse.Namespace, log: Any = sys.stderr) -> list[load.RunResult]:
    classpath = load.build_loadgen()
    results: list[load.RunResult] = []
    turn = 0
    for rep in range(args.repetitions):
        for w in args.workload_list:
            order = list(args.server_list)
            if turn % 2 == 1:
                order.reverse()
            turn += 1
            for kind in order:
                r = run_one(kind, w, rep, classpath, args)
                results.append(r)
                print(load.run_line(r), file=log, flush=True)
    return results


def run_failover(args: argparse.Namespace, log: Any = sys.stderr) -> list[FailoverResult]:
    results: list[FailoverResult] = []
    with tempfile.TemporaryDirectory(prefix="zkens-failover-") as tmp:
        for i in range(args.failover_tries):
            order = args.server_list if i % 2 == 0 else list(reversed(args.server_list))
            for kind in order:
                r = failover_once(kind, Path(tmp) / f"{kind}-{i}", i)
                results.append(r)
                print(f"[failover {i} {kind:7s}] {r.failover_ms:8.0f} ms  (leader {r.leader} "
                      f"killed, write acked by {r.acked_by}, new leader {r.new_leader})",
                      file=log, flush=True)
    return results


def write_results(section: str) -> None:
    text = RESULTS_MD.read_text("utf-8") if RESULTS_MD.exists() else ""
    if SECTION_MARKER in text:
        text = text.replace(SECTION_MARKER, section.rstrip() + "\n\n" + SECTION_MARKER, 1)
    else:
        text = text.rstrip() + "\n\n" + section.rstrip() + "\n"
    RESULTS_MD.write_text(text, "utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if "apache" in args.server_list and not apache_available():
        raise SystemExit("Apache ZooKeeper 3.8 jars or java not found")
    command = "python benchmarks/ensemble.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    started = dt.datetime.now(dt.timezone.utc)
    load_before = load.loadavg()
    load_results = [] if args.skip_load else run_load(args)
    failover_results = [] if args.skip_failover else run_failover(args)
    parts: list[str] = []
    if load_results:
        parts.append(load.summarize(load_results, args.workload_list, args.server_list))
    if failover_results:
        parts += ["#### failover", "", failover_table(failover_results, args.server_list), ""]
    table = "\n".join(parts)
    print(table)
    if args.json:
        args.json.write_text(json.dumps({"load": [asdict(r) for r in load_results],
                                         "failover": [asdict(r) for r in failover_results]},
                                        indent=1), "utf-8")
    if args.write_results:
        settings = []
        if load_results:
            settings.append(
                f"- Load: 3-node ensembles, {args.sessions} sessions spread over the servers "
                f"(session i on server i mod 3) × {args.outstanding} outstanding, "
                f"{args.value_bytes}-byte values, {args.znodes} znodes, warm-up "
                f"{args.warmup_seconds:g} s, window {args.seconds:g} s, {args.repetitions} "
                f"repetition(s); zoo.cfg {', '.join(f'{k}={v}' for k, v in LOAD_CFG.items())}. "
                "CPU and RSS columns are the three servers together; startup is launch until "
                "every server is in broadcast.")
        if failover_results:
            settings.append(
                f"- Failover: {args.failover_tries} fresh ensembles per kind; zoo.cfg "
                f"{', '.join(f'{k}={v}' for k, v in FAILOVER_CFG.items())} (forceSync on).")
        section = "\n".join(
            [f"### Ensemble run {started:%Y-%m-%d %H:%M} UTC", "", f"    {command.strip()}", "",
             f"- Machine: {load.machine_description()}. Generator and servers share the cores "
             f"(nothing pinned). Load average before the run: {load_before}.",
             f"- Build: {load.zkfast_build_description()}; Apache ZooKeeper 3.8.0 (Debian jars).",
             *settings]
            + ([f"- Note: {args.note}"] if args.note else [])
            + ["", table, "", "<details><summary>every run, in order</summary>", "", "```"]
            + [load.run_line(r) for r in load_results]
            + [f"failover {r.attempt} {r.server}: {r.failover_ms:.0f} ms (leader {r.leader}, "
               f"acked by {r.acked_by}, new leader {r.new_leader})" for r in failover_results]
            + ["```", "", "</details>"])
        write_results(section)
        print(f"wrote a section to {RESULTS_MD}", file=sys.stderr)
    return 1 if any(r.errors_total for r in load_results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
