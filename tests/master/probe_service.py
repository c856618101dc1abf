"""probe_service - a stream service that tells how it was started, for the fork server's tests.

master.cf runs it by absolute path:

    127.0.0.1:PORT inet n - n - 2 /abs/path/tests/master/probe_service.py

What the process looked like before it did anything (descriptors, signal
state, argv, random numbers) is taken when the module starts, as the
first thing a service runs. With the master.cf argument "vanish" it exits 5 at once instead. A client
sends one line:

    info     one JSON line with that picture, pid, ppid and the collector's
             thresholds as the skeleton set them; the process
             stays busy with the client until it closes
    orphan   starts a process that outlives this one by 0.3 s, then exits 0
    exit     exits 0 at once
"""

import gc
import json
import os
import random
import sys

if "vanish" in sys.argv[1:]:
    os._exit(5)                       # gone before the master may even know the pid


def _open_fds() -> dict[int, str]:
    out = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            out[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            pass                      # the listing's own descriptor, closed by now
    return out


def _signal_state() -> dict[str, str]:
    with open("/proc/self/status") as f:
        return {k: v.strip() for k, _, v in (line.partition(":") for line in f)
                if k in ("SigBlk", "SigIgn", "SigCgt")}


PICTURE = {
    "fds": _open_fds(),
    "signals": _signal_state(),
    "argv": sys.argv,
    "orig_argv": sys.orig_argv,
    "name": __name__,
    "random": random.getrandbits(64),
    "forked": "services.postlogd" in sys.modules,   # preloaded by the fork server only
}

import structlog  # noqa: E402 - after the picture, which must see nothing of them

from mailsys.runtime import skeleton  # noqa: E402

log = structlog.get_logger()


async def probe(stream, ctx):
    line = b""
    async for data in stream:
        line += data
        if b"\n" in line:
            break
    command = line.strip().decode()
    if command == "info":
        await stream.send_all(json.dumps({**PICTURE, "pid": os.getpid(), "ppid": os.getppid(),
                                          "gc": gc.get_threshold()}).encode() + b"\n")
        async for _ in stream:
            pass                      # busy until the client closes (concurrency 1)
    elif command == "orphan":
        if os.fork() == 0:
            import time
            time.sleep(0.3)
            os._exit(0)
        os._exit(0)
    elif command == "exit":
        os._exit(0)


if __name__ == "__main__":
    skeleton.run("probe", probe, concurrency=1)
