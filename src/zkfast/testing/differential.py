"""Differential testing: one seeded op sequence, run against two servers, replies compared.

A seed drives a `Generator` of client steps: every client operation of zk-formats §1.3 with
right and wrong arguments (creates of every mode, TTL and container included; deletes and sets
with right and wrong versions; reads with watches; getACL/setACL with valid and invalid ACLs;
multi that commits and multi that rolls back; multiRead; sync; addWatch, checkWatches and
removeWatches; getEphemerals, getAllChildrenNumber, whoAmI), spread over several interleaved
sessions, some of them authenticated (digest), some closed and reopened so that their ephemerals
go, some moved to a new connection that re-arms watches (setWatches/setWatches2).

`run_seed` plays a seed against the reference server (Apache) and lets the generator see each
reply, so that most steps aim at znodes that exist; it returns the steps it chose, which
`run_steps` replays against the server under test (and `ZKFAST_DIFF_SEED` replays exactly, as
the reference is deterministic). `sweep_steps` (every path-taking op over malformed, system and
edge-character paths) and `close_order_steps` (deletion order of a closing session's
ephemerals) are fixed sequences for the same machinery.

`run_steps` plays the steps, strictly one at a time, against a server over raw sockets (requests
built and replies decoded with the `wire.jute` layouts, so nothing is hidden by a client library)
and returns a trace: per step, the ReplyHeader (xid, zxid, err), the decoded reply body, and the
notifications that session received before that reply, in arrival order. Replies to a step are
awaited before the next step is sent, so the trace of a correct server is deterministic: a
notification a write triggers for another session is queued on that session's connection before
the write's own reply, hence before anything that session asks next. At the end every session is
drained (a ping is answered after any pending notification) and the whole tree is dumped.

`normalise` removes what legitimately differs between two runs: ctime/mtime (wall clock), and
session ids, which become session indexes ("s0", "s1", ... in connection order) wherever they
appear (ConnectResponse, Stat.ephemeralOwner). Child lists and getEphemerals results are sorted
(Apache returns them in HashSet order, which no client may rely on). `compare` lists the steps
whose normalised records differ.

Nothing here is timed: no step waits for a clock, only for its reply. The runs are meant to be
short (a few seconds), well inside Apache's 60 s container/TTL reaper interval and the 30 s
session timeout, so no server-side timer fires during a run.
"""

from __future__ import annotations

import random
import socket
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..wire import jute

__all__ = [
    "SERVER_PROPS",
    "Step",
    "Session",
    "generate",
    "run_seed",
    "run_steps",
    "sweep_steps",
    "close_order_steps",
    "compare",
    "format_step",
    "zk_passwd",
]

# opcodes (zk-formats §1.3)
CREATE, DELETE, EXISTS, GET_DATA, SET_DATA, GET_ACL, SET_ACL, GET_CHILDREN = 1, 2, 3, 4, 5, 6, 7, 8
SYNC, PING, GET_CHILDREN2, CHECK, MULTI, CREATE2 = 9, 11, 12, 13, 14, 15
CHECK_WATCHES, REMOVE_WATCHES, CREATE_CONTAINER, CREATE_TTL, MULTI_READ = 17, 18, 19, 21, 22
SET_WATCHES, SET_WATCHES2 = 101, 105
AUTH, GET_EPHEMERALS, GET_ALL_CHILDREN_NUMBER, ADD_WATCH, WHO_AM_I = 100, 103, 104, 106, 107
CLOSE_SESSION = -11

OP_NAMES = {
    CREATE: "create", DELETE: "delete", EXISTS: "exists", GET_DATA: "getData",
    SET_DATA: "setData", GET_ACL: "getACL", SET_ACL: "setACL", GET_CHILDREN: "getChildren",
    SYNC: "sync", PING: "ping", GET_CHILDREN2: "getChildren2", CHECK: "check", MULTI: "multi",
    CREATE2: "create2", CHECK_WATCHES: "checkWatches", REMOVE_WATCHES: "removeWatches",
    CREATE_CONTAINER: "createContainer", CREATE_TTL: "createTTL", MULTI_READ: "multiRead",
    AUTH: "auth", GET_EPHEMERALS: "getEphemerals", GET_ALL_CHILDREN_NUMBER: "getAllChildrenNumber",
    ADD_WATCH: "addWatch", WHO_AM_I: "whoAmI", CLOSE_SESSION: "closeSession",
    SET_WATCHES: "setWatches", SET_WATCHES2: "setWatches2",
}  # fmt: skip

#: Result body layouts of multi/multiRead sub-results, by sub-result type.
_MULTI_RESULT = {
    CREATE: jute.RESPONSES[CREATE],
    CREATE2: jute.RESPONSES[CREATE2],
    CREATE_CONTAINER: jute.RESPONSES[CREATE_CONTAINER],
    CREATE_TTL: jute.RESPONSES[CREATE_TTL],
    SET_DATA: jute.RESPONSES[SET_DATA],
    DELETE: (),
    CHECK: (),
    GET_DATA: jute.RESPONSES[GET_DATA],
    GET_CHILDREN: jute.RESPONSES[GET_CHILDREN],
    -1: jute.RESPONSES[ADD_WATCH],  # ErrorResponse{int err}
}

