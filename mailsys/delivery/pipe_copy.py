"""pipe_copy - the message as pipe(8) writes it to a command's standard input.

SYNOPSIS
    data = copy_message(content, flags=frozenset("DR"), sender="alice@example.org",
                        orig_rcpt="bob@example.com", delivered="bob@example.com")
    # b"Return-Path: <alice@example.org>\\nDelivered-To: bob@example.com\\n" + message

DESCRIPTION
    Postfix's mail_copy() (src/global/mail_copy.c) as pipe_command(3)
    calls it. By default the message goes as it is in the queue, every
    line ended with eol= (default LF; the queue's CRLF line ends are not
    kept). The flags add, in this order, in front of it:

      F   ``From SENDER  DATE`` (DATE in local time, as asctime(3);
          MAILER-DAEMON for an empty sender)
      R   ``Return-Path: <SENDER>``
      O   ``X-Original-To: ORIGINAL-RECIPIENT`` (not when there is none)
      D   ``Delivered-To: RECIPIENT``

    each address with its local part quoted as RFC 822 needs; SENDER is
    the envelope sender, or null_sender= for the null sender. And in the
    message:

      >   ``>`` in front of every line that starts with ``From ``
      .   ``.`` in front of every line that starts with ``.``
      B   one empty line after the message

    Pure.
"""

from __future__ import annotations

import re

from mailsys.delivery.maildir import to_lf
from mailsys.delivery.mbox_format import envelope_line
from mailsys.message.address import quote_822_local

__all__ = ["copy_message"]

_FROM_ = re.compile(rb"^From ", re.MULTILINE)
_DOT = re.compile(rb"^\.", re.MULTILINE)


def _text(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


def copy_message(content: bytes, *, flags: frozenset[str] = frozenset(), sender: str = "",
                 orig_rcpt: str = "", delivered: str = "", eol: bytes = b"\n",
                 when: float | None = None) -> bytes:
    """The bytes the command reads (see DESCRIPTION)."""
    head = []
    if "F" in flags:
        head.append(envelope_line(sender, when).removesuffix(b"\n"))
    if "R" in flags:
        head.append(b"Return-Path: <" + _text(quote_822_local(sender)) + b">")
    if "O" in flags and orig_rcpt:
        head.append(b"X-Original-To: " + _text(quote_822_local(orig_rcpt)))
    if "D" in flags:
        head.append(b"Delivered-To: " + _text(quote_822_local(delivered)))
    body = to_lf(content)
    if ">" in flags:
        body = _FROM_.sub(b">From ", body)
    if "." in flags:
        body = _DOT.sub(b"..", body)
    lines = body.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()                       # the last line's end, not an empty line
    out = eol.join([*head, *lines])
    if head or lines:
        out += eol
    if "B" in flags:
        out += eol
    return out
