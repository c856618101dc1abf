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
    fsync), through mailsys.runtime.batch_io.Batched: batches grow by
    themselves under load, and a scan or an update is committed at once.

    A removal waits up to REMOVE_LINGER for a commit to ride on: the next
    scan (cleanup's triggers come at most every 20 ms), another job's
    results, or the other removals of that time. One message at a time,
    every removal used to be a commit of its own, the most of qmgr's
    commits; each one holds LMDB's single writer lock, which cleanup needs
    for the mail it has to accept. A removal that comes late is harmless
    (DESIGN.md contract 2: a crash in between delivers the message again).

GUARANTEES
    apply() returns what QueueStore.update() or remove() would (an
    Admitted for an Admit), only after the transaction holding it is
    committed and fsynced (a removal at most REMOVE_LINGER late, even when
    cancelled); it raises the
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

__all__ = ["StoreWrites", "MAX_BATCH", "REMOVE_LINGER"]

# Seconds a removal waits for company: the pace of cleanup's triggers.
REMOVE_LINGER = 0.02


class StoreWrites:
    """See the module description."""

    def __init__(self, store: QueueStore, *, max_batch: int = MAX_BATCH,
                 remove_linger: float = REMOVE_LINGER) -> None:
        self._store = store
        self._remove_linger = remove_linger
        self._batched = Batched(self._apply_many, max_batch=max_batch)

    @property
    def batches(self) -> int:
        """Commits made (for tests)."""
        return self._batched.batches

    def _apply_many(self, ops: list[Update | Remove | Admit]) -> list[Any]:
        return self._store.apply_many(ops)

    async def apply(self, op: Update | Remove | Admit) -> Any:
        """apply - one scan, update or removal, committed with whatever else is ready."""
        return await self._batched.call(
            op, linger=self._remove_linger if isinstance(op, Remove) else 0.0)
