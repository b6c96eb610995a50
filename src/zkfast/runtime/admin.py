"""Four-letter words: Apache 3.8's admin commands over a ``ServerCore`` snapshot.

Theory of operation
-------------------
A connection whose first 4 bytes are a four-letter word never becomes a client session: the
runtime calls ``run_four_letter_word(word, core, config, now_ms)``, writes the text it returns
and closes the connection (``NIOServerCnxn.checkFourLetterWord``). Each word reads the core's
state (sessions, connections, stats, tree, watches) and formats it exactly as the matching
``server/command/*Command.java`` does. A word missing from ``config.four_letter_whitelist``
(``*`` = all) answers ``<cmd> is not executed because it is not in the whitelist.``; a server
that stopped serving (storage failure) answers ``This ZooKeeper instance is not currently
serving requests``.

This module lives in ``runtime/`` because ``dirs``, ``envi`` and ``mntr`` look at the
filesystem, the process and the host (os, platform, resource); the cores stay IO-free. The
only state a word changes is statistics: ``crst`` and ``srst`` reset them.

Version lines say ``3.8.0-zkfast-<zkfast version>, built on <date>``: the Apache version whose
protocols zkfast speaks, then zkfast's own (Apache prints ``<version>-<git hash>``).
"""

from __future__ import annotations

import datetime
import os
import platform
import socket
import sys
from collections.abc import Callable
from typing import Any

from .. import ZK_COMPAT_VERSION, __version__
from ..config import ServerConfig

__all__ = ["run_four_letter_word", "version_string", "java_double", "java_date", "COMMANDS"]

ZK_NOT_SERVING = "This ZooKeeper instance is not currently serving requests"
_U64 = (1 << 64) - 1


def _build_date() -> str:
    try:
        mtime = os.path.getmtime(os.path.join(os.path.dirname(__file__), "..", "__init__.py"))
    except OSError:  # pragma: no cover - zipped installs
        mtime = 0.0
    dt = datetime.datetime.fromtimestamp(mtime, tz=datetime.timezone.utc)
    return dt.strftime("%Y-%m-%d %H:%M UTC")


_VERSION = f"{ZK_COMPAT_VERSION}-zkfast-{__version__}, built on {_build_date()}"


def version_string() -> str:
    """``Version.getFullVersion()`` as zkfast reports it."""
    return _VERSION


def java_double(x: float) -> str:
    """``Double.toString`` for the values the stats print (Java switches to E notation)."""
    if x == 0:
        return "0.0"
    ax = abs(x)
    if 1e-3 <= ax < 1e7:
        s = repr(float(x))
        return s if ("." in s or "e" in s) else s + ".0"
    mant, exp = f"{x:.16e}".split("e")
    mant = mant.rstrip("0")
    if mant.endswith("."):
        mant += "0"
    return f"{mant}E{int(exp)}"


def java_date(ms: int) -> str:
    """``java.util.Date.toString`` in UTC: ``Thu Nov 26 18:53:55 UTC 2026``."""
    dt = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return dt.strftime("%a %b %d %H:%M:%S UTC %Y")


def _hex(v: int) -> str:
    return f"{v & _U64:x}"


def _avg(total: int, count: int) -> float:
    """AvgMinMaxCounter.getAvg: rounded to 4 decimals."""
    if count == 0:
        return 0.0
    return round(total / count * 10000) / 10000


def _dir_size(path: str) -> int:
    """ZooKeeperServer.getDirSize: the byte size of every file below ``path``."""
    total = 0
    if not os.path.isdir(path):
        return 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def _snap_dir(config: ServerConfig) -> str:
    return os.path.abspath(os.path.join(config.data_dir, "version-2"))


def _log_dir(config: ServerConfig) -> str:
    return os.path.abspath(os.path.join(config.log_dir, "version-2"))


# ------------------------------------------------------------------ words


def _peer_status(core: Any) -> Any:
    """The quorum peer's status (``QuorumPeerCore.status()``), or None when standalone."""
    fn = getattr(core, "peer_status", None)
    return None if fn is None else fn()


def _mode(core: Any) -> str:
    """``Mode:`` / ``zk_server_state``: standalone, leader, follower, observer, read-only."""
    ps = _peer_status(core)
    if ps is None:
        return "standalone"
    return str(ps.server_state or "standalone")


def _ruok(core: Any, config: ServerConfig, now_ms: int, asking: str | None) -> str:
    return "imok"


