"""Scripted zkCli.sh (Apache's Java CLI, 3.8.0) sessions against zkfast and Apache.

Each test pipes one script into a single `zkCli.sh -server` process (no JLine: it reads plain
lines from stdin) and parses what it prints. Every script command is followed by a marker command,
`ls /zkcli-mark-<n>`, whose "Node does not exist" line ends that command's section, so each
command's output is cut out exactly, whatever it printed on stdout or stderr (both go to one pipe;
Java's System.out/err flush on every println, in program order). Watch notifications are printed
by the client's event thread at any point; they are collected apart, in arrival order (the order
the server sent them), and removed from the sections. Nothing here depends on timing.

The same scripts run against Apache 3.8 (which proves the expectations) and against zkfast.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from zkfast.testing.procs import ServerProcess

pytestmark = pytest.mark.interop

ZKCLI = Path("/usr/share/zookeeper/bin/zkCli.sh")
MARK = "/zkcli-mark-"
_EVENT = re.compile(r"^WatchedEvent state:(\w+) type:(\w+) path:(.*)$")
_HEADER = ("Connecting to ", "Welcome to ZooKeeper!", "JLine support is disabled", "SLF4J:")


@dataclass
class Transcript:
    """What one zkCli.sh run printed, cut per command."""

    commands: list[str]
    sections: list[list[str]]
    #: (state, type, path) of every WatchedEvent, in the order printed.
    events: list[tuple[str, str, str]] = field(default_factory=list)
    raw: str = ""

    def out(self, i: int) -> list[str]:
        return self.sections[i]

    def text(self, i: int) -> str:
        return "\n".join(self.sections[i])

    def node_events(self) -> list[tuple[str, str]]:
        """(type, path) of the znode events (connection-state events left out)."""
        return [(t, p) for s, t, p in self.events if t != "None"]


def run_zkcli(server: ServerProcess, commands: list[str], timeout_s: float = 120.0) -> Transcript:
    """Run `commands` in one zkCli.sh session against `server` and return its parsed output."""
    if not ZKCLI.is_file() or shutil.which("java") is None:
        pytest.skip(f"{ZKCLI} or java is not installed (Debian zookeeper packages)")
    script = "".join(f"{cmd}\nls {MARK}{i}\n" for i, cmd in enumerate(commands)) + "quit\n"
    proc = subprocess.Popen(
        [str(ZKCLI), "-server", server.hosts],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        raw_bytes, _ = proc.communicate(script.encode(), timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        raw_bytes, _ = proc.communicate()
        pytest.fail(f"zkCli.sh did not finish in {timeout_s}s; output:\n{raw_bytes.decode()}")
    raw = raw_bytes.decode("utf-8", "replace")
    return parse_transcript(commands, raw)


def parse_transcript(commands: list[str], raw: str) -> Transcript:
    lines = raw.splitlines()
    events: list[tuple[str, str, str]] = []
    kept: list[str] = []
    for line in lines:
        m = _EVENT.match(line)
        if m:
            events.append((m.group(1), m.group(2), m.group(3)))
            # printMessage() prints "\n" + msg: drop the blank line it brought along
            if kept and kept[-1] == "":
                kept.pop()
            continue
        if line == "WATCHER::":
            if kept and kept[-1] == "":
                kept.pop()
            continue
        if line.startswith(_HEADER):
            continue
        kept.append(line)
    sections: list[list[str]] = []
    current: list[str] = []
    for line in kept:
        if line == f"Node does not exist: {MARK}{len(sections)}":
            sections.append(current)
            current = []
        else:
            current.append(line)
    assert len(sections) == len(commands), (
        f"only {len(sections)} of {len(commands)} commands completed; output:\n{raw}"
    )
    return Transcript(commands, sections, events, raw)


def parse_stat(lines: list[str]) -> dict[str, str]:
    """The `key = value` lines of a printed Stat."""
    stat = {}
    for line in lines:
        m = re.match(r"^(\w+) = (.*)$", line)
        if m:
            stat[m.group(1)] = m.group(2)
    assert len(stat) == 11, lines
    return stat


def stat_without_times(lines: list[str]) -> dict[str, str]:
    stat = parse_stat(lines)
    del stat["ctime"], stat["mtime"]
    return stat


def digest(user: str, password: str) -> str:
    sha = hashlib.sha1(f"{user}:{password}".encode()).digest()
    return f"{user}:{base64.b64encode(sha).decode()}"


# --------------------------------------------------------------------------------- tests


def test_create_modes_get_stat_ls(interop_server: ServerProcess) -> None:
    t = run_zkcli(
        interop_server,
        [
            "create /a hello",  # 0
            "create -e /a/e1 x",  # 1
            "create -s /a/s- y",  # 2
            "create -s -e /a/es- z",  # 3
            "create -c /c",  # 4
            "create -t 5000 /t tt",  # 5
            "create /a dup",  # 6
            "create /missing/child",  # 7
            "get -s /a",  # 8
            "stat /a/e1",  # 9
            "stat /c",  # 10
            "stat /t",  # 11
            "ls /a",  # 12
            "ls -s /a",  # 13
            "ls -R /a",  # 14
            "get /a/s-0000000001",  # 15
            "create /a/e1/child",  # 16
            "create -e /a/e1/child",  # 17
            "ls /",  # 18
        ],
    )
    assert t.out(0) == ["Created /a"]
    assert t.out(1) == ["Created /a/e1"]
    # the sequence suffix is the parent's persisted cversion before the create
    assert t.out(2) == ["Created /a/s-0000000001"]
    assert t.out(3) == ["Created /a/es-0000000002"]
    assert t.out(4) == ["Created /c"]
    assert t.out(5) == ["Created /t"]
    assert t.out(6) == ["Node already exists: /a"]
    assert t.out(7) == ["Node does not exist: /missing/child"]
    assert t.out(8)[0] == "hello"
    # zxid 0x1 is the session's createSession txn; each create took one zxid since
    assert stat_without_times(t.out(8)[1:]) == {
        "cZxid": "0x2",
        "mZxid": "0x2",
        "pZxid": "0x5",
        "cversion": "3",
        "dataVersion": "0",
        "aclVersion": "0",
        "ephemeralOwner": "0x0",
        "dataLength": "5",
        "numChildren": "3",
    }
    e1 = stat_without_times(t.out(9))
    assert e1["cZxid"] == "0x3" and e1["dataLength"] == "1" and e1["numChildren"] == "0"
    assert int(e1["ephemeralOwner"], 16) != 0, "an ephemeral node shows its owner session"
    # containers and TTL nodes show ephemeralOwner 0 to clients
    c = stat_without_times(t.out(10))
    assert c == {
        "cZxid": "0x6",
        "mZxid": "0x6",
        "pZxid": "0x6",
        "cversion": "0",
        "dataVersion": "0",
        "aclVersion": "0",
        "ephemeralOwner": "0x0",
        "dataLength": "0",
        "numChildren": "0",
    }
    tt = stat_without_times(t.out(11))
    assert tt["cZxid"] == "0x7" and tt["ephemeralOwner"] == "0x0" and tt["dataLength"] == "2"
    assert t.out(12) == ["[e1, es-0000000002, s-0000000001]"]
    assert t.out(13)[0] == "[e1, es-0000000002, s-0000000001]"
    assert stat_without_times(t.out(13)[1:]) == stat_without_times(t.out(8)[1:])
    assert t.out(14) == ["/a", "/a/e1", "/a/es-0000000002", "/a/s-0000000001"]
    assert t.out(15) == ["y"]
    assert t.out(16) == ["Ephemerals cannot have children: /a/e1/child"]
    assert t.out(17) == ["Ephemerals cannot have children: /a/e1/child"]
    assert t.out(18) == ["[a, c, t, zookeeper]"]
    assert t.node_events() == []


def test_set_versions_delete_deleteall(interop_server: ServerProcess) -> None:
    t = run_zkcli(
        interop_server,
        [
            "create /v one",  # 0
            "set -v 0 /v two",  # 1
            "set -v 0 /v three",  # 2
            "set -s -v 1 /v four",  # 3
            "get /v",  # 4
            "set /nope x",  # 5
            "create /v/c1",  # 6
            "create /v/c1/gc",  # 7
            "create /v/c2",  # 8
            "delete /v",  # 9
            "delete -v 3 /v/c2",  # 10
            "delete -v 0 /v/c2",  # 11
            "delete /v/c2",  # 12
            "getAllChildrenNumber /v",  # 13
            "getAllChildrenNumber /",  # 14
            "deleteall /v",  # 15
            "ls /",  # 16
            "stat /v",  # 17
            "delete /zookeeper",  # 18
            "stat /",  # 19
        ],
    )
    assert t.out(0) == ["Created /v"]
    assert t.out(1) == []
    assert t.out(2) == ["version No is not valid : /v"]
    stat = stat_without_times(t.out(3))
    # the failed set (BadVersion) still consumed a zxid: 0x2 create, 0x3 set, 0x4 error txn
    assert stat["dataVersion"] == "2" and stat["dataLength"] == "4" and stat["mZxid"] == "0x5"
    assert t.out(4) == ["four"]
    assert t.out(5) == ["Node does not exist: /nope"]
    assert t.out(9) == ["Node not empty: /v"]
    assert t.out(10) == ["version No is not valid : /v/c2"]
    assert t.out(11) == []
    assert t.out(12) == ["Node does not exist: /v/c2"]
    assert t.out(13) == ["2"]
    # every node but the root: /v, /v/c1, /v/c1/gc, /zookeeper, /zookeeper/quota, /zookeeper/config
    assert t.out(14) == ["6"]
    assert t.out(15) == []
    assert t.out(16) == ["[zookeeper]"]
    assert t.out(17) == ["Node does not exist: /v"]
    assert any("/zookeeper" in line for line in t.out(18)), t.out(18)
    root = stat_without_times(t.out(19))
    assert root["cZxid"] == "0x0" and root["numChildren"] == "1" and root["dataVersion"] == "0"
    # one child was ever created under / (/v; /zookeeper is built in): the persisted cversion
    # is 1, and clients see 2 * 1 - numChildren(1) = 1
    assert root["cversion"] == "1"


def test_acl_digest_addauth_whoami(interop_server: ServerProcess) -> None:
    u1 = digest("u1", "p1")
    t = run_zkcli(
        interop_server,
        [
            "create /acl1 data1",  # 0
            f"setAcl /acl1 digest:{u1}:cdrwa",  # 1
            "getAcl /acl1",  # 2
            "get /acl1",  # 3
            "set /acl1 x",  # 4
            "whoami",  # 5
            "addauth digest u1:p1",  # 6
            "get /acl1",  # 7
            "getAcl -s /acl1",  # 8
            "whoami",  # 9
            "create /acl2 d auth:u1:cdrwa",  # 10
            "getAcl /acl2",  # 11
            "setAcl -v 5 /acl2 world:anyone:r",  # 12
            "setAcl /acl2 world:anyone:r",  # 13
            "set /acl2 y",  # 14
            "getAcl /acl2",  # 15
            "create /acl3 d ip:127.0.0.1:cdrwa",  # 16
            "getAcl /acl3",  # 17
            "get /acl3",  # 18
            "create /acl4 d digest:onlyonepart:cdrwa",  # 19
            "setAcl /acl3 world:anyone:cr",  # 20
            "create /acl3/kid",  # 21
            "get /acl3",  # 22
        ],
    )
    assert t.out(0) == ["Created /acl1"]
    assert t.out(1) == []
    assert t.out(2) == ["Insufficient permission : /acl1"]
    assert t.out(3) == ["Insufficient permission : /acl1"]
    assert t.out(4) == ["Insufficient permission : /acl1"]
    assert t.out(5) == ["Auth scheme: User", "ip: 127.0.0.1"]
    assert t.out(6) == []
    assert t.out(7) == ["data1"]
    assert t.out(8)[:2] == [f"'digest,'{u1}", ": cdrwa"]
    stat = stat_without_times(t.out(8)[2:])
    assert stat["aclVersion"] == "1" and stat["dataVersion"] == "0"
    assert t.out(9) == ["Auth scheme: User", "digest: u1", "ip: 127.0.0.1"]
    assert t.out(10) == ["Created /acl2"]
    assert t.out(11) == [f"'digest,'{u1}", ": cdrwa"]
    assert t.out(12) == ["version No is not valid : /acl2"]
    assert t.out(13) == []
    assert t.out(14) == ["Insufficient permission : /acl2"]
    assert t.out(15) == ["'world,'anyone", ": r"]
    assert t.out(16) == ["Created /acl3"]
    assert t.out(17) == ["'ip,'127.0.0.1", ": cdrwa"]
    assert t.out(18) == ["d"]
    assert t.out(19) == ["KeeperErrorCode = InvalidACL for /acl4", "Acl is not valid : /acl4"]
    assert t.out(20) == []
    assert t.out(21) == ["Created /acl3/kid"]
    assert t.out(22) == ["d"]


def test_watches_and_addwatch(interop_server: ServerProcess) -> None:
    t = run_zkcli(
        interop_server,
        [
            "create /w",  # 0
            "get -w /w",  # 1
            "set /w 1",  # 2  NodeDataChanged /w
            "set /w 2",  # 3  (one-shot: nothing)
            "ls -w /w",  # 4
            "create /w/k",  # 5  NodeChildrenChanged /w
            "create /w/k2",  # 6  (nothing)
            "stat -w /absent",  # 7  (exists watch on a missing node)
            "create /absent",  # 8  NodeCreated /absent
            "addWatch -m PERSISTENT /p",  # 9
            "create /p",  # 10 NodeCreated /p
            "set /p a",  # 11 NodeDataChanged /p
            "set /p b",  # 12 NodeDataChanged /p (persistent)
            "create /p/c",  # 13 NodeChildrenChanged /p
            "delete /p/c",  # 14 NodeChildrenChanged /p
            "get -w /w/k",  # 15
            "ls -w /w/k",  # 16
            "delete /w/k",  # 17 NodeDeleted /w/k (once for both watches)
            "stat -w /w",  # 18
            "sync /w",  # 19
            "delete /p",  # 20 NodeDeleted /p
            "create /p",  # 21 NodeCreated /p (still persistent)
        ],
    )
    assert t.out(7) == ["Node does not exist: /absent"]
    assert t.out(19) == ["Sync is OK"]
    assert t.node_events() == [
        ("NodeDataChanged", "/w"),
        ("NodeChildrenChanged", "/w"),
        ("NodeCreated", "/absent"),
        ("NodeCreated", "/p"),
        ("NodeDataChanged", "/p"),
        ("NodeDataChanged", "/p"),
        ("NodeChildrenChanged", "/p"),
        ("NodeChildrenChanged", "/p"),
        ("NodeDeleted", "/w/k"),
        ("NodeDeleted", "/p"),
        ("NodeCreated", "/p"),
    ]
    states = [s for s, _, _ in t.events]
    assert states[0] == "SyncConnected" and states[-1] == "Closed", t.events
    assert all(s == "SyncConnected" for s in states[:-1]), t.events


def test_recursive_watch_from_second_session(
    interop_server: ServerProcess, zkcli: str, spawn_cli: Callable[[list[str]], Any]
) -> None:
    """A persistent recursive watch set in one session sees another session's writes below it."""
    watcher = spawn_cli([zkcli, "-server", interop_server.hosts])
    try:
        at = watcher.send("addWatch /r")
        watcher.send("ls /zkcli-ready")
        watcher.wait_for(r"^Node does not exist: /zkcli-ready$", at)
        writer = run_zkcli(
            interop_server,
            [
                "create /r",
                "create /r/x",
                "set /r/x 1",
                "create /r/x/y",
                "delete /r/x/y",
                "set /r v",
            ],
        )
        assert writer.out(0) == ["Created /r"]
        watcher.send("ls /zkcli-done")
        watcher.wait_for(r"^Node does not exist: /zkcli-done$", at)
        watcher.send("quit")
        watcher.wait_for(r"^WatchedEvent state:Closed", at)
    finally:
        watcher.close()
    text = watcher.text()
    events = [(m.group(2), m.group(3)) for m in map(_EVENT.match, text.splitlines()) if m]
    events = [e for e in events if e[0] != "None"]
    assert events == [
        ("NodeCreated", "/r"),
        ("NodeCreated", "/r/x"),
        ("NodeDataChanged", "/r/x"),
        ("NodeCreated", "/r/x/y"),
        ("NodeDeleted", "/r/x/y"),
        ("NodeDataChanged", "/r"),
    ], text


