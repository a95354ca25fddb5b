"""The configuration of one KV service process: the JSON node file and the `--peers` flags.

Owns `ServiceConfig` (who this node is, every member's raft/resp/admin address, where to dial
each peer, the Raft timings) and its two sources: a JSON file (the format LocalCluster writes, see
docs/ops.md) and command-line flags (`--id N --peers 1=RAFT/RESP/ADMIN,... --data DIR`).

Invariants: a ServiceConfig that exists is valid: its id is a member, every address is
"host:port" with a port in 1..65535, no two listeners share an address, dial targets name other
members, the election timeout is longer than the heartbeat, the ack mode is one Raft knows.
Anything else raises ConfigError naming the source and the field (`node.json: members.2.resp:
...`). Unknown keys are errors too, so a typo never silently falls back to a default.

RaftOptions mirrors part of haperf.raft's NodeConfig on purpose: it is the node file's JSON form
(milliseconds, JSON types checked, errors naming `file: raft.<key>`), checked when the file is
read, so `node --check` and LocalCluster reject a bad file before any process starts and without
loading the native Raft modules. NodeConfig checks its own invariants again when the node is
built from it (node_config()).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import orjson

from haperf.errors import ConfigError

if TYPE_CHECKING:
    from haperf.raft.node import NodeConfig

ACK_MODES = ("quorum", "all", "leader")
NODE_ID_MAX = 2**63 - 1
MEMBERS_MAX = 255
CONFIG_FILE_BYTES_MAX = 1 << 20
TICK_MS_MAX = 10_000
TICKS_MAX = 1_000_000
SNAPSHOT_ENTRIES_MAX = 1 << 40
PROPOSAL_TIMEOUT_MS_MAX = 3_600_000
HOST_BYTES_MAX = 253

AckMode = Literal["quorum", "all", "leader"]


@dataclass(frozen=True, slots=True)
class MemberAddress:
    """One member's listening addresses, each "host:port"."""

    raft: str
    resp: str
    admin: str

    def as_dict(self) -> dict[str, str]:
        return {"raft": self.raft, "resp": self.resp, "admin": self.admin}


@dataclass(frozen=True, slots=True)
class RaftOptions:
    """The Raft timings and policies of a node (defaults: NODE_API.md section 3)."""

    tick_ms: int = 10
    heartbeat_ticks: int = 5
    election_ticks: int = 15
    ack: AckMode = "quorum"
    lease_read: bool = False
    fsync: bool = True
    snapshot_entries: int = 100_000
    proposal_timeout_ms: int = 5_000

    def as_dict(self) -> dict[str, Any]:
        return {
            "tick_ms": self.tick_ms,
            "heartbeat_ticks": self.heartbeat_ticks,
            "election_ticks": self.election_ticks,
            "ack": self.ack,
            "lease_read": self.lease_read,
            "fsync": self.fsync,
            "snapshot_entries": self.snapshot_entries,
            "proposal_timeout_ms": self.proposal_timeout_ms,
        }


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """Everything one `python -m haperf node` process needs. Build it with `load_config`,
    `config_from_dict` or `config_from_flags` (they validate); the constructor validates too."""

    id: int
    members: Mapping[int, MemberAddress]
    data_dir: str | None = None
    dial: Mapping[int, str] = field(default_factory=dict)
    raft: RaftOptions = field(default_factory=RaftOptions)
    source: str = "config"

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def me(self) -> MemberAddress:
        return self.members[self.id]

    def as_dict(self) -> dict[str, Any]:
        """The JSON node-file form (round-trips through config_from_dict)."""
        return {
            "id": self.id,
            "data_dir": self.data_dir,
            "members": {str(i): m.as_dict() for i, m in sorted(self.members.items())},
            "dial": {str(i): a for i, a in sorted(self.dial.items())},
            "raft": self.raft.as_dict(),
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.as_dict(), option=orjson.OPT_INDENT_2) + b"\n"

    def with_source(self, source: str) -> ServiceConfig:
        return replace(self, source=source)

    def node_config(self) -> NodeConfig:
        """The haperf.raft NodeConfig for this process's RaftNode."""
        # Imported on use: a config can be checked without the native Raft modules loaded.
        from haperf.raft.node import NodeConfig

        opts = self.raft
        return NodeConfig(
            id=self.id,
            members={i: m.raft for i, m in self.members.items()},
            data_dir=self.data_dir,
            dial=dict(self.dial),
            tick_ns=opts.tick_ms * 1_000_000,
            heartbeat_ticks=opts.heartbeat_ticks,
            election_ticks=opts.election_ticks,
            ack=opts.ack,
            lease_read=opts.lease_read,
            fsync=opts.fsync,
            snapshot_entries=opts.snapshot_entries,
            proposal_timeout_ns=opts.proposal_timeout_ms * 1_000_000,
            member_metadata=self.member_metadata(),
        )

    def member_metadata(self) -> dict[int, dict[str, str]]:
        """Every member's client-facing addresses, as Raft member metadata."""
        return {i: {"resp": m.resp, "admin": m.admin} for i, m in self.members.items()}


