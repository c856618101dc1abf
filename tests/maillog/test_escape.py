"""Nothing a client sends can break or forge a mail.log or mail.json line."""

from __future__ import annotations

import json
import time
from pathlib import Path

from hypothesis import given, strategies as st

from mailsys.maillog import jsonl, postfix
from mailsys.maillog.event import LogEvent, clean_text

SAMPLE = (Path(__file__).parent / "data" / "maillog-3.7.11.txt").read_text(encoding="utf-8").splitlines()


def sample(fragment: str) -> str:
    [line] = [line for line in SAMPLE if fragment in line]
    return line


def from_client(text, **extra) -> LogEvent:
    """An event as setup.configure builds it, from raw client text."""
    return LogEvent.from_event_dict({"event": text, "level": "info", **extra},
                                    tag="postfix/smtpd", pid=12406, now=0.0)


def test_pipelined_commands_are_escaped_by_the_caller_as_postfix_does():
    # smtpd runs the unread client bytes through escape() (Postfix escape()),
    # and printable() then has nothing left to mask.
    line = sample("improper command pipelining")
    when = time.mktime((2026, 11, 27, 0, 24, 35, 0, 0, -1))
    unread = b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n"
    e = LogEvent.from_event_dict(
        {"event": "improper command pipelining after EHLO from localhost[127.0.0.1]: "
                  + postfix.escape(unread),
         "level": "info", "timestamp": when}, tag="postfix/smtpd", pid=12406)
    assert postfix.render(e, "mx") == line
    assert postfix.render(e, "mx", utf8=False) == line


def test_binary_junk_from_a_client_is_escaped_and_cut_as_postfix_does():
    line = sample("non-SMTP command from localhost[127.0.0.1]: \\026")
    # Postfix cut its escaped text after 100 characters, in the middle of "\3xx".
    assert line.endswith("\\3")
    escaped = line.split("]: warning: non-SMTP command from localhost[127.0.0.1]: ", 1)[1]
    raw = escaped[:-2].encode("latin-1").decode("unicode_escape").encode("latin-1")
    assert raw.startswith(b"\x16\x03\x01") and b"\xfc" in raw and b"\x00" in raw
    when = time.mktime((2026, 11, 27, 0, 25, 7, 0, 0, -1))
    e = LogEvent.from_event_dict(
        {"event": "non-SMTP command from localhost[127.0.0.1]: "
                  + postfix.escape(raw + b"\xc5\x00")[:100],
         "level": "warning", "timestamp": when}, tag="postfix/smtpd", pid=12764)
    assert postfix.render(e, "mx") == line


def test_bytes_fields_are_decoded_and_bad_bytes_become_question_marks():
    e = LogEvent.from_event_dict({"event": "reject", "level": "info", "command": "RCPT",
                                  "client": "c[1.2.3.4]", "reply": "550 5.1.1 no",
                                  "recipient": b"\xff\xfe@x\r\n"},
                                 tag="mailsys/smtpd", pid=1, now=0.0)
    assert e.fields["recipient"] == "??@x\r\n"                   # JSON keeps CR LF, escaped by JSON
    # Postfix 3.7.11: "RCPT TO:<\xff\xfe@x>" with smtputf8_enable = no logs to=<??@x>
    assert "to=<??@x??>" in postfix.message(e)                   # mail.log masks CR LF too


def test_forged_line_stays_inside_its_own_line():
    forged = ("hello\nNov 27 00:00:00 mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from "
              "x[203.0.113.1]: 554 5.7.1 Relay access denied")
    e = from_client(forged)
    line = postfix.render(e, "mx")
    assert "\n" not in line and "\r" not in line
    assert line.endswith("hello?Nov 27 00:00:00 mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from "
                         "x[203.0.113.1]: 554 5.7.1 Relay access denied")


def test_helo_and_sender_with_control_and_8bit_bytes_render_as_postfix_37():
    # Postfix 3.7.11, "HELO a<TAB>b<SOH>c<c3 a9>e<DEL>", then
    # "MAIL FROM:<s<c3 a9><e2 80 a8>x<c2 85>y@ex.com>" (U+00E9 U+2028 U+0085), a rejected RCPT:
    #   smtputf8_enable = yes: ... from=<s\u00e9\u2028x\u0085y@ex.com> ... helo=<a?b?c\u00e9e?>
    #   smtputf8_enable = no:  ... from=<s?????x??y@ex.com> ... helo=<a?b?c??e?>
    e = LogEvent.from_event_dict(
        {"event": "reject", "level": "info", "noqueue": True, "command": "RCPT",
         "client": "unknown[127.0.0.1]",
         "reply": "554 5.7.1 <reject@example.net>: Recipient address rejected: Access denied",
         "sender": "s\u00e9\u2028x\u0085y@ex.com", "recipient": "reject@example.net",
         "proto": "SMTP", "helo": "a\tb\x01c\u00e9e\x7f"}, tag="postfix/smtpd", pid=1, now=0.0)
    head = ("NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 554 5.7.1 <reject@example.net>: "
            "Recipient address rejected: Access denied; ")
    assert postfix.message(e, utf8=True) == head + (
        "from=<s\u00e9\u2028x\u0085y@ex.com> to=<reject@example.net> proto=SMTP "
        "helo=<a?b?c\u00e9e?>")
    assert postfix.message(e, utf8=False) == head + (
        "from=<s?????x??y@ex.com> to=<reject@example.net> proto=SMTP helo=<a?b?c??e?>")
    assert e.fields["helo"] == "a\tb\x01c\u00e9e\x7f"            # mail.json: exact


