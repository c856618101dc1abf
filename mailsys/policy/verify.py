"""verify - reject_unverified_recipient and reject_unverified_sender.

DESCRIPTION
    Postfix's address verification in smtpd (smtpd_check.c
    reject_unverified_address, ADDRESS_VERIFICATION_README): the step asks
    the evaluation's VerifyAnswers callback for what the verify service
    knows of the address. While the callback has no answer it raises
    NeedVerify (see needs): the caller (smtpd) asks the verify service,
    polling it address_verify_poll_count times while a probe is out, and
    evaluates again with the answer known. The answer is (status, text)
    with a status of mailsys.ipc.proto.verify, or None when the service
    could not be asked.

    The reply, in the reply class of the list ("Recipient address",
    "Sender address"; the DSN detail 4.1.1, or 4.1.7 for a sender, fixed
    to the code's class):

      deliverable         no opinion: the next restriction decides
      not known yet, or   unverified_*_defer_code (450):
      undeliverable now     "<a>: Recipient address rejected: unverified
                            address: <text>", the text cut at 250
      undeliverable       unverified_*_reject_code (450): as above with a
                            4xx code, else "<a>: Recipient address
                            rejected: undeliverable address: <text>"
      no answer           450 "<a>: Recipient address rejected: address
                            verification problem"

    unverified_*_reject_reason, when set, replaces the text of a 4xx or
    5xx reply. A 4xx reply is carried out as unverified_*_tempfail_action
    says: defer_if_permit (the default, $reject_tempfail_action) holds it
    until the evaluation ends in a permit, defer rejects at once. A code
    of 250 accepts the address. reject_unverified_sender does nothing for
    the null sender.

SEE ALSO
    services/verify.py, mailsys.runtime.verify_client (the queries),
    mailsys.policy.verify_cache, Postfix verify(8), postconf(5).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from mailsys.frozen import frozen
from mailsys.ipc.proto.verify import BOUNCE, DEFER, TODO
from mailsys.policy.needs import NeedVerify
from mailsys.policy.replies import RECIPIENT, SENDER
from mailsys.policy.state import DUNNO, ListInfo, Run

if TYPE_CHECKING:
    from mailsys.policy.restrictions import Restrictions

__all__ = ["NeedVerify", "UnverifiedSettings", "reject_unverified_recipient",
           "reject_unverified_sender"]

# Postfix SND_DSN: "bad sender address syntax" stands for any bad sender.
_SENDER_DSN = "4.1.7"
_RECIPIENT_DSN = "4.1.1"
# smtpd_check.c: "unverified address: %.250s".
_TEXT_LIMIT = 250


@frozen
class UnverifiedSettings:
    """One address kind's unverified_<kind>_* parameters."""
    reject_code: int = 450
    defer_code: int = 450
    reject_reason: str = ""
    tempfail_action: str = "defer_if_permit"

    @classmethod
    def read(cls, get: Callable[[str, Any], Any], kind: str) -> UnverifiedSettings:
        return cls(int(get(f"unverified_{kind}_reject_code", 450)),
                   int(get(f"unverified_{kind}_defer_code", 450)),
                   str(get(f"unverified_{kind}_reject_reason", "")),
                   str(get(f"unverified_{kind}_tempfail_action", "defer_if_permit")))


def _tempfail(rs: Restrictions, run: Run, info: ListInfo, s: UnverifiedSettings, code: int,
              dsn: str, text: str, reply_class: str):
    return rs._tempfail(run, info, s.tempfail_action, code, dsn, text, reply_class)


def unverified(rs: Restrictions, run: Run, info: ListInfo, addr: str, reply_class: str,
               s: UnverifiedSettings):
    """The step for one address (see the module description)."""
    answer = run.verify(addr) if run.verify is not None else None
    if answer is None:
        raise NeedVerify(addr)
    status, why = answer
    dsn = _SENDER_DSN if reply_class == SENDER else _RECIPIENT_DSN
    name = run.reply_name(reply_class)
    if status is None:
        return _tempfail(rs, run, info, s, 450, dsn,
                         f"<{name}>: {reply_class} rejected: address verification problem",
                         reply_class)
    if status in (TODO, DEFER):
        code = s.defer_code
    elif status == BOUNCE:
        code = s.reject_code
    else:
        # deliverable, or a status this smtpd does not know (Postfix warns
        # about that one and goes on).
        return DUNNO
    if code >= 400 and s.reject_reason:
        why = s.reject_reason
    if code // 100 == 4:
        return _tempfail(rs, run, info, s, code, dsn,
                         f"<{name}>: {reply_class} rejected: unverified address: "
                         f"{why[:_TEXT_LIMIT]}", reply_class)
    if code // 100 == 5:
        return rs._reject(run, info, code, dsn,
                          f"<{name}>: {reply_class} rejected: undeliverable address: {why}",
                          reply_class)
    return DUNNO


def reject_unverified_recipient(rs: Restrictions, run: Run, info: ListInfo):
    if not run.ctx.recipient:
        return DUNNO
    return unverified(rs, run, info, run.ctx.recipient, RECIPIENT, rs.unverified[RECIPIENT])


def reject_unverified_sender(rs: Restrictions, run: Run, info: ListInfo):
    if not run.ctx.sender:
        return DUNNO
    return unverified(rs, run, info, run.ctx.sender, SENDER, rs.unverified[SENDER])
