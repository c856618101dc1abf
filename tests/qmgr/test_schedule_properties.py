"""Scheduler invariants under arbitrary interleavings (Hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mailsys.qmgr.schedule import Job, Scheduler
from mailsys.qmgr.settings import Limits

DESTS = ["a", "b", "c"]
LIMITS = {"a": Limits(concurrency=1, initial=1), "b": Limits(concurrency=3, initial=1),
          "c": Limits(concurrency=2, initial=2, failed_cohorts=2)}

ops = st.lists(st.one_of(
    st.tuples(st.just("add"), st.sampled_from(DESTS), st.integers(1, 4)),
    st.tuples(st.just("take"), st.just(""), st.just(0)),
    st.tuples(st.just("finish"), st.sampled_from(["ok", "fail", "dead"]), st.integers(0, 9)),
    st.tuples(st.just("forget"), st.just(""), st.just(0)),
), max_size=80)


@settings(max_examples=200, deadline=None)
@given(ops)
def test_every_job_is_handed_out_or_back_once_and_limits_hold(script):
    sched = Scheduler(lambda transport: LIMITS[transport], dead_time=5)
    now = 0.0
    added: list[Job] = []
    running: list[Job] = []
    seen: list[Job] = []                  # taken or handed back
    order: dict[str, list[str]] = {d: [] for d in DESTS}
    n = 0
    for op, arg, k in script:
        now += 1
        if op == "add":
            jobs = [Job(f"Q{n + i}", arg, "hop", (0,)) for i in range(k)]
            n += k
            added += jobs
            seen += sched.add(jobs, now)
        elif op == "take":
            while (job := sched.take(now)) is not None:
                running.append(job)
                seen.append(job)
                order[job.transport].append(job.qid)
        elif op == "finish" and running:
            job = running.pop(k % len(running))
            seen += sched.finished(job, now, ok=arg == "ok",
                                   dead_reason="down" if arg == "dead" else "")
        elif op == "forget":
            sched.forget_dead()
        for d in DESTS:
            busy = sched.busy((d, "hop"))
            assert busy == sum(1 for j in running if j.transport == d)
            assert busy <= LIMITS[d].concurrency
    # nothing handed out twice, nothing invented
    assert len(seen) == len({j.qid for j in seen})
    assert {j.qid for j in seen} <= {j.qid for j in added}
    # what is neither handed out nor back is still waiting
    assert len(added) - len(seen) == sched.waiting()
    # each destination starts its jobs in the order they were added
    for d in DESTS:
        ids = [int(q[1:]) for q in order[d]]
        assert ids == sorted(ids)
