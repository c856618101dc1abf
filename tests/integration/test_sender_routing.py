"""sender_dependent_relayhost_maps through a real master: the sender picks the smarthost."""

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


def test_the_sender_chooses_the_relayhost(mailsys_instance):
    inst = mailsys_instance
    default, corp = sinks.SmtpSink(), sinks.SmtpSink()
    with sinks.SinkThread(default) as default_port, sinks.SinkThread(corp) as corp_port:
        port = inst.free_port()
        inst.write_config(
            master_cf=["cleanup unix - - n - 0 cleanup", "qmgr unix n - n 300 1 qmgr",
                       "bounce unix - - n - 0 bounce", "smtp unix - - n - - smtp",
                       f"127.0.0.1:{port} inet n - n - - smtpd"],
            main_cf={"relayhost": f"[127.0.0.1]:{default_port}", "mydestination": "",
                     "mynetworks": "127.0.0.0/8",
                     "sender_dependent_relayhost_maps":
                         f"inline:{{ @corp.example=[127.0.0.1]:{corp_port} }}"})
        inst.start()
        inst.wait_until(lambda: h.listening(port))
        for sender in ("ann@corp.example", "bob@home.example"):
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
                s.sendmail(sender, ["x@remote.example"], b"Subject: hi\r\n\r\nhello\r\n")
        inst.wait_until(lambda: default.messages and corp.messages, timeout=20)
    assert [m.sender for m in corp.messages] == ["ann@corp.example"]
    assert [m.sender for m in default.messages] == ["bob@home.example"]