# --- addresses ------------------------------------------------------------------------------


def parse_address(text: object, where: str) -> tuple[str, int]:
    """ "host:port" -> (host, port); ConfigError naming `where` when it is not one. Stricter than
    haperf.runtime.address.parse_address (a node file needs a real port, no blanks in the
    host) and with the node file's "file: field: ..." messages."""
    if not isinstance(text, str):
        raise ConfigError(f'{where}: expected a "host:port" string, got {text!r}')
    host, sep, port_text = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or len(host) > HOST_BYTES_MAX or any(c.isspace() for c in host):
        raise ConfigError(f'{where}: expected "host:port" (e.g. 127.0.0.1:7001), got {text!r}')
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigError(f"{where}: the port must be a number in 1..65535, got {text!r}")
    return host, int(port_text)


def _node_id(value: object, where: str) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= NODE_ID_MAX:
        raise ConfigError(f"{where}: a node id is a whole number >= 1, got {value!r}")
    return value


# --- validation -----------------------------------------------------------------------------


def _validate(config: ServiceConfig) -> None:
    src = config.source
    _node_id(config.id, f"{src}: id")
    if not config.members:
        raise ConfigError(f"{src}: members: at least one member (this node) is required")
    if len(config.members) > MEMBERS_MAX:
        raise ConfigError(
            f"{src}: members: at most {MEMBERS_MAX} members, got {len(config.members)}"
        )
    if config.id not in config.members:
        raise ConfigError(
            f"{src}: id: node {config.id} is not in members ({sorted(config.members)}); "
            "list this node among the members"
        )
    seen: dict[tuple[str, int], str] = {}
    for node_id, member in config.members.items():
        _node_id(node_id, f"{src}: members")
        for kind in ("raft", "resp", "admin"):
            where = f"{src}: members.{node_id}.{kind}"
            addr = parse_address(getattr(member, kind), where)
            if addr in seen:
                raise ConfigError(
                    f"{where}: {getattr(member, kind)} is already used by {seen[addr]}; "
                    "every listener needs its own port"
                )
            seen[addr] = f"members.{node_id}.{kind}"
    for node_id, addr_text in config.dial.items():
        where = f"{src}: dial.{node_id}"
        _node_id(node_id, where)
        if node_id == config.id or node_id not in config.members:
            raise ConfigError(
                f"{where}: dial names how to reach another member; {node_id} is "
                + ("this node" if node_id == config.id else "not a member")
            )
        parse_address(addr_text, where)
    if config.data_dir is not None and (
        not isinstance(config.data_dir, str) or not config.data_dir
    ):
        raise ConfigError(f"{src}: data_dir: expected a directory path, got {config.data_dir!r}")
    _validate_raft(config.raft, src)


def _int_in(value: object, low: int, high: int, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"{where}: expected a whole number in {low}..{high}, got {value!r}")
    return value


def _validate_raft(opts: RaftOptions, src: str) -> None:
    _int_in(opts.tick_ms, 1, TICK_MS_MAX, f"{src}: raft.tick_ms")
    _int_in(opts.heartbeat_ticks, 1, TICKS_MAX, f"{src}: raft.heartbeat_ticks")
    _int_in(opts.election_ticks, 2, TICKS_MAX, f"{src}: raft.election_ticks")
    if opts.election_ticks <= opts.heartbeat_ticks:
        raise ConfigError(
            f"{src}: raft.election_ticks ({opts.election_ticks}) must be greater than "
            f"raft.heartbeat_ticks ({opts.heartbeat_ticks}), or followers time out between "
            "heartbeats; use about 3x"
        )
    if opts.ack not in ACK_MODES:
        raise ConfigError(
            f"{src}: raft.ack: expected one of {', '.join(ACK_MODES)}, got {opts.ack!r}"
        )
    for name in ("lease_read", "fsync"):
        if not isinstance(getattr(opts, name), bool):
            raise ConfigError(
                f"{src}: raft.{name}: expected true or false, got {getattr(opts, name)!r}"
            )
    _int_in(opts.snapshot_entries, 1, SNAPSHOT_ENTRIES_MAX, f"{src}: raft.snapshot_entries")
    _int_in(
        opts.proposal_timeout_ms, 1, PROPOSAL_TIMEOUT_MS_MAX, f"{src}: raft.proposal_timeout_ms"
    )


# --- sources --------------------------------------------------------------------------------

_TOP_KEYS = frozenset({"id", "data_dir", "members", "dial", "raft"})
_MEMBER_KEYS = ("raft", "resp", "admin")
_RAFT_KEYS = frozenset(RaftOptions().as_dict())


