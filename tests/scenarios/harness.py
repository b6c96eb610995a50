"""A small deterministic network of QuorumPeerCores on a virtual clock, for golden transcripts.

It plays the runtime's part as docs/architecture.md describes it: election messages go to
the peer named by ``SendToPeer`` (the last one per link is re-delivered when a link comes
back, as QuorumCnxManager re-sends on a new connection), ``WriteEpoch`` completes after
``disk_ms``, ``ConnectToLeader`` reaches a peer only while it is LEADING (it listens on the
quorum port only then), and ``CloseQuorumConn`` is seen as a disconnect by the other end.
Every delivery, decision and role change is written to the transcript.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from typing import Any

from zkfast.config import QuorumConfig, ServerConfig
from zkfast.core.actions import (
    CloseQuorumConn,
    ConnectToLeader,
    RoleChanged,
    SendQuorumPacket,
    SendToPeer,
    WriteEpoch,
)
from zkfast.core.events import (
    EpochDurable,
    LeaderConnected,
    LeaderConnectFailed,
    LeaderDisconnected,
    LeaderPacketsReceived,
    LearnerConnected,
    LearnerDisconnected,
    LearnerPacketsReceived,
    PeerMessageReceived,
    Ticked,
)
from zkfast.core.peer import QuorumPeerCore
from zkfast.quorum import QuorumVerifier, verifier_from_properties
from zkfast.wire.peer_codec import (
    Notification,
    PacketType,
    ServerState,
    decode_notification,
    decode_quorum_packet,
    encode_notification,
    split_quorum_packets,
)


def make_verifier(n: int, *, observers: tuple[int, ...] = (), extra: str = "") -> QuorumVerifier:
    """server.1..n on 127.0.0.1, quorum ports 2000+sid, election ports 3000+sid."""
    props = {}
    for sid in range(1, n + 1):
        kind = "observer" if sid in observers else "participant"
        props[f"server.{sid}"] = f"127.0.0.1:{2000 + sid}:{3000 + sid}:{kind}"
    for line in extra.splitlines():
        if line.strip():
            k, v = line.split("=", 1)
            props[k.strip()] = v.strip()
    return verifier_from_properties(props)


def make_config(verifier: QuorumVerifier, sid: int, *, tick_ms: int = 2000, init_limit: int = 5,
                readonly: bool = False) -> ServerConfig:
    q = QuorumConfig(my_sid=sid, verifier=verifier,
                     peer_type="participant" if verifier.servers[sid].is_participant
                     else "observer", init_limit_ticks=init_limit, sync_limit_ticks=2)
    return ServerConfig(data_dir="/nonexistent", tick_ms=tick_ms, server_id=sid, quorum=q,
                        readonly_mode_enabled=readonly)


@dataclass
class PeerDisk:
    last_zxid: int = 0
    accepted_epoch: int = 0
    current_epoch: int = 0


@dataclass(order=True)
class _Item:
    at: int
    seq: int
    fn: Any = field(compare=False)


class Network:
    """N peers, a virtual clock in ms, fixed delays, partitions, crashes and restarts."""

    def __init__(self, verifier: QuorumVerifier, *, delay_ms: int = 1, disk_ms: int = 1,
                 tick_ms: int = 2000, init_limit: int = 5, readonly: bool = False,
                 trace_messages: bool = True, rng: random.Random | None = None,
                 jitter_ms: int = 0) -> None:
        self.verifier = verifier
        self.delay_ms = delay_ms
        self.disk_ms = disk_ms
        self.tick_ms = tick_ms
        self.init_limit = init_limit
        self.readonly = readonly
        self.trace_messages = trace_messages
        self.now = 0
        self._seq = 0
        self._queue: list[_Item] = []
        self.peers: dict[int, QuorumPeerCore] = {}
        self.disks: dict[int, PeerDisk] = {sid: PeerDisk() for sid in verifier.servers}
        self.lines: list[str] = []
        self.roles: dict[int, RoleChanged] = {}
        self.blocked: set[frozenset[int]] = set()
        self._timer_gen: dict[int, int] = {}
        self._last_sent: dict[tuple[int, int], bytes] = {}
        # quorum connections: conn key -> (learner sid, learner conn id, leader sid,
        # leader conn id); both ends map to it.
        self._conns: dict[tuple[int, int], tuple[int, int, int, int]] = {}
        self._next_leader_conn = 1
        self.rng = rng
        self.jitter_ms = jitter_ms
        self._link_clock: dict[tuple[int, int], int] = {}
        #: (sid, epoch) of every leader that reached SYNCHRONIZATION (a quorum acked its epoch).
        self.established: list[tuple[int, int]] = []

    def _delay(self, a: int, b: int) -> int:
        """The delivery time of a message on link a->b: jittered but FIFO, as TCP is."""
        d = self.delay_ms
        if self.rng is not None and self.jitter_ms:
            d += self.rng.randint(0, self.jitter_ms)
        t = max(self.now + d, self._link_clock.get((a, b), 0))
        self._link_clock[(a, b)] = t
        return t

    # ------------------------------------------------------------------ scheduling

    def at(self, when: int, fn: Any) -> None:
        self._seq += 1
        heapq.heappush(self._queue, _Item(when, self._seq, fn))

    def log(self, sid: int | None, text: str) -> None:
        who = f"p{sid}" if sid is not None else "--"
        self.lines.append(f"{self.now:>7} {who} {text}")

    def run_until(self, t: int) -> None:
        while self._queue and self._queue[0].at <= t:
            item = heapq.heappop(self._queue)
            self.now = max(self.now, item.at)
            item.fn()
        self.now = max(self.now, t)

    def run_until_stable(self, limit_ms: int = 120_000, quiet_ms: int = 5_000) -> None:
        """Run until every live peer has been out of LOOKING (and past DISCOVERY) for quiet_ms."""
        end = self.now + limit_ms
        stable_since: int | None = None
        while self.now < end:
            self.run_until(self.now + 100)
            ok = bool(self.peers) and all(
                r.state != "LOOKING" and r.zab_state != "DISCOVERY"
                for sid, r in self.roles.items() if sid in self.peers)
            if ok:
                stable_since = self.now if stable_since is None else stable_since
                if self.now - stable_since >= quiet_ms:
                    return
            else:
                stable_since = None

    # ------------------------------------------------------------------ peers

    def start(self, sid: int, *, last_zxid: int | None = None, accepted_epoch: int | None = None,
              current_epoch: int | None = None) -> None:
        d = self.disks[sid]
        if last_zxid is not None:
            d.last_zxid = last_zxid
        if accepted_epoch is not None:
            d.accepted_epoch = accepted_epoch
        if current_epoch is not None:
            d.current_epoch = current_epoch
        cfg = make_config(self.verifier, sid, tick_ms=self.tick_ms, init_limit=self.init_limit,
                          readonly=self.readonly)
        core = QuorumPeerCore(cfg, last_zxid=d.last_zxid, accepted_epoch=d.accepted_epoch,
                              current_epoch=d.current_epoch, now_ms=self.now)
        self.peers[sid] = core
        self.log(sid, f"START zxid=0x{d.last_zxid:x} acceptedEpoch={d.accepted_epoch} "
                      f"currentEpoch={d.current_epoch}")
        self._apply(sid, core.start(self.now))
        # Links come up: every peer's last message to this one is re-sent.
        for (a, b), payload in sorted(self._last_sent.items()):
            if b == sid and a in self.peers and self._linked(a, b):
                self._deliver_election(a, b, payload)

    def kill(self, sid: int) -> None:
        self.log(sid, "KILLED")
        self.peers.pop(sid, None)
        self.roles.pop(sid, None)
        self._timer_gen[sid] = self._timer_gen.get(sid, 0) + 1
        for key, c in sorted(self._conns.items()):
            if key[0] == sid:
                self._drop_conn(c, closer=sid)

    def partition(self, *groups: set[int]) -> None:
        """Cut every link between different groups (and quorum connections across them)."""
        self.log(None, "PARTITION " + " | ".join(",".join(map(str, sorted(g))) for g in groups))
        for i, g in enumerate(groups):
            for h in groups[i + 1:]:
                for a in g:
                    for b in h:
                        self.blocked.add(frozenset((a, b)))
        for key, c in sorted(self._conns.items()):
            if key[0] == c[0] and not self._linked(c[0], c[2]):
                self._drop_conn(c, closer=None)

    def heal(self) -> None:
        self.log(None, "HEAL")
        blocked, self.blocked = self.blocked, set()
        for (a, b), payload in sorted(self._last_sent.items()):
            if frozenset((a, b)) in blocked and a in self.peers and b in self.peers:
                self._deliver_election(a, b, payload)

    def _linked(self, a: int, b: int) -> bool:
        return frozenset((a, b)) not in self.blocked

    # ------------------------------------------------------------------ steps and actions

    def _step(self, sid: int, event: Any) -> None:
        core = self.peers.get(sid)
        if core is None:
            return
        self._apply(sid, core.step(event, self.now))

    def _apply(self, sid: int, actions: list[Any]) -> None:
        for a in actions:
            self._action(sid, a)
        core = self.peers.get(sid)
        if core is None:
            return
        gen = self._timer_gen.get(sid, 0) + 1
        self._timer_gen[sid] = gen
        d = core.deadline_ms()
        if d is not None:
            def fire(sid: int = sid, gen: int = gen) -> None:
                if self._timer_gen.get(sid) == gen:
                    self._step(sid, Ticked())
            self.at(max(d, self.now), fire)

    def _action(self, sid: int, a: Any) -> None:
        t = type(a)
        if t is SendToPeer:
            self._last_sent[(sid, a.sid)] = a.payload
            if a.sid in self.peers and self._linked(sid, a.sid):
                self._deliver_election(sid, a.sid, a.payload)
            elif self.trace_messages:
                self.log(sid, f"-> p{a.sid} dropped: {self._describe(a.payload)}")
        elif t is WriteEpoch:
            self.log(sid, f"WRITE {a.kind}Epoch={a.epoch}")

            def durable(sid: int = sid, kind: str = a.kind, epoch: int = a.epoch) -> None:
                if sid in self.peers:
                    d = self.disks[sid]
                    setattr(d, f"{kind}_epoch", epoch)
                    self._step(sid, EpochDurable(kind, epoch))
            self.at(self.now + self.disk_ms, durable)
        elif t is RoleChanged:
            self.roles[sid] = a
            if a.state == "LEADING" and a.zab_state == "SYNCHRONIZATION":
                core = self.peers[sid]
                self.established.append((sid, core.current_epoch))
            ro = " read-only" if a.read_only else ""
            self.log(sid, f"ROLE {a.state}/{a.zab_state} leader={a.leader_sid}{ro}")
            if a.state != "LEADING":
                for key, c in sorted(self._conns.items()):
                    if key == (sid, c[3]) and c[2] == sid:
                        self._drop_conn(c, closer=sid)
        elif t is ConnectToLeader:
            self._connect(sid, a)
        elif t is SendQuorumPacket:
            self._send_packet(sid, a.conn_id, a.data)
        elif t is CloseQuorumConn:
            c = self._conns.get((sid, a.conn_id))
            if c is not None:
                self._drop_conn(c, closer=sid)
        else:
            raise AssertionError(f"unexpected action {a!r}")

    def _deliver_election(self, a: int, b: int, payload: bytes) -> None:
        def deliver() -> None:
            if b in self.peers and a in self.peers and self._linked(a, b):
                if self.trace_messages:
                    self.log(b, f"<- p{a} {self._describe(payload)}")
                self._step(b, PeerMessageReceived(a, payload))
        self.at(self._delay(a, b), deliver)

    @staticmethod
    def _describe(payload: bytes) -> str:
        n = decode_notification(payload)
        return (f"{ServerState(n.state).name} leader={n.leader} zxid=0x{n.zxid & (2**64 - 1):x} "
                f"round={n.election_epoch} peerEpoch={n.peer_epoch}")

    def inject(self, a: int, b: int, n: Notification) -> None:
        """Deliver a hand-made notification as if peer ``a`` had sent it to ``b``."""
        self.log(a, f"INJECT -> p{b}")
        payload = encode_notification(n)

        def deliver() -> None:
            if b in self.peers:
                self.log(b, f"<- p{a} {self._describe(payload)}")
                self._step(b, PeerMessageReceived(a, payload))
        self.at(self.now + self.delay_ms, deliver)

    def _port_owner(self, host: str, port: int) -> int | None:
        for sid, s in self.verifier.servers.items():
            if s.host == host and s.quorum_port == port:
                return sid
        return None

    def _connect(self, sid: int, a: ConnectToLeader) -> None:
        target = self._port_owner(a.host, a.port)
        self.log(sid, f"CONNECT p{target}")

        def attempt() -> None:
            if sid not in self.peers:
                return
            role = self.roles.get(target) if target is not None else None
            if (target is None or target not in self.peers or not self._linked(sid, target)
                    or role is None or role.state != "LEADING"):
                self.log(sid, f"CONNECT-FAILED p{target}")
                self._step(sid, LeaderConnectFailed(a.conn_id, "connection refused"))
                return
            lconn = self._next_leader_conn
            self._next_leader_conn += 1
            c = (sid, a.conn_id, target, lconn)
            self._conns[(sid, a.conn_id)] = c
            self._conns[(target, lconn)] = c
            self._step(target, LearnerConnected(lconn, f"127.0.0.1:{40000 + sid}"))
            self._step(sid, LeaderConnected(a.conn_id))
        self.at(self.now + self.delay_ms, attempt)

    def _send_packet(self, sid: int, conn_id: int, data: bytes) -> None:
        c = self._conns.get((sid, conn_id))
        if c is None:
            return
        packets, used = split_quorum_packets(data, 0, 1 << 20)
        assert used == len(data)
        for p in packets:
            qp = decode_quorum_packet(p)
            dest = c[2] if sid == c[0] else c[0]
            self.log(sid, f"=> p{dest} {PacketType(qp.type).name} zxid=0x{qp.zxid & (2**64-1):x}"
                          f" data={qp.data.hex() if qp.data else '-'}")

        def deliver() -> None:
            if self._conns.get((sid, conn_id)) is not c:
                return
            if sid == c[0]:
                self._step(c[2], LearnerPacketsReceived(c[3], packets))
            else:
                self._step(c[0], LeaderPacketsReceived(c[1], packets))
        dest = c[2] if sid == c[0] else c[0]
        self.at(self._delay(sid, dest) if self.rng is not None else self.now + self.delay_ms,
                deliver)

    def _drop_conn(self, c: tuple[int, int, int, int], closer: int | None) -> None:
        learner, lconn_id, leader, rconn_id = c
        if self._conns.pop((learner, lconn_id), None) is None:
            return
        self._conns.pop((leader, rconn_id), None)
        self.log(closer, f"QUORUM-CONN p{learner}-p{leader} closed")
        if closer != learner:
            self.at(self._delay(leader, learner) if self.rng is not None
                    else self.now + self.delay_ms,
                    lambda: self._step(learner, LeaderDisconnected(lconn_id)))
        if closer != leader:
            self.at(self._delay(learner, leader) if self.rng is not None
                    else self.now + self.delay_ms,
                    lambda: self._step(leader, LearnerDisconnected(rconn_id)))

    # ------------------------------------------------------------------ checks

    def states(self) -> dict[int, str]:
        return {sid: self.peers[sid].state.name for sid in sorted(self.peers)}

    def leaders(self) -> list[int]:
        return [sid for sid, p in sorted(self.peers.items()) if p.state == ServerState.LEADING]

    def transcript(self) -> str:
        return "\n".join(self.lines) + "\n"
