"""store_io - queue store calls from trio, in worker threads; group commit.

SYNOPSIS
    from mailsys.runtime import store_io
    envelope, queue = await store_io.run(store.load, qid)

    commits = store_io.GroupCommit(store)
    nursery.start_soon(commits.run)                  # one committer task
    qid = await commits.create(envelope, content)    # returns once fsynced

DESCRIPTION
    The only place where mailsys.queue.QueueStore calls enter worker
    threads (STYLE.md (b), (c) 6). Every store call is one short synchronous
    LMDB transaction that may block on the single writer lock or on fsync,
    so it must never run on the trio thread. run() hands it to
    trio.to_thread.run_sync. A store call is never abandoned on cancellation:
    the task waits for the thread to finish, so a commit that has started
    either completes or fails as a whole, and nobody loses track of it.

    GroupCommit is cleanup's durable write path (DESIGN.md contract 1).
    Callers of create() put their entry on a memory channel and wait; one
    committer task, run(), takes whatever has gathered while the previous
    commit was in flight, and writes it with one store.create_many() call:
    one transaction, one fsync, for the whole batch. There is no timer: the
    first request after an idle spell is committed at once, and batches
    grow by themselves under concurrency, because requests arriving during
    one fsync ride on the next one. create() returns only after its batch
    is committed, so the caller's reply comes after the fsync.

    A batch is all or nothing (create_many). One bad request must not fail
    its neighbours, so a queue ID that is already in the queue (or twice in
    one batch) is refused up front with QueueError, and when a batch fails
    for any reason other than QueueFull, its entries are retried one by one
    and each gets its own outcome. QueueFull fails the whole batch: the
    store is full for all of them.

GUARANTEES
    create() returns the queue ID once the entry is committed and fsynced,
    or raises QueueError (QueueFull for a full map or disk) with nothing of
    that entry stored. A caller cancelled while waiting does not cancel the
    commit; its entry may still be stored (at-least-once, never zero).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import trio

from mailsys.errors import QueueError, QueueFull
from mailsys.message.envelope import Envelope
from mailsys.queue import Queue, QueueStore

__all__ = ["run", "GroupCommit", "MAX_BATCH", "MAX_BATCH_BYTES"]

T = TypeVar("T")

# A batch is one LMDB write transaction: bound it so that one commit never
# holds the single writer lock (shared by every process) for long. 256
# entries of a typical few-KB message are about a megabyte.
MAX_BATCH = 256
# ... and so that a batch of large messages stays within a few fsyncs'
# worth of pages; a single message bigger than this still goes alone.
MAX_BATCH_BYTES = 32 << 20


async def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """run - fn(*args, **kwargs) in a worker thread; never abandoned on cancel."""
    return await trio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


@dataclass(slots=True, eq=False)
class _Pending:
    """One create() waiting for its batch."""

    envelope: Envelope
    content: bytes
    done: trio.Event = field(default_factory=trio.Event)
    qid: str = ""
    error: QueueError | None = None


OnCommit = Callable[[Sequence[str]], Awaitable[None] | None]


class GroupCommit:
    """Batches concurrent create() calls into one fsynced create_many()."""

    def __init__(self, store: QueueStore, queue: Queue = Queue.INCOMING, *,
                 max_batch: int = MAX_BATCH, max_bytes: int = MAX_BATCH_BYTES,
                 on_commit: OnCommit | None = None) -> None:
        self._store = store
        self._queue = queue
        self._max_batch = max_batch
        self._max_bytes = max_bytes
        self._on_commit = on_commit
        self._send, self._receive = trio.open_memory_channel[_Pending](math.inf)
        self._held: _Pending | None = None      # did not fit the last batch
        self.batches = 0                        # commits made (for tests and statistics)

    async def create(self, envelope: Envelope, content: bytes) -> str:
        """create - store one entry; its queue ID once durably committed."""
        pending = _Pending(envelope, content)
        self._send.send_nowait(pending)       # unbounded: callers are bounded by the skeleton
        await pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.qid

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """run - the committer task: commit what has gathered, forever."""
        task_status.started()
        while True:
            batch = [self._held or await self._receive.receive()]
            self._held = None
            size = len(batch[0].content)
            while len(batch) < self._max_batch:
                try:
                    nxt = self._receive.receive_nowait()
                except trio.WouldBlock:
                    break
                if size + len(nxt.content) > self._max_bytes:
                    self._held = nxt
                    break
                batch.append(nxt)
                size += len(nxt.content)
            await self._commit(batch)

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            outcomes = await run(_commit_batch, self._store, self._queue,
                                 [(p.envelope, p.content) for p in batch])
        except QueueError as e:
            outcomes = [e] * len(batch)
        except BaseException as e:
            # A bug, or cancellation before the thread started: release the
            # waiters with a failure (nothing of theirs was written), then
            # let it propagate so the skeleton logs it.
            _settle(batch, [QueueError(f"commit failed: {e!r}")] * len(batch))
            raise
        self.batches += 1
        _settle(batch, outcomes)
        committed = [o for o in outcomes if isinstance(o, str)]
        if committed and self._on_commit is not None:
            result = self._on_commit(committed)
            if result is not None:
                await result


def _settle(batch: list[_Pending], outcomes: list[str | QueueError]) -> None:
    for pending, outcome in zip(batch, outcomes):
        if isinstance(outcome, str):
            pending.qid = outcome
        else:
            pending.error = outcome
        pending.done.set()


def _commit_batch(store: QueueStore, queue: Queue,
                  items: list[tuple[Envelope, bytes]]) -> list[str | QueueError]:
    """In a worker thread: commit items, each outcome a queue ID or an error."""
    outcomes: list[str | QueueError | None] = [None] * len(items)
    seen: set[str] = set()
    todo: list[int] = []
    for i, (env, _) in enumerate(items):
        qid = env.queue_id
        if qid and (qid in seen or store.exists(qid)):
            outcomes[i] = QueueError(f"{qid}: duplicate queue ID")
            continue
        seen.add(qid)
        todo.append(i)
    if todo:
        try:
            for i, qid in zip(todo, store.create_many([items[i] for i in todo], queue)):
                outcomes[i] = qid
        except QueueFull as e:
            for i in todo:
                outcomes[i] = e
        except QueueError as e:
            if len(todo) == 1:
                outcomes[todo[0]] = e
            else:
                # Someone else's failure must not become this entry's: try
                # each alone (rare: a race on an ID, or a failing write).
                for i in todo:
                    try:
                        outcomes[i] = store.create(*items[i], queue)
                    except QueueError as one:
                        outcomes[i] = one
    return outcomes  # type: ignore[return-value]
