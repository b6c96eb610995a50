"""``zkfast-server`` / ``python -m zkfast``: command line -> ServerConfig -> running server.

The argument forms are Apache's (``ZooKeeperServerMain``/``QuorumPeerMain``) so scripts written
for ``zkServer.sh`` carry over: a zoo.cfg path, or ``port datadir [tickTime] [maxClientCnxns]``,
plus the Java-style ``-Dname=value`` system properties (accepted anywhere on the line). With no
arguments zkfast serves on 127.0.0.1:2181 with its data in ./zkfast-data.

Exit codes follow Apache's ``ExitCode``: 0 after a clean shutdown (SIGTERM/SIGINT), 2 for bad
arguments or configuration (the message names the key), 3 when the data directory cannot be
used, 1 for anything else (a port already in use, an internal failure).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

__all__ = ["main", "parse_args", "USAGE"]

USAGE = """\
usage: zkfast-server [zoo.cfg] [-Dname=value ...]
       zkfast-server port datadir [tickTime] [maxClientCnxns] [-Dname=value ...]

Runs a ZooKeeper-compatible server (Apache ZooKeeper 3.8 protocol): standalone, or a
quorum peer when zoo.cfg has server.N lines (myid in dataDir).

  zoo.cfg          an Apache zoo.cfg, read unchanged (dataDir, clientPort, tickTime, ssl.*,
                   4lw.commands.whitelist, ...). Without it: 127.0.0.1:2181, data in
                   ./zkfast-data.
  -Dname=value     a setting Apache takes as a Java system property, with or without the
                   "zookeeper." prefix (e.g. -Dzookeeper.extendedTypesEnabled=true,
                   -Djute.maxbuffer=4194304, -Djava.security.auth.login.config=jaas.conf);
                   any zoo.cfg key works too and overrides the file.

environment:
  ZKFAST_LOOP=auto|uvloop|asyncio   event loop (auto: uvloop when installed)
  ZKFAST_LOG_LEVEL=INFO             log level (DEBUG, INFO, WARNING, ERROR)
  ZKFAST_PURE=1                     run the pure-Python core instead of the compiled one

exit codes: 0 clean shutdown, 1 runtime failure, 2 bad arguments/configuration,
            3 data directory unusable
"""

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_INVALID_INVOCATION = 2
EXIT_DATADIR = 3


class UsageError(ValueError):
    """The command line itself is malformed."""


def parse_args(argv: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """Split the command line into positional arguments and -D properties.

    Raises:
        UsageError: an unknown option or an empty -D name.
    """
    positional: list[str] = []
    props: dict[str, str] = {}
    for arg in argv:
        if arg.startswith("-D"):
            name, _, value = arg[2:].partition("=")
            if not name.strip():
                raise UsageError(f"{arg!r}: a -D property needs a name (-Dname=value)")
            props[name.strip()] = value
        elif arg.startswith("-") and arg != "-":
            raise UsageError(f"unknown option {arg!r}")
        else:
            positional.append(arg)
    if len(positional) > 4 or (len(positional) > 1 and not positional[0].isdigit()):
        raise UsageError(f"unexpected arguments: {' '.join(positional)}")
    return positional, props


def _setup_logging() -> None:
    level_name = os.environ.get("ZKFAST_LOG_LEVEL", "INFO").upper()
    level = getattr(logging, level_name, None)
    if not isinstance(level, int):
        level = logging.INFO
    logging.basicConfig(
        level=level, stream=sys.stderr,
        format="%(asctime)s.%(msecs)03d %(levelname)s [%(name)s] %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until it is told to stop; return the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        sys.stdout.write(USAGE)
        return EXIT_OK
    if "--version" in args:
        from . import ZK_COMPAT_VERSION, __version__

        print(f"zkfast {__version__} (ZooKeeper {ZK_COMPAT_VERSION} protocol)")
        return EXIT_OK
    if not __debug__:
        print("zkfast-server: refusing to run under python -O: its assertions guard the "
              "server's invariants", file=sys.stderr)
        return EXIT_INVALID_INVOCATION
    try:
        positional, props = parse_args(args)
    except UsageError as e:
        print(f"zkfast-server: {e}\n\n{USAGE}", file=sys.stderr)
        return EXIT_INVALID_INVOCATION
    _setup_logging()
    log = logging.getLogger("zkfast.cli")

    from .config import ConfigError, config_from_properties, load_config

    try:
        if len(positional) >= 2:
            keys = ("clientPort", "dataDir", "tickTime", "maxClientCnxns")
            config = config_from_properties(dict(zip(keys, positional, strict=False)), props)
        else:
            path = positional[0] if positional else None
            if path is not None:
                log.info("Reading configuration from: %s", path)
            config = load_config(path, props)
    except ConfigError as e:
        print(f"zkfast-server: invalid configuration: {e}", file=sys.stderr)
        return EXIT_INVALID_INVOCATION
    from .runtime.server import run

    try:
        for d in {config.data_dir, config.log_dir}:
            os.makedirs(d, exist_ok=True)
            if not os.access(d, os.W_OK | os.X_OK):
                raise PermissionError(13, "not writable", d)
    except OSError as e:
        log.error("Unable to access datadir, exiting abnormally: %s: %s", e.filename, e.strerror)
        print(f"zkfast-server: unable to access the data directory {e.filename}: {e.strerror}",
              file=sys.stderr)
        return EXIT_DATADIR
    from .errors import CorruptDataError
    from .storage.recovery import RecoveryError

    try:
        return run(config)
    except KeyboardInterrupt:  # ^C before the signal handlers were installed (during start)
        return 130
    except (RecoveryError, CorruptDataError) as e:
        log.error("cannot restore the database: %s", e)
        print(f"zkfast-server: cannot restore the database: {e}", file=sys.stderr)
        return EXIT_DATADIR
    except ConfigError as e:  # raised while building the TLS context, for example
        print(f"zkfast-server: invalid configuration: {e}", file=sys.stderr)
        return EXIT_INVALID_INVOCATION
    except OSError as e:
        log.error("cannot start: %s", e)
        print(f"zkfast-server: cannot start: {e}", file=sys.stderr)
        return EXIT_UNEXPECTED
    except ImportError as e:
        log.error("cannot start: %s", e)
        print(f"zkfast-server: cannot start: {e}", file=sys.stderr)
        return EXIT_UNEXPECTED
