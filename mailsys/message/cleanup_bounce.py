"""cleanup_bounce - queue a refused message to go back to its sender (Postfix cleanup_bounce.c).

SYNOPSIS
    from mailsys.message.cleanup_bounce import bounceable, returned
    if bounceable(refusal):
        envelope, content = returned(envelope, content, refusal, now=time.time())

DESCRIPTION
    A client that has nobody to tell about a refusal asks cleanup to return
    the message to its sender instead: the pickup service, whose sendmail
    user is long gone, as Postfix's pickup asks its cleanup with
    CLEANUP_FLAG_BOUNCE. cleanup then queues the message with every
    recipient bounced already, the refusal as their status, and answers
    that it is queued; qmgr has bounce send the non-delivery notice and
    removes the entry, as for any other bounced recipient.

    bounceable() says which refusals are returned: the permanent ones
    (5xx). A temporary one (4xx: an alias expansion error, a milter's
    tempfail, "REJECT 4.x.x text") is answered as it is, and the client
    tries again later: Postfix's cleanup does not bounce on
    CLEANUP_STAT_DEFER (CLEANUP_STAT_MASK_CANT_BOUNCE, cleanup_user.h).

    returned() marks the recipients as Postfix's cleanup_bounce() writes
    them to the bounce log, which is what the notice says:

      status   the refusal's enhanced code, or 5.0.0 when it has none or
               it is not a 5.x.x one (bounce_append()'s own check)
      reason   the refusal's text, without the "Error: " that smtpd puts
               before cleanup's own words (cleanup_strerror.c says
               "message file too big", "too many hops")
      content  for a refused content or size, the header only, and
               RET=HDRS: "Do not send unfiltered (body) content"; for too
               many hops, the whole message, as the sender's RET asks

    Pure: no I/O, no logging.
"""

from __future__ import annotations

import re

from .envelope import Envelope, RcptState
from .headers import TOO_MANY_HOPS, header_end, to_crlf
from .reply import StatusReply

__all__ = ["bounceable", "returned"]

# bounce_append(): a status that is not 5.x.x becomes this one.
DEFAULT_STATUS = "5.0.0"
_STATUS = re.compile(r"5\.\d{1,3}\.\d{1,3}")
# How smtpd words cleanup's own refusals ("552 5.3.4 Error: message file too big").
_SMTPD_PREFIX = "Error: "


def bounceable(refusal: StatusReply) -> bool:
    """bounceable - whether a refusal goes back to the sender (5xx) or is answered (4xx)."""
    return 500 <= refusal.code < 600


def returned(envelope: Envelope, content: bytes, refusal: StatusReply, *,
             now: float) -> tuple[Envelope, bytes]:
    """returned - the entry that returns a refused message: every recipient bounced."""
    status = refusal.enhanced if _STATUS.fullmatch(refusal.enhanced) else DEFAULT_STATUS
    reason = refusal.text.removeprefix(_SMTPD_PREFIX)
    recipients = tuple(r.replace(state=RcptState.BOUNCED, dsn_status=status, reason=reason,
                                 last_attempt=now) for r in envelope.recipients)
    ret = envelope.ret
    if refusal != TOO_MANY_HOPS:
        content, ret = content[:header_end(content)], "HDRS"
    content = to_crlf(content)
    return envelope.replace(recipients=recipients, size=len(content), ret=ret), content
