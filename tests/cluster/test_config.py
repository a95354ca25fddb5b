"""Node configuration: the JSON node file and the --peers flags validate every field, name the
field in the error, round-trip, and map onto the Raft timings of NODE_API.md."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from haperf.errors import ConfigError
from haperf.kv.config import (
    RaftOptions,
    config_from_dict,
    config_from_flags,
    load_config,
    parse_address,
    parse_peers,
)

PEERS = (
    "1=127.0.0.1:7001/127.0.0.1:6381/127.0.0.1:8001,"
    "2=127.0.0.1:7002/127.0.0.1:6382/127.0.0.1:8002,"
    "3=127.0.0.1:7003/127.0.0.1:6383/127.0.0.1:8003"
)


def good() -> dict[str, Any]:
    return {
        "id": 1,
        "data_dir": "/tmp/haperf-node-1",
        "members": {
            str(i): {
                "raft": f"127.0.0.1:{7000 + i}",
                "resp": f"127.0.0.1:{6380 + i}",
                "admin": f"127.0.0.1:{8000 + i}",
            }
            for i in (1, 2, 3)
        },
        "dial": {"2": "127.0.0.1:9102"},
        "raft": {
            "tick_ms": 10,
            "heartbeat_ticks": 5,
            "election_ticks": 15,
            "ack": "quorum",
            "lease_read": False,
            "fsync": True,
            "snapshot_entries": 100000,
        },
    }


def test_the_documented_example_loads_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "node.json"
    path.write_bytes(orjson.dumps(good()))
    config = load_config(path)
    assert config.id == 1 and sorted(config.members) == [1, 2, 3]
    assert config.me.resp == "127.0.0.1:6381" and config.dial == {2: "127.0.0.1:9102"}
    assert config.raft == RaftOptions()
    again = config_from_dict(orjson.loads(config.to_json()), "again")
    assert again.as_dict() == config.as_dict()
    assert config.member_metadata()[3] == {"resp": "127.0.0.1:6383", "admin": "127.0.0.1:8003"}


def test_node_config_carries_every_raft_option() -> None:
    doc = good()
    doc["raft"].update(tick_ms=20, ack="all", lease_read=True)
    node = config_from_dict(doc, "node.json").node_config()
    assert (
        node.id == 1 and node.members[2] == "127.0.0.1:7002" and node.dial == {2: "127.0.0.1:9102"}
    )
    assert (node.tick_ns, node.heartbeat_ticks, node.election_ticks) == (20_000_000, 5, 15)
    assert (node.ack, node.lease_read, node.fsync, node.unsafe_local_reads) == (
        "all",
        True,
        True,
        False,
    )
    # The test-only planted bug is not a node-file option: a file cannot switch ReadIndex off.
    doc["raft"]["unsafe_local_reads"] = True
    with pytest.raises(ConfigError, match="unsafe_local_reads"):
        config_from_dict(doc, "node.json")
    assert node.member_metadata[3] == {"resp": "127.0.0.1:6383", "admin": "127.0.0.1:8003"}
    assert node.proposal_timeout_ns == 5_000_000_000 and node.snapshot_entries == 100_000


def test_flags_build_the_same_config_as_the_file() -> None:
    from_flags = config_from_flags(1, PEERS, "/tmp/haperf-node-1", dial="2=127.0.0.1:9102")
    from_file = config_from_dict(good(), "node.json")
    assert from_flags.as_dict() == from_file.as_dict()


def test_relative_data_dir_is_relative_to_the_file(tmp_path: Path) -> None:
    doc = good()
    doc["data_dir"] = "data/1"
    path = tmp_path / "node.json"
    path.write_bytes(orjson.dumps(doc))
    assert load_config(path).data_dir == str(tmp_path.resolve() / "data" / "1")


def _set(doc: dict[str, Any], dotted: str, value: object) -> None:
    *parents, last = dotted.split(".")
    target = doc
    for key in parents:
        target = target[key]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value


_DELETE = object()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("id", 0, "id: a node id is a whole number >= 1"),
        ("id", "one", "id: a node id is a whole number >= 1"),
        ("id", 4, "id: node 4 is not in members"),
        ("members", {}, "members: at least one member"),
        ("members.2.raft", "127.0.0.1", 'members.2.raft: expected "host:port"'),
        ("members.2.resp", "127.0.0.1:70000", "members.2.resp: the port must be"),
        ("members.2.admin", 8002, 'members.2.admin: expected a "host:port" string'),
        ("members.3.admin", "127.0.0.1:8001", "members.3.admin: 127.0.0.1:8001 is already used"),
        ("members.3.resp", _DELETE, "members.3: missing resp"),
        ("members.3.http", "127.0.0.1:1", "members.3: unknown key(s) 'http'"),
        (
            "dial.1",
            "127.0.0.1:9101",
            "dial.1: dial names how to reach another member; 1 is this node",
        ),
        ("dial.9", "127.0.0.1:9109", "dial.9: dial names how to reach another member; 9 is not"),
        ("dial.2", "nowhere", 'dial.2: expected "host:port"'),
        ("raft.tick_ms", 0, "raft.tick_ms: expected a whole number in 1..10000"),
        ("raft.tick_ms", 2.5, "raft.tick_ms: expected a whole number"),
        ("raft.election_ticks", 5, "raft.election_ticks (5) must be greater than"),
        ("raft.ack", "most", "raft.ack: expected one of quorum, all, leader"),
        ("raft.fsync", "yes", "raft.fsync: expected true or false"),
        ("raft.snapshot_entries", -1, "raft.snapshot_entries: expected a whole number"),
        ("raft.tick", 10, "raft: unknown key(s) 'tick'"),
        ("data_dir", 7, "data_dir: expected a directory path"),
        ("members_", {}, "unknown key(s) 'members_'"),
    ],
)
def test_bad_field_is_named(field: str, value: object, message: str) -> None:
    doc = copy.deepcopy(good())
    _set(doc, field, value)
    with pytest.raises(ConfigError) as info:
        config_from_dict(doc, "node.json")
    assert str(info.value).startswith("node.json: ")
    assert message in str(info.value)


def test_unreadable_and_malformed_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.json: cannot read the config file"):
        load_config(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"id": 1,')
    with pytest.raises(ConfigError, match=r"bad\.json: not valid JSON"):
        load_config(bad)
    array = tmp_path / "array.json"
    array.write_bytes(b"[1, 2]")
    with pytest.raises(ConfigError, match=r"array\.json: expected a JSON object"):
        load_config(array)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected ID=RAFT/RESP/ADMIN"),
        ("1=127.0.0.1:7001/127.0.0.1:6381", "is not ID=RAFT/RESP/ADMIN"),
        ("127.0.0.1:7001/127.0.0.1:6381/127.0.0.1:8001", "is not ID=RAFT/RESP/ADMIN"),
        ("x=127.0.0.1:7001/127.0.0.1:6381/127.0.0.1:8001", "a node id is a whole number"),
        (
            "1=127.0.0.1:7001/127.0.0.1:6381/127.0.0.1:8001,"
            "1=127.0.0.1:7002/127.0.0.1:6382/127.0.0.1:8002",
            "node 1 is listed twice",
        ),
    ],
)
def test_bad_peers_flag(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match="--peers") as info:
        parse_peers(text)
    assert message in str(info.value)


def test_address_forms() -> None:
    assert parse_address("127.0.0.1:7001", "x") == ("127.0.0.1", 7001)
    assert parse_address("[::1]:7001", "x") == ("::1", 7001)
    assert parse_address("node-1.example:1", "x") == ("node-1.example", 1)
    for bad in ("", ":7001", "host:", "host:0", "host:-1", "ho st:1", "host:1x"):
        with pytest.raises(ConfigError, match="x: "):
            parse_address(bad, "x")


def haperf(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "haperf", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_node_cli_check_prints_the_effective_file(tmp_path: Path) -> None:
    out = haperf(
        "node",
        "--id",
        "2",
        "--peers",
        PEERS,
        "--data",
        str(tmp_path),
        "--check",
        "--election-ticks",
        "20",
    )
    assert out.returncode == 0, out.stderr
    doc = orjson.loads(out.stdout)
    assert doc["id"] == 2 and doc["raft"]["election_ticks"] == 20
    path = tmp_path / "node.json"
    path.write_text(out.stdout)
    again = haperf("node", "--config", str(path), "--check")
    assert again.returncode == 0 and orjson.loads(again.stdout) == doc


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("node",), "missing --id, --peers, --data"),
        (("node", "--id", "4", "--peers", PEERS, "--data", "d"), "id: node 4 is not in members"),
        (("node", "--config", "x.json", "--id", "1"), "--config and --id are exclusive"),
        (("node", "--config", "/nonexistent/x.json"), "cannot read the config file"),
        (
            ("node", "--id", "1", "--peers", PEERS, "--data", "d", "--election-ticks", "3"),
            "raft.election_ticks (3) must be greater than raft.heartbeat_ticks (5)",
        ),
    ],
)
def test_node_cli_bad_config_exits_2(args: tuple[str, ...], message: str) -> None:
    out = haperf(*args)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_service_entry_point_reports_bad_config_with_exit_2(tmp_path: Path) -> None:
    # LocalCluster's children run `python -m haperf.kv.service --config FILE`.
    doc = good()
    doc["raft"]["ack"] = "most"
    path = tmp_path / "node.json"
    path.write_bytes(orjson.dumps(doc))
    out = subprocess.run(
        [sys.executable, "-m", "haperf.kv.service", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2
    assert f"{path}: raft.ack: expected one of quorum, all, leader" in out.stderr
    assert "Traceback" not in out.stderr
