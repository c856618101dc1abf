"""GroupCommit: one batch per commit, all or nothing, one bad entry fails alone."""

from __future__ import annotations

import threading

import pytest
import trio
import trio.testing

from mailsys.errors import QueueError, QueueFull
from mailsys.message.envelope import Envelope, Recipient
from mailsys.message.qid import new_qid
from mailsys.queue import Queue, QueueStore
from mailsys.runtime import store_io
from mailsys.runtime.store_io import GroupCommit


def entry(size=100, qid=None):
    env = Envelope(queue_id=qid or new_qid(), sender="a@example.com",
                   recipients=(Recipient("b@example.org"),), size=size)
    return env, b"Subject: x\r\n\r\n" + b"y" * size


async def create_all(commits, entries, committed_hook=None):
    """Every create() queued while another writer holds LMDB's lock, so that
    they form one batch: the first starts the commit, whose worker thread
    takes the batch once the lock is free."""
    results = [None] * len(entries)
    store = commits._store
    locked, release = threading.Event(), threading.Event()

    def hold(txn):
        locked.set()
        release.wait(5)
    holder = threading.Thread(target=store._write, args=(hold, 0))
    holder.start()
    locked.wait(5)

    async def one(i, env, content):
        try:
            results[i] = await commits.create(env, content)
        except QueueError as e:
            results[i] = e
    async with trio.open_nursery() as nursery:
        nursery.start_soon(commits.run)
        for i, (env, content) in enumerate(entries):
            nursery.start_soon(one, i, env, content)
        await trio.testing.wait_all_tasks_blocked()
        release.set()
        while any(r is None for r in results):
            await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    holder.join()
    return results


def test_a_full_batch_fails_whole_and_stores_nothing(queue_dir):
    with QueueStore.open(queue_dir, map_size=256 << 10, max_map_size=256 << 10) as store:
        entries = [entry(60_000) for _ in range(6)]          # 360 KB together, 60 KB each
        commits = GroupCommit(store)
        results = trio.run(create_all, commits, entries)
        assert all(isinstance(r, QueueFull) for r in results)
        assert commits.batches == 1
        assert store.counts()[Queue.INCOMING] == 0
        # One of them alone fits.
        results = trio.run(create_all, GroupCommit(store), entries[:1])
        assert results == [entries[0][0].queue_id]


def test_other_failures_are_retried_one_by_one(queue_dir, monkeypatch):
    with QueueStore.open(queue_dir) as store:
        dup = entry()
        store.create(*dup)
        entries = [entry(), entry(), entry()]
        bad_qid = entries[1][0].queue_id
        real_create = store.create

        def create_late(take, queue=Queue.INCOMING):
            store._write(lambda txn: None, 0)   # waits for the writer lock, as the real one
            list(take())            # the batch was taken, then its write failed
            raise QueueError("simulated write failure")

        def create(env, content, queue=Queue.INCOMING):
            if env.queue_id == bad_qid:
                raise QueueError("simulated write failure")
            return real_create(env, content, queue)
        monkeypatch.setattr(store, "create_late", create_late)
        monkeypatch.setattr(store, "create", create)
        commits = GroupCommit(store)
        results = trio.run(create_all, commits, entries + [dup])
        assert results[0] == entries[0][0].queue_id and results[2] == entries[2][0].queue_id
        assert isinstance(results[1], QueueError) and "simulated" in str(results[1])
        assert isinstance(results[3], QueueError) and "duplicate" in str(results[3])
        assert commits.batches == 1
        assert store.counts()[Queue.INCOMING] == 3       # dup + entries 0 and 2


def test_on_commit_hears_each_batch(queue_dir):
    seen = []
    with QueueStore.open(queue_dir) as store:
        commits = GroupCommit(store, on_commit=seen.append)
        entries = [entry() for _ in range(4)]
        results = trio.run(create_all, commits, entries)
    assert len(seen) == 1 and sorted(seen[0]) == sorted(results)


def test_a_request_after_an_idle_spell_commits_without_the_committer_task(queue_dir):
    with QueueStore.open(queue_dir) as store:
        commits = GroupCommit(store)

        async def main():
            return [await commits.create(*entry()) for _ in range(2)]     # no run() task
        qids = trio.run(main)
        assert commits.batches == 2 and all(store.exists(q) for q in qids)


