"""The message on a pipe(8) command's input: each flag, byte for byte."""

from __future__ import annotations

import time

from mailsys.delivery.pipe_copy import copy_message

CONTENT = (b"Received: from c.example\r\nSubject: hi\r\n\r\nFrom me\r\n.dot\r\n"
           b">From quoted\r\n From indented\r\nlast")
WHEN = time.mktime((2026, 11, 7, 9, 5, 1, 0, 0, -1))


def test_no_flags_copies_the_message_with_lf():
    assert copy_message(CONTENT) == (
        b"Received: from c.example\nSubject: hi\n\nFrom me\n.dot\n>From quoted\n"
        b" From indented\nlast\n")


def test_headers_in_postfix_order():
    out = copy_message(b"Subject: x\r\n\r\nbody\r\n", flags=frozenset("DFOR"),
                       sender="a b@example.org", orig_rcpt="Orig@example.com",
                       delivered="bob@example.com", when=WHEN)
    assert out == (b'From "a b"@example.org  Sat Nov  7 09:05:01 2026\n'
                   b'Return-Path: <"a b"@example.org>\n'
                   b"X-Original-To: Orig@example.com\n"
                   b"Delivered-To: bob@example.com\n"
                   b"Subject: x\n\nbody\n")


def test_null_sender_and_missing_original():
    out = copy_message(b"x\n", flags=frozenset("FRO"), sender="", orig_rcpt="", when=WHEN)
    assert out == b"From MAILER-DAEMON  Sat Nov  7 09:05:01 2026\nReturn-Path: <>\nx\n"


def test_from_and_dot_quoting_and_blank():
    out = copy_message(CONTENT, flags=frozenset(">.B"))
    assert out == (b"Received: from c.example\nSubject: hi\n\n>From me\n..dot\n>From quoted\n"
                   b" From indented\nlast\n\n")


def test_eol():
    out = copy_message(b"Subject: x\n\nbody\n", flags=frozenset("RB"), sender="a@example.org",
                       eol=b"\r\n")
    assert out == b"Return-Path: <a@example.org>\r\nSubject: x\r\n\r\nbody\r\n\r\n"


def test_bytes_pass_unchanged():
    raw = b"Subject: \xe9t\xe9\r\n\r\n\xff\x00bin\rary\r\n"
    assert copy_message(raw) == b"Subject: \xe9t\xe9\n\n\xff\x00bin\rary\n"
