"""Helpers for the queue store tests: entries, and an independent check that
every index agrees with the envelope records. (A module of its own, not
conftest, so that no other tests directory's conftest can shadow it.)"""

from __future__ import annotations

import time

from mailsys.message.envelope import Envelope, Recipient
from mailsys.queue import Queue, QueueStore
from mailsys.queue import records


def make_envelope(n: int = 1, sender: str = "alice@example.com", **kw) -> Envelope:
    rcpts = tuple(Recipient(f"rcpt{i}@remote.example") for i in range(n))
    return Envelope(queue_id=kw.pop("queue_id", ""), sender=sender, recipients=rcpts,
                    arrival_time=kw.pop("arrival_time", time.time()),
                    size=kw.pop("size", 100), **kw)


def raw_entries(store: QueueStore) -> dict[str, tuple[Envelope, Queue]]:
    """Every entry, read straight from the envelope database."""
    def fn(txn):
        return {k.decode(): records.decode(k.decode(), v)
                for k, v in txn.cursor(db=store._envelopes)}
    return store._read(fn)


def assert_consistent(store: QueueStore) -> dict[str, tuple[Envelope, Queue]]:
    """Indexes, counts and content agree with the envelope records."""
    entries = raw_entries(store)
    for queue in Queue:
        want = sorted(q for q, (_, qu) in entries.items() if qu is queue)
        assert list(store.list(queue, batch=3)) == want, queue
        assert store.counts()[queue] == len(want), queue
    deferred = sorted((e.next_attempt, q) for q, (e, qu) in entries.items()
                      if qu is Queue.DEFERRED)
    assert store.due(float("inf"), limit=10**9) == [q for _, q in deferred]
    content_keys = store._read(
        lambda txn: sorted(k.decode() for k in txn.cursor(db=store._content).iternext(values=False)))
    assert content_keys == sorted(entries)
    for qid, (env, _) in entries.items():
        assert env.queue_id == qid
    return entries
