"""schedule - per-destination queues, concurrency, rate delay and fairness.

SYNOPSIS
    sched = Scheduler(limits_for=lambda transport: Limits(...), debug=log_info)
    jobs = plan(qid, [(index, route), ...], limits_for, addresses)   # sorted, grouped, cut
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
    plan() sorts a message's recipients first, as Postfix's qmgr does with
    each batch it reads (by transport, queue, domain, address): the jobs,
    and the recipients within a job, go in that order.

    take() hands out the next job that may start. Destinations are served
    round robin: after a destination gives a job, the next take() looks at
    the following destination first, so a destination with a long backlog
    or slow deliveries cannot starve the others; each gets its turn while it
    has room. A destination has room while its jobs in flight are below its
    concurrency window, which starts at
    ``<transport>_initial_destination_concurrency`` and moves by feedback,
    as Postfix's qmgr_queue_unthrottle() and qmgr_queue_throttle() move it
    (SCHEDULER_README, "Destination concurrency scheduling"):

      * A job that ends without failing the destination adds the positive
        feedback (``<transport>_destination_concurrency_positive_feedback``,
        "1", "1/8", "1/concurrency" = 1/window) to a success count, while
        the window is below the concurrency limit (0: none) and below the
        jobs in flight plus the initial concurrency; each whole success
        grows the window by one (and clears the failure count).
      * A job that fails the destination as a whole (connection refused,
        DNS failure: DeliveryStatus.dead_destination, or an agent that
        cannot be reached) takes the negative feedback off a failure count;
        each whole failure shrinks the window by one, never below 1. It
        also adds 1/window to the destination's failed pseudo-cohorts: at
        ``<transport>_destination_concurrency_failed_cohort_limit`` of them
        (0: never) the destination is dead for ``minimal_backoff_time`` (or
        until forget_dead(), the "F" flush request, or a job in flight that
        ends well): its waiting jobs and any added meanwhile are handed
        back at once, so qmgr defers their recipients with "delivery
        temporarily suspended: <reason>" without trying. A job that ends
        well clears the failed cohorts.

    Both counts overshoot by half a feedback (Postfix's rounding). With
    debug set (destination_concurrency_feedback_debug), each change is
    told as Postfix logs it: "qmgr_queue_unthrottle: feedback 1", then
    "qmgr_queue_unthrottle: queue NAME: limit 20 window 6 success 0
    failure 0 fail_cohorts 0".

    ``<transport>_destination_rate_delay`` > 0 allows one delivery at a time
    and makes the destination wait that long after each one ends (Postfix
    throttles the queue for the delay after each delivery).
    ``<transport>_transport_rate_delay`` > 0 is for all the transport's
    destinations together: one delivery at a time by that transport, and
    each starts that long after the transport was free for it (after the
    previous delivery ended, or, when idle, after take() first saw the job:
    Postfix 3.7 delays even the first delivery, "delays=0.04/3/0/2" with
    3s). A transport without it has no state here and costs nothing.

    A destination serves its waiting jobs first come, first served, except
    that on a transport whose
    ``<transport>_delivery_slot_cost`` is 2 or more a message with few
    jobs may preempt a big one (preempt.py: Postfix's nqmgr job
    preemption, with its delivery slots, loan and discount); each job that
    preempted is noted in ``preempted`` for the caller, which gives a
    message still being read in batches extra recipient slots.

    With clog_length set (qmgr_message_active_limit / 5, when
    qmgr_clog_warn_time is not 0), add() notes in ``clogged`` a
    destination whose jobs waiting and in flight pass it, at most once per
    clog_warn_time (mailsys.qmgr.clog words the warning).

    Nothing here does I/O or reads a clock; every time comes in as an
    argument.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from mailsys.frozen import frozen
from mailsys.qmgr.clog import Clogged
from mailsys.qmgr.preempt import Preemption
from mailsys.qmgr.settings import Limits
from mailsys.routing import Route

__all__ = ["Job", "Scheduler", "address_order", "plan", "sorted_recipients"]

Key = tuple[str, str]          # (transport, nexthop)


@frozen
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


def plan(qid: str, routed: Sequence[tuple[int, Route]],
         limits_for: Callable[[str], Limits],
         addresses: Mapping[int, str] | None = None, *, one_each: bool = False) -> list[Job]:
    """plan - a message's recipients (a batch of them) as jobs: in Postfix's
    order (sorted()), grouped by destination, each group cut into pieces
    of at most the transport's recipient limit (0: no limit). With a limit
    of 1 and the recipients' addresses given, each job's queue is its
    recipient. one_each (VERP: each recipient has a sender of its own): one
    recipient per job whatever the limit, in the destination's queue."""
    if len(routed) > 1:
        routed = sorted_recipients(routed, limits_for, addresses)
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


