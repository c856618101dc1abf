"""Traced connections: each command and reply line reported, content not.

The lines are those Postfix 3.7 logs for a debug_peer_list peer (seen
live: smtpd "< unknown[127.0.0.1]: EHLO vm", "> unknown[127.0.0.1]:
250-PIPELINING"; smtp "> relay: DATA", "> relay: .", "< relay: 250 2.0.0 Ok").
"""

from __future__ import annotations

import pytest
from _smtp_testlib import Result, client_feed, default_policy, drain, pieces, settings

from mailsys.smtp import replies
from mailsys.smtp.client import TransactionDone
from mailsys.smtp.trace import TracedClientConnection, TracedServerConnection

pytestmark = pytest.mark.timeout(10)

SESSION = (b"EHLO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n"
           b"DATA\r\nSubject: secret\r\n\r\nbody line\r\n.\r\nQUIT\r\n")


@pytest.mark.parametrize("step", [None, 1, 7])
def test_server_reports_commands_and_reply_lines_not_content(step):
    lines: list[tuple[str, str]] = []
    conn = TracedServerConnection(settings(), trace=lambda d, t: lines.append((d, t)))
    conn.send(replies.greeting("mx.example.com ESMTP Postfix"))
    res = Result()
    for piece in pieces(SESSION, step):
        conn.receive_data(piece)
        drain(conn, res, default_policy)
    assert lines[0] == (">", "220 mx.example.com ESMTP Postfix")
    assert ("<", "EHLO client.example") in lines
    assert (">", "250-mx.example.com") in lines
    sent = [t for d, t in lines if d == "<"]
    assert sent == ["EHLO client.example", "MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>",
                    "DATA", "QUIT"]
    assert not any("secret" in t or "body line" in t for _, t in lines)
    replied = [t for d, t in lines if d == ">"]
    assert replied[1:1 + len(res.replies)] == res.replies
    assert replied[-1] == "221 2.0.0 Bye"


GREETING = b"220 mx.example.com ESMTP\r\n"
EHLO = b"250-mx.example.com\r\n250-PIPELINING\r\n250 8BITMIME\r\n"


def test_client_reports_commands_dot_and_replies():
    lines: list[tuple[str, str]] = []
    cc = TracedClientConnection("client.example.org", trace=lambda d, t: lines.append((d, t)))
    client_feed(cc, GREETING)
    cc.ehlo()
    client_feed(cc, EHLO)
    cc.send_mail("a@example.org", ["b@example.net"], b"Subject: secret\r\n\r\nhi\r\n")
    events = client_feed(cc, b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n")
    cc.data_to_send()
    events += client_feed(cc, b"250 2.0.0 Ok: queued\r\n")
    assert any(isinstance(e, TransactionDone) for e in events)
    assert lines == [
        ("<", "220 mx.example.com ESMTP"),
        (">", "EHLO client.example.org"),
        ("<", "250-mx.example.com"), ("<", "250-PIPELINING"), ("<", "250 8BITMIME"),
        lines[5],
        (">", "RCPT TO:<b@example.net>"), (">", "DATA"),
        ("<", "250 2.1.0 Ok"), ("<", "250 2.1.5 Ok"), ("<", "354 go"),
        (">", "."),
        ("<", "250 2.0.0 Ok: queued"),
    ]
    assert lines[5][0] == ">" and lines[5][1].startswith("MAIL FROM:<a@example.org>")


def test_client_reply_line_cut_at_100_and_before_the_reply_filter():
    lines: list[tuple[str, str]] = []
    cc = TracedClientConnection("client.example.org", trace=lambda d, t: lines.append((d, t)),
                                reply_filter=lambda line: "220 replaced")
    client_feed(cc, b"220 " + b"x" * 200 + b"\r\n")
    assert lines == [("<", "220 " + "x" * 96)]
