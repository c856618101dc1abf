"""sendmail's input handling, without a mail system: options, the lone dot, -t."""

from __future__ import annotations

import io

import pytest

from mailsys.cli import sendmail
from mailsys.errors import UsageError


@pytest.mark.parametrize("data, ignore, expected", [
    (b"a\n.\nb\n", False, b"a\n"),
    (b"a\r\n.\r\nb\r\n", False, b"a\r\n"),
    (b".\nb\n", False, b""),
    (b"a\n.", False, b"a\n"),
    (b"a\n..\nb\n", False, b"a\n..\nb\n"),
    (b"a\n.x\nb\n", False, b"a\n.x\nb\n"),
    (b"a\n.\nb\n", True, b"a\n.\nb\n"),
    (b"From alice Fri Nov 27\nSubject: x\n\nb\n", True, b"Subject: x\n\nb\n"),
])
def test_read_message(data, ignore, expected):
    assert sendmail._read_message(io.BytesIO(data), ignore_dots=ignore) == expected


def test_extract_recipients_and_drop_bcc():
    content = (b"To: Bob <bob@example.org>,\n  carol@example.org\nSubject: s\n"
               b"Bcc: secret@example.org\nCc: \"Doe, J\" <j@example.net>\n\nBcc: body@x\n")
    found, out = sendmail._extract_recipients(content)
    assert found == ["bob@example.org", "carol@example.org", "secret@example.org", "j@example.net"]
    assert out == (b"To: Bob <bob@example.org>,\n  carol@example.org\nSubject: s\n"
                   b"Cc: \"Doe, J\" <j@example.net>\n\nBcc: body@x\n")


def test_extract_resent_recipients_only():
    content = b"To: old@example.org\nResent-To: new@example.org\nResent-Bcc: b@example.org\n\nx\n"
    found, out = sendmail._extract_recipients(content)
    assert found == ["new@example.org", "b@example.org"]
    assert b"Resent-Bcc" not in out and b"To: old@example.org" in out


def test_parse_options():
    opts = sendmail._parse(["-oi", "-fsender@x", "-F", "Full Name", "-t", "-N", "success,delay",
                            "-odi", "-v", "rcpt@x"])
    assert opts["i"] and opts["t"] and opts["f"] == "sender@x" and opts["F"] == "Full Name"
    assert opts["rcpt"] == ["rcpt@x"]
    assert sendmail._notify(opts["N"]) == ("SUCCESS", "DELAY")
    with pytest.raises(UsageError):
        sendmail._parse(["-bs"])
    with pytest.raises(UsageError):
        sendmail._parse(["-R", "most"])
    with pytest.raises(UsageError):
        sendmail._notify("never,success")


def test_command_line_recipients_may_be_lists():
    assert sendmail._addresses(["Bob <bob@x.example>, carol@y.example", "dave"]) == [
        "bob@x.example", "carol@y.example", "dave"]
