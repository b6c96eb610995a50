"""Watch registrations and their fan-out, as Apache ZooKeeper 3.8.0's ``WatchManager`` keeps them.

Theory of operation
-------------------
Apache keeps two independent watch tables (``DataTree.dataWatches`` and ``childWatches``);
``WatchManager`` holds one ``_Table`` for each:

* getData and exists register a *standard* (one-shot) watch in the data table, getChildren in
  the child table;
* addWatch registers the path in **both** tables with mode persistent or persistent-recursive
  (``DataTree.addWatch``).

A table maps path -> {conn_id: mode} and conn_id -> {path}. One connection holds one mode per
path per table, and the last registration wins: a getData watch on a path that already carries
a persistent watch makes the data-table entry one-shot again (3.8.0's ``WatcherModeManager``;
3.9 lets both coexist, ZOOKEEPER-4466).

Firing (``WatchManager.triggerWatch``) for an event on ``path`` in one table:

* every watcher registered on ``path`` itself fires; standard ones are removed, persistent
  and recursive ones stay;
* a recursive watcher on ``path`` or on any ancestor fires, except for NodeChildrenChanged
  (ancestors are walked only while some recursive watch exists);
* each connection is reported once per call.

Which table each write consults (``DataTree.createNode/deleteNode/setData``, zk-formats §2.7):

==========================  ==========================================================
NodeCreated(path)           data table
NodeDataChanged(path)       data table
NodeChildrenChanged(parent) child table
NodeDeleted(path)           data table, then child table; a connection notified by the
                            data table is not notified again, but its one-shot child
                            watch is still consumed
==========================  ==========================================================

``trigger(path, event_type)`` applies exactly that table choice, so the caller feeds it the
``(path, EventType)`` pairs that ``DataTree.apply_txn`` returns, in order, and sends one
notification per returned connection. ``trigger_data``/``trigger_child`` expose the two halves.

Removal and checks follow 3.8.0 too: ``remove_watches`` with type Data/Children/Any removes the
connection's entry from the data/child/both tables whatever its mode (so removing Data leaves
a persistent watch's child-table half in place), and ``contains_watcher`` answers
``checkWatches`` exactly as the 3.8.0 server does: true when *any* connection watches the path
in the chosen table (3.8.0's ``WatchManager.containsWatcher`` does not look at the watcher;
fixed in 3.9), or when the caller's own watch there is recursive, with the ancestor walk and
the relative-path failure of its ``PathParentIterator``. ``has_watches`` is the plain table test.

The four-letter-word views (``wchs``/``wchc``/``wchp``) report the data table only, as
``DataTree.getWatches*`` do, and keep 3.8.0's habit of listing a connection whose one-shot
watches have all fired with no paths until it disconnects. ``watch_count`` (``mntr``
``zk_watch_count``) counts both tables.

Every order here is insertion order (dicts), never a set's, so firing order is deterministic.
"""

from __future__ import annotations

from typing import NamedTuple

from ..wire.constants import EventType, WatcherType

__all__ = ["WatchManager", "WatchesSummary", "STANDARD", "PERSISTENT", "PERSISTENT_RECURSIVE"]

#: Watch modes (Apache ``WatcherMode``).
STANDARD = 0
PERSISTENT = 1
PERSISTENT_RECURSIVE = 2

_NODE_CHILDREN_CHANGED = EventType.NodeChildrenChanged
_NODE_DELETED = EventType.NodeDeleted
_CHILDREN = WatcherType.Children
_DATA = WatcherType.Data
_ANY = WatcherType.Any


class WatchesSummary(NamedTuple):
    """``wchs``: connections with data watches, watched paths, total data watches."""

    num_connections: int
    num_paths: int
    total_watches: int


