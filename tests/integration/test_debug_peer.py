"""debug_peer_list through a real master: the SMTP chat with a listed peer is logged.

Postfix 3.7 with debug_peer_list = 127.0.0.1 logged (smtpd, then smtp to
a sink):

    postfix/smtpd[15665]: > unknown[127.0.0.1]: 220 bench.localdomain ESMTP Postfix
    postfix/smtpd[15665]: < unknown[127.0.0.1]: EHLO vm
    postfix/smtpd[15665]: > unknown[127.0.0.1]: 250-bench.localdomain
    postfix/smtpd[15665]: > unknown[127.0.0.1]: 250 CHUNKING
    postfix/smtpd[15665]: < unknown[127.0.0.1]: DATA
    postfix/smtpd[15665]: > unknown[127.0.0.1]: 354 End data with <CR><LF>.<CR><LF>
    postfix/smtpd[15665]: > unknown[127.0.0.1]: 250 2.0.0 Ok: queued as B33B820CBB0
    postfix/smtp[15669]: < 127.0.0.1[127.0.0.1]:3402: 220 smtp-sink ESMTP
    postfix/smtp[15669]: > 127.0.0.1[127.0.0.1]:3402: EHLO bench.localdomain
    postfix/smtp[15669]: > 127.0.0.1[127.0.0.1]:3402: DATA
    postfix/smtp[15669]: > 127.0.0.1[127.0.0.1]:3402: .
    postfix/smtp[15669]: < 127.0.0.1[127.0.0.1]:3402: 250 2.0.0 Ok

and nothing of the message content.
"""

from __future__ import annotations

import re
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

HERE = Path(__file__).parent
s = SimpleNamespace(**runpy.run_path(str(HERE / "smtpd_helpers.py")))
a = SimpleNamespace(**runpy.run_path(str(HERE / "agent_helpers.py")))

SESSION = (b"EHLO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n")


def _talk(port: int) -> None:
    with s.Raw(port) as c:
        assert c.reply().startswith(b"220 ")
        c.send(b"EHLO client.example\r\n")
        assert c.reply() == b"250 CHUNKING"
        c.send(b"MAIL FROM:<a@example.org>\r\n")
        assert c.reply() == b"250 2.1.0 Ok"
        c.send(b"RCPT TO:<b@example.test>\r\n")
        assert c.reply() == b"250 2.1.5 Ok"
        c.send(b"DATA\r\n")
        assert c.reply().startswith(b"354 ")
        c.send(b"Subject: secret words\r\n\r\nbody text\r\n.\r\n")
        assert c.reply().startswith(b"250 2.0.0 Ok: queued as ")
        c.send(b"QUIT\r\n")
        assert c.reply() == b"221 2.0.0 Bye"


def test_smtpd_logs_each_command_and_reply_line_of_a_listed_client(mailsys_instance):
    inst = mailsys_instance
    port = s.start(inst, {"debug_peer_list": "127.0.0.1", "smtpd_peername_lookup": "no"})
    _talk(port)
    log = inst.wait_log(": 221 2.0.0 Bye")
    peer = r"unknown\[127\.0\.0\.1\]"
    for line in (rf"> {peer}: 220 \S+ ESMTP mailsys", rf"< {peer}: EHLO client\.example",
                 rf"> {peer}: 250-\S+", rf"> {peer}: 250-PIPELINING", rf"> {peer}: 250 CHUNKING",
                 rf"< {peer}: MAIL FROM:<a@example\.org>", rf"> {peer}: 250 2\.1\.0 Ok",
                 rf"< {peer}: DATA", rf"> {peer}: 354 End data with <CR><LF>\.<CR><LF>",
                 rf"> {peer}: 250 2\.0\.0 Ok: queued as \w+", rf"< {peer}: QUIT",
                 rf"> {peer}: 221 2\.0\.0 Bye"):
        assert re.search(rf"mailsys/smtpd\[\d+\]: {line}$", log, re.M), (line, log)
    assert "secret words" not in log and "body text" not in log


def test_smtpd_logs_no_chat_for_a_client_not_listed(mailsys_instance):
    inst = mailsys_instance
    port = s.start(inst, {"debug_peer_list": "192.0.2.0/24, !127.0.0.1, 127.0.0.0/8",
                          "smtpd_peername_lookup": "no"})
    _talk(port)
    log = inst.wait_log("quit=1")
    assert "EHLO client.example" not in log and ": 250 CHUNKING" not in log, log


def test_smtp_client_logs_the_chat_with_a_listed_server(mailsys_instance):
    inst = mailsys_instance
    sink = a.smtpsink.SmtpSink()
    inst.write_config(master_cf=["smtp unix - - n - - smtp"],
                      main_cf={"debug_peer_list": "127.0.0.1"})
    inst.start()
    qid = a.queue_message(inst, "bob@remote.test")

    async def main():
        async with trio.open_nursery() as n:
            port = await n.start(sink.serve)
            status = await a.call(inst, "smtp", a.request_for(qid, f"[127.0.0.1]:{port}",
                                                              "bob@remote.test"))
            n.cancel_scope.cancel()
        return port, status
    port, status = trio.run(main)
    assert [r.status for r in status.results] == ["sent"]
    log = inst.wait_log("status=sent")
    peer = rf"127\.0\.0\.1\[127\.0\.0\.1\]:{port}"
    lines = re.findall(rf"mailsys/smtp\[\d+\]: ([<>]) {peer}: (.*)$", log, re.M)
    assert lines[:14] == [
        ("<", "220 sink.test ESMTP"), (">", "EHLO mx.example.test"), ("<", "250-sink.test"),
        ("<", "250-PIPELINING"), ("<", "250-ENHANCEDSTATUSCODES"), ("<", "250 8BITMIME"),
        (">", "MAIL FROM:<alice@example.com>"), (">", "RCPT TO:<bob@remote.test>"),
        (">", "DATA"), ("<", "250 2.1.0 Ok"), ("<", "250 2.1.5 Ok"),
        ("<", "354 End data with <CR><LF>.<CR><LF>"), (">", "."),
        ("<", "250 2.0.0 Ok: queued as Q1")], lines
    assert "Hello." not in log
