"""Real zkfast quorum peers on loopback (issues 4 and 5): they elect one leader, agree on it, sync
and serve, elect again after the leader is SIGKILLed, and a peer cut off by TcpProxy goes
LOOKING and comes back.

Agreement is read from every peer's `srvr` (`Mode: leader|follower`, which a peer shows only
once it serves, in BROADCAST) and from the leader's `mntr` (`zk_learners`: the learners
connected to it, and `zk_peer_state` "leading - broadcast"). With equal zxids and epochs
FastLeaderElection's total order picks the highest sid; after sync every peer's acceptedEpoch
and currentEpoch is 1. A kazoo client writes through one peer and reads through another. Each
ensemble is stopped through its own handle; every wait polls with a generous bound.

The process tests run on uvloop (the CLI's default); `test_in_process_peers_on_both_event_loops`
runs three QuorumPeerServers inside one asyncio or uvloop loop. The election listener's
robustness against bad bytes is checked on a live peer.
"""

from __future__ import annotations

import asyncio
import re
import socket
import struct
from collections.abc import Callable

import pytest
from kazoo.client import KazooClient

from zkfast.config import config_from_properties
from zkfast.core.datatree import DataTree
from zkfast.runtime.quorum_server import QuorumPeerServer
from zkfast.runtime.server import run_on_loop
from zkfast.storage.tree_io import encode_tree, snapshot_file_name
from zkfast.testing.procs import LOOPBACK, Ensemble, free_port, wait_until
from zkfast.wire.peer_codec import (
    PROTOCOL_V1,
    ElectionHandshake,
    Notification,
    decode_handshake,
    decode_notification,
    encode_handshake,
    encode_notification,
)

#: Short ticks: Apache's defaults would make a lost leader take initLimit*tickTime to notice.
CFG = {"tickTime": "500", "initLimit": "10", "syncLimit": "5"}
SETTLE_S = 90.0
OPEN_ACL = [(31, ("world", "anyone"))]


def _learners(ens: Ensemble, sid: int) -> int:
    try:
        text = ens.servers[sid].four_letter_word("mntr", timeout_s=2.0)
    except OSError:
        return -1
    m = re.search(r"^zk_learners\t(\d+)$", text, re.MULTILINE)
    return int(m.group(1)) if m else -1


def _settled(ens: Ensemble, sids: list[int]) -> int:
    """Wait until exactly one of `sids` leads, the others follow and are connected to it, and
    every one of them serves (BROADCAST)."""
    def check() -> int | None:
        modes = ens.settled_modes(sids)
        if modes is None:
            return None
        leader = next(s for s, m in modes.items() if m == "leader")
        if _learners(ens, leader) != len(sids) - 1:
            return None
        return leader if _peer_state(ens, leader) == "leading - broadcast" else None
    leader = wait_until(check, SETTLE_S, f"one leader among {sids} with every other following")
    assert isinstance(leader, int)
    return leader


def _peer_state(ens: Ensemble, sid: int) -> str | None:
    try:
        text = ens.servers[sid].four_letter_word("mntr", timeout_s=2.0)
    except OSError:
        return None
    m = re.search(r"^zk_peer_state\t(.*)$", text, re.MULTILINE)
    return m.group(1) if m else None


def _client(ens: Ensemble, sid: int) -> KazooClient:
    zk = KazooClient(hosts=f"{LOOPBACK}:{ens.servers[sid].client_port}", timeout=10.0,
                     connection_retry={"max_tries": 3, "delay": 0.1})
    zk.start(timeout=SETTLE_S)
    return zk


def _write_and_read_across(ens: Ensemble, writer: int, readers: list[int], path: str,
                           value: bytes) -> None:
    """Create ``path`` through ``writer``; every reader sees it after a sync (a follower's
    read is local, so `sync` first, as a client wanting the latest must)."""
    zk = _client(ens, writer)
    try:
        zk.create(path, value, makepath=True)
        assert zk.get(path)[0] == value
    finally:
        zk.stop()
        zk.close()
    for sid in readers:
        zk = _client(ens, sid)
        try:
            zk.sync(path)
            assert zk.get(path)[0] == value, f"peer {sid} reading {path}"
        finally:
            zk.stop()
            zk.close()


