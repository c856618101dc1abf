"""ehlo_mask - Postfix's EHLO keyword names, for the discard settings.

SYNOPSIS
    from mailsys.smtp.ehlo_mask import discard_names, discard_text
    discard_names(["pipelining", "Silent-Discard"])   # ("pipelining",)
    discard_text(["dsn", "8bitmime"])                  # "discarding EHLO keywords: 8BITMIME DSN"

DESCRIPTION
    smtpd_discard_ehlo_keywords and smtp_discard_ehlo_keywords (and their
    address maps) name EHLO keywords, case-insensitively, plus the pseudo
    keyword silent-discard that keeps the discarding out of the log.
    Postfix's line names them in the order of its keyword table
    (global/ehlo_mask.c), whatever order they were given in; names it does
    not know are left out of it.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["KEYWORDS", "SILENT_DISCARD", "discard_names", "discard_text"]

KEYWORDS = ("8bitmime", "auth", "etrn", "pipelining", "size", "verp", "vrfy", "xclient",
            "xforward", "starttls", "enhancedstatuscodes", "dsn", "smtputf8", "chunking")
SILENT_DISCARD = "silent-discard"


def discard_names(words: Iterable[str]) -> tuple[str, ...]:
    """The known keywords words names, lower case, in Postfix's table order."""
    asked = {w.lower() for w in words}
    return tuple(k for k in KEYWORDS if k in asked)


def discard_text(words: Iterable[str]) -> str:
    """Postfix's "discarding EHLO keywords: ..." line; "" when there is
    nothing to discard or silent-discard is among the words."""
    words = list(words)
    names = discard_names(words)
    if not names or SILENT_DISCARD in {w.lower() for w in words}:
        return ""
    return "discarding EHLO keywords: " + " ".join(k.upper() for k in names)
