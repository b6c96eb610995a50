"""Safety invariants checked after every simulated step, and liveness after healing.

A violation raises ``Violation`` (an AssertionError) naming the invariant; ``vopr`` prints it
with the seed and the tail of the trace.

Election (``PeerChecker``):

- at most one established leader per epoch: a peer that is LEADING past DISCOVERY (a quorum
  acked its epoch) claims ``current_epoch``; two sids never claim the same epoch;
- a node's acceptedEpoch and currentEpoch never go backwards, across crashes too (they come
  back from its disk), and acceptedEpoch >= currentEpoch;
- once settled (``settled()``: one leader past DISCOVERY followed by a quorum of voters, itself
  included, in SYNCHRONIZATION), no live peer in SYNCHRONIZATION names another leader;
- liveness: after the network heals and every peer runs, ``settled()`` within a bound.

Standalone (``StandaloneChecker``):

- every acknowledged write survives every crash and restart: after recovery each path holds
  its last acknowledged value or a later value the client sent (never an older one) and the
  recovered last zxid is at least the highest acknowledged one;
- equal digests at equal zxids: the tree recovered at zxid z has the digest the live tree had
  when it had applied every txn up to z (and no two runs apply different trees at one zxid);
- zxids of appended txns strictly increase within a run of the server and start above the
  recovered last zxid; successful write replies carry strictly increasing zxids;
- no reply for a write leaves before its txn is durable (zxid <= the last TxnsDurable);
- a session reads its own acknowledged writes: getData returns the last acknowledged value or
  a later one it sent, across crashes and reconnections;
- liveness: after healing, every client gets a write acknowledged within a bound.
"""

from __future__ import annotations

import bisect
import struct
from typing import Any

from ..storage.recovery import Recovered
from .cluster import AnyClient, PeerCluster, PeerNode, SimClient, StandaloneCluster, StandaloneNode

__all__ = ["Violation", "PeerChecker", "StandaloneChecker", "ZabChecker", "ClientChecker",
           "settled_leader"]


class Violation(AssertionError):
    """A simulated run broke an invariant."""


class PeerChecker:
    def __init__(self, cluster: PeerCluster) -> None:
        self.cluster = cluster
        #: epoch -> sid of the established leader that claimed it first
        self.epoch_leader: dict[int, int] = {}
        self.max_epochs: dict[int, tuple[int, int]] = {}
        self.checks = 0
        cluster.world.after_step.append(self.check)
        # A wiped peer (an observer: a wiped voter would void the quorum intersection the
        # invariants rest on) starts again from epoch 0.
        cluster.on_wipe_hooks.append(self.forget)

    def forget(self, node: PeerNode) -> None:
        self.max_epochs.pop(node.sid, None)

    def check(self) -> None:
        self.checks += 1
        for node in self.cluster.live():
            core = node.core
            assert core is not None
            sid = node.sid
            acc, cur = core.accepted_epoch, core.current_epoch
            if acc < cur:
                raise Violation(f"p{sid}: acceptedEpoch {acc} < currentEpoch {cur}")
            pacc, pcur = self.max_epochs.get(sid, (-1, -1))
            if acc < pacc or cur < pcur:
                raise Violation(f"p{sid}: epochs went back: accepted {pacc}->{acc}, "
                                f"current {pcur}->{cur}")
            self.max_epochs[sid] = (acc, cur)
            if core.state.name == "LEADING" and core.zab_state.name not in ("DISCOVERY",
                                                                             "ELECTION"):
                first = self.epoch_leader.setdefault(cur, sid)
                if first != sid:
                    raise Violation(f"two leaders established epoch {cur}: p{first} and p{sid}")

    def settled(self) -> int | None:
        """The leader that a quorum of voters (itself included) follows in SYNCHRONIZATION.

        Live peers outside that quorum may still be LOOKING: a peer whose acceptedEpoch is
        above the established leader's epoch (it acked a leader that never got a quorum) is
        turned away by that leader until the next election, as Apache's Learner does
        ("Leaders epoch, X is less than accepted epoch, Y").
        """
        live = self.cluster.live()
        leading = [n for n in live if n.core is not None and n.core.state.name == "LEADING"
                   and n.core.zab_state.name == "SYNCHRONIZATION"]
        if len(leading) != 1:
            return None
        leader = leading[0].sid
        synced = {n.sid for n in live if n.core is not None
                  and n.core.zab_state.name == "SYNCHRONIZATION" and n.core.leader_sid == leader}
        if not self.cluster.verifier.contains_quorum(synced):
            return None
        return leader

    def stragglers(self) -> list[int]:
        """Live peers not following the settled leader in SYNCHRONIZATION."""
        leader = self.settled()
        return [n.sid for n in self.cluster.live() if n.core is None
                or n.core.zab_state.name != "SYNCHRONIZATION" or n.core.leader_sid != leader]

    def check_agreement(self) -> None:
        """Every live peer past DISCOVERY names the settled leader (call once settled)."""
        leader = self.settled()
        if leader is None:
            raise Violation("check_agreement: no settled leader")
        for n in self.cluster.live():
            assert n.core is not None
            if n.core.zab_state.name == "SYNCHRONIZATION" and n.core.leader_sid != leader:
                raise Violation(f"p{n.sid} follows p{n.core.leader_sid}, the quorum p{leader}")


