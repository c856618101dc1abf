"""The queue manager's in-core recipient limits: a message too big for
memory is read in batches, every recipient delivered once, and what is in
memory stays bounded (qmgr_message_recipient_limit, _minimum,
<transport>_recipient_limit, _recipient_refill_limit, _recipient_refill_delay)."""

from __future__ import annotations

import dataclasses

import trio
from qmgr_fixtures import ROUTING, FakeAgents, empty, envelope, run, wait_for

from mailsys.qmgr.manager import QueueManager
from mailsys.qmgr.settings import Limits, QmgrSettings

CONTENT = b"Subject: hi\r\n\r\nhello\r\n"


class Watching(FakeAgents):
    """Fake agents that note, at each request, the recipients the manager
    holds in memory for the message read in batches."""

    def __init__(self) -> None:
        super().__init__()
        self.mgr = None
        self.in_memory: list[int] = []

    async def deliver(self, req, timeout):
        reading = self.mgr.pools.reading.get(req.queue_id)
        if reading is not None:
            self.in_memory.append(reading.count)
        await trio.sleep(0.001)
        return await super().deliver(req, timeout)


def test_a_big_message_is_read_in_batches_and_delivered_once(store, make_manager):
    agents = Watching()
    mgr = agents.mgr = make_manager(
        agents, limits=Limits(recipients=5, in_memory=20, refill_limit=1),
        recipient_limit=10, recipient_minimum=10)
    rcpts = [f"u{i}@remote.example" for i in range(200)]
    qid = store.create(envelope(*rcpts), CONTENT)

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(empty(store), timeout=20)

    run(body)
    delivered = [r.address for req in agents.requests for r in req.recipients]
    assert sorted(delivered) == sorted(rcpts)
    assert {req.queue_id for req in agents.requests} == {qid}
    # The first batch: qmgr_message_recipient_limit's 10; later ones up to
    # the minimum (10) and smtp's 20 slots.
    assert max(agents.in_memory) == 30
    assert mgr.pools.reading == {} and mgr.pools.unused("smtp") == 20


def test_every_batch_is_delivered_as_the_resolver_rewrote_it(store):
    # resolve_numeric_domain = yes: u@192.0.2.1 goes to u@[192.0.2.1], the
    # queued address as orig_to, whichever batch reads it.
    agents = Watching()
    routing = dataclasses.replace(ROUTING, resolve_numeric_domain=True)
    limits = Limits(recipients=5, in_memory=20, refill_limit=1)
    mgr = agents.mgr = QueueManager(
        store, QmgrSettings(queue_run_delay=3600, recipient_limit=10, recipient_minimum=10),
        routing, lambda transport: limits, agents)
    rcpts = [f"u{i}@192.0.2.1" for i in range(60)]
    store.create(envelope(*rcpts), CONTENT)

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(empty(store), timeout=20)

    run(body)
    assert max(agents.in_memory) > 0          # it was read in batches
    delivered = sorted((r.address, r.orig) for req in agents.requests for r in req.recipients)
    assert delivered == sorted((f"u{i}@[192.0.2.1]", f"u{i}@192.0.2.1") for i in range(60))


def test_a_long_refill_delay_still_reads_on_when_nothing_is_left(store, make_manager):
    agents = Watching()
    mgr = agents.mgr = make_manager(
        agents, limits=Limits(recipients=50, in_memory=5, refill_limit=100, refill_delay=3600),
        recipient_limit=1, recipient_minimum=5)
    rcpts = [f"u{i}@remote.example" for i in range(40)]
    store.create(envelope(*rcpts), CONTENT)

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(empty(store), timeout=20)

    run(body)
    # The first batch is the minimum (the global room is less); then the
    # minimum plus the pool (10), read only once the previous batch is gone.
    # Postfix 3.7 with qmgr_message_recipient_limit = qmgr_message_active_limit
    # = 10, smtp_recipient_limit = 20 and 200 recipients logged "recipient
    # limit 10", then "recipient limit 30" seven times, and smtp-sink saw
    # transactions of 10, 30 x 6, 10.
    assert [len(req.recipients) for req in agents.requests] == [5, 10, 10, 10, 5]
    assert max(agents.in_memory) == 10


def test_small_messages_never_touch_the_pools(store, make_manager):
    agents = FakeAgents()
    mgr = make_manager(agents, limits=Limits(in_memory=0), recipient_minimum=10)
    for i in range(5):
        store.create(envelope(*(f"u{j}@remote.example" for j in range(i + 1))), CONTENT)

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(empty(store), timeout=10)

    run(body)
    assert len(agents.requests) == 5
    assert mgr.pools.reading == {} and mgr.pools._unused == {}


def test_what_is_in_memory_is_the_minimum_plus_the_pool_while_deliveries_wait(
        store, make_manager):
    agents = FakeAgents()
    agents.release = trio.Event()
    mgr = make_manager(agents, limits=Limits(recipients=1, in_memory=3, refill_limit=1),
                       recipient_limit=1, recipient_minimum=2)
    big = store.create(envelope(*(f"u{i}@remote.example" for i in range(50))), CONTENT)

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(lambda: len(agents.requests) == 5)
        await trio.sleep(0.1)
        assert len(agents.requests) == 5             # nothing more was read
        assert mgr.pools.reading[big].count == 5
        agents.release.set()
        await wait_for(empty(store), timeout=10)

    run(body)
    assert sum(len(r.recipients) for r in agents.requests) == 50


def test_other_entries_come_in_as_a_big_ones_batches_are_delivered(store, make_manager):
    # Postfix counts the recipients in memory against
    # qmgr_message_recipient_limit: once the big message's first batch (the
    # whole limit) is delivered and it holds only the minimum plus its pool,
    # new mail enters the active queue beside it.
    agents = FakeAgents()
    agents.delay = 0.01
    mgr = make_manager(agents, limits=Limits(recipients=5, in_memory=5, refill_limit=1),
                       recipient_limit=20, recipient_minimum=10)
    big = store.create(envelope(*(f"u{i}@remote.example" for i in range(200))), CONTENT)
    small = store.create(envelope("bob@other.example"), CONTENT)

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(empty(store), timeout=20)

    run(body)
    order = [r.queue_id for r in agents.requests]
    assert order.count(big) == 40 and order.count(small) == 1
    assert order.index(small) < len(order) - 1 - order[::-1].index(big)
    assert order.index(small) >= 4                   # not before the first batch (20)
