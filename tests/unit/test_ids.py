"""ids: hex formatting as ZooKeeper prints ids (Long.toHexString with 0x), and parsing back."""

from __future__ import annotations

import pytest

from zkfast.ids import SessionId, Zxid, hex_long, hex_session, hex_zxid, parse_hex_zxid


def test_hex_like_zookeeper() -> None:
    assert hex_zxid(Zxid(0x100000003)) == "0x100000003"
    assert hex_zxid(Zxid(0)) == "0x0"
    # zk-formats §1.2: the session id of the worked example, top byte = server id 1.
    assert hex_session(SessionId(0x0100000A5B3C0000)) == "0x100000a5b3c0000"
    # Negative longs print as Java prints them: 64-bit two's complement, lowercase.
    assert hex_long(-1) == "0xffffffffffffffff"
    assert hex_long(-(2**63)) == "0x8000000000000000"
    assert hex_long(2**63 - 1) == "0x7fffffffffffffff"


@pytest.mark.parametrize("bad", [2**63, -(2**63) - 1, 2**64])
def test_hex_rejects_non_longs(bad: int) -> None:
    with pytest.raises(OverflowError):
        hex_long(bad)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0x100000003", 0x100000003),
        ("100000003", 0x100000003),
        ("0X1f", 0x1F),
        ("0", 0),
        ("ffffffffffffffff", -1),
        ("8000000000000000", -(2**63)),
        ("7fffffffffffffff", 2**63 - 1),
    ],
)
def test_parse_hex_zxid(text: str, value: int) -> None:
    assert parse_hex_zxid(text) == value
    assert parse_hex_zxid(hex_zxid(value)) == value


@pytest.mark.parametrize("bad", ["", "0x", "xyz", "0x1g", "1" * 17, "-1", " 1", "0x-1"])
def test_parse_hex_zxid_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_hex_zxid(bad)
