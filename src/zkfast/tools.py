"""``zkfast-txnlog-dump`` and ``zkfast-snapshot-dump``: read txn logs and snapshots.

They print what Apache's ``zkTxnLogToolkit.sh`` / ``zkSnapShotToolkit.sh`` print, as text or as
JSON (one object per txn; one document per snapshot), for zkfast's files and Apache's alike.
The txn log tool changes a file only when asked: ``--recover`` cuts a damaged log at its first
bad entry (a torn tail, or a checksum failure), saying how many bytes and which txns go.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import orjson

from ._impl import ProtocolError
from .storage.snapshot import SnapshotCorrupt
from .storage.tree_io import decode_file
from .storage.txnlog import LogCorrupt, parse_file_zxid, scan_log
from .wire import jute
from .wire.constants import OpCode
from .wire.txn_codec import decode_txn

__all__ = ["txnlog_dump_main", "snapshot_dump_main"]

_OP_NAMES = {int(op): op.name for op in OpCode}


def _hex(v: int) -> str:
    return f"0x{v & 0xFFFFFFFFFFFFFFFF:x}"


def _when(ms: int) -> str:
    return time.strftime("%m/%d/%y %I:%M:%S %p %Z", time.localtime(ms / 1000))


def _dumps(value: Any, indent: int | None = None) -> str:
    """One JSON document as text (orjson: dumps of million-node snapshots stay fast)."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 if indent else 0).decode()


def _jsonable(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray)):
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(v).decode()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def _named(txn_type: int, record: Any) -> Any:
    """A txn record as {field: value} following its jute layout."""
    if record is None:
        return None
    if txn_type == 14:
        return [{"type": _OP_NAMES.get(t, str(t)), "record": _named(t, r)} for t, r in record]
    layout = jute.TXNS.get(txn_type)
    if layout is None:
        return _jsonable(record)
    return {f[0]: _jsonable(v) for f, v in zip(layout, record, strict=False)}


def _text_record(txn_type: int, record: Any) -> str:
    named = _named(txn_type, record)
    if named is None:
        return ""
    if isinstance(named, dict):
        return ",".join(f"{v}" if not isinstance(v, (dict, list)) else _dumps(v)
                        for v in named.values())
    return _dumps(named)


def txnlog_dump_main(argv: Sequence[str] | None = None) -> int:
    """``zkfast-txnlog-dump [--json] [--recover] LOGFILE``."""
    ap = argparse.ArgumentParser(prog="zkfast-txnlog-dump",
                                 description="Print the txns of a ZooKeeper 3.8 txn log file.")
    ap.add_argument("file")
    ap.add_argument("--json", action="store_true", help="one JSON object per txn")
    ap.add_argument("--recover", action="store_true",
                    help="cut the file at its first bad entry (torn tail or checksum failure); "
                         "the txns from there on are lost")
    args = ap.parse_args(argv)
    try:
        with open(args.file, "rb") as f:
            data = f.read()
    except OSError as e:
        print(f"zkfast-txnlog-dump: {e}", file=sys.stderr)
        return 2
    bad_at: int | None = None
    reason = ""
    try:
        scan = scan_log(data)
        entries, tail, end = scan.entries, scan.tail, scan.end_offset
    except LogCorrupt as e:
        if e.offset < 16:
            print(f"zkfast-txnlog-dump: {e}", file=sys.stderr)
            return 1
        bad_at, reason = e.offset, e.reason
        scan = scan_log(data[: e.offset])
        entries, tail, end = scan.entries, "corrupt", e.offset
    if not args.json:
        print("ZooKeeper Transactional Log File with dbid 0 txnlog format version 2")
    count = 0
    for offset, txn in entries:
        try:
            header, record, digest = decode_txn(txn)
        except ProtocolError as e:
            print(f"zkfast-txnlog-dump: entry at offset {offset} does not decode: {e}",
                  file=sys.stderr)
            return 1
        client, cxid, zxid, when, ttype = header
        count += 1
        if args.json:
            print(_dumps({"offset": offset, "time": when, "session": _hex(client),
                              "cxid": _hex(cxid), "zxid": _hex(zxid),
                              "type": _OP_NAMES.get(ttype, str(ttype)),
                              "record": _named(ttype, record),
                              "digest": None if digest is None else _hex(digest)}))
        else:
            print(f"{_when(when)} session {_hex(client)} cxid {_hex(cxid)} zxid {_hex(zxid)} "
                  f"{_OP_NAMES.get(ttype, str(ttype))} {_text_record(ttype, record)}"
                  + (f", digest {_hex(digest)}" if digest is not None else ""))
    damaged = tail in ("torn", "corrupt")
    what = {"eof": "EOF reached", "zeros": "end of the log (preallocated zeros) reached",
            "torn": f"a torn entry at offset {end}",
            "corrupt": f"a corrupt entry at offset {bad_at}: {reason}"}[tail]
    print(f"{what} after {count} txns.", file=sys.stderr if args.json else sys.stdout)
    if damaged and args.recover:
        fd = os.open(args.file, os.O_WRONLY)
        try:
            os.ftruncate(fd, end)
            os.fsync(fd)
        finally:
            os.close(fd)
        print(f"truncated {args.file} to {end} bytes ({len(data) - end} bytes cut)",
              file=sys.stderr)
        return 0
    if damaged:
        print("the log is damaged; --recover cuts it at the first bad entry", file=sys.stderr)
        return 1
    return 0


