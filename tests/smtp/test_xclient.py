"""XCLIENT and XFORWARD in the sans-IO cores, bytes in and bytes out.

Every reply text and every normalized value here is what a private Postfix
3.7.11 answered or logged for the same command (smtpd_authorized_xclient_hosts
and smtpd_authorized_xforward_hosts = 127.0.0.1), or what its smtp client
sent to a server offering XFORWARD.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from _smtp_testlib import HOST, connect, run

from mailsys.smtp import Xclient, Xforward, replies
from mailsys.smtp._xclient import (XFORWARD_NAME_ADDR, XFORWARD_PROTO_HELO, XattrError,
                                   XforwardAttributes, parse_xclient, parse_xforward,
                                   xforward_commands, xtext_decode)
from mailsys.smtp.client import ClientConnection, EhloDone, TransactionDone

from test_client import feed

STEPS = [None, 1, 7]


def authorized(xclient: bool = True, xforward: bool = True):
    conn, _ = connect()
    conn.xclient_allowed, conn.xforward_allowed = xclient, xforward
    return conn


# ------------------------------------------------------------------ EHLO


def test_ehlo_lists_both_only_for_authorized_clients():
    lines = run(b"EHLO a\r\n", conn=authorized()).replies
    assert lines[lines.index("250-VRFY") + 1:lines.index("250-ENHANCEDSTATUSCODES")] == [
        "250-XCLIENT NAME ADDR PROTO HELO REVERSE_NAME PORT LOGIN DESTADDR DESTPORT",
        "250-XFORWARD NAME ADDR PROTO HELO SOURCE PORT IDENT"]
    plain = run(b"EHLO a\r\n").replies
    assert not [line for line in plain if "XCLIENT" in line or "XFORWARD" in line]
    only = run(b"EHLO a\r\n", conn=authorized(xclient=False)).replies
    assert [line for line in only if line.startswith("250-X")] == [
        "250-XFORWARD NAME ADDR PROTO HELO SOURCE PORT IDENT"]


# ------------------------------------------------------------------ XCLIENT


@pytest.mark.parametrize("step", STEPS)
def test_xclient_restarts_the_session(step):
    conn = authorized()
    res = run(b"EHLO proxy\r\nXCLIENT NAME=client.example.org ADDR=192.0.2.10 PORT=1234 "
              b"LOGIN=bob\r\nMAIL FROM:<a@b.example>\r\n", conn=conn, step=step)
    [event] = res.of(Xclient)
    assert event.attributes == (("NAME", "client.example.org"), ("ADDR", "192.0.2.10"),
                                ("PORT", "1234"), ("LOGIN", "bob"))
    assert res.replies[-2:] == [f"220 {HOST} ESMTP", "250 2.1.0 Ok"]
    # HELO forgotten (none in XCLIENT), protocol back to SMTP, LOGIN authenticates.
    assert conn.helo_name is None and conn.protocol == "SMTP" and conn.authenticated
    # Postfix counts a successful XCLIENT as neither ok nor an error.
    assert conn.command_stats() == "ehlo=1 xclient=0/1 mail=1 commands=2/3"
    assert conn.error_count == 0


def test_xclient_helo_and_proto_are_kept():
    conn = authorized()
    run(b"EHLO proxy\r\nXCLIENT HELO=a+20b<c> PROTO=esmtp\r\n", conn=conn)
    assert conn.helo_name == "a?b?c?" and conn.received_protocol == "ESMTP"
    assert not conn.authenticated


@pytest.mark.parametrize("command, reply", [
    (b"XCLIENT", "501 5.5.4 Syntax: XCLIENT attribute=value..."),
    (b"XCLIENT FOO=1", "501 5.5.4 Bad XCLIENT attribute name: FOO"),
    (b"XCLIENT NAME", "501 5.5.4 Error: attribute=value expected"),
    (b"XCLIENT NAME=", "501 5.5.4 Error: attribute=value expected"),
    (b"XCLIENT NAME=bad_name!", "501 5.5.4 Bad NAME syntax: bad_name!"),
    (b"XCLIENT ADDR=1.2.3", "501 5.5.4 Bad ADDR syntax: 1.2.3"),
    (b"XCLIENT ADDR=2001:db8::1", "501 5.5.4 Bad ADDR syntax: 2001:db8::1"),
    (b"XCLIENT PORT=x", "501 5.5.4 Bad PORT syntax: x"),
    (b"XCLIENT PORT=123456", "501 5.5.4 Bad PORT syntax: 123456"),
    (b"XCLIENT PROTO=FOO", "501 5.5.4 Bad PROTO syntax: FOO"),
    (b"XCLIENT HELO=" + b"a" * 256, "501 5.5.4 Error: attribute value too long"),
    (b"XCLIENT NAME=part.example ADDR=bad", "501 5.5.4 Bad ADDR syntax: bad"),
])
def test_xclient_refusals(command, reply):
    conn = authorized()
    res = run(b"EHLO proxy\r\n" + command + b"\r\n", conn=conn)
    assert res.replies[-1] == reply
    assert conn.command_stats() == "ehlo=1 xclient=0/1 commands=1/2" and conn.error_count == 1


def test_xclient_refused_in_a_transaction_and_when_not_authorized():
    res = run(b"EHLO p\r\nMAIL FROM:<a@b>\r\nXCLIENT ADDR=10.0.0.1\r\n", conn=authorized())
    assert res.replies[-1] == "503 5.5.1 Error: MAIL transaction in progress"
    res = run(b"EHLO p\r\nXCLIENT ADDR=10.0.0.1\r\nXFORWARD ADDR=10.0.0.1\r\n")
    assert res.replies[-2:] == ["550 5.7.0 Error: insufficient authorization"] * 2
    assert not res.of(Xclient) and not res.of(Xforward)


def test_values_are_decoded_and_normalized():
    assert parse_xclient("name=[TEMPUNAVAIL] ADDR=IPv6:2001:DB8::1 REVERSE_NAME=rev.example "
                         "PORT=[UNAVAILABLE] DESTADDR=192.0.2.1 DESTPORT=25 LOGIN=[UNAVAILABLE]") == (
        ("NAME", "[TEMPUNAVAIL]"), ("ADDR", "2001:db8::1"), ("REVERSE_NAME", "rev.example"),
        ("PORT", "unknown"), ("DESTADDR", "192.0.2.1"), ("DESTPORT", "25"), ("LOGIN", ""))
    assert parse_xclient("ADDR=[UNAVAILABLE] HELO=[UNAVAILABLE]") == (("ADDR", "unknown"),
                                                                       ("HELO", ""))
    # A stray "+" is kept as given (Postfix 3.7 stores "a+2" and "a+zzb").
    assert [xtext_decode(v) for v in ("a+2", "a+zzb", "q+2Bq", "a+20b")] == \
        ["a+2", "a+zzb", "q+q", "a b"]


# ------------------------------------------------------------------ XFORWARD


@pytest.mark.parametrize("step", STEPS)
def test_xforward_attributes(step):
    conn = authorized(xclient=False)
    res = run(b"EHLO filter\r\nXFORWARD NAME=mx.example.org ADDR=198.51.100.7 PORT=4444\r\n"
              b"XFORWARD PROTO=ESMTP HELO=h+20x IDENT=ABC123 SOURCE=remote\r\n"
              b"MAIL FROM:<a@b>\r\nXFORWARD NAME=late.example\r\n", conn=conn, step=step)
    assert [e.attributes for e in res.of(Xforward)] == [
        (("NAME", "mx.example.org"), ("ADDR", "198.51.100.7"), ("PORT", "4444")),
        (("PROTO", "ESMTP"), ("HELO", "h?x"), ("IDENT", "ABC123"), ("SOURCE", "REMOTE"))]
    assert res.replies[-4:] == ["250 2.0.0 Ok", "250 2.0.0 Ok", "250 2.1.0 Ok",
                                "503 5.5.1 Error: MAIL transaction in progress"]
    assert conn.command_stats() == "ehlo=1 xforward=2/3 mail=1 commands=4/5"


@pytest.mark.parametrize("arg, reply", [
    ("", "501 5.5.4 Syntax: XFORWARD attribute=value..."),
    ("FOO=1", "501 5.5.4 Bad XFORWARD attribute name: FOO"),
    ("NAME=a+20b.example", "501 5.5.4 Bad NAME syntax: a?b.example"),
    ("NAME=[TEMPUNAVAIL]", "501 5.5.4 Bad NAME syntax: [TEMPUNAVAIL]"),
    ("ADDR=2001:DB8::2", "501 5.5.4 Bad ADDR syntax: 2001:DB8::2"),
    ("SOURCE=foo", "501 5.5.4 Bad SOURCE syntax: foo"),
    ("PROTO=" + "x" * 65, "501 5.5.4 Bad PROTO syntax: " + "x" * 65),
])
def test_xforward_refusals(arg, reply):
    res = run(f"EHLO f\r\nXFORWARD {arg}\r\n".replace(" \r", "\r").encode(),
              conn=authorized(xclient=False))
    assert res.replies[-1] == reply


def test_xforward_unavailable_values():
    assert parse_xforward("NAME=[UNAVAILABLE] ADDR=[UNAVAILABLE] PORT=[UNAVAILABLE] "
                          "HELO=[UNAVAILABLE] PROTO=[UNAVAILABLE] IDENT=[UNAVAILABLE] "
                          "SOURCE=[UNAVAILABLE]") == (
        ("NAME", "unknown"), ("ADDR", "unknown"), ("PORT", "unknown"), ("HELO", ""),
        ("PROTO", ""), ("IDENT", ""), ("SOURCE", "LOCAL"))
    assert parse_xforward("ADDR=IPv6:2001:DB8::3 NAME=a+2Eb.example") == (
        ("ADDR", "2001:db8::3"), ("NAME", "a.b.example"))
    with pytest.raises(XattrError):
        parse_xforward("HELO=" + "a" * 256)


# ------------------------------------------------------------------ the client side

ALL = ("NAME", "ADDR", "PROTO", "HELO", "SOURCE", "PORT", "IDENT")


def test_client_commands_as_postfix_sends_them():
    attrs = XforwardAttributes("mx.example", "2001:db8::3", 2525, "ESMTPS", "h x", "ORIG1",
                               "REMOTE")
    assert xforward_commands(attrs, ALL) == [
        ("XFORWARD NAME=mx.example ADDR=IPv6:2001:db8::3 PORT=2525", XFORWARD_NAME_ADDR),
        ("XFORWARD PROTO=ESMTPS HELO=h+20x IDENT=ORIG1 SOURCE=REMOTE", XFORWARD_PROTO_HELO)]
    # Unknown values are left out; what the server does not offer too.
    assert xforward_commands(XforwardAttributes("unknown", "127.0.0.1", 0, "", "f", "Q1", "LOCAL"),
                             ("NAME", "ADDR", "PROTO", "HELO")) == [
        ("XFORWARD ADDR=127.0.0.1", XFORWARD_NAME_ADDR),
        ("XFORWARD HELO=f", XFORWARD_PROTO_HELO)]
    assert xforward_commands(XforwardAttributes(), ALL) == []


def test_client_commands_stay_within_the_line_limit():
    long = "a" * 250
    attrs = XforwardAttributes("n.example", "192.0.2.1", 25, long, long + "+" * 5, long, "LOCAL")
    commands = xforward_commands(attrs, ALL)
    assert all(len(line) + 2 <= 512 for line, _ in commands)
    assert len(commands) > 2
    sent = " ".join(line[len("XFORWARD "):] for line, _ in commands).split()
    assert [w.split("=", 1)[0] for w in sent] == ["NAME", "ADDR", "PORT", "PROTO", "HELO",
                                                  "IDENT", "SOURCE"]


EHLO_XFORWARD = (b"250-mx.example.net\r\n250-PIPELINING\r\n"
                 b"250-XFORWARD NAME ADDR PROTO HELO SOURCE PORT IDENT\r\n250 8BITMIME\r\n")


def client(ehlo: bytes) -> ClientConnection:
    cc = ClientConnection("client.example.org")
    feed(cc, b"220 mx.example.net ESMTP\r\n")
    cc.ehlo()
    [done] = feed(cc, ehlo)
    assert isinstance(done, EhloDone)
    return cc


@pytest.mark.parametrize("step", [None, 1])
def test_client_sends_xforward_before_mail_and_goes_on_after_a_refusal(step):
    cc = client(EHLO_XFORWARD)
    assert cc.capabilities.xforward == ALL
    out = cc.send_mail("a@b.example", ["r@example.net"], b"Subject: x\r\n\r\nhi\r\n",
                       xforward=XforwardAttributes("mx.example", "192.0.2.1", 0, "ESMTP",
                                                   "helo.example", "Q1", "REMOTE"))
    assert out == (b"XFORWARD NAME=mx.example ADDR=192.0.2.1\r\n"
                   b"XFORWARD PROTO=ESMTP HELO=helo.example IDENT=Q1 SOURCE=REMOTE\r\n"
                   b"MAIL FROM:<a@b.example>\r\nRCPT TO:<r@example.net>\r\nDATA\r\n")
    assert cc.stage_info == ("sending XFORWARD name/address", "smtp_xforward_timeout")
    feed(cc, b"550 5.7.0 Error: insufficient authorization\r\n250 2.0.0 Ok\r\n"
             b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n", step)
    assert cc.data_to_send().endswith(b"\r\n.\r\n")
    [done] = feed(cc, b"250 2.0.0 Ok: queued as X\r\n")
    assert isinstance(done, TransactionDone)
    assert [r.status for r in done.result.recipients] == ["sent"]
    [(response, command)] = done.result.xforward_refused
    assert (response.text, command) == ("550 5.7.0 Error: insufficient authorization",
                                        XFORWARD_NAME_ADDR)


def test_client_without_xforward_offer_sends_none():
    cc = client(b"250-mx.example.net\r\n250 PIPELINING\r\n")
    out = cc.send_mail("a@b", ["r@c"], b"x\r\n", xforward=XforwardAttributes("n.example"))
    assert out.startswith(b"MAIL FROM:<a@b>\r\n")


def test_client_421_to_xforward_defers_everything():
    cc = client(EHLO_XFORWARD)
    cc.send_mail("a@b", ["r@c"], b"x\r\n", xforward=XforwardAttributes("n.example"))
    [done] = feed(cc, b"421 4.3.2 Shutting down\r\n")
    [status] = done.result.recipients
    assert (status.status, status.in_reply_to) == ("deferred", XFORWARD_NAME_ADDR)
    assert cc.closed


def test_default_replies():
    conn = authorized()
    run(b"EHLO a\r\n", conn=conn)
    conn.receive_data(b"XFORWARD IDENT=1\r\n")
    conn.next_event()
    assert conn.default_reply() == replies.OK


# ------------------------------------------------------------------ any input

_WORDS = st.sampled_from(["NAME", "ADDR", "PORT", "HELO", "PROTO", "LOGIN", "IDENT", "SOURCE",
                          "REVERSE_NAME", "DESTADDR", "DESTPORT", "FOO", "name", ""])
_VALUES = st.one_of(st.text(max_size=20), st.sampled_from(
    ["[UNAVAILABLE]", "[TEMPUNAVAIL]", "IPv6:::1", "192.0.2.1", "a+2", "+41+", "esmtp", "remote"]))
_ARGS = st.lists(st.tuples(_WORDS, st.sampled_from(["=", ""]), _VALUES), max_size=6).map(
    lambda items: " ".join(f"{k}{eq}{v}" for k, eq, v in items))


@given(_ARGS)
@settings(max_examples=300)
def test_any_argument_is_parsed_or_refused_with_a_501(arg):
    for parse in (parse_xclient, parse_xforward):
        try:
            attrs = parse(arg)
        except XattrError as e:
            assert e.reply.code == 501
            continue
        for name, value in attrs:
            assert name.isupper() and value.isprintable()


@given(st.lists(_ARGS, max_size=4), st.integers(min_value=0, max_value=9))
@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
def test_any_xclient_session_only_yields_replies(args, step):
    data = b"EHLO p\r\n" + b"".join(
        f"{verb} {arg}\r\nMAIL FROM:<a@b>\r\nRSET\r\n".encode("utf-8", "surrogateescape")
        for verb, arg in zip(["XCLIENT", "XFORWARD"] * 4, args))
    res = run(data, conn=authorized(), step=step or None)
    assert res.out.endswith(b"\r\n") and all(line[:3].isdigit() for line in res.replies)
