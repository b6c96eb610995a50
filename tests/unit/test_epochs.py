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
    # acceptedEpoch below the log's epoch too: txns of an epoch never accepted.
    with pytest.raises(CorruptDataError, match="older than the last zxid"):
        resolve_epochs(b"2", b"2", 0x300000001)
    assert resolve_epochs(b"5", b"2", 0x300000001, current_tmp=b"3") == EpochState(
        5, 3, (("current", 3),))
    assert resolve_epochs(b"3", b"2", 0x300000001, current_tmp=b"3") == EpochState(
        3, 3, (("current", 3),))


def test_sync_interrupted_before_current_epoch() -> None:
    """A learner logged txns of the epoch it accepted while syncing and stopped before its
    currentEpoch was durable: currentEpoch becomes the log's epoch, written before serving."""
    assert resolve_epochs(b"1", b"0", 0x100000004) == EpochState(1, 1, (("current", 1),))
    # Accepted a later epoch still (a leader of epoch 5 never got a quorum): the log's
    # epoch, not the accepted one.
    assert resolve_epochs(b"5", b"2", 0x300000001) == EpochState(5, 3, (("current", 3),))
    # The log's epoch equal to currentEpoch, or older: nothing to do.
    assert resolve_epochs(b"5", b"3", 0x300000001) == EpochState(5, 3, ())
    assert resolve_epochs(b"5", b"3", 0x100000001) == EpochState(5, 3, ())


def test_log_from_an_epoch_never_accepted_is_refused() -> None:
    """The check that catches a damaged data directory stays: txns above acceptedEpoch, or
    no acceptedEpoch file to vouch for them."""
    with pytest.raises(CorruptDataError, match="older than the last zxid"):
        resolve_epochs(b"2", b"1", 0x300000001)
    with pytest.raises(CorruptDataError, match="older than the last zxid"):
        resolve_epochs(None, b"1", 0x300000001)
    with pytest.raises(CorruptDataError, match="currentEpoch"):
        resolve_epochs(b"3", b"x", 0x300000001)


def test_accepted_below_current_is_an_error() -> None:
    with pytest.raises(CorruptDataError, match="accepted epoch"):
        resolve_epochs(b"2", b"3", 0x300000001)
