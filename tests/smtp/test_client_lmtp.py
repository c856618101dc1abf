"""ClientConnection(lmtp=True): LHLO and one reply per accepted recipient (RFC 2033).

Server bytes go in whole, one byte at a time and in 7-byte pieces; the
texts are those Postfix 3.7's lmtp(8) logs for the same replies (seen
live against an aiosmtpd LMTP server).
"""

from __future__ import annotations

import pytest
from _smtp_testlib import client_feed

from mailsys.smtp import LocalProtocolError
from mailsys.smtp.client import (ClientConnection, ClientState, ConnectionLost,
                                 EhloDone, Greeting, HeloRejected, TransactionDone)

PEER = "mail.example.com[private/dovecot-lmtp]"
GREETING = b"220 mail.example.com Dovecot ready.\r\n"
LHLO_REPLY = (b"250-mail.example.com\r\n250-8BITMIME\r\n250-CHUNKING\r\n250-ENHANCEDSTATUSCODES\r\n"
              b"250-PIPELINING\r\n250 STARTTLS\r\n")
LHLO_PLAIN = b"250-lmtp.test\r\n250-SIZE 33554432\r\n250-8BITMIME\r\n250 HELP\r\n"
BODY = b"Subject: test\r\n\r\nhello\r\n"
RCPTS = ["ok@example.com", "norcpt@example.com", "defer@example.com", "bounce@example.com"]


feed = client_feed


def lmtp_session(reply: bytes = LHLO_REPLY, step: int | None = None) -> ClientConnection:
    cc = ClientConnection("mx.example.org", lmtp=True)
    [greeting] = feed(cc, GREETING, step)
    assert isinstance(greeting, Greeting) and greeting.ok
    assert cc.ehlo() == b"LHLO mx.example.org\r\n"
    assert cc.stage == "performing the LHLO handshake"
    assert cc.stage_timeout == "smtp_helo_timeout"
    [done] = feed(cc, reply, step)
    assert isinstance(done, EhloDone)
    return cc


def results(done: TransactionDone) -> list[tuple[str, str, str, str]]:
    return [(r.address, r.status, r.dsn, r.text(PEER)) for r in done.result.recipients]


@pytest.mark.parametrize("step", [None, 1, 7])
def test_lhlo_capabilities(step):
    cc = lmtp_session(step=step)
    caps = cc.capabilities
    assert caps.pipelining and caps.starttls and caps.eightbitmime and caps.esmtp
    assert cc.state is ClientState.READY


def test_no_helo_in_lmtp():
    cc = ClientConnection("mx.example.org", lmtp=True)
    feed(cc, GREETING)
    with pytest.raises(LocalProtocolError):
        cc.helo()


@pytest.mark.parametrize("reply", [b"500 5.5.1 Unknown command\r\n",
                                   b"421 4.3.2 Shutting down\r\n"])
def test_a_refused_lhlo_is_the_end_of_the_session(reply):
    cc = ClientConnection("mx.example.org", lmtp=True)
    feed(cc, GREETING)
    cc.ehlo()
    [refused] = feed(cc, reply)
    assert isinstance(refused, HeloRejected)        # no HELO fallback (Postfix smtp_helo)
    assert cc.data_to_send() == b""
    assert cc.state in (ClientState.REFUSED, ClientState.CLOSED)


@pytest.mark.parametrize("step", [None, 1, 7])
def test_one_reply_per_accepted_recipient_after_the_dot(step):
    cc = lmtp_session(step=step)
    out = cc.send_mail("alice@example.org", RCPTS, BODY)
    assert out == (b"MAIL FROM:<alice@example.org>\r\n"
                   b"RCPT TO:<ok@example.com>\r\nRCPT TO:<norcpt@example.com>\r\n"
                   b"RCPT TO:<defer@example.com>\r\nRCPT TO:<bounce@example.com>\r\n"
                   b"DATA\r\n")
    replies = (b"250 2.1.0 OK\r\n250 2.1.5 OK\r\n"
               b"550 5.1.1 <norcpt@example.com> User doesn't exist: norcpt@example.com\r\n"
               b"250 2.1.5 OK\r\n250 2.1.5 OK\r\n354 OK\r\n")
    assert feed(cc, replies, step) == []
    assert cc.data_to_send() == BODY + b".\r\n"
    assert cc.stage == "sending end of data -- message may be sent more than once"
    assert cc.stage_timeout == "smtp_data_done_timeout"
    # Three accepted recipients: three replies, in RCPT order.
    assert feed(cc, b"250 2.0.0 <ok@example.com> Saved\r\n", step) == []
    assert feed(cc, b"452 4.2.2 <defer@example.com> Mailbox is full\r\n", step) == []
    [done] = feed(cc, b"550 5.2.1 <bounce@example.com> Mailbox disabled\r\n", step)
    assert results(done) == [
        ("ok@example.com", "sent", "2.0.0", "250 2.0.0 <ok@example.com> Saved"),
        ("norcpt@example.com", "bounced", "5.1.1",
         "host mail.example.com[private/dovecot-lmtp] said: 550 5.1.1 <norcpt@example.com> "
         "User doesn't exist: norcpt@example.com (in reply to RCPT TO command)"),
        ("defer@example.com", "deferred", "4.2.2",
         "host mail.example.com[private/dovecot-lmtp] said: 452 4.2.2 <defer@example.com> "
         "Mailbox is full (in reply to end of DATA command)"),
        ("bounce@example.com", "bounced", "5.2.1",
         "host mail.example.com[private/dovecot-lmtp] said: 550 5.2.1 <bounce@example.com> "
         "Mailbox disabled (in reply to end of DATA command)"),
    ]
    assert done.result.delivered and cc.state is ClientState.READY and not cc.in_transaction


