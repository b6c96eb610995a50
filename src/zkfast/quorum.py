"""QuorumVerifier: which sets of servers form a quorum, and the config text peers exchange.

Two verifiers, as in Apache ZooKeeper 3.8 (``flexible/QuorumMaj``, ``flexible/QuorumHierarchical``):

* majority: more than half of the voting members (participants). Observers never count.
* hierarchical (any ``group.N``/``weight.N`` key): each participant sits in exactly one group and
  has a weight (default 1, may be 0). A group counts when the weight acked in it is more than
  half of its total weight (integer division); a quorum is more than half of the groups whose
  total weight is non-zero. A weight-0 member never wins an election
  (``FastLeaderElection.totalOrderPredicate``).

The counting loop is ``_impl.core.count_quorum`` (compiled, with a pure twin). Like Apache's
``SyncedLearnerTracker``, sids that are not voting members are ignored when counting.

``to_config_text()`` is byte-identical with Apache's ``QuorumVerifier.toString()``: the server
lines in ``java.util.HashMap`` iteration order of the sids, then (hierarchical) the group and
weight lines, then ``version=<hex>`` with no trailing newline. Peers send this text in election
notifications and NEWLEADER, and Apache parses it back, so the order is part of the protocol
(it decides what ``Vote``/config comparisons and the dynamic file look like).

This module does no IO.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ._impl import core as _core

__all__ = [
    "QuorumServer",
    "QuorumVerifier",
    "QuorumConfigError",
    "parse_server_spec",
    "verifier_from_properties",
    "parse_config_text",
    "java_hashmap_order",
    "java_properties_order",
    "joint_quorum",
]

PARTICIPANT = "participant"
OBSERVER = "observer"


class QuorumConfigError(ValueError):
    """A server line, group or weight is invalid; the message starts with the key."""


# --------------------------------------------------------------------------- Java HashMap order


def _java_long_hash(v: int) -> int:
    """``Long.hashCode`` then ``HashMap.hash`` (h ^ h >>> 16), as an unsigned 32-bit value."""
    u = v & 0xFFFFFFFFFFFFFFFF
    h = (u ^ (u >> 32)) & 0xFFFFFFFF
    return (h ^ (h >> 16)) & 0xFFFFFFFF


def java_hashmap_order(keys: Iterable[int]) -> list[int]:
    """The iteration order of a ``java.util.HashMap<Long, ...>`` after putting ``keys`` in
    this order (a repeated key keeps its first place).

    The table starts at 16 buckets and doubles whenever the size passes 3/4 of it; iteration
    walks buckets in index order, and a bucket keeps insertion order (a resize splits it
    without reordering).
    """
    ks = list(dict.fromkeys(keys))
    cap = 16
    while len(ks) > cap * 3 // 4:
        cap *= 2
    pos = {k: i for i, k in enumerate(ks)}
    return sorted(ks, key=lambda k: (_java_long_hash(k) & (cap - 1), pos[k]))


def _java_string_hash(s: str) -> int:
    h = 0
    for unit in s.encode("utf-16-be").hex(" ", 2).split():
        h = (31 * h + int(unit, 16)) & 0xFFFFFFFF
    return h


def java_properties_order(keys: Iterable[str]) -> list[str]:
    """The iteration order of a ``java.util.Properties`` loaded with ``keys`` in this order.

    Since Java 9 a Properties object keeps its entries in a ``ConcurrentHashMap`` created with
    capacity 8 (a 16-bin table, resized at 3/4 full). Apache's QuorumMaj/QuorumHierarchical
    fill their HashMaps in this order, which decides the order of sids that share a bucket.
    """
    n = 16
    bins: list[list[tuple[int, str]]] = [[] for _ in range(n)]
    count = 0
    seen: set[str] = set()
    for k in keys:
        if k in seen:
            continue  # put of an existing key replaces the value in place
        seen.add(k)
        h = _java_string_hash(k)
        h = (h ^ (h >> 16)) & 0x7FFFFFFF
        bins[h & (n - 1)].append((h, k))
        count += 1
        if count >= n - (n >> 2):
            bins = _chm_transfer(bins, n)
            n *= 2
    return [k for b in bins for _, k in b]


def _chm_transfer(bins: list[list[tuple[int, str]]], n: int) -> list[list[tuple[int, str]]]:
    """``ConcurrentHashMap.transfer`` of list bins: the longest tail whose nodes all go the
    same way moves as is; the nodes before it are prepended one by one (reversing them)."""
    out: list[list[tuple[int, str]]] = [[] for _ in range(2 * n)]
    for i, b in enumerate(bins):
        if not b:
            continue
        run_bit = b[0][0] & n
        last_run = 0
        for j in range(1, len(b)):
            bit = b[j][0] & n
            if bit != run_bit:
                run_bit, last_run = bit, j
        lo: list[tuple[int, str]] = list(b[last_run:]) if run_bit == 0 else []
        hi: list[tuple[int, str]] = list(b[last_run:]) if run_bit != 0 else []
        for node in b[:last_run]:
            if node[0] & n == 0:
                lo.insert(0, node)
            else:
                hi.insert(0, node)
        out[i], out[i + n] = lo, hi
    return out


# --------------------------------------------------------------------------- server lines


@dataclass(frozen=True, slots=True)
class QuorumServer:
    """One ``server.N`` entry (QuorumPeer.QuorumServer)."""

    sid: int
    #: (host, quorumPort, electionPort) per address; more than one only with multiAddress.
    addrs: tuple[tuple[str, int, int], ...]
    learner_type: str = PARTICIPANT
    #: The client address given on the server line (after ';'), host "0.0.0.0" when only a
    #: port was given; None when the line had none.
    client_addr: tuple[str, int] | None = None

    @property
    def host(self) -> str:
        return self.addrs[0][0]

    @property
    def quorum_port(self) -> int:
        return self.addrs[0][1]

    @property
    def election_port(self) -> int:
        return self.addrs[0][2]

    @property
    def is_participant(self) -> bool:
        return self.learner_type == PARTICIPANT

    def election_addr_text(self) -> str:
        """The address an election handshake carries (``NetUtils.formatInetAddr`` per
        address, ``|``-joined for protocol V2): ``host:port``, ``[v6]:port``."""
        return "|".join(f"{_delimited(h)}:{e}" for h, _, e in self.addrs)

    def to_config_value(self) -> str:
        """``QuorumServer.toString()``: the value of this server's line in config text."""
        # Apache sorts the quorum and the election addresses by host string separately.
        qs = sorted(self.addrs, key=lambda a: a[0])
        es = sorted(self.addrs, key=lambda a: a[0])
        text = "|".join(f"{_delimited(q[0])}:{q[1]}:{e[2]}" for q, e in zip(qs, es, strict=True))
        text += ":observer" if self.learner_type == OBSERVER else ":participant"
        if self.client_addr is not None:
            text += f";{_delimited(self.client_addr[0])}:{self.client_addr[1]}"
        return text


