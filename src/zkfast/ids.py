"""Id types of the protocol, as ``NewType``s so mypy catches a sid passed as a zxid.

All are plain ``int`` at run time. Hex formatting follows ZooKeeper: ``0x`` plus lowercase hex
without padding (``Long.toHexString``), and a negative long prints as its 64-bit two's
complement (``0xffffffffffffffff`` for -1), as Java does.
"""

from __future__ import annotations

from typing import NewType

__all__ = [
    "Sid",
    "Zxid",
    "Epoch",
    "SessionId",
    "Xid",
    "hex_long",
    "hex_zxid",
    "hex_session",
    "parse_hex_zxid",
]

#: Server id (myid), 0..2^63-1 on the wire (a long), at most 254 with extended types.
Sid = NewType("Sid", int)
#: Transaction id: ``epoch << 32 | counter``, a signed 64-bit long.
Zxid = NewType("Zxid", int)
#: Leader epoch (the high 32 bits of a zxid).
Epoch = NewType("Epoch", int)
#: Session id: a signed 64-bit long whose top byte is the creating server's sid.
SessionId = NewType("SessionId", int)
#: Client request id (int32); negative values are the special xids (notification, ping, auth).
Xid = NewType("Xid", int)

_U64 = (1 << 64) - 1
_I64_MIN = -(1 << 63)


def hex_long(value: int) -> str:
    """``Long.toHexString`` with a ``0x`` prefix: lowercase, unpadded, two's complement.

    Raises:
        OverflowError: ``value`` does not fit in a signed 64-bit long.
    """
    if not _I64_MIN <= value <= _U64 >> 1:
        raise OverflowError(f"{value} does not fit in a long")
    return f"0x{value & _U64:x}"


def hex_zxid(zxid: Zxid | int) -> str:
    """A zxid as ZooKeeper logs and four-letter words print it (``0x100000003``)."""
    return hex_long(zxid)


def hex_session(session_id: SessionId | int) -> str:
    """A session id as ZooKeeper prints it (``0x100000a5b3c0000``)."""
    return hex_long(session_id)


def parse_hex_zxid(text: str) -> Zxid:
    """Parse a zxid printed in hex (with or without ``0x``), e.g. a ``log.<zxid>`` suffix.

    Values above 2^63-1 are read as the negative long Java would hold.

    Raises:
        ValueError: not hex, or wider than 64 bits.
    """
    digits = text[2:] if text[:2].lower() == "0x" else text
    if not digits or len(digits) > 16 or any(c not in "0123456789abcdefABCDEF" for c in digits):
        raise ValueError(f"not a hex zxid: {text!r}")
    value = int(digits, 16)
    return Zxid(value - (1 << 64) if value >> 63 else value)
