"""The acceptedEpoch and currentEpoch files of ``<dataDir>/version-2`` (bytes only, no IO).

Format (``QuorumPeer.writeLongToFile`` / ``readLongFromFile``): the epoch as decimal ASCII
(``Long.toString``), no newline; a reader takes the first line and ``Long.parseLong``s it.
The files are written atomically (``AtomicFileWritingIdiom``: ``<name>.tmp``, fsync, rename);
the runtime does that for a ``WriteEpoch`` action.

On start (``QuorumPeer.loadDataBase``), with ``last_zxid`` the last processed zxid:

1. currentEpoch missing -> the epoch of ``last_zxid``, and the file is written.
2. the epoch of ``last_zxid`` above currentEpoch -> ``currentEpoch.tmp`` (a write that was
   interrupted before its rename) supplies the value and is written. Without it:
   a. the epoch of ``last_zxid`` is at most acceptedEpoch: the txns came from the leader of
      an epoch this peer had accepted, logged while syncing with it, and the peer stopped
      before its currentEpoch was durable (zkfast logs a sync's txns before it writes
      currentEpoch, docs/zab.md §4). currentEpoch becomes the epoch of ``last_zxid`` and the
      file is written before the peer serves. This covers Apache's ``updatingEpoch`` marker
      (a learner stopped between its NEWLEADER snapshot and currentEpoch), without the file.
   b. otherwise the log holds txns of an epoch this peer never accepted: the data
      directory is inconsistent (error).
3. acceptedEpoch missing -> the epoch of ``last_zxid``, and the file is written.
4. acceptedEpoch below currentEpoch is an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import CorruptDataError

__all__ = [
    "ACCEPTED_EPOCH_FILE",
    "CURRENT_EPOCH_FILE",
    "EpochState",
    "format_epoch",
    "parse_epoch",
    "resolve_epochs",
    "epoch_file_name",
]

ACCEPTED_EPOCH_FILE = "acceptedEpoch"
CURRENT_EPOCH_FILE = "currentEpoch"
_LONG_RE = re.compile(r"[+-]?[0-9]+")


def epoch_file_name(kind: str) -> str:
    """``"accepted"`` -> ``acceptedEpoch``, ``"current"`` -> ``currentEpoch``."""
    if kind == "accepted":
        return ACCEPTED_EPOCH_FILE
    if kind == "current":
        return CURRENT_EPOCH_FILE
    raise ValueError(f"epoch kind must be 'accepted' or 'current', not {kind!r}")


def format_epoch(epoch: int) -> bytes:
    """The file content for ``epoch``: ``Long.toString`` in ASCII, no newline."""
    if not -(1 << 63) <= epoch < (1 << 63):
        raise OverflowError(f"epoch {epoch} does not fit in a long")
    return str(epoch).encode("ascii")


def parse_epoch(data: bytes, name: str) -> int:
    """Read an epoch file's content as Apache does (first line, ``Long.parseLong``).

    Raises:
        CorruptDataError: the first line is not a long (the message names the file).
    """
    text = data.decode("latin-1")
    line = re.split(r"\r\n|\r|\n", text, maxsplit=1)[0] if text else None
    if line is None or not _LONG_RE.fullmatch(line) or not -(1 << 63) <= int(line) < (1 << 63):
        raise CorruptDataError(f"Found {line} in {name}", path=name)
    return int(line)


@dataclass(frozen=True, slots=True)
class EpochState:
    """The epochs a peer starts with, and the files that must be (re)written first."""

    accepted_epoch: int
    current_epoch: int
    #: ``(kind, epoch)`` files to write (atomically) before the peer starts.
    writes: tuple[tuple[str, int], ...] = ()


def resolve_epochs(accepted: bytes | None, current: bytes | None, last_zxid: int, *,
                   current_tmp: bytes | None = None) -> EpochState:
    """Decide the starting epochs from the files' contents (None = file missing).

    Raises:
        CorruptDataError: a file does not parse, currentEpoch is older than the last zxid's
            epoch (and no currentEpoch.tmp), or acceptedEpoch is below currentEpoch.
    """
    epoch_of_zxid = last_zxid >> 32
    writes: list[tuple[str, int]] = []
    if current is None:
        cur = epoch_of_zxid
        writes.append(("current", cur))
    else:
        cur = parse_epoch(current, CURRENT_EPOCH_FILE)
    acc = epoch_of_zxid if accepted is None else parse_epoch(accepted, ACCEPTED_EPOCH_FILE)
    if epoch_of_zxid > cur:
        if current_tmp is not None:
            cur = parse_epoch(current_tmp, CURRENT_EPOCH_FILE + ".tmp")
        elif accepted is not None and epoch_of_zxid <= acc:
            cur = epoch_of_zxid  # rule 2a: a sync interrupted before currentEpoch
        else:
            raise CorruptDataError(
                f"The current epoch, {cur:#x}, is older than the last zxid, {last_zxid:#x}"
                + (f", and the accepted epoch, {acc:#x}, too" if accepted is not None
                   else ""),
                path=CURRENT_EPOCH_FILE)
        writes.append(("current", cur))
    if accepted is None:
        writes.append(("accepted", acc))
    if acc < cur:
        raise CorruptDataError(
            f"The accepted epoch, {acc:#x} is less than the current epoch, {cur:#x}",
            path=ACCEPTED_EPOCH_FILE)
    return EpochState(acc, cur, tuple(writes))
