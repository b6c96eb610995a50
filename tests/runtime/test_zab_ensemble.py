"""Replicated zkfast ensembles on loopback serve clients through every server (issue 5).

Real server processes (`procs.Ensemble`), kazoo clients. What is shown:

* a 3-node ensemble serves every client operation through every server, with watches firing on
  a client of another server than the writer, `sync` then read, and ephemerals removed
  ensemble-wide when their session closes or expires;
* a client moved between servers keeps its session, and a server behind the client's last
  zxid refuses it (``ZooKeeperServer.processConnectRequest``) rather than serve older data;
* SIGKILL of the leader, then of a follower, loses no acknowledged write, and each restarted
  server catches up;
* each sync path is forced and seen in the restarted learner's log (the words Apache 3.8's
  ``Learner.syncWithLeader`` logs, `procs.SYNC_LINES`) and in the leader's
  (``LearnerHandler``, `procs.LEADER_SYNC_LINE`): DIFF (a follower that missed a few writes),
  SNAP (``zookeeper.forceSnapshotSync``, or a follower more than commitLogCount txns behind
  with ``zookeeper.snapshotSizeFactor=-1``), TRUNC (an old leader that logged a proposal
  nobody else got);
* at the end of each test, every server's tree is the same (znode by znode, data and stat)
  and so is its digest at an equal zxid (the `hash` four-letter word);
* a 5-node ensemble does the same workload and survives the loss of its leader.

Every test runs on zkfast; the same test on Apache ZooKeeper 3.8 (`kind` "apache", marked
interop and slow) is the reference for what the assertions expect. Every process is stopped
through its own handle; every wait polls with a generous bound.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss
from kazoo.handlers.threading import KazooTimeoutError

from zkfast.testing.ensemble_checks import (
    AckedWriter,
    Clients,
    assert_same_digests,
    assert_same_trees,
    check_acked,
    equal_zxids,
    logged_zxids,
    pad_to_digest_point,
    read_after_sync,
    run_workload,
    write_some,
)
from zkfast.testing.procs import Ensemble, TcpProxy, apache_available, wait_until
from zkfast.testing.rawclient import RawClient

#: Short ticks so that losses are noticed quickly (the session timeout floor is 2 ticks).
CFG = {"tickTime": "500", "initLimit": "10", "syncLimit": "5"}
SERVE_S = 120.0

KINDS = [
    "zkfast",
    pytest.param("apache", marks=[
        pytest.mark.interop, pytest.mark.slow,
        pytest.mark.skipif(not apache_available(), reason="needs the Debian Apache ZooKeeper 3.8"),
    ]),
]


def _ensemble(tmp_path: Path, kind: str, n: int = 3, *, props: dict[str, str] | None = None,
              cfg: dict[str, str] | None = None, **kwargs: object) -> Ensemble:
    """An ensemble of `n` servers of `kind`; `props` go to either kind as -D properties."""
    kw: dict[str, object] = {"props": props} if kind == "zkfast" else {"jvm_props": props}
    return Ensemble(tmp_path / "ens", [kind] * n, cfg={**CFG, **(cfg or {})}, **kw,
                    **kwargs)  # type: ignore[arg-type]


def _followers(ens: Ensemble, leader: int) -> list[int]:
    return [s for s in ens.kinds if s != leader and s not in ens.observers]


def _finish(ens: Ensemble, sids: list[int] | None = None) -> None:
    """The end of every test: equal trees on every server, equal digests at an equal zxid."""
    assert_same_trees(ens, sids)
    chosen = list(ens.kinds) if sids is None else sids
    with Clients() as clients:
        c = clients.connect(ens.servers[chosen[0]].hosts)
        zxid = pad_to_digest_point(ens, c, chosen)
        assert_same_digests(ens, zxid, chosen)


def _sent(ens: Ensemble, leader: int, what: str, learner: int) -> bool:
    """The leader's log tells it synced `learner` by `what`, in the INFO lines both kinds log
    (Apache 3.8's LearnerHandler.syncFollower and run; zkfast logs the same words): a
    "Sending <what> ... sid: <learner>" line (what: DIFF) or, for what="snapshot", a "Sending
    snapshot" line. The TRUNC of a learner past the committed log is logged at DEBUG ("Sending
    TRUNC to follower zxidToSend=..."), so for what="TRUNC" the "Synchronizing with Learner"
    line is asked for instead, with the learner's last zxid past the leader's committed log."""
    if what == "TRUNC":
        return any(int(m.group(3), 16) > int(m.group(2), 16)
                   for m in _SYNCHRONIZING.finditer(ens.servers[leader].log_text())
                   if int(m.group(1)) == learner)
    lines = ens.leader_sync_lines(leader)
    if what == "snapshot":
        return any(line.startswith("Sending snapshot") for line in lines)
    return any(line.startswith(f"Sending {what}") and line.rstrip().endswith(
        (f"sid: {learner}", f"sid:{learner}")) for line in lines)


#: LearnerHandler.syncFollower's first line: sid, maxCommittedLog, peerLastZxid.
_SYNCHRONIZING = re.compile(
    r"Synchronizing with Learner sid: (\d+) maxCommittedLog=0x([0-9a-f]+) "
    r"minCommittedLog=0x[0-9a-f]+ lastProcessedZxid=0x[0-9a-f]+ peerLastZxid=0x([0-9a-f]+)")


# ------------------------------------------------------------------------------ the service


@pytest.mark.parametrize("kind", KINDS)
def test_workload_through_every_server(tmp_path, kind):
    with _ensemble(tmp_path, kind) as ens:
        ens.start()
        ens.wait_serving(timeout_s=SERVE_S)
        run_workload(ens, "/work")
        _finish(ens)


@pytest.mark.parametrize("kind", KINDS)
def test_ephemerals_go_everywhere_when_their_session_expires(tmp_path, kind):
    """A client of a follower stops talking (its link is cut): the leader expires its session
    and every server drops its ephemerals."""
    with _ensemble(tmp_path, kind) as ens:
        ens.start()
        leader = ens.wait_serving(timeout_s=SERVE_S)
        follower = _followers(ens, leader)[0]
        with TcpProxy(ens.servers[follower].client_port) as proxy, Clients() as clients:
            doomed = clients.connect(proxy.hosts, timeout_s=2.0)
            doomed.ensure_path("/eph")
            paths = [doomed.create("/eph/e", b"", ephemeral=True),
                     doomed.create("/eph/s-", b"", ephemeral=True, sequence=True)]
            owner = doomed.client_id[0]
            others = {sid: clients.connect(ens.servers[sid].hosts) for sid in ens.kinds}
            for c in others.values():
                c.sync("/")
                assert all(c.exists(p).ephemeralOwner == owner for p in paths)
            proxy.partition()
            for sid, c in others.items():
                wait_until(lambda c=c: all(c.exists(p) is None for p in paths), SERVE_S,
                           f"the expired session's ephemerals gone on peer {sid}")
        _finish(ens)


@pytest.mark.parametrize("kind", KINDS)
def test_a_client_moves_between_servers_and_never_sees_an_older_zxid(tmp_path, kind):
    """One kazoo session reaches the servers through a proxy whose target is switched: the
    session survives each move. A follower whose quorum link is stalled lags behind the
    client's last zxid: it refuses the client (a raw ConnectRequest carrying that zxid is
    closed unanswered; kazoo keeps reconnecting) until it has caught up, and then serves the
    newest value."""
    with _ensemble(tmp_path, kind, proxied=True, cfg={"syncLimit": "20"}) as ens:
        ens.start()
        leader = ens.wait_serving(timeout_s=SERVE_S)
        lagging, other = _followers(ens, leader)
        port = {sid: ens.servers[sid].client_port for sid in ens.kinds}
        with TcpProxy(port[other]) as proxy, Clients() as clients:
            c = clients.connect(proxy.hosts)
            session = c.client_id
            c.create("/moving", b"1")
            ens.pause(lagging, [leader], quorum_only=True)
            stat = c.set("/moving", b"2")
            assert ens.last_zxid(lagging) is not None
            assert ens.last_zxid(lagging) < stat.mzxid
            raw = RawClient("127.0.0.1", port[lagging], io_timeout_s=30.0)
            with pytest.raises(ConnectionError):
                raw.connect(last_zxid=stat.mzxid)
            raw.close()
            accepted = proxy.accepted
            proxy.target_port = port[lagging]
            proxy.drop_connections()
            wait_until(lambda: proxy.accepted >= accepted + 2, SERVE_S,
                       "the client refused by the lagging follower and trying again")
            ens.resume(lagging, [leader], quorum_only=True)
            wait_until(lambda: _reads(c, "/moving") == b"2", SERVE_S,
                       "the session on the lagging follower, caught up")
            assert c.client_id == session
            c.set("/moving", b"3")
            for target in (leader, other):
                proxy.target_port = port[target]
                proxy.drop_connections()
                wait_until(lambda: _reads(c, "/moving") == b"3", SERVE_S,
                           f"the session on peer {target}")
                assert c.client_id == session
        _finish(ens)


def _reads(c: KazooClient, path: str) -> bytes | None:
    """getData through `c`, or None while its connection is down (a read never returns an
    older value than the client saw: that is what the caller checks)."""
    try:
        return c.get_async(path).get(timeout=5.0)[0]  # type: ignore[no-any-return]
    except (ConnectionLoss, KazooTimeoutError):
        return None


# ------------------------------------------------------------------------------ failures


@pytest.mark.parametrize("kind", KINDS)
def test_sigkill_of_the_leader_then_a_follower_loses_no_acknowledged_write(tmp_path, kind):
    with _ensemble(tmp_path, kind) as ens:
        ens.start()
        leader = ens.wait_serving(timeout_s=SERVE_S)
        hosts = ",".join(ens.servers[s].hosts for s in ens.kinds)
        writer = AckedWriter(hosts, "/acked").start()
        try:
            writer.wait_acked(20)
            ens.servers[leader].kill()
            rest = [s for s in ens.kinds if s != leader]
            new_leader = ens.wait_serving(rest, timeout_s=SERVE_S)
            writer.more(20)
            ens.start([leader])
            ens.wait_serving(timeout_s=SERVE_S)
            assert ens.sync_path(leader) in ("DIFF", "TRUNC", "SNAP")
            writer.more(10)
            follower = _followers(ens, new_leader)[0]
            ens.servers[follower].kill()
            writer.more(20)
            ens.start([follower])
            ens.wait_serving(timeout_s=SERVE_S)
            assert ens.sync_path(follower) in ("DIFF", "TRUNC", "SNAP")
            writer.more(10)
        finally:
            acked = writer.stop()
        check_acked(ens, "/acked", acked)
        _finish(ens)


# ------------------------------------------------------------------------------ sync paths


@pytest.mark.parametrize("kind", KINDS)
def test_a_follower_that_missed_a_few_writes_gets_a_diff(tmp_path, kind):
    with _ensemble(tmp_path, kind) as ens:
        ens.start()
        leader = ens.wait_serving(timeout_s=SERVE_S)
        follower = _followers(ens, leader)[0]
        write_some(ens, leader, "/diff", 10)
        ens.servers[follower].kill()
        last = write_some(ens, leader, "/diff", 5)
        ens.start([follower])
        assert ens.wait_serving(timeout_s=SERVE_S) == leader
        assert ens.sync_path(follower) == "DIFF", ens.servers[follower].log_tail(40)
        assert _sent(ens, leader, "DIFF", follower), ens.leader_sync_lines(leader)
        wait_until(lambda: (ens.last_zxid(follower) or 0) >= last, SERVE_S, "caught up")
        _check_leader_mntr(ens, leader)
        _finish(ens)


def _check_leader_mntr(ens: Ensemble, leader: int) -> None:
    """The leader's mntr gauges (LeaderZooKeeperServer) and sync counters (ServerMetrics)
    after its followers synced by DIFF and it proposed some writes."""
    m = wait_until(lambda: (lambda m: m if m.get("zk_synced_followers") == "2" else None)(
        ens.mntr(leader)), SERVE_S, "both followers synced")
    assert isinstance(m, dict)
    assert m["zk_learners"] == "2" and m["zk_synced_non_voting_followers"] == "0", m
    assert m["zk_synced_observers"] == "0" and m["zk_pending_syncs"] == "0", m
    assert int(m["zk_leader_uptime"]) > 0, m
    assert 0 < int(m["zk_min_proposal_size"]) <= int(m["zk_last_proposal_size"]) \
        <= int(m["zk_max_proposal_size"]), m
    # Three syncs at least (two at the start, one at the rejoin), none a SNAP.
    assert int(m["zk_diff_count"]) >= 3 and m["zk_snap_count"] == "0", m
    for follower in _followers(ens, leader):
        assert "zk_learners" not in ens.mntr(follower)


SNAP_CASES = {
    # LearnerHandler.syncFollower: forceSnapSync, a testing aid
    "forced": ({"zookeeper.forceSnapshotSync": "true"}, 5),
    # peerLastZxid below the committed log (commitLogCount is at least 500) and reading the
    # txn log turned off (snapshotSizeFactor < 0)
    "beyond-the-committed-log": ({"zookeeper.snapshotSizeFactor": "-1"}, 600),
}


@pytest.mark.parametrize("case", list(SNAP_CASES))
@pytest.mark.parametrize("kind", KINDS)
def test_a_follower_gets_a_snapshot(tmp_path, kind, case):
    props, missed = SNAP_CASES[case]
    with _ensemble(tmp_path, kind, props=props) as ens:
        ens.start()
        leader = ens.wait_serving(timeout_s=SERVE_S)
        follower = _followers(ens, leader)[0]
        write_some(ens, leader, "/snap", 5)
        ens.servers[follower].kill()
        last = write_some(ens, leader, "/snap", missed)
        ens.start([follower])
        assert ens.wait_serving(timeout_s=SERVE_S) == leader
        assert ens.sync_path(follower) == "SNAP", ens.servers[follower].log_tail(40)
        assert _sent(ens, leader, "snapshot", follower), ens.leader_sync_lines(leader)
        wait_until(lambda: (ens.last_zxid(follower) or 0) >= last, SERVE_S, "caught up")
        # The snapshot was made durable: a second restart of the follower needs no SNAP.
        ens.servers[follower].kill()
        ens.start([follower])
        ens.wait_serving(timeout_s=SERVE_S)
        if case != "forced":
            assert ens.sync_path(follower) == "DIFF", ens.servers[follower].log_tail(40)
        _finish(ens)


@pytest.mark.parametrize("kind", KINDS)
def test_an_old_leader_with_a_proposal_nobody_got_is_truncated(tmp_path, kind):
    """Every link of the leader is stalled; a client of the leader writes, so the leader logs
    a proposal that no follower receives; the leader is SIGKILLed and its stalled bytes thrown
    away. The two followers elect a new leader. The old leader comes back before anything is
    committed in the new epoch, so it is ahead of the new leader's committed log: TRUNC
    (LearnerHandler.syncFollower; once the new epoch has a txn, Apache sends a SNAP instead,
    as a TRUNC may not cross an epoch). The proposal that was never acknowledged is nowhere,
    and the old leader follows what the new leader commits next."""
    cfg = {"maxSessionTimeout": "120000"}  # no session expires in the new epoch meanwhile
    with _ensemble(tmp_path, kind, proxied=True, cfg=cfg) as ens:
        ens.start()
        leader = ens.wait_serving(timeout_s=SERVE_S)
        with Clients() as clients:
            c = clients.connect(ens.servers[leader].hosts, timeout_s=120.0)
            c.ensure_path("/trunc")
            for i in range(5):
                c.create(f"/trunc/c{i}", b"committed")
            committed = wait_until(lambda: equal_zxids(ens), SERVE_S, "every peer at one zxid")
            assert isinstance(committed, int)
            ens.pause(leader)
            c.create_async("/trunc/lost", b"never acknowledged")
            data_dir = ens.servers[leader].data_dir
            wait_until(lambda: max(logged_zxids(data_dir)) > committed, SERVE_S,
                       "the leader logged the proposal")
            ens.servers[leader].kill()
        ens.drop(leader)
        rest = [s for s in ens.kinds if s != leader]
        new_leader = ens.wait_serving(rest, timeout_s=SERVE_S)
        ens.resume(leader)
        ens.start([leader])
        assert ens.wait_serving(timeout_s=SERVE_S) == new_leader
        assert ens.sync_path(leader) == "TRUNC", ens.servers[leader].log_tail(40)
        assert _sent(ens, new_leader, "TRUNC", leader), ens.leader_sync_lines(new_leader)
        after = write_some(ens, new_leader, "/trunc", 3)
        wait_until(lambda: (ens.last_zxid(leader) or 0) >= after, SERVE_S, "caught up")
        with Clients() as clients:
            for sid in ens.kinds:
                c = clients.connect(ens.servers[sid].hosts)
                assert read_after_sync(c, "/trunc/lost") is None, sid
        _finish(ens)


# ------------------------------------------------------------------------------ 5 nodes


@pytest.mark.parametrize("kind", KINDS)
def test_five_nodes_serve_and_survive_the_loss_of_the_leader(tmp_path, kind):
    with _ensemble(tmp_path, kind, 5) as ens:
        ens.start()
        leader = ens.wait_serving(timeout_s=SERVE_S)
        run_workload(ens, "/five")
        hosts = ",".join(ens.servers[s].hosts for s in ens.kinds)
        writer = AckedWriter(hosts, "/acked").start()
        try:
            writer.wait_acked(10)
            ens.servers[leader].kill()
            rest = [s for s in ens.kinds if s != leader]
            ens.wait_serving(rest, timeout_s=SERVE_S)
            writer.more(10)
            ens.start([leader])
            ens.wait_serving(timeout_s=SERVE_S)
            writer.more(10)
        finally:
            acked = writer.stop()
        check_acked(ens, "/acked", acked)
        _finish(ens)


@pytest.mark.parametrize("kind", KINDS)
def test_three_voters_and_an_observer_serve_the_workload(tmp_path, kind):
    with _ensemble(tmp_path, kind, 4, observers=[4]) as ens:
        ens.start()
        ens.wait_serving(timeout_s=SERVE_S)
        run_workload(ens, "/obs")
        _finish(ens)