class _Table:
    """One of Apache's two ``WatchManager`` instances (data or child watches)."""

    __slots__ = ("watchers", "paths", "recursive")

    def __init__(self) -> None:
        #: path -> {conn_id: mode}, in registration order (``watchTable`` + modes).
        self.watchers: dict[str, dict[int, int]] = {}
        #: conn_id -> {path: None} (``watch2Paths``); an entry can be empty, as in Apache.
        self.paths: dict[int, dict[str, None]] = {}
        #: Number of recursive registrations; 0 lets a trigger skip the ancestor walk.
        self.recursive = 0

    def add(self, path: str, conn_id: int, mode: int) -> None:
        ws = self.watchers.get(path)
        if ws is None:
            self.watchers[path] = ws = {}
        old = ws.get(conn_id)
        if old == PERSISTENT_RECURSIVE:
            self.recursive -= 1
        if mode == PERSISTENT_RECURSIVE:
            self.recursive += 1
        ws[conn_id] = mode
        paths = self.paths.get(conn_id)
        if paths is None:
            self.paths[conn_id] = {path: None}
        else:
            paths[path] = None

    def remove(self, path: str, conn_id: int) -> bool:
        paths = self.paths.get(conn_id)
        if paths is None or path not in paths:
            return False
        del paths[path]
        ws = self.watchers.get(path)
        if ws is None or conn_id not in ws:
            return False
        if ws.pop(conn_id) == PERSISTENT_RECURSIVE:
            self.recursive -= 1
        if not ws:
            del self.watchers[path]
        return True

    def remove_conn(self, conn_id: int) -> None:
        paths = self.paths.pop(conn_id, None)
        if paths is None:
            return
        watchers = self.watchers
        for path in paths:
            ws = watchers.get(path)
            if ws is not None and conn_id in ws:
                if ws.pop(conn_id) == PERSISTENT_RECURSIVE:
                    self.recursive -= 1
                if not ws:
                    del watchers[path]

    def fire(self, path: str, event_type: int, fired: dict[int, None]) -> None:
        """Collect into ``fired`` every connection this event reaches; drop one-shot watches."""
        watchers = self.watchers
        ws = watchers.get(path)
        if ws:
            standard: list[int] | None = None
            for conn_id, mode in ws.items():
                if mode == PERSISTENT_RECURSIVE:
                    if event_type != _NODE_CHILDREN_CHANGED:
                        fired[conn_id] = None
                else:
                    fired[conn_id] = None
                    if mode == STANDARD:
                        if standard is None:
                            standard = [conn_id]
                        else:
                            standard.append(conn_id)
            if standard is not None:
                all_paths = self.paths
                for conn_id in standard:
                    del ws[conn_id]
                    paths = all_paths.get(conn_id)
                    if paths is not None:
                        paths.pop(path, None)
                if not ws:
                    del watchers[path]
        if self.recursive and event_type != _NODE_CHILDREN_CHANGED:
            # PathParentIterator: only recursive watchers count at a parent path.
            p = path
            while p != "/":
                p = p[: p.rfind("/")] or "/"
                ws = watchers.get(p)
                if ws:
                    for conn_id, mode in ws.items():
                        if mode == PERSISTENT_RECURSIVE:
                            fired[conn_id] = None


def _contains(table: _Table, path: str, conn_id: int) -> bool:
    """``WatchManager.containsWatcher`` over one table (see ``contains_watcher``)."""
    watchers = table.watchers
    ws = watchers.get(path)
    recursive = ws is not None and ws.get(conn_id) == PERSISTENT_RECURSIVE
    max_level = 1 << 30 if table.recursive else 0
    level = -1
    p = path
    while p and level < max_level:
        here = p
        level += 1
        if p == "/":
            p = ""
        else:
            cut = p.rfind("/")
            if cut < 0:
                raise ValueError(f"not an absolute path: {here!r}")
            p = p[:cut] or "/"
        if level == 0 and watchers.get(here):
            return True
        if recursive:
            return True
    return False