class StandaloneChecker:
    def __init__(self, cluster: StandaloneCluster) -> None:
        self.cluster = cluster
        self.max_acked_zxid = 0
        self.last_reply_zxid = 0
        self.last_appended: int | None = None
        self.recoveries = 0
        cluster.ack_hooks.append(self.on_ack)
        cluster.send_hooks.append(self.on_send)
        cluster.append_hooks.append(self.on_append)
        cluster.recovered_hooks.append(self.on_recovered)
        cluster.read_hooks.append(self.on_read)
        cluster.applied_hooks.append(self.on_applied)
        self.reads = 0
        #: zxid -> the live tree's digest once every txn up to it was applied
        self.digests: dict[int, int] = {}
        self.digests_compared = 0

    def on_applied(self, node: StandaloneNode, zxid: int, digest: int) -> None:
        # An applied txn was durable, so no later run reuses its zxid: one digest per zxid.
        old = self.digests.setdefault(zxid, digest)
        if old != digest:
            raise Violation(f"two trees at zxid {zxid:#x}: digests {old:#x} and {digest:#x}")

    def on_read(self, cl: SimClient, path: str, acked_index: int, err: int,
                data: bytes | None) -> None:
        """A session reads its own acknowledged writes (or later ones), never older."""
        self.reads += 1
        pm = cl.paths[path]
        if err != 0 or data not in pm.values[acked_index:]:
            raise Violation(f"c{cl.cid} read {path}: error {err}, data {data!r}; it had "
                            f"acknowledged {pm.values[acked_index]!r}")

    def on_ack(self, cl: SimClient, path: str, idx: int, zxid: int) -> None:
        self.max_acked_zxid = max(self.max_acked_zxid, zxid)

    def on_append(self, node: StandaloneNode, txns: list[tuple[int, bytes]]) -> None:
        prev = self.last_appended if self.last_appended is not None else node.last_appended
        for zxid, _ in txns:
            if zxid <= prev:
                raise Violation(f"appended zxid {zxid:#x} after {prev:#x}")
            prev = zxid
        self.last_appended = prev

    def on_send(self, node: StandaloneNode, cl: AnyClient, data: bytes) -> None:
        off = 0
        while off + 4 <= len(data):
            (n,) = struct.unpack_from(">i", data, off)
            frame = data[off + 4: off + 4 + n]
            off += 4 + n
            if not cl.connected or len(frame) < 16:
                continue
            xid, zxid, err = struct.unpack_from(">iqi", frame, 0)
            if xid not in cl.pending or cl.pending[xid][1] < 0:
                continue  # not a request of this connection, or a read
            if zxid > node.durable_zxid:
                raise Violation(f"reply to c{cl.cid} xid {xid} at zxid {zxid:#x} before it was "
                                f"durable (durable {node.durable_zxid:#x})")
            if err == 0:
                if zxid <= self.last_reply_zxid:
                    raise Violation(f"write reply zxid {zxid:#x} not above the last "
                                    f"{self.last_reply_zxid:#x}")
                self.last_reply_zxid = zxid

    def on_recovered(self, node: StandaloneNode, rec: Recovered) -> None:
        self.recoveries += 1
        self.check_recovered(rec)
        # A new run of the server: appended zxids restart above what survived.
        self.last_appended = rec.last_zxid
        self.last_reply_zxid = min(self.last_reply_zxid, rec.last_zxid)
        if self.last_reply_zxid < self.max_acked_zxid:
            self.last_reply_zxid = self.max_acked_zxid

    def check_recovered(self, rec: Recovered) -> None:
        if rec.last_zxid < self.max_acked_zxid:
            raise Violation(f"recovered to zxid {rec.last_zxid:#x}, below the acknowledged "
                            f"{self.max_acked_zxid:#x}")
        live = self.digests.get(rec.last_zxid)
        if live is not None:
            self.digests_compared += 1
            if rec.tree.digest() != live:
                raise Violation(f"recovered tree at zxid {rec.last_zxid:#x} has digest "
                                f"{rec.tree.digest():#x}, the live tree had {live:#x}")
        nodes: dict[str, Any] = rec.tree.nodes
        for cl in self.cluster.clients:
            for path, pm in sorted(cl.paths.items()):
                if pm.acked_index is None:
                    continue
                zn = nodes.get(path)
                if zn is None:
                    raise Violation(f"acknowledged {path} (zxid {pm.acked_zxid:#x}) lost")
                allowed = pm.values[pm.acked_index:]
                if zn.data not in allowed:
                    raise Violation(f"{path} holds {zn.data!r}; acknowledged "
                                    f"{pm.values[pm.acked_index]!r} at {pm.acked_zxid:#x}")
                if zn.mzxid < pm.acked_zxid:
                    raise Violation(f"{path} mzxid {zn.mzxid:#x} < acked {pm.acked_zxid:#x}")


