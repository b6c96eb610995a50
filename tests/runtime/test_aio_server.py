"""The asyncio/uvloop runtime on loopback sockets: framing, limits, isolation, back-pressure, 4lw.

Each test runs under both event loops (the `loop_kind` fixture). The runtime is driven by
`ScriptCore`, a test-double core whose behaviour the frames themselves select, so these tests pin
the runtime's contract (events in, actions out) without depending on the real ServerCore; the
end-to-end tests at the bottom run the real core through kazoo once it exists.

Servers run in a thread of this process (`ServerThread`), each on its own loop, and are stopped
through their own handle; nothing here sleeps for timing, everything polls with a deadline.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest

from zkfast.config import ServerConfig
from zkfast.core.actions import AppendTxns, CloseClient, PauseClient, ResumeClient, SendToClient
from zkfast.core.events import (
    ClientConnected,
    ClientDisconnected,
    ClientFramesReceived,
    Ticked,
    TxnsDurable,
)
from zkfast.runtime.aio_env import MemoryTxnLog
from zkfast.runtime.server import ZkfastServer, run_on_loop

T = TypeVar("T")
WAIT_S = 20.0  # generous: two shared cores


def wait_for(pred: Callable[[], Any], timeout_s: float = WAIT_S, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)  # polling interval, not a timing assumption


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


# --------------------------------------------------------------------------- test-double core


class ScriptCore:
    """A core whose frames are commands: echo by default; see `_on_frame` for the others.

    Everything it saw is recorded so tests can check what the runtime delivered.
    """

    def __init__(self, config: ServerConfig, now_ms: int, rng: Any) -> None:
        self.config = config
        self.connected: dict[int, ClientConnected] = {}
        self.disconnected: list[int] = []
        self.batches: list[tuple[int, int]] = []  # (conn_id, frames in the event)
        self.frames: dict[int, list[bytes]] = {}
        self.durable: list[int] = []
        self.ticks = 0
        self._zxid = 0
        self._waiting: list[tuple[int, int]] = []  # (zxid, conn_id) replies held until durable
        self._deadline: int | None = None
        self._tick_conn: int | None = None

    def deadline_ms(self) -> int | None:
        return self._deadline

    def step(self, event: Any, now_ms: int) -> list[Any]:
        if isinstance(event, ClientConnected):
            self.connected[event.conn_id] = event
            return []
        if isinstance(event, ClientDisconnected):
            self.disconnected.append(event.conn_id)
            return []
        if isinstance(event, ClientFramesReceived):
            self.batches.append((event.conn_id, len(event.frames)))
            out: list[Any] = []
            for f in event.frames:
                self.frames.setdefault(event.conn_id, []).append(f)
                out.extend(self._on_frame(event.conn_id, f, now_ms))
            return out
        if isinstance(event, TxnsDurable):
            self.durable.append(event.zxid)
            done = [c for z, c in self._waiting if z <= event.zxid]
            self._waiting = [(z, c) for z, c in self._waiting if z > event.zxid]
            return [SendToClient(c, frame(b"written")) for c in done]
        if isinstance(event, Ticked):
            if self._tick_conn is not None and self.frames[self._tick_conn][-1] == b"timer:0":
                raise RuntimeError("the core failed on a tick")
            self.ticks += 1
            self._deadline = None
            if self._tick_conn is not None:
                return [SendToClient(self._tick_conn, frame(b"tick"))]
            return []
        raise AssertionError(f"unexpected event {event!r}")

    def _on_frame(self, conn_id: int, f: bytes, now_ms: int) -> list[Any]:
        if f == b"boom":
            raise RuntimeError("the core failed on this request")
        if f == b"invariant":
            raise AssertionError("zxid went back")
        if f == b"pause":
            return [PauseClient(conn_id)]
        if f.startswith(b"resume:"):
            return [ResumeClient(int(f[7:]))]
        if f.startswith(b"big:"):
            return [SendToClient(conn_id, frame(b"x" * int(f[4:])))]
        if f.startswith(b"bigclose:"):
            return [SendToClient(conn_id, frame(b"x" * int(f[9:]))), CloseClient(conn_id, "big")]
        if f == b"close":
            return [SendToClient(conn_id, frame(b"bye")), CloseClient(conn_id, "asked to")]
        if f == b"write":
            self._zxid += 1
            self._waiting.append((self._zxid, conn_id))
            return [AppendTxns([(self._zxid, b"txn")])]
        if f.startswith(b"timer:"):
            self._deadline = now_ms + int(f[6:])
            self._tick_conn = conn_id
            return []
        if f == b"whoami":
            return [SendToClient(conn_id, frame(str(conn_id).encode()))]
        return [SendToClient(conn_id, frame(f))]


# --------------------------------------------------------------------------- server in a thread


class ServerThread:
    """A ZkfastServer on its own loop in a thread; `stop()` ends it through its handle."""

    def __init__(self, config: ServerConfig, loop_kind: str,
                 core_factory: Callable[..., Any] | None = ScriptCore) -> None:
        self.config = config
        self.loop_kind = loop_kind
        self.core_factory = core_factory
        self.server: ZkfastServer | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.exit_code: int | None = None
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"zkfast-{loop_kind}", daemon=True)

    def start(self) -> ServerThread:
        self._thread.start()
        assert self._ready.wait(WAIT_S), "server did not start"
        if self.error is not None:
            raise self.error
        return self

    def _run(self) -> None:
        try:
            self.exit_code = run_on_loop(self._main(), self.loop_kind)
        except BaseException as e:  # noqa: BLE001 - reported to the test thread
            self.error = e
            self._ready.set()

    async def _main(self) -> int:
        self.server = ZkfastServer(self.config, core_factory=self.core_factory)
        await self.server.start()
        self.loop = asyncio.get_running_loop()
        self._ready.set()
        return await self.server.serve_until_stopped()

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.client_addresses[0][1]

    @property
    def secure_port(self) -> int:
        assert self.server is not None
        return self.server.secure_addresses[0][1]

    @property
    def core(self) -> Any:
        assert self.server is not None
        return self.server.core

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the server's loop (state is only read there) and return its result."""
        assert self.loop is not None
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                fut.set_result(fn())
            except BaseException as e:  # noqa: BLE001
                fut.set_exception(e)

        self.loop.call_soon_threadsafe(run)
        return fut.result(WAIT_S)

    def stop(self) -> int | None:
        if self.loop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.server.request_stop)  # type: ignore[union-attr]
        self._thread.join(WAIT_S)
        assert not self._thread.is_alive(), "server thread did not stop"
        return self.exit_code


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_kind(request: pytest.FixtureRequest) -> str:
    if request.param == "uvloop":
        pytest.importorskip("uvloop")
    return str(request.param)


