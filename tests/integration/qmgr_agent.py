"""qmgr_agent - a delivery agent for the qmgr and bounce integration tests.

master.cf runs it by absolute path in place of a real agent:

    smtp  unix  -  -  n  -  -  /abs/path/tests/integration/qmgr_agent.py CONTROL_DIR

It answers each DeliverRequest per recipient, by the recipient's local part
and by files in CONTROL_DIR:

    bounce*      bounced, 5.1.1, as a remote SMTP server's 550 reads
    defer*       deferred, 4.2.1, while CONTROL_DIR/defer exists; else sent
    anything     sent (250 2.0.0 Ok)

While CONTROL_DIR/hold exists, a request waits before it is answered.
Each recipient sent is appended to CONTROL_DIR/delivered as one JSON line
{"qid", "rcpt", "sender"}, and the message content is written to
CONTROL_DIR/<qid>.eml (read from the queue store, as real agents do).
Every result is logged as the agents log it (the "status" event).
"""

import json
import time
from pathlib import Path

import structlog
import trio

from mailsys.ipc.proto import deliver as proto
from mailsys.ipc.proto.deliver import DeliveryStatus, RecipientResult
from mailsys.queue import QueueStore
from mailsys.runtime import ipc_io, skeleton, store_io

log = structlog.get_logger()

REMOTE = "mx.remote.example[192.0.2.1]:25"


def start(ctx):
    return Path(ctx.args[0]), QueueStore.open(ctx.config.path("queue_directory"))


def result(control: Path, index: int, address: str) -> RecipientResult:
    local = address.partition("@")[0]
    if local.startswith("bounce"):
        return RecipientResult(
            index, proto.BOUNCED, "5.1.1",
            f"host mx.remote.example[192.0.2.1] said: 550 5.1.1 <{address}>: Recipient "
            f"address rejected: User unknown (in reply to RCPT TO command)",
            relay=REMOTE, remote_mta="mx.remote.example",
            diagnostic=f"smtp; 550 5.1.1 <{address}>: Recipient address rejected: User unknown")
    if local.startswith("defer") and (control / "defer").exists():
        return RecipientResult(index, proto.DEFERRED, "4.2.1",
                               "host mx.remote.example[192.0.2.1] said: 450 4.2.1 try again "
                               "later (in reply to RCPT TO command)",
                               relay=REMOTE, remote_mta="mx.remote.example")
    return RecipientResult(index, proto.SENT, "2.0.0", "250 2.0.0 Ok", relay=REMOTE)


async def handle(stream, ctx):
    control, store = ctx.state

    async def answer(req):
        while (control / "hold").exists():
            await trio.sleep(0.05)
        results = tuple(result(control, r.index, r.address) for r in req.recipients)
        content = await store_io.run(store.load_content, req.queue_id)
        now = time.time()
        for r, res in zip(req.recipients, results):
            log.info("status", queue_id=req.queue_id, to=r.address, relay=res.relay,
                     delay=now - req.arrival_time, delays=[0, 0, 0, 0], dsn=res.dsn,
                     status=res.status, reason=res.reason)
            if res.status == proto.SENT:
                (control / f"{req.queue_id}.eml").write_bytes(content)
                with open(control / "delivered", "a") as f:
                    f.write(json.dumps({"qid": req.queue_id, "rcpt": r.address,
                                        "sender": req.sender}) + "\n")
        return DeliveryStatus(req.queue_id, results)

    await ipc_io.serve(stream, answer, protocol=proto.PROTOCOL)


def stop(ctx):
    if isinstance(ctx.state, tuple):
        ctx.state[1].close()


if __name__ == "__main__":
    skeleton.run("smtp", handle, post_init=start, on_exit=stop)
