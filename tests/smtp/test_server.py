"""ServerConnection: every command, its replies and its error paths (bytes in, events out)."""

from __future__ import annotations

import pytest
from _smtp_testlib import HOST, QID, TRANSACTION, connect, run

from mailsys.smtp import (
    NEED_DATA, PAUSED, DataChunk, DataStart, EndOfData, Etrn, Helo, LocalProtocolError,
    MailFrom, Noop, Quit, RcptTo, RemoteProtocolError, Reply, Rset, ServerConnection, Settings,
    State, Vrfy, replies,
)

STEPS = [None, 1, 7]
EHLO = b"EHLO client.example.org\r\n"
MAIL = b"MAIL FROM:<alice@example.com>\r\n"
RCPT = b"RCPT TO:<bob@example.com>\r\n"


def last_reply(res) -> str:
    return res.replies[-1]


@pytest.mark.parametrize("step", STEPS)
def test_full_transaction(step):
    res = run(TRANSACTION, step=step)
    assert res.replies == [
        f"250-{HOST}", "250-PIPELINING", "250-SIZE 10240000", "250-VRFY",
        "250-ENHANCEDSTATUSCODES", "250-8BITMIME", "250-DSN", "250-SMTPUTF8", "250 CHUNKING",
        "250 2.1.0 Ok", "250 2.1.5 Ok", "250 2.1.5 Ok",
        "354 End data with <CR><LF>.<CR><LF>",
        f"250 2.0.0 Ok: queued as {QID}", "221 2.0.0 Bye",
    ]
    assert res.body == b"Subject: hi\r\n\r\n.leading dot\r\nbody\r\n"
    mail = res.of(MailFrom)[0]
    assert (mail.address, mail.size) == ("alice@example.com", 100)
    rcpts = res.of(RcptTo)
    assert [r.address for r in rcpts] == ["bob@example.com", "carol@example.com"]
    assert rcpts[1].notify == ("SUCCESS", "FAILURE")
    assert res.of(EndOfData) == [EndOfData(len(res.body), False)]
    assert res.conn.closed
    assert res.conn.command_stats() == "ehlo=1 mail=1 rcpt=2 data=1 quit=1 commands=6"


def test_trailing_data_after_quit_is_ignored():
    res = run(TRANSACTION + b"NOOP\r\nRSET\r\n")
    assert res.replies[-1] == "221 2.0.0 Bye"
    assert not res.of(Noop)


def test_greeting_must_come_first():
    conn = ServerConnection(Settings(hostname=HOST))
    conn.receive_data(b"EHLO x\r\n")
    assert conn.next_event() is PAUSED   # pregreet bytes wait for the banner
    assert conn.send(replies.greeting("mx ESMTP")) == b"220 mx ESMTP\r\n"
    assert conn.next_event() == Helo("x", True)


def test_421_greeting_closes():
    conn = ServerConnection(Settings(hostname=HOST))
    out = conn.send(replies.too_many_connections(HOST, "192.0.2.1"))
    assert out == f"421 4.7.0 {HOST} Error: too many connections from 192.0.2.1\r\n".encode()
    assert conn.closed
    assert conn.command_stats() == "commands=0/0"


def test_paused_until_reply_sent():
    conn, _ = connect()
    conn.receive_data(EHLO + MAIL)
    assert isinstance(conn.next_event(), Helo)
    assert conn.next_event() is PAUSED
    conn.send(conn.default_reply())
    assert isinstance(conn.next_event(), MailFrom)


def test_send_without_owed_reply_is_local_error():
    conn, _ = connect()
    with pytest.raises(LocalProtocolError):
        conn.send(replies.OK)
    assert conn.next_event() is NEED_DATA


def test_wrong_kind_of_reply_is_local_error():
    conn, _ = connect()
    conn.receive_data(MAIL)
    conn.next_event()
    with pytest.raises(LocalProtocolError):
        conn.send(replies.START_DATA)   # 354 to MAIL
    conn.send(replies.MAIL_OK)          # still owed, can be answered properly
    assert conn.state is State.MAIL


def test_end_of_data_has_no_default():
    conn, _ = connect()
    conn.receive_data(MAIL + RCPT + b"DATA\r\n")
    for _ in range(3):
        conn.next_event()
        conn.send(conn.default_reply())
    conn.receive_data(b"x\r\n.\r\n")
    assert conn.next_event() == DataChunk(b"x\r\n")
    assert conn.next_event() == EndOfData(3)
    with pytest.raises(LocalProtocolError):
        conn.default_reply()


@pytest.mark.parametrize("step", STEPS)
def test_helo(step):
    res = run(b"HELO client\r\nHELO\r\nEHLO\r\n", step=step)
    assert res.replies == [f"250 {HOST}", "501 Syntax: HELO hostname", "501 Syntax: EHLO hostname"]
    assert res.conn.helo_name == "client" and not res.conn.esmtp
    assert res.conn.command_stats() == "helo=1/2 ehlo=0/1 commands=1/3"


def test_the_helo_name_kept_is_printable_and_neutered():
    # smtpd.c ehlo_cmd(): printable(name, '?') then neuter(NEUTER_CHARACTERS);
    # Postfix 3.7.11 logged "helo=<a?b>" for "EHLO a b" (seen live). The
    # event, which the HELO check and the milters get, keeps the name as sent.
    res = run(b'EHLO a b<c>"d\x01\r\n')
    assert res.of(Helo)[0].name == 'a b<c>"d\x01'
    assert res.conn.helo_name == "a?b?c??d?"


def test_ehlo_lists_extensions_in_postfix_order():
    s = dict(etrn=True, starttls=True, auth_mechanisms=("PLAIN", "LOGIN"), message_size_limit=0)
    res = run(EHLO, **s)
    assert res.replies == [f"250-{HOST}", "250-PIPELINING", "250-SIZE", "250-VRFY", "250-ETRN",
                           "250-STARTTLS", "250-AUTH PLAIN LOGIN", "250-ENHANCEDSTATUSCODES",
                           "250-8BITMIME", "250-DSN", "250-SMTPUTF8", "250 CHUNKING"]


def test_ehlo_minimal():
    res = run(EHLO, pipelining=False, size=False, vrfy=False, enhancedstatuscodes=False,
              eightbitmime=False, dsn=False, smtputf8=False, chunking=False)
    assert res.replies == [f"250 {HOST}"]


