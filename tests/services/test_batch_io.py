"""Batched: concurrent calls share one store call, each gets its own outcome."""

import pytest
import trio

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


def _gather(batched, items):
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
    trio.run(main)
    return got


def test_concurrent_loads_share_store_calls(store):
    qids = _fill(store, 30)
    gone = new_qid()
    batched = Batched(store.load_contents)
    got = _gather(batched, qids + [gone])
    assert [got[q] for q in qids] == [f"content {i}".encode() for i in range(30)]
    assert isinstance(got[gone], NoSuchEntry)
    assert batched.batches <= 3


def test_max_batch_bounds_each_call(store):
    qids = _fill(store, 5)
    sizes = []

    def fn(items):
        sizes.append(len(items))
        return store.load_contents(items)
    batched = Batched(fn, max_batch=2)
    got = _gather(batched, qids)
    assert all(isinstance(got[q], bytes) for q in qids)
    assert max(sizes) == 2 and sum(sizes) == 5


def test_a_raised_queue_error_is_every_items_outcome(store):
    def fn(items):
        raise QueueError("disk on fire")
    got = _gather(Batched(fn), ["a", "b", "c"])
    assert all(str(got[k]) == "disk on fire" for k in "abc")
