"""The txn log file format: header, entries, checksums, tail handling, padding, names."""

from __future__ import annotations

import zlib

import pytest

from zkfast.storage import txnlog

# zk-formats §6.2: the first entry of a log holding createSession (zxid 0x100000001,
# timeout 30000, with a digest), as Apache ZooKeeper 3.8.0 wrote it.
_EXAMPLE = bytes.fromhex(
    "5a4b4c470000000200000000000000000000000 0b2570a3400000030"
    "0100000a5b3c0000000000000000000100000001000001 8bcfe56800fffffff6"
    "00007530000000020000000051c6d66042".replace(" ", "")
)


def test_example_entry_matches_apache_bytes() -> None:
    scan = txnlog.scan_log(_EXAMPLE)
    assert scan.tail == "eof"
    assert len(scan.entries) == 1
    offset, txn = scan.entries[0]
    assert offset == txnlog.FILE_HEADER_BYTES
    assert zlib.adler32(txn) == 0xB2570A34
    assert txnlog.encode_file_header() + txnlog.encode_entry(txn) == _EXAMPLE


def _log(*txns: bytes) -> bytes:
    return txnlog.encode_file_header() + b"".join(txnlog.encode_entry(t) for t in txns)


def test_preallocated_zeros_end_the_log() -> None:
    data = _log(b"a" * 40, b"b" * 50) + bytes(4096)
    scan = txnlog.scan_log(data)
    assert [t for _, t in scan.entries] == [b"a" * 40, b"b" * 50]
    assert scan.tail == "zeros"
    assert scan.end_offset == len(_log(b"a" * 40, b"b" * 50))


@pytest.mark.parametrize("cut", [1, 5, 12, 20, 40])
def test_torn_last_entry_is_cut_off(cut: int) -> None:
    whole = _log(b"a" * 40, b"b" * 50)
    keep = len(_log(b"a" * 40))
    torn = whole[: keep + cut] + bytes(1000)
    scan = txnlog.scan_log(torn)
    assert [t for _, t in scan.entries] == [b"a" * 40]
    assert scan.end_offset == keep
    assert scan.tail in ("torn", "zeros")


def test_missing_end_of_record_marker_is_a_torn_tail() -> None:
    data = bytearray(_log(b"a" * 40, b"b" * 50))
    data[-1] = 0
    scan = txnlog.scan_log(bytes(data))
    assert len(scan.entries) == 1 and scan.tail == "torn"


def test_checksum_mismatch_in_a_complete_entry_is_corruption() -> None:
    data = bytearray(_log(b"a" * 40, b"b" * 50, b"c" * 10))
    first = txnlog.FILE_HEADER_BYTES + 12
    data[first + 3] ^= 0x01
    with pytest.raises(txnlog.LogCorrupt) as info:
        txnlog.scan_log(bytes(data))
    assert info.value.offset == txnlog.FILE_HEADER_BYTES


@pytest.mark.parametrize(
    "header", [b"", b"ZKLG", bytes.fromhex("5a4b534e00000002ffffffffffffffff"),
               bytes.fromhex("5a4b4c4700000001 0000000000000000".replace(" ", ""))],
)
def test_bad_header_is_refused(header: bytes) -> None:
    with pytest.raises(txnlog.LogCorrupt):
        txnlog.scan_log(header)


def test_padding_follows_apache() -> None:
    kib = 1024
    # The figures of Apache's FileTxnLogTest.
    assert txnlog.preallocated_size(7 * kib, 10 * kib, 0) == 10 * kib
    assert txnlog.preallocated_size(5 * kib, 10 * kib, 10 * kib) == 10 * kib
    assert txnlog.preallocated_size(7 * kib, 10 * kib, 10 * kib) == 20 * kib
    assert txnlog.preallocated_size(12 * kib, 10 * kib, 10 * kib) == 20 * kib
    assert txnlog.preallocated_size(16, 16, 64 * kib * kib) == 16 + 64 * kib * kib


def test_file_names() -> None:
    assert txnlog.log_file_name(0x100000001) == "log.100000001"
    assert txnlog.parse_file_zxid("log.100000001", "log") == 0x100000001
    assert txnlog.parse_file_zxid("snapshot.1a.gz", "snapshot") == 0x1A
    assert txnlog.parse_file_zxid("log.zz", "log") is None
    assert txnlog.parse_file_zxid("snapshot.10", "log") is None
