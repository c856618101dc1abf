"""cleanup's address rewriting through a real master: virtual aliases, canonical maps, BCC,
receive_override_options; what reaches the next hop and what mail.log says."""

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

ALIASES = ("inline:{ {sales@alias.example = ann@remote.example, bob@remote.example}, "
           "{info@alias.example = ann@remote.example} }")


def relay_config(inst, sink_port, port, smtpd_options="", **main):
    inst.write_config(
        master_cf=["cleanup unix - - n - 0 cleanup", "qmgr unix n - n 300 1 qmgr",
                   "bounce unix - - n - 0 bounce", "smtp unix - - n - - smtp",
                   "relay unix - - n - - smtp",
                   f"127.0.0.1:{port} inet n - n - - smtpd {smtpd_options}".rstrip()],
        main_cf={"relayhost": f"[127.0.0.1]:{sink_port}", "mydestination": "",
                 "mynetworks": "127.0.0.0/8", "virtual_alias_maps": ALIASES, **main})


def send(port, sender, rcpts):
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("c.example")
        s.mail(sender)
        for r in rcpts:
            s.rcpt(r)
        return h.qid_of(s.data(b"Subject: aliased\r\n\r\nhello\r\n")[1])


def test_virtual_aliases_expand_and_mail_log_names_the_original(mailsys_instance):
    inst = mailsys_instance
    sink = sinks.SmtpSink()
    with sinks.SinkThread(sink) as sink_port:
        port = inst.free_port()
        relay_config(inst, sink_port, port,
                     sender_canonical_maps="inline:{ {root@host.example = admin@example.org} }",
                     always_bcc="archive@remote.example")
        inst.start()
        inst.wait_until(lambda: h.listening(port))
        qid = send(port, "root@host.example", ["sales@alias.example", "info@alias.example"])
        inst.wait_until(lambda: sink.messages, timeout=20)
        log = inst.wait_log(f"{qid}: removed", timeout=20)
    [message] = sink.messages
    assert message.sender == "admin@example.org"
    assert sorted(message.rcpts) == ["ann@remote.example", "archive@remote.example",
                                     "bob@remote.example"]
    assert f"{qid}: from=<admin@example.org>," in log
    assert f"{qid}: to=<bob@remote.example>, orig_to=<sales@alias.example>, relay=" in log
    assert f"{qid}: to=<archive@remote.example>, relay=" in log


def test_no_address_mappings_leaves_the_alias_to_the_next_cleanup(mailsys_instance):
    inst = mailsys_instance
    sink = sinks.SmtpSink()
    with sinks.SinkThread(sink) as sink_port:
        port = inst.free_port()
        relay_config(inst, sink_port, port, "-o receive_override_options=no_address_mappings",
                     virtual_alias_domains="")
        inst.start()
        inst.wait_until(lambda: h.listening(port))
        send(port, "a@example.org", ["sales@alias.example"])
        inst.wait_until(lambda: sink.messages, timeout=20)
    assert sink.messages[0].rcpts == ["sales@alias.example"]


def test_an_alias_loop_is_refused_with_451_and_a_warning(mailsys_instance):
    inst = mailsys_instance
    port = inst.free_port()
    relay_config(inst, inst.free_port(), port,
                 virtual_alias_maps="inline:{ a@alias.example=b@alias.example, "
                                    "b@alias.example=a@alias.example }")
    inst.start()
    inst.wait_until(lambda: h.listening(port))
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("c.example")
        s.mail("x@example.org")
        s.rcpt("a@alias.example")
        code, text = s.data(b"Subject: loop\r\n\r\nhello\r\n")
    assert (code, text) == (451, b"4.6.0 Alias expansion error")
    log = inst.wait_log("unreasonable virtual_alias_maps map nesting for a@alias.example")
    assert "-- message not accepted, try again later" in log


def test_a_rewritten_header_keeps_header_address_token_limit_tokens(mailsys_instance):
    # Postfix 3.7.11 with header_address_token_limit = 5 queued
    # "To: a, b@x.example, c, d@y.example" as "To: a@bench.localdomain, b@x",
    # and left "Cc: one@x.example (c1), two@x.example" (nothing to rewrite) whole.
    inst = mailsys_instance
    port = h.start(inst, {"header_address_token_limit": "5", "myorigin": "bench.localdomain"})
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("c.example")
        s.mail("a@example.org")
        s.rcpt("bob@example.test")
        qid = h.qid_of(s.data(b"To: a, b@x.example, c, d@y.example\r\n"
                              b"Cc: one@x.example (c1), two@x.example\r\n\r\nhello\r\n")[1])
    _, _, content = h.queued(inst, qid)
    assert b"\r\nTo: a@bench.localdomain, b@x\r\n" in content
    assert b"\r\nCc: one@x.example (c1), two@x.example\r\n" in content
