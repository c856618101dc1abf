"""errors - the two ways an SMTP conversation goes wrong.

    ProtocolError
    ├── LocalProtocolError    our own code asked for something illegal (a bug in the caller)
    └── RemoteProtocolError   the client broke the protocol; carries the Reply to send

A RemoteProtocolError raised by ServerConnection.next_event() is routine: the
caller sends ``err.reply`` with ``conn.send(err.reply)`` and goes on reading
(the connection closes by itself when that reply is a 221/421/521). Any other
exception escaping next_event() is a bug (h11 ``_util.py`` makes the same
promise).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .replies import Reply


class ProtocolError(Exception):
    """Base of both families."""


class LocalProtocolError(ProtocolError):
    """The caller used the connection in a way the protocol forbids.

    Examples: sending a reply when none is owed, answering MAIL with 354.
    """


class RemoteProtocolError(ProtocolError):
    """The client sent something we must refuse; ``reply`` is the answer.

    ``counts_as_error`` is False for the few refusals Postfix does not count
    against smtpd_hard_error_limit (RCPT beyond smtpd_recipient_limit, while
    within smtpd_recipient_overshoot_limit). ``sender`` is the MAIL FROM
    address of a refused MAIL command that parsed (SIZE over the limit),
    for the ``from=<...>`` of smtpd's reject log line; None otherwise.
    ``unknown`` is the line of a command the server does not know, which
    the policy may still answer (smtpd tells its milters: SMFIC_UNKNOWN);
    None for every other refusal. ``denied`` marks the 503 to a client the
    client restrictions refused at connect (smtpd_delay_reject = no), which
    smtpd.c does not count as a junk command. ``policy_first`` marks a
    refusal the policy may overrule with its own, checked before it (RCPT:
    the client's recipient rate, counted before the address is looked at);
    the core then counts the command as a failure (ServerConnection.overrule).
    ``hangup`` ends the session after the reply whatever its code (a
    command line ended by a bare LF with smtpd_forbid_bare_newline =
    reject: smtpd.c replies and breaks out of its command loop).
    """

    def __init__(self, message: str, *, reply: Reply, counts_as_error: bool = True,
                 sender: str | None = None, unknown: str | None = None,
                 denied: bool = False) -> None:
        super().__init__(message)
        self.reply = reply
        self.counts_as_error = counts_as_error
        self.sender = sender
        self.unknown = unknown
        self.denied = denied
        self.policy_first = False
        self.hangup = False