class ZabChecker:
    """The ensemble's invariants, checked after every step (``vopr.run_zab``).

    - at most one established leader per epoch (LEADING past DISCOVERY);
    - a peer's acceptedEpoch >= currentEpoch; durable epochs never go back on a peer, across
      restarts too (the epochs a start resolves from disk count as durable);
    - agreement: every txn logged anywhere at one zxid has the same bytes, forever;
    - equal digests at equal zxids: every tree applied up to zxid z, on any peer and after any
      recovery or truncation, has one digest;
    - commit after a quorum: a serving peer applies z only once a quorum of voters have logged
      through z durably (their durable zxid >= z);
    - zxids a peer logs strictly increase within an incarnation and above what it recovered.

    From the cores' own trace (``zab.ZabTrace``), at the moment each decision is taken:

    - a follower ACKs a proposal only once its log holds it durably;
    - a NEWLEADER ACK leaves only once every txn logged before NEWLEADER is durable and
      currentEpoch is durably the new epoch;
    - a commit is counted from voters only, they form a quorum, and each of them holds the
      txn durably at that moment (an ack from before a TRUNC no longer counts);
    - a leader's TRUNC never cuts a txn any leader committed (no committed zxid between the
      TRUNC zxid and the learner's last zxid), and a reload ends at or below the TRUNC zxid.
    """

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        self.epoch_leader: dict[int, int] = {}
        self.durable_epochs: dict[tuple[int, str], int] = {}
        self.txn_at: dict[int, bytes] = {}
        self.digests: dict[int, int] = {}
        self.applied: dict[int, int] = {}
        self.last_logged: dict[int, int] = {}
        self.checks = 0
        self.commits_checked = 0
        #: Every zxid any leader committed (sorted), from the "commit" traces.
        self.committed: list[int] = []
        self.traced: dict[str, int] = {}
        cluster.trace_hooks.append(self.on_trace)
        cluster.append_hooks.append(self.on_append)
        cluster.recovered_hooks.append(self.on_recovered)
        cluster.truncated_hooks.append(self.on_truncated)
        cluster.epoch_hooks.append(self.on_epoch)
        cluster.world.after_step.append(self.check)

    def on_append(self, node: Any, txns: list[tuple[int, bytes]]) -> None:
        prev = self.last_logged.get(node.sid, -1)
        for zxid, data in txns:
            if zxid <= prev:
                raise Violation(f"p{node.sid} logged zxid {zxid:#x} after {prev:#x}")
            prev = zxid
            old = self.txn_at.setdefault(zxid, data)
            if old != data:
                raise Violation(f"agreement: p{node.sid} logged a different txn at zxid "
                                f"{zxid:#x}")
        self.last_logged[node.sid] = prev

    def on_recovered(self, node: Any, rec: Any) -> None:
        self.last_logged[node.sid] = rec.last_zxid
        self.applied.pop(node.sid, None)
        self._digest(node.sid, rec.last_zxid, rec.tree.digest(), "recovered")

    def on_truncated(self, node: Any, zxid: int) -> None:
        self.last_logged[node.sid] = zxid
        self.applied.pop(node.sid, None)

    def on_trace(self, node: Any, event: str, f: dict[str, Any]) -> None:
        self.traced[event] = self.traced.get(event, 0) + 1
        sid = node.sid
        if event == "ack":
            z = f["zxid"]
            if f["durable"] < z or node.durable_zxid < z:
                raise Violation(f"p{sid} sent ACK {z:#x} before its log held it durably "
                                f"(core says {f['durable']:#x}, disk {node.durable_zxid:#x})")
        elif event == "newleader_ack":
            epoch = f["zxid"] >> 32
            if node.durable_zxid < f["need"]:
                raise Violation(f"p{sid} acked NEWLEADER of epoch {epoch} with txns through "
                                f"{f['need']:#x} logged but only {node.durable_zxid:#x} durable")
            durable_cur = self.durable_epochs.get((sid, "current"), -1)
            if durable_cur != epoch:
                raise Violation(f"p{sid} acked NEWLEADER of epoch {epoch} while its durable "
                                f"currentEpoch is {durable_cur}")
        elif event == "commit":
            z, acks = f["zxid"], f["acks"]
            c = self.cluster
            voters = set(c.verifier.voting_members)
            if not acks <= voters:
                raise Violation(f"p{sid} counted non-voters {sorted(acks - voters)} for "
                                f"zxid {z:#x}")
            if not c.verifier.contains_quorum(set(acks)):
                raise Violation(f"p{sid} committed {z:#x} with acks {sorted(acks)}: no quorum")
            stale = sorted(s for s in acks if c.zab_nodes[s].durable_zxid < z)
            if stale:
                raise Violation(
                    f"p{sid} committed {z:#x} counting acks of {stale}, whose logs hold it no "
                    f"longer durably (durable " + ", ".join(
                        f"p{s}={c.zab_nodes[s].durable_zxid:#x}" for s in stale) + ")")
            i = bisect.bisect_left(self.committed, z)
            if i == len(self.committed) or self.committed[i] != z:
                self.committed.insert(i, z)
        elif event == "sync_plan" and f["kind"] == "TRUNC":
            cut, last = f["zxid"], f["peer_last"]
            i = bisect.bisect_right(self.committed, cut)
            if i < len(self.committed) and self.committed[i] <= last:
                raise Violation(f"p{sid} sent p{f['sid']} TRUNC {cut:#x} (its last zxid "
                                f"{last:#x}), cutting committed zxid {self.committed[i]:#x}")
        elif event == "truncated" and f["landed"] > f["zxid"]:
            raise Violation(f"p{sid} truncated to {f['zxid']:#x} but reloaded at "
                            f"{f['landed']:#x}")

    def on_epoch(self, node: Any, kind: str, epoch: int) -> None:
        key = (node.sid, kind)
        prev = self.durable_epochs.get(key, -1)
        if epoch < prev:
            raise Violation(f"p{node.sid}: durable {kind}Epoch went back {prev} -> {epoch}")
        self.durable_epochs[key] = epoch

    def _digest(self, sid: int, zxid: int, digest: int, how: str) -> None:
        old = self.digests.setdefault(zxid, digest)
        if old != digest:
            raise Violation(f"p{sid} ({how}) has digest {digest:#x} at zxid {zxid:#x}; another "
                            f"tree had {old:#x}")

    def check(self) -> None:
        self.checks += 1
        c = self.cluster
        for sid, node in sorted(c.zab_nodes.items()):
            peer = node.peer
            if peer is None or node.core is None:
                continue
            acc, cur = peer.accepted_epoch, peer.current_epoch
            if acc < cur:
                raise Violation(f"p{sid}: acceptedEpoch {acc} < currentEpoch {cur}")
            if peer.state.name == "LEADING" and peer.zab_state.name not in ("DISCOVERY",
                                                                             "ELECTION"):
                first = self.epoch_leader.setdefault(cur, sid)
                if first != sid:
                    raise Violation(f"two leaders established epoch {cur}: p{first} and p{sid}")
            tree = node.core.tree
            z = tree.last_processed_zxid
            if self.applied.get(sid) != z:
                before = self.applied.get(sid)
                self.applied[sid] = z
                self._digest(sid, z, tree.digest(), "applied")
                if (node.qnode is not None and node.qnode.serving and before is not None
                        and z > before):
                    self._quorum_durable(sid, z)

    def _quorum_durable(self, sid: int, zxid: int) -> None:
        c = self.cluster
        have = {s for s, n in c.zab_nodes.items() if n.durable_zxid >= zxid}
        self.commits_checked += 1
        if not c.verifier.contains_quorum(have):
            raise Violation(f"p{sid} applied zxid {zxid:#x} while only {sorted(have)} had it "
                            f"durable (no quorum of voters)")

    def settled(self) -> int | None:
        """A leader in BROADCAST that a quorum of voters follows in BROADCAST."""
        return settled_leader(self.cluster)


