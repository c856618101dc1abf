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

    Nobody waits for pickup's answer, so it asks cleanup to return a
    message it refuses for good (header_checks REJECT, message_size_limit,
    too many hops) to its sender, as Postfix's pickup asks its cleanup
    with CLEANUP_FLAG_BOUNCE: cleanup logs each recipient "QID:
    to=<rcpt>, relay=none, ..., dsn=5.7.1, status=bounced (message content
    rejected)" and queues the message for qmgr and bounce to send the
    sender a non-delivery notice with that reason (none for the null
    sender <>, unless notify_classes asks for a postmaster copy), then
    answers Queued, and the file is removed (services/cleanup). sendmail
    itself, which talks to cleanup while its user waits, still gets the
    refusal as an error.

    When cleanup cannot be reached, the pass stops and the file stays for
    the next trigger. A message cleanup refuses for now (4xx: an alias
    expansion error, "REJECT 4.x.x" in header_checks) stays too, with a
    warning, as Postfix's pickup keeps the file when its cleanup cannot
    bounce. A file that holds no cleanup request, or one cleanup cannot
    take at all (a bad queue ID, no recipients), cannot be queued: it is
    moved to $queue_directory/corrupt/ with a warning, so that it neither
    blocks the rest nor vanishes (Postfix's pickup deletes such a file).
    A file whose queue ID cleanup finds taken while the queue holds that
    entry was queued already, and had outlived its removal (a crash
    between cleanup's commit and the unlink): it is removed with a
    warning instead of being handed over again on every pass.

    Solitary (maxproc 1): two processes would hand the same file over twice.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import structlog
import trio

from mailsys.ipc.errors import IpcError, RemoteError
from mailsys.ipc.messages import ErrorCode
from mailsys.ipc.proto.cleanup import CleanupRequest, Rejected
from mailsys.queue import QueueStore, maildrop
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
        request = dataclasses.replace(request, bounce=True)
        try:
            reply = await cleanup_client.submit(
                cfg, request, on_connect=lambda r=request: _log_pickup(r))
        except RemoteError as e:
            if e.code == ErrorCode.PROTOCOL:
                # A request cleanup cannot take at all (a bad queue ID, no
                # recipients): it would stop every pass here.
                _set_aside(queue_dir, path, f"{request.queue_id}: cleanup cannot take it: {e}")
                continue
            if await trio.to_thread.run_sync(_queued, queue_dir, request.queue_id):
                _already_queued(request.queue_id, path)
                continue
            log.warning(f"{request.queue_id}: cannot hand the message to cleanup: {e}")
            return queued               # the file stays for the next trigger
        except IpcError as e:
            log.warning(f"{request.queue_id}: cannot hand the message to cleanup: {e}")
            return queued
        if isinstance(reply, Rejected):
            # Only a temporary refusal comes back: cleanup returned a
            # permanent one to the sender and answered Queued.
            log.warning(f"{request.queue_id}: cleanup refused the message for now: "
                        f"{reply.code} {reply.enhanced} {reply.text}; it stays in the maildrop")
            continue
        path.unlink(missing_ok=True)
        queued += 1
    return queued


def _queued(queue_dir: Path, qid: str) -> bool:
    """Whether the queue holds an entry with this queue ID."""
    with QueueStore.open(queue_dir) as store:
        return store.exists(qid)


def _already_queued(qid: str, path: Path) -> None:
    """cleanup refused a file's queue ID as taken, and the queue has it: the
    file outlived its removal after cleanup had queued it (pickup died
    between the two, or the system before the unlink reached the disk).
    Handing it over again would fail on every pass and hold up the newer
    files behind it; the message is in the queue, so the file goes."""
    log.warning(f"{qid}: already queued; removing {maildrop.MAILDROP}/{path.name}")
    path.unlink(missing_ok=True)


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