def _unknown(keys: object, allowed: frozenset[str] | tuple[str, ...], where: str) -> None:
    extra = sorted(str(k) for k in cast(Mapping[str, object], keys) if k not in allowed)
    if extra:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(map(repr, extra))}; allowed: "
            + ", ".join(sorted(allowed))
        )


def _object(value: object, where: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a JSON object, got {type(value).__name__}")
    return cast(Mapping[str, object], value)


def raft_options_from_dict(data: object, source: str) -> RaftOptions:
    obj = _object(data, f"{source}: raft")
    _unknown(obj, _RAFT_KEYS, f"{source}: raft")
    opts = RaftOptions(**cast(Any, obj))
    _validate_raft(opts, source)
    return opts


def config_from_dict(data: object, source: str = "config") -> ServiceConfig:
    """Validate and build a ServiceConfig from the node-file JSON object."""
    obj = _object(data, source)
    _unknown(obj, _TOP_KEYS, source)
    if "id" not in obj or "members" not in obj:
        raise ConfigError(f"{source}: 'id' and 'members' are required")
    node_id = _node_id(obj["id"], f"{source}: id")
    members: dict[int, MemberAddress] = {}
    for key, value in _object(obj["members"], f"{source}: members").items():
        member_id = _node_id(key, f"{source}: members")
        where = f"{source}: members.{key}"
        entry = _object(value, where)
        _unknown(entry, _MEMBER_KEYS, where)
        missing = [k for k in _MEMBER_KEYS if k not in entry]
        if missing:
            raise ConfigError(
                f"{where}: missing {', '.join(missing)} (each member needs raft, "
                "resp and admin addresses)"
            )
        members[member_id] = MemberAddress(*(cast(str, entry[k]) for k in _MEMBER_KEYS))
    dial = {
        _node_id(k, f"{source}: dial"): cast(str, v)
        for k, v in _object(obj.get("dial", {}), f"{source}: dial").items()
    }
    data_dir = obj.get("data_dir")
    if data_dir is not None and not isinstance(data_dir, str):
        raise ConfigError(f"{source}: data_dir: expected a directory path, got {data_dir!r}")
    raft = raft_options_from_dict(obj.get("raft", {}), source)
    return ServiceConfig(
        id=node_id, members=members, data_dir=data_dir, dial=dial, raft=raft, source=source
    )


def load_config(path: str | Path) -> ServiceConfig:
    """Read and validate a JSON node file; ConfigError names the file and field."""
    source = str(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(CONFIG_FILE_BYTES_MAX + 1)
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the config file: {exc.strerror}") from None
    if len(raw) > CONFIG_FILE_BYTES_MAX:
        raise ConfigError(f"{source}: larger than {CONFIG_FILE_BYTES_MAX} bytes; not a node file")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{source}: not valid JSON: {exc}") from None
    config = config_from_dict(data, source)
    if config.data_dir is not None and not Path(config.data_dir).is_absolute():
        # A relative data_dir is relative to the config file, not to whoever started the node.
        config = replace(config, data_dir=str(Path(source).resolve().parent / config.data_dir))
    return config


def parse_peers(text: str, where: str = "--peers") -> dict[int, MemberAddress]:
    """`1=RAFT/RESP/ADMIN,2=...` -> members; each address "host:port"."""
    members: dict[int, MemberAddress] = {}
    items = [p.strip() for p in text.split(",") if p.strip()]
    if not items:
        raise ConfigError(f"{where}: expected ID=RAFT/RESP/ADMIN[,...], got {text!r}")
    for item in items:
        key, eq, addrs = item.partition("=")
        parts = addrs.split("/")
        if not eq or len(parts) != 3:
            raise ConfigError(
                f"{where}: {item!r} is not ID=RAFT/RESP/ADMIN "
                "(e.g. 1=127.0.0.1:7001/127.0.0.1:6381/127.0.0.1:8001)"
            )
        node_id = _node_id(key.strip(), where)
        if node_id in members:
            raise ConfigError(f"{where}: node {node_id} is listed twice")
        members[node_id] = MemberAddress(*(p.strip() for p in parts))
    return members


def parse_dial(text: str, where: str = "--dial") -> dict[int, str]:
    """`2=host:port,3=host:port` -> {peer id: address this node dials}."""
    dial: dict[int, str] = {}
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        key, eq, addr = item.partition("=")
        if not eq:
            raise ConfigError(f"{where}: {item!r} is not ID=HOST:PORT")
        dial[_node_id(key.strip(), where)] = addr.strip()
    return dial


def config_from_flags(
    node_id: int,
    peers: str,
    data_dir: str | None,
    *,
    dial: str = "",
    raft: RaftOptions | None = None,
) -> ServiceConfig:
    """The flags form: `--id N --peers 1=RAFT/RESP/ADMIN,... --data DIR [--dial ...]`."""
    return ServiceConfig(
        id=_node_id(node_id, "--id"),
        members=parse_peers(peers),
        data_dir=data_dir,
        dial=parse_dial(dial),
        raft=raft or RaftOptions(),
        source="flags",
    )
