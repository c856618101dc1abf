"""pickup - queues the mail sendmail left in the maildrop (Postfix pickup(8)).

SYNOPSIS
    master.cf:  pickup    unix  n       -       n       -       1       pickup

DESCRIPTION
    sendmail leaves a message in $queue_directory/maildrop when it cannot
    reach cleanup, as when the mail system is stopped (mailsys.queue.
    maildrop). This service hands each such file to cleanup, oldest first,
    exactly as sendmail would have (the request is the one sendmail made:
    its queue ID, sender, recipients, uid and content), logs pickup's line
    "QID: uid=N from=<sender>" once cleanup has answered the connection,
    and removes the file once cleanup has queued the message.

    It runs on a trigger on public/pickup, any trigger byte: the master
    sends one when it has started and the maildrop is not empty,
    `postqueue -f` sends one, and so does sendmail after it left a file
    while the master runs. A master.cf line with a wakeup time (Postfix's
    "60") also scans the maildrop that often. Without a trigger it costs
    no process: the master starts it when a trigger arrives.

    When cleanup cannot be reached, the pass stops and the file stays for
    the next trigger. A file that holds no cleanup request, or a message
    cleanup refuses (header_checks REJECT, too big), cannot be queued as
    it is: it is moved to $queue_directory/corrupt/ with a warning, so
    that it neither blocks the rest nor vanishes (Postfix's pickup moves
    an unreadable file to corrupt/ the same way; for a refused message its
    cleanup returns a bounce to the sender instead).

    Solitary (maxproc 1): two processes would hand the same file over twice.
"""

from __future__ import annotations

from pathlib import Path

import structlog
import trio

from mailsys.ipc.errors import IpcError
from mailsys.ipc.proto.cleanup import CleanupRequest, Rejected
from mailsys.queue import maildrop
from mailsys.runtime import cleanup_client, skeleton

log = structlog.get_logger()


async def trigger(requests: frozenset[bytes], ctx: skeleton.ServiceContext) -> None:
    await pick_up(ctx.config)


async def pick_up(cfg) -> int:
    """pick_up - hand every file in the maildrop to cleanup; how many were queued."""
    queue_dir = Path(cfg.path("queue_directory"))
    queued = 0
    for path in await trio.to_thread.run_sync(maildrop.waiting, queue_dir):
        try:
            request = await trio.to_thread.run_sync(maildrop.read, path)
        except FileNotFoundError:
            continue
        except (maildrop.CorruptDrop, OSError) as e:
            _set_aside(queue_dir, path, f"{e}")
            continue
        try:
            reply = await cleanup_client.submit(
                cfg, request, on_connect=lambda r=request: _log_pickup(r))
        except IpcError as e:
            log.warning(f"{request.queue_id}: cannot hand the message to cleanup: {e}")
            return queued               # the file stays for the next trigger
        if isinstance(reply, Rejected):
            _set_aside(queue_dir, path, f"{request.queue_id}: cleanup refused the message: "
                                        f"{reply.code} {reply.enhanced} {reply.text}")
            continue
        path.unlink(missing_ok=True)
        queued += 1
    return queued


def _log_pickup(request: CleanupRequest) -> None:
    log.info("pickup", queue_id=request.queue_id, uid=request.uid, sender=request.sender)


def _set_aside(queue_dir: Path, path: Path, why: str) -> None:
    try:
        target = maildrop.set_aside(queue_dir, path)
    except OSError as e:
        log.warning(f"{why}; cannot move maildrop/{path.name} aside: {e}")
        return
    log.warning(f"{why}; moved to {target.parent.name}/{target.name}")


def main() -> None:
    skeleton.run("pickup", trigger, mode="trigger", solitary=True)


if __name__ == "__main__":
    main()
