"""logtext - the mail.log text of a rejected command or a restriction note.

DESCRIPTION
    reject_log_text() renders the line Postfix's log_whatsup writes for a
    refused command, "reject: RCPT from name[addr]: 554 5.7.1 <r>: Relay
    access denied; from=<s> to=<r> proto=ESMTP helo=<h>", which pflogsumm
    and fail2ban read; note_log_text() renders a Decision's Notes
    (reject_warning, warn, info, hold, discard, filter, redirect, bcc) the
    same way. Both return text for the caller's logger; neither logs.

SEE ALSO
    Postfix src/smtpd/smtpd_check.c (log_whatsup), postfix-compat.md.
"""

from __future__ import annotations

from mailsys.policy.context import PolicyContext
from mailsys.policy.decision import Decision, Note


def reject_log_text(decision: Decision, ctx: PolicyContext, *, command: str = "RCPT",
                    action: str = "reject", queue_id: str | None = None) -> str:
    """The smtpd log text of a rejected command (Postfix log_whatsup).

    'reject: RCPT from name[addr]: 554 5.7.1 <r>: Relay access denied;
    from=<s> to=<r> proto=ESMTP helo=<h>'. from= and to= appear when the
    context holds a sender / recipient, helo= when the client sent one.
    With queue_id the text starts 'NOQUEUE: ' (or the queue ID); without,
    the caller's logger adds it.
    """
    return _whatsup(action, command, ctx, decision.reply, queue_id)


def note_log_text(note: Note, ctx: PolicyContext, *, command: str = "RCPT",
                  queue_id: str | None = None) -> str:
    """The log text of a Decision note, e.g. 'reject_warning: RCPT from
    name[addr]: 554 5.7.1 <r>: Relay access denied; from=<s> to=<r> ...'."""
    return _whatsup(note.action, command, ctx, note.text, queue_id)


def _whatsup(action: str, command: str, ctx: PolicyContext, text: str, queue_id: str | None) -> str:
    parts = [f"{action}: {command} from {ctx.namaddr}: {text};"]
    if ctx.sender is not None:
        parts.append(f" from=<{ctx.sender}>")
    if ctx.recipient is not None:
        parts.append(f" to=<{ctx.recipient}>")
    if ctx.protocol:
        parts.append(f" proto={ctx.protocol}")
    if ctx.helo is not None:
        parts.append(f" helo=<{ctx.helo}>")
    line = "".join(parts)
    return f"{queue_id}: {line}" if queue_id else line


__all__ = ["note_log_text", "reject_log_text"]
