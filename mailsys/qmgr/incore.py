"""incore - the recipients qmgr holds in memory, per transport.

SYNOPSIS
    pools = Pools(limits_for, minimum=10)
    msg = pools.open(qid, pending, first=room, now=now)   # too big to read at once
    while msg.wants(): i = msg.next(); ...; pools.read(msg, transport)   # one in
    pools.read_done(msg, now)                    # after each batch
    pools.done(msg, transport, n)                # n of its recipients left memory
    msg.refill_due(now, limits); msg.refill_at(limits)   # the next batch: now? when?
    pools.preempting(qid, transport, extra)      # it preempted: extra slots
    pools.unread(qid)                            # recipients still to be read
    pools.close(msg)                             # the message leaves the active queue

DESCRIPTION
    Postfix's in-core recipient limits (SCHEDULER_README, "Dealing with
    memory resource limits"; src/qmgr/qmgr_job.c qmgr_job_move_limits()).
    A message is read into memory (resolved and turned into jobs) in
    batches of at most BATCH_LIMIT. The first batch is as large as what is
    left of qmgr_message_recipient_limit, and at least
    qmgr_message_recipient_minimum; later ones fill what the message may
    hold: that minimum, which every message has whatever else holds what,
    and the slots it holds from the transports' pools. Each
    transport has a pool of ``<transport>_recipient_limit`` recipient slots:
    a message that reads its first recipient for the transport takes every
    slot the pool has left, and keeps them until all its recipients are
    read; then, and as its recipients leave memory, the slots it no longer
    needs go back to the pool and on to the oldest message still waiting to
    be read for that transport. A message reads its next batch when its
    recipients in memory are below what it may hold, and either
    ``<transport>_recipient_refill_limit`` recipients fit at once, or
    ``<transport>_recipient_refill_delay`` has passed since its last batch,
    or it has none left in memory (then it must, or it would stall).

    A message whose recipients fit in its first batch never touches the
    pools: qmgr keeps no state for it here, and one-recipient mail costs
    nothing. A message still unread that preempts another's job (preempt.py)
    gets half of what is left of the transport's pool and of its extra pool
    of ``<transport>_extra_recipient_limit`` slots, so that it does not go
    on in batches of the minimum. The refill limits that apply are those of
    the transport of the message's first recipient read (Postfix decides
    per job; a message mostly goes by one transport).

    Pure: no I/O, no clock; times come in as arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mailsys.qmgr.settings import Limits

__all__ = ["Pools", "Reading", "BATCH_LIMIT"]

# Recipients read in one batch at most (Postfix qmgr_message_read(): "Keep
# interrupt latency in check").
BATCH_LIMIT = 5000


@dataclass(slots=True)
class Reading:
    """One active message that is read in batches (Postfix's
    message->rcpt_offset != 0, with its jobs' rcpt_limit and rcpt_count)."""

    qid: str
    unread: list[int]                # its pending recipients, in order
    minimum: int
    first: int = 0                   # the first batch's size, until it is read
    pos: int = 0                     # unread[pos:] are still to be read
    batch: int = 0                   # read in the batch being read
    count: int = 0                   # recipients in memory
    held: dict[str, int] = field(default_factory=dict)       # transport: pool slots
    count_by: dict[str, int] = field(default_factory=dict)   # transport: in memory
    transport: str = ""              # the transport whose refill limits apply
    refill_time: float = 0.0

    @property
    def limit(self) -> int:
        """How many recipients it may hold in memory now."""
        return self.minimum + sum(self.held.values())

    @property
    def fully_read(self) -> bool:
        return self.pos >= len(self.unread)

    def wants(self) -> bool:
        """Whether the next recipient may be read in now."""
        if self.fully_read or self.batch >= BATCH_LIMIT:
            return False
        if self.first:
            # The first batch is sized before the pools are looked at
            # (Postfix links the message's jobs after reading it).
            return self.batch < self.first
        return self.count < self.limit

    def next(self) -> int:
        """The next unread recipient's index (wants() must be true)."""
        return self.unread[self.pos]

    def refill_due(self, now: float, limits: Limits) -> bool:
        """Whether to read the next batch now (Postfix qmgr_job_peer_select())."""
        if self.fully_read:
            return False
        room = self.limit - self.count
        return room > 0 and (self.count == 0 or room >= limits.refill_limit
                             or now - self.refill_time >= limits.refill_delay)

    def refill_at(self, limits: Limits) -> float | None:
        """When the refill delay lets it read what fits now; None if nothing fits."""
        if self.fully_read or self.count >= self.limit:
            return None
        return self.refill_time + limits.refill_delay


class Pools:
    """The transports' recipient slot pools and the messages read in batches."""

    def __init__(self, limits_for: Callable[[str], Limits], *, minimum: int) -> None:
        self._limits_for = limits_for
        self.minimum = minimum
        self._unused: dict[str, int] = {}
        # Per transport, the messages with a recipient for it and some still
        # unread, oldest first (Postfix's job_bytime list from job_next_unread).
        self._unread: dict[str, dict[str, Reading]] = {}
        self.reading: dict[str, Reading] = {}     # every message read in batches

    def unused(self, transport: str) -> int:
        """The slots left in a transport's pool."""
        found = self._unused.get(transport)
        if found is None:
            found = self._unused[transport] = self._limits_for(transport).in_memory
        return found

    def open(self, qid: str, pending: list[int], *, first: int, now: float = 0.0) -> Reading:
        """open - a message to read in batches; first: what its first batch
        may hold beyond the pools (at least the minimum)."""
        msg = Reading(qid, pending, self.minimum, first=max(self.minimum, first),
                      refill_time=now)
        self.reading[qid] = msg
        return msg

    def read(self, msg: Reading, transport: str) -> None:
        """One recipient, of this transport, read into memory. Its first
        one links the message to the transport's pool (qmgr_job_link())."""
        msg.pos += 1
        msg.count += 1
        msg.batch += 1
        if transport in msg.count_by:
            msg.count_by[transport] += 1
            return
        msg.count_by[transport] = 1
        msg.held[transport] = self.unused(transport)
        self._unused[transport] = 0
        if not msg.transport:
            msg.transport = transport
        self._unread.setdefault(transport, {})[msg.qid] = msg

    def read_done(self, msg: Reading, now: float) -> None:
        """A batch was read: the first batch's allowance is spent; a message
        now fully read gives back what it does not need."""
        msg.first = msg.batch = 0
        msg.refill_time = now
        if msg.fully_read:
            for transport in msg.held:
                self._unread.get(transport, {}).pop(msg.qid, None)
            for transport in msg.held:
                self._move(msg, transport)

    def done(self, msg: Reading, transport: str, n: int) -> None:
        """n recipients of the message for this transport left memory."""
        msg.count -= n
        msg.count_by[transport] = max(0, msg.count_by.get(transport, 0) - n)
        if msg.fully_read:
            for t in msg.held:
                self._move(msg, t)

    def close(self, msg: Reading) -> None:
        """The message left the active queue: every slot it held goes back."""
        self.reading.pop(msg.qid, None)
        for transport in msg.held:
            self._unread.get(transport, {}).pop(msg.qid, None)
        msg.pos = len(msg.unread)
        msg.count = 0
        msg.count_by.clear()
        for transport in msg.held:
            self._move(msg, transport, everything=True)

    def _move(self, msg: Reading, transport: str, *, everything: bool = False) -> None:
        """Postfix qmgr_job_move_limits(): the slots the message does not
        need for this transport go to the pool, and the pool's slots to
        the oldest message still unread for the transport."""
        held = msg.held.get(transport, 0)
        spare = held - msg.count_by.get(transport, 0)
        if not everything:
            spare = min(spare, msg.limit - msg.count)
        if spare > 0:
            msg.held[transport] = held - spare
            self._unused[transport] = self.unused(transport) + spare
        waiting = self._unread.get(transport)
        if waiting and self._unused.get(transport, 0) > 0:
            nxt = next(iter(waiting.values()))
            nxt.held[transport] = nxt.held.get(transport, 0) + self._unused[transport]
            self._unused[transport] = 0

    def preempting(self, qid: str, transport: str, extra: int) -> bool:
        """A message still unread preempted a job of the transport: it gets
        half of what is left of the pool and of the transport's extra pool
        of <transport>_extra_recipient_limit (Postfix qmgr_job_preempt());
        the pool may go below 0 by that much. Whether it got any."""
        msg = self.reading.get(qid)
        if msg is None or msg.fully_read:
            return False
        slots = (extra + self.unused(transport) + 1) // 2
        if slots <= 0:
            return False
        msg.held[transport] = msg.held.get(transport, 0) + slots
        self._unused[transport] -= slots
        return True

    def unread(self, qid: str) -> int:
        """How many recipients of the message are still to be read."""
        msg = self.reading.get(qid)
        return 0 if msg is None else len(msg.unread) - msg.pos