_LEN = struct.Struct(">i")


def zk_passwd(session_id: int) -> bytes:
    """Apache's session password: java.util.Random(session_id ^ 0xB3415C00).nextBytes(16)."""
    m = (1 << 48) - 1
    s = ((session_id ^ 0xB3415C00) ^ 0x5DEECE66D) & m
    out = bytearray()
    while len(out) < 16:
        s = (s * 0x5DEECE66D + 0xB) & m
        r = s >> 16
        for _ in range(min(4, 16 - len(out))):
            out.append(r & 0xFF)
            r >>= 8
    return bytes(out)


# ------------------------------------------------------------------------------ the op sequence


@dataclass(frozen=True)
class Step:
    """One client action of a session.

    kind: "connect", "close" (closeSession), "auth" (args: scheme, credential) or "request"
    (args: opcode, record values for the opcode's jute layout; multi/multiRead: a list of
    (sub-opcode, values)).
    """

    session: int
    kind: str
    args: tuple[Any, ...] = ()


OPEN = [(31, ("world", "anyone"))]
READ_ONLY = [(1, ("world", "anyone"))]
USERS = {"u1": "p1", "u2": "p2", "super": "super-pw"}


def _digest_id(user: str) -> str:
    """The digest scheme's id of a user: ``user:base64(sha1("user:password"))``."""
    import base64
    import hashlib

    sha = hashlib.sha1(f"{user}:{USERS[user]}".encode()).digest()
    return f"{user}:{base64.b64encode(sha).decode()}"


#: The -D properties both servers of a differential run need: TTL nodes, and the super digest
#: that makes the "super" user of `USERS` a superuser (ACL checks skipped, getACL unmasked).
SERVER_PROPS = {
    "zookeeper.extendedTypesEnabled": "true",
    "zookeeper.DigestAuthenticationProvider.superDigest": _digest_id("super"),
}

ACLS: list[list[tuple[int, tuple[str, str]]]] = [
    OPEN,
    OPEN,
    OPEN,
    READ_ONLY,
    [(31, ("digest", _digest_id("u1")))],
    [(31, ("digest", _digest_id("u1"))), (1, ("world", "anyone"))],
    [(31, ("digest", _digest_id("u2"))), (31, ("digest", _digest_id("u2")))],  # duplicate entries
    [(31, ("auth", ""))],  # the caller's auth ids (InvalidACL without any)
    [(4 | 8, ("world", "anyone"))],  # create+delete only, no read
    [(31, ("ip", "127.0.0.1"))],
    [(31, ("ip", "10.0.0.0/8"))],
    [(31, ("digest", "no-colon"))],  # InvalidACL
    [(31, ("nosuchscheme", "x"))],  # InvalidACL
    [],  # InvalidACL
]

NAMES = ("a", "b", "c")


def _paths() -> list[str]:
    paths = ["/d"]
    for a in NAMES:
        paths.append(f"/d/{a}")
        for b in NAMES:
            paths.append(f"/d/{a}/{b}")
    paths += ["/d/a/b/c", "/d/c/c/a"]
    for parent in ("/d", "/d/a", "/d/b/c"):
        paths += [f"{parent}/s-{n:010d}" for n in range(6)]
    return paths


PATHS = _paths()
#: Paths outside the working tree or malformed, used now and then.
ODD_PATHS = ["/", "/zookeeper", "/zookeeper/config", "/zookeeper/quota", "/d/", "d/a", "/d//a",
             "/d/./a", "/d/..", "", "/nosuch/x"]  # fmt: skip


