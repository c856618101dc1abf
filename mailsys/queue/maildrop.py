"""maildrop - what sendmail leaves while the mail system is down (Postfix's maildrop queue).

SYNOPSIS
    from mailsys.queue import maildrop
    maildrop.drop(queue_dir, request)           # a CleanupRequest; durable on return
    for path in maildrop.waiting(queue_dir):    # oldest first
        request = maildrop.read(path)           # CorruptDrop if unreadable
        ...                                     # handed to cleanup: then
        path.unlink()
    maildrop.set_aside(queue_dir, path)         # to $queue_directory/corrupt/
    for envelope in maildrop.envelopes(queue_dir): ...   # what mailq shows

DESCRIPTION
    Postfix's sendmail hands every message to postdrop, which writes it
    into $queue_directory/maildrop whether or not the mail system runs,
    and the pickup service later gives each file to cleanup. mailsys's
    sendmail talks to cleanup itself; it uses this directory only when it
    cannot reach cleanup, so that a message submitted while the mail
    system is stopped (cron's, a script's) is queued at the next start
    instead of lost, as with Postfix. The pickup service
    (services/pickup.py) hands the files to cleanup when the master
    starts, on `postqueue -f`, and when sendmail has just left one.

    A file holds the CleanupRequest sendmail would have sent, as one frame
    of the IPC codec (mailsys.ipc.codec), and is named after the request's
    queue ID. drop() writes it with mailsys.config.files.replace_file():
    under a name with a leading dot, fsynced, renamed into place, the
    directory fsynced. So a file without the dot is always whole, and once
    drop() returns it survives a crash.
    waiting() lists only such files, oldest first.

    The directory is mode 0700, as private/ with the cleanup socket: only
    the mail system's own user writes there, so pickup may trust what a
    file says (its uid, its flags). Postfix's is 1730, group postdrop,
    written through its set-group-ID postdrop, which records the real uid;
    mailsys has no such program, and a directory other users could write
    would let them hand cleanup requests it trusts.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from mailsys.config.files import replace_file
from mailsys.errors import MailsysError
from mailsys.ipc import codec
from mailsys.ipc.proto.cleanup import CleanupRequest
from mailsys.message.envelope import Envelope, Recipient

__all__ = ["MAILDROP", "CorruptDrop", "directory", "drop", "envelopes", "pending", "read",
           "set_aside", "waiting"]

MAILDROP = "maildrop"
CORRUPT = "corrupt"
MODE = 0o700


class CorruptDrop(MailsysError):
    """A maildrop file that does not hold a cleanup request."""


def directory(queue_dir: Path) -> Path:
    """directory - $queue_directory/maildrop, made (mode 0700) if missing."""
    path = Path(queue_dir) / MAILDROP
    try:
        path.mkdir()
    except FileExistsError:
        return path
    os.chmod(path, MODE)
    return path


def drop(queue_dir: Path, request: CleanupRequest) -> Path:
    """drop - write request into the maildrop; durable once this returns.

    Raises OSError when the queue directory is missing or the file cannot
    be written (nothing is left behind then)."""
    if not Path(queue_dir).is_dir():
        raise FileNotFoundError(f"no queue directory {queue_dir}")
    folder = directory(queue_dir)
    final = folder / request.queue_id
    replace_file(final, codec.encode(request), mode=0o600)
    return final


def waiting(queue_dir: Path) -> list[Path]:
    """waiting - the whole files in the maildrop, oldest first."""
    try:
        entries = list(os.scandir(Path(queue_dir) / MAILDROP))
    except FileNotFoundError:
        return []
    found = []
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
            continue
        try:
            found.append((entry.stat(follow_symlinks=False).st_mtime, entry.name))
        except FileNotFoundError:
            continue                    # picked up meanwhile
    return [Path(queue_dir) / MAILDROP / name for _, name in sorted(found)]


def read(path: Path) -> CleanupRequest:
    """read - the request in one maildrop file; CorruptDrop if it holds none."""
    data = path.read_bytes()
    try:
        request = codec.decode(data)
    except Exception as e:          # the codec's own errors, and a torn frame
        raise CorruptDrop(f"{path.name}: not a cleanup request: {e}") from None
    if not isinstance(request, CleanupRequest):
        raise CorruptDrop(f"{path.name}: not a cleanup request: {type(request).__name__}")
    return request


def envelopes(queue_dir: Path) -> Iterator[Envelope]:
    """envelopes - what mailq shows of each whole file in the maildrop,
    oldest first (Postfix's showq lists the maildrop before the other
    queues); a file that goes meanwhile or holds no request is skipped."""
    try:
        paths = waiting(queue_dir)
    except OSError:                 # not ours to read: nothing to show
        return
    for path in paths:
        try:
            request = read(path)
        except (OSError, CorruptDrop):
            continue
        yield Envelope(queue_id=request.queue_id, sender=request.sender,
                       recipients=tuple(Recipient(r.address) for r in request.recipients),
                       arrival_time=request.arrival_time, size=len(request.content))


def set_aside(queue_dir: Path, path: Path) -> Path:
    """set_aside - move a maildrop file pickup cannot queue to corrupt/."""
    folder = Path(queue_dir) / CORRUPT
    folder.mkdir(mode=0o700, exist_ok=True)
    target = folder / path.name
    shutil.move(path, target)
    return target


def pending(queue_dir: Path) -> bool:
    """pending - whether any whole file waits in the maildrop."""
    return bool(waiting(queue_dir))