def test_a_batch_gathers_while_another_writer_holds_the_lock(queue_dir):
    """Requests that arrive while the commit waits for LMDB's writer lock
    (held here by another thread, as qmgr holds it from its process) ride on
    that same commit."""
    with QueueStore.open(queue_dir) as store:
        commits = GroupCommit(store)
        locked, release = threading.Event(), threading.Event()

        def hold(txn):
            locked.set()
            release.wait(5)

        async def main():
            holder = threading.Thread(target=store._write, args=(hold, 0))
            holder.start()
            locked.wait(5)
            results = []

            async def one(env, content):
                results.append(await commits.create(env, content))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(commits.run)
                nursery.start_soon(one, *entry())
                await trio.sleep(0.1)            # its commit now waits for the lock
                for _ in range(3):
                    nursery.start_soon(one, *entry())
                await trio.sleep(0.1)
                release.set()
                while len(results) < 4:
                    await trio.sleep(0.01)
                nursery.cancel_scope.cancel()
            holder.join()
            return results

        results = trio.run(main)
        assert commits.batches == 1
        assert store.counts()[Queue.INCOMING] == 4 and all(store.exists(q) for q in results)


def test_create_late_takes_once_when_the_map_grows(queue_dir):
    with QueueStore.open(queue_dir, map_size=256 << 10, max_map_size=16 << 20) as store:
        entries = [entry(60_000) for _ in range(6)]          # more than the first map holds
        calls = []

        def take():
            calls.append(1)
            return entries
        qids = store.create_late(take)
        assert calls == [1] and store.map_size() > 256 << 10
        assert qids == [env.queue_id for env, _ in entries]
        assert store.counts()[Queue.INCOMING] == 6


@pytest.fixture(params=["run", "worker"])
def call(request):
    """store_io.run, or the run() of a Worker: the same promises."""
    return store_io.run if request.param == "run" else store_io.Worker("test").run


def test_run_gives_the_value_or_the_exception_from_a_worker_thread(call):
    async def main():
        seen = []

        def fn(a, b):
            seen.append(threading.current_thread())
            return a + b

        def boom():
            raise QueueError("no")
        assert await call(fn, 1, 2) == 3
        assert seen[0] is not threading.current_thread()
        try:
            await call(boom)
        except QueueError as e:
            return str(e)
    assert trio.run(main) == "no"


def test_run_is_never_abandoned_and_cancellation_comes_after(call):
    started, release = threading.Event(), threading.Event()
    finished = []

    def slow():
        started.set()
        release.wait(5)
        finished.append(True)
        return "done"

    async def main():
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                async def cancel_when_started():
                    await trio.to_thread.run_sync(started.wait, 5)
                    scope.cancel()
                    await trio.sleep(0.1)
                    release.set()
                nursery.start_soon(cancel_when_started)
                got.append(await call(slow))
                await trio.lowlevel.checkpoint()
                raise AssertionError("not cancelled")
        return scope.cancelled_caught

    got = []
    assert trio.run(main) is True
    # The caller waited for the thread and had its outcome; the cancellation
    # came at its next checkpoint.
    assert finished == [True] and got == ["done"]


def test_run_does_not_start_for_a_caller_already_cancelled(call):
    ran = []

    async def main():
        with trio.CancelScope() as scope:
            scope.cancel()
            await call(ran.append, 1)
    trio.run(main)
    assert ran == []


def test_a_worker_thread_ends_when_idle_and_a_later_call_starts_another(monkeypatch):
    monkeypatch.setattr(store_io.Worker, "IDLE_TIMEOUT", 0.05)
    worker = store_io.Worker("test")

    async def main():
        first = await worker.run(threading.current_thread)
        await trio.sleep(0.3)
        assert not first.is_alive()
        second = await worker.run(threading.current_thread)
        assert second is not first and second.name == "test"
        # one call at a time
        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker.run, threading.Event().wait, 0.2)
            await trio.sleep(0.05)
            with pytest.raises(RuntimeError, match="one call at a time"):
                await worker.run(int)
    trio.run(main)


def test_run_keeps_within_the_thread_limiter():
    most, now, lock = [0], [0], threading.Lock()

    def one():
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
        threading.Event().wait(0.02)
        with lock:
            now[0] -= 1

    async def main():
        trio.to_thread.current_default_thread_limiter().total_tokens = 3
        async with trio.open_nursery() as nursery:
            for _ in range(12):
                nursery.start_soon(store_io.run, one)
        return trio.to_thread.current_default_thread_limiter().borrowed_tokens
    assert trio.run(main) == 0
    assert most[0] == 3
