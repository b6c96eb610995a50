"""QuorumVerifier: quorum semantics and config text, checked against Apache 3.8's QuorumMaj and
QuorumHierarchical (golden outputs of ``testdata/QV.java`` run on the Debian 3.8.0 jars)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from zkfast.config import parse_properties
from zkfast.quorum import (
    QuorumConfigError,
    java_hashmap_order,
    joint_quorum,
    parse_config_text,
    parse_server_spec,
    verifier_from_properties,
)

DATA = Path(__file__).parent / "testdata"
CASES = (DATA / "quorum_config_cases.txt").read_text().split("---\n")
EXPECTED = (DATA / "quorum_config_expected.txt").read_text().split("\n===\n")[: len(CASES)]


def qv(text: str):
    return verifier_from_properties(parse_properties(text), multi_address=True)


@pytest.mark.parametrize("case,expected", list(zip(CASES, EXPECTED, strict=True)),
                         ids=[f"case{i}" for i in range(len(CASES))])
def test_config_text_is_apaches_tostring(case: str, expected: str) -> None:
    # Apache's toString: server lines in HashMap order (fed in Properties order), hierarchical
    # group and weight lines, version in hex, no trailing newline.
    assert qv(case).to_config_text() == expected


def test_config_text_round_trips() -> None:
    for case in CASES:
        v = qv(case)
        again = parse_config_text(v.to_config_text())
        # Not the same text in general: the weight lines of the re-read Properties go into
        # Apache's HashMaps in another order too. The same quorum system, though.
        assert again.same_members(v) and again.version == v.version
        assert again.voting_members == v.voting_members
        assert {s: q.to_config_value() for s, q in again.servers.items()} == {
            s: q.to_config_value() for s, q in v.servers.items()}


@pytest.mark.interop
@pytest.mark.slow  # Java resolves every host name of the cases: minutes, mostly DNS timeouts
@pytest.mark.timeout(1200)
@pytest.mark.skipif(shutil.which("javac") is None or not Path(
    "/usr/share/java/zookeeper.jar").exists(), reason="needs javac and the Debian jars")
def test_golden_data_matches_live_apache(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if "slow" not in (request.config.getoption("-m") or ""):
        pytest.skip("minutes of host lookups in Java: select it with -m 'interop and slow'")
    jars = ["zookeeper.jar", "zookeeper-jute.jar", "slf4j-api.jar", "slf4j-nop.jar"]
    cp = ":".join(f"/usr/share/java/{j}" for j in jars)
    shutil.copy(DATA / "QV.java", tmp_path / "QV.java")
    subprocess.run(["javac", "-cp", cp, "QV.java"], cwd=tmp_path, check=True)
    out = subprocess.run(["java", "-cp", f"{cp}:.", "QV"], cwd=tmp_path, check=True,
                         input=(DATA / "quorum_config_cases.txt").read_bytes(),
                         capture_output=True).stdout.decode()
    assert out == (DATA / "quorum_config_expected.txt").read_text()


def test_majority_counts_voters_only() -> None:
    v = qv("server.1=a:1:2\nserver.2=b:1:2\nserver.3=c:1:2\nserver.4=d:1:2:observer\n")
    assert v.voting_members == {1, 2, 3} and v.observing_members == {4}
    assert not v.contains_quorum([1])
    assert not v.contains_quorum([1, 4])  # observers never count
    assert not v.contains_quorum([1, 99])  # nor strangers
    assert v.contains_quorum([1, 2])
    assert v.contains_quorum([1, 1, 2])
    assert not v.contains_quorum([])
    assert v.weight(4) == 1  # QuorumMaj.getWeight is always 1


def test_even_majority_needs_more_than_half() -> None:
    v = qv("server.1=a:1:2\nserver.2=b:1:2\nserver.3=c:1:2\nserver.4=d:1:2\n")
    assert not v.contains_quorum([1, 2])
    assert v.contains_quorum([1, 2, 3])


def test_hierarchical_groups_and_zero_weights() -> None:
    # Three groups; group 3 has total weight 0, so only 2 groups count and a quorum needs both
    # (majGroupCounter > numGroups/2 with numGroups = 2).
    v = qv("server.1=a:1:2\nserver.2=b:1:2\nserver.3=c:1:2\nserver.4=d:1:2\nserver.5=e:1:2\n"
           "server.6=f:1:2\ngroup.1=1:2:3\ngroup.2=4:5\ngroup.3=6\nweight.6=0\nweight.1=2\n")
    assert v.hierarchical
    assert v.weight(6) == 0 and v.weight(1) == 2 and v.weight(2) == 1
    assert not v.contains_quorum([1, 4, 5])  # group 1: 2 of 4 is not more than half
    assert v.contains_quorum([1, 2, 4, 5])
    assert v.contains_quorum([1, 3, 4, 5])
    assert not v.contains_quorum([1, 2, 3, 6])
    assert not v.contains_quorum([2, 3, 4, 5])  # 2 of group 1's 4: not more than half


def test_hierarchical_errors() -> None:
    with pytest.raises(QuorumConfigError, match="not in a group"):
        qv("server.1=a:1:2\nserver.2=b:1:2\ngroup.1=1\n")
    with pytest.raises(QuorumConfigError, match="multiple groups"):
        qv("server.1=a:1:2\nserver.2=b:1:2\ngroup.1=1:2\ngroup.2=2\n")
    with pytest.raises(QuorumConfigError, match="group.1"):
        qv("server.1=a:1:2\nserver.2=b:1:2\ngroup.1=1:2:7\n")  # 7 has no weight: NPE in Apache
    with pytest.raises(QuorumConfigError, match="group.1"):
        qv("server.1=a:1:2\ngroup.1=1:x\n")


def test_joint_quorum_needs_both_configs() -> None:
    old = qv("server.1=a:1:2\nserver.2=b:1:2\nserver.3=c:1:2\n")
    new = qv("server.3=c:1:2\nserver.4=d:1:2\nserver.5=e:1:2\nversion=100000001\n")
    assert joint_quorum([1, 2], [old]) and not joint_quorum([1, 2], [old, new])
    assert joint_quorum([1, 3, 4], [old, new])
    assert not joint_quorum([1, 2, 3], [])


@pytest.mark.parametrize("spec,err", [
    ("a:1", "does not have the form"),
    ("a:1:1", "must be different"),
    ("a:1:2:leader", "unrecognised peer type"),
    ("a:1:2;b:3;c", "more than one ';'"),
    ("a:x:2", "port"),
    ("a:1:2|b:3:4", "multiAddress"),
    ("a:1:2;h:x", "port"),
])
def test_bad_server_lines(spec: str, err: str) -> None:
    with pytest.raises(QuorumConfigError, match=err) as e:
        parse_server_spec(7, spec)
    assert str(e.value).startswith("server.7")


def test_server_line_forms() -> None:
    s = parse_server_spec(1, "zk1:2888:3888:observer;10.0.0.1:2181")
    assert (s.host, s.quorum_port, s.election_port, s.learner_type, s.client_addr) == (
        "zk1", 2888, 3888, "observer", ("10.0.0.1", 2181))
    assert parse_server_spec(2, "zk2:2888:3888;2181").client_addr == ("0.0.0.0", 2181)
    assert parse_server_spec(3, "[::1]:2888:3888").host == "::1"
    m = parse_server_spec(4, "b:1:2|a:3:4", multi_address=True)
    assert m.to_config_value() == "a:3:4|b:1:2:participant"


def test_java_hashmap_order() -> None:
    assert java_hashmap_order([3, 1, 2]) == [1, 2, 3]
    assert java_hashmap_order([17, 1]) == [17, 1]  # one bucket: insertion order
    assert java_hashmap_order(list(range(1, 14)))[-1] == 13  # 13 keys: 32 buckets


def test_election_address_text() -> None:
    assert parse_server_spec(1, "10.0.0.2:2888:3888").election_addr_text() == "10.0.0.2:3888"
    assert parse_server_spec(1, "[::1]:2888:3888").election_addr_text() == \
        "[0:0:0:0:0:0:0:1]:3888"
    assert parse_server_spec(1, "a:1:2|b:3:4", multi_address=True).election_addr_text() == \
        "a:2|b:4"