def snapshot_dump_main(argv: Sequence[str] | None = None) -> int:
    """``zkfast-snapshot-dump [--json] [-d] SNAPSHOTFILE``."""
    ap = argparse.ArgumentParser(prog="zkfast-snapshot-dump",
                                 description="Print the nodes and sessions of a snapshot file "
                                             "(plain, .gz or .snappy).")
    ap.add_argument("file")
    ap.add_argument("-d", "--dump-data", action="store_true", help="print znode data too")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    name = os.path.basename(args.file)
    try:
        with open(args.file, "rb") as f:
            snap = decode_file(name, f.read())
    except OSError as e:
        print(f"zkfast-snapshot-dump: {e}", file=sys.stderr)
        return 2
    except SnapshotCorrupt as e:
        print(f"zkfast-snapshot-dump: {name}: {e}", file=sys.stderr)
        return 1
    zxid = parse_file_zxid(name, "snapshot")
    ephemerals: dict[int, int] = {}
    for n in snap.nodes:
        if n.stat[7] and n.stat[7] in dict(snap.sessions):
            ephemerals[n.stat[7]] = ephemerals.get(n.stat[7], 0) + 1
    if args.json:
        nodes = []
        for n in snap.nodes:
            c, m, ct, mt, ver, cver, aver, owner, p = n.stat
            node: dict[str, Any] = {
                "path": n.path or "/", "czxid": c, "mzxid": m, "ctime": ct, "mtime": mt,
                "version": ver, "cversion": cver, "aversion": aver, "ephemeralOwner": owner,
                "pzxid": p, "dataLength": len(n.data or b""),
                "acl": None if n.acl is None else [
                    {"perms": perms, "scheme": s, "id": i} for perms, (s, i) in n.acl]}
            if args.dump_data:
                node["data"] = _jsonable(n.data)
            nodes.append(node)
        print(_dumps({
            "zxid": None if zxid is None else _hex(zxid),
            "sessions": [{"id": _hex(s), "timeout": t, "ephemerals": ephemerals.get(s, 0)}
                         for s, t in snap.sessions],
            "digest": None if snap.digest is None else {
                "zxid": _hex(snap.digest[0]), "version": snap.digest[1],
                "digest": snap.digest[2]},
            "nodes": nodes}, indent=1))
        return 0
    print(f"ZNode Details (count={len(snap.nodes)}):")
    for n in snap.nodes:
        c, m, ct, mt, ver, cver, aver, owner, p = n.stat
        print("----")
        print(n.path or "/")
        print(f"  cZxid = {_hex(c)}\n  ctime = {_when(ct)}\n  mZxid = {_hex(m)}\n"
              f"  mtime = {_when(mt)}\n  pZxid = {_hex(p)}\n  cversion = {cver}\n"
              f"  dataVersion = {ver}\n  aclVersion = {aver}\n"
              f"  ephemeralOwner = {_hex(owner)}\n  dataLength = {len(n.data or b'')}")
        if args.dump_data:
            print(f"  data = {base64.b64encode(n.data).decode() if n.data else ''}")
    print("----")
    print("Session Details (sid, timeout, ephemeralCount):")
    for s, t in snap.sessions:
        print(f"{_hex(s)}, {t}, {ephemerals.get(s, 0)}")
    print("----")
    if zxid is not None:
        print(f"Last zxid: {_hex(zxid)}")
    if snap.digest is not None:
        print(f"Digest: zxid {_hex(snap.digest[0])}, version {snap.digest[1]}, "
              f"value {snap.digest[2]}")
    return 0
