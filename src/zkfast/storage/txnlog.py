"""The ZooKeeper 3.8 txn log file format (``version-2/log.<hexzxid>``), as bytes only.

Theory of operation
-------------------
A log file is a 16-byte FileHeader (magic ``ZKLG``, version 2, dbid 0) followed by entries
``long checksum; int len; byte[len] txn; byte 'B'`` where the checksum is the Adler32 of the txn
bytes alone (zk-formats §6.2). The file is preallocated with zeros, so the end of the log is the
first place where a complete entry does not follow: a zero length (preallocated space), the end
of the data, or a missing ``'B'`` end-of-record marker (a torn write). Those endings are normal
after a crash and the tail is cut off there. A checksum mismatch on an entry that is otherwise
complete is not a torn write but corruption, and recovery must refuse to start on it.

This module does no IO: the storage layer reads and writes files and calls these functions.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass

__all__ = [
    "LOG_MAGIC",
    "LOG_VERSION",
    "FILE_HEADER_BYTES",
    "LogScan",
    "LogCorrupt",
    "encode_file_header",
    "encode_entry",
    "scan_log",
    "log_file_name",
    "parse_file_zxid",
    "preallocated_size",
]

LOG_MAGIC = 0x5A4B4C47  # "ZKLG"
LOG_VERSION = 2
FILE_HEADER_BYTES = 16
_END_OF_RECORD = 0x42  # 'B'
_HEADER = struct.Struct(">iiq")
_ENTRY_HEAD = struct.Struct(">qi")
#: Apache's FilePadding extends the file when fewer than this many bytes remain.
_PAD_THRESHOLD_BYTES = 4096
_NAME = re.compile(r"^(log|snapshot)\.([0-9a-fA-F]+)(\.[a-z]+)?$")


class LogCorrupt(ValueError):
    """A log is damaged somewhere other than its tail: recovery must not go on silently."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"txn log corrupt at offset {offset}: {reason}")
        self.offset = offset
        self.reason = reason


@dataclass(frozen=True, slots=True)
class LogScan:
    """What one pass over a log file's bytes found."""

    #: ``(offset, txn_bytes)`` of every complete, checksum-valid entry, in file order.
    entries: list[tuple[int, bytes]]
    #: Offset just past the last complete entry: where the next append goes.
    end_offset: int
    #: Why the scan stopped: "eof" (clean end of data), "zeros" (preallocated space) or
    #: "torn" (a partial entry: a length with no complete body or no end-of-record marker).
    tail: str


def encode_file_header(dbid: int = 0) -> bytes:
    """The 16-byte FileHeader of a new log file."""
    return _HEADER.pack(LOG_MAGIC, LOG_VERSION, dbid)


def encode_entry(txn: bytes) -> bytes:
    """One log entry for ``txn`` (TxnHeader + record [+ TxnDigest]) with its checksum."""
    return _ENTRY_HEAD.pack(zlib.adler32(txn), len(txn)) + txn + b"B"


def scan_log(data: bytes | bytearray | memoryview) -> LogScan:
    """Read every complete entry of a log file.

    Raises:
        LogCorrupt: a bad file header, an impossible length, or a checksum mismatch on an
            entry whose bytes are all present.
    """
    size = len(data)
    if size < FILE_HEADER_BYTES:
        raise LogCorrupt(0, f"file header needs {FILE_HEADER_BYTES} bytes, found {size}")
    magic, version, _dbid = _HEADER.unpack_from(data, 0)
    if magic != LOG_MAGIC:
        raise LogCorrupt(0, f"bad magic 0x{magic & 0xFFFFFFFF:08x}, expected 0x{LOG_MAGIC:08x}")
    if version != LOG_VERSION:
        raise LogCorrupt(4, f"unsupported log version {version}, expected {LOG_VERSION}")
    entries: list[tuple[int, bytes]] = []
    pos = FILE_HEADER_BYTES
    while True:
        if size - pos < _ENTRY_HEAD.size:
            if pos == size:
                return LogScan(entries, pos, "eof")
            return LogScan(entries, pos, "torn" if any(data[pos:size]) else "zeros")
        checksum, length = _ENTRY_HEAD.unpack_from(data, pos)
        if length == 0:
            return LogScan(entries, pos, "zeros" if checksum == 0 else "torn")
        if length < 0:
            raise LogCorrupt(pos + 8, f"negative entry length {length}")
        body = pos + _ENTRY_HEAD.size
        if size - body < length + 1 or data[body + length] != _END_OF_RECORD:
            return LogScan(entries, pos, "torn")
        txn = bytes(data[body : body + length])
        if zlib.adler32(txn) != checksum & 0xFFFFFFFF or checksum >> 32:
            raise LogCorrupt(pos, f"checksum mismatch: stored 0x{checksum & 0xFFFFFFFFFFFFFFFF:x}, "
                                  f"computed 0x{zlib.adler32(txn):x}")
        entries.append((pos, txn))
        pos = body + length + 1


def log_file_name(first_zxid: int) -> str:
    """``log.<hex>`` for a log whose first txn has ``first_zxid`` (lowercase, no padding)."""
    return f"log.{first_zxid & 0xFFFFFFFFFFFFFFFF:x}"


def parse_file_zxid(name: str, prefix: str) -> int | None:
    """The zxid in a ``log.<hex>`` / ``snapshot.<hex>[.gz|.snappy]`` name, or None."""
    m = _NAME.match(name)
    if m is None or m.group(1) != prefix:
        return None
    return int(m.group(2), 16)


def preallocated_size(position: int, current_size: int, prealloc_bytes: int) -> int:
    """The file size to pad to before an append at ``position`` (Apache's FilePadding rule).

    Nothing changes until the write position comes within 4 KiB of ``current_size``; then the
    file grows by ``prealloc_bytes`` (rounded to a multiple of it when the position has already
    run past the known size). A new log whose size is set to its 16-byte header therefore
    grows to 16 + prealloc_bytes on its first append, as Apache's does.
    """
    if prealloc_bytes <= 0 or position + _PAD_THRESHOLD_BYTES < current_size:
        return current_size
    if position > current_size:
        size = position + prealloc_bytes
        return size - size % prealloc_bytes
    return current_size + prealloc_bytes
