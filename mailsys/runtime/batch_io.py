"""batch_io - many concurrent calls, one worker thread hop and one store call.

SYNOPSIS
    from mailsys.runtime.batch_io import Batched
    loads = Batched(store.load_contents)          # fn(list[item]) -> list[outcome]
    content = await loads.call(qid)               # raises the outcome if an exception

DESCRIPTION
    A store call from trio costs a hand-off to a worker thread and back
    (a store_io.Worker of its own, one call at a time), and a write one fsync; under load the hand-offs alone
    were a fifth of an agent's CPU. Batched gathers the calls that come in
    while one batch is in its thread: the first caller that finds no batch
    running takes everything waiting (at most max_batch at a time) and runs
    fn on the lot in one call, again until nothing waits. There
    is no timer and no task of its own: a lone call runs at once, and
    batches grow by themselves under concurrency.

    fn gets the items in call order and returns one outcome per item: a
    value, or a QueueError instance for that item alone. A QueueError that
    fn raises is every item's outcome (a failed commit); anything else it
    raises is a bug: every waiter gets a QueueError and the caller that
    ran the batch gets the exception.

    call(item, linger=S) is for an item that may wait: when no batch is
    running, it waits up to S seconds for another caller to start one and
    rides on it, and only then runs a batch itself. (qmgr's removals: a
    message at a time, each removal was a commit of its own.)

GUARANTEES
    call() returns or raises only after the batch holding its item has
    ended. A batch once begun is not abandoned on cancellation: the runner
    works through what waits shielded (store calls are short), so no
    caller waits for a batch that never comes. The linger is shielded
    too: a cancelled caller's item is still run, at most S seconds late.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import trio

from mailsys.errors import QueueError
from mailsys.runtime import store_io

__all__ = ["Batched", "MAX_BATCH"]

I = TypeVar("I")

# Items per store call: one transaction must stay short (a write holds
# LMDB's single writer lock, shared with every process).
MAX_BATCH = 256


@dataclass(slots=True, eq=False)
class _Pending(Generic[I]):
    item: I
    done: trio.Event = field(default_factory=trio.Event)
    outcome: Any = None


class Batched(Generic[I]):
    """See the module description."""

    def __init__(self, fn: Callable[[list[I]], Sequence[Any]], *,
                 max_batch: int = MAX_BATCH) -> None:
        self._fn = fn
        self._max_batch = max_batch
        self._waiting: list[_Pending[I]] = []
        self._running = False
        self._worker = store_io.Worker(f"batched-{getattr(fn, '__name__', 'call')}")
        self.batches = 0                 # store calls made (for tests)

    async def call(self, item: I, *, linger: float = 0.0) -> Any:
        """call - fn's outcome for item, run with whatever else is waiting
        (after waiting up to linger seconds for more)."""
        pending = _Pending(item)
        self._waiting.append(pending)
        if linger > 0 and not self._running:
            with trio.CancelScope(deadline=trio.current_time() + linger, shield=True):
                await pending.done.wait()
        if not self._running and not pending.done.is_set():
            self._running = True
            try:
                with trio.CancelScope(shield=True):
                    while self._waiting:
                        batch = self._waiting[:self._max_batch]
                        del self._waiting[:self._max_batch]
                        await self._run(batch)
            except BaseException as e:
                self._fail(self._waiting, e)
                self._waiting = []
                raise
            finally:
                self._running = False
        await pending.done.wait()
        if isinstance(pending.outcome, BaseException):
            raise pending.outcome
        return pending.outcome

    async def _run(self, batch: list[_Pending[I]]) -> None:
        try:
            outcomes = await self._worker.run(self._fn, [p.item for p in batch])
        except QueueError as e:
            outcomes = [e] * len(batch)
        except BaseException as e:
            self._fail(batch, e)
            raise
        self.batches += 1
        for p, outcome in zip(batch, outcomes):
            p.outcome = outcome
            p.done.set()

    @staticmethod
    def _fail(batch: list[_Pending[I]], error: BaseException) -> None:
        for p in batch:
            p.outcome = QueueError(f"store call failed: {error!r}")
            p.done.set()
