"""mbox_lock - exclusive access to an mbox file, taken as Postfix takes it.

SYNOPSIS
    policy = LockPolicy.from_config(cfg, "mailbox_delivery_lock")   # or virtual_mailbox_lock
    with in_process(path, policy):
        lock_file = dotlock(path, policy)      # path.lock, created O_EXCL
        kernel_lock(fd, "fcntl", policy)       # and/or "flock", on the open file
    # DeliveryError("4.2.0", "unable to lock for exclusive access: Resource temporarily unavailable")
    # DeliveryError("4.2.0", "unable to create lock file /var/mail/bob.lock: File exists")

DESCRIPTION
    Mail readers and delivery agents share an mbox file, so every writer
    must hold the locks every other one looks for. The methods are
    Postfix's (mbox_open(3), dot_lockfile(3), deliver_flock(3)), named in
    mailbox_delivery_lock (local) and virtual_mailbox_lock (virtual), both
    "fcntl, dotlock" by default as on Postfix for Linux:

    dotlock
        FILE.lock beside the mailbox, created with O_CREAT|O_EXCL (mode 0,
        as Postfix does), removed after the delivery. When it exists, up to
        deliver_lock_attempts tries, deliver_lock_delay apart; a lock file
        whose change time is more than stale_lock_time ago was left by a
        crashed writer and is removed. Taken before the mailbox is opened,
        and only for a regular file or one that does not exist yet.
    flock, fcntl
        Kernel locks on the open file (flock(2); fcntl(2) F_SETLK on the
        whole file), each tried without blocking up to
        deliver_lock_attempts times, deliver_lock_delay apart.

    The pause between tries is deliver_lock_delay give or take a quarter
    (Postfix's rand_sleep), so writers that collide do not collide again.
    A lock that cannot be had is a 4.2.0 deferral: the mail waits in the
    queue until the reader lets go.

    in_process() adds what Postfix gets from running one delivery per
    process: mailsys delivers from worker threads of one process, and
    fcntl locks belong to the process (a second thread would be granted
    the same lock, and closing any descriptor of the file drops it), so
    deliveries to one path inside this process take turns first.

    Synchronous and blocking (time.sleep): run it in a worker thread.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import random
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

from mailsys.delivery.errors import DeliveryError, mailbox_dsn, os_error_text
from mailsys.frozen import frozen

__all__ = ["LOCK_STYLES", "LockPolicy", "dotlock", "dotlock_path", "kernel_lock", "in_process"]

LOCK_STYLES = ("flock", "fcntl", "dotlock")

# Postfix myflock(3): a lock held by another process fails F_SETLK / LOCK_NB
# with one of these; anything else will not go away by trying again.
_BUSY = (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)


@frozen
class LockPolicy:
    """Which locks to take and how long to try (Postfix's defaults)."""
    styles: tuple[str, ...] = ("fcntl", "dotlock")
    attempts: int = 20                # deliver_lock_attempts
    delay: float = 1.0                # deliver_lock_delay, seconds
    stale: float = 500.0              # stale_lock_time, seconds

    @classmethod
    def from_config(cls, cfg, styles_param: str) -> LockPolicy:
        return cls(styles=tuple(s.lower() for s in cfg[styles_param]),
                   attempts=int(cfg.deliver_lock_attempts),
                   delay=float(cfg.deliver_lock_delay),
                   stale=float(cfg.stale_lock_time))

    @property
    def patience(self) -> float:
        """The longest one writer may spend taking its locks."""
        return self.attempts * self.delay * 1.25 * max(1, len(self.styles))


def _pause(policy: LockPolicy) -> None:
    time.sleep(policy.delay * random.uniform(0.75, 1.25))


def dotlock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def dotlock(path: Path, policy: LockPolicy) -> Path:
    """Create path.lock (see DESCRIPTION); the lock file's path, for removal."""
    lock = dotlock_path(path)
    for attempt in range(1, policy.attempts + 1):
        try:
            os.close(os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0))
            return lock
        except OSError as e:
            err = e
        if attempt >= policy.attempts or err.errno != errno.EEXIST:
            break
        try:
            if time.time() > os.stat(lock).st_ctime + policy.stale:
                os.unlink(lock)
        except FileNotFoundError:
            pass                      # gone meanwhile: try again at once after the pause
        except OSError as e:          # a stale lock we may not remove: give up, as Postfix
            err = e
            break
        _pause(policy)
    # A lock held by someone else is "try later" (Postfix maps EEXIST to EAGAIN).
    dsn = "4.2.0" if err.errno == errno.EEXIST else mailbox_dsn(err.errno)
    raise DeliveryError(dsn, f"unable to create lock file {lock}: {os_error_text(err)}")


def kernel_lock(fd: int, style: str, policy: LockPolicy) -> None:
    """An exclusive flock or fcntl lock on fd, tried without blocking (see DESCRIPTION)."""
    take = fcntl.flock if style == "flock" else fcntl.lockf      # lockf is fcntl(F_SETLK)
    for attempt in range(1, policy.attempts + 1):
        try:
            take(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as e:
            err = e
        if attempt >= policy.attempts or err.errno not in _BUSY:
            break
        _pause(policy)
    raise DeliveryError(mailbox_dsn(err.errno),
                        f"unable to lock for exclusive access: {os_error_text(err)}")


# One lock per mailbox path with a delivery in progress in this process; the
# weak values let an idle mailbox's lock go away with its last user.
_turns: weakref.WeakValueDictionary[str, threading.Lock] = weakref.WeakValueDictionary()
_turns_guard = threading.Lock()


@contextlib.contextmanager
def in_process(path: Path, policy: LockPolicy) -> Iterator[None]:
    """Deliveries to one path from this process take turns (see DESCRIPTION)."""
    key = os.path.abspath(path)
    with _turns_guard:
        turn = _turns.get(key)
        if turn is None:
            turn = _turns[key] = threading.Lock()
    if not turn.acquire(timeout=policy.patience):
        raise DeliveryError("4.2.0", "unable to lock for exclusive access: "
                                     f"{os.strerror(errno.EAGAIN)}")
    try:
        yield
    finally:
        turn.release()
