"""Shared fixtures: one real server per module and kind, and kazoo clients that always get closed.

`server_kind` runs each test against zkfast and against Apache ZooKeeper 3.8 (marked `interop`,
skipped when the Debian jars or java are missing); Apache is the judge of expected behaviour.
A module may set `SERVER_CFG` (zoo.cfg entries) and `SERVER_PROPS` (system properties) to
change its server; every server gets extended types (TTL nodes), a super digest and a fast
container/TTL reaper.
"""

from __future__ import annotations

import base64
import hashlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

try:
    import zkfast  # noqa: F401
except ImportError:  # a source checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from kazoo.client import KazooClient

from zkfast.testing.procs import ServerProcess, apache_available, apache_server, zkfast_server
from zkfast.testing.rawclient import RawClient

SUPER_USER = "super"
SUPER_PASSWORD = "super-secret"
SUPER_DIGEST = (
    f"{SUPER_USER}:"
    + base64.b64encode(hashlib.sha1(f"{SUPER_USER}:{SUPER_PASSWORD}".encode()).digest()).decode()
)
DEFAULT_PROPS = {
    "zookeeper.extendedTypesEnabled": "true",
    "zookeeper.DigestAuthenticationProvider.superDigest": SUPER_DIGEST,
    "znode.container.checkIntervalMs": "200",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "interop: needs the Debian Apache ZooKeeper 3.8 packages")
    config.addinivalue_line("markers", "slow: longer runs kept out of the default suite")


def _start_server(
    kind: str,
    workdir: Path,
    cfg: dict[str, str] | None = None,
    props: dict[str, str] | None = None,
) -> ServerProcess:
    """Start a server of `kind` ("zkfast" or "apache") with the default properties plus `props`."""
    all_props = {**DEFAULT_PROPS, **(props or {})}
    if kind == "apache":
        return apache_server(workdir, cfg=cfg, jvm_props=all_props)
    return zkfast_server(workdir, cfg=cfg, props=all_props)


@pytest.fixture(
    scope="module",
    params=[
        "zkfast",
        pytest.param(
            "apache",
            marks=[
                pytest.mark.interop,
                pytest.mark.skipif(not apache_available(), reason="Apache ZooKeeper not installed"),
            ],
        ),
    ],
)
def server_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def zk_server(
    server_kind: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One server per module and kind; its log is `zk_server.log_path` under pytest's tmp dir."""
    cfg = dict(getattr(request.module, "SERVER_CFG", {}))
    props = dict(getattr(request.module, "SERVER_PROPS", {}))
    workdir = tmp_path_factory.mktemp(f"{server_kind}-{request.module.__name__.rsplit('.', 1)[-1]}")
    server = _start_server(server_kind, workdir, cfg, props)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def start_server() -> Iterator[Callable[..., ServerProcess]]:
    """Factory: `start_server(kind, workdir, cfg=None, props=None)` starts an extra server with the
    default properties plus `props`; every server it started is stopped at teardown."""
    servers: list[ServerProcess] = []

    def make(
        kind: str,
        workdir: Path,
        cfg: dict[str, str] | None = None,
        props: dict[str, str] | None = None,
    ) -> ServerProcess:
        server = _start_server(kind, workdir, cfg, props)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def super_credentials() -> tuple[str, str]:
    """(user, password) of the super digest every test server is configured with."""
    return SUPER_USER, SUPER_PASSWORD


@pytest.fixture
def kazoo_client(zk_server: ServerProcess) -> Iterator[Callable[..., KazooClient]]:
    """Factory: `kazoo_client(hosts=None, start=True, **KazooClient kwargs)`; all closed at teardown."""
    clients: list[KazooClient] = []

    def make(hosts: str | None = None, start: bool = True, **kwargs: Any) -> KazooClient:
        kwargs.setdefault("timeout", 10.0)
        client = KazooClient(hosts=hosts or zk_server.hosts, **kwargs)
        clients.append(client)
        if start:
            client.start(timeout=30)
        return client

    yield make
    for client in clients:
        try:
            client.stop()
        finally:
            client.close()


@pytest.fixture
def raw_client(zk_server: ServerProcess) -> Iterator[Callable[..., RawClient]]:
    """Factory: `raw_client(port=None, connect=True, timeout_ms=30000)`; all closed at teardown."""
    clients: list[RawClient] = []

    def make(port: int | None = None, connect: bool = True, timeout_ms: int = 30000) -> RawClient:
        client = RawClient("127.0.0.1", port or zk_server.client_port)
        clients.append(client)
        if connect:
            assert client.connect(timeout_ms) > 0
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def znode(request: pytest.FixtureRequest, kazoo_client: Callable[..., KazooClient]) -> str:
    """A fresh persistent znode, unique to the test (and its parameters), to work under."""
    name = "".join(c if c.isalnum() else "_" for c in request.node.name)
    path = f"/{name}"
    admin = kazoo_client()
    if admin.exists(path):
        admin.delete(path, recursive=True)
    admin.create(path)
    return path
