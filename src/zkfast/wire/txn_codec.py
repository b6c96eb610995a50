"""Txn codec: TxnHeader + record [+ TxnDigest], byte-identical with Apache 3.8 txn log entries.

Theory of operation
-------------------
A txn (zk-formats §5) is the 32-byte ``TxnHeader{clientId, cxid, zxid, time, type}``, then the
record of its type (``wire.jute.TXNS``), then an optional ``TxnDigest{int version=2; long
treeDigest}``. These are exactly the bytes of a log entry (``Util.marshallTxnEntry``), of a
PROPOSAL and of an INFORM.

A multi txn's record is ``MultiTxn{vector<Txn{int type; buffer data}>}`` where each ``data`` is
the serialized sub-record without a header. zkfast passes multi records around already decoded,
as a list of ``(type, record)`` pairs; this module packs and unpacks the inner buffers.

Decoding mirrors ``SerializeUtils.deserializeTxn``:
* a closeSession without a record (written before 3.6) decodes with record ``None``;
* a create whose record is a ``CreateTxnV0`` (no parentCVersion) decodes with parentCVersion -1;
* the TxnDigest is optional: if fewer than 12 bytes follow the record there is none.
"""

from __future__ import annotations

from typing import Any

from .._impl import ProtocolError, core
from . import jute

__all__ = ["encode_txn", "decode_txn", "encode_txn_record", "decode_txn_record", "DIGEST_VERSION"]

#: TxnDigest.version that zkfast writes and compares (DigestCalculator.DIGEST_VERSION).
DIGEST_VERSION = 2

_encode = core.encode_record
_decode = core.decode_record
_TXNS = jute.TXNS
_MULTI = 14
_CLOSE_SESSION = -11


def encode_txn_record(txn_type: int, record: Any, out: bytearray) -> None:
    """Append the record of a txn of ``txn_type`` (multi: ``[(type, record)]``) to ``out``."""
    if txn_type == _MULTI:
        inner = []
        for sub_type, sub_record in record:
            buf = bytearray()
            _encode(_TXNS[sub_type], sub_record, buf)
            inner.append((sub_type, bytes(buf)))
        _encode(jute.MULTI_TXN, (inner,), out)
        return
    if record is None:
        return
    _encode(_TXNS[txn_type], record, out)


def encode_txn(header: tuple[int, int, int, int, int], record: Any, digest: int | None) -> bytes:
    """Serialize one txn as Apache logs it.

    Args:
        header: the TXN_HEADER tuple ``(client_id, cxid, zxid, time_ms, type)``.
        record: the record of ``header[4]``; a multi takes ``[(sub_type, sub_record), ...]``;
            ``None`` writes no record (only a pre-3.6 closeSession has none).
        digest: the tree digest after this txn, or ``None`` to leave the TxnDigest out.
    """
    out = bytearray()
    _encode(jute.TXN_HEADER, header, out)
    encode_txn_record(header[4], record, out)
    if digest is not None:
        _encode(jute.TXN_DIGEST, (DIGEST_VERSION, digest), out)
    return bytes(out)


def decode_txn_record(txn_type: int, data: bytes, offset: int = 0, end: int = -1
                      ) -> tuple[Any, int]:
    """Decode the record of a txn of ``txn_type``; returns ``(record, new_offset)``."""
    if end < 0:
        end = len(data)
    if txn_type == _MULTI:
        (inner,), pos = _decode(jute.MULTI_TXN, data, offset, end)
        subs = []
        for i, (sub_type, buf) in enumerate(inner):
            layout = _TXNS.get(sub_type)
            if layout is None or sub_type == _MULTI or buf is None:
                raise ProtocolError(f"MultiTxn.txns[{i}].type", offset, "a sub-txn type",
                                    str(sub_type))
            sub_record, _ = decode_txn_record(sub_type, buf)
            subs.append((sub_type, sub_record))
        return subs, pos
    layout = _TXNS.get(txn_type)
    if layout is None:
        raise ProtocolError("TxnHeader.type", offset - 4, "a txn type", str(txn_type))
    if txn_type == _CLOSE_SESSION and offset == end:
        return None, offset  # written before 3.6: no CloseSessionTxn record
    if txn_type in (1, 15):
        try:
            return _decode(layout, data, offset, end)
        except ProtocolError:
            rec, pos = _decode(jute.CREATE_TXN_V0, data, offset, end)
            return rec + (-1,), pos
    return _decode(layout, data, offset, end)


def decode_txn(data: bytes) -> tuple[tuple[int, int, int, int, int], Any, int | None]:
    """Parse txn bytes into ``(header, record, tree_digest | None)``.

    Raises:
        ProtocolError: truncated header or record, or an unknown txn type.
    """
    header, pos = _decode(jute.TXN_HEADER, data)
    end = len(data)
    record, pos = decode_txn_record(header[4], data, pos, end)
    digest: int | None = None
    if end - pos >= 12:
        (_version, digest), pos = _decode(jute.TXN_DIGEST, data, pos, end)
    return header, record, digest
