"""schedule - per-destination queues, concurrency, rate delay and fairness.

SYNOPSIS
    sched = Scheduler(limits_for=lambda transport: Limits(...))
    jobs = plan(qid, [(index, route), ...], limits_for, addresses)   # grouped and cut
    suspended = sched.add(jobs, now)          # jobs for a dead destination come back
    while (job := sched.take(now)) is not None: start(job)
    suspended = sched.finished(job, now, ok=True | False, dead_reason="...")
    sched.wakeup()                            # when a rate-delayed destination opens
    sched.forget_dead(); sched.drop(qid)

DESCRIPTION
    The pure heart of qmgr, after Postfix's queue manager (src/qmgr/
    qmgr_queue.c, qmgr_entry.c, qmgr_transport.c) with its scheduling made
    simpler. A destination is a (transport, next hop) pair: every
    recipient resolved to it waits in that destination's FIFO queue, in
    jobs (one DeliverRequest each) of at most
    ``<transport>_destination_recipient_limit`` recipients of one message.

    take() hands out the next job that may start. Destinations are served
    round robin: after a destination gives a job, the next take() looks at
    the following destination first, so a destination with a long backlog
    or slow deliveries cannot starve the others; each gets its turn while it
    has room. A destination has room while its jobs in flight are below its
    concurrency window, which starts at
    ``<transport>_initial_destination_concurrency`` and grows by one with
    every job that ends well, up to ``<transport>_destination_concurrency_limit``
    (Postfix's slow start with a positive feedback of 1; 0 means no limit).

    ``<transport>_destination_rate_delay`` > 0 allows one delivery at a time
    and makes the destination wait that long after each one ends (Postfix
    throttles the queue for the delay after each delivery).

    A job that ends with the destination as a whole failing (connection
    refused, DNS failure: DeliveryStatus.dead_destination, or an agent that
    cannot be reached) counts as a failed cohort; at
    ``<transport>_destination_concurrency_failed_cohort_limit`` of them in a
    row the destination is dead for ``minimal_backoff_time`` (or until
    forget_dead(), the "F" flush request): its waiting jobs and any added
    meanwhile are handed back at once, so qmgr defers their recipients with
    "delivery temporarily suspended: <reason>" without trying. A job that
    ends well resets the count.

    Nothing here does I/O or reads a clock; every time comes in as an
    argument.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from mailsys.qmgr.settings import Limits
from mailsys.routing import Route

__all__ = ["Job", "Scheduler", "plan"]

Key = tuple[str, str]          # (transport, nexthop)


@dataclass(frozen=True, slots=True)
class Job:
    """One delivery request: recipients of one message for one destination."""

    qid: str
    transport: str
    nexthop: str
    indexes: tuple[int, ...]
    address_class: str = ""
    queue: str = ""              # the scheduler's queue name when not the next hop

    @property
    def key(self) -> Key:
        return (self.transport, self.queue or self.nexthop)


def plan(qid: str, routed: Iterable[tuple[int, Route]],
         limits_for: Callable[[str], Limits],
         addresses: Mapping[int, str] | None = None, *, one_each: bool = False) -> list[Job]:
    """plan - a message's recipients as jobs: grouped by destination, in the
    order the destinations first appear, each group cut into pieces of at
    most the transport's recipient limit (0: no limit). With a limit of 1
    and the recipients' addresses given, each job's queue is its recipient.
    one_each (VERP: each recipient has a sender of its own): one recipient
    per job whatever the limit, in the destination's queue."""
    groups: dict[tuple[str, str, str], list[int]] = {}
    for index, route in routed:
        key = (route.transport, route.nexthop, route.address_class.value)
        groups.setdefault(key, []).append(index)
    jobs = []
    for (transport, nexthop, klass), indexes in groups.items():
        limit = limits_for(transport).recipients
        size = 1 if one_each else limit or len(indexes)
        for i in range(0, len(indexes), size):
            queue = addresses[indexes[i]].lower() if limit == 1 and addresses else ""
            jobs.append(Job(qid, transport, nexthop, tuple(indexes[i:i + size]), klass, queue))
    return jobs


@dataclass(slots=True)
class _Destination:
    limits: Limits
    waiting: deque[Job] = field(default_factory=deque)
    busy: int = 0
    window: int = 1
    not_before: float = 0.0          # rate delay: no start before this
    failed_cohorts: int = 0
    dead_until: float = 0.0
    dead_reason: str = ""

    def room(self) -> bool:
        if self.limits.rate_delay > 0:
            return self.busy == 0
        if self.limits.concurrency <= 0:
            return True
        return self.busy < min(self.window, self.limits.concurrency)


