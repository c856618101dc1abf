"""VERP through a real master: XVERP from smtpd's clients, sendmail -XV, one delivery per recipient.

What Postfix 3.7.11 did (private instance, smtpd_authorized_verp_clients =
$mynetworks, a capturing SMTP peer as the relay):

    EHLO: ... ETRN, XVERP, ENHANCEDSTATUSCODES ... (without the setting: no
          XVERP, and "555 5.5.4 Unsupported option: XVERP")
    MAIL FROM:<list@lists.example> XVERP        250 2.1.0 Ok
    MAIL FROM:<list@lists.example> XVERP=ab     501 5.5.4 Error: XVERP needs two characters from -=+
    MAIL FROM:<> XVERP                          503 5.5.4 Error: XVERP requires non-null sender
    three recipients: three deliveries, "MAIL FROM:<owner-list+u1=example.net@lists.example>",
    each with its own; qmgr logs from=<owner-list@lists.example>
    postcat: "verp_delimiters: -=" before the recipients
    two recipients refused: two "sender non-delivery notification" lines, the
    bounces to owner-list+bad1=example.net@lists.example and +bad2=...
    sendmail -XVab: "sendmail: fatal: -V requires two characters from -=+" (75);
    sendmail -f '<>' -XV: "sendmail: fatal: (0): -V option requires non-null sender address"
"""

from __future__ import annotations

import os
import smtplib
from pathlib import Path
from types import SimpleNamespace

import pytest

here = Path(__file__).parent
live = SimpleNamespace(**__import__("runpy").run_path(str(here / "live_site.py")))
sinks = SimpleNamespace(**__import__("runpy").run_path(str(here / "smtpsink.py")))

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _show_log(mailsys_instance):
    yield
    print(mailsys_instance.log_text())


def test_xverp_gives_each_recipient_its_own_sender(mailsys_instance, tmp_path):
    inst = mailsys_instance
    sink = sinks.SmtpSink()
    with sinks.SinkThread(sink) as port:
        site = live.build(inst, tmp_path, port,
                          main_cf={"smtpd_authorized_verp_clients": "127.0.0.0/8"})
        with smtplib.SMTP("127.0.0.1", site.smtpd_port, timeout=10) as s:
            code, ehlo = s.ehlo("client.example")
            assert b"\nXVERP\n" in ehlo
            assert s.docmd("MAIL FROM:<list@lists.example> XVERP=ab") == (
                501, b"5.5.4 Error: XVERP needs two characters from -=+")
            assert s.docmd("MAIL FROM:<> XVERP") == (
                503, b"5.5.4 Error: XVERP requires non-null sender")
            assert s.docmd("MAIL FROM:<owner-list@lists.example> XVERP")[0] == 250
            for rcpt in ("u1@ok.test", "u2@bad.test", "u3@ok.test"):
                assert s.rcpt(rcpt)[0] == 250
            code, text = s.data(b"Subject: v\r\n\r\nhi\r\n")
            assert code == 250
        qid = text.decode().rsplit(" ", 1)[1]
        inst.wait_log(f"{qid}: removed", timeout=20)
    got = sorted((m.sender, tuple(m.rcpts)) for m in sink.messages)
    assert got == [("owner-list+u1=ok.test@lists.example", ("u1@ok.test",)),
                   ("owner-list+u2=bad.test@lists.example", ("u2@bad.test",)),
                   ("owner-list+u3=ok.test@lists.example", ("u3@ok.test",))]
    assert f"{qid}: from=<owner-list@lists.example>, size=" in inst.log_text()


def test_xverp_is_not_offered_to_other_clients(mailsys_instance, tmp_path):
    inst = mailsys_instance
    with sinks.SinkThread(sinks.SmtpSink()) as port:
        site = live.build(inst, tmp_path, port)
        with smtplib.SMTP("127.0.0.1", site.smtpd_port, timeout=10) as s:
            assert b"XVERP" not in s.ehlo("client.example")[1]
            assert s.docmd("MAIL FROM:<list@lists.example> XVERP") == (
                555, b"5.5.4 Unsupported option: XVERP")


def test_sendmail_xv_and_postcat(mailsys_instance, tmp_path):
    inst = mailsys_instance
    with sinks.SinkThread(sinks.SmtpSink()) as port:
        site = live.build(inst, tmp_path, port)
        # dead.test defers: the entry stays for postcat.
        r = site.sendmail("-f", "owner@lists.example", "-XV-=", "u@dead.test",
                          data=b"Subject: x\n\nhi\n")
        assert r.returncode == 0, r.stderr
        r = site.sendmail("-f", "owner@lists.example", "-XVab", "u@dead.test", data=b"x\n")
        assert (r.returncode, r.stderr.decode()) == (
            75, "sendmail: fatal: -V requires two characters from -=+\n")
        r = site.sendmail("-f", "<>", "-XV", "u@dead.test", data=b"x\n")
        assert (r.returncode, r.stderr.decode()) == (
            75, f"sendmail: fatal: ({os.getuid()}): -V option requires non-null sender "
                "address\n")
        log = inst.wait_log("status=deferred", timeout=20)
        qid = log.split(": to=<u@dead.test>")[0].rsplit(" ", 1)[1]
        postcat = site.tool("postcat", "-q", qid).stdout
    lines = postcat.splitlines()
    assert "verp_delimiters: -=" in lines
    assert lines.index("verp_delimiters: -=") < lines.index("recipient: u@dead.test")


@pytest.mark.parametrize("off", [False, True])
def test_a_verp_message_bounces_to_each_recipients_own_sender(mailsys_instance, tmp_path, off):
    # Postfix 3.7.11: two recipients refused with 550, two "sender
    # non-delivery notification" lines and two bounces, "RCPT
    # TO:<owner-list+bad1=example.net@lists.example>" and the same for
    # bad2; disable_verp_bounces = yes makes it one, to the plain sender.
    inst = mailsys_instance
    no = "550 5.1.1 no such user"
    sink = sinks.SmtpSink(rcpt={"bad1@bad.test": no, "bad2@bad.test": no})
    with sinks.SinkThread(sink) as port:
        site = live.build(inst, tmp_path, port,
                          main_cf={"smtpd_authorized_verp_clients": "127.0.0.0/8",
                                   "disable_verp_bounces": "yes" if off else "no"})
        with smtplib.SMTP("127.0.0.1", site.smtpd_port, timeout=10) as s:
            s.ehlo("client.example")
            assert s.docmd("MAIL FROM:<owner-list@ok.test> XVERP")[0] == 250
            for rcpt in ("bad1@bad.test", "bad2@bad.test", "good@ok.test"):
                assert s.rcpt(rcpt)[0] == 250
            code, text = s.data(b"Subject: v\r\n\r\nhi\r\n")
        qid = text.decode().rsplit(" ", 1)[1]
        inst.wait_log(f"{qid}: removed", timeout=20)
        bounces = 1 if off else 2
        inst.wait_until(lambda: sum(1 for m in sink.messages if m.sender == "") == bounces,
                        timeout=20)
    to = sorted(m.rcpts[0] for m in sink.messages if m.sender == "")
    assert to == (["owner-list@ok.test"] if off else
                  ["owner-list+bad1=bad.test@ok.test", "owner-list+bad2=bad.test@ok.test"])
    assert inst.log_text().count(f"{qid}: sender non-delivery notification: ") == bounces
