"""FastLeaderElection, sans-IO: Apache ZooKeeper 3.8's ``lookForLeader`` and ``WorkerReceiver``.

Theory of operation
-------------------
One object lives as long as the peer (Apache keeps one FastLeaderElection per QuorumPeer).
Its ``logical_clock`` (the election epoch, or round) survives between elections.

``start_round(now_ms, ...)`` is ``lookForLeader``'s prologue: increment the logical clock,
propose ``(myid, lastLoggedZxid, currentEpoch)`` (``Long.MIN_VALUE`` for each when this peer is
not a voter/participant), clear ``recvset`` and ``outofelection``, send a LOOKING notification
to every voter. Sending to ourselves is part of it: Apache's QuorumCnxManager puts a message
to the own sid straight into the receive queue, which is how a peer counts its own vote. Here
such messages go to an internal queue that the same call drains, after the other sends.

``receive(sid, payload, now_ms, ...)`` is ``WorkerReceiver.run`` followed, while LOOKING, by one
iteration of ``lookForLeader``'s loop:

* a payload that does not parse is dropped (logged), as Apache skips malformed messages;
* a sender that is not a voter gets our current vote back at once and nothing else happens;
* while not LOOKING, a LOOKING sender gets our current vote ``(leader, zxid, electionEpoch,
  peerEpoch)`` in our state; nothing else is looked at;
* while LOOKING, a LOOKING sender with a lower round gets our proposal, and the notification
  is processed: the LOOKING case (newer round: adopt it, clear recvset, compare with the
  initial vote; same round: adopt a better vote; older: drop), the FOLLOWING/LEADING cases
  (same-round votes into recvset; every one into outofelection; join a leader whose quorum
  is confirmed by ``check_leader`` — ZOOKEEPER-1732), OBSERVING ignored.

Termination: when the votes in recvset equal to our proposal hold a quorum, the object enters
*finalize*: for ``finalizeWait`` (200 ms) it reads notifications and discards every one that is
not better than the proposal; each one read restarts the 200 ms (Apache polls with that
timeout). A better one leaves finalize and is processed as usual. When 200 ms pass quietly,
``on_timer`` returns the decision.

Idle timer: while LOOKING and not in finalize, if no notification is read for
``not_timeout`` ms, the notifications are sent again and the timeout doubles up to
``maxNotificationInterval`` (Apache: ``recvqueue.poll(notTimeout)``; a read restarts the wait).

Outputs are values: a list of ``(sid, payload)`` sends, and a ``Decision`` (the leader and
the state to assume) that the peer core consumes. Mirrors ``FastLeaderElection.java`` and
``Vote.java`` of Apache ZooKeeper 3.8.0. A notification carrying a newer version of the same
membership is adopted while LOOKING (Apache peers bump a version-0 config to the first zxid of
their first leader, ZOOKEEPER-1783); a newer config with other members is logged and ignored
(dynamic reconfiguration is not implemented).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .._impl import ProtocolError
from .._impl import core as _core
from ..quorum import QuorumConfigError, QuorumVerifier, joint_quorum, parse_config_text
from ..wire.peer_codec import Notification, ServerState, decode_notification, encode_notification

__all__ = ["Vote", "Decision", "FastLeaderElection", "LONG_MIN"]

log = logging.getLogger("zkfast.election")

LONG_MIN = -(1 << 63)


@dataclass(frozen=True, slots=True)
class Vote:
    """``Vote.java``: a proposed or known leader with its zxid and epochs."""

    id: int
    zxid: int
    election_epoch: int = -1
    peer_epoch: int = -1
    state: ServerState = ServerState.LOOKING
    version: int = 0

    def same_as(self, other: Vote) -> bool:
        """``Vote.equals``: all four numbers while either is LOOKING; else (id, peerEpoch),
        or only the id when exactly one of the two has version 0 (pre-3.4.6 peers)."""
        if self.state == ServerState.LOOKING or other.state == ServerState.LOOKING:
            return (self.id == other.id and self.zxid == other.zxid
                    and self.election_epoch == other.election_epoch
                    and self.peer_epoch == other.peer_epoch)
        if (self.version > 0) != (other.version > 0):
            return self.id == other.id
        return self.id == other.id and self.peer_epoch == other.peer_epoch


@dataclass(frozen=True, slots=True)
class Decision:
    """The end of an election: the vote to adopt as current and the state to enter."""

    vote: Vote
    state: ServerState


class FastLeaderElection:
    """Electing a leader with Apache's FastLeaderElection (see the module docstring)."""

    def __init__(self, my_sid: int, verifier: QuorumVerifier, *, participant: bool = True,
                 min_notification_interval_ms: int = 200,
                 max_notification_interval_ms: int = 60000,
                 finalize_wait_ms: int = 200) -> None:
        self.my_sid = my_sid
        self.verifier = verifier
        #: The last-seen (proposed, not yet committed) config during a reconfig, if any.
        self.last_seen: QuorumVerifier | None = None
        self.participant = participant
        self.min_interval_ms = min_notification_interval_ms
        self.max_interval_ms = max_notification_interval_ms
        self.finalize_wait_ms = finalize_wait_ms
        self.logical_clock = 0
        self.proposed_leader = -1
        self.proposed_zxid = -1
        self.proposed_epoch = -1
        self.looking = False
        self.recvset: dict[int, Vote] = {}
        self.outofelection: dict[int, Vote] = {}
        self.not_timeout_ms = min_notification_interval_ms
        self.idle_deadline_ms: int | None = None
        self.finalize_deadline_ms: int | None = None
        self.decision: Decision | None = None
        self._init_zxid = LONG_MIN
        self._init_epoch = LONG_MIN
        self._config_text = verifier.to_config_text()
        self._self_queue: list[bytes] = []
        self._sends: list[tuple[int, bytes]] = []
        self._other_config_texts: set[str] = {self._config_text}
        #: Set when a newer version of our config was adopted from a notification (the peer
        #: should persist it; zkfast does not write zoo.cfg.dynamic files yet).
        self.config_adopted = False

    # ------------------------------------------------------------------ helpers

    @property
    def config_text(self) -> str:
        return self._config_text

    def voters(self) -> list[int]:
        """``getCurrentAndNextConfigVoters`` in a fixed (sorted) order."""
        vs = set(self.verifier.voting_members)
        if self.last_seen is not None:
            vs |= self.last_seen.voting_members
        return sorted(vs)

    def valid_voter(self, sid: int) -> bool:
        if sid in self.verifier.voting_members:
            return True
        return self.last_seen is not None and sid in self.last_seen.voting_members

    def _verifiers(self) -> list[QuorumVerifier]:
        vs = [self.verifier]
        if self.last_seen is not None and self.last_seen.version > self.verifier.version:
            vs.append(self.last_seen)
        return vs

    def _init_id(self) -> int:
        return self.my_sid if self.my_sid in self.verifier.voting_members else LONG_MIN

    def _greater(self, new_id: int, new_zxid: int, new_epoch: int,
                 cur_id: int, cur_zxid: int, cur_epoch: int) -> bool:
        """``totalOrderPredicate`` (weight-0 candidates never win)."""
        return bool(_core.vote_greater(new_id, new_zxid, new_epoch, cur_id, cur_zxid,
                                       cur_epoch, self.verifier.weight(new_id)))

    def _send(self, sid: int, n: Notification) -> None:
        payload = encode_notification(n)
        if sid == self.my_sid:
            self._self_queue.append(payload)
        else:
            self._sends.append((sid, payload))

    def _send_notifications(self) -> None:
        for sid in self.voters():
            self._send(sid, Notification(ServerState.LOOKING, self.proposed_leader,
                                         self.proposed_zxid, self.logical_clock,
                                         self.proposed_epoch, config=self._config_text))

    def _vote_quorum(self, votes: dict[int, Vote], vote: Vote) -> bool:
        """``getVoteTracker(votes, vote).hasAllQuorums()``."""
        acks = [sid for sid, v in votes.items() if vote.same_as(v)]
        return joint_quorum(acks, self._verifiers())

    def _check_leader(self, votes: dict[int, Vote], leader: int, election_epoch: int) -> bool:
        """``checkLeader``: the leader itself said LEADING (or it is us, in this round)."""
        if leader != self.my_sid:
            v = votes.get(leader)
            return v is not None and v.state == ServerState.LEADING
        return self.logical_clock == election_epoch

    def _drain(self) -> list[tuple[int, bytes]]:
        sends, self._sends = self._sends, []
        return sends

    # ------------------------------------------------------------------ lookForLeader

    def start_round(self, now_ms: int, *, last_zxid: int, current_epoch: int
                    ) -> list[tuple[int, bytes]]:
        """Begin ``lookForLeader``: new round, initial proposal, notifications to all voters.

        Returns the sends ``(sid, payload)``; a Decision may already be set (``self.decision``)
        when this peer alone is a quorum.
        """
        self.looking = True
        self.decision = None
        self.recvset = {}
        self.outofelection = {}
        self.finalize_deadline_ms = None
        self.not_timeout_ms = self.min_interval_ms
        self._init_zxid = last_zxid if self.participant else LONG_MIN
        self._init_epoch = current_epoch if self.participant else LONG_MIN
        self.logical_clock += 1
        self._update_proposal(self._init_id(), self._init_zxid, self._init_epoch)
        log.info("New election. My id = %d, proposed zxid=0x%x", self.my_sid,
                 self.proposed_zxid & 0xFFFFFFFFFFFFFFFF)
        self._send_notifications()
        self.idle_deadline_ms = now_ms + self.not_timeout_ms
        self._run_self_queue(now_ms)
        return self._drain()

    def stop(self) -> None:
        """Leave the election (``leaveInstance``): nothing is queued any more."""
        self.looking = False
        self.idle_deadline_ms = None
        self.finalize_deadline_ms = None
        self._self_queue.clear()

    def _update_proposal(self, leader: int, zxid: int, epoch: int) -> None:
        self.proposed_leader, self.proposed_zxid, self.proposed_epoch = leader, zxid, epoch

    def deadline_ms(self) -> int | None:
        if not self.looking:
            return None
        if self.finalize_deadline_ms is not None:
            return self.finalize_deadline_ms
        return self.idle_deadline_ms

    def on_timer(self, now_ms: int) -> list[tuple[int, bytes]]:
        """The idle or the finalize timer expired (call when ``now_ms >= deadline_ms()``)."""
        if not self.looking:
            return []
        if self.finalize_deadline_ms is not None:
            if now_ms >= self.finalize_deadline_ms:
                self.finalize_deadline_ms = None
                self._decide(self.proposed_leader, Vote(
                    self.proposed_leader, self.proposed_zxid, self.logical_clock,
                    self.proposed_epoch))
            return self._drain()
        if self.idle_deadline_ms is not None and now_ms >= self.idle_deadline_ms:
            # manager.haveDelivered() ? sendNotifications() : connectAll(): the runtime
            # connects on demand, so re-sending covers both.
            self._send_notifications()
            self.not_timeout_ms = min(self.not_timeout_ms * 2, self.max_interval_ms)
            self.idle_deadline_ms = now_ms + self.not_timeout_ms
            self._run_self_queue(now_ms)
        return self._drain()

    def _decide(self, leader: int, end_vote: Vote) -> None:
        if leader == self.my_sid:
            state = ServerState.LEADING
        else:
            state = ServerState.FOLLOWING if self.participant else ServerState.OBSERVING
        self.decision = Decision(end_vote, state)
        self.stop()

    # ------------------------------------------------------------------ WorkerReceiver

    def receive(self, sid: int, payload: bytes, now_ms: int, *, peer_state: ServerState,
                current_vote: Vote) -> list[tuple[int, bytes]]:
        """One election message from ``sid``; returns the sends it caused.

        Args:
            peer_state: our ServerState (LOOKING while an election runs).
            current_vote: our current vote (``QuorumPeer.getCurrentVote``), for replies.
        """
        try:
            n = decode_notification(payload)
        except ProtocolError as e:
            log.warning("Skipping a malformed notification from sid=%d (%d bytes): %s",
                        sid, len(payload), e)
            return []
        self._note_config(sid, n, peer_state)
        self._receive(sid, n, now_ms, peer_state, current_vote)
        self._run_self_queue(now_ms)
        return self._drain()

    def _note_config(self, sid: int, n: Notification, peer_state: ServerState) -> None:
        """WorkerReceiver's config handling: parse the sender's config; while LOOKING, adopt a
        newer version of the same membership (``processReconfig``; Apache keeps electing when
        the new verifier ``equals`` the old one, i.e. has the same servers)."""
        if n.config is None or n.config in self._other_config_texts:
            return
        try:
            qv = parse_config_text(n.config)
        except QuorumConfigError as e:
            log.error("Something went wrong while processing config received from %d: %s",
                      sid, e)
            return
        if len(self._other_config_texts) < 64:
            self._other_config_texts.add(n.config)
        if qv.version <= self.verifier.version or peer_state != ServerState.LOOKING:
            return
        if qv.same_members(self.verifier) or self._same_servers(qv):
            log.info("%d Received version: %x my version: %x; adopting it", self.my_sid,
                     qv.version, self.verifier.version)
            self.verifier = qv
            self._config_text = qv.to_config_text()
            self._other_config_texts.add(self._config_text)
            self.config_adopted = True
            return
        # TODO(#4-reconfig): processReconfig with a new membership restarts the election.
        log.warning("sid %d sent config version 0x%x with other members than ours (0x%x); "
                    "dynamic reconfiguration is not implemented, ignoring it", sid, qv.version,
                    self.verifier.version)

    def _same_servers(self, qv: QuorumVerifier) -> bool:
        mine, theirs = self.verifier, qv
        return (mine.servers.keys() == theirs.servers.keys()
                and all(mine.servers[s].to_config_value() == theirs.servers[s].to_config_value()
                        for s in mine.servers)
                and mine.hierarchical == theirs.hierarchical
                and all(mine.weight(s) == theirs.weight(s) for s in mine.servers))

    def _reply(self, sid: int, vote_id: int, zxid: int, election_epoch: int,
               state: ServerState, peer_epoch: int) -> None:
        self._send(sid, Notification(state, vote_id, zxid, election_epoch, peer_epoch,
                                     config=self._config_text))

    def _receive(self, sid: int, n: Notification, now_ms: int, peer_state: ServerState,
                 current_vote: Vote) -> None:
        if not self.valid_voter(sid):
            self._reply(sid, current_vote.id, current_vote.zxid, self.logical_clock, peer_state,
                        current_vote.peer_epoch)
            return
        state = ServerState(n.state)
        if peer_state == ServerState.LOOKING and self.looking:
            if state == ServerState.LOOKING and n.election_epoch < self.logical_clock:
                self._reply(sid, self.proposed_leader, self.proposed_zxid, self.logical_clock,
                            ServerState.LOOKING, self.proposed_epoch)
            self._process(sid, n, state, now_ms)
        elif peer_state != ServerState.LOOKING and state == ServerState.LOOKING:
            self._reply(sid, current_vote.id, current_vote.zxid, current_vote.election_epoch,
                        peer_state, current_vote.peer_epoch)

    def _process(self, sid: int, n: Notification, state: ServerState, now_ms: int) -> None:
        """One notification read by ``lookForLeader`` (``recvqueue.poll`` returned it)."""
        if self.finalize_deadline_ms is not None:
            if self._greater(n.leader, n.zxid, n.peer_epoch, self.proposed_leader,
                             self.proposed_zxid, self.proposed_epoch):
                # recvqueue.put(n); break: leave finalize and process it in the main loop.
                self.finalize_deadline_ms = None
            else:
                self.finalize_deadline_ms = now_ms + self.finalize_wait_ms
                return
        self.idle_deadline_ms = now_ms + self.not_timeout_ms
        if not (self.valid_voter(sid) and self.valid_voter(n.leader)):
            log.warning("Ignoring notification for sid %d from sid %d (not a voter)",
                        n.leader, sid)
            return
        if state == ServerState.LOOKING:
            self._looking_case(sid, n, now_ms)
        elif state in (ServerState.FOLLOWING, ServerState.LEADING):
            self._following_case(sid, n, state)
        # OBSERVING: ignored.

    def _looking_case(self, sid: int, n: Notification, now_ms: int) -> None:
        if self._init_zxid == -1 or n.zxid == -1:
            return
        if n.election_epoch > self.logical_clock:
            self.logical_clock = n.election_epoch
            self.recvset.clear()
            if self._greater(n.leader, n.zxid, n.peer_epoch, self._init_id(), self._init_zxid,
                             self._init_epoch):
                self._update_proposal(n.leader, n.zxid, n.peer_epoch)
            else:
                self._update_proposal(self._init_id(), self._init_zxid, self._init_epoch)
            self._send_notifications()
        elif n.election_epoch < self.logical_clock:
            return
        elif self._greater(n.leader, n.zxid, n.peer_epoch, self.proposed_leader,
                           self.proposed_zxid, self.proposed_epoch):
            self._update_proposal(n.leader, n.zxid, n.peer_epoch)
            self._send_notifications()
        self.recvset[sid] = Vote(n.leader, n.zxid, n.election_epoch, n.peer_epoch)
        proposal = Vote(self.proposed_leader, self.proposed_zxid, self.logical_clock,
                        self.proposed_epoch)
        if self._vote_quorum(self.recvset, proposal):
            self.finalize_deadline_ms = now_ms + self.finalize_wait_ms

    def _following_case(self, sid: int, n: Notification, state: ServerState) -> None:
        """``receivedFollowingNotification`` (LEADING adds only the oracle, not used here)."""
        if n.election_epoch == self.logical_clock:
            self.recvset[sid] = Vote(n.leader, n.zxid, n.election_epoch, n.peer_epoch, state)
            v = Vote(n.leader, n.zxid, n.election_epoch, n.peer_epoch, state, n.version)
            if self._vote_quorum(self.recvset, v) and self._check_leader(
                    self.recvset, n.leader, n.election_epoch):
                self._decide(n.leader, Vote(n.leader, n.zxid, n.election_epoch, n.peer_epoch))
                return
        v = Vote(n.leader, n.zxid, n.election_epoch, n.peer_epoch, state, n.version)
        self.outofelection[sid] = v
        if self._vote_quorum(self.outofelection, v) and self._check_leader(
                self.outofelection, n.leader, n.election_epoch):
            self.logical_clock = n.election_epoch
            self._decide(n.leader, Vote(n.leader, n.zxid, n.election_epoch, n.peer_epoch))

    def _run_self_queue(self, now_ms: int) -> None:
        """Deliver what we sent to ourselves (QuorumCnxManager's loopback)."""
        while self._self_queue and self.looking:
            payload = self._self_queue.pop(0)
            n = decode_notification(payload)
            self._receive(self.my_sid, n, now_ms, ServerState.LOOKING,
                          Vote(self.proposed_leader, self.proposed_zxid, self.logical_clock,
                               self.proposed_epoch))
        self._self_queue.clear()
