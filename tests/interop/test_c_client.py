"""Apache's C client (cli_mt, ZooKeeper 3.8.0) against zkfast and Apache.

cli_mt reads one command per line and prints replies from its completion thread, in the order
the server's frames arrived (watch notifications included), all on stderr (unbuffered; merged
with stdout into one pipe here). Each command is sent only after the previous one's output was
seen, and every wait is a poll on the collected lines with a generous deadline, never a sleep.
`exists`/`wexists` are synchronous in cli_mt and print only on error, so a `get` of a missing
marker node follows them to show they completed.

The C client's session handshake is strict: it always sends the 45-byte ConnectRequest (with the
readOnly byte) and reads exactly 41 bytes back. `test_handshake_bytes_as_the_c_client_reads_them`
checks those bytes directly; every cli_mt session here depends on them too. The reconnect test
cuts the C client's connection (through a TcpProxy): it must resume its session (id, password,
lastZxidSeen, readOnly byte) and re-arm its watches with a SetWatches sent as xid -8.
"""

from __future__ import annotations

import re
import socket
import struct
from collections.abc import Callable
from typing import Any

import pytest

from zkfast.testing.differential import zk_passwd
from zkfast.testing.procs import ServerProcess, TcpProxy

pytestmark = pytest.mark.interop

Spawn = Callable[[list[str]], Any]


def _connect(spawn_cli: Spawn, cli_mt: str, server: ServerProcess) -> tuple[Any, int]:
    """Start cli_mt against `server`; return the process and its session id once connected."""
    cli = spawn_cli([cli_mt, server.hosts])
    m = cli.wait_for(r"^Got a new session id: 0x([0-9a-f]+)$")
    cli.wait_for(r"^Watcher SESSION_EVENT state = CONNECTED_STATE$")
    return cli, int(m.group(1), 16)


def _block(cli: Any, start: int, first: str, last: str) -> list[str]:
    """The lines from the one matching `first` to the next one matching `last` (both included)."""
    cli.wait_for(first, start)
    i = cli.index_of(first, start)
    cli.wait_for(last, i)
    j = cli.index_of(last, i)
    return list(cli.slice(i, j + 1))


def _stat(lines: list[str]) -> dict[str, str]:
    """dumpStat() lines: czxid, mzxid, version, aversion (hex) and ephemeralOwner (hex)."""
    text = "\n".join(lines)
    out = {}
    for key in ("czxid", "mzxid", "version", "aversion"):
        m = re.search(rf"\b{key}=([0-9a-f]+)", text)
        assert m, text
        out[key] = m.group(1)
    m = re.search(r"ephemeralOwner = ([0-9a-f]+)", text)
    assert m, text
    out["ephemeralOwner"] = m.group(1)
    return out


def _marker(cli: Any, name: str) -> int:
    """Send a `get` of a missing node and wait for its NoNode; returns the next line index."""
    at = cli.send(f"get /cli-mark-{name}")
    cli.wait_for(rf"^/cli-mark-{name}: rc = -101$", at)
    return cli.index_of(rf"^/cli-mark-{name}: rc = -101$", at) + 1


