"""haperf.raft: Raft consensus (the etcd-raft design: a pure core plus a synchronous host).

Owns the public names: RawNode/Config/Ready (haperf._native.raft), the membership-change types,
the Host that executes a Ready, MemoryStorage, and RaftNode (the node on an event loop).
See docs/raft.md and docs/raft-node.md.
"""

from haperf._native.confchange import (
    CC_ADD_LEARNER,
    CC_ADD_VOTER,
    CC_REMOVE_NODE,
    ConfChange,
    Membership,
)
from haperf._native.raft import Config, HardState, RawNode, Ready, SoftState
from haperf.raft.host import Host, Proposal, ReadRequest, StateMachine
from haperf.raft.node import NodeConfig, RaftNode
from haperf.raft.storage import MemoryStorage, Storage

__all__ = [
    "CC_ADD_LEARNER",
    "CC_ADD_VOTER",
    "CC_REMOVE_NODE",
    "ConfChange",
    "Config",
    "HardState",
    "Host",
    "Membership",
    "MemoryStorage",
    "NodeConfig",
    "Proposal",
    "RaftNode",
    "RawNode",
    "ReadRequest",
    "Ready",
    "SoftState",
    "StateMachine",
    "Storage",
]
