"""The per-znode linearizability checker (``testing/linearizability.py``) on known histories.

Hand-written classics (each linearizable or not for a reason stated), a brute-force oracle
that tries every order on small histories, and hypothesis: a sequential execution with its
invoke/complete times widened at random is linearizable; one corrupted read is caught.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from zkfast.testing.linearizability import (
    BADVERSION,
    FAIL,
    INFO,
    NODEEXISTS,
    NONODE,
    OK,
    History,
    Op,
    check,
    check_key,
    znode_step,
)

_NO = znode_step(None, Op(0, 0, "read", "/k", status=OK, out_value=b"x"))  # the marker


def op(kind: str, t0: int, t1: int | None, *, status: str = OK, value: bytes | None = None,
       version: int = -1, error: str | None = None, out: bytes | None = None,
       out_version: int | None = None, key: str = "/k", process: int = 0,
       ops: list[Op] | None = None) -> Op:
    """One op with explicit times (t1 None: unknown outcome)."""
    o = Op(len(ops) if ops is not None else 0, process, kind, key, value, version, invoke=t0,
           complete=t1, status=status, error=error, out_value=out, out_version=out_version)
    if ops is not None:
        ops.append(o)
    return o


def lin(ops: list[Op], init: Any = None) -> bool:
    res = check(ops, init={"/k": init} if init is not None else None)
    assert not res.inconclusive
    return res.ok


def renumber(ops: list[Op]) -> list[Op]:
    for i, o in enumerate(ops):
        o.id = i
    return ops


# ---------------------------------------------------------------- classics


def test_empty_and_single_ops() -> None:
    assert lin([])
    assert lin(renumber([op("create", 0, 1, value=b"a")]))
    assert lin(renumber([op("read", 0, 1, error=NONODE)]))
    assert not lin(renumber([op("read", 0, 1, out=b"a", out_version=0)]))


def test_stale_read_after_an_acked_write() -> None:
    h = renumber([op("create", 0, 1, value=b"a"),
                  op("set", 2, 3, value=b"b", out_version=1),
                  op("read", 4, 5, out=b"a", out_version=0)])
    assert not lin(h)
    h[2].out_value, h[2].out_version = b"b", 1
    assert lin(h)


def test_a_read_overlapping_the_write_may_see_either() -> None:
    for seen in (b"a", b"b"):
        h = renumber([op("create", 0, 1, value=b"a"),
                      op("set", 2, 10, value=b"b"),
                      op("read", 3, 4, out=seen, process=1)])
        assert lin(h)


def test_a_read_may_not_flip_back_during_a_write() -> None:
    """Two reads inside one write's interval: old then new is fine, new then old is not."""
    base = [op("create", 0, 1, value=b"a"), op("set", 2, 10, value=b"b")]
    ok = renumber(base + [op("read", 3, 4, out=b"a", process=1),
                          op("read", 5, 6, out=b"b", process=1)])
    assert lin(ok)
    base = [op("create", 0, 1, value=b"a"), op("set", 2, 10, value=b"b")]
    bad = renumber(base + [op("read", 3, 4, out=b"b", process=1),
                           op("read", 5, 6, out=b"a", process=1)])
    assert not lin(bad)


def test_lost_update_two_cas_from_one_version() -> None:
    """Both conditional setData(v=0) succeed: one of the two updates is lost."""
    h = renumber([op("create", 0, 1, value=b"a"),
                  op("set", 2, 8, value=b"b", version=0, process=1),
                  op("set", 3, 9, value=b"c", version=0, process=2)])
    assert not lin(h)
    h[2].error = BADVERSION
    assert lin(h)


def test_lost_acknowledged_write() -> None:
    """A write was acknowledged, a later read sees the value before it, then later ones."""
    h = renumber([op("create", 0, 1, value=b"a"),
                  op("set", 2, 3, value=b"b"),
                  op("set", 4, 5, value=b"c"),
                  op("read", 6, 7, out=b"c", out_version=2),
                  op("read", 8, 9, out=b"b", out_version=1)])
    assert not lin(h)


