"""verify protocol - what smtpd and qmgr ask the address verification service (Postfix verify(8)).

smtpd sends VerifyQuery(address) for reject_unverified_recipient and
reject_unverified_sender and gets VerifyAnswer(status, text): the status
the cache holds, or TODO with "Address verification in progress" while a
probe is out (the service then sends a probe, when none is out already).
qmgr sends VerifyUpdate(address, status, text) with the result of a probe
(the delivery agent's verdict, in trace-only mode) and gets Ok.

The status values are Postfix's DEL_RCPT_STAT_* numbers
(src/global/deliver_request.h), so that a cache entry reads as Postfix
writes it: OK (deliverable), DEFER (undeliverable for now), BOUNCE
(undeliverable), TODO (not known yet).
"""

from __future__ import annotations


from mailsys.frozen import frozen
from mailsys.ipc.codec import message

PROTOCOL = "verify"

# Postfix DEL_RCPT_STAT_*.
OK, DEFER, BOUNCE, TODO = 0, 1, 2, 3
STATUSES = (OK, DEFER, BOUNCE, TODO)

# The queue entry attribute that makes a message a verification probe
# (Postfix's trace_flags named attribute with DEL_REQ_FLAG_MTA_VRFY).
TRACE_FLAGS = "trace_flags"
MTA_VRFY = "mta_vrfy"
# sendmail -bv (DEL_REQ_FLAG_USR_VRFY): the same trace-only delivery, the
# results mailed to the sender in a "Mail Delivery Status Report".
USR_VRFY = "usr_vrfy"


def status_name(status: int) -> str:
    """The word a delivery agent logs for a probe's result: status=deliverable."""
    return "deliverable" if status == OK else "undeliverable"


@message("verify_query", version=1)
@frozen
class VerifyQuery:
    address: str


@message("verify_answer", version=1)
@frozen
class VerifyAnswer:
    status: int                  # OK, DEFER, BOUNCE or TODO
    text: str                    # the probe's answer ("host x said: 550 ..."), or
                                 # "Address verification in progress"


@message("verify_update", version=1)
@frozen
class VerifyUpdate:
    address: str
    status: int                  # OK, DEFER or BOUNCE
    text: str