def settled_leader(cluster: Any) -> int | None:
    """A leader in BROADCAST that a quorum of voters follows in BROADCAST (or None)."""
    live = [n for _, n in sorted(cluster.zab_nodes.items()) if n.peer is not None]
    leaders = [n for n in live if n.peer.state.name == "LEADING"
               and n.peer.zab_state.name == "BROADCAST"]
    if len(leaders) != 1:
        return None
    ld = leaders[0].sid
    synced = {n.sid for n in live if n.peer.zab_state.name == "BROADCAST"
              and (n.sid == ld or n.peer.leader_sid == ld)}
    return ld if cluster.verifier.contains_quorum(synced) else None


#: Txn types of the txns ``ClientChecker`` reads from the logs (TxnHeader.type at byte 28).
_TXN_DELETE = 2
#: Expiry after healing may take the negotiated timeout from the last touch, plus the
#: expirer's bucket (up to one tick: ExpiryQueue rounds up to the next tick), the learner's
#: PING that carries the touch (up to half a tick) and the closeSession's commit (a slow
#: fsync is 300 ms in the simulated disk): 1.5 ticks of 2 s and a second for the commit.
EXPIRY_SLACK_MS = 4_000
#: A session kept alive at t (its client pinging through a serving server, see
#: ``ClientChecker``) was touched at the leader at most a third of its timeout plus a tick
#: before t, so it cannot expire until well after t + this.
KEPT_GRACE_MS = 1_000


