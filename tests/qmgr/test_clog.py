"""The warning that one destination fills the active queue
(qmgr_clog_warn_time): when the Scheduler notes it, and its words."""

from __future__ import annotations

from mailsys.qmgr.clog import Clogged, warnings
from mailsys.qmgr.schedule import Job, Scheduler
from mailsys.qmgr.settings import Limits

TAIL = ["please avoid flushing the whole queue when you have",
        "lots of deferred mail, that is bad for performance",
        "to turn off these warnings specify: qmgr_clog_warn_time = 0"]


def jobs(dest: str, n: int, first: int = 0) -> list[Job]:
    return [Job(f"Q{dest}{i}", "smtp", dest, (0,)) for i in range(first, first + n)]


def test_noted_past_the_length_once_per_warn_time():
    s = Scheduler(lambda t: Limits(concurrency=1, initial=1), clog_length=2, clog_warn_time=300)
    s.add(jobs("a", 2), 0)
    assert s.clogged == []                       # 2 is not more than 2
    s.take(0)
    s.add(jobs("a", 1, 2), 1)
    assert s.clogged == [Clogged("smtp", "a", 3, 1, 1, 1, False)]
    s.clogged.clear()
    s.add(jobs("a", 5, 3) + jobs("b", 1), 200)
    assert s.clogged == []                       # not again within 300s
    s.add(jobs("a", 1, 8), 301)
    assert [(c.nexthop, c.length, c.shared) for c in s.clogged] == [("a", 9, True)]


def test_off_by_default():
    s = Scheduler(lambda t: Limits())
    s.add(jobs("a", 50), 0)
    assert s.clogged == []


def test_concurrency_limit_advice_as_postfix_logged_it():
    # Postfix 3.7, qmgr_message_active_limit = 10, smtp_destination_concurrency_limit = 1
    seen = Clogged("smtp", "[127.0.0.1]:3103", length=3, busy=1, window=1, limit=1, shared=False)
    assert warnings(seen, messages=3, active_limit=10) == [
        "mail for [127.0.0.1]:3103 is using up 3 of 3 active queue entries",
        "you may need to increase the main.cf smtp_destination_concurrency_limit from 1", *TAIL]


def test_other_advice():
    low_share = Clogged("smtp", "x", length=5, busy=0, window=5, limit=20, shared=True)
    assert warnings(low_share, messages=100, active_limit=20)[1:3] == [
        "this may slow down other mail deliveries",
        "you may need to increase the main.cf qmgr_message_active_limit from 20"]
    shared = Clogged("smtp", "x", length=5, busy=0, window=1, limit=20, shared=True)
    assert warnings(shared, messages=5, active_limit=20)[1] == \
        "you may need a separate master.cf transport for x"
    alone = Clogged("relay", "x", length=5, busy=0, window=1, limit=20, shared=False)
    assert warnings(alone, messages=5, active_limit=20)[1:6] == [
        "you may need to reduce relay connect and helo timeouts",
        "so that Postfix quickly skips unavailable hosts",
        "you may need to increase the main.cf minimal_backoff_time and maximal_backoff_time",
        "so that Postfix wastes less time on undeliverable mail",
        "you may need to increase the master.cf relay process limit"]
