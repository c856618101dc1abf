"""ByteBudget: bytes granted in arrival order, oversize alone, cancellation safe."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from mailsys.runtime.byte_budget import ByteBudget

pytestmark = pytest.mark.timeout(10)


async def take(budget, got, name, size, pause=0.0):
    """Hold size bytes; note name (and what the budget then has in use)."""
    async with budget.hold(size):
        got.append((name, budget.used))
        await trio.sleep(pause)


def test_a_budget_needs_a_byte():
    with pytest.raises(ValueError):
        ByteBudget(0)


def test_holds_up_to_the_total_and_gives_back():
    async def main():
        budget = ByteBudget(100)
        async with budget.hold(60):
            assert budget.used == 60
            assert budget.free_now(40) and not budget.free_now(41)
            async with budget.hold(40):
                assert budget.used == 100
        assert budget.used == 0
    trio.run(main)


def test_waiters_are_served_in_arrival_order():
    async def main():
        budget = ByteBudget(100)
        got = []
        async with trio.open_nursery() as nursery:
            async with budget.hold(90):
                nursery.start_soon(take, budget, got, "big", 95, 0.01)
                await trio.testing.wait_all_tasks_blocked()
                # Would fit beside the 90 held, but "big" came first.
                nursery.start_soon(take, budget, got, "small", 10)
                await trio.testing.wait_all_tasks_blocked()
                assert got == [] and not budget.free_now(1)
        assert got == [("big", 95), ("small", 10)]
        assert budget.used == 0
    trio.run(main)


def test_a_request_over_the_total_goes_alone():
    async def main():
        budget = ByteBudget(100)
        got = []
        async with trio.open_nursery() as nursery:
            async with budget.hold(1):
                nursery.start_soon(take, budget, got, "oversize", 500)
                await trio.testing.wait_all_tasks_blocked()
                assert got == []
        assert got == [("oversize", 100)]
        assert budget.used == 0
    trio.run(main)


def test_a_cancelled_waiter_holds_up_nobody():
    async def main():
        budget = ByteBudget(100)
        got = []
        async with trio.open_nursery() as nursery:
            async with budget.hold(50):
                async with trio.open_nursery() as inner:
                    inner.start_soon(take, budget, got, "cancelled", 60)
                    await trio.testing.wait_all_tasks_blocked()
                    # Would fit beside the 50 held, but waits its turn.
                    nursery.start_soon(take, budget, got, "behind", 40, 1.0)
                    await trio.testing.wait_all_tasks_blocked()
                    assert got == []
                    inner.cancel_scope.cancel()
                # The cancelled one took nothing and no longer holds it up.
                await trio.testing.wait_all_tasks_blocked()
                assert got == [("behind", 90)]
        assert budget.used == 0
    trio.run(main)


def test_a_waiter_past_its_deadline_takes_nothing():
    async def main():
        budget = ByteBudget(100)
        got, late = [], []

        async def until(deadline):
            try:
                async with budget.hold(60, deadline=deadline):
                    got.append("late")
            except trio.TooSlowError:
                late.append(trio.current_time())

        async with trio.open_nursery() as nursery:
            async with budget.hold(50):
                start = trio.current_time()
                nursery.start_soon(until, start + 5)
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(take, budget, got, "behind", 40)
                await trio.testing.wait_all_tasks_blocked()
                assert got == []
                await trio.sleep(6)
                # Refused at its deadline; the one behind it goes.
                assert late == [start + 5]
                assert got == [("behind", 90)]
            # A deadline that has passed does not matter when there is room.
            async with budget.hold(100, deadline=start):
                assert budget.used == 100
        assert got == [("behind", 90)] and budget.used == 0
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
