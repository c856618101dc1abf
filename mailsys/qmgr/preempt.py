"""preempt - job preemption: mail with few recipients slips past a big one.

SYNOPSIS
    pre = Preemption(limits, unread=lambda qid: 0, queued=lambda qid: when)
    pre.added(qid, now, n)          # n delivery requests of the message queued
    qid = pre.choose(first, counts, now)   # which message a destination serves
    pre.selected(qid)               # one of its requests started
    pre.removed(qid, n)             # n requests left unstarted (dead destination)
    pre.dropped(qid)                # the message is gone

DESCRIPTION
    Postfix's nqmgr preemptive scheduling (SCHEDULER_README, "Preemptive
    scheduling", "How does the preemption work"; src/qmgr/qmgr_job.c
    qmgr_job_preempt(), qmgr_job_candidate(), qmgr_job_count_slots(),
    qmgr_job_pop()), per transport. A job is one message's delivery
    requests on the transport. Each request started for a job adds one to
    its available delivery slots. The current job - where a destination
    serves its messages in the order they came, the first one waiting
    there - may be preempted when it can ever accumulate
    ``<transport>_minimum_delivery_slots`` slots (it has at least that many
    times ``<transport>_delivery_slot_cost`` requests) and has some: the
    candidate is the later job waiting at the destination, not itself
    preempted by others, whose remaining requests fit in the slots the
    current job can still accumulate (its remaining requests plus its
    slots, over the slot cost), with the best (time since queued + 1) /
    requests. It goes first when the current job's slots over the cost,
    plus ``<transport>_delivery_slot_loan``, reach
    (100 - ``<transport>_delivery_slot_discount``) per cent of its
    remaining requests; the current job pays that many requests times the
    cost in slots, corrected by what the preempting job really used when
    it is done. A slot cost below 2 turns preemption off (Postfix: "The
    slot_cost equal to 1 causes the algorithm to degenerate").

    Where Postfix hands out delivery slots as a transport's delivery agents
    become free, mailsys's agents take many requests at once and nothing
    waits at the transport: requests wait only for their destination's
    concurrency window, so this is where the job order is decided. A
    message's requests count its unread recipients as well (unread(qid):
    those of a message read in batches, incore.py), as Postfix's
    MAX_ENTRIES does, so that a big message not yet read is not taken for
    a small one.

    A message with one request on the transport (most mail) gets no job
    here unless it preempts: it cannot be preempted (it is started as
    soon as it is first in line), and as a candidate its one request and
    its time in the active queue (queued(qid)) are all that counts. Such
    mail costs the scheduler a count per destination, nothing more.

    Pure: no I/O, no clock; times come in as arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailsys.qmgr.settings import Limits

__all__ = ["Preemption"]


@dataclass(slots=True, eq=False)
class _Job:
    """One message's requests on the transport (Postfix QMGR_JOB)."""

    qid: str
    queued: float
    entries: int = 0                 # requests queued so far (read_entries)
    selected: int = 0                # of those, started (selected_entries)
    slots_available: int = 0
    slots_used: int = 0
    parent: _Job | None = None       # the job it preempted
    level: int = 0                   # its depth on the preemption stack
    children: list[_Job] = field(default_factory=list)


def _cdiv(a: int, b: int) -> int:
    """C's integer division (toward zero): slots_available may be negative."""
    q = abs(a) // b
    return q if a >= 0 else -q


