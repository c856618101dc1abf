"""writes - qmgr's group commit: queue entry updates and removals batched.

SYNOPSIS
    writes = StoreWrites(store)
    env = await writes.apply(Update(qid, src=Queue.ACTIVE, rcpt=changes))
    notice_ids = await writes.apply(Remove(qid, src=Queue.ACTIVE, notices=...))

DESCRIPTION
    Every delivery's results and every finished entry's removal is a store
    write, and each write transaction costs an fsync. The jobs that end
    while one commit is in flight put their operations on a list; the
    first caller that finds no commit running becomes the committer and
    writes whatever has gathered with one QueueStore.apply_many() (one
    transaction, one fsync) until the list is empty. There is no timer and
    no task of its own: an idle qmgr commits a lone write at once, and
    batches grow by themselves under load.

GUARANTEES
    apply() returns what QueueStore.update() or remove() would, only after
    the transaction holding it is committed and fsynced; it raises the
    QueueError they would raise, and then that operation changed nothing
    (apply_many() runs each in a nested transaction). An operation's
    outcome never depends on its neighbours', except that a failed commit
    (a full disk) fails the whole batch. Commits, once begun, are not
    abandoned on cancellation: the committer finishes the list shielded,
    so no caller waits for a commit that never comes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import trio

from mailsys.errors import QueueError
from mailsys.queue import QueueStore, Remove, Update
from mailsys.runtime import store_io

__all__ = ["StoreWrites", "MAX_BATCH"]

# Operations per transaction: one commit must not hold LMDB's single writer
# lock (shared with cleanup) for long.
MAX_BATCH = 256


@dataclass(slots=True, eq=False)
class _Pending:
    op: Update | Remove
    done: trio.Event = field(default_factory=trio.Event)
    outcome: Any = None


class StoreWrites:
    """See the module description."""

    def __init__(self, store: QueueStore, *, max_batch: int = MAX_BATCH) -> None:
        self._store = store
        self._max_batch = max_batch
        self._waiting: list[_Pending] = []
        self._committing = False
        self.batches = 0                 # commits made (for tests)

    async def apply(self, op: Update | Remove) -> Any:
        """apply - one update or removal, committed with whatever else is ready."""
        pending = _Pending(op)
        self._waiting.append(pending)
        if not self._committing:
            self._committing = True
            try:
                with trio.CancelScope(shield=True):
                    while self._waiting:
                        batch = self._waiting[:self._max_batch]
                        del self._waiting[:self._max_batch]
                        await self._commit(batch)
            except BaseException as e:
                self._fail(self._waiting, e)
                self._waiting = []
                raise
            finally:
                self._committing = False
        await pending.done.wait()
        if isinstance(pending.outcome, BaseException):
            raise pending.outcome
        return pending.outcome

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            outcomes = await store_io.run(self._store.apply_many, [p.op for p in batch])
        except QueueError as e:
            outcomes = [e] * len(batch)
        except BaseException as e:
            # A bug: fail the callers (nothing of theirs was written), let it propagate.
            self._fail(batch, e)
            raise
        self.batches += 1
        for p, outcome in zip(batch, outcomes):
            p.outcome = outcome
            p.done.set()

    @staticmethod
    def _fail(batch: list[_Pending], error: BaseException) -> None:
        for p in batch:
            p.outcome = QueueError(f"commit failed: {error!r}")
            p.done.set()
