"""QuorumPeerCore: the quorum peer's role loop, sans-IO (Apache's ``QuorumPeer.run``).

Theory of operation
-------------------
States (``ServerState``) and, inside a role, ZAB phases (``ZabState``)::

    LOOKING/ELECTION --FLE decides--> LEADING|FOLLOWING|OBSERVING / DISCOVERY
    DISCOVERY --epoch agreed (LEADERINFO/ACKEPOCH quorum)--> SYNCHRONIZATION   (held here:
        the sync itself and BROADCAST come with issue #5)
    any role --ends (timeout, lost leader/quorum, protocol violation)--> LOOKING/ELECTION

LOOKING runs ``core/election.py``'s FastLeaderElection; a ``Decision`` switches the role and
makes the decision our current vote (which the election keeps answering LOOKING peers with).
Every state or ZAB phase change emits ``RoleChanged``; LOOKING with ``readonlymode.enabled``
emits a second ``RoleChanged(read_only=True)`` after max(2 s, tickTime) (Apache starts its
ReadOnlyZooKeeperServer then).

LEADING (``Leader.lead``, ``LearnerHandler.run``, up to ``waitForEpochAck``):

1. ``getEpochToPropose``: the leader and each connecting learner's FOLLOWERINFO/OBSERVERINFO
   acceptedEpoch raise ``epoch`` to max+1; voters (by the config, not the packet type) are
   collected until the leader plus a quorum of voters are in, within initLimit*tickTime.
2. The leader persists acceptedEpoch = epoch (``WriteEpoch``/``EpochDurable``) before any
   LEADERINFO(epoch<<32, 0x10000) leaves; later learners get LEADERINFO at once.
3. ``waitForEpochAck``: ACKEPOCH from voters whose current epoch is not -1 and last zxid not -1
   count; a learner ahead of the leader (currentEpoch, lastZxid) is disconnected; a quorum
   including the leader within initLimit*tickTime, else LOOKING.
4. The leader persists currentEpoch = epoch, then enters SYNCHRONIZATION and holds: it sends
   nothing (an Apache learner exits its JVM on any packet other than DIFF/SNAP/TRUNC there),
   so Apache learners time out after initLimit*tickTime and leave; zkfast learners stay. The
   leader steps down to LOOKING when its connected, epoch-acked voters plus itself no longer
   form a quorum.

FOLLOWING/OBSERVING (``Learner.connectToLeader``, ``registerWithLeader``):

1. ``ConnectToLeader`` to the leader's quorum port; a failed attempt is retried after 100 ms,
   at most 5 attempts and within initLimit*tickTime (connectToLearnerMasterLimit if set).
2. FOLLOWERINFO/OBSERVERINFO(acceptedEpoch<<32, LearnerInfo(sid, 0x10000, configVersion)).
3. LEADERINFO within initLimit*tickTime: a newer epoch is persisted as acceptedEpoch *before*
   ACKEPOCH(lastZxid, currentEpoch) is sent; an equal epoch is answered with -1; an older one
   is a protocol violation.
4. SYNCHRONIZATION, held until the leader connection ends (sync packets are ignored until
   issue #5 implements them).

Any protocol violation or lost connection ends the role: the peer closes its quorum
connections and returns to LOOKING with its epochs and zxid intact. Broken invariants of our
own (an epoch going backwards, an EpochDurable nobody asked for) are AssertionErrors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

from .._impl import ProtocolError
from ..config import ServerConfig
from ..quorum import QuorumVerifier
from ..wire.peer_codec import (
    LEARNER_PROTOCOL_VERSION,
    LearnerInfo,
    PacketType,
    QuorumPacket,
    ServerState,
    ZabState,
    decode_int_body,
    decode_learner_info,
    decode_quorum_packet,
    encode_int_body,
    encode_learner_info,
    encode_quorum_packet,
)
from .actions import (
    CloseQuorumConn,
    ConnectToLeader,
    RoleChanged,
    SendQuorumPacket,
    SendToPeer,
    WriteEpoch,
)
from .election import Decision, FastLeaderElection, Vote
from .events import (
    EpochDurable,
    LeaderConnected,
    LeaderConnectFailed,
    LeaderDisconnected,
    LeaderPacketsReceived,
    LearnerConnected,
    LearnerDisconnected,
    LearnerPacketsReceived,
    PeerEvent,
    PeerLinkDown,
    PeerLinkUp,
    PeerMessageReceived,
    Ticked,
)

__all__ = ["QuorumPeerCore", "PeerStatus", "Summary", "LEARNER_CONN_ID_BASE"]

log = logging.getLogger("zkfast.peer")

Action = (SendToPeer | WriteEpoch | ConnectToLeader | SendQuorumPacket | CloseQuorumConn
          | RoleChanged)

#: Conn ids the core picks for ``ConnectToLeader`` start here, apart from the runtime's ids
#: for accepted learner connections.
LEARNER_CONN_ID_BASE = 1 << 40
#: Learner.leaderConnectDelayDuringRetryMs and the attempt limit of connectToLeader.
LEADER_CONNECT_RETRY_DELAY_MS = 100
LEADER_CONNECT_TRIES = 5
#: Learner sync-phase packets that a held learner ignores until issue #5 implements them.
_SYNC_PACKETS = frozenset({
    PacketType.DIFF, PacketType.TRUNC, PacketType.SNAP, PacketType.PROPOSAL, PacketType.COMMIT,
    PacketType.NEWLEADER, PacketType.UPTODATE, PacketType.PING, PacketType.INFORM,
    PacketType.COMMITANDACTIVATE, PacketType.INFORMANDACTIVATE, PacketType.SYNC,
    PacketType.REVALIDATE,
})


@dataclass(slots=True)
class Summary:
    """An Apache summary metric: count, sum, min, max (mntr prints avg/min/max/cnt/sum)."""

    count: int = 0
    total: int = 0
    min: int = 0
    max: int = 0

    def add(self, v: int) -> None:
        self.min = v if self.count == 0 else min(self.min, v)
        self.max = v if self.count == 0 else max(self.max, v)
        self.count += 1
        self.total += v

    @property
    def avg(self) -> float:
        return self.total / self.count if self.count else 0.0


@dataclass(frozen=True, slots=True)
class PeerStatus:
    """A snapshot for srvr/stat/mntr and logs."""

    my_sid: int
    state: str
    zab_state: str
    leader_sid: int | None
    read_only: bool
    current_vote: Vote
    logical_clock: int
    accepted_epoch: int
    current_epoch: int
    last_zxid: int
    #: ``zk_server_state``/``Mode:``: leader, follower, observer, read-only, or None (not
    #: serving while LOOKING).
    server_state: str | None
    #: ``zk_peer_state`` (QuorumPeer.getDetailedPeerState), e.g. "following - discovery".
    peer_state: str
    #: QuorumPeer.getServerState: leaderelection, leading, following, observing.
    quorum_state: str
    election_time_ms: int
    looking_count: int
    election_time: Summary
    follower_sync_time: Summary
    learners: tuple[int, ...] = ()

    def mntr(self) -> list[tuple[str, int | float | str]]:
        """The quorum lines of ``mntr``, with Apache's names (ServerMetrics, QuorumPeer)."""
        out: list[tuple[str, int | float | str]] = [
            ("zk_peer_state", self.peer_state),
            ("zk_looking_count", self.looking_count),
        ]
        for name, s in (("election_time", self.election_time),
                        ("follower_sync_time", self.follower_sync_time)):
            out += [(f"zk_avg_{name}", round(s.avg, 4)), (f"zk_min_{name}", s.min),
                    (f"zk_max_{name}", s.max), (f"zk_cnt_{name}", s.count),
                    (f"zk_sum_{name}", s.total)]
        if self.state == "LEADING":
            out.append(("zk_learners", len(self.learners)))
        return out


