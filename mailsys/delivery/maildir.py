"""maildir - put one message into a Maildir, durably (Postfix src/local/maildir.c).

SYNOPSIS
    path = deliver(Path("/var/mail/vhosts/example.com/bob/"), header, content,
                   limit=51200000)               # the file in new/
    # MaildirError(dsn, text) when it cannot be done

DESCRIPTION
    The Maildir rules (https://cr.yp.to/proto/maildir.html), done so that a
    crash at any point loses nothing and never shows a half-written message:

     1. create the Maildir (tmp/, new/, cur/, mode 0700) when it is missing;
     2. write the message to tmp/ under a name no other delivery uses:
        ``<seconds>.M<microseconds>P<pid>Q<counter>.<hostname>`` (the
        modern form of the spec; "/" and ":" in the host name become \\057
        and \\072), opened O_CREAT|O_EXCL so a collision is an error, not an
        overwrite;
     3. fsync the file, then link it into new/ under the same name and
        fsync new/, so the directory entry is on disk before the delivery
        is reported;
     4. remove the tmp/ name (a crash before that leaves only a stale tmp
        file, which Maildir readers clean up after 36 hours).

    Lines are written with LF endings, as mail readers expect of Maildir
    files (the queue keeps CRLF). The header lines given (Return-Path,
    Delivered-To, ...) go in front of the message.

    limit (bytes, 0 = none) applies to the message file, as Postfix's
    virtual_mailbox_limit / mailbox_size_limit do for Maildir delivery.

ERRORS
    MaildirError (a DeliveryError) carries Postfix's status split
    (mailsys.delivery.errors.mailbox_dsn): a file too large or a quota is
    permanent (5.2.2), a full disk is 4.3.0, anything else (permissions, a
    path that is not a directory, I/O errors) 4.2.0: deferred and retried,
    never lost.
"""

from __future__ import annotations

import errno
import itertools
import os
import socket
import time
from pathlib import Path

from mailsys.delivery.errors import DeliveryError, mailbox_dsn, os_error_text

__all__ = ["MaildirError", "deliver", "unique_name", "to_lf", "SUBDIRS"]

SUBDIRS = ("tmp", "new", "cur")
_counter = itertools.count(1)


class MaildirError(DeliveryError):
    pass


def _fail(what: str, e: OSError) -> MaildirError:
    return MaildirError(mailbox_dsn(e.errno), f"{what}: {os_error_text(e)}")


def unique_name(now: float | None = None, hostname: str | None = None) -> str:
    """``1795738934.M123456P4242Q7.mx.example.com``: unique per host, process and delivery."""
    now = time.time() if now is None else now
    host = (hostname or socket.gethostname()).replace("/", "\\057").replace(":", "\\072")
    sec = int(now)
    usec = int((now - sec) * 1_000_000)
    return f"{sec}.M{usec}P{os.getpid()}Q{next(_counter)}.{host}"


def to_lf(data: bytes) -> bytes:
    """CRLF line ends to LF (the queue's form to the Maildir file's)."""
    return data.replace(b"\r\n", b"\n")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make(maildir: Path) -> None:
    """Create the Maildir and its three subdirectories when missing."""
    created = False
    for sub in SUBDIRS:
        d = maildir / sub
        if d.is_dir():
            continue
        try:
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
            created = True
        except OSError as e:
            raise _fail(f"create maildir file {d}", e) from None
    if created:
        try:
            _fsync_dir(maildir)
            _fsync_dir(maildir.parent)
        except OSError as e:
            raise _fail(f"create maildir {maildir}", e) from None


def deliver(maildir: Path, header: bytes, content: bytes, *, limit: int = 0,
            hostname: str | None = None) -> Path:
    """Write header + content into maildir/new/; return the new file's path."""
    maildir = Path(maildir)
    body = to_lf(header) + to_lf(content)
    if body and not body.endswith(b"\n"):
        body += b"\n"
    if limit and len(body) > limit:
        raise MaildirError("5.2.2", f"maildir delivery failed: error writing message: "
                                    f"{os.strerror(errno.EFBIG)}")
    _make(maildir)
    name = unique_name(hostname=hostname)
    tmp = maildir / "tmp" / name
    new = maildir / "new" / name
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        raise _fail(f"create maildir file {tmp}", e) from None
    try:
        try:
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, new)
        except OSError as e:
            raise _fail(f"link to maildir file {new}", e) from None
        try:
            _fsync_dir(new.parent)
        except OSError as e:
            # The link exists but may not survive a crash: withdraw it and
            # let the delivery be retried rather than claim it is safe.
            try:
                os.unlink(new)
            except OSError:
                pass
            raise _fail(f"sync maildir {new.parent}", e) from None
    except OSError as e:
        raise MaildirError(mailbox_dsn(e.errno), f"maildir delivery failed: error writing message: "
                                                 f"{os_error_text(e)}") from None
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass
    return new
