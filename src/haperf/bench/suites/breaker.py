"""Circuit breaker benchmarks: state check, closed calls (sync, async, clocked), open breakers
(non-raising allow(), the pure core, a raising rejection), with peers.

Owns the breaker group. Every protected function is a no-op taking one argument, like
floor.py_call's, so a ratio is the breaker's cost in units of a bare call; async rows are
divided by floor.await_call. Peers (pip install 'haperf[peers]'): pybreaker, circuitbreaker,
purgatory (sync), aiobreaker and purgatory (async), each configured closed or tripped open the
way its documentation shows.
"""

import time
from collections.abc import Callable
from typing import Any

from haperf.bench.registry import Benchmark, Op, Peer, register_all
from haperf.errors import CallNotPermittedError
from haperf.resilience import CircuitBreaker

SECOND_NS = 1_000_000_000


def _noop(_x: object) -> None:
    return None


async def _anoop(_x: object) -> None:
    return None


def _failing(_x: object) -> None:
    raise OSError("down")


def _closed() -> CircuitBreaker:
    return CircuitBreaker("bench", window_size=100, calls_min=100)


def _open() -> CircuitBreaker:
    breaker = CircuitBreaker("bench", window_size=1, calls_min=1, open_duration_ns=3600 * SECOND_NS)
    assert breaker.allow()
    breaker.on_failure(0)
    assert not breaker.allow()
    return breaker


# ---- haperf rows -------------------------------------------------------------------------------


def _state_check() -> Op:
    return Op(_closed().is_call_permitted)


def _execute_closed() -> Op:
    return Op(_closed()(_noop), (b"x",))


def _execute_closed_clocked() -> Op:
    breaker = CircuitBreaker(
        "bench", window="time", window_ns=10 * SECOND_NS, slow_call_ns=SECOND_NS, calls_min=100
    )
    return Op(breaker(_noop), (b"x",))


def _execute_closed_async() -> Op:
    return Op(_closed()(_anoop), (b"x",), is_async=True)


def _execute_open() -> Op:
    return Op(_open().allow)


def _core_allow_open() -> Op:
    breaker = _open()
    return Op(breaker.core.allow, (time.monotonic_ns(),))


def _allow_at_open() -> Op:
    return Op(_open().allow_at, (time.monotonic_ns(),))


def _clock_read() -> Op:
    return Op(time.monotonic_ns)


def _rejecting(call: Callable[[Any], Any], error: type[BaseException]) -> Callable[[Any], None]:
    def attempt(x: Any) -> None:
        try:
            call(x)
        except error:
            return
        raise AssertionError("the open breaker let the call through")

    return attempt


def _reject_open() -> Op:
    return Op(_rejecting(_open()(_noop), CallNotPermittedError), (b"x",))


def _explicit_closed() -> Op:
    breaker = _closed()
    allow, on_success = breaker.allow, breaker.on_success

    def call(x: object) -> None:
        if allow():
            _noop(x)
            on_success()

    return Op(call, (b"x",))


# ---- peers -------------------------------------------------------------------------------------


def _pybreaker_state() -> Op:
    import pybreaker  # type: ignore[import-untyped,import-not-found,unused-ignore]

    cb = pybreaker.CircuitBreaker(fail_max=100, reset_timeout=60)
    return Op(type(cb).current_state.fget, (cb,))  # type: ignore[attr-defined,unused-ignore]


def _circuitbreaker_state() -> Op:
    import circuitbreaker  # type: ignore[import-untyped,import-not-found,unused-ignore]

    cb = circuitbreaker.CircuitBreaker(failure_threshold=100, recovery_timeout=60)
    return Op(type(cb).closed.fget, (cb,))  # type: ignore[attr-defined,unused-ignore]


def _pybreaker_closed() -> Op:
    import pybreaker  # type: ignore[import-untyped,import-not-found,unused-ignore]

    return Op(pybreaker.CircuitBreaker(fail_max=100, reset_timeout=60)(_noop), (b"x",))


def _circuitbreaker_closed() -> Op:
    import circuitbreaker  # type: ignore[import-untyped,import-not-found,unused-ignore]

    cb = circuitbreaker.CircuitBreaker(failure_threshold=100, recovery_timeout=60)
    return Op(cb(_noop), (b"x",))


