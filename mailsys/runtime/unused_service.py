"""unused_service - a master.cf entry accepted for Postfix compatibility that serves nothing.

SYNOPSIS
    unused_service.run("dnsblog", "postscreen does its DNS lookups itself")

DESCRIPTION
    Postfix leans on helper daemons that mailsys does without: postscreen's
    dnsblog and tlsproxy, and tlsmgr, proxymap, scache, showq,
    trivial-rewrite, and the error and discard agents, whose work mailsys's
    own daemons do in process. Their master.cf lines, as Postfix's stock
    master.cf has them, must still be accepted: each names a services
    module, and that module runs this. A unix service gets a process only
    when a client connects (mailsys.runtime.supervisor), so normally none
    ever starts. The master's wakeup (a "1000?" in the wakeup column) is
    taken without a word; whoever else connects is told why in the log and
    disconnected.
"""

from __future__ import annotations

import structlog
import trio

from mailsys.runtime import skeleton

log = structlog.get_logger()


# The master's wakeup trigger (mailsys.runtime.supervisor).
WAKEUP = b"W"


def run(program: str, why: str) -> None:
    async def handle(stream, ctx: skeleton.ServiceContext) -> None:
        with trio.move_on_after(1):
            if await stream.receive_some(64) == WAKEUP:
                return
        log.warning(f"{program}: not used by mailsys ({why}); closing the connection")
    skeleton.run(program, handle)
