"""The quorum stream of a real Apache ZooKeeper 3.8 leader through zkfast's splitter and SNAP
decoder (zk-formats §4.3, §4.4).

An ensemble of three configured peers runs only two Apache servers; the third sid is a fake
learner scripted here on a plain socket: FOLLOWERINFO (acceptedEpoch 0) -> LEADERINFO ->
ACKEPOCH (lastZxid 0, currentEpoch 0). The leader (started with
``-Dzookeeper.forceSnapshotSync=true``; a learner at zxid 0 gets SNAP anyway) answers SNAP and
writes the ``serializeSnapshot`` stream + ``"BenWasHere"`` on the same socket, which
``QuorumStreamSplitter`` must return as one item and ``decode_sync_snapshot`` must turn into
the tree a kazoo client wrote. ``startForwarding`` then queues NEWLEADER and every later
PROPOSAL to this learner, so a further write arrives as a PROPOSAL whose TxnDigest must equal
the digest of the decoded tree after that txn: the decoded tree is the leader's, bit for bit as
far as the digest sees. The fake learner never acks NEWLEADER; it just closes.

``encode_sync_snapshot`` of the decoded tree has the length of Apache's stream and the same
content; the bytes differ only in order (Apache writes children in HashSet order, sessions in
HashMap order and numbers ACL lists as they were first used).
"""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.security import make_digest_acl

from zkfast.storage.snapshot import decode_sync_body, decode_sync_snapshot, encode_sync_snapshot
from zkfast.testing.procs import LOOPBACK, Ensemble, apache_available, wait_until
from zkfast.wire.peer_codec import (
    LEARNER_PROTOCOL_VERSION,
    LearnerInfo,
    PacketType,
    QuorumPacket,
    QuorumStreamSplitter,
    decode_config_body,
    decode_quorum_packet,
    encode_int_body,
    encode_learner_info,
    encode_quorum_packet,
)
from zkfast.wire.txn_codec import decode_txn

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(not apache_available(), reason="needs the Debian Apache ZooKeeper 3.8"),
]

CFG = {"tickTime": "1000", "initLimit": "20", "syncLimit": "5"}
PACKET_BYTES_MAX = 1 << 20
TIMEOUT_S = 60.0