@dataclass(slots=True)
class _Learner:
    """Leader side: one learner connection (a LearnerHandler)."""

    conn_id: int
    remote: str
    phase: str = "info"  # info -> epoch -> ackepoch -> held
    sid: int | None = None
    observer: bool = False
    deadline_ms: int | None = None
    acked: bool = False
    protocol_version: int = LEARNER_PROTOCOL_VERSION
    info_zxid: int = 0


@dataclass(slots=True)
class _LeaderRole:
    epoch: int = -1
    waiting_for_new_epoch: bool = True
    epoch_durable: bool = False
    election_finished: bool = False
    current_durable: bool = False
    connecting: set[int] = field(default_factory=set)
    electing: set[int] = field(default_factory=set)
    learners: dict[int, _Learner] = field(default_factory=dict)
    epoch_deadline_ms: int | None = None
    ack_deadline_ms: int | None = None


@dataclass(slots=True)
class _LearnerRole:
    leader_sid: int
    host: str
    port: int
    conn_id: int
    phase: str = "connecting"  # connecting, retry, registering, epoch_write, held
    tries: int = 0
    connect_start_ms: int = 0
    deadline_ms: int | None = None
    new_epoch: int = -1
    ignored: int = 0


class QuorumPeerCore:
    """The QuorumPeer role machine (see the module docstring)."""

    def __init__(self, config: ServerConfig, *, last_zxid: int, accepted_epoch: int,
                 current_epoch: int, now_ms: int) -> None:
        q = config.quorum
        assert q is not None, "QuorumPeerCore needs ServerConfig.quorum"
        assert accepted_epoch >= current_epoch, (
            f"acceptedEpoch {accepted_epoch} is less than currentEpoch {current_epoch}")
        assert q.my_sid in q.verifier.servers, f"myid {q.my_sid} is not in the server list"
        self.config = config
        self.quorum = q
        self.my_sid = q.my_sid
        self.participant = not q.is_observer
        self.tick_ms = config.tick_ms
        self.init_limit_ms = q.init_limit_ticks * config.tick_ms
        self.connect_limit_ms = (q.connect_to_learner_master_limit_ticks * config.tick_ms
                                 if q.connect_to_learner_master_limit_ticks > 0
                                 else self.init_limit_ms)
        self.readonly_enabled = config.readonly_mode_enabled
        self.last_zxid = last_zxid
        self.accepted_epoch = accepted_epoch
        self.current_epoch = current_epoch
        self.state = ServerState.LOOKING
        self.zab_state = ZabState.ELECTION
        self.leader_sid: int | None = None
        self.read_only = False
        # QuorumPeer.startLeaderElection: Vote(myid, lastLoggedZxid, currentEpoch).
        self.current_vote = Vote(self.my_sid, last_zxid, -1, current_epoch)
        self.election = FastLeaderElection(
            self.my_sid, q.verifier, participant=self.participant,
            min_notification_interval_ms=q.min_notification_interval_ms,
            max_notification_interval_ms=q.max_notification_interval_ms,
            finalize_wait_ms=q.finalize_wait_ms)
        self.looking_count = 0
        self.election_time_ms = 0
        self.election_time = Summary()
        self.follower_sync_time = Summary()
        self._election_start_ms = now_ms
        self._ro_deadline_ms: int | None = None
        self._leader: _LeaderRole | None = None
        self._learner: _LearnerRole | None = None
        self._pending_writes: list[tuple[str, int]] = []
        self._next_conn_id = LEARNER_CONN_ID_BASE
        self._started = False
        self._out: list[Action] = []

    # ------------------------------------------------------------------ public face

    @property
    def verifier(self) -> QuorumVerifier:
        """The current quorum config (the election may adopt a newer version of it)."""
        return self.election.verifier

    def start(self, now_ms: int) -> list[Action]:
        """Begin the first election; returns the first actions."""
        assert not self._started, "start() called twice"
        self._started = True
        self._enter_looking(now_ms, "start")
        return self._flush()

    def step(self, event: PeerEvent, now_ms: int) -> list[Action]:
        """Feed one event; returns the actions it caused."""
        if not self._started:
            self._started = True
            self._enter_looking(now_ms, "start")
        t = type(event)
        if t is PeerMessageReceived:
            assert isinstance(event, PeerMessageReceived)
            self._on_peer_message(event.sid, event.payload, now_ms)
        elif t is Ticked:
            self._on_tick(now_ms)
        elif t is EpochDurable:
            assert isinstance(event, EpochDurable)
            self._on_epoch_durable(event.kind, event.epoch, now_ms)
        elif t in (LearnerConnected, LearnerPacketsReceived, LearnerDisconnected):
            self._on_learner_event(event, now_ms)
        elif t in (LeaderConnected, LeaderPacketsReceived, LeaderConnectFailed,
                   LeaderDisconnected):
            self._on_leader_event(event, now_ms)
        elif t in (PeerLinkUp, PeerLinkDown):
            pass  # the runtime re-sends the last message on a new link; nothing to do here
        else:
            raise TypeError(f"QuorumPeerCore cannot handle {t.__name__}")
        return self._flush()

    def deadline_ms(self) -> int | None:
        """The next time ``Ticked`` must arrive, or None."""
        ds: list[int] = []
        d = self.election.deadline_ms()
        if d is not None:
            ds.append(d)
        if self._ro_deadline_ms is not None:
            ds.append(self._ro_deadline_ms)
        lr = self._leader
        if lr is not None:
            for x in (lr.epoch_deadline_ms, lr.ack_deadline_ms):
                if x is not None:
                    ds.append(x)
            for ln in lr.learners.values():
                if ln.deadline_ms is not None:
                    ds.append(ln.deadline_ms)
        if self._learner is not None and self._learner.deadline_ms is not None:
            ds.append(self._learner.deadline_ms)
        return min(ds) if ds else None

    def set_last_zxid(self, zxid: int) -> None:
        """The log grew (issue #5); the next election proposes this zxid."""
        assert zxid >= self.last_zxid, "the last logged zxid went backwards"
        self.last_zxid = zxid

    def status(self) -> PeerStatus:
        """A snapshot for the four-letter words and metrics."""
        if self.state == ServerState.LOOKING:
            server_state = "read-only" if self.read_only else None
        else:
            server_state = {ServerState.LEADING: "leader", ServerState.FOLLOWING: "follower",
                            ServerState.OBSERVING: "observer"}[self.state]
        peer_state = self.state.name.lower()
        if self.zab_state != ZabState.ELECTION:
            peer_state += " - " + self.zab_state.name.lower()
        quorum_state = {ServerState.LOOKING: "leaderelection", ServerState.LEADING: "leading",
                        ServerState.FOLLOWING: "following",
                        ServerState.OBSERVING: "observing"}[self.state]
        learners: tuple[int, ...] = ()
        if self._leader is not None:
            learners = tuple(sorted(ln.sid for ln in self._leader.learners.values()
                                    if ln.sid is not None))
        return PeerStatus(
            self.my_sid, self.state.name, self.zab_state.name, self.leader_sid, self.read_only,
            self.current_vote, self.election.logical_clock, self.accepted_epoch,
            self.current_epoch, self.last_zxid, server_state, peer_state, quorum_state,
            self.election_time_ms, self.looking_count, replace(self.election_time),
            replace(self.follower_sync_time), learners)

    # ------------------------------------------------------------------ plumbing

    def _flush(self) -> list[Action]:
        out, self._out = self._out, []
        return out

    def _emit_sends(self, sends: list[tuple[int, bytes]]) -> None:
        for sid, payload in sends:
            self._out.append(SendToPeer(sid, payload))

    def _role_changed(self) -> None:
        self._out.append(RoleChanged(self.state.name, self.zab_state.name, self.leader_sid,
                                     self.read_only))

    def _set_zab(self, z: ZabState) -> None:
        if z != self.zab_state:
            self.zab_state = z
            self._role_changed()

    def _write_epoch(self, kind: str, epoch: int) -> None:
        self._pending_writes.append((kind, epoch))
        self._out.append(WriteEpoch(kind, epoch))

    # ------------------------------------------------------------------ LOOKING

    def _enter_looking(self, now_ms: int, reason: str) -> None:
        if self.state != ServerState.LOOKING or reason != "start":
            log.warning("sid %d: %s -> LOOKING (%s)", self.my_sid, self.state.name, reason)
        self._end_role(reason)
        self.state = ServerState.LOOKING
        self.zab_state = ZabState.ELECTION
        self.leader_sid = None
        self.read_only = False
        self.looking_count += 1
        self._election_start_ms = now_ms
        self._ro_deadline_ms = (now_ms + max(2000, self.tick_ms)) if self.readonly_enabled \
            else None
        self._role_changed()
        sends = self.election.start_round(now_ms, last_zxid=self.last_zxid,
                                          current_epoch=self.current_epoch)
        self._emit_sends(sends)
        self._check_decision(now_ms)

    def _end_role(self, reason: str) -> None:
        lr = self._leader
        if lr is not None:
            for conn_id in sorted(lr.learners):
                self._out.append(CloseQuorumConn(conn_id, reason))
            self._leader = None
        ln = self._learner
        if ln is not None:
            if ln.phase != "retry":
                self._out.append(CloseQuorumConn(ln.conn_id, reason))
            self._learner = None

    def _check_decision(self, now_ms: int) -> None:
        d = self.election.decision
        if d is not None:
            self.election.decision = None
            self._enter_role(d, now_ms)

    def _on_peer_message(self, sid: int, payload: bytes, now_ms: int) -> None:
        sends = self.election.receive(sid, payload, now_ms, peer_state=self.state,
                                      current_vote=self.current_vote)
        self._emit_sends(sends)
        self._check_decision(now_ms)

    def _on_tick(self, now_ms: int) -> None:
        d = self.election.deadline_ms()
        if d is not None and now_ms >= d:
            self._emit_sends(self.election.on_timer(now_ms))
            self._check_decision(now_ms)
        if self._ro_deadline_ms is not None and now_ms >= self._ro_deadline_ms:
            self._ro_deadline_ms = None
            if self.state == ServerState.LOOKING:
                self.read_only = True
                log.info("sid %d: LOOKING for %d ms, serving read-only", self.my_sid,
                         max(2000, self.tick_ms))
                self._role_changed()
        if self._leader is not None:
            self._leader_tick(now_ms)
        if self._learner is not None:
            self._learner_tick(now_ms)

    # ------------------------------------------------------------------ role switch

    def _enter_role(self, d: Decision, now_ms: int) -> None:
        self.current_vote = d.vote
        self.state = d.state
        self.leader_sid = d.vote.id
        self.read_only = False
        self._ro_deadline_ms = None
        self.election_time_ms = now_ms - self._election_start_ms
        self.election_time.add(self.election_time_ms)
        log.info("sid %d: %s - LEADER ELECTION TOOK - %d MS", self.my_sid, d.state.name,
                 self.election_time_ms)
        self.zab_state = ZabState.DISCOVERY
        self._role_changed()
        if d.state == ServerState.LEADING:
            self._start_leading(now_ms)
        else:
            self._start_learning(now_ms)

    # ------------------------------------------------------------------ LEADING

    def _start_leading(self, now_ms: int) -> None:
        lr = self._leader = _LeaderRole()
        lr.epoch_deadline_ms = now_ms + self.init_limit_ms
        self._propose_epoch(lr, self.my_sid, self._accepted_epoch_asked())

    def _propose_epoch(self, lr: _LeaderRole, sid: int, last_accepted_epoch: int) -> None:
        """``Leader.getEpochToPropose`` for one caller (the leader or a learner)."""
        if not lr.waiting_for_new_epoch:
            return
        if last_accepted_epoch >= lr.epoch:
            lr.epoch = last_accepted_epoch + 1
        if sid in self.verifier.voting_members:
            lr.connecting.add(sid)
        if self.my_sid in lr.connecting and self.verifier.contains_quorum(lr.connecting):
            lr.waiting_for_new_epoch = False
            lr.epoch_deadline_ms = None
            log.info("sid %d: new epoch %d agreed with %s", self.my_sid, lr.epoch,
                     sorted(lr.connecting))
            self._write_epoch("accepted", lr.epoch)

    def _leader_epoch_durable(self, lr: _LeaderRole, kind: str, epoch: int,
                              now_ms: int) -> None:
        if kind == "accepted" and epoch == lr.epoch and not lr.epoch_durable:
            lr.epoch_durable = True
            for ln in self._learners_sorted(lr):
                if ln.phase == "epoch":
                    self._send_leaderinfo(lr, ln, now_ms)
            # The leader's own waitForEpochAck(myid, StateSummary(currentEpoch, lastZxid)).
            lr.ack_deadline_ms = now_ms + self.init_limit_ms
            if self.last_zxid != -1 and self.participant:
                lr.electing.add(self.my_sid)
            self._check_epoch_acks(lr)
        elif kind == "current" and epoch == lr.epoch and lr.election_finished:
            lr.current_durable = True
            self._set_zab(ZabState.SYNCHRONIZATION)
            self._check_leader_quorum(lr, now_ms)

    def _learners_sorted(self, lr: _LeaderRole) -> list[_Learner]:
        return [lr.learners[c] for c in sorted(lr.learners)]

    def _epoch_acked(self, lr: _LeaderRole, ln: _Learner, learner_epoch: int,
                     learner_zxid: int) -> None:
        """``Leader.waitForEpochAck`` for one learner's StateSummary."""
        ln.phase = "held"
        ln.deadline_ms = None
        assert ln.sid is not None
        if lr.election_finished:
            return  # waitForEpochAck returns at once for a late learner
        if learner_epoch != -1:
            ahead = (learner_epoch > self.current_epoch or (
                learner_epoch == self.current_epoch and learner_zxid > self.last_zxid))
            if ahead:
                self._close_learner(
                    lr, ln, f"Follower is ahead of the leader, leader summary: "
                            f"{self.current_epoch} (current epoch), {self.last_zxid} "
                            f"(last zxid)")
                return
            if learner_zxid != -1 and ln.sid in self.verifier.voting_members:
                ln.acked = True
                lr.electing.add(ln.sid)
        self._check_epoch_acks(lr)

    def _send_leaderinfo(self, lr: _LeaderRole, ln: _Learner, now_ms: int) -> None:
        if ln.protocol_version < LEARNER_PROTOCOL_VERSION:
            # A pre-ZAB-1.0 learner gets no LEADERINFO; its FOLLOWERINFO zxid stands in for
            # the ACKEPOCH (LearnerHandler.run "fake the message").
            self._epoch_acked(lr, ln, ln.info_zxid >> 32, ln.info_zxid)
            return
        pkt = QuorumPacket(PacketType.LEADERINFO, lr.epoch << 32,
                           encode_int_body(LEARNER_PROTOCOL_VERSION))
        self._out.append(SendQuorumPacket(ln.conn_id, encode_quorum_packet(pkt)))
        ln.phase = "ackepoch"
        ln.deadline_ms = now_ms + self.init_limit_ms

    def _check_epoch_acks(self, lr: _LeaderRole) -> None:
        if lr.election_finished:
            return
        if self.my_sid in lr.electing and self.verifier.contains_quorum(lr.electing):
            lr.election_finished = True
            lr.ack_deadline_ms = None
            log.info("sid %d: epoch %d acked by %s", self.my_sid, lr.epoch, sorted(lr.electing))
            self._write_epoch("current", lr.epoch)

    def _close_learner(self, lr: _LeaderRole, ln: _Learner, reason: str) -> None:
        log.warning("sid %d: closing learner %s (sid %s): %s", self.my_sid, ln.remote, ln.sid,
                    reason)
        self._out.append(CloseQuorumConn(ln.conn_id, reason))
        del lr.learners[ln.conn_id]

    def _on_learner_event(self, event: PeerEvent, now_ms: int) -> None:
        lr = self._leader
        if isinstance(event, LearnerConnected):
            if lr is None or self.state != ServerState.LEADING:
                self._out.append(CloseQuorumConn(event.conn_id, "not leading"))
                return
            lr.learners[event.conn_id] = _Learner(event.conn_id, event.remote,
                                                  deadline_ms=now_ms + self.init_limit_ms)
            return
        if lr is None:
            return
        if isinstance(event, LearnerDisconnected):
            ln = lr.learners.pop(event.conn_id, None)
            if ln is not None:
                log.info("sid %d: learner sid %s disconnected", self.my_sid, ln.sid)
                self._check_leader_quorum(lr, now_ms)
            return
        assert isinstance(event, LearnerPacketsReceived)
        for data in event.packets:
            ln2 = lr.learners.get(event.conn_id)
            if ln2 is None or self._leader is not lr:
                return
            try:
                pkt = decode_quorum_packet(data)
                self._learner_packet(lr, ln2, pkt, now_ms)
            except ProtocolError as e:
                self._close_learner(lr, ln2, f"bad packet: {e}")
                self._check_leader_quorum(lr, now_ms)

    def _learner_packet(self, lr: _LeaderRole, ln: _Learner, pkt: QuorumPacket,
                        now_ms: int) -> None:
        if ln.phase == "info":
            if pkt.type not in (PacketType.FOLLOWERINFO, PacketType.OBSERVERINFO):
                self._close_learner(lr, ln, f"first packet is type {pkt.type}, not "
                                            f"FOLLOWERINFO or OBSERVERINFO")
                return
            info = decode_learner_info(pkt.data)
            if info.config_version > self.verifier.version:
                self._close_learner(lr, ln, "Follower is ahead of the leader (has a later "
                                            "activated configuration)")
                return
            if info.sid not in self.verifier.servers:
                log.warning("sid %d: learner sid %d is not in the configuration",
                            self.my_sid, info.sid)
            ln.sid = info.sid
            ln.protocol_version = info.protocol_version
            ln.info_zxid = pkt.zxid
            ln.observer = pkt.type == PacketType.OBSERVERINFO
            ln.deadline_ms = None
            ln.phase = "epoch"
            self._propose_epoch(lr, info.sid, pkt.zxid >> 32)
            if lr.epoch_durable:
                self._send_leaderinfo(lr, ln, now_ms)
            return
        if ln.phase == "ackepoch":
            if pkt.type != PacketType.ACKEPOCH:
                self._close_learner(lr, ln, f"packet type {pkt.type} is not ACKEPOCH")
                self._check_leader_quorum(lr, now_ms)
                return
            learner_epoch = decode_int_body(pkt.data, "ACKEPOCH.currentEpoch")
            self._epoch_acked(lr, ln, learner_epoch, pkt.zxid)
            return
        # epoch / held: nothing is expected from the learner until sync (issue #5).
        log.debug("sid %d: ignoring packet type %d from learner sid %s", self.my_sid,
                  pkt.type, ln.sid)

    def _check_leader_quorum(self, lr: _LeaderRole, now_ms: int) -> None:
        """Once the epoch is agreed, step down when the connected, epoch-acked voters plus
        the leader no longer form a quorum."""
        if not lr.election_finished or self._leader is not lr:
            return
        sids = {self.my_sid} | {ln.sid for ln in lr.learners.values()
                                if ln.phase == "held" and ln.sid is not None}
        if not self.verifier.contains_quorum(sids):
            self._enter_looking(now_ms, f"lost the quorum of learners (connected: "
                                        f"{sorted(sids)})")

    def _leader_tick(self, now_ms: int) -> None:
        lr = self._leader
        assert lr is not None
        if lr.waiting_for_new_epoch and lr.epoch_deadline_ms is not None \
                and now_ms >= lr.epoch_deadline_ms:
            self._enter_looking(now_ms, "Timeout while waiting for epoch from quorum")
            return
        if not lr.election_finished and lr.ack_deadline_ms is not None \
                and now_ms >= lr.ack_deadline_ms:
            self._enter_looking(now_ms, "Timeout while waiting for epoch to be acked by quorum")
            return
        for ln in self._learners_sorted(lr):
            if ln.deadline_ms is not None and now_ms >= ln.deadline_ms:
                self._close_learner(lr, ln, "read timed out (initLimit)")
        if self._leader is lr:
            self._check_leader_quorum(lr, now_ms)

    # ------------------------------------------------------------------ FOLLOWING/OBSERVING

    def _start_learning(self, now_ms: int) -> None:
        server = self.verifier.servers.get(self.current_vote.id)
        if server is None:
            self._enter_looking(now_ms, f"Couldn't find the leader with id = "
                                        f"{self.current_vote.id}")
            return
        lrn = self._learner = _LearnerRole(server.sid, server.host, server.quorum_port,
                                           self._new_conn_id())
        lrn.connect_start_ms = now_ms
        lrn.deadline_ms = now_ms + self.connect_limit_ms
        self._out.append(ConnectToLeader(lrn.conn_id, lrn.host, lrn.port))

    def _new_conn_id(self) -> int:
        c = self._next_conn_id
        self._next_conn_id += 1
        return c

    def _learner_lost(self, now_ms: int, reason: str) -> None:
        self._enter_looking(now_ms, reason)

    def _on_leader_event(self, event: PeerEvent, now_ms: int) -> None:
        lrn = self._learner
        conn_id = getattr(event, "conn_id", None)
        if lrn is None or conn_id != lrn.conn_id:
            if isinstance(event, LeaderConnected):
                self._out.append(CloseQuorumConn(event.conn_id, "stale leader connection"))
            return
        if isinstance(event, LeaderConnectFailed):
            if lrn.phase != "connecting":
                return
            lrn.tries += 1
            remaining = self.connect_limit_ms - (now_ms - lrn.connect_start_ms)
            if remaining <= LEADER_CONNECT_RETRY_DELAY_MS or lrn.tries >= LEADER_CONNECT_TRIES:
                lrn.phase = "retry"  # the connection is already gone
                self._learner_lost(now_ms, f"Failed connect to leader {lrn.leader_sid} "
                                           f"({event.reason}), tries={lrn.tries}")
                return
            lrn.phase = "retry"
            lrn.deadline_ms = now_ms + LEADER_CONNECT_RETRY_DELAY_MS
            return
        if isinstance(event, LeaderConnected):
            if lrn.phase != "connecting":
                return
            kind = PacketType.FOLLOWERINFO if self.participant else PacketType.OBSERVERINFO
            info = LearnerInfo(self.my_sid, LEARNER_PROTOCOL_VERSION, self.verifier.version)
            pkt = QuorumPacket(kind, self._accepted_epoch_asked() << 32,
                               encode_learner_info(info))
            self._out.append(SendQuorumPacket(lrn.conn_id, encode_quorum_packet(pkt)))
            lrn.phase = "registering"
            lrn.deadline_ms = now_ms + self.init_limit_ms
            return
        if isinstance(event, LeaderDisconnected):
            lrn.phase = "retry"
            self._learner_lost(now_ms, "leader connection closed")
            return
        assert isinstance(event, LeaderPacketsReceived)
        for data in event.packets:
            if self._learner is not lrn:
                return
            try:
                self._leader_packet(lrn, decode_quorum_packet(data), now_ms)
            except ProtocolError as e:
                self._learner_lost(now_ms, f"bad packet from the leader: {e}")

    def _leader_packet(self, lrn: _LearnerRole, pkt: QuorumPacket, now_ms: int) -> None:
        if lrn.phase == "registering":
            if pkt.type != PacketType.LEADERINFO:
                self._learner_lost(now_ms, f"first packet from the leader is type {pkt.type}, "
                                           f"not LEADERINFO (pre-3.4 leaders are not supported)")
                return
            decode_int_body(pkt.data, "LEADERINFO.protocolVersion")
            new_epoch = pkt.zxid >> 32
            lrn.new_epoch = new_epoch
            lrn.deadline_ms = None
            asked = self._accepted_epoch_asked()
            if new_epoch > self.accepted_epoch and new_epoch >= asked:
                lrn.phase = "epoch_write"
                self._write_epoch("accepted", new_epoch)
            elif new_epoch == self.accepted_epoch == asked:
                self._send_ackepoch(lrn, -1)
            else:
                self._learner_lost(now_ms, f"Leaders epoch, {new_epoch} is less than accepted "
                                           f"epoch, {asked}")
            return
        if lrn.phase in ("held", "epoch_write") and pkt.type in _SYNC_PACKETS:
            # TODO(#5): DIFF/TRUNC/SNAP, NEWLEADER, UPTODATE and the broadcast phase.
            lrn.ignored += 1
            if lrn.ignored == 1:
                log.warning("sid %d: leader %d sent %s; synchronisation is not implemented "
                            "yet, holding", self.my_sid, lrn.leader_sid,
                            PacketType(pkt.type).name)
            return
        self._learner_lost(now_ms, f"unexpected packet type {pkt.type} from the leader "
                                   f"in phase {lrn.phase}")

    def _send_ackepoch(self, lrn: _LearnerRole, epoch_body: int) -> None:
        pkt = QuorumPacket(PacketType.ACKEPOCH, self.last_zxid, encode_int_body(epoch_body))
        self._out.append(SendQuorumPacket(lrn.conn_id, encode_quorum_packet(pkt)))
        lrn.phase = "held"
        self._set_zab(ZabState.SYNCHRONIZATION)

    def _learner_tick(self, now_ms: int) -> None:
        lrn = self._learner
        assert lrn is not None
        if lrn.deadline_ms is None or now_ms < lrn.deadline_ms:
            return
        if lrn.phase == "retry":
            remaining = self.connect_limit_ms - (now_ms - lrn.connect_start_ms)
            if remaining <= 0:
                self._learner_lost(now_ms, "connectToLeader exceeded on retries")
                return
            lrn.conn_id = self._new_conn_id()
            lrn.phase = "connecting"
            lrn.deadline_ms = lrn.connect_start_ms + self.connect_limit_ms
            self._out.append(ConnectToLeader(lrn.conn_id, lrn.host, lrn.port))
        elif lrn.phase == "connecting":
            self._learner_lost(now_ms, "connectToLeader exceeded (initLimit)")
        elif lrn.phase == "registering":
            self._learner_lost(now_ms, "read timed out waiting for LEADERINFO (initLimit)")

    # ------------------------------------------------------------------ durability

    def _accepted_epoch_asked(self) -> int:
        """acceptedEpoch counting the writes asked for and not yet durable.

        Apache writes acceptedEpoch synchronously, so a role never starts while one is in
        flight; here a slow write can outlive the role that asked for it. Epochs are decided
        against this value, so a later write never goes below an earlier one.
        """
        return max([self.accepted_epoch,
                    *(e for k, e in self._pending_writes if k == "accepted")])

    def _on_epoch_durable(self, kind: str, epoch: int, now_ms: int) -> None:
        assert (kind, epoch) in self._pending_writes, (
            f"EpochDurable({kind}, {epoch}) was never asked for")
        self._pending_writes.remove((kind, epoch))
        if kind == "accepted":
            assert epoch >= self.accepted_epoch, "acceptedEpoch went backwards"
            self.accepted_epoch = epoch
        else:
            assert epoch >= self.current_epoch, "currentEpoch went backwards"
            assert epoch <= self.accepted_epoch, "currentEpoch above acceptedEpoch"
            self.current_epoch = epoch
        if self._leader is not None:
            self._leader_epoch_durable(self._leader, kind, epoch, now_ms)
        elif self._learner is not None:
            lrn = self._learner
            if kind == "accepted" and lrn.phase == "epoch_write" and epoch == lrn.new_epoch:
                self._send_ackepoch(lrn, self.current_epoch)