def test_ehlo_hides_auth_before_tls_when_tls_auth_only():
    res = run(EHLO, auth_mechanisms=("PLAIN",), tls_auth_only=True, starttls=True)
    assert "250-AUTH PLAIN" not in res.replies and "250-STARTTLS" in res.replies


def test_helo_resets_transaction():
    res = run(MAIL + RCPT + EHLO + RCPT)
    assert res.replies[-1] == "503 5.5.1 Error: need MAIL command"


@pytest.mark.parametrize("line,reply", [
    (b"MAIL FROM:<>", "250 2.1.0 Ok"),
    (b"MAIL FROM: <a@b.example>", "250 2.1.0 Ok"),
    (b"mail from:<a@b.example>", "250 2.1.0 Ok"),
    (b"MAIL FROM:a@b.example", "250 2.1.0 Ok"),
    (b'MAIL FROM:<"john doe"@b.example>', "250 2.1.0 Ok"),
    (b"MAIL FROM:<@r1,@r2:a@b.example>", "250 2.1.0 Ok"),
    (b"MAIL FROM:<a@[192.0.2.1]>", "250 2.1.0 Ok"),
    (b"MAIL FROM:<postmaster>", "250 2.1.0 Ok"),
    (b"MAIL FROM:<a@b> BODY=8BITMIME SIZE=10 RET=HDRS ENVID=x+2By", "250 2.1.0 Ok"),
    # Postfix 3.7 offers CHUNKING without BINARYMIME.
    (b"MAIL FROM:<a@b> BODY=BINARYMIME", "555 5.5.4 Unsupported option: BODY=BINARYMIME"),
    (b"MAIL FROM:<bad address>", "501 5.1.7 Bad sender address syntax"),
    (b"MAIL FROM:<a@b", "501 5.1.7 Bad sender address syntax"),
    (b"MAIL FROM:<a\x00@b.c>", "501 5.1.7 Bad sender address syntax"),   # "<a" to Postfix
    (b"MAIL FROM:<a@-b.>", "501 5.1.7 Bad sender address syntax"),
    (b"MAIL FROM", "501 5.5.4 Syntax: MAIL FROM:<address>"),
    (b"MAIL TO:<a@b>", "501 5.5.4 Syntax: MAIL FROM:<address>"),
    (b"MAIL", "501 5.5.4 Syntax: MAIL FROM:<address>"),
    (b"MAIL FROM:<a@b> X=Y", "555 5.5.4 Unsupported option: X=Y"),
    (b"MAIL FROM:<a@b> NOTIFY=NEVER", "555 5.5.4 Unsupported option: NOTIFY=NEVER"),
    (b"MAIL FROM:<a@b> SIZE=abc", "501 5.5.4 Bad message size syntax"),
    (b"MAIL FROM:<a@b> SIZE=10240001", "552 5.3.4 Message size exceeds fixed limit"),
    (b"MAIL FROM:<a@b> SIZE=10240000", "250 2.1.0 Ok"),
    (b"MAIL FROM:<a@b> BODY=9BIT", "555 5.5.4 Unsupported option: BODY=9BIT"),
    (b"MAIL FROM:<a@b> SIZE", "555 5.5.4 Unsupported option: SIZE"),
    (b"MAIL FROM:<a@b> SIZE=99999999999999999999", "552 5.3.4 Message size exceeds file system imposed limit"),
    (b"MAIL FROM:<a@b> RET=FULL RET=HDRS", "501 5.5.4 Bad RET parameter syntax"),
    (b"MAIL FROM:<a@b> ENVID=a ENVID=b", "501 5.5.4 Bad ENVID parameter syntax"),
    (b"MAIL FROM:<a@b> ENVID=+00", "501 5.5.4 Bad ENVID parameter syntax"),
    # Postfix 3.7.11 without SASL: AUTH= is accepted and has no effect.
    (b"MAIL FROM:<a@b> AUTH=<>", "250 2.1.0 Ok"),
    (b"MAIL FROM:<a@b> AUTH=foo@bar", "250 2.1.0 Ok"),
    (b"MAIL FROM:<a@b> AUTH=x AUTH=<>", "503 5.5.4 Error: multiple AUTH= options"),
    (b"MAIL FROM:<a@b> RET=ALL", "501 5.5.4 Bad RET parameter syntax"),
    # smtpd.c leaves the value to each parameter's check (seen live with
    # Postfix 3.7.11): ENVID takes any printable text but a bad "+".
    (b"MAIL FROM:<a@b> ENVID=a=b", "250 2.1.0 Ok"),
    (b'MAIL FROM:<a@b> ENVID="x y"', "250 2.1.0 Ok"),
    (b"MAIL FROM:<a@b> ENVID=x+41", "250 2.1.0 Ok"),
    (b"MAIL FROM:<a@b> ENVID=+4", "501 5.5.4 Bad ENVID parameter syntax"),
    (b"MAIL FROM:<a@b> ENVID=a\x01b", "501 5.5.4 Bad ENVID parameter syntax"),
    (b"MAIL FROM:<a@b> SIZE=1=2", "501 5.5.4 Bad message size syntax"),
    (b"MAIL FROM:<a@b> RET=HDRS=1", "501 5.5.4 Bad RET parameter syntax"),
    (b"MAIL FROM:<a@b> BODY=8BITMIME=", "555 5.5.4 Unsupported option: BODY=8BITMIME="),
    (b"MAIL FROM:<a@b> SMTPUTF8=x", "555 5.5.4 Unsupported option: SMTPUTF8=x"),
    (b'MAIL FROM:<a@b> X-FOO="a b"', '555 5.5.4 Unsupported option: X-FOO="a b"'),
    # Postfix 3.7.11 does not enforce RFC 3461's 100 characters.
    (b"MAIL FROM:<a@b> ENVID=" + b"x" * 200, "250 2.1.0 Ok"),
    # An empty value is that parameter's error (smtpd.c: "SIZE=" etc. by prefix).
    (b"MAIL FROM:<a@b> SIZE=", "501 5.5.4 Bad message size syntax"),
    (b"MAIL FROM:<a@b> ENVID=", "501 5.5.4 Bad ENVID parameter syntax"),
    (b"MAIL FROM:<a@b> RET=", "501 5.5.4 Bad RET parameter syntax"),
    (b"MAIL FROM:<a@b> BODY=", "555 5.5.4 Unsupported option: BODY="),
    (b"MAIL FROM:<a@b> X=", "555 5.5.4 Unsupported option: X="),
    (b"MAIL FROM:<a@b> RET=FULLY", "501 5.5.4 Bad RET parameter syntax"),
    (b"MAIL FROM:<a@b> ENVID=+C3+BC", "501 5.5.4 Bad ENVID parameter syntax"),
    ("MAIL FROM:<jöran@b.example>".encode(), "250 2.1.0 Ok"),   # strict_smtputf8 = no
    ("MAIL FROM:<jöran@bücher.example> SMTPUTF8".encode(), "250 2.1.0 Ok"),
])
def test_mail_from(line, reply):
    res = run(line + b"\r\n")
    assert res.replies == [reply]