def _java_host_string(host: str) -> str:
    """``InetSocketAddress.getHostString`` of an address built from ``host``: a name stays as
    written; an IPv6 literal becomes Java's full form (``0:0:0:0:0:0:0:1``)."""
    if ":" not in host:
        return host
    addr, _, zone = host.partition("%")
    try:
        groups = ipaddress.IPv6Address(addr).exploded.split(":")
    except ValueError:
        return host
    text = ":".join(g.lstrip("0") or "0" for g in groups)
    return f"{text}%{zone}" if zone else text


def _delimited(host: str) -> str:
    h = _java_host_string(host)
    return f"[{h}]" if ":" in h else h


def _host_and_port(key: str, text: str) -> list[str]:
    """ConfigUtils.getHostAndPort: split on ':' but keep a bracketed IPv6 host whole."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise QuorumConfigError(f"{key}: {text} starts with '[' but has no matching ']'")
        host = text[1:end]
        rest = text[end + 1:]
        if rest and not rest.startswith(":"):
            raise QuorumConfigError(f"{key}: {text} does not have the form [host]:port")
        return [host] + (rest[1:].split(":") if rest else [])
    return text.split(":")


def _port_of(key: str, text: str) -> int:
    t = text.strip()
    if not t.isdigit() or not 0 <= int(t) <= 65535:
        raise QuorumConfigError(f"{key}: port {text!r} is not a number in 0..65535")
    return int(t)


def parse_server_spec(sid: int, spec: str, *, multi_address: bool = False) -> QuorumServer:
    """Parse ``host:quorumPort:electionPort[:type][;[clientHost:]clientPort]``.

    Raises:
        QuorumConfigError: the value does not have that form (message starts with server.N).
    """
    key = f"server.{sid}"
    parts = spec.split(";")
    if len(parts) > 2:
        raise QuorumConfigError(f"{key}: {spec} has more than one ';' (3.8 accepts "
                                f"server_config;client_config only)")
    client_addr: tuple[str, int] | None = None
    if len(parts) == 2 and parts[1].strip():
        cp = _host_and_port(key, parts[1].strip())
        if len(cp) > 2:
            raise QuorumConfigError(f"{key}: client address {parts[1]!r} is not port or host:port")
        client_addr = (cp[0] if len(cp) == 2 else "0.0.0.0", _port_of(key, cp[-1]))
    addr_texts = parts[0].split("|")
    if len(addr_texts) > 1 and not multi_address:
        raise QuorumConfigError(f"{key}: multiple addresses were given but "
                                f"multiAddress.enabled is false")
    addrs: list[tuple[str, int, int]] = []
    learner_type: str | None = None
    for a in addr_texts:
        sp = _host_and_port(key, a.strip())
        if not 3 <= len(sp) <= 4:
            raise QuorumConfigError(f"{key}: {spec!r} does not have the form "
                                    f"host:port:port[:type][;[host:]port]")
        qport, eport = _port_of(key, sp[1]), _port_of(key, sp[2])
        if qport == eport:
            raise QuorumConfigError(f"{key}: quorum and election port must be different "
                                    f"(both {qport})")
        if len(sp) == 4:
            t = sp[3].strip().lower()
            if t not in (PARTICIPANT, OBSERVER):
                raise QuorumConfigError(f"{key}: unrecognised peer type {sp[3]!r}")
            if learner_type is not None and t != learner_type:
                raise QuorumConfigError(f"{key}: multiple addresses should have the same role")
            learner_type = t
        addrs.append((sp[0].strip(), qport, eport))
    return QuorumServer(sid, tuple(addrs), learner_type or PARTICIPANT, client_addr)


# --------------------------------------------------------------------------- the verifier


class QuorumVerifier:
    """A frozen quorum system: members, weights, groups and a version.

    Construct with ``verifier_from_properties`` or ``parse_config_text``; ``hierarchical`` is
    true when group/weight keys were present.
    """

    __slots__ = ("servers", "version", "hierarchical", "_order", "_groups", "_weights",
                 "_member_group", "_member_weight", "_group_half", "_groups_min", "_voters")

    def __init__(self, servers: Mapping[int, QuorumServer], *, version: int = 0,
                 groups: Mapping[int, Iterable[int]] | None = None,
                 weights: Mapping[int, int] | None = None) -> None:
        """Build a verifier.

        Args:
            servers: sid -> QuorumServer.
            version: the config version (a zxid).
            groups: gid -> sids (hierarchical). None for a majority verifier.
            weights: sid -> weight (hierarchical; participants default to 1).

        Raises:
            QuorumConfigError: a participant is in no group, a sid is in two groups, a grouped
                sid has no weight (Apache fails there with a NullPointerException).
        """
        self.servers: dict[int, QuorumServer] = dict(servers)
        self.version = version
        self.hierarchical = groups is not None or weights is not None
        self._order = java_hashmap_order(self.servers)
        self._voters = frozenset(s for s, q in self.servers.items() if q.is_participant)
        server_group: dict[int, int] = {}
        for gid, sids in (groups or {}).items():
            for sid in sids:
                if sid in server_group:
                    raise QuorumConfigError(f"group.{gid}: server {sid} is in multiple groups")
                server_group[sid] = gid
        self._groups = {gid: tuple(sids) for gid, sids in (groups or {}).items()}
        weight = dict(weights or {})
        if self.hierarchical:
            for sid in self._order:
                if sid not in self._voters:
                    continue
                if sid not in server_group:
                    raise QuorumConfigError(f"group: server {sid} is not in a group")
                weight.setdefault(sid, 1)
            for sid, gid in server_group.items():
                if sid not in weight:
                    raise QuorumConfigError(f"group.{gid}: server {sid} has no weight "
                                            f"(it is not a participant and no weight.{sid})")
            for sid, w in weight.items():
                if w < 0:
                    raise QuorumConfigError(f"weight.{sid}: must not be negative, found {w}")
            group_weight: dict[int, int] = {}
            for sid, gid in server_group.items():
                group_weight[gid] = group_weight.get(gid, 0) + weight[sid]
            # Apache counts every group line, then drops the groups of total weight zero.
            num_groups = len(self._groups) - sum(1 for w in group_weight.values() if w == 0)
            self._member_group = {s: g for s, g in server_group.items() if s in self._voters}
            self._member_weight = {s: weight[s] for s in self._member_group}
            self._group_half = {g: w // 2 for g, w in group_weight.items()}
            self._groups_min = num_groups // 2 + 1
        else:
            self._member_group = {s: 0 for s in self._voters}
            self._member_weight = {s: 1 for s in self._voters}
            self._group_half = {0: len(self._voters) // 2}
            self._groups_min = 1
        self._weights = weight

    # ---- membership

    @property
    def voting_members(self) -> frozenset[int]:
        return self._voters

    @property
    def observing_members(self) -> frozenset[int]:
        return frozenset(s for s, q in self.servers.items() if not q.is_participant)

    def weight(self, sid: int) -> int:
        """The voting weight of ``sid`` (majority: always 1, as QuorumMaj.getWeight)."""
        if not self.hierarchical:
            return 1
        return self._weights.get(sid, 0)

    def quorum_tables(self) -> tuple[dict[int, int], dict[int, int], dict[int, int], int]:
        """``count_quorum``'s tables: voter -> group, voter -> weight, group -> half its
        weight, groups needed (what ``_core.AckTracker`` is built from). Do not modify."""
        return self._member_group, self._member_weight, self._group_half, self._groups_min

    def contains_quorum(self, sids: Iterable[int]) -> bool:
        """Do the voting members among ``sids`` form a quorum?"""
        return bool(_core.count_quorum(sids, self._member_group, self._member_weight,
                                       self._group_half, self._groups_min))

    # ---- text

    def to_config_text(self) -> str:
        """Exactly ``QuorumVerifier.toString()`` of Apache 3.8."""
        out = [f"server.{sid}={self.servers[sid].to_config_value()}\n" for sid in self._order]
        if self.hierarchical:
            by_gid: dict[int, list[int]] = {}
            server_group = {s: g for g, ss in self._groups.items() for s in ss}
            for sid in java_hashmap_order(server_group):
                by_gid.setdefault(server_group[sid], []).append(sid)
            for gid in java_hashmap_order(by_gid):
                out.append(f"group.{gid}={':'.join(str(s) for s in by_gid[gid])}\n")
            for sid in java_hashmap_order(self._weights):
                out.append(f"weight.{sid}={self._weights[sid]}\n")
        out.append(f"version={self.version & 0xFFFFFFFFFFFFFFFF:x}")
        return "".join(out)

    def same_members(self, other: QuorumVerifier) -> bool:
        """Apache's ``QuorumMaj.equals``: same version, or the same servers (and groups)."""
        if self.version == other.version:
            return True
        return (self.servers == other.servers and self._weights == other._weights
                and self._groups == other._groups)

    def __repr__(self) -> str:
        kind = "hierarchical" if self.hierarchical else "majority"
        return f"QuorumVerifier({kind}, voters={sorted(self._voters)}, version={self.version:#x})"


