"""Typed interface of the compiled core (``_core.pyx``), as mypy sees it.

``_core_py`` has the same API; ``zkfast._impl.core`` is one or the other.
"""

from typing import Any, TypeAlias

FieldSpec: TypeAlias = tuple[str, int, Any]
Layout: TypeAlias = tuple[FieldSpec, ...]
Buffer: TypeAlias = bytes | bytearray | memoryview

IMPLEMENTATION: str
T_INT: int
T_LONG: int
T_BOOL: int
T_USTRING: int
T_BUFFER: int
T_VECTOR: int
T_RECORD: int
T_BYTE: int
STAT_BYTES: int
STAT_LAYOUT: Layout
REPLY_HEADER_BYTES: int

class ProtocolError(ValueError):
    field: str
    offset: int
    expected: str
    found: str
    def __init__(self, field: str, offset: int, expected: str, found: str) -> None: ...

def split_frames(buf: Buffer, offset: int, frame_bytes_max: int) -> tuple[list[bytes], int]: ...
def decode_record(
    layout: Layout, buf: Buffer, offset: int = 0, end: int = -1
) -> tuple[tuple[Any, ...], int]: ...
def encode_record(layout: Layout, values: Any, out: bytearray) -> None: ...
def decode_request_header(frame: Buffer) -> tuple[int, int]: ...
def encode_reply_frame(
    xid: int, zxid: int, err: int, layout: Layout | None, body: Any
) -> bytes: ...
def java_utf8(text: str) -> bytes: ...
def encode_stat(stat: Any, out: bytearray) -> None: ...
def make_zxid(epoch: int, counter: int) -> int: ...
def zxid_epoch(zxid: int) -> int: ...
def zxid_counter(zxid: int) -> int: ...
def vote_greater(
    new_id: int,
    new_zxid: int,
    new_epoch: int,
    cur_id: int,
    cur_zxid: int,
    cur_epoch: int,
    new_weight: int = 1,
) -> bool: ...
def count_quorum(
    sids: Any,
    member_group: dict[int, int],
    member_weight: dict[int, int],
    group_half: dict[int, int],
    groups_min: int,
) -> bool: ...
def encode_snapshot_nodes(nodes: Any, open_acl: Any, out: bytearray) -> list[Any]: ...
def node_digest(path: str, node: Any) -> int: ...

ZNODE_FIELDS: tuple[str, ...]

class ZNode:
    data: bytes | None
    acl: Any
    czxid: int
    mzxid: int
    ctime: int
    mtime: int
    version: int
    cversion: int
    aversion: int
    ephemeral_owner: int
    pzxid: int
    children: Any  # dict[str, ZNode], or a read-only empty mapping for a leaf
    _digest: int | None
    def __init__(
        self,
        data: bytes | None,
        acl: Any,
        czxid: int = ...,
        mzxid: int = ...,
        ctime: int = ...,
        mtime: int = ...,
        version: int = ...,
        cversion: int = ...,
        aversion: int = ...,
        ephemeral_owner: int = ...,
        pzxid: int = ...,
        children: dict[str, ZNode] | None = ...,
    ) -> None: ...
    def stat_persisted(self) -> tuple[int, int, int, int, int, int, int, int, int]: ...
    def link(self, name: str, child: ZNode) -> ZNode: ...
    def unlink(self, name: str) -> ZNode | None: ...

class AckTracker:
    last_committed: int  # read-only
    last_proposed: int  # read-only
    committed_acks: list[tuple[int, frozenset[int]]] | None
    def __init__(
        self,
        member_group: dict[int, int],
        member_weight: dict[int, int],
        group_half: dict[int, int],
        groups_min: int,
        *,
        last_committed: int,
    ) -> None: ...
    @property
    def outstanding(self) -> int: ...
    def propose(self, zxid: int, data: Any) -> None: ...
    def ack(self, sid: int, zxid: int) -> list[tuple[int, Any]]: ...
    def ack_upto(self, sid: int, zxid: int) -> list[tuple[int, Any]]: ...
    def forget(self, sid: int, after: int) -> None: ...
    def ready(self) -> list[tuple[int, Any]]: ...
    def after(self, zxid: int) -> list[tuple[int, Any]]: ...

def encode_snapshot(
    nodes: Any, open_acl: Any, head: Any, tail: Any, size_hint: int = ...
) -> bytes: ...

class SnapshotLoader:
    acls: dict[int, Any]  # read-only
    nodes: dict[str, Any]  # read-only
    owned: list[tuple[str, int]]  # read-only
    quota_limits: list[str]  # read-only
    count: int  # read-only
    done: bool  # read-only
    @property
    def digest(self) -> int: ...
    @property
    def data_size(self) -> int: ...
    def __init__(self, acls: dict[int, Any], nodes: dict[str, Any]) -> None: ...
    def feed(
        self, buf: Buffer, offset: int = ..., base: int = ..., final: bool = ...
    ) -> int: ...
