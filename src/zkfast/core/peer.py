"""QuorumPeerCore: the quorum peer's role loop (skeleton; the logic lands next)."""

from __future__ import annotations

from typing import Any

from ..config import ServerConfig
from .events import PeerEvent

__all__ = ["QuorumPeerCore"]


class QuorumPeerCore:
    """The QuorumPeer role machine: LOOKING -> LEADING/FOLLOWING/OBSERVING -> LOOKING."""

    def __init__(self, config: ServerConfig, *, last_zxid: int, accepted_epoch: int,
                 current_epoch: int, now_ms: int) -> None:
        assert config.quorum is not None, "QuorumPeerCore needs ServerConfig.quorum"
        self.config = config

    def start(self, now_ms: int) -> list[Any]:
        """Begin the first election; returns the first actions (notifications, RoleChanged)."""
        return []

    def step(self, event: PeerEvent, now_ms: int) -> list[Any]:
        return []

    def deadline_ms(self) -> int | None:
        return None
