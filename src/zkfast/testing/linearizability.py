"""A linearizability checker for per-znode histories (Wing & Gong's search, Lowe's cache).

Theory of operation
-------------------
A history is a list of operations, each with an invoke time and, when it completed, a
complete time (times are any strictly comparable integers; the simulator uses a global event
counter, so no two events share a time). An operation's status follows Jepsen:

- ``ok``: it completed and its result is known. A ZooKeeper error decided in the total order
  (NONODE, NODEEXISTS, BADVERSION) is a *result* of an ``ok`` operation and is checked too.
- ``fail``: it definitely did not take effect (never sent, or refused before ordering). It is
  dropped before the search.
- ``info`` (unknown): it may or may not have taken effect, at any moment after its invoke
  (a reply lost with its connection, a crash). Its complete time is taken as infinity and its
  result is never checked; the search may also leave it out altogether.

The history is linearizable when some total order of the ``ok`` operations (plus any subset
of the ``info`` ones) respects real time (A completed before B was invoked => A before B) and
replays on the sequential model with every ``ok`` result matching.

The model is a ZooKeeper znode used as a CAS register: the state of one path is ``None`` (no
znode) or ``(data, version)``. ``create`` (NODEEXISTS when present), ``set`` with an expected
version or -1 (NONODE, BADVERSION; the reply's new version is checked when recorded),
``delete`` with a version (NONODE, BADVERSION) and ``read`` (the data and version, or NONODE).

Search (``check_key``): the entries (invoke and complete events) of one key's operations sit in
a doubly linked list in time order. Walking it, an invoke entry whose operation fits the current
state is *lifted* (its two entries leave the list, the operation is pushed with the state before
it) and the walk restarts at the head; reaching a complete entry means that operation should
have been linearized already, so the last choice is undone (backtrack). Lowe's improvement: a
set of (linearized operations as a bit set, state) pairs already explored; a choice leading to
a known pair is skipped. This is Porcupine's ``checkSingle`` and knossos's ``linear``.

Histories are split per key first (P-compositionality: a history of independent registers is
linearizable iff each key's sub-history is), which keeps each search small. A search that
exceeds ``steps_max`` gives an inconclusive result (never a false violation).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "OK", "FAIL", "INFO", "Op", "History", "KeyResult", "Result", "ZnodeState",
    "znode_step", "check_key", "check", "NONODE", "NODEEXISTS", "BADVERSION",
]

OK, FAIL, INFO = "ok", "fail", "info"
NONODE, NODEEXISTS, BADVERSION = "nonode", "nodeexists", "badversion"
KINDS = ("create", "set", "delete", "read")

#: ``None`` (no znode) or ``(data, version)``.
ZnodeState = tuple[bytes, int] | None
#: A model step: the state after ``op`` from ``state``, or ``_NO`` when its result cannot be.
Step = Callable[[Any, "Op"], Any]


@dataclass(slots=True)
class Op:
    """One operation on one key, from invoke to completion (or to nothing, if unknown)."""

    id: int
    process: Hashable
    kind: str
    key: str
    #: ``create``/``set``: the data written.
    value: bytes | None = None
    #: ``set``/``delete``: the expected version (-1: any).
    version: int = -1
    invoke: int = 0
    #: None while pending, and for ``info`` operations (they may take effect any time later).
    complete: int | None = None
    status: str | None = None
    #: ``ok`` results: None, or NONODE / NODEEXISTS / BADVERSION.
    error: str | None = None
    #: ``read`` ok: the data seen; ``set`` ok: unused.
    out_value: bytes | None = None
    #: ``read`` ok: the version seen; ``set`` ok: the new version (stat.version), or None.
    out_version: int | None = None

    def describe(self) -> str:
        s = f"#{self.id} p={self.process} {self.kind} {self.key}"
        if self.kind in ("create", "set"):
            s += f" {self.value!r}"
        if self.kind in ("set", "delete") and self.version != -1:
            s += f" v={self.version}"
        s += f" [{self.invoke}..{self.complete if self.complete is not None else 'inf'}]"
        s += f" {self.status}"
        if self.error is not None:
            s += f" {self.error}"
        elif self.status == OK and self.kind == "read":
            s += f" -> {self.out_value!r} v={self.out_version}"
        elif self.status == OK and self.kind == "set" and self.out_version is not None:
            s += f" -> v={self.out_version}"
        return s


class _No:
    """The 'this result is impossible here' marker of a model step."""

    def __repr__(self) -> str:
        return "impossible"


_NO: Any = _No()


def znode_step(state: ZnodeState, op: Op) -> Any:
    """The sequential znode: the next state, or ``_NO`` when ``op``'s result cannot happen.

    An ``info`` op's result is unknown: it takes whatever effect the state allows.
    """
    known = op.status == OK
    err = op.error if known else None
    k = op.kind
    if k == "read":
        if not known:
            return state
        if err == NONODE:
            return state if state is None else _NO
        if err is not None or state is None:
            return _NO
        if op.out_value != state[0] or (op.out_version is not None
                                        and op.out_version != state[1]):
            return _NO
        return state
    if k == "create":
        assert op.value is not None
        if state is None:
            return _NO if err is not None else (op.value, 0)
        return state if (not known or err == NODEEXISTS) else _NO
    if k == "set":
        assert op.value is not None
        if state is None:
            return state if (not known or err == NONODE) else _NO
        if op.version != -1 and op.version != state[1]:
            return state if (not known or err == BADVERSION) else _NO
        if err is not None:
            return _NO
        if known and op.out_version is not None and op.out_version != state[1] + 1:
            return _NO
        return (op.value, state[1] + 1)
    if k == "delete":
        if state is None:
            return state if (not known or err == NONODE) else _NO
        if op.version != -1 and op.version != state[1]:
            return state if (not known or err == BADVERSION) else _NO
        return None if err is None else _NO
    raise ValueError(f"unknown operation kind {k!r}")


class History:
    """Records operations Jepsen-style: ``invoke`` then one of ``ok``/``fail``/``info``.

    Times are a counter bumped at every event, so real-time order is exact; ``at`` may carry
    the simulator's virtual ms for printing.
    """

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self._clock = 0
        #: Virtual ms of each event time, for reports.
        self.at_ms: dict[int, int] = {}

    def _tick(self, at_ms: int | None) -> int:
        self._clock += 1
        if at_ms is not None:
            self.at_ms[self._clock] = at_ms
        return self._clock

    def invoke(self, process: Hashable, kind: str, key: str, *, value: bytes | None = None,
               version: int = -1, at_ms: int | None = None) -> Op:
        if kind not in KINDS:
            raise ValueError(f"unknown operation kind {kind!r}")
        op = Op(len(self.ops), process, kind, key, value, version, invoke=self._tick(at_ms))
        self.ops.append(op)
        return op

    def ok(self, op: Op, *, error: str | None = None, out_value: bytes | None = None,
           out_version: int | None = None, at_ms: int | None = None) -> None:
        assert op.status is None, f"op {op.id} completed twice"
        op.status, op.error = OK, error
        op.out_value, op.out_version = out_value, out_version
        op.complete = self._tick(at_ms)

    def fail(self, op: Op, *, at_ms: int | None = None) -> None:
        assert op.status is None, f"op {op.id} completed twice"
        op.status = FAIL
        op.complete = self._tick(at_ms)

    def info(self, op: Op) -> None:
        """The outcome is unknown (the op stays open forever)."""
        assert op.status is None, f"op {op.id} completed twice"
        op.status = INFO

    def close(self) -> None:
        """Every op still pending becomes unknown (end of the run)."""
        for op in self.ops:
            if op.status is None:
                op.status = INFO

    def pending(self) -> list[Op]:
        return [op for op in self.ops if op.status is None]


@dataclass
class KeyResult:
    key: str
    ok: bool
    #: True when the search gave up (``steps_max``): neither proven nor refuted.
    inconclusive: bool = False
    ops: int = 0
    steps: int = 0
    #: On a violation: the longest linearizable prefix found, and the op that could not follow.
    prefix: list[Op] = field(default_factory=list)
    state: Any = None
    blocked: Op | None = None

    def explain(self, tail: int = 8) -> str:
        if self.ok:
            return f"{self.key}: linearizable ({self.ops} ops, {self.steps} steps)"
        if self.inconclusive:
            return f"{self.key}: gave up after {self.steps} steps ({self.ops} ops)"
        lines = [f"{self.key}: not linearizable ({self.ops} ops); longest linearizable "
                 f"prefix has {len(self.prefix)} ops, ending:"]
        lines += ["  " + op.describe() for op in self.prefix[-tail:]]
        lines.append(f"  state then: {self.state!r}")
        if self.blocked is not None:
            lines.append("  and this op fits no linearization: " + self.blocked.describe())
        return "\n".join(lines)


@dataclass
class Result:
    ok: bool
    keys: list[KeyResult]

    @property
    def inconclusive(self) -> bool:
        return any(k.inconclusive for k in self.keys)

    def violations(self) -> list[KeyResult]:
        return [k for k in self.keys if not k.ok and not k.inconclusive]

    def explain(self) -> str:
        bad = [k for k in self.keys if not k.ok]
        if not bad:
            return f"linearizable ({len(self.keys)} keys)"
        return "\n".join(k.explain() for k in bad)


def check_key(ops: Iterable[Op], *, step: Step = znode_step, init: Any = None,
              steps_max: int = 2_000_000) -> KeyResult:
    """Is this history of one key linearizable? (``fail`` ops are dropped first.)"""
    ops_l = [op for op in ops if op.status in (OK, INFO)]
    key = ops_l[0].key if ops_l else ""
    for op in ops_l:
        assert op.status == INFO or op.complete is not None, f"op {op.id} ok without complete"
    # Unknown reads constrain nothing: leave them out.
    ops_l = [op for op in ops_l if not (op.status == INFO and op.kind == "read")]
    n = len(ops_l)
    n_ok = sum(1 for op in ops_l if op.status == OK)
    res = KeyResult(key, True, ops=n)
    if n_ok == 0:
        return res
    orig = ops_l
    ops_l, after = _canonical_unknowns(ops_l)
    inf = 1 << 62
    # Entries: 2*i is the invoke of ops_l[i], 2*i + 1 its completion. Sorted by time; at equal
    # times invokes first (concurrent, the weaker order).
    order = sorted(range(2 * n), key=lambda e: (
        ops_l[e >> 1].invoke if e % 2 == 0 else
        (inf if ops_l[e >> 1].status == INFO or ops_l[e >> 1].complete is None
         else ops_l[e >> 1].complete),
        e % 2, e))
    for op in ops_l:
        if op.status == OK and op.complete is not None and op.complete < op.invoke:
            raise ValueError(f"op {op.id} completes before it is invoked")
    head = 2 * n  # a sentinel entry before the first
    nxt = [-1] * (2 * n + 1)
    prv = [-1] * (2 * n + 1)
    last = head
    for e in order:
        nxt[last] = e
        prv[e] = last
        last = e
    is_ok = [op.status == OK for op in ops_l]

    def lift(e: int) -> None:
        r = e + 1
        nxt[prv[e]] = nxt[e]
        prv[nxt[e]] = prv[e]
        nxt[prv[r]] = nxt[r]
        if nxt[r] != -1:
            prv[nxt[r]] = prv[r]

    def unlift(e: int) -> None:
        r = e + 1
        nxt[prv[r]] = r
        if nxt[r] != -1:
            prv[nxt[r]] = r
        nxt[prv[e]] = e
        prv[nxt[e]] = e

    state = init
    linearized = 0
    done_ok = 0
    calls: list[tuple[int, Any]] = []
    cache: set[tuple[int, Any]] = set()
    best: list[int] = []
    best_state: Any = init
    blocked: int | None = None
    steps = 0
    e = nxt[head]
    while e != -1:
        steps += 1
        if steps > steps_max:
            res.ok, res.inconclusive, res.steps = False, True, steps
            return res
        i = e >> 1
        if e % 2 == 0:  # an invoke: try to linearize the op here
            a = after[i]
            new = _NO if a >= 0 and not linearized >> a & 1 else step(state, ops_l[i])
            if new is not _NO:
                bits = linearized | (1 << i)
                if (bits, new) not in cache:
                    cache.add((bits, new))
                    calls.append((e, state))
                    state, linearized = new, bits
                    lift(e)
                    if is_ok[i]:
                        done_ok += 1
                        if done_ok == n_ok:
                            res.steps = steps
                            return res
                    e = nxt[head]
                    continue
            e = nxt[e]
        else:  # a completion reached: this op had to be linearized by now
            if len(calls) >= len(best):
                if len(calls) > len(best) or blocked is None:
                    best = [c for c, _ in calls]
                    best_state = state
                    blocked = i
            if not calls:
                break
            e, state = calls.pop()
            j = e >> 1
            linearized &= ~(1 << j)
            if is_ok[j]:
                done_ok -= 1
            unlift(e)
            e = nxt[e]
    res.ok, res.steps = False, steps
    res.prefix = [orig[c >> 1] for c in best]
    res.state = best_state
    res.blocked = orig[blocked] if blocked is not None else None
    return res


#: The data of an unknown write that no read saw (any such data is as good as another).
UNSEEN = b"\x00unseen"


def _canonical_unknowns(ops: list[Op]) -> tuple[list[Op], list[int]]:
    """Collapse interchangeable unknown writes; returns the ops and each one's predecessor.

    Unknown writes whose data no ``ok`` read returned, of the same kind and expected version,
    have the same effect on every state (their data is never compared with anything), and
    none ever forces a backtrack (it never completes). If a linearization applies m of them,
    one applying the m earliest-invoked instead, in invoke order, at the same points, is valid
    too: the j-th applied one was preceded by j invokes of its class. So the search applies
    them only in invoke order: ``after[i]`` is the index that must be linearized before op i
    (-1: none). Without this, k open unknown writes cost 2**k states; with it, k + 1.
    """
    seen = {op.out_value for op in ops if op.status == OK and op.kind == "read"}
    unseen = UNSEEN
    while unseen in seen:
        unseen += b"!"
    out = list(ops)
    after = [-1] * len(ops)
    last: dict[tuple[str, int], int] = {}
    for i in sorted(range(len(ops)), key=lambda i: (ops[i].invoke, ops[i].id)):
        op = ops[i]
        if op.status != INFO or op.kind == "read" or (op.kind != "delete"
                                                       and op.value in seen):
            continue
        if op.kind != "delete":
            out[i] = replace(op, value=unseen)
        cls = (op.kind, op.version)
        after[i] = last.get(cls, -1)
        last[cls] = i
    return out, after


def check(ops: Iterable[Op], *, step: Step = znode_step,
          init: dict[str, Any] | None = None, steps_max: int = 2_000_000) -> Result:
    """Check a whole history, one key at a time (keys in sorted order)."""
    by_key: dict[str, list[Op]] = {}
    for op in ops:
        by_key.setdefault(op.key, []).append(op)
    init = init or {}
    keys = [check_key(by_key[k], step=step, init=init.get(k), steps_max=steps_max)
            for k in sorted(by_key)]
    for k, r in zip(sorted(by_key), keys, strict=True):
        r.key = k
    return Result(all(k.ok for k in keys), keys)
