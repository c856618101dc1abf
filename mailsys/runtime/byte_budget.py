"""byte_budget - how many bytes of large content a process has in flight at once.

SYNOPSIS
    budget = ByteBudget(64 << 20)
    async with budget.hold(len(content)):
        ...                             # at most 64 MB held this way at once
    async with budget.hold(len(content), deadline=trio.current_time() + 60):
        ...                             # trio.TooSlowError: not granted by then

DESCRIPTION
    A semaphore counted in bytes, for a process that hands whole messages
    on (smtpd to cleanup). Each message is one copy in the sender while it
    goes and one or two in the receiver until it is committed; without a
    bound, fifty clients each sending a 10 MB message at once put 500 MB in
    each of the two processes, where Postfix, which streams its queue
    file, holds a few kilobytes per message. Waiting here costs a message
    nothing in memory when its content waits in a file meanwhile (smtpd
    spools it there first).

    Waiters are served in arrival order, so a large message is not passed
    over for ever by smaller ones. A grant without a wait is no checkpoint
    (see _acquire). A request larger than the whole budget
    counts as the whole budget: it goes alone, once everything before it is
    done. A task cancelled while it waits, or still waiting at its
    deadline (trio.TooSlowError), takes nothing and holds up nobody.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

__all__ = ["ByteBudget"]


class ByteBudget:
    """Up to ``total`` bytes held at once, granted first come, first served."""

    def __init__(self, total: int) -> None:
        if total < 1:
            raise ValueError("a byte budget needs at least one byte")
        self.total = total
        self.used = 0
        self._waiting: deque[tuple[int, trio.Event]] = deque()

    def free_now(self, size: int) -> bool:
        """Whether hold(size) would be granted without waiting."""
        return not self._waiting and self.used + min(size, self.total) <= self.total

    @asynccontextmanager
    async def hold(self, size: int, *, deadline: float = math.inf) -> AsyncIterator[None]:
        """Hold size bytes of the budget for the duration of the block;
        trio.TooSlowError when they are not granted by deadline (trio time)."""
        size = min(max(size, 0), self.total)
        await self._acquire(size, deadline)
        try:
            yield
        finally:
            self._release(size)

    async def _acquire(self, size: int, deadline: float) -> None:
        if self.free_now(size):
            # No checkpoint: what the caller checked just before (smtpd: is
            # a cleanup channel free, or must the content go to its file?)
            # still holds when it goes on; its next call checkpoints. Fair,
            # since the budget is free now only while nobody waits.
            self.used += size
            return
        turn = (size, trio.Event())
        self._waiting.append(turn)
        try:
            with trio.fail_at(deadline):
                await turn[1].wait()
        except BaseException:
            if turn[1].is_set():
                self._release(size)       # granted as the cancellation came
            else:
                self._waiting.remove(turn)
                self._grant()             # it may have held up the ones behind it
            raise

    def _release(self, size: int) -> None:
        self.used -= size
        self._grant()

    def _grant(self) -> None:
        while self._waiting and self.used + self._waiting[0][0] <= self.total:
            size, granted = self._waiting.popleft()
            self.used += size
            granted.set()
