"""preempt - job preemption: mail with few recipients slips past a big one.

SYNOPSIS
    pre = Preemption(limits, unread=lambda qid: 0)    # a transport's, slot cost >= 2
    pre.added(qid, now, n)          # n delivery requests of the message queued
    qid = pre.choose(waiting, now)  # which message a destination with room serves
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

    Pure: no I/O, no clock; times come in as arguments.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailsys.qmgr.schedule import Job
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
                 on_preempt: Callable[[str], None] | None = None) -> None:
        self.cost = limits.slot_cost
        self.loan = limits.slot_loan
        self.factor = 100 - limits.slot_discount
        self.min_slots = limits.min_slots
        self._unread = unread
        self._on_preempt = on_preempt
        self.jobs: dict[str, _Job] = {}

    def _max_entries(self, job: _Job) -> int:
        unread = self._unread(job.qid) if self._unread is not None else 0
        return job.entries + unread

    # -- bookkeeping --------------------------------------------------------

    def added(self, qid: str, now: float, n: int = 1) -> None:
        job = self.jobs.get(qid)
        if job is None:
            job = self.jobs[qid] = _Job(qid, now)
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

    def choose(self, waiting: dict[str, deque[Job]], now: float) -> str:
        """choose - the message whose request the destination starts next:
        its first one in order, unless a later one preempts it. waiting
        (message: requests, in the destination's job order) is reordered
        when one does."""
        first = next(iter(waiting))
        current = self.jobs.get(first)
        if current is None or current.slots_available <= 0 \
                or self._max_entries(current) < self.min_slots * self.cost:
            return first
        best, needed = self._candidate(current, waiting, now)
        if best is None:
            return first
        if _cdiv(current.slots_available, self.cost) + self.loan < needed * self.factor / 100:
            return first
        if best.level > 0:
            self._pop(best)
        best.parent = current
        current.children.append(best)
        best.level = current.level + 1
        current.slots_available -= needed * self.cost
        best.slots_used = -needed
        requests = waiting.pop(best.qid)
        items = list(waiting.items())
        waiting.clear()
        waiting[best.qid] = requests
        waiting.update(items)
        if self._on_preempt is not None:
            self._on_preempt(best.qid)
        return best.qid

    def _candidate(self, current: _Job, waiting: dict[str, deque[Job]],
                   now: float) -> tuple[_Job | None, int]:
        """qmgr_job_candidate(): the best job to preempt current, and how
        many requests it still needs."""
        max_slots = (current.entries - current.selected + current.slots_available) // self.cost
        best, best_needed, best_score = None, 0, 0.0
        if max_slots <= 0:
            return None, 0
        for qid in waiting:
            job = self.jobs.get(qid)
            if job is None or job is current or job.children:
                continue
            total = self._max_entries(job)
            needed = total - job.selected
            if 0 < needed <= max_slots:
                score = (now - job.queued + 1) / total
                if score > best_score:
                    best, best_needed, best_score = job, needed, score
        return best, best_needed