class WatchManager:
    """All watches of one server, keyed by (path, conn_id); see the module docstring."""

    __slots__ = ("_data", "_child")

    def __init__(self) -> None:
        self._data = _Table()
        self._child = _Table()

    # ------------------------------------------------------------------ registration

    def add_data_watch(self, path: str, conn_id: int) -> None:
        """getData with watch=true: a one-shot data watch."""
        self._data.add(path, conn_id, STANDARD)

    def add_exist_watch(self, path: str, conn_id: int) -> None:
        """exists with watch=true (also on a missing node): the same data table."""
        self._data.add(path, conn_id, STANDARD)

    def add_child_watch(self, path: str, conn_id: int) -> None:
        """getChildren with watch=true: a one-shot child watch."""
        self._child.add(path, conn_id, STANDARD)

    def add_persistent(self, path: str, conn_id: int, recursive: bool) -> None:
        """addWatch: a persistent (or persistent-recursive) watch, in both tables."""
        mode = PERSISTENT_RECURSIVE if recursive else PERSISTENT
        self._data.add(path, conn_id, mode)
        self._child.add(path, conn_id, mode)

    # ------------------------------------------------------------------ firing

    def trigger(self, path: str, event_type: int) -> list[int]:
        """Fire one event; return each connection to notify, once, in a fixed order.

        The table is chosen by event type as the module docstring's table says: feed it the
        pairs ``DataTree.apply_txn`` returns, in order.
        """
        fired: dict[int, None] = {}
        if event_type == _NODE_CHILDREN_CHANGED:
            self._child.fire(path, event_type, fired)
        elif event_type == _NODE_DELETED:
            self._data.fire(path, event_type, fired)
            self._child.fire(path, event_type, fired)
        else:
            self._data.fire(path, event_type, fired)
        return list(fired)

    def trigger_data(self, path: str, event_type: int) -> list[int]:
        """Fire ``event_type`` on the data table only (``dataWatches.triggerWatch``)."""
        fired: dict[int, None] = {}
        self._data.fire(path, event_type, fired)
        return list(fired)

    def trigger_child(
        self, path: str, event_type: int, suppress: list[int] | None = None
    ) -> list[int]:
        """Fire on the child table only; ``suppress`` lists connections already notified.

        Suppressed connections still lose their one-shot child watch on ``path``
        (``childWatches.triggerWatch(path, type, supress)``).
        """
        fired: dict[int, None] = {}
        self._child.fire(path, event_type, fired)
        if suppress:
            for conn_id in suppress:
                fired.pop(conn_id, None)
        return list(fired)

    # ------------------------------------------------------------------ removal and checks

    def remove_conn(self, conn_id: int) -> None:
        """Forget every watch of a closed connection (``DataTree.removeCnxn``)."""
        self._data.remove_conn(conn_id)
        self._child.remove_conn(conn_id)

    def remove_watches(self, path: str, conn_id: int, watcher_type: int) -> bool:
        """removeWatches: drop the connection's watch on ``path`` from the chosen table(s).

        Any mode is removed (3.8.0 ``WatchManager.removeWatcher``). Returns False when nothing
        was removed (the caller answers NoWatcher); an unknown type removes nothing.
        """
        if watcher_type == _CHILDREN:
            return self._child.remove(path, conn_id)
        if watcher_type == _DATA:
            return self._data.remove(path, conn_id)
        if watcher_type == _ANY:
            removed_child = self._child.remove(path, conn_id)
            removed_data = self._data.remove(path, conn_id)
            return removed_child or removed_data
        return False

    def has_watches(self, path: str, conn_id: int, watcher_type: int) -> bool:
        """checkWatches, as 3.8.0 answers it: does *any* connection watch ``path`` there?

        3.8.0's ``WatchManager.containsWatcher`` checks only that the path has watchers in the
        table (and the caller's own recursive mode on it, which implies the same); ``conn_id``
        is accepted for the interface and the 3.9 semantics, and ignored to match 3.8.0.
        """
        del conn_id
        if watcher_type == _CHILDREN:
            return path in self._child.watchers
        if watcher_type == _DATA:
            return path in self._data.watchers
        if watcher_type == _ANY:
            return path in self._child.watchers or path in self._data.watchers
        return False

    def contains_watcher(self, path: str, conn_id: int, watcher_type: int) -> bool:
        """checkWatches as the 3.8.0 server answers it (``WatchManager.containsWatcher``).

        Children (1) asks the child table, Data (2) the data table, Any (3) both. In a table,
        ``PathParentIterator`` yields the path alone while the table holds no recursive
        watch, else the path and every ancestor; the answer is true if anyone watches the
        path itself, or if the caller's own watch on the path is recursive (then any
        yielded path counts). ``""`` yields nothing (false).

        Raises:
            ValueError: ``path`` has no ``/`` (Apache's iterator throws
                ``StringIndexOutOfBoundsException``; the server answers MarshallingError).
        """
        found = False
        if watcher_type == _CHILDREN or watcher_type == _ANY:
            found = _contains(self._child, path, conn_id)
        if watcher_type == _DATA or watcher_type == _ANY:
            found = _contains(self._data, path, conn_id) or found
        return found

    def watch_mode(self, path: str, conn_id: int, watcher_type: int) -> int | None:
        """The mode of the connection's watch on ``path`` in the Data or Children table."""
        table = self._child if watcher_type == _CHILDREN else self._data
        ws = table.watchers.get(path)
        return None if ws is None else ws.get(conn_id)

    # ------------------------------------------------------------------ four-letter-word views

    def watch_count(self) -> int:
        """Registrations in both tables (``DataTree.getWatchCount``, mntr zk_watch_count)."""
        total = 0
        for ws in self._data.watchers.values():
            total += len(ws)
        for ws in self._child.watchers.values():
            total += len(ws)
        return total

    def summary(self) -> WatchesSummary:
        """``wchs``: over the data table, as ``WatchManager.getWatchesSummary``."""
        data = self._data
        total = 0
        for paths in data.paths.values():
            total += len(paths)
        return WatchesSummary(len(data.paths), len(data.watchers), total)

    def by_connection(self) -> dict[int, list[str]]:
        """``wchc``: data-table paths per connection (possibly none, as in 3.8.0)."""
        return {conn_id: list(paths) for conn_id, paths in self._data.paths.items()}

    def by_path(self) -> dict[str, list[int]]:
        """``wchp``: connections per watched path, data table."""
        return {path: list(ws) for path, ws in self._data.watchers.items()}
