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
    postscreen does its DNS lookups itself (services/dnsblog and
    services/tlsproxy only tell whoever connects that they serve nothing).

BUGS
    The after-220 deep protocol tests (postscreen_pipelining_enable,
    postscreen_non_smtp_command_enable, postscreen_bare_newline_enable) are
    not implemented; their parameters are not read.
    STARTTLS inside postscreen's own dialogue is not offered (Postfix gets
    it from tlsproxy); a client that passes gets STARTTLS from smtpd as
    usual. postscreen_upstream_proxy_protocol, postscreen_allowlist_interfaces,
    postscreen_command_filter, postscreen_reject_footer and the cache's
    retention and cleanup are not implemented either.
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


def main() -> None:
    skeleton.run("postscreen", handle, post_init=setup, on_exit=close, solitary=True,
                 concurrency=CLIENTS)


if __name__ == "__main__":
    main()
