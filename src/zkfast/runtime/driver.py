"""The Driver: feeds events to a core and hands its actions to an Env. It does no IO itself.

Production (asyncio/uvloop) and the simulator share this class, so the simulator covers every
line between the sockets and the cores. It keeps exactly one timer: after each step it asks
the core for its next deadline and re-arms the Env's timer when that changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ..core.actions import AppendTxns, CloseClient, PauseClient, ResumeClient, SendToClient
from ..core.events import Event
from .env import Env

__all__ = ["Core", "Driver"]


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

    def step(self, event: Event) -> None:
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
