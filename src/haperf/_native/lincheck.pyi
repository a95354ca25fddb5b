"""Stub for haperf._native.lincheck: the linearizability search core (Wing & Gong, Lowe)."""

from collections.abc import Callable, Sequence
from typing import Final

K_READ: Final[int]
K_WRITE: Final[int]
K_CAS: Final[int]
K_CAS_FAILED: Final[int]
K_STEP: Final[int]
VERDICT_LINEARIZABLE: Final[int]
VERDICT_VIOLATION: Final[int]
VERDICT_RUNNING: Final[int]
VERDICT_OUT_OF_MEMORY: Final[int]
OPERATIONS_MAX: Final[int]
DEFAULT_CACHE_BYTES_MAX: Final[int]

class Search:
    def __init__(
        self,
        kinds: Sequence[int],
        a: Sequence[int],
        b: Sequence[int],
        calls: Sequence[int],
        rets: Sequence[int],
        initial: int,
        step: Callable[[int, int], int] | None = None,
        cache_bytes_max: int = ...,
    ) -> None: ...
    def run(self, steps_max: int) -> int: ...
    @property
    def steps(self) -> int: ...
    @property
    def cache_entries(self) -> int: ...
    @property
    def cache_bytes(self) -> int: ...
    @property
    def best(self) -> list[int]: ...
    @property
    def best_state(self) -> int: ...
    @property
    def stuck(self) -> int: ...
    @property
    def depth_now(self) -> int: ...
    @property
    def evictions(self) -> int: ...
