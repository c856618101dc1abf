"""ClientConnection: server bytes in, events and command bytes out.

Scripted servers feed replies whole, one byte at a time and split at random
points; the interop tests run the client against the real ServerConnection
over an in-memory loop and compare the delivered body with the sent one.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from _smtp_testlib import QID, Result, client_feed, connect, drain, pieces

from mailsys.smtp import EndOfData, LocalProtocolError, RcptTo, RemoteProtocolError, Reply
from mailsys.smtp.client import (
    NEED_DATA, Capabilities, ClientConnection, ClientState, ConnectionLost, EhloDone,
    EhloRejected, Greeting, HeloRejected, ProbeFailed, QuitDone, Rcpt, RsetDone, StartTlsReady,
    StartTlsRefused, TransactionDone, encode_body, refused_text, said_text,
    _has_long_line,
)
from mailsys.smtp._client_reply import ReplyReader

PEER = "mx.example.com[192.0.2.1]"
GREETING = b"220 mx.example.com ESMTP Postfix\r\n"
EHLO_FULL = (b"250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n"
             b"250-ETRN\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250-AUTH=PLAIN LOGIN\r\n"
             b"250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n"
             b"250 CHUNKING\r\n")
EHLO_PLAIN = b"250-mx.example.com\r\n250-SIZE 1000\r\n250 8BITMIME\r\n"
BODY = b"Subject: test\r\n\r\nhello\r\n"


feed = client_feed


def session(ehlo: bytes = EHLO_FULL, **kw) -> ClientConnection:
    cc = ClientConnection("client.example.org", **kw)
    [greeting] = feed(cc, GREETING)
    assert isinstance(greeting, Greeting) and greeting.ok
    assert cc.ehlo() == b"EHLO client.example.org\r\n"
    [done] = feed(cc, ehlo)
    assert isinstance(done, EhloDone)
    return cc


def statuses(result) -> list[tuple[str, str, str]]:
    return [(r.address, r.status, r.dsn) for r in result.recipients]


# ------------------------------------------------------------------ replies

def test_capabilities_from_a_postfix_ehlo():
    caps = session().capabilities
    assert caps == Capabilities(
        esmtp=True, pipelining=True, size=10240000, starttls=True, eightbitmime=True,
        smtputf8=True, dsn=True, chunking=True, enhancedstatuscodes=True,
        auth=("PLAIN", "LOGIN"), keywords=caps.keywords)
    assert ("VRFY", "") in caps.keywords and ("ETRN", "") in caps.keywords


@pytest.mark.parametrize("line, size", [(b"250 SIZE\r\n", 0), (b"250 size 12\r\n", 12),
                                        (b"250 SIZE junk\r\n", 0)])
def test_size_keyword_forms(line, size):
    cc = session(b"250-mx\r\n" + line)
    assert cc.capabilities.size == size


def test_enhanced_code_only_with_matching_class():
    reader = ReplyReader()
    reader.feed(b"550 4.1.1 mismatched\r\n450-4.2.1 first\r\n450 4.2.1 second\r\n250\r\n")
    a, b, c = reader.next_reply(), reader.next_reply(), reader.next_reply()
    assert a.reply.enhanced is None and a.dsn == "5.0.0" and a.reply.lines == ("4.1.1 mismatched",)
    assert b.dsn == "4.2.1" and b.reply.lines == ("first", "second")
    assert b.text == "450-4.2.1 first 450 4.2.1 second"
    assert c.code == 250 and c.reply.lines == ("",) and c.dsn == "2.0.0"
    assert reader.next_reply() is None


def test_long_reply_line_is_cut_and_the_buffer_stays_bounded():
    reader = ReplyReader(100)
    reader.feed(b"250-" + b"x" * 5000)
    assert reader.next_reply() is None
    assert reader.buffered == 0
    reader.feed(b"y" * 5000 + b"\r\n554 done\r\n250 next\r\n")
    r = reader.next_reply()
    # The cut line fills the text limit; the code still comes from the last line.
    assert r.lines == ("250-" + "x" * 96,) and r.code == 554
    assert reader.next_reply().text == "250 next"


def test_multi_line_text_stops_growing_but_is_read_to_its_end():
    reader = ReplyReader(100)
    reader.feed(b"".join(b"250-line %d\r\n" % i for i in range(1000)) + b"554 last\r\n250 next\r\n")
    r = reader.next_reply()
    assert r.code == 554 and len(r.text) < 200
    assert reader.next_reply().code == 250


def test_repeated_replies_parse_the_same_each_time():
    # One-line replies are cached by their bytes: a repeat gives the same
    # Response, a line cut by a smaller limit its own, a bad line raises again.
    for limit in (2048, 100, 2048):
        reader = ReplyReader(limit)
        long = b"250 2.0.0 " + b"z" * 150
        reader.feed(b"250 2.1.0 Ok\r\n250 2.1.0 Ok\r\n250-first\r\n250 2.1.0 Ok\r\n" + long + b"\r\n")
        a, b, c, d = (reader.next_reply() for _ in range(4))
        assert a == b and a.reply.enhanced == "2.1.0" and a.text == "250 2.1.0 Ok"
        assert c.reply.lines == ("first", "2.1.0 Ok") and c.text == "250-first 250 2.1.0 Ok"
        assert d.text == long.decode()[:limit]
        for _ in range(2):
            reader.feed(b"hello\r\n")
            with pytest.raises(RemoteProtocolError):
                reader.next_reply()


def test_unprintable_characters_become_question_marks():
    reader = ReplyReader()
    reader.feed(b"550 5.7.1 bad\x01\tthing \xff\r\n")
    assert reader.next_reply().text == "550 5.7.1 bad??thing \ufffd"


@pytest.mark.parametrize("garbage", [
    b"hello\r\n", b"25 short\r\n", b"2500 long\r\n", b"250x\r\n", b"150 one hundred\r\n",
    b"650 six\r\n", b"\r\n", b"250-ok\r\nbroken\r\n", b"-250 x\r\n",
])
def test_garbage_replies_raise_remote_protocol_error(garbage):
    cc = ClientConnection("client.example.org")
    with pytest.raises(RemoteProtocolError) as err:
        feed(cc, garbage)
    assert err.value.reply.code == 421 and err.value.reply.enhanced == "4.5.0"
    assert cc.closed


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=30), st.sampled_from([
    GREETING, EHLO_FULL, b"250 ok\r\n", b"354 go\r\n", b"550 5.1.1 no\r\n", b"421 bye\r\n",
    b"\r\n", b"250-", b"\n", b"x" * 3000])), max_size=20).map(b"".join),
    st.integers(min_value=0, max_value=20))
def test_random_server_bytes_only_raise_remote_protocol_error(data, step):
    cc = ClientConnection("client.example.org", pipelining=True)
    try:
        for piece in pieces(data, step or None) + [b""]:
            cc.receive_data(piece)
            while (event := cc.next_event()) is not NEED_DATA:
                if isinstance(event, ConnectionLost):
                    return
                # Keep the client busy so that replies are always owed.
                if isinstance(event, EhloRejected):
                    cc.helo()
                elif cc.state is ClientState.HELLO:
                    cc.ehlo()
                elif cc.state is ClientState.READY:
                    cc.send_mail("a@b", ["c@d", "e@f"], b"x\r\n")
                elif cc.state is ClientState.REFUSED:
                    cc.quit()
    except RemoteProtocolError:
        assert cc.closed


# ------------------------------------------------------------------ greeting and EHLO

def test_ehlo_falls_back_to_helo():
    cc = ClientConnection("client.example.org")
    feed(cc, GREETING)
    cc.ehlo()
    [rejected] = feed(cc, b"502 5.5.1 Error: command not implemented\r\n")
    assert isinstance(rejected, EhloRejected)
    assert cc.helo() == b"HELO client.example.org\r\n"
    [done] = feed(cc, b"250 mx.example.com\r\n")
    assert isinstance(done, EhloDone) and done.capabilities == Capabilities()
    out = cc.send_mail("a@example.org", ["b@example.com"], BODY, body_type="8BITMIME")
    assert out == b"MAIL FROM:<a@example.org>\r\n"   # no ESMTP parameters after HELO


def test_helo_refused_after_fallback():
    cc = ClientConnection("client.example.org")
    feed(cc, GREETING)
    cc.ehlo()
    feed(cc, b"500 no\r\n")
    cc.helo()
    [refused] = feed(cc, b"550 5.7.1 go away\r\n")
    assert isinstance(refused, HeloRejected)
    assert refused_text(PEER, refused.response) == (
        "host mx.example.com[192.0.2.1] refused to talk to me: 550 5.7.1 go away")
    assert cc.state is ClientState.REFUSED
    with pytest.raises(LocalProtocolError):
        cc.send_mail("a@b", ["c@d"], b"")
    assert cc.quit() == b"QUIT\r\n"


def test_421_to_ehlo_gives_up():
    cc = ClientConnection("client.example.org")
    feed(cc, GREETING)
    cc.ehlo()
    [refused] = feed(cc, b"421 4.7.0 mx.example.com Error: too many connections\r\n")
    assert isinstance(refused, HeloRejected) and cc.closed


def test_refused_greeting():
    cc = ClientConnection("client.example.org")
    [greeting] = feed(cc, b"554-5.7.1 not you\r\n554 5.7.1 really\r\n")
    assert not greeting.ok
    assert refused_text(PEER, greeting.response).endswith(
        "refused to talk to me: 554-5.7.1 not you 554 5.7.1 really")
    with pytest.raises(LocalProtocolError):
        cc.ehlo()
    cc.quit()
    assert isinstance(feed(cc, b"221 2.0.0 Bye\r\n")[0], QuitDone)


def test_commands_before_the_greeting_are_refused():
    cc = ClientConnection("client.example.org")
    with pytest.raises(LocalProtocolError):
        cc.ehlo()
    with pytest.raises(LocalProtocolError):
        ClientConnection("bad name\r\nRSET")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(GREETING + EHLO_FULL) - 1), max_size=30))
def test_multi_line_replies_split_anywhere(splits):
    cc = ClientConnection("client.example.org")
    data = GREETING + EHLO_FULL
    events = []
    for piece in pieces(data, splits=splits):
        cc.receive_data(piece)
        while (event := cc.next_event()) is not NEED_DATA:
            events.append(event)
            if isinstance(event, Greeting):
                cc.ehlo()
    assert [type(e) for e in events] == [Greeting, EhloDone]
    assert events[1].capabilities == session().capabilities


def test_every_single_split_point_of_a_pipelined_session():
    data = GREETING + EHLO_FULL + TXN_REPLIES + b"250 2.0.0 Ok: queued as X\r\n"

    def run(chunks):
        cc, events, sent = ClientConnection("client.example.org"), [], []
        for chunk in chunks:
            cc.receive_data(chunk)
            while (event := cc.next_event()) is not NEED_DATA:
                events.append(event)
                if isinstance(event, Greeting):
                    sent.append(cc.ehlo())
                elif isinstance(event, EhloDone):
                    sent.append(cc.send_mail("alice@example.org", RCPTS, BODY))
            sent.append(cc.data_to_send())
        return events, b"".join(sent)

    whole = run([data])
    assert [type(e) for e in whole[0]] == [Greeting, EhloDone, TransactionDone]
    for cut in range(1, len(data)):
        assert run([data[:cut], data[cut:]]) == whole, cut


# ------------------------------------------------------------------ transactions

TXN_REPLIES = (b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
               b"450 4.2.1 <carol@example.com>: Recipient address rejected: try later\r\n"
               b"550-5.1.1 <dave@example.com>: Recipient address rejected:\r\n"
               b"550 5.1.1 User unknown in virtual mailbox table\r\n"
               b"354 End data with <CR><LF>.<CR><LF>\r\n")
RCPTS = ["bob@example.com", "carol@example.com", "dave@example.com"]


@pytest.mark.parametrize("step", [None, 1, 7])
def test_pipelined_transaction_with_mixed_recipients(step):
    cc = session()
    out = cc.send_mail("alice@example.org", RCPTS, BODY, body_type="8BITMIME")
    assert out == (b"MAIL FROM:<alice@example.org> SIZE=24 BODY=8BITMIME\r\n"
                   b"RCPT TO:<bob@example.com>\r\nRCPT TO:<carol@example.com>\r\n"
                   b"RCPT TO:<dave@example.com>\r\nDATA\r\n")
    assert cc.stage == "sending MAIL FROM" and cc.stage_timeout == "smtp_mail_timeout"
    assert feed(cc, TXN_REPLIES, step) == []
    assert cc.stage == "sending message body"
    assert [s.address for s in cc.settled] == RCPTS[1:]
    assert cc.data_to_send() == BODY + b".\r\n"
    assert cc.stage_timeout == "smtp_data_done_timeout"
    [done] = feed(cc, b"250 2.0.0 Ok: queued as 4Xyz12\r\n", step)
    result = done.result
    assert statuses(result) == [("bob@example.com", "sent", "2.0.0"),
                                ("carol@example.com", "deferred", "4.2.1"),
                                ("dave@example.com", "bounced", "5.1.1")]
    bob, carol, dave = result.recipients
    assert bob.text(PEER) == "250 2.0.0 Ok: queued as 4Xyz12"
    assert carol.text(PEER) == (
        "host mx.example.com[192.0.2.1] said: 450 4.2.1 <carol@example.com>: Recipient address "
        "rejected: try later (in reply to RCPT TO command)")
    assert dave.text(PEER) == (
        "host mx.example.com[192.0.2.1] said: 550-5.1.1 <dave@example.com>: Recipient address "
        "rejected: 550 5.1.1 User unknown in virtual mailbox table (in reply to RCPT TO command)")
    assert result.delivered and not cc.in_transaction and cc.state is ClientState.READY


@pytest.mark.parametrize("step", [None, 1, 7])
def test_address_verification_probe_asks_rcpt_then_rset_without_data(step):
    # Postfix smtp(8) with a verification probe (smtp_address_verify_target
    # = rcpt): MAIL, RCPT, RSET; a 250 to RCPT is the "deliverable" answer.
    cc = session()
    out = cc.send_mail("double-bounce@mx.example", RCPTS, b"", rcpt_only=True)
    assert out == (b"MAIL FROM:<double-bounce@mx.example> SIZE=0\r\n"
                   b"RCPT TO:<bob@example.com>\r\nRCPT TO:<carol@example.com>\r\n"
                   b"RCPT TO:<dave@example.com>\r\nRSET\r\n")
    replies = TXN_REPLIES.replace(b"354 End data with <CR><LF>.<CR><LF>", b"250 2.0.0 Ok")
    [done] = feed(cc, replies, step)
    assert statuses(done.result) == [("bob@example.com", "sent", "2.1.5"),
                                     ("carol@example.com", "deferred", "4.2.1"),
                                     ("dave@example.com", "bounced", "5.1.1")]
    assert done.result.recipients[0].text(PEER) == "250 2.1.5 Ok"
    assert cc.data_to_send() == b""                   # no DATA, no body
    # The RSET ended the transaction: the next message starts with MAIL.
    assert not cc.in_transaction and cc.state is ClientState.READY
    assert cc.send_mail("a@b", ["c@d"], b"").startswith(b"MAIL FROM:<a@b>")


def test_probe_without_pipelining_sends_rset_after_a_refused_rcpt():
    cc = session(EHLO_PLAIN)
    assert cc.send_mail("", ["bad@example.com"], b"", rcpt_only=True) == \
        b"MAIL FROM:<> SIZE=0\r\n"
    feed(cc, b"250 2.1.0 Ok\r\n")
    assert cc.data_to_send() == b"RCPT TO:<bad@example.com>\r\n"
    assert feed(cc, b"550 5.1.1 unknown\r\n") == []
    assert cc.data_to_send() == b"RSET\r\n"
    [done] = feed(cc, b"250 2.0.0 Ok\r\n")
    assert statuses(done.result) == [("bad@example.com", "bounced", "5.1.1")]
    assert not cc.in_transaction


def test_transaction_without_pipelining_sends_one_command_at_a_time():
    cc = session(EHLO_PLAIN)
    assert cc.send_mail("alice@example.org", RCPTS, BODY) == \
        b"MAIL FROM:<alice@example.org> SIZE=24\r\n"
    sent = []
    for reply in TXN_REPLIES.split(b"\r\n")[:-1]:
        if reply.startswith(b"550-"):
            cc.receive_data(reply + b"\r\n")
            assert cc.next_event() is NEED_DATA
            continue
        assert feed(cc, reply + b"\r\n") == []
        sent.append(cc.data_to_send())
    assert sent == [b"RCPT TO:<bob@example.com>\r\n", b"RCPT TO:<carol@example.com>\r\n",
                    b"RCPT TO:<dave@example.com>\r\n", b"DATA\r\n", BODY + b".\r\n"]
    [done] = feed(cc, b"250 2.0.0 Ok: queued as X\r\n")
    assert [s for _, s, _ in statuses(done.result)] == ["sent", "deferred", "bounced"]


def test_pipelining_can_be_turned_off():
    cc = session(pipelining=False)
    assert cc.send_mail("a@b", ["c@d"], b"") == b"MAIL FROM:<a@b> SIZE=0\r\n"


def test_all_recipients_rejected_without_pipelining_sends_no_data():
    cc = session(EHLO_PLAIN)
    cc.send_mail("alice@example.org", RCPTS[:2], BODY)
    feed(cc, b"250 2.1.0 Ok\r\n")
    assert cc.data_to_send() == b"RCPT TO:<bob@example.com>\r\n"
    feed(cc, b"550 5.1.1 no\r\n")
    assert cc.data_to_send() == b"RCPT TO:<carol@example.com>\r\n"
    [done] = feed(cc, b"450 4.1.1 not now\r\n")
    assert cc.data_to_send() == b""                   # neither DATA nor the body
    assert statuses(done.result) == [("bob@example.com", "bounced", "5.1.1"),
                                     ("carol@example.com", "deferred", "4.1.1")]
    assert not done.result.delivered and cc.in_transaction
    # The server still holds the MAIL transaction: the next message starts with RSET.
    assert cc.send_mail("a@b", ["c@d"], b"x\r\n") == b"RSET\r\n"
    feed(cc, b"250 2.0.0 Ok\r\n")
    assert cc.data_to_send() == b"MAIL FROM:<a@b> SIZE=3\r\n"


def test_all_recipients_rejected_with_pipelining_and_554_to_data():
    cc = session()
    cc.send_mail("alice@example.org", RCPTS[:2], BODY)
    [done] = feed(cc, b"250 2.1.0 Ok\r\n550 5.1.1 no\r\n550 5.1.1 no\r\n"
                      b"554 5.5.1 Error: no valid recipients\r\n")
    assert cc.data_to_send() == b""
    assert [r.in_reply_to for r in done.result.recipients] == ["RCPT TO command"] * 2
    assert done.result.data.code == 554
    out = cc.send_mail("a@b", ["c@d"], b"x\r\n")
    assert out.startswith(b"RSET\r\nMAIL FROM:<a@b>")


def test_stray_354_after_all_recipients_rejected_ends_an_empty_message():
    cc = session()
    cc.send_mail("alice@example.org", ["bob@example.com"], BODY)
    assert feed(cc, b"250 2.1.0 Ok\r\n550 5.1.1 no\r\n354 go ahead\r\n") == []
    assert cc.data_to_send() == b".\r\n"              # never the body
    [done] = feed(cc, b"554 5.5.1 no valid recipients\r\n")
    assert statuses(done.result) == [("bob@example.com", "bounced", "5.1.1")]
    assert not cc.in_transaction


def test_lost_connection_after_the_lone_dot_is_postfix_dot_stage():
    # smtp_proto.c sends that "." in its DOT state: the same words as for
    # a whole message, there is no stage of its own.
    cc = session()
    cc.send_mail("alice@example.org", ["bob@example.com"], BODY)
    feed(cc, b"250 2.1.0 Ok\r\n550 5.1.1 no\r\n354 go ahead\r\n")
    assert cc.data_to_send() == b".\r\n"
    assert cc.stage == "sending end of data -- message may be sent more than once"
    assert feed(cc, b"") == [
        ConnectionLost("sending end of data -- message may be sent more than once")]


def test_rset_that_ends_a_held_transaction_is_the_final_rset():
    # smtp_proto.c: the RSET that ends a transaction is the "final RSET"
    # (xfer_states[], xfer_request[] for SMTP_STATE_ABORT).
    cc = session(EHLO_PLAIN)
    cc.send_mail("alice@example.org", ["bob@example.com"], BODY)
    feed(cc, b"250 2.1.0 Ok\r\n")
    assert cc.data_to_send() == b"RCPT TO:<bob@example.com>\r\n"
    feed(cc, b"550 5.1.1 no\r\n")
    assert cc.in_transaction
    assert cc.send_mail("a@b", ["c@d"], b"x\r\n") == b"RSET\r\n"
    assert cc.stage == "sending final RSET" and cc.stage_timeout == "smtp_rset_timeout"
    assert feed(cc, b"") == [ConnectionLost("sending final RSET")]
    cc = session()
    cc.send_mail("alice@example.org", ["bob@example.com"], BODY)
    feed(cc, b"250 2.1.0 Ok\r\n550 5.1.1 no\r\n554 5.5.1 no valid recipients\r\n")
    cc.send_mail("a@b", ["c@d"], b"x\r\n")
    [done] = feed(cc, b"421 4.4.2 mx.example.com Error: timeout exceeded\r\n")
    assert done.result.recipients[0].text(PEER) == (
        f"host {PEER} said: 421 4.4.2 mx.example.com Error: timeout exceeded"
        " (in reply to final RSET command)")


@pytest.mark.parametrize("code, status", [(b"451 4.3.0 try again", "deferred"),
                                          (b"553 5.7.1 <alice@example.org>: Sender rejected",
                                           "bounced")])
def test_mail_from_refused_decides_every_recipient(code, status):
    cc = session()
    cc.send_mail("alice@example.org", RCPTS[:2], BODY)
    [done] = feed(cc, code + b"\r\n503 5.5.1 Error: need MAIL command\r\n"
                  b"503 5.5.1 Error: need MAIL command\r\n503 5.5.1 Error: need RCPT command\r\n")
    assert cc.data_to_send() == b""
    assert [r.status for r in done.result.recipients] == [status, status]
    assert done.result.recipients[0].text(PEER) == (
        f"host {PEER} said: {code.decode()} (in reply to MAIL FROM command)")
    assert not cc.in_transaction


def test_mail_from_refused_without_pipelining_stops_there():
    cc = session(EHLO_PLAIN)
    cc.send_mail("alice@example.org", RCPTS, BODY)
    [done] = feed(cc, b"452 4.3.1 Insufficient system storage\r\n")
    assert cc.data_to_send() == b""
    assert {r.dsn for r in done.result.recipients} == {"4.3.1"}


@pytest.mark.parametrize("reply, status, dsn", [
    (b"451 4.3.0 Error: queue file write error", "deferred", "4.3.0"),
    (b"552 5.3.4 Error: message file too big", "bounced", "5.3.4"),
    (b"554 transaction failed", "bounced", "5.0.0"),
])
def test_end_of_data_refused(reply, status, dsn):
    cc = session()
    cc.send_mail("alice@example.org", RCPTS[:2], BODY)
    feed(cc, b"250 Ok\r\n250 Ok\r\n250 Ok\r\n354 go\r\n")
    cc.data_to_send()
    [done] = feed(cc, reply + b"\r\n")
    assert statuses(done.result) == [(a, status, dsn) for a in RCPTS[:2]]
    assert done.result.recipients[1].text(PEER) == (
        f"host {PEER} said: {reply.decode()} (in reply to end of DATA command)")


def test_data_refused_after_accepted_recipients():
    cc = session()
    cc.send_mail("alice@example.org", RCPTS[:1], BODY)
    [done] = feed(cc, b"250 Ok\r\n250 Ok\r\n451 4.3.0 later\r\n")
    assert cc.data_to_send() == b""
    assert done.result.recipients[0].in_reply_to == "DATA command"
    assert cc.in_transaction


def test_wrong_class_reply_is_a_protocol_error():
    cc = session()
    cc.send_mail("alice@example.org", ["bob@example.com"], BODY)
    [done] = feed(cc, b"250 Ok\r\n250 Ok\r\n250 Ok\r\n")     # 250 where 354 belongs
    [bob] = done.result.recipients
    assert (bob.status, bob.dsn) == ("bounced", "5.5.0")
    assert bob.text(PEER) == f"Protocol error: host {PEER} said: 250 Ok (in reply to DATA command)"


def test_421_in_the_middle_defers_everything_left():
    cc = session()
    cc.send_mail("alice@example.org", RCPTS, BODY)
    [done] = feed(cc, b"250 Ok\r\n550 5.1.1 no\r\n421 4.4.2 mx Error: timeout exceeded\r\n")
    assert statuses(done.result) == [("bob@example.com", "bounced", "5.1.1"),
                                     ("carol@example.com", "deferred", "4.4.2"),
                                     ("dave@example.com", "deferred", "4.4.2")]
    assert cc.closed
    assert feed(cc, b"") == [ConnectionLost("idle")]


def test_unsolicited_421_while_idle_answers_the_next_command():
    cc = session()
    cc.receive_data(b"421 4.4.2 mx.example.com Error: timeout exceeded\r\n")
    assert cc.next_event() is NEED_DATA and cc.state is ClientState.READY
    cc.send_mail("alice@example.org", RCPTS[:2], BODY)
    done = cc.next_event()
    assert statuses(done.result) == [(a, "deferred", "4.4.2") for a in RCPTS[:2]]
    assert done.result.recipients[0].in_reply_to == "MAIL FROM command"
    assert cc.closed


def test_connection_lost_mid_transaction_keeps_settled_recipients():
    cc = session()
    cc.send_mail("alice@example.org", RCPTS, BODY)
    events = feed(cc, b"250 Ok\r\n550 5.1.1 no\r\n")
    assert events == []
    assert [s.address for s in cc.settled] == ["bob@example.com"]
    assert feed(cc, b"") == [ConnectionLost("sending RCPT TO")]
    assert cc.closed and [s.address for s in cc.settled] == ["bob@example.com"]


def test_connection_lost_before_the_greeting():
    cc = ClientConnection("client.example.org")
    cc.receive_data(b"220-mx.example.com ESMTP\r\n")
    assert feed(cc, b"") == [ConnectionLost("receiving the initial server greeting")]
    assert cc.next_event() == ConnectionLost("receiving the initial server greeting")
    assert cc.closed


def test_public_names_exist():
    import mailsys.smtp.client as client
    assert all(hasattr(client, name) for name in client.__all__)


def test_connection_lost_after_the_dot():
    cc = session()
    cc.send_mail("alice@example.org", RCPTS[:1], BODY)
    feed(cc, b"250 Ok\r\n250 Ok\r\n354 go\r\n")
    cc.data_to_send()
    [lost] = feed(cc, b"")
    assert lost.stage == "sending end of data -- message may be sent more than once"


# ------------------------------------------------------------------ parameters

def test_esmtp_parameters_when_offered():
    cc = session()
    out = cc.send_mail("jörg@example.org",
                       [Rcpt("bob@example.com", notify=("SUCCESS", "FAILURE"),
                             orcpt="Bob+x=y@example.com"), "carol@example.com"],
                       BODY, size=999, body_type="8bitmime", smtputf8=True, ret="hdrs",
                       envid="QID+1=2")
    assert out.decode() == (
        "MAIL FROM:<jörg@example.org> SIZE=999 BODY=8BITMIME ENVID=QID+2B1+3D2 RET=HDRS SMTPUTF8\r\n"
        "RCPT TO:<bob@example.com> ORCPT=rfc822;Bob+2Bx+3Dy@example.com NOTIFY=SUCCESS,FAILURE\r\n"
        "RCPT TO:<carol@example.com>\r\nDATA\r\n")


def test_no_dsn_parameters_when_not_offered():
    cc = session(b"250-mx\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
    out = cc.send_mail("", [Rcpt("b@c", notify=("NEVER",), orcpt="b@c")], BODY,
                       ret="FULL", envid="x", body_type="7BIT")
    assert out == b"MAIL FROM:<> BODY=7BIT\r\nRCPT TO:<b@c>\r\nDATA\r\n"


def test_message_larger_than_server_size_is_bounced_locally():
    cc = session(EHLO_PLAIN)                     # SIZE 1000
    assert cc.send_mail("a@example.org", ["b@example.com"], b"x" * 2000) == b""
    done = cc.next_event()
    assert isinstance(done, TransactionDone)
    [r] = done.result.recipients
    assert (r.status, r.dsn, r.response) == ("bounced", "5.3.4", None)
    assert r.text(PEER) == ("message size 2002 exceeds size limit 1000 of server "
                            "mx.example.com[192.0.2.1]")
    assert cc.state is ClientState.READY and not cc.in_transaction


def test_eight_bit_addresses_go_out_as_received():
    # An address smtpd took as 8-bit bytes (smtputf8_enable = no) is sent
    # byte for byte, as Postfix's smtp client does.
    cc = session()
    sender, rcpt = (b.decode("utf-8", "surrogateescape") for b in (b"\xfc@x.example", b"\xe9@y.example"))
    out = cc.send_mail(sender, [rcpt], b"x")
    assert out == b"MAIL FROM:<\xfc@x.example> SIZE=3\r\nRCPT TO:<\xe9@y.example>\r\nDATA\r\n"


def test_smtputf8_required_but_not_offered():
    cc = session(EHLO_PLAIN)
    assert cc.send_mail("jörg@example.org", ["b@example.com"], b"x", smtputf8=True) == b""
    [r] = cc.next_event().result.recipients
    assert (r.status, r.dsn) == ("bounced", "5.6.7")
    assert r.text(PEER) == f"SMTPUTF8 is required, but was not offered by host {PEER}"


@pytest.mark.parametrize("sender, rcpt", [("a@b\r\nRSET", "c@d"), ("a@b", "c@d\nDATA"),
                                          ("a@b", ""), ("a\x00@b", "c@d")])
def test_addresses_that_would_forge_commands_are_refused(sender, rcpt):
    cc = session()
    with pytest.raises(LocalProtocolError):
        cc.send_mail(sender, [rcpt], b"")
    assert cc.data_to_send() == b""


def test_wrong_state_calls_are_local_errors():
    cc = session()
    cc.send_mail("a@b", ["c@d"], b"")
    for call in (cc.ehlo, cc.quit, cc.rset, lambda: cc.send_mail("a@b", ["c@d"], b"")):
        with pytest.raises(LocalProtocolError):
            call()


# ------------------------------------------------------------------ body

@pytest.mark.parametrize("content, wire", [
    (b"", b".\r\n"),
    (b"no final newline", b"no final newline\r\n.\r\n"),
    (b".starts with dot\r\n", b"..starts with dot\r\n.\r\n"),
    (b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),
    (b"a\r\n..x\r\n.", b"a\r\n...x\r\n..\r\n.\r\n"),
    (b"bare\nlf\n.\n", b"bare\r\nlf\r\n..\r\n.\r\n"),
    (b"mixed\r\nends\nhere", b"mixed\r\nends\r\nhere\r\n.\r\n"),
    (b"cr\ronly.\r", b"cr\ronly.\r\r\n.\r\n"),
    (b"x.\r\n", b"x.\r\n.\r\n"),
])
def test_encode_body(content, wire):
    assert encode_body(content) == wire


@pytest.mark.parametrize("content, wire", [
    (b"12345\r\n", b"12345\r\n.\r\n"),                      # exactly the limit: kept
    (b"123456\r\n", b"12345\r\n 6\r\n.\r\n"),
    (b"123456789\r\n", b"12345\r\n 6789\r\n.\r\n"),             # 5, then " " + 4
    (b"1234567890\r\n", b"12345\r\n 6789\r\n 0\r\n.\r\n"),
    (b".2345.7890\r\n.x", b"..2345\r\n .789\r\n 0\r\n..x\r\n.\r\n"),  # no stuffing after a break
])
def test_long_lines_are_broken_as_postfix_does(content, wire):
    assert encode_body(content, line_limit=5) == wire


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=2, max_value=40))
def test_broken_lines_fit_the_limit(content, limit):
    wire = encode_body(content, line_limit=limit)
    assert wire.endswith(b"\r\n.\r\n") or wire == b".\r\n"
    for line in wire.split(b"\r\n")[:-2]:
        # the limit, plus the dot that stuffing may put in front
        assert len(line) <= limit + (line[:2] == b"..")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"x", b"xxxxx", b"\r\n", b"\r", b"\n", b"."]), max_size=60),
       st.integers(min_value=1, max_value=12))
def test_long_line_check_agrees_with_splitting(parts, limit):
    content = b"".join(parts)
    assert _has_long_line(content, limit) == (max(map(len, content.split(b"\r\n"))) > limit)


def _reference_body(content, limit):
    """encode_body() as the RFCs and smtp_text_out() say it, one line at a time."""
    if not content:
        return b".\r\n"
    if content.count(b"\n") != content.count(b"\r\n"):
        content = content.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if not content.endswith(b"\r\n"):
        content += b"\r\n"
    out = []
    for line in content.split(b"\r\n")[:-1]:
        if limit and len(line) > limit:
            rest = line[limit:]
            out += [line[:limit]] + [b" " + rest[i:i + limit - 1]
                                     for i in range(0, len(rest), limit - 1)]
        else:
            out.append(line)
    return b"".join((b"." + line if line[:1] == b"." else line) + b"\r\n"
                    for line in out) + b".\r\n"


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from([b"x", b"xxxxxxx", b".", b"\r", b"\n", b"\r\n"]), max_size=40),
       st.sampled_from([0, 2, 3, 5, 8]))
def test_encode_body_agrees_with_a_line_by_line_encoder(parts, limit):
    content = b"".join(parts)
    assert encode_body(content, line_limit=limit) == _reference_body(content, limit)


def test_body_line_limit_on_the_wire():
    cc = session(body_line_limit=998)
    cc.send_mail("a@b", ["c@d"], b"x" * 2000)
    feed(cc, b"250 Ok\r\n250 Ok\r\n354 go\r\n")
    assert cc.data_to_send() == (b"x" * 998 + b"\r\n " + b"x" * 997 + b"\r\n " + b"x" * 5
                                 + b"\r\n.\r\n")


def test_encode_body_is_fast_for_large_bodies():
    line = b"." + b"x" * 76 + b"\r\n"
    content = line * 2000                        # ~160 KB, every line dot-stuffed
    wire = encode_body(content)
    assert len(wire) == len(content) + 2000 + 3
    assert wire.count(b"\r\n..x") == 1999 and wire.startswith(b"..x")


# ------------------------------------------------------------------ STARTTLS

def test_starttls_resets_the_session():
    cc = session()
    assert cc.starttls() == b"STARTTLS\r\n"
    # A man in the middle appends a forged reply in plaintext after the 220.
    [ready] = feed(cc, b"220 2.0.0 Ready to start TLS\r\n250 forged\r\n")
    assert isinstance(ready, StartTlsReady) and cc.state is ClientState.TLS_HANDSHAKE
    with pytest.raises(LocalProtocolError):
        cc.send_mail("a@b", ["c@d"], b"")
    cc.tls_started()
    assert cc.tls_active and cc.capabilities == Capabilities() and cc.state is ClientState.HELLO
    assert cc.ehlo() == b"EHLO client.example.org\r\n"
    [done] = feed(cc, b"250-mx.example.com\r\n250 AUTH PLAIN\r\n")   # not the forged 250
    assert done.capabilities.auth == ("PLAIN",) and not done.capabilities.starttls
    with pytest.raises(LocalProtocolError):
        cc.starttls()


def test_starttls_refused_keeps_the_plaintext_session():
    cc = session()
    cc.starttls()
    [refused] = feed(cc, b"454 4.7.0 TLS not available due to local problem\r\n")
    assert isinstance(refused, StartTlsRefused) and cc.state is ClientState.READY
    assert cc.send_mail("a@b", ["c@d"], b"").startswith(b"MAIL FROM:<a@b>")


def test_starttls_needs_the_capability():
    cc = session(EHLO_PLAIN)
    with pytest.raises(LocalProtocolError):
        cc.starttls()


def test_rset_and_quit():
    cc = session()
    assert cc.rset() == b"RSET\r\n"
    [done] = feed(cc, b"250 2.0.0 Ok\r\n")
    assert isinstance(done, RsetDone)
    assert cc.quit() == b"QUIT\r\n"
    assert cc.stage == "sending QUIT"
    [bye] = feed(cc, b"221 2.0.0 Bye\r\n")
    assert isinstance(bye, QuitDone) and cc.closed


# ------------------------------------------------------------------ cached-session probe

PROBE_GROUP = (b"RSET\r\nMAIL FROM:<a@b> SIZE=3 BODY=8BITMIME\r\nRCPT TO:<c@d>\r\n"
               b"RCPT TO:<e@f>\r\nDATA\r\n")


def test_probe_rides_in_the_pipelined_group_and_its_reply_comes_first():
    cc = session()
    assert cc.send_mail("a@b", ["c@d", "e@f"], b"x\r\n", body_type="8BITMIME",
                        probe=True) == PROBE_GROUP
    # smtp_proto.c: the cached-session check is the "RSET probe".
    assert cc.probing and cc.stage == "sending RSET probe"
    assert cc.stage_timeout == "smtp_rset_timeout"
    assert feed(cc, b"250 2.0.0 Ok\r\n") == [] and not cc.probing
    assert cc.stage == "sending MAIL FROM"
    assert feed(cc, b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n") == []
    assert cc.data_to_send() == b"x\r\n.\r\n"
    [done] = feed(cc, b"250 2.0.0 Ok: queued as X\r\n")
    assert [s for _, s, _ in statuses(done.result)] == ["sent", "sent"]
    assert cc.state is ClientState.READY and not cc.in_transaction


def test_probe_replaces_the_rset_of_a_held_transaction():
    cc = session()
    cc.send_mail("a@b", ["c@d"], b"x\r\n")
    feed(cc, b"250 2.1.0 Ok\r\n550 5.1.1 no\r\n554 5.5.1 no valid recipients\r\n")
    assert cc.in_transaction
    out = cc.send_mail("a@b", ["c@d"], b"x\r\n", probe=True)
    assert out.count(b"RSET\r\n") == 1 and out.startswith(b"RSET\r\nMAIL FROM:<a@b>")
    assert cc.probing


@pytest.mark.parametrize("reply", [b"421 4.4.2 mx.example.com Error: timeout exceeded\r\n",
                                   b"503 5.5.1 Error: no\r\n", b"451 4.3.0 not now\r\n"])
def test_a_refused_probe_settles_nobody_and_closes(reply):
    cc = session()
    cc.send_mail("a@b", ["c@d", "e@f"], b"x\r\n", probe=True)
    # Whatever the server says to the rest of the group is not waited for.
    [failed] = feed(cc, reply + b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n")
    assert isinstance(failed, ProbeFailed) and failed.response.text == reply.decode().strip()
    assert cc.closed and cc.settled == () and not cc.probing
    assert cc.data_to_send() == b""
    assert feed(cc, b"") == [ConnectionLost("idle")]    # a later EOF is no second verdict


@pytest.mark.parametrize("step", [None, 1])
def test_a_probe_the_server_never_answers_is_a_probe_failure(step):
    cc = session()
    cc.send_mail("a@b", ["c@d"], b"x\r\n", probe=True)
    assert feed(cc, b"", step) == [ProbeFailed(None)]
    assert cc.closed and cc.settled == ()
    assert cc.next_event() == ProbeFailed(None)


def test_lost_connection_after_the_probe_is_an_ordinary_loss():
    cc = session()
    cc.send_mail("a@b", ["c@d"], b"x\r\n", probe=True)
    assert feed(cc, b"250 2.0.0 Ok\r\n250 2.1.0 Ok\r\n") == []
    assert feed(cc, b"") == [ConnectionLost("sending RCPT TO")]


def test_probe_without_pipelining_waits_for_the_rset_reply():
    cc = session(EHLO_PLAIN)
    assert cc.send_mail("a@b", ["c@d"], b"x\r\n", probe=True) == b"RSET\r\n"
    assert cc.probing
    assert feed(cc, b"250 2.0.0 Ok\r\n") == []
    assert cc.data_to_send() == b"MAIL FROM:<a@b> SIZE=3\r\n"
    cc2 = session(EHLO_PLAIN)
    cc2.send_mail("a@b", ["c@d"], b"x\r\n", probe=True)
    [failed] = feed(cc2, b"554 5.5.1 no\r\n")
    assert isinstance(failed, ProbeFailed) and cc2.closed and cc2.data_to_send() == b""


def test_a_local_decision_sends_no_probe():
    cc = session(EHLO_PLAIN)              # SIZE 1000
    assert cc.send_mail("a@b", ["c@d"], b"x" * 2000, probe=True) == b""
    done = cc.next_event()
    assert isinstance(done, TransactionDone) and not cc.probing
    assert cc.state is ClientState.READY


def test_said_text_matches_postfix():
    reader = ReplyReader()
    reader.feed(b"550 5.1.1 <u@remote.example>: Recipient address rejected: User unknown\r\n")
    assert said_text("mx.remote.example[203.0.113.5]", reader.next_reply(), "RCPT TO command") == (
        "host mx.remote.example[203.0.113.5] said: 550 5.1.1 <u@remote.example>: Recipient "
        "address rejected: User unknown (in reply to RCPT TO command)")


# ------------------------------------------------------------------ interop

class Loop:
    """The client against the real ServerConnection, over memory."""

    def __init__(self, policy=None, server=None, **client):
        self.srv, greeting = connect(**(server or {}))
        self.res = Result()
        self.policy = policy
        self.cc = ClientConnection("client.example.org", **client)
        self.cc.receive_data(greeting)
        self.seen = 0

    def event(self, sent: bytes = b""):
        """Deliver ``sent`` (what a client method returned), run until the next event."""
        for _ in range(100):
            out, sent = sent + self.cc.data_to_send(), b""
            if out:
                self.srv.receive_data(out)
                drain(self.srv, self.res, self.policy)
                new, self.seen = self.res.out[self.seen:], len(self.res.out)
                if new:
                    self.cc.receive_data(new)
                if self.srv.closed:
                    self.cc.receive_data(b"")
            event = self.cc.next_event()
            if event is not NEED_DATA:
                return event
            assert out, "client waits but nothing was sent"
        raise AssertionError("no progress")

    def hello(self):
        assert isinstance(self.event(), Greeting)
        return self.event(self.cc.ehlo())


def reject_unknown(conn, event):
    if isinstance(event, RcptTo) and event.address.startswith("unknown"):
        return Reply(550, "5.1.1", f"<{event.address}>: Recipient address rejected: User unknown")
    return None


@pytest.mark.parametrize("pipelining", [True, False])
def test_interop_transaction(pipelining):
    loop = Loop(reject_unknown, server={"pipelining": pipelining})
    assert loop.hello().capabilities.pipelining is pipelining
    done = loop.event(loop.cc.send_mail("alice@example.org",
                                        ["bob@example.com", "unknown@example.com"], BODY,
                                        body_type="8BITMIME"))
    assert statuses(done.result) == [("bob@example.com", "sent", "2.0.0"),
                                     ("unknown@example.com", "bounced", "5.1.1")]
    assert done.result.recipients[0].text(PEER) == f"250 2.0.0 Ok: queued as {QID}"
    assert loop.res.body == BODY
    assert [e.address for e in loop.res.of(RcptTo)] == ["bob@example.com", "unknown@example.com"]
    assert isinstance(loop.event(loop.cc.quit()), QuitDone)
    assert loop.srv.command_stats() == "ehlo=1 mail=1 rcpt=1/2 data=1 quit=1 commands=5/6"


@pytest.mark.parametrize("pipelining", [True, False])
def test_interop_all_rejected_sends_no_body(pipelining):
    loop = Loop(reject_unknown, server={"pipelining": pipelining})
    loop.hello()
    done = loop.event(loop.cc.send_mail(
        "a@example.org", ["unknown1@example.com", "unknown2@example.com"], BODY))
    assert {r.status for r in done.result.recipients} == {"bounced"}
    assert loop.res.of(EndOfData) == [] and loop.res.body == b""
    # The connection is reused: RSET, then a message that goes through.
    done = loop.event(loop.cc.send_mail("a@example.org", ["bob@example.com"], b"second\r\n"))
    assert statuses(done.result) == [("bob@example.com", "sent", "2.0.0")]
    assert loop.res.body == b"second\r\n"


def test_interop_size_limit_of_the_server():
    loop = Loop(server={"message_size_limit": 100})
    assert loop.hello().capabilities.size == 100
    [r] = loop.event(loop.cc.send_mail("a@example.org", ["b@example.com"], b"x" * 200)
                     ).result.recipients
    assert r.dsn == "5.3.4" and loop.srv.counts == {"ehlo": (1, 1)}


def test_interop_helo_fallback():
    def no_ehlo(conn, event):
        from mailsys.smtp import Helo
        if isinstance(event, Helo) and event.extended:
            return Reply(502, "5.5.1", "Error: command not implemented")
        return None
    loop = Loop(no_ehlo)
    assert isinstance(loop.hello(), EhloRejected)
    assert loop.event(loop.cc.helo()).capabilities == Capabilities()
    assert loop.event(loop.cc.send_mail("a@example.org", ["b@example.com"], b"..\r\n.\r\n")
                      ).result.delivered
    assert loop.res.body == b"..\r\n.\r\n"


body_lines = st.lists(st.one_of(
    st.binary(max_size=80).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    st.sampled_from([b".", b"..", b". ", b".\r", b"x\ry", b"", b"\xff\xfe", b"." * 5]),
    st.integers(min_value=900, max_value=5000).map(lambda n: b"." + b"L" * n),
), max_size=30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body_lines, st.booleans(), st.booleans())
def test_interop_body_round_trip(lines, final_crlf, pipelining):
    content = b"\r\n".join(lines) + (b"\r\n" if final_crlf and lines else b"")
    loop = Loop(server={"pipelining": pipelining})
    loop.hello()
    done = loop.event(loop.cc.send_mail("a@example.org", ["b@example.com"], content))
    assert done.result.delivered
    expected = content if not content or content.endswith(b"\r\n") else content + b"\r\n"
    assert loop.res.body == expected
    [end] = loop.res.of(EndOfData)
    assert end.size == len(expected) and not end.bare_lf


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=300))
def test_interop_any_bytes_arrive_normalized(content):
    loop = Loop()
    loop.hello()
    assert loop.event(loop.cc.send_mail("a@example.org", ["b@example.com"], content)
                      ).result.delivered
    normalized = content.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if normalized and not normalized.endswith(b"\r\n"):
        normalized += b"\r\n"
    assert loop.res.body == normalized


@pytest.mark.parametrize("lines, esmtp", [
    (("220 mx.example ESMTP Postfix",), True),
    (("220 mx.example esmtp",), True),
    (("220 mx.example Microsoft SMTP service",), False),
    (("220 ESMTP mx.example",), True),             # the first word counts too
    (("220 ESMTP",), True),
    (("220 esmtp.example Ready",), False),
    (("220-mx.example", "220 ESMTP ready"), True),
    (("220 mx.example ESMTPS",), False),           # a word, not a part of one
])
def test_says_esmtp_is_postfix_greeting_test(lines, esmtp):
    from mailsys.smtp.client import says_esmtp
    from mailsys.smtp._client_reply import Response
    reader = ReplyReader(1000)
    reader.feed("".join(f"{x}\r\n" for x in lines).encode())
    response = reader.next_reply()
    assert isinstance(response, Response)
    assert says_esmtp(response) is esmtp


def test_says_esmtp_skips_a_first_word_that_is_our_own_name():
    # smtp_proto.c: the first word is the loop check's when it is
    # $myhostname, and only then not the ESMTP test's.
    from mailsys.smtp.client import says_esmtp
    from mailsys.smtp._client_reply import Response
    reader = ReplyReader(1000)
    reader.feed(b"220 ESMTP\r\n")
    response = reader.next_reply()
    assert isinstance(response, Response)
    assert says_esmtp(response, "esmtp") is False
    assert says_esmtp(response, "mx.example") is True