# Postfix 3.7.11, strict_rfc821_envelopes = no and yes: each reply seen
# live, each address as from=<...> in its log (None: 501 5.1.7).
@pytest.mark.parametrize("path,sloppy,strict", [
    (b"<<a@b.example>>", "a@b.example", "a@b.example"),
    (b"<a@b.example>>", "a@b.example", "a@b.example"),
    (b"a@b.example>", "a@b.example", None),
    (b"a@b.example", "a@b.example", None),
    (b"<x@a@b.example>", '"x@a"@b.example', '"x@a"@b.example'),
    (b"<a\\@b@c.example>", '"a@b"@c.example', '"a@b"@c.example'),
    (b"<a(comment)@b.example>", "a@b.example", None),
    (b"<a@b>(c)", "a@b", None),
    (b"<h.@b.example>", '"h."@b.example', '"h."@b.example'),
    (b"<>x", "x", None),
    (b'"a b"@c.example', '"a b"@c.example', None),
    (b"<@a.example:>", "", ""),
    (b"<a@b.example,c@d.example>", None, None),
    (b"<a@b.example>BODY=8BITMIME", None, None),
])
def test_mail_from_takes_what_postfix_rfc822_parser_takes(path, sloppy, strict):
    for strict_rfc821, address in ((False, sloppy), (True, strict)):
        res = run(b"MAIL FROM:" + path + b"\r\n", strict_rfc821_envelopes=strict_rfc821)
        if address is None:
            assert res.replies == ["501 5.1.7 Bad sender address syntax"]
        else:
            assert res.replies == ["250 2.1.0 Ok"] and res.of(MailFrom)[0].address == address


def test_a_path_that_never_closes_is_refused_without_the_illegal_syntax_warning():
    """smtpd.c: SMTPD_TOK_ERROR answers 501 before extract_addr(), which
    logs "Illegal address syntax" (seen live: no warning for these two)."""
    for line, reply in ((b"MAIL FROM:<a@b.example", "501 5.1.7 Bad sender address syntax"),
                        (b'RCPT TO:<"a@b.example>', "501 5.1.3 Bad recipient address syntax")):
        conn, _ = connect()
        if line.startswith(b"RCPT"):
            conn.receive_data(MAIL)
            conn.next_event()
            conn.send(Reply(250, "2.1.0", "Ok"))
        conn.receive_data(line + b"\r\n")
        with pytest.raises(RemoteProtocolError) as e:
            conn.next_event()
        assert str(e.value.reply) == reply and not str(e.value).startswith("illegal")


def test_rcpt_to_takes_what_postfix_rfc822_parser_takes():
    res = run(MAIL + b"RCPT TO:<<c@d.example>>\r\nRCPT TO:c@d.example> NOTIFY=NEVER\r\n"
              b"RCPT TO:<>\r\n")
    assert res.replies == ["250 2.1.0 Ok", "250 2.1.5 Ok", "250 2.1.5 Ok",
                           "501 5.1.3 Bad recipient address syntax"]
    assert [(r.address, r.notify) for r in res.of(RcptTo)] == [("c@d.example", None),
                                                                 ("c@d.example", ("NEVER",))]


def test_size_refusal_names_the_sender():
    """smtpd logs from=<a> on the reject line of a MAIL refused for its SIZE."""
    conn, _ = connect()
    conn.receive_data(b"MAIL FROM:<a@b.example> SIZE=10240001\r\nMAIL FROM:<a@b> SIZE=x\r\n")
    errors = []
    for _ in range(2):
        with pytest.raises(RemoteProtocolError) as e:
            conn.next_event()
        errors.append(e.value)
        conn.send(e.value.reply)
    assert [(err.reply.code, err.sender) for err in errors] == [(552, "a@b.example"), (501, None)]


def test_addresses_that_begin_with_a_minus_are_bad_syntax_unless_allow_min_user():
    """Postfix 3.7.11 with allow_min_user = no answered these as below and logged
    "warning: Illegal address syntax from unknown[127.0.0.1] in RCPT command: <"-u"@x>"."""
    session = (b'MAIL FROM:<-a@x.example>\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<-u@y.example>\r\n'
               b'RCPT TO:<"-u"@y.example>\r\nRCPT TO:<-u>\r\nRCPT TO:<u-@y.example>\r\n')
    res = run(session)
    assert res.replies == ["501 5.1.7 Bad sender address syntax", "250 2.1.0 Ok"] \
        + ["501 5.1.3 Bad recipient address syntax"] * 3 + ["250 2.1.5 Ok"]
    res = run(session, allow_min_user=True)
    assert res.replies == ["250 2.1.0 Ok", "503 5.5.1 Error: nested MAIL command"] + ["250 2.1.5 Ok"] * 4


def test_null_and_numeric_domains_follow_resolve_null_domain_and_resolve_numeric_domain():
    # Postfix 3.7.11: both "no": 501 5.1.3 for <u@>, <u@1.2.3.4>, <u@123>;
    # both "yes": 250 for the first two, still 501 for <u@123>.
    session = (b"RCPT TO:<u@>\r\nRCPT TO:<u@1.2.3.4>\r\nRCPT TO:<u@123>\r\n"
               b"RCPT TO:<u@[1.2.3.4]>\r\nRCPT TO:<u@example.123>\r\n")
    bad = "501 5.1.3 Bad recipient address syntax"
    res = run(MAIL + session)
    assert res.replies == ["250 2.1.0 Ok", bad, bad, bad, "250 2.1.5 Ok", "250 2.1.5 Ok"]
    res = run(MAIL + session, resolve_null_domain=True, resolve_numeric_domain=True)
    assert res.replies == ["250 2.1.0 Ok", "250 2.1.5 Ok", "250 2.1.5 Ok", bad,
                           "250 2.1.5 Ok", "250 2.1.5 Ok"]
    assert [r.address for r in res.of(RcptTo)][:2] == ["u@", "u@1.2.3.4"]
    assert run(b"MAIL FROM:<a@1.2.3.4>\r\n").replies == ["501 5.1.7 Bad sender address syntax"]