class FakeLearner:
    """sid 3 on the leader's quorum port, reading through a QuorumStreamSplitter."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((LOOPBACK, port), timeout=TIMEOUT_S)
        self.splitter = QuorumStreamSplitter(PACKET_BYTES_MAX)
        self.items: list[bytes] = []
        #: Every byte received and every item returned, to replay in other chunkings.
        self.received = bytearray()
        self.returned: list[bytes] = []

    def send(self, p: QuorumPacket) -> None:
        self.sock.sendall(encode_quorum_packet(p))

    def next_item(self) -> bytes:
        deadline = time.monotonic() + TIMEOUT_S
        while not self.items:
            assert time.monotonic() < deadline, "nothing from the leader"
            data = self.sock.recv(65536)
            assert data, "the leader closed the connection"
            self.received += data
            got = self.splitter.feed(data)
            self.items += got
            self.returned += got
        return self.items.pop(0)

    def next_packet(self) -> QuorumPacket:
        return decode_quorum_packet(self.next_item())

    def close(self) -> None:
        self.sock.close()


def _leader(ens: Ensemble) -> int:
    def find() -> int | None:
        for sid in (1, 2):
            try:
                srvr = ens.servers[sid].four_letter_word("srvr", timeout_s=2.0)
            except OSError:
                continue
            if re.search(r"^Mode: leader$", srvr, re.MULTILINE):
                return sid
        return None

    wait_until(lambda: find() is not None, TIMEOUT_S, "an Apache leader")
    sid = find()
    assert sid is not None
    return sid


def _normalised(blob: bytes) -> tuple[list[tuple[int, int]], list[Any]]:
    snap = decode_sync_body(blob)
    nodes = sorted((n.path, n.data, None if n.acl is None else tuple(n.acl), n.stat)
                   for n in snap.nodes)
    return sorted(snap.sessions), nodes


def test_snap_stream_from_an_apache_leader(tmp_path: Path) -> None:
    ens = Ensemble(tmp_path, ("apache", "apache", "apache"), cfg=CFG,
                   jvm_props={"zookeeper.forceSnapshotSync": "true"})
    learner: FakeLearner | None = None
    zk: KazooClient | None = None
    try:
        ens.start([1, 2])
        leader = _leader(ens)
        zk = KazooClient(hosts=ens.servers[leader].hosts)
        zk.start(timeout=30)
        secret = make_digest_acl("u", "pw", all=True)
        zk.create("/sync", b"top")
        zk.create("/sync/a", b"x" * 3000)
        zk.create("/sync/a/deep", None)
        zk.create("/sync/locked", b"s", acl=[secret])
        zk.create("/sync/eph", b"e", ephemeral=True)
        seq = zk.create("/sync/q-", b"", sequence=True)
        zk.set("/sync/a", b"y" * 10)
        zk.create("/sync/gone", b"")
        zk.delete("/sync/gone")
        # Enough bytes that the stream spans many socket reads.
        zk.create("/bulk")
        for r in [zk.create_async(f"/bulk/n{i}", bytes([i % 256]) * 1000) for i in range(300)]:
            r.get(timeout=30)
        session_id = zk.client_id[0]

        learner = FakeLearner(ens.ports[leader][1])
        learner.send(QuorumPacket(PacketType.FOLLOWERINFO, 0,
                                  encode_learner_info(LearnerInfo(3, LEARNER_PROTOCOL_VERSION, 0))))
        info = learner.next_packet()
        assert info.type == PacketType.LEADERINFO
        epoch = info.zxid >> 32
        assert epoch >= 1
        learner.send(QuorumPacket(PacketType.ACKEPOCH, 0, encode_int_body(0)))
        snap = learner.next_packet()
        assert snap.type == PacketType.SNAP, snap
        stream = learner.next_item()
        assert stream.endswith(b"\x00\x00\x00\x0aBenWasHere")

        tree, sessions = decode_sync_snapshot(stream, zxid=snap.zxid)
        assert tree.last_processed_zxid == snap.zxid
        assert session_id in dict(sessions)
        stat_a = zk.get("/sync/a")[1]
        node = tree.nodes["/sync/a"]
        assert (node.data, node.version, node.mzxid, node.czxid) == (
            b"y" * 10, stat_a.version, stat_a.mzxid, stat_a.czxid)
        assert tree.nodes["/sync"].data == b"top"
        assert tree.nodes["/sync/a/deep"].data is None
        assert tree.nodes["/sync/locked"].acl == [(31, ("digest", secret.id.id))]
        assert tree.nodes["/sync/eph"].ephemeral_owner == session_id
        assert tree.ephemerals[session_id] == {"/sync/eph"}
        assert seq in tree.nodes and "/sync/gone" not in tree.nodes
        # The client's cversion is derived (DataNode.copyStat: persisted * 2 - children).
        assert tree.stat_of(tree.nodes["/sync"]) == tuple(zk.get("/sync")[1])
        assert tree.digest() == tree.recompute_digest()

        # The same content written by zkfast: equal length, equal after ordering.
        ours = encode_sync_snapshot(tree, sessions)
        assert len(ours) == len(stream)
        assert _normalised(ours) == _normalised(stream)
        assert decode_sync_snapshot(ours, zxid=snap.zxid)[0].digest() == tree.digest()

        # NEWLEADER, then the next write as a PROPOSAL: its TxnDigest is the leader's tree
        # digest after the txn, which the decoded tree must reproduce.
        newleader = learner.next_packet()
        assert newleader.type == PacketType.NEWLEADER and newleader.zxid == epoch << 32
        config = decode_config_body(newleader.data) or ""
        assert f"server.3={LOOPBACK}:{ens.ports[3][1]}" in config
        zk.create("/sync/after", b"z")
        proposal = learner.next_packet()
        while proposal.type != PacketType.PROPOSAL:
            proposal = learner.next_packet()
        assert proposal.data is not None
        header, record, digest = decode_txn(proposal.data)
        assert header[2] == proposal.zxid > snap.zxid
        assert digest is not None
        tree.apply_txn(header, record)
        assert tree.digest() == digest
        assert len(stream) > 300_000
        # The same bytes in other chunkings give the same items.
        raw = bytes(learner.received)
        for chunk in (1, 7, 4096):
            again = QuorumStreamSplitter(PACKET_BYTES_MAX)
            items: list[bytes] = []
            for i in range(0, len(raw), chunk):
                items += again.feed(raw[i:i + chunk])
            assert items == learner.returned
    finally:
        if learner is not None:
            learner.close()
        if zk is not None:
            zk.stop()
            zk.close()
        ens.stop()
