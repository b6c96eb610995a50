"""WatchManager: Apache 3.8.0 firing tables, persistent/recursive modes, removal and 4lw views."""

from __future__ import annotations

import pytest

from zkfast.core.datatree import OPEN_ACL_UNSAFE, DataTree
from zkfast.core.watches import PERSISTENT, PERSISTENT_RECURSIVE, STANDARD, WatchManager
from zkfast.wire.constants import EventType, WatcherType

CREATED = EventType.NodeCreated
DELETED = EventType.NodeDeleted
CHANGED = EventType.NodeDataChanged
CHILDREN = EventType.NodeChildrenChanged


def fire_all(wm: WatchManager, triggers: list) -> list[tuple[str, EventType, list[int]]]:
    """What a server does after apply_txn: one trigger call per returned pair."""
    return [(p, e, wm.trigger(p, e)) for p, e in triggers]


# --------------------------------------------------------------------------- one-shot


def test_data_watch_fires_once_on_change() -> None:
    wm = WatchManager()
    wm.add_data_watch("/a", 1)
    wm.add_data_watch("/a", 2)
    assert wm.trigger("/a", CHANGED) == [1, 2]
    assert wm.trigger("/a", CHANGED) == []
    assert wm.watch_count() == 0


def test_exist_watch_shares_the_data_table() -> None:
    wm = WatchManager()
    wm.add_exist_watch("/a", 1)
    wm.add_data_watch("/a", 1)  # the same registration: fires once
    assert wm.watch_count() == 1
    assert wm.trigger("/a", CREATED) == [1]
    assert wm.trigger("/a", CREATED) == []


def test_child_watch_fires_on_children_changed_only() -> None:
    wm = WatchManager()
    wm.add_child_watch("/p", 1)
    assert wm.trigger("/p", CHANGED) == []
    assert wm.trigger("/p", CREATED) == []
    assert wm.trigger("/p", CHILDREN) == [1]
    assert wm.trigger("/p", CHILDREN) == []


def test_data_watch_not_fired_by_children_changed() -> None:
    wm = WatchManager()
    wm.add_data_watch("/p", 1)
    assert wm.trigger("/p", CHILDREN) == []
    assert wm.trigger("/p", CHANGED) == [1]


def test_delete_notifies_data_and_child_watchers_once() -> None:
    wm = WatchManager()
    wm.add_data_watch("/a", 1)
    wm.add_child_watch("/a", 1)  # both tables: one notification, both consumed
    wm.add_child_watch("/a", 2)
    wm.add_exist_watch("/a", 3)
    assert wm.trigger("/a", DELETED) == [1, 3, 2]
    assert wm.watch_count() == 0
    assert wm.trigger("/a", DELETED) == []


def test_trigger_child_suppression_still_consumes() -> None:
    wm = WatchManager()
    wm.add_data_watch("/a", 1)
    wm.add_child_watch("/a", 1)
    wm.add_child_watch("/a", 2)
    first = wm.trigger_data("/a", DELETED)
    assert first == [1]
    assert wm.trigger_child("/a", DELETED, first) == [2]
    assert wm.watch_count() == 0


def test_firing_tables_through_datatree() -> None:
    t = DataTree()
    wm = WatchManager()
    wm.add_exist_watch("/a", 1)      # create /a -> NodeCreated
    wm.add_child_watch("/", 2)       # create /a -> NodeChildrenChanged on /
    out = fire_all(wm, t.apply_txn((5, 1, 1, 0, 1), ("/a", b"", OPEN_ACL_UNSAFE, False, 1)))
    assert out == [("/a", CREATED, [1]), ("/", CHILDREN, [2])]
    wm.add_data_watch("/a", 1)
    out = fire_all(wm, t.apply_txn((5, 2, 2, 0, 5), ("/a", b"x", 1)))
    assert out == [("/a", CHANGED, [1])]
    wm.add_data_watch("/a", 1)
    wm.add_child_watch("/a", 3)
    wm.add_child_watch("/", 2)
    out = fire_all(wm, t.apply_txn((5, 3, 3, 0, 2), ("/a",)))
    assert out == [("/a", DELETED, [1, 3]), ("/", CHILDREN, [2])]
    # setACL fires nothing.
    assert t.apply_txn((5, 4, 4, 0, 7), ("/", OPEN_ACL_UNSAFE, 1)) == []


# --------------------------------------------------------------------------- persistent