def test_crud_and_watches(interop_server: ServerProcess, cli_mt: str, spawn_cli: Spawn) -> None:
    cli, sid = _connect(spawn_cli, cli_mt, interop_server)
    assert sid != 0

    at = cli.send("create /c1")
    assert _block(cli, at, r"^\[/c1\]: rc = ", r"name = |rc = -")[-1] == "\tname = /c1"

    at = cli.send("create +e /c1/eph")
    assert _block(cli, at, r"^\[/c1/eph\]: rc = ", r"name = |rc = -")[-1] == "\tname = /c1/eph"

    at = cli.send("create +s /c1/s")
    # the sequence suffix counts the parent's child creations: /c1/eph was the first
    assert (
        _block(cli, at, r"^\[/c1/s\]: rc = ", r"name = |rc = -")[-1] == "\tname = /c1/s0000000001"
    )

    at = cli.send("create /c1")
    assert cli.wait_for(r"^\[/c1\]: rc = (-?\d+)$", at).group(1) == "-110"

    at = cli.send("set /c1 hello")
    lines = _block(cli, at, r"^/c1: rc = 0 Stat:$", r"ephemeralOwner = ")
    st = _stat(lines)
    assert st["version"] == "1" and st["aversion"] == "0" and st["ephemeralOwner"] == "0"
    assert int(st["mzxid"], 16) > int(st["czxid"], 16)

    at = cli.send("get /c1")
    lines = _block(cli, at, r"^/c1: rc = 0$", r"ephemeralOwner = ")
    assert lines[1:3] == [" value_len = 5", "hello"], lines
    assert _stat(lines)["version"] == "1"

    at = cli.send("get /c1/eph")
    lines = _block(cli, at, r"^/c1/eph: rc = 0$", r"ephemeralOwner = ")
    assert lines[1:3] == [" value_len = 3", "new"], lines
    assert int(_stat(lines)["ephemeralOwner"], 16) == sid

    at = cli.send("get /nonexistent")
    assert cli.wait_for(r"^/nonexistent: rc = (-?\d+)$", at).group(1) == "-101"

    # ls sets a child watch on /c1 (cli_mt always passes watch=1)
    at = cli.send("ls /c1")
    lines = _block(cli, at, r"^/c1: rc = 0$", r"^time = \d+ msec$")
    assert sorted(line.strip() for line in lines[1:-1]) == ["eph", "s0000000001"], lines

    at = cli.send("ls2 /c1")
    lines = _block(cli, at, r"^/c1: rc = 0$", r"ephemeralOwner = ")
    assert sorted(x.strip() for x in lines[1:] if x.startswith("\t") and "=" not in x) == [
        "eph",
        "s0000000001",
    ], lines

    at = cli.send("delete /c1")
    assert cli.wait_for(r"^/c1: rc = (-?\d+)$", at).group(1) == "-111"

    # the child watch fires before the reply of the delete that triggered it
    at = cli.send("delete /c1/s0000000001")
    cli.wait_for(r"^/c1/s0000000001: rc = 0$", at)
    event = cli.index_of(r"^Watcher CHILD_EVENT state = CONNECTED_STATE for path /c1$", at)
    assert event < cli.index_of(r"^/c1/s0000000001: rc = 0$", at)

    # exists with a watch (synchronous in cli_mt: silent on success), then a data change
    at = cli.send("exists /c1")
    at = _marker(cli, "1")
    assert all("Error" not in line for line in cli.slice(at - 3, at)), cli.text()
    at = cli.send("set /c1 again")
    cli.wait_for(r"^/c1: rc = 0 Stat:$", at)
    event = cli.index_of(r"^Watcher CHANGED_EVENT state = CONNECTED_STATE for path /c1$", at)
    assert event < cli.index_of(r"^/c1: rc = 0 Stat:$", at)

    # an exists watch on a missing node: NoNode, yet the watch is set and fires on create
    at = cli.send("wexists /w1")
    assert cli.wait_for(r"^Error (-?\d+) for /w1$", at).group(1) == "-101"
    at = cli.send("create /w1")
    cli.wait_for(r"^\[/w1\]: rc = 0$", at)
    event = cli.index_of(r"^Watcher CREATED_EVENT state = CONNECTED_STATE for path /w1$", at)
    assert event < cli.index_of(r"^\[/w1\]: rc = 0$", at)

    at = cli.send("sync /c1")
    assert _block(cli, at, r"^\[/c1\]: rc = ", r"name = |rc = -")[-1] == "\tname = /c1"

    at = cli.send("create2 /c2")
    lines = _block(cli, at, r"^\[/c2\]: rc = 0$", r"ephemeralOwner = ")
    assert lines[1] == "\tname = /c2"
    st2 = _stat(lines)
    assert st2["czxid"] == st2["mzxid"] and st2["version"] == "0"

    at = cli.send("delete /c2")
    cli.wait_for(r"^/c2: rc = 0$", at)
    at = cli.send("quit")
    cli.wait_for(r"^Quitting\.\.\.$", at)
    assert cli.close() == 0

    # a second C client: the first session's ephemeral went with it
    cli2, sid2 = _connect(spawn_cli, cli_mt, interop_server)
    assert sid2 != sid
    at = cli2.send("get /c1/eph")
    assert cli2.wait_for(r"^/c1/eph: rc = (-?\d+)$", at).group(1) == "-101"
    at = cli2.send("ls /c1")
    assert _block(cli2, at, r"^/c1: rc = 0$", r"^time = \d+ msec$")[1:-1] == []
    cli2.send("quit")
    assert cli2.close() == 0