def test_all_replies_in_one_read():
    cc = lmtp_session()
    cc.send_mail("a@example.org", ["x@example.com", "y@example.com"], BODY)
    feed(cc, b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n")
    cc.data_to_send()
    [done] = feed(cc, b"250 2.0.0 x Saved\r\n250 2.0.0 y Saved\r\n")
    assert [(a, s, t) for a, s, _, t in results(done)] == [
        ("x@example.com", "sent", "250 2.0.0 x Saved"),
        ("y@example.com", "sent", "250 2.0.0 y Saved")]
    # The session is ready for the next message: no reply is left over.
    assert cc.send_mail("a@example.org", ["z@example.com"], BODY).startswith(b"MAIL FROM:")


def test_without_pipelining_one_command_at_a_time_then_every_reply():
    cc = lmtp_session(LHLO_PLAIN)
    assert cc.send_mail("a@example.org", ["x@example.com", "y@example.com"], BODY) == \
        b"MAIL FROM:<a@example.org> SIZE=24\r\n"
    sent = []
    for reply in (b"250 ok\r\n", b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n"):
        assert feed(cc, reply) == []
        sent.append(cc.data_to_send())
    assert sent == [b"RCPT TO:<x@example.com>\r\n", b"RCPT TO:<y@example.com>\r\n",
                    b"DATA\r\n", BODY + b".\r\n"]
    assert feed(cc, b"451 4.3.0 <x@example.com> Temporary failure\r\n") == []
    [done] = feed(cc, b"250 2.0.0 <y@example.com> Saved\r\n")
    assert [s for _, s, _, _ in results(done)] == ["deferred", "sent"]


def test_connection_lost_between_the_replies_keeps_the_answered_ones():
    cc = lmtp_session()
    cc.send_mail("a@example.org", ["x@example.com", "y@example.com", "z@example.com"], BODY)
    feed(cc, b"250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n")
    cc.data_to_send()
    assert feed(cc, b"250 2.0.0 <x@example.com> Saved\r\n") == []
    [lost] = feed(cc, b"")
    assert lost == ConnectionLost("sending end of data -- message may be sent more than once")
    assert [(s.address, s.status) for s in cc.settled] == [("x@example.com", "sent")]


def test_421_among_the_replies_defers_the_rest():
    cc = lmtp_session()
    cc.send_mail("a@example.org", ["x@example.com", "y@example.com", "z@example.com"], BODY)
    feed(cc, b"250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n")
    cc.data_to_send()
    [done] = feed(cc, b"250 2.0.0 <x@example.com> Saved\r\n421 4.3.2 Shutting down\r\n")
    assert [(a, s, d) for a, s, d, _ in results(done)] == [
        ("x@example.com", "sent", "2.0.0"), ("y@example.com", "deferred", "4.3.2"),
        ("z@example.com", "deferred", "4.3.2")]
    assert cc.closed


def test_smtp_mode_still_takes_one_reply_for_all():
    cc = ClientConnection("mx.example.org")
    feed(cc, b"220 mx ESMTP\r\n")
    assert cc.ehlo() == b"EHLO mx.example.org\r\n"
    feed(cc, b"250-mx\r\n250 PIPELINING\r\n")
    cc.send_mail("a@example.org", ["x@example.com", "y@example.com"], BODY)
    feed(cc, b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n")
    cc.data_to_send()
    [done] = feed(cc, b"250 2.0.0 Ok: queued as X\r\n")
    assert [r.status for r in done.result.recipients] == ["sent", "sent"]
