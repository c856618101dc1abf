"""One queue manager per queue: the second waits for the first's lock."""

from __future__ import annotations

import trio

from mailsys.qmgr.lock import acquire, release


def test_the_second_waits_until_the_first_lets_go(tmp_path):
    path = tmp_path / "pid" / "qmgr.lock"
    order = []

    async def main():
        first = await acquire(path)
        order.append("first")

        async def second():
            fd = await acquire(path)
            order.append("second")
            release(fd)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(second)
            await trio.sleep(0.2)
            assert order == ["first"]          # still waiting
            release(first)
        assert order == ["first", "second"]

    trio.run(main)


def test_a_waiting_acquire_can_be_cancelled(tmp_path):
    path = tmp_path / "qmgr.lock"

    async def main():
        held = await acquire(path)
        with trio.move_on_after(0.1) as scope:
            await acquire(path)
        release(held)
        assert scope.cancelled_caught
        release(await acquire(path))           # free again

    trio.run(main)
