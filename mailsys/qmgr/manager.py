"""manager - the queue manager at work: the queue store, agents and bounce.

SYNOPSIS
    mgr = QueueManager(store, settings, routing, limits_for, agents)
    nursery.start_soon(mgr.run)            # recovers, scans, schedules, forever
    mgr.request(frozenset({b"I"}))         # a trigger: scan incoming now

DESCRIPTION
    The trio side of qmgr (Postfix src/qmgr/qmgr.c, qmgr_active.c,
    qmgr_scan.c, qmgr_deliver.c). One task, run(), loops: it takes entries
    from the incoming queue, and deferred entries that are due, into the
    active queue (up to qmgr_message_active_limit entries, and while the
    active entries' recipients in memory stay below
    qmgr_message_recipient_limit; one entry is always let in, however many
    recipients it has), resolves each pending
    recipient to a destination, hands the jobs to the Scheduler, and starts
    one task per job the scheduler lets go. An entry with more pending
    recipients than its first batch may hold (what is left of
    qmgr_message_recipient_limit, at least qmgr_message_recipient_minimum)
    is resolved in batches, as the transports' in-memory recipient pools
    (<transport>_recipient_limit) and refill limits allow (incore.py); it
    is settled only when its last batch is delivered. Then it sleeps until a
    trigger, a job's end, the next deferred entry's due time, a rate delay,
    a refill delay, or the next queue_run_delay tick.

    A recipient whose transport is in defer_transports goes to the retry
    transport ("deferred transport"), unless its entry came in with the
    scan after an "F" request (postqueue -f, -i, -s, sendmail -q). The
    Scheduler's note of a destination that fills the active queue is
    logged as Postfix's qmgr_clog_warn_time warning (clog.py).

    A job task sends a DeliverRequest to the transport's agent and records
    each recipient's result in the store at once. Results, removals and
    deferrals go through one group commit (writes.py): the jobs that end
    while a commit is in flight share the next one.
    An agent that cannot be reached or does not answer in time defers the
    job's recipients with "mail transport unavailable" and kills the
    destination for a while; the jobs waiting for a dead destination are
    deferred with "delivery temporarily suspended: <reason>". qmgr logs
    those deferrals itself (no agent saw them), in the agents' format.
    An agent that took the request and then died (or answered with an
    error) is Postfix's "unknown mail transport error" (qmgr_deliver.c,
    DELIVER_STAT_CRASH): qmgr warns "private/<transport> socket: malformed
    response", as Postfix's does; the job's recipients are deferred
    without a status line of their own (the agent may have logged some
    before it died; Postfix logs none either, seen live with Postfix
    3.7.11), and the destination takes it as a failure whose waiting
    jobs, should it die, say "delivery temporarily suspended: unknown mail
    transport error".

    When a message has no job left, settle() (results.py) decides: expire,
    notify, remove or defer. A notice for bounced recipients (and the
    postmaster copies notify_classes asks for) is built by the bounce
    service (NoticeRequest) and committed by qmgr in the same transaction
    that removes the entry (QueueStore.remove(notices=...)); a
    message that still has deferred recipients keeps its entry, the notice
    is queued first and the recipients are then marked notified (a crash in
    between sends it twice, never zero times). When bounce cannot be
    reached the entry is deferred as it is and tried again later: it never
    leaves the queue without its notice (DESIGN.md contract 2).

    The store is the truth (STYLE.md rule 5): what is held here is a cache
    of the active entries. On start, entries left in the active queue by a
    qmgr that died are put back in incoming and delivered again (at least
    once). Entries that vanish or change queue under qmgr (postsuper -d,
    -h) are dropped quietly; held entries are never touched. Every store
    call runs in a worker thread through mailsys.runtime.store_io.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import structlog
import trio

from mailsys.errors import NoSuchEntry, QueueError
from mailsys.ipc import names
from mailsys.ipc.errors import IpcError, IpcLost, RemoteError
from mailsys.ipc.proto import bounce as bounce_proto
from mailsys.ipc.proto.bounce import NoticeReady, NoticeRequest, PostmasterCopy
from mailsys.ipc.proto import verify as verify_proto
from mailsys.ipc.proto.deliver import DeliverRecipient, DeliverRequest, DeliveryStatus
from mailsys.message.envelope import Envelope, RcptState, Recipient
from mailsys.message.verp import verp_sender
from mailsys.qmgr import clog, results
from mailsys.qmgr.agents import Agents
from mailsys.qmgr.backoff import next_attempt
from mailsys.qmgr.incore import Pools, Reading
from mailsys.qmgr.schedule import Job, Scheduler, plan
from mailsys.qmgr.settings import Limits, QmgrSettings
from mailsys.qmgr.writes import StoreWrites
from mailsys.queue import Admit, Queue, QueueStore, Remove, Update, WrongQueue
from mailsys.routing import AddressClass, Route, RoutingSettings, resolve, resolved_address
from mailsys.runtime import store_io

__all__ = ["QueueManager", "TRANSPORT_UNAVAILABLE", "SUSPENDED", "STOP_GRACE"]

log = structlog.get_logger()

TRANSPORT_UNAVAILABLE = "mail transport unavailable"     # Postfix qmgr_deliver.c
SUSPENDED = "delivery temporarily suspended: "           # Postfix qmgr_deliver.c
UNAVAILABLE_DSN = "4.3.0"
# What the scheduler keeps as a dead destination's reason: the status and
# text of the deferral that killed it ("4.4.1 connect to ...: ...").
DEAD_TRANSPORT = f"{UNAVAILABLE_DSN} {TRANSPORT_UNAVAILABLE}"
_DSN = re.compile(r"4\.\d{1,3}\.\d{1,3}")
RESOLVER_FAILURE = "4.3.0 address resolver failure"
# defer_transports: the retry transport's next hop (Postfix qmgr_message.c).
DEFERRED_TRANSPORT = "4.3.2 deferred transport"
# Mail to the local double-bounce address (qmgr_message.c): reported sent,
# never delivered.
DOUBLE_BOUNCE_DISCARDED = "undeliverable postmaster notification discarded"
# A bounce notice is built from one stored message: bounded work.
NOTICE_TIMEOUT = 60.0
# Seconds the deliveries in flight get to end when qmgr stops; below the
# skeleton's graceful_timeout, after which the master kills the process.
STOP_GRACE = 5.0
# Entries moved into active per store transaction.
SCAN_BATCH = 256


def _client_of(env: Envelope) -> dict[str, object]:
    """The DeliverRequest fields a delivery agent forwards with XFORWARD.
    Only mail that came in over SMTP has a client and an ident (smtpd's
    queue ID, or the one XFORWARD gave); Postfix forwards nothing but
    SOURCE=LOCAL for mail from sendmail (pickup) or bounce, as seen live."""
    if env.attr("origin") != "smtpd":
        return {}
    return dict(client_name=env.client_name, client_addr=env.client_addr,
                client_port=env.client_port, client_helo=env.helo,
                client_protocol=env.protocol, log_ident=env.log_ident or env.queue_id,
                sasl_method=env.sasl_method, sasl_user=env.sasl_user, sasl_sender=env.sasl_sender)


def _localpart(address: str) -> str:
    return address.rpartition("@")[0] if "@" in address else address


def _suspension(dead: str) -> tuple[str, str]:
    """The status and text of a deferral because the destination is dead:
    those of the deferral that killed it, the text after "delivery
    temporarily suspended: " (Postfix qmgr_deliver.c, which sanitizes them
    as here); when the transport could not be reached at all, "mail
    transport unavailable" as such (qmgr_deliver() defers the transport's
    mail with that)."""
    if dead == DEAD_TRANSPORT:
        return UNAVAILABLE_DSN, TRANSPORT_UNAVAILABLE
    dsn, _, reason = dead.partition(" ")
    return (dsn if _DSN.fullmatch(dsn) else "4.0.0"), SUSPENDED + (reason or "unknown error")


def _is_probe(env: Envelope) -> bool:
    """A trace-only delivery (cleanup's trace_flags attribute): an address
    verification probe, or sendmail -bv."""
    return env.attr(verify_proto.TRACE_FLAGS) in (verify_proto.MTA_VRFY, verify_proto.USR_VRFY)


def _is_user_probe(env: Envelope) -> bool:
    """sendmail -bv: the results go to the sender in a report, not to verify."""
    return env.attr(verify_proto.TRACE_FLAGS) == verify_proto.USR_VRFY


_VERIFY_STATUS = {RcptState.SENT: verify_proto.OK, RcptState.DEFERRED: verify_proto.DEFER,
                  RcptState.BOUNCED: verify_proto.BOUNCE}


@dataclass(slots=True)
class _Active:
    """A cached active entry: its envelope when opened and its jobs out."""

    env: Envelope
    queued_at: float
    # Its recipients in memory, as counted against qmgr_message_recipient_limit:
    # its undelivered ones when opened, or, read in batches, those read in
    # and not yet delivered (Postfix's in-core recipient count).
    nrcpt: int = 0
    outstanding: int = 0
    gone: bool = False
    # env is the store's record as the entry's only job's results were
    # committed (apply() reads it inside that transaction): settle needs no
    # read of its own. Never set for entries with several jobs, whose
    # results may come back in another order than they were committed.
    fresh: bool = False
    single: bool = False
    # Set while its recipients are read in batches (incore.py); None for
    # the usual message, read whole when it is opened.
    reading: Reading | None = None
    flush: bool = False            # opened by a flush: over defer_transports too
    # Recipients the resolver rewrote (user@192.0.2.1 -> user@[192.0.2.1]),
    # by index: delivered and logged so, the queued address as orig_to.
    # Like Postfix's qmgr, only in memory: the entry keeps the address queued.
    resolved: dict[int, str] = field(default_factory=dict)

    def recipient(self, index: int) -> tuple[str, str]:
        """(address, orig) of recipient index as it is delivered."""
        r = self.env.recipients[index]
        address = self.resolved.get(index)
        return (r.address, r.orig) if address is None else (address, r.orig or r.address)


class QueueManager:
    """See the module description."""

    def __init__(self, store: QueueStore, settings: QmgrSettings, routing: RoutingSettings,
                 limits_for: Callable[[str], Limits], agents: Agents, *,
                 clock: Callable[[], float] = time.time,
                 probe_routing: RoutingSettings | None = None) -> None:
        self.store = store
        self.writes = StoreWrites(store)
        self.settings = settings
        self.routing = routing
        # Address verification probes go by the address_verify_* settings.
        self.probe_routing = probe_routing or routing
        self.agents = agents
        self.clock = clock
        self._limits: dict[str, Limits] = {}
        self._limits_for = limits_for
        self.scheduler = Scheduler(
            self.limits, dead_time=settings.minimal_backoff_time,
            debug=log.info if settings.feedback_debug else None,
            # qmgr_queue.c: "if (var_helpful_warnings && var_qmgr_clog_warn_time > 0)".
            clog_length=settings.active_limit // 5
            if settings.helpful_warnings and settings.clog_warn_time > 0 else 0,
            clog_warn_time=settings.clog_warn_time, unread=self._unread, queued=self._queued)
        self.active: dict[str, _Active] = {}
        self.pools = Pools(self.limits, minimum=settings.recipient_minimum)
        self._wake = trio.Event()
        self._scan_incoming = True
        self._scan_deferred = True
        self._flush_dead = False
        # The next scan of each queue delivers over defer_transports (an
        # "F" request, as postqueue -f, -i, -s and sendmail -q send):
        # Postfix's QMGR_FLUSH_DFXP.
        self._flush_incoming = False
        self._flush_deferred = False
        self._full = False                 # a scan stopped at the active limit
        self._recipients = 0               # recipients of active entries in memory
        self._next_tick = 0.0              # the next queue_run_delay scan
        # The earliest due time in the deferred queue, read again after each
        # deferred scan (which every trigger and tick brings) rather than at
        # every wake-up: only qmgr itself defers between scans, and it knows
        # when (_defer). A stale, too early value costs one extra scan.
        self._due: float | None = None
        self._due_stale = True
        self._nursery: trio.Nursery | None = None      # the jobs' nursery
        self._stopping = trio.Event()

    def _unread(self, qid: str) -> int:
        return self.pools.unread(qid)

    def _queued(self, qid: str) -> float | None:
        msg = self.active.get(qid)
        return None if msg is None else msg.queued_at

    def limits(self, transport: str) -> Limits:
        found = self._limits.get(transport)
        if found is None:
            found = self._limits[transport] = self._limits_for(transport)
        return found

    # -- requests -------------------------------------------------------------

    def request(self, requests: Iterable[bytes]) -> None:
        """request - fold trigger bytes into work (Postfix qmgr_trigger_event).

        I and W scan incoming (W is the master's wakeup: it also catches a
        lost trigger). D and A scan the deferred queue now: mailsys's
        postqueue and postsuper make the entries due in the store before
        they poke, so A needs nothing beyond D. F revives dead destinations,
        and the entries the next scans take in go over defer_transports.
        """
        for req in requests:
            if req in (names.QMGR_REQ_SCAN_INCOMING, names.TRIGGER_REQ_WAKEUP):
                self._scan_incoming = True
            elif req in (names.QMGR_REQ_SCAN_DEFERRED, names.QMGR_REQ_SCAN_ALL):
                self._scan_deferred = True
            elif req == names.QMGR_REQ_FLUSH_DEAD:
                self._flush_dead = True
                self._flush_incoming = self._flush_deferred = True
        self._wake.set()

    # -- the loop -------------------------------------------------------------

    async def run(self) -> None:
        """run - recover, then scan and schedule until cancelled.

        When cancelled (the service is stopping), no new job starts, and
        the jobs in flight get STOP_GRACE seconds to end and have their
        results recorded: a delivery whose result is lost is made again
        after the restart.
        """
        await self.recover()
        grace = trio.CancelScope(shield=True)
        try:
            async with trio.open_nursery() as nursery:
                ready = trio.Event()
                nursery.start_soon(self._host_jobs, grace, ready)
                try:
                    await ready.wait()
                    while True:
                        await self.cycle()
                        await self._sleep()
                finally:
                    # The nursery waits for the jobs' host: tell it to wind up.
                    self._stopping.set()
                    grace.deadline = min(grace.deadline, trio.current_time() + STOP_GRACE)
        finally:
            with trio.CancelScope(shield=True):
                await self.agents.aclose()

    async def _host_jobs(self, grace: trio.CancelScope, ready: trio.Event) -> None:
        """Hold the nursery of the delivery and settle tasks, shielded from
        the loop's cancellation and bounded by STOP_GRACE once it comes."""
        with grace:
            async with trio.open_nursery() as jobs:
                self._nursery = jobs
                ready.set()
                await self._stopping.wait()
        self._nursery = None

    async def recover(self) -> int:
        """recover - put entries left in active back in incoming; how many."""
        def back() -> list[str]:
            return self.store.move_many(list(self.store.list(Queue.ACTIVE)),
                                        Queue.ACTIVE, Queue.INCOMING)
        moved = await store_io.run(back)
        if moved:
            log.info(f"requeued {len(moved)} message(s) left in the active queue")
        self._scan_incoming = True
        return len(moved)

    async def _sweep(self) -> None:
        """Put back in incoming the active entries no task holds (a store
        write that failed left them there). Only this task adds to
        self.active, so an active entry it does not know is an orphan."""
        def orphans() -> list[str]:
            stray = [q for q in self.store.list(Queue.ACTIVE) if q not in self.active]
            return self.store.move_many(stray, Queue.ACTIVE, Queue.INCOMING) if stray else []
        if await store_io.run(orphans):
            self._scan_incoming = True

    async def cycle(self) -> None:
        """cycle - one pass: scans that are due, then start what may start."""
        now = self.clock()
        if self._flush_dead:
            self._flush_dead = False
            self.scheduler.forget_dead()
        if now >= self._next_tick:
            self._next_tick = now + self.settings.queue_run_delay
            self._scan_incoming = self._scan_deferred = True
            try:
                await store_io.run(self.store.reader_check)
                await self._sweep()
            except QueueError as e:
                log.warning(f"queue check: {e}")
        if self._scan_incoming:
            self._scan_incoming = False
            flush, self._flush_incoming = self._flush_incoming, False
            await self._take_in(Queue.INCOMING, flush)
        if self._scan_deferred:
            self._scan_deferred = False
            flush, self._flush_deferred = self._flush_deferred, False
            await self._take_in(Queue.DEFERRED, flush)
            self._due_stale = True
        if self.pools.reading:
            self._refill(self.clock())
        self._dispatch()

    async def _sleep(self) -> None:
        """Wait for a request, a job's end, or the earliest timer."""
        if self._scan_incoming or self._scan_deferred:
            await trio.lowlevel.checkpoint()
            return
        timers = [self._next_tick]
        if self._room() > 0:
            if self._due_stale:
                self._due = await store_io.run(self.store.next_due)
                self._due_stale = False
            if self._due is not None:
                timers.append(self._due)
        later = self.scheduler.wakeup()
        if later is not None:
            timers.append(later)
        for reading in self.pools.reading.values():
            at = reading.refill_at(self.limits(reading.transport))
            if at is not None:
                timers.append(at)
        deadline = min(timers)
        delay = deadline - self.clock()
        if delay > 0:
            with trio.move_on_after(delay):
                await self._wake.wait()
        else:
            await trio.lowlevel.checkpoint()
        self._wake = trio.Event()
        if self.clock() >= deadline:
            self._scan_deferred = True

    def _dispatch(self) -> None:
        assert self._nursery is not None
        while (job := self.scheduler.take(self.clock())) is not None:
            self._nursery.start_soon(self._deliver, job)
        if self.scheduler.preempted:
            # A message still unread that preempted: extra recipient slots.
            for transport, qid in self.scheduler.preempted:
                if self.pools.preempting(qid, transport, self.limits(transport).extra):
                    self._wake.set()
            self.scheduler.preempted.clear()

    # -- taking entries in -----------------------------------------------------

    async def _take_in(self, queue: Queue, flush: bool = False) -> None:
        """Move entries from incoming, or due deferred ones, into active;
        flush: their mail goes over defer_transports too."""
        while True:
            room = self._room()
            if room <= 0:
                # Resume the scans when an active entry leaves.
                self._full = True
                return
            now = self.clock()
            # Listing, choosing and moving are one store operation, and it
            # shares its commit with the delivery results being written
            # meanwhile: one worker thread hop and at most one fsync a scan.
            got = await self.writes.apply(Admit(
                queue, min(room, SCAN_BATCH), self.settings.recipient_limit - self._recipients,
                due=now, first_free=not self.active))
            for qid, error in got.corrupt:
                log.warning(f"{qid}: unreadable queue entry, moved to the corrupt queue: {error}")
            for env in got.moved:
                self._open(env.queue_id, env, now, flush)
            if got.stopped:
                self._full = True        # the recipient budget is spent
                return
            if not got.more:
                return

    def _room(self) -> int:
        """How many more entries the active queue takes now."""
        if self.active and self._recipients >= self.settings.recipient_limit:
            return 0
        return self.settings.active_limit - len(self.active)

    def _open(self, qid: str, env: Envelope, now: float, flush: bool = False) -> None:
        log.info("opened", queue_id=qid, sender=env.sender, size=env.size,
                 nrcpt=len(env.recipients), queue="active")
        msg = self.active[qid] = _Active(env, now, nrcpt=len(env.pending), flush=flush)
        self._recipients += msg.nrcpt
        if env.forced_expire:
            jobs = []
        else:
            # The first batch may fill what is left of qmgr_message_recipient_limit
            # (the entry's own recipients were counted in when it was let in).
            first = max(self.settings.recipient_minimum,
                        self.settings.recipient_limit - self._recipients + msg.nrcpt)
            if msg.nrcpt <= first:
                jobs = self._plan(qid, msg, env.pending, flush)
            else:
                msg.reading = self.pools.open(qid, list(env.pending), first=first, now=now)
                jobs = self._read(qid, msg, now)
                self._recount(msg)
        msg.outstanding = len(jobs)
        msg.single = len(jobs) == 1 and msg.reading is None
        if not jobs:
            self._start(self._settle, qid)
            return
        self._add(jobs, now)

    def _read(self, qid: str, msg: _Active, now: float) -> list[Job]:
        """The next batch of a message read in batches, as jobs."""
        reading = msg.reading
        assert reading is not None
        routed: list[tuple[int, Route]] = []
        route_of = self._router(qid, msg, msg.flush)
        while reading.wants():
            index = reading.next()
            route = route_of(index)
            self.pools.read(reading, route.transport)
            routed.append((index, route))
        self.pools.read_done(reading, now)
        return self._jobs(qid, msg, routed)

    def _refill(self, now: float) -> None:
        """Read the next batch of each message read in batches whose turn
        it is (incore.py)."""
        for qid, reading in list(self.pools.reading.items()):
            msg = self.active.get(qid)
            if msg is None or msg.gone or msg.reading is None:
                continue
            if not reading.refill_due(now, self.limits(reading.transport)):
                continue
            jobs = self._read(qid, msg, now)
            msg.outstanding += len(jobs)
            self._recount(msg)
            self._add(jobs, now)

    def _recount(self, msg: _Active) -> None:
        """A message read in batches counts what it holds in memory against
        qmgr_message_recipient_limit, so that other entries come in as its
        batches are delivered (Postfix's qmgr_recipient_count)."""
        assert msg.reading is not None
        held = msg.reading.count
        self._recipients += held - msg.nrcpt
        msg.nrcpt = held
        if self._full and self._recipients < self.settings.recipient_limit:
            self._full = False
            self._scan_incoming = self._scan_deferred = True
            self._wake.set()

    def _add(self, jobs: list[Job], now: float) -> None:
        """Hand jobs to the scheduler; those of a dead destination are
        deferred at once."""
        for job in self.scheduler.add(jobs, now):
            reason = self.scheduler.dead(job.key, now) or DEAD_TRANSPORT
            self._start(self._suspend, job, reason)
        if self.scheduler.clogged:
            for seen in self.scheduler.clogged:
                for line in clog.warnings(seen, messages=len(self.active),
                                          active_limit=self.settings.active_limit):
                    log.warning(line)
            self.scheduler.clogged.clear()

    def _plan(self, qid: str, msg: _Active, indexes: Iterable[int],
              flush: bool = False) -> list[Job]:
        route_of = self._router(qid, msg, flush)
        return self._jobs(qid, msg, [(i, route_of(i)) for i in indexes])

    def _router(self, qid: str, msg: _Active, flush: bool = False) -> Callable[[int], Route]:
        """Where each recipient of an entry goes, by its index; an address
        the resolver rewrote is kept in msg.resolved."""
        env = msg.env
        # defer_transports: their mail goes to the retry transport, unless
        # the queue is being flushed (Postfix: "deferred transport").
        defer = self.settings.defer_transports if not flush else ()
        # smtpd's FILTER action (Postfix content_filter records): every
        # recipient goes to transport:destination, or to its own next hop
        # through that transport when the destination is empty.
        transport, _, nexthop = (env.attr("filter") or "").partition(":")
        routing = self.probe_routing if _is_probe(env) else self.routing
        double_bounce = self.settings.double_bounce_sender.lower()

        def route_of(i: int) -> Route:
            address = env.recipients[i].address
            try:
                route = resolve(address, routing, env.sender)
                rewritten = resolved_address(address, routing)
                if rewritten != address:
                    msg.resolved[i] = rewritten
            except Exception as e:
                # A table that cannot be read: retry later (Postfix trivial-rewrite
                # failures defer with "address resolver failure").
                log.warning(f"{qid}: cannot resolve <{address}>: {e}")
                route = Route("retry", RESOLVER_FAILURE, AddressClass.DEFAULT)
            if transport and route.nexthop != RESOLVER_FAILURE:
                route = Route(transport, nexthop or route.nexthop, route.address_class)
            elif route.address_class is AddressClass.LOCAL and \
                    _localpart(msg.resolved.get(i, address)).lower() == double_bounce:
                # Postfix's qmgr drops mail to the local double-bounce
                # address itself: "status=sent (undeliverable postmaster
                # notification discarded)", as the discard transport says.
                route = Route("discard", DOUBLE_BOUNCE_DISCARDED, route.address_class)
            if defer and route.transport in defer:
                route = Route("retry", DEFERRED_TRANSPORT, route.address_class)
            return route
        return route_of

    def _jobs(self, qid: str, msg: _Active, routed: list[tuple[int, Route]]) -> list[Job]:
        return plan(qid, routed, self.limits,
                    {i: msg.recipient(i)[0] for i, _ in routed},
                    one_each=bool(msg.env.verp_delimiters))

    def _start(self, fn, *args) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(fn, *args)

    # -- delivering -------------------------------------------------------------

    async def _deliver(self, job: Job) -> None:
        msg = self.active.get(job.qid)
        if msg is None or msg.gone:
            self.scheduler.finished(job, self.clock())
            await self._job_done(job)
            return
        if job.transport in results.ERROR_TRANSPORTS:
            await self._error_transport(job, msg)
            return
        env = msg.env
        sender = env.sender
        if env.verp_delimiters and len(job.indexes) == 1:
            sender = verp_sender(sender, msg.recipient(job.indexes[0])[0],
                                 env.verp_delimiters)
        request = DeliverRequest(
            queue_id=job.qid, transport=job.transport, nexthop=job.nexthop,
            sender=sender,
            recipients=tuple(DeliverRecipient(i, *msg.recipient(i), env.recipients[i].orcpt,
                                              tuple(n.value for n in env.recipients[i].notify))
                             for i in job.indexes),
            arrival_time=env.arrival_time, size=env.size, queued_at=msg.queued_at,
            envid=env.envid, ret=env.ret, body_type=env.body_type, smtputf8=env.smtputf8,
            address_class=job.address_class, rewrite_context=env.rewrite_context,
            probe=_is_probe(env), **_client_of(env))
        dead_reason = ""
        status: DeliveryStatus | None = None
        try:
            status = await self.agents.deliver(request, self.settings.ipc_timeout)
        except (IpcLost, RemoteError):
            # Postfix qmgr_deliver_update(), DELIVER_STAT_CRASH (seen live
            # with Postfix 3.7.11 for an smtp agent killed mid-delivery).
            log.warning(f"private/{job.transport} socket: malformed response")
            dead_reason = f"{UNAVAILABLE_DSN} {results.NO_STATUS}"
            changes = results.deferred(job.indexes, UNAVAILABLE_DSN, results.NO_STATUS,
                                       self.clock())
        except Exception as e:
            if isinstance(e, IpcError):
                log.warning(f"{job.transport} transport: {e}")
            else:
                log.error(f"{job.qid}: delivery request to {job.transport} failed",
                          exc_info=True)
            dead_reason = DEAD_TRANSPORT
            changes = results.deferred(job.indexes, UNAVAILABLE_DSN, TRANSPORT_UNAVAILABLE,
                                       self.clock())
            self._log_results(job.qid, msg, changes)
        else:
            changes = results.recorded(job.indexes, status.results, self.clock(),
                                       trace=not request.probe)
            if status.dead_destination:
                failed = next((c for c in changes.values()
                               if c["state"] is RcptState.DEFERRED), None)
                dead_reason = f"{failed['dsn_status']} {failed['reason']}" if failed else "4.0.0 "
        if request.probe:
            relays = {} if status is None else {r.index: r.relay for r in status.results}
            changes = await self._probe_done(msg, changes, relays)
        back = self.scheduler.finished(job, self.clock(), ok=not dead_reason,
                                       dead_reason=dead_reason)
        # The slot is free now: the loop starts the next job of this
        # destination while this one records its results, not after. (With
        # none waiting, a pass of the loop would find nothing to start: one
        # message at a time, that was a wake-up per message for nothing.)
        if self.scheduler.waiting(job.key):
            self._wake.set()
        if not await self._remove_at_once(job.qid, msg, changes):
            await self._record(job.qid, changes)
            await self._job_done(job)
        for other in back:
            self._start(self._suspend, other, dead_reason)
        self._wake.set()

    async def _remove_at_once(self, qid: str, msg: _Active, changes: results.Changes) -> bool:
        """The usual end of an entry, in one write: its only job left every
        recipient final with nothing to report (no bounce, no success
        notice), so it is removed without its results being recorded
        first. False, having done nothing, in every other case, or when the
        removal fails (the usual way then records, settles and sorts out an
        entry that is gone or moved)."""
        if not msg.single or msg.gone or msg.outstanding != 1 or not changes \
                or _is_user_probe(msg.env):
            return False
        if not results.leaves_quietly(msg.env, changes):
            return False
        try:
            await self.writes.apply(Remove(qid, src=Queue.ACTIVE))
        except QueueError:
            return False
        log.info("removed", queue_id=qid)
        msg.outstanding -= 1
        self._leave(qid)
        return True

    async def _error_transport(self, job: Job, msg: _Active) -> None:
        """The error, retry and discard transports: answered here, logged as error(8) and
        discard(8) do."""
        changes = results.error_transport(job.indexes, job.transport, job.nexthop, self.clock())
        self._log_results(job.qid, msg, changes)
        if _is_probe(msg.env):
            changes = await self._probe_done(msg, changes)
        self.scheduler.finished(job, self.clock())
        await self._record(job.qid, changes)
        await self._job_done(job)

    async def _suspend(self, job: Job, dead: str) -> None:
        """Defer a job's recipients untried: their destination is dead
        (dead: the scheduler's reason, as _deliver() gave it)."""
        msg = self.active.get(job.qid)
        if msg is not None and not msg.gone:
            changes = results.deferred(job.indexes, *_suspension(dead), self.clock())
            self._log_results(job.qid, msg, changes)
            if _is_probe(msg.env):
                changes = await self._probe_done(msg, changes)
            await self._record(job.qid, changes)
        await self._job_done(job)

    def _log_results(self, qid: str, msg: _Active, changes: results.Changes) -> None:
        """Log results no agent logged, in the agents' format (relay=none)."""
        now = self.clock()
        env = msg.env
        before = max(0.0, msg.queued_at - env.arrival_time)
        probe = _is_probe(env)
        for i, c in changes.items():
            address, orig = msg.recipient(i)
            status = c["state"].value if not probe else verify_proto.status_name(
                _VERIFY_STATUS[c["state"]])
            log.info("status", queue_id=qid, to=address, orig_to=orig or address,
                     relay="none", delay=max(0.0, now - env.arrival_time),
                     delays=[before, max(0.0, now - msg.queued_at), 0, 0],
                     dsn=c["dsn_status"], status=status, reason=c["reason"])

    async def _probe_done(self, msg: _Active, changes: results.Changes,
                          relays: dict[int, str] | None = None) -> results.Changes:
        """A probe's results go to verify, under the address as asked and
        as rewritten (Postfix verify_append()); the probe then leaves the
        queue quietly. When verify cannot be told, the result is lost and
        verify probes again once its probe is overdue (PROBE_TTL).
        sendmail -bv's results instead wait for the sender's report, each
        saying where it went: "delivery via RELAY: reason"."""
        if _is_user_probe(msg.env):
            relays = relays or {}
            changes = {i: dict(c, reason=f"delivery via {relays.get(i, 'none')}: {c['reason']}")
                       for i, c in changes.items()}
            return results.probe_final(changes, quiet=False)
        for i, c in changes.items():
            rcpt, orig = msg.recipient(i)
            for address in dict.fromkeys((orig or rcpt, rcpt)):
                update = verify_proto.VerifyUpdate(address, _VERIFY_STATUS[c["state"]],
                                                   c["reason"])
                try:
                    await self.agents.verify(update, self.settings.ipc_timeout)
                except IpcError as e:
                    log.warning(f"{msg.env.queue_id}: verify service: {e}")
        return results.probe_final(changes)

    async def _record(self, qid: str, changes: results.Changes) -> None:
        msg = self.active.get(qid)
        if msg is None or msg.gone or not changes:
            return
        if msg.resolved:
            changes = self._resolved_results(msg, changes)
        try:
            msg.env = await self.writes.apply(Update(qid, src=Queue.ACTIVE, rcpt=changes))
            msg.fresh = msg.single
        except (NoSuchEntry, WrongQueue):
            self._gone(qid)
        except QueueError as e:
            # The results are lost; the entry stays active and is put back
            # in incoming by the next sweep (delivered again: at least once).
            log.warning(f"{qid}: cannot record delivery status: {e}")

    @staticmethod
    def _resolved_results(msg: _Active, changes: results.Changes) -> results.Changes:
        """changes, a final result of a recipient the resolver rewrote also
        recording the address it went to and the one queued: the notices
        name them as Postfix's do ("Final-Recipient: rfc822; u@[192.0.2.1]",
        "<u@[192.0.2.1]> (expanded from <u@192.0.2.1>)"). A deferred one
        keeps its queued address and records the one it was deferred as
        (deferred_as), which mailq lists as Postfix's does from its defer
        log, beside the queued one."""
        out = dict(changes)
        for i, c in changes.items():
            if i not in msg.resolved:
                continue
            address, orig = msg.recipient(i)
            if c["state"].final:
                out[i] = dict(c, address=address, orig=orig)
            elif c["state"] is RcptState.DEFERRED:
                out[i] = dict(c, deferred_as=address)
        return out

    def _gone(self, qid: str) -> None:
        """The entry was deleted or moved by someone else: forget it quietly."""
        msg = self.active.get(qid)
        if msg is not None and not msg.gone:
            msg.gone = True
            msg.outstanding -= self.scheduler.drop(qid)
            if msg.outstanding <= 0:
                self._leave(qid)

    async def _job_done(self, job: Job) -> None:
        qid = job.qid
        msg = self.active.get(qid)
        if msg is None:
            return
        msg.outstanding -= 1
        if msg.reading is not None and not msg.gone:
            # Its recipients leave memory. The loop reads its next batch
            # when due, after it has let in the entries that now fit
            # (Postfix feeds the active queue before it selects the next
            # delivery, which is when it reads more recipients).
            self.pools.done(msg.reading, job.transport, len(job.indexes))
            self._recount(msg)
            self._wake.set()
            if msg.outstanding <= 0 and not msg.reading.fully_read:
                return
        if msg.outstanding > 0:
            return
        if msg.gone:
            self._leave(qid)
            return
        await self._settle(qid)

    # -- settling ----------------------------------------------------------------

    async def _settle(self, qid: str) -> None:
        """Every job of the message is over: expire, notify, remove or defer."""
        try:
            await self._settle_entry(qid)
        finally:
            self._leave(qid)

    def _leave(self, qid: str) -> None:
        """An entry left the active queue (or our hands): make room."""
        msg = self.active.pop(qid, None)
        if msg is not None:
            self._recipients -= msg.nrcpt
            if msg.reading is not None:
                self.pools.close(msg.reading)
        if self._full:
            self._full = False
            self._scan_incoming = self._scan_deferred = True
        self._wake.set()

    async def _settle_entry(self, qid: str) -> None:
        msg = self.active.get(qid)
        try:
            # Someone who moved or deleted it meanwhile (postsuper) is
            # still caught: every write below requires it in active.
            env, queue = ((msg.env, Queue.ACTIVE) if msg is not None and msg.fresh
                          else await store_io.run(self.store.load, qid))
        except NoSuchEntry:
            return
        if queue is not Queue.ACTIVE:
            return
        now = self.clock()
        end = results.settle(env, now, self.settings)
        try:
            if end.expire:
                expire = end.expire
                if msg is not None and msg.resolved:
                    expire = self._resolved_results(msg, expire)
                if msg is not None:
                    # Postfix defers these through its retry transport first
                    # (qmgr_message.c): "dsn=4.7.0, status=deferred (message
                    # is administratively expired)".
                    self._log_results(qid, msg, {
                        i: dict(state=RcptState.DEFERRED, dsn_status=c["dsn_status"],
                                reason=c["reason"])
                        for i, c in end.expire.items() if c["reason"] == results.ADMIN_EXPIRED})
                env = await store_io.run(self.store.update, qid, src=Queue.ACTIVE, rcpt=expire)
                log.info("expired", queue_id=qid, sender=env.sender, status=end.expired_as)
            notices: list[tuple[Envelope, bytes]] = []
            marks: results.Changes = {}
            for kind, indexes in ((bounce_proto.FAILURE, end.failure_notice),
                                  (bounce_proto.SUCCESS, end.success_notice),
                                  (bounce_proto.VERIFY, end.verify_notice)):
                if not indexes:
                    continue
                # VERP: a bounce per recipient, to its own sender (bounce
                # picks it), unless disable_verp_bounces.
                pieces = [(i,) for i in indexes] if kind == bounce_proto.FAILURE \
                    and env.verp_delimiters and not self.settings.verp_bounces_off else [indexes]
                for piece in pieces:
                    ready = await self._notice(qid, kind, piece)
                    if ready is None:
                        # bounce is down: keep the entry as it is, try again later.
                        await self._defer(qid, env, now, {})
                        return
                    notices.extend(self._notice_entry(ready, now))
                marks.update({i: dict(notified=True) for i in indexes})
            if end.done:
                await self.writes.apply(Remove(qid, src=Queue.ACTIVE, notices=tuple(notices)))
                log.info("removed", queue_id=qid)
                if notices:
                    self._scan_incoming = True
                return
            warned = False
            if end.delay_notice:
                ready = await self._notice(qid, bounce_proto.DELAY, end.delay_notice)
                if ready is not None:
                    notices.extend(self._notice_entry(ready, now))
                    warned = True
            if notices:
                # The notices first: a crash before the update below sends
                # them again, never loses them.
                await store_io.run(self.store.create_many, notices)
                self._scan_incoming = True
            await self._defer(qid, env, now, marks, delay_warned=warned or env.delay_warned)
        except (NoSuchEntry, WrongQueue):
            return
        except QueueError as e:
            log.warning(f"{qid}: cannot update queue entry: {e}")

    async def _defer(self, qid: str, env: Envelope, now: float, marks: results.Changes,
                     **changes) -> None:
        """Back to the deferred queue, due again after the back-off."""
        reason = next((r.reason for r in env.recipients
                       if r.state is RcptState.DEFERRED and r.reason), env.last_reason)
        due = next_attempt(env, now, self.settings)
        await self.writes.apply(Update(
            qid, src=Queue.ACTIVE, dst=Queue.DEFERRED, rcpt=marks,
            changes=dict(next_attempt=due, attempts=env.attempts + 1, last_reason=reason,
                         **changes)))
        if self._due is None or due < self._due:
            self._due = due

    async def _notice(self, qid: str, kind: str, indexes: tuple[int, ...]) -> NoticeReady | None:
        """Ask bounce for a notice; None when bounce cannot be reached.

        A deferred recipient the resolver rewrote keeps its queued address
        in the store; the notice names it as delivered, as Postfix's delay
        notice does (from its defer log): "<u@[192.0.2.1]> (expanded from
        <u@192.0.2.1>)"."""
        msg = self.active.get(qid)
        delivered = tuple((i, *msg.recipient(i)) for i in indexes
                          if i in msg.resolved) if msg is not None and msg.resolved else ()
        try:
            return await self.agents.notice(NoticeRequest(qid, kind, indexes, delivered),
                                            NOTICE_TIMEOUT)
        except IpcError as e:
            log.warning(f"{qid}: bounce service: {e}; the notice is retried later")
            return None

    @staticmethod
    def _notice_entry(ready: NoticeReady, now: float) -> list[tuple[Envelope, bytes]]:
        """The queue entries for a notice and its postmaster copies."""
        out = []
        for n in (ready, *ready.copies):
            if n.notice_id:
                orig = n.orig if isinstance(n, PostmasterCopy) else ""
                env = Envelope(queue_id=n.notice_id, sender=n.sender,
                               recipients=(Recipient(n.recipient, orig=orig),), arrival_time=now,
                               size=len(n.content), protocol="local", rewrite_context="local")
                out.append((env, n.content))
        return out
