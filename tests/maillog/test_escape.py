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


def test_crlf_from_a_client_is_escaped_as_postfix_does():
    line = sample("improper command pipelining")
    when = time.mktime((2026, 11, 27, 0, 24, 35, 0, 0, -1))
    e = LogEvent.from_event_dict(
        {"event": "improper command pipelining after EHLO from localhost[127.0.0.1]: "
                  "MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n",
         "level": "info", "timestamp": when}, tag="postfix/smtpd", pid=12406)
    assert postfix.render(e, "mx") == line


def test_binary_junk_from_a_client_is_escaped_as_postfix_does():
    line = sample("non-SMTP command from localhost[127.0.0.1]: \\026")
    # Postfix cut its text after 100 characters, in the middle of "\3xx".
    assert line.endswith("\\3")
    escaped = line[:-2].split("]: warning: non-SMTP command from localhost[127.0.0.1]: ", 1)[1]
    raw = escaped.encode("latin-1").decode("unicode_escape").encode("latin-1")
    assert b"\x16\x03\x01" in raw and b"\xfc" in raw and b"\x00" in raw
    when = time.mktime((2026, 11, 27, 0, 25, 7, 0, 0, -1))
    e = LogEvent.from_event_dict(
        {"event": "non-SMTP command from localhost[127.0.0.1]: "
                  + raw.decode("utf-8", "surrogateescape"),
         "level": "warning", "timestamp": when}, tag="postfix/smtpd", pid=12764)
    assert postfix.render(e, "mx") == line[:-2]


def test_bytes_fields_are_decoded_and_bad_bytes_become_octal():
    e = LogEvent.from_event_dict({"event": "reject", "level": "info", "command": "RCPT",
                                  "client": "c[1.2.3.4]", "reply": "550 5.1.1 no",
                                  "recipient": b"\xff\xfe@x\r\n"},
                                 tag="mailsys/smtpd", pid=1, now=0.0)
    assert e.fields["recipient"] == "\\377\\376@x\r\n"          # JSON keeps CR LF, escaped by JSON
    assert "to=<\\377\\376@x\\r\\n>" in postfix.message(e)


def test_forged_line_stays_inside_its_own_line():
    forged = ("hello\nNov 27 00:00:00 mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from "
              "x[203.0.113.1]: 554 5.7.1 Relay access denied")
    e = from_client(forged)
    line = postfix.render(e, "mx")
    assert "\n" not in line and "\r" not in line
    assert line.endswith("hello\\nNov 27 00:00:00 mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from "
                         "x[203.0.113.1]: 554 5.7.1 Relay access denied")


def test_unicode_line_breaks_and_c1_controls_are_escaped_printable_unicode_kept():
    assert postfix.escape("a\u2028b\u0085c\x7fd\x1be") == "a\\342\\200\\250b\\302\\205c\\177d\\033e"
    assert postfix.escape("bücher@exämple.de") == "bücher@exämple.de"
    assert postfix.escape("tab\there\a\b\v\f") == "tab\\there\\a\\b\\v\\f"
    assert postfix.escape("back\\slash") == "back\\slash"


def test_lone_surrogates_from_a_datagram_are_cleaned():
    datagram = b'{"v":1,"time":0,"tag":"t/x","pid":1,"level":"info","event":"a\\ud800b","fields":{"k":"\\udcff"}}'
    e = LogEvent.decode(datagram)
    assert e.event == "a\\355\\240\\200b"
    assert e.fields == {"k": "\\377"}
    jsonl.render(e, "mx").encode("utf-8")                         # must not raise


text_or_bytes = st.one_of(st.text(), st.binary())


@given(text=text_or_bytes, value=text_or_bytes)
def test_any_client_input_renders_as_one_printable_line(text, value):
    e = LogEvent.from_event_dict({"event": text, "level": "warning", "queue_id": "Q",
                                  "client": value}, tag="mailsys/smtpd", pid=1, now=0.0)
    named = LogEvent.from_event_dict({"event": "client", "level": "info", "client": value,
                                      "sasl_username": text}, tag="mailsys/smtpd", pid=1, now=0.0)
    for event in (e, named):
        line = postfix.render(event, "mx")
        assert line.isprintable()                                 # no CR, LF, NUL, U+2028 ...
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
       fields=st.dictionaries(st.sampled_from(FIELD_NAMES), json_values))
def test_named_events_with_any_fields_render_one_line_and_never_raise(name, fields):
    # Fields arrive from any process through the datagram: any JSON value.
    e = LogEvent.decode(LogEvent(0.0, "mailsys/x", 1, "info", name, queue_id="Q", fields=fields).encode())
    line = postfix.render(e, "mx")
    assert line.isprintable()
    assert jsonl.render(e, "mx").splitlines() == [jsonl.render(e, "mx")]
