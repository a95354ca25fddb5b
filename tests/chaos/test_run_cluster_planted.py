"""The planted-bug chaos run: nodes that serve reads without ReadIndex must be caught.

The same runner and checks as test_run_cluster.py, against nodes started by unsafe_node.py
(the node's test-only `unsafe_local_reads` switch): followers answer reads from their own,
possibly lagging, state. Delays and partitions make them lag, so the run must end with a
linearizability violation and a non-zero verdict. HAPERF_CHAOS_SEED picks the seed (1).
"""

import os
import sys
from pathlib import Path

from haperf.chaos.runner import RunConfig, describe, run

UNSAFE_NODE = Path(__file__).with_name("unsafe_node.py")
CHAOS_SEED = int(os.environ.get("HAPERF_CHAOS_SEED", "1"))


def test_reads_without_read_index_are_flagged(tmp_path: Path) -> None:
    config = RunConfig(
        time_s=12.0,
        nodes=3,
        clients=6,
        keys=2,
        nemesis=("delay", "partition"),
        seed=CHAOS_SEED,
        out=str(tmp_path / "planted"),
        fault_s_min=2.0,
        fault_s_max=3.0,
        gap_s_min=0.5,
        gap_s_max=1.0,
        node_command=(sys.executable, str(UNSAFE_NODE)),
    )
    result = run(config, progress=print)
    text = describe(result)
    print(text)
    assert not result.ok, text
    assert result.summary["checks"]["linearizable"]["verdict"] == "NOT linearizable", text
    assert any(v.startswith("linearizability") for v in result.summary["violations"]), text