def test_mail_and_rcpt_domains_are_host_names_or_address_literals():
    """smtpd_check_addr() as for VRFY: Postfix 3.7.11 answered these 501
    (and logged "Illegal address syntax ... in MAIL command"), where the
    same addresses with a 63-character label, a good literal or SMTPUTF8
    for a UTF-8 domain got 250."""
    bad_mail, bad_rcpt = "501 5.1.7 Bad sender address syntax", "501 5.1.3 Bad recipient address syntax"
    for domain in ("[300.0.0.1]", "[1.2.3]", "[IPv6:zz]", "[foo]", "y" * 64 + ".net",
                   ".".join(["y"] * 130) + ".net", "x" * 300 + ".com", "é.net"):
        line = f"MAIL FROM:<a@{domain}>\r\n".encode()
        assert run(line).replies == [bad_mail], domain
        assert run(MAIL + f"RCPT TO:<u@{domain}>\r\n".encode()).replies == [
            "250 2.1.0 Ok", bad_rcpt], domain
    for domain in ("[192.0.2.1]", "[IPv6:2001:db8::1]", "y" * 63 + ".net", "b.example."):
        assert run(f"MAIL FROM:<a@{domain}>\r\n".encode()).replies == ["250 2.1.0 Ok"], domain
    assert run("MAIL FROM:<a@é.net> SMTPUTF8\r\nRCPT TO:<u@é.net>\r\n".encode()).replies == [
        "250 2.1.0 Ok", "250 2.1.5 Ok"]
    assert run(b"MAIL FROM:<>\r\n").replies == ["250 2.1.0 Ok"]


def test_vrfy_refuses_what_the_resolver_calls_bad_syntax():
    # Postfix 3.7.11: "VRFY <-foo@example.net>", "VRFY -foo" and "VRFY <u@1.2.3.4>"
    # got "501 5.1.3 Bad recipient address syntax", "VRFY <u@example.net>"
    # "252 2.0.0 <u@example.net>"; the log said "warning: Illegal address
    # syntax from unknown[127.0.0.1] in VRFY command: -foo".
    res = run(b"VRFY <-foo@example.net>\r\nVRFY -foo\r\nVRFY <u@1.2.3.4>\r\n"
              b"VRFY <u@example.net>\r\n")
    assert res.replies == ["501 5.1.3 Bad recipient address syntax"] * 3 + [
        "252 2.0.0 <u@example.net>"]


def test_a_refused_address_carries_the_path_for_the_log_line():
    conn, _ = connect()
    conn.receive_data(b"MAIL FROM: <-a@x.example>\r\n")
    with pytest.raises(RemoteProtocolError) as e:
        conn.next_event()
    assert str(e.value) == "illegal address syntax: <-a@x.example>"


def test_mail_from_fields():
    res = run(b"MAIL FROM:<@a.example,@b.example:\"j\"@c.example> BODY=8bitmime SIZE=5"
              b" RET=full ENVID=QQ+2B1 SMTPUTF8\r\n")
    mail = res.of(MailFrom)[0]
    assert mail.address == "j@c.example"
    assert (mail.body, mail.size, mail.ret, mail.envid, mail.smtputf8) == (
        "8BITMIME", 5, "FULL", "QQ+1", True)
    assert mail.params[0] == ("BODY", "8bitmime")


def test_null_sender():
    res = run(b"MAIL FROM:<>\r\n")
    assert res.of(MailFrom)[0].address == ""


def test_size_unlimited_accepts_any_size():
    res = run(b"MAIL FROM:<a@b> SIZE=99999999999\r\n", message_size_limit=0)
    assert res.replies == ["250 2.1.0 Ok"]


def test_mail_errors_in_state():
    res = run(MAIL + MAIL + RCPT + MAIL)
    assert res.replies == ["250 2.1.0 Ok", "503 5.5.1 Error: nested MAIL command", "250 2.1.5 Ok",
                           "503 5.5.1 Error: nested MAIL command"]


def test_helo_required():
    res = run(MAIL + b"HELO c\r\n" + MAIL, helo_required=True)
    assert res.replies == ["503 5.5.1 Error: send HELO/EHLO first", f"250 {HOST}", "250 2.1.0 Ok"]


def test_auth_param():
    # Postfix 3.7.11 logged "client=unknown[127.0.0.1], sasl_sender=<s+2Bq@y.example>"
    # for AUTH=<s+2Bq@y.example>: the value as sent, not xtext-decoded.
    res = run(b"MAIL FROM:<a@b> AUTH=<s+2Bq@y.example>\r\nRSET\r\n"
              b"MAIL FROM:<a@b> AUTH=<>\r\n", auth_mechanisms=("PLAIN",))
    assert [m.auth for m in res.of(MailFrom)] == ["<s+2Bq@y.example>", None]


def test_strict_smtputf8():
    res = run("MAIL FROM:<jöran@b.example>\r\n".encode(), strict_smtputf8=True)
    assert res.replies == ["553 5.6.7 Must declare SMTPUTF8 to send unicode address"]
    res = run("MAIL FROM:<a@b>\r\nRCPT TO:<ü@c>\r\n".encode(), strict_smtputf8=True)
    assert res.replies[-1] == "553 5.6.7 Must declare SMTPUTF8 to send unicode address"


@pytest.mark.parametrize("strict", [True, False])
def test_vrfy_takes_smtputf8_and_strict_smtputf8(strict):
    # Postfix 3.7.11, smtputf8_enable = yes: "VRFY \u00fc@x.example" got 553 5.6.7
    # with strict_smtputf8 = yes (252 with no); "VRFY <\u00fc@x.example> SMTPUTF8"
    # got "252 2.0.0 <\u00fc@x.example>" either way.
    res = run("VRFY ü@x.example\r\nVRFY <ü@x.example> SMTPUTF8\r\n"
              "VRFY <a@x.example> smtputf8\r\n".encode(), strict_smtputf8=strict)
    assert res.replies == [
        "553 5.6.7 Must declare SMTPUTF8 to send unicode address" if strict
        else "252 2.0.0 ü@x.example", "252 2.0.0 <ü@x.example>", "252 2.0.0 <a@x.example>"]


