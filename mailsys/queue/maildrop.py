"""maildrop - what sendmail leaves while the mail system is down (Postfix's maildrop queue).

SYNOPSIS
    from mailsys.queue import maildrop
    maildrop.drop(queue_dir, request)           # a CleanupRequest; durable on return
    for path in maildrop.waiting(queue_dir):    # oldest first
        request = maildrop.read(path)           # CorruptDrop if unreadable
        ...                                     # handed to cleanup: then
        path.unlink()
    maildrop.set_aside(queue_dir, path)         # to $queue_directory/corrupt/
    for name in maildrop.purge(queue_dir): ...  # old temporary files, removed
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
    waiting() lists only such files, oldest first. A sendmail killed
    while it writes leaves its dot-file behind; purge() removes such a
    file once it is a day old, as Postfix's postsuper removes old
    temporary files when `postfix start` and `postfix reload` run it.

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
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from mailsys.config.files import replace_file
from mailsys.errors import MailsysError
from mailsys.ipc import codec
from mailsys.ipc.proto.cleanup import CleanupRequest
from mailsys.message.envelope import Envelope, Recipient

__all__ = ["MAILDROP", "CorruptDrop", "directory", "drop", "envelopes", "pending", "purge",
           "read", "set_aside", "waiting"]

MAILDROP = "maildrop"
CORRUPT = "corrupt"
MODE = 0o700
# How long a temporary file may stay unmodified before purge() takes it for
# a dead writer's: Postfix's postsuper waits MAX_TEMP_AGE, one day
# (postsuper.c), for its postdrop, which writes while it reads the
# message. sendmail's file lives only while drop() writes and fsyncs a
# message it holds already, seconds at most; the day is a margin that
# no slow disk, stopped (SIGSTOP) sendmail or clock step eats up, and a
# dead file costs nothing meanwhile: waiting() and pickup never look at it.
TEMP_AGE = 24 * 60 * 60


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


def _entries(queue_dir: Path) -> list[os.DirEntry]:
    """What the maildrop holds; nothing when there is no maildrop."""
    try:
        return list(os.scandir(Path(queue_dir) / MAILDROP))
    except FileNotFoundError:
        return []


def waiting(queue_dir: Path) -> list[Path]:
    """waiting - the whole files in the maildrop, oldest first."""
    found = []
    for entry in _entries(queue_dir):
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


def purge(queue_dir: Path, now: float | None = None) -> list[str]:
    """purge - remove the temporary files (names with a leading dot) left
    in the maildrop that were not modified for more than TEMP_AGE; the
    names removed. Raises OSError when the directory cannot be read or a
    file cannot be removed."""
    now = time.time() if now is None else now
    removed = []
    for entry in _entries(queue_dir):
        if not entry.name.startswith("."):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode) or now - st.st_mtime <= TEMP_AGE:
                continue
            os.unlink(entry.path)
        except FileNotFoundError:
            continue                    # gone meanwhile
        removed.append(entry.name)
    return sorted(removed)


def pending(queue_dir: Path) -> bool:
    """pending - whether any whole file waits in the maildrop."""
    return bool(waiting(queue_dir))

