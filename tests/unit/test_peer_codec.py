"""Election and quorum-port wire formats (zk-formats §3.1, §3.2, §4.1–4.3)."""

from __future__ import annotations

import struct

import pytest

from zkfast._impl import ProtocolError
from zkfast.wire.peer_codec import (
    PROTOCOL_V1,
    PROTOCOL_V2,
    ElectionHandshake,
    LearnerInfo,
    Notification,
    PacketType,
    QuorumPacket,
    ServerState,
    decode_handshake,
    decode_int_body,
    decode_learner_info,
    decode_notification,
    decode_quorum_packet,
    encode_handshake,
    encode_int_body,
    encode_learner_info,
    encode_notification,
    encode_quorum_packet,
    split_quorum_packets,
)

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
