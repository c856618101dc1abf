"""The scheduler's pure parts: grouping, limits, fairness, rate delay, dead
destinations. Times are plain numbers: the fake clock is the argument."""

from __future__ import annotations

from mailsys.qmgr.schedule import Job, Scheduler, plan
from mailsys.qmgr.settings import Limits
from mailsys.routing import AddressClass, Route


def smtp(nexthop: str) -> Route:
    return Route("smtp", nexthop, AddressClass.DEFAULT)


def limits(**by_transport: Limits):
    return lambda transport: by_transport.get(transport, Limits())


def jobs_for(dest: str, n: int, *, qid_prefix: str = "Q") -> list[Job]:
    return [Job(f"{qid_prefix}{dest}{i}", "smtp", dest, (0,)) for i in range(n)]


def drain(s: Scheduler, now: float = 0.0) -> list[Job]:
    out = []
    while (job := s.take(now)) is not None:
        out.append(job)
    return out


# -- grouping -------------------------------------------------------------------

def test_plan_groups_by_destination_sorted_by_transport_then_queue():
    routed = [(0, smtp("b.example")), (1, smtp("a.example")), (2, smtp("b.example")),
              (3, Route("local", "mx.example", AddressClass.LOCAL))]
    got = plan("Q1", routed, limits())
    assert [(j.transport, j.nexthop, j.indexes) for j in got] == [
        ("local", "mx.example", (3,)), ("smtp", "a.example", (1,)),
        ("smtp", "b.example", (0, 2))]
    assert got[0].address_class == "local"


def test_plan_sorts_recipients_as_postfix_qmgr():
    # Postfix 3.7, one relayhost delivery of a message received as
    # zed@b.example, 5rcpt, Alice, rcpt, bob@a.example, 2rcpt, x@EXAMPLE.net:
    # RCPT and to= order bob@a.example, zed@b.example, 2rcpt@example.net,
    # 5rcpt@, Alice@, rcpt@, x@EXAMPLE.net (domain without case, then
    # address byte by byte).
    addresses = ["zed@b.example", "5rcpt@example.net", "Alice@example.net",
                 "rcpt@example.net", "bob@a.example", "2rcpt@example.net", "x@EXAMPLE.net"]
    routed = [(i, smtp("[127.0.0.1]:3102")) for i in range(len(addresses))]
    got = plan("Q1", routed, limits(), dict(enumerate(addresses)))
    assert len(got) == 1
    assert [addresses[i] for i in got[0].indexes] == [
        "bob@a.example", "zed@b.example", "2rcpt@example.net", "5rcpt@example.net",
        "Alice@example.net", "rcpt@example.net", "x@EXAMPLE.net"]


def test_plan_sorts_before_it_cuts_and_keeps_indexes():
    addresses = {0: "5rcpt@example.net", 1: "4rcpt@example.net", 2: "3rcpt@example.net",
                 3: "2rcpt@example.net", 4: "rcpt@example.net"}
    routed = [(i, smtp("example.net")) for i in addresses]
    got = plan("Q1", routed, limits(smtp=Limits(recipients=2)), addresses)
    assert [j.indexes for j in got] == [(3, 2), (1, 0), (4,)]


def test_plan_queue_name_sorts_before_domain_and_no_domain_comes_last():
    addresses = {0: "a@z.example", 1: "b@a.example", 2: "nohost", 3: "c@m.example"}
    routed = [(0, smtp("alpha.example")), (1, smtp("beta.example")),
              (2, smtp("alpha.example")), (3, smtp("alpha.example"))]
    got = plan("Q1", routed, limits(), addresses)
    assert [(j.nexthop, j.indexes) for j in got] == [
        ("alpha.example", (3, 0, 2)), ("beta.example", (1,))]


def test_plan_with_a_recipient_limit_of_one_sorts_by_recipient_queue():
    addresses = {0: "carol@mx", 1: "Bob@mx", 2: "alice@mx"}
    routed = [(i, Route("local", "mx", AddressClass.LOCAL)) for i in addresses]
    got = plan("Q1", routed, limits(local=Limits(recipients=1)), addresses)
    assert [j.indexes for j in got] == [(2,), (1,), (0,)]