def _purgatory_closed() -> Op:
    import purgatory  # type: ignore[import-untyped,import-not-found,unused-ignore]

    factory = purgatory.SyncCircuitBreakerFactory(default_threshold=100, default_ttl=60)
    return Op(factory("bench")(_noop), (b"x",))


def _pybreaker_open() -> Op:
    import pybreaker  # type: ignore[import-untyped,import-not-found,unused-ignore]

    cb = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=3600)
    cb.open()
    return Op(_rejecting(cb(_noop), pybreaker.CircuitBreakerError), (b"x",))


def _circuitbreaker_open() -> Op:
    import circuitbreaker  # type: ignore[import-untyped,import-not-found,unused-ignore]

    cb = circuitbreaker.CircuitBreaker(failure_threshold=1, recovery_timeout=3600)
    _rejecting(cb(_failing), OSError)(b"x")
    return Op(_rejecting(cb(_noop), circuitbreaker.CircuitBreakerError), (b"x",))


def _purgatory_open() -> Op:
    import purgatory  # type: ignore[import-untyped,import-not-found,unused-ignore]
    from purgatory.domain.model import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
        OpenedState,
    )

    factory = purgatory.SyncCircuitBreakerFactory(default_threshold=1, default_ttl=3600)
    _rejecting(factory("bench")(_failing), OSError)(b"x")
    return Op(_rejecting(factory("bench")(_noop), OpenedState), (b"x",))


def _aiobreaker_closed() -> Op:
    import aiobreaker  # type: ignore[import-untyped,import-not-found,unused-ignore]

    return Op(aiobreaker.CircuitBreaker(fail_max=100)(_anoop), (b"x",), is_async=True)


def _purgatory_closed_async() -> Op:
    import purgatory  # type: ignore[import-untyped,import-not-found,unused-ignore]

    factory = purgatory.AsyncCircuitBreakerFactory(default_threshold=100, default_ttl=60)
    return Op(factory("bench")(_anoop), (b"x",), is_async=True)


register_all(
    [
        Benchmark(
            "breaker.state_check",
            "breaker",
            "breaker.is_call_permitted() on a closed breaker (no permit taken)",
            _state_check,
            peers=(
                Peer("pybreaker.current_state", _pybreaker_state),
                Peer("circuitbreaker.closed", _circuitbreaker_state),
            ),
        ),
        Benchmark(
            "breaker.execute_closed",
            "breaker",
            "decorated noop(x) through a closed breaker (count window)",
            _execute_closed,
            peers=(
                Peer("pybreaker", _pybreaker_closed),
                Peer("circuitbreaker", _circuitbreaker_closed),
                Peer("purgatory", _purgatory_closed),
            ),
        ),
        Benchmark(
            "breaker.execute_closed_clocked",
            "breaker",
            "decorated noop(x), closed, time window + slow-call threshold (two clock reads)",
            _execute_closed_clocked,
        ),
        Benchmark(
            "breaker.explicit_closed",
            "breaker",
            "if allow(): noop(x); on_success() (the explicit API, closed)",
            _explicit_closed,
        ),
        Benchmark(
            "breaker.execute_closed_async",
            "breaker",
            "await decorated anoop(x) through a closed breaker",
            _execute_closed_async,
            floor="floor.await_call",
            peers=(
                Peer("aiobreaker", _aiobreaker_closed),
                Peer("purgatory", _purgatory_closed_async),
            ),
        ),
        Benchmark(
            "breaker.execute_open",
            "breaker",
            "breaker.allow() -> False on an open breaker (reads the clock)",
            _execute_open,
        ),
        Benchmark(
            "breaker.clock_read",
            "breaker",
            "time.monotonic_ns(): the clock read inside allow() on an open breaker",
            _clock_read,
        ),
        Benchmark(
            "breaker.core_allow_open",
            "breaker",
            "core.allow(now_ns) -> False: the pure native check, time passed in",
            _core_allow_open,
        ),
        Benchmark(
            "breaker.allow_at_open",
            "breaker",
            "breaker.allow_at(now_ns) -> False: the facade with the time passed in",
            _allow_at_open,
        ),
        Benchmark(
            "breaker.reject_open",
            "breaker",
            "decorated call on an open breaker: raise and catch the rejection",
            _reject_open,
            peers=(
                Peer("pybreaker", _pybreaker_open),
                Peer("circuitbreaker", _circuitbreaker_open),
                Peer("purgatory", _purgatory_open),
            ),
        ),
    ]
)
