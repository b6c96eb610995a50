"""The znode tree: stats, ephemerals, containers, TTL nodes and the tree digest.

Theory of operation
-------------------
``DataTree`` holds every znode in one dict keyed by full path (``nodes``; the root is ``"/"``).
Each ``ZNode`` keeps its data, its ACL list, the persisted stat (zk-formats §2.3: the nine
``StatPersisted`` fields) and the set of its child *names*. The wire ``Stat`` is derived on
demand by ``stat_of`` (``dataLength``/``numChildren`` are computed and the client sees the
v3 cversion ``2*persisted - numChildren``, as ``DataNode.copyStat`` does).

The tree only changes through ``apply_txn(header, record)``, one committed txn at a time, in
zxid order. Applying never fails: a txn that no longer fits the tree (replaying a log over a
fuzzy snapshot) is absorbed exactly as Apache's ``DataTree.processTxn`` absorbs it, because a
diverging apply would make this peer's digest differ from its ensemble's:

* create on a missing parent changes nothing; create of an existing node changes nothing,
  except that a plain ``create`` (type 1, also inside a multi) then repairs the parent's
  cversion/pzxid from the txn (``setCversionPzxid``, the fuzzy-snapshot case);
* delete of a missing node still raises the parent's pzxid when the txn's zxid is larger
  (``deleteNode`` touches the parent before it looks for the child);
* setData/setACL of a missing node change nothing;
* a multi whose sub-txns include an error txn changes nothing (Prep turned every op into an
  error); otherwise every sub-txn is applied in order, each absorbing its own failure. An
  unknown sub-txn type ends the multi there (Apache's ``IOException`` path). ``create2`` never
  appears inside a multi: clients' create2 ops travel as ``create`` (1).

Each change returns the watch triggers it causes, in firing order, as ``(path, EventType)``
pairs; the caller hands them to ``WatchManager.trigger`` after the whole txn is applied, so
notifications of a txn precede its reply. A create yields ``(path, NodeCreated)`` then
``(parent, NodeChildrenChanged)``; a delete ``(path, NodeDeleted)`` then
``(parent, NodeChildrenChanged)``; setData and reconfig ``(path, NodeDataChanged)``.

The tree digest (zk-formats §5, Apache ``DigestCalculator``/``NodeHashMapImpl``) is the sum mod
2**64 of a CRC32 per node, over every node except those under ``/zookeeper/``. Every node caches
its own CRC (``_digest``); a change subtracts the cached value, mutates, recomputes and adds,
so ``digest()`` is O(1). The root hashes under the path ``""``.

``node_count`` and ``count_descendants("/")`` follow Apache's map, which stores the root twice
(``""`` and ``"/"``); ``approximate_data_size`` follows ``cachedApproximateDataSize`` (the
``mntr`` gauge), kept incrementally from path length plus data length.

Null data: a znode's data is ``None`` when it was created or set with a null buffer (length -1
on the wire), as Apache's ``DataNode.data`` is null then. It stays distinct from ``b""``: getData
answers null, snapshots and txns carry -1. Everything that measures data counts null as 0 bytes
(``dataLength``, the data size, quota bytes), and the digest hashes null and empty alike
(``DigestCalculator`` skips a null buffer, and an empty one adds nothing to a CRC).

Quotas (zk-formats §2.1; Apache ``DataTree.updateQuotaStat``/``updateQuotaForPath``,
``PathTrie``, ``StatsTrack``): each server keeps ``/zookeeper/quota/<path>/zookeeper_stats``
itself; nothing about it travels in txns. ``_quota_paths`` is the trie of quota'd paths, kept as
the set of their normalised forms: creating ``.../zookeeper_limits`` adds a path, deleting it
removes it, loading a snapshot rebuilds it from every leaf ``zookeeper_limits`` node. Creating a
``zookeeper_stats`` node (and loading a snapshot) recounts its subtree into it as
``count=N,bytes=M``; afterwards each create, delete and setData below the deepest quota'd
ancestor adds its count/bytes difference to that ancestor's stats text. Only the stats node's
data changes (no stat field, no digest: it lives under ``/zookeeper/``; and, as in Apache, not the
approximate data size). With no quota anywhere the writes pay one empty-set test.

Nothing here imports asyncio, sockets, time, random, os or threading; there is no logging on
the hot path.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from .._impl import core
from ..wire.constants import CONTAINER_EPHEMERAL_OWNER, TTL_MAX_MS, EventType

__all__ = [
    "ZNode",
    "parse_stats_track",
    "format_stats_track",
    "DataTree",
    "AclEntry",
    "Trigger",
    "validate_path",
    "node_digest",
    "parent_of",
    "OPEN_ACL_UNSAFE",
    "READ_ACL_UNSAFE",
    "ZOOKEEPER_PATH",
    "QUOTA_PATH",
    "CONFIG_PATH",
    "SYSTEM_PATHS",
    "FRESH_TREE_DIGEST",
]

#: One ACL entry as decoded by ``wire/jute.ACL``: ``(perms, (scheme, id))``.
AclEntry = tuple[int, tuple[str, str]]
#: One watch trigger: the path and the event to fire on it.
Trigger = tuple[str, EventType]

#: ``ZooDefs.Ids.OPEN_ACL_UNSAFE`` and ``READ_ACL_UNSAFE``.
OPEN_ACL_UNSAFE: list[AclEntry] = [(31, ("world", "anyone"))]
READ_ACL_UNSAFE: list[AclEntry] = [(1, ("world", "anyone"))]

ZOOKEEPER_PATH = "/zookeeper"
QUOTA_PATH = "/zookeeper/quota"
CONFIG_PATH = "/zookeeper/config"
#: Paths that may never be deleted (``DataTree.isSpecialPath``); Prep answers BadArguments.
SYSTEM_PATHS = frozenset({"/", ZOOKEEPER_PATH, QUOTA_PATH, CONFIG_PATH})
#: Digest of a fresh tree (verified against Apache ZooKeeper 3.8.0, zk-formats §5).
FRESH_TREE_DIGEST = 0x51C6D660

#: Quotas.limitNode / Quotas.statNode.
QUOTA_LIMITS_NODE = "zookeeper_limits"
QUOTA_STATS_NODE = "zookeeper_stats"
_QUOTA_LIMITS_SUFFIX = "/" + QUOTA_LIMITS_NODE
_QUOTA_STATS_SUFFIX = "/" + QUOTA_STATS_NODE
_STATS_SEPARATORS = re.compile("[,;]+")
_EQUALS = re.compile("=")
_JAVA_LONG = re.compile("[+-]?[0-9]+")
#: Characters Java's String.trim() strips (every code unit <= U+0020).
_JAVA_TRIM = "".join(chr(c) for c in range(33))
_U64 = (1 << 64) - 1
_TTL_OWNER_MASK = -0x0100000000000000  # 0xff00000000000000 as a signed 64-bit value
_EXTENDED_RESERVED_BITS = 0x00FFFF0000000000

_NODE_CREATED = EventType.NodeCreated
_NODE_DELETED = EventType.NodeDeleted
_NODE_DATA_CHANGED = EventType.NodeDataChanged
_NODE_CHILDREN_CHANGED = EventType.NodeChildrenChanged

# PathUtils.validatePath works on UTF-16 code units: anything outside the BMP is a surrogate
# pair, which falls in the forbidden \ud800-\uf8ff range, so every astral character is invalid.
_BAD_PATH_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\uf8ff\ufff0-\U0010ffff]")


def _wrap32(value: int) -> int:
    """Java ``int`` overflow: the cversion arithmetic wraps rather than growing."""
    return ((value + 0x80000000) & 0xFFFFFFFF) - 0x80000000


def validate_path(path: str) -> bool:
    """Return whether ``path`` is a valid znode path (``PathUtils.validatePath``, §2.2).

    Valid: non-empty, starts with ``/``, no trailing ``/`` (except the root), no empty, ``.``
    or ``..`` component, and none of the forbidden characters.
    """
    if not path or path[0] != "/":
        return False
    if len(path) == 1:
        return True
    if path[-1] == "/" or "//" in path:
        return False
    if "/." in path:
        for name in path.split("/"):
            if name == "." or name == "..":
                return False
    return _BAD_PATH_CHARS.search(path) is None


def parent_of(path: str) -> str:
    """Return the parent path of a non-root path (``"/"`` for children of the root)."""
    return path[: path.rfind("/")] or "/"


def _java_split(pattern: re.Pattern[str], text: str) -> list[str]:
    """``String.split(regex)``: no match gives ``[text]``; trailing empty strings are dropped."""
    parts = pattern.split(text)
    if len(parts) == 1:
        return parts
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def _java_long(text: str) -> int:
    """``Long.parseLong``: ASCII digits with an optional sign, within 64 bits."""
    if _JAVA_LONG.fullmatch(text) is None:
        raise ValueError(f"not a long: {text!r}")
    value = int(text)
    if not -(1 << 63) <= value < (1 << 63):
        raise ValueError(f"long out of range: {text!r}")
    return value


def parse_stats_track(data: bytes | None) -> dict[str, int]:
    """``new StatsTrack(data)``: the ``key=value`` pairs of a quota node's text.

    Pairs are split on runs of ``,`` and ``;`` and each pair on ``=`` (so the ``bytes=M=``
    marker of the newer format reads as ``bytes=M``); an empty value reads as -1. A missing
    key reads as -1 too (``StatsTrack.getValue``): use ``.get(key, -1)``.

    Raises:
        ValueError: a pair without a value or a value that is not a long (Apache's
            ``NumberFormatException`` / ``ArrayIndexOutOfBoundsException``).
    """
    out: dict[str, int] = {}
    if not data:
        return out
    for pair in _java_split(_STATS_SEPARATORS, data.decode("utf-8", "replace")):
        kv = _java_split(_EQUALS, pair)
        if len(kv) < 2:
            raise ValueError(f"no value in {pair!r}")
        out[kv[0]] = -1 if kv[1] == "" else _java_long(kv[1])
    return out


def format_stats_track(stats: dict[str, int]) -> bytes:
    """``StatsTrack.toString``: ``count=N,bytes=M``, then ``=;key=value`` for other keys, sorted."""
    text = f"count={stats.get('count', -1)},bytes={stats.get('bytes', -1)}"
    extra = sorted(k for k in stats if k != "count" and k != "bytes")
    if extra:
        text += "=" + "".join(f";{k}={stats[k]}" for k in extra)
    return text.encode("utf-8")


def _trie_key(path: str) -> str | None:
    """``PathTrie``'s view of a path: its components less blank ones, as ``/a/b``; None for
    a path with no component (Apache's trie rejects it)."""
    parts = [p for p in path.split("/") if p.strip(_JAVA_TRIM)]
    return "/" + "/".join(parts) if parts else None


#: One znode: data, ACL, the persisted stat and its children (``core.ZNode``). ``data`` is None
#: for null data (distinct from ``b""``, see the module docstring). The stat fields are the nine
#: of ``StatPersisted``; ``cversion`` is the persisted one (it counts child creations).
#: ``_digest`` caches this node's CRC32 contribution to the tree digest (``None`` until
#: computed; 0 for nodes under ``/zookeeper/``). ``children`` maps each child's name to its
#: node, in the order the children were linked (creation order; after a restore, the
#: snapshot's order): snapshots are written in that order, so the same history gives the same
#: bytes without sorting, and a walk needs no path lookups. The compiled class keeps the stat
#: in C fields and stays out of the cyclic collector.
ZNode = core.ZNode


#: ``node_digest(path, node) -> int``: CRC32 of one node as the tree digest counts it (0 under
#: ``/zookeeper/``). ``path`` is the full path; the root may be given as ``"/"`` or ``""``. Java
#: hashes ``String.getBytes()`` (UTF-8, an unpaired surrogate becomes ``?``), then the data,
#: then czxid, mzxid, pzxid, ctime, mtime, version, cversion, aversion, ephemeralOwner
#: (``DigestCalculator``). A kernel of the core: every create and setData rehashes two nodes.
node_digest: Callable[[str, ZNode], int] = core.node_digest


class _NoNode(Exception):
    """A txn no longer fits the tree (``KeeperException.NoNodeException`` in Apache)."""


class _NodeExists(Exception):
    """A create found its node (``KeeperException.NodeExistsException`` in Apache)."""


class _BadSubTxn(Exception):
    """A multi carries a sub-txn type Apache cannot apply; the rest of the multi is skipped."""


Header = tuple[int, int, int, int, int]


class DataTree:
    """All znodes of one server, changed only by committed txns (see the module docstring).

    Args:
        extended_types_enabled: ``zookeeper.extendedTypesEnabled``. Apache classifies an
            ephemeralOwner with the top byte 0xff as a TTL node only when this is on
            (``EphemeralType.get``); otherwise it is an ordinary session owner. It decides
            which of ``ephemerals``/``ttls`` a node joins and what ``stat_of`` shows.
    """

    __slots__ = (
        "nodes",
        "ephemerals",
        "containers",
        "ttls",
        "last_processed_zxid",
        "extended_types_enabled",
        "_digest",
        "_data_size",
        "_apply",
        "_quota_paths",
    )

    def __init__(self, *, extended_types_enabled: bool = False) -> None:
        self.nodes: dict[str, ZNode] = {}
        self.ephemerals: dict[int, set[str]] = {}
        self.containers: set[str] = set()
        self.ttls: set[str] = set()
        self.last_processed_zxid = 0
        self.extended_types_enabled = extended_types_enabled
        self._digest = 0
        self._data_size = 0
        #: Normalised quota'd paths (Apache's ``pTrie``); empty on the fast path.
        self._quota_paths: set[str] = set()
        self._apply: dict[int, Any] = {
            -10: self._apply_nothing,  # createSession: the session table's business
            -11: self._apply_close_session,
            1: self._apply_create,
            15: self._apply_create,
            19: self._apply_create_container,
            21: self._apply_create_ttl,
            2: self._apply_delete,
            20: self._apply_delete,
            5: self._apply_set_data,
            16: self._apply_set_data,  # reconfig: setData on /zookeeper/config
            7: self._apply_set_acl,
            13: self._apply_nothing,  # check
            -1: self._apply_nothing,  # error
            14: self._apply_multi,
        }
        # The fresh tree of zk-formats §2.1: all-zero stats, empty data.
        quota = ZNode(b"", OPEN_ACL_UNSAFE)
        # ZOOKEEPER-2014: the config node is read-only to the world, set with aversion -1.
        config = ZNode(b"", READ_ACL_UNSAFE, aversion=-1)
        # config before quota: the order of Apache's snapshot.0, which a fresh tree's matches.
        proc = ZNode(b"", OPEN_ACL_UNSAFE, children={"config": config, "quota": quota})
        root = ZNode(b"", OPEN_ACL_UNSAFE, children={"zookeeper": proc})
        self._put("/", root)
        self._put(ZOOKEEPER_PATH, proc)
        self._put(QUOTA_PATH, quota)
        self._put(CONFIG_PATH, config)

    # ------------------------------------------------------------------ building

    @classmethod
    def from_nodes(
        cls,
        nodes: Iterable[tuple[str, ZNode]],
        *,
        last_processed_zxid: int = 0,
        extended_types_enabled: bool = False,
    ) -> DataTree:
        """Build a tree from loaded nodes (a snapshot), as ``DataTree.deserialize`` does.

        ``nodes`` yields ``(path, node)`` parents first; the root may be named ``""`` or
        ``"/"``. Children are relinked from the paths, in the order given (the nodes' own are
        cleared), and
        ``ephemerals``/``containers``/``ttls``, the digest and the data size are recomputed.

        Raises:
            ValueError: a node's parent is missing, or no root was given.
        """
        tree = cls(extended_types_enabled=extended_types_enabled)
        tree.nodes = {}
        tree._digest = 0
        tree._data_size = 0
        for path, node in nodes:
            node.children = None
            node._digest = None
            if path == "" or path == "/":
                tree._put("/", node)
                continue
            parent = tree.nodes.get(parent_of(path))
            if parent is None:
                raise ValueError(f"invalid snapshot: no parent for {path!r}")
            parent.link(path[path.rfind("/") + 1 :], node)
            tree._put(path, node)
            tree._index_owner(path, node.ephemeral_owner)
        if "/" not in tree.nodes:
            raise ValueError("invalid snapshot: no root node")
        # Apache recounts the size over its map, where the root appears twice.
        root_data = tree.nodes["/"].data
        tree._data_size += len(root_data) if root_data is not None else 0
        tree.last_processed_zxid = last_processed_zxid
        tree._setup_quota()
        return tree

    @classmethod
    def from_snapshot_records(
        cls,
        fill: Callable[[Any], None],
        acls: dict[int, list[AclEntry]],
        *,
        last_processed_zxid: int = 0,
        extended_types_enabled: bool = False,
        loader: Callable[[dict[int, list[AclEntry]], dict[str, ZNode]], Any] | None = None,
    ) -> DataTree:
        """Build a tree from a snapshot's node records, decoded straight into znodes.

        ``fill(loader)`` feeds the records to a ``core.SnapshotLoader`` made with ``acls``
        (each ACL id of the snapshot's cache mapped to the list its nodes share) and this
        tree's node map; the loader links each node to its parent as ``from_nodes`` does and
        sums digests and sizes on the way. The result is the tree ``from_nodes`` builds from
        the same nodes: digest, data size, ``ephemerals``/``containers``/``ttls`` and quotas
        set up from what the loader gathered. ``loader`` replaces ``core.SnapshotLoader``
        (tests and benchmarks pass either twin's).

        Raises:
            ValueError: a node's parent is missing (raised by the loader), or no root.
            Whatever ``fill`` raises.
        """
        tree = cls(extended_types_enabled=extended_types_enabled)
        nodes: dict[str, ZNode] = {}
        records = (core.SnapshotLoader if loader is None else loader)(acls, nodes)
        fill(records)
        root = nodes.get("/")
        if root is None:
            raise ValueError("invalid snapshot: no root node")
        tree.nodes = nodes
        tree._digest = records.digest & _U64
        # Apache recounts the size over its map, where the root appears twice.
        root_data = root.data
        tree._data_size = records.data_size + (len(root_data) if root_data is not None else 0)
        for path, owner in records.owned:
            tree._index_owner(path, owner)
        tree.last_processed_zxid = last_processed_zxid
        tree._setup_quota(records.quota_limits)
        return tree

    def _setup_quota(self, limits_paths: Iterable[str] | None = None) -> None:
        """``DataTree.setupQuota`` after a load: every leaf ``zookeeper_limits`` node under
        ``/zookeeper/quota`` marks its path quota'd and recounts that path's stats node.

        ``limits_paths``, when given, holds every such path of the map (a loader gathered
        them), so the map need not be scanned.
        """
        prefix = QUOTA_PATH + "/"
        nodes = self.nodes
        candidates = (p for p in nodes if p.startswith(prefix)) if limits_paths is None \
            else set(limits_paths)
        for path in sorted(candidates):
            if not path.endswith(_QUOTA_LIMITS_SUFFIX) or nodes[path].children:
                continue
            real = path[len(QUOTA_PATH) : path.index(_QUOTA_LIMITS_SUFFIX)]
            self._update_quota_for_path(real)
            key = _trie_key(real)
            if key is not None:
                self._quota_paths.add(key)

    def _put(self, path: str, node: ZNode) -> None:
        """Insert a node into the map, counting its digest and size (not its parent link)."""
        self.nodes[path] = node
        h = node_digest(path, node)
        node._digest = h
        self._digest = (self._digest + h) & _U64
        data = node.data
        self._data_size += len(path) + (len(data) if data is not None else 0)

    # ------------------------------------------------------------------ reads

    def get_node(self, path: str) -> ZNode | None:
        """The node at ``path``, or None."""
        return self.nodes.get(path)

    def stat_of(self, node: ZNode) -> tuple[int, int, int, int, int, int, int, int, int, int, int]:
        """The 11-field wire ``Stat`` of ``node`` (``DataNode.copyStat``).

        Clients see the v3 cversion ``2*persisted - numChildren`` (Java int arithmetic), and an
        ephemeralOwner of 0 for container and TTL nodes.
        """
        nc = len(node.children)
        data = node.data
        owner = node.ephemeral_owner
        if owner < 0 and (
            owner == CONTAINER_EPHEMERAL_OWNER
            or (self.extended_types_enabled and self._is_ttl_owner(owner))
        ):
            owner = 0
        return (
            node.czxid,
            node.mzxid,
            node.ctime,
            node.mtime,
            node.version,
            _wrap32(node.cversion * 2 - nc),
            node.aversion,
            owner,
            len(data) if data is not None else 0,
            nc,
            node.pzxid,
        )

    def children_of(self, path: str) -> list[str]:
        """Child names of ``path``, sorted (deterministic; Apache's order is a HashSet's).

        Raises:
            KeyError: no node at ``path``.
        """
        return sorted(self.nodes[path].children)

    def count_descendants(self, path: str) -> int:
        """All nodes below ``path`` (``getAllChildrenNumber``); 0 for a missing path.

        For ``/`` Apache answers ``nodes.size() - 2``: every node except the root and its alias.
        """
        if path == "/":
            return len(self.nodes) - 1
        node = self.nodes.get(path)
        if node is None:
            return 0
        count = 0
        stack = [node]
        while stack:
            n = stack.pop()
            count += len(n.children)
            for child in n.children.values():
                if child.children:
                    stack.append(child)
        return count

    @property
    def node_count(self) -> int:
        """Apache's ``getNodeCount``: its map holds the root twice (a fresh tree says 5)."""
        return len(self.nodes) + 1

    @property
    def approximate_data_size(self) -> int:
        """``cachedApproximateDataSize``: sum of path length + data length, kept incrementally."""
        return self._data_size

    @property
    def ephemerals_count(self) -> int:
        """Number of ephemeral nodes over all sessions (``getEphemeralsCount``)."""
        return sum(len(paths) for paths in self.ephemerals.values())

    def digest(self) -> int:
        """The tree digest (zk-formats §5): unsigned 64-bit."""
        return self._digest

    def recompute_digest(self) -> int:
        """The digest recomputed from scratch (for tests and snapshot checks; O(nodes))."""
        total = 0
        for path, node in self.nodes.items():
            total += node_digest(path, node)
        return total & _U64

    # ------------------------------------------------------------------ apply

    def apply_txn(self, header: Header, record: Any) -> list[Trigger]:
        """Apply one committed txn; return its watch triggers in firing order.

        Args:
            header: the ``TXN_HEADER`` tuple ``(clientId, cxid, zxid, time, type)``.
            record: the decoded record of ``type`` (``wire/jute.TXNS``); for a multi, the list
                of ``(type, record)`` sub-txns; for closeSession it may be None (pre-3.6 logs).

        Never raises for a txn that does not fit the tree (see the module docstring).
        """
        triggers: list[Trigger] = []
        fn = self._apply.get(header[4])
        if fn is not None:
            try:
                fn(header, record, triggers)
            except (_NoNode, _NodeExists, _BadSubTxn):
                pass
        if header[2] > self.last_processed_zxid:
            self.last_processed_zxid = header[2]
        return triggers

    def apply_multi_results(
        self, header: Header, record: Any
    ) -> tuple[list[Trigger], list[tuple[int, Any, Any]]]:
        """Apply a committed multi txn as ``apply_txn`` does, and also return its per-op
        results as ``processTxn``'s ``multiResult`` holds them (a learner answers its client's
        multi from these): ``(type, path, stat)`` per sub-txn, the Stat (``stat_of``) taken
        right after that op for setData, createContainer and createTTL; a deleteContainer
        reports as delete; a sub-txn that does not fit the tree is ``(-1, code, None)``.
        A multi with an error sub-txn changes nothing and returns no results (its outcome is
        in the txn itself).
        """
        triggers: list[Trigger] = []
        results: list[tuple[int, Any, Any]] = []
        subs: list[tuple[int, Any]] = record
        if all(sub_type != -1 for sub_type, _ in subs):
            client_id, cxid, zxid, time, _ = header
            nodes = self.nodes
            for sub_type, sub_record in subs:
                fn = self._multi_ops.get(sub_type)
                if fn is None:
                    break  # apply_txn's _BadSubTxn: the multi ends there
                path = sub_record[0]
                try:
                    fn(self, (client_id, cxid, zxid, time, sub_type), sub_record, triggers)
                except _NoNode:
                    results.append((-1, -101, None))
                    continue
                except _NodeExists:
                    results.append((-1, -110, None))
                    continue
                if sub_type in (5, 19, 21):
                    node = nodes.get(path)
                    results.append((sub_type, path,
                                    self.stat_of(node) if node is not None else None))
                else:
                    results.append((2 if sub_type == 20 else sub_type, path, None))
        if header[2] > self.last_processed_zxid:
            self.last_processed_zxid = header[2]
        return triggers, results

    def _apply_nothing(self, header: Header, record: Any, triggers: list[Trigger]) -> None:
        """createSession, check and error txns leave the tree as it is."""

    def _apply_create(self, header: Header, record: Any, triggers: list[Trigger]) -> None:
        # CreateTxn{path, data, acl, ephemeral, parentCVersion}; CreateTxnV0 (pre-3.3 logs)
        # has no parentCVersion, which reads as -1 (parent + 1).
        path = record[0]
        owner = header[0] if record[3] else 0
        parent_cversion = record[4] if len(record) > 4 else -1
        try:
            self._create_node(
                path, record[1], record[2], owner, parent_cversion, header[2], header[3],
                triggers,
            )
        except _NodeExists:
            if header[4] == 1:
                # Replaying a create over a fuzzy snapshot: the node was deleted and recreated
                # after the parent was serialized. Repair the parent (processTxn, NODEEXISTS).
                self._set_cversion_pzxid(parent_of(path), parent_cversion, header[2])
            raise

    def _apply_create_container(
        self, header: Header, record: Any, triggers: list[Trigger]
    ) -> None:
        # CreateContainerTxn{path, data, acl, parentCVersion}
        self._create_node(
            record[0], record[1], record[2], CONTAINER_EPHEMERAL_OWNER, record[3], header[2],
            header[3], triggers,
        )

    def _apply_create_ttl(self, header: Header, record: Any, triggers: list[Trigger]) -> None:
        # CreateTTLTxn{path, data, acl, parentCVersion, ttl}
        ttl = record[4]
        if not 0 < ttl <= TTL_MAX_MS:
            # Apache's apply throws here and its server stops (3.8.0 preps such a txn from a
            # createTTL with a plain mode); zkfast never preps one, and a logged one from an
            # Apache dataDir creates nothing rather than stopping this server.
            raise _NoNode(record[0])
        self._create_node(
            record[0], record[1], record[2], _TTL_OWNER_MASK | ttl, record[3], header[2],
            header[3], triggers,
        )

    def _apply_delete(self, header: Header, record: Any, triggers: list[Trigger]) -> None:
        self._delete_node(record[0], header[2], triggers)

    def _apply_set_data(self, header: Header, record: Any, triggers: list[Trigger]) -> None:
        # SetDataTxn{path, data, version}: the version was decided by Prep; copy it.
        path = record[0]
        node = self.nodes.get(path)
        if node is None:
            raise _NoNode(path)
        old = node._digest
        data = record[1]
        old_data = node.data
        diff = (len(data) if data is not None else 0) - (
            len(old_data) if old_data is not None else 0)
        self._data_size += diff
        node.data = data
        node.mtime = header[3]
        node.mzxid = header[2]
        node.version = record[2]
        self._rehash(path, node, old)
        if self._quota_paths:
            prefix = self.max_quota_prefix(path)
            if prefix is not None:
                self._update_quota_stat(prefix, diff, 0)
        triggers.append((path, _NODE_DATA_CHANGED))

    def _apply_set_acl(self, header: Header, record: Any, triggers: list[Trigger]) -> None:
        # SetACLTxn{path, acl, version}: version is the new aversion.
        path = record[0]
        node = self.nodes.get(path)
        if node is None:
            raise _NoNode(path)
        old = node._digest
        node.aversion = record[2]
        node.acl = record[1]
        self._rehash(path, node, old)

    def _apply_close_session(
        self, header: Header, record: Any, triggers: list[Trigger]
    ) -> None:
        # killSession: the txn's paths2Delete first, then any ephemerals the txn missed.
        session_id = header[0]
        zxid = header[2]
        local = self.ephemerals.pop(session_id, None)
        # The decoded CloseSessionTxn is (paths2Delete,); a bare list of paths is accepted too.
        in_txn = record if isinstance(record, list) else (None if record is None else record[0])
        if in_txn is not None:
            for path in in_txn:
                try:
                    self._delete_node(path, zxid, triggers)
                except _NoNode:
                    pass
            if local is not None:
                local.difference_update(in_txn)
        if local:
            # Sorted: Apache walks a HashSet here; any fixed order is as good, a set's is not.
            for path in sorted(local):
                try:
                    self._delete_node(path, zxid, triggers)
                except _NoNode:
                    pass

    def _apply_multi(self, header: Header, record: Any, triggers: list[Trigger]) -> None:
        subs: list[tuple[int, Any]] = record
        for sub_type, _ in subs:
            if sub_type == -1:
                # Prep failed one op and turned them all into error txns: nothing changes.
                return
        client_id, cxid, zxid, time, _ = header
        for sub_type, sub_record in subs:
            fn = self._multi_ops.get(sub_type)
            if fn is None:
                raise _BadSubTxn(sub_type)
            try:
                fn(self, (client_id, cxid, zxid, time, sub_type), sub_record, triggers)
            except (_NoNode, _NodeExists):
                pass

    _multi_ops: dict[int, Any] = {
        1: _apply_create,
        21: _apply_create_ttl,
        19: _apply_create_container,
        2: _apply_delete,
        20: _apply_delete,
        5: _apply_set_data,
        13: _apply_nothing,
        -1: _apply_nothing,
    }

    # ------------------------------------------------------------------ primitives

    def _rehash(self, path: str, node: ZNode, old: int | None) -> None:
        """Swap ``node``'s digest contribution after a change (preChange/postChange)."""
        h = node_digest(path, node)
        node._digest = h
        self._digest = (self._digest - (old or 0) + h) & _U64

    def _create_node(
        self,
        path: str,
        data: bytes | None,
        acl: list[AclEntry],
        owner: int,
        parent_cversion: int,
        zxid: int,
        time: int,
        triggers: list[Trigger],
    ) -> None:
        """``DataTree.createNode``: link a new node under its parent."""
        cut = path.rfind("/")
        parent_path = path[:cut] or "/"
        name = path[cut + 1 :]
        parent = self.nodes.get(parent_path)
        if parent is None:
            raise _NoNode(parent_path)
        node = ZNode(data, acl, zxid, zxid, time, time, 0, 0, 0, owner, zxid)
        # One lookup links the child or finds the name taken (a replayed create).
        if parent.link(name, node) is not node:
            raise _NodeExists(path)
        old = parent._digest
        if parent_cversion == -1:
            parent_cversion = _wrap32(parent.cversion + 1)
        # Replay can meet a create whose node was created and deleted inside the fuzzy range:
        # only a larger cversion may move the parent's cversion and pzxid.
        if parent_cversion > parent.cversion:
            parent.cversion = parent_cversion
            parent.pzxid = zxid
        self._rehash(parent_path, parent, old)
        self._put(path, node)
        if owner != 0:
            self._index_owner(path, owner)
        if parent_path.startswith(QUOTA_PATH):
            self._quota_node_created(parent_path, name)
        if self._quota_paths:
            prefix = self.max_quota_prefix(path)
            if prefix is not None:
                self._update_quota_stat(prefix, len(data) if data is not None else 0, 1)
        triggers.append((path, _NODE_CREATED))
        triggers.append((parent_path, _NODE_CHILDREN_CHANGED))

    def _delete_node(self, path: str, zxid: int, triggers: list[Trigger]) -> None:
        """``DataTree.deleteNode``: the parent's pzxid moves even if the child is gone."""
        cut = path.rfind("/")
        parent_path = path[:cut] or "/"
        parent = self.nodes.get(parent_path)
        if parent is None:
            raise _NoNode(parent_path)
        old = parent._digest
        parent.unlink(path[cut + 1 :])
        # Only a larger zxid moves pzxid, or a replayed delete could undo a later create's.
        if zxid > parent.pzxid:
            parent.pzxid = zxid
        self._rehash(parent_path, parent, old)
        node = self.nodes.pop(path, None)
        if node is None:
            raise _NoNode(path)
        self._digest = (self._digest - (node._digest or 0)) & _U64
        data = node.data
        size = len(data) if data is not None else 0
        self._data_size -= len(path) + size
        owner = node.ephemeral_owner
        if owner != 0:
            if owner == CONTAINER_EPHEMERAL_OWNER:
                self.containers.discard(path)
            elif self.extended_types_enabled and self._is_ttl_owner(owner):
                self.ttls.discard(path)
            else:
                paths = self.ephemerals.get(owner)
                if paths is not None:
                    paths.discard(path)
        if self._quota_paths:
            if path[cut + 1 :] == QUOTA_LIMITS_NODE and parent_path.startswith(ZOOKEEPER_PATH):
                # Quotas.trimQuotaPath on the parent: the quota'd path loses its quota.
                key = _trie_key(parent_path[len(QUOTA_PATH) :])
                if key is not None:
                    self._quota_paths.discard(key)
            prefix = self.max_quota_prefix(path)
            if prefix is not None:
                self._update_quota_stat(prefix, -size, -1)
        triggers.append((path, _NODE_DELETED))
        triggers.append((parent_path, _NODE_CHILDREN_CHANGED))

    def _set_cversion_pzxid(self, path: str, cversion: int, zxid: int) -> None:
        """``DataTree.setCversionPzxid``: move cversion (and pzxid) only forward."""
        node = self.nodes.get(path)
        if node is None:
            raise _NoNode(path)
        if cversion == -1:
            cversion = _wrap32(node.cversion + 1)
        if cversion > node.cversion:
            old = node._digest
            node.cversion = cversion
            node.pzxid = zxid
            self._rehash(path, node, old)

    # ------------------------------------------------------------------ quotas

    def max_quota_prefix(self, path: str) -> str | None:
        """``getMaxPrefixWithQuota``: the deepest quota'd path at or above ``path``, or None.

        Paths are compared in ``PathTrie``'s normalised form (blank components dropped); the
        root never counts as quota'd.
        """
        quota_paths = self._quota_paths
        if not quota_paths:
            return None
        found = None
        prefix = ""
        for part in path.split("/"):
            if not part.strip(_JAVA_TRIM):
                continue
            prefix = prefix + "/" + part
            if prefix in quota_paths:
                found = prefix
        return found

    def _quota_node_created(self, parent_path: str, name: str) -> None:
        """A child of ``/zookeeper/quota...`` was created: a limits node makes its path
        quota'd, a stats node gets its path's subtree counted into it (``createNode``)."""
        if name == QUOTA_LIMITS_NODE:
            key = _trie_key(parent_path[len(QUOTA_PATH) :])
            if key is not None:
                self._quota_paths.add(key)
        if name == QUOTA_STATS_NODE:
            self._update_quota_for_path(parent_path[len(QUOTA_PATH) :])

    def _update_quota_for_path(self, path: str) -> None:
        """``updateQuotaForPath``: count ``path`` and its descendants into its stats node."""
        stats_node = self.nodes.get(QUOTA_PATH + path + _QUOTA_STATS_SUFFIX)
        if stats_node is None:
            return
        count = 0
        size = 0
        nodes = self.nodes
        node = nodes.get(path or "/")
        stack: list[tuple[str, ZNode]] = [] if node is None else [(path, node)]
        while stack:
            base, n = stack.pop()
            count += 1
            data = n.data
            if data is not None:
                size += len(data)
            for name in n.children:
                child_path = base + "/" + name
                child = nodes.get(child_path)
                if child is not None:
                    stack.append((child_path, child))
        stats_node.data = format_stats_track({"count": count, "bytes": size})

    def _update_quota_stat(self, prefix: str, bytes_diff: int, count_diff: int) -> None:
        """``updateQuotaStat``: add the differences to the quota'd path's stats node.

        Apache's apply throws (and its server stops) on a stats text that does not parse;
        zkfast leaves such a node as it is, as it does one that is missing.
        """
        stats_node = self.nodes.get(QUOTA_PATH + prefix + _QUOTA_STATS_SUFFIX)
        if stats_node is None:
            return
        try:
            stats = parse_stats_track(stats_node.data)
        except ValueError:
            return
        stats["count"] = stats.get("count", -1) + count_diff
        stats["bytes"] = stats.get("bytes", -1) + bytes_diff
        stats_node.data = format_stats_track(stats)

    @staticmethod
    def _is_ttl_owner(owner: int) -> bool:
        """``EphemeralType.get`` == TTL, given extended types are on (top byte 0xff, feature 0).

        Apache throws for an unknown extended feature; zkfast treats it as a session owner.
        """
        return (owner & _TTL_OWNER_MASK) == _TTL_OWNER_MASK and not (
            owner & _EXTENDED_RESERVED_BITS
        )

    def _index_owner(self, path: str, owner: int) -> None:
        """File a node under ``containers``, ``ttls`` or its session's ``ephemerals``."""
        if owner == 0:
            return
        if owner == CONTAINER_EPHEMERAL_OWNER:
            self.containers.add(path)
        elif self.extended_types_enabled and self._is_ttl_owner(owner):
            self.ttls.add(path)
        else:
            paths = self.ephemerals.get(owner)
            if paths is None:
                self.ephemerals[owner] = {path}
            else:
                paths.add(path)

