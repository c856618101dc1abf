"""postmap -h / -b / -m lookup keys, against what Postfix 3.7.11's postmap printed."""

from __future__ import annotations

from mailsys.cli.postmap_keys import message_keys


def keys(raw: bytes, **kw) -> list[str]:
    # As postmap reads standard input: lines up to the newline, a CR kept.
    lines = raw.decode("utf-8", "surrogateescape").split("\n")
    return list(message_keys(lines[:-1] if lines[-1] == "" else lines, **kw))


def test_crlf_lines_keep_their_cr_and_their_mime_structure():
    raw = (b"Subject: x\r\nContent-Type: multipart/mixed; boundary=Q\r\n\r\n--Q\r\n"
           b"Content-Type: text/plain\r\n\r\nhi\r\n--Q--\r\n")
    # postmap -h -b -m: "Subject: x\r", ..., "" (the header ends at "\r", no
    # empty line), "\r", "--Q\r", "Content-Type: text/plain\r", "\r", "hi\r", "--Q--\r"
    assert keys(raw, headers=True, body=True, mime=True) == [
        "Subject: x\r", "Content-Type: multipart/mixed; boundary=Q\r", "", "\r", "--Q\r",
        "Content-Type: text/plain\r", "\r", "hi\r", "--Q--\r"]


def test_a_header_that_ends_at_a_text_line_gets_an_empty_body_line_first():
    raw = b"Subject: a\nnot a header line\nmore\n"
    assert keys(raw, headers=False, body=True) == ["", "not a header line", "more"]
    assert keys(raw, headers=True, body=True, mime=True) == [
        "Subject: a", "", "not a header line", "more"]
    assert keys(b"Subject: a\n\nbody\n", headers=False, body=True) == ["", "body"]


def test_an_attached_message_as_the_primary_type():
    raw = b"Content-Type: message/rfc822\n\nFrom: x\n  cont\n\nbody\n"
    assert keys(raw, headers=True, body=False, mime=True) == [
        "Content-Type: message/rfc822", "From: x\n  cont"]
    assert keys(raw, headers=False, body=True, mime=True) == ["", "", "body"]
    # Without -m the primary header ends the header keys.
    assert keys(raw, headers=True, body=False) == ["Content-Type: message/rfc822"]