class Generator:
    """Builds a seeded step sequence; see `generate`."""

    def __init__(self, seed: int, sessions: int, ttl: bool) -> None:
        self.rng = random.Random(seed)
        self.sessions = sessions
        self.ttl = ttl
        #: Paths some earlier create aimed at: a rough guess of the tree, to aim most ops at
        #: nodes that exist (the generator never sees replies; the guess need not be right).
        self.known = ["/d"]
        self.ephemeral_of: dict[int, set[str]] = {}
        #: Steps to play before the next random one (re-creating /d after it was deleted).
        self.pending: list[Step] = []

    # -- argument pools --------------------------------------------------------------------
    def path(self) -> str:
        r = self.rng.random()
        if r < 0.04:
            return self.rng.choice(ODD_PATHS)
        if r < 0.7:
            return self.rng.choice(self.known)
        return self.rng.choice(PATHS)

    def new_path(self) -> str:
        """A path to create: mostly a child of a node believed to exist."""
        if self.rng.random() < 0.15:
            return self.path()
        parent = self.rng.choice(self.known)
        return f"{parent}/{self.rng.choice(NAMES)}"

    def parent_for_create(self) -> str:
        return self.rng.choice(self.known)

    def data(self) -> bytes | None:
        r = self.rng.random()
        if r < 0.05:
            return None
        if r < 0.15:
            return b""
        return bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(1, 12)))

    def version(self) -> int:
        return self.rng.choice([-1, -1, -1, 0, 0, 0, 1, 1, 2, 3, 7])

    def acl(self) -> list[tuple[int, tuple[str, str]]]:
        return OPEN if self.rng.random() < 0.6 else self.rng.choice(ACLS)

    def create_record(self) -> tuple[int, tuple[Any, ...]]:
        """(opcode, CreateRequest/CreateTTLRequest values) with a mode, path, data and ACL."""
        rng = self.rng
        seq = rng.random() < 0.3
        path = self.parent_for_create() + "/s-" if seq else self.new_path()
        data, acl = self.data(), self.acl()
        r = rng.random()
        if r < 0.1 and self.ttl:
            flags = rng.choice([5, 6, 5, 0, 1])  # wrong modes for createTTL now and then
            ttl = rng.choice([1, 500, 30_000, 3_600_000, 0, -1, (1 << 40) - 1, 1 << 40])
            if flags in (0, 1) and ttl < 0:
                # Apache 3.8.0 dies here: EphemeralType.validateTTL lets a negative TTL through
                # for a non-TTL mode, then applying the createTTL txn throws in its SyncThread
                # (TTL.toEphemeralOwner) and the server exits, so Apache cannot judge it
                ttl = 0
            return CREATE_TTL, (path, data, acl, flags, ttl)  # fmt: skip
        if r < 0.18:
            return CREATE_CONTAINER, (path, data, acl, 4)
        flags = rng.choice([0, 0, 0, 0, 1]) if not seq else rng.choice([2, 3])
        if rng.random() < 0.03:
            flags = rng.choice([4, 5, 7, -1])  # container/TTL through plain create, or invalid
        return rng.choice([CREATE, CREATE2, CREATE2]), (path, data, acl, flags)

    # -- one step --------------------------------------------------------------------------
    def request(self, session: int) -> Step:
        rng = self.rng
        choice = rng.choices(
            ["create", "delete", "exists", "getData", "getChildren", "getChildren2", "setData",
             "getACL", "setACL", "sync", "multi", "multiRead", "addWatch", "checkWatches",
             "removeWatches", "getEphemerals", "getAllChildrenNumber", "whoAmI"],
            weights=[22, 10, 8, 8, 6, 4, 10, 3, 4, 2, 8, 3, 3, 1, 2, 2, 2, 1],
        )[0]  # fmt: skip
        args: tuple[Any, ...]
        if choice == "create":
            args = self.create_record()
        elif choice == "delete":
            args = (DELETE, (self.path(), self.version()))
        elif choice in ("exists", "getData", "getChildren", "getChildren2"):
            op = {"exists": EXISTS, "getData": GET_DATA, "getChildren": GET_CHILDREN,
                  "getChildren2": GET_CHILDREN2}[choice]  # fmt: skip
            args = (op, (self.path(), rng.random() < 0.6))
        elif choice == "setData":
            args = (SET_DATA, (self.path(), self.data(), self.version()))
        elif choice == "getACL":
            args = (GET_ACL, (self.path(),))
        elif choice == "setACL":
            args = (SET_ACL, (self.path(), self.acl(), self.version()))
        elif choice == "sync":
            args = (SYNC, (self.path(),))
        elif choice == "multi":
            args = (MULTI, self.multi_ops())
        elif choice == "multiRead":
            ops = [(rng.choice([GET_DATA, GET_CHILDREN]), (self.path(), False))
                   for _ in range(rng.randrange(1, 4))]  # fmt: skip
            args = (MULTI_READ, ops)
        elif choice == "addWatch":
            args = (ADD_WATCH, (self.path(), rng.choice([0, 1])))
        elif choice in ("checkWatches", "removeWatches"):
            op = CHECK_WATCHES if choice == "checkWatches" else REMOVE_WATCHES
            args = (op, (self.path(), rng.choice([1, 2, 3])))
        elif choice == "getEphemerals":
            args = (GET_EPHEMERALS, (rng.choice(["/", "/d", "/d/a", "/d/s", "/x", ""]),))
        elif choice == "getAllChildrenNumber":
            args = (GET_ALL_CHILDREN_NUMBER, (rng.choice(["/d", "/d/a", "/", "/nosuch"]),))
        else:
            args = (WHO_AM_I, ())
        return Step(session, "request", args)

    def multi_ops(self) -> list[tuple[int, tuple[Any, ...]]]:
        rng = self.rng
        ops: list[tuple[int, tuple[Any, ...]]] = []
        if rng.random() < 0.5:
            # a coherent multi that commits unless the tree guess is wrong or the dice say so
            path = self.new_path()
            ops.append((rng.choice([CREATE, CREATE2]), (path, self.data(), OPEN, 0)))
            ops.append((CREATE2, (f"{path}/{rng.choice(NAMES)}", self.data(), OPEN, 0)))
            ops.append((SET_DATA, (path, self.data(), rng.choice([-1, 0, 0, 1]))))
            ops.append((CHECK, (path, rng.choice([1, 1, 1, 0]))))
            if rng.random() < 0.3:
                ops.append((DELETE, (path, -1)))  # NotEmpty: rolls everything back
            return ops
        for _ in range(rng.randrange(1, 5)):
            kind = rng.choice(["create", "create", "delete", "setData", "check"])
            if kind == "create":
                op, rec = self.create_record()
                ops.append((op, rec))
            elif kind == "delete":
                ops.append((DELETE, (self.path(), self.version())))
            elif kind == "setData":
                ops.append((SET_DATA, (self.path(), self.data(), self.version())))
            else:
                ops.append((CHECK, (self.path(), self.version())))
        return ops

    def opening(self) -> list[Step]:
        """Connect every session, then create the working node /d."""
        out = [Step(s, "connect") for s in range(self.sessions)]
        out.append(Step(0, "request", (CREATE, ("/d", b"root", OPEN, 0))))
        return out

    def next_steps(self) -> list[Step]:
        """One random step (a close comes with the reconnect of its slot)."""
        if self.pending:
            out, self.pending = self.pending, []
            return out
        rng = self.rng
        s = rng.randrange(self.sessions)
        r = rng.random()
        if s > 0 and r < 0.03:
            # the last sessions come and go: closing one takes its ephemerals away
            s = self.sessions - 1 - rng.randrange(min(2, self.sessions - 1))
            return [Step(s, "close"), Step(s, "connect")]
        if r < 0.06:
            user = rng.choice(["u1", "u1", "u2", "u2", "super"])
            return [Step(s, "auth", ("digest", f"{user}:{USERS[user]}".encode()))]
        if r < 0.09:
            # the session moves to a new connection and re-arms watches, as a client does
            paths = [sorted({self.path() for _ in range(rng.randrange(0, 4))}) for _ in range(5)]
            rel = rng.choice(["last", "last", 0])
            if rng.random() < 0.5:
                watches = (SET_WATCHES, (rel, *paths[:3]))
            else:
                watches = (SET_WATCHES2, (rel, *paths))
            return [Step(s, "reconnect"), Step(s, "request", watches)]
        return [self.request(s)]

    def closing(self) -> list[Step]:
        return [Step(self.sessions - 1, "close")]

    def observe(self, step: Step, record: Any) -> None:
        """Learn from the reference server's raw record of `step`: created and deleted paths."""
        if step.kind == "close":
            gone = self.ephemeral_of.pop(step.session, set())
            self.known = [p for p in self.known if p not in gone]
            return
        if step.kind != "request" or len(record) < 7 or record[4] != 0:
            return
        op, rec = step.args
        if op in (MULTI,):
            results = record[5][1]
            if results and results[0][1] == 0 and results[0][0] != -1:
                for (sub_op, sub_rec), res in zip(rec, results, strict=False):
                    self._learn(step.session, sub_op, sub_rec, res[2])
            return
        self._learn(step.session, op, rec, record[5][0])

    def _learn(self, session: int, op: int, rec: Any, value: Any) -> None:
        if op in (CREATE, CREATE2, CREATE_CONTAINER, CREATE_TTL):
            created = value[0]
            flags = rec[3]
            if isinstance(created, str) and created.startswith("/d") and len(created) < 60:
                if created not in self.known:
                    self.known.append(created)
                if flags in (1, 3):
                    self.ephemeral_of.setdefault(session, set()).add(created)
        elif op == DELETE and rec[0] == "/d":
            self.pending.append(Step(session, "request", (CREATE, ("/d", b"again", OPEN, 0))))
        elif op == DELETE and rec[0] in self.known:
            self.known.remove(rec[0])