def test_ephemerals_sync_version_config(interop_server: ServerProcess) -> None:
    t = run_zkcli(
        interop_server,
        [
            "create /e",  # 0
            "create -e /e/one 1",  # 1
            "create -e -s /e/seq- 2",  # 2
            "create -e /top",  # 3
            "getEphemerals",  # 4
            "getEphemerals /e",  # 5
            "getEphemerals /nomatch",  # 6
            "sync /e",  # 7
            "sync /does/not/exist",  # 8
            "version",  # 9
            "getAllChildrenNumber /e",  # 10
            "getAllChildrenNumber /nope",  # 11
            "ls /zookeeper",  # 12
            "get /zookeeper/quota",  # 13
        ],
    )
    assert t.out(2) == ["Created /e/seq-0000000001"]
    assert sorted(t.out(4)[0].strip("[]").split(", ")) == [
        "/e/one",
        "/e/seq-0000000001",
        "/top",
    ]
    assert sorted(t.out(5)[0].strip("[]").split(", ")) == ["/e/one", "/e/seq-0000000001"]
    assert t.out(6) == ["[]"]
    assert t.out(7) == ["Sync is OK"]
    # sync has no checks at all: a missing path still syncs
    assert t.out(8) == ["Sync is OK"]
    assert t.out(9)[0].startswith("ZooKeeper CLI version: 3.8.0")
    assert t.out(10) == ["2"]
    assert t.out(11) == ["Node does not exist: /nope"]
    assert t.out(12) == ["[config, quota]"]
    assert t.out(13) == [""]
    # a second session sees the ephemerals go once the first one quit
    t2 = run_zkcli(interop_server, ["ls /e", "stat /top", "getEphemerals"])
    assert t2.out(0) == ["[]"]
    assert t2.out(1) == ["Node does not exist: /top"]
    assert t2.out(2) == ["[]"]


