"""RespServer on a node in ack="leader" mode: a plain SET is answered after the leader's fsync,
before commit and apply, so a read pipelined after it must still pass a ReadIndex barrier (it
would otherwise read the store before the SET applied, and a deposed leader would serve stale
reads without ReadIndex). 127.0.0.1 only, bounded."""

import asyncio
from types import SimpleNamespace

from haperf.kv.server import RespServer
from haperf.kv.store import KVStore


class LeaderAckNode:
    """A leader whose plain proposals are acknowledged before they apply; barrier() applies
    them, as a ReadIndex round on a real node waits for apply."""

    config = SimpleNamespace(ack="leader")
    id = 1
    is_leader = True
    leader_id = 1

    def __init__(self, store: KVStore) -> None:
        self.store = store
        self.pending: list[bytes] = []
        self.index = 0
        self.barriers = 0

    def member_metadata(self, node_id: int) -> dict[str, str]:
        return {}

    def status(self) -> dict[str, object]:
        return {}

    def _apply(self, command: bytes) -> object:
        self.index += 1
        return self.store.apply(self.index, command)

    async def propose_many(self, commands: list[bytes], ack: str | None = None) -> list[object]:
        if ack == "quorum":
            return [self._apply(c) for c in commands]
        self.pending.extend(commands)  # durable on the leader, not yet committed or applied
        return [None] * len(commands)

    async def barrier(self) -> int:
        self.barriers += 1
        for c in self.pending:
            self._apply(c)
        self.pending.clear()
        return self.index


def test_read_pipelined_after_a_leader_acked_set_waits_for_a_barrier() -> None:
    async def body() -> tuple[bytes, int]:
        store = KVStore()
        node = LeaderAckNode(store)
        server = RespServer(node, store, "127.0.0.1:0")  # type: ignore[arg-type]
        await server.start()
        try:
            host, _, port = server.address.rpartition(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
            await writer.drain()
            expected = b"+OK\r\n$1\r\nv\r\n"
            data = b""
            while len(data) < len(expected):
                chunk = await asyncio.wait_for(reader.read(100), 5)
                if not chunk:
                    break
                data += chunk
            writer.close()
            return data, node.barriers
        finally:
            await server.close()

    data, barriers = asyncio.run(asyncio.wait_for(body(), 20))
    assert data == b"+OK\r\n$1\r\nv\r\n"
    assert barriers == 1
