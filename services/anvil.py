"""anvil - connection and rate counters shared by every smtpd (Postfix anvil(8)).

SYNOPSIS
    master.cf:  anvil   unix  -  -  n  -  1  anvil

DESCRIPTION
    Serves protocol "anvil" (mailsys.ipc.proto.anvil) on
    $queue_directory/private/anvil. Each smtpd process keeps one channel
    open (mailsys.runtime.anvil_client) and asks:

      AnvilConnect     a client connected: concurrent count and connection rate
      AnvilDisconnect  it went away
      AnvilEvent       a MAIL, RCPT, new TLS session, AUTH (or the TLS rate
                       so far): that rate

    and gets AnvilCounts back. The counting is mailsys.policy.anvil.Anvil,
    per (master.cf service, client address) over anvil_rate_time_unit;
    smtpd compares the counts with its own limits.

    Each channel remembers the connections it registered. When a channel
    closes with connections still open (its smtpd died, or gave up on a
    slow reply and hung up), those are released, so a crashed smtpd never
    leaves its clients counted forever. A disconnect for a connection the
    channel did not register is ignored, so one smtpd cannot release
    another's.

    Every anvil_status_update_time, and when it stops, anvil logs the
    "statistics: max ..." lines for the maxima since the last ones
    (postfix-compat.md 4.5).

    Solitary (maxproc must be 1): two anvils would each see half the clients.
"""

from __future__ import annotations

from collections import Counter

import structlog
import trio

from mailsys.ipc.messages import ErrorCode, ErrorReply
from mailsys.ipc.proto import anvil as proto
from mailsys.policy.anvil import Anvil
from mailsys.runtime import ipc_io, skeleton

log = structlog.get_logger()

# Every smtpd process keeps one channel open for its lifetime, and several
# smtpd services (smtp, submission, ...) may each run default_process_limit
# (100) processes. A solitary anvil must hold them all: the skeleton's
# default of 100 clients per process would leave the 101st smtpd waiting
# in the backlog, running without limits.
MAX_CLIENTS = 4096

_EVENTS = {
    proto.MESSAGE: Anvil.message,
    proto.RECIPIENT: Anvil.recipient,
    proto.NEWTLS: Anvil.newtls,
    proto.NEWTLS_STATUS: Anvil.newtls_status,
    proto.AUTH: Anvil.auth,
}


class AnvilChannel:
    """One smtpd's channel: answers its requests, remembers its connections."""

    def __init__(self, counters: Anvil) -> None:
        self.counters = counters
        self.open: Counter[tuple[str, str]] = Counter()

    async def handle(self, msg: object) -> object:
        if isinstance(msg, proto.AnvilConnect):
            counts = self.counters.connect(msg.service, msg.addr)
            self.open[msg.service, msg.addr] += 1
            return proto.AnvilCounts(count=counts.count, rate=counts.rate)
        if isinstance(msg, proto.AnvilDisconnect):
            key = (msg.service, msg.addr)
            if self.open[key] > 0:
                self.open[key] -= 1
                self.counters.disconnect(msg.service, msg.addr)
            if not self.open[key]:
                del self.open[key]
            return proto.AnvilCounts()
        if isinstance(msg, proto.AnvilEvent):
            count = _EVENTS.get(msg.kind)
            if count is None:
                return ErrorReply(ErrorCode.PROTOCOL, f"unknown anvil event {msg.kind!r}")
            return proto.AnvilCounts(rate=count(self.counters, msg.service, msg.addr))
        return ErrorReply(ErrorCode.PROTOCOL, f"unexpected request {type(msg).__name__}")

    def release(self) -> None:
        """The channel closed: its connections that are still open end now."""
        for (service, addr), n in self.open.items():
            for _ in range(n):
                self.counters.disconnect(service, addr)
        self.open.clear()


async def serve_client(stream: trio.abc.Stream, ctx: skeleton.ServiceContext) -> None:
    channel = AnvilChannel(ctx.state)
    try:
        await ipc_io.serve(stream, channel.handle, protocol=proto.PROTOCOL)
    finally:
        channel.release()


def log_statistics(counters: Anvil) -> None:
    for line in counters.statistics():
        log.info(line)


async def statistics(ctx: skeleton.ServiceContext) -> None:
    """Log the statistics lines every anvil_status_update_time, and at exit."""
    try:
        while True:
            await trio.sleep(ctx.config.anvil_status_update_time)
            ctx.state.expire()
            log_statistics(ctx.state)
    finally:
        log_statistics(ctx.state)


def make_counters(ctx: skeleton.ServiceContext) -> Anvil:
    return Anvil(time_unit=int(ctx.config.anvil_rate_time_unit))


def main() -> None:
    skeleton.run("anvil", serve_client, solitary=True, concurrency=MAX_CLIENTS,
                 post_init=make_counters, loop=statistics)


if __name__ == "__main__":
    main()
