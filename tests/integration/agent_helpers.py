"""agent_helpers - what the in-process delivery agent tests share.

Loaded by path from the test modules (the tests directories are not
packages): requests, an SmtpAgent on a loopback sink and a test DNS server,
log capture rendered as Postfix lines, and SinkThread, which serves an
SmtpSink from a thread for tests that drive a real master synchronously.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import structlog
import trio

from mailsys.ipc import names
from mailsys.ipc.proto.deliver import PROTOCOL, DeliverRecipient, DeliverRequest, DeliveryStatus
from mailsys.maillog import postfix
from mailsys.maillog.event import LogEvent
from mailsys.message.envelope import Envelope, Recipient
from mailsys.queue.store import QueueStore
from mailsys.runtime import ipc_io

HERE = Path(__file__).parent


def load(name: str, path: Path):
    """Import a helper file by path, once."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


dnsserver = load("mailsys_test_dnsserver", HERE.parent / "dnsserver.py")
smtpsink = load("mailsys_test_smtpsink", HERE / "smtpsink.py")

CONTENT = (b"From: alice@example.com\r\nTo: bob@example.org\r\nSubject: test\r\n\r\n"
           b"Hello.\r\n.leading dot\r\n")


def request(nexthop: str, *rcpts: str, qid: str = "4F2A1C3B7D", sender: str = "alice@example.com",
            transport: str = "smtp", address_class: str = "", **kw) -> DeliverRequest:
    now = time.time()
    return DeliverRequest(
        queue_id=qid, transport=transport, nexthop=nexthop, sender=sender,
        recipients=tuple(DeliverRecipient(i, r) for i, r in enumerate(rcpts or ("bob@example.org",))),
        arrival_time=kw.pop("arrival_time", now - 0.5), size=len(CONTENT),
        queued_at=kw.pop("queued_at", now - 0.2), address_class=address_class, **kw)


def lines(captured: list[dict], event: str | None = None) -> list[str]:
    """Captured structlog events as mail.log messages (after the tag)."""
    out = []
    for d in captured:
        d = dict(d)
        d.pop("log_level", None)
        if event is None or d.get("event") == event:
            out.append(postfix.message(LogEvent.from_event_dict(d, tag="mailsys/smtp", pid=1)))
    return out


capture_logs = structlog.testing.capture_logs


# -- driving daemons under a real master (the instance fixture) ---------------

def queue_message(inst, *rcpts: str, sender="alice@example.com", content=CONTENT) -> str:
    env = Envelope(queue_id="", sender=sender, recipients=tuple(Recipient(r) for r in rcpts),
                   arrival_time=time.time() - 1, size=len(content))
    with QueueStore.open(inst.queue_dir) as store:
        return store.create(env, content)


def request_for(qid: str, nexthop: str, *rcpts: str, **kw) -> DeliverRequest:
    """request() for an entry queued with queue_message()."""
    return request(nexthop, *rcpts, qid=qid, **kw)


async def call(inst, service: str, req: DeliverRequest) -> DeliveryStatus:
    path = names.private_path(inst.queue_dir, service)
    with trio.fail_after(20):
        while not path.exists():
            await trio.sleep(0.05)
    return await ipc_io.call(path, req, protocol=PROTOCOL, expect=DeliveryStatus, timeout=20)


# Served from a thread for sync tests: ``with SinkThread(sink) as port: ...``.
SinkThread = smtpsink.SinkThread
