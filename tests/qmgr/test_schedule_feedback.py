"""Destination concurrency feedback and the transport rate delay, as
Postfix's qmgr_queue_unthrottle() / qmgr_queue_throttle() and
<transport>_transport_rate_delay work. Times are plain numbers."""

from __future__ import annotations

import pytest

from mailsys.qmgr.schedule import Job, Scheduler
from mailsys.qmgr.settings import Feedback, Limits

A = ("smtp", "a")


def sched(debug=None, **limits) -> Scheduler:
    return Scheduler(lambda transport: Limits(**limits), dead_time=300, debug=debug)


def jobs(dest: str, n: int, transport: str = "smtp") -> list[Job]:
    return [Job(f"Q{dest}{i}", transport, dest, (0,)) for i in range(n)]


def drain(s: Scheduler, now: float = 0.0) -> list[Job]:
    out = []
    while (job := s.take(now)) is not None:
        out.append(job)
    return out


# -- parsing -------------------------------------------------------------------------

@pytest.mark.parametrize("text, base, per_window", [
    ("1", 1.0, False), ("0", 0.0, False), ("0.5", 0.5, False), ("1/8", 0.125, False),
    ("1/concurrency", 1.0, True), ("1 / concurrency", 1.0, True), ("2/4", 0.5, False)])
def test_feedback_values(text, base, per_window):
    assert Feedback.parse(text) == Feedback(base, per_window)


@pytest.mark.parametrize("text", ["2", "-1", "1/0", "x", "1/x", "", "nan", "3/concurrency"])
def test_unreasonable_feedback_is_refused(text):
    with pytest.raises(ValueError):
        Feedback.parse(text)


def test_per_window_feedback_shrinks_with_the_window():
    assert Feedback(1.0, True).at(8) == 0.125
    assert Feedback(0.5).at(8) == 0.5


# -- positive feedback -----------------------------------------------------------------

def test_positive_feedback_per_concurrency_needs_a_window_of_successes():
    s = sched(concurrency=20, initial=5, positive=Feedback.parse("1/concurrency"))
    s.add(jobs("a", 40), 0)
    running = drain(s)
    windows = []
    for job in running:
        s.finished(job, 1, ok=True)
        windows.append(s.window(A))
    # 0.2 a success; the window steps at 4.5 of them (half a feedback early)
    assert windows == [5, 5, 5, 5, 6]


def test_zero_positive_feedback_never_grows_the_window():
    s = sched(concurrency=20, initial=2, positive=Feedback(0.0))
    s.add(jobs("a", 20), 0)
    for _ in range(10):
        running = drain(s)
        for job in running:
            s.finished(job, 1, ok=True)
    assert s.window(A) == 2


def test_positive_feedback_stops_at_jobs_in_flight_plus_initial():
    s = sched(concurrency=0, initial=2)
    s.add(jobs("a", 5), 0)
    first = s.take(0)                            # one in flight of a window of 2
    for _ in range(3):
        s.finished(first, 1, ok=True)            # busy 1 + initial 2 = 3 at most
        s.add([first], 1)
        first = s.take(1)
    assert s.window(A) == 3


# -- negative feedback and failed pseudo-cohorts ------------------------------------------

def test_negative_feedback_shrinks_the_window_as_postfix_does():
    s = sched(concurrency=20, initial=5, failed_cohorts=0)
    s.add(jobs("a", 5), 0)
    running = drain(s)
    # failure 0 - 1: two steps down (Postfix's half-feedback overshoot), then one each
    s.finished(running[0], 1, ok=False, dead_reason="refused")
    assert s.window(A) == 3
    s.finished(running[1], 1, ok=False, dead_reason="refused")
    assert s.window(A) == 2
    for job in running[2:]:
        s.finished(job, 1, ok=False, dead_reason="refused")
    assert s.window(A) == 1                      # never below 1
    assert s.dead(A, 2) is None                  # a cohort limit of 0: never dead


