"""content_filter and its re-injection service through a real master, as in Postfix's FILTER_README."""

from __future__ import annotations

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