@pytest.fixture
def make_server(loop_kind: str, tmp_path: Path) -> Iterator[Callable[..., ServerThread]]:
    servers: list[ServerThread] = []

    def make(core_factory: Callable[..., Any] | None = ScriptCore, **overrides: Any
             ) -> ServerThread:
        cfg = ServerConfig(data_dir=str(tmp_path / "data"), client_port=0,
                           client_port_address="127.0.0.1")
        cfg = replace(cfg, **overrides)
        st = ServerThread(cfg, loop_kind, core_factory)
        servers.append(st)
        return st.start()

    yield make
    for st in servers:
        st.stop()


class Client:
    """A blocking loopback socket speaking length-prefixed frames."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_frame(self) -> bytes:
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack(">i", self.buf[:4])
                if len(self.buf) >= 4 + n:
                    payload, self.buf = self.buf[4 : 4 + n], self.buf[4 + n :]
                    return payload
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed by the server")
            self.buf += chunk

    def roundtrip(self, payload: bytes) -> bytes:
        self.send(frame(payload))
        return self.read_frame()

    def closed_by_server(self) -> bool:
        """True once the server closed (EOF or reset); data still in flight is discarded."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def clients() -> Iterator[Callable[[int], Client]]:
    made: list[Client] = []

    def make(port: int) -> Client:
        c = Client(port)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


# --------------------------------------------------------------------------- framing


def test_frames_of_one_read_arrive_as_one_event(make_server, clients):
    st = make_server()
    c = clients(st.port)
    c.send(frame(b"a") + frame(b"bb") + frame(b"ccc"))
    assert [c.read_frame() for _ in range(3)] == [b"a", b"bb", b"ccc"]
    conn_id = wait_for(lambda: st.call(lambda: list(st.core.connected)))[0]
    batches = st.call(lambda: list(st.core.batches))
    assert sum(n for cid, n in batches if cid == conn_id) == 3
    # loopback delivers one small sendall in one read: one event with all three frames
    assert batches == [(conn_id, 3)]


def test_frames_split_across_reads_are_reassembled(make_server, clients):
    st = make_server()
    c = clients(st.port)
    data = frame(b"hello") + frame(b"") + frame(b"x" * 70000)
    for i in range(0, len(data), 997):
        c.send(data[i : i + 997])
    assert c.read_frame() == b"hello"
    assert c.read_frame() == b""
    assert c.read_frame() == b"x" * 70000