def test_quota(interop_server: ServerProcess) -> None:
    """setquota/listquota/delquota: the limits node, and the stats node the server keeps."""
    t = run_zkcli(
        interop_server,
        [
            "create /q",  # 0
            "setquota -n 3 /q",  # 1
            "setquota -b 100 /q",  # 2
            "create /q/a 12345",  # 3
            "create /q/b",  # 4
            "listquota /q",  # 5
            "create /q/c",  # 6
            "create /q/d",  # 7
            "set /q/a 1234567890",  # 8
            "delete /q/d",  # 9
            "listquota /q",  # 10
            "delquota -n /q",  # 11
            "listquota /q",  # 12
            "delquota /q",  # 13
            "listquota /q",  # 14
            "ls /zookeeper/quota",  # 15
            "setquota -N 1 /h",  # 16
        ],
    )
    assert t.out(1) == [] and t.out(2) == []
    limits = "absolute path is /zookeeper/quota/q/zookeeper_limits"
    quota = "Output quota for /q count=3,bytes=100=;byteHardLimit=-1;countHardLimit=-1"
    assert t.out(14) == [limits, "quota for /q does not exist."]
    assert t.out(15) == ["[]"]
    assert t.out(16) == ["/h does not exist."]
    assert t.out(5)[:2] == [limits, quota]
    assert t.out(12)[:2] == [
        limits,
        "Output quota for /q count=-1,bytes=100=;byteHardLimit=-1;countHardLimit=-1",
    ]
    # the stats count the quota root itself: /q, /q/a (5 bytes), /q/b ...
    assert t.out(5)[2:] == ["Output stat for /q count=3,bytes=5"]
    # ... then /q/c and /q/d came, /q/d went, /q/a grew to 10 bytes
    assert t.out(10) == [limits, quota, "Output stat for /q count=4,bytes=10"]
    assert t.out(12)[2:] == ["Output stat for /q count=4,bytes=10"]


