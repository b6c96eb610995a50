"""zkfast's exception taxonomy and ZooKeeper error-code helpers.

Outside bytes that do not parse raise ``ProtocolError`` (the compiled or pure core's class, as
chosen by ``zkfast._impl``; always a ``ValueError``). Expected outcomes of a request (NoNode,
BadVersion, SessionExpired ...) are not exceptions: they are ``Err`` codes in the reply.

Exceptions for the server's own inputs:

* ``ConfigError``: zoo.cfg, dynamic config or a -D property is invalid; the server does not start.
* ``StorageError``: the dataDir cannot be read or written, or holds a file that does not parse
  (bad magic, checksum mismatch, truncated record that is not a clean tail).
* ``CorruptDataError``: a ``StorageError`` for data that was read and found inconsistent.

``err_name(code)`` gives the ``KeeperException.Code`` constant name and ``err_message(code)``
the text Java clients print after ``KeeperErrorCode = ``.
"""

from __future__ import annotations

from ._impl import ProtocolError
from .wire.constants import Err

__all__ = [
    "ProtocolError",
    "ZkfastError",
    "ConfigError",
    "StorageError",
    "CorruptDataError",
    "err_name",
    "err_message",
    "keeper_error_text",
]


class ZkfastError(Exception):
    """Base of zkfast's own (non-protocol) errors."""


class ConfigError(ZkfastError):
    """The configuration is invalid; ``key`` names the offending setting when there is one."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key


class StorageError(ZkfastError):
    """The dataDir cannot be used: IO failure or a file that does not parse."""

    def __init__(self, message: str, path: str | None = None, offset: int | None = None) -> None:
        where = path or ""
        if offset is not None:
            where = f"{where}@{offset}"
        super().__init__(f"{where}: {message}" if where else message)
        self.path = path
        self.offset = offset


class CorruptDataError(StorageError):
    """A file in the dataDir was read and is inconsistent (checksum, magic, ordering)."""


# KeeperException.getCodeMessage (3.8); codes it has no case for print as "Unknown error <NAME>".
_MESSAGES: dict[int, str] = {
    Err.OK: "ok",
    Err.SYSTEMERROR: "SystemError",
    Err.RUNTIMEINCONSISTENCY: "RuntimeInconsistency",
    Err.DATAINCONSISTENCY: "DataInconsistency",
    Err.CONNECTIONLOSS: "ConnectionLoss",
    Err.MARSHALLINGERROR: "MarshallingError",
    Err.NEWCONFIGNOQUORUM: "NewConfigNoQuorum",
    Err.RECONFIGINPROGRESS: "ReconfigInProgress",
    Err.UNIMPLEMENTED: "Unimplemented",
    Err.OPERATIONTIMEOUT: "OperationTimeout",
    Err.BADARGUMENTS: "BadArguments",
    Err.APIERROR: "APIError",
    Err.NONODE: "NoNode",
    Err.NOAUTH: "NoAuth",
    Err.BADVERSION: "BadVersion",
    Err.NOCHILDRENFOREPHEMERALS: "NoChildrenForEphemerals",
    Err.NODEEXISTS: "NodeExists",
    Err.INVALIDACL: "InvalidACL",
    Err.AUTHFAILED: "AuthFailed",
    Err.NOTEMPTY: "Directory not empty",
    Err.SESSIONEXPIRED: "Session expired",
    Err.INVALIDCALLBACK: "Invalid callback",
    Err.SESSIONMOVED: "Session moved",
    Err.NOTREADONLY: "Not a read-only call",
    Err.EPHEMERALONLOCALSESSION: "Ephemeral node on local session",
    Err.NOWATCHER: "No such watcher",
    Err.RECONFIGDISABLED: "Reconfig is disabled",
    Err.SESSIONCLOSEDREQUIRESASLAUTH: "Session closed because client failed to authenticate",
    Err.QUOTAEXCEEDED: "Quota has exceeded",
    Err.THROTTLEDOP: "Op throttled due to high load",
}


def err_name(code: int) -> str:
    """The ``KeeperException.Code`` name of ``code`` (``-101`` -> ``"NONODE"``).

    A code zkfast does not know gives ``"UNKNOWN(<code>)"``, so logs never raise.
    """
    try:
        return Err(code).name
    except ValueError:
        return f"UNKNOWN({code})"


def err_message(code: int) -> str:
    """The message Java's ``KeeperException`` prints for ``code`` (``-101`` -> ``"NoNode"``)."""
    text = _MESSAGES.get(code)
    if text is not None:
        return text
    if code in Err._value2member_map_:
        return f"Unknown error {Err(code).name}"
    return f"Unknown error {code}"


def keeper_error_text(code: int, path: str | None = None) -> str:
    """``KeeperErrorCode = <message>[ for <path>]``, as ``KeeperException.getMessage`` prints."""
    head = f"KeeperErrorCode = {err_message(code)}"
    return f"{head} for {path}" if path else head