def sorted_recipients(routed: Iterable[tuple[int, Route]], limits_for: Callable[[str], Limits],
                      addresses: Mapping[int, str] | None = None) -> list[tuple[int, Route]]:
    """sorted_recipients - routed recipients in the order Postfix's queue
    manager assigns them to deliveries (qmgr_message_sort_compare(), on
    each batch it reads): by transport, then queue name (the lower-cased
    next hop, or the recipient's own queue with a recipient limit of 1),
    then recipient domain without case (an address without "@" last),
    then address (byte order, case counts). So a message's jobs, the RCPT
    commands of one delivery and its to= lines come in that order, not in
    the order the recipients were received. Without addresses, by
    destination only, in the order given within one."""
    by_transport: dict[str, bool] = {}

    def key(item: tuple[int, Route]) -> tuple[str, str, tuple[bool, str, str]]:
        index, route = item
        address = addresses.get(index, "") if addresses else ""
        one = by_transport.get(route.transport)
        if one is None:
            one = by_transport[route.transport] = limits_for(route.transport).recipients == 1
        queue = address.lower() if one and address else route.nexthop.lower()
        return (route.transport, queue, address_order(address))

    return sorted(routed, key=key)


def address_order(address: str) -> tuple[bool, str, str]:
    """address_order - the last steps of Postfix's recipient order: the
    domain without case (strcasecmp; an address without "@" last), then
    the address byte by byte (strcmp)."""
    at = address.rfind("@")
    if at < 0:
        return (True, "", address)
    return (False, address[at + 1:].lower(), address)


@dataclass(slots=True)
class _Transport:
    """A transport with a transport rate delay: one delivery at a time,
    each one the delay after the transport was first found free for it."""

    delay: float
    busy: int = 0
    not_before: float | None = None  # armed: the next delivery's start

    def ready(self, now: float) -> bool:
        """Whether a job may start now; the first call that finds the
        transport free arms the delay instead."""
        if self.busy:
            return False
        if self.not_before is None:
            self.not_before = now + self.delay
        return now >= self.not_before


@dataclass(slots=True)
class _Destination:
    limits: Limits
    # The jobs waiting, first come first served unless one preempted another.
    waiting: deque[Job] = field(default_factory=deque)
    pre: Preemption | None = None    # the transport's, when its slot cost is 2 or more
    # With pre: the jobs waiting per message, messages in the order they came.
    counts: dict[str, int] = field(default_factory=dict)
    busy: int = 0
    window: int = 1
    not_before: float = 0.0          # rate delay: no start before this
    xport: _Transport | None = None  # the transport's rate delay, if it has one
    success: float = 0.0             # positive feedback not yet a window step
    failure: float = 0.0             # negative feedback not yet a window step
    failed_cohorts: float = 0.0
    dead_until: float = 0.0
    dead_reason: str = ""
    clog_next: float = 0.0           # no clog warning before this

    def room(self) -> bool:
        if self.limits.rate_delay > 0:
            return self.busy == 0
        if self.limits.concurrency <= 0:
            return True
        return self.busy < min(self.window, self.limits.concurrency)


