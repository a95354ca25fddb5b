"""Seeded randomness for one simulation: named sub-streams derived from one seed.

Owns SimRng. Invariants: every random choice in a run comes from a stream returned by
`SimRng.stream(name)`, and each stream depends only on (seed, name), so adding a new consumer of
randomness (a new fault kind, a new workload) does not shift the draws of the existing ones and
old seeds keep replaying the same way. Nothing here reads the global `random` state or the clock.
"""

import random
from hashlib import blake2b

SEED_MAX = (1 << 63) - 1


def derive_seed(seed: int, name: str) -> int:
    """A 64-bit seed for the sub-stream `name` of the run `seed` (stable across Python versions)."""
    digest = blake2b(f"{seed}/{name}".encode(), digest_size=8, person=b"haperf-sim").digest()
    return int.from_bytes(digest, "little")


class SimRng:
    """The root of all randomness of one run: hands out independent, named `random.Random`s."""

    __slots__ = ("seed",)

    def __init__(self, seed: int) -> None:
        if not 0 <= seed <= SEED_MAX:
            raise ValueError(f"seed must be in 0..{SEED_MAX}, got {seed}")
        self.seed = seed

    def stream(self, name: str) -> random.Random:
        """A fresh generator for `name`; the same (seed, name) always gives the same draws."""
        return random.Random(derive_seed(self.seed, name))

    def seed_for(self, name: str) -> int:
        """A 64-bit integer seed for a component that owns its own RNG (e.g. a Raft core)."""
        return derive_seed(self.seed, name)
