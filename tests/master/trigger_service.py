"""trigger_service - a trigger-mode service for the master's tests.

master.cf runs it by absolute path, e.g. with a 1-second wakeup:

    trig unix n - n 1 1 /abs/path/tests/master/trigger_service.py

Each run of the handler logs the coalesced requests it got, sorted:
"triggers: DFW".
"""

import structlog

from mailsys.runtime import skeleton

log = structlog.get_logger()


async def handle(requests, ctx):
    log.info("triggers: " + b"".join(sorted(requests)).decode())


if __name__ == "__main__":
    skeleton.run("trigger", handle, mode="trigger", solitary=True)
