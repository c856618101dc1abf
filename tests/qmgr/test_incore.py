"""The in-core recipient pools (incore.py): what a message read in batches
may hold, how slots pass between messages, when the next batch is due."""

from __future__ import annotations

import pytest

from mailsys.qmgr.incore import BATCH_LIMIT, Pools, Reading
from mailsys.qmgr.settings import Limits


def pools(in_memory: int = 20, minimum: int = 10, **limits) -> Pools:
    return Pools(lambda transport: Limits(in_memory=in_memory, **limits), minimum=minimum)


def read_batch(p: Pools, msg: Reading, transport: str = "smtp", now: float = 0.0) -> int:
    n = 0
    while msg.wants():
        msg.next()
        p.read(msg, transport)
        n += 1
    p.read_done(msg, now)
    return n


def test_the_first_batch_is_the_global_room_then_the_pool_counts():
    p = pools(in_memory=20, minimum=10)
    msg = p.open("Q1", list(range(200)), first=15)
    assert read_batch(p, msg) == 15                  # qmgr_message_recipient_limit's room
    assert p.unused("smtp") == 0                     # the pool's 20 slots: the message's
    assert msg.limit == 30 and msg.count == 15
    assert read_batch(p, msg) == 15


def test_the_first_batch_is_at_least_the_minimum():
    p = pools(in_memory=20, minimum=10)
    assert read_batch(p, p.open("Q1", list(range(200)), first=0)) == 10


def test_a_batch_is_at_most_the_batch_limit():
    p = pools(in_memory=100000, minimum=10)
    msg = p.open("Q1", list(range(12000)), first=20000)
    assert read_batch(p, msg) == BATCH_LIMIT
    assert read_batch(p, msg) == BATCH_LIMIT


def test_a_message_never_holds_less_than_the_minimum():
    p = pools(in_memory=0, minimum=10)
    msg = p.open("Q1", list(range(50)), first=10)
    assert read_batch(p, msg) == 10
    p.done(msg, "smtp", 10)
    assert msg.refill_due(0.0, Limits())             # nothing in memory: must read on
    assert read_batch(p, msg) == 10


def test_in_memory_never_passes_minimum_plus_pool_after_the_first_batch():
    p = pools(in_memory=20, minimum=10)
    msg = p.open("Q1", list(range(500)), first=10)
    most = read_batch(p, msg)
    while not msg.fully_read or msg.count:
        p.done(msg, "smtp", min(5, msg.count))
        if msg.refill_due(1000.0, Limits(refill_limit=1)):
            read_batch(p, msg, now=1000.0)
        most = max(most, msg.count)
    assert most == 30
    assert msg.fully_read


def test_refill_waits_for_the_refill_limit_or_the_delay():
    p = pools(in_memory=20, minimum=10)
    limits = Limits(refill_limit=100, refill_delay=5.0)
    msg = p.open("Q1", list(range(500)), first=10)
    read_batch(p, msg, now=0.0)                       # 10 in memory
    p.done(msg, "smtp", 5)                            # 25 fit, below the refill limit
    assert not msg.refill_due(4.9, limits)
    assert msg.refill_at(limits) == 5.0
    assert msg.refill_due(5.0, limits)
    assert msg.refill_due(0.0, Limits(refill_limit=25, refill_delay=5.0))
    assert read_batch(p, msg, now=5.0) == 25


def test_nothing_fits_means_no_refill_and_no_timer():
    p = pools(in_memory=0, minimum=10)
    msg = p.open("Q1", list(range(50)), first=10)
    read_batch(p, msg)
    assert msg.refill_at(Limits()) is None
    assert not msg.refill_due(100.0, Limits())


def test_a_fully_read_message_passes_its_slots_to_the_oldest_unread_one():
    p = pools(in_memory=20, minimum=10)
    first = p.open("Q1", list(range(25)), first=10)
    read_batch(p, first)                              # 10 in memory, holds all 20 slots
    read_batch(p, first)                              # all 25 in memory
    second = p.open("Q2", list(range(100)), first=10)
    assert read_batch(p, second) == 10                # the pool is empty: the minimum
    assert second.held == {"smtp": 0}
    p.done(first, "smtp", 25)                         # its slots go on to Q2
    assert second.held == {"smtp": 20} and p.unused("smtp") == 0
    p.done(second, "smtp", 10)
    assert read_batch(p, second) == 30


def test_an_unread_message_keeps_its_slots_while_its_recipients_leave():
    p = pools(in_memory=20, minimum=10)
    big = p.open("Q1", list(range(100)), first=10)
    read_batch(p, big)
    other = p.open("Q2", list(range(100)), first=10)
    read_batch(p, other)
    p.done(big, "smtp", 30)
    assert big.held == {"smtp": 20} and other.held == {"smtp": 0}


def test_close_gives_every_slot_back():
    p = pools(in_memory=20, minimum=10)
    big = p.open("Q1", list(range(100)), first=10)
    read_batch(p, big)
    p.close(big)
    assert p.unused("smtp") == 20 and p.reading == {}
    again = p.open("Q2", list(range(100)), first=10)
    read_batch(p, again)
    assert again.held == {"smtp": 20}


def test_pools_are_per_transport():
    p = Pools(lambda t: Limits(in_memory={"smtp": 20, "local": 5}[t]), minimum=1)
    msg = p.open("Q1", list(range(100)), first=1)
    msg.next()
    p.read(msg, "local")
    msg.next()
    p.read(msg, "smtp")
    assert msg.held == {"local": 5, "smtp": 20}
    assert p.unused("local") == p.unused("smtp") == 0


@pytest.mark.parametrize("in_memory", [0, 1, 7, 20])
def test_every_recipient_is_read_exactly_once(in_memory):
    p = pools(in_memory=in_memory, minimum=3)
    msg = p.open("Q1", list(range(97)), first=3)
    seen: list[int] = []
    now = 0.0
    while not msg.fully_read or msg.count:
        while msg.wants():
            seen.append(msg.next())
            p.read(msg, "smtp")
        p.read_done(msg, now)
        p.done(msg, "smtp", msg.count)
        now += 10
    assert seen == list(range(97))


def test_a_preempting_unread_message_gets_half_the_pool_and_the_extra_pool():
    # Postfix qmgr_job_preempt(): (rcpt_per_stack + rcpt_unused + 1) / 2,
    # and the pool may go below 0 by that much.
    p = pools(in_memory=20, minimum=10)
    big = p.open("Q1", list(range(500)), first=10)
    read_batch(p, big)                                # holds the pool's 20
    small = p.open("Q2", list(range(100)), first=10)
    read_batch(p, small)
    assert p.unread("Q2") == 90
    assert p.preempting("Q2", "smtp", extra=1000)
    assert small.held == {"smtp": 500} and p.unused("smtp") == -500
    assert p.preempting("Q2", "smtp", extra=1000)     # half of what is left
    assert small.held == {"smtp": 750} and p.unused("smtp") == -750
    p.close(small)
    assert p.unused("smtp") == 0
    p.close(big)
    assert p.unused("smtp") == 20


def test_a_fully_read_or_unknown_message_gets_no_extra_slots():
    p = pools(in_memory=20, minimum=10)
    assert not p.preempting("Q9", "smtp", extra=1000)
    msg = p.open("Q1", list(range(15)), first=20)
    read_batch(p, msg)
    assert msg.fully_read and not p.preempting("Q1", "smtp", extra=1000)
    assert p.unread("Q1") == 0
