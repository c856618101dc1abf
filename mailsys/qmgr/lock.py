"""lock - one queue manager per queue: an exclusive lock on a file.

Two queue managers on one queue would take each other's work: qmgr puts
every entry it finds in the active queue back in incoming when it starts.
The master runs qmgr with a process limit of 1, but a reload starts the new
generation of a service while the old one is still finishing its
deliveries. So qmgr holds an exclusive flock(2) on
``$process_id_directory/qmgr.lock`` for as long as it runs, and a new one
waits for it before it recovers anything. The kernel drops the lock of a
process that exits in any way, SIGKILL included, so a dead qmgr never
blocks its successor.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import structlog
import trio

__all__ = ["acquire", "release", "LOCK_NAME"]

LOCK_NAME = "qmgr.lock"

log = structlog.get_logger()


async def acquire(path: Path) -> int:
    """acquire - wait for the lock at path; its file descriptor, to keep open."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)     # not inherited by children
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for the previous queue manager to finish")
            await trio.to_thread.run_sync(fcntl.flock, fd, fcntl.LOCK_EX,
                                          abandon_on_cancel=True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def release(fd: int) -> None:
    """release - drop the lock (closing its descriptor)."""
    os.close(fd)
