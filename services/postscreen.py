"""postscreen - keep zombie spambots away from smtpd (Postfix postscreen(8)).

SYNOPSIS
    master.cf:
        smtp      inet  n       -       n       -       1       postscreen
        smtpd     pass  -       -       n       -       -       smtpd
        dnsblog   unix  -       -       n       -       0       dnsblog
        tlsproxy  unix  -       -       n       -       0       tlsproxy

DESCRIPTION
    One process (maxproc 1, as Postfix requires) accepts every SMTP client
    first. A client on postscreen_access_list's permit side, or one whose
    earlier passes are still cached, goes straight to smtpd; others are
    tested: do they talk before their turn (pregreet), are they on DNS
    block lists (postscreen_dnsbl_sites, looked up by this process
    itself). A client that passes is handed to the smtpd pass service as a
    file descriptor (mailsys.runtime.fd_pass), and smtpd serves it as if it
    had accepted it; one that fails is dropped (521) or held in a dummy SMTP
    dialogue that refuses every recipient (enforce), per test action. The
    logic lives in mailsys.runtime.postscreen_session (the connection),
    mailsys.runtime.postscreen_server (settings and counters),
    mailsys.runtime.postscreen_cache (the temporary allow list) and the
    pure mailsys.policy.postscreen_access, postscreen_dnsbl and
    postscreen_smtp.

    Postfix's dnsblog and tlsproxy entries are accepted: mailsys's
    postscreen does its DNS lookups and TLS handshakes itself
    (services/dnsblog and services/tlsproxy only tell whoever connects that
    they serve nothing).

    With postscreen_pipelining_enable, postscreen_non_smtp_command_enable
    or postscreen_bare_newline_enable, a new client also gets the "deep
    protocol tests" after the 220 greeting: postscreen's own SMTP engine
    (mailsys.policy.postscreen_smtp) talks to it up to RCPT, which it
    answers "450 4.3.2 Service currently unavailable", so that a client
    that passes comes back and is allowed then, from the cache.

    The process's loop cleans the cache every
    postscreen_cache_cleanup_interval (mailsys.runtime.postscreen_server).

    STARTTLS in that dialogue (postscreen_tls_security_level may or
    encrypt) is done by this process with smtpd's certificates, where
    Postfix hands the connection to tlsproxy; the tlsproxy entry of
    master.cf is accepted and unused.

    Behind a load balancer (postscreen_upstream_proxy_protocol = haproxy)
    the client is the one its PROXY header names, for the tests, the
    cache and the log, and smtpd is told so with the hand-over
    (mailsys.runtime.fd_pass).

BUGS
    postscreen has no stress mode of its own beyond the ${stress} defaults
    of its parameters.
"""

from __future__ import annotations

import trio

from mailsys.runtime import skeleton
from mailsys.runtime.postscreen_server import PostscreenServer
from mailsys.runtime.postscreen_session import screen

# Clients in hand at once: postscreen_pre_queue_limit and
# postscreen_post_queue_limit bound those being screened and handed over;
# this only bounds descriptors and memory of the one process.
CLIENTS = 4096


def setup(ctx: skeleton.ServiceContext) -> PostscreenServer:
    return PostscreenServer.from_config(ctx.config)


def close(ctx: skeleton.ServiceContext) -> None:
    if ctx.state is not None:
        ctx.state.close()


async def handle(stream: trio.abc.Stream, ctx: skeleton.ServiceContext) -> None:
    await screen(stream, ctx.state)


async def maintain(ctx: skeleton.ServiceContext) -> None:
    await ctx.state.cache_maintenance()


def main() -> None:
    skeleton.run("postscreen", handle, post_init=setup, loop=maintain, on_exit=close,
                 solitary=True, concurrency=CLIENTS)


if __name__ == "__main__":
    main()
