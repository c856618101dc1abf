"""content_filter and its re-injection service through a real master, as in Postfix's FILTER_README."""

from __future__ import annotations

import re
import runpy
import smtplib
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.integration

here = Path(__file__).parent
sinks = SimpleNamespace(**runpy.run_path(str(here / "smtpsink.py")))
h = SimpleNamespace(**runpy.run_path(str(here / "smtpd_helpers.py")))


def test_mail_goes_through_the_filter_once_and_then_to_its_destination(mailsys_instance):
    # The "filter" is mailsys's own second smtpd, as a content filter's
    # re-injection port is: "-o content_filter=" there ends the loop.
    inst = mailsys_instance
    sink = sinks.SmtpSink()
    with sinks.SinkThread(sink) as sink_port:
        port, reinject = inst.free_port(), inst.free_port()
        inst.write_config(
            master_cf=["cleanup unix - - n - 0 cleanup", "qmgr unix n - n 300 1 qmgr",
                       "bounce unix - - n - 0 bounce", "smtp unix - - n - - smtp",
                       "relay unix - - n - - smtp",
                       f"127.0.0.1:{port} inet n - n - - smtpd",
                       # Its own name: a server greeting with ours is a loop.
                       f"127.0.0.1:{reinject} inet n - n - - smtpd -o content_filter= "
                       "-o myhostname=filter.example.test"],
            main_cf={"content_filter": f"relay:[127.0.0.1]:{reinject}",
                     "relayhost": f"[127.0.0.1]:{sink_port}", "mydestination": "",
                     "mynetworks": "127.0.0.0/8"})
        inst.start()
        inst.wait_until(lambda: h.listening(port) and h.listening(reinject))
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.ehlo("c.example")
            s.mail("a@example.org")
            s.rcpt("b@remote.example")
            first = h.qid_of(s.data(b"Subject: filtered\r\n\r\nhello\r\n")[1])
        inst.wait_until(lambda: len(sink.messages) == 1, timeout=20)
        log = inst.wait_log("status=sent", timeout=20)
    assert [m.rcpts for m in sink.messages] == [["b@remote.example"]], inst.log_text()
    assert f"{first}: to=<b@remote.example>, relay=127.0.0.1[127.0.0.1]:{reinject}" in log
    # Re-injected under a second queue ID, which went to the relayhost.
    log = inst.wait_log(f"relay=127.0.0.1[127.0.0.1]:{sink_port},", timeout=20)
    [delivered] = [line for line in log.splitlines() if f":{sink_port}," in line]
    assert "to=<b@remote.example>" in delivered and f"{first}:" not in delivered
    # The re-injection smtpd's Received: header names it by its own -o myhostname,
    # as Postfix's smtpd writes that header itself.
    top = sink.messages[0].data.split(b"\r\n", 2)[:2]
    assert top[0].startswith(b"Received: from ") and top[1].startswith(
        b"\tby filter.example.test (mailsys) with ESMTP id "), top


def test_reinjected_mail_is_logged_under_the_original_client(mailsys_instance):
    # Postfix's FILTER_README setup with smtp_send_xforward_command = yes and
    # a re-injection smtpd that trusts 127.0.0.1 with XFORWARD: the
    # re-injected message is logged under the client that sent it in the
    # first place, not under the filter's 127.0.0.1. The client here comes
    # through XCLIENT as client.example.org[192.0.2.10] (a proxy's way),
    # so that the two are different.
    inst = mailsys_instance
    sink = sinks.SmtpSink(xforward="NAME ADDR PROTO HELO SOURCE PORT IDENT")
    with sinks.SinkThread(sink) as sink_port:
        port, reinject = inst.free_port(), inst.free_port()
        inst.write_config(
            master_cf=["cleanup unix - - n - 0 cleanup", "qmgr unix n - n 300 1 qmgr",
                       "bounce unix - - n - 0 bounce", "smtp unix - - n - - smtp",
                       "relay unix - - n - - smtp",
                       f"127.0.0.1:{port} inet n - n - - smtpd "
                       "-o smtpd_authorized_xclient_hosts=127.0.0.1",
                       f"127.0.0.1:{reinject} inet n - n - - smtpd -o content_filter= "
                       "-o myhostname=filter.example.test "
                       "-o smtpd_authorized_xforward_hosts=127.0.0.0/8"],
            main_cf={"content_filter": f"relay:[127.0.0.1]:{reinject}",
                     "relayhost": f"[127.0.0.1]:{sink_port}", "mydestination": "",
                     "mynetworks": "127.0.0.0/8, 192.0.2.0/24",
                     "smtp_send_xforward_command": "yes"})
        inst.start()
        inst.wait_until(lambda: h.listening(port) and h.listening(reinject))
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.ehlo("c.example")
            assert s.docmd("XCLIENT NAME=client.example.org ADDR=192.0.2.10 HELO=orig.example "
                           "PROTO=ESMTP")[0] == 220
            s.mail("a@example.org")
            s.rcpt("b@remote.example")
            first = h.qid_of(s.data(b"Subject: filtered\r\n\r\nhello\r\n")[1])
        inst.wait_until(lambda: len(sink.messages) == 1, timeout=20)
        log = inst.wait_log(f"relay=127.0.0.1[127.0.0.1]:{sink_port},", timeout=20)
    [reinjected] = [line.split(": ", 1)[1].split(":", 1)[0] for line in log.splitlines()
                    if f"relay=127.0.0.1[127.0.0.1]:{sink_port}," in line]
    assert f"{first}: client=client.example.org[192.0.2.10]\n" in log
    assert (f"{reinjected}: client=localhost[127.0.0.1], orig_queue_id={first}, "
            f"orig_client=client.example.org[192.0.2.10]\n") in log, log
    # The re-injected entry keeps the original client, so the next hop hears of it too.
    # (XCLIENT named no PORT: the proxy's own source port stays, as in Postfix.)
    xforward = [c for c in sink.commands if c.startswith("XFORWARD")]
    assert len(xforward) == 2 and re.fullmatch(
        r"XFORWARD NAME=client\.example\.org ADDR=192\.0\.2\.10 PORT=\d+", xforward[0]), xforward
    assert xforward[1] == f"XFORWARD PROTO=ESMTP HELO=orig.example IDENT={first} SOURCE=REMOTE"
    assert sink.commands.index(xforward[1]) + 1 == sink.commands.index("MAIL FROM:<a@example.org>")
    # Received: headers name the actual clients, as Postfix's do: the
    # filter's 127.0.0.1 on the way back, the proxied client before it.
    [message] = sink.messages
    received = [line for line in message.data.split(b"\r\n") if line.startswith(b"Received:")]
    assert received == [b"Received: from mx.example.test (localhost [127.0.0.1])",
                        b"Received: from orig.example (client.example.org [192.0.2.10])"], \
        message.data