class Scheduler:
    """The destinations and the jobs waiting in them; see the module text."""

    def __init__(self, limits_for: Callable[[str], Limits], *, dead_time: float = 300.0,
                 debug: Callable[[str], None] | None = None,
                 clog_length: int = 0, clog_warn_time: float = 0.0,
                 unread: Callable[[str], int] | None = None,
                 queued: Callable[[str], float | None] | None = None) -> None:
        self._limits_for = limits_for
        self._unread = unread
        self._queued = queued
        self._preempt: dict[str, Preemption] = {}
        # (transport, queue ID) of each job that preempted another, for
        # the caller to give its message extra recipient slots.
        self.preempted: list[tuple[str, str]] = []
        self._dead_time = dead_time
        self._debug = debug
        self._clog_length = clog_length
        self._clog_warn_time = clog_warn_time
        self.clogged: list[Clogged] = []
        self._dests: dict[Key, _Destination] = {}
        self._xports: dict[str, _Transport] = {}
        # Round robin: destinations in service order; the one served last
        # goes to the end.
        self._ring: deque[Key] = deque()

    # -- adding and removing ------------------------------------------------

    def _dest(self, key: Key) -> _Destination:
        dest = self._dests.get(key)
        if dest is None:
            limits = self._limits_for(key[0])
            xport = None
            if limits.transport_rate_delay > 0:
                xport = self._xports.get(key[0])
                if xport is None:
                    xport = self._xports[key[0]] = _Transport(limits.transport_rate_delay)
            pre = None
            if limits.slot_cost >= 2:
                pre = self._preempt.get(key[0])
                if pre is None:
                    pre = self._preempt[key[0]] = Preemption(
                        limits, self._unread, self._queued,
                        lambda qid, t=key[0]: self.preempted.append((t, qid)))
            dest = _Destination(limits, window=limits.initial_window, xport=xport, pre=pre)
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
                continue
            dest = self._dest(job.key)
            dest.waiting.append(job)
            if dest.pre is not None:
                qid = job.qid
                dest.counts[qid] = dest.counts.get(qid, 0) + 1
                # A message's only job on the transport needs no job of its
                # own (preempt.py): one-recipient mail costs a count.
                if len(jobs) > 1 or qid in dest.pre.jobs:
                    dest.pre.added(qid, now)
            if self._clog_length and len(dest.waiting) + dest.busy > self._clog_length \
                    and now >= dest.clog_next:
                dest.clog_next = now + self._clog_warn_time
                self._clog(job, dest)
        return back

    def _clog(self, job: Job, dest: _Destination) -> None:
        shared = any(k[0] == job.transport and k != job.key for k in self._dests)
        self.clogged.append(Clogged(job.transport, job.nexthop, len(dest.waiting) + dest.busy,
                                    dest.busy, dest.window, dest.limits.concurrency, shared))

    def drop(self, qid: str) -> int:
        """drop - forget the waiting jobs of a message (it vanished); how many."""
        n = 0
        for dest in self._dests.values():
            if dest.pre is not None and dest.counts.pop(qid, None) is None:
                continue
            keep = deque(j for j in dest.waiting if j.qid != qid)
            n += len(dest.waiting) - len(keep)
            dest.waiting = keep
        for pre in self._preempt.values():
            pre.dropped(qid)
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
                    and self.dead(key, now) is None \
                    and (dest.xport is None or dest.xport.ready(now)):
                dest.busy += 1
                if dest.xport is not None:
                    dest.xport.busy += 1
                    dest.xport.not_before = None
                return self._next(dest, now)
        self._collect(now)
        return None

    @staticmethod
    def _next(dest: _Destination, now: float) -> Job:
        """The destination's next job: the first waiting, unless another
        message preempts that one's."""
        pre = dest.pre
        if pre is None:
            return dest.waiting.popleft()
        waiting = dest.waiting
        qid = waiting[0].qid
        if qid in pre.jobs:
            chosen = pre.choose(qid, dest.counts, now)
            if chosen != qid:
                # The preempting message's jobs go to the front, in order;
                # they are the latest, so they are looked for from the end.
                n = dest.counts[chosen]
                found: list[Job] = []
                for i in range(len(waiting) - 1, -1, -1):
                    if waiting[i].qid == chosen:
                        found.append(waiting[i])
                        del waiting[i]
                        if len(found) == n:
                            break
                waiting.extendleft(found)
                qid = chosen
        job = waiting.popleft()
        left = dest.counts[qid] - 1
        if left:
            dest.counts[qid] = left
        else:
            del dest.counts[qid]
        pre.selected(qid)
        return job

    def finished(self, job: Job, now: float, *, ok: bool = True,
                 dead_reason: str = "") -> list[Job]:
        """finished - a job ended. ok=False with a dead_reason is a failed
        cohort; when the destination dies, its waiting jobs are returned."""
        dest = self._dests.get(job.key)
        if dest is None:
            return []
        # Postfix adjusts the window while the job still counts as busy.
        busy = dest.busy
        dest.busy = max(0, busy - 1)
        if dest.limits.rate_delay > 0:
            dest.not_before = now + dest.limits.rate_delay
        if dest.xport is not None:
            dest.xport.busy = max(0, dest.xport.busy - 1)
        if ok:
            self._positive(job.key, dest, busy)
            return []
        if not dead_reason:
            return []
        return self._negative(job.key, dest, now, dead_reason)

    def _positive(self, key: Key, dest: _Destination, busy: int) -> None:
        """Postfix qmgr_queue_unthrottle(): a job ended without failing the
        destination."""
        limits = dest.limits
        dest.failed_cohorts = 0
        if dest.dead_reason:
            # Back from the almost grave, best concurrency is anyone's guess.
            dest.dead_reason, dest.dead_until = "", 0.0
            dest.window = busy if busy > 0 else limits.initial_window
            dest.success = dest.failure = 0.0
        elif (limits.concurrency <= 0 or limits.concurrency > dest.window) \
                and dest.window < busy + limits.initial_window:
            feedback = limits.positive.at(dest.window)
            if self._debug is not None:
                self._debug(f"qmgr_queue_unthrottle: feedback {feedback:g}")
            dest.success += feedback
            while dest.success + feedback / 2 >= 1:
                dest.window += 1
                dest.success -= 1
                dest.failure = 0.0
            if 0 < limits.concurrency < dest.window:
                dest.window = limits.concurrency
        if self._debug is not None:
            self._log_window("qmgr_queue_unthrottle", key, dest)

    def _negative(self, key: Key, dest: _Destination, now: float,
                  dead_reason: str) -> list[Job]:
        """Postfix qmgr_queue_throttle(): a job failed the destination; its
        waiting jobs when that kills it."""
        limits = dest.limits
        if self.dead(key, now) is not None:
            return []
        dest.failed_cohorts += 1 / dest.window
        if 0 < limits.failed_cohorts <= dest.failed_cohorts:
            dest.dead_reason, dest.dead_until = dead_reason, now + self._dead_time
            dest.window = limits.initial_window
            dest.success = dest.failure = 0.0
            if self._debug is not None:
                self._log_window("qmgr_queue_throttle", key, dest)
            back, dest.waiting = list(dest.waiting), deque()
            if dest.pre is not None:
                for qid, n in dest.counts.items():
                    dest.pre.removed(qid, n)
                dest.counts = {}
            return back
        feedback = limits.negative.at(dest.window)
        if self._debug is not None:
            self._debug(f"qmgr_queue_throttle: feedback {feedback:g}")
        dest.failure -= feedback
        while dest.failure - feedback / 2 < 0:
            dest.window -= 1
            dest.success = 0.0
            dest.failure += 1
        dest.window = max(1, dest.window)
        if self._debug is not None:
            self._log_window("qmgr_queue_throttle", key, dest)
        return []

    def _log_window(self, where: str, key: Key, dest: _Destination) -> None:
        assert self._debug is not None
        # Postfix's window is 0 while the destination is dead.
        window = 0 if dest.dead_reason else dest.window
        self._debug(f"{where}: queue {key[1]}: limit {dest.limits.concurrency} "
                    f"window {window} success {dest.success:g} failure {dest.failure:g} "
                    f"fail_cohorts {dest.failed_cohorts:g}")

    def wakeup(self) -> float | None:
        """wakeup - the earliest time a waiting job is held back only by a
        rate delay; None if no such."""
        times = []
        for d in self._dests.values():
            if not (d.waiting and d.room()):
                continue
            when = d.not_before
            if d.xport is not None:
                if d.xport.busy or d.xport.not_before is None:
                    continue             # its end, or the next take(), arms it
                when = max(when, d.xport.not_before)
            if when > 0:
                times.append(when)
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
