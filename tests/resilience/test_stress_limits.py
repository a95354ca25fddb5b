"""Seeded random stress in virtual time: thousands of coroutines arriving, holding, timing out
and being cancelled at random against a Bulkhead and a RateLimiter. The accounting must add up
exactly and the limits must hold at every instant. Each test prints its seed."""

import asyncio
import random

import pytest

from haperf.errors import BulkheadFullError, RateLimitedError
from haperf.resilience import Bulkhead, RateLimiter
from tests.resilience.vloop_limits import VirtualLoop, run_virtual

SEEDS = (1, 7, 20261122)
MS = 1_000_000


@pytest.mark.parametrize("seed", SEEDS)
def test_bulkhead_random_arrivals_timeouts_and_cancels(seed: int) -> None:
    print(f"seed={seed}")
    rng = random.Random(seed)

    async def main(loop: VirtualLoop) -> None:
        bh = Bulkhead(8, queue_max=40, queue_timeout_ns=30 * MS)
        running = 0
        peak = 0
        outcomes = {"ok": 0, "full": 0, "cancelled": 0}

        async def hold(duration: float) -> None:
            nonlocal running, peak
            async with bh:
                running += 1
                peak = max(peak, running)
                assert running <= 8 and bh.inflight <= 8
                try:
                    await asyncio.sleep(duration)
                finally:
                    running -= 1

        async def caller(duration: float) -> None:
            try:
                await hold(duration)
            except BulkheadFullError:
                outcomes["full"] += 1
            except asyncio.CancelledError:
                outcomes["cancelled"] += 1
                raise
            else:
                outcomes["ok"] += 1

        tasks = []
        for _ in range(3000):
            await asyncio.sleep(rng.expovariate(1 / 0.0006))
            task = asyncio.create_task(caller(rng.uniform(0.001, 0.012)))
            tasks.append(task)
            if rng.random() < 0.1:
                loop.call_later(rng.uniform(0, 0.02), task.cancel)
        await asyncio.gather(*tasks, return_exceptions=True)
        m = bh.metrics()
        assert peak <= 8 and m["inflight_peak"] <= 8
        assert m["inflight"] == 0 and m["queued"] == 0
        assert sum(outcomes.values()) == 3000
        assert outcomes["full"] == m["rejections"]
        assert outcomes["ok"] + outcomes["cancelled"] >= m["successes"]
        assert m["successes"] == outcomes["ok"]
        assert outcomes["full"] > 0 and outcomes["ok"] > 0 and m["handovers"] > 0
        # Every call was admitted, rejected, or cancelled while queued.
        assert m["admitted"] + m["rejections"] <= 3000

    run_virtual(main)


@pytest.mark.parametrize("seed", SEEDS)
def test_rate_limiter_random_waiters_never_overspend(seed: int) -> None:
    print(f"seed={seed}")
    rng = random.Random(seed)
    rate, burst = 200.0, 10.0

    async def main(loop: VirtualLoop) -> None:
        rl = RateLimiter(rate, burst, clock=loop.clock_ns, waiters_max=50)
        start = loop.clock_ns()
        granted = 0.0
        grants: list[tuple[int, float]] = []

        async def caller(n: float) -> None:
            nonlocal granted
            try:
                await rl.acquire(n)
            except RateLimitedError:
                return
            granted += n
            grants.append((loop.clock_ns(), n))

        tasks = []
        for _ in range(2000):
            await asyncio.sleep(rng.expovariate(1 / 0.004))
            n = rng.choice((1.0, 1.0, 1.0, 2.5, 7.0))
            task = asyncio.create_task(caller(n))
            tasks.append(task)
            if rng.random() < 0.1:
                loop.call_later(rng.uniform(0, 0.05), task.cancel)
        await asyncio.gather(*tasks, return_exceptions=True)
        elapsed_s = (loop.clock_ns() - start) / 1e9
        assert granted <= burst + rate * elapsed_s + 1e-6
        # At every grant instant, the tokens handed out so far fit the bucket's budget.
        total = 0.0
        for at, n in grants:
            total += n
            assert total <= burst + rate * (at - start) / 1e9 + 1e-6
        m = rl.metrics()
        assert m["waiters"] == 0
        assert rl.tokens() <= burst

    run_virtual(main)
