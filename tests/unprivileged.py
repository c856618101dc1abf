"""unprivileged - run a piece of a test where file permissions bind.

Root ignores directory and file permissions, and CI runs the tests as root.
A test that needs "Permission denied" runs that piece with unprivileged():
in a forked child that became nobody when the tests run as root, directly
otherwise. The files it touches must be reachable by that user: make them
under open_directory() (pytest's tmp_path is closed to other users) and hand
them over with give_to_agent().
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

NOBODY = 65534

T = TypeVar("T")


def as_nobody(fn: Callable[[], T]) -> T:
    """fn() in a child process that runs as nobody; its result must pickle."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            out = ("ok", fn())
        except BaseException as e:       # noqa: BLE001 - reported to the parent
            out = ("error", repr(e))
        os.write(write, pickle.dumps(out))
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    kind, value = pickle.loads(data)
    assert kind == "ok", value
    return value


def unprivileged(fn: Callable[[], T]) -> T:
    """fn() where permissions bind: as nobody when the tests run as root."""
    return as_nobody(fn) if os.geteuid() == 0 else fn()


def give_to_agent(*paths: Path) -> None:
    """Hand paths to the user unprivileged() runs as (nobody, when root runs the tests)."""
    if os.geteuid() == 0:
        for p in paths:
            os.chown(p, NOBODY, NOBODY)


@contextlib.contextmanager
def open_directory(prefix: str) -> Iterator[Path]:
    """A fresh directory under /tmp that other users can reach; removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
