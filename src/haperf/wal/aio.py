"""haperf.wal.AsyncWAL: the WAL for asyncio code; fdatasync never runs on the event loop.

Owns the coroutine side of group commit. append_durable frames the record on the loop (a C
call), queues a future, and makes sure one sync job is running on the WAL's sync thread; when
that fdatasync returns, every queued future whose record it covered resolves (through
call_soon_threadsafe), and if more waiters arrived meanwhile the next job starts at once. So
1,000 coroutines awaiting durable appends share one fdatasync per round.

Invariants: a future resolves with its index only after an fdatasync covering it returned; a
failed sync fails every queued future with the WAL's poison error; waiters are kept in index
order (they are appended on the one loop thread in the order indexes are assigned); at most one
sync job is in flight per AsyncWAL.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Any

from haperf.errors import WALError, WALIndexError
from haperf.wal.log import WAL

if TYPE_CHECKING:
    from typing_extensions import Buffer

# Waiters queued beyond this many make append_durable wait for room first (backpressure).
WAITERS_MAX = 1 << 20


class AsyncWAL:
    """Async facade over a WAL (create with `await AsyncWAL.open(dir, ...)`).

    append (buffered, returns the index), append_durable / append_batch_durable (await until
    on disk), sync, read, iterate, truncate_after, compact_before, close, first_index and
    last_index; `async with` closes it.
    """

    def __init__(self, wal: WAL, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.wal = wal
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="haperf-wal-aio")
        self._waiters: deque[tuple[int, asyncio.Future[int]]] = deque()
        # Callers waiting for room (WAITERS_MAX) BEFORE they append: backpressure, never a
        # refusal after the record is already in the log.
        self._room: deque[asyncio.Future[None]] = deque()
        self._sync_running = False
        self.append = wal.append
        self.read = wal.read

    @classmethod
    async def open(cls, directory: str | os.PathLike[str], **options: Any) -> AsyncWAL:
        """Open (or create) the WAL off the event loop (recovery reads every segment)."""
        loop = asyncio.get_running_loop()
        wal = await loop.run_in_executor(None, lambda: WAL(directory, **options))
        return cls(wal, loop)

    @property
    def first_index(self) -> int:
        return self.wal.first_index

    @property
    def last_index(self) -> int:
        return self.wal.last_index

    @property
    def durable_index(self) -> int:
        return self.wal.durable_index

    def _start_sync(self) -> None:
        self._sync_running = True
        target = self.wal.last_index
        job: Future[int] = self._executor.submit(self.wal._sync_through, target)
        loop = self._loop
        job.add_done_callback(lambda f: loop.call_soon_threadsafe(self._sync_done, f))

    def _sync_done(self, job: Future[int]) -> None:
        self._sync_running = False
        try:
            self._resolve(job)
        finally:
            self._wake_room()

    def _wake_room(self) -> None:
        room = self._room
        while room and len(self._waiters) < WAITERS_MAX:
            fut = room.popleft()
            if not fut.done():
                fut.set_result(None)

    async def _wait_for_room(self) -> None:
        while len(self._waiters) >= WAITERS_MAX:
            fut: asyncio.Future[None] = self._loop.create_future()
            self._room.append(fut)
            await fut

    def _resolve(self, job: Future[int]) -> None:
        waiters = self._waiters
        exc = job.exception()
        if exc is not None:
            while waiters:
                _, fut = waiters.popleft()
                if not fut.done():
                    fut.set_exception(exc.with_traceback(None))
            return
        synced = job.result()
        while waiters and waiters[0][0] <= synced:
            index, fut = waiters.popleft()
            if not fut.done():
                fut.set_result(index)
        last = self.wal.last_index
        while waiters and waiters[-1][0] > last:
            # truncate_after removed these records before any sync covered them.
            index, fut = waiters.pop()
            if not fut.done():
                fut.set_exception(
                    WALIndexError(f"record {index} was removed by truncate_after before it synced")
                )
        if waiters:
            self._start_sync()

    def _wait(self, index: int) -> asyncio.Future[int]:
        # Callers awaited _wait_for_room() with no await since, so there is room.
        fut: asyncio.Future[int] = self._loop.create_future()
        self._waiters.append((index, fut))
        if not self._sync_running:
            self._start_sync()
        return fut

    async def append_durable(self, data: Buffer, index: int = 0) -> int:
        """Append; resolve with the index once the record is on disk (group commit)."""
        await self._wait_for_room()
        assigned: int = self.wal.append(data, index)
        return await self._wait(assigned)

    async def append_batch_durable(self, items: Sequence[Buffer], index: int = 0) -> int:
        """Append a batch; resolve with its last index once all of it is on disk."""
        await self._wait_for_room()
        last = self.wal.append_batch(items, index)
        return await self._wait(last)

    async def wait_durable(self, index: int) -> None:
        """Resolve once every record up to `index` is on disk."""
        if index <= self.wal.durable_index:
            return
        await self._wait_for_room()
        await self._wait(index)

    async def sync(self) -> int:
        """fdatasync everything appended so far (on the sync thread); return the durable index."""
        return await self._loop.run_in_executor(self._executor, self.wal.sync)

    def append_batch(self, items: Sequence[Buffer], index: int = 0) -> int:
        return self.wal.append_batch(items, index)

    def iterate(self, start: int | None = None, stop: int | None = None) -> Iterator[memoryview]:
        return self.wal.iterate(start, stop)

    async def truncate_after(self, index: int) -> None:
        await self._loop.run_in_executor(self._executor, self.wal.truncate_after, index)

    async def compact_before(self, index: int) -> None:
        await self._loop.run_in_executor(self._executor, self.wal.compact_before, index)

    async def close(self) -> None:
        """Wait for queued durable appends, close the WAL (fdatasync), stop the sync thread."""
        try:
            await self._loop.run_in_executor(self._executor, self.wal.close)
        finally:
            self._executor.shutdown(wait=True)
            for _, fut in self._waiters:
                if not fut.done():
                    fut.set_exception(WALError("the WAL was closed before this record synced"))
            self._waiters.clear()

    async def __aenter__(self) -> AsyncWAL:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
