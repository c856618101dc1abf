"""store_io - queue store calls from trio, in worker threads; group commit.

SYNOPSIS
    from mailsys.runtime import store_io
    envelope, queue = await store_io.run(store.load, qid)

    worker = store_io.Worker("loads")                # a thread of its own,
    contents = await worker.run(store.load_contents, qids)   # one call at a time

    commits = store_io.GroupCommit(store)
    nursery.start_soon(commits.run)                  # one committer task
    qid = await commits.create(envelope, content)    # returns once fsynced

DESCRIPTION
    The only place where mailsys.queue.QueueStore calls enter worker
    threads (STYLE.md (b), (c) 6). Every store call is one short synchronous
    LMDB transaction; a write may block on the single writer lock or on
    fsync, so it must never run on the trio thread. run() hands it to a
    worker thread of trio's thread cache (trio.lowlevel.start_thread_soon,
    within trio's default thread limiter, as trio.to_thread.run_sync does,
    without the per-call thread naming and context copy that made
    to_thread.run_sync cost twice as much CPU per hand-off; store calls
    neither log nor read context variables). (A read never waits for a
    writer: the smtp agent reads small content in place, where the
    hand-off would cost more than the read.) A Worker is for a caller that
    makes one call at a time on every message's path (GroupCommit,
    batch_io.Batched): its own thread, reached over a queue, answering
    through an eventfd, without the scheduler pass that run_sync_soon
    takes. A store call is never abandoned on cancellation, by either:
    the task waits for the thread to finish, so a commit that has started
    either completes or fails as a whole, and nobody loses track of it.

    GroupCommit is cleanup's durable write path (DESIGN.md contract 1).
    Callers of create() put their entry on a queue and wait; a commit runs
    in a worker thread, which takes whatever has gathered only once it holds
    LMDB's writer lock (store.create_late()), writing it all in one
    transaction, one fsync. One commit runs at a time. There is no timer:
    the first request after an idle spell starts its commit itself, at
    once; requests arriving during a commit (its fsync, or while the lock
    is held by qmgr or another process) wait, and the committer task,
    run(), starts the next commit for all of them when it ends, so batches
    grow by themselves under concurrency.
    create() returns only after its batch is committed, so the caller's
    reply comes after the fsync.

    A batch is all or nothing (create_late). One bad request must not fail
    its neighbours: when a batch fails for any reason other than QueueFull
    (a queue ID already in the queue or twice in the batch, a failing
    write), its entries are retried one by one and each gets its own
    outcome. QueueFull fails the whole batch: the store is full for all of
    them.

GUARANTEES
    create() returns the queue ID once the entry is committed and fsynced,
    or raises QueueError (QueueFull for a full map or disk) with nothing of
    that entry stored. A caller cancelled while waiting does not cancel the
    commit; its entry may still be stored (at-least-once, never zero).
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import threading
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import trio

from mailsys.errors import QueueError, QueueFull
from mailsys.message.envelope import Envelope
from mailsys.queue import Queue, QueueStore

__all__ = ["run", "Worker", "GroupCommit", "MAX_BATCH", "MAX_BATCH_BYTES"]

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
    await trio.lowlevel.checkpoint_if_cancelled()
    limiter = trio.to_thread.current_default_thread_limiter()
    slot = object()
    try:
        limiter.acquire_on_behalf_of_nowait(slot)
    except trio.WouldBlock:
        await limiter.acquire_on_behalf_of(slot)
    try:
        task = trio.lowlevel.current_task()
        token = trio.lowlevel.current_trio_token()

        def deliver(result: Any) -> None:       # in the worker thread
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(trio.lowlevel.reschedule, task, result)
        trio.lowlevel.start_thread_soon(functools.partial(fn, *args, **kwargs), deliver)
        return await trio.lowlevel.wait_task_rescheduled(_wait_for_the_thread)
    finally:
        limiter.release_on_behalf_of(slot)


def _wait_for_the_thread(raise_cancel: Any) -> trio.lowlevel.Abort:
    # A store call that has started is never abandoned: cancellation is
    # delivered once the thread is done.
    return trio.lowlevel.Abort.FAILED


class Worker:
    """A thread of its own for a caller that makes one store call at a time.

    GroupCommit and batch_io.Batched each have one store call running at
    most, on the path of every message. For them a call goes to their own
    thread over a queue and comes back through an eventfd the task waits
    on: a quarter of run()'s hand-off through trio's thread cache and
    run_sync_soon, which takes a scheduler pass of its own (a round trip of
    15 against 75 us, measured with both on a loaded 2-core machine). The
    thread is started on the first call and ends after IDLE_TIMEOUT
    seconds without one. Like run(), a call that has started is never
    abandoned: a cancellation is delivered at the caller's next checkpoint.
    """

    IDLE_TIMEOUT = 10.0

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[Callable[[], Any]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._done = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        weakref.finalize(self, os.close, self._done)
        self._outcome: tuple[Any, BaseException | None] = (None, None)
        self._busy = False

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """run - fn(*args) in this worker's thread (one call at a time)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._busy:
            raise RuntimeError(f"{self._name}: one call at a time")
        self._busy = True
        try:
            with self._lock:
                self._jobs.put(functools.partial(fn, *args))
                if self._thread is None:
                    self._thread = threading.Thread(target=self._serve, name=self._name,
                                                    daemon=True)
                    self._thread.start()
            with trio.CancelScope(shield=True):
                while True:
                    try:
                        os.eventfd_read(self._done)
                        break
                    except BlockingIOError:
                        await trio.lowlevel.wait_readable(self._done)
            value, error = self._outcome
            self._outcome = (None, None)
        finally:
            self._busy = False
        if error is not None:
            raise error
        return value

    def _serve(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=self.IDLE_TIMEOUT)
            except queue.Empty:
                with self._lock:
                    if self._jobs.empty():
                        self._thread = None
                        return
                continue
            try:
                self._outcome = (job(), None)
            except BaseException as e:          # noqa: BLE001 - the caller raises it
                self._outcome = (None, e)
            del job
            os.eventfd_write(self._done, 1)


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
    """Batches concurrent create() calls into one fsynced transaction."""

    def __init__(self, store: QueueStore, queue: Queue = Queue.INCOMING, *,
                 max_batch: int = MAX_BATCH, max_bytes: int = MAX_BATCH_BYTES,
                 on_commit: OnCommit | None = None) -> None:
        self._store = store
        self._queue = queue
        self._max_batch = max_batch
        self._max_bytes = max_bytes
        self._on_commit = on_commit
        # Appended to by create() on the trio thread, emptied from the
        # front by the commit's worker thread only: deque does both safely.
        self._waiting: deque[_Pending] = deque()
        self._wake = trio.Event()
        self._committing = False                # one commit at a time, from run() or create()
        self._worker = Worker(f"commit-{queue.value}")
        self.batches = 0                        # commits made (for tests and statistics)

    async def create(self, envelope: Envelope, content: bytes) -> str:
        """create - store one entry; its queue ID once durably committed."""
        pending = _Pending(envelope, content)
        self._waiting.append(pending)         # unbounded: callers are bounded by the skeleton
        if self._committing:
            self._wake.set()                  # it rides on the next commit
        else:
            # Nothing is being committed: start the commit from here rather
            # than after the committer task's turn in the scheduler. Shielded,
            # as a commit that has begun is never abandoned, and others may
            # ride on it.
            with trio.CancelScope(shield=True):
                await self._commit()
        await pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.qid

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """run - the committer task: commit what gathered during a commit, forever."""
        task_status.started()
        while True:
            while not self._waiting or self._committing:
                await self._wake.wait()
                self._wake = trio.Event()
            await self._commit()

    def _take(self) -> list[_Pending]:
        """In the worker thread: the next batch off the front of the queue."""
        waiting = self._waiting
        batch = [waiting.popleft()]           # the first one goes even when alone too big
        size = len(batch[0].content)
        while waiting and len(batch) < self._max_batch:
            if size + len(waiting[0].content) > self._max_bytes:
                break
            batch.append(waiting.popleft())
            size += len(batch[-1].content)
        return batch

    async def _commit(self) -> None:
        self._committing = True
        try:
            await self._commit_one()
        finally:
            self._committing = False
            if self._waiting:
                self._wake.set()            # what came meanwhile: the committer's turn

    async def _commit_one(self) -> None:
        taken: list[_Pending] = []
        try:
            outcomes = await self._worker.run(_commit_batch, self._store, self._queue,
                                              self._take, taken)
        except BaseException as e:
            # A bug, or cancellation before the thread started: release the
            # waiters with a failure (nothing of theirs was written), then
            # let it propagate so the skeleton logs it.
            if not taken and self._waiting:
                taken = self._take()
            _settle(taken, [QueueError(f"commit failed: {e!r}")] * len(taken))
            raise
        self.batches += 1
        _settle(taken, outcomes)
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


def _commit_batch(store: QueueStore, queue: Queue, take: Callable[[], list[_Pending]],
                  taken: list[_Pending]) -> list[str | QueueError]:
    """In a worker thread: commit what take() gives once the writer lock is
    held (it lands in taken); each outcome a queue ID or an error."""
    def items() -> list[tuple[Envelope, bytes]]:
        taken.extend(take())
        return [(p.envelope, p.content) for p in taken]
    try:
        return list(store.create_late(items, queue))
    except QueueFull as e:
        if not taken:
            taken.extend(take())
        return [e] * len(taken)
    except QueueError as e:
        if not taken:
            # The store failed before the transaction began: fail this batch
            # (the next one tries again) rather than spin on it.
            taken.extend(take())
            return [e] * len(taken)
        if len(taken) == 1:
            return [e]
    # Someone else's failure must not become this entry's (a duplicate ID,
    # a failing write): try each alone.
    outcomes: list[str | QueueError] = []
    for p in taken:
        try:
            outcomes.append(store.create(p.envelope, p.content, queue))
        except QueueError as one:
            outcomes.append(one)
    return outcomes