class ClientChecker:
    """What the clients of an ensemble see (``RegisterClient``s with an observer; zab mode).

    Checked when each reply arrives, and every 50 ms of virtual time:

    - per-session FIFO: a reply answers the oldest request in flight on the connection;
    - no older view: a reply's header zxid is never below the highest zxid the client has
      seen (across reconnects to other servers), and a server accepts a session only when
      its tree has processed that zxid (a server behind refuses it);
    - read-your-writes: a read of a key reflects the session's last acknowledged write on it
      (a node with mzxid >= a set/create's zxid, or czxid above a delete's; NONODE only after
      a delete of the key was logged between that write and the read's zxid);
    - sync then read: the read after a sync reflects, on its key, the last write on that key
      acknowledged to anyone before the sync was sent, and both replies carry a zxid at
      least the highest write acknowledged to anyone before the sync;
    - ephemerals: every ephemeral znode on any server belongs to a session a client was
      given; no tree at or past the zxid of an acknowledged closeSession holds that session's
      ephemerals; after healing, once the leader has served long enough for an expiry, no
      server as recent as the leader holds the ephemerals of a session whose client saw
      SESSION_EXPIRED or walked away;
    - session expiry, after healing only (calm network): a session whose client went away
      without closing it expires (the leader forgets it) within the negotiated timeout plus
      ``EXPIRY_SLACK_MS`` of the later of the heal, the leader's settling and the walk-away;
      and a session stays live at the leader while its client, connected since the leader
      settled to a server serving under that leader, sends something at least every third
      of the timeout (nor is the client told, within ``KEPT_GRACE_MS`` of such a moment,
      that the session expired).
    """

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        #: cid -> the highest header zxid the client has seen.
        self.seen: dict[int, int] = {}
        #: (cid, key) -> (kind, zxid) of the client's last acknowledged write on the key.
        self.own_write: dict[tuple[int, str], tuple[str, int]] = {}
        #: key -> (kind, zxid) of the highest-zxid write acknowledged to anyone.
        self.key_floor: dict[str, tuple[str, int]] = {}
        self.global_floor = 0
        #: (cid, read xid) -> (global floor, key floor) from the sync sent before it.
        self.sync_floor: dict[tuple[int, int], tuple[int, tuple[str, int] | None]] = {}
        #: key -> zxids of logged deletes of it.
        self.deletes: dict[str, list[int]] = {}
        #: Sessions clients were given, with their negotiated timeout.
        self.established: dict[int, int] = {}
        #: session -> ephemeral paths created (acknowledged).
        self.ephemerals: dict[int, list[str]] = {}
        #: session -> (how, zxid of the close or 0, when it ended or was abandoned)
        self.ended: dict[int, tuple[str, int, int]] = {}
        self.serving_since: dict[int, int] = {}
        #: session -> the last time the kept-alive conditions held for it (see ``check``).
        self.kept: dict[int, int] = {}
        self._leader: tuple[int, int] | None = None
        self._leader_since = 0
        self._next_check = 0
        self.counts: dict[str, int] = {}
        cluster.append_hooks.append(self.on_append)
        cluster.send_hooks.append(self.on_send)
        cluster.world.after_step.append(self.check)

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    # ---- from the logs and the servers
    def on_append(self, node: Any, txns: list[tuple[int, bytes]]) -> None:
        for zxid, data in txns:
            if len(data) >= 32 and struct.unpack_from(">i", data, 28)[0] == _TXN_DELETE:
                (n,) = struct.unpack_from(">i", data, 32)
                key = data[36:36 + n].decode()
                zs = self.deletes.setdefault(key, [])
                i = bisect.bisect_left(zs, zxid)
                if i == len(zs) or zs[i] != zxid:
                    zs.insert(i, zxid)

    def on_send(self, node: Any, cl: Any, data: bytes) -> None:
        if getattr(cl, "obs", None) is not self or cl.connected or len(data) < 12:
            return
        (_n, _pv, timeout) = struct.unpack_from(">iii", data, 0)
        if timeout <= 0 or node.core is None:
            return
        ours = node.core.tree.last_processed_zxid
        self._count("accepts")
        if ours < cl.last_zxid:
            raise Violation(f"p{node.sid} accepted c{cl.cid}'s session at zxid {ours:#x}; the "
                            f"client had seen {cl.last_zxid:#x}")

    # ---- from the clients
    def connected(self, cl: Any) -> None:
        self.established[cl.session_id] = cl.timeout_ms

    def expired(self, cl: Any, session: int) -> None:
        now = self.cluster.world.now
        kept = self.kept.get(session)
        if kept is not None and now - kept <= KEPT_GRACE_MS:
            raise Violation(f"session expiry: c{cl.cid} was told session {session:#x} expired "
                            f"at {now} ms; it was kept alive at {kept} ms")
        self.ended.setdefault(session, ("expired", 0, now))

    def abandoned(self, cl: Any, session: int) -> None:
        if session:
            self.ended.setdefault(session, ("abandoned", 0, self.cluster.world.now))

    def sent(self, cl: Any, xid: int, kind: str, key: str) -> None:
        if kind == "sync":
            self.sync_floor[(cl.cid, xid + 1)] = (self.global_floor, self.key_floor.get(key))

    def out_of_order(self, cl: Any, xid: int, head: tuple[int, str, str] | None) -> None:
        want = "nothing in flight" if head is None else f"xid {head[0]} ({head[1]}) first"
        raise Violation(f"FIFO: c{cl.cid} session {cl.session_id:#x} got a reply to xid {xid}, "
                        f"expected {want}")

    def reply_header(self, cl: Any, xid: int, zxid: int, err: int) -> None:
        if zxid <= 0:
            return
        seen = self.seen.get(cl.cid, 0)
        if zxid < seen:
            raise Violation(f"older view: c{cl.cid} session {cl.session_id:#x} got a reply "
                            f"(xid {xid}) at zxid {zxid:#x} after seeing {seen:#x}")
        self.seen[cl.cid] = zxid

    def replied(self, cl: Any, xid: int, kind: str, key: str, zxid: int, err: int,
                stat: Any) -> None:
        """A reply to a request of ``cl`` (FIFO and header zxid already checked)."""
        sess = cl.session_id
        if kind == "read":
            own = self.own_write.get((cl.cid, key))
            if own is not None:
                self._read_reflects("read-your-writes", cl, key, own, zxid, err, stat)
            sf = self.sync_floor.pop((cl.cid, xid), None)
            if sf is not None:
                self._count("sync_reads")
                if err in (0, -101) and zxid < sf[0]:
                    raise Violation(f"sync then read: c{cl.cid} read {key} at zxid {zxid:#x}; "
                                    f"{sf[0]:#x} was acknowledged before the sync")
                if sf[1] is not None:
                    self._read_reflects("sync then read", cl, key, sf[1], zxid, err, stat)
        elif kind == "sync" and err == 0:
            sf = self.sync_floor.get((cl.cid, xid + 1))
            if sf is not None and zxid < sf[0]:
                raise Violation(f"sync: c{cl.cid}'s sync answered at zxid {zxid:#x}; "
                                f"{sf[0]:#x} was acknowledged before it was sent")
        elif kind in ("set", "create", "delete") and err == 0:
            w = (kind, zxid)
            self.own_write[(cl.cid, key)] = w
            if zxid > self.key_floor.get(key, ("", 0))[1]:
                self.key_floor[key] = w
            self.global_floor = max(self.global_floor, zxid)
        elif kind == "ephemeral" and err == 0:
            self.ephemerals.setdefault(sess, []).append(key)
        elif kind == "close" and err == 0:
            self.ended[sess] = ("close", zxid, self.cluster.world.now)

    def _read_reflects(self, rule: str, cl: Any, key: str, floor: tuple[str, int], zxid: int,
                       err: int, stat: Any) -> None:
        kind, wz = floor
        self._count(rule)
        if err == 0 and stat is not None:
            ok = stat.czxid > wz if kind == "delete" else stat.mzxid >= wz
            seen = f"czxid {stat.czxid:#x} mzxid {stat.mzxid:#x}"
        elif err == -101:
            ok = kind == "delete" or any(wz < d <= zxid for d in self.deletes.get(key, ()))
            seen = "NONODE"
        else:
            return
        if not ok:
            raise Violation(f"{rule}: c{cl.cid} session {cl.session_id:#x} read {key} at zxid "
                            f"{zxid:#x} and saw {seen}, older than the {kind} at {wz:#x}")

    # ---- every 50 ms of virtual time
    def check(self) -> None:
        c = self.cluster
        w = c.world
        if w.now < self._next_check:
            return
        self._next_check = w.now + 50
        nodes = c.zab_nodes
        for sid, nd in sorted(nodes.items()):
            if nd.core is None:
                continue
            tree = nd.core.tree
            last = tree.last_processed_zxid
            for owner in sorted(tree.ephemerals):
                if not tree.ephemerals[owner]:
                    continue
                if owner not in self.established:
                    raise Violation(f"p{sid} holds ephemerals {sorted(tree.ephemerals[owner])} "
                                    f"of session {owner:#x}, which no client was given")
                end = self.ended.get(owner)
                if end is not None and end[0] == "close" and last >= end[1]:
                    raise Violation(f"p{sid} at zxid {last:#x} holds ephemerals "
                                    f"{sorted(tree.ephemerals[owner])} of session {owner:#x}, "
                                    f"closed at {end[1]:#x}")
        leader = settled_leader(c)
        key = None if leader is None else (leader, nodes[leader].peer.current_epoch)
        if key != self._leader:
            self._leader, self._leader_since = key, w.now
            self.serving_since.clear()
        heal = getattr(w, "healing_since", None)
        if leader is None or heal is None:
            return
        for sid, nd in sorted(nodes.items()):
            serving = nd.peer is not None and nd.peer.zab_state.name == "BROADCAST" and (
                sid == leader or nd.peer.leader_sid == leader)
            if not serving:
                self.serving_since.pop(sid, None)
            else:
                self.serving_since.setdefault(sid, w.now)
        start = max(heal, self._leader_since)
        lcore = nodes[leader].core
        assert lcore is not None
        tracked = lcore.sessions.sessions
        ltree = lcore.tree
        # Sessions that ended (expired, walked away): gone within the bound.
        for sess, (how, _, at) in sorted(self.ended.items()):
            if how == "close":
                continue
            due = max(start, at) + self.established.get(sess, 40_000) + EXPIRY_SLACK_MS
            if w.now < due:
                continue
            self._count("expiry_due")
            if sess in tracked or ltree.ephemerals.get(sess):
                raise Violation(f"session expiry: session {sess:#x} ({how} at {at} ms) still "
                                f"live on leader p{leader} at {w.now} ms (due {due} ms): "
                                f"ephemerals {sorted(ltree.ephemerals.get(sess, ()))}")
            for sid, nd in sorted(nodes.items()):
                if (nd.core is not None and sid in self.serving_since
                        and nd.core.tree.last_processed_zxid >= ltree.last_processed_zxid
                        and nd.core.tree.ephemerals.get(sess)):
                    raise Violation(f"p{sid} still holds ephemerals of ended session "
                                    f"{sess:#x} at {w.now} ms")
        # Sessions whose clients keep them alive: never expired.
        for cl in c.reg_clients:
            sess = cl.session_id
            if (not cl.connected or not sess or cl.conn_id is None or cl.stopped
                    or sess in self.ended
                    or any(k == "close" for _, k, _ in cl.inflight)):
                continue
            srv = c._client_server.get(cl.cid, (None, 0))  # noqa: SLF001
            since = self.serving_since.get(srv[1]) if srv[0] == cl.conn_id else None
            if since is None or cl.connected_at <= max(start, since):
                continue
            if w.now - cl.last_sent_ms > cl.timeout_ms // 3 + 100:
                continue
            self._count("kept_alive")
            self.kept[sess] = w.now
            s = tracked.get(sess)
            if s is None or s.closing:
                raise Violation(f"session expiry: session {sess:#x} of c{cl.cid}, connected to "
                                f"p{srv[1]} since {cl.connected_at} ms and pinging, is "
                                f"{'gone' if s is None else 'closing'} on leader p{leader}")
