"""Real server processes and a pausable TCP proxy, for runtime tests and benchmarks.

`ServerProcess` wraps one server started as a child process: a zkfast server
(`python -m zkfast zoo.cfg -Dname=value ...`) or the Debian Apache ZooKeeper 3.8 jars, both reading
the same kind of `zoo.cfg`. It is started and stopped through its own `Popen` handle only: `stop()`
sends SIGTERM, waits, then SIGKILLs, and always reaps; `kill()` is an immediate SIGKILL.

Readiness is polled, never slept for: zkfast is ready when its client port answers the four-letter
word `ruok` with `imok`; Apache is ready when `srvr` reports a serving server (Apache answers `imok`
before its database is loaded, so `ruok` alone is not enough there). The generated `zoo.cfg`
whitelists every four-letter word so that both polls are allowed.

`TcpProxy` sits between clients and a server port to simulate partitions: `pause()` stops moving
bytes in both directions (connections stay open, nothing is lost), `resume()` lets them flow again,
`drop_connections()` closes every proxied connection, `stop()` closes everything. A target that
refuses (not listening yet) is dialed again for a while, since the client cannot be refused once
the proxy accepted it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

__all__ = [
    "APACHE_JARS",
    "Ensemble",
    "LEADER_SYNC_LINE",
    "SYNC_LINES",
    "ServerProcess",
    "ServerStartError",
    "TcpProxy",
    "apache_available",
    "apache_server",
    "four_letter_word",
    "free_port",
    "wait_until",
    "zkfast_server",
]

JAVA_DIR = Path("/usr/share/java")
APACHE_JARS = (
    "zookeeper.jar",
    "zookeeper-jute.jar",
    "slf4j-api.jar",
    "slf4j-simple.jar",
    "netty-handler.jar",
    "netty-transport.jar",
    "netty-buffer.jar",
    "netty-common.jar",
    "netty-codec.jar",
    "netty-resolver.jar",
    "metrics-core.jar",
    "commons-cli.jar",
    "snappy-java.jar",
)
APACHE_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
LOOPBACK = "127.0.0.1"


class ServerStartError(RuntimeError):
    """The server process exited or did not become ready in time; the message has its log tail."""


#: Ports handed out by this process (never handed out twice).
_PORTS_GIVEN: set[int] = set()
#: free_port picks below the kernel's ephemeral range (32768-60999 by default), so that an
#: outgoing connection of any process cannot take a port between our pick and the server's bind.
_PORT_LOW, _PORT_HIGH = 20000, 32767


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    Ports come from below the ephemeral range, starting at a point derived from the pid (two
    test processes rarely walk the same ports), and each is handed out once per process.
    """
    span = _PORT_HIGH - _PORT_LOW + 1
    start = (os.getpid() * 7919 + len(_PORTS_GIVEN) * 104729) % span
    for i in range(span):
        port = _PORT_LOW + (start + i * 7919) % span  # 7919 is coprime with span
        if port in _PORTS_GIVEN:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((LOOPBACK, port))
            except OSError:
                continue
        _PORTS_GIVEN.add(port)
        return port
    raise OSError("no free TCP port on 127.0.0.1 below the ephemeral range")


def four_letter_word(port: int, word: str, *, host: str = LOOPBACK, timeout_s: float = 5.0) -> str:
    """Send a four-letter word to a client port and return the whole answer (until EOF).

    Raises:
        OSError: the connection failed or timed out.
    """
    with socket.create_connection((host, port), timeout=timeout_s) as s:
        s.sendall(word.encode("ascii"))
        chunks: list[bytes] = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def apache_available() -> bool:
    """True when `java` is on PATH and every Debian ZooKeeper 3.8 jar we need is installed."""
    return shutil.which("java") is not None and all((JAVA_DIR / j).is_file() for j in APACHE_JARS)


def _apache_ready(port: int) -> bool:
    answer = four_letter_word(port, "srvr", timeout_s=2.0)
    return "Zookeeper version" in answer and "Mode:" in answer


