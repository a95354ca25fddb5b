"""haperf.detect: failure detection with the phi-accrual detector (Hayashibara et al., 2004).

Owns the public names for failure detection. The detector classes are the compiled ones from
haperf._native.phi re-exported unchanged, so a call costs what the native call costs (no Python
layer in between):

    >>> from haperf.detect import PhiAccrualDetector, ALIVE
    >>> d = PhiAccrualDetector(threshold=8.0, first_heartbeat_estimate_ns=1_000_000_000)
    >>> d.heartbeat(0), d.heartbeat(1_000_000_000)
    (True, True)
    >>> d.state(1_500_000_000) == ALIVE
    True

- PhiAccrualDetector: one watched node; heartbeat(now_ns), phi(now_ns), state(now_ns) with
  transitions reported to on_transition(old, new, now_ns, phi); an optional adaptive threshold
  (target_false_suspicion_rate=...).
- DetectorBank: the same detector for many nodes in numpy arrays (heartbeat_many, phi_all,
  suspects, failed, poll).
- AdaptiveThreshold: the threshold learner on its own.
- HeartbeatService (haperf.detect.udp): authenticated UDP heartbeats feeding a bank, membership
  events as an async iterator.

Times are int64 nanoseconds. The *_now methods read the detector's clock (clock=...), or by
default time.monotonic_ns, which this module installs. Guarantees and the accuracy study are in
docs/failure-detection.md.
"""

import time

from haperf._native import phi as _phi
from haperf._native.phi import (
    ALIVE,
    DEFAULT_TAIL_WEIGHT,
    DISTRIBUTIONS,
    FAILED,
    INTERVAL_NS_MAX,
    SUSPECT,
    WINDOW_SIZE_MAX,
    AdaptiveThreshold,
    DetectorBank,
    NodeState,
    PhiAccrualDetector,
)

_phi.set_default_clock(time.monotonic_ns)

__all__ = [
    "ALIVE",
    "DEFAULT_TAIL_WEIGHT",
    "DISTRIBUTIONS",
    "FAILED",
    "INTERVAL_NS_MAX",
    "SUSPECT",
    "WINDOW_SIZE_MAX",
    "AdaptiveThreshold",
    "DetectorBank",
    "NodeState",
    "PhiAccrualDetector",
]
