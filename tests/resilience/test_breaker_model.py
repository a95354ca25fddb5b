"""Property test: the native breaker follows the Python model (model_breaker.py) through random
sequences of calls, held permits answered late, ignored calls and clock advances, with count
and time windows, slow calls, backoff and the half-open limits.
"""

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from haperf.resilience import CircuitBreaker
from tests.resilience.model_breaker import BreakerModel
from tests.resilience.virtual_time_breaker import FakeClock

MS = 1_000_000

configs = st.fixed_dictionaries(
    {
        "window": st.sampled_from(["count", "time"]),
        "window_size": st.integers(1, 8),
        "window_ns": st.sampled_from([10 * MS, 100 * MS]),
        "window_buckets": st.sampled_from([1, 2, 5, 10]),
        "calls_min": st.integers(1, 10),
        "failure_rate_threshold": st.sampled_from([10.0, 50.0, 75.0, 100.0]),
        "slow_call_rate_threshold": st.sampled_from([25.0, 50.0, 100.0]),
        "slow_call_ns": st.sampled_from([0, 5 * MS]),
        "open_duration_ns": st.sampled_from([0, 20 * MS, 50 * MS]),
        "open_backoff_multiplier": st.sampled_from([1.0, 2.0, 3.5]),
        "half_open_permits": st.integers(1, 4),
        "half_open_max_ns": st.sampled_from([0, 30 * MS]),
    }
)

# Whole milliseconds, so boundaries (a call exactly slow_call_ns long, a half-open wait of
# exactly half_open_max_ns, a call exactly window_ns old) actually occur.
durations = st.integers(0, 10).map(lambda n: n * MS)
advances = st.one_of(st.integers(0, 60), st.sampled_from([10, 20, 30, 50])).map(lambda n: n * MS)

ops = st.lists(
    st.one_of(
        st.tuples(st.just("call"), st.booleans(), durations),
        st.tuples(st.just("call"), st.just(True), durations),
        st.tuples(st.just("hold"), st.booleans(), durations),
        st.tuples(st.just("answer"), st.booleans(), durations),
        st.tuples(st.just("ignore"), st.booleans(), st.just(0)),
        st.tuples(st.just("advance"), st.booleans(), advances),
    ),
    min_size=20,
    max_size=150,
)


@given(config=configs, steps=ops)
def test_native_breaker_follows_the_model(config: dict[str, Any], steps: list[Any]) -> None:
    clock = FakeClock()
    cap = config["open_duration_ns"] * 10
    model = BreakerModel(open_duration_max_ns=cap, **config)
    kwargs = dict(config)
    kwargs["slow_call_ns"] = config["slow_call_ns"] or None
    kwargs["half_open_max_ns"] = config["half_open_max_ns"] or None
    breaker = CircuitBreaker("m", open_duration_max_ns=cap, clock=clock, **kwargs)
    core = breaker.core
    held: list[tuple[int, int]] = []  # (model epoch, native epoch) of permits not yet answered
    for op, failed, amount in steps:
        now = clock()
        if op == "advance":
            clock.advance(amount)
            continue
        if op in ("answer", "ignore"):
            if not held:
                continue
            model_epoch, native_epoch = held.pop(0)
            if op == "answer":
                model.record(failed, amount, now, model_epoch)
                core.on_outcome(failed, amount, now, native_epoch)
            else:
                model.release(model_epoch)
                core.on_release(native_epoch)
        else:
            expected = model.allow(now)
            assert breaker.allow() == expected, (op, breaker.state, model.state)
            if expected and op == "hold":
                held.append((model.epoch, core.epoch))
            elif expected:
                model.record(failed, amount, now, model.epoch)
                if failed:
                    breaker.on_failure(amount)
                else:
                    breaker.on_success(amount)
        assert core.state == model.state
        if model.state == 1:
            assert core.open_until_ns == model.open_until
        if model.state == 2:
            assert core.half_open_used == model.probes_taken
