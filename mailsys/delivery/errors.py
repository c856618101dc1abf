"""errors - why a mailbox delivery failed, and how soon to try again.

SYNOPSIS
    raise DeliveryError(mailbox_dsn(e.errno), f"error writing message: {os.strerror(e.errno)}")

DESCRIPTION
    A DeliveryError carries the enhanced status code and the text that go
    into the recipient's status line; a 5.x.x code bounces, anything else
    defers. mailbox_dsn() is Postfix's mbox_dsn() (src/global/mbox_open.c),
    the one split of system errors for both mailbox formats:

        EAGAIN, ESTALE   4.2.0   someone else has the mailbox: try later
        ENOSPC           4.3.0   the mail system (file system) is full
        EDQUOT, EFBIG    5.2.2   the recipient's mailbox is full
        anything else    the default (mailsys: 4.2.0, deferred and retried)

    Postfix's local(8) passes 5.2.0 or 5.3.0 as the default for some of
    these, bouncing mail on, say, a permission problem; mailsys defers it
    instead, so an administrator's mistake costs a delay, never the mail.
"""

from __future__ import annotations

import errno
import os

__all__ = ["DeliveryError", "mailbox_dsn", "os_error_text"]


class DeliveryError(Exception):
    def __init__(self, dsn: str, text: str, fatal: str = "") -> None:
        super().__init__(text)
        self.dsn = dsn
        self.text = text
        # The "fatal:" line a command's child process logged before it ran
        # the command (it could not change directory or exec).
        self.fatal = fatal

    @property
    def permanent(self) -> bool:
        return self.dsn.startswith("5")


def mailbox_dsn(err: int | None, default: str = "4.2.0") -> str:
    if err in (errno.EAGAIN, errno.ESTALE):
        return "4.2.0"
    if err == errno.ENOSPC:
        return "4.3.0"
    if err in (errno.EDQUOT, errno.EFBIG):
        return "5.2.2"
    return default


def os_error_text(e: OSError) -> str:
    """The %m of a Postfix message: strerror(errno), without Python's [Errno N] decoration."""
    return os.strerror(e.errno) if e.errno else str(e)
