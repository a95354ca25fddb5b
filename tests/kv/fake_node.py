"""FakeNode: a single-process stand-in for haperf.raft.RaftNode, for kv server/client tests.

Owns nothing but the test double. It has the RaftNode API the RESP server uses
(propose/propose_many/barrier/read/is_leader/leader_id/member_metadata/status) and applies
commands to a real KVStore through the same encoded bytes a RaftNode would replicate, one loop
turn after the proposal (as a commit would). Tests steer it: `leader` (who leads: 0 = unknown),
`fail_with` (an exception the next proposals/barriers raise), `gate` (an asyncio.Event that
holds proposals until set), and record what arrived (`batches`, `barriers`).
"""

import asyncio
from collections.abc import Mapping
from typing import Any

from haperf.errors import NotLeaderError
from haperf.kv.store import KVStore


class FakeNode:
    def __init__(
        self,
        store: KVStore,
        node_id: int = 1,
        *,
        leader: int = 1,
        metadata: Mapping[int, Mapping[str, str]] | None = None,
    ) -> None:
        self.id = node_id
        self.store = store
        self.leader = leader
        self.metadata: dict[int, dict[str, str]] = {
            k: dict(v) for k, v in (metadata or {}).items()
        }
        self.index = 0
        self.fail_with: BaseException | None = None
        self.gate: asyncio.Event | None = None
        self.batches: list[list[bytes]] = []
        self.barriers = 0

    @property
    def is_leader(self) -> bool:
        return self.leader == self.id

    @property
    def leader_id(self) -> int:
        return self.leader

    def member_metadata(self, node_id: int) -> Mapping[str, str]:
        return self.metadata.get(node_id, {})

    def status(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "role": "leader" if self.is_leader else "follower",
            "term": 1,
            "leader": self.leader,
            "commit": self.index,
            "applied": self.index,
            "last_index": self.index,
            "voters": sorted({self.id, *self.metadata}),
        }

    def _check(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        if not self.is_leader:
            raise NotLeaderError(self.leader, self.id)

    async def propose_many(self, commands: list[bytes]) -> list[object]:
        self._check()
        self.batches.append(list(commands))
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(0)
        self._check()
        results = []
        for command in commands:
            self.index += 1
            results.append(self.store.apply(self.index, command))
        return results

    async def propose(self, command: bytes) -> object:
        return (await self.propose_many([command]))[0]

    async def barrier(self) -> int:
        self._check()
        self.barriers += 1
        await asyncio.sleep(0)
        self._check()
        return self.index

    async def read(self, query: object = None) -> object:
        await self.barrier()
        return self.store.query(query)