def test_vrfy_syntax_names_smtputf8_when_it_is_enabled():
    # Postfix 3.7.11: with smtputf8_enable = yes "VRFY" and "VRFY SMTPUTF8" got
    # "501 5.5.4 Syntax: VRFY address [SMTPUTF8]" and "VRFY a@x.example<TAB>SMTPUTF8"
    # "252 2.0.0 a@x.example"; with no, "VRFY" got "501 5.5.4 Syntax: VRFY
    # address" and "VRFY SMTPUTF8" "252 2.0.0 SMTPUTF8".
    res = run(b"VRFY\r\nVRFY SMTPUTF8\r\nVRFY a@x.example\tSMTPUTF8\r\n")
    assert res.replies == ["501 5.5.4 Syntax: VRFY address [SMTPUTF8]"] * 2 + [
        "252 2.0.0 a@x.example"]
    res = run(b"VRFY\r\nVRFY SMTPUTF8\r\n", smtputf8=False)
    assert res.replies == ["501 5.5.4 Syntax: VRFY address", "252 2.0.0 SMTPUTF8"]


def test_eight_bit_commands_pass_without_smtputf8():
    # Postfix 3.7.11 with smtputf8_enable = no answered "250 bench.localdomain",
    # "250 2.1.0 Ok", "250 2.1.5 Ok" to HELO \xfc, MAIL FROM:<\xfc@x.example>,
    # RCPT TO:<\xfc@y.example>, and "555 5.5.4 Unsupported option: SMTPUTF8"
    # to MAIL FROM:<a@x.example> SMTPUTF8; with smtputf8_enable = yes each
    # 8-bit line got "500 5.5.2 Error: bad UTF-8 syntax".
    session = (b"HELO \xfc\r\nMAIL FROM:<\xfc@x.example>\r\nRCPT TO:<\xfc@y.example>\r\n"
               b"RSET\r\nMAIL FROM:<a@x.example> SMTPUTF8\r\n")
    res = run(session, smtputf8=False)
    assert res.replies == [f"250 {HOST}", "250 2.1.0 Ok", "250 2.1.5 Ok", "250 2.0.0 Ok",
                           "555 5.5.4 Unsupported option: SMTPUTF8"]
    # The bytes travel as surrogate escapes and come back out unchanged.
    assert res.of(MailFrom)[0].address.encode("utf-8", "surrogateescape") == b"\xfc@x.example"
    assert res.of(RcptTo)[0].address.encode("utf-8", "surrogateescape") == b"\xfc@y.example"
    res = run(session, smtputf8=True)
    assert res.replies == ["500 5.5.2 Error: bad UTF-8 syntax"] * 3 + ["250 2.0.0 Ok", "250 2.1.0 Ok"]


@pytest.mark.parametrize("line,reply", [
    (b"RCPT TO:<b@c.example>", "250 2.1.5 Ok"),
    (b"RCPT TO: <b@c.example>", "250 2.1.5 Ok"),
    (b"rcpt to:b@c.example", "250 2.1.5 Ok"),
    (b"RCPT TO:<Postmaster>", "250 2.1.5 Ok"),
    (b"RCPT TO:<>", "501 5.1.3 Bad recipient address syntax"),
    (b"RCPT TO:<a b@c>", "501 5.1.3 Bad recipient address syntax"),
    (b"RCPT FROM:<b@c>", "501 5.5.4 Syntax: RCPT TO:<address>"),
    (b"RCPT TO:<b@c> NOTIFY=NEVER", "250 2.1.5 Ok"),
    (b"RCPT TO:<b@c> NOTIFY=SOMETIMES", "501 5.5.4 Error: Bad NOTIFY parameter syntax"),
    (b"RCPT TO:<b@c> ORCPT=rfc822;b+40c", "250 2.1.5 Ok"),
    (b"RCPT TO:<b@c> ORCPT=nonsense", "501 5.5.4 Error: Bad ORCPT parameter syntax"),
    (b"RCPT TO:<b@c> SIZE=1", "555 5.5.4 Unsupported option: SIZE=1"),
    ("RCPT TO:<ü@c>".encode(), "250 2.1.5 Ok"),
    (b"RCPT TO:<b@c> NOTIFY=NEVER NOTIFY=DELAY", "501 5.5.4 Error: Bad NOTIFY parameter syntax"),
    # Postfix 3.7.11: NEVER only alone, and an empty value is that parameter's error.
    (b"RCPT TO:<b@c> NOTIFY=NEVER,SUCCESS", "501 5.5.4 Error: Bad NOTIFY parameter syntax"),
    (b"RCPT TO:<b@c> NOTIFY=SUCCESS,NEVER", "501 5.5.4 Error: Bad NOTIFY parameter syntax"),
    (b"RCPT TO:<b@c> NOTIFY=success,delay", "250 2.1.5 Ok"),
    (b"RCPT TO:<b@c> NOTIFY=", "501 5.5.4 Error: Bad NOTIFY parameter syntax"),
    (b"RCPT TO:<b@c> ORCPT=", "501 5.5.4 Error: Bad ORCPT parameter syntax"),
    ("RCPT TO:<b@c> ORCPT=utf-8;ü@c".encode(), "250 2.1.5 Ok"),
    # Seen live with Postfix 3.7.11 (smtpd.c rcpt_cmd(), dsn_notify_mask()):
    (b"RCPT TO:<b@c> ORCPT=rfc822;a=b@x.example", "250 2.1.5 Ok"),
    (b'RCPT TO:<b@c> ORCPT=rfc822;"a b"@x.example', "250 2.1.5 Ok"),
    (b"RCPT TO:<b@c> ORCPT=rfc822;a+41@x", "250 2.1.5 Ok"),
    (b"RCPT TO:<b@c> ORCPT=rfc822;a+4@x", "501 5.5.4 Error: Bad ORCPT parameter syntax"),
    (b"RCPT TO:<b@c> ORCPT=;a@x", "501 5.5.4 Error: Bad ORCPT parameter syntax"),
    (b"RCPT TO:<b@c> ORCPT=rfc822;", "250 2.1.5 Ok"),
    (b"RCPT TO:<b@c> ORCPT=rfc822", "501 5.5.4 Error: Bad ORCPT parameter syntax"),
    (b"RCPT TO:<b@c> ORCPT=x-y;a@x", "250 2.1.5 Ok"),
    (b"RCPT TO:<b@c> ORCPT=rfc822;a\x01@x", "250 2.1.5 Ok"),
    (b"RCPT TO:<b@c> NOTIFY=success,,delay", "250 2.1.5 Ok"),
    (b"RCPT TO:<b@c> NOTIFY=success, delay", "555 5.5.4 Unsupported option: delay"),
    (b"RCPT TO:<b@c> ORCPT=rfc822;a@x ORCPT=rfc822;b@x", "501 5.5.4 Error: Bad ORCPT parameter syntax"),
    (b"RCPT TO:<b@c> NOTIFY=failure=1", "501 5.5.4 Error: Bad NOTIFY parameter syntax"),
])
def test_rcpt_to(line, reply):
    res = run(MAIL + line + b"\r\n")
    assert res.replies == ["250 2.1.0 Ok", reply]


