"""Batched: concurrent calls share one store call, each gets its own outcome."""

import threading
import time

import pytest
import trio
import trio.testing

from mailsys.errors import NoSuchEntry, QueueError
from mailsys.message.envelope import Envelope, Recipient
from mailsys.message.qid import new_qid
from mailsys.queue import QueueStore
from mailsys.runtime.batch_io import Batched


@pytest.fixture
def store(tmp_path):
    s = QueueStore.open(tmp_path)
    yield s
    s.close()


def _fill(store, n):
    env = Envelope("", "a@example.com", (Recipient("b@example.net"),))
    return store.create_many([(env, f"content {i}".encode()) for i in range(n)])


def _gather(batched, items, gate=None):
    """Every item's outcome from concurrent calls. gate, if given, is set
    once every caller waits: a store function that waits for it keeps the
    first batch in its thread until then, so that the rest gather."""
    got = {}

    async def one(item):
        try:
            got[item] = await batched.call(item)
        except QueueError as e:
            got[item] = e

    async def main():
        async with trio.open_nursery() as n:
            for item in items:
                n.start_soon(one, item)
            if gate is not None:
                await trio.testing.wait_all_tasks_blocked()
                gate.set()
    trio.run(main)
    return got


def test_concurrent_loads_share_store_calls(store):
    qids = _fill(store, 30)
    gone = new_qid()
    gate = threading.Event()

    def load(items):
        gate.wait(5)
        return store.load_contents(items)
    batched = Batched(load)
    got = _gather(batched, qids + [gone], gate)
    assert [got[q] for q in qids] == [f"content {i}".encode() for i in range(30)]
    assert isinstance(got[gone], NoSuchEntry)
    # the first caller's item alone, then everything that came meanwhile
    assert batched.batches == 2


def test_max_batch_bounds_each_call(store):
    qids = _fill(store, 5)
    sizes = []

    gate = threading.Event()

    def fn(items):
        gate.wait(5)
        sizes.append(len(items))
        return store.load_contents(items)
    batched = Batched(fn, max_batch=2)
    got = _gather(batched, qids, gate)
    assert all(isinstance(got[q], bytes) for q in qids)
    assert sizes == [1, 2, 2]


def test_a_raised_queue_error_is_every_items_outcome(store):
    def fn(items):
        raise QueueError("disk on fire")
    got = _gather(Batched(fn), ["a", "b", "c"])
    assert all(str(got[k]) == "disk on fire" for k in "abc")


def test_a_lingering_call_rides_on_the_next_batch():
    calls = []

    def fn(items):
        calls.append(list(items))
        return [f"done {i}" for i in items]
    batched = Batched(fn)
    got = {}

    async def main():
        async with trio.open_nursery() as n:
            async def later():
                await trio.sleep(0.05)
                got["now"] = await batched.call("now")

            async def lingering():
                got["late"] = await batched.call("late", linger=5.0)
            n.start_soon(lingering)
            n.start_soon(later)
    start = time.monotonic()
    trio.run(main)
    assert calls == [["late", "now"]] and got["late"] == "done late"
    assert time.monotonic() - start < 4.0


def test_a_lone_lingering_call_runs_after_its_linger_even_when_cancelled():
    calls = []

    def fn(items):
        calls.append(list(items))
        return list(items)
    batched = Batched(fn)
    got = {}

    async def main():
        with trio.move_on_after(0.01) as scope:
            await batched.call("x", linger=0.2)
        got["cancelled"] = scope.cancelled_caught
    start = time.monotonic()
    trio.run(main)
    assert calls == [["x"]] and got["cancelled"]
    assert time.monotonic() - start >= 0.2
