"""The smtp and local agents as daemons under a real master, driven over their sockets."""

from __future__ import annotations

import runpy
import os
import re
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio

from mailsys.ipc import names
from mailsys.ipc.proto.deliver import PROTOCOL, DeliverRecipient, DeliverRequest, DeliveryStatus
from mailsys.message.envelope import Envelope, Recipient
from mailsys.queue.store import QueueStore
from mailsys.runtime import ipc_io

# The tests directories are not packages: the shared helpers are loaded by path.
h = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("agent_helpers.py"))))

pytestmark = pytest.mark.integration

SMTP = "smtp unix - - n - - smtp"
LOCAL = "local unix - n n - - local"
VIRTUAL = "virtual unix - n n - - local"


def queue_message(inst, *rcpts: str, sender="alice@example.com", content=h.CONTENT) -> str:
    env = Envelope(queue_id="", sender=sender, recipients=tuple(Recipient(r) for r in rcpts),
                   arrival_time=time.time() - 1, size=len(content))
    with QueueStore.open(inst.queue_dir) as store:
        return store.create(env, content)


def request(qid, nexthop, *rcpts, transport="smtp", address_class="", sender="alice@example.com"):
    now = time.time()
    return DeliverRequest(queue_id=qid, transport=transport, nexthop=nexthop, sender=sender,
                          recipients=tuple(DeliverRecipient(i, r) for i, r in enumerate(rcpts)),
                          arrival_time=now - 1, size=len(h.CONTENT), queued_at=now - 0.5,
                          address_class=address_class)


async def call(inst, service: str, req: DeliverRequest) -> DeliveryStatus:
    path = names.private_path(inst.queue_dir, service)
    with trio.fail_after(20):
        while not path.exists():
            await trio.sleep(0.05)
    return await ipc_io.call(path, req, protocol=PROTOCOL, expect=DeliveryStatus, timeout=20)


def test_smtp_agent_delivers_through_mx_from_the_test_dns(mailsys_instance):
    inst = mailsys_instance
    sink = h.smtpsink.SmtpSink()
    zone = {"remote.test": {"MX": [(10, "mx.remote.test")]}, "mx.remote.test": {"A": ["127.0.0.1"]},
            "gone.test": h.dnsserver.NXDOMAIN}
    with h.dnsserver.DnsServer(zone) as dns:
        inst.write_config(master_cf=[SMTP], main_cf={"dns_nameservers": dns.spec})
        inst.start()
        qid = queue_message(inst, "bob@remote.test", "carol@remote.test")

        async def main():
            async with trio.open_nursery() as n:
                port = await n.start(sink.serve)
                ok = await call(inst, "smtp", request(qid, f"remote.test:{port}",
                                                      "bob@remote.test", "carol@remote.test"))
                gone = await call(inst, "smtp", request(qid, "gone.test", "x@gone.test"))
                n.cancel_scope.cancel()
            return ok, gone
        ok, gone = trio.run(main)
    assert [r.status for r in ok.results] == ["sent", "sent"]
    assert sink.messages[0].data == h.CONTENT
    assert (gone.results[0].status, gone.results[0].dsn) == ("bounced", "5.1.2")
    log = inst.wait_log("x@gone.test")
    assert re.search(rf"mailsys/smtp\[\d+\]: {qid}: to=<bob@remote\.test>, "
                     rf"relay=mx\.remote\.test\[127\.0\.0\.1\]:\d+, delay=[\d.]+, "
                     rf"delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, dsn=2\.0\.0, status=sent "
                     rf"\(250 2\.0\.0 Ok: queued as Q1\)", log), log
    assert re.search(rf"mailsys/smtp\[\d+\]: {qid}: to=<x@gone\.test>, relay=none, .*dsn=5\.1\.2, "
                     rf"status=bounced \(Host or domain name not found\. Name service error for "
                     rf"name=gone\.test type=MX: Host not found\)", log), log


def test_virtual_and_local_agents_write_maildirs(mailsys_instance, tmp_path):
    inst = mailsys_instance
    vmaps = tmp_path / "vmailbox"
    vmaps.write_text("bob@example.com example.com/bob/\n")
    users = tmp_path / "users"
    users.write_text("carol ok\n")
    inst.write_config(master_cf=[LOCAL, VIRTUAL], main_cf={
        "virtual_mailbox_domains": "example.com",
        "virtual_mailbox_base": str(tmp_path / "vmail"),
        "virtual_mailbox_maps": f"texthash:{vmaps}",
        "local_recipient_maps": f"texthash:{users}",
        "mail_spool_directory": str(tmp_path / "spool") + "/"})
    inst.start()
    qid = queue_message(inst, "bob@example.com", "carol@mx.example.test")

    async def main():
        v = await call(inst, "virtual", request(qid, "", "bob@example.com", "nobody@example.com",
                                                transport="virtual", address_class="virtual"))
        loc = await call(inst, "local", request(qid, "", "carol@mx.example.test",
                                                transport="local", address_class="local"))
        return v, loc
    v, loc = trio.run(main)
    assert [(r.status, r.dsn) for r in v.results] == [("sent", "2.0.0"), ("bounced", "5.1.1")]
    assert (loc.results[0].status, loc.results[0].relay) == ("sent", "local")
    (name,) = os.listdir(tmp_path / "vmail" / "example.com" / "bob" / "new")
    data = (tmp_path / "vmail" / "example.com" / "bob" / "new" / name).read_bytes()
    assert data.startswith(b"Return-Path: <alice@example.com>\nX-Original-To: bob@example.com\n"
                           b"Delivered-To: bob@example.com\n")
    assert len(os.listdir(tmp_path / "spool" / "carol" / "new")) == 1
    log = inst.wait_log("to=<carol@mx.example.test>")
    assert re.search(rf"mailsys/virtual\[\d+\]: {qid}: to=<bob@example\.com>, relay=virtual, "
                     rf"delay=[\d.]+, delays=[\d.]+/[\d.]+/0/[\d.]+, dsn=2\.0\.0, "
                     rf"status=sent \(delivered to maildir\)", log), log
    assert re.search(rf"mailsys/local\[\d+\]: {qid}: to=<carol@mx\.example\.test>, relay=local, ",
                     log), log
