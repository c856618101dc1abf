"""qmgr - the queue manager (Postfix qmgr(8)).

SYNOPSIS
    master.cf:  qmgr  unix  n  -  n  300  1  qmgr

DESCRIPTION
    Solitary, in trigger mode: its socket is public/qmgr (private column
    n), where cleanup writes b"I" after each commit and the admin tools
    (postqueue -f, postsuper) write their requests; the master's wakeup
    writes b"W" every 300 seconds. The scheduler itself, which runs as the
    skeleton's loop, is mailsys.qmgr.manager: it moves entries from
    incoming (and due ones from deferred) into active, hands recipients to
    the delivery agents on private/<transport>, records their results,
    asks bounce (private/bounce) for notices, and removes finished entries.

    The queue store is opened once, after start-up, and closed after trio
    and its worker threads are gone (on_exit). Before it touches the queue,
    the scheduler takes $process_id_directory/qmgr.lock (mailsys.qmgr.lock),
    so the new generation a reload starts waits until the old one has
    finished its deliveries and exited.
"""

from __future__ import annotations

from pathlib import Path

import structlog

from mailsys.qmgr import lock
from mailsys.qmgr.agents import IpcAgents
from mailsys.qmgr.manager import QueueManager
from mailsys.qmgr.settings import Limits, QmgrSettings, routing_settings
from mailsys.queue import QueueStore
from mailsys.runtime import skeleton

log = structlog.get_logger()


def start(ctx: skeleton.ServiceContext) -> QueueManager:
    cfg = ctx.config
    queue_dir = cfg.path("queue_directory")
    # qmgr's commits (moves, retries, removals) may be undone by a power cut
    # until the next commit of any process: a retry or a second delivery,
    # never a loss (DESIGN.md contract 2). One flush per commit instead of
    # two keeps the shared writer lock free for cleanup's durable commits.
    store = QueueStore.open(queue_dir, metasync=False)
    return QueueManager(store, QmgrSettings.from_config(cfg, log), routing_settings(cfg),
                        lambda transport: Limits.from_config(cfg, transport, log),
                        IpcAgents(queue_dir, cfg.address_verify_service_name),
                        probe_routing=routing_settings(cfg, probe=True))


async def trigger(requests: frozenset[bytes], ctx: skeleton.ServiceContext) -> None:
    ctx.state.request(requests)


async def schedule(ctx: skeleton.ServiceContext) -> None:
    cfg = ctx.config
    pid_dir = Path(str(cfg.process_id_directory))
    if not pid_dir.is_absolute():
        pid_dir = cfg.path("queue_directory") / pid_dir
    # One qmgr per queue: a new generation waits for the old one to exit.
    fd = await lock.acquire(pid_dir / lock.LOCK_NAME)
    try:
        await ctx.state.run()
    finally:
        lock.release(fd)


def stop(ctx: skeleton.ServiceContext) -> None:
    if isinstance(ctx.state, QueueManager):
        ctx.state.store.close()


def main() -> None:
    skeleton.run("qmgr", trigger, mode="trigger", solitary=True, post_init=start,
                 loop=schedule, on_exit=stop)


if __name__ == "__main__":
    main()