def test_any_chunking_of_a_stream_yields_the_same_frames(make_server, clients):
    import random

    rng = random.Random(1234)  # fixed seed: the same chunk boundaries every run
    st = make_server()
    c = clients(st.port)
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    payloads = [rng.randbytes(rng.choice([0, 1, 3, 4, 5, 100, 5000])) for _ in range(300)]
    stream = b"".join(frame(p) for p in payloads)
    pos = 0
    echoed: list[bytes] = []
    while pos < len(stream):
        n = rng.choice([1, 2, 3, 4, 5, 7, 64, 1000, 9000])
        c.send(stream[pos : pos + n])
        pos += n
        if rng.random() < 0.2:  # let the server read this piece on its own sometimes
            while len(echoed) < sum(1 for _ in _complete(stream[:pos])):
                echoed.append(c.read_frame())
    while len(echoed) < len(payloads):
        echoed.append(c.read_frame())
    assert echoed == payloads


def _complete(stream: bytes) -> Iterator[int]:
    pos = 0
    while len(stream) - pos >= 4:
        (n,) = struct.unpack(">i", stream[pos : pos + 4])
        if len(stream) - pos - 4 < n:
            return
        yield n
        pos += 4 + n


def test_frame_at_jute_maxbuffer_is_accepted(make_server, clients):
    st = make_server(jute_maxbuffer_bytes=4096)
    c = clients(st.port)
    assert c.roundtrip(b"y" * 4096) == b"y" * 4096


def test_oversized_frame_closes_only_that_connection(make_server, clients, caplog):
    st = make_server(jute_maxbuffer_bytes=4096)
    good = clients(st.port)
    assert good.roundtrip(b"before") == b"before"
    bad = clients(st.port)
    bad.send(struct.pack(">i", 4097))  # the length alone is enough to refuse
    assert bad.closed_by_server()
    assert good.roundtrip(b"after") == b"after"
    assert clients(st.port).roundtrip(b"new client") == b"new client"
    assert "bad frame" in caplog.text and "/127.0.0.1:" in caplog.text
    # the core heard the bad connection come and go
    wait_for(lambda: st.call(lambda: len(st.core.disconnected)) == 1, what="disconnect")


@pytest.mark.parametrize("garbage", [
    struct.pack(">i", -1) + b"zzzz",
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\xff" * 64,
])
def test_garbage_closes_the_connection(make_server, clients, garbage):
    st = make_server()
    bad = clients(st.port)
    bad.send(garbage)
    assert bad.closed_by_server()
    assert clients(st.port).roundtrip(b"still serving") == b"still serving"


# --------------------------------------------------------------------------- failure isolation


def test_core_exception_closes_that_connection_only(make_server, clients, caplog):
    st = make_server()
    other = clients(st.port)
    assert other.roundtrip(b"hi") == b"hi"
    victim = clients(st.port)
    victim.send(frame(b"boom"))
    assert victim.closed_by_server()
    assert "RuntimeError: the core failed on this request" in caplog.text  # the traceback
    assert other.roundtrip(b"still here") == b"still here"
    assert st.server is not None and st.server.exit_code == 0


def test_broken_invariant_stops_the_server_with_exit_code_1(make_server, clients, caplog):
    st = make_server()
    c = clients(st.port)
    c.send(frame(b"invariant"))
    assert c.closed_by_server()
    wait_for(lambda: not st._thread.is_alive(), what="the server to stop")
    assert st.exit_code == 1
    assert "an invariant broke" in caplog.text and "AssertionError: zxid went back" in caplog.text


def test_core_failure_on_a_timer_stops_the_server(make_server, clients, caplog):
    st = make_server()
    c = clients(st.port)
    c.send(frame(b"timer:0"))
    assert c.closed_by_server()
    wait_for(lambda: not st._thread.is_alive(), what="the server to stop")
    assert st.exit_code == 1 and "core failed on a timer tick" in caplog.text


def test_core_close_flushes_replies_first(make_server, clients):
    st = make_server()
    c = clients(st.port)
    c.send(frame(b"close"))
    assert c.read_frame() == b"bye"
    assert c.closed_by_server()