def test_plan_of_one_recipient_is_not_sorted():
    class Untouchable(dict):
        def get(self, *args):
            raise AssertionError("a lone recipient needs no sort key")
    routed = [(7, smtp("a.example"))]
    assert [j.indexes for j in plan("Q", routed, limits(), Untouchable({7: "x@a.example"}))] \
        == [(7,)]
    two = [(7, smtp("a.example")), (8, smtp("a.example"))]
    try:
        plan("Q", two, limits(), Untouchable({7: "x@a.example", 8: "y@a.example"}))
    except AssertionError:
        pass
    else:
        raise AssertionError("two recipients are sorted")



def test_plan_cuts_at_the_transport_recipient_limit():
    routed = [(i, smtp("a.example")) for i in range(7)]
    got = plan("Q1", routed, limits(smtp=Limits(recipients=3)))
    assert [j.indexes for j in got] == [(0, 1, 2), (3, 4, 5), (6,)]


def test_plan_recipient_limit_one_makes_one_job_per_recipient():
    routed = [(i, smtp("a.example")) for i in range(3)]
    assert [j.indexes for j in plan("Q", routed, limits(smtp=Limits(recipients=1)))] == \
        [(0,), (1,), (2,)]


def test_plan_recipient_limit_zero_is_unlimited():
    routed = [(i, smtp("a.example")) for i in range(120)]
    assert len(plan("Q", routed, limits(smtp=Limits(recipients=0)))) == 1


def test_plan_of_nothing_is_nothing():
    assert plan("Q", [], limits()) == []


# -- concurrency ----------------------------------------------------------------

def test_concurrency_starts_at_the_initial_window_and_grows_to_the_limit():
    s = Scheduler(limits(smtp=Limits(concurrency=4, initial=2)))
    s.add(jobs_for("a", 10), 0)
    first = drain(s)
    assert len(first) == 2
    for job in first:
        s.finished(job, 1.0, ok=True)
    # +1 while the window is below the jobs in flight plus the initial
    # concurrency (2 + 2, then 1 + 2): Postfix's qmgr_queue_unthrottle().
    assert s.window(("smtp", "a")) == 3
    second = drain(s)
    assert len(second) == 3
    for job in second:
        s.finished(job, 2.0, ok=True)
    assert s.window(("smtp", "a")) == 4          # the limit
    assert len(drain(s)) == 4
    assert s.busy(("smtp", "a")) == 4


def test_concurrency_never_exceeds_the_limit():
    s = Scheduler(limits(smtp=Limits(concurrency=3, initial=1)))
    s.add(jobs_for("a", 50), 0)
    most = 0
    while s.waiting():
        running = drain(s)
        most = max(most, s.busy(("smtp", "a")))
        for job in running:
            s.finished(job, 0, ok=True)
    assert most == 3


def test_concurrency_zero_is_unlimited():
    s = Scheduler(limits(smtp=Limits(concurrency=0, initial=1)))
    s.add(jobs_for("a", 30), 0)
    assert len(drain(s)) == 30                   # no window either


def test_limits_are_per_destination():
    s = Scheduler(limits(smtp=Limits(concurrency=1, initial=1)))
    s.add(jobs_for("a", 3) + jobs_for("b", 3), 0)
    got = drain(s)
    assert sorted(j.nexthop for j in got) == ["a", "b"]


# -- fairness ----------------------------------------------------------------------

def test_round_robin_between_destinations():
    s = Scheduler(limits(smtp=Limits(concurrency=0, initial=100)))
    s.add(jobs_for("slow", 6), 0)
    s.add(jobs_for("b", 2) + jobs_for("c", 2), 0)
    order = [j.nexthop for j in drain(s)]
    assert order[:6] == ["slow", "b", "c", "slow", "b", "c"]


def test_a_slow_destination_at_its_limit_does_not_block_others():
    s = Scheduler(limits(smtp=Limits(concurrency=2, initial=2)))
    s.add(jobs_for("slow", 100), 0)
    stuck = drain(s)
    assert len(stuck) == 2                       # slow's jobs never finish below
    s.add(jobs_for("fast", 5), 1)
    done = 0
    while (job := s.take(2)) is not None:
        assert job.nexthop == "fast"
        s.finished(job, 2, ok=True)
        done += 1
    assert done == 5
    assert s.waiting(("smtp", "slow")) == 98


# -- rate delay ------------------------------------------------------------------------