def _isro(core: Any, config: ServerConfig, now_ms: int, asking: str | None) -> str:
    if core.storage_failed is not None:
        return "null"
    return "ro" if _mode(core) == "read-only" else "rw"


def _asking_line(asking: str | None) -> list[str]:
    """Apache lists the 4lw connection itself among the clients."""
    return [f" /{asking}[0](queued=0,recved=1,sent=0)\n"] if asking else []


def _server_block(core: Any, with_clients: bool, asking: str | None) -> str:
    st = core.stats
    lines = [f"Zookeeper version: {_VERSION}\n"]
    if _mode(core) == "read-only":
        # StatCommand: a ReadOnlyZooKeeperServer says so under the version line.
        lines.append("READ-ONLY mode; serving only read-only clients\n")
    if with_clients:
        lines.append("Clients:\n")
        for conn in core.conns.values():
            lines.append(conn.brief_line() + "\n")
        lines.extend(_asking_line(asking))
        lines.append("\n")
    lines.append(f"Latency min/avg/max: {st.min_latency}/"
                 f"{java_double(_avg(st.total_latency_ms, st.count))}/{st.max_latency_ms}\n")
    lines.append(f"Received: {st.packets_received}\n")
    lines.append(f"Sent: {st.packets_sent}\n")
    lines.append(f"Connections: {len(core.conns) + (1 if asking else 0)}\n")
    lines.append(f"Outstanding: {core.outstanding_requests}\n")
    lines.append(f"Zxid: 0x{_hex(core.tree.last_processed_zxid)}\n")
    lines.append(f"Mode: {_mode(core)}\n")
    lines.append(f"Node count: {core.tree.node_count}\n")
    return "".join(lines)


def _srvr(core: Any, config: ServerConfig, now_ms: int, asking: str | None) -> str:
    return _server_block(core, False, asking)


def _stat(core: Any, config: ServerConfig, now_ms: int, asking: str | None) -> str:
    return _server_block(core, True, asking)


def _cons(core: Any, config: ServerConfig, now_ms: int, asking: str | None) -> str:
    lines = [conn.full_line() + "\n" for conn in core.conns.values()]
    return "".join(lines + _asking_line(asking)) + "\n"


def _crst(core: Any, config: ServerConfig, now_ms: int, asking: str | None) -> str:
    for conn in core.conns.values():
        conn.reset_stats()
    return "Connection stats reset.\n"


def _srst(core: Any, config: ServerConfig, now_ms: int, asking: str | None) -> str:
    core.stats.reset()
    return "Server stats reset.\n"


def _conf(core: Any, config: ServerConfig, now_ms: int, asking: str | None) -> str:
    snap, log = _snap_dir(config), _log_dir(config)
    secure = config.secure_client_port if config.secure_client_port is not None else -1
    client = config.client_port if config.client_port is not None else -1
    return (
        f"clientPort={client}\n"
        f"secureClientPort={secure}\n"
        f"dataDir={snap}\n"
        f"dataDirSize={_dir_size(snap)}\n"
        f"dataLogDir={log}\n"
        f"dataLogSize={_dir_size(log)}\n"
        f"tickTime={config.tick_ms}\n"
        f"maxClientCnxns={config.max_client_cnxns}\n"
        f"minSessionTimeout={config.session_timeout_min_ms}\n"
        f"maxSessionTimeout={config.session_timeout_max_ms}\n"
        f"clientPortListenBacklog={config.client_port_listen_backlog}\n"
        f"serverId={config.server_id}\n"
    )


def _dirs(core: Any, config: ServerConfig, now_ms: int, asking: str | None) -> str:
    return (f"datadir_size: {_dir_size(_snap_dir(config))}\n"
            f"logdir_size: {_dir_size(_log_dir(config))}\n")


def _wchs(core: Any, config: ServerConfig, now_ms: int, asking: str | None) -> str:
    conns, paths, total = core.watches.summary()
    return f"{conns} connections watching {paths} paths\nTotal watches:{total}\n"


def _conn_session(core: Any, conn_id: int) -> int:
    conn = core.conns.get(conn_id)
    return conn.session_id if conn is not None else 0


def _wchc(core: Any, config: ServerConfig, now_ms: int, asking: str | None) -> str:
    out = []
    for conn_id, paths in core.watches.by_connection().items():
        out.append(f"0x{_hex(_conn_session(core, conn_id))}\n")
        for path in paths:
            out.append(f"\t{path}\n")
    return "".join(out) + "\n"


