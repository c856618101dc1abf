"""mbox - append one message to a UNIX-style mailbox file, durably (Postfix mbox_open(3), mail_copy(3)).

SYNOPSIS
    offset = append(Path("/var/mail/bob"), mbox_entry(header, content, sender),
                    policy=LockPolicy(), limit=51200000, owner=(1000, 1000))
    # DeliveryError(dsn, text) when it cannot be done; the file is as it was

DESCRIPTION
    The steps of Postfix's local(8) and virtual(8), so that the file is
    never left with half a message and a reader holding the mailbox is
    waited for, not written over:

     1. lock (mailsys.delivery.mbox_lock): FILE.lock first when the policy
        names dotlock, then open, then flock and/or fcntl on the open file;
     2. open the file O_WRONLY|O_APPEND as Postfix's safe_open(3) does: an
        existing file must have exactly one hard link and be what lstat()
        sees (no symbolic link, unless root owns it in a directory only
        root may write, as /dev/null links are); a missing file is created
        with O_CREAT|O_EXCL, mode 0600, and when this process runs as root
        given to owner (uid, gid); O_NONBLOCK so a FIFO cannot hang us;
     3. refuse what is not a regular file, a file whose owner is none of
        ``owners`` when that is given (strict_mailbox_ownership: 4.2.0
        ``destination FILE is not owned by recipient``, NotOwned), and a
        file whose link count changed while we waited for the lock (a
        reader replaced it);
     4. limit (bytes, 0 = none) caps the size of the whole file, as
        mailbox_size_limit / virtual_mailbox_limit do for Postfix (which
        sets it as the process's file size limit): a message that would
        make the file larger is refused with 5.2.2 ``error writing
        message: File too large`` and nothing is written;
     5. append, fsync, and only then report success; on any error while
        writing or syncing (a full disk, a file size limit of the process,
        an I/O error) truncate the file back to its size before the
        delivery, so no half message stays behind, and fail.

    Python ignores SIGXFSZ from start-up, so a file size limit set on the
    process (ulimit -f) surfaces here as EFBIG, as Postfix arranges for
    itself with set_file_limit(3).

    Synchronous and blocking: run it in a worker thread.

ERRORS
    DeliveryError with Postfix's texts (the agent puts ``cannot update
    mailbox FILE for user USER.`` or ``delivery failed to mailbox FILE:``
    in front): ``cannot open file: ...``, ``cannot create file
    exclusively: ...``, ``file has N hard links``, ``file is a symbolic
    link``, ``destination FILE is not a regular file``, ``target file
    status changed unexpectedly``, the lock texts of mbox_lock, and
    ``error writing message: ...``. Codes as mailsys.delivery.errors says:
    5.2.2 for a full mailbox, 4.3.0 for a full disk, 4.2.0 otherwise.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from mailsys.delivery.errors import DeliveryError, mailbox_dsn, os_error_text
from mailsys.delivery.mbox_lock import LockPolicy, dotlock, in_process, kernel_lock

__all__ = ["NotOwned", "append"]

_OPEN = os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK | os.O_CLOEXEC


class NotOwned(DeliveryError):
    """The mailbox belongs to someone else (strict_mailbox_ownership)."""


def _fail(err: int | None, text: str) -> DeliveryError:
    return DeliveryError(mailbox_dsn(err), text)


def _root_only_dir(path: Path) -> bool:
    try:
        st = os.stat(path.parent)
    except OSError:
        return False
    return st.st_uid == 0 and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _open_existing(path: Path) -> int:
    fd = os.open(path, _OPEN)
    try:
        st = os.fstat(fd)
        if st.st_nlink != 1:
            raise _fail(errno.EPERM, f"file has {st.st_nlink} hard links")
        try:
            lst = os.lstat(path)
        except OSError as e:
            raise _fail(errno.EPERM, f"file status changed unexpectedly: {os_error_text(e)}") from None
        if stat.S_ISLNK(lst.st_mode):
            if not (lst.st_uid == 0 and _root_only_dir(path)):
                raise _fail(errno.EPERM, "file is a symbolic link")
        elif (st.st_dev, st.st_ino, st.st_nlink, st.st_mode) != \
                (lst.st_dev, lst.st_ino, lst.st_nlink, lst.st_mode):
            raise _fail(errno.EPERM, "file status changed unexpectedly")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _create(path: Path, owner: tuple[int, int] | None) -> int:
    fd = os.open(path, _OPEN | os.O_CREAT | os.O_EXCL, 0o600)
    if owner is not None and os.geteuid() == 0:
        try:
            os.fchown(fd, *owner)
        except OSError as e:
            os.close(fd)
            raise _fail(e.errno, f"cannot change file ownership: {os_error_text(e)}") from None
    return fd


def _safe_open(path: Path, owner: tuple[int, int] | None) -> int:
    """Open or create path for appending (Postfix safe_open(3) with O_CREAT)."""
    try:
        return _open_existing(path)
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise _fail(e.errno, f"cannot open file: {os_error_text(e)}") from None
    try:
        return _create(path, owner)
    except OSError as e:
        if e.errno != errno.EEXIST:
            raise _fail(e.errno, f"cannot create file exclusively: {os_error_text(e)}") from None
    try:                                # created by someone else just now
        return _open_existing(path)
    except OSError as e:
        raise _fail(e.errno, f"cannot open file: {os_error_text(e)}") from None


def _may_be_regular(path: Path) -> bool:
    """Dotlock only a regular file or a missing one (never /dev/null and the like)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return True


