"""smtpd - the SMTP server (Postfix smtpd(8)).

SYNOPSIS
    master.cf:  127.0.0.1:2525  inet  n  -  n  -  -  smtpd
                127.0.0.1:2587  inet  n  -  n  -  -  smtpd
                  -o syslog_name=mailsys/submission -o smtpd_tls_security_level=encrypt ...

DESCRIPTION
    Accepts SMTP clients on the listeners the master hands over and receives
    their mail into the queue: the ESMTP protocol is mailsys.smtp (sans-IO),
    the I/O loop mailsys.runtime.smtp_io, the per-session policy (anvil
    limits, restrictions, SASL, STARTTLS, the hand-off to cleanup)
    mailsys.runtime.smtpd_session. This module only wires them to the
    service skeleton.

    Everything that does not change per client is built once per process
    after the master started it (post_init): protocol settings from main.cf
    and the service's -o overrides, the compiled restriction lists, the TLS
    context, the SASL users file, the channels to anvil and cleanup
    (mailsys.runtime.smtpd_server).

    A client hears "250 2.0.0 Ok: queued as QID" only after cleanup
    answered that the entry is durably committed.

    One process serves up to CLIENTS_PER_PROCESS clients at once; the
    master starts another smtpd (up to the service's maxproc) only while
    every running one has that many in hand. A client costs an smtpd
    process a few kilobytes and little CPU between commands, while each
    further process costs about 10 MB of its own memory and, through its
    channels, can make the master start another cleanup too: at 200
    concurrent clients one process instead of two or three took the
    benchmark's summed private memory from 140 to 102 MB.
"""

from __future__ import annotations

import trio

from mailsys.runtime import skeleton
from mailsys.runtime.smtpd_server import SmtpdServer
from mailsys.runtime.smtpd_session import serve_client

CLIENTS_PER_PROCESS = 256


def setup(ctx: skeleton.ServiceContext) -> SmtpdServer:
    server = SmtpdServer.from_config(ctx.config, ctx.service)
    server.pregreet_check = ctx.type != "pass"
    return server


async def handle(stream: trio.abc.Stream, ctx: skeleton.ServiceContext) -> None:
    await serve_client(stream, ctx.state)


def main() -> None:
    skeleton.run("smtpd", handle, post_init=setup, concurrency=CLIENTS_PER_PROCESS,
                 nice=skeleton.MANY_CLIENTS_NICE)


if __name__ == "__main__":
    main()
