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


def test_smtp_agent_forwards_the_client_and_warns_when_xforward_is_refused(mailsys_instance):
    # Postfix 3.7.11 against a server that refuses XFORWARD logs
    # "warning: host 127.0.0.1[127.0.0.1]:3102 said: 550 5.7.0 Error:
    # insufficient authorization (in reply to XFORWARD name/address command)"
    # and delivers all the same.
    inst = mailsys_instance
    sink = h.smtpsink.SmtpSink(xforward="NAME ADDR PROTO HELO SOURCE PORT IDENT",
                               xforward_reply="550 5.7.0 Error: insufficient authorization")
    inst.write_config(master_cf=[SMTP], main_cf={"smtp_send_xforward_command": "yes"})
    inst.start()
    qid = queue_message(inst, "bob@remote.test")

    async def main():
        async with trio.open_nursery() as n:
            port = await n.start(sink.serve)
            status = await call(inst, "smtp", request(
                qid, f"[127.0.0.1]:{port}", "bob@remote.test", client_name="mx.example.org",
                client_addr="2001:db8::7", client_port=2525, client_helo="helo.example",
                client_protocol="ESMTPSA", log_ident=qid, rewrite_context="remote"))
            n.cancel_scope.cancel()
        return port, status
    port, status = trio.run(main)
    assert [r.status for r in status.results] == ["sent"]
    # The entry's Received: word ESMTPSA goes as PROTO=ESMTP, as Postfix sends it.
    assert [c for c in sink.commands if c.startswith("XFORWARD")] == [
        "XFORWARD NAME=mx.example.org ADDR=IPv6:2001:db8::7 PORT=2525",
        f"XFORWARD PROTO=ESMTP HELO=helo.example IDENT={qid} SOURCE=REMOTE"]
    log = inst.wait_log("status=sent")
    assert (f"mailsys/smtp[" in log and f"]: warning: host 127.0.0.1[127.0.0.1]:{port} said: "
            "550 5.7.0 Error: insufficient authorization (in reply to XFORWARD name/address "
            "command)\n") in log, log