def joint_quorum(sids: Iterable[int], verifiers: Iterable[QuorumVerifier]) -> bool:
    """A quorum of every verifier at once (the current and, during reconfig, the last-seen
    config), as ``SyncedLearnerTracker.hasAllQuorums``."""
    s = list(sids)
    vs = list(verifiers)
    return bool(vs) and all(v.contains_quorum(s) for v in vs)


def _long_key(key: str, prefix: str) -> int:
    text = key[len(prefix):]
    try:
        v = int(text, 10)
    except ValueError:
        raise QuorumConfigError(f"{key}: {text!r} is not a number") from None
    if not -(1 << 63) <= v < (1 << 63) or not text.lstrip("+-").isdigit():
        raise QuorumConfigError(f"{key}: {text!r} is not a number")
    return v


def verifier_from_properties(props: Mapping[str, str], *, multi_address: bool = False,
                             key_order: Iterable[str] | None = None) -> QuorumVerifier:
    """QuorumPeerConfig.parseDynamicConfig: server.N, group.N, weight.N and version keys.

    Args:
        props: the keys, in the order they were read.
        multi_address: multiAddress.enabled.
        key_order: every key of the Java Properties object the keys came from, in file order
            (zoo.cfg holds other keys too, and they shape the Properties' hash table); by
            default the keys of ``props``. Only the order of sids sharing a HashMap bucket
            depends on it.

    Raises:
        QuorumConfigError: a bad line (the message starts with its key).
    """
    servers: dict[int, QuorumServer] = {}
    groups: dict[int, list[int]] | None = None
    weights: dict[int, int] | None = None
    version = 0
    order = java_properties_order(list(key_order if key_order is not None else props)
                                  + list(props))
    for key in order:
        if key not in props:
            continue
        value = props[key]
        if key.startswith("server."):
            sid = _long_key(key, "server.")
            if sid in servers:
                raise QuorumConfigError(f"{key}: server id {sid} is given twice")
            servers[sid] = parse_server_spec(sid, value.strip(), multi_address=multi_address)
        elif key.startswith("group"):
            gid = _long_key(key, key[: key.index(".") + 1] if "." in key else key)
            groups = {} if groups is None else groups
            members = []
            for part in value.split(":"):
                p = part.strip()
                if not p.lstrip("+-").isdigit():
                    raise QuorumConfigError(f"{key}: {part!r} is not a server id")
                members.append(int(p))
            groups[gid] = members
            weights = {} if weights is None else weights
        elif key.startswith("weight"):
            sid = _long_key(key, key[: key.index(".") + 1] if "." in key else key)
            w = value.strip()
            if not w.lstrip("+-").isdigit():
                raise QuorumConfigError(f"{key}: {value!r} is not a number")
            weights = {} if weights is None else weights
            weights[sid] = int(w)
            groups = {} if groups is None else groups
        elif key == "version":
            try:
                version = int(value.strip(), 16)
            except ValueError:
                raise QuorumConfigError(f"version: {value!r} is not hex") from None
            if version >> 63:
                version -= 1 << 64
        else:
            raise QuorumConfigError(f"{key}: unrecognised parameter in a dynamic config")
    return QuorumVerifier(servers, version=version, groups=groups, weights=weights)


def parse_config_text(text: str, *, multi_address: bool = True) -> QuorumVerifier:
    """Parse the config text a peer sent (notification or NEWLEADER) into a verifier.

    The text is Java Properties; in practice ``key=value`` lines.

    Raises:
        QuorumConfigError: the text does not parse.
    """
    props: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        if "=" not in line:
            raise QuorumConfigError(f"config text: line {line!r} has no '='")
        k, v = line.split("=", 1)
        props[k.strip()] = v.strip()
    return verifier_from_properties(props, multi_address=multi_address)