class Scheduler:
    """The destinations and the jobs waiting in them; see the module text."""

    def __init__(self, limits_for: Callable[[str], Limits], *, dead_time: float = 300.0) -> None:
        self._limits_for = limits_for
        self._dead_time = dead_time
        self._dests: dict[Key, _Destination] = {}
        # Round robin: destinations in service order; the one served last
        # goes to the end.
        self._ring: deque[Key] = deque()

    # -- adding and removing ------------------------------------------------

    def _dest(self, key: Key) -> _Destination:
        dest = self._dests.get(key)
        if dest is None:
            limits = self._limits_for(key[0])
            dest = _Destination(limits, window=max(1, limits.initial))
            self._dests[key] = dest
            self._ring.append(key)
        return dest

    def dead(self, key: Key, now: float) -> str | None:
        """The reason a destination is dead, or None when it is alive."""
        dest = self._dests.get(key)
        if dest is None or not dest.dead_reason:
            return None
        if now >= dest.dead_until:
            dest.dead_reason, dest.failed_cohorts = "", 0
            return None
        return dest.dead_reason

    def add(self, jobs: Iterable[Job], now: float) -> list[Job]:
        """add - queue jobs; those for a dead destination are returned instead."""
        back = []
        for job in jobs:
            if self.dead(job.key, now) is not None:
                back.append(job)
            else:
                self._dest(job.key).waiting.append(job)
        return back

    def drop(self, qid: str) -> int:
        """drop - forget the waiting jobs of a message (it vanished); how many."""
        n = 0
        for dest in self._dests.values():
            keep = deque(j for j in dest.waiting if j.qid != qid)
            n += len(dest.waiting) - len(keep)
            dest.waiting = keep
        return n

    def forget_dead(self) -> None:
        """forget_dead - revive every dead destination (the "F" request)."""
        for dest in self._dests.values():
            dest.dead_reason, dest.dead_until, dest.failed_cohorts = "", 0.0, 0

    # -- running ------------------------------------------------------------

    def take(self, now: float) -> Job | None:
        """take - the next job that may start now, round robin; None if none."""
        for _ in range(len(self._ring)):
            key = self._ring[0]
            self._ring.rotate(-1)
            dest = self._dests[key]
            if dest.waiting and dest.room() and now >= dest.not_before \
                    and self.dead(key, now) is None:
                dest.busy += 1
                return dest.waiting.popleft()
        self._collect(now)
        return None

    def finished(self, job: Job, now: float, *, ok: bool = True,
                 dead_reason: str = "") -> list[Job]:
        """finished - a job ended. ok=False with a dead_reason is a failed
        cohort; when the destination dies, its waiting jobs are returned."""
        dest = self._dests.get(job.key)
        if dest is None:
            return []
        dest.busy = max(0, dest.busy - 1)
        if dest.limits.rate_delay > 0:
            dest.not_before = now + dest.limits.rate_delay
        if ok:
            dest.failed_cohorts = 0
            limit = dest.limits.concurrency
            if limit <= 0 or dest.window < limit:
                dest.window += 1
            return []
        if not dead_reason:
            return []
        dest.failed_cohorts += 1
        # Postfix's negative feedback: the window shrinks while failures go on.
        dest.window = max(1, dest.window - 1)
        if dest.failed_cohorts < max(1, dest.limits.failed_cohorts):
            return []
        dest.dead_reason, dest.dead_until = dead_reason, now + self._dead_time
        dest.window = max(1, dest.limits.initial)
        back, dest.waiting = list(dest.waiting), deque()
        return back

    def wakeup(self) -> float | None:
        """wakeup - the earliest time a waiting job is held back only by a
        rate delay; None if no such."""
        times = [d.not_before for d in self._dests.values()
                 if d.waiting and d.room() and d.not_before > 0]
        return min(times) if times else None

    # -- looking ------------------------------------------------------------

    def waiting(self, key: Key | None = None) -> int:
        """waiting - jobs waiting (for one destination, or in all)."""
        if key is not None:
            dest = self._dests.get(key)
            return len(dest.waiting) if dest else 0
        return sum(len(d.waiting) for d in self._dests.values())

    def busy(self, key: Key) -> int:
        """busy - jobs of a destination in flight."""
        dest = self._dests.get(key)
        return dest.busy if dest else 0

    def window(self, key: Key) -> int:
        dest = self._dests.get(key)
        return dest.window if dest else 0

    def _collect(self, now: float) -> None:
        """Forget idle, alive destinations so the ring does not grow forever
        (a window restarts from the initial concurrency, as in Postfix)."""
        idle = [k for k, d in self._dests.items()
                if not d.waiting and not d.busy and not d.dead_reason and d.not_before <= now]
        if len(idle) > 64:
            for key in idle:
                del self._dests[key]
            self._ring = deque(k for k in self._ring if k in self._dests)