def test_a_read_sees_a_value_never_written() -> None:
    h = renumber([op("create", 0, 1, value=b"a"),
                  op("set", 0, 5, value=b"b", status=INFO),
                  op("read", 6, 7, out=b"zzz")])
    assert not lin(h)


def test_a_failed_write_never_took_effect() -> None:
    h = renumber([op("create", 0, 1, value=b"a"),
                  op("set", 2, 3, value=b"b", status=FAIL),
                  op("read", 4, 5, out=b"b")])
    assert not lin(h)


def test_an_unknown_write_resolved_either_way() -> None:
    base = [op("create", 0, 1, value=b"a"), op("set", 2, None, value=b"b", status=INFO)]
    assert lin(renumber(base + [op("read", 10, 11, out=b"a")]))  # not (yet) applied
    base = [op("create", 0, 1, value=b"a"), op("set", 2, None, value=b"b", status=INFO)]
    assert lin(renumber(base + [op("read", 10, 11, out=b"b")]))  # applied
    base = [op("create", 0, 1, value=b"a"), op("set", 2, None, value=b"b", status=INFO)]
    # Applied long after it was sent (its complete time is infinity): old, then new.
    assert lin(renumber(base + [op("read", 10, 11, out=b"a"), op("read", 50, 51, out=b"b")]))
    base = [op("create", 0, 1, value=b"a"), op("set", 2, None, value=b"b", status=INFO)]
    # ... but once seen it cannot be undone.
    assert not lin(renumber(base + [op("read", 10, 11, out=b"b"),
                                    op("read", 12, 13, out=b"a")]))


def test_an_unknown_write_may_not_take_effect_before_its_invoke() -> None:
    h = renumber([op("create", 0, 1, value=b"a"),
                  op("read", 2, 3, out=b"b"),
                  op("set", 4, None, value=b"b", status=INFO)])
    assert not lin(h)


def test_concurrent_writes_then_reads_must_agree() -> None:
    h = renumber([op("create", 0, 1, value=b"a"),
                  op("set", 2, 10, value=b"b", process=1),
                  op("set", 2, 10, value=b"c", process=2),
                  op("read", 11, 12, out=b"b", process=3),
                  op("read", 11, 12, out=b"c", process=4)])
    assert not lin(h)
    h[4].out_value = b"b"
    assert lin(h)


def test_versions_are_checked() -> None:
    h = renumber([op("create", 0, 1, value=b"a"),
                  op("set", 2, 3, value=b"b", out_version=2)])
    assert not lin(h)
    h[1].out_version = 1
    assert lin(h)
    h = renumber([op("create", 0, 1, value=b"a"),
                  op("set", 2, 3, value=b"b", version=0, error=BADVERSION)])
    assert not lin(h)


def test_create_delete_and_errors() -> None:
    h = renumber([op("create", 0, 1, value=b"a"),
                  op("create", 2, 3, value=b"b", error=NODEEXISTS),
                  op("delete", 4, 5, version=0),
                  op("read", 6, 7, error=NONODE),
                  op("set", 8, 9, value=b"c", error=NONODE)])
    assert lin(h)
    h[3].error, h[3].out_value = None, b"a"
    assert not lin(h)
    h = renumber([op("create", 0, 1, value=b"a", error=NODEEXISTS)])
    assert not lin(h)


def test_initial_state_and_keys_are_independent() -> None:
    h = renumber([op("read", 0, 1, out=b"x", out_version=3),
                  op("create", 0, 1, value=b"y", key="/other")])
    assert lin(h, init=(b"x", 3))
    res = check(h)
    assert not res.ok and [k.key for k in res.violations()] == ["/k"]


def test_the_report_names_the_blocked_op() -> None:
    h = renumber([op("create", 0, 1, value=b"a"),
                  op("set", 2, 3, value=b"b"),
                  op("read", 4, 5, out=b"a")])
    res = check_key(h)
    assert not res.ok and not res.inconclusive
    assert res.blocked is h[2]
    assert [o.id for o in res.prefix] == [0, 1]
    assert "#2" in res.explain() and "not linearizable" in res.explain()


