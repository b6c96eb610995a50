"""DataTree against a plain dict model: random create/delete/setData/closeSession/multi txns.

The model is the naive reading of zk-formats §2.3: a dict from path to its data, versions and
children, updated the way the leader's Prep would have decided each txn. After every step the
tree must agree with it on every node, and its incremental digest must equal a from-scratch
recomputation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from zkfast.core.datatree import OPEN_ACL_UNSAFE, DataTree
from zkfast.wire.constants import EventType

SESSIONS = (0, 0x1000000000001, 0x1000000000002)
NAMES = ("a", "b", "c", "d")


@dataclass
class MNode:
    data: bytes = b""
    version: int = 0
    cversion: int = 0
    czxid: int = 0
    mzxid: int = 0
    pzxid: int = 0
    owner: int = 0
    children: set[str] = field(default_factory=set)


def _parent(path: str) -> str:
    return path[: path.rfind("/")] or "/"


def _join(parent: str, name: str) -> str:
    return ("" if parent == "/" else parent) + "/" + name


class TreeVsModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tree = DataTree()
        self.zxid = 0x100000000
        self.applied = 0
        self.model: dict[str, MNode] = {
            "/": MNode(children={"zookeeper"}),
            "/zookeeper": MNode(children={"quota", "config"}),
            "/zookeeper/quota": MNode(),
            "/zookeeper/config": MNode(),
        }

    # ------------------------------------------------------------ model helpers

    def _next(self) -> int:
        self.zxid += 1
        self.applied = self.zxid
        return self.zxid

    def _user_paths(self) -> list[str]:
        return sorted(p for p in self.model if p != "/" and not p.startswith("/zookeeper"))

    def _m_create(self, path: str, data: bytes, owner: int, zxid: int) -> None:
        parent = self.model[_parent(path)]
        parent.cversion += 1
        parent.pzxid = zxid
        parent.children.add(path.rsplit("/", 1)[1])
        self.model[path] = MNode(data, 0, 0, zxid, zxid, zxid, owner)

    def _m_delete(self, path: str, zxid: int) -> None:
        del self.model[path]
        parent = self.model[_parent(path)]
        parent.children.discard(path.rsplit("/", 1)[1])
        parent.pzxid = max(parent.pzxid, zxid)

    def _create_txn(self, path: str, data: bytes, owner: int) -> tuple:
        parent = self.model[_parent(path)]
        return (path, data, OPEN_ACL_UNSAFE, owner != 0, parent.cversion + 1)

    # ------------------------------------------------------------ rules

    @rule(pick=st.integers(0, 1000), name=st.sampled_from(NAMES), data=st.binary(max_size=8),
          session=st.sampled_from(SESSIONS))
    def create(self, pick: int, name: str, data: bytes, session: int) -> None:
        parents = ["/"] + [p for p in self._user_paths() if self.model[p].owner == 0]
        path = _join(parents[pick % len(parents)], name)
        zxid = self._next()
        record = self._create_txn(path, data, session)
        trig = self.tree.apply_txn((session, 1, zxid, zxid * 10, 1), record)
        if path in self.model:
            # A replayed create: NodeExists, and the parent's cversion/pzxid are repaired.
            assert trig == []
            parent = self.model[_parent(path)]
            parent.cversion += 1
            parent.pzxid = zxid
        else:
            assert trig == [(path, EventType.NodeCreated),
                            (_parent(path), EventType.NodeChildrenChanged)]
            self._m_create(path, data, session, zxid)

    @rule(pick=st.integers(0, 1000))
    def delete(self, pick: int) -> None:
        leaves = [p for p in self._user_paths() if not self.model[p].children]
        if not leaves:
            return
        path = leaves[pick % len(leaves)]
        zxid = self._next()
        trig = self.tree.apply_txn((1, 1, zxid, zxid * 10, 2), (path,))
        assert trig == [(path, EventType.NodeDeleted),
                        (_parent(path), EventType.NodeChildrenChanged)]
        self._m_delete(path, zxid)

    @rule(pick=st.integers(0, 1000), data=st.binary(max_size=8))
    def set_data(self, pick: int, data: bytes) -> None:
        paths = ["/"] + self._user_paths()
        path = paths[pick % len(paths)]
        zxid = self._next()
        node = self.model[path]
        trig = self.tree.apply_txn((1, 1, zxid, zxid * 10, 5), (path, data, node.version + 1))
        assert trig == [(path, EventType.NodeDataChanged)]
        node.data, node.version, node.mzxid = data, node.version + 1, zxid

    @rule(session=st.sampled_from(SESSIONS[1:]), listed=st.booleans())
    def close_session(self, session: int, listed: bool) -> None:
        mine = sorted(p for p in self.model if self.model[p].owner == session)
        zxid = self._next()
        record = (mine,) if listed else None
        trig = self.tree.apply_txn((session, 1, zxid, zxid * 10, -11), record)
        assert sorted(p for p, e in trig if e == EventType.NodeDeleted) == mine
        for path in mine:
            self._m_delete(path, zxid)
        assert session not in self.tree.ephemerals

    @rule(name=st.sampled_from(NAMES), data=st.binary(max_size=4), fail=st.booleans())
    def multi(self, name: str, data: bytes, fail: bool) -> None:
        # create /<name>x under the root, then set its data: one zxid for both.
        path = "/" + name + "x"
        if path in self.model:
            return
        zxid = self._next()
        subs = [(1, self._create_txn(path, b"", 0)), (5, (path, data, 1))]
        if fail:
            subs = [(-1, (0,)), (-1, (-103,))]
        trig = self.tree.apply_txn((1, 1, zxid, zxid * 10, 14), subs)
        if fail:
            assert trig == []
            return
        assert [e for _, e in trig] == [EventType.NodeCreated, EventType.NodeChildrenChanged,
                                        EventType.NodeDataChanged]
        self._m_create(path, b"", 0, zxid)
        node = self.model[path]
        node.data, node.version, node.mzxid = data, 1, zxid

    # ------------------------------------------------------------ invariants

    @invariant()
    def same_nodes(self) -> None:
        tree = self.tree
        assert set(tree.nodes) == set(self.model)
        for path, m in self.model.items():
            n = tree.nodes[path]
            assert n.data == m.data, path
            assert set(n.children) == m.children, path
            assert (n.version, n.cversion, n.czxid, n.mzxid, n.pzxid, n.ephemeral_owner) == (
                m.version, m.cversion, m.czxid, m.mzxid, m.pzxid, m.owner), path
            s = tree.stat_of(n)
            assert s[5] == 2 * m.cversion - len(m.children)
            assert s[8] == len(m.data) and s[9] == len(m.children)

    @invariant()
    def same_indexes_and_counters(self) -> None:
        tree = self.tree
        for session in SESSIONS[1:]:
            expected = {p for p, m in self.model.items() if m.owner == session}
            assert tree.ephemerals.get(session, set()) == expected
        assert tree.digest() == tree.recompute_digest()
        assert tree.node_count == len(self.model) + 1
        assert tree.count_descendants("/") == len(self.model) - 1
        assert tree.approximate_data_size == sum(
            len(p) + len(m.data) for p, m in self.model.items())
        assert tree.last_processed_zxid == self.applied


TreeVsModel.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestTreeVsModel = TreeVsModel.TestCase
