"""The smtp agent as a daemon under a real master, driven over its socket."""

from __future__ import annotations

import runpy
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio


# The tests directories are not packages: the shared helpers are loaded by path.
h = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("agent_helpers.py"))))

pytestmark = pytest.mark.integration

SMTP = "smtp unix - - n - - smtp"
queue_message, request, call = h.queue_message, h.request_for, h.call


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
