"""smtp - the outbound delivery agent (Postfix smtp(8)).

SYNOPSIS
    master.cf:  smtp    unix  -  -  n  -  -  smtp
                relay   unix  -  -  n  -  -  smtp

DESCRIPTION
    qmgr connects to $queue_directory/private/<transport> and sends
    DeliverRequest frames (protocol "deliver", mailsys.ipc.proto.deliver);
    for each one this daemon delivers the message to the request's next hop
    and answers one DeliveryStatus with a result for every recipient. The
    work is mailsys.runtime.smtp_agent's: MX lookup through dnspython
    ($dns_nameservers or resolv.conf), loop detection, connection to each
    MX host in turn, EHLO, STARTTLS per $smtp_tls_security_level,
    PIPELINING, per-stage timeouts, and a per-next-hop connection cache
    shared by every qmgr connection this process serves.

    The queue store is opened read-only in spirit: the agent loads the
    content and never changes an entry (qmgr owns every state change).
    Content up to INLINE_LOAD_MAX bytes is read in place; larger content in
    a worker thread, together with the other large loads that wait. Each
    recipient's result is logged here as Postfix's status line, tag
    $syslog_name/smtp.
"""

from __future__ import annotations

import trio

from mailsys.ipc.proto.deliver import PROTOCOL, DeliverRequest
from mailsys.queue.store import QueueStore
from mailsys.runtime import ipc_io, skeleton
from mailsys.runtime.batch_io import Batched
from mailsys.runtime.resolver import Resolver
from mailsys.runtime.smtp_agent import SmtpAgent, SmtpSettings, own_endpoints
from mailsys.runtime.smtp_client_io import ConnectionCache
from mailsys.runtime.smtp_tls import tls_policy

# Content up to this size is read on the trio thread: an LMDB read never
# waits for the writer, and the pages of a message cleanup has just written
# are in the page cache, where copying even 256 KB costs less than the
# hand-off to a worker thread and back (about 0.1 ms of CPU a message at
# 100 KB); should they have to come from disk, the other deliveries of
# this process wait a few ms. Larger content is read in a worker thread.
INLINE_LOAD_MAX = 256 * 1024


class _State:
    def __init__(self, ctx: skeleton.ServiceContext) -> None:
        cfg = ctx.config
        self.store = QueueStore.open(cfg.path("queue_directory"))
        settings = SmtpSettings.from_config(cfg, own=own_endpoints(cfg), tls=tls_policy(cfg))
        # The deliveries in flight read their content together: one worker
        # thread hop and one read transaction for all that wait.
        self.loads = Batched(self.store.load_contents)
        self.agent = SmtpAgent(settings, Resolver.from_config(cfg), self.load,
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
    if isinstance(ctx.state, _State):
        ctx.state.store.close()


def main() -> None:
    skeleton.run("smtp", handle, post_init=_State, loop=cache_sweeper, on_exit=close_store)


if __name__ == "__main__":
    main()