def test_persistent_watch_fires_for_every_event_on_its_path() -> None:
    wm = WatchManager()
    wm.add_persistent("/a", 1, recursive=False)
    for ev in (CREATED, CHANGED, CHANGED, CHILDREN, DELETED):
        assert wm.trigger("/a", ev) == [1]
    assert wm.trigger("/a/b", CREATED) == []  # not on descendants
    assert wm.trigger("/", CHILDREN) == []


def test_recursive_watch_covers_descendants_except_children_changed() -> None:
    wm = WatchManager()
    wm.add_persistent("/a", 1, recursive=True)
    assert wm.trigger("/a", CHANGED) == [1]
    assert wm.trigger("/a/b", CREATED) == [1]
    assert wm.trigger("/a/b/c", CHANGED) == [1]
    assert wm.trigger("/a/b/c", DELETED) == [1]  # once, though in both tables
    assert wm.trigger("/a", CHILDREN) == []
    assert wm.trigger("/a/b", CHILDREN) == []
    assert wm.trigger("/ab", CREATED) == []
    assert wm.trigger("/", CHANGED) == []
    assert wm.watch_count() == 2


def test_recursive_on_root() -> None:
    wm = WatchManager()
    wm.add_persistent("/", 9, recursive=True)
    assert wm.trigger("/x/y", CHANGED) == [9]
    assert wm.trigger("/", DELETED) == [9]


def test_standard_watch_at_ancestor_is_not_fired_nor_consumed() -> None:
    wm = WatchManager()
    wm.add_persistent("/z", 5, recursive=True)  # turns on the ancestor walk
    wm.add_data_watch("/a", 1)
    wm.add_persistent("/a", 2, recursive=False)
    assert wm.trigger("/a/b", CHANGED) == []
    assert wm.watch_mode("/a", 1, WatcherType.Data) == STANDARD


def test_each_connection_once_across_levels() -> None:
    wm = WatchManager()
    wm.add_persistent("/", 1, recursive=True)
    wm.add_persistent("/a", 1, recursive=True)
    wm.add_data_watch("/a/b", 1)
    wm.add_data_watch("/a/b", 2)
    assert wm.trigger("/a/b", CHANGED) == [1, 2]


def test_last_registration_wins_per_table() -> None:
    # 3.8.0: one mode per (watcher, path) per table (ZOOKEEPER-4466 changed this in 3.9).
    wm = WatchManager()
    wm.add_persistent("/a", 1, recursive=False)
    wm.add_data_watch("/a", 1)
    assert wm.watch_mode("/a", 1, WatcherType.Data) == STANDARD
    assert wm.watch_mode("/a", 1, WatcherType.Children) == PERSISTENT
    assert wm.trigger("/a", CHANGED) == [1]
    assert wm.trigger("/a", CHANGED) == []  # the data half was one-shot again
    assert wm.trigger("/a", CHILDREN) == [1]
    wm.add_exist_watch("/b", 1)
    wm.add_persistent("/b", 1, recursive=True)
    assert wm.watch_mode("/b", 1, WatcherType.Data) == PERSISTENT_RECURSIVE
    assert wm.trigger("/b", CHANGED) == [1]
    assert wm.trigger("/b", CHANGED) == [1]


def test_recursive_downgrade_stops_ancestor_firing() -> None:
    wm = WatchManager()
    wm.add_persistent("/a", 1, recursive=True)
    wm.add_persistent("/a", 1, recursive=False)
    assert wm.trigger("/a/b", CHANGED) == []
    assert wm.trigger("/a", CHANGED) == [1]


# --------------------------------------------------------------------------- removal


def test_remove_conn_drops_everything() -> None:
    wm = WatchManager()
    wm.add_data_watch("/a", 1)
    wm.add_child_watch("/a", 1)
    wm.add_persistent("/", 1, recursive=True)
    wm.add_data_watch("/a", 2)
    wm.remove_conn(1)
    assert wm.trigger("/a", DELETED) == [2]
    assert wm.trigger("/a/x", CHANGED) == []
    assert wm.watch_count() == 0
    assert wm.by_connection() == {2: []}
    wm.remove_conn(42)  # unknown: no error


@pytest.mark.parametrize(
    "wtype, data_left, child_left",
    [(WatcherType.Data, False, True), (WatcherType.Children, True, False),
     (WatcherType.Any, False, False)],
)
def test_remove_watches_by_type(wtype: WatcherType, data_left: bool, child_left: bool) -> None:
    wm = WatchManager()
    wm.add_data_watch("/a", 1)
    wm.add_child_watch("/a", 1)
    assert wm.remove_watches("/a", 1, wtype) is True
    assert (wm.trigger_data("/a", CHANGED) == [1]) is data_left
    assert (wm.trigger_child("/a", CHILDREN) == [1]) is child_left


