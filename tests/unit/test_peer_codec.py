"""Election and quorum-port wire formats (zk-formats §3.1, §3.2, §4.1–4.3)."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from zkfast._impl import ProtocolError
from zkfast.core.datatree import DataTree
from zkfast.storage.snapshot import decode_sync_snapshot, encode_sync_snapshot
from zkfast.wire.peer_codec import (
    PROTOCOL_V1,
    PROTOCOL_V2,
    ElectionHandshake,
    LearnerInfo,
    Notification,
    PacketType,
    QuorumPacket,
    QuorumStreamSplitter,
    ServerState,
    decode_config_body,
    decode_handshake,
    decode_inform_and_activate,
    decode_int_body,
    decode_learner_info,
    decode_long_body,
    decode_notification,
    decode_quorum_packet,
    decode_request_body,
    decode_revalidate_reply,
    decode_revalidate_request,
    decode_session_timeouts,
    encode_config_body,
    encode_handshake,
    encode_inform_and_activate,
    encode_int_body,
    encode_learner_info,
    encode_long_body,
    encode_notification,
    encode_quorum_packet,
    encode_request_body,
    encode_revalidate_reply,
    encode_revalidate_request,
    encode_session_timeouts,
    split_quorum_packets,
)
from zkfast.wire.txn_codec import decode_txn, encode_txn

CONFIG = "server.1=10.0.0.1:2888:3888:participant\nversion=0"


def test_notification_worked_example() -> None:
    # zk-formats §3.2: 93 bytes after the 00 00 00 5d length prefix.
    n = Notification(ServerState.LOOKING, 1, 0x100000005, 2, 1, config=CONFIG)
    b = encode_notification(n)
    assert len(b) == 0x5D
    assert b[:44].hex() == ("00000000" "0000000000000001" "0000000100000005" "0000000000000002"
                            "0000000000000001" "00000002" "00000031")
    assert b[44:] == CONFIG.encode()
    assert decode_notification(b) == n


def test_legacy_lengths() -> None:
    head = struct.pack(">iqqq", 1, 3, 0x500000007, 9)
    n28 = decode_notification(head)
    assert (n28.state, n28.leader, n28.zxid, n28.election_epoch, n28.peer_epoch, n28.version,
            n28.config) == (1, 3, 0x500000007, 9, 5, 0, None)
    n40 = decode_notification(head + struct.pack(">qi", 4, 77))  # no version read at 40 bytes
    assert (n40.peer_epoch, n40.version, n40.config) == (4, 0, None)
    # exactly 40 bytes: the version is not read even when present.
    assert decode_notification(head + struct.pack(">qi", 4, 2)).config is None
    n44 = decode_notification(head + struct.pack(">qi", 4, 1) + b"\0\0\0\0")  # version 1: no cfg
    assert (n44.version, n44.config) == (1, None)


@pytest.mark.parametrize("payload,field", [
    (b"\0" * 27, "notification"),
    (struct.pack(">iqqq", 4, 1, 1, 1), "notification.state"),
    (struct.pack(">iqqq", 0, 1, 1, 1) + b"\0\0\0", "notification.peerEpoch"),
    (struct.pack(">iqqqq", 0, 1, 1, 1, 1) + b"\0\0", "notification.version"),
    (struct.pack(">iqqqqi", 0, 1, 1, 1, 1, 2) + b"\0\0", "notification.configLength"),
    (struct.pack(">iqqqqii", 0, 1, 1, 1, 1, 2, -1), "notification.configLength"),
    (struct.pack(">iqqqqii", 0, 1, 1, 1, 1, 2, 5) + b"abc", "notification.configLength"),
])
def test_malformed_notifications(payload: bytes, field: str) -> None:
    with pytest.raises(ProtocolError) as e:
        decode_notification(payload)
    assert e.value.field == field


def test_handshake_worked_example() -> None:
    h = ElectionHandshake(2, PROTOCOL_V1, "10.0.0.2:3888")
    b = encode_handshake(h)
    assert b.hex() == ("ffffffffffff0000" "0000000000000002" "0000000d"
                       + b"10.0.0.2:3888".hex())
    assert decode_handshake(b) == (h, len(b))
    for cut in range(len(b)):
        assert decode_handshake(b[:cut]) is None
    v2 = ElectionHandshake(5, PROTOCOL_V2, "a:1|b:2")
    assert decode_handshake(encode_handshake(v2) + b"xx") == (v2, len(encode_handshake(v2)))


def test_pre_35_handshake_is_only_a_sid() -> None:
    assert decode_handshake(struct.pack(">q", 3) + b"rest") == (
        ElectionHandshake(3, None, ""), 8)
    assert encode_handshake(ElectionHandshake(3, None)) == struct.pack(">q", 3)


@pytest.mark.parametrize("raw,field", [
    (struct.pack(">qqi", -7, 1, 4), "handshake.protocolVersion"),
    (struct.pack(">qqi", PROTOCOL_V1, 1, 0), "handshake.addrLen"),
    (struct.pack(">qqi", PROTOCOL_V1, 1, 2049), "handshake.addrLen"),
    (struct.pack(">qqi", PROTOCOL_V1, 1, -1), "handshake.addrLen"),
])
def test_bad_handshakes(raw: bytes, field: str) -> None:
    with pytest.raises(ProtocolError) as e:
        decode_handshake(raw)
    assert e.value.field == field


def test_quorum_packet_layout() -> None:
    # FOLLOWERINFO(acceptedEpoch 3) with LearnerInfo(sid 2, 0x10000, config 0).
    li = encode_learner_info(LearnerInfo(2))
    assert li.hex() == "0000000000000002" "00010000" "0000000000000000"
    p = QuorumPacket(PacketType.FOLLOWERINFO, 3 << 32, li)
    b = encode_quorum_packet(p)
    assert b.hex() == ("0000000b" "0000000300000000" "00000014" + li.hex() + "ffffffff")
    assert decode_quorum_packet(b) == p
    # null data and a non-empty authinfo vector.
    q = QuorumPacket(PacketType.REQUEST, -1, None, (("digest", "u:x"), ("ip", "1.2.3.4")))
    assert decode_quorum_packet(encode_quorum_packet(q)) == q
    assert encode_quorum_packet(QuorumPacket(5, 0)).hex().endswith("ffffffffffffffff")


def test_split_quorum_packets_handles_any_cut() -> None:
    ps = [QuorumPacket(PacketType.LEADERINFO, 4 << 32, encode_int_body(0x10000)),
          QuorumPacket(PacketType.PING, 9, None, (("a", "b"),)),
          QuorumPacket(PacketType.ACKEPOCH, 0x300000002, encode_int_body(-1))]
    stream = b"".join(encode_quorum_packet(p) for p in ps)
    for cut in range(len(stream) + 1):
        first, off = split_quorum_packets(stream[:cut], 0, 1 << 20)
        rest, off2 = split_quorum_packets(stream[:cut][off:] + stream[cut:], 0, 1 << 20)
        assert [decode_quorum_packet(x) for x in first + rest] == ps
        assert off2 == len(stream) - off


@pytest.mark.parametrize("raw,field", [
    (struct.pack(">iqi", 1, 0, -2), "QuorumPacket.data.length"),
    (struct.pack(">iqii", 1, 0, -1, -5), "QuorumPacket.authinfo.count"),
    (struct.pack(">iqi", 1, 0, 1 << 21), "QuorumPacket.data.length"),
])
def test_split_rejects_bad_lengths(raw: bytes, field: str) -> None:
    with pytest.raises(ProtocolError) as e:
        split_quorum_packets(raw + b"\0" * 16, 0, 1 << 20)
    assert e.value.field == field


def test_decode_quorum_packet_errors() -> None:
    good = encode_quorum_packet(QuorumPacket(3, 1))
    with pytest.raises(ProtocolError):
        decode_quorum_packet(good[:-1])
    with pytest.raises(ProtocolError):
        decode_quorum_packet(good + b"\0")


def test_learner_info_lengths() -> None:
    assert decode_learner_info(struct.pack(">q", 9)) == LearnerInfo(9, 0, 0)
    assert decode_learner_info(struct.pack(">qi", 9, 0x10000)) == LearnerInfo(9, 0x10000, 0)
    assert decode_learner_info(encode_learner_info(LearnerInfo(9, 0x10000, 0x100000000))) == \
        LearnerInfo(9, 0x10000, 0x100000000)
    for bad in (None, b"1234567"):
        with pytest.raises(ProtocolError):
            decode_learner_info(bad)


def test_int_bodies() -> None:
    assert encode_int_body(-1) == b"\xff\xff\xff\xff"
    assert encode_int_body(0x1_0000_0005) == b"\0\0\0\x05"  # Java's (int) cast
    assert decode_int_body(b"\0\0\0\x07extra", "x") == 7
    with pytest.raises(ProtocolError) as e:
        decode_int_body(b"\0", "ACKEPOCH.currentEpoch")
    assert e.value.field == "ACKEPOCH.currentEpoch"


def test_notifications_match_apaches_buildmsg() -> None:
    # Hex from FastLeaderElection.buildMsg of the Debian 3.8.0 jar (a Java one-off in the
    # org.apache.zookeeper.server.quorum package).
    apache = [
        ("00000000000000000000000100000001000000050000000000000002000000000000000100000002000000"
         "317365727665722e313d31302e302e302e313a323838383a333838383a7061727469636970616e740a7665"
         "7273696f6e3d30",
         Notification(ServerState.LOOKING, 1, 0x100000005, 2, 1, config=CONFIG)),
        ("000000028000000000000000ffffffffffffffff000000000000000780000000000000000000000200000000",
         Notification(ServerState.LEADING, -(1 << 63), -1, 7, -(1 << 63), config="")),
    ]
    for hexed, n in apache:
        assert encode_notification(n).hex() == hexed
        assert decode_notification(bytes.fromhex(hexed)) == n


# ----------------------------------------------------------------------------- stream splitter



def _snap_tree() -> DataTree:
    tree = DataTree()
    for z, path, acl in [(1, "/a", [(31, ("world", "anyone"))]),
                         (2, "/a/b", [(31, ("digest", "u:x=")), (1, ("ip", "10.0.0.1"))]),
                         (3, "/c", [(31, ("digest", "u:x=")), (1, ("ip", "10.0.0.1"))])]:
        txn = encode_txn((5, z, z, 100, 1), (path, b"d" * z, acl, False, z), None)
        header, record, _ = decode_txn(txn)
        tree.apply_txn(header, record)
    return tree


def _sync_stream() -> tuple[list[bytes], bytes]:
    snap = encode_sync_snapshot(_snap_tree(), [(5, 3000), (6, 4000)])
    items = [encode_quorum_packet(QuorumPacket(PacketType.LEADERINFO, 2 << 32, b"\0\1\0\0")),
             encode_quorum_packet(QuorumPacket(PacketType.SNAP, 3)),
             snap,
             encode_quorum_packet(QuorumPacket(PacketType.PROPOSAL, 4, b"txn")),
             encode_quorum_packet(QuorumPacket(PacketType.NEWLEADER, 2 << 32, b"cfg",
                                               (("digest", "u:x"),)))]
    return items, b"".join(items)


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 13, 64, 1 << 20])
def test_splitter_returns_packets_and_the_snapshot_stream_whole(chunk: int) -> None:
    items, stream = _sync_stream()
    sp = QuorumStreamSplitter(1 << 20)
    out: list[bytes] = []
    for i in range(0, len(stream), chunk):
        out += sp.feed(stream[i:i + chunk])
    assert out == items
    assert sp.buffered_bytes == 0 and not sp.in_snapshot
    tree, sessions = decode_sync_snapshot(out[2], zxid=3)
    assert sessions == [(5, 3000), (6, 4000)]
    assert tree.digest() == _snap_tree().digest()


def test_splitter_matches_split_quorum_packets_without_snap() -> None:
    pkts = [encode_quorum_packet(QuorumPacket(t, t, bytes(t))) for t in range(1, 15)
            if t != PacketType.SNAP]
    stream = b"".join(pkts)
    sp = QuorumStreamSplitter(1 << 20)
    assert sp.feed(stream[:-3]) == split_quorum_packets(stream[:-3], 0, 1 << 20)[0]
    assert sp.feed(stream[-3:]) == pkts[-1:]


def test_splitter_without_snapshots_reads_snap_as_a_packet() -> None:
    snap = encode_quorum_packet(QuorumPacket(PacketType.SNAP, 3))
    ack = encode_quorum_packet(QuorumPacket(PacketType.ACK, 3))
    assert QuorumStreamSplitter(1 << 20, snapshots=False).feed(snap + ack) == [snap, ack]


def test_splitter_rejects_garbage_and_oversize() -> None:
    snap = encode_quorum_packet(QuorumPacket(PacketType.SNAP, 3))
    sp = QuorumStreamSplitter(1 << 20)
    with pytest.raises(ProtocolError, match="sessions.count"):
        sp.feed(snap + struct.pack(">i", -5))
    with pytest.raises(ProtocolError):
        sp.feed(b"")  # unusable after an error
    sp = QuorumStreamSplitter(100)
    with pytest.raises(ProtocolError, match="path.length"):
        sp.feed(snap + struct.pack(">ii", 0, 0) + struct.pack(">i", 101))
    sp = QuorumStreamSplitter(1 << 20, snapshot_bytes_max=64)
    body = struct.pack(">ii", 0, 0) + (struct.pack(">i", 2) + b"/x" + struct.pack(">i", 0)
                                       + bytes(68)) * 2
    with pytest.raises(ProtocolError, match="snapshot"):
        sp.feed(snap + body)
    with pytest.raises(ProtocolError, match="data.length"):
        QuorumStreamSplitter(1 << 20).feed(encode_quorum_packet(QuorumPacket(1, 1))[:12]
                                           + struct.pack(">i", -2))


def test_packet_bodies_round_trip() -> None:
    req = decode_request_body(encode_request_body(0x100, 7, 1, b"body"))
    assert (req.session_id, req.cxid, req.op, req.body) == (0x100, 7, 1, b"body")
    assert decode_request_body(encode_request_body(1, 2, -11, b"")).body == b""
    pairs = [(0x100, 3000), (-1, 0)]
    assert encode_session_timeouts(pairs).hex() == (
        "0000000000000100" "00000bb8" "ffffffffffffffff" "00000000")
    assert decode_session_timeouts(encode_session_timeouts(pairs)) == pairs
    assert decode_session_timeouts(None) == decode_session_timeouts(b"") == []
    assert decode_revalidate_request(encode_revalidate_request(9, 4000)) == (9, 4000)
    assert encode_revalidate_reply(9, True).hex() == "000000000000000901"
    assert decode_revalidate_reply(encode_revalidate_reply(9, False)) == (9, False)
    assert decode_revalidate_reply(b"\0" * 8 + b"\x07") == (0, True)
    assert decode_long_body(encode_long_body(-3), "x") == -3
    assert decode_inform_and_activate(encode_inform_and_activate(2, b"t")) == (2, b"t")
    assert decode_config_body(encode_config_body("server.1=a")) == "server.1=a"
    assert decode_config_body(None) is None


@pytest.mark.parametrize("fn,data", [
    (decode_request_body, b"\0" * 15),
    (decode_request_body, None),
    (decode_session_timeouts, b"\0" * 13),
    (decode_revalidate_request, b"\0" * 11),
    (decode_revalidate_reply, b"\0" * 8),
    (decode_inform_and_activate, b"\0" * 7),
])
def test_short_bodies_are_protocol_errors(fn: Any, data: bytes | None) -> None:
    with pytest.raises(ProtocolError):
        fn(data)
