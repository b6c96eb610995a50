"""acceptedEpoch/currentEpoch files: Apache's format and QuorumPeer.loadDataBase's rules."""

from __future__ import annotations

import pytest

from zkfast.errors import CorruptDataError
from zkfast.storage.epochs import (
    EpochState,
    epoch_file_name,
    format_epoch,
    parse_epoch,
    resolve_epochs,
)


def test_format_is_decimal_ascii_without_newline() -> None:
    assert format_epoch(0) == b"0"
    assert format_epoch(12) == b"12"
    assert format_epoch(-1) == b"-1"
    with pytest.raises(OverflowError):
        format_epoch(1 << 63)


def test_parse_reads_the_first_line() -> None:
    assert parse_epoch(b"7", "currentEpoch") == 7
    assert parse_epoch(b"7\n", "currentEpoch") == 7
    assert parse_epoch(b"+7\r\ngarbage", "currentEpoch") == 7
    for bad in (b"", b"seven", b" 7", b"0x7", b"9223372036854775808"):
        with pytest.raises(CorruptDataError, match="currentEpoch"):
            parse_epoch(bad, "currentEpoch")


def test_file_names() -> None:
    assert epoch_file_name("accepted") == "acceptedEpoch"
    assert epoch_file_name("current") == "currentEpoch"
    with pytest.raises(ValueError):
        epoch_file_name("other")


def test_missing_files_come_from_the_last_zxid() -> None:
    assert resolve_epochs(None, None, 0x300000009) == EpochState(
        3, 3, (("current", 3), ("accepted", 3)))
    assert resolve_epochs(None, None, 0) == EpochState(0, 0, (("current", 0), ("accepted", 0)))
    assert resolve_epochs(b"5", None, 0x300000009) == EpochState(5, 3, (("current", 3),))


def test_present_files_win() -> None:
    assert resolve_epochs(b"5", b"4", 0x400000002) == EpochState(5, 4, ())


def test_current_older_than_the_log_needs_the_tmp_file() -> None:
    with pytest.raises(CorruptDataError, match="older than the last zxid"):
        resolve_epochs(b"5", b"2", 0x300000001)
    assert resolve_epochs(b"5", b"2", 0x300000001, current_tmp=b"3") == EpochState(
        5, 3, (("current", 3),))


def test_accepted_below_current_is_an_error() -> None:
    with pytest.raises(CorruptDataError, match="accepted epoch"):
        resolve_epochs(b"2", b"3", 0x300000001)
