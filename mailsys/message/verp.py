"""verp - the sender of one recipient's delivery under VERP (Postfix verp_sender(3)).

SYNOPSIS
    from mailsys.message.verp import verp_sender
    verp_sender("owner-list@lists.example", "u1@example.net", "+=")
        # "owner-list+u1=example.net@lists.example"

DESCRIPTION
    Variable envelope return paths: a message queued with XVERP (or
    sendmail -V) goes to each recipient separately, from the sender's local
    part, the first delimiter, the recipient's local part, the second
    delimiter and the recipient's domain, then "@" and the sender's domain.
    A recipient without a domain gives no second delimiter; a sender
    without a domain gets none appended. The null sender is not changed.
"""

from __future__ import annotations

__all__ = ["verp_sender"]


def verp_sender(sender: str, recipient: str, delimiters: str) -> str:
    if not sender or len(delimiters) != 2:
        return sender
    local, at, domain = sender.rpartition("@")
    if not at:
        local, domain = sender, ""
    rcpt_local, rcpt_at, rcpt_domain = recipient.rpartition("@")
    if not rcpt_at:
        rcpt_local, rcpt_domain = recipient, ""
    out = local + delimiters[0] + rcpt_local
    if rcpt_at:
        out += delimiters[1] + rcpt_domain
    return out + ("@" + domain if at else "")