def test_printable_masks_as_postfix_printable_does():
    assert postfix.printable("a\u2028b\u0085c\x7fd\x1be") == "a\u2028b\u0085c?d?e"
    assert postfix.printable("a\u2028b\u0085c\x7fd\x1be", utf8=False) == "a???b??c?d?e"
    assert postfix.printable("b\u00fccher@ex\u00e4mple.de") == "b\u00fccher@ex\u00e4mple.de"
    assert postfix.printable("b\u00fccher@ex\u00e4mple.de", utf8=False) == "b??cher@ex??mple.de"
    assert postfix.printable("tab\there\a\b\v\f\r\n") == "tab?here??????"
    assert postfix.printable("back\\slash") == "back\\slash"
    # A lone surrogate is no UTF-8: each of its three bytes is masked.
    assert postfix.printable("a\ud800b") == "a???b"
    # A byte that was no UTF-8 on the wire (kept surrogateescape'd) is one
    # byte: Postfix 3.7.11 wrote "Received: from ?" for HELO \xfc.
    assert postfix.printable(b"\xfc".decode("utf-8", "surrogateescape")) == "?"
    assert postfix.printable(b"a\xfc\xfd".decode("utf-8", "surrogateescape"), utf8=False) == "a??"


def test_escape_is_postfix_escape():
    # Postfix 3.7.11, pipelined "NOOP a\\b<c3 a9><7f>\r\n" after EHLO:
    #   improper command pipelining after EHLO from unknown[127.0.0.1]: NOOP a\\b\303\251\177\r\n
    assert postfix.escape(b"NOOP a\\b\xc3\xa9\x7f\r\n") == "NOOP a\\\\b\\303\\251\\177\\r\\n"
    assert postfix.escape("\a\b\t\v\f\x00") == "\\a\\b\\t\\v\\f\\000"
    assert postfix.escape("x\udcffy") == "x\\377y"              # a surrogateescape'd byte


def test_lone_surrogates_from_a_datagram_are_cleaned():
    datagram = b'{"v":1,"time":0,"tag":"t/x","pid":1,"level":"info","event":"a\\ud800b","fields":{"k":"\\udcff"}}'
    e = LogEvent.decode(datagram)
    assert e.event == "a???b"                                     # its three CESU bytes
    assert e.fields == {"k": "?"}
    jsonl.render(e, "mx").encode("utf-8")                         # must not raise


text_or_bytes = st.one_of(st.text(), st.binary())


def one_safe_line(line: str, utf8: bool) -> bool:
    """No ASCII control (so no CR, LF, NUL) and valid UTF-8; only ASCII when utf8 is off."""
    line.encode("utf-8")
    if not utf8:
        return line.isascii() and line.isprintable()
    return not any(ch < " " or ch == "\x7f" for ch in line)


@given(text=text_or_bytes, value=text_or_bytes, utf8=st.booleans())
def test_any_client_input_renders_as_one_safe_line(text, value, utf8):
    e = LogEvent.from_event_dict({"event": text, "level": "warning", "queue_id": "Q",
                                  "client": value}, tag="mailsys/smtpd", pid=1, now=0.0)
    named = LogEvent.from_event_dict({"event": "client", "level": "info", "client": value,
                                      "sasl_username": text}, tag="mailsys/smtpd", pid=1, now=0.0)
    for event in (e, named):
        line = postfix.render(event, "mx", utf8)
        assert one_safe_line(line, utf8)
        out = jsonl.render(event, "mx.example.com")
        assert out.splitlines() == [out]                         # no LF, CR, NEL, U+2028 ...
        out.encode("utf-8")
        assert json.loads(out)["event"] == (clean_text(text) if event is e else "client")
        again = LogEvent.decode(event.encode())
        assert again == event


FIELD_NAMES = ["sender", "size", "nrcpt", "queue", "to", "orig_to", "relay", "conn_use", "delay",
               "delays", "dsn", "status", "reason", "client", "sasl_method", "sasl_username",
               "sasl_sender", "message_id", "uid", "kind", "notice_id", "stats", "command",
               "reply", "recipient", "proto", "helo", "action"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8)


@given(name=st.sampled_from(sorted(postfix.FORMATS)),
       fields=st.dictionaries(st.sampled_from(FIELD_NAMES), json_values), utf8=st.booleans())
def test_named_events_with_any_fields_render_one_line_and_never_raise(name, fields, utf8):
    # Fields arrive from any process through the datagram: any JSON value.
    e = LogEvent.decode(LogEvent(0.0, "mailsys/x", 1, "info", name, queue_id="Q", fields=fields).encode())
    assert one_safe_line(postfix.render(e, "mx", utf8), utf8)
    assert jsonl.render(e, "mx").splitlines() == [jsonl.render(e, "mx")]