def test_watch_from_another_c_client(
    interop_server: ServerProcess, cli_mt: str, spawn_cli: Spawn
) -> None:
    """Notifications reach a C client for writes made by another C client."""
    watcher, _ = _connect(spawn_cli, cli_mt, interop_server)
    writer, _ = _connect(spawn_cli, cli_mt, interop_server)
    at = writer.send("create /x")
    writer.wait_for(r"^\[/x\]: rc = 0$", at)
    w_at = watcher.send("get /x")  # a data watch
    watcher.wait_for(r"^/x: rc = 0$", w_at)
    watcher.send("ls /x")  # a child watch
    watcher.wait_for(r"^time = \d+ msec$", watcher.index_of(r"^/x: rc = 0$", w_at) + 1)
    w_at = watcher.send("wexists /y")
    watcher.wait_for(r"^Error -101 for /y$", w_at)
    for cmd, done in [
        ("create /x/k", r"^\[/x/k\]: rc = 0$"),
        ("set /x v", r"^/x: rc = 0 Stat:$"),
        ("create /y", r"^\[/y\]: rc = 0$"),
    ]:
        at = writer.send(cmd)
        writer.wait_for(done, at)
    watcher.wait_for(r"for path /y$", w_at)
    events = [line for line in watcher.slice(w_at, 1 << 30) if line.startswith("Watcher ")]
    assert events == [
        "Watcher CHILD_EVENT state = CONNECTED_STATE for path /x",
        "Watcher CHANGED_EVENT state = CONNECTED_STATE for path /x",
        "Watcher CREATED_EVENT state = CONNECTED_STATE for path /y",
    ], watcher.text()


def test_read_only_flag_is_accepted_by_a_read_write_server(
    interop_server: ServerProcess, cli_mt: str, spawn_cli: Spawn, tmp_path: Any
) -> None:
    """`cli_mt host -r` asks for a read-only capable session; a standalone server serves it rw."""
    # cli_mt treats its 2nd argument as a client-id file too: give it a path of its own
    idfile = tmp_path / "client-id"
    cli = spawn_cli([cli_mt, interop_server.hosts, str(idfile), "-r"])
    cli.wait_for(r"^Watcher SESSION_EVENT state = CONNECTED_STATE$")
    at = cli.send("create /ro-ok")
    cli.wait_for(r"^\[/ro-ok\]: rc = 0$", at)
    cli.send("quit")
    assert cli.close() == 0


