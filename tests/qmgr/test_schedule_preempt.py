"""Job preemption in the scheduler (preempt.py): which message a busy
destination serves next. Times are plain numbers."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from mailsys.qmgr.preempt import Preemption
from mailsys.qmgr.schedule import Job, Scheduler
from mailsys.qmgr.settings import Limits

# One delivery at a time to the destination, so that requests wait there.
ONE = Limits(concurrency=1, initial=1)


def jobs(qid: str, n: int, dest: str = "relay.example") -> list[Job]:
    return [Job(qid, "smtp", dest, (i,)) for i in range(n)]


def serve(s: Scheduler, n: int, now: float = 0.0, arrivals=None) -> str:
    """Start and finish n jobs one at a time; the message letters, in order.
    arrivals: {after how many started: [jobs added then]}."""
    order = []
    for i in range(n):
        s.add((arrivals or {}).get(i, []), now)
        job = s.take(now)
        if job is None:
            break
        order.append(job.qid)
        s.finished(job, now)
    return "".join(order)


def sched(**limits) -> Scheduler:
    lim = dataclasses.replace(ONE, **limits)
    return Scheduler(lambda transport: lim)


def test_a_small_message_preempts_a_big_one_after_its_first_delivery():
    # Postfix 3.7, smtp_destination_concurrency_limit = 1,
    # smtp_destination_recipient_limit = 2, 40 recipients then 1: smtp
    # delivered 2 of the big one, then the small one, then the rest.
    s = sched()
    s.add(jobs("B", 20), 0.0)
    assert serve(s, 21, arrivals={1: jobs("S", 1)}) == "B" + "S" + "B" * 19


def test_slot_cost_below_two_turns_preemption_off():
    # Postfix 3.7, the same with smtp_delivery_slot_cost = 0: the small one
    # was the 41st recipient delivered, the last.
    for cost in (0, 1):
        s = sched(slot_cost=cost)
        s.add(jobs("B", 20), 0.0)
        assert serve(s, 21, arrivals={1: jobs("S", 1)}) == "B" * 20 + "S", cost


def test_a_job_too_small_to_earn_the_minimum_slots_is_never_preempted():
    # minimum_delivery_slots (3) x slot cost (5) = 15 requests at least.
    s = sched()
    s.add(jobs("B", 14), 0.0)
    assert serve(s, 15, arrivals={1: jobs("S", 1)}) == "B" * 14 + "S"
    s = sched()
    s.add(jobs("B", 15), 0.0)
    assert serve(s, 16, arrivals={1: jobs("S", 1)}) == "BS" + "B" * 14
    s = sched(min_slots=0)
    s.add(jobs("B", 5), 0.0)
    assert serve(s, 6, arrivals={1: jobs("S", 1)}) == "BS" + "B" * 4


def test_each_preemption_is_paid_in_slots_before_the_next():
    s = sched()
    s.add(jobs("B", 100), 0.0)
    # S pays 1 x 5 slots: B runs five more before T may go.
    assert serve(s, 9, arrivals={1: jobs("S", 1) + jobs("T", 1)}) == "BSBBBBBTB"


def test_the_loan_and_discount_decide_how_early_a_bigger_message_goes():
    # Ten requests: at 50 % discount it needs 5 slots, 3 of them on loan,
    # so 2 earned (10 of the big one's requests started) let it in.
    s = sched()
    s.add(jobs("B", 100), 0.0)
    assert serve(s, 12, arrivals={1: jobs("M", 10)}) == "B" * 10 + "M" + "M"
    s = sched(slot_loan=0, slot_discount=0)
    s.add(jobs("B", 100), 0.0)
    order = serve(s, 70, arrivals={1: jobs("M", 10)})
    assert order.index("M") == 50


def test_the_candidate_must_fit_in_the_slots_the_current_job_can_still_earn():
    # 20 requests can earn 4 slots: a 5-request message does not fit.
    s = sched(slot_loan=100)
    s.add(jobs("B", 20), 0.0)
    assert serve(s, 25, arrivals={1: jobs("M", 5)}) == "B" * 20 + "M" * 5


def test_the_oldest_per_request_candidate_wins():
    # The time a message came into the active queue (queued) decides.
    s = Scheduler(lambda t: ONE, queued={"B": 0.0, "X": 0.0, "Y": 10.0}.get)
    s.add(jobs("B", 100), 0.0)
    s.add(jobs("Y", 1), 10.0)          # queued later
    s.add(jobs("X", 1), 10.0)          # queued first, its request added later
    assert serve(s, 2, now=20.0) == "BX"
    s = Scheduler(lambda t: ONE, queued={"B": 0.0, "M": 0.0, "S": 19.0}.get)
    s.add(jobs("B", 100), 0.0)
    s.add(jobs("S", 1), 19.0)
    s.add(jobs("M", 2), 0.0)           # (20 + 1) s / 2 requests beats (1 + 1) s / 1
    assert serve(s, 3, now=20.0) == "BMM"


def test_unread_recipients_count_as_requests():
    # A message read in batches with many recipients still unread is no
    # small candidate (Postfix MAX_ENTRIES counts rcpt_unread).
    s = Scheduler(lambda t: ONE, unread=lambda qid: 1000 if qid == "U" else 0)
    s.add(jobs("B", 100), 0.0)
    assert serve(s, 3, arrivals={1: jobs("U", 1)}) == "BBB"


def test_preemption_is_told_for_the_extra_recipient_slots():
    s = sched()
    s.add(jobs("B", 20), 0.0)
    serve(s, 2, arrivals={1: jobs("S", 1)})
    assert s.preempted == [("smtp", "S")]


def test_other_destinations_keep_their_own_order():
    s = Scheduler(lambda t: ONE)
    s.add(jobs("B", 20, "a.example") + jobs("C", 20, "b.example"), 0.0)
    s.add(jobs("S", 1, "b.example"), 0.0)
    first = [s.take(0.0), s.take(0.0)]
    assert [j.qid for j in first] == ["B", "C"]


def test_dropping_a_message_forgets_its_job():
    s = sched()
    s.add(jobs("B", 20) + jobs("S", 1), 0.0)
    s.drop("B")
    assert s.waiting() == 1
    assert serve(s, 2) == "S"
    pre = s._preempt["smtp"]
    assert pre.jobs == {}


def test_a_dead_destination_hands_back_every_waiting_job():
    s = sched(failed_cohorts=1)
    s.add(jobs("B", 20) + jobs("S", 1), 0.0)
    job = s.take(0.0)
    back = s.finished(job, 0.0, ok=False, dead_reason="connection refused")
    assert sorted(j.qid for j in back) == ["B"] * 19 + ["S"]
    assert s.waiting() == 0 and s._preempt["smtp"].jobs == {}


def test_a_preempting_job_pays_its_parent_what_it_was_expected_to_use():
    pre = Preemption(Limits())
    pre.added("B", 0.0, 100)
    for _ in range(40):
        pre.selected("B")
    pre.added("M", 0.0, 20)
    assert pre.choose("B", {"B": 60, "M": 20}, 0.0) == "M"
    assert pre.jobs["M"].parent is pre.jobs["B"]
    assert pre.jobs["B"].slots_available == 40 - 20 * 5
    for _ in range(20):
        pre.selected("M")
    # M used all 20 it was paid for: B's slots stay as paid.
    assert pre.jobs["B"].slots_available == 40 - 20 * 5
    assert "M" not in pre.jobs


# -- invariants under arbitrary interleavings ----------------------------------------

MSG_OPS = st.lists(st.one_of(
    st.tuples(st.just("add"), st.sampled_from(["a", "b"]), st.integers(1, 40)),
    st.tuples(st.just("take"), st.just(""), st.just(0)),
    st.tuples(st.just("finish"), st.sampled_from(["ok", "ok", "dead"]), st.integers(0, 9)),
    st.tuples(st.just("drop"), st.just(""), st.integers(0, 9)),
), max_size=80)


@settings(max_examples=200, deadline=None)
@given(MSG_OPS)
def test_preemption_hands_every_job_out_or_back_once(script):
    lim = Limits(concurrency=2, initial=1, failed_cohorts=2, min_slots=1, slot_cost=2)
    s = Scheduler(lambda t: lim, dead_time=3)
    now, n = 0.0, 0
    added: set[tuple[str, int]] = set()
    gone: set[str] = set()
    running: list[Job] = []
    seen: list[tuple[str, int]] = []
    for op, arg, k in script:
        now += 1
        if op == "add":
            qid = f"Q{n}"
            n += 1
            new = [Job(qid, "smtp", arg, (i,)) for i in range(k)]
            added |= {(qid, i) for i in range(k)}
            seen += [(j.qid, j.indexes[0]) for j in s.add(new, now)]
        elif op == "take":
            while (job := s.take(now)) is not None:
                running.append(job)
                seen.append((job.qid, job.indexes[0]))
        elif op == "finish" and running:
            job = running.pop(k % len(running))
            back = s.finished(job, now, ok=arg == "ok", dead_reason="down" if arg == "dead" else "")
            seen += [(j.qid, j.indexes[0]) for j in back]
        elif op == "drop" and n:
            qid = f"Q{k % n}"
            s.drop(qid)
            gone.add(qid)
        for dest in ("a", "b"):
            assert s.busy(("smtp", dest)) <= lim.concurrency
    assert len(seen) == len(set(seen)) and set(seen) <= added
    left = {j for j in added - set(seen) if j[0] not in gone}
    assert s.waiting() == len(left)
    pre = s._preempt.get("smtp")
    if pre is not None:
        assert set(pre.jobs) <= {q for q, _ in left}
