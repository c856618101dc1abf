"""mime_checks: header_checks on MIME part headers and attached message headers."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from mailsys.message.header_checks import ContentAction
from mailsys.message.mime_checks import check_body, media_type

BODY = (b"\r\n"
        b"This is a preamble\r\n"
        b"Content-Type: text/fake; name=preamble.exe\r\n"       # not a part header
        b"--outer\r\n"
        b"Content-Type: text/plain\r\n"
        b"\r\n"
        b"hello\r\n"
        b"--outer\r\n"
        b"Content-Type: multipart/alternative;\r\n boundary=\"inner\"\r\n"
        b"\r\n"
        b"--inner\r\n"
        b"Content-Type: application/octet-stream;\r\n\tname=\"setup.exe\"\r\n"
        b"X-Junk: drop me\r\n"
        b"\r\n"
        b"TVqQ\r\n"
        b"--inner--\r\n"
        b"--outer\r\n"
        b"Content-Type: message/rfc822\r\n"
        b"\r\n"
        b"Subject: forwarded spam\r\n"
        b"From: x@example.org\r\n"
        b"\r\n"
        b"Content-Type: text/fake; name=body.exe\r\n"              # the attached body
        b"--outer--\r\n"
        b"Content-Type: text/fake; name=epilogue.exe\r\n")


def table(rules):
    def check(header: str):
        for pattern, action in rules:
            if re.search(pattern, header, re.I | re.S):     # as regexp: tables read it
                return action
        return None
    return check


def test_part_headers_and_attached_message_headers_are_looked_up():
    seen_mime, seen_nested = [], []

    def mime(h):
        seen_mime.append(h)
        return table([(r"^Content-Type:.*name=.*\.exe", "WARN exe"), (r"^X-Junk:", "IGNORE")])(h)

    def nested(h):
        seen_nested.append(h)
        return table([(r"^Subject:.*spam", "HOLD")])(h)
    found = check_body(BODY, 'multipart/mixed; boundary="outer"', mime=mime, nested=nested)
    assert seen_mime == ["Content-Type: text/plain",
                         'Content-Type: multipart/alternative;\n boundary="inner"',
                         'Content-Type: application/octet-stream;\n\tname="setup.exe"',
                         "X-Junk: drop me", "Content-Type: message/rfc822"]
    assert seen_nested == ["Subject: forwarded spam", "From: x@example.org"]
    assert found.actions == [
        ContentAction("warning", 'Content-Type: application/octet-stream;\n\tname="setup.exe"', "exe"),
        ContentAction("hold", "Subject: forwarded spam")]
    assert found.error is None
    assert found.apply(BODY) == BODY.replace(b"X-Junk: drop me\r\n", b"")


def test_a_reject_stops_the_lookups_and_replace_keeps_line_ends():
    calls = []

    def mime(h):
        calls.append(h)
        return table([(r"^Content-Type: text/plain", "REPLACE Content-Type: text/html"),
                      (r"name=.*\.exe", "REJECT 5.7.1 no executables")])(h)
    found = check_body(BODY, "multipart/mixed; boundary=outer", mime=mime, nested=mime)
    assert found.error is not None and found.error.text == "no executables"
    assert calls[-1].endswith('name="setup.exe"') and len(calls) == 3
    assert b"--outer\r\nContent-Type: text/html\r\n\r\nhello" in found.apply(BODY)


def test_plain_bodies_and_media_types():
    assert check_body(b"\r\nContent-Type: x/y; name=a.exe\r\n", "text/plain",
                      mime=table([(".", "REJECT")]), nested=None).actions == []
    assert media_type('Multipart/Mixed; boundary="a b"; x=y') == ("multipart/mixed", b"a b")
    assert media_type("multipart/mixed;boundary=abc") == ("multipart/mixed", b"abc")
    assert media_type("text/plain; boundary=abc") == ("text/plain", None)
    # An attached message at the top and one that is itself multipart.
    top = b"\r\nSubject: inside\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" \
          b"Content-Type: text/plain; name=x.exe\r\n\r\nx\r\n--b--\r\n"
    found = check_body(top, "message/rfc822", mime=table([("exe", "WARN")]),
                       nested=table([("inside", "INFO")]))
    assert [a.action for a in found.actions] == ["info", "warning"]


def test_body_checks_see_body_text_and_delimiter_lines():
    seen = []

    def lines(text):
        seen.append(text)
        return {"hello": "REPLACE goodbye", "TVqQ": "IGNORE", "x": "PREPEND added text"}.get(text)
    found = check_body(BODY, "multipart/mixed; boundary=outer", mime=None, nested=None,
                       lines=lines)
    # Preamble, delimiters, part bodies, the attached message's body and the
    # epilogue; never part headers or attached headers (Postfix 3.7.11's
    # cleanup logs "warning: body --BB" for a /^--/ WARN body check).
    assert seen == ["This is a preamble", "Content-Type: text/fake; name=preamble.exe",
                    "--outer", "hello", "--outer", "--inner", "TVqQ", "--inner--", "--outer",
                    "Content-Type: text/fake; name=body.exe", "--outer--",
                    "Content-Type: text/fake; name=epilogue.exe"]
    edited = found.apply(BODY)
    assert b"\r\ngoodbye\r\n--outer" in edited and b"TVqQ" not in edited
    plain = check_body(b"\nx\nsecond line is long\n", "text/plain", mime=None, nested=None,
                       lines=lines, limit=3)
    assert plain.apply(b"\nx\nsecond line is long\n") == b"\nadded text\nx\nsecond line is long\n"


def test_body_checks_stop_at_the_size_limit_of_each_part_and_log_as_body():
    body = (b"\r\n--b\r\nContent-Type: text/plain\r\n\r\n" + b"a" * 10 + b"\r\nspam\r\n"
            b"--b\r\nContent-Type: text/plain\r\n\r\nspam\r\n--b--\r\n")
    found = check_body(body, "multipart/mixed; boundary=b", mime=None, nested=None,
                       lines=table([("^spam$", "REJECT")]), limit=5)
    assert [(a.action, a.kind, a.header) for a in found.actions] == [("reject", "body", "spam")]
    assert found.error is not None
    # The first part's spam line lay past its 5 bytes; the second part's was the first line.
    assert found.actions[0] == ContentAction("reject", "spam", "5.7.1 message content rejected",
                                             "body")


_LINES = st.sampled_from([b"--b", b"--b--", b"--c", b"--c--", b"Content-Type: multipart/mixed; boundary=c",
                          b"Content-Type: message/rfc822", b"Subject: x", b" folded", b"", b"text",
                          b"\tmore", b"X-Bad", b"\xff\xfe"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_LINES, max_size=40), st.sampled_from(["\n", "\r\n"]),
       st.sampled_from(["multipart/mixed; boundary=b", "message/rfc822", "text/plain", ""]))
def test_any_body_is_scanned_without_error_and_edits_whole_lines(lines, eol, content_type):
    # Malformed MIME is body text: the scan never fails, and each edit
    # replaces whole lines of the body, in order, without overlap.
    body = eol.encode().join([b"", *lines, b""])
    every = table([(r"^Subject:", "IGNORE"), (r"^text$", "REPLACE other"), (r".", "DUNNO")])
    found = check_body(body, content_type, mime=every, nested=every, lines=every, limit=64)
    assert found.error is None
    end = 0
    for start, stop, new in found.edits:
        assert end <= start < stop <= len(body)
        assert body[start - 1:start] == b"\n" and body[stop - 1:stop] == b"\n"
        assert new in (b"", b"other" + eol.encode())
        end = stop
    edited = found.apply(body)
    assert len(edited) == len(body) + sum(len(new) - (stop - start)
                                          for start, stop, new in found.edits)


def test_body_checks_never_look_up_an_empty_line():
    seen = []
    check_body(b"\r\nfirst\r\n\r\nsecond\r\n", "text/plain", mime=None, nested=None,
               lines=lambda text: seen.append(text))
    # Postfix's maps_find() skips an empty key: /^$/ never matches a body line.
    assert seen == ["first", "second"]
