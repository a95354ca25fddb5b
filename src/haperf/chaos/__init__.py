"""haperf.chaos: Jepsen-style testing: histories, the linearizability checker, the harness.

Owns the package's public names for the checker side: `check` and `Result` (the
linearizability checker, haperf.chaos.lincheck), `Op`, `Operation`, `read_history`,
`HistoryWriter` (the JSON-lines history format, haperf.chaos.history). The fault-injecting
proxy, the nemesis and the runner live in their own modules (docs/chaos.md).
"""

from haperf.chaos.history import HistoryWriter, Op, Operation, pair, read_history
from haperf.chaos.lincheck import MODELS, Model, Result, check

__all__ = [
    "MODELS",
    "HistoryWriter",
    "Model",
    "Op",
    "Operation",
    "Result",
    "check",
    "pair",
    "read_history",
]
