"""qmgr_helpers - what the qmgr integration tests share (loaded by path).

inject() queues an entry in incoming as cleanup does and pokes qmgr;
entry() reads one back, or (None, None) once it has left the queue.
"""

from __future__ import annotations

import time

from mailsys.admin import access
from mailsys.message.envelope import Envelope, Recipient
from mailsys.queue import QueueStore


def inject(inst, content: bytes, *rcpts: str, sender: str = "alice@example.com",
           notify: tuple = ()) -> str:
    env = Envelope("", sender, tuple(Recipient(r, notify=notify) for r in rcpts),
                   arrival_time=time.time(), size=len(content))
    with QueueStore.open(inst.queue_dir) as store:
        qid = store.create(env, content)
    access.poke_qmgr(inst.queue_dir, b"I")
    return qid


def entry(inst, qid: str):
    with QueueStore.open(inst.queue_dir) as store:
        return store.load(qid) if store.exists(qid) else (None, None)