def _others(sids: list[int], leader: int) -> list[int]:
    return [s for s in sids if s != leader]


def test_three_peers_elect_one_leader_and_again_after_a_sigkill(tmp_path):
    with Ensemble(tmp_path, ["zkfast"] * 3, cfg=CFG) as ens:
        ens.start()
        leader = _settled(ens, [1, 2, 3])
        # Equal zxids and epochs: the highest sid wins, unless sids 1 and 2 decided before
        # sid 3 was up (then 3 joins them, as an Apache peer would).
        assert leader in (2, 3)
        for sid in (1, 2, 3):
            assert ens.logged_roles(sid)[:2] == [
                "LOOKING", "LEADING" if sid == leader else "FOLLOWING"]
        follower = _others([1, 2, 3], leader)[0]
        assert _peer_state(ens, follower) == "following - broadcast"
        for sid in (1, 2, 3):
            assert (tmp_path / f"s{sid}" / "data" / "version-2" / "currentEpoch").read_text() \
                == "1"
        # Writes through a follower (forwarded) and through the leader, read everywhere.
        _write_and_read_across(ens, follower, [leader, 1, 2, 3], "/via-follower", b"f")
        _write_and_read_across(ens, leader, [1, 2, 3], "/via-leader", b"l")
        # The leader dies without a word: the followers lose their quorum connection, look,
        # and elect the higher of the two that are left, which holds every committed write.
        ens.servers[leader].kill()
        rest = _others([1, 2, 3], leader)
        assert _settled(ens, rest) == max(rest)
        assert "LOOKING" in ens.logged_roles(min(rest))[2:]
        assert ens.logged_role(min(rest)) == "FOLLOWING"
        _write_and_read_across(ens, min(rest), rest, "/after-failover", b"a")
        # The old leader comes back: a peer LOOKING amid an established ensemble joins it
        # (FastLeaderElection checkLeader, ZOOKEEPER-1732) instead of taking over, and syncs
        # the write it missed.
        ens.start([leader])
        new = max(rest)
        wait_until(lambda: ens.mode(leader) == "follower" and _learners(ens, new) == 2,
                   SETTLE_S, "the restarted peer following the new leader")
        assert ens.mode(new) == "leader" and ens.mode(min(rest)) == "follower"
        zk = _client(ens, leader)
        try:
            zk.sync("/after-failover")
            for path, value in (("/via-follower", b"f"), ("/via-leader", b"l"),
                                ("/after-failover", b"a")):
                assert zk.get(path)[0] == value
        finally:
            zk.stop()
            zk.close()
        mntr = ens.servers[new].four_letter_word("mntr")
        assert "zk_server_state\tleader" in mntr
        assert re.search(r"^zk_cnt_election_time\t[1-9]", mntr, re.MULTILINE), mntr


def test_sigterm_stops_each_peer_cleanly_and_the_data_survives(tmp_path):
    """SIGTERM: each peer closes its quorum and election sockets, its clients and its disk log
    and exits 0 with no traceback, followers first and then the leader (which by then has
    lost its quorum); started again, the ensemble elects, syncs and serves the earlier
    writes."""
    with Ensemble(tmp_path, ["zkfast"] * 3, cfg=CFG) as ens:
        ens.start()
        leader = _settled(ens, [1, 2, 3])
        _write_and_read_across(ens, _others([1, 2, 3], leader)[0], [1, 2, 3], "/kept", b"k")
        for sid in [*_others([1, 2, 3], leader), leader]:
            assert ens.servers[sid].stop() == 0
            text = ens.servers[sid].log_text()
            assert "received SIGTERM" in text and "Traceback" not in text, text[-3000:]
        ens.start()
        _settled(ens, [1, 2, 3])
        _write_and_read_across(ens, leader, [1, 2, 3], "/after-restart", b"r")
        for sid in (1, 2, 3):
            zk = _client(ens, sid)
            try:
                zk.sync("/kept")
                assert zk.get("/kept")[0] == b"k"
            finally:
                zk.stop()
                zk.close()