def test_rcpt_orcpt_decoded():
    res = run(MAIL + b"RCPT TO:<b@c> ORCPT=rfc822;b+40c\r\n")
    assert res.of(RcptTo)[0].orcpt == ("rfc822", "b@c")


def test_rcpt_without_mail():
    res = run(RCPT)
    assert res.replies == ["503 5.5.1 Error: need MAIL command"]
    assert res.conn.command_stats() == "rcpt=0/1 commands=0/1"


def test_dsn_disabled_refuses_dsn_params():
    res = run(MAIL + b"RCPT TO:<b@c> NOTIFY=NEVER\r\n", dsn=False)
    assert res.replies[-1] == "501 5.7.1 DSN support is disabled"
    res = run(b"MAIL FROM:<a@b> RET=FULL\r\n", dsn=False)
    assert res.replies[-1] == "501 5.7.1 DSN support is disabled"


def test_recipient_limit_and_overshoot():
    data = MAIL + b"".join(b"RCPT TO:<r%d@example.com>\r\n" % i for i in range(5))
    res = run(data, recipient_limit=2, recipient_overshoot_limit=1)
    assert res.replies == ["250 2.1.0 Ok", "250 2.1.5 Ok", "250 2.1.5 Ok",
                           "452 4.5.3 Error: too many recipients",
                           "452 4.5.3 Error: too many recipients",
                           "452 4.5.3 Error: too many recipients"]
    # The first overshoot is not an error and counts as ok (smtpd.c rcpt_cmd).
    assert res.conn.error_count == 2
    assert res.conn.command_stats() == "mail=1 rcpt=3/5 commands=4/6"


