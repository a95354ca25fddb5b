"""Retry benchmarks: a retried call that succeeds on its first try, sync and async, with and
without a retry budget, beside tenacity, backoff and stamina doing the same.

Owns the retry group. The wrapped function is a no-op taking one argument (floor.py_call's
shape); async rows await a no-op coroutine and are divided by floor.await_call. Every library
is configured for 3 attempts on any Exception with exponential backoff, so only its per-call
overhead is measured (no row ever sleeps).
"""

from haperf.bench.registry import Benchmark, Op, Peer, register_all
from haperf.resilience import Retry, RetryBudget


def _noop(_x: object) -> None:
    return None


async def _anoop(_x: object) -> None:
    return None


def _retry(budget: bool = False) -> Retry:
    return Retry("bench", attempts_max=3, budget=RetryBudget() if budget else None)


def _first_try() -> Op:
    return Op(_retry()(_noop), (b"x",))


def _first_try_budget() -> Op:
    return Op(_retry(budget=True)(_noop), (b"x",))


def _first_try_async() -> Op:
    return Op(_retry()(_anoop), (b"x",), is_async=True)


def _tenacity(is_async: bool) -> Op:
    import tenacity  # type: ignore[import-untyped,import-not-found,unused-ignore]

    decorator = tenacity.retry(
        stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_exponential(), reraise=True
    )
    return Op(decorator(_anoop if is_async else _noop), (b"x",), is_async=is_async)


def _backoff(is_async: bool) -> Op:
    import backoff  # type: ignore[import-untyped,import-not-found,unused-ignore]

    decorator = backoff.on_exception(backoff.expo, Exception, max_tries=3)
    return Op(decorator(_anoop if is_async else _noop), (b"x",), is_async=is_async)


def _stamina(is_async: bool) -> Op:
    import stamina  # type: ignore[import-untyped,import-not-found,unused-ignore]

    decorator = stamina.retry(on=Exception, attempts=3)
    return Op(decorator(_anoop if is_async else _noop), (b"x",), is_async=is_async)


def _peers(is_async: bool) -> tuple[Peer, ...]:
    return (
        Peer("tenacity", lambda: _tenacity(is_async)),
        Peer("backoff", lambda: _backoff(is_async)),
        Peer("stamina", lambda: _stamina(is_async)),
    )


register_all(
    [
        Benchmark(
            "retry.first_try",
            "retry",
            "retried noop(x) that succeeds on its first try",
            _first_try,
            peers=_peers(False),
        ),
        Benchmark(
            "retry.first_try_budget",
            "retry",
            "retried noop(x), first try, with a retry budget (one deposit per success)",
            _first_try_budget,
        ),
        Benchmark(
            "retry.first_try_async",
            "retry",
            "await retried anoop(x) that succeeds on its first try",
            _first_try_async,
            floor="floor.await_call",
            peers=_peers(True),
        ),
    ]
)
