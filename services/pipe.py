"""pipe - delivery to external commands (Postfix pipe(8)).

SYNOPSIS
    master.cf:
      dovecot   unix  -  n  n  -  -  pipe
        flags=DRhu user=vmail:vmail argv=/usr/lib/dovecot/deliver -f ${sender} -d ${recipient}
    main.cf:
      dovecot_destination_recipient_limit = 1
      virtual_transport = dovecot        (or transport_maps, content_filter, ...)

DESCRIPTION
    qmgr sends DeliverRequest frames (protocol "deliver") to
    $queue_directory/private/<service>, the master.cf name of the entry,
    as for any transport. For each request this daemon loads the message
    from the queue store (read only: qmgr owns every state change), runs
    the entry's command once for the request's recipients, as user=, with
    the message on its standard input (mailsys.delivery.pipe has the
    rules, mailsys.delivery.pipe_attr the attributes), logs every
    recipient as Postfix does

        QID: to=<bob@example.com>, relay=dovecot, delay=0.05,
             delays=0.01/0.01/0/0.03, dsn=2.0.0, status=sent (delivered via dovecot service)

    and answers one DeliveryStatus; each status first passes through
    pipe_delivery_status_filter (mailsys.delivery.status_filter). The
    command runs in a worker thread,
    so one process carries many deliveries at once; qmgr's
    <service>_destination_concurrency_limit bounds them per destination.

    The attributes are read once, when the process starts. An entry the
    agent cannot use (no user=, an unknown flag or macro, user=root, ...)
    is refused by `mailsys check`, `start` and `reload` with master.cf and
    its line; a user= this host has no account for is only a warning
    there, as Postfix starts with one. Should such an entry reach the
    daemon it logs Postfix's "fatal: missing user= command-line
    attribute" (or "fatal: get_service_attr: unknown username: vmail")
    and exits; the master throttles the service and the mail stays
    queued.

    Not done: the X flag is accepted, but a success notice (NOTIFY=SUCCESS)
    says "delivered" with or without it (Postfix says "relayed" without
    it); chroot= is ignored, as mailsys never chroots.

    Parameters: $<service>_time_limit (default $command_time_limit),
    export_environment, recipient_delimiter, queue_directory, mail_owner.
    The log tag is $syslog_name/pipe.
"""

from __future__ import annotations

import structlog
import trio

from mailsys.config.tables import open_table
from mailsys.delivery.pipe import PipeSettings, deliver_request
from mailsys.delivery.pipe_attr import PipeAttrError, parse_attributes
from mailsys.delivery.report import Stopwatch, deferred, log_status, sent
from mailsys.delivery.status_filter import StatusFilter
from mailsys.errors import ConfigError
from mailsys.ipc.proto.deliver import PROTOCOL, DeliverRequest, DeliveryStatus
from mailsys.queue.store import QueueStore
from mailsys.runtime import ipc_io, skeleton

log = structlog.get_logger()


class _State:
    def __init__(self, ctx: skeleton.ServiceContext) -> None:
        self.settings = settings_of(ctx)
        self.store = QueueStore.open(ctx.config.path("queue_directory"))
        cfg = ctx.config
        self.rewrite = StatusFilter.from_config(cfg, "pipe_delivery_status_filter",
                                                lambda spec: open_table(spec, cfg), log.warning)


def settings_of(ctx: skeleton.ServiceContext) -> PipeSettings:
    try:
        attr = parse_attributes(ctx.args, ctx.config.mail_owner)
    except PipeAttrError as e:
        raise ConfigError(str(e)) from None        # the skeleton logs it as "fatal:"
    return PipeSettings.from_config(ctx.config, ctx.service, attr)


def _note(note) -> None:
    (log.critical if note.level == "fatal" else log.warning)(note.text)


async def deliver(req: DeliverRequest, state: _State) -> DeliveryStatus:
    watch = Stopwatch.start(req)
    watch.connected()                  # no connection to set up: delays c is 0
    relay = state.settings.service
    if req.probe:
        # Address verification: the command is never run (Postfix pipe(8)
        # in trace-only mode says where the mail would go).
        results = [state.rewrite(sent(r, "delivers to command", relay=relay))
                   for r in req.recipients]
        for rcpt, result in zip(req.recipients, results):
            log_status(req, rcpt, result, watch)
        return DeliveryStatus(req.queue_id, tuple(results))
    try:
        content = await trio.to_thread.run_sync(state.store.load_content, req.queue_id)
    except Exception as e:             # gone or unreadable: qmgr decides what next
        results = [deferred(r, "4.3.0", f"error reading message: {e}", relay=relay)
                   for r in req.recipients]
        notes = ()
    else:
        done = await trio.to_thread.run_sync(deliver_request, req, content, state.settings)
        results, notes = done.results, done.notes
    results = [state.rewrite(r) for r in results]
    for note in notes:
        if not note.after:
            _note(note)
    for rcpt, result in zip(req.recipients, results):
        log_status(req, rcpt, result, watch)
    for note in notes:
        if note.after:
            _note(note)
    return DeliveryStatus(req.queue_id, tuple(results))


async def handle(stream: trio.abc.Stream, ctx: skeleton.ServiceContext) -> None:
    async def one(request: DeliverRequest) -> DeliveryStatus:
        return await deliver(request, ctx.state)
    await ipc_io.serve(stream, one, protocol=PROTOCOL)


def close_store(ctx: skeleton.ServiceContext) -> None:
    if isinstance(ctx.state, _State):
        ctx.state.store.close()


def main() -> None:
    skeleton.run("pipe", handle, post_init=_State, on_exit=close_store)


if __name__ == "__main__":
    main()
