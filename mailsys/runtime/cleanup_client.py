"""cleanup_client - hand one message to the cleanup service (Postfix's mail_connect to cleanup).

SYNOPSIS
    reply = await submit(cfg, CleanupRequest(...))        # Queued or Rejected
    reply = await submit(cfg, request, on_connect=log_pickup_line)

DESCRIPTION
    What the sendmail command and the local agent's forwarding share: find
    the cleanup socket ($queue_directory/private/cleanup, or public/cleanup
    when a master.cf copied from Postfix says "cleanup unix n"), connect
    with protocol "cleanup", send one CleanupRequest and wait for the
    answer, all under $ipc_timeout. Queued means the entry is committed to
    the queue (DESIGN.md contract 1); Rejected is cleanup's refusal of the
    content. Raises mailsys.ipc.errors.IpcError subclasses (unavailable,
    timeout, a remote ErrorReply) as ipc_io does.

    on_connect runs once cleanup has answered the connection and before
    the request is sent: sendmail logs pickup's line there, which must come
    before qmgr's "from=" line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import trio

from mailsys.ipc import names
from mailsys.ipc.proto.cleanup import CleanupRequest, Queued, Rejected
from mailsys.runtime import ipc_io

__all__ = ["cleanup_path", "submit"]


def cleanup_path(cfg) -> Path:
    queue_dir = cfg.path("queue_directory")
    path = names.private_path(queue_dir, names.CLEANUP)
    public = names.public_path(queue_dir, names.CLEANUP)
    # A master.cf copied from Postfix says "cleanup unix n": then it is public.
    return public if not path.exists() and public.exists() else path


async def submit(cfg, request: CleanupRequest, *,
                 on_connect: Callable[[], None] | None = None) -> Queued | Rejected:
    timeout = cfg.ipc_timeout
    deadline = trio.current_time() + timeout
    async with await ipc_io.connect(cleanup_path(cfg), protocol="cleanup",
                                    timeout=timeout) as chan:
        if on_connect is not None:
            on_connect()
        return await chan.call(request, expect=(Queued, Rejected),
                               timeout=max(0.0, deadline - trio.current_time()))