def test_history_recorder() -> None:
    hist = History()
    a = hist.invoke(1, "create", "/k", value=b"a")
    b = hist.invoke(2, "set", "/k", value=b"b")
    hist.ok(a)
    r = hist.invoke(1, "read", "/k")
    hist.ok(r, out_value=b"b", out_version=1)
    hist.close()
    assert b.status == INFO and b.complete is None
    assert check(hist.ops).ok


# ---------------------------------------------------------------- a brute-force oracle


def brute_force(ops: list[Op], init: Any = None) -> bool:
    """Every order that respects real time, every subset of the unknown ops."""
    ops = [o for o in ops if o.status in (OK, INFO)]
    need = [o for o in ops if o.status == OK]

    def before(a: Op, b: Op) -> bool:
        return a.status == OK and a.complete is not None and a.complete < b.invoke

    def go(state: Any, placed: frozenset[int]) -> bool:
        if all(o.id in placed for o in need):
            return True
        for o in ops:
            if o.id in placed:
                continue
            if any(before(p, o) and p.id not in placed for p in ops):
                continue
            new = znode_step(state, o)
            if new is not _NO and go(new, placed | {o.id}):
                return True
        return False
    return go(init, frozenset())


KEYS = ("/a", "/b")


@st.composite
def sequential(draw: st.DrawFn, n_max: int = 60, widen_max: int = 40,
               keys: tuple[str, ...] = KEYS, info_weight: int = 1) -> list[Op]:
    """A sequential run on the znode model, each op's interval widened around its point."""
    n = draw(st.integers(0, n_max))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = random.Random(seed)
    state: dict[str, Any] = dict.fromkeys(keys)
    ops: list[Op] = []
    for i in range(n):
        t = 100 * i
        key = rng.choice(keys)
        s = state[key]
        kind = rng.choice(["create", "set", "set", "delete", "read", "read"])
        version = -1
        if kind in ("set", "delete") and rng.random() < 0.5:
            version = (s[1] if s is not None and rng.random() < 0.7 else rng.randint(0, 3))
        o = Op(i, rng.randrange(4), kind, key, f"v{i}".encode() if kind in ("create", "set")
               else None, version)
        o.invoke = t - rng.randint(0, widen_max * 10)
        status = rng.choices([OK, INFO, FAIL], [8, info_weight, 1])[0]
        applies = status == OK or (status == INFO and rng.random() < 0.5)
        if applies:
            o.status = INFO  # the model's effect, whatever the result
            new = znode_step(s, o)
            o.status = OK
            # The result the sequential run saw.
            if kind == "read":
                if s is None:
                    o.error = NONODE
                else:
                    o.out_value, o.out_version = s
            elif kind == "create" and s is not None:
                o.error = NODEEXISTS
            elif kind in ("set", "delete") and s is None:
                o.error = NONODE
            elif kind in ("set", "delete") and version not in (-1, s[1]):
                o.error = BADVERSION
            elif kind == "set":
                o.out_version = new[1]
            state[key] = new
        o.status = status
        if status == INFO:
            o.complete = None
        else:
            o.complete = t + rng.randint(0, widen_max * 10)
        ops.append(o)
    return ops


@settings(max_examples=200, deadline=None)
@given(sequential())
def test_widened_sequential_runs_are_linearizable(ops: list[Op]) -> None:
    res = check(ops)
    assert res.ok, res.explain()


@settings(max_examples=200, deadline=None)
@given(sequential(), st.integers(0, 2**32 - 1))
def test_a_read_of_a_value_never_written_is_caught(ops: list[Op], seed: int) -> None:
    reads = [o for o in ops if o.kind == "read" and o.status == OK]
    if not reads:
        return
    r = random.Random(seed).choice(reads)
    r.error, r.out_value, r.out_version = None, b"never-written", 0
    res = check(ops)
    assert not res.ok and not res.inconclusive
    assert [k.key for k in res.violations()] == [r.key]


