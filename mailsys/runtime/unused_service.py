"""unused_service - a master.cf entry accepted for Postfix compatibility that serves nothing.

SYNOPSIS
    unused_service.run("dnsblog", "postscreen does its DNS lookups itself")

DESCRIPTION
    Postfix's postscreen leans on helper daemons that mailsys's postscreen
    does without (dnsblog for DNSBL lookups, tlsproxy for STARTTLS in its
    own dialogue). Their master.cf lines, as a Postfix admin writes them,
    must still be accepted: each names a services module, and that module
    runs this. A unix service gets a process only when a client connects
    (mailsys.runtime.supervisor), so normally none ever starts; whoever
    does connect is told why in the log and disconnected.
"""

from __future__ import annotations

import structlog

from mailsys.runtime import skeleton

log = structlog.get_logger()


def run(program: str, why: str) -> None:
    async def handle(stream, ctx: skeleton.ServiceContext) -> None:
        log.warning(f"{program}: not used by mailsys ({why}); closing the connection")
    skeleton.run(program, handle)
