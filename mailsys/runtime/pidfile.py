"""pidfile - $queue_directory/pid/master.pid, locked while the master runs.

DESCRIPTION
    As in Postfix, the master takes an exclusive lock on its pid file and
    holds it for its lifetime; that lock, not the file's existence, says an
    instance is running. running() is what `mailsys status`, `stop` and
    `start` ask: it returns the pid only when the recorded process exists
    and the lock is held, so a pid file left by a killed master is stale,
    not "running". The lock descriptor is not inherited by children.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


def pid_path(cfg) -> Path:
    """The pid file of the master that serves cfg's queue_directory."""
    piddir = Path(cfg.process_id_directory) if _has(cfg, "process_id_directory") else Path("pid")
    if not piddir.is_absolute():
        piddir = cfg.path("queue_directory") / piddir
    return piddir / "master.pid"


def _has(cfg, name: str) -> bool:
    try:
        cfg[name]
    except (KeyError, AttributeError):
        return False
    return True


class PidFile:
    """The master's side: lock, write, and remove on a clean stop."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Lock the file; False when another master holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        # Postfix writes the pid right-aligned in a fixed-width field; readers strip it.
        os.write(fd, f"{os.getpid():>10}\n".encode())
        self._fd = fd
        return True

    def release(self, remove: bool = True) -> None:
        if self._fd is None:
            return
        if remove:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        os.close(self._fd)
        self._fd = None


def running(path: Path) -> int | None:
    """running - the pid of the live master that holds the pid file, else None."""
    try:
        text = path.read_text()
    except OSError:                                  # missing, unreadable, not a directory
        return None
    try:
        pid = int(text.strip())
    except ValueError:
        pid = None
    if pid is not None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass                                     # alive, another user's
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return pid                                   # locked: a master is running
    finally:
        os.close(fd)
    return None