@settings(max_examples=300, deadline=None)
@given(sequential(n_max=7, widen_max=200, keys=("/k",)), st.integers(0, 2**32 - 1))
def test_the_checker_agrees_with_brute_force(ops: list[Op], seed: int) -> None:
    """A read's result replaced by another value written to the key (or NONODE): a real
    violation or not, the exhaustive search decides, and the checker must agree."""
    rng = random.Random(seed)
    reads = [o for o in ops if o.kind == "read" and o.status == OK]
    written = sorted({o.value for o in ops if o.value is not None})
    if reads and rng.random() < 0.8:
        r = rng.choice(reads)
        choice = rng.choice([None, *written])
        if choice is None:
            r.error, r.out_value, r.out_version = NONODE, None, None
        else:
            r.error, r.out_value, r.out_version = None, choice, None
    res = check_key(ops)
    assert not res.inconclusive
    assert res.ok == brute_force(ops)


@settings(max_examples=300, deadline=None)
@given(sequential(n_max=8, widen_max=300, keys=("/k",), info_weight=6),
       st.integers(0, 2**32 - 1))
def test_unknown_writes_agree_with_brute_force(ops: list[Op], seed: int) -> None:
    """Many unknown writes (which the checker collapses when no read saw them)."""
    rng = random.Random(seed)
    reads = [o for o in ops if o.kind == "read" and o.status == OK]
    written = sorted({o.value for o in ops if o.value is not None})
    if reads and written and rng.random() < 0.8:
        r = rng.choice(reads)
        r.error, r.out_value, r.out_version = None, rng.choice(written), None
    res = check_key(ops)
    assert not res.inconclusive
    assert res.ok == brute_force(ops)


def test_brute_force_agreement_on_every_small_write_read_mix() -> None:
    """Exhaustive over a tiny space: two writes and two reads, all interval layouts."""
    values = [b"a", b"b"]
    intervals = [(0, 2), (1, 3), (4, 6), (5, 9), (7, 8)]
    checked = 0
    for iw in itertools.product(intervals, repeat=2):
        for ir in itertools.product(intervals, repeat=2):
            for seen in itertools.product([*values, None], repeat=2):
                ops = [op("set", iw[0][0], iw[0][1], value=b"a"),
                       op("set", iw[1][0], iw[1][1], value=b"b")]
                for (t0, t1), s in zip(ir, seen, strict=True):
                    if s is None:
                        ops.append(op("read", t0, t1, out=b"0"))
                    else:
                        ops.append(op("read", t0, t1, out=s))
                renumber(ops)
                init = (b"0", 0)
                assert check_key(ops, init=init).ok == brute_force(ops, init), ops
                checked += 1
    assert checked == 25 * 25 * 9


def test_hundreds_of_concurrent_ops_check_quickly() -> None:
    """Five processes, one key, 400 overlapping ops: the cache keeps the search small."""
    rng = random.Random(7)
    hist = History()
    state: Any = None
    live: list[tuple[Op, Any]] = []  # ops invoked, with the result they will report
    n = 0
    while n < 400 or live:
        if n < 400 and (not live or (len(live) < 5 and rng.random() < 0.6)):
            kind = rng.choice(["set", "set", "read", "create"])
            o = hist.invoke(rng.randrange(5), kind, "/k",
                            value=f"v{n}".encode() if kind != "read" else None)
            n += 1
            # Linearize at invoke time: the effect and result are known now.
            o.status = INFO
            new = znode_step(state, o)
            if kind == "read":
                res = (NONODE, None, None) if state is None else (None, *state)
            elif kind == "create":
                res = (NODEEXISTS if state is not None else None, None, None)
            else:
                res = (NONODE if state is None else None, None,
                       None if state is None else new[1])
            o.status = None
            state = new
            live.append((o, res))
        else:
            o, (err, out, ver) = live.pop(rng.randrange(len(live)))
            if rng.random() < 0.05:
                hist.info(o)
            else:
                hist.ok(o, error=err, out_value=out, out_version=ver)
    result = check(hist.ops, steps_max=200_000)
    assert result.ok, result.explain()