def _zkfast_ready(port: int) -> bool:
    return four_letter_word(port, "ruok", timeout_s=2.0).strip() == "imok"


class ServerProcess:
    """One server child process with its config, data directory and log file.

    Build it with `apache_server()` or `zkfast_server()`; the factories also start it.
    """

    def __init__(
        self,
        kind: str,
        argv: Sequence[str],
        *,
        workdir: Path,
        cfg_path: Path,
        data_dir: Path,
        client_port: int,
        log_path: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.kind = kind
        self.argv = list(argv)
        self.workdir = workdir
        self.cfg_path = cfg_path
        self.data_dir = data_dir
        self.client_port = client_port
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.proc: subprocess.Popen[bytes] | None = None

    # -- identity ---------------------------------------------------------------------------
    @property
    def pid(self) -> int:
        assert self.proc is not None, "server not started"
        return self.proc.pid

    @property
    def hosts(self) -> str:
        """The connect string for clients: "127.0.0.1:<client_port>"."""
        return f"{LOOPBACK}:{self.client_port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def __repr__(self) -> str:
        pid = self.proc.pid if self.proc is not None else None
        return f"<ServerProcess {self.kind} pid={pid} port={self.client_port}>"

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, timeout_s: float = 60.0, *, wait: bool = True) -> ServerProcess:
        """Start the process and (unless `wait` is false) wait until it serves clients.

        Raises:
            ServerStartError: the process exited, or was not ready within `timeout_s` (then it is
                stopped before raising).
        """
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"==== start {' '.join(self.argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                _with_pdeathsig(self.argv),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        if wait:
            self.wait_ready(timeout_s)
        return self

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Poll the client port until the server serves (see the module docstring)."""
        ready = _apache_ready if self.kind == "apache" else _zkfast_ready
        deadline = time.monotonic() + timeout_s
        last_error = "no answer yet"
        while True:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise ServerStartError(
                    f"{self.kind} server exited with {code} before it was ready; "
                    f"log tail:\n{self.log_tail()}"
                )
            try:
                if ready(self.client_port):
                    return
                last_error = "not serving yet"
            except OSError as e:
                last_error = repr(e)
            if time.monotonic() > deadline:
                self.stop()
                raise ServerStartError(
                    f"{self.kind} server on port {self.client_port} not ready after "
                    f"{timeout_s}s ({last_error}); log tail:\n{self.log_tail()}"
                )
            time.sleep(0.05)  # polling interval, not a timing assumption

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM, wait up to `timeout_s`, then SIGKILL; always reaps. Returns the exit code."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(timeout=60)
        return proc.returncode

    def kill(self) -> int | None:
        """SIGKILL the process (a crash) and reap it. Returns the exit code."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        proc.wait(timeout=60)
        return proc.returncode

    def restart(self, timeout_s: float = 60.0) -> ServerProcess:
        """Stop (gracefully) and start again on the same port, config and data directory."""
        self.stop()
        return self.start(timeout_s)

    def __enter__(self) -> ServerProcess:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- observation ------------------------------------------------------------------------
    def four_letter_word(self, word: str, timeout_s: float = 5.0) -> str:
        return four_letter_word(self.client_port, word, timeout_s=timeout_s)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def log_text_since_start(self) -> str:
        """The log written since the last `start()` (each start writes a ``==== start`` line)."""
        text = self.log_text()
        i = text.rfind("==== start ")
        return text if i < 0 else text[i:]

    def rss_bytes(self) -> int:
        """Resident set size of the process, from /proc/<pid>/status (VmRSS)."""
        with open(f"/proc/{self.pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    value, unit = line.split()[1:3]
                    assert unit == "kB", line
                    return int(value) * 1024
        raise RuntimeError(f"no VmRSS for pid {self.pid}")


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _with_pdeathsig(argv: list[str]) -> list[str]:
    """Prefix `setpriv --pdeathsig SIGKILL` (util-linux) when available and on the main thread.

    A test runner killed before its teardown would otherwise leave servers running. PDEATHSIG
    follows the *thread* that forked, so it is used only for servers started from the main thread
    (a server started from a worker thread must outlive that thread). setpriv execs the server, so
    `pid` is still the server's own pid.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None or not _on_main_thread():
        return argv
    return [setpriv, "--pdeathsig", "SIGKILL", "--", *argv]


def _write_cfg(workdir: Path, cfg: Mapping[str, str] | None) -> tuple[Path, Path, int]:
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "data"
    settings: dict[str, str] = {
        "tickTime": "2000",
        "initLimit": "10",
        "syncLimit": "5",
        "dataDir": str(data_dir),
        "clientPort": "",
        "clientPortAddress": LOOPBACK,
        "4lw.commands.whitelist": "*",
        "admin.enableServer": "false",
    }
    settings.update(cfg or {})
    if not settings["clientPort"]:
        settings["clientPort"] = str(free_port())
    data_dir = Path(settings["dataDir"])
    data_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = workdir / "zoo.cfg"
    cfg_path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()), "utf-8")
    return cfg_path, data_dir, int(settings["clientPort"])


def apache_server(
    workdir: Path | str,
    cfg: Mapping[str, str] | None = None,
    jvm_props: Mapping[str, str] | None = None,
    heap: str | None = None,
    *,
    start: bool = True,
    timeout_s: float = 60.0,
) -> ServerProcess:
    """Write `workdir/zoo.cfg` and start Apache ZooKeeper 3.8 (Debian jars) on a free port.

    Args:
        cfg: zoo.cfg entries that override or extend the defaults.
        jvm_props: Java system properties (`-Dname=value`), e.g. zookeeper.extendedTypesEnabled.
        heap: a -Xmx value such as "512m".
        start: False returns the object unstarted (call `start()`).
    """
    workdir = Path(workdir).resolve()
    cfg_path, data_dir, port = _write_cfg(workdir, cfg)
    argv = ["java"]
    if heap:
        argv.append(f"-Xmx{heap}")
    argv += [f"-D{k}={v}" for k, v in (jvm_props or {}).items()]
    argv += ["-cp", ":".join(str(JAVA_DIR / j) for j in APACHE_JARS), APACHE_MAIN, str(cfg_path)]
    server = ServerProcess(
        "apache",
        argv,
        workdir=workdir,
        cfg_path=cfg_path,
        data_dir=data_dir,
        client_port=port,
        log_path=workdir / "server.log",
    )
    return server.start(timeout_s) if start else server


def zkfast_server(
    workdir: Path | str,
    cfg: Mapping[str, str] | None = None,
    props: Mapping[str, str] | None = None,
    python: str = sys.executable,
    env: Mapping[str, str] | None = None,
    *,
    start: bool = True,
    timeout_s: float = 60.0,
) -> ServerProcess:
    """Write `workdir/zoo.cfg` and start `python -m zkfast zoo.cfg -Dname=value ...` on a free port.

    Args:
        props: the same system properties Apache takes as -D (e.g. zookeeper.extendedTypesEnabled).
        env: extra environment variables, added to this process's environment.
    """
    workdir = Path(workdir).resolve()
    cfg_path, data_dir, port = _write_cfg(workdir, cfg)
    argv = [python, "-m", "zkfast", str(cfg_path)]
    argv += [f"-D{k}={v}" for k, v in (props or {}).items()]
    full_env = dict(os.environ)
    # the child imports this same zkfast, installed or not (a source checkout's src/)
    pkg_parent = str(Path(__file__).resolve().parents[2])
    old = full_env.get("PYTHONPATH")
    full_env["PYTHONPATH"] = pkg_parent + (os.pathsep + old if old else "")
    full_env.update(env or {})
    server = ServerProcess(
        "zkfast",
        argv,
        workdir=workdir,
        cfg_path=cfg_path,
        data_dir=data_dir,
        client_port=port,
        log_path=workdir / "server.log",
        env=full_env,
    )
    return server.start(timeout_s) if start else server


#: How long a refused upstream connect is tried again (see `TcpProxy`), and how often.
_REFUSED_RETRY_S = 5.0
_REFUSED_RETRY_INTERVAL_S = 0.05


class TcpProxy:
    """A loopback TCP proxy (one thread per direction per connection) that can stall or cut links.

    `pause()` holds every byte in both directions, on existing and new connections (a new
    connection is accepted, but its upstream connection is made only after `resume()`);
    `resume()` releases them in order. `drop_connections()` closes all current connections with
    a reset. `target_port` may be changed; new connections use the new target.

    The proxy accepts before it dials the target, so a target that refuses cannot refuse the
    client: the client sees its connection accepted, then reset. A client that retries a refused
    connect but not a reset one would then give up where, unproxied, it waits. A learner that
    dials a just-elected leader whose quorum port is not bound yet (Apache's ``Leader`` binds it
    only when its election returns, and a zkfast learner decides as fast) retries a refusal, 5
    tries 100 ms apart (``Learner.connectToLeader``), but a reset before LEADERINFO ends its
    role; the leader then waits initLimit for a quorum, elects itself again with the same
    learner, and the two can lose the same race every round. So a refused upstream connect is
    tried again every 50 ms for up to `refused_retry_s` (the client's bytes wait meanwhile, as
    in a pause), and only then is the client reset. Any other connect error resets it at once.
    """

    def __init__(self, target_port: int, *, target_host: str = LOOPBACK, port: int = 0,
                 refused_retry_s: float = _REFUSED_RETRY_S) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.refused_retry_s = refused_retry_s
        self._flowing = threading.Event()
        self._flowing.set()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._conns: list[tuple[socket.socket, socket.socket | None]] = []
        self._threads: list[threading.Thread] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((LOOPBACK, port))
        self._listener.listen(128)
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self.accepted = 0
        self._acceptor = threading.Thread(
            target=self._accept_loop, name="TcpProxy-accept", daemon=True
        )
        self._acceptor.start()

    @property
    def hosts(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def paused(self) -> bool:
        return not self._flowing.is_set()

    def pause(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def partition(self) -> int:
        """Cut the link: hold new connections and reset current ones. Returns how many were reset."""
        self.pause()
        return self.drop_connections()

    def heal(self) -> None:
        """Undo `partition()`: connections made meanwhile reach the target now."""
        self.resume()

    def connection_count(self) -> int:
        with self._lock:
            return len(self._conns)

    def drop_connections(self) -> int:
        """Reset every current connection (both sides). Returns how many were dropped."""
        with self._lock:
            conns, self._conns = self._conns, []
        for client, upstream in conns:
            for s in (client, upstream):
                if s is not None:
                    _reset(s)
        return len(conns)

    def stop(self) -> None:
        self._stopped.set()
        self._flowing.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self.drop_connections()
        self._acceptor.join(timeout=10)
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(timeout=10)

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals --------------------------------------------------------------------------
    def _spawn(self, target: object, *args: object) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self._threads = [x for x in self._threads if x.is_alive()]
            self._threads.append(t)
        t.start()

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            with self._lock:
                self._conns.append((client, None))
            self._spawn(self._open_upstream, client)

    def _wait_flowing(self) -> bool:
        while not self._flowing.wait(0.2):
            pass
        return not self._stopped.is_set()

    def _open_upstream(self, client: socket.socket) -> None:
        give_up = time.monotonic() + self.refused_retry_s
        while True:
            if not self._wait_flowing():
                _reset(client)
                return
            with self._lock:
                alive = any(c is client for c, _ in self._conns)
            if not alive:
                return  # dropped meanwhile (drop_connections reset it)
            try:
                upstream = socket.create_connection((self.target_host, self.target_port),
                                                    timeout=10)
                break
            except ConnectionRefusedError:
                if time.monotonic() < give_up:
                    self._stopped.wait(_REFUSED_RETRY_INTERVAL_S)  # polling interval
                    continue
                self._forget(client)
                _reset(client)
                return
            except OSError:
                self._forget(client)
                _reset(client)
                return
        upstream.settimeout(None)
        with self._lock:
            for i, (c, _) in enumerate(self._conns):
                if c is client:
                    self._conns[i] = (client, upstream)
                    break
            else:
                _reset(upstream)
                return
        self._spawn(self._pump, client, upstream)
        self._spawn(self._pump, upstream, client)

    def _forget(self, client: socket.socket) -> None:
        with self._lock:
            self._conns = [(c, u) for c, u in self._conns if c is not client]

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                if not self._wait_flowing():
                    break
                data = src.recv(65536)
                if not data:
                    break
                if not self._wait_flowing():
                    break
                dst.sendall(data)
        except OSError:
            pass
        # one side ended: end both, so the peer sees the close
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        with self._lock:
            self._conns = [(c, u) for c, u in self._conns if c is not src and c is not dst]
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.close()


def _reset(s: socket.socket) -> None:
    """Close with SO_LINGER 0, so the peer gets a RST rather than a clean FIN."""
    with contextlib.suppress(OSError):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        s.close()


def wait_until(
    condition: Callable[[], object], timeout_s: float = 30.0, what: str = "condition"
) -> object:
    """Poll `condition()` until it returns something truthy; return that value.

    Raises:
        TimeoutError: not true within `timeout_s` (a generous bound, not a timing assertion).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout_s}s")
        time.sleep(0.02)