def test_node_without_data_and_removewatches(interop_server: ServerProcess) -> None:
    """`create /n` sends null data, which reads back as null (not as empty data)."""
    t = run_zkcli(
        interop_server,
        [
            "create /n",  # 0
            "removewatches /n",  # 1
            "get -w /n",  # 2
            "removewatches /n -c",  # 3
            "removewatches /n -d",  # 4
            "ls -w /n",  # 5
            "removewatches /n -a",  # 6
            "create /e ''",  # 7
            "get -s /n",  # 8
            "get /e",  # 9
        ],
    )
    assert t.out(1) == ["KeeperErrorCode = No such watcher for /n"]
    assert t.out(3) == ["KeeperErrorCode = No such watcher for /n"]
    assert t.out(4) == []
    assert t.out(5) == ["[]"]
    assert t.out(6) == []
    assert t.out(7) == ["Created /e"]
    assert stat_without_times(t.out(8)[1:])["dataLength"] == "0"
    assert t.out(9) == [""]  # zkCli's parser takes '' as empty data
    assert t.out(2) == ["null"]
    assert t.out(8)[0] == "null"
    # removewatches makes the client itself deliver *WatchRemoved events
    assert t.node_events() == [("DataWatchRemoved", "/n"), ("ChildWatchRemoved", "/n")], t.raw


