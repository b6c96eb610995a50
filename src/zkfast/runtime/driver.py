"""The Driver: feeds events to a core and hands its actions to an Env. It does no IO itself.

Production (asyncio/uvloop) and the simulator share this class, so the simulator covers every
line between the sockets and the cores. It keeps exactly one timer: after each step it asks
the core for its next deadline and re-arms the Env's timer when that changed.

``QuorumDriver`` is the same Driver for a quorum peer's one ``QuorumNode`` (docs/zab.md §1):
client and txn-log actions go to the ``Env``, peer actions (election messages, epoch files,
quorum connections, roles) and the database reloads of ZAB sync (``TruncateLog``,
``TakeSnapshot``) to a ``PeerEnv``. Events from either side go back into the same node, and
the one timer follows ``node.deadline_ms()``. The standalone path pays nothing for it: its
dispatch table is the same size as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ..core.actions import (
    AppendTxns,
    CloseClient,
    CloseQuorumConn,
    ConnectToLeader,
    PauseClient,
    ResumeClient,
    RoleChanged,
    SendQuorumPacket,
    SendToClient,
    SendToPeer,
    TakeSnapshot,
    TruncateLog,
    WriteEpoch,
)
from ..core.events import Event
from .env import Env, PeerEnv

__all__ = ["Core", "Driver", "QuorumDriver"]


class Core(Protocol):
    def step(self, event: Event, now_ms: int) -> list[Any]: ...

    def deadline_ms(self) -> int | None: ...


class Driver:
    """Routes events into one core and executes the actions it returns."""

    __slots__ = ("core", "env", "_deadline_ms", "_dispatch")

    def __init__(self, core: Core, env: Env) -> None:
        self.core = core
        self.env = env
        self._deadline_ms: int | None = None
        self._dispatch: dict[type, Callable[[Any], None]] = {
            SendToClient: self._send,
            CloseClient: self._close,
            AppendTxns: self._append,
            PauseClient: self._pause,
            ResumeClient: self._resume,
        }

    def step(self, event: Any) -> None:
        """Feed one event to the core at the Env's current time and run what it asks for."""
        env = self.env
        actions = self.core.step(event, env.now_ms())
        dispatch = self._dispatch
        for action in actions:
            dispatch[type(action)](action)
        deadline = self.core.deadline_ms()
        if deadline != self._deadline_ms:
            self._deadline_ms = deadline
            env.set_timer(deadline)

    def timer_fired(self) -> None:
        """The Env's timer went off."""
        from ..core.events import Ticked

        self._deadline_ms = None
        self.step(Ticked())

    def _send(self, a: SendToClient) -> None:
        self.env.send(a.conn_id, a.data)

    def _close(self, a: CloseClient) -> None:
        self.env.close(a.conn_id, a.reason)

    def _append(self, a: AppendTxns) -> None:
        self.env.append_txns(a.txns)

    def _pause(self, a: PauseClient) -> None:
        self.env.pause(a.conn_id)

    def _resume(self, a: ResumeClient) -> None:
        self.env.resume(a.conn_id)


class QuorumDriver(Driver):
    """The Driver of a quorum peer: one node, client/disk actions to ``env``, the rest to
    ``peer_env`` (see the module docstring)."""

    __slots__ = ()

    def __init__(self, core: Core, env: Env, peer_env: PeerEnv) -> None:
        super().__init__(core, env)
        self._dispatch.update({
            SendToPeer: peer_env.send_to_peer,
            WriteEpoch: peer_env.write_epoch,
            ConnectToLeader: peer_env.connect_to_leader,
            SendQuorumPacket: peer_env.send_quorum_packet,
            CloseQuorumConn: peer_env.close_quorum_conn,
            RoleChanged: peer_env.role_changed,
            TruncateLog: peer_env.truncate_log,
            TakeSnapshot: peer_env.take_snapshot,
        })

    def start(self, actions: list[Any]) -> None:
        """Carry out the actions of the node's ``start`` (the first election round) and arm
        the first timer."""
        dispatch = self._dispatch
        for action in actions:
            dispatch[type(action)](action)
        deadline = self.core.deadline_ms()
        self._deadline_ms = deadline
        self.env.set_timer(deadline)
