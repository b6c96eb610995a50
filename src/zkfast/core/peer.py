"""QuorumPeerCore: the quorum peer's role loop, sans-IO (Apache's ``QuorumPeer.run``).

Theory of operation
-------------------
States (``ServerState``) and, inside a role, ZAB phases (``ZabState``)::

    LOOKING/ELECTION --FLE decides--> LEADING|FOLLOWING|OBSERVING / DISCOVERY
    DISCOVERY --epoch agreed (LEADERINFO/ACKEPOCH quorum)--> SYNCHRONIZATION
    SYNCHRONIZATION --NEWLEADER acked by a quorum / UPTODATE--> BROADCAST
    any role --ends (timeout, lost leader/quorum, protocol violation)--> LOOKING/ELECTION

LOOKING runs ``core/election.py``'s FastLeaderElection; a ``Decision`` switches the role and
makes the decision our current vote (which the election keeps answering LOOKING peers with).
Every state or ZAB phase change emits ``RoleChanged``; LOOKING with ``readonlymode.enabled``
emits a second ``RoleChanged(read_only=True)`` after max(2 s, tickTime) (Apache starts its
ReadOnlyZooKeeperServer then).

Sync and broadcast need the replicated service: ``attach`` (called by ``core/node.py``'s
QuorumNode) hands the peer its ServerCore (``zab.ZabService``), the committed log and the
on-disk log. A peer without one holds at SYNCHRONIZATION as before: the leader sends nothing
after the epoch is agreed and a learner ignores sync packets until its connection ends.

LEADING (``Leader.lead``, ``LearnerHandler.run``):

1. ``getEpochToPropose``: the leader and each connecting learner's FOLLOWERINFO/OBSERVERINFO
   acceptedEpoch raise ``epoch`` to max+1; voters (by the config, not the packet type) are
   collected until the leader plus a quorum of voters are in, within initLimit*tickTime.
2. The leader persists acceptedEpoch = epoch (``WriteEpoch``/``EpochDurable``) before any
   LEADERINFO(epoch<<32, 0x10000) leaves; later learners get LEADERINFO at once.
3. ``waitForEpochAck``: ACKEPOCH from voters whose current epoch is not -1 and last zxid not -1
   count; a learner ahead of the leader (currentEpoch, lastZxid) is disconnected; a quorum
   including the leader within initLimit*tickTime, else LOOKING. Until the epoch is agreed the
   leader steps down as soon as its connected, epoch-acked voters no longer form a quorum.
4. The leader persists currentEpoch = epoch: SYNCHRONIZATION. Each epoch-acked learner (and
   each later one right after its ACKEPOCH) gets the ``zab.plan_sync`` payload (DIFF, TRUNC or
   TRUNC/DIFF with PROPOSAL+COMMIT pairs, or SNAP with the service's snapshot stream), then
   the outstanding proposals (participants only) and NEWLEADER(epoch<<32, config text); from
   then on it is sent every PROPOSAL/COMMIT (observers: INFORM) and the next packet it sends
   must be the NEWLEADER ACK. A quorum of NEWLEADER ACKs (the leader's own included) within
   initLimit*tickTime starts BROADCAST (service mode ``leader``, lastProposed = epoch<<32);
   else LOOKING. UPTODATE goes to every learner once both it acked and BROADCAST began.
5. BROADCAST: the service's AppendTxns are proposed (``proposed``); our own ack arrives with
   ``TxnsDurable``, learners' as ACK; ``zab.ProposalTracker`` commits strictly in zxid order on
   a quorum of voters: COMMIT to participants, INFORM to observers, ``service.commit``, the
   committed log. REQUEST goes to ``service.submit_learner_request`` (sync is answered here:
   SYNC at once with nothing outstanding, else when the last proposal at receipt commits),
   REVALIDATE to ``service.revalidate``, a PING reply's sessions to ``touch_sessions``. Every
   tickTime/2 each learner that was sent its sync gets PING(lastProposed); every tickTime the
   learners heard from within syncLimit ticks (new ones within initLimit+syncLimit) plus the
   leader must form a quorum, else LOOKING; a learner whose oldest unacked proposal is
   syncLimit ticks old, or that sent nothing for syncLimit ticks, is closed
   (``LearnerHandler.ping``'s SyncLimitCheck, its socket timeout).
6. A learner that connects again: its older connections are closed at FOLLOWERINFO, and its
   acks of the proposals its new sync sends again (above the sync's last zxid) are forgotten
   (``ProposalTracker.forget``): a TRUNC cut them from its log.

FOLLOWING/OBSERVING (``Learner.connectToLeader``, ``registerWithLeader``, ``syncWithLeader``,
``Follower.processPacket``, ``Observer.processPacket``):

1. ``ConnectToLeader`` to the leader's quorum port; a failed attempt is retried after 100 ms,
   at most 5 attempts and within initLimit*tickTime (connectToLearnerMasterLimit if set).
2. FOLLOWERINFO/OBSERVERINFO(acceptedEpoch<<32, LearnerInfo(sid, 0x10000, configVersion)).
3. LEADERINFO within initLimit*tickTime: a newer epoch is persisted as acceptedEpoch *before*
   ACKEPOCH(lastZxid, currentEpoch) is sent; an equal epoch is answered with -1; an older one
   is a protocol violation.
4. SYNCHRONIZATION: the first packet is DIFF (nothing to do), TRUNC(z) (``TruncateLog``; every
   later packet waits for ``LogTruncated``, whose tree the service loads) or SNAP (the next
   item is the stream: the service loads it, ``TakeSnapshot``). PROPOSAL is logged
   (``AppendTxns``) and kept pending; COMMIT applies the pending head (it must be that zxid);
   INFORM is logged and applied. NEWLEADER: once every txn logged so far is durable and the
   SNAP snapshot too, currentEpoch is persisted, then ACK(epoch<<32) leaves; no proposal is
   ACKed before it. UPTODATE: ACK(epoch<<32), service mode ``follower``/``observer``,
   BROADCAST, then ACKs for the durable proposals still uncommitted.
5. BROADCAST: PROPOSAL is logged and ACKed once durable (followers; observers ignore it and
   COMMIT, and log and apply INFORM), COMMIT applies the pending head, PING is answered with
   the sessions the service touched, REVALIDATE and SYNC go to the service. The read timeout
   is initLimit ticks until NEWLEADER, syncLimit ticks after.
6. Truncation (docs/zab.md §4 learner 1): a TRUNC waits for a pending SNAP snapshot; from it
   to ``LogTruncated`` ``TxnsDurable`` is ignored (it speaks of the log before the cut), a new
   role holds its ACKEPOCH (learner) or its own epoch proposal (leader), and a reload that
   ends below the TRUNC zxid ends the role. ``TxnsDurable`` is ignored from a SNAP to its
   ``SnapshotDurable`` as well.

``trace`` (``zab.ZabTrace``, None by default) is told each safety decision: acks sent, the
NEWLEADER ack, commits with the sids counted, sync plans, truncations (docs/zab.md §5).

Any protocol violation or lost connection ends the role: the peer closes its quorum
connections and returns to LOOKING with its epochs and log intact; the service goes ``off``
(it closes its clients and applies every txn it logged), a learner's logged but uncommitted
proposals are applied too, so the election proposes the last logged zxid. Broken invariants
of our own (an epoch going backwards, an EpochDurable nobody asked for, a commit out of order)
are AssertionErrors.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
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
    AppendTxns,
    CloseQuorumConn,
    ConnectToLeader,
    RoleChanged,
    SendQuorumPacket,
    SendToPeer,
    TakeSnapshot,
    TruncateLog,
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
    LogTruncated,
    PeerEvent,
    PeerLinkDown,
    PeerLinkUp,
    PeerMessageReceived,
    SnapshotDurable,
    Ticked,
    TxnsDurable,
)
from .zab import (
    CommittedLog,
    LearnerLog,
    ProposalTracker,
    SyncPlan,
    TxnHistory,
    ZabService,
    ZabTrace,
    decode_ping_body,
    decode_request_body,
    decode_revalidate_reply,
    decode_revalidate_request,
    encode_ping_body,
    encode_request_body,
    encode_revalidate_reply,
    encode_revalidate_request,
    plan_sync,
)

__all__ = ["QuorumPeerCore", "PeerStatus", "Summary", "LEARNER_CONN_ID_BASE"]

log = logging.getLogger("zkfast.peer")

Action = (SendToPeer | WriteEpoch | ConnectToLeader | SendQuorumPacket | CloseQuorumConn
          | RoleChanged | AppendTxns | TruncateLog | TakeSnapshot)

#: Conn ids the core picks for ``ConnectToLeader`` start here, apart from the runtime's ids
#: for accepted learner connections.
LEARNER_CONN_ID_BASE = 1 << 40
#: Learner.leaderConnectDelayDuringRetryMs and the attempt limit of connectToLeader.
LEADER_CONNECT_RETRY_DELAY_MS = 100
LEADER_CONNECT_TRIES = 5
#: Sync-phase packets that a learner without a service (``attach``) ignores while it holds.
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
    #: Leader only (LeaderZooKeeperServer's gauges): participants and observers that were
    #: sent their sync (Leader.forwardingFollowers, of them the non-voting ones, and
    #: observingLearners).
    synced_followers: int = 0
    synced_non_voting_followers: int = 0
    synced_observers: int = 0
    #: Leader.pendingSyncs: proposals with learner syncs waiting for their commit.
    pending_syncs: int = 0
    #: When this server started leading (ms, the peer's clock), or None.
    leader_start_ms: int | None = None
    #: Leader.proposalStats (BufferStats): -1 until the first proposal of this leadership.
    last_proposal_size: int = -1
    min_proposal_size: int = -1
    max_proposal_size: int = -1
    #: ServerMetrics SNAP_COUNT / DIFF_COUNT: learners this server synced by SNAP, and by
    #: DIFF or TRUNC, as leader, since it started.
    snap_count: int = 0
    diff_count: int = 0

    def mntr(self, now_ms: int | None = None) -> list[tuple[str, int | float | str]]:
        """The quorum lines of ``mntr``, with Apache's names (ServerMetrics, QuorumPeer,
        LeaderZooKeeperServer). ``now_ms`` (the peer's clock) gives ``zk_leader_uptime``."""
        out: list[tuple[str, int | float | str]] = [
            ("zk_peer_state", self.peer_state),
            ("zk_looking_count", self.looking_count),
            ("zk_snap_count", self.snap_count),
            ("zk_diff_count", self.diff_count),
        ]
        for name, s in (("election_time", self.election_time),
                        ("follower_sync_time", self.follower_sync_time)):
            out += [(f"zk_avg_{name}", round(s.avg, 4)), (f"zk_min_{name}", s.min),
                    (f"zk_max_{name}", s.max), (f"zk_cnt_{name}", s.count),
                    (f"zk_sum_{name}", s.total)]
        if self.state == "LEADING":
            uptime = 0
            if self.leader_start_ms is not None and now_ms is not None:
                uptime = max(0, now_ms - self.leader_start_ms)
            out += [("zk_learners", len(self.learners)),
                    ("zk_synced_followers", self.synced_followers),
                    ("zk_synced_non_voting_followers", self.synced_non_voting_followers),
                    ("zk_synced_observers", self.synced_observers),
                    ("zk_pending_syncs", self.pending_syncs),
                    ("zk_leader_uptime", uptime),
                    ("zk_last_proposal_size", self.last_proposal_size),
                    ("zk_max_proposal_size", self.max_proposal_size),
                    ("zk_min_proposal_size", self.min_proposal_size)]
        return out


@dataclass(slots=True)
class _Learner:
    """Leader side: one learner connection (a LearnerHandler)."""

    conn_id: int
    remote: str
    #: info -> epoch -> ackepoch -> held (epoch acked) -> sync (sync sent, NEWLEADER ACK
    #: next) -> synced (NEWLEADER acked, UPTODATE waits for BROADCAST) -> active
    phase: str = "info"
    sid: int | None = None
    observer: bool = False
    deadline_ms: int | None = None
    acked: bool = False
    protocol_version: int = LEARNER_PROTOCOL_VERSION
    info_zxid: int = 0
    #: The ACKEPOCH zxid: the learner's last logged zxid.
    peer_last: int = -1
    #: Sent its sync: gets PROPOSAL/COMMIT (or INFORM) and PINGs.
    forwarding: bool = False
    #: LearnerHandler.tickOfNextAckDeadline, in ms: synced() while now <= this.
    ack_deadline_ms: int = 0
    #: SyncLimitCheck: (zxid, sent at) of proposals sent after the NEWLEADER ACK, unacked.
    unacked: deque[tuple[int, int]] = field(default_factory=deque)
    #: Packets that arrived after the NEWLEADER ACK, before BROADCAST (waitForStartup).
    held: list[QuorumPacket] = field(default_factory=list)
    #: Its sync was a SNAP (the "concurrent snapshot sync" count of the leader's log line).
    snap_sync: bool = False


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
    #: The leader itself joins getEpochToPropose only after an in-flight truncation.
    self_waiting: bool = False
    # ---- sync and broadcast (only with a service attached)
    tracker: ProposalTracker | None = None
    newleader_acks: set[int] = field(default_factory=set)
    newleader_deadline_ms: int | None = None
    broadcasting: bool = False
    next_ping_ms: int | None = None
    tick_skip: bool = True
    #: Leader.pendingSyncs: last proposed zxid at receipt -> learner conn ids.
    pending_syncs: dict[int, list[int]] = field(default_factory=dict)
    start_ms: int = 0
    #: Leader.proposalStats: the last, smallest and largest proposal (-1: none yet).
    last_proposal_size: int = -1
    min_proposal_size: int = -1
    max_proposal_size: int = -1


@dataclass(slots=True)
class _LearnerRole:
    leader_sid: int
    host: str
    port: int
    conn_id: int
    #: connecting, retry, registering, epoch_write, held (no service), sync (first packet
    #: next), syncing, newleader (waiting for durability), synced (ACKed NEWLEADER),
    #: broadcast
    phase: str = "connecting"
    tries: int = 0
    connect_start_ms: int = 0
    deadline_ms: int | None = None
    new_epoch: int = -1
    ignored: int = 0
    log: LearnerLog | None = None
    #: The next item of the leader's stream is the SNAP snapshot.
    expect_stream: bool = False
    snap_zxid: int | None = None
    snapshot_pending: bool = False
    #: A TruncateLog is under way: raw items wait here until LogTruncated.
    truncating: bool = False
    buffered: list[bytes] = field(default_factory=list)
    newleader_zxid: int = 0
    newleader_need: int = 0
    sync_start_ms: int = 0
    #: The ACKEPOCH body held back while an earlier TRUNC is still cutting the log.
    ackepoch_body: int | None = None
    #: The TRUNC target of this sync.
    trunc_zxid: int = -1


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
        self.sync_limit_ms = q.sync_limit_ticks * config.tick_ms
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
        #: ServerMetrics SNAP_COUNT / DIFF_COUNT (learners synced as leader).
        self.snap_count = 0
        self.diff_count = 0
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
        # ---- ZAB sync and broadcast (``attach``)
        self.service: ZabService | None = None
        self.committed = CommittedLog(q.commit_log_count)
        self.history: TxnHistory | None = None
        self.snapshot_bytes = 0
        #: Set by the node: moves the service's pending actions out (its AppendTxns become
        #: proposals) before a learner's sync is ordered behind them.
        self.pull_service: Callable[[], None] | None = None
        #: The service mode last set ("off" until a role reaches BROADCAST).
        self.service_mode = "off"
        self.durable_zxid = last_zxid
        #: The last txn handed to the log (AppendTxns, held ones after a SNAP included), or
        #: the SNAP snapshot's zxid: ``last_zxid`` may be an epoch start with no txn.
        self.logged_zxid = last_zxid
        #: A SNAP snapshot not yet durable, and the txns to log once it is (the log has a
        #: hole until then, docs/zab.md §2); kept across a role end.
        self._snap_wait: int | None = None
        self._deferred: list[tuple[int, bytes]] = []
        #: A TRUNC's target from its receipt until ``LogTruncated`` (kept across a role end):
        #: no new role syncs or leads on a log that is about to change.
        self._trunc_target: int | None = None
        #: The ``TruncateLog`` left (it waits for a pending SNAP snapshot, docs/zab.md §2).
        self._trunc_emitted = False
        #: The safety-decision observer (``zab.ZabTrace``; the simulator's checker).
        self.trace: ZabTrace | None = None

    # ------------------------------------------------------------------ public face

    @property
    def verifier(self) -> QuorumVerifier:
        """The current quorum config (the election may adopt a newer version of it)."""
        return self.election.verifier

    def attach(self, service: ZabService, *, committed: CommittedLog,
               history: TxnHistory | None = None, snapshot_bytes: int = 0,
               pull_service: Callable[[], None] | None = None) -> None:
        """Give the peer its replicated service (QuorumNode does this before ``start``)."""
        assert not self._started, "attach() after start()"
        self.service = service
        self.committed = committed
        self.history = history
        self.snapshot_bytes = snapshot_bytes
        self.pull_service = pull_service

    def take_actions(self) -> list[Action]:
        """The actions produced outside ``step`` (by ``proposed``, ``forward_request``, ...)."""
        return self._flush()

    def start(self, now_ms: int) -> list[Action]:
        """Begin the first election; returns the first actions."""
        assert not self._started, "start() called twice"
        self._started = True
        self._enter_looking(now_ms, "start")
        return self._flush()

    def step(self, event: PeerEvent | TxnsDurable | LogTruncated | SnapshotDurable,
             now_ms: int) -> list[Action]:
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
        elif t is TxnsDurable:
            assert isinstance(event, TxnsDurable)
            self._on_txns_durable(event.zxid, now_ms)
        elif t is LogTruncated:
            assert isinstance(event, LogTruncated)
            self._on_log_truncated(event, now_ms)
        elif t is SnapshotDurable:
            assert isinstance(event, SnapshotDurable)
            self._on_snapshot_durable(event.zxid, now_ms)
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
            for x in (lr.epoch_deadline_ms, lr.ack_deadline_ms, lr.newleader_deadline_ms,
                      lr.next_ping_ms):
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
        lr = self._leader
        learners: tuple[int, ...] = ()
        if lr is not None:
            learners = tuple(sorted(ln.sid for ln in lr.learners.values()
                                    if ln.sid is not None))
        st = PeerStatus(
            self.my_sid, self.state.name, self.zab_state.name, self.leader_sid, self.read_only,
            self.current_vote, self.election.logical_clock, self.accepted_epoch,
            self.current_epoch, self.last_zxid, server_state, peer_state, quorum_state,
            self.election_time_ms, self.looking_count, replace(self.election_time),
            replace(self.follower_sync_time), learners, snap_count=self.snap_count,
            diff_count=self.diff_count)
        if lr is None:
            return st
        voting = self.verifier.voting_members
        followers = [ln for ln in lr.learners.values() if ln.forwarding and not ln.observer]
        return replace(
            st, synced_followers=len(followers),
            synced_non_voting_followers=sum(1 for ln in followers if ln.sid not in voting),
            synced_observers=sum(1 for ln in lr.learners.values()
                                 if ln.forwarding and ln.observer),
            pending_syncs=len(lr.pending_syncs), leader_start_ms=lr.start_ms,
            last_proposal_size=lr.last_proposal_size, min_proposal_size=lr.min_proposal_size,
            max_proposal_size=lr.max_proposal_size)

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
        self._end_role(reason, now_ms)
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

    def _end_role(self, reason: str, now_ms: int) -> None:
        lr = self._leader
        if lr is not None:
            for conn_id in sorted(lr.learners):
                self._out.append(CloseQuorumConn(conn_id, reason))
            self._leader = None
            if lr.tracker is not None:
                # ZooKeeperServer.shutdown -> fastForwardDataBase: the service applies what
                # it logged; the committed log gets it too (its playback listener).
                for zxid, data in lr.tracker.after(lr.tracker.last_committed):
                    self.committed.append(zxid, data)
        ln = self._learner
        if ln is not None:
            if ln.phase != "retry":
                self._out.append(CloseQuorumConn(ln.conn_id, reason))
            self._learner = None
        if self.service is not None and self.service_mode != "off":
            self.service_mode = "off"
            self.service.set_mode("off", self.current_epoch, now_ms=now_ms)
        if ln is not None and ln.log is not None and not ln.truncating \
                and self.service is not None:
            # The learner's logged, uncommitted proposals are applied as well, so the tree
            # holds every logged txn and the election proposes the last one.
            while ln.log.pending:
                zxid, data = ln.log.pending.popleft()
                self.service.apply_committed(zxid, data, now_ms=now_ms)
                self.committed.append(zxid, data)

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
        lr = self._leader = _LeaderRole(start_ms=now_ms)
        lr.epoch_deadline_ms = now_ms + self.init_limit_ms
        if self._trunc_target is None:
            self._propose_epoch(lr, self.my_sid, self._accepted_epoch_asked())
        else:
            # A TRUNC of the last role is still cutting the log: our history is not
            # settled, so we join our own epoch only once it is (``_on_log_truncated``).
            lr.self_waiting = True

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
            if self.service is None:
                self._check_leader_quorum(lr, now_ms)
                return
            # Leader.lead: lastProposed = lastCommitted = epoch<<32; waitForNewLeaderAck.
            lr.tracker = ProposalTracker(self.verifier, last_committed=lr.epoch << 32)
            if self.trace is not None:
                lr.tracker.committed_acks = []
            lr.newleader_deadline_ms = now_ms + self.init_limit_ms
            self._self_newleader_ack(lr)
            for ln in self._learners_sorted(lr):
                if ln.phase == "held":
                    self._sync_learner(lr, ln, now_ms)
            if self._leader is lr:
                self._check_newleader_quorum(lr, now_ms)

    def _self_newleader_ack(self, lr: _LeaderRole) -> None:
        """The leader's own NEWLEADER ack: its history must be durable too. Apache's leader
        loaded it from disk; here the last role may have logged txns (or a SNAP snapshot)
        whose fsync is still running."""
        if self.durable_zxid >= self.logged_zxid and self._snap_wait is None \
                and self.participant:
            lr.newleader_acks.add(self.my_sid)

    def _learners_sorted(self, lr: _LeaderRole) -> list[_Learner]:
        return [lr.learners[c] for c in sorted(lr.learners)]

    def _epoch_acked(self, lr: _LeaderRole, ln: _Learner, learner_epoch: int,
                     learner_zxid: int, now_ms: int) -> None:
        """``Leader.waitForEpochAck`` for one learner's StateSummary."""
        ln.phase = "held"
        ln.deadline_ms = None
        ln.peer_last = learner_zxid
        assert ln.sid is not None
        if lr.election_finished:
            # waitForEpochAck returns at once for a late learner: on to syncFollower.
            if lr.current_durable and lr.tracker is not None:
                self._sync_learner(lr, ln, now_ms)
            return
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
            self._epoch_acked(lr, ln, ln.info_zxid >> 32, ln.info_zxid, now_ms)
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

    def _on_learner_event(self, event: object, now_ms: int) -> None:
        lr = self._leader
        if isinstance(event, LearnerConnected):
            if lr is None or self.state != ServerState.LEADING:
                self._out.append(CloseQuorumConn(event.conn_id, "not leading"))
                return
            lr.learners[event.conn_id] = _Learner(
                event.conn_id, event.remote, deadline_ms=now_ms + self.init_limit_ms,
                ack_deadline_ms=now_ms + self.init_limit_ms + self.sync_limit_ms)
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
            for other in self._learners_sorted(lr):
                if other is not ln and other.sid == info.sid:
                    # The server connected again: the older connection is dead on its side,
                    # and nothing that still arrives on it may count (an ACK from before a
                    # TRUNC of the new sync).
                    self._close_learner(lr, other, "a newer connection from the same server")
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
            self._epoch_acked(lr, ln, learner_epoch, pkt.zxid, now_ms)
            return
        if ln.phase in ("sync", "synced", "active"):
            self._learner_zab_packet(lr, ln, pkt, now_ms)
            return
        # epoch / held: nothing is expected from the learner before its sync.
        log.debug("sid %d: ignoring packet type %d from learner sid %s", self.my_sid,
                  pkt.type, ln.sid)

    def _check_leader_quorum(self, lr: _LeaderRole, now_ms: int) -> None:
        """Once the epoch is agreed, step down when the connected, epoch-acked voters plus
        the leader no longer form a quorum (until sync starts; then the NEWLEADER deadline
        and the synced-learner check of BROADCAST decide)."""
        if not lr.election_finished or self._leader is not lr or lr.tracker is not None:
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
        if not lr.broadcasting and lr.newleader_deadline_ms is not None \
                and now_ms >= lr.newleader_deadline_ms:
            self._enter_looking(now_ms, f"Waiting for a quorum of followers, only synced with "
                                        f"sids: [ {sorted(lr.newleader_acks)} ]")
            return
        for ln in self._learners_sorted(lr):
            if ln.deadline_ms is not None and now_ms >= ln.deadline_ms:
                limit = "syncLimit" if ln.phase in ("synced", "active") else "initLimit"
                self._close_learner(lr, ln, f"read timed out ({limit})")
        if self._leader is lr:
            self._check_leader_quorum(lr, now_ms)
        if self._leader is lr and lr.broadcasting and lr.next_ping_ms is not None \
                and now_ms >= lr.next_ping_ms:
            self._leader_half_tick(lr, now_ms)

    # ------------------------------------------------------------------ LEADING: sync

    def _send(self, conn_id: int, *pkts: QuorumPacket) -> None:
        self._out.append(SendQuorumPacket(conn_id, b"".join(encode_quorum_packet(p)
                                                             for p in pkts)))

    def _sync_learner(self, lr: _LeaderRole, ln: _Learner, now_ms: int) -> None:
        """``LearnerHandler.syncFollower`` + ``startForwarding`` + NEWLEADER for one learner."""
        service = self.service
        tracker = lr.tracker
        assert service is not None and tracker is not None
        q = self.quorum
        committed = self.committed
        log.info("Synchronizing with Learner sid: %s maxCommittedLog=0x%x minCommittedLog=0x%x "
                 "lastProcessedZxid=0x%x peerLastZxid=0x%x", ln.sid,
                 committed.max_zxid or 0, committed.min_zxid or 0,
                 service.last_processed_zxid, ln.peer_last)
        plan = plan_sync(ln.peer_last, committed=self.committed,
                         last_processed=service.last_processed_zxid, history=self.history,
                         force_snap=q.force_snapshot_sync,
                         snapshot_size_factor=q.snapshot_size_factor,
                         snapshot_bytes=self.snapshot_bytes)
        self._log_sync_plan(ln, plan)
        if self.trace is not None:
            self.trace("sync_plan", sid=ln.sid, kind=plan.kind, zxid=plan.zxid,
                       peer_last=ln.peer_last, last_zxid=plan.last_zxid)
        if ln.sid is not None:
            # Acks this server gave on an earlier connection no longer hold: the sync cuts
            # its log back to plan.last_zxid (TRUNC) and the proposals above are sent again.
            tracker.forget(ln.sid, plan.last_zxid)
            if not lr.broadcasting and ln.sid != self.my_sid:
                lr.newleader_acks.discard(ln.sid)
        if plan.kind == "SNAP":
            # The SNAP packet, then the snapshot stream on the same connection, unframed.
            self._send(ln.conn_id, QuorumPacket(PacketType.SNAP, plan.zxid))
            self._out.append(SendQuorumPacket(ln.conn_id, service.sync_snapshot_body()))
            pkts: list[QuorumPacket] = []
            ln.snap_sync = True
            self.snap_count += 1
            last_proposed = max([plan.last_zxid] + [z for z, _ in tracker.after(plan.last_zxid)])
            log.info("Sending snapshot last zxid of peer is 0x%x, zxid of leader is 0x%x, "
                     "send zxid of db as 0x%x, %d concurrent snapshot sync, "
                     "snapshot sync was %s from throttle", ln.peer_last, last_proposed,
                     plan.zxid, 1 + sum(1 for o in lr.learners.values()
                                        if o is not ln and o.snap_sync and o.phase == "sync"),
                     "not exempt" if ln.observer else "exempt")
        else:
            kind = PacketType.DIFF if plan.kind == "DIFF" else PacketType.TRUNC
            self.diff_count += 1
            pkts = [QuorumPacket(kind, plan.zxid)]
            for zxid, data in plan.txns:
                pkts.append(QuorumPacket(PacketType.PROPOSAL, zxid, data))
                pkts.append(QuorumPacket(PacketType.COMMIT, zxid))
        # startForwarding: every commit so far is in the committed log (nothing is waiting
        # to be applied here), so only the outstanding proposals follow, to participants.
        if not ln.observer:
            for zxid, data in tracker.after(plan.last_zxid):
                pkts.append(QuorumPacket(PacketType.PROPOSAL, zxid, data))
        pkts.append(QuorumPacket(PacketType.NEWLEADER, lr.epoch << 32,
                                 self.verifier.to_config_text().encode()))
        self._send(ln.conn_id, *pkts)
        ln.forwarding = True
        ln.phase = "sync"
        ln.deadline_ms = now_ms + self.init_limit_ms

    @staticmethod
    def _log_sync_plan(ln: _Learner, plan: SyncPlan) -> None:
        """The lines ``LearnerHandler.syncFollower`` logs for its decision (same words and
        levels, so the same greps find them on either server)."""
        src, sid = plan.source, ln.sid
        if src == "force":
            log.warning("Forcing snapshot sync - should not see this in production")
        elif src == "in_sync":
            log.info("Sending DIFF zxid=0x%x for peer sid: %s", plan.zxid, sid)
        elif src == "trunc":
            log.debug("Sending TRUNC to follower zxidToSend=0x%x for peer sid:%s", plan.zxid, sid)
        elif src in ("committed_log", "txnlog"):
            if src == "committed_log":
                log.info("Using committedLog for peer sid: %s", sid)
            else:
                log.info("Use txnlog and committedLog for peer sid: %s", sid)
            if plan.kind in ("DIFF", "TRUNC"):
                log.info("Sending %s zxid=0x%x  for peer sid: %s", plan.kind, plan.zxid, sid)

    def _check_newleader_quorum(self, lr: _LeaderRole, now_ms: int) -> None:
        # The leader is always one of the quorum (Apache adds its own ack first): its own
        # history must be durable before it serves and logs new txns behind it.
        if lr.broadcasting or self.my_sid not in lr.newleader_acks \
                or not self.verifier.contains_quorum(lr.newleader_acks):
            return
        # Leader.startZkServer: lastCommitted = lastProposed = epoch<<32; the service starts.
        log.info("sid %d: have quorum of supporters, sids: %s; starting up", self.my_sid,
                 sorted(lr.newleader_acks))
        lr.broadcasting = True
        lr.newleader_deadline_ms = None
        self.set_last_zxid(max(self.last_zxid, lr.epoch << 32))
        assert self.service is not None
        self.service_mode = "leader"
        self.service.set_mode("leader", lr.epoch, now_ms=now_ms)
        self.current_vote = replace(self.current_vote, peer_epoch=lr.epoch)  # ZOOKEEPER-1732
        self._set_zab(ZabState.BROADCAST)
        lr.next_ping_ms = now_ms + self.tick_ms // 2
        lr.tick_skip = True
        for ln in self._learners_sorted(lr):
            if ln.phase == "synced":
                self._send_uptodate(lr, ln, now_ms)

    def _send_uptodate(self, lr: _LeaderRole, ln: _Learner, now_ms: int) -> None:
        self._send(ln.conn_id, QuorumPacket(PacketType.UPTODATE, -1))
        ln.phase = "active"
        ln.deadline_ms = now_ms + self.sync_limit_ms
        held, ln.held = ln.held, []
        for pkt in held:
            if self._leader is not lr or lr.learners.get(ln.conn_id) is not ln:
                return
            self._learner_zab_packet(lr, ln, pkt, now_ms)

    # ------------------------------------------------------------------ LEADING: broadcast

    def _learner_zab_packet(self, lr: _LeaderRole, ln: _Learner, pkt: QuorumPacket,
                            now_ms: int) -> None:
        """What LearnerHandler.run reads after the learner's sync was sent."""
        if ln.phase == "sync":
            if pkt.type != PacketType.ACK:
                self._close_learner(lr, ln, f"Next packet was supposed to be an ACK, but "
                                            f"received packet type {pkt.type}")
                return
            ln.phase = "synced"
            ln.deadline_ms = None
            ln.ack_deadline_ms = now_ms + self.sync_limit_ms
            if pkt.zxid != lr.epoch << 32:
                log.error("sid %d: NEWLEADER ACK from sid %s is from a different epoch - "
                          "current 0x%x received 0x%x", self.my_sid, ln.sid, lr.epoch << 32,
                          pkt.zxid)
            elif ln.sid is not None and ln.sid in self.verifier.voting_members:
                lr.newleader_acks.add(ln.sid)
            if lr.broadcasting:
                self._send_uptodate(lr, ln, now_ms)
            else:
                self._check_newleader_quorum(lr, now_ms)
            return
        if ln.phase == "synced":
            ln.held.append(pkt)  # read only after waitForStartup
            return
        ln.deadline_ms = now_ms + self.sync_limit_ms
        ln.ack_deadline_ms = now_ms + self.sync_limit_ms
        service = self.service
        tracker = lr.tracker
        assert service is not None and tracker is not None and ln.sid is not None
        t = pkt.type
        if t == PacketType.ACK:
            while ln.unacked and ln.unacked[0][0] <= pkt.zxid:
                ln.unacked.popleft()
            self._commit(lr, tracker.ack(ln.sid, pkt.zxid), now_ms)
        elif t == PacketType.PING:
            service.touch_sessions(decode_ping_body(pkt.data), now_ms=now_ms)
        elif t == PacketType.REVALIDATE:
            session_id, timeout = decode_revalidate_request(pkt.data)
            valid = service.revalidate(session_id, timeout, owner=ln.sid, now_ms=now_ms)
            self._send(ln.conn_id, QuorumPacket(PacketType.REVALIDATE, pkt.zxid,
                                                encode_revalidate_reply(session_id, valid)))
        elif t == PacketType.REQUEST:
            session_id, cxid, op, body = decode_request_body(pkt.data)
            if op == 9:
                self._learner_sync(lr, ln)
            else:
                service.submit_learner_request(session_id, cxid, op, body,
                                               list(pkt.authinfo or ()), owner=ln.sid,
                                               now_ms=now_ms)
        else:
            log.warning("sid %d: unexpected quorum packet type %d from learner sid %s",
                        self.my_sid, t, ln.sid)

    def _learner_sync(self, lr: _LeaderRole, ln: _Learner) -> None:
        """``Leader.processSync``, after every earlier request was proposed."""
        if self.pull_service is not None:
            self.pull_service()
        tracker = lr.tracker
        assert tracker is not None
        if not tracker.outstanding:
            self._send(ln.conn_id, QuorumPacket(PacketType.SYNC, 0))
        else:
            lr.pending_syncs.setdefault(tracker.last_proposed, []).append(ln.conn_id)

    def proposed(self, txns: list[tuple[int, bytes]], now_ms: int) -> None:
        """The service logged these txns (its AppendTxns): propose them (``Leader.propose``)."""
        lr = self._leader
        assert lr is not None and lr.broadcasting and lr.tracker is not None, (
            "the service appended txns while the peer is not leading in BROADCAST")
        tracker = lr.tracker
        targets = [ln for ln in self._learners_sorted(lr) if ln.forwarding and not ln.observer]
        bufs: dict[int, list[QuorumPacket]] = {ln.conn_id: [] for ln in targets}
        for zxid, data in txns:
            tracker.propose(zxid, data)
            size = len(data)
            lr.last_proposal_size = size
            lr.min_proposal_size = size if lr.min_proposal_size < 0 else min(
                lr.min_proposal_size, size)
            lr.max_proposal_size = max(lr.max_proposal_size, size)
            pkt = QuorumPacket(PacketType.PROPOSAL, zxid, data)
            for ln in targets:
                bufs[ln.conn_id].append(pkt)
                if ln.phase in ("synced", "active"):
                    ln.unacked.append((zxid, now_ms))
        for ln in targets:
            self._send(ln.conn_id, *bufs[ln.conn_id])
        if txns:
            self.set_last_zxid(max(self.last_zxid, txns[-1][0]))
            self.logged_zxid = max(self.logged_zxid, txns[-1][0])
        # The leader acks its own proposal once it is durable; TxnsDurable may already
        # cover it (a log that answered before the proposal was counted).
        self._commit(lr, tracker.ack_upto(self.my_sid, self.durable_zxid), now_ms)

    def _commit(self, lr: _LeaderRole, ready: list[tuple[int, bytes]], now_ms: int) -> None:
        """``Leader.tryToCommit`` for each proposal that has its quorum, in zxid order."""
        if not ready:
            return
        service = self.service
        assert service is not None
        trace = self.trace
        if trace is not None:
            acks = lr.tracker.committed_acks if lr.tracker is not None else None
            voters = frozenset(self.verifier.voting_members)
            for zxid, who in acks or ():
                trace("commit", zxid=zxid, acks=who, voters=voters)
            if acks:
                acks.clear()
        out: dict[int, list[QuorumPacket]] = {}
        learners = [ln for ln in self._learners_sorted(lr) if ln.forwarding]
        for zxid, data in ready:
            commit = QuorumPacket(PacketType.COMMIT, zxid)
            inform = QuorumPacket(PacketType.INFORM, zxid, data)
            for ln in learners:
                out.setdefault(ln.conn_id, []).append(inform if ln.observer else commit)
            self.committed.append(zxid, data)
            service.commit(zxid, now_ms=now_ms)
            for conn_id in lr.pending_syncs.pop(zxid, ()):
                out.setdefault(conn_id, []).append(QuorumPacket(PacketType.SYNC, 0))
        for conn_id in sorted(out):
            if conn_id in lr.learners:
                self._send(conn_id, *out[conn_id])

    def _leader_half_tick(self, lr: _LeaderRole, now_ms: int) -> None:
        """One pass of Leader.lead's loop: every tickTime/2 pings, every tickTime the
        synced-learner quorum check."""
        lr.next_ping_ms = now_ms + self.tick_ms // 2
        if not lr.tick_skip:
            synced = {self.my_sid} | {ln.sid for ln in lr.learners.values()
                                      if ln.sid is not None and now_ms <= ln.ack_deadline_ms}
            if not self.verifier.contains_quorum(synced):
                self._enter_looking(now_ms, f"Not sufficient followers synced, only synced "
                                            f"with sids: [ {sorted(synced)} ]")
                return
        lr.tick_skip = not lr.tick_skip
        tracker = lr.tracker
        assert tracker is not None
        ping = QuorumPacket(PacketType.PING, tracker.last_proposed)
        for ln in self._learners_sorted(lr):
            if not ln.forwarding:
                continue
            if ln.unacked and now_ms - ln.unacked[0][1] >= self.sync_limit_ms:
                self._close_learner(lr, ln, "Closing connection to peer due to transaction "
                                            "timeout.")
                continue
            self._send(ln.conn_id, ping)

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

    def _on_leader_event(self, event: object, now_ms: int) -> None:
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
        self._leader_items(lrn, event.packets, now_ms)

    def _leader_items(self, lrn: _LearnerRole, items: list[bytes], now_ms: int) -> None:
        for i, data in enumerate(items):
            if self._learner is not lrn:
                return
            if lrn.truncating:
                lrn.buffered.extend(items[i:])
                return
            try:
                if lrn.expect_stream:
                    self._snap_stream(lrn, data, now_ms)
                else:
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
                self._send_ackepoch(lrn, -1, now_ms)
            else:
                self._learner_lost(now_ms, f"Leaders epoch, {new_epoch} is less than accepted "
                                           f"epoch, {asked}")
            return
        if lrn.phase in ("sync", "syncing", "newleader", "newleader_epoch", "synced",
                         "broadcast"):
            lrn.deadline_ms = now_ms + (self.init_limit_ms if lrn.phase in ("sync", "syncing")
                                        else self.sync_limit_ms)
            if lrn.phase == "sync":
                self._sync_first(lrn, pkt, now_ms)
            elif lrn.phase == "broadcast":
                self._broadcast_packet(lrn, pkt, now_ms)
            else:
                self._sync_packet(lrn, pkt, now_ms)
            return
        if lrn.phase in ("held", "epoch_write") and pkt.type in _SYNC_PACKETS:
            # A peer without a service holds here (see ``attach``).
            lrn.ignored += 1
            if lrn.ignored == 1:
                log.warning("sid %d: leader %d sent %s; synchronisation is not implemented "
                            "yet, holding", self.my_sid, lrn.leader_sid,
                            PacketType(pkt.type).name)
            return
        self._learner_lost(now_ms, f"unexpected packet type {pkt.type} from the leader "
                                   f"in phase {lrn.phase}")

    def _send_ackepoch(self, lrn: _LearnerRole, epoch_body: int, now_ms: int) -> None:
        if self._trunc_target is not None:
            # A TRUNC of an earlier role is still cutting the log: our last zxid is not
            # known yet. ACKEPOCH leaves once it is (``_on_log_truncated``).
            lrn.phase = "ackepoch_wait"
            lrn.ackepoch_body = epoch_body
            lrn.deadline_ms = now_ms + self.init_limit_ms
            return
        lrn.ackepoch_body = None
        pkt = QuorumPacket(PacketType.ACKEPOCH, self.last_zxid, encode_int_body(epoch_body))
        self._out.append(SendQuorumPacket(lrn.conn_id, encode_quorum_packet(pkt)))
        if self.service is None:
            lrn.phase = "held"
        else:
            lrn.phase = "sync"
            lrn.deadline_ms = now_ms + self.init_limit_ms
            lrn.sync_start_ms = now_ms
            lrn.log = LearnerLog(self.last_zxid)
            lrn.log.durable_zxid = min(self.durable_zxid, self.last_zxid)
        self._set_zab(ZabState.SYNCHRONIZATION)

    # ------------------------------------------------------------------ learner: sync

    def _violation(self, now_ms: int, reason: str) -> None:
        self._learner_lost(now_ms, f"protocol violation: {reason}")

    def _sync_first(self, lrn: _LearnerRole, pkt: QuorumPacket, now_ms: int) -> None:
        """The first packet of ``syncWithLeader``: DIFF, TRUNC or SNAP."""
        assert self.service is not None and lrn.log is not None
        t = pkt.type
        lrn.phase = "syncing"
        if t == PacketType.DIFF:
            log.info("Getting a diff from the leader 0x%x", pkt.zxid)
        elif t == PacketType.SNAP:
            log.info("Getting a snapshot from leader 0x%x", pkt.zxid)
            lrn.expect_stream = True
            lrn.snap_zxid = pkt.zxid
        elif t == PacketType.TRUNC:
            log.warning("Truncating log to get in sync with the leader 0x%x", pkt.zxid)
            if self.trace is not None:
                self.trace("truncate", zxid=pkt.zxid, last=self.last_zxid)
            lrn.truncating = True
            lrn.trunc_zxid = pkt.zxid
            lrn.log = LearnerLog(pkt.zxid)
            self._trunc_target = pkt.zxid
            self._trunc_emitted = False
            if self._snap_wait is None:
                self._emit_truncate()
            # else: the txns logged after a SNAP wait for its snapshot (docs/zab.md §2) and
            # the cut must see them in the log: TruncateLog follows SnapshotDurable.
        else:
            self._violation(now_ms, f"got packet type {t} from the leader instead of "
                                    f"DIFF, TRUNC or SNAP")

    def _emit_truncate(self) -> None:
        assert self._trunc_target is not None and not self._trunc_emitted
        self._trunc_emitted = True
        self._out.append(TruncateLog(self._trunc_target))

    def _snap_stream(self, lrn: _LearnerRole, blob: bytes, now_ms: int) -> None:
        from ..storage.snapshot import decode_sync_snapshot
        service = self.service
        assert service is not None and lrn.snap_zxid is not None
        lrn.expect_stream = False
        zxid = lrn.snap_zxid
        try:
            tree, sessions = decode_sync_snapshot(
                blob, zxid=zxid, extended_types_enabled=self.config.extended_types_enabled)
        except (ProtocolError, ValueError) as e:  # SnapshotCorrupt is a ValueError
            self._violation(now_ms, f"bad snapshot stream: {e}")
            return
        service.load_database(tree, sessions, now_ms=now_ms)
        if not self.quorum.reconfig_enabled:
            # ZOOKEEPER-2819: the config node comes from the local config, not the leader's
            # snapshot (a rolling restart may have the two differ).
            log.debug("Reset config node content from local config after deserialization "
                      "of snapshot.")
            service.init_config_node(self.verifier.to_config_text(), self.verifier.version,
                                     now_ms=now_ms)
        self.committed.reset(())
        lrn.log = LearnerLog(zxid)
        self.last_zxid = zxid  # the log restarts above the snapshot
        self.logged_zxid = zxid
        lrn.snapshot_pending = True
        self._snap_wait = zxid
        self._deferred = []
        self._out.append(TakeSnapshot(zxid))

    def _log_txn(self, lrn: _LearnerRole, zxid: int, data: bytes) -> None:
        assert lrn.log is not None
        if zxid <= lrn.log.logged_zxid:
            log.warning("sid %d: got zxid 0x%x, already logged 0x%x", self.my_sid, zxid,
                        lrn.log.logged_zxid)
        if self._snap_wait is not None:
            self._deferred.append((zxid, data))
        else:
            self._out.append(AppendTxns([(zxid, data)]))
        lrn.log.logged(zxid, data)
        self.logged_zxid = max(self.logged_zxid, zxid)
        if zxid > self.last_zxid:
            self.set_last_zxid(zxid)

    def _apply_head(self, lrn: _LearnerRole, zxid: int, now_ms: int) -> bool:
        """COMMIT: apply the pending head, which must be ``zxid`` (else a violation)."""
        assert lrn.log is not None and self.service is not None
        pending = lrn.log.pending
        if not pending or pending[0][0] != zxid:
            head = f"0x{pending[0][0]:x}" if pending else "none"
            self._violation(now_ms, f"committing zxid 0x{zxid:x}, but next pending txn is "
                                    f"{head}")
            return False
        _, data = pending.popleft()
        self.service.apply_committed(zxid, data, now_ms=now_ms)
        self.committed.append(zxid, data)
        return True

    def _inform(self, lrn: _LearnerRole, pkt: QuorumPacket, now_ms: int) -> None:
        assert lrn.log is not None
        if pkt.data is None:
            self._violation(now_ms, "INFORM without a txn")
            return
        self._log_txn(lrn, pkt.zxid, pkt.data)
        self._apply_head(lrn, pkt.zxid, now_ms)

    def _sync_packet(self, lrn: _LearnerRole, pkt: QuorumPacket, now_ms: int) -> None:
        """Packets between the sync payload and UPTODATE."""
        assert lrn.log is not None
        t = pkt.type
        if t == PacketType.PROPOSAL:
            if pkt.data is None:
                self._violation(now_ms, "PROPOSAL without a txn")
                return
            self._log_txn(lrn, pkt.zxid, pkt.data)
            if lrn.phase == "synced" and self.participant:
                lrn.log.to_ack.append(pkt.zxid)
        elif t == PacketType.COMMIT:
            self._apply_head(lrn, pkt.zxid, now_ms)
        elif t == PacketType.INFORM:
            self._inform(lrn, pkt, now_ms)
        elif t == PacketType.NEWLEADER:
            if lrn.phase != "syncing":
                log.warning("sid %d: a second NEWLEADER from the leader; ignored", self.my_sid)
                return
            log.info("sid %d: learner received NEWLEADER message", self.my_sid)
            lrn.newleader_zxid = pkt.zxid
            lrn.newleader_need = lrn.log.logged_zxid
            lrn.phase = "newleader"
            self._check_newleader_durable(lrn)
        elif t == PacketType.UPTODATE:
            if lrn.phase != "synced":
                self._violation(now_ms, "UPTODATE before our NEWLEADER ACK")
                return
            self._uptodate(lrn, now_ms)
        elif t in (PacketType.COMMITANDACTIVATE, PacketType.INFORMANDACTIVATE):
            self._violation(now_ms, "a reconfig while reconfigEnabled is false")
        # Anything else is skipped during sync, as syncWithLeader's loop does.

    def _check_newleader_durable(self, lrn: _LearnerRole) -> None:
        """NEWLEADER: every synced txn and the SNAP snapshot durable, then currentEpoch."""
        assert lrn.log is not None
        if lrn.phase != "newleader" or lrn.truncating or lrn.snapshot_pending:
            return
        if lrn.log.durable_zxid < lrn.newleader_need:
            return
        lrn.phase = "newleader_epoch"
        self._write_epoch("current", lrn.newleader_zxid >> 32)

    def _ack_newleader(self, lrn: _LearnerRole) -> None:
        assert lrn.log is not None
        if self.trace is not None:
            self.trace("newleader_ack", zxid=lrn.newleader_zxid, need=lrn.newleader_need,
                       durable=lrn.log.durable_zxid, current_epoch=self.current_epoch)
        self._send(lrn.conn_id, QuorumPacket(PacketType.ACK, lrn.newleader_zxid))
        lrn.phase = "synced"
        if self.participant:
            # 3.8.5+ (ZOOKEEPER-4785): after UPTODATE, one ACK per proposal still pending.
            lrn.log.to_ack.extend(z for z, _ in lrn.log.pending)

    def _uptodate(self, lrn: _LearnerRole, now_ms: int) -> None:
        assert lrn.log is not None and self.service is not None
        log.info("sid %d: learner received UPTODATE message", self.my_sid)
        epoch = lrn.newleader_zxid >> 32
        pkts = [QuorumPacket(PacketType.ACK, epoch << 32)]
        due = lrn.log.acks_due()
        self._trace_acks(lrn, due)
        pkts += [QuorumPacket(PacketType.ACK, z) for z in due]
        self._send(lrn.conn_id, *pkts)
        mode = "follower" if self.participant else "observer"
        self.service_mode = mode
        self.service.set_mode(mode, epoch, now_ms=now_ms)
        self.current_vote = replace(self.current_vote, peer_epoch=epoch)  # ZOOKEEPER-1732
        lrn.phase = "broadcast"
        self.follower_sync_time.add(now_ms - lrn.sync_start_ms)
        self._set_zab(ZabState.BROADCAST)

    # ------------------------------------------------------------------ learner: broadcast

    def _broadcast_packet(self, lrn: _LearnerRole, pkt: QuorumPacket, now_ms: int) -> None:
        """``Follower.processPacket`` / ``Observer.processPacket``."""
        assert lrn.log is not None and self.service is not None
        t = pkt.type
        if t == PacketType.PING:
            body = encode_ping_body(self.service.touched_sessions())
            self._send(lrn.conn_id, QuorumPacket(PacketType.PING, pkt.zxid, body,
                                                 pkt.authinfo))
        elif t == PacketType.PROPOSAL and self.participant:
            if pkt.data is None:
                self._violation(now_ms, "PROPOSAL without a txn")
                return
            self._log_txn(lrn, pkt.zxid, pkt.data)
            lrn.log.to_ack.append(pkt.zxid)
            self._send_acks(lrn)
        elif t == PacketType.COMMIT and self.participant:
            self._apply_head(lrn, pkt.zxid, now_ms)
        elif t == PacketType.INFORM and not self.participant:
            self._inform(lrn, pkt, now_ms)
        elif t == PacketType.REVALIDATE:
            session_id, valid = decode_revalidate_reply(pkt.data)
            self.service.revalidated(session_id, valid, now_ms=now_ms)
        elif t == PacketType.SYNC:
            self.service.sync_done(now_ms=now_ms)
        elif t in (PacketType.COMMITANDACTIVATE, PacketType.INFORMANDACTIVATE):
            self._violation(now_ms, "a reconfig while reconfigEnabled is false")
        elif t == PacketType.UPTODATE:
            log.error("sid %d: received an UPTODATE message after the learner started",
                      self.my_sid)
        else:
            log.warning("sid %d: ignoring packet type %d from the leader", self.my_sid, t)

    def _send_acks(self, lrn: _LearnerRole) -> None:
        assert lrn.log is not None
        if lrn.phase != "broadcast" or not self.participant:
            return
        due = lrn.log.acks_due()
        if due:
            self._trace_acks(lrn, due)
            self._send(lrn.conn_id, *(QuorumPacket(PacketType.ACK, z) for z in due))

    def _trace_acks(self, lrn: _LearnerRole, zxids: list[int]) -> None:
        trace = self.trace
        if trace is not None and lrn.log is not None:
            for z in zxids:
                trace("ack", zxid=z, durable=lrn.log.durable_zxid)

    def forward_request(self, session_id: int, cxid: int, op: int, body: bytes,
                        auth_ids: list[tuple[str, str]]) -> None:
        """``service.forward``: a local client's write (or sync) goes to the leader."""
        lrn = self._learner
        if lrn is None or lrn.phase != "broadcast":
            log.warning("sid %d: no leader to forward op %d of session 0x%x to", self.my_sid,
                        op, session_id)
            return
        self._send(lrn.conn_id, QuorumPacket(PacketType.REQUEST, -1,
                                             encode_request_body(session_id, cxid, op, body),
                                             tuple(auth_ids)))

    def revalidate_session(self, session_id: int, timeout: int) -> None:
        """``service.revalidate_request``: ask the leader whether a session is live."""
        lrn = self._learner
        if lrn is None or lrn.phase != "broadcast":
            log.warning("sid %d: no leader to revalidate session 0x%x with", self.my_sid,
                        session_id)
            return
        self._send(lrn.conn_id, QuorumPacket(PacketType.REVALIDATE, -1,
                                             encode_revalidate_request(session_id, timeout)))

    # ------------------------------------------------------------------ durability (ZAB)

    def _on_txns_durable(self, zxid: int, now_ms: int) -> None:
        if self._trunc_target is not None or self._snap_wait is not None:
            # The log's report on txns handed over before a TRUNC or a SNAP: those may be
            # cut or replaced, and nothing logged since is covered by it (after a SNAP the
            # next txns go to the log only at SnapshotDurable; LogTruncated says where a
            # truncated log ends). Counting it would ACK txns not yet durable.
            return
        self.durable_zxid = max(self.durable_zxid, zxid)
        lr = self._leader
        if lr is not None and lr.broadcasting and lr.tracker is not None:
            self._commit(lr, lr.tracker.ack_upto(self.my_sid, zxid), now_ms)
        elif lr is not None and lr.tracker is not None and self.my_sid not in lr.newleader_acks:
            self._self_newleader_ack(lr)
            self._check_newleader_quorum(lr, now_ms)
        lrn = self._learner
        if lrn is not None and lrn.log is not None:
            lrn.log.durable(zxid)
            self._check_newleader_durable(lrn)
            self._send_acks(lrn)

    def _on_log_truncated(self, ev: LogTruncated, now_ms: int) -> None:
        service = self.service
        assert service is not None, "LogTruncated without a service"
        service.load_database(ev.tree, ev.sessions, now_ms=now_ms)
        self.committed.reset(ev.committed)
        # Where the reload ended: the TRUNC target, or below it when the data directory
        # could not rebuild it (then this sync cannot go on, see below).
        landed = ev.tree.last_processed_zxid
        if self.trace is not None:
            self.trace("truncated", zxid=ev.zxid, landed=landed)
        self.last_zxid = landed
        self.durable_zxid = landed
        self.logged_zxid = landed
        self._trunc_target = None
        self._trunc_emitted = False
        lr = self._leader
        if lr is not None and lr.self_waiting:
            lr.self_waiting = False
            self._propose_epoch(lr, self.my_sid, self._accepted_epoch_asked())
        lrn = self._learner
        if lrn is None:
            return
        if lrn.phase == "ackepoch_wait" and lrn.ackepoch_body is not None:
            self._send_ackepoch(lrn, lrn.ackepoch_body, now_ms)
            return
        if not lrn.truncating:
            return
        lrn.truncating = False
        if landed != lrn.trunc_zxid:
            # The leader's history from here on follows its TRUNC zxid; ours ends lower.
            # Sync again from where we are (the leader then sends DIFF or SNAP).
            self._learner_lost(now_ms, f"the truncation to 0x{lrn.trunc_zxid:x} reloaded "
                                       f"the database at 0x{landed:x}")
            return
        items, lrn.buffered = lrn.buffered, []
        self._leader_items(lrn, items, now_ms)

    def _on_snapshot_durable(self, zxid: int, now_ms: int) -> None:
        if self._snap_wait == zxid:
            self._snap_wait = None
            # The snapshot holds every txn through zxid: durable as if logged.
            self.durable_zxid = max(self.durable_zxid, zxid)
            lr = self._leader
            if lr is not None and lr.tracker is not None and not lr.broadcasting \
                    and self.my_sid not in lr.newleader_acks:
                self._self_newleader_ack(lr)
                self._check_newleader_quorum(lr, now_ms)
            if self._deferred:
                self._out.append(AppendTxns(self._deferred))
                self._deferred = []
            if self._trunc_target is not None and not self._trunc_emitted:
                self._emit_truncate()
        lrn = self._learner
        if lrn is not None and lrn.snapshot_pending and lrn.snap_zxid == zxid:
            lrn.snapshot_pending = False
            self._check_newleader_durable(lrn)

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
        elif lrn.phase == "ackepoch_wait":
            self._learner_lost(now_ms, "the log truncation did not end within initLimit")
        elif lrn.phase in ("sync", "syncing"):
            self._learner_lost(now_ms, "read timed out during sync (initLimit)")
        elif lrn.phase in ("newleader", "newleader_epoch", "synced", "broadcast"):
            self._learner_lost(now_ms, "read timed out (syncLimit)")

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
                self._send_ackepoch(lrn, self.current_epoch, now_ms)
            elif kind == "current" and lrn.phase == "newleader_epoch" \
                    and epoch == lrn.newleader_zxid >> 32:
                self._ack_newleader(lrn)