def test_rate_delay_one_at_a_time_with_a_pause_after_each():
    s = Scheduler(limits(smtp=Limits(concurrency=10, initial=5, rate_delay=30)))
    s.add(jobs_for("a", 3), 0)
    first = drain(s, 0)
    assert len(first) == 1
    assert s.take(100) is None                  # busy: one at a time
    s.finished(first[0], 100)
    assert s.take(129.9) is None
    assert s.wakeup() == 130
    assert s.take(130) is not None


def test_rate_delay_holds_only_its_own_destination():
    s = Scheduler(limits(smtp=Limits(rate_delay=60), local=Limits()))
    s.add(jobs_for("a", 2), 0)
    s.add([Job("L1", "local", "mx", (0,)), Job("L2", "local", "mx", (0,))], 0)
    got = drain(s, 0)
    assert sorted(j.transport for j in got) == ["local", "local", "smtp"]


# -- dead destinations ----------------------------------------------------------------------

def test_a_failed_cohort_kills_the_destination_and_returns_its_waiting_jobs():
    s = Scheduler(limits(smtp=Limits(concurrency=1, initial=1)), dead_time=300)
    s.add(jobs_for("a", 4) + jobs_for("b", 1), 0)
    running = drain(s)
    a_job = next(j for j in running if j.nexthop == "a")
    back = s.finished(a_job, 10, ok=False, dead_reason="connect to a: Connection refused")
    assert [j.qid for j in back] == ["Qa1", "Qa2", "Qa3"]
    assert s.dead(("smtp", "a"), 10) == "connect to a: Connection refused"
    # jobs added while it is dead come straight back
    assert s.add(jobs_for("a", 1, qid_prefix="R"), 20) == [Job("Ra0", "smtp", "a", (0,))]
    assert s.dead(("smtp", "b"), 10) is None
    # after dead_time it takes jobs again
    assert s.dead(("smtp", "a"), 310) is None
    assert s.add(jobs_for("a", 1, qid_prefix="S"), 310) == []
    assert s.take(310).qid == "Sa0"


def test_failed_cohort_limit_counts_failures_in_a_row():
    s = Scheduler(limits(smtp=Limits(concurrency=5, initial=5, failed_cohorts=2)))
    s.add(jobs_for("a", 5), 0)
    j1, j2, j3, *_ = drain(s)
    assert s.finished(j1, 1, ok=False, dead_reason="x") == []
    s.finished(j2, 1, ok=True)                   # success resets the count
    assert s.finished(j3, 1, ok=False, dead_reason="x") == []
    assert s.dead(("smtp", "a"), 1) is None


def test_a_plain_failure_is_not_a_failed_cohort():
    s = Scheduler(limits(smtp=Limits(concurrency=1, initial=1)))
    s.add(jobs_for("a", 2), 0)
    job = s.take(0)
    assert s.finished(job, 1, ok=False) == []
    assert s.dead(("smtp", "a"), 1) is None


def test_forget_dead_revives_at_once():
    s = Scheduler(limits(smtp=Limits(concurrency=1, initial=1)))
    s.add(jobs_for("a", 1), 0)
    s.finished(s.take(0), 1, ok=False, dead_reason="down")
    assert s.dead(("smtp", "a"), 2)
    s.forget_dead()
    assert s.dead(("smtp", "a"), 2) is None


def test_drop_forgets_the_waiting_jobs_of_one_message():
    s = Scheduler(limits(smtp=Limits(concurrency=1, initial=1)))
    s.add([Job("Q1", "smtp", "a", (0,)), Job("Q2", "smtp", "a", (0,)),
           Job("Q1", "smtp", "b", (1,))], 0)
    first = s.take(0)
    assert first.qid == "Q1"
    assert s.drop("Q1") == 1
    s.finished(first, 0)
    assert [j.qid for j in drain(s)] == ["Q2"]


def test_recipient_limit_one_makes_each_recipient_its_own_destination():
    routed = [(0, Route("local", "mx", AddressClass.LOCAL)), (1, Route("local", "mx", AddressClass.LOCAL))]
    jobs = plan("Q", routed, limits(local=Limits(concurrency=1, initial=1, recipients=1)),
                {0: "Bob@mx", 1: "carol@mx"})
    assert [(j.nexthop, j.key) for j in jobs] == [("mx", ("local", "bob@mx")),
                                                  ("mx", ("local", "carol@mx"))]
    s = Scheduler(limits(local=Limits(concurrency=1, initial=1, recipients=1)))
    s.add(jobs, 0)
    assert len(drain(s)) == 2          # one per mailbox, not one for the host
