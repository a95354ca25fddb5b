"""EmbeddedRaftNode: a RaftNode on its own thread and event loop, with blocking thread-safe calls.

Owns the thread, the loop (uvloop when importable) and the hand-over of calls. Invariants: the
node is only ever touched on its own loop thread; every public method may be called from any
other thread and blocks until the node answered (or its timeout passed); stop() is idempotent and
joins the thread; a call after stop() raises NodeStoppedError. For daemons that do not run asyncio.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from haperf.errors import NodeStoppedError
from haperf.raft.node import NodeConfig, RaftNode, TransportFactory
from haperf.runtime.loop import new_event_loop

T = TypeVar("T")
CALL_TIMEOUT_S = 60.0  # a blocking call gives up after this long (the node has its own timeouts)




class EmbeddedRaftNode:
    """Runs a RaftNode on a private thread; `propose`, `read`, `barrier`, `status`, `stop` block.

    ```python
    node = EmbeddedRaftNode(NodeConfig(1, {1: "127.0.0.1:7001", ...}, data_dir="d1"), kv)
    node.start()
    node.propose(b"set x 1")
    node.stop()
    ```
    """

    def __init__(
        self,
        config: NodeConfig,
        state_machine: Any,
        *,
        metadata: Mapping[str, str] | None = None,
        transport_factory: TransportFactory | None = None,
        storage: Any = None,
    ) -> None:
        self.config = config
        self._node = RaftNode(
            config,
            state_machine,
            metadata=metadata,
            transport_factory=transport_factory,
            storage=storage,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def node(self) -> RaftNode:
        """The wrapped RaftNode: use it only from coroutines passed to `call`."""
        return self._node

    def start(self, timeout_s: float = CALL_TIMEOUT_S) -> None:
        """Start the thread and the node; returns once the node is started (or raises)."""
        with self._lock:
            if self._thread is not None:
                raise NodeStoppedError("EmbeddedRaftNode.start() was already called")
            started: concurrent.futures.Future[None] = concurrent.futures.Future()
            self._thread = threading.Thread(
                target=self._run, args=(started,), name=f"haperf-raft-{self.config.id}", daemon=True
            )
            self._thread.start()
        started.result(timeout_s)

    def _run(self, started: concurrent.futures.Future[None]) -> None:
        loop = new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._node.start())
        except Exception as exc:  # noqa: BLE001 - handed to the thread that called start()
            started.set_exception(exc)
            loop.close()
            return
        started.set_result(None)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float = CALL_TIMEOUT_S) -> T:
        """Run `coro` on the node's loop and wait for its result (thread-safe)."""
        loop = self._loop
        if loop is None or self._stopped or loop.is_closed():
            coro.close()
            raise NodeStoppedError(f"embedded node {self.config.id} is not running")
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def propose(
        self, command: bytes, *, ack: str | None = None, timeout_ns: int | None = None
    ) -> object:
        return self.call(self._node.propose(command, ack=ack, timeout_ns=timeout_ns))

    def propose_many(
        self, commands: Sequence[bytes], *, ack: str | None = None, timeout_ns: int | None = None
    ) -> list[object]:
        return self.call(self._node.propose_many(commands, ack=ack, timeout_ns=timeout_ns))

    def read(self, query: object = None, *, timeout_ns: int | None = None) -> object:
        return self.call(self._node.read(query, timeout_ns=timeout_ns))

    def barrier(self, *, timeout_ns: int | None = None) -> int:
        return self.call(self._node.barrier(timeout_ns=timeout_ns))

    def wait_leader(self, timeout_ns: int = 5_000_000_000) -> int:
        return self.call(self._node.wait_leader(timeout_ns))

    def transfer_leadership(self, to: int) -> None:
        self.call(self._node.transfer_leadership(to))

    def add_voter(
        self, node_id: int, address: str, metadata: Mapping[str, str] | None = None
    ) -> None:
        self.call(self._node.add_voter(node_id, address, metadata))

    def add_learner(
        self, node_id: int, address: str, metadata: Mapping[str, str] | None = None
    ) -> None:
        self.call(self._node.add_learner(node_id, address, metadata))

    def remove(self, node_id: int) -> None:
        self.call(self._node.remove(node_id))

    def status(self) -> dict[str, Any]:
        async def get() -> dict[str, Any]:
            return self._node.status()

        return self.call(get())

    @property
    def is_leader(self) -> bool:
        return self._node.is_leader

    @property
    def leader_id(self) -> int:
        return self._node.leader_id

    def stop(self, *, transfer: bool = False, timeout_s: float = CALL_TIMEOUT_S) -> None:
        """Stop the node and its thread (idempotent)."""
        with self._lock:
            if self._stopped:
                return
            loop, thread = self._loop, self._thread
            if loop is None or thread is None or loop.is_closed():
                self._stopped = True
                return
            future = asyncio.run_coroutine_threadsafe(self._node.stop(transfer=transfer), loop)
            try:
                future.result(timeout_s)
            finally:
                self._stopped = True
                loop.call_soon_threadsafe(loop.stop)
                thread.join(timeout_s)

    def __enter__(self) -> EmbeddedRaftNode:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