def _read_exact(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return bytes(out)


@pytest.mark.parametrize("read_only_byte", [True, False])
def test_handshake_bytes_as_the_c_client_reads_them(
    interop_server: ServerProcess, read_only_byte: bool
) -> None:
    """45 bytes in, exactly 41 back (37-byte payload, 16-byte password, readOnly byte); without
    the readOnly byte (a pre-3.4 client), 40 back."""
    req = struct.pack(">iqiqi", 0, 0, 30000, 0, 16) + b"\0" * 16
    if read_only_byte:
        req += b"\0"
    with socket.create_connection(("127.0.0.1", interop_server.client_port), timeout=30) as s:
        s.sendall(struct.pack(">i", len(req)) + req)
        head = _read_exact(s, 4)
        (length,) = struct.unpack(">i", head)
        assert length == (37 if read_only_byte else 36)
        body = _read_exact(s, length)
        proto, timeout, sid, pwlen = struct.unpack_from(">iiqi", body)
        assert (proto, timeout, pwlen) == (0, 30000, 16)
        assert sid != 0
        assert body[20:36] == zk_passwd(sid), (
            "the password must be Apache's, so any server verifies it"
        )
        if read_only_byte:
            assert body[36:] == b"\0"
        # the session works: a ping is answered
        s.sendall(struct.pack(">iii", 8, -2, 11))
        (n,) = struct.unpack(">i", _read_exact(s, 4))
        xid, _zxid, err = struct.unpack(">iqi", _read_exact(s, n))
        assert (xid, err) == (-2, 0)


def test_reconnect_resumes_session_and_rearms_watches(
    interop_server: ServerProcess, cli_mt: str, spawn_cli: Spawn
) -> None:
    """The C client's reconnect path: its connection is cut, it resumes the same session (id and
    password in the ConnectRequest) and re-arms its watches with SetWatches sent as xid -8;
    the watch then fires for another client's write, and its ephemeral survived."""
    with TcpProxy(interop_server.client_port) as proxy:
        cli = spawn_cli([cli_mt, proxy.hosts])
        m = cli.wait_for(r"^Got a new session id: 0x([0-9a-f]+)$")
        sid = int(m.group(1), 16)
        at = cli.send("create +e /eph-r")
        cli.wait_for(r"^\[/eph-r\]: rc = 0$", at)
        at = cli.send("create /rw")
        cli.wait_for(r"^\[/rw\]: rc = 0$", at)
        at = cli.send("get /rw")  # a data watch
        cli.wait_for(r"^/rw: rc = 0$", at)
        at = cli.send("ls /rw")  # a child watch
        cli.wait_for(r"^/rw: rc = 0$", at)
        assert proxy.drop_connections() >= 1
        cli.wait_for(r"^Watcher SESSION_EVENT state = CONNECTING_STATE$", at)
        back = cli.index_of(r"^Watcher SESSION_EVENT state = CONNECTING_STATE$", at)
        cli.wait_for(r"^Watcher SESSION_EVENT state = CONNECTED_STATE$", back)
        # the same session: the C client prints a session id only when it changes
        assert not any("Got a new session id" in line for line in cli.slice(back, 1 << 30))
        # the C client sends SetWatches before any queued request: once this reply is in, the
        # server has re-armed the watches (before that, a write would race with the SetWatches)
        _marker(cli, "after-reconnect")

        writer, _ = _connect(spawn_cli, cli_mt, interop_server)
        w_at = writer.send("get /eph-r")
        lines = _block(writer, w_at, r"^/eph-r: rc = 0$", r"ephemeralOwner = ")
        assert int(_stat(lines)["ephemeralOwner"], 16) == sid
        for cmd, done in [
            ("create /rw/k", r"^\[/rw/k\]: rc = 0$"),
            ("set /rw v", r"^/rw: rc = 0 Stat:$"),
        ]:
            w_at = writer.send(cmd)
            writer.wait_for(done, w_at)
        cli.wait_for(r"^Watcher CHANGED_EVENT state = CONNECTED_STATE for path /rw$", back)
        events = [x for x in cli.slice(back, 1 << 30) if x.startswith("Watcher ") and "path" in x]
        assert events == [
            "Watcher CHILD_EVENT state = CONNECTED_STATE for path /rw",
            "Watcher CHANGED_EVENT state = CONNECTED_STATE for path /rw",
        ], cli.text()
        cli.send("quit")
        assert cli.close() == 0
