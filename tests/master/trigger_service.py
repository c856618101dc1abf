"""trigger_service - a trigger-mode service for the master's tests.

master.cf runs it by absolute path, e.g. with a 1-second wakeup:

    trig unix n - n 1 1 /abs/path/tests/master/trigger_service.py

Each run of the handler logs the coalesced requests it got, sorted:
"triggers: DFW". With the argument "loop" it also runs a loop that works
without clients, the way qmgr's scheduler does.
"""

import sys

import structlog
import trio

from mailsys.runtime import skeleton

log = structlog.get_logger()


async def handle(requests, ctx):
    log.info("triggers: " + b"".join(sorted(requests)).decode())


async def keep_working(ctx):
    while True:
        await trio.sleep(3600)


if __name__ == "__main__":
    skeleton.run("trigger", handle, mode="trigger", solitary=True,
                 loop=keep_working if "loop" in sys.argv[1:] else None)
