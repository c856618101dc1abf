"""The mbox entry as Postfix 3.7's local(8) and virtual(8) write it: From_ line, quoting, end."""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import given, strategies as st

from mailsys.delivery.mbox_format import envelope_line, mbox_entry, quote_from

WHEN = 1794000000.0            # Fri Nov  6 21:20:00 2026 UTC


@pytest.fixture
def utc():
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


def test_envelope_line_is_asctime_of_local_time_after_two_spaces(utc):
    assert envelope_line("alice@example.org", WHEN) == b"From alice@example.org  Fri Nov  6 21:20:00 2026\n"
    assert envelope_line("", WHEN) == b"From MAILER-DAEMON  Fri Nov  6 21:20:00 2026\n"
    assert envelope_line("a b@example.org", WHEN) == b'From "a b"@example.org  Fri Nov  6 21:20:00 2026\n'


def test_envelope_line_follows_the_local_time_zone(utc):
    os.environ["TZ"] = "EST5"
    time.tzset()
    assert envelope_line("x@y", WHEN) == b"From x@y  Fri Nov  6 16:20:00 2026\n"


# Sent through Postfix 3.7 smtpd to local(8) with an mbox in mail_spool_directory;
# the expected bytes are Postfix's file, with its Received/Message-Id/Date lines
# kept as part of the content.
POSTFIX_CONTENT = (
    b"Received: from client.test (unknown [127.0.0.1])\r\n"
    b"\tby bench.localdomain (Postfix) with ESMTP id B7AE02308B2\r\n"
    b"\tfor <nobody@localhost>; Fri, 27 Nov 2026 16:41:35 +0000 (UTC)\r\n"
    b"Subject: t1\r\nFrom: a@b\r\n"
    b"Message-Id: <20261127164135.B7AE02308B2@bench.localdomain>\r\n"
    b"Date: Fri, 27 Nov 2026 16:41:35 +0000 (UTC)\r\n\r\n"
    b"From the start\r\n>From quoted\r\n>>From twice\r\nFrom\r\nFromage\r\n"
    b"from lower\r\n From space\r\n.dot\r\nlast line no blank\r\n")
POSTFIX_MBOX = (
    b"From alice@example.org  Fri Nov 27 16:41:35 2026\n"
    b"Return-Path: <alice@example.org>\nX-Original-To: nobody@localhost\n"
    b"Delivered-To: nobody@localhost\n"
    b"Received: from client.test (unknown [127.0.0.1])\n"
    b"\tby bench.localdomain (Postfix) with ESMTP id B7AE02308B2\n"
    b"\tfor <nobody@localhost>; Fri, 27 Nov 2026 16:41:35 +0000 (UTC)\n"
    b"Subject: t1\nFrom: a@b\n"
    b"Message-Id: <20261127164135.B7AE02308B2@bench.localdomain>\n"
    b"Date: Fri, 27 Nov 2026 16:41:35 +0000 (UTC)\n\n"
    b">From the start\n>From quoted\n>>From twice\nFrom\nFromage\n"
    b"from lower\n From space\n.dot\nlast line no blank\n\n")
HEADER = (b"Return-Path: <alice@example.org>\r\nX-Original-To: nobody@localhost\r\n"
          b"Delivered-To: nobody@localhost\r\n")


def test_entry_is_byte_for_byte_what_postfix_writes(utc):
    when = time.mktime((2026, 11, 27, 16, 41, 35, 0, 0, 0))
    assert mbox_entry(HEADER, POSTFIX_CONTENT, "alice@example.org", when) == POSTFIX_MBOX


def test_only_from_space_at_a_line_start_is_quoted():
    assert quote_from(b"From a\n>From b\nxFrom c\nFrom\nFROM d\n") == \
        b">From a\n>From b\nxFrom c\nFrom\nFROM d\n"
    # A bare LF in the content is a line end in the file too.
    assert quote_from(b"a\nFrom b") == b"a\n>From b"


def test_a_last_line_without_end_gets_one_and_every_entry_ends_blank(utc):
    assert mbox_entry(b"", b"Subject: x\r\n\r\nno end", "", WHEN).endswith(b"\nno end\n\n")
    assert mbox_entry(b"", b"", "", WHEN) == b"From MAILER-DAEMON  Fri Nov  6 21:20:00 2026\n\n"


@given(st.binary(max_size=300), st.text(max_size=20))
def test_any_content_makes_one_entry(content, sender):
    entry = mbox_entry(b"Return-Path: <x>\n", content, sender.replace("\n", ""), WHEN)
    lines = entry.split(b"\n")
    assert lines[0].startswith(b"From ")
    assert not any(line.startswith(b"From ") for line in lines[1:])
    assert entry.endswith(b"\n\n")
    # Unquoting one level of the lines Postfix quoted gives the content back (LF form),
    # wherever the content had no ">From " line of its own.
    if b">From " not in content and b"\r" not in content:
        body = b"\n".join(lines[2:-1])
        restored = body.replace(b"\n>From ", b"\nFrom ")
        restored = restored[1:] if restored.startswith(b">From ") else restored
        assert restored.rstrip(b"\n") == content.rstrip(b"\n")
