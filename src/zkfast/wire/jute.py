"""Jute record layouts, declared once as data (zookeeper.jute and the hand-written records).

A layout is a tuple of field specs ``(name, type_code, sub)``; ``_core.decode_record`` and
``_core.encode_record`` walk them. Decoded records are plain tuples in field order, nested
records are nested tuples, vectors are lists, and a null string, buffer or vector is ``None``.
The ``*_FIELDS`` index constants below name the positions the server reads most.
"""

from __future__ import annotations

from typing import Any

from .._impl import core

__all__ = [
    "Layout",
    "ID",
    "ACL",
    "STAT",
    "STAT_PERSISTED",
    "CLIENT_INFO",
    "CONNECT_REQUEST",
    "CONNECT_RESPONSE",
    "REQUEST_HEADER",
    "REPLY_HEADER",
    "WATCHER_EVENT",
    "AUTH_PACKET",
    "MULTI_HEADER",
    "REQUESTS",
    "RESPONSES",
    "TXN_HEADER",
    "TXNS",
    "TXN_DIGEST",
    "MULTI_TXN",
    "decode",
    "encode",
]

Layout = tuple[tuple[str, int, Any], ...]


def _i(name: str) -> tuple[str, int, None]:
    return (name, core.T_INT, None)


def _l(name: str) -> tuple[str, int, None]:
    return (name, core.T_LONG, None)


def _b(name: str) -> tuple[str, int, None]:
    return (name, core.T_BOOL, None)


def _s(name: str) -> tuple[str, int, None]:
    return (name, core.T_USTRING, None)


def _buf(name: str) -> tuple[str, int, None]:
    return (name, core.T_BUFFER, None)


def _rec(name: str, layout: Layout) -> tuple[str, int, Layout]:
    return (name, core.T_RECORD, layout)


def _vec(name: str, elem: tuple[str, int, Any]) -> tuple[str, int, Any]:
    return (name, core.T_VECTOR, elem)


# ---------------------------------------------------------------- shared data records
ID: Layout = (_s("scheme"), _s("id"))
ACL: Layout = (_i("perms"), _rec("id", ID))
#: The core's own Stat layout object: a layout nesting this very object lets the compiled writer
#: take its Stat fast path (czxid, mzxid, ctime, mtime, version, cversion, aversion,
#: ephemeralOwner, dataLength, numChildren, pzxid).
STAT: Layout = core.STAT_LAYOUT
STAT_PERSISTED: Layout = (
    _l("czxid"), _l("mzxid"), _l("ctime"), _l("mtime"), _i("version"), _i("cversion"),
    _i("aversion"), _l("ephemeralOwner"), _l("pzxid"),
)
CLIENT_INFO: Layout = (_s("authScheme"), _s("user"))

_ACL_VEC = _vec("acl", ("acl", core.T_RECORD, ACL))
_STR_VEC = ("path", core.T_USTRING, None)

# ---------------------------------------------------------------- session handshake
#: Without the optional trailing readOnly byte; the codec reads that byte by hand.
CONNECT_REQUEST: Layout = (
    _i("protocolVersion"), _l("lastZxidSeen"), _i("timeOut"), _l("sessionId"), _buf("passwd"),
)
CONNECT_RESPONSE: Layout = (_i("protocolVersion"), _i("timeOut"), _l("sessionId"), _buf("passwd"))

# ---------------------------------------------------------------- headers
REQUEST_HEADER: Layout = (_i("xid"), _i("type"))
REPLY_HEADER: Layout = (_i("xid"), _l("zxid"), _i("err"))
WATCHER_EVENT: Layout = (_i("type"), _i("state"), _s("path"))
AUTH_PACKET: Layout = (_i("type"), _s("scheme"), _buf("auth"))
MULTI_HEADER: Layout = (_i("type"), _b("done"), _i("err"))

# ---------------------------------------------------------------- requests by opcode
CREATE_REQUEST: Layout = (_s("path"), _buf("data"), _ACL_VEC, _i("flags"))
CREATE_TTL_REQUEST: Layout = (_s("path"), _buf("data"), _ACL_VEC, _i("flags"), _l("ttl"))
DELETE_REQUEST: Layout = (_s("path"), _i("version"))
PATH_WATCH_REQUEST: Layout = (_s("path"), _b("watch"))
SET_DATA_REQUEST: Layout = (_s("path"), _buf("data"), _i("version"))
PATH_REQUEST: Layout = (_s("path"),)
SET_ACL_REQUEST: Layout = (_s("path"), _ACL_VEC, _i("version"))
CHECK_VERSION_REQUEST: Layout = (_s("path"), _i("version"))
RECONFIG_REQUEST: Layout = (
    _s("joiningServers"), _s("leavingServers"), _s("newMembers"), _l("curConfigId"),
)
PATH_TYPE_REQUEST: Layout = (_s("path"), _i("type"))
SET_WATCHES: Layout = (
    _l("relativeZxid"), _vec("dataWatches", _STR_VEC), _vec("existWatches", _STR_VEC),
    _vec("childWatches", _STR_VEC),
)
SET_WATCHES2: Layout = SET_WATCHES + (
    _vec("persistentWatches", _STR_VEC), _vec("persistentRecursiveWatches", _STR_VEC),
)
SASL_TOKEN: Layout = (_buf("token"),)
ADD_WATCH_REQUEST: Layout = (_s("path"), _i("mode"))
EMPTY: Layout = ()

