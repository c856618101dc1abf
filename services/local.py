"""local - mailbox delivery for local and virtual recipients (Postfix local(8) and virtual(8)).

SYNOPSIS
    master.cf:  local    unix  -  n  n  -  -  local
                virtual  unix  -  n  n  -  -  local

DESCRIPTION
    qmgr sends DeliverRequest frames (protocol "deliver") to
    $queue_directory/private/local for mydestination users and to
    private/virtual for $virtual_mailbox_domains; this daemon serves both.
    For each request it loads the message from the queue store (read only:
    qmgr owns every state change), writes it into each recipient's Maildir
    or appends it to the recipient's mbox file under its locks
    (mailsys.delivery.local, in a worker thread because every file is
    fsynced and a locked mailbox is waited for), logs each recipient as
    Postfix does:

        QID: to=<bob@example.com>, relay=virtual, delay=0.08,
             delays=0.06/0.01/0/0.01, dsn=2.0.0, status=sent (delivered to maildir)
        QID: to=<bob@mx.example.com>, relay=local, delay=0.02,
             delays=0.01/0/0/0.01, dsn=2.0.0, status=sent (delivered to mailbox)

    and answers one DeliveryStatus. Mailbox locations and limits:
    virtual_mailbox_base + virtual_mailbox_maps (virtual_mailbox_limit,
    virtual_mailbox_lock) for virtual recipients; home_mailbox under the
    user's home, or $mail_spool_directory/user, for local ones
    (local_recipient_maps, mailbox_size_limit, mailbox_delivery_lock); a
    path ending in "/" is a Maildir, any other an mbox file; see
    mailsys.delivery.mailbox.

    texthash tables are read at start and again on SIGHUP (the master sends
    it on a reload that keeps this process); lmdb tables are reread when
    postmap replaces them.

    The log tag follows the master.cf service, as the Postfix program
    would: a service named "virtual" logs as $syslog_name/virtual, any
    other as $syslog_name/local.
"""

from __future__ import annotations

import sys

import trio

from mailsys.delivery.local import deliver_request
from mailsys.delivery.mailbox import MailboxSettings
from mailsys.delivery.report import Stopwatch, deferred, log_status
from mailsys.ipc.proto.deliver import PROTOCOL, DeliverRequest, DeliveryStatus
from mailsys.queue.store import QueueStore
from mailsys.runtime import ipc_io, skeleton
from mailsys.runtime.handoff import parse_argv


class _State:
    def __init__(self, ctx: skeleton.ServiceContext) -> None:
        self.store = QueueStore.open(ctx.config.path("queue_directory"))
        self.settings = MailboxSettings.from_config(ctx.config)


async def deliver(req: DeliverRequest, state: _State) -> DeliveryStatus:
    watch = Stopwatch.start(req)
    watch.connected()                  # no connection to set up: delays c is 0
    try:
        content = await trio.to_thread.run_sync(state.store.load_content, req.queue_id)
    except Exception as e:             # gone or unreadable: qmgr decides what next
        results = [deferred(r, "4.3.0", f"error reading message: {e}") for r in req.recipients]
    else:
        results = await trio.to_thread.run_sync(deliver_request, req, content, state.settings)
    for rcpt, result in zip(req.recipients, results):
        log_status(req, rcpt, result, watch)
    return DeliveryStatus(req.queue_id, tuple(results))


async def handle(stream: trio.abc.Stream, ctx: skeleton.ServiceContext) -> None:
    async def one(request: DeliverRequest) -> DeliveryStatus:
        return await deliver(request, ctx.state)
    await ipc_io.serve(stream, one, protocol=PROTOCOL)


def reopen_tables(ctx: skeleton.ServiceContext) -> None:
    """SIGHUP (a reload that keeps this process): read the mailbox tables again."""
    ctx.state.settings = MailboxSettings.from_config(ctx.config)


def close_store(ctx: skeleton.ServiceContext) -> None:
    if isinstance(ctx.state, _State):
        ctx.state.store.close()


def program_name(argv: list[str]) -> str:
    """"virtual" for the master.cf service named virtual, else "local"."""
    try:
        return "virtual" if parse_argv(argv).service == "virtual" else "local"
    except (SystemExit, ValueError):
        return "local"


def main() -> None:
    skeleton.run(program_name(sys.argv[1:]), handle, post_init=_State, on_reload=reopen_tables,
                 on_exit=close_store)


if __name__ == "__main__":
    main()
