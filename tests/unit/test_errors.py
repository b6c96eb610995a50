"""errors: the taxonomy and KeeperException code names/messages (ZooKeeper 3.8)."""

from __future__ import annotations

import pytest

from zkfast import _impl, errors
from zkfast.wire.constants import Err


def test_protocol_error_is_the_chosen_cores() -> None:
    assert errors.ProtocolError is _impl.ProtocolError is _impl.core.ProtocolError
    assert issubclass(errors.ProtocolError, ValueError)


def test_taxonomy() -> None:
    assert issubclass(errors.ConfigError, errors.ZkfastError)
    assert issubclass(errors.CorruptDataError, errors.StorageError)
    assert not issubclass(errors.StorageError, ValueError)
    e = errors.ConfigError("must be positive", key="tickTime")
    assert e.key == "tickTime" and str(e) == "tickTime: must be positive"
    s = errors.CorruptDataError("checksum mismatch", path="log.100000001", offset=16)
    assert (s.path, s.offset) == ("log.100000001", 16)
    assert str(s) == "log.100000001@16: checksum mismatch"
    assert str(errors.StorageError("disk full")) == "disk full"


@pytest.mark.parametrize(
    ("code", "name", "message"),
    [
        (0, "OK", "ok"),
        (-101, "NONODE", "NoNode"),
        (-103, "BADVERSION", "BadVersion"),
        (-110, "NODEEXISTS", "NodeExists"),
        (-111, "NOTEMPTY", "Directory not empty"),
        (-112, "SESSIONEXPIRED", "Session expired"),
        (-114, "INVALIDACL", "InvalidACL"),
        (-119, "NOTREADONLY", "Not a read-only call"),
        (-8, "BADARGUMENTS", "BadArguments"),
        (-5, "MARSHALLINGERROR", "MarshallingError"),
        (-127, "THROTTLEDOP", "Op throttled due to high load"),
        # Codes getCodeMessage has no case for print the enum name.
        (-122, "REQUESTTIMEOUT", "Unknown error REQUESTTIMEOUT"),
        (-12, "UNKNOWNSESSION", "Unknown error UNKNOWNSESSION"),
    ],
)
def test_code_names_and_messages(code: int, name: str, message: str) -> None:
    assert errors.err_name(code) == name
    assert errors.err_message(code) == message


def test_every_code_has_a_message() -> None:
    for code in Err:
        assert errors.err_message(code)
        assert errors.err_name(code) == code.name


def test_unknown_codes_never_raise() -> None:
    assert errors.err_name(-9999) == "UNKNOWN(-9999)"
    assert errors.err_message(-9999) == "Unknown error -9999"


def test_keeper_error_text() -> None:
    assert errors.keeper_error_text(-101, "/a") == "KeeperErrorCode = NoNode for /a"
    assert errors.keeper_error_text(-101) == "KeeperErrorCode = NoNode"
    assert errors.keeper_error_text(-101, "") == "KeeperErrorCode = NoNode"