def generate(seed: int, count: int = 150, sessions: int = 4, ttl: bool = True) -> list[Step]:
    """The steps of `seed` without feedback (the generator guesses no tree): for unit checks.

    The differential run uses `run_seed`, which lets the reference server's replies steer the
    generator towards nodes that exist, and records the steps it played for the replay.
    """
    assert sessions >= 2
    gen = Generator(seed, sessions, ttl)
    out = gen.opening()
    for _ in range(count):
        out += gen.next_steps()
    return out + gen.closing()


#: Paths for the sweep: malformed, system, or at the edge of PathUtils' character rules.
SWEEP_PATHS = [*ODD_PATHS, "/d\u0001x", "/d/a\u0000b", "/d/\u00e9t\u00e9", "/d/\u007f", "/d/a b"]


def sweep_steps() -> list[Step]:
    """Every path-taking request over `SWEEP_PATHS`, from one session with watches everywhere.

    Deterministic (no seed): two connects, /d and /d/a created, a persistent recursive watch on
    /d (second session), then for each path every op
    (creates of each mode, delete, reads with watches, setData/setACL, sync, check/remove
    watches, addWatch both modes, getEphemerals, getAllChildrenNumber, a multi and a
    multiRead), then a second session's writes that fire whatever the first one armed, then
    setWatches and setWatches2 of every path on a new connection.
    """
    steps = [Step(0, "connect"), Step(1, "connect")]
    steps.append(Step(0, "request", (CREATE, ("/d", b"", OPEN, 0))))
    steps.append(Step(0, "request", (CREATE, ("/d/a", b"a", OPEN, 0))))
    # a recursive watch changes how Apache walks watch paths (PathParentIterator)
    steps.append(Step(1, "request", (ADD_WATCH, ("/d", 1))))
    for p in SWEEP_PATHS:
        for op, rec in [
            (CREATE, (p, b"x", OPEN, 0)), (CREATE2, (p, b"x", OPEN, 2)),
            (CREATE_CONTAINER, (p, b"", OPEN, 4)), (CREATE_TTL, (p, b"", OPEN, 5, 1000)),
            (EXISTS, (p, True)), (GET_DATA, (p, True)), (GET_CHILDREN, (p, True)),
            (GET_CHILDREN2, (p, True)), (SET_DATA, (p, b"y", -1)), (GET_ACL, (p,)),
            (SET_ACL, (p, OPEN, -1)), (SYNC, (p,)), (CHECK_WATCHES, (p, 1)),
            (CHECK_WATCHES, (p, 2)), (CHECK_WATCHES, (p, 3)), (ADD_WATCH, (p, 0)),
            (ADD_WATCH, (p, 1)), (GET_EPHEMERALS, (p,)), (GET_ALL_CHILDREN_NUMBER, (p,)),
            (MULTI, [(CHECK, (p, -1))]), (MULTI, [(CREATE, (p, b"", OPEN, 0))]),
            (MULTI_READ, [(GET_DATA, (p, False)), (GET_CHILDREN, (p, False))]),
            (REMOVE_WATCHES, (p, 3)), (DELETE, (p, -1)),
        ]:  # fmt: skip
            steps.append(Step(0, "request", (op, rec)))
        steps.append(Step(1, "request", (CHECK_WATCHES, (p, 3))))
    for p in ("/d/a", "/d/b", "/"):
        steps.append(Step(1, "request", (CREATE, (f"{p.rstrip('/')}/z", b"", OPEN, 0))))
        steps.append(Step(1, "request", (SET_DATA, (p, b"w", -1))))
    # null data (a buffer of length -1) is kept as null, not as empty data
    steps += [
        Step(1, "request", (CREATE, ("/d/null", None, OPEN, 0))),
        Step(1, "request", (GET_DATA, ("/d/null", False))),
        Step(1, "request", (CREATE2, ("/d/empty", b"", OPEN, 0))),
        Step(1, "request", (GET_DATA, ("/d/empty", False))),
        Step(1, "request", (SET_DATA, ("/d/empty", None, -1))),
        Step(1, "request", (MULTI_READ, [(GET_DATA, ("/d/empty", False))])),
        Step(1, "request", (MULTI, [(CREATE, ("/d/null2", None, OPEN, 0))])),
        Step(1, "request", (GET_DATA, ("/d/null2", False))),
    ]
    # multi sub-ops with every create mode, through each create opcode (3.8.0 maps some of these
    # to MarshallingError for the whole multi)
    for op in (CREATE, CREATE2, CREATE_CONTAINER):
        for flags in (-1, 0, 1, 2, 3, 4, 5, 6, 7):
            rec = (f"/d/m{op}-{flags}", b"m", OPEN, flags)
            steps.append(Step(1, "request", (MULTI, [(op, rec)])))
    for flags in (0, 1, 4, 5, 6):
        rec = (f"/d/mt-{flags}", b"t", OPEN, flags, 5000)
        steps.append(Step(1, "request", (MULTI, [(CREATE_TTL, rec)])))
    # re-arming watches on a new connection, every path in every list, old and recent zxids
    paths = sorted(set(SWEEP_PATHS))
    steps += [Step(0, "reconnect"), Step(0, "request", (SET_WATCHES, (0, paths, paths, paths)))]
    steps += [Step(0, "reconnect"),
              Step(0, "request", (SET_WATCHES2, ("last", paths, paths, paths, paths, paths))),
              Step(1, "request", (DELETE, ("/d/a/z", -1))),
              Step(1, "request", (SET_DATA, ("/", b"v", -1))),
              Step(0, "request", (SYNC, ("/",)))]  # fmt: skip
    return steps


