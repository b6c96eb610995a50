"""QuorumNode: one quorum peer process as a single sans-IO core (docs/zab.md §1).

Theory of operation
-------------------
A QuorumNode owns two cores and is driven like either of them: ``step(event, now_ms) ->
list[action]``, ``deadline_ms()``, ``status()``.

* ``peer`` (``core/peer.py``): election, discovery and the ZAB roles. It calls the service
  directly (``set_mode``, ``commit``, ``apply_committed``, ``submit_learner_request``, ...).
* ``service`` (``core/server.py``'s ServerCore in an ensemble mode): the clients and the tree.
  ``service.forward`` and ``service.revalidate_request`` are the peer's ``forward_request``
  and ``revalidate_session``, so a learner's writes and reconnects reach the leader.

Routing. Client events (connect, frames, four-letter words, disconnect) go to the service,
gated as Apache's ServerCnxnFactory is while no ZooKeeperServer runs: the service is served
only while the peer is in BROADCAST (its mode is not "off") or, while LOOKING, in read-only
mode; otherwise a client's frames close its connection ("ZooKeeperServer not running") and
the service gets no ticks (sessions must not expire into txns no quorum agreed on).
``StorageFailed`` goes to the service. Every other event (election and quorum traffic,
``EpochDurable``, ``TxnsDurable``, ``LogTruncated``, ``SnapshotDurable``) goes to the peer:
``TxnsDurable`` is the leader's own ack or lets a learner ACK, never an apply.
``Ticked`` goes to both (the service only when served).

Read-only mode: the peer's ``RoleChanged(read_only=True)`` (LOOKING past the grace period)
steps ``ReadOnlyModeChanged(True)`` into the service, the next RoleChanged without it
``ReadOnlyModeChanged(False)``; both close every client, as Apache builds and drops its
ReadOnlyZooKeeperServer.

Actions. The service's actions (those ``step`` returned and those its direct calls left for
``flush_actions``) come first, then the peer's, each in the order produced. An ``AppendTxns``
of the service can only come from a leader in BROADCAST: it goes out unchanged (the log) and
its txns are handed to ``peer.proposed`` (PROPOSAL to the followers). Before a learner's sync
request is answered, the peer pulls the service's pending actions (``pull_service``) so every
earlier request is proposed first. The peer logs learner txns itself (``AppendTxns``).

The committed log (``zookeeper.commitLogCount``) is filled from recovery (``committed``) and
kept by the peer; ``history`` is the on-disk log for DIFF syncs older than it, and
``snapshot_bytes`` the newest snapshot's size (``zookeeper.snapshotSizeFactor`` of it bounds
how much of the log a DIFF may read).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from ..config import ServerConfig
from .actions import AppendTxns, CloseClient, RoleChanged
from .events import (
    ClientConnected,
    ClientDisconnected,
    ClientFramesReceived,
    FourLetterWordReceived,
    ReadOnlyModeChanged,
    StorageFailed,
    Ticked,
)
from .peer import PeerStatus, QuorumPeerCore
from .zab import CommittedLog, TxnHistory, ZabService

__all__ = ["QuorumNode", "NOT_RUNNING"]

log = logging.getLogger("zkfast.node")

#: NIOServerCnxn.readConnectRequest's reason while no ZooKeeperServer runs.
NOT_RUNNING = "ZooKeeperServer not running"
_CLIENT_EVENTS = (ClientConnected, ClientFramesReceived, FourLetterWordReceived,
                  ClientDisconnected)


class QuorumNode:
    """A quorum peer and its replicated service (see the module docstring).

    Args:
        config: the server configuration; ``config.quorum`` must be set.
        service: the ServerCore built over the recovered database.
        last_zxid: the last logged zxid (recovery).
        accepted_epoch, current_epoch: from ``storage.epochs.resolve_epochs``.
        now_ms: wall-clock ms.
        committed: the last <= commitLogCount ``(zxid, txn bytes)`` replayed at recovery.
        history: the on-disk txn log, for DIFF syncs (None: SNAP instead).
        snapshot_bytes: the size of the newest snapshot (0 when there is none).
    """

    def __init__(self, config: ServerConfig, *, service: ZabService, last_zxid: int,
                 accepted_epoch: int, current_epoch: int, now_ms: int,
                 committed: Iterable[tuple[int, bytes]] = (),
                 history: TxnHistory | None = None, snapshot_bytes: int = 0) -> None:
        q = config.quorum
        assert q is not None, "QuorumNode needs ServerConfig.quorum"
        self.config = config
        self.service = service
        self.peer = QuorumPeerCore(config, last_zxid=last_zxid, accepted_epoch=accepted_epoch,
                                   current_epoch=current_epoch, now_ms=now_ms)
        self.committed = CommittedLog(q.commit_log_count, committed)
        self.peer.attach(service, committed=self.committed, history=history,
                         snapshot_bytes=snapshot_bytes, pull_service=self._pull_service)
        service.forward = self.peer.forward_request
        service.revalidate_request = self.peer.revalidate_session
        #: The read-only service runs (the last RoleChanged said read_only while LOOKING).
        self.read_only = False
        self._now_ms = now_ms
        self._svc: list[Any] = []
        self._started = False
        # A quorum peer serves nothing until a role reaches BROADCAST.
        service.set_mode("off", current_epoch, now_ms=now_ms)
        self._svc.extend(service.flush_actions())

    # ------------------------------------------------------------------ public face

    @property
    def serving(self) -> bool:
        """The full service runs (the role is in BROADCAST)."""
        return self.peer.service_mode != "off"

    def start(self, now_ms: int) -> list[Any]:
        """Begin the first election; returns the first actions."""
        assert not self._started, "start() called twice"
        self._started = True
        self._now_ms = now_ms
        return self._collect(self.peer.start(now_ms))

    def step(self, event: Any, now_ms: int) -> list[Any]:
        """Feed one event; returns the actions it caused (service's first, then the peer's)."""
        peer_actions: list[Any] = []
        if not self._started:
            self._started = True
            peer_actions = self.peer.start(now_ms)
        self._now_ms = now_ms
        t = type(event)
        if t in _CLIENT_EVENTS:
            if self.serving or self.read_only:
                self._take_service(self.service.step(event, now_ms))
            elif t is ClientFramesReceived:
                self._svc.append(CloseClient(event.conn_id, NOT_RUNNING))
            else:
                self._take_service(self.service.step(event, now_ms))
        elif t is Ticked:
            peer_actions += self.peer.step(event, now_ms)
            if self.serving or self.read_only:
                d = self.service.deadline_ms()
                if d is not None and d <= now_ms:
                    self._take_service(self.service.step(event, now_ms))
        elif t is StorageFailed:
            self._take_service(self.service.step(event, now_ms))
        elif t is ReadOnlyModeChanged:
            log.debug("ReadOnlyModeChanged from outside ignored: the node decides read-only")
        else:
            peer_actions += self.peer.step(event, now_ms)
        return self._collect(peer_actions)

    def deadline_ms(self) -> int | None:
        """The next time ``Ticked`` must arrive, or None."""
        d = self.peer.deadline_ms()
        if self.serving or self.read_only:
            s = self.service.deadline_ms()
            if s is not None and (d is None or s < d):
                d = s
        return d

    def status(self) -> PeerStatus:
        """The peer's status (srvr/mntr)."""
        return self.peer.status()

    # ------------------------------------------------------------------ plumbing

    def _take_service(self, actions: list[Any]) -> None:
        """Service actions: AppendTxns of a leader become proposals as they pass."""
        for a in actions:
            if type(a) is AppendTxns:
                self.peer.proposed(a.txns, self._now_ms)
            self._svc.append(a)

    def _pull_service(self) -> None:
        self._take_service(self.service.flush_actions())

    def _collect(self, peer_actions: list[Any]) -> list[Any]:
        while True:
            self._take_service(self.service.flush_actions())
            more = self.peer.take_actions()
            if not more:
                break
            peer_actions.extend(more)
        changed = False
        for a in peer_actions:
            if type(a) is RoleChanged:
                want = a.read_only and a.state == "LOOKING"
                if want != self.read_only:
                    self.read_only = want
                    changed = True
        if changed:
            # ReadOnlyZooKeeperServer startup / shutdown: the service closes its clients.
            self._take_service(self.service.step(ReadOnlyModeChanged(self.read_only),
                                                 self._now_ms))
            self._take_service(self.service.flush_actions())
        out = self._svc
        self._svc = []
        out.extend(peer_actions)
        return out