def _znode_count(ens: Ensemble, sid: int) -> int:
    try:
        text = ens.servers[sid].four_letter_word("mntr", timeout_s=5.0)
    except OSError:
        return -1
    m = re.search(r"^zk_znode_count\t(\d+)$", text, re.MULTILINE)
    return int(m.group(1)) if m else -1


def test_a_snapshot_far_above_the_write_bound_reaches_every_follower(tmp_path, monkeypatch):
    """zookeeper.forceSnapshotSync and a leader whose database is a 24 MiB snapshot, three
    times the quorum write bound (lowered for the test): the SNAP stream goes out as one write,
    each follower reads it whole, loads it, snapshots it and serves it."""
    nodes, size = 12_000, 2048
    prepared = tmp_path / "prepared"
    (prepared / "version-2").mkdir(parents=True)
    tree = DataTree()
    for i in range(1, nodes + 1):
        tree.apply_txn((0, i, (1 << 32) | i, 1000, 1),
                       (f"/big{i}", bytes([i % 251]) * size, OPEN_ACL, False, i))
    snap = encode_tree(tree, [], digest_enabled=True)
    assert len(snap) > 3 * (8 << 20)
    (prepared / "version-2" / snapshot_file_name(tree.last_processed_zxid, "")).write_bytes(snap)
    ens = Ensemble(tmp_path / "ens", ["zkfast"] * 3, cfg=CFG, data_dirs={3: prepared},
                   props={"zookeeper.forceSnapshotSync": "true"},
                   env={"ZKFAST_QUORUM_WRITE_BUFFER_MAX_BYTES": str(8 << 20)})
    with ens:
        # The peer with the data first: two empty peers up before it would elect each other
        # and (rightly) replace its never-committed history with their empty one.
        ens.start([3])
        ens.start([1, 2])
        assert _settled(ens, [1, 2, 3]) == 3
        want = _znode_count(ens, 3)
        assert want > nodes
        wait_until(lambda: all(_znode_count(ens, sid) == want for sid in (1, 2)),
                   SETTLE_S, "both followers holding the leader's tree")
        for sid in (1, 2):
            text = ens.servers[sid].log_text()
            assert "Getting a snapshot from leader" in text and "Traceback" not in text
            snaps = list((tmp_path / "ens" / f"s{sid}" / "data" / "version-2").glob(
                "snapshot.*"))
            assert any(p.name == f"snapshot.{tree.last_processed_zxid:x}" for p in snaps)
        zk = _client(ens, 1)
        try:
            assert zk.get(f"/big{nodes}")[0] == bytes([nodes % 251]) * size
        finally:
            zk.stop()
            zk.close()


def test_partitioned_leader_goes_looking_and_returns_as_follower(tmp_path):
    with Ensemble(tmp_path, ["zkfast"] * 3, cfg=CFG, proxied=True) as ens:
        ens.start()
        leader = _settled(ens, [1, 2, 3])
        rest = _others([1, 2, 3], leader)
        ens.partition(leader)
        # The majority side elects the higher sid left; the cut-off peer loses its learners
        # and looks (its srvr then says it is not serving).
        new = _settled(ens, rest)
        assert new == max(rest)
        wait_until(lambda: ens.logged_role(leader) == "LOOKING", SETTLE_S, "old leader LOOKING")
        assert ens.mode(leader) is None
        assert "not currently serving" in ens.servers[leader].four_letter_word("srvr")
        ens.heal(leader)
        wait_until(lambda: ens.mode(leader) == "follower" and _learners(ens, new) == 2,
                   SETTLE_S, "the old leader back, following the new one")
        assert ens.settled_modes() is not None and ens.mode(new) == "leader"


def test_five_peers_elect_and_reelect_after_a_sigkill(tmp_path):
    sids = [1, 2, 3, 4, 5]
    with Ensemble(tmp_path, ["zkfast"] * 5, cfg=CFG) as ens:
        ens.start()
        leader = _settled(ens, sids)
        ens.servers[leader].kill()
        sids.remove(leader)
        # Equal histories: any survivor may win. The highest sid usually does, but three
        # peers that see each other first are a quorum of 5 and may settle on the highest
        # sid among them before the fourth has noticed the leader's death (as in Apache).
        # (_settled checks one leader among the survivors, every other following it.)
        leader = _settled(ens, sids)
        # A second leader loss still leaves a quorum (3 of 5).
        ens.servers[leader].kill()
        sids.remove(leader)
        _settled(ens, sids)