def close_order_steps() -> list[Step]:
    """Sessions with 1, 2, 3, 5, 7 and 13 ephemerals close while session 0 watches each one.

    Apache deletes a closing session's ephemerals, and fires their NodeDeleted events, in the
    iteration order of a clone of the session's HashSet (DataTree.getEphemerals), whose table
    size follows the set's size: this pins that order for several table sizes.
    """
    steps = [Step(0, "connect")]
    parents = ["/e", "/e/s-0000000002", "/e/s-0000000002/c", "/e/s-0000000002/c/s-0000000001"]
    steps += [Step(0, "request", (CREATE, (p, b"", OPEN, 0))) for p in parents]
    names = ["/e/s-0000000003", "/e/s-0000000002/c/s-0000000001/s-0000000000", "/e/a", "/e/b",
             "/e/lock-0000000017", "/e/s-0000000002/x", "/e/member-", "/e/z", "/e/q0", "/e/q1",
             "/e/s-0000000002/c/y", "/e/leader", "/e/n-0000000100"]  # fmt: skip
    for slot, count in enumerate((1, 2, 3, 5, 7, 13), start=1):
        own = [f"{n}{slot}" if n.endswith("-") else f"{n}.{slot}" for n in names[:count]]
        steps.append(Step(slot, "connect"))
        steps += [Step(slot, "request", (CREATE, (p, b"", OPEN, 1))) for p in own]
        steps += [Step(0, "request", (EXISTS, (p, True))) for p in own]
        steps.append(Step(slot, "close"))
        steps.append(Step(0, "request", (SYNC, ("/e",))))  # collects the notifications
    return steps