class Preemption:
    """The jobs of one transport and their delivery slots."""

    def __init__(self, limits: Limits, unread: Callable[[str], int] | None = None,
                 queued: Callable[[str], float | None] | None = None,
                 on_preempt: Callable[[str], None] | None = None) -> None:
        self.cost = limits.slot_cost
        self.loan = limits.slot_loan
        self.factor = 100 - limits.slot_discount
        self.min_slots = limits.min_slots
        self._unread = unread
        self._queued = queued
        self._on_preempt = on_preempt
        self.jobs: dict[str, _Job] = {}

    def _max_entries(self, job: _Job) -> int:
        return job.entries + self._unread_of(job.qid)

    def _unread_of(self, qid: str) -> int:
        return self._unread(qid) if self._unread is not None else 0

    def _queued_at(self, qid: str, now: float) -> float:
        when = self._queued(qid) if self._queued is not None else None
        return now if when is None else when

    # -- bookkeeping --------------------------------------------------------

    def added(self, qid: str, now: float, n: int = 1) -> None:
        job = self.jobs.get(qid)
        if job is None:
            job = self.jobs[qid] = _Job(qid, self._queued_at(qid, now))
        job.entries += n

    def selected(self, qid: str) -> None:
        """One request of the message started (qmgr_job_count_slots())."""
        job = self.jobs.get(qid)
        if job is None:
            return
        job.slots_available += 1
        job.slots_used += 1
        job.selected += 1
        if job.selected >= job.entries:
            self._retire(job)

    def removed(self, qid: str, n: int) -> None:
        """n of the message's requests left without starting."""
        job = self.jobs.get(qid)
        if job is None:
            return
        job.entries -= n
        if job.selected >= job.entries:
            self._retire(job)

    def dropped(self, qid: str) -> None:
        job = self.jobs.get(qid)
        if job is not None:
            self._retire(job)

    def _retire(self, job: _Job) -> None:
        """Every request of the job started: off the stack and forgotten
        (a later batch of its message makes a new job)."""
        if job.level > 0:
            self._pop(job)
        for child in job.children:
            child.parent = None
        job.children.clear()
        del self.jobs[job.qid]

    def _pop(self, job: _Job) -> None:
        """qmgr_job_pop(): the parent gets back what its child did not use
        of the slots paid for it; the child's children go to the parent."""
        parent = job.parent
        if parent is not None:
            if job.level == parent.level + 1:
                parent.slots_available -= job.slots_used * self.cost
            parent.children.remove(job)
        for child in job.children:
            child.parent = parent
            if parent is not None:
                parent.children.append(child)
        job.children.clear()
        job.parent = None
        job.level = 0

    # -- choosing -----------------------------------------------------------

    def choose(self, first: str, counts: dict[str, int], now: float) -> str:
        """choose - the message whose request a destination starts next:
        first (its first in line, which has a job here), unless a later
        one preempts it. counts: the requests waiting at the destination
        per message, in the order they came."""
        current = self.jobs[first]
        if current.slots_available <= 0 \
                or self._max_entries(current) < self.min_slots * self.cost:
            return first
        best, needed = self._candidate(current, counts, now)
        if best is None:
            return first
        if _cdiv(current.slots_available, self.cost) + self.loan < needed * self.factor / 100:
            return first
        job = self.jobs.get(best)
        if job is None:
            job = self.jobs[best] = _Job(best, self._queued_at(best, now), entries=counts[best])
        elif job.level > 0:
            self._pop(job)
        job.parent = current
        current.children.append(job)
        job.level = current.level + 1
        current.slots_available -= needed * self.cost
        job.slots_used = -needed
        if self._on_preempt is not None:
            self._on_preempt(best)
        return best

    def _candidate(self, current: _Job, counts: dict[str, int],
                   now: float) -> tuple[str | None, int]:
        """qmgr_job_candidate(): the best message to preempt current, and
        how many requests it still needs."""
        max_slots = (current.entries - current.selected + current.slots_available) // self.cost
        if max_slots <= 0:
            return None, 0
        best, best_needed, best_score = None, 0, 0.0
        for qid, waiting in counts.items():
            job = self.jobs.get(qid)
            if job is None:
                total = waiting + self._unread_of(qid)
                needed, queued = total, self._queued_at(qid, now)
            elif job is current or job.children:
                continue
            else:
                total = self._max_entries(job)
                needed, queued = total - job.selected, job.queued
            if 0 < needed <= max_slots:
                score = (now - queued + 1) / total
                if score > best_score:
                    best, best_needed, best_score = qid, needed, score
        return best, best_needed