def test_observer_observes_the_elected_leader(tmp_path):
    """Three voters and an observer (server.4=...:observer): the observer never votes, finds
    the leader the voters elected and observes it; it stays out of the quorum count."""
    with Ensemble(tmp_path, ["zkfast"] * 4, cfg=CFG, observers=[4]) as ens:
        ens.start()

        def check() -> int | None:
            modes = ens.settled_modes([1, 2, 3])
            if modes is None or ens.mode(4) != "observer":
                return None
            leader = next(s for s, m in modes.items() if m == "leader")
            return leader if _learners(ens, leader) == 3 else None
        leader = wait_until(check, SETTLE_S, "three voters settled, the observer observing")
        assert leader in (1, 2, 3) and leader != 4
        assert _peer_state(ens, 4) == "observing - broadcast"
        _write_and_read_across(ens, 4, [leader, 4], "/via-observer", b"o")


@pytest.mark.slow
def test_partitioned_follower_goes_looking_and_returns(tmp_path):
    with Ensemble(tmp_path, ["zkfast"] * 3, cfg=CFG, proxied=True) as ens:
        ens.start()
        leader = _settled(ens, [1, 2, 3])
        cut, other = _others([1, 2, 3], leader)
        ens.partition(cut)
        wait_until(lambda: ens.logged_role(cut) == "LOOKING" and _learners(ens, leader) == 1,
                   SETTLE_S, "the cut-off follower LOOKING, the leader still leading")
        assert ens.mode(leader) == "leader" and ens.mode(other) == "follower"
        ens.heal(cut)
        assert _settled(ens, [1, 2, 3]) == leader


@pytest.mark.slow
def test_minority_alone_never_leads(tmp_path):
    """Two of three peers down: the survivor looks; with one back they elect again."""
    with Ensemble(tmp_path, ["zkfast"] * 3, cfg=CFG) as ens:
        ens.start()
        leader = _settled(ens, [1, 2, 3])
        a, b = _others([1, 2, 3], leader)
        ens.servers[leader].kill()
        ens.servers[b].kill()
        wait_until(lambda: ens.logged_role(a) == "LOOKING", SETTLE_S, "the survivor LOOKING")
        assert ens.mode(a) is None
        ens.start([b])
        assert _settled(ens, [a, b]) == b


def _hs(sid: int, addr: str = "127.0.0.1:1") -> bytes:
    return encode_handshake(ElectionHandshake(sid, PROTOCOL_V1, addr))


#: What a broken or hostile peer can write to an election port; each drops only its connection.
BAD_ELECTION_BYTES = [
    b"\x00\x00\x00",                                    # half a sid, then EOF
    b"\xff" * 64,                                       # an unknown protocol version
    struct.pack(">qqi", PROTOCOL_V1, 9, 0),              # address length 0
    struct.pack(">qqi", PROTOCOL_V1, 9, 1 << 20),        # address length over 2048
    _hs(9) + struct.pack(">i", 0x7FFFFFFF),              # a message length over 512 KiB
    _hs(9) + struct.pack(">i", -1),                      # a negative message length
    struct.pack(">q", 9) + struct.pack(">i", 0),         # pre-3.5 sid-only, then length 0
    _hs(9) + struct.pack(">i", 8) + b"\x01" * 8,         # a message too short to parse
    _hs(9) + struct.pack(">i", 40) + bytes(range(40)),   # 40 bytes of nonsense
    bytes(range(256)) * 8,
]


