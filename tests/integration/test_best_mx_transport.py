"""best_mx_transport through a real master: mail that loops back here goes to that transport.

Postfix smtp_connect.c: when the delivery ends with the loop status
("mail for X loops back to myself", x.4.6) and best_mx_transport is set,
the smtp client hands the whole request to that transport with
deliver_pass_all(), which delivers and logs; without it the mail bounces.
"""

from __future__ import annotations

import re
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio

h = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("agent_helpers.py"))))

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

ZONE = {"hosted.test": {"MX": [(10, "mx.hosted.test")]}, "mx.hosted.test": {"A": ["127.0.0.1"]}}


def _deliver(inst, dns, smtpd_port: int, sink_port: int | None, main_cf: dict):
    sink = h.smtpsink.SmtpSink()
    inst.write_config(master_cf=["smtp unix - - n - - smtp", "relay2 unix - - n - - smtp",
                                 "cleanup unix n - n - 0 cleanup", "anvil unix - - n - 1 anvil",
                                 f"127.0.0.1:{smtpd_port} inet n - n - - smtpd"],
                      main_cf={"dns_nameservers": dns.spec, **main_cf})
    inst.start()
    qid = h.queue_message(inst, "bob@hosted.test")

    async def main():
        async with trio.open_nursery() as n:
            if sink_port is not None:
                await n.start(sink.serve, "127.0.0.1", sink_port)
            status = await h.call(inst, "smtp", h.request_for(qid, f"hosted.test:{smtpd_port}",
                                                              "bob@hosted.test"))
            n.cancel_scope.cancel()
        return status
    return qid, trio.run(main), sink


def test_without_best_mx_transport_the_loop_bounces(mailsys_instance):
    inst = mailsys_instance
    with h.dnsserver.DnsServer(ZONE) as dns:
        qid, status, _ = _deliver(inst, dns, inst.free_port(), None, {})
    [r] = status.results
    assert (r.status, r.dsn, r.reason) == ("bounced", "5.4.6",
                                           "mail for hosted.test loops back to myself")


def test_best_mx_transport_takes_the_request(mailsys_instance):
    inst = mailsys_instance
    sink_port = inst.free_port()
    with h.dnsserver.DnsServer(ZONE) as dns:
        qid, status, sink = _deliver(inst, dns, inst.free_port(), sink_port,
                                     {"best_mx_transport": f"relay2:[127.0.0.1]:{sink_port}"})
    [r] = status.results
    assert (r.status, r.dsn) == ("sent", "2.0.0"), r
    assert r.relay == f"127.0.0.1[127.0.0.1]:{sink_port}"
    assert sink.messages[0].data == h.CONTENT
    log = inst.wait_log("status=sent")
    # One status line, the transport's; none from the smtp client for the loop.
    assert len(re.findall(rf"{qid}: to=<bob@hosted\.test>", log)) == 1, log
    assert "loops back to myself" not in log


def test_best_mx_transport_not_answering_defers(mailsys_instance):
    inst = mailsys_instance
    with h.dnsserver.DnsServer(ZONE) as dns:
        qid, status, _ = _deliver(inst, dns, inst.free_port(), None,
                                  {"best_mx_transport": "nosuch", "ipc_timeout": "2s"})
    [r] = status.results
    assert (r.status, r.dsn, r.reason) == ("deferred", "4.3.0", "mail transport unavailable")
    log = inst.wait_log("status=deferred")
    assert re.search(r"mailsys/smtp\[\d+\]: warning: \w+: nosuch transport: ", log), log
