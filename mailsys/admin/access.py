"""access - how the queue tools reach the queue, the master and qmgr.

SYNOPSIS
    from mailsys.admin import access
    qdir = access.queue_dir(config_dir)            # main.cf queue_directory
    with access.open_store(qdir) as store: ...     # None-safe: see below
    access.master_running(config_dir)              # pid file + kill(pid, 0)
    access.poke_qmgr(qdir, b"D")                   # True when qmgr took it
    access.poke_pickup(qdir)                       # the maildrop has mail

DESCRIPTION
    The admin tools read and change the queue through mailsys.queue, the
    same module the daemons use (DESIGN.md contract 3), and then poke qmgr
    with a trigger so it looks at the queue now rather than at its next
    timer. The trigger bytes are Postfix's QMGR_REQ_* requests
    (src/global/mail_proto.h): "I" scan incoming, "D" scan deferred, "A"
    ignore the deferred entries' retry time, "F" forget dead destinations,
    "W" wake up. Triggers are hints: a lost one costs latency, never mail,
    so poke_qmgr() reports failure and never raises.

    Unlike Postfix's postqueue, which asks the showq service for the listing
    and reads the queue itself (with a warning) only as root when the mail
    system is down, mailsys tools read the LMDB store directly at any time:
    the store is safe for concurrent readers, so no showq service exists.

    This is the only module of mailsys.admin that touches the file system,
    LMDB or sockets. A CLI needs no event loop for a one-byte trigger, so
    it uses a plain blocking AF_UNIX socket with a short timeout.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from mailsys.config import Config, load
from mailsys.queue import QueueStore
from mailsys.queue.schema import ENV_SUBDIR

QMGR_SERVICE = "qmgr"
PICKUP_SERVICE = "pickup"
PUBLIC_DIR = "public"
MASTER_PID_FILE = "master.pid"
# A local trigger is one connect and one write; anything slower is a qmgr
# that will not read it anyway.
TRIGGER_TIMEOUT = 2.0


def config(config_dir: Path) -> Config:
    return load(config_dir)


def queue_dir(cfg: Config) -> Path:
    return cfg.path("queue_directory")


def has_store(qdir: Path) -> bool:
    """Whether the queue store was ever created under qdir."""
    return (qdir / ENV_SUBDIR).is_dir()


@contextlib.contextmanager
def open_store(qdir: Path) -> Iterator[QueueStore | None]:
    """The queue store under qdir, or None when none was ever created (a
    system never started has an empty queue; a read-only tool must not
    create one)."""
    if not has_store(qdir):
        yield None
        return
    store = QueueStore.open(qdir)
    try:
        yield store
    finally:
        store.close()


def pid_dir(cfg: Config) -> Path:
    """process_id_directory, relative to queue_directory as in Postfix."""
    p = Path(str(cfg["process_id_directory"]))
    return p if p.is_absolute() else queue_dir(cfg) / p


def master_running(cfg: Config) -> bool:
    """Whether the master whose pid is in master.pid is alive."""
    try:
        pid = int((pid_dir(cfg) / MASTER_PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True              # alive, owned by another user
    return True


def qmgr_path(qdir: Path) -> Path:
    return qdir / PUBLIC_DIR / QMGR_SERVICE


def poke_qmgr(qdir: Path, request: bytes) -> bool:
    """Send the trigger bytes to qmgr's stream socket and close it (qmgr
    reads a trigger to end of file); whether they were delivered."""
    return _poke(qmgr_path(qdir), request)


def poke_pickup(qdir: Path) -> bool:
    """Tell the pickup service the maildrop has mail (services/pickup.py);
    whether the trigger was delivered."""
    return _poke(qdir / PUBLIC_DIR / PICKUP_SERVICE, b"W")


def _poke(path: Path, request: bytes) -> bool:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(TRIGGER_TIMEOUT)
    try:
        sock.connect(str(path))
        sock.sendall(request)
        return True
    except OSError:
        return False
    finally:
        sock.close()
