"""One client connection: handshake state, auth ids, in-order reply queue, and its statistics.

Theory of operation
-------------------
States (``ClientConn.state``)::

    AWAIT_CONNECT --ConnectRequest, new session--> CONNECTING --createSession applied--> OPEN
    AWAIT_CONNECT --ConnectRequest, resume ok------------------------------------------> OPEN
    AWAIT_CONNECT --ConnectRequest on a learner--> CONNECTING --committed / revalidated--> OPEN
    any ----------- bad frame / auth failure / closeSession applied / expiry ---------> CLOSED

Replies must leave in request order (the Java client pops its pending queue in order). Each
request that cannot be answered at once occupies a slot in ``pending`` (a deque of ``Slot``):
a write waits for its txn to be applied, a sync for the last txn prepped before it, a read that
arrived behind such a slot waits to be executed until it reaches the head. ``ServerCore``
drains the head of the deque whenever something completes, so a read behind a write sees that
write, exactly as Apache's single request pipeline does. Pings, setWatches and reads on a
connection with an empty queue are answered on the spot (the fast path). Auth and SASL packets
bypass the queue, as in Apache (``ZooKeeperServer.processPacket``). On a learner (follower or
observer) a write's slot waits for the leader's committed txn, a sync's for the leader's SYNC,
and frames that arrive while the session is being created or revalidated through the leader
wait in ``held`` (Apache disables receive until ``finishSessionInit``).

The statistics are those ``ServerCnxn`` keeps for ``cons``/``stat``: packets received and sent,
min/avg/max latency, last operation, last cxid/zxid, last response time and latency.
"""

from __future__ import annotations

from collections import deque
from typing import Any

__all__ = ["ClientConn", "Slot", "AWAIT_CONNECT", "CONNECTING", "OPEN", "CLOSED"]

AWAIT_CONNECT = 0
CONNECTING = 1
OPEN = 2
CLOSED = 3


class Slot:
    """One queued request of a connection, in request order.

    ``kind``: "write" (waits for ``zxid`` to be applied; ``reply`` filled in then), "sync"
    (waits for ``zxid``), "read" (runs when it reaches the head), "connect" (createSession),
    "close" (closeSession: reply, then close).
    """

    __slots__ = ("kind", "xid", "opcode", "zxid", "record", "reply", "done", "received_ms")

    def __init__(self, kind: str, xid: int, opcode: int, zxid: int, record: Any,
                 received_ms: int) -> None:
        self.kind = kind
        self.xid = xid
        self.opcode = opcode
        self.zxid = zxid
        self.record = record
        self.reply: bytes | None = None
        self.done = False
        self.received_ms = received_ms


class ClientConn:
    """Per-connection state of ``ServerCore`` (ServerCnxn / NIOServerCnxn)."""

    __slots__ = (
        "conn_id", "remote_host", "remote_port", "state", "session_id", "timeout_ms",
        "auth_ids", "read_only_byte", "pending", "established_ms", "packets_received",
        "packets_sent", "min_latency_ms", "max_latency_ms", "total_latency_ms", "count",
        "last_op", "last_cxid", "last_zxid", "last_response_ms", "last_latency_ms", "sasl",
        "secure", "held",
    )

    def __init__(self, conn_id: int, remote_host: str, remote_port: int, now_ms: int,
                 secure: bool = False) -> None:
        self.conn_id = conn_id
        self.remote_host = remote_host
        self.remote_port = remote_port
        self.secure = secure
        self.state = AWAIT_CONNECT
        self.session_id = 0
        self.timeout_ms = 0
        #: Auth ids as (scheme, id) pairs; the ip id is implicit from the remote address.
        self.auth_ids: list[tuple[str, str]] = [("ip", remote_host)]
        #: The ConnectRequest's readOnly byte (None: the client did not send one).
        self.read_only_byte: bool | None = None
        self.pending: deque[Slot] = deque()
        self.established_ms = now_ms
        self.sasl: Any = None
        #: A learner's connection whose session is being created or revalidated by the
        #: leader: the frames that arrived meanwhile, handled once it is OPEN (else None).
        self.held: list[bytes] | None = None
        self.reset_stats()

    def reset_stats(self) -> None:
        """``crst``: ServerCnxn.resetStats."""
        self.packets_received = 0
        self.packets_sent = 0
        self.min_latency_ms = -1  # Long.MAX_VALUE in Apache; printed as 0 when count == 0
        self.max_latency_ms = 0
        self.total_latency_ms = 0
        self.count = 0
        self.last_op = "NA"
        self.last_cxid = -1
        self.last_zxid = -1
        self.last_response_ms = 0
        self.last_latency_ms = 0

    def update_for_response(self, cxid: int, zxid: int, op: str, received_ms: int,
                            now_ms: int) -> None:
        """ServerCnxn.updateStatsForResponse."""
        if cxid >= 0:
            self.last_cxid = cxid
        self.last_zxid = zxid
        self.last_op = op
        self.last_response_ms = now_ms
        latency = now_ms - received_ms
        self.last_latency_ms = latency
        if self.min_latency_ms < 0 or latency < self.min_latency_ms:
            self.min_latency_ms = latency
        if latency > self.max_latency_ms:
            self.max_latency_ms = latency
        self.total_latency_ms += latency
        self.count += 1

    @property
    def outstanding(self) -> int:
        return len(self.pending)

    def interest_ops(self) -> int:
        """The ``[<ops hex>]`` of connection lines: 1 (OP_READ) while reading is enabled."""
        return 0 if self.state == CLOSED else 1

    def brief_line(self) -> str:
        """`` /ip:port[ops](queued=,recved=,sent=)`` as ``stat`` prints it."""
        return (f" /{self.remote_host}:{self.remote_port}[{self.interest_ops():x}]"
                f"(queued={self.outstanding},recved={self.packets_received},"
                f"sent={self.packets_sent})")

    def full_line(self) -> str:
        """The ``cons`` line (ServerCnxn.dumpConnectionInfo(brief=false))."""
        s = (f" /{self.remote_host}:{self.remote_port}[{self.interest_ops():x}]"
             f"(queued={self.outstanding},recved={self.packets_received},"
             f"sent={self.packets_sent}")
        if self.session_id != 0:
            avg = self.total_latency_ms // self.count if self.count else 0
            s += (f",sid=0x{self.session_id & 0xFFFFFFFFFFFFFFFF:x},lop={self.last_op}"
                  f",est={self.established_ms},to={self.timeout_ms}")
            if self.last_cxid >= 0:
                s += f",lcxid=0x{self.last_cxid:x}"
            s += f",lzxid=0x{self.last_zxid & 0xFFFFFFFFFFFFFFFF:x}"
            s += f",lresp={self.last_response_ms},llat={self.last_latency_ms}"
            s += (f",minlat={self.min_latency_ms if self.min_latency_ms >= 0 else 0}"
                  f",avglat={avg},maxlat={self.max_latency_ms}")
        return s + ")"
