"""results - delivery results and expiry, as changes to a queue entry.

SYNOPSIS
    changes = recorded(job.indexes, status.results, now)     # rcpt index -> fields
    changes = deferred(job.indexes, "4.3.0", "mail transport unavailable", now)
    store.update(qid, src=Queue.ACTIVE, rcpt=changes)
    end = settle(env, now, settings)       # once the message has no job left
    leaves_quietly(env, changes)           # done by these changes, nothing to report?
    end.expire, end.expired_as, end.failure_notice, end.success_notice,
    end.delay_notice, end.done

DESCRIPTION
    qmgr records what a delivery agent answered for each recipient, as
    Postfix's qmgr does in qmgr_deliver.c: sent is final, bounced is final
    and owes the sender a notice, deferred is retried later. A recipient
    the agent gave no result for (an agent bug) is deferred, never
    dropped.

    settle() decides what happens to a message once none of its
    recipients is out for delivery (qmgr_active.c, qmgr_active_done):

      * forced expiry (postsuper -e/-f): every undelivered recipient is
        returned at once, with its last deferral reason, or "4.7.0
        message is administratively expired" (Postfix's qmgr_message.c
        defers such a recipient with that through its retry transport
        first); logged ``status=force-expired``;
      * natural expiry: once the message is older than its queue lifetime,
        every recipient still deferred is returned, logged
        ``status=expired``;
      * the bounced recipients not yet reported make up the failure notice;
      * the delivered recipients that asked for NOTIFY=SUCCESS and were not
        yet reported make up the success notice (Postfix's trace service);
      * a delay notice is owed once, after delay_warning_time;
      * sendmail -bv's entries (trace_flags usr_vrfy) get one report on
        every recipient instead, whatever became of each;
      * done: every recipient is final, so the entry can leave the queue
        (with its notice, in one transaction).

    A notice names its recipients in the order Postfix's bounce service
    reads them from its logs, which the delivery agents append to as they
    report: by the time of the result (last_attempt), and within one
    delivery in the order qmgr handed them out (domain without case, then
    address: schedule.address_order()), not in the order received.

    The changes are plain dicts of Recipient fields, which is what
    QueueStore.update(rcpt=...) takes. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mailsys.frozen import frozen
from mailsys.ipc.proto.deliver import BOUNCED, DEFERRED, SENT, RecipientResult
from mailsys.ipc.proto.verify import TRACE_FLAGS, USR_VRFY
from mailsys.message.envelope import Envelope, Notify, RcptState
from mailsys.qmgr.backoff import delay_warning_due, expired
from mailsys.qmgr.schedule import address_order
from mailsys.qmgr.settings import QmgrSettings
from mailsys.routing import error_status

__all__ = ["recorded", "deferred", "settle", "error_transport", "ERROR_TRANSPORTS", "Settlement", "apply", "ADMIN_EXPIRED",
           "ADMIN_EXPIRED_DSN",
           "NO_STATUS", "EXPIRED_DSN", "leaves_quietly", "probe_final"]

Changes = dict[int, dict[str, Any]]

ADMIN_EXPIRED = "message is administratively expired"
ADMIN_EXPIRED_DSN = "4.7.0"                    # qmgr_message.c, with ADMIN_EXPIRED
# An agent answered without a result for a recipient (Postfix's wording for
# an agent that ended without a status).
NO_STATUS = "unknown mail transport error"
# RFC 3463 X.4.7: delivery time expired.
EXPIRED_DSN = "4.4.7"

_STATES = {SENT: RcptState.SENT, DEFERRED: RcptState.DEFERRED, BOUNCED: RcptState.BOUNCED}


def recorded(indexes: Iterable[int], results: Sequence[RecipientResult], now: float,
             *, trace: bool = True) -> Changes:
    """recorded - the store changes for a job's DeliveryStatus results.

    A delivery keeps its text as Postfix's trace_append() gives it to a
    success notice: "delivery via RELAY: TEXT" when an agent named its
    relay (trace: false for a probe, whose report words it itself)."""
    wanted = set(indexes)
    by_index = {r.index: r for r in results if r.index in wanted}
    changes: Changes = {}
    for index in sorted(wanted):
        r = by_index.get(index)
        if r is None or r.status not in _STATES:
            changes[index] = _deferral("4.3.0", NO_STATUS, now)
            continue
        reason = r.reason
        if trace and r.status == SENT and r.relay != "none":
            reason = f"delivery via {r.relay}: {reason}"
        changes[index] = dict(state=_STATES[r.status], dsn_status=r.dsn, reason=reason,
                              remote_mta=r.remote_mta, diagnostic=r.diagnostic,
                              action=r.action, last_attempt=now)
        if r.status == SENT and r.success_passed:
            # The next hop reports the success itself (DSN announced).
            changes[index]["notified"] = True
    return changes


def _deferral(dsn: str, reason: str, now: float) -> dict[str, Any]:
    return dict(state=RcptState.DEFERRED, dsn_status=dsn, reason=reason,
                remote_mta="", diagnostic="", last_attempt=now)


def deferred(indexes: Iterable[int], dsn: str, reason: str, now: float) -> Changes:
    """deferred - the store changes deferring recipients untried (an agent
    that cannot be reached, a dead destination)."""
    return {i: _deferral(dsn, reason, now) for i in indexes}


# Postfix's error(8) agent serves "error" (bounces) and "retry" (defers);
# its discard(8) agent "discard" (reports the mail sent and drops it).
ERROR_TRANSPORTS = {"error": "5.0.0", "retry": "4.0.0", "discard": "2.0.0"}


def error_transport(indexes: Iterable[int], transport: str, nexthop: str,
                    now: float) -> Changes:
    """error_transport - what error(8) and discard(8) answer: the next hop
    is the reason, for error and retry optionally led by a status ("5.1.1
    mailbox unavailable"); "error" bounces, "retry" defers, "discard" says
    sent (the recipient domain when the transport named no next hop, as
    Postfix's "status=sent (example.com)"). mailsys has no error or discard
    agent process: qmgr answers for them."""
    if transport == "discard":
        return {i: dict(state=RcptState.SENT, dsn_status="2.0.0", reason=nexthop,
                        remote_mta="", diagnostic="", last_attempt=now) for i in indexes}
    dsn, reason = error_status(nexthop, ERROR_TRANSPORTS[transport])
    state = RcptState.BOUNCED if dsn.startswith("5") else RcptState.DEFERRED
    return {i: dict(state=state, dsn_status=dsn, reason=reason, remote_mta="",
                    diagnostic="", last_attempt=now) for i in indexes}


def probe_final(changes: Mapping[int, Mapping[str, Any]], *, quiet: bool = True) -> Changes:
    """probe_final - a trace-only delivery's results, made final: its
    recipients are never delivered, deferred or bounced, so whatever the
    agent found ends them. quiet: nothing is owed to anyone (an address
    verification probe, reported to verify: Postfix "probe messages are
    always discarded"); else they wait for the sender's report (sendmail
    -bv, see settle)."""
    return {i: dict(c, state=RcptState.SENT if c.get("state") is RcptState.SENT
                    else RcptState.BOUNCED, notified=quiet) for i, c in changes.items()}


def apply(env: Envelope, changes: Mapping[int, Mapping[str, Any]]) -> Envelope:
    """apply - the envelope as the store will have it after the changes."""
    for index, fields in changes.items():
        env = env.with_recipient(index, **fields)
    return env


def leaves_quietly(env: Envelope, changes: Mapping[int, Mapping[str, Any]]) -> bool:
    """leaves_quietly - whether, after changes, every recipient is final and
    none is owed a notice: what settle(apply(env, changes)) says with done
    set and nothing to expire or report, without building the envelope."""
    for i, r in enumerate(env.recipients):
        c = changes.get(i)
        state = r.state if c is None else c.get("state", r.state)
        notified = r.notified if c is None else c.get("notified", r.notified)
        if state == RcptState.SENT:
            notify = r.notify if c is None else c.get("notify", r.notify)
            if not notified and Notify.SUCCESS in notify:
                return False
        elif state != RcptState.BOUNCED or not notified:
            return False
    return True


@frozen
class Settlement:
    """What to do with a message none of whose recipients is out."""

    expire: Changes                   # recipients returned for expiry
    expired_as: str                   # "expired", "force-expired", or "" (none)
    failure_notice: tuple[int, ...]   # bounced, not yet reported
    success_notice: tuple[int, ...]   # sent with NOTIFY=SUCCESS, not yet reported
    delay_notice: tuple[int, ...]     # deferred, owed a delay warning
    done: bool                        # every recipient final: remove the entry
    verify_notice: tuple[int, ...] = ()   # sendmail -bv: every recipient, in one report


def _logged(env: Envelope, indexes: list[int]) -> tuple[int, ...]:
    """Recipients in the order their results reached Postfix's bounce and
    defer logs (see the module text); one or none as they are."""
    if len(indexes) > 1:
        rcpts = env.recipients
        indexes.sort(key=lambda i: (rcpts[i].last_attempt, address_order(rcpts[i].address)))
    return tuple(indexes)


def settle(env: Envelope, now: float, s: QmgrSettings) -> Settlement:
    """settle - see the module description."""
    expire: Changes = {}
    expired_as = ""
    if env.pending and (env.forced_expire or expired(env, now, s)):
        expired_as = "force-expired" if env.forced_expire else "expired"
        for i in env.pending:
            r = env.recipients[i]
            reason = r.reason or env.last_reason or ADMIN_EXPIRED
            dsn = r.dsn_status if r.dsn_status[:1] in ("4", "5") else \
                ADMIN_EXPIRED_DSN if reason == ADMIN_EXPIRED else EXPIRED_DSN
            expire[i] = dict(state=RcptState.BOUNCED, reason=reason, dsn_status=dsn)
    after = apply(env, expire)
    failure = _logged(after, [i for i, r in enumerate(after.recipients)
                              if r.state is RcptState.BOUNCED and not r.notified])
    success = _logged(after, [i for i, r in enumerate(after.recipients)
                              if r.state is RcptState.SENT and Notify.SUCCESS in r.notify
                              and not r.notified])
    if env.attr(TRACE_FLAGS) == USR_VRFY:
        # sendmail -bv: one report on every recipient, nothing else.
        report = _logged(after, [i for i, r in enumerate(after.recipients)
                                 if r.final and not r.notified])
        return Settlement(expire, expired_as, (), (), (), after.done, report)
    delay: tuple[int, ...] = ()
    if not after.done and delay_warning_due(after, now, s):
        delay = _logged(after, [i for i in after.pending
                                if after.recipients[i].state is RcptState.DEFERRED])
    return Settlement(expire, expired_as, failure, success, delay, after.done)