def format_step(step: Step) -> str:
    """A readable one-line form of a step, for failure reports."""
    if step.kind != "request":
        return f"s{step.session} {step.kind} {step.args!r}"
    op, rec = step.args
    return f"s{step.session} {OP_NAMES.get(op, op)} {rec!r}"


# ------------------------------------------------------------------------------ the transport


class ConnectionClosed(Exception):
    """The server closed the connection (recorded in the trace, not an error of the harness)."""


@dataclass
class Session:
    """One client connection speaking the wire protocol with jute layouts; one thread."""

    host: str
    port: int
    io_timeout_s: float = 60.0
    sock: socket.socket | None = None
    session_id: int = 0
    passwd: bytes = b""
    last_zxid: int = 0
    xid: int = 0
    events: list[tuple[Any, ...]] = field(default_factory=list)
    _buf: bytearray = field(default_factory=bytearray)

    def connect(self, timeout_ms: int = 30000, resume: bool = False) -> tuple[Any, ...]:
        """Session handshake (with the readOnly byte): a new session, or with `resume` this
        session again (its id, password and last zxid seen) on a new connection. Returns the raw
        ConnectResponse fields plus the bytes after them (the readOnly byte)."""
        self.close()
        self._buf.clear()
        self.sock = socket.create_connection((self.host, self.port), timeout=self.io_timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if resume:
            record = (0, self.last_zxid, timeout_ms, self.session_id, self.passwd)
        else:
            record = (0, 0, timeout_ms, 0, b"\0" * 16)
        self._send(jute.encode(jute.CONNECT_REQUEST, record) + b"\0")
        frame = self._frame()
        values, end = jute.decode(jute.CONNECT_RESPONSE, frame)
        if values[1] > 0:
            self.session_id, self.passwd = values[2], values[3]
        return (*values, frame[end:])

    def _send(self, payload: bytes) -> None:
        assert self.sock is not None
        self.sock.sendall(_LEN.pack(len(payload)) + payload)

    def _frame(self) -> bytes:
        assert self.sock is not None
        while True:
            if len(self._buf) >= 4:
                (n,) = _LEN.unpack_from(self._buf, 0)
                if n < 0:
                    raise ValueError(f"negative frame length {n} from the server")
                if len(self._buf) >= 4 + n:
                    frame = bytes(self._buf[4 : 4 + n])
                    del self._buf[: 4 + n]
                    return frame
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionClosed()
            self._buf += chunk

    def _reply(self, want_xid: int) -> tuple[int, int, int, bytes]:
        """Read frames until the reply `want_xid`; notifications go to `events`."""
        while True:
            frame = self._frame()
            (xid, zxid, err), off = jute.decode(jute.REPLY_HEADER, frame)
            if xid == -1:
                ev, end = jute.decode(jute.WATCHER_EVENT, frame, off)
                self.events.append((zxid, err, *ev, frame[end:].hex()))
                continue
            return xid, zxid, err, frame[off:]

    def request(self, op: int, body: bytes, xid: int | None = None) -> tuple[int, int, int, bytes]:
        if xid is None:
            self.xid += 1
            xid = self.xid
        self._send(struct.pack(">ii", xid, op) + body)
        reply = self._reply(xid)
        if reply[1] > 0:
            self.last_zxid = max(self.last_zxid, reply[1])
        return reply

    def take_events(self) -> list[tuple[Any, ...]]:
        out, self.events = self.events, []
        return out

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None


# ------------------------------------------------------------------------------ running


def encode_request(op: int, rec: Any) -> bytes:
    """The request record bytes of one step (multi/multiRead walked op by op)."""
    if op in (MULTI, MULTI_READ):
        out = bytearray()
        for sub_op, sub_rec in rec:
            out += jute.encode(jute.MULTI_HEADER, (sub_op, False, -1))
            out += jute.encode(jute.REQUESTS[sub_op], sub_rec)
        out += jute.encode(jute.MULTI_HEADER, (-1, True, -1))
        return bytes(out)
    return jute.encode(jute.REQUESTS[op], rec)


def decode_reply(op: int, body: bytes) -> tuple[Any, ...]:
    """Decode an err==0 reply body of `op`; returns (layout-tagged value, leftover hex)."""
    if op in (MULTI, MULTI_READ):
        results = []
        off = 0
        while True:
            (typ, done, err), off = jute.decode(jute.MULTI_HEADER, body, off)
            if done:
                results.append(("end", typ, err))
                break
            layout = _MULTI_RESULT.get(typ)
            if layout is None:
                results.append(("unknown-type", typ, err))
                break
            value, off = jute.decode(layout, body, off)
            results.append((typ, err, _tag(layout, value)))
        return ("multi", results, body[off:].hex())
    layout = jute.RESPONSES.get(op)
    if layout is None:
        return ("nobody", body.hex())
    value, off = jute.decode(layout, body)
    return (_tag(layout, value), body[off:].hex())


def _tag(layout: Any, value: Any) -> Any:
    """Pair each STAT record with a marker so `normalise` finds it; other values unchanged."""
    if layout is jute.STAT:
        return ("STAT", *value)
    if isinstance(layout, tuple) and layout and isinstance(layout[0], tuple):
        return tuple(_tag_field(spec, v) for spec, v in zip(layout, value, strict=True))
    return value


def _tag_field(spec: tuple[str, int, Any], value: Any) -> Any:
    name, code, sub = spec
    if sub is jute.STAT:
        return ("STAT", *value)
    if name in ("children", "ephemerals", "path") and isinstance(value, list):
        return ("SORTED", sorted(value))
    return value


@dataclass
class Trace:
    """What one server answered to a step sequence."""

    records: list[Any]
    #: The raw session ids in connection order (index = the normalised "sN").
    session_ids: list[int]


def run_seed(
    seed: int, host: str, port: int, count: int = 150, sessions: int = 4, ttl: bool = True
) -> tuple[list[Step], Trace]:
    """Generate and play the steps of `seed` against the reference server at host:port.

    The generator sees each raw reply (to aim at nodes that exist); the steps it chose are
    returned, to be replayed with `run_steps` against the server under test.
    """
    assert sessions >= 2
    gen = Generator(seed, sessions, ttl)
    steps: list[Step] = []

    def feed(runner: _Runner) -> None:
        for step in gen.opening():
            steps.append(step)
            gen.observe(step, runner.play(step))
        for _ in range(count):
            for step in gen.next_steps():
                steps.append(step)
                gen.observe(step, runner.play(step))
        for step in gen.closing():
            steps.append(step)
            runner.play(step)

    return steps, _Runner(host, port).run(feed)


def run_steps(steps: Sequence[Step], host: str, port: int) -> Trace:
    """Play `steps` against the server at host:port and return the normalised trace."""

    def feed(runner: _Runner) -> None:
        for step in steps:
            runner.play(step)

    return _Runner(host, port).run(feed)


class _Runner:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.slots: dict[int, Session] = {}
        self.session_ids: list[int] = []
        self.records: list[Any] = []

    def play(self, step: Step) -> Any:
        record = _run_one(step, self.slots, self.session_ids, self.host, self.port)
        self.records.append(record)
        return record

    def run(self, feed: Any) -> Trace:
        slots, records = self.slots, self.records
        try:
            feed(self)
            # drain: a ping is answered after every notification already queued for a session
            for index in sorted(slots):
                sess = slots[index]
                if sess.sock is None:
                    continue
                try:
                    xid, zxid, err, body = sess.request(PING, b"", xid=-2)
                    records.append(("drain", index, xid, err, body.hex(), sess.take_events()))
                except ConnectionClosed:
                    records.append(("drain", index, "closed", sess.take_events()))
            records.append(("tree", _dump_tree(self.host, self.port, self.session_ids)))
        finally:
            for sess in slots.values():
                sess.close()
        ids = self.session_ids
        return Trace([normalise(r, ids) for r in records], ids)


def _run_one(
    step: Step, slots: dict[int, Session], session_ids: list[int], host: str, port: int
) -> Any:
    if step.kind == "connect":
        old = slots.get(step.session)
        if old is not None:
            old.close()
        sess = Session(host, port)
        slots[step.session] = sess
        proto, timeout, sid, passwd, rest = sess.connect()
        session_ids.append(sid)
        return ("connect", step.session, proto, timeout, sid, len(passwd or b""),
                passwd == zk_passwd(sid), rest.hex())  # fmt: skip
    sess = slots[step.session]
    if step.kind == "reconnect":
        # the same session on a new connection (its watches stay with the old one, which goes)
        events = sess.take_events()
        proto, timeout, sid, passwd, rest = sess.connect(resume=True)
        return ("reconnect", step.session, proto, timeout, sid, len(passwd or b""), rest.hex(),
                events)  # fmt: skip
    if sess.sock is None:
        return ("skipped", step.session, "connection closed earlier")
    try:
        if step.kind == "close":
            xid, zxid, err, body = sess.request(CLOSE_SESSION, b"")
            events = sess.take_events()
            sess.close()
            return ("close", step.session, zxid, err, body.hex(), events)
        if step.kind == "auth":
            scheme, cred = step.args
            body = jute.encode(jute.AUTH_PACKET, (0, scheme, cred))
            xid, zxid, err, rest = sess.request(AUTH, body, xid=-4)
            return ("auth", step.session, xid, zxid, err, rest.hex(), sess.take_events())
        op, rec = step.args
        if op in (SET_WATCHES, SET_WATCHES2) and rec[0] == "last":
            rec = (sess.last_zxid, *rec[1:])  # the zxid this session last saw from this server
        xid, zxid, err, body = sess.request(op, encode_request(op, rec))
        decoded: Any = decode_reply(op, body) if err == 0 else ("error-body", body.hex())
        return (OP_NAMES[op], step.session, xid, zxid, err, decoded, sess.take_events())
    except ConnectionClosed:
        events = sess.take_events()
        sess.close()
        return ("connection-closed", step.session, events)


def _dump_tree(host: str, port: int, session_ids: list[int]) -> list[Any]:
    """Every znode (path, data, ACL, Stat), read by a fresh session with super-less world auth."""
    sess = Session(host, port)
    try:
        _, _, sid, _, _ = sess.connect()
        session_ids.append(sid)
        out: list[Any] = []
        pending = ["/"]
        while pending:
            path = pending.pop()
            _, _, err, body = sess.request(
                GET_CHILDREN2, encode_request(GET_CHILDREN2, (path, False))
            )
            if err:
                out.append((path, "getChildren2", err))
                continue
            (children, stat), _ = jute.decode(jute.RESPONSES[GET_CHILDREN2], body)
            _, _, err, body = sess.request(GET_DATA, encode_request(GET_DATA, (path, False)))
            data = jute.decode(jute.RESPONSES[GET_DATA], body)[0][0] if err == 0 else err
            _, _, err, body = sess.request(GET_ACL, encode_request(GET_ACL, (path,)))
            acl = jute.decode(jute.RESPONSES[GET_ACL], body)[0][0] if err == 0 else err
            out.append((path, data, acl, ("STAT", *stat), sorted(children)))
            base = "" if path == "/" else path
            pending.extend(f"{base}/{c}" for c in sorted(children, reverse=True))
        return out
    finally:
        sess.close()


def normalise(value: Any, session_ids: Sequence[int]) -> Any:
    """Replace ctime/mtime by None, session ids by "sN", unwrap sorted lists (recursively)."""
    index = {sid: f"s{i}" for i, sid in enumerate(session_ids)}
    return _norm(value, index)


def _norm(value: Any, index: dict[int, str]) -> Any:
    if isinstance(value, tuple):
        if value and value[0] == "STAT" and len(value) == 12:
            st = list(value[1:])
            st[2] = st[3] = None  # ctime, mtime
            st[7] = index.get(st[7], st[7])  # ephemeralOwner
            return ("STAT", *st)
        if value and value[0] == "SORTED":
            return value[1]
        if value and value[0] in ("connect", "reconnect"):
            v = list(value)
            v[4] = index.get(v[4], v[4])
            return tuple(v)
        return tuple(_norm(v, index) for v in value)
    if isinstance(value, list):
        return [_norm(v, index) for v in value]
    return value


def compare(steps: Sequence[Step], expected: Trace, actual: Trace, limit: int = 5) -> list[str]:
    """Human-readable differences (at most `limit`) between two traces of the same steps.

    The final tree dumps are compared node by node, so a difference names the znode.
    """
    diffs: list[str] = []
    n = max(len(expected.records), len(actual.records))
    for i in range(n):
        a: Any = expected.records[i] if i < len(expected.records) else "<missing>"
        b: Any = actual.records[i] if i < len(actual.records) else "<missing>"
        if a == b:
            continue
        if _is_tree(a) and _is_tree(b):
            diffs += _tree_diffs(a[1], b[1], limit - len(diffs))
        else:
            what = format_step(steps[i]) if i < len(steps) else "(drain)"
            diffs.append(f"record {i}: {what}\n    expected: {a!r}\n    actual:   {b!r}")
        if len(diffs) >= limit:
            break
    return diffs[:limit]


def _is_tree(record: Any) -> bool:
    return isinstance(record, tuple) and len(record) == 2 and record[0] == "tree"


def _tree_diffs(expected: list[Any], actual: list[Any], limit: int) -> list[str]:
    a = {node[0]: node for node in expected}
    b = {node[0]: node for node in actual}
    out = []
    for path in sorted(set(a) | set(b)):
        if a.get(path) != b.get(path):
            out.append(
                f"final tree, znode {path!r}:\n    expected: {a.get(path)!r}\n"
                f"    actual:   {b.get(path)!r}"
            )
            if len(out) >= limit:
                break
    return out


def summary(traces: Iterable[Trace]) -> str:
    """A short count of what the traces covered (error codes seen), for logs."""
    codes: dict[int, int] = {}
    for t in traces:
        for r in t.records:
            if (
                isinstance(r, tuple)
                and len(r) >= 5
                and isinstance(r[4], int)
                and r[0] in OP_NAMES.values()
            ):
                codes[r[4]] = codes.get(r[4], 0) + 1
    return ", ".join(f"{k}:{v}" for k, v in sorted(codes.items()))