def test_system_nodes(interop_server: ServerProcess) -> None:
    """/, /zookeeper, /zookeeper/quota and /zookeeper/config: stats, ACLs, what may not be done."""
    t = run_zkcli(
        interop_server,
        [
            "get -s /zookeeper/config",  # 0
            "getAcl /zookeeper/config",  # 1
            "set /zookeeper/config x",  # 2
            "delete /zookeeper/config",  # 3
            "delete /zookeeper/quota",  # 4
            "delete /zookeeper",  # 5
            "delete /",  # 6
            "create /zookeeper/x",  # 7
            "stat /zookeeper",  # 8
            "stat /zookeeper/quota",  # 9
            "reconfig -remove 1",  # 10
            "config",  # 11
            "setAcl /zookeeper/config world:anyone:cdrwa",  # 12
            "create /zookeeper/config/child",  # 13
            "getAllChildrenNumber /zookeeper",  # 14
            "get -s /",  # 15
        ],
    )
    zero = {"cZxid": "0x0", "mZxid": "0x0", "dataVersion": "0", "ephemeralOwner": "0x0"}
    # standalone: the config node holds empty data (not null), and its aversion is -1
    assert t.out(0)[0] == ""
    config = stat_without_times(t.out(0)[1:])
    assert config == {**zero, "pZxid": "0x0", "cversion": "0", "aclVersion": "-1",
                      "dataLength": "0", "numChildren": "0"}  # fmt: skip
    assert t.out(1) == ["'world,'anyone", ": r"]
    assert t.out(2) == ["Insufficient permission : /zookeeper/config"]
    for i, path in [(3, "/zookeeper/config"), (4, "/zookeeper/quota"), (5, "/zookeeper"), (6, "/")]:
        assert t.out(i) == [f"Arguments are not valid : {path}"]
    assert t.out(7) == ["Created /zookeeper/x"]
    # 2 * (one child created) - 3 children = -1
    assert stat_without_times(t.out(8)) == {**zero, "pZxid": "0x7", "cversion": "-1",
                                            "aclVersion": "0", "dataLength": "0",
                                            "numChildren": "3"}  # fmt: skip
    assert stat_without_times(t.out(9)) == {**zero, "pZxid": "0x0", "cversion": "0",
                                            "aclVersion": "0", "dataLength": "0",
                                            "numChildren": "0"}  # fmt: skip
    assert t.out(10) == ["KeeperErrorCode = Reconfig is disabled"]
    assert t.out(11) == [""]
    assert t.out(12) == ["Insufficient permission : /zookeeper/config"]
    assert t.out(13) == ["Insufficient permission : /zookeeper/config/child"]
    assert t.out(14) == ["3"]
    assert t.out(15)[0] == ""
    root = stat_without_times(t.out(15)[1:])
    assert root == {**zero, "pZxid": "0x0", "cversion": "-1", "aclVersion": "0",
                    "dataLength": "0", "numChildren": "1"}  # fmt: skip
