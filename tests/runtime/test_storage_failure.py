"""A real zkfast process whose txn log disk fills up stops, and loses nothing it acknowledged.

The txn log lives on a 1 MiB tmpfs (dataLogDir); writes of 64 KiB values fill it. When a write
or fsync fails the server must not carry on pretending: it logs the failure, acknowledges
nothing more, and exits (as Apache's standalone server does). After it is restarted on a disk
with room, every write that was acknowledged before the failure is there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException
from kazoo.retry import KazooRetry

from zkfast.testing.procs import wait_until, zkfast_server

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("mount") is None,
                                reason="needs root to mount a small tmpfs")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "logdisk"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_log_disk_stops_the_server_and_keeps_acknowledged_writes(
    tmp_path: Path, small_disk: Path
) -> None:
    cfg = {"dataLogDir": str(small_disk / "log"), "preAllocSize": "64",
           "snapCount": "1000000"}
    server = zkfast_server(tmp_path / "zk", cfg=cfg)
    acked: list[str] = []
    try:
        zk = KazooClient(hosts=server.hosts, timeout=10,
                         connection_retry=KazooRetry(max_tries=0))
        zk.start(timeout=30)
        value = b"v" * 65536
        try:
            for i in range(64):  # 4 MiB in all: far more than the disk holds
                zk.create(f"/n{i:03d}", value)
                acked.append(f"/n{i:03d}")
        except KazooException:
            pass
        finally:
            zk.stop()
            zk.close()
        assert 0 < len(acked) < 64, "the disk should fill part way through"
        wait_until(lambda: server.returncode is not None, 60, "the server to exit")
        assert server.returncode == 1
        text = server.log_text()
        assert "txn log failed" in text and "no write after it was acknowledged" in text
    finally:
        server.stop()

    # Restart with the log moved to a disk with room: every acknowledged create is there.
    roomy = tmp_path / "roomy-log"
    shutil.copytree(small_disk / "log", roomy)
    cfg2 = dict(cfg, dataLogDir=str(roomy))
    again = zkfast_server(tmp_path / "zk", cfg=cfg2)
    try:
        zk = KazooClient(hosts=again.hosts, timeout=10)
        zk.start(timeout=30)
        try:
            for path in acked:
                data, _ = zk.get(path)
                assert data == b"v" * 65536, path
        finally:
            zk.stop()
            zk.close()
    finally:
        again.stop()