def test_fractional_negative_feedback_is_gentle():
    s = sched(concurrency=20, initial=5, failed_cohorts=0, negative=Feedback.parse("1/8"))
    s.add(jobs("a", 9), 0)
    running = drain(s)
    s.finished(running[0], 1, ok=False, dead_reason="refused")
    assert s.window(A) == 4
    for job in running[1:4]:
        s.finished(job, 1, ok=False, dead_reason="refused")
    assert s.window(A) == 4                      # 1/8 at a time: no whole step yet


def test_failed_pseudo_cohorts_count_one_over_the_window():
    s = sched(concurrency=20, initial=5)              # failed cohort limit 1
    s.add(jobs("a", 8), 0)
    running = drain(s)
    assert s.finished(running[0], 1, ok=False, dead_reason="refused") == []   # 1/5
    assert s.finished(running[1], 1, ok=False, dead_reason="refused") == []   # + 1/3
    back = s.finished(running[2], 1, ok=False, dead_reason="refused")         # + 1/2 >= 1
    assert [j.qid for j in back] == ["Qa5", "Qa6", "Qa7"]
    assert s.dead(A, 2) == "refused"
    # the jobs still in flight that fail change nothing more
    assert s.finished(running[3], 2, ok=False, dead_reason="refused") == []


def test_a_success_revives_a_dead_destination_at_its_concurrency():
    s = sched(concurrency=20, initial=5)
    s.add(jobs("a", 5), 0)
    running = drain(s)
    for job in running[:3]:
        s.finished(job, 1, ok=False, dead_reason="refused")
    assert s.dead(A, 2)
    s.finished(running[3], 2, ok=True)               # one more still in flight
    assert s.dead(A, 2) is None
    assert s.window(A) == 2                          # the jobs in flight as it ended


def test_feedback_debug_lines_are_postfix_lines():
    lines: list[str] = []
    s = sched(debug=lines.append, concurrency=20, initial=5)
    s.add(jobs("a", 2), 0)
    s.finished(s.take(0), 1, ok=True)
    assert lines == ["qmgr_queue_unthrottle: feedback 1",
                     "qmgr_queue_unthrottle: queue a: limit 20 window 6 success 0 failure 0 "
                     "fail_cohorts 0"]
    lines.clear()
    s.finished(s.take(1), 2, ok=False, dead_reason="refused")
    assert lines == ["qmgr_queue_throttle: feedback 1",
                     "qmgr_queue_throttle: queue a: limit 20 window 4 success 0 failure 1 "
                     "fail_cohorts 0.166667"]


# -- transport rate delay ----------------------------------------------------------------

def test_transport_rate_delay_one_delivery_at_a_time_for_all_destinations():
    s = sched(concurrency=20, initial=5, transport_rate_delay=10)
    s.add(jobs("a", 2) + jobs("b", 2), 0)
    assert s.take(0) is None                     # even the first waits the delay
    assert s.wakeup() == 10
    first = drain(s, 10)
    assert len(first) == 1                       # one for the whole transport
    assert s.wakeup() is None                    # its end wakes the loop
    assert s.take(30) is None
    s.finished(first[0], 35)
    assert s.take(35) is None                    # the delay from the end
    assert s.take(44.9) is None
    assert s.wakeup() == 45
    second = s.take(45)
    assert second is not None and second.nexthop != first[0].nexthop    # still round robin


def test_transport_rate_delay_holds_only_its_transport():
    s = Scheduler(lambda t: Limits(transport_rate_delay=60 if t == "slow" else 0))
    s.add(jobs("a", 3, "slow") + jobs("b", 3, "slow") + jobs("c", 3, "smtp"), 0)
    got = drain(s, 0) + drain(s, 60)
    assert sorted(j.transport for j in got) == ["slow", "smtp", "smtp", "smtp"]


def test_the_window_starts_at_most_at_the_concurrency_limit():
    # local: limit 2, initial 5: Postfix starts the window at 2, so one
    # failure is half a failed cohort, not a fifth.
    s = sched(concurrency=2, initial=5)
    s.add(jobs("a", 4), 0)
    assert s.window(A) == 2
    first, second = drain(s)
    assert s.finished(first, 1, ok=False, dead_reason="refused") == []
    assert s.dead(A, 1) is None
    assert len(s.finished(second, 1, ok=False, dead_reason="refused")) == 2    # 1/2 + 1/1