def test_election_listener_survives_bad_bytes(tmp_path):
    with Ensemble(tmp_path, ["zkfast"] * 3, cfg=CFG) as ens:
        ens.start([1])
        port = ens.ports[1][2]
        # A connection that stalls mid-handshake must not hold the listener up.
        stalled = socket.create_connection((LOOPBACK, port), timeout=10)
        stalled.sendall(struct.pack(">q", PROTOCOL_V1)[:5])
        try:
            for data in BAD_ELECTION_BYTES:
                with socket.create_connection((LOOPBACK, port), timeout=10) as s:
                    s.sendall(data)
                    s.shutdown(socket.SHUT_WR)
                    s.settimeout(10)
                    while s.recv(4096):  # the peer closes it (or it was closed for EOF)
                        pass
            ens.start([2, 3])
            _settled(ens, [1, 2, 3])
            assert ens.servers[1].running
            log = ens.servers[1].log_text()
            assert "dropping it" in log and "Traceback" not in log
        finally:
            stalled.close()


# ---------------------------------------------------------------------------- in-process peers


async def _poll(cond: Callable[[], object], what: str, timeout_s: float = SETTLE_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not cond():
        if loop.time() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout_s}s")
        await asyncio.sleep(0.01)


def _held(servers: dict[int, QuorumPeerServer]) -> int | None:
    """The leader's sid once every peer broadcasts under it, else None."""
    roles = {sid: s.role for sid, s in servers.items()}
    if any(r is None for r in roles.values()):
        return None
    leaders = [sid for sid, r in roles.items() if r is not None and r.state == "LEADING"]
    if len(leaders) != 1:
        return None
    leader = leaders[0]
    ok = all(r is not None and r.leader_sid == leader and r.zab_state == "BROADCAST"
             for r in roles.values())
    node = servers[leader].node
    assert node is not None
    return leader if ok and len(node.status().learners) == len(servers) - 1 else None


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_in_process_peers_on_both_event_loops(tmp_path, loop_kind):
    """Three QuorumPeerServers in one event loop (each loop kind): elect, agree (every peer's
    RoleChanged names the same leader, in BROADCAST), stop the leader, elect again; the
    epoch files hold the agreed epochs."""
    ports = {sid: (free_port(), free_port(), free_port()) for sid in (1, 2, 3)}
    lines = {f"server.{sid}": f"{LOOPBACK}:{q}:{e}" for sid, (_, q, e) in ports.items()}

    async def main() -> None:
        servers: dict[int, QuorumPeerServer] = {}
        try:
            for sid in (1, 2, 3):
                data = tmp_path / f"s{sid}"
                data.mkdir()
                (data / "myid").write_text(str(sid))
                cfg = config_from_properties(
                    {**CFG, **lines, "dataDir": str(data), "clientPort": str(ports[sid][0]),
                     "clientPortAddress": LOOPBACK, "4lw.commands.whitelist": "*"}, {})
                servers[sid] = QuorumPeerServer(cfg)
                await servers[sid].start()
            await _poll(lambda: _held(servers), "a leader broadcasting to both followers")
            leader = _held(servers)
            assert leader is not None
            epoch_dir = tmp_path / f"s{leader}" / "version-2"
            assert (epoch_dir / "currentEpoch").read_text() == "1"
            await servers.pop(leader).stop()
            await _poll(lambda: _held(servers), "a new leader after the old one stopped")
            new = _held(servers)
            assert new == max(servers)
            for sid in servers:
                epoch_dir = tmp_path / f"s{sid}" / "version-2"
                assert (epoch_dir / "acceptedEpoch").read_text() == "2"
                assert (epoch_dir / "currentEpoch").read_text() == "2"
        finally:
            for s in servers.values():
                await s.stop()

    run_on_loop(main(), loop_kind)


def test_lone_peer_turns_read_only_after_the_grace_period(tmp_path):
    """readonlymode.enabled: a peer LOOKING alone for max(2 s, tickTime) says `ro` to isro and
    `Mode: read-only` to srvr, and `rw` again once it joins a quorum (the read-only service
    itself: tests/runtime/test_kazoo_read_only.py)."""
    ens = Ensemble(tmp_path, ["zkfast"] * 3, cfg=CFG, props={"readonlymode.enabled": "true"})
    with ens:
        ens.start([1])
        assert ens.servers[1].four_letter_word("isro") == "null"
        wait_until(lambda: ens.servers[1].four_letter_word("isro") == "ro", SETTLE_S,
                   "isro says ro")
        assert ens.mode(1) == "read-only"
        assert "zk_server_state\tread-only" in ens.servers[1].four_letter_word("mntr")
        ens.start([2])
        _settled(ens, [1, 2])
        assert ens.servers[1].four_letter_word("isro") == "rw"


