"""The simulator's event queue: a heap ordered by (time_ns, seq).

Owns Scheduler. Invariants: events pop in (time_ns, seq) order, `seq` is a per-run counter so two
events at the same time keep the order they were scheduled in (never an order that depends on
object ids or hashing); popping advances the SimClock, which never goes backwards; at most
`events_pending_max` events wait at once (a runaway feedback loop fails loudly instead of
eating memory).
"""

import heapq
from typing import Any

from haperf.sim.clock import SimClock

EVENTS_PENDING_MAX = 1_000_000

Event = tuple[int, int, int, int, Any]  # (time_ns, seq, kind, a, b)


class Scheduler:
    """A min-heap of events; `kind`, `a` and `b` are the event's meaning, owned by the runner."""

    __slots__ = ("_heap", "_seq", "clock", "events_pending_max")

    def __init__(self, clock: SimClock, events_pending_max: int = EVENTS_PENDING_MAX) -> None:
        self.clock = clock
        self.events_pending_max = events_pending_max
        self._heap: list[Event] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._heap)

    def at(self, time_ns: int, kind: int, a: int = 0, b: Any = None) -> None:
        """Schedule an event at absolute time `time_ns` (not before now)."""
        now = self.clock.now_ns
        assert time_ns >= now, f"event scheduled in the past: {time_ns} < {now}"
        heap = self._heap
        assert len(heap) < self.events_pending_max, (
            f"more than {self.events_pending_max} events pending: a feedback loop?"
        )
        self._seq += 1
        heapq.heappush(heap, (time_ns, self._seq, kind, a, b))

    def after(self, delay_ns: int, kind: int, a: int = 0, b: Any = None) -> None:
        self.at(self.clock.now_ns + delay_ns, kind, a, b)

    def peek_time_ns(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def pop(self) -> Event:
        """The next event; the clock moves to its time."""
        event = heapq.heappop(self._heap)
        self.clock.advance_to(event[0])
        return event
