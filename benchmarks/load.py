"""Whole-server load benchmark: zkfast and Apache ZooKeeper 3.8 side by side, as ratios.

For every repetition and workload, each server kind gets a fresh process (same zoo.cfg settings,
started through `zkfast.testing.procs`), and the Java load generator `loadgen/ZkLoad.java` (the
official client's async API) drives it: N sessions, K requests outstanding per session, 128-byte
values, a warm-up, then a measured window. The order of the two servers alternates from one
workload (and repetition) to the next, so neither always runs first on a warmer machine.

Measured per run: startup (process start until a raw client's session handshake and one request
are answered), ops/s and latency percentiles (from the generator), server RSS after the load
(/proc/<pid>/status VmRSS; for Java the whole JVM), and the CPU split during the measured window
(server, load generator, and everything else on the machine, from /proc/<pid>/stat and
/proc/stat), which says whether the generator or outside load limited the run.

Usage:
    python benchmarks/load.py [--workloads getData,setData,create,mixed] [--seconds N]
        [--sessions N] [--outstanding N] [--servers zkfast,apache] [--repetitions N]
        [--write-results] [--json PATH]

`--write-results` inserts a dated section into benchmarks/RESULTS.md with the exact command.
The generator is compiled with javac into benchmarks/.build/ (git-ignored) when stale.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
try:
    import zkfast  # noqa: F401
except ImportError:  # a source checkout that is not installed
    sys.path.insert(0, str(REPO / "src"))

from zkfast.testing.procs import (  # noqa: E402
    JAVA_DIR,
    ServerProcess,
    apache_available,
    apache_server,
    zkfast_server,
)
from zkfast.testing.rawclient import RawClient  # noqa: E402

LOADGEN_SRC = BENCH_DIR / "loadgen" / "ZkLoad.java"
BUILD_DIR = BENCH_DIR / ".build"
RESULTS_MD = BENCH_DIR / "RESULTS.md"
RESULTS_MARKER = "<!-- load.py inserts new load runs above this line -->"
CLIENT_JARS = (
    "zookeeper.jar",
    "zookeeper-jute.jar",
    "slf4j-api.jar",
    "slf4j-simple.jar",
    # for -Dzookeeper.clientCnxnSocket=...ClientCnxnSocketNetty
    "netty-handler.jar",
    "netty-transport.jar",
    "netty-buffer.jar",
    "netty-common.jar",
    "netty-codec.jar",
    "netty-resolver.jar",
)
CLIENT_SOCKETS = {
    "nio": "org.apache.zookeeper.ClientCnxnSocketNIO",
    "netty": "org.apache.zookeeper.ClientCnxnSocketNetty",
}
WORKLOADS = ("getData", "setData", "create", "mixed")
SERVER_KINDS = ("zkfast", "apache")
#: The same zoo.cfg for both kinds (procs.py adds tickTime=2000, dataDir, port, 4lw whitelist).
#: forceSync=no: zkfast has no disk log yet, so Apache is not made to fsync either.
SERVER_CFG = {"tickTime": "2000", "forceSync": "no"}
APACHE_HEAP = "1g"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------- loadgen build


def loadgen_classpath() -> str:
    return ":".join([str(BUILD_DIR)] + [str(JAVA_DIR / j) for j in CLIENT_JARS])


def build_loadgen() -> str:
    """Compile ZkLoad.java into benchmarks/.build when the class is missing or stale.

    Returns:
        The classpath to run it with.
    """
    target = BUILD_DIR / "ZkLoad.class"
    if not target.exists() or target.stat().st_mtime < LOADGEN_SRC.stat().st_mtime:
        BUILD_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "javac",
                "-Xlint:-path",
                "-implicit:none",
                "-d",
                str(BUILD_DIR),
                "-cp",
                str(JAVA_DIR / "zookeeper.jar"),
                str(LOADGEN_SRC),
            ],
            check=True,
        )
    return loadgen_classpath()


# ------------------------------------------------------------------------------- /proc sampling


def _proc_children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def _tree(pid: int) -> list[int]:
    """`pid` and all its descendants (a wrapper process would otherwise hide the real work)."""
    kids = _proc_children()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_seconds(pid: int) -> float:
    """CPU seconds of `pid`, its live descendants and its reaped children (all threads).

    utime+stime of every process in the tree, plus cutime+cstime of `pid` (children it has
    waited for, e.g. zkfast's forked snapshot writers), so a child's CPU is counted whether it
    is still running at the second sample or not.
    """
    total = 0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
        if p == pid:
            total += int(fields[13]) + int(fields[14])  # cutime, cstime (fields 16, 17)
    return total / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds spent busy on all cores since boot (everything but idle and iowait)."""
    with open("/proc/stat", encoding="ascii") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = vals[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def wait_for_quiet(busy_cores_max: float, wait_s_max: float, log: Any) -> float:
    """Wait until the machine's busy CPU over a 2 s sample is at most `busy_cores_max` cores,
    or `wait_s_max` has passed. Returns the busy cores of the last sample.

    The runs share the machine with whatever else runs on it; starting each one in a quiet
    moment makes the "other CPU" column small more often (it is still reported per run).
    """
    deadline = time.monotonic() + wait_s_max
    while True:
        b0, t0 = machine_busy_seconds(), time.monotonic()
        time.sleep(2.0)
        busy = (machine_busy_seconds() - b0) / (time.monotonic() - t0)
        if busy <= busy_cores_max or time.monotonic() >= deadline:
            return busy
        print(f"  machine busy ({busy:.2f} cores), waiting", file=log, flush=True)


def loadavg() -> str:
    with open("/proc/loadavg", encoding="ascii") as f:
        return " ".join(f.read().split()[:3])


# ------------------------------------------------------------------------------- one run


@dataclass
class RunResult:
    server: str
    workload: str
    repetition: int
    startup_s: float
    ops: int
    errors: int
    errors_total: int
    ops_per_s: float
    p50_us: float
    p99_us: float
    p999_us: float
    mean_us: float
    window_s: float
    server_cpu_cores: float
    loadgen_cpu_cores: float
    other_cpu_cores: float
    rss_bytes: int
    loadavg_before: str
    #: CPU time per completed operation in the window (µs): less sensitive to a busy machine
    server_cpu_us_per_op: float = 0.0
    loadgen_cpu_us_per_op: float = 0.0
    loadgen: dict[str, Any] = field(default_factory=dict)


def start_server(
    kind: str, workdir: Path, cfg: dict[str, str] | None = None
) -> tuple[ServerProcess, float]:
    """Start a fresh server and time it until a first session is served.

    The clock starts just before the process is spawned and stops when a raw client has
    completed a session handshake and one `exists /` request (then closes its session).
    procs.py polls readiness every 50 ms before returning, so the figure is rounded up by at
    most that much on both kinds alike.
    """
    if kind == "apache":
        server = apache_server(workdir, cfg=cfg or SERVER_CFG, heap=APACHE_HEAP, start=False)
    else:
        server = zkfast_server(workdir, cfg=cfg or SERVER_CFG, start=False)
    t0 = time.monotonic()
    server.start()
    client = RawClient("127.0.0.1", server.client_port, io_timeout_s=30.0)
    try:
        timeout_ms = client.connect()
        assert timeout_ms > 0, f"{kind}: session handshake refused"
        err, _stat = client.exists("/")
        assert err == 0, f"{kind}: exists / failed with {err}"
        startup = time.monotonic() - t0
        client.close_session()
    finally:
        client.close()
    return server, startup


def start_profiler(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """py-spy over the measured window: raw collapsed stacks of Python frames.

    Only samples holding the GIL are kept (`--gil`), so shares are of the time the server spends
    running Python, and waits in epoll or in the log writer's queue do not count. Cython and
    uvloop code is charged to its Python caller. `--subprocesses` follows forked children (the
    snapshot writers), whose stacks start with a "process <pid>" frame.
    """
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, int(seconds))),
            "--rate",
            "250",
            "--format",
            "raw",
            "--nolineno",
            "--gil",
            "--subprocesses",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


#: Leaf frames of a thread that is waiting, not working (py-spy --native still samples them).
IDLE_LEAVES = frozenset(
    {
        "epoll_pwait",
        "epoll_wait",
        "futex_wait",
        "__futex_abstimed_wait_common",
        "poll",
        "select",
        "pthread_cond_wait",
        "pthread_cond_timedwait",
        "sem_wait",
        "sem_timedwait",
        "__GI___poll",
        "syscall",
    }
)


def profile_summary(path: Path, top: int = 15) -> str:
    """Top functions of a py-spy raw profile by self share and by inclusive share."""
    self_n: dict[str, int] = {}
    proc_n: dict[str, int] = {}
    incl_n: dict[str, int] = {}
    total = 0
    for line in path.read_text("utf-8", "replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f.strip() for f in stack.split(";") if f.strip()]
        if not frames or frames[-1].split(" ", 1)[0] in IDLE_LEAVES:
            continue
        total += n
        procs = [f for f in frames if f.startswith("process ")]
        if procs:  # a child's stack starts with its parent's frame, then its own
            proc_n[procs[-1]] = proc_n.get(procs[-1], 0) + n
        self_n[frames[-1]] = self_n.get(frames[-1], 0) + n
        for f in set(frames):
            incl_n[f] = incl_n.get(f, 0) + n
    if not total:
        return f"(no samples in {path})"
    out = [f"{total} busy samples"]
    if len(proc_n) > 1:
        out.append("by process (the server, then forked children such as snapshot writers):")
        for f, n in sorted(proc_n.items(), key=lambda kv: -kv[1])[:top]:
            out.append(f"  {100 * n / total:5.1f}%  {f[:100]}")
    out.append("self share (where the CPU is):")
    for f, n in sorted(self_n.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"  {100 * n / total:5.1f}%  {f}")
    out.append("inclusive share (time under each function):")
    for f, n in sorted(incl_n.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"  {100 * n / total:5.1f}%  {f}")
    return "\n".join(out)


def run_loadgen(
    classpath: str,
    server: ServerProcess,
    workload: str,
    args: argparse.Namespace,
    profile_path: Path | None = None,
) -> tuple[dict[str, Any], float, float, float]:
    """Run ZkLoad against `server`; sample CPU at the window markers it prints; with
    `profile_path`, record a py-spy profile of the server over the window.

    Returns:
        (the generator's JSON result, server CPU cores, generator CPU cores, other CPU cores),
        CPU as average cores busy during the measured window.
    """
    cmd = [
        "java",
        "-Xms256m",
        "-Xmx1g",
        "-Dzookeeper.sasl.client=false",
        f"-Dzookeeper.clientCnxnSocket={CLIENT_SOCKETS[args.client_socket]}",
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=error",
        "-cp",
        classpath,
        "ZkLoad",
        "--hosts",
        server.hosts,
        "--workload",
        workload,
        "--sessions",
        str(args.sessions),
        "--outstanding",
        str(args.outstanding),
        "--warmup-seconds",
        str(args.warmup_seconds),
        "--seconds",
        str(args.seconds),
        "--znodes",
        str(args.znodes),
        "--value-bytes",
        str(args.value_bytes),
        "--issue-mode",
        args.issue_mode,
        "--root",
        args.root,
    ]
    if not args.cleanup:
        cmd.append("--no-cleanup")
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True)
        samples: dict[str, tuple[float, float, float, float]] = {}
        profiler: subprocess.Popen[bytes] | None = None
        result: dict[str, Any] | None = None
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.strip()
                if line in ("#WINDOW_START", "#WINDOW_END"):
                    samples[line] = (
                        time.monotonic(),
                        cpu_seconds(server.pid),
                        cpu_seconds(proc.pid),
                        machine_busy_seconds(),
                    )
                    if line == "#WINDOW_START" and profile_path is not None:
                        profiler = start_profiler(server.pid, args.seconds, profile_path)
                elif line.startswith("{"):
                    result = json.loads(line)
            rc = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if profiler is not None:
                try:
                    profiler.wait(timeout=args.seconds + 60)
                except subprocess.TimeoutExpired:
                    profiler.kill()
                    profiler.wait()
        stderr.seek(0)
        err_text = stderr.read().decode("utf-8", "replace")
    if rc != 0 or result is None or len(samples) != 2:
        raise RuntimeError(
            f"load generator failed (rc={rc}) against {server.kind}:\n{err_text[-4000:]}"
        )
    (t0, s0, g0, m0), (t1, s1, g1, m1) = samples["#WINDOW_START"], samples["#WINDOW_END"]
    wall = t1 - t0
    server_cores = (s1 - s0) / wall
    loadgen_cores = (g1 - g0) / wall
    other_cores = max(0.0, (m1 - m0) / wall - server_cores - loadgen_cores)
    return result, server_cores, loadgen_cores, other_cores


def server_cfg(args: argparse.Namespace) -> dict[str, str]:
    return {**SERVER_CFG, "forceSync": "yes" if args.force_sync else "no"}


def run_one(
    kind: str, workload: str, repetition: int, classpath: str, args: argparse.Namespace
) -> RunResult:
    with tempfile.TemporaryDirectory(prefix=f"zkload-{kind}-") as tmp:
        before = loadavg()
        server, startup = start_server(kind, Path(tmp), server_cfg(args))
        try:
            profile_path = None
            if args.profile and kind == "zkfast":
                args.profile.mkdir(parents=True, exist_ok=True)
                profile_path = args.profile / f"zkfast-{workload}-rep{repetition}.txt"
            res, s_cores, g_cores, o_cores = run_loadgen(
                classpath, server, workload, args, profile_path
            )
            rss = server.rss_bytes()
        finally:
            server.stop()
    return RunResult(
        server=kind,
        workload=workload,
        repetition=repetition,
        startup_s=startup,
        ops=int(res["ops"]),
        errors=int(res["errors"]),
        errors_total=int(res["errors_total"]),
        ops_per_s=float(res["ops_per_s"] or 0.0),
        p50_us=float(res["p50_us"] or 0.0),
        p99_us=float(res["p99_us"] or 0.0),
        p999_us=float(res["p999_us"] or 0.0),
        mean_us=float(res["mean_us"] or 0.0),
        window_s=float(res["window_s"]),
        server_cpu_cores=s_cores,
        loadgen_cpu_cores=g_cores,
        other_cpu_cores=o_cores,
        rss_bytes=rss,
        loadavg_before=before,
        server_cpu_us_per_op=_per_op(s_cores, res),
        loadgen_cpu_us_per_op=_per_op(g_cores, res),
        loadgen=res,
    )


def _per_op(cores: float, res: dict[str, Any]) -> float:
    ops_per_s = float(res["ops_per_s"] or 0.0)
    return cores / ops_per_s * 1e6 if ops_per_s else float("nan")


# ------------------------------------------------------------------------------- reporting


def _median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def _fmt_range(xs: Sequence[float], fmt: str) -> str:
    if len(xs) < 2:
        return ""
    return f" ({format(min(xs), fmt)}–{format(max(xs), fmt)})"


def summarize(results: list[RunResult], workloads: Sequence[str], servers: Sequence[str]) -> str:
    """Markdown tables: per workload, medians over repetitions (range in brackets), and the
    zkfast/Apache ratio of the medians plus the range of the per-repetition (paired) ratios."""
    reps = max((r.repetition for r in results), default=0) + 1
    lines: list[str] = []
    for w in workloads:
        lines.append(f"#### {w}")
        lines.append("")
        lines.append(
            "| server | ops/s | p50 µs | p99 µs | p99.9 µs | errors | server CPU | "
            "loadgen CPU | other CPU | server CPU µs/op | loadgen CPU µs/op | RSS after MiB | "
            "startup s |"
        )
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        by_kind: dict[str, list[RunResult]] = {
            k: [r for r in results if r.workload == w and r.server == k] for k in servers
        }
        for k in servers:
            rs = by_kind[k]
            if not rs:
                continue
            ops = [r.ops_per_s for r in rs]
            p50 = [r.p50_us for r in rs]
            p99 = [r.p99_us for r in rs]
            lines.append(
                f"| {k} | {_median(ops):,.0f}{_fmt_range(ops, ',.0f')} "
                f"| {_median(p50):,.0f}{_fmt_range(p50, ',.0f')} "
                f"| {_median(p99):,.0f}{_fmt_range(p99, ',.0f')} "
                f"| {_median([r.p999_us for r in rs]):,.0f} "
                f"| {sum(r.errors_total for r in rs)} "
                f"| {_median([r.server_cpu_cores for r in rs]):.2f} "
                f"| {_median([r.loadgen_cpu_cores for r in rs]):.2f} "
                f"| {_median([r.other_cpu_cores for r in rs]):.2f} "
                f"| {_median([r.server_cpu_us_per_op for r in rs]):.1f} "
                f"| {_median([r.loadgen_cpu_us_per_op for r in rs]):.1f} "
                f"| {_median([r.rss_bytes / 2**20 for r in rs]):.0f} "
                f"| {_median([r.startup_s for r in rs]):.2f} |"
            )
        if "zkfast" in by_kind and "apache" in by_kind and by_kind["zkfast"] and by_kind["apache"]:
            z, a = by_kind["zkfast"], by_kind["apache"]

            def ratio(attr: str, z: list[RunResult] = z, a: list[RunResult] = a) -> str:
                med = _median([getattr(r, attr) for r in z]) / max(
                    _median([getattr(r, attr) for r in a]), 1e-9
                )
                paired = [
                    getattr(rz, attr) / max(getattr(ra, attr), 1e-9)
                    for rep in range(reps)
                    for rz in z
                    if rz.repetition == rep
                    for ra in a
                    if ra.repetition == rep
                ]
                return f"{med:.2f}{_fmt_range(paired, '.2f')}"

            lines.append(
                f"| **zkfast/Apache** | **{ratio('ops_per_s')}** | {ratio('p50_us')} "
                f"| {ratio('p99_us')} | {ratio('p999_us')} |  | {ratio('server_cpu_cores')} "
                f"|  |  | {ratio('server_cpu_us_per_op')} |  | {ratio('rss_bytes')} "
                f"| {ratio('startup_s')} |"
            )
        lines.append("")
    return "\n".join(lines)


def machine_description() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    with open("/proc/meminfo", encoding="ascii") as f:
        mem_kb = int(f.readline().split()[1])
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    java_line = java.splitlines()[0] if java else "java ?"
    return (
        f"{os.cpu_count()} cores ({model}), {mem_kb / 2**20:.0f} GiB, Linux {platform.release()}; "
        f"{java_line}; Python {platform.python_version()}"
    )


def zkfast_build_description() -> str:
    """Which core the zkfast server child will run (it imports the same zkfast as we do)."""
    code = "import zkfast._impl as i, uvloop; print(i.IMPLEMENTATION, 'uvloop', uvloop.__version__)"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src") + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    core = out.stdout.strip() or f"import failed: {out.stderr.strip().splitlines()[-1:]}"
    rev = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "src", "setup.py"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    if dirty:
        rev += " + uncommitted changes in src/"
    return f"zkfast {rev}, core: {core}"


def write_results(section: str) -> None:
    text = RESULTS_MD.read_text("utf-8") if RESULTS_MD.exists() else ""
    if RESULTS_MARKER in text:
        text = text.replace(RESULTS_MARKER, section.rstrip() + "\n\n" + RESULTS_MARKER, 1)
    else:
        text = text.rstrip() + "\n\n" + section.rstrip() + "\n"
    RESULTS_MD.write_text(text, "utf-8")


# ------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--workloads", default=",".join(WORKLOADS))
    p.add_argument("--servers", default=",".join(SERVER_KINDS))
    p.add_argument("--seconds", type=float, default=10.0, help="measured window per run")
    p.add_argument(
        "--warmup-seconds",
        type=float,
        default=10.0,
        help="unmeasured load before the window; Apache's JIT (C2) is still compiling "
        "for several seconds after start, so keep this long",
    )
    p.add_argument("--sessions", type=int, default=8)
    p.add_argument("--outstanding", type=int, default=32, help="requests in flight per session")
    p.add_argument("--znodes", type=int, default=1000)
    p.add_argument("--value-bytes", type=int, default=128)
    p.add_argument("--root", default="/zkload", help="parent znode of the generator's data")
    p.add_argument(
        "--cleanup",
        action="store_true",
        help="delete what the create workload made (unmeasured; off by default because every "
        "run's server is discarded afterwards)",
    )
    p.add_argument("--repetitions", type=int, default=1)
    p.add_argument(
        "--issue-mode",
        choices=("callback", "thread"),
        default="callback",
        help="callback: each completion issues the next request; thread: an issuer thread per "
        "session waits on the session's semaphore",
    )
    p.add_argument(
        "--client-socket",
        choices=sorted(CLIENT_SOCKETS),
        default="netty",
        help="the Java client's socket implementation (Netty batches reads and writes)",
    )
    p.add_argument("--write-results", action="store_true")
    p.add_argument(
        "--force-sync",
        action="store_true",
        help="forceSync=yes on both servers (fsync of the txn log; the data directories are "
        "under the system temp dir, so its file system decides what that costs)",
    )
    p.add_argument(
        "--quiet-cores",
        type=float,
        help="before each run, wait until the machine uses at most this many cores "
        "(2 s sample), for up to --quiet-wait-seconds",
    )
    p.add_argument("--quiet-wait-seconds", type=float, default=120.0)
    p.add_argument("--json", type=Path, help="also write every run's raw results here")
    p.add_argument(
        "--profile",
        type=Path,
        help="record a py-spy profile of each zkfast server over its window into this "
        "directory and print its top functions (profiling slows the server: do not report "
        "such runs as results)",
    )
    p.add_argument("--note", default="", help="a sentence to add to the RESULTS.md section")
    args = p.parse_args(argv)
    args.workload_list = [w for w in args.workloads.split(",") if w]
    args.server_list = [s for s in args.servers.split(",") if s]
    for w in args.workload_list:
        if w not in WORKLOADS:
            p.error(f"unknown workload {w!r}; choose from {', '.join(WORKLOADS)}")
    for s in args.server_list:
        if s not in SERVER_KINDS:
            p.error(f"unknown server {s!r}; choose from {', '.join(SERVER_KINDS)}")
    return args


def run_line(r: RunResult) -> str:
    """One run on one line, in the order the runs were made."""
    return (
        f"[rep {r.repetition} {r.workload:8s} {r.server:7s}] {r.ops_per_s:10,.0f} ops/s  "
        f"p50 {r.p50_us:8,.0f} µs  p99 {r.p99_us:9,.0f} µs  errors {r.errors_total}  "
        f"cpu server {r.server_cpu_cores:.2f} loadgen {r.loadgen_cpu_cores:.2f} "
        f"other {r.other_cpu_cores:.2f}  cpu/op server {r.server_cpu_us_per_op:.1f} µs "
        f"loadgen {r.loadgen_cpu_us_per_op:.1f} µs  rss {r.rss_bytes / 2**20:.0f} MiB  "
        f"startup {r.startup_s:.2f} s  (load {r.loadavg_before})"
    )


def run(args: argparse.Namespace, log: Any = sys.stderr) -> list[RunResult]:
    """Every repetition × workload × server, alternating the server order."""
    if "apache" in args.server_list and not apache_available():
        raise SystemExit("Apache ZooKeeper 3.8 jars or java not found")
    if shutil.which("javac") is None:
        raise SystemExit("javac not found")
    classpath = build_loadgen()
    results: list[RunResult] = []
    turn = 0
    for rep in range(args.repetitions):
        for w in args.workload_list:
            order = list(args.server_list)
            if turn % 2 == 1:
                order.reverse()
            turn += 1
            for kind in order:
                if args.quiet_cores is not None:
                    wait_for_quiet(args.quiet_cores, args.quiet_wait_seconds, log)
                r = run_one(kind, w, rep, classpath, args)
                results.append(r)
                print(run_line(r), file=log, flush=True)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python benchmarks/load.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    started = dt.datetime.now(dt.timezone.utc)
    load_before = loadavg()
    results = run(args)
    table = summarize(results, args.workload_list, args.server_list)
    print(table)
    if args.profile:
        for path in sorted(args.profile.glob("zkfast-*.txt")):
            print(f"\n## profile {path}\n{profile_summary(path)}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1), "utf-8")
    if args.write_results:
        section = "\n".join(
            [
                f"### Load run {started:%Y-%m-%d %H:%M} UTC",
                "",
                f"    {command.strip()}",
                "",
                f"- Machine: {machine_description()}. Load generator and server share the cores "
                f"(nothing pinned). Load average before the run: {load_before}.",
                f"- Build: {zkfast_build_description()}; Apache ZooKeeper 3.8.0 (Debian jars), "
                f"-Xmx{APACHE_HEAP}.",
                f"- Settings: {args.sessions} sessions × {args.outstanding} outstanding, "
                f"{args.value_bytes}-byte values, {args.znodes} znodes, warm-up "
                f"{args.warmup_seconds:g} s, window {args.seconds:g} s, {args.repetitions} "
                f"repetition(s); zoo.cfg {', '.join(f'{k}={v}' for k, v in server_cfg(args).items())}.",
                "- Cells are medians over repetitions (min–max in brackets); ratio rows give the "
                "ratio of medians and the range of per-repetition ratios. CPU columns are "
                "average cores busy during the window.",
            ]
            + ([f"- Note: {args.note}"] if args.note else [])
            + ["", table, "", "<details><summary>every run, in order</summary>", "", "```"]
            + [run_line(r) for r in results]
            + ["```", "", "</details>"]
        )
        write_results(section)
        print(f"wrote a section to {RESULTS_MD}", file=sys.stderr)
    bad = [r for r in results if r.errors_total]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
