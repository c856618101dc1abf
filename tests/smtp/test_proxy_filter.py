"""proxy_filter: the sans-IO parts of smtpd's before-queue filter client."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailsys.maillog.postfix import text as log_text
from mailsys.maillog.event import LogEvent
from mailsys.message.received import received_smtp
from mailsys.smtp._client_reply import ReplyReader
from mailsys.smtp.proxy_filter import (Endpoint, DotStuffer, XFORWARD_PAYLOAD, parse_endpoint,
                                       rejected_warning, xforward_commands, xforward_features)


def response(wire: bytes):
    reader = ReplyReader()
    reader.feed(wire)
    return reader.next_reply()


@pytest.mark.parametrize("spec, want", [
    ("127.0.0.1:10025", Endpoint("inet", host="127.0.0.1", port="10025")),
    ("inet:127.0.0.1:10025", Endpoint("inet", host="127.0.0.1", port="10025")),
    ("INET:filter.example:smtp", Endpoint("inet", host="filter.example", port="smtp")),
    (":10025", Endpoint("inet", host="localhost", port="10025")),
    ("10025", Endpoint("inet", host="localhost", port="10025")),
    ("[::1]:10025", Endpoint("inet", host="::1", port="10025")),
    ("unix:/var/run/filter.sock", Endpoint("unix", path="/var/run/filter.sock")),
])
def test_parse_endpoint(spec, want):
    assert parse_endpoint(spec) == want


@pytest.mark.parametrize("spec", ["127.0.0.1:", "unix:", "[::1", "[::1]x"])
def test_parse_endpoint_refuses(spec):
    with pytest.raises(ValueError):
        parse_endpoint(spec)


EHLO = b"250-filter.test\r\n250-XFORWARD NAME ADDR PROTO HELO SOURCE PORT IDENT\r\n250 8BITMIME\r\n"
ATTRS = {"NAME": None, "ADDR": "127.0.0.1", "PORT": "50058", "HELO": "client.example",
         "IDENT": None, "PROTO": "ESMTP", "SOURCE": "LOCAL"}


def test_xforward_as_postfix_sends_it():
    # Postfix 3.7.11, live, to a filter offering every attribute.
    assert xforward_commands(response(EHLO), ATTRS) == [
        "XFORWARD NAME=[UNAVAILABLE] ADDR=127.0.0.1 PORT=50058 HELO=client.example "
        "IDENT=[UNAVAILABLE] PROTO=ESMTP SOURCE=LOCAL"]


def test_xforward_only_what_is_offered_and_none_without_it():
    ehlo = response(b"250-f\r\n250-xforward addr helo\r\n250 OK\r\n")
    assert xforward_features(ehlo) == {"ADDR", "HELO"}
    assert xforward_commands(ehlo, ATTRS) == ["XFORWARD ADDR=127.0.0.1 HELO=client.example"]
    assert xforward_commands(response(b"250-f\r\n250 8BITMIME\r\n"), ATTRS) == []


def test_xforward_values_are_xtext_and_long_ones_split():
    attrs = dict(ATTRS, HELO="a b=c" + "h" * 300, NAME="n" * 300)
    commands = xforward_commands(response(EHLO), attrs)
    assert len(commands) > 1
    assert all(len(c) - len("XFORWARD") <= XFORWARD_PAYLOAD for c in commands)
    assert " HELO=a+20b+3Dc" in "".join(commands)
    words = [w.split("=")[0] for c in commands for w in c.split()[1:]]
    assert words == ["NAME", "ADDR", "PORT", "HELO", "IDENT", "PROTO", "SOURCE"]


def test_rejected_warning_texts():
    r = response(b"550 5.1.1 <x>: filter rejects recipient\r\n")
    assert rejected_warning("127.0.0.1:3103", "RCPT TO:<x@y>", r) == \
        'proxy 127.0.0.1:3103 rejected "RCPT TO:<x@y>": "550 5.1.1 <x>: filter rejects recipient"'
    assert rejected_warning("inet:h:1", None, response(b"554 5.3.2 busy\r\n")) == \
        'proxy inet:h:1 rejected "connection request": "554 5.3.2 busy"'


def test_dot_stuffer_whole_message():
    s = DotStuffer()
    assert s.feed(b".first\r\nmid\r\n..two\r\n.") + s.end() == \
        b"..first\r\nmid\r\n...two\r\n..\r\n.\r\n"


def test_dot_stuffer_empty_and_unterminated():
    assert DotStuffer().end() == b".\r\n"
    s = DotStuffer()
    assert s.feed(b"no line end") + s.end() == b"no line end\r\n.\r\n"


def test_dot_stuffer_makes_bare_lf_crlf():
    s = DotStuffer()
    assert s.feed(b"a\nb\r\n.c\n") + s.end() == b"a\r\nb\r\n..c\r\n.\r\n"


def test_dot_stuffer_passes_a_long_line_on():
    s = DotStuffer()
    out = s.feed(b"." + b"x" * 5000)
    assert out.startswith(b"..x") and len(out) == 5002
    assert s.feed(b"x\r\n.y\r\n") == b"x\r\n..y\r\n"


def reference(content: bytes) -> bytes:
    lines = content.replace(b"\r\n", b"\n").split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return b"".join((b"." + ln if ln.startswith(b".") else ln) + b"\r\n" for ln in lines) + b".\r\n"


@given(st.lists(st.sampled_from([b".", b"\r\n", b"a", b"\n", b"..", b"\r\n.\r\n"]), max_size=40),
       st.data())
def test_dot_stuffer_any_split(pieces, data):
    content = b"".join(pieces)
    if b"\r" in content.replace(b"\r\n", b""):
        return      # a lone CR is kept as it is; the reference does not model it
    cuts = sorted(data.draw(st.lists(st.integers(0, len(content)), max_size=6)))
    s = DotStuffer()
    out, start = b"", 0
    for cut in cuts + [len(content)]:
        out += s.feed(content[start:cut])
        start = cut
    assert out + s.end() == reference(content)


def test_received_without_queue_id():
    one = received_smtp(helo="c.example", client_name="unknown", client_addr="127.0.0.1",
                        myhostname="mx.example", protocol="ESMTP", queue_id="",
                        recipients=["b@example.net"], arrival=0)
    assert one.split("\n")[:3] == ["Received: from c.example (unknown [127.0.0.1])",
                                   "\tby mx.example (mailsys) with ESMTP",
                                   "\tfor <b@example.net>; Thu,  1 Jan 1970 00:00:00 +0000 (UTC)"]
    two = received_smtp(helo="c.example", client_name="unknown", client_addr="127.0.0.1",
                        myhostname="mx.example", protocol="ESMTP", queue_id="",
                        recipients=["b@example.net", "c@example.net"], arrival=0)
    assert two.split("\n")[1] == "\tby mx.example (mailsys) with ESMTP;"


def test_proxy_log_lines():
    # Postfix 3.7.11, live.
    fields = {"result": "accept", "command": "END-OF-MESSAGE",
              "reply": "250 2.0.0 Ok: queued as FILT123", "sender": "alice@example.com",
              "recipient": "bob@example.net", "proto": "ESMTP", "helo": "client.example"}
    def event(fields):
        return LogEvent(time=0, tag="mailsys/smtpd", pid=1, level="info", event="proxy",
                        fields=fields)
    assert log_text(event(fields)) == ("proxy-accept: END-OF-MESSAGE: 250 2.0.0 Ok: queued as FILT123; "
                               "from=<alice@example.com> to=<bob@example.net> proto=ESMTP "
                               "helo=<client.example>")
    fields.update(result="reject", reply="554 5.7.1 filter says no", sender="")
    assert log_text(event(fields)) == (
        "proxy-reject: END-OF-MESSAGE: 554 5.7.1 filter says no; from=<> to=<bob@example.net> "
        "proto=ESMTP helo=<client.example>")
