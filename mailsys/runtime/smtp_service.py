"""smtp_service - the smtp and lmtp delivery agent processes (Postfix smtp(8), lmtp(8)).

SYNOPSIS
    smtp_service.run("smtp")        # services/smtp.py
    smtp_service.run("lmtp")        # services/lmtp.py

DESCRIPTION
    qmgr connects to $queue_directory/private/<transport> and sends
    DeliverRequest frames (protocol "deliver", mailsys.ipc.proto.deliver);
    for each one the process delivers the message to the request's next
    hop and answers one DeliveryStatus with a result for every recipient.
    The work is mailsys.runtime.smtp_agent's: next hop parsing, MX lookup
    through dnspython ($dns_nameservers or resolv.conf) for SMTP, loop
    detection, connection to each server in turn, EHLO or LHLO, STARTTLS
    per $smtp_tls_security_level and $smtp_tls_policy_maps (smtp_tls),
    SASL logins per $smtp_sasl_password_maps (smtp_sasl), PIPELINING,
    per-stage timeouts, and a
    per-next-hop connection cache shared by every qmgr connection this
    process serves.

    As in Postfix, one program serves both protocols and its name decides
    which: "lmtp" speaks LMTP and reads the lmtp_* parameters where "smtp"
    reads smtp_* (mailsys.config.client_program), whatever the master.cf
    service is called; the log tag is $syslog_name/<program>.

    The queue store is opened read-only in spirit: the agent loads the
    content and never changes an entry (qmgr owns every state change).
    Content up to INLINE_LOAD_MAX bytes is read in place; larger content in
    a worker thread, together with the other large loads that wait. Each
    recipient's result is logged here as Postfix's status line.
"""

from __future__ import annotations

import trio

from mailsys.config.client_program import client_config
from mailsys.ipc.proto.deliver import PROTOCOL, DeliverRequest
from mailsys.queue.store import QueueStore
from mailsys.runtime import ipc_io, skeleton
from mailsys.runtime.batch_io import Batched
from mailsys.runtime.resolver import Resolver
from mailsys.runtime.smtp_agent import SmtpAgent, SmtpSettings, own_endpoints
from mailsys.runtime.smtp_client_io import ConnectionCache
from mailsys.runtime.smtp_sasl import SaslSettings
from mailsys.runtime.smtp_tls import tls_policies, tls_policy

__all__ = ["AgentState", "INLINE_LOAD_MAX", "run"]

# Content up to this size is read on the trio thread: an LMDB read never
# waits for the writer, and the pages of a message cleanup has just written
# are in the page cache, where copying even 256 KB costs less than the
# hand-off to a worker thread and back (about 0.1 ms of CPU a message at
# 100 KB); should they have to come from disk, the other deliveries of
# this process wait a few ms. Larger content is read in a worker thread.
INLINE_LOAD_MAX = 256 * 1024


class AgentState:
    """What one smtp or lmtp process keeps: the store, the agent, its cache."""

    def __init__(self, ctx: skeleton.ServiceContext, program: str = "smtp") -> None:
        cfg = client_config(ctx.config, program)
        self.store = QueueStore.open(cfg.path("queue_directory"))
        own = own_endpoints(cfg) if program == "smtp" else ()
        tls = tls_policy(cfg, program=program)
        settings = SmtpSettings.from_config(cfg, own=own, tls=tls, program=program,
                                            tls_for=tls_policies(cfg, program, tls),
                                            sasl=SaslSettings.from_config(cfg, program))
        # The deliveries in flight read their content together: one worker
        # thread hop and one read transaction for all that wait.
        self.loads = Batched(self.store.load_contents)
        self.agent = SmtpAgent(settings, Resolver.from_config(cfg, program=program), self.load,
                               ConnectionCache(settings.cache_time_limit))

    async def load(self, queue_id: str) -> bytes:
        content = self.store.load_small_content(queue_id, INLINE_LOAD_MAX)
        if content is None:
            content = await self.loads.call(queue_id)
        return content


async def handle(stream: trio.abc.Stream, ctx: skeleton.ServiceContext) -> None:
    async def deliver(request: DeliverRequest):
        return await ctx.state.agent.deliver(request)
    await ipc_io.serve(stream, deliver, protocol=PROTOCOL)


async def cache_sweeper(ctx: skeleton.ServiceContext) -> None:
    await ctx.state.agent.cache.run()


def close_store(ctx: skeleton.ServiceContext) -> None:
    if isinstance(ctx.state, AgentState):
        ctx.state.store.close()


def run(program: str) -> None:
    """Run this process as the smtp or the lmtp program; never returns."""
    skeleton.run(program, handle, post_init=lambda ctx: AgentState(ctx, program),
                 loop=cache_sweeper, on_exit=close_store)
