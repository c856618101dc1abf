"""Entry points for processes the queue tests spawn (multiprocessing
"spawn": each child opens the store itself, as daemons do)."""

from __future__ import annotations

import os
import time

from mailsys.message.envelope import Envelope, Recipient
from mailsys.queue import Queue, QueueStore


def _envelope(i: int) -> Envelope:
    return Envelope(queue_id="", sender=f"pid{os.getpid()}@example.com",
                    recipients=(Recipient(f"r{i}@example.org"),),
                    arrival_time=time.time(), size=10)


def write_many(queue_dir: str, n: int, start, results, metasync: bool = True) -> None:
    with QueueStore.open(queue_dir, metasync=metasync) as store:
        start.wait(30)
        qids = [store.create(_envelope(i), f"{os.getpid()}:{i}".encode()) for i in range(n)]
    results.put((os.getpid(), qids))


def create_then_wait(queue_dir: str, conn) -> None:
    store = QueueStore.open(queue_dir)
    qid = store.create(_envelope(0), b"must survive kill -9")
    conn.send(qid)
    time.sleep(60)


def move_then_wait(queue_dir: str, qid: str, conn) -> None:
    """As qmgr opens the store: one flush per commit."""
    store = QueueStore.open(queue_dir, metasync=False)
    store.move(qid, Queue.INCOMING, Queue.DEFERRED)
    conn.send("moved")
    time.sleep(60)


def hold_reader_then_wait(queue_dir: str, conn) -> None:
    store = QueueStore.open(queue_dir)
    txn = store._env.begin()          # a read transaction left open on purpose
    conn.send(txn.id())
    time.sleep(60)


def grow(queue_dir: str, map_size: int, n: int, size: int, conn) -> None:
    with QueueStore.open(queue_dir, map_size=map_size) as store:
        qids = [store.create(_envelope(i), bytes([i % 256]) * size) for i in range(n)]
        conn.send((qids, store.map_size()))


def write_past_file_size_limit(queue_dir: str, conn) -> None:
    """Writes with RLIMIT_FSIZE set: the kernel refuses pages past 1 MiB
    although the disk has room, as a failing disk would."""
    import resource
    import signal
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    from mailsys.errors import QueueError, QueueFull
    with QueueStore.open(queue_dir) as store:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
        created = []
        try:
            for i in range(100):
                created.append(store.create(_envelope(i), bytes([i]) * 40_000))
            conn.send(("no error", created))
        except QueueFull:
            conn.send(("QueueFull", created))
        except QueueError as e:
            conn.send((f"QueueError: {e}", created))


def write_until_killed(queue_dir: str, conn) -> None:
    """Creates large entries without end, reporting each committed ID."""
    with QueueStore.open(queue_dir) as store:
        for i in range(10**6):
            conn.send(store.create(_envelope(i), bytes([i % 256]) * 300_000))