def test_close_of_a_client_that_does_not_read_is_bounded(make_server, clients):
    st = make_server(client_close_flush_ms=300)
    stuck = clients(st.port)
    stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.send(frame(b"bigclose:8388608"))  # 8 MiB cannot fit in the socket buffers
    # the flush cannot finish; after client_close_flush_ms the connection is reset and gone
    wait_for(lambda: st.call(lambda: len(st.core.disconnected)) == 1, what="the bounded close")
    assert st.call(lambda: len(st.server.hub.live)) == 0  # type: ignore[union-attr]


# --------------------------------------------------------------------------- limits


def test_max_client_cnxns_per_ip(make_server, clients, caplog):
    st = make_server(max_client_cnxns=2)
    a, b = clients(st.port), clients(st.port)
    assert a.roundtrip(b"a") == b"a" and b.roundtrip(b"b") == b"b"
    third = clients(st.port)
    assert third.closed_by_server()
    assert "Too many connections from /127.0.0.1 - max is 2" in caplog.text
    # a rejected connection never reaches the core
    assert st.call(lambda: len(st.core.connected)) == 2
    a.close()
    wait_for(lambda: st.call(lambda: len(st.core.disconnected)) == 1, what="disconnect")
    assert clients(st.port).roundtrip(b"room again") == b"room again"


def test_max_client_cnxns_zero_is_unlimited(make_server, clients):
    st = make_server(max_client_cnxns=0)
    cs = [clients(st.port) for _ in range(70)]  # above Apache's default of 60
    for i, c in enumerate(cs):
        assert c.roundtrip(b"%d" % i) == b"%d" % i


def test_connection_without_a_request_is_closed(make_server, clients, caplog):
    caplog.set_level(logging.INFO, "zkfast.client")
    st = make_server(sessionless_cnxn_timeout_ms=200)
    idle = clients(st.port)
    idle.send(b"\x00\x00")  # half a length: no complete frame
    assert idle.closed_by_server()
    assert "no request within 200 ms" in caplog.text
    talker = clients(st.port)
    talker_id = int(talker.roundtrip(b"whoami"))
    # a connection that sent a frame is the core's to close: its expiry timer is gone
    hub = st.server.hub  # type: ignore[union-attr]
    assert st.call(lambda: hub.env.conns[talker_id]._sessionless) is None
    assert talker.roundtrip(b"still open") == b"still open"


# --------------------------------------------------------------------------- back-pressure


def test_pause_from_core_stops_delivery_until_resume(make_server, clients):
    st = make_server()
    paused = clients(st.port)
    other = clients(st.port)
    paused_id = int(paused.roundtrip(b"whoami"))
    paused.send(frame(b"pause"))
    wait_for(lambda: st.call(lambda: st.core.frames[paused_id][-1] == b"pause"), what="pause")
    paused.send(frame(b"held"))
    assert other.roundtrip(b"other served") == b"other served"
    assert st.call(lambda: st.core.frames[paused_id][-1]) == b"pause"  # "held" not delivered
    other.send(frame(b"resume:%d" % paused_id))
    assert paused.read_frame() == b"held"


def test_client_that_stops_reading_does_not_block_others(make_server, clients):
    st = make_server()
    slow = clients(st.port)
    slow_id = int(slow.roundtrip(b"whoami"))
    # ask for 8 MiB of replies and do not read them: the server's send buffer fills up,
    # the runtime pauses reading this client (pause_writing), others go on
    slow.send(b"".join(frame(b"big:1048576") for _ in range(8)))

    def slow_paused() -> bool:
        hub = st.server.hub  # type: ignore[union-attr]
        conn = hub.env.conns[slow_id]  # type: ignore[attr-defined]
        return bool(conn._paused_by_writes)

    wait_for(lambda: st.call(slow_paused), what="write back-pressure on the slow client")
    fast = clients(st.port)
    for i in range(50):
        assert fast.roundtrip(b"ping %d" % i) == b"ping %d" % i
    # the slow client reads at last: every byte arrives and reading resumes
    for _ in range(8):
        assert slow.read_frame() == b"x" * 1048576
    assert slow.roundtrip(b"caught up") == b"caught up"


def test_send_buffer_bound_drops_a_client_that_never_reads(make_server, clients, caplog):
    st = make_server(client_send_buffer_bytes_max=1 << 20)
    hog = clients(st.port)
    hog.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    hog.send(b"".join(frame(b"big:524288") for _ in range(16)))
    wait_for(lambda: "is not reading" in caplog.text, what="the send-buffer bound")
    # the server reset the connection and forgot it (the hog's kernel may take long to notice:
    # a reset against a zero receive window is not accepted until the window opens)
    wait_for(lambda: st.call(lambda: len(st.core.disconnected)) == 1, what="disconnect")
    assert st.call(lambda: len(st.server.env.conns)) == 0  # type: ignore[union-attr]
    assert clients(st.port).roundtrip(b"fine") == b"fine"


