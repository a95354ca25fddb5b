"""haperf.raft: Raft consensus (the etcd-raft design: a pure core plus a synchronous host).

Owns the public names: RawNode/Config/Ready (haperf._native.raft), the membership-change types,
the Host that executes a Ready, and MemoryStorage. See docs/raft.md.
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
    "Proposal",
    "RawNode",
    "ReadRequest",
    "Ready",
    "SoftState",
    "StateMachine",
    "Storage",
]