#: Request body layouts by opcode; multi/multiRead are walked by the codec (MULTI_HEADER + op).
REQUESTS: dict[int, Layout] = {
    1: CREATE_REQUEST,
    2: DELETE_REQUEST,
    3: PATH_WATCH_REQUEST,
    4: PATH_WATCH_REQUEST,
    5: SET_DATA_REQUEST,
    6: PATH_REQUEST,
    7: SET_ACL_REQUEST,
    8: PATH_WATCH_REQUEST,
    9: PATH_REQUEST,
    11: EMPTY,
    12: PATH_WATCH_REQUEST,
    13: CHECK_VERSION_REQUEST,
    15: CREATE_REQUEST,
    16: RECONFIG_REQUEST,
    17: PATH_TYPE_REQUEST,
    18: PATH_TYPE_REQUEST,
    19: CREATE_REQUEST,
    21: CREATE_TTL_REQUEST,
    101: SET_WATCHES,
    102: SASL_TOKEN,
    103: PATH_REQUEST,  # GetEphemeralsRequest{prefixPath}
    104: PATH_REQUEST,
    105: SET_WATCHES2,
    106: ADD_WATCH_REQUEST,
    107: EMPTY,
    -11: EMPTY,
}

# ---------------------------------------------------------------- responses by opcode
CREATE_RESPONSE: Layout = (_s("path"),)
CREATE2_RESPONSE: Layout = (_s("path"), _rec("stat", STAT))
STAT_RESPONSE: Layout = (_rec("stat", STAT),)
GET_DATA_RESPONSE: Layout = (_buf("data"), _rec("stat", STAT))
GET_ACL_RESPONSE: Layout = (_ACL_VEC, _rec("stat", STAT))
GET_CHILDREN_RESPONSE: Layout = (_vec("children", _STR_VEC),)
GET_CHILDREN2_RESPONSE: Layout = (_vec("children", _STR_VEC), _rec("stat", STAT))
SYNC_RESPONSE: Layout = (_s("path"),)
GET_EPHEMERALS_RESPONSE: Layout = (_vec("ephemerals", _STR_VEC),)
GET_ALL_CHILDREN_NUMBER_RESPONSE: Layout = (_i("totalNumber"),)
ERROR_RESPONSE: Layout = (_i("err"),)
WHO_AM_I_RESPONSE: Layout = (_vec("clientInfo", ("clientInfo", core.T_RECORD, CLIENT_INFO)),)

#: Response body layouts by opcode (absent: the reply has no body).
RESPONSES: dict[int, Layout] = {
    1: CREATE_RESPONSE,
    3: STAT_RESPONSE,
    4: GET_DATA_RESPONSE,
    5: STAT_RESPONSE,
    6: GET_ACL_RESPONSE,
    7: STAT_RESPONSE,
    8: GET_CHILDREN_RESPONSE,
    9: SYNC_RESPONSE,
    12: GET_CHILDREN2_RESPONSE,
    15: CREATE2_RESPONSE,
    16: GET_DATA_RESPONSE,
    19: CREATE2_RESPONSE,
    21: CREATE2_RESPONSE,
    102: SASL_TOKEN,
    103: GET_EPHEMERALS_RESPONSE,
    104: GET_ALL_CHILDREN_NUMBER_RESPONSE,
    106: ERROR_RESPONSE,
    107: WHO_AM_I_RESPONSE,
}

# ---------------------------------------------------------------- txns (module org.apache.zookeeper.txn)
TXN_HEADER: Layout = (_l("clientId"), _i("cxid"), _l("zxid"), _l("time"), _i("type"))
CREATE_TXN: Layout = (_s("path"), _buf("data"), _ACL_VEC, _b("ephemeral"), _i("parentCVersion"))
CREATE_TXN_V0: Layout = (_s("path"), _buf("data"), _ACL_VEC, _b("ephemeral"))
CREATE_CONTAINER_TXN: Layout = (_s("path"), _buf("data"), _ACL_VEC, _i("parentCVersion"))
CREATE_TTL_TXN: Layout = (_s("path"), _buf("data"), _ACL_VEC, _i("parentCVersion"), _l("ttl"))
CREATE_SESSION_TXN: Layout = (_i("timeOut"),)
CLOSE_SESSION_TXN: Layout = (_vec("paths2Delete", _STR_VEC),)
DELETE_TXN: Layout = (_s("path"),)
SET_DATA_TXN: Layout = (_s("path"), _buf("data"), _i("version"))
SET_ACL_TXN: Layout = (_s("path"), _ACL_VEC, _i("version"))
CHECK_VERSION_TXN: Layout = (_s("path"), _i("version"))
ERROR_TXN: Layout = (_i("err"),)
MULTI_TXN: Layout = (_vec("txns", ("txn", core.T_RECORD, (_i("type"), _buf("data")))),)
TXN_DIGEST: Layout = (_i("version"), _l("treeDigest"))

#: Txn record layouts by txn header type.
TXNS: dict[int, Layout] = {
    -10: CREATE_SESSION_TXN,
    -11: CLOSE_SESSION_TXN,
    1: CREATE_TXN,
    15: CREATE_TXN,
    19: CREATE_CONTAINER_TXN,
    21: CREATE_TTL_TXN,
    2: DELETE_TXN,
    20: DELETE_TXN,
    5: SET_DATA_TXN,
    16: SET_DATA_TXN,
    7: SET_ACL_TXN,
    13: CHECK_VERSION_TXN,
    -1: ERROR_TXN,
    14: MULTI_TXN,
}

decode = core.decode_record


def encode(layout: Layout, values: Any) -> bytes:
    """Encode one record to new bytes."""
    out = bytearray()
    core.encode_record(layout, values, out)
    return bytes(out)
