"""flush - the fast flush service: ETRN's deferred mail for one site (Postfix flush(8)).

SYNOPSIS
    master.cf:  flush     unix  n       -       n       -       0       flush

DESCRIPTION
    Serves protocol "flush" (mailsys.ipc.proto.flush) on
    $queue_directory/public/$flush_service_name. smtpd asks it for
    "ETRN site" with FlushSite(site), and it answers:

      BAD    the site is not a domain name (or an address literal)
      DENY   the site is not one of $fast_flush_domains (default
             $relay_domains): smtpd says "459 <site>: service unavailable"
      OK     every deferred entry with an undelivered recipient at the
             site is made due now, and qmgr is told to forget dead
             destinations and scan the deferred queue ("FD"), as
             Postfix's flush service has its qmgr do for the site's log

    Postfix keeps a log per site of the mail deferred for it; mailsys
    reads the deferred queue instead (mailsys.admin.flush, the same code
    as postqueue -s, which also takes its BAD/DENY/OK decision from
    there), in a worker thread.
"""

from __future__ import annotations

from pathlib import Path

import structlog
import trio

from mailsys.admin.flush import fast_flush_matcher, make_due, site_entries, site_status
from mailsys.ipc import names
from mailsys.ipc.messages import ErrorCode, ErrorReply
from mailsys.ipc.proto import flush as proto
from mailsys.queue import QueueStore
from mailsys.runtime import ipc_io, skeleton, store_io
from mailsys.runtime.ipc_io import serve

log = structlog.get_logger()

# The qmgr requests of a site flush: forget dead destinations, scan deferred.
FLUSH_TRIGGER = names.QMGR_REQ_FLUSH_DEAD + names.QMGR_REQ_SCAN_DEFERRED
TRIGGER_TIMEOUT = 5.0


class Flusher:
    """fast_flush_domains and the queue; one per process."""

    def __init__(self, cfg) -> None:
        self.domains = fast_flush_matcher(cfg)
        self.queue_dir = Path(cfg.path("queue_directory"))

    async def handle(self, msg: object) -> object:
        if not isinstance(msg, proto.FlushSite):
            return ErrorReply(ErrorCode.PROTOCOL, f"unexpected request {type(msg).__name__}")
        site = msg.site
        status = site_status(site, self.domains)
        if status != proto.OK:
            return proto.FlushStatus(status)
        await store_io.run(self.flush, site)
        await ipc_io.send_trigger(names.public_path(self.queue_dir, names.QMGR), FLUSH_TRIGGER,
                                  timeout=TRIGGER_TIMEOUT)
        return proto.FlushStatus(proto.OK)

    def flush(self, site: str) -> int:
        with QueueStore.open(self.queue_dir) as store:
            return make_due(store, site_entries(store, site))


async def serve_client(stream: trio.abc.Stream, ctx: skeleton.ServiceContext) -> None:
    await serve(stream, ctx.state.handle, protocol=proto.PROTOCOL)


def start(ctx: skeleton.ServiceContext) -> Flusher:
    return Flusher(ctx.config)


def main() -> None:
    skeleton.run("flush", serve_client, concurrency=64, post_init=start)


if __name__ == "__main__":
    main()
