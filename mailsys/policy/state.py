"""state - what one evaluation carries from restriction to restriction.

DESCRIPTION
    A restriction is a Step: a function of the evaluation's Run and the
    ListInfo of the list it sits in, answering OK (permit: ends its own
    list), DUNNO (no opinion: the next restriction decides) or a Decision
    (reject or defer: ends the evaluation).

    Run is the mutable state of one evaluation, like the per-request bits
    of Postfix's SMTPD_STATE: the PolicyContext, the injected DNS resolver
    and the names it was asked about, the policy service answers known so
    far, the DNS records looked up so far (permit_mx_backup), the verify
    service's answers so far (reject_unverified_*), how many
    "sleep" pauses the caller has already made, the Notes
    collected so far, a pending
    defer_if_permit or defer_if_reject, whether warn_if_reject is in force,
    and the nesting depth of restriction classes. It lives for one
    evaluate_*() call and is never shared.

SEE ALSO
    restrictions, Postfix src/smtpd/smtpd_check.c, SMTPD_ACCESS_README.
"""

from __future__ import annotations

import enum
from typing import Callable

from mailsys.frozen import frozen
from mailsys.policy.context import (DnsStatus, HostRecords, PolicyAnswers, PolicyContext,
                                   RecordLookups, Resolver, VerifyAnswers)
from mailsys.policy.decision import Decision, Note
from mailsys.policy.needs import NeedPause, NeedRecords
from mailsys.policy.replies import (CCERT, CLIENT, EOD, ETRN, HELO, RECIPIENT, REVERSE_CLIENT,
                                    SASL_USER, SENDER)


class Verdict(enum.Enum):
    """A restriction's answer short of a Decision."""
    OK = "ok"
    DUNNO = "dunno"


OK = Verdict.OK
DUNNO = Verdict.DUNNO


@frozen
class ListInfo:
    """The list a restriction runs in: its parameter and its reply class."""
    param: str
    reply_class: str


class Run:
    """Mutable state of one evaluation (Postfix: the per-request SMTPD_STATE bits)."""

    __slots__ = ("ctx", "resolver", "notes", "defer_if_permit", "defer_if_reject",
                 "warn_if_reject", "depth", "lookups", "delegate", "policy", "paused", "pauses",
                 "records", "verify")

    def __init__(self, ctx: PolicyContext, resolver: Resolver | None,
                 delegate: bool = True, policy: PolicyAnswers | None = None,
                 paused: float = 0, records: RecordLookups | None = None,
                 verify: VerifyAnswers | None = None) -> None:
        self.ctx = ctx
        self.verify = verify
        self.resolver = resolver
        self.policy = policy
        self.records = records
        # "sleep" restrictions: how many the caller has already slept, and
        # how many this evaluation has reached (see pause()).
        self.paused = paused
        self.pauses = 0
        # Whether actions carried out for the message by cleanup (HOLD,
        # DISCARD, FILTER, REDIRECT, BCC, PREPEND) may be taken: not by
        # client and HELO restrictions evaluated outside a mail transaction
        # (smtpd_delay_reject = no; Postfix not_in_client_helo()).
        self.delegate = delegate
        self.notes: list[Note] = []
        self.defer_if_permit: Decision | None = ctx.deferred
        self.defer_if_reject: Decision | None = None
        self.warn_if_reject = False
        self.depth = 0
        self.lookups: list[str] = []

    def reply_name(self, reply_class: str) -> str:
        ctx = self.ctx
        if reply_class == CLIENT:
            return ctx.namaddr
        if reply_class == REVERSE_CLIENT:
            return ctx.reverse_name
        if reply_class == HELO:
            return ctx.helo or ""
        if reply_class == SENDER:
            return ctx.sender or ""
        if reply_class == RECIPIENT:
            return ctx.recipient or ""
        if reply_class == CCERT:
            return ctx.ccert_cn
        if reply_class == SASL_USER:
            # Postfix printable(): what is not printable ASCII becomes "_".
            return "".join(c if " " <= c <= "~" else "_" for c in ctx.sasl_user or "")
        if reply_class == ETRN:
            return ctx.etrn_domain or ""
        # smtpd_check_data, smtpd_check_eod: the command name stands in.
        return "END-OF-MESSAGE" if reply_class == EOD else "DATA"

    def pause(self, seconds: int) -> None:
        """A "sleep seconds" restriction: raise NeedPause unless the caller
        has already made this pause. Pauses are told apart by the order the
        evaluation reaches them, which is the same every time; a zero pause
        is nothing to make, so it is not counted."""
        if seconds <= 0:
            return
        self.pauses += 1
        if self.pauses > self.paused:
            raise NeedPause(seconds)

    def lookup(self, kind: str, name: str, *more: str) -> HostRecords:
        """The records of (kind, name); NeedRecords when the caller has not
        looked them up yet, asking for the names in more too (those the
        evaluation will want next) so that one round trip serves them all."""
        found = self.records(kind, name) if self.records is not None else None
        if found is None:
            lookups = self.records or (lambda kind, name: None)
            raise NeedRecords(tuple((kind, n) for n in dict.fromkeys((name, *more))
                                    if lookups(kind, n) is None))
        return found

    def dns(self, name: str) -> DnsStatus:
        self.lookups.append(name)
        if self.resolver is None:
            return DnsStatus.TEMPFAIL
        return self.resolver(name)


Step = Callable[[Run, ListInfo], "Verdict | Decision"]


__all__ = ["DUNNO", "OK", "ListInfo", "Run", "Step", "Verdict"]
