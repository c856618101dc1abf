"""report - a delivery agent's per-recipient verdict and its Postfix log line.

SYNOPSIS
    watch = Stopwatch.start(req)              # when the request arrived
    ...; watch.connected()                    # connection set up (DNS, connect, HELO, TLS)
    result = sent(rcpt, "250 2.0.0 Ok: queued as X", relay="mx[192.0.2.1]:25")
    log_status(req, rcpt, result, watch, conn_use=2)
    # QID: to=<r>, relay=mx[192.0.2.1]:25, conn_use=2, delay=0.31,
    #      delays=0.01/0.02/0.08/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as X)

DESCRIPTION
    Every agent answers qmgr with one RecipientResult per recipient and logs
    each one itself as the "status" event of mailsys.maillog, in Postfix's
    field order (postfix-compat.md 4.3): delay is the time since arrival;
    delays= splits it in four:

      a  before qmgr: arrival until qmgr took the entry (request.queued_at)
      b  in qmgr: until this agent received the request
      c  connection setup: DNS, connect, greeting, EHLO, TLS (0 for a
         mailbox delivery)
      d  transmission: the message itself

    Clock skew between processes (or a queued_at before arrival, after a
    restart) never makes a part negative.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import structlog

from mailsys.ipc.proto.deliver import (BOUNCED, DEFERRED, SENT, DeliverRecipient,
                                       DeliverRequest, RecipientResult)

log = structlog.get_logger()

__all__ = ["Stopwatch", "sent", "deferred", "bounced", "failed", "log_status"]


@dataclass(slots=True)
class Stopwatch:
    """Times of one delivery request, in seconds since the epoch."""

    arrival: float
    queued_at: float
    started: float
    setup_done: float | None = field(default=None)

    @classmethod
    def start(cls, req: DeliverRequest, now: float | None = None) -> Stopwatch:
        return cls(req.arrival_time, req.queued_at or req.arrival_time,
                   time.time() if now is None else now)

    def connected(self, now: float | None = None) -> None:
        """The connection is ready to carry the message (or was taken from the cache)."""
        self.setup_done = time.time() if now is None else now

    def restart_setup(self) -> None:
        """A failed connection attempt: setup goes on with the next host."""
        self.setup_done = None

    def delays(self, now: float | None = None) -> tuple[float, tuple[float, float, float, float]]:
        """(delay, (a, b, c, d)) as of now."""
        now = time.time() if now is None else now
        queued = max(self.arrival, self.queued_at)
        started = max(queued, self.started)
        setup = min(max(started, self.setup_done if self.setup_done is not None else now), now)
        a = queued - self.arrival
        b = started - queued
        c = max(0.0, setup - started)
        d = max(0.0, now - setup)
        return max(0.0, now - self.arrival), (max(0.0, a), max(0.0, b), c, d)


def _result(rcpt: DeliverRecipient, status: str, dsn: str, reason: str, relay: str,
            remote_mta: str, diagnostic: str, action: str = "",
            success_passed: bool = False) -> RecipientResult:
    return RecipientResult(index=rcpt.index, status=status, dsn=dsn, reason=reason,
                           relay=relay, remote_mta=remote_mta, diagnostic=diagnostic,
                           action=action, success_passed=success_passed)


def sent(rcpt: DeliverRecipient, reason: str, *, dsn: str = "2.0.0", relay: str = "none",
         remote_mta: str = "", diagnostic: str = "", action: str = "",
         success_passed: bool = False) -> RecipientResult:
    """action: the DSN Action for a success notice, "" for the default;
    success_passed: the next hop took NOTIFY=SUCCESS on (see RecipientResult)."""
    return _result(rcpt, SENT, dsn, reason, relay, remote_mta, diagnostic, action,
                   success_passed)


def deferred(rcpt: DeliverRecipient, dsn: str, reason: str, *, relay: str = "none",
             remote_mta: str = "", diagnostic: str = "") -> RecipientResult:
    return _result(rcpt, DEFERRED, dsn, reason, relay, remote_mta, diagnostic)


def bounced(rcpt: DeliverRecipient, dsn: str, reason: str, *, relay: str = "none",
            remote_mta: str = "", diagnostic: str = "") -> RecipientResult:
    return _result(rcpt, BOUNCED, dsn, reason, relay, remote_mta, diagnostic)


def failed(rcpt: DeliverRecipient, dsn: str, reason: str, **kw: str) -> RecipientResult:
    """deferred() or bounced(), as the status class of dsn says (4 or 5)."""
    return (bounced if dsn.startswith("5") else deferred)(rcpt, dsn, reason, **kw)


def log_status(req: DeliverRequest, rcpt: DeliverRecipient, result: RecipientResult,
               watch: Stopwatch, *, conn_use: int = 0, now: float | None = None) -> None:
    """Log one recipient's result as Postfix's delivery status line."""
    delay, parts = watch.delays(now)
    # A probe's result is logged as Postfix's verify_append() logs it.
    status = ("deliverable" if result.status == SENT else "undeliverable") if req.probe \
        else result.status
    fields = dict(to=rcpt.address, relay=result.relay, delay=delay, delays=parts,
                  dsn=result.dsn, status=status, reason=result.reason)
    if rcpt.orig and rcpt.orig != rcpt.address:
        fields["orig_to"] = rcpt.orig
    if conn_use >= 2:
        fields["conn_use"] = conn_use
    log.info("status", queue_id=req.queue_id, **fields)