# --------------------------------------------------------------------------- durability, timers


def test_append_txns_reports_durable_then_reply(make_server, clients):
    st = make_server()
    c = clients(st.port)
    assert c.roundtrip(b"write") == b"written"
    c.send(frame(b"write") + frame(b"write") + frame(b"write"))
    assert [c.read_frame() for _ in range(3)] == [b"written"] * 3
    durable = st.call(lambda: list(st.core.durable))
    assert durable[0] == 1 and durable[-1] == 4 and durable == sorted(durable)
    assert len(durable) == 2  # the three appends of one read were one durable batch


def test_memory_txn_log_batches_one_loop_iteration(loop_kind):
    async def scenario() -> list[int]:
        loop = asyncio.get_running_loop()
        seen: list[int] = []
        txn_log = MemoryTxnLog(loop)
        txn_log.on_durable = seen.append
        txn_log.append([(1, b"a")])
        txn_log.append([(2, b"b"), (3, b"c")])
        assert seen == []  # never synchronously: the core must see AppendTxns finish first
        for _ in range(3):
            await asyncio.sleep(0)
        txn_log.append([(4, b"d")])
        for _ in range(3):
            await asyncio.sleep(0)
        return seen

    assert run_on_loop(scenario(), loop_kind) == [3, 4]


def test_core_deadline_fires_ticked(make_server, clients):
    st = make_server()
    c = clients(st.port)
    c.send(frame(b"timer:30"))
    assert c.read_frame() == b"tick"
    assert st.call(lambda: st.core.ticks) == 1


# --------------------------------------------------------------------------- 4lw and shutdown


def _answer(port: int, data: bytes, split: bool = False) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as s:
        if split:
            s.sendall(data[:2])
            time.sleep(0.05)  # make the two halves separate reads (not a timing assumption)
            s.sendall(data[2:])
        else:
            s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def test_four_letter_word_is_detected_on_the_first_bytes(make_server, clients):
    st = make_server()
    words: list[bytes] = []
    remotes: list[tuple[str, int]] = []

    def answer(word: bytes, remote: tuple[str, int]) -> bytes:
        words.append(word)
        remotes.append(remote)
        return b"answer to " + word

    st.call(lambda: setattr(st.server.hub, "four_letter", answer))  # type: ignore[union-attr]
    assert _answer(st.port, b"ruok") == b"answer to ruok"
    assert _answer(st.port, b"srvr", split=True) == b"answer to srvr"
    assert _answer(st.port, b"stat\n") == b"answer to stat"  # `echo stat | nc`
    assert words == [b"ruok", b"srvr", b"stat"]
    assert all(host == "127.0.0.1" and port > 0 for host, port in remotes)
    # a 4lw connection never becomes a client of the core
    assert st.call(lambda: len(st.core.connected)) == 0
    # a 4lw later in a connection is just bytes of a frame
    c = clients(st.port)
    assert c.roundtrip(b"ruok") == b"ruok"
    # a word zkfast does not know is a frame length: 0x61626364 is far above jute.maxbuffer
    assert _answer(st.port, b"abcd") == b""


def test_four_letter_word_failure_closes_only_that_connection(make_server, clients):
    st = make_server()

    def broken(word: bytes, remote: tuple[str, int]) -> bytes:
        raise ValueError("admin broke")

    st.call(lambda: setattr(st.server.hub, "four_letter", broken))  # type: ignore[union-attr]
    assert _answer(st.port, b"mntr") == b""
    assert clients(st.port).roundtrip(b"ok") == b"ok"


def test_stop_closes_connections_and_returns_zero(make_server, clients):
    st = make_server()
    a, b = clients(st.port), clients(st.port)
    assert a.roundtrip(b"1") == b"1" and b.roundtrip(b"2") == b"2"
    assert st.stop() == 0
    assert a.closed_by_server() and b.closed_by_server()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", st.port), timeout=2).close()


def test_bind_failure_is_an_oserror(make_server, loop_kind, tmp_path):
    st = make_server()
    cfg = ServerConfig(data_dir=str(tmp_path / "d2"), client_port=st.port,
                       client_port_address="127.0.0.1")
    with pytest.raises(OSError):
        ServerThread(cfg, loop_kind, ScriptCore).start()


# --------------------------------------------------------------------------- end to end (kazoo)


def _real_core_available() -> bool:
    try:
        import zkfast.core.server  # noqa: F401
    except ImportError:
        return False
    return True