@pytest.mark.parametrize("rate_first", [False, True])
def test_recipient_rate_may_overrule_the_core_refusal(rate_first):
    # smtpd.c rcpt_cmd() counts the recipient rate before it looks at the
    # address and the recipient limit: a 450 there is an error and uses up
    # no overshoot.
    conn, _ = connect(recipient_limit=1, recipient_overshoot_limit=1,
                      policy_first=frozenset({"rcpt"} if rate_first else ()))
    run(MAIL + RCPT, conn=conn)
    conn.receive_data(b"RCPT TO:<c@example.com>\r\nRCPT TO:<d d@example.com>\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    assert info.value.policy_first is rate_first
    assert info.value.reply == replies.TOO_MANY_RECIPIENTS
    if not rate_first:
        return
    conn.overrule()
    conn.send(Reply(450, "4.7.1", "Error: too many recipients from 192.0.2.1"))
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    assert info.value.policy_first and info.value.reply.code == 501
    conn.send(info.value.reply)
    res = run(b"RCPT TO:<e@example.com>\r\n", conn=conn)
    assert res.replies == ["452 4.5.3 Error: too many recipients"]
    assert conn.error_count == 2
    assert conn.command_stats() == "mail=1 rcpt=2/4 commands=3/5"
    with pytest.raises(LocalProtocolError):
        conn.overrule()


def test_policy_rejected_recipient_stats():
    def policy(conn, event):
        if isinstance(event, RcptTo) and event.address.startswith("bad"):
            return Reply(554, "5.7.1", f"<{event.address}>: Relay access denied")
        return None
    res = run(MAIL + b"RCPT TO:<bad@x>\r\n" + RCPT + b"DATA\r\nx\r\n.\r\nQUIT\r\n", policy=policy)
    assert res.replies[1] == "554 5.7.1 <bad@x>: Relay access denied"
    assert res.conn.command_stats() == "mail=1 rcpt=1/2 data=1 quit=1 commands=4/5"


@pytest.mark.parametrize("before,reply", [
    (b"", "503 5.5.1 Error: need RCPT command"),
    (MAIL, "554 5.5.1 Error: no valid recipients"),
])
def test_data_without_recipients(before, reply):
    res = run(before + b"DATA\r\n")
    assert res.replies[-1] == reply


def test_data_with_argument():
    res = run(MAIL + RCPT + b"DATA now\r\n")
    assert res.replies[-1] == "501 5.5.4 Syntax: DATA"


def test_data_rejected_by_policy_keeps_transaction():
    def policy(conn, event):
        return Reply(554, "5.7.1", "no") if isinstance(event, DataStart) else None
    res = run(MAIL + RCPT + b"DATA\r\n" + b"RSET\r\n", policy=policy)
    assert res.replies == ["250 2.1.0 Ok", "250 2.1.5 Ok", "554 5.7.1 no", "250 2.0.0 Ok"]


def test_several_transactions():
    one = MAIL + RCPT + b"DATA\r\nm\r\n.\r\n"
    res = run(one * 3)
    assert res.codes == [250, 250, 354, 250] * 3
    assert len(res.of(EndOfData)) == 3


@pytest.mark.parametrize("line,event,reply", [
    (b"RSET", Rset(), "250 2.0.0 Ok"),
    (b"NOOP", Noop(), "250 2.0.0 Ok"),
    (b"NOOP with text", Noop(), "250 2.0.0 Ok"),
    (b"NOOP\x00", Noop(), "250 2.0.0 Ok"),             # Postfix: the command ends at NUL
    (b"NOOP \x00junk", Noop(), "250 2.0.0 Ok"),
    (b"VRFY bob", Vrfy("bob", "bob"), "252 2.0.0 bob"),
    (b"QUIT", Quit(), "221 2.0.0 Bye"),
])
def test_simple_commands(line, event, reply):
    res = run(line + b"\r\n")
    assert res.events == [event]
    assert res.replies == [reply]


def test_help_is_an_unknown_command():
    # Postfix 3.7 has no HELP command (smtpd.c smtpd_cmd_table): it is
    # refused, counted and limited as every unknown command.
    res = run(b"HELP\r\nHELP MAIL\r\nNOOP\r\n")
    assert res.replies == ["500 5.5.2 Error: command not recognized"] * 2 + ["250 2.0.0 Ok"]
    assert res.conn.command_stats() == "noop=1 unknown=0/2 commands=1/3"
    assert res.conn.error_count == 2 and res.conn.where == "NOOP"


@pytest.mark.parametrize("line,reply", [
    (b"RSET x", "501 5.5.4 Syntax: RSET"),
    (b"VRFY", "501 5.5.4 Syntax: VRFY address [SMTPUTF8]"),      # smtputf8_enable = yes
    (b"XYZZY", "500 5.5.2 Error: command not recognized"),
    (b"", "500 5.5.2 Error: bad syntax"),
    (b"   ", "500 5.5.2 Error: bad syntax"),
    (b"\xff\xfe", "500 5.5.2 Error: bad UTF-8 syntax"),
    # Postfix 3.7.11 reads a command up to its first NUL byte.
    (b"\x00", "500 5.5.2 Error: bad syntax"),
    (b"\x00NOOP", "500 5.5.2 Error: bad syntax"),
    (b"NO\x00OP", "500 5.5.2 Error: command not recognized"),
    (b"ETRN example.com", "502 5.5.1 Error: command not implemented"),
    (b"STARTTLS", "502 5.5.1 Error: command not implemented"),
    (b"AUTH PLAIN", "503 5.5.1 Error: authentication not enabled"),
    (b"BDAT x", "521 5.5.4 Syntax: BDAT count [LAST]"),
])
def test_command_errors(line, reply):
    res = run(line + b"\r\n")
    assert res.replies == [reply]


def test_vrfy_disabled():
    assert run(b"VRFY bob\r\n", vrfy=False).replies == ["502 5.5.1 VRFY command is disabled"]


def test_discarded_keywords_leave_vrfy_etrn_and_xverp_working():
    # smtpd.c: smtpd_discard_ehlo_keywords hides VRFY, ETRN and XVERP from
    # the EHLO reply only; vrfy_cmd() refuses for disable_vrfy_command
    # alone, etrn_cmd() never, mail_cmd() takes XVERP from an authorized client.
    res = run(b"EHLO c\r\nVRFY <bob@example.com>\r\nETRN example.com\r\n"
              b"MAIL FROM:<a@example.com> XVERP\r\n", etrn=True, verp=True,
              vrfy_keyword=False, etrn_keyword=False, verp_keyword=False)
    assert not {"VRFY", "ETRN", "XVERP"} & {line[4:] for line in res.replies[:-3]}
    assert res.replies[-3:] == ["252 2.0.0 <bob@example.com>", "250 Queuing started",
                                "250 2.1.0 Ok"]


def test_etrn_enabled():
    res = run(b"ETRN\r\nETRN example.com\r\nETRN @example.org\r\nETRN bad_domain!\r\n"
              + MAIL + b"ETRN x\r\n", etrn=True)
    assert res.replies == ["500 Syntax: ETRN domain", "250 Queuing started", "250 Queuing started",
                           "501 Error: invalid parameter syntax", "250 2.1.0 Ok",
                           "503 Error: MAIL transaction in progress"]
    assert res.of(Etrn) == [Etrn("example.com"), Etrn("example.org")]
    res = run(b"ETRN example.com\r\n", etrn=True, helo_required=True)
    assert res.replies == ["503 Error: send HELO/EHLO first"]


def test_etrn_takes_an_address_literal_and_skips_only_at_or_hash():
    # smtpd.c etrn_cmd(): "@" or "#" is skipped; valid_hostname() or
    # valid_mailhost_literal().
    res = run(b"ETRN [192.0.2.1]\r\nETRN #[IPv6:2001:db8::1]\r\nETRN [300.0.0.1]\r\n"
              b"ETRN %example.org\r\n", etrn=True)
    assert res.replies == ["250 Queuing started", "250 Queuing started",
                           "501 Error: invalid parameter syntax",
                           "501 Error: invalid parameter syntax"]
    assert res.of(Etrn) == [Etrn("[192.0.2.1]"), Etrn("[IPv6:2001:db8::1]")]


def test_case_insensitive_verbs():
    res = run(b"ehlo c\r\nMaIl FrOm:<a@b>\r\nrcpt TO:<c@d>\r\ndata\r\n.\r\nquit\r\n")
    assert res.codes[-4:] == [250, 354, 250, 221]


@pytest.mark.parametrize("line", [b"From: Alice <alice@example.com>", b"Subject: x",
                                  b"CONNECT example.com:25 HTTP/1.0", b"GET / HTTP/1.1",
                                  b"post /x HTTP/1.1"])
def test_non_smtp_command_hangs_up(line):
    res = run(line + b"\r\nNOOP\r\n")
    assert res.replies == ["221 2.7.0 Error: I can break rules, too. Goodbye."]
    assert res.conn.closed
    assert res.conn.command_stats() == "unknown=0/1 commands=0/1"
    assert res.conn.where == "UNKNOWN"


@pytest.mark.parametrize("step", [None, 1, 100])
def test_a_command_over_the_limit_is_cut_there(step):
    """Postfix 3.7.11 (live): a command longer than line_length_limit runs
    cut at the limit, the rest of its line skipped; "request longer than
    2048: <30 characters>..." is for the log."""
    limit = 2048
    ok = b"NOOP " + b"x" * (limit - 5) + b"\r\n"
    long = b"NOOP " + b"x" * (limit - 4) + b"\r\n"
    huge = b"NOOP " + b"x" * 100000 + b"\r\n"
    mail = b"MAIL FROM:<a@b.example> " + b"y" * 3000 + b"\r\n"
    res = run(ok + long + huge + b"NOOP\r\n" + mail, step=step)
    assert res.replies == ["250 2.0.0 Ok"] * 4 + [
        "555 5.5.4 Unsupported option: " + "y" * (limit - len("MAIL FROM:<a@b.example> "))]
    assert res.conn.buffered == 0
    assert res.conn.long_request == "request longer than 2048: MAIL FROM:<a@b.example> yyyyyy..."
    assert res.conn.command_stats() == "mail=0/1 noop=4 commands=4/5"


def test_hard_error_limit():
    res = run(b"XX\r\n" * 25, hard_error_limit=3)
    assert res.replies == ["500 5.5.2 Error: command not recognized"] * 3 + [
        f"421 4.7.0 {HOST} Error: too many errors"]
    assert res.conn.closed
    assert res.conn.command_stats() == "unknown=0/3 commands=0/3"


def test_hard_error_limit_trips_without_more_input():
    conn, _ = connect(hard_error_limit=1)
    conn.receive_data(b"XX\r\n")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    conn.send(replies.NOT_RECOGNIZED)
    with pytest.raises(RemoteProtocolError) as e:
        conn.next_event()
    assert e.value.reply == replies.too_many_errors(HOST)
    conn.send(e.value.reply)
    assert conn.closed


def test_soft_error_limit_delay_flag():
    conn, _ = connect(soft_error_limit=2)
    assert not conn.should_delay()
    conn.receive_data(b"XX\r\nXX\r\nNOOP\r\n")
    for _ in range(2):
        with pytest.raises(RemoteProtocolError) as e:
            conn.next_event()
        assert not conn.should_delay()
        conn.send(e.value.reply)
    assert conn.error_count == 2
    assert isinstance(conn.next_event(), Noop)
    assert conn.should_delay()          # every reply from now on, even 250


def test_junk_command_limit():
    res = run(b"NOOP\r\n" * 6, junk_command_limit=2)
    assert res.codes == [250] * 6
    # junk_cmds++ > limit: the 4th, 5th and 6th NOOP each count one error.
    assert res.conn.error_count == 3


def test_noop_commands_are_answered_uncounted_but_are_junk():
    res = run(b"XYZZY anything\r\nxyzzy\r\nXYZZY\r\nNOOP\r\n", noop_commands=("xyzzy",),
              junk_command_limit=1, tls_required=True, starttls=True)
    assert res.replies == ["250 2.0.0 Ok"] * 4          # before STARTTLS too
    assert res.conn.command_stats() == "noop=1 commands=1"
    assert res.conn.error_count == 2                     # junk_cmds++ > 1: the 3rd and 4th


def test_command_filter_replaces_the_line_before_it_is_read():
    table = {"HELO": "HELO domain.invalid", "BOGUS x": "NOOP x"}
    res = run(b" \tHELO\r\nBOGUS x\r\nQUIT\r\n", command_filter=table.get)
    assert res.replies[0] == "250 mx.example.com" and res.codes[1:] == [250, 221]
    assert res.conn.helo_name == "domain.invalid"
    assert res.conn.command_stats() == "helo=1 noop=1 quit=1 commands=3"


def test_tls_required_refuses_mail_before_starttls():
    res = run(EHLO + MAIL + b"NOOP\r\n", tls_required=True, starttls=True)
    assert res.replies[-2:] == ["530 5.7.0 Must issue a STARTTLS command first", "250 2.0.0 Ok"]


def test_eof_mid_command_and_mid_data():
    res = run(b"NOOP\r\nNO", eof=True)
    assert res.codes == [250] and res.events[-1].__class__.__name__ == "ConnectionClosed"
    res = run(MAIL + RCPT + b"DATA\r\npartial body\r\n", eof=True)
    assert res.body == b"partial body"
    assert res.conn.where == "DATA content"
    assert res.conn.data_bytes == len(b"partial body\r\n")
    assert res.conn.command_stats() == "mail=1 rcpt=1 data=0/1 commands=2/3"


def test_receive_after_eof_is_local_error():
    conn, _ = connect()
    conn.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"NOOP\r\n")


