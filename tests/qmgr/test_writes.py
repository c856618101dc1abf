"""StoreWrites: concurrent updates and removals share commits, each keeps its outcome."""

import pytest
import trio

from mailsys.errors import NoSuchEntry
from mailsys.message.envelope import Envelope, RcptState, Recipient
from mailsys.message.qid import new_qid
from mailsys.qmgr.writes import StoreWrites
from mailsys.queue import Queue, Remove, Update, WrongQueue


def _active(store, n):
    qids = store.create_many([(Envelope("", "a@example.com", (Recipient("b@example.net"),)),
                               b"x")] * n)
    store.move_many(qids, Queue.INCOMING, Queue.ACTIVE)
    return qids


def test_concurrent_writes_share_commits(store):
    qids = _active(store, 40)
    writes = StoreWrites(store)
    outcomes = {}

    async def one(qid, i):
        op = (Update(qid, src=Queue.ACTIVE, rcpt={0: dict(state=RcptState.SENT)}) if i % 2
              else Remove(qid, src=Queue.ACTIVE))
        outcomes[qid] = await writes.apply(op)

    async def main():
        async with trio.open_nursery() as n:
            for i, qid in enumerate(qids):
                n.start_soon(one, qid, i)
    trio.run(main)
    assert writes.batches < len(qids) // 2
    for i, qid in enumerate(qids):
        if i % 2:
            assert outcomes[qid].recipients[0].state is RcptState.SENT
            assert store.load(qid) == (outcomes[qid], Queue.ACTIVE)
        else:
            assert outcomes[qid] == [] and not store.exists(qid)


def test_each_caller_gets_its_own_error(store):
    [qid] = _active(store, 1)
    writes = StoreWrites(store, max_batch=2)
    got = {}

    async def one(name, op):
        try:
            got[name] = await writes.apply(op)
        except Exception as e:
            got[name] = e

    async def main():
        async with trio.open_nursery() as n:
            n.start_soon(one, "wrong", Remove(qid, src=Queue.DEFERRED))
            n.start_soon(one, "missing", Remove(new_qid()))
            n.start_soon(one, "ok", Update(qid, changes=dict(attempts=3)))
    trio.run(main)
    assert isinstance(got["wrong"], WrongQueue) and isinstance(got["missing"], NoSuchEntry)
    assert got["ok"].attempts == 3 and store.load(qid)[0].attempts == 3
    assert writes.batches >= 2            # three operations, at most two per commit


def test_a_bug_fails_every_waiter_and_propagates(store):
    [qid] = _active(store, 1)
    writes = StoreWrites(store)

    async def main():
        with pytest.raises(IndexError):
            await writes.apply(Update(qid, rcpt={5: dict(state=RcptState.SENT)}))
        # the committer slot is free again
        assert (await writes.apply(Update(qid, changes=dict(attempts=1)))).attempts == 1
    trio.run(main)
