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

    and answers one DeliveryStatus.

    Local recipients go through $alias_maps first (mailsys.delivery.aliases
    has Postfix's rules). An address the expansion forwards goes out as a
    new message: this daemon submits it to cleanup (mailsys.runtime.
    cleanup_client) with the sender of the alias (the original sender, or
    owner-NAME@$myorigin), ``Delivered-To: <recipient>`` in front of the
    original content, and cleanup's ``Received: by host (mailsys)``; one
    message per recipient, Delivered-To address and sender, as Postfix's
    forward.c groups them. Only once cleanup has answered Queued (the new
    entry is committed) is the recipient logged and reported

        QID: to=<list@example.com>, relay=local, delay=0.02,
             delays=0.01/0/0/0.01, dsn=2.0.0, status=sent (forwarded as NEWQID)

    so a crash in between forwards twice rather than never (DESIGN.md
    contract 2). A recipient any of whose pieces was deferred forwards
    nothing this time (Postfix cancels its forward too): the retry does it
    all again. cleanup unreachable defers the recipient (4.3.0); a copy
    cleanup refuses bounces or defers as cleanup's reply code says.

    Mailbox locations and limits:
    virtual_mailbox_base + virtual_mailbox_maps (virtual_mailbox_limit,
    virtual_mailbox_lock) for virtual recipients; home_mailbox under the
    user's home, or $mail_spool_directory/user, for local ones
    (local_recipient_maps, mailbox_size_limit, mailbox_delivery_lock); a
    path ending in "/" is a Maildir, any other an mbox file; see
    mailsys.delivery.mailbox.

    Each status this agent gives passes through local_delivery_status_filter
    (virtual_delivery_status_filter for relay=virtual) before it is logged
    and reported (mailsys.delivery.status_filter).

    texthash tables are read at start and again on SIGHUP (the master sends
    it on a reload that keeps this process); lmdb tables are reread when
    postmap replaces them.

    The log tag follows the master.cf service, as the Postfix program
    would: a service named "virtual" logs as $syslog_name/virtual, any
    other as $syslog_name/local.
"""

from __future__ import annotations

import dataclasses
import sys
import time

import structlog
import trio

from mailsys.config import Config
from mailsys.config.tables import open_table
from mailsys.delivery.aliases import AliasSettings, Forward, split_local
from mailsys.delivery.local import RecipientPlan, combine, mailbox_known, plan_request, relay_name
from mailsys.delivery.mailbox import MailboxError, MailboxSettings, find_mailbox
from mailsys.delivery.report import Stopwatch, bounced, deferred, failed, log_status, sent
from mailsys.delivery.status_filter import StatusFilter
from mailsys.ipc import names
from mailsys.ipc.errors import IpcError
from mailsys.ipc.proto.cleanup import CleanupRecipient, CleanupRequest, Rejected
from mailsys.ipc.proto.deliver import (DEFERRED, PROTOCOL, DeliverRecipient, DeliverRequest,
                                       DeliveryStatus, RecipientResult)
from mailsys.message.qid import new_qid
from mailsys.qmgr.settings import routing_settings
from mailsys.queue.store import QueueStore
from mailsys.routing import BAD_SYNTAX, AddressClass, first_lookup, resolve, split_transport
from mailsys.runtime import cleanup_client, ipc_io, skeleton
from mailsys.runtime.handoff import parse_argv

log = structlog.get_logger()


def _warn(text: str) -> None:
    log.warning(text)


def status_filters(cfg: Config) -> dict[str, StatusFilter]:
    """local_ and virtual_delivery_status_filter, by relay name: the
    statuses this agent gives (not those of an agent it passed mail to)."""
    return {relay: StatusFilter.from_config(cfg, f"{relay}_delivery_status_filter",
                                            lambda spec: open_table(spec, cfg), _warn)
            for relay in ("local", "virtual")}


def alias_settings(cfg: Config) -> AliasSettings:
    return AliasSettings.from_config(cfg, lambda address: False, _warn, fatal=log.critical)


class _State:
    def __init__(self, ctx: skeleton.ServiceContext) -> None:
        self.cfg = ctx.config
        self.store = QueueStore.open(ctx.config.path("queue_directory"))
        self.settings = MailboxSettings.from_config(ctx.config, warn=_warn)
        self.aliases = alias_settings(ctx.config)
        self.routes = routing_settings(ctx.config)
        self.filters = status_filters(ctx.config)

    def aliases_for(self, transport: str) -> AliasSettings:
        """An expanded address is delivered here again when it resolves to this
        very service (Postfix's resolve.c compares the transport names)."""
        routes = self.routes

        def is_here(address: str) -> bool:
            route = resolve(address, routes)
            return route.address_class is AddressClass.LOCAL and route.transport == transport
        a, settings = self.aliases, self.settings
        strict = bool(a.fallback_transport or a.fallback_transport_maps or a.luser_relay)
        return dataclasses.replace(
            a, is_here=is_here, bad_syntax=lambda address: resolve(address, routes) == BAD_SYNTAX,
            knows=lambda address: mailbox_known(address, settings, strict))


def probe(req: DeliverRequest, rcpt: DeliverRecipient, state: _State) -> RecipientResult:
    """An address verification probe's verdict, nothing delivered, in the
    words of Postfix local(8) in trace-only mode: an alias is "aliased to
    <value>" (what it expands to is not checked further), an address with
    a mailbox "delivers to mailbox", anyone else what delivery would say
    (5.1.1 'unknown user: "x"'). XXX a name without a password entry has a
    spool mailbox in mailsys (see mailsys.delivery.local), so it is
    deliverable here where Postfix says unknown user."""
    local, user, *_ = split_local(rcpt.address, state.settings.recipient_delimiter)
    relay = relay_name(req)
    alias = first_lookup(state.aliases.maps, (local, user)) \
        if req.address_class != "virtual" else None
    if alias is not None:
        return sent(rcpt, f"aliased to {alias.strip()}", relay=relay)
    try:
        find_mailbox(rcpt.address, req.address_class or "local", state.settings)
    except MailboxError as e:
        return failed(rcpt, e.dsn, e.text, relay=relay)
    return sent(rcpt, "delivers to mailbox", relay=relay)


async def deliver(req: DeliverRequest, state: _State) -> DeliveryStatus:
    watch = Stopwatch.start(req)
    watch.connected()                  # no connection to set up: delays c is 0
    rewrite = state.filters[relay_name(req)]
    if req.probe:
        results = [rewrite(await trio.to_thread.run_sync(probe, req, r, state))
                   for r in req.recipients]
        for rcpt, result in zip(req.recipients, results):
            log_status(req, rcpt, result, watch)
        return DeliveryStatus(req.queue_id, tuple(results))
    try:
        content = await trio.to_thread.run_sync(state.store.load_content, req.queue_id)
    except Exception as e:             # gone or unreadable: qmgr decides what next
        results = [rewrite(deferred(r, "4.3.0", f"error reading message: {e}"))
                   for r in req.recipients]
        for rcpt, result in zip(req.recipients, results):
            log_status(req, rcpt, result, watch)
        return DeliveryStatus(req.queue_id, tuple(results))
    aliases = state.aliases_for(req.transport)
    plans = await trio.to_thread.run_sync(plan_request, req, content, state.settings, aliases)
    results = []
    for plan in plans:
        plan = dataclasses.replace(plan, parts=tuple((w, rewrite(r)) for w, r in plan.parts))
        handed, unanswered = await hand_over(req, plan, state.cfg)
        unanswered = tuple((w, rewrite(r)) for w, r in unanswered)
        cancel = any(r.status == DEFERRED for _, r in handed + unanswered)
        extra = tuple((w, rewrite(r)) for w, r in
                      await forward(req, plan, content, state.cfg, cancel=cancel))
        for who, result in plan.parts + unanswered + extra:
            log_status(req, who, result, watch)
        results.append(combine(plan, handed + unanswered + extra))
    return DeliveryStatus(req.queue_id, tuple(results))


async def hand_over(req: DeliverRequest, plan: RecipientPlan, cfg: Config
                    ) -> tuple[tuple, tuple]:
    """Pass the recipient to mailbox_transport / fallback_transport, as
    Postfix's deliver_pass() does: that agent delivers and logs; its results,
    and the lines for agents that did not answer (logged here)."""
    handed, unanswered = [], []
    for p in plan.passes:
        name, nexthop = split_transport(p.transport)
        t = p.target
        who = DeliverRecipient(plan.rcpt.index, t.address, orig=t.orig, orcpt=t.orcpt,
                               notify=t.notify)
        request = dataclasses.replace(req, transport=name, nexthop=nexthop or req.nexthop,
                                      sender=t.sender, recipients=(who,), address_class="")
        path = names.private_path(cfg.path("queue_directory"), name)
        try:
            status = await ipc_io.call(path, request, protocol=PROTOCOL, expect=DeliveryStatus,
                                       timeout=cfg.ipc_timeout)
            [result] = [r for r in status.results if r.index == who.index][:1]
        except (IpcError, ValueError) as e:
            log.warning(f"{name} transport: {e}", queue_id=req.queue_id)
            unanswered.append((who, deferred(who, "4.3.0", "mail transport unavailable",
                                             relay="local")))
            continue
        handed.append((who, result))
    return tuple(handed), tuple(unanswered)


async def forward(req: DeliverRequest, plan: RecipientPlan, content: bytes, cfg: Config,
                  cancel: bool = False) -> tuple:
    """Submit the recipient's forwarded copies; the lines that report them.
    Nothing is forwarded when a piece of the recipient was deferred."""
    if not plan.forwards or plan.deferred or cancel:
        return ()
    groups: dict[tuple[str, str], list[Forward]] = {}
    for f in plan.forwards:
        groups.setdefault((f.target.delivered.lower(), f.target.sender), []).append(f)
    rcpt = plan.rcpt
    lines = []
    for (delivered, sender), members in groups.items():
        result = await _submit_copy(req, rcpt, delivered, sender, members, content, cfg)
        lines.append((rcpt, result))
    return tuple(lines)


async def _submit_copy(req: DeliverRequest, rcpt, delivered: str, sender: str,
                       members: list[Forward], content: bytes, cfg: Config) -> RecipientResult:
    eol = b"\r\n" if b"\r\n" in content[:content.find(b"\n") + 1 or len(content)] else b"\n"
    reset = any(f.target.envid_reset for f in members)
    # prepend_delivered_header without "forward": the copy goes as it came.
    prepend = b"Delivered-To: " + delivered.encode("utf-8", "surrogateescape") + eol \
        if "forward" in cfg.prepend_delivered_header else b""
    request = CleanupRequest(
        queue_id=new_qid(), sender=sender,
        recipients=tuple(CleanupRecipient(f.target.address, orcpt=f.target.orcpt,
                                          notify=f.target.notify, orig=f.target.orig)
                         for f in members),
        content=prepend + content,
        arrival_time=time.time(), origin="local", protocol=req.client_protocol or "local",
        client_name=req.client_name, client_addr=req.client_addr, helo=req.client_helo,
        sasl_method=req.sasl_method, sasl_user=req.sasl_user,
        envid="" if reset else req.envid, ret="" if reset else req.ret,
        body_type=req.body_type, smtputf8=req.smtputf8)
    try:
        reply = await cleanup_client.submit(cfg, request)
    except IpcError as e:
        log.warning(f"cannot forward message: {e}", queue_id=req.queue_id)
        return deferred(rcpt, "4.3.0", f"cannot forward message: {e}", relay="local")
    if isinstance(reply, Rejected):
        status = bounced if reply.code >= 500 else deferred
        return status(rcpt, reply.enhanced, reply.text, relay="local")
    return sent(rcpt, f"forwarded as {reply.queue_id}", relay="local")


async def handle(stream: trio.abc.Stream, ctx: skeleton.ServiceContext) -> None:
    async def one(request: DeliverRequest) -> DeliveryStatus:
        return await deliver(request, ctx.state)
    await ipc_io.serve(stream, one, protocol=PROTOCOL)


def reopen_tables(ctx: skeleton.ServiceContext) -> None:
    """SIGHUP (a reload that keeps this process): read the mailbox tables again."""
    ctx.state.cfg = ctx.config
    ctx.state.settings = MailboxSettings.from_config(ctx.config, warn=_warn)
    ctx.state.aliases = alias_settings(ctx.config)
    ctx.state.routes = routing_settings(ctx.config)
    ctx.state.filters = status_filters(ctx.config)


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
