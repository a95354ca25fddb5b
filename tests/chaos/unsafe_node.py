"""A KV node with the planted read bug on: the child process of the planted-bug chaos run.

Run as `python unsafe_node.py --config FILE` (LocalCluster's node_command). It is the real
KVService (RaftNode, KVStore, RespServer, admin) except that the RaftNode is built with
`unsafe_local_reads=True`, the node's test-only switch that answers reads from local state
without ReadIndex. Followers (and deposed leaders) then serve stale values, which a chaos run
must report as not linearizable.
"""

import argparse
import dataclasses
import sys
from typing import Any

from haperf.kv.config import ServiceConfig, load_config
from haperf.kv.service import run_service
from haperf.raft.node import RaftNode


def unsafe_node(config: ServiceConfig, store: Any) -> RaftNode:
    node_config = dataclasses.replace(config.node_config(), unsafe_local_reads=True)
    me = config.me
    return RaftNode(node_config, store, metadata={"resp": me.resp, "admin": me.admin})


def main() -> int:
    parser = argparse.ArgumentParser(prog="unsafe_node.py")
    parser.add_argument("--config", required=True)
    args = parser.parse_args()
    return run_service(load_config(args.config), make_node=unsafe_node)


if __name__ == "__main__":
    sys.exit(main())