def test_remove_watches_reports_nothing_removed() -> None:
    wm = WatchManager()
    wm.add_data_watch("/a", 1)
    assert wm.remove_watches("/a", 1, WatcherType.Children) is False
    assert wm.remove_watches("/a", 2, WatcherType.Any) is False
    assert wm.remove_watches("/b", 1, WatcherType.Data) is False
    assert wm.remove_watches("/a", 1, 4) is False  # Persistent(4) is 3.9+
    assert wm.trigger("/a", CHANGED) == [1]


def test_remove_watches_removes_persistent_half() -> None:
    wm = WatchManager()
    wm.add_persistent("/a", 1, recursive=True)
    assert wm.remove_watches("/a", 1, WatcherType.Data) is True
    assert wm.trigger("/a/b", CHANGED) == []  # the data half is gone
    assert wm.trigger("/a/b", DELETED) == [1]  # the child-table half still sees deletes
    assert wm.remove_watches("/a", 1, WatcherType.Any) is True
    assert wm.trigger("/a/b", DELETED) == []
    assert wm.remove_watches("/a", 1, WatcherType.Any) is False


def test_has_watches_is_per_path_in_3_8_0() -> None:
    wm = WatchManager()
    wm.add_data_watch("/a", 1)
    wm.add_child_watch("/c", 1)
    assert wm.has_watches("/a", 1, WatcherType.Data)
    assert wm.has_watches("/a", 1, WatcherType.Any)
    assert not wm.has_watches("/a", 1, WatcherType.Children)
    assert wm.has_watches("/c", 1, WatcherType.Children)
    assert not wm.has_watches("/b", 1, WatcherType.Any)
    # 3.8.0's containsWatcher only asks whether the path is watched at all.
    assert wm.has_watches("/a", 2, WatcherType.Data)
    wm.trigger("/a", CHANGED)
    assert not wm.has_watches("/a", 1, WatcherType.Data)


# --------------------------------------------------------------------------- views


def test_views_report_the_data_table() -> None:
    wm = WatchManager()
    wm.add_data_watch("/a", 1)
    wm.add_exist_watch("/b", 1)
    wm.add_data_watch("/a", 2)
    wm.add_child_watch("/c", 3)  # child watches appear in no wch* view
    assert wm.by_connection() == {1: ["/a", "/b"], 2: ["/a"]}
    assert wm.by_path() == {"/a": [1, 2], "/b": [1]}
    assert tuple(wm.summary()) == (2, 2, 3)
    assert wm.watch_count() == 4  # mntr: both tables
    wm.trigger("/a", CHANGED)
    # 3.8.0 keeps a connection whose watches fired in watch2Paths, with no paths.
    assert wm.by_connection() == {1: ["/b"], 2: []}
    assert tuple(wm.summary()) == (2, 1, 1)
    assert wm.watch_count() == 2


def test_persistent_counts_in_both_tables() -> None:
    wm = WatchManager()
    wm.add_persistent("/a", 1, recursive=False)
    assert wm.watch_count() == 2
    assert tuple(wm.summary()) == (1, 1, 1)


def test_contains_watcher_answers_check_watches_as_3_8_0() -> None:
    """WatchManager.containsWatcher: anyone's watch on the path, or the caller's recursive one."""
    wm = WatchManager()
    child, data, any_ = WatcherType.Children, WatcherType.Data, WatcherType.Any
    wm.add_data_watch("/a", 1)
    assert wm.contains_watcher("/a", 1, data) and wm.contains_watcher("/a", 2, data)
    assert not wm.contains_watcher("/a", 1, child)
    assert wm.contains_watcher("/a", 7, any_)
    assert not wm.contains_watcher("/a/b", 1, data)
    assert not wm.contains_watcher("", 1, data)
    # no recursive watch anywhere: the iterator takes one step, so only a path without any
    # "/" makes it throw
    assert not wm.contains_watcher("d/a", 1, data)
    with pytest.raises(ValueError):
        wm.contains_watcher("rel", 1, data)
    wm.add_persistent("/r", 3, recursive=True)
    assert wm.contains_watcher("/r", 3, child) and wm.contains_watcher("/r", 9, data)
    assert not wm.contains_watcher("/r/x", 3, data)  # ancestors alone do not count
    with pytest.raises(ValueError):
        wm.contains_watcher("d/a", 1, data)  # the iterator walks to "d" now, and throws
