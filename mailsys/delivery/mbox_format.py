"""mbox_format - one message as Postfix's local(8) and virtual(8) append it to an mbox file.

SYNOPSIS
    entry = mbox_entry(header, content, sender="alice@example.com")
    # b"From alice@example.com  Fri Nov 27 16:41:35 2026\\n" + header + content + b"\\n"

DESCRIPTION
    The UNIX mailbox format as Postfix writes it (mail_copy() in
    src/global/mail_copy.c with MAIL_COPY_MBOX), checked byte for byte
    against Postfix 3.7:

     1. the envelope line ``From SENDER  DATE``: two spaces, DATE as
        asctime(3) prints the local time of the delivery (``Fri Nov  7
        09:05:01 2026``); the null sender is ``MAILER-DAEMON``; a sender
        whose local part needs it is quoted (``"a b"@example.org``);
     2. the header lines the agent adds (Return-Path:, X-Original-To:,
        Delivered-To:), given by the caller;
     3. the message with LF line ends, every line that starts with
        ``From `` written as ``>From ``. Only that: ``>From `` stays as it
        is (Postfix does not quote quoted lines, so a reader that unquotes
        one level gets the message back only where it had no ``>From ``),
        and ``From`` without the space, ``from `` and `` From `` are left
        alone;
     4. a newline after a last line that had none, then one empty line,
        which ends the entry so the next ``From `` line is found.

    Pure: no file system calls (mailsys.delivery.mbox writes the result).
"""

from __future__ import annotations

import re
import time

from mailsys.delivery.maildir import to_lf
from mailsys.message.address import quote_822_local

__all__ = ["MAILER_DAEMON", "envelope_line", "quote_from", "mbox_entry"]

MAILER_DAEMON = "MAILER-DAEMON"          # Postfix MAIL_ADDR_MAIL_DAEMON
_FROM_ = re.compile(rb"^From ", re.MULTILINE)


def envelope_line(sender: str, when: float | None = None) -> bytes:
    """``From alice@example.com  Fri Nov 27 16:41:35 2026`` and LF, in local time."""
    who = quote_822_local(sender) if sender else MAILER_DAEMON
    return f"From {who}  {time.asctime(time.localtime(when))}\n".encode("utf-8")


def quote_from(text: bytes) -> bytes:
    """Every line (LF-separated) that starts with ``From `` gets a ``>`` in front."""
    return _FROM_.sub(b">From ", text)


def mbox_entry(header: bytes, content: bytes, sender: str, when: float | None = None) -> bytes:
    """The bytes appended to the mbox file for one message (see DESCRIPTION)."""
    body = quote_from(to_lf(content))
    if body and not body.endswith(b"\n"):
        body += b"\n"
    return envelope_line(sender, when) + to_lf(header) + body + b"\n"