#: Apache's ``QuorumPeer.run`` logs the state it enters on a line of its own ("... - LEADING");
#: zkfast's runtime/quorum_server logs the same words ("... [zkfast.quorum] LEADING").
_ROLE_LINE = re.compile(r"(?:\] | - )(LOOKING|LEADING|FOLLOWING|OBSERVING)\s*$", re.MULTILINE)
_MODE_LINE = re.compile(r"^Mode: (\S+)", re.MULTILINE)

#: What a learner logs when the leader's sync starts (Apache 3.8 ``Learner.syncWithLeader``,
#: INFO): a DIFF, a SNAP, or a TRUNC (for TRUNC+DIFF too). zkfast logs the same words; the
#: match ignores case and an optional "the" ("Getting a snapshot from leader 0x..").
SYNC_LINES = {
    "DIFF": re.compile(r"getting a diff from (?:the )?leader 0x([0-9a-f]+)", re.IGNORECASE),
    "SNAP": re.compile(r"getting a snapshot from (?:the )?leader 0x([0-9a-f]+)", re.IGNORECASE),
    "TRUNC": re.compile(r"truncating log to get in sync with (?:the )?leader 0x([0-9a-f]+)",
                        re.IGNORECASE),
}
#: What the leader logs per learner (Apache 3.8 ``LearnerHandler.syncFollower`` and ``run``):
#: "Sending DIFF zxid=0x.. for peer sid: N", "Sending TRUNC zxid=0x..  for peer sid: N",
#: "Sending snapshot last zxid of peer is 0x.., ...".
LEADER_SYNC_LINE = re.compile(
    r"Sending (?:DIFF zxid=0x[0-9a-fA-F]+\s+for peer sid: ?\d+"
    r"|TRUNC(?: to follower zxidToSend=| zxid=)0x[0-9a-fA-F]+\s+for peer sid: ?\d+"
    r"|snapshot last zxid of peer is 0x[0-9a-fA-F]+)")


