"""zkfast-txnlog-dump and zkfast-snapshot-dump over Apache 3.8.0 files and damaged copies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zkfast.storage.txnlog import scan_log
from zkfast.tools import snapshot_dump_main, txnlog_dump_main

DATA = Path(__file__).resolve().parent.parent / "testdata"


def test_txnlog_dump_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert txnlog_dump_main([str(DATA / "apache-3.8.0-log.18")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("ZooKeeper Transactional Log File")
    assert "zxid 0x18 create /n22" in out[1]
    assert out[-1] == "EOF reached after 10 txns."
    assert txnlog_dump_main(["--json", str(DATA / "apache-3.8.0-log.18")]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["zxid"] for r in rows][:2] == ["0x18", "0x19"]
    assert rows[0]["record"]["path"] == "/n22" and rows[0]["digest"].startswith("0x")


def test_txnlog_recover_cuts_only_when_asked(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    raw = (DATA / "apache-3.8.0-log.18").read_bytes()
    torn = tmp_path / "log.18"
    torn.write_bytes(raw[:-10])
    assert txnlog_dump_main([str(torn)]) == 1
    assert torn.read_bytes() == raw[:-10]  # untouched without --recover
    assert txnlog_dump_main(["--recover", str(torn)]) == 0
    assert len(scan_log(torn.read_bytes()).entries) == 9
    assert scan_log(torn.read_bytes()).tail == "eof"
    bad = bytearray(raw)
    bad[16 + 12 + 5] ^= 0xFF  # inside the first txn: checksum failure
    corrupt = tmp_path / "log.19"
    corrupt.write_bytes(bytes(bad))
    assert txnlog_dump_main([str(corrupt)]) == 1
    assert "corrupt entry at offset 16" in capsys.readouterr().out
    assert txnlog_dump_main(["--recover", str(corrupt)]) == 0
    assert corrupt.stat().st_size == 16


def test_snapshot_dump_text_and_json(tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    snap = tmp_path / "snapshot.f"
    snap.write_bytes((DATA / "apache-3.8.0-snapshot.f").read_bytes())
    assert snapshot_dump_main([str(snap)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ZNode Details (count=18):")
    assert "Last zxid: 0xf" in out and "Session Details" in out
    assert snapshot_dump_main(["--json", "-d", str(snap)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["zxid"] == "0xf" and len(doc["nodes"]) == 18
    assert doc["nodes"][0]["path"] == "/" and doc["nodes"][0]["acl"] is None