def _write_all(fd: int, data: bytes, before: int) -> None:
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            if n <= 0:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            view = view[n:]
        os.fsync(fd)
    except OSError as e:
        # Postfix mail_copy(): undo the partial append before letting go of the locks.
        try:
            os.ftruncate(fd, before)
            os.fsync(fd)
        except OSError:
            pass
        raise _fail(e.errno, f"error writing message: {os_error_text(e)}") from None


def append(path: Path, data: bytes, *, policy: LockPolicy = LockPolicy(), limit: int = 0,
           owner: tuple[int, int] | None = None, take_turns: bool = True,
           owners: frozenset[int] | None = None) -> int:
    """Append data to the mbox file at path (see DESCRIPTION); the offset it starts at.
    take_turns=False: the caller already holds this process's turn for path
    (a forked child writing for its parent, mailsys.delivery.file).
    owners: the uids the file may belong to (None: any)."""
    path = Path(path)
    with in_process(path, policy) if take_turns else contextlib.nullcontext():
        lock_file = None
        if "dotlock" in policy.styles and _may_be_regular(path):
            lock_file = dotlock(path, policy)
        try:
            fd = _safe_open(path, owner)
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise _fail(None, f"destination {path} is not a regular file")
                if owners is not None and st.st_uid not in owners:
                    raise NotOwned("4.2.0", f"destination {path} is not owned by recipient")
                for style in ("flock", "fcntl"):
                    if style in policy.styles:
                        kernel_lock(fd, style, policy)
                # A reader that replaces the mailbox (rename over it) while we
                # waited leaves us holding a file nobody reads any more.
                st = os.fstat(fd)
                if st.st_nlink != 1:
                    raise _fail(errno.EAGAIN, "target file status changed unexpectedly")
                before = st.st_size
                if limit and before + len(data) > limit:
                    raise _fail(errno.EFBIG, f"error writing message: {os.strerror(errno.EFBIG)}")
                _write_all(fd, data, before)
                return before
            finally:
                try:
                    os.close(fd)
                except OSError:
                    pass              # after a good fsync the data is on disk whatever close says
        finally:
            if lock_file is not None:
                try:
                    os.unlink(lock_file)
                except OSError:
                    pass