class Ensemble:
    """N quorum peers on loopback, each zkfast or Apache, with its own dataDir, myid and zoo.cfg.

    Every peer gets a client, a quorum and an election port (free ports picked now). With
    ``proxied=True`` every ordered pair of peers (i dials j) goes through its own `TcpProxy`
    for both of j's ports: peer i's zoo.cfg names the proxies in its ``server.j`` line (its own
    line keeps its real ports), so `partition(sid)` cuts every link of one peer, in both
    directions, and `heal(sid)` restores them.

    Peers are started and stopped through their own `ServerProcess` handles; `stop()` stops
    every peer and proxy. Nothing here sleeps for timing: the `wait_*` helpers poll.

    Args:
        workdir: a directory of its own; peer N lives in ``workdir/sN``.
        kinds: "zkfast" or "apache" per peer; sids are 1..len(kinds).
        cfg: zoo.cfg entries shared by every peer (tickTime, initLimit, ...).
        props: -D properties for zkfast peers; jvm_props: for Apache peers.
        data_dirs: an existing dataDir to copy for a sid (a prepared txn history).
        observers: sids whose server lines say ``:observer``.
    """

    def __init__(
        self,
        workdir: Path | str,
        kinds: Sequence[str],
        *,
        cfg: Mapping[str, str] | None = None,
        props: Mapping[str, str] | None = None,
        jvm_props: Mapping[str, str] | None = None,
        proxied: bool = False,
        data_dirs: Mapping[int, Path] | None = None,
        env: Mapping[str, str] | None = None,
        observers: Sequence[int] = (),
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.observers = frozenset(observers)
        self.kinds = {sid: kind for sid, kind in enumerate(kinds, start=1)}
        assert all(k in ("zkfast", "apache") for k in self.kinds.values()), kinds
        self.ports = {sid: (free_port(), free_port(), free_port()) for sid in self.kinds}
        self.proxies: dict[tuple[int, int], tuple[TcpProxy, TcpProxy]] = {}
        if proxied:
            for i in self.kinds:
                for j in self.kinds:
                    if i != j:
                        _, qp, ep = self.ports[j]
                        self.proxies[(i, j)] = (TcpProxy(qp), TcpProxy(ep))
        self.props = dict(props or {})
        self.jvm_props = dict(jvm_props or {})
        self.env = dict(env) if env is not None else None
        self.settings: dict[int, dict[str, str]] = {}
        self.servers: dict[int, ServerProcess] = {}
        for sid, kind in self.kinds.items():
            d = self.workdir / f"s{sid}"
            data = d / "data"
            if data_dirs and sid in data_dirs:
                shutil.copytree(data_dirs[sid], data, dirs_exist_ok=True)
            data.mkdir(parents=True, exist_ok=True)
            (data / "myid").write_text(f"{sid}\n", "ascii")
            settings = {"initLimit": "5", "syncLimit": "2", "tickTime": "1000",
                        **(cfg or {}), "dataDir": str(data),
                        "clientPort": str(self.ports[sid][0])}
            settings.update(self._server_lines(sid))
            self.settings[sid] = settings
            self.servers[sid] = self._make(sid, kind)

    def _make(self, sid: int, kind: str,
              extra_props: Mapping[str, str] | None = None) -> ServerProcess:
        d = self.workdir / f"s{sid}"
        if kind == "zkfast":
            return zkfast_server(d, self.settings[sid], {**self.props, **(extra_props or {})},
                                 env=self.env, start=False)
        return apache_server(d, self.settings[sid], {**self.jvm_props, **(extra_props or {})},
                             start=False)

    def replace(self, sid: int, kind: str, *, props: Mapping[str, str] | None = None,
                start: bool = True, timeout_s: float = 60.0) -> ServerProcess:
        """Stop peer `sid` (SIGTERM) and put a server of `kind` in its place: the same zoo.cfg,
        ports, myid and dataDir (the path by which an operator swaps one implementation for
        the other). `props` are extra -D properties for this server only. The new server is
        started (and waited for, as `start`) unless `start` is false."""
        assert kind in ("zkfast", "apache"), kind
        self.servers[sid].stop()
        self.kinds[sid] = kind
        self.servers[sid] = self._make(sid, kind, props)
        if start:
            self.start([sid], timeout_s)
        return self.servers[sid]

    def restart(self, sid: int, *, props: Mapping[str, str] | None = None,
                timeout_s: float = 60.0) -> ServerProcess:
        """Start peer `sid` again (after `kill()` or `stop()`), optionally with extra -D props."""
        if props is not None:
            return self.replace(sid, self.kinds[sid], props=props, timeout_s=timeout_s)
        self.start([sid], timeout_s)
        return self.servers[sid]

    def _server_lines(self, me: int) -> dict[str, str]:
        out = {}
        for sid in self.kinds:
            _, qp, ep = self.ports[sid]
            if sid != me and (me, sid) in self.proxies:
                q, e = self.proxies[(me, sid)]
                qp, ep = q.port, e.port
            kind = "observer" if sid in self.observers else "participant"
            out[f"server.{sid}"] = f"{LOOPBACK}:{qp}:{ep}:{kind}"
        return out

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, sids: Sequence[int] | None = None, timeout_s: float = 60.0) -> None:
        """Start the given peers (default: all) and wait until each answers `ruok`."""
        chosen = list(self.kinds) if sids is None else list(sids)
        for sid in chosen:
            self.servers[sid].start(wait=False)
        for sid in chosen:
            wait_until(lambda sid=sid: self._answers_ruok(sid), timeout_s,  # type: ignore[misc]
                       f"peer {sid} answering ruok")

    def _answers_ruok(self, sid: int) -> bool:
        s = self.servers[sid]
        if not s.running:
            raise ServerStartError(f"peer {sid} ({s.kind}) exited with {s.returncode}; "
                                   f"log tail:\n{s.log_tail()}")
        try:
            return s.four_letter_word("ruok", timeout_s=2.0).strip() == "imok"
        except OSError:
            return False

    def stop(self) -> None:
        """Stop every peer (SIGTERM, then SIGKILL) and every proxy."""
        for s in self.servers.values():
            s.stop()
        for q, e in self.proxies.values():
            q.stop()
            e.stop()

    def __enter__(self) -> Ensemble:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def partition(self, sid: int) -> None:
        """Cut every election and quorum link of `sid` (both directions)."""
        for (i, j), pair in self.proxies.items():
            if sid in (i, j):
                for p in pair:
                    p.partition()

    def heal(self, sid: int) -> None:
        for (i, j), pair in self.proxies.items():
            if sid in (i, j):
                for p in pair:
                    p.heal()

    def _links(self, sid: int, peers: Sequence[int] | None, quorum_only: bool) -> list[TcpProxy]:
        out: list[TcpProxy] = []
        for (i, j), (q, e) in self.proxies.items():
            if sid not in (i, j):
                continue
            other = j if i == sid else i
            if peers is not None and other not in peers:
                continue
            out.extend([q] if quorum_only else [q, e])
        return out

    def pause(self, sid: int, peers: Sequence[int] | None = None, *,
              quorum_only: bool = False) -> None:
        """Stall the links of `sid` (to `peers`, default all; with `quorum_only`, the quorum
        links only): connections stay open and bytes are held, not lost, until `resume` (or
        thrown away by `drop`). Unlike `partition`, nobody sees a closed connection."""
        for p in self._links(sid, peers, quorum_only):
            p.pause()

    def resume(self, sid: int, peers: Sequence[int] | None = None, *,
               quorum_only: bool = False) -> None:
        for p in self._links(sid, peers, quorum_only):
            p.resume()

    def drop(self, sid: int, peers: Sequence[int] | None = None, *,
             quorum_only: bool = False) -> int:
        """Reset the current connections of the links of `sid` (bytes held by a pause are
        thrown away). Returns how many were reset."""
        return sum(p.drop_connections() for p in self._links(sid, peers, quorum_only))

    # -- observation ------------------------------------------------------------------------
    def mode(self, sid: int) -> str | None:
        """`Mode:` from `srvr` (leader, follower, ...), or None while not serving / down."""
        try:
            answer = self.servers[sid].four_letter_word("srvr", timeout_s=2.0)
        except OSError:
            return None
        m = _MODE_LINE.search(answer)
        return m.group(1) if m else None

    def logged_role(self, sid: int) -> str | None:
        """The last LOOKING/LEADING/FOLLOWING/OBSERVING line of the peer's log (both kinds)."""
        found = _ROLE_LINE.findall(self.servers[sid].log_text())
        return found[-1] if found else None

    def logged_roles(self, sid: int) -> list[str]:
        return _ROLE_LINE.findall(self.servers[sid].log_text())

    def modes(self, sids: Sequence[int] | None = None) -> dict[int, str | None]:
        return {sid: self.mode(sid) for sid in (sids or list(self.kinds))}

    def mntr(self, sid: int) -> dict[str, str]:
        """`mntr` as a dict (``zk_peer_state`` -> ``following - broadcast``); {} when down."""
        try:
            text = self.servers[sid].four_letter_word("mntr", timeout_s=2.0)
        except OSError:
            return {}
        out: dict[str, str] = {}
        for line in text.splitlines():
            key, sep, value = line.partition("\t")
            if sep:
                out[key] = value
        return out

    def peer_state(self, sid: int) -> str | None:
        """``zk_peer_state`` of `mntr`: e.g. ``leading - broadcast`` (both kinds say it)."""
        return self.mntr(sid).get("zk_peer_state")

    def last_zxid(self, sid: int) -> int | None:
        """The ``Zxid:`` of `srvr` (the last applied txn), or None when not serving."""
        try:
            answer = self.servers[sid].four_letter_word("srvr", timeout_s=2.0)
        except OSError:
            return None
        m = re.search(r"^Zxid: 0x([0-9a-fA-F]+)", answer, re.MULTILINE)
        return int(m.group(1), 16) if m else None

    def serving(self, sids: Sequence[int] | None = None) -> int | None:
        """The leader's sid when every one of `sids` (default: all) is in ZAB's broadcast
        phase (`mntr` ``zk_peer_state``: leading/following/observing - broadcast), exactly one
        leads and the observers observe; else None."""
        chosen = list(self.kinds) if sids is None else list(sids)
        leaders = []
        for sid in chosen:
            state = self.peer_state(sid)
            want = ("observing",) if sid in self.observers else ("leading", "following")
            if state is None or not any(state == f"{w} - broadcast" for w in want):
                return None
            if state.startswith("leading"):
                leaders.append(sid)
        return leaders[0] if len(leaders) == 1 else None

    def wait_serving(self, sids: Sequence[int] | None = None, timeout_s: float = 120.0) -> int:
        """Poll until `serving(sids)` names a leader; return its sid."""
        leader = wait_until(lambda: self.serving(sids), timeout_s,
                            f"peers {list(sids) if sids else list(self.kinds)} serving, one leader")
        assert isinstance(leader, int)
        return leader

    def digests(self, sid: int) -> dict[int, int]:
        """{zxid: digest} from the `hash` four-letter word ({} when down or digests are off).

        Apache 3.8 answers with its digest log (one entry every 128 txns, DataTree
        DIGEST_LOG_INTERVAL); zkfast answers with the digest at its last applied zxid.
        """
        try:
            text = self.servers[sid].four_letter_word("hash", timeout_s=2.0)
        except OSError:
            return {}
        out: dict[int, int] = {}
        for m in re.finditer(r"^([0-9a-fA-F]+): (-?\d+)\s*$", text, re.MULTILINE):
            out[int(m.group(1), 16)] = int(m.group(2))
        return out

    def sync_path(self, sid: int) -> str | None:
        """How learner `sid` was brought up to date in its current run: "DIFF", "TRUNC" or
        "SNAP" (the last of them), from its log since its last start (`SYNC_LINES`)."""
        text = self.servers[sid].log_text_since_start()
        found = [(m.start(), path) for path, rx in SYNC_LINES.items()
                 for m in rx.finditer(text)]
        return max(found)[1] if found else None

    def leader_sync_lines(self, sid: int) -> list[str]:
        """The leader-side "Sending DIFF/TRUNC/snapshot" lines of `sid` (`LEADER_SYNC_LINE`),
        in order, from every run."""
        return [m.group(0) for m in LEADER_SYNC_LINE.finditer(self.servers[sid].log_text())]

    def settled_modes(self, sids: Sequence[int] | None = None) -> dict[int, str] | None:
        """`srvr` modes when exactly one of `sids` leads and every other follows, else None."""
        modes = self.modes(sids)
        values = list(modes.values())
        if values.count("leader") == 1 and values.count("follower") == len(values) - 1:
            return {k: v for k, v in modes.items() if v is not None}
        return None
