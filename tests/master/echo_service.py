"""echo_service - a small stream service for the master's tests.

master.cf runs it by absolute path:

    127.0.0.1:PORT inet n - n - 2 /abs/path/tests/master/echo_service.py [ARGS]

It echoes every byte back, except b"stress?", answered with the
process's $stress ("yes" in stress mode, "-" otherwise). Data starting
with b"boom" makes the handler raise (the skeleton must log it and close only that connection). ARGS:
"crash" exits 3 before the service is ready (a bad command start-up);
"concurrency=N" sets the per-process client limit. The exit hook logs
"SERVICE: done".
"""

import sys

import structlog

from mailsys.runtime import skeleton

log = structlog.get_logger()


async def echo(stream, ctx):
    async for data in stream:
        if data.startswith(b"boom"):
            raise RuntimeError("boom requested by the client")
        if data == b"stress?":
            data = (ctx.config.stress or "-").encode()
        await stream.send_all(data)


def pre_init(ctx):
    if "crash" in ctx.args:
        sys.exit(3)


def on_exit(ctx):
    log.info(f"{ctx.service}: done")


def concurrency(argv):
    for arg in argv:
        if arg.startswith("concurrency="):
            return int(arg.split("=", 1)[1])
    return skeleton.DEFAULT_CONCURRENCY


if __name__ == "__main__":
    skeleton.run("echo", echo, pre_init=pre_init, on_exit=on_exit,
                 concurrency=concurrency(sys.argv))