needs_core = pytest.mark.skipif(not _real_core_available(), reason="core/server.py missing")


@needs_core
def test_kazoo_end_to_end(make_server):
    from kazoo.client import KazooClient

    st = make_server(core_factory=None, four_letter_whitelist=frozenset({"ruok", "srvr"}))
    zk = KazooClient(hosts=f"127.0.0.1:{st.port}", timeout=10.0)
    zk.start(timeout=30)
    try:
        assert zk.create("/e2e", b"one") == "/e2e"
        data, stat = zk.get("/e2e")
        assert data == b"one" and stat.version == 0
        seen: list[Any] = []
        zk.get("/e2e", watch=seen.append)
        assert zk.set("/e2e", b"two").version == 1
        wait_for(lambda: seen, what="the data watch")
        assert seen[0].type == "CHANGED" and seen[0].path == "/e2e"
        eph = zk.create("/e2e/eph-", b"", ephemeral=True, sequence=True)
        assert zk.get_children("/e2e") == [eph.rsplit("/", 1)[1]]
        zk.delete(eph)
        zk.delete("/e2e")
        assert zk.exists("/e2e") is None
        assert _answer(st.port, b"ruok") == b"imok"
        assert b"Mode: standalone" in _answer(st.port, b"srvr")
        assert b"is not executed because it is not in the whitelist" in _answer(st.port, b"mntr")
        # Apache lists the asking connection too: kazoo's and this one
        assert b"Connections: 2" in _answer(st.port, b"srvr")
    finally:
        zk.stop()
        zk.close()


@needs_core
def test_kazoo_session_survives_a_bad_neighbour(make_server):
    from kazoo.client import KazooClient

    st = make_server(core_factory=None, jute_maxbuffer_bytes=1 << 16)
    zk = KazooClient(hosts=f"127.0.0.1:{st.port}", timeout=10.0)
    zk.start(timeout=30)
    try:
        zk.create("/n", b"x")
        with socket.create_connection(("127.0.0.1", st.port), timeout=WAIT_S) as bad:
            bad.sendall(struct.pack(">i", (1 << 16) + 1))
            assert bad.recv(100) == b""
        assert zk.get("/n")[0] == b"x"
    finally:
        zk.stop()
        zk.close()


# --------------------------------------------------------------------------- the CLI


import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _run_cli(*args: str, cwd: Path | None = None, timeout_s: float = 60.0
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zkfast", *args], cwd=cwd, env=_cli_env(),
                          capture_output=True, text=True, timeout=timeout_s)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_cli_help():
    r = _run_cli("--help")
    assert r.returncode == 0 and "usage: zkfast-server [zoo.cfg]" in r.stdout


