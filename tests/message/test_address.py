"""Addresses, phrases and comments as they are written into headers."""

import pytest

from mailsys.message.address import comment_text, phrase_text, quote_822_local


@pytest.mark.parametrize("addr, expected", [
    ("alice@example.com", "alice@example.com"),
    ("first.last@example.com", "first.last@example.com"),
    ("john doe@example.com", '"john doe"@example.com'),
    ("a..b@example.com", '"a..b"@example.com'),
    (".a@example.com", '".a"@example.com'),
    ("a.@example.com", '"a."@example.com'),
    ('say"hi"@example.com', '"say\\"hi\\""@example.com'),
    ("a@b@example.com", '"a@b"@example.com'),
    ("@example.com", '""@example.com'),
    ("postmaster", "postmaster"),
    ("jörg@example.com", "jörg@example.com"),      # 8-bit is left alone
    ("", ""),
    # The external form the queue holds is quoted already: left as it is.
    ('"john doe"@example.com', '"john doe"@example.com'),
    ('"odd,name"@example.com', '"odd,name"@example.com'),
    ('"say\\"hi\\""@example.com', '"say\\"hi\\""@example.com'),
    ('"a"b@example.com', '"\\"a\\"b"@example.com'),  # not one quoted-string
])
def test_quote_822_local(addr, expected):
    assert quote_822_local(addr) == expected


@pytest.mark.parametrize("name, expected", [
    ("abc def", "abc def"),
    ("  abc \t\r\n def  ", "abc def"),
    ("foo@bar", '"foo@bar"'),
    ('Say "hi"', '"Say \\"hi\\""'),
    ("Dr. Who", '"Dr. Who"'),
    (" ", ""),
    ("", ""),
    ("Zoë", "=?utf-8?Q?Zo=C3=AB?="),
])
def test_phrase_text(name, expected):
    assert phrase_text(name) == expected


def test_long_non_ascii_phrase_uses_base64_words_of_at_most_75_chars():
    got = phrase_text("日本語の名前" * 6)
    words = got.split("\n")
    assert len(words) > 1
    assert all(w.startswith("=?utf-8?B?") and w.endswith("?=") and len(w) <= 75 for w in words)


@pytest.mark.parametrize("text, expected", [
    ("bob", "bob"),
    (")foo )bar", "foo bar"),
    ("(foo (bar", "(foo (bar))"),
    ("foo\\bar", "foo\\bar"),
    ("foo\\", "foo"),
    ("a\r\nb", "a??b"),
])
def test_comment_text(text, expected):
    assert comment_text(text) == expected
