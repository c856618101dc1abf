"""writes - qmgr's group commit: scans, updates and removals batched.

SYNOPSIS
    writes = StoreWrites(store)
    env = await writes.apply(Update(qid, src=Queue.ACTIVE, rcpt=changes))
    notice_ids = await writes.apply(Remove(qid, src=Queue.ACTIVE, notices=...))

DESCRIPTION
    Every scan that takes entries into the active queue (Admit), every
    delivery's results and every finished entry's removal is a store
    write, and each write transaction costs an fsync. The operations of the
    jobs that end while one commit is in flight are written together by
    the next one, with one QueueStore.apply_many() (one transaction, one
    fsync), through mailsys.runtime.batch_io.Batched: no timer, a lone
    write is committed at once, batches grow by themselves under load.

GUARANTEES
    apply() returns what QueueStore.update() or remove() would (an
    Admitted for an Admit), only after the transaction holding it is
    committed and fsynced; it raises the
    QueueError they would raise, and then that operation changed nothing
    (apply_many() runs each in a nested transaction). An operation's
    outcome never depends on its neighbours', except that a failed commit
    (a full disk) fails the whole batch. A commit once begun is never
    abandoned on cancellation.
"""

from __future__ import annotations

from typing import Any

from mailsys.queue import Admit, QueueStore, Remove, Update
from mailsys.runtime.batch_io import MAX_BATCH, Batched

__all__ = ["StoreWrites", "MAX_BATCH"]


class StoreWrites:
    """See the module description."""

    def __init__(self, store: QueueStore, *, max_batch: int = MAX_BATCH) -> None:
        self._store = store
        self._batched = Batched(self._apply_many, max_batch=max_batch)

    @property
    def batches(self) -> int:
        """Commits made (for tests)."""
        return self._batched.batches

    def _apply_many(self, ops: list[Update | Remove | Admit]) -> list[Any]:
        return self._store.apply_many(ops)

    async def apply(self, op: Update | Remove | Admit) -> Any:
        """apply - one scan, update or removal, committed with whatever else is ready."""
        return await self._batched.call(op)