def _wchp(core: Any, config: ServerConfig, now_ms: int, asking: str | None) -> str:
    out = []
    for path, conn_ids in core.watches.by_path().items():
        out.append(f"{path}\n")
        for conn_id in conn_ids:
            out.append(f"\t0x{_hex(_conn_session(core, conn_id))}\n")
    return "".join(out) + "\n"


def _local_session_count(core: Any) -> int:
    """``zk_local_sessions``: the read-only service's sessions (zkfast has no others yet)."""
    ro = getattr(core, "read_only_service", None)
    return 0 if ro is None else len(ro.sessions.sessions)


def _global_sessions_lines(core: Any) -> list[str]:
    """LearnerSessionTracker.dumpSessions' global part (sessions the data tree holds)."""
    known = core.sessions.sessions
    lines = [f"Global Sessions({len(known)}):\n"]
    for sid in sorted(known, key=lambda v: v & 0xFFFFFFFFFFFFFFFF ^ (1 << 63)):
        lines.append(f"0x{_hex(sid)}\t{known[sid].timeout_ms}ms\n")
    return lines


def _dump(core: Any, config: ServerConfig, now_ms: int, asking: str | None) -> str:
    # Read-only mode: Apache's LearnerSessionTracker dumps its local sessions, then the global
    # ones (the data tree's) with their timeouts.
    ro = getattr(core, "read_only_service", None)
    sessions = core.sessions if ro is None else ro.sessions
    buckets = sessions.expiry_view()
    out = ["SessionTracker dump:\n",
           f"{'' if ro is None else 'Local '}Session Sets ({len(buckets)})/"
           f"({len(sessions.sessions)}):\n"]
    for t, sids in buckets:
        out.append(f"{len(sids)} expire at {java_date(t)}:\n")
        for sid in sids:
            out.append(f"\t0x{_hex(sid)}\n")
    if ro is not None:
        out.extend(_global_sessions_lines(core))
    eph = core.tree.ephemerals
    owners = [sid for sid in sorted(eph) if eph[sid]]
    out.append("ephemeral nodes dump:\n")
    out.append(f"Sessions with Ephemerals ({len(owners)}):\n")
    for sid in owners:
        out.append(f"0x{_hex(sid)}:\n")
        for path in sorted(eph[sid]):
            out.append(f"\t{path}\n")
    out.append("Connections dump:\n")
    by_expiry: dict[int, list[Any]] = {}
    tick = config.tick_ms
    for conn in core.conns.values():
        s = sessions.sessions.get(conn.session_id)
        t = s.expiry_ms if s is not None and s.expiry_ms else (now_ms // tick + 1) * tick
        by_expiry.setdefault(t, []).append(conn)
    out.append(f"Connections Sets ({len(by_expiry)})/({len(core.conns)}):\n")
    for t in sorted(by_expiry):
        conns = by_expiry[t]
        out.append(f"{len(conns)} expire at {java_date(t)}:\n")
        for conn in conns:
            out.append(f"\tip: /{conn.remote_host}:{conn.remote_port} "
                       f"sessionId: 0x{_hex(conn.session_id)}\n")
    return "".join(out)


def _fd_counts() -> tuple[int, int]:
    try:
        open_fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        open_fds = -1
    try:
        import resource

        max_fds = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        max_fds = -1
    return open_fds, max_fds


def _mntr(core: Any, config: ServerConfig, now_ms: int, asking: str | None) -> str:
    st = core.stats
    tree = core.tree
    open_fds, max_fds = _fd_counts()
    values: list[tuple[str, Any]] = [
        ("version", _VERSION),
        ("server_state", _mode(core)),
        ("ephemerals_count", tree.ephemerals_count),
        ("num_alive_connections", len(core.conns) + (1 if asking else 0)),
        ("avg_latency", java_double(_avg(st.total_latency_ms, st.count))),
        ("outstanding_requests", core.outstanding_requests),
        ("znode_count", tree.node_count),
        ("global_sessions", len(core.sessions.sessions)),
        ("non_mtls_remote_conn_count", 0),
        ("last_client_response_size", -1),
        ("packets_sent", st.packets_sent),
        ("packets_received", st.packets_received),
        ("max_client_response_size", -1),
        ("connection_drop_probability", "0.0"),
        ("watch_count", core.watches.watch_count()),
        ("auth_failed_count", 0),
        ("min_latency", st.min_latency),
        ("max_file_descriptor_count", max_fds),
        ("approximate_data_size", tree.approximate_data_size),
        ("open_file_descriptor_count", open_fds),
        ("local_sessions", _local_session_count(core)),
        ("uptime", now_ms - st.started_ms),
        ("max_latency", st.max_latency_ms),
        ("outstanding_tls_handshake", 0),
        ("min_client_response_size", -1),
    ]
    ps = _peer_status(core)
    if ps is not None:
        values += [(k[3:], v) for k, v in ps.mntr(now_ms)]
    return "".join(f"zk_{k}\t{v}\n" for k, v in values)


def _envi(core: Any, config: ServerConfig, now_ms: int, asking: str | None) -> str:
    try:
        host = socket.gethostname()
    except OSError:  # pragma: no cover
        host = "<NA>"
    try:
        user = os.getlogin()
    except OSError:
        user = os.environ.get("USER", "<NA>")
    entries = [
        ("zookeeper.version", _VERSION),
        ("host.name", host),
        ("python.version", platform.python_version()),
        ("python.implementation", platform.python_implementation()),
        ("python.executable", sys.executable),
        ("python.path", os.pathsep.join(sys.path)),
        ("os.name", platform.system()),
        ("os.arch", platform.machine()),
        ("os.version", platform.release()),
        ("user.name", user),
        ("user.home", os.path.expanduser("~")),
        ("user.dir", os.getcwd()),
    ]
    return "Environment:\n" + "".join(f"{k}={v}\n" for k, v in entries)


def _gtmk(core: Any, config: ServerConfig, now_ms: int, asking: str | None) -> str:
    return "306"  # ZooTrace's default text trace mask


def _hash(core: Any, config: ServerConfig, now_ms: int, asking: str | None) -> str:
    # The digest log of the last txns (DataTree.getDigestLog); zkfast reports the current one.
    if not config.digest_enabled:
        return ""
    return f"{_hex(core.tree.last_processed_zxid)}: {core.tree.digest()}\n"


COMMANDS: dict[str, Callable[[Any, ServerConfig, int, str | None], str]] = {
    "ruok": _ruok, "isro": _isro, "srvr": _srvr, "stat": _stat, "cons": _cons, "conf": _conf,
    "crst": _crst, "srst": _srst, "dirs": _dirs, "wchs": _wchs, "wchc": _wchc, "wchp": _wchp,
    "dump": _dump, "mntr": _mntr, "envi": _envi, "gtmk": _gtmk, "stmk": _gtmk, "hash": _hash,
}

#: Words that need a serving server (the others answer even when it is not).
_NEED_SERVING = frozenset({"srvr", "stat", "cons", "conf", "crst", "srst", "dirs", "wchs",
                           "wchc", "wchp", "dump", "mntr", "hash"})


def _whitelisted(cmd: str, config: ServerConfig) -> bool:
    wl = config.four_letter_whitelist
    if "*" in wl or cmd in wl:
        return True
    return cmd == "isro" and config.readonly_mode_enabled


def run_four_letter_word(word: bytes, core: Any, config: ServerConfig, now_ms: int,
                         remote: tuple[str, int] | None = None) -> bytes:
    """The text a four-letter word answers (the runtime writes it and closes).

    Args:
        word: the first 4 bytes of the connection.
        core: the running ``ServerCore``.
        config: its configuration (whitelist, directories, ports).
        now_ms: wall-clock ms (uptime, expiry dates).
        remote: the asking connection's (host, port). When given, it counts as one packet
            received and is listed among the connections, as Apache lists its own 4lw
            connection in stat/cons/srvr/mntr.
    """
    asking = None
    if remote is not None:
        core.stats.packets_received += 1
        asking = f"{remote[0]}:{remote[1]}"
    cmd = word.decode("latin-1")
    fn = COMMANDS.get(cmd)
    if fn is None:
        return b""
    if not _whitelisted(cmd, config):
        return f"{cmd} is not executed because it is not in the whitelist.\n".encode()
    if cmd in _NEED_SERVING and core.storage_failed is not None:
        return (ZK_NOT_SERVING + "\n").encode()
    return fn(core, config, now_ms, asking).encode("utf-8", "surrogatepass")
