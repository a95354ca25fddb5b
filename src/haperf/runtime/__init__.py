"""haperf.runtime: the real-world shell: the event loop, clocks and the TCP transport.

Owns the public names of the runtime. `new_event_loop()` / `run(coro)` pick uvloop when it is
importable; `LoopClock` reads the loop's monotonic clock in ns and `wall_ns()` the wall clock;
`TcpTransport` carries Raft messages between nodes (docs/runtime.md).
"""

from haperf.runtime.address import format_address, parse_address
from haperf.runtime.clock import Clock, LoopClock, wall_ns
from haperf.runtime.loop import loop_name, new_event_loop, run, uvloop_available
from haperf.runtime.transport import TcpTransport

__all__ = [
    "Clock",
    "LoopClock",
    "TcpTransport",
    "format_address",
    "loop_name",
    "new_event_loop",
    "parse_address",
    "run",
    "uvloop_available",
    "wall_ns",
]
