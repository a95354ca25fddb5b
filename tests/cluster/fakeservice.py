"""A stand-in node process for LocalCluster tests: the real KVService and AdminServer around a
fake node, so process lifecycle (start, kill, pause, restart, graceful stop, parent watch) is
tested without Raft.

Run as `python fakeservice.py --config FILE` (what LocalCluster's node_command runs). The fake
node claims the lowest member id as leader, which every fake agrees on without talking. Also
importable: FakeNode is the status source of the in-process admin tests.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from haperf.errors import ConfigError
from haperf.kv.config import ServiceConfig, load_config, parse_address
from haperf.kv.service import run_service


class FakeNode:
    """status() as a RaftNode would answer it; tests mutate the fields."""

    def __init__(self, node_id: int = 1, members: tuple[int, ...] = (1, 2, 3)) -> None:
        self.id = node_id
        self.members = members
        self.leader = min(members)
        self.term = 1
        self.commit = 0
        self.applied = 0
        self.started = False
        self.stopped = False
        self.fail_with: Exception | None = None

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    def status(self) -> dict[str, Any]:
        if self.fail_with is not None:
            raise self.fail_with
        leading = self.leader == self.id
        peers = {
            str(p): {
                "address": f"127.0.0.1:{7000 + p}",
                "connected": True,
                "match": self.commit if leading else None,
                "next": self.commit + 1 if leading else None,
                "state": "replicate" if leading else None,
                "lag_entries": 0 if leading else None,
                "lag_seconds": 0.0 if leading else None,
                "learner": False,
                "heard_ago_seconds": 0.01 if leading else None,
                "match_rejects": 0 if leading else None,
            }
            for p in self.members
            if p != self.id
        }
        return {
            "id": self.id,
            "role": "leader" if leading else "follower",
            "term": self.term,
            "leader": self.leader,
            "commit": self.commit,
            "applied": self.applied,
            "last_index": self.commit,
            "snapshot_index": 0,
            "ack_mode": "quorum",
            "voters": list(self.members),
            "learners": [],
            "wal_bytes": 4096,
            "proposals_pending": 0,
            "reads_pending": 0,
            "peers": peers,
            "counters": {"proposals": self.commit, "elections": 1},
        }


class FakeResp:
    """Holds the RESP port (so port clashes show) and closes every connection."""

    def __init__(self, listen: str) -> None:
        self._host, self._port = parse_address(listen, "resp")
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        async def refuse(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        self._server = await asyncio.start_server(refuse, self._host, self._port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    args = parser.parse_args()
    config = load_config(args.config)

    def make_node(cfg: ServiceConfig, _store: Any) -> FakeNode:
        return FakeNode(cfg.id, tuple(sorted(cfg.members)))

    try:
        return run_service(
            config,
            make_store=dict,
            make_node=make_node,
            make_resp=lambda _node, _store, listen: FakeResp(listen),
        )
    except ConfigError as exc:  # what `python -m haperf node` does with it
        print(f"fakeservice: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
