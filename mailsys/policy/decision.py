"""decision - the outcome of evaluating restrictions.

DESCRIPTION
    A Decision is either ACCEPT (code 0) or the reply smtpd sends, with the
    name of the parameter whose restriction list decided. Either way it
    carries Notes: things the restrictions ask smtpd to log or carry out
    besides the reply (warn_if_reject's reject_warning, and the access(5)
    actions WARN, INFO, HOLD, DISCARD, FILTER, REDIRECT, BCC, PREPEND).
    logtext renders a Decision or a Note as the mail.log line Postfix writes.

SEE ALSO
    restrictions, logtext, Postfix access(5).
"""

from __future__ import annotations


from mailsys.frozen import frozen


@frozen
class Decision:
    """The outcome of evaluating restrictions.

    code 0 means accepted; otherwise code/enhanced/text is the reply, and
    restriction_list names the parameter whose list decided (or
    "smtpd_reject_unlisted_recipient"). notes holds the Notes the caller
    logs or applies whatever the reply (see Note).
    """
    code: int = 0
    enhanced: str = ""
    text: str = ""
    restriction_list: str = ""
    notes: tuple["Note", ...] = ()
    # An accepted stage's defer_if_permit, held for RCPT (smtpd_delay_reject
    # = no: Postfix reports it only when the recipient is not refused).
    held: "Decision | None" = None

    @property
    def accepted(self) -> bool:
        return self.code == 0

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500

    @property
    def reply(self) -> str:
        """'554 5.7.1 <r@d>: Relay access denied' (empty when accepted)."""
        return f"{self.code} {self.enhanced} {self.text}" if self.code else ""


ACCEPT = Decision()


@frozen
class Note:
    """Something the restrictions ask smtpd to log or do besides the reply.

    action: "reject_warning" (warn_if_reject), "permit"
    (smtpd_log_access_permit_actions), "warn", "info", "hold",
    "discard", "filter", "redirect", "bcc", "prepend", or "warning" (a
    problem to log as a warning, the whole line in text). text is what
    Postfix logs after "<action>: RCPT from name[addr]: " (note_log_text
    renders the line; "prepend" is not logged, its text is empty). value is the
    action's argument: the header line for prepend, transport:destination
    for filter, the address for redirect and bcc.
    """
    action: str
    text: str
    value: str = ""


__all__ = ["ACCEPT", "Decision", "Note"]