@pytest.mark.parametrize("cfg_text, message", [
    ("dataDir=/tmp/x\nclientPort=abc\n", "clientPort: expected a 32-bit integer, found 'abc'"),
    ("clientPort=2181\n", "dataDir is not set"),
    ("dataDir=/tmp/x\nclientPort=2181\nminSessionTimeout=9\nmaxSessionTimeout=8\n",
     "minSessionTimeout"),
    ("dataDir={data}\nclientPort=2181\ninitLimit=5\nsyncLimit=2\nserver.2=b:1:2\n"
     "server.3=c:1:2\nserver.4=d:1:2\n", "myid: 1 is not in the server list"),
])
def test_cli_bad_config_exits_2_with_the_message(tmp_path, cfg_text, message):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "myid").write_text("1\n")
    cfg_text = cfg_text.replace("{data}", str(tmp_path / "data"))
    path = tmp_path / "zoo.cfg"
    path.write_text(cfg_text)
    r = _run_cli(str(path), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "invalid configuration" in r.stderr and message in r.stderr


@pytest.mark.parametrize("args, message", [
    (("/nonexistent/zoo.cfg",), "/nonexistent/zoo.cfg"),
    (("--frobnicate",), "unknown option '--frobnicate'"),
    (("-D=1",), "needs a name"),
    (("a.cfg", "b.cfg"), "unexpected arguments"),
    (("-DclientPort=seven",), "clientPort"),
])
def test_cli_usage_errors_exit_2(tmp_path, args, message):
    r = _run_cli(*args, cwd=tmp_path)
    assert r.returncode == 2 and message in r.stderr


def test_cli_refuses_python_O(tmp_path):
    r = subprocess.run([sys.executable, "-O", "-m", "zkfast"], cwd=tmp_path, env=_cli_env(),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "python -O" in r.stderr


class CliServer:
    """`python -m zkfast ...` as a child process, stopped through its own Popen handle."""

    def __init__(self, args: list[str], cwd: Path, port: int, **env: str) -> None:
        self.port = port
        self.log_path = cwd / "server.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "zkfast", *args], cwd=cwd,
                                     env=_cli_env(**env), stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_serving(self) -> None:
        def serving() -> bool:
            assert self.proc.poll() is None, f"server exited: {self.log()}"
            try:
                return b"Mode: standalone" in _answer(self.port, b"srvr")
            except OSError:
                return False

        wait_for(serving, timeout_s=60, what="the server to serve")

    def log(self) -> str:
        return self.log_path.read_text("utf-8", "replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def cli_servers() -> Iterator[list[CliServer]]:
    servers: list[CliServer] = []
    yield servers
    for s in servers:
        s.stop()


@needs_core
@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_without_config_serves_and_stops_cleanly(tmp_path, cli_servers, loop, sig):
    port = _free_port()
    srv = CliServer([f"-DclientPort={port}", "-Dzookeeper.4lw.commands.whitelist=ruok,srvr"],
                    tmp_path, port, ZKFAST_LOOP=loop)
    cli_servers.append(srv)
    srv.wait_serving()
    assert _answer(port, b"ruok") == b"imok"
    assert (tmp_path / "zkfast-data").is_dir()
    from kazoo.client import KazooClient

    zk = KazooClient(hosts=f"127.0.0.1:{port}", timeout=10.0)
    zk.start(timeout=30)
    try:
        zk.create("/cli", b"v")
        assert zk.get("/cli")[0] == b"v"
    finally:
        zk.stop()
        zk.close()
    assert srv.stop(sig) == 0
    text = srv.log()
    assert f"clients on 127.0.0.1:{port}" in text and "core=" in text and f"loop={loop}" in text
    assert "shutting down" in text and "Traceback" not in text


@needs_core
def test_cli_with_zoo_cfg(tmp_path, cli_servers):
    port = _free_port()
    (tmp_path / "zoo.cfg").write_text(
        f"tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={tmp_path / 'data'}\n"
        f"clientPort={port}\nclientPortAddress=127.0.0.1\nmaxClientCnxns=1\n"
        "admin.enableServer=false\nsomeTypo=1\n")
    srv = CliServer([str(tmp_path / "zoo.cfg"), "-Dreadonlymode.enabled=true"], tmp_path, port)
    cli_servers.append(srv)
    srv.wait_serving()
    assert _answer(port, b"isro") == b"rw"  # whitelisted by readonlymode.enabled
    assert "unknown configuration key 'someTypo'" in srv.log()
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as first:
        first.sendall(b"\x00\x00")  # an unfinished frame holds the connection open
        second = Client(port)
        try:
            assert second.closed_by_server()  # maxClientCnxns=1
        finally:
            second.close()
        wait_for(lambda: "Too many connections from /127.0.0.1 - max is 1" in srv.log(),
                 what="the per-IP limit's log line")
    assert srv.stop() == 0


@needs_core
def test_cli_unreadable_keystore_exits_2(tmp_path):
    pytest.importorskip("zkfast.runtime.tls")
    path = tmp_path / "zoo.cfg"
    path.write_text(f"dataDir={tmp_path / 'data'}\nsecureClientPort={_free_port()}\n"
                    f"ssl.keyStore.location={tmp_path / 'missing.pem'}\n")
    r = _run_cli(str(path), cwd=tmp_path)
    assert r.returncode == 2 and "ssl.keyStore.location" in r.stderr, r.stderr
    assert not (tmp_path / "data" / "version-2").exists()  # failed before touching the data


@needs_core
def test_cli_port_in_use_exits_1(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        r = _run_cli(f"-DclientPort={port}", cwd=tmp_path)
    assert r.returncode == 1 and "cannot start" in r.stderr


@needs_core
def test_cli_without_any_argument_uses_2181(tmp_path, cli_servers):
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", 2181))
        except OSError:
            pytest.skip("port 2181 is in use on this machine")
    srv = CliServer([], tmp_path, 2181)
    cli_servers.append(srv)
    srv.wait_serving()
    assert (tmp_path / "zkfast-data").is_dir()
    assert srv.stop() == 0


# --------------------------------------------------------------------------- TLS


@pytest.fixture
def pki(tmp_path: Path) -> Any:
    certs = pytest.importorskip("zkfast.testing.certs")
    return certs.make_pki(tmp_path / "pki")


def _tls_overrides(pki: Any, client_auth: str = "need") -> dict[str, Any]:
    from zkfast.config import TlsConfig

    return dict(secure_client_port=0, secure_client_port_address="127.0.0.1",
                tls=TlsConfig(keystore_location=str(pki.server_pem), keystore_type="PEM",
                              truststore_location=str(pki.ca_pem), truststore_type="PEM",
                              client_auth=client_auth))


def _tls_client(pki: Any, port: int, cert: tuple[Path, Path] | None) -> Client:
    import ssl

    ctx = ssl.create_default_context(cafile=str(pki.ca_pem))
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    c = Client.__new__(Client)
    raw = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
    c.sock = ctx.wrap_socket(raw, server_hostname="localhost")
    c.buf = b""
    return c


def test_tls_port_marks_secure_and_passes_the_certificate_ids(make_server, pki):
    pytest.importorskip("zkfast.runtime.tls")
    st = make_server(**_tls_overrides(pki))
    c = _tls_client(pki, st.secure_port, (pki.client_cert_pem, pki.client_key_pem))
    try:
        conn_id = int(c.roundtrip(b"whoami"))
        ev = st.call(lambda: st.core.connected[conn_id])
        assert ev.secure is True
        assert len(ev.cert_ids) == 1 and "CN=client" in ev.cert_ids[0]
    finally:
        c.close()
    plain = Client(st.port)
    try:
        assert plain.roundtrip(b"plain") == b"plain"
        plain_id = int(plain.roundtrip(b"whoami"))
        ev = st.call(lambda: st.core.connected[plain_id])
        assert ev.secure is False and ev.cert_ids == ()
    finally:
        plain.close()


def test_tls_rejects_an_unknown_client_ca_and_serves_on(make_server, pki):
    import ssl

    pytest.importorskip("zkfast.runtime.tls")
    st = make_server(**_tls_overrides(pki))
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        rogue = _tls_client(pki, st.secure_port,
                            (pki.rogue_client_cert_pem, pki.rogue_client_key_pem))
        try:  # TLS 1.3: the server's verdict arrives after the client's handshake finished
            rogue.roundtrip(b"let me in")
        finally:
            rogue.close()
    good = _tls_client(pki, st.secure_port, (pki.client_cert_pem, pki.client_key_pem))
    try:
        assert good.roundtrip(b"ok") == b"ok"
    finally:
        good.close()
    assert st.call(lambda: all(e.cert_ids for e in st.core.connected.values() if e.secure))


@needs_core
def test_kazoo_over_tls_with_x509_auth(make_server, pki):
    from kazoo.client import KazooClient
    from kazoo.security import make_acl

    pytest.importorskip("zkfast.runtime.tls")
    st = make_server(core_factory=None, **_tls_overrides(pki))
    zk = KazooClient(hosts=f"127.0.0.1:{st.secure_port}", timeout=10.0, use_ssl=True,
                     ca=str(pki.ca_pem), certfile=str(pki.client_cert_pem),
                     keyfile=str(pki.client_key_pem))
    zk.start(timeout=30)
    try:
        who = st.call(lambda: [c.auth_ids for c in st.core.conns.values()])
        dn = next(i for ids in who for scheme, i in ids if scheme == "x509")
        zk.create("/tls", b"secret", acl=[make_acl("x509", dn, all=True)])
        assert zk.get("/tls")[0] == b"secret"
    finally:
        zk.stop()
        zk.close()


def _answer_from(port: int, word: bytes) -> tuple[bytes, int]:
    """Ask ``word``; return the answer and the asking socket's own local port."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as s:
        own_port = s.getsockname()[1]
        s.sendall(word)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out, own_port


@needs_core
def test_four_letter_words_list_the_asking_connection(make_server):
    """Apache counts and lists its own 4lw connection in stat/cons/srvr (remote=)."""
    st = make_server(core_factory=None,
                     four_letter_whitelist=frozenset({"cons", "stat", "srvr"}))
    cons, own = _answer_from(st.port, b"cons")
    assert cons.decode() == f" /127.0.0.1:{own}[0](queued=0,recved=1,sent=0)\n\n"
    stat, own = _answer_from(st.port, b"stat")
    text = stat.decode()
    assert f"Clients:\n /127.0.0.1:{own}[0](queued=0,recved=1,sent=0)\n" in text
    assert "Connections: 1\n" in text
    srvr, _ = _answer_from(st.port, b"srvr")
    assert b"Connections: 1\n" in srvr and b"/127.0.0.1:" not in srvr