def test_bare_lf_command_line_accepted():
    res = run(b"NOOP\nRSET\n")
    assert res.codes == [250, 250]


def test_reply_validation():
    with pytest.raises(LocalProtocolError):
        Reply(250, None, "a\r\nb")
    with pytest.raises(LocalProtocolError):
        Reply(99, None, "x")
    with pytest.raises(LocalProtocolError):
        Reply(250, "x.y", "x")
    assert Reply(550, "4.7.1", "x").enhanced == "5.7.1"
    assert Reply(250, "2.0.0", ("a", "b")).render() == b"250-2.0.0 a\r\n250 2.0.0 b\r\n"
    assert str(Reply(550, "5.1.1", "gone")) == "550 5.1.1 gone"


@pytest.mark.parametrize("data,opts,proto,received", [
    (b"HELO c\r\n", {}, "SMTP", "SMTP"),
    (b"EHLO c\r\n", {}, "ESMTP", "ESMTP"),
    (b"EHLO c\r\nMAIL FROM:<a@b> SMTPUTF8\r\n", {}, "ESMTP", "UTF8SMTP"),
    (b"EHLO c\r\n", {"tls_active": True}, "ESMTP", "ESMTPS"),
    (b"EHLO c\r\n", {"tls_active": True, "authenticated": True}, "ESMTP", "ESMTPSA"),
])
def test_protocol_names(data, opts, proto, received):
    conn = ServerConnection(Settings(hostname=HOST), **opts)
    conn.send(replies.greeting("x"))
    res = run(data, conn=conn)
    assert (res.conn.protocol, res.conn.received_protocol) == (proto, received)


def test_hostile_command_lines_are_cheap():
    import time
    lines = [b"NOOP a" + b" " * 2030 + b"b", b"MAIL FROM:<a" + b"." * 2000 + b"@>",
             b"MAIL FROM:<a@b>" + b" x" * 1000, b"RCPT TO:<" + b'"a' * 1000,
             b"MAIL FROM:" + b" " * 2030 + b"x", b"EHLO " + b"\t " * 1000]
    t = time.perf_counter()
    res = run(b"".join(line + b"\r\n" for line in lines) * 5, hard_error_limit=0)
    assert time.perf_counter() - t < 1.0
    assert len(res.codes) == len(lines) * 5


@pytest.mark.parametrize("step", STEPS)
def test_bare_lf_command_rejected_in_reject_mode(step):
    # smtpd.c smtpd_proto(): the reply, whatever its code, then the hangup.
    res = run(b"NOOP\nNOOP\r\n", step=step, forbid_bare_newline="reject")
    assert res.replies == [f"550 5.5.2 {HOST} Error: bare <LF> received"] and res.conn.closed
    res = run(b"NOOP\nNOOP\r\n", forbid_bare_newline="reject", bare_newline_reject_code=521)
    assert res.replies == [f"521 5.5.2 {HOST} Error: bare <LF> received"] and res.conn.closed


def test_abnormal_end_notes():
    conn, _ = connect()
    assert conn.after("lost connection") == "lost connection after CONNECT"
    res = run(b"EHLO c\r\n", conn=conn)
    assert res.conn.after("timeout") == "timeout after EHLO"
    res = run(MAIL + RCPT + b"DATA\r\n0123456789abc\r\n", conn=conn)
    assert conn.after("lost connection") == "lost connection after DATA (15 bytes)"
    run(b".\r\n", conn=conn)
    assert conn.after("lost connection") is None
    assert conn.after("timeout") == "timeout after END-OF-MESSAGE"
    run(b"FOO\r\n", conn=conn)
    assert conn.after("too many errors") == "too many errors after UNKNOWN"