def test_election_port_in_use_stops_the_peer(tmp_path):
    """electionPortBindRetry attempts, then the peer exits (Apache's Listener halts it)."""
    ens = Ensemble(tmp_path, ["zkfast"] * 3, cfg={**CFG, "electionPortBindRetry": "2"})
    with ens, socket.socket() as squatter:
        squatter.bind((LOOPBACK, ens.ports[1][2]))
        squatter.listen(1)
        ens.servers[1].start(wait=False)
        proc = ens.servers[1].proc
        assert proc is not None
        assert proc.wait(timeout=SETTLE_S) != 0
        log = ens.servers[1].log_text()
        assert "cannot bind the election port" in log and "attempt 2 of 2" in log


# ---------------------------------------------------------------------------- wire-level checks


def _read_exact(s: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise EOFError(f"closed after {len(out)} of {n} bytes")
        out += chunk
    return out


def _read_handshake(s: socket.socket) -> ElectionHandshake:
    head = _read_exact(s, 20)
    hs = decode_handshake(head + _read_exact(s, struct.unpack_from(">i", head, 16)[0]))
    assert hs is not None
    return hs[0]


def _read_notification(s: socket.socket) -> Notification:
    (n,) = struct.unpack(">i", _read_exact(s, 4))
    assert 0 < n <= 512 * 1024
    return decode_notification(_read_exact(s, n))


def test_election_wire_handshake_tie_break_and_resend(tmp_path):
    """Byte-level QuorumCnxManager behaviour of a zkfast peer (sid 2), seen by a hand-made
    peer playing sid 1 and sid 3: it dials the lower sid with a V1 handshake and its vote; a
    connection the lower sid dials is closed and dialled back, with the last vote re-sent; a
    connection from the higher sid is kept and gets the vote too."""
    ens = Ensemble(tmp_path, ["zkfast"] * 3, cfg=CFG)
    with ens, socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, ens.ports[1][2]))  # we are sid 1's election port
        listener.listen(8)
        listener.settimeout(SETTLE_S)
        ens.start([2])
        eport2 = ens.ports[2][2]
        first, _ = listener.accept()
        with first:
            first.settimeout(SETTLE_S)
            hs = _read_handshake(first)
            assert (hs.sid, hs.protocol_version, hs.addr) == (2, PROTOCOL_V1,
                                                              f"{LOOPBACK}:{eport2}")
            vote = _read_notification(first)
            assert (vote.state, vote.leader, vote.zxid, vote.peer_epoch) == (0, 2, 0, 0)
            assert vote.config and f"server.2={LOOPBACK}:" in vote.config
        # sid 1 dials sid 2: the lower sid's connection is closed and sid 2 dials back.
        with socket.create_connection((LOOPBACK, eport2), timeout=SETTLE_S) as low:
            low.sendall(_hs(1, f"{LOOPBACK}:{ens.ports[1][2]}"))
            low.settimeout(SETTLE_S)
            assert low.recv(1) == b""
        back, _ = listener.accept()
        with back:
            back.settimeout(SETTLE_S)
            assert _read_handshake(back).sid == 2
            again = _read_notification(back)
            assert (again.leader, again.state) == (2, 0)
            # sid 3 dials sid 2: kept; it gets sid 2's vote; sid 2 learns sid 3's vote.
            with socket.create_connection((LOOPBACK, eport2), timeout=SETTLE_S) as high:
                high.sendall(_hs(3, f"{LOOPBACK}:{ens.ports[3][2]}"))
                high.settimeout(SETTLE_S)
                assert _read_notification(high).leader == 2
                mine = Notification(state=0, leader=3, zxid=0, election_epoch=again.election_epoch,
                                    peer_epoch=0)
                payload = encode_notification(mine)
                high.sendall(struct.pack(">i", len(payload)) + payload)
                # sid 2 now votes for sid 3 and tells everyone, on the links it has.
                assert _read_notification(high).leader == 3
                assert _read_notification(back).leader == 3
