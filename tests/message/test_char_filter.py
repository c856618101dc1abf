"""message_reject_characters / message_strip_characters as cleanup applies them."""

from mailsys.message.char_filter import CharFilter, unescape


def test_unescape_follows_postfix():
    assert unescape(r"\0") == b"\x00"
    assert unescape(r"\t\r\n\a\b\f\v") == b"\t\r\n\x07\x08\x0c\x0b"
    assert unescape(r"\177\0011") == b"\x7f\x011"
    assert unescape(r"\\x\q") == b"\\xq"
    assert unescape("abc") == b"abc"
    assert unescape("") == b""


def test_rejected_names_the_line_without_its_end():
    chars = CharFilter(reject_chars=b"\x01")
    content = b"Subject: ok\r\nX: a\x01b\r\n\r\nbody\r\n"
    assert chars.rejected(content) == b"X: a\x01b"
    assert chars.rejected(b"Subject: ok\r\n\r\nbody\r\n") is None
    assert CharFilter().rejected(content) is None


def test_line_ends_are_never_rejected_or_stripped():
    chars = CharFilter(reject_chars=b"\r\n", strip_chars=b"\r\n")
    content = b"Subject: ok\r\n\r\nbody\n"
    assert chars.rejected(content) is None
    assert chars.strip(content) == content
    # a CR inside a line is data
    assert chars.rejected(b"a\rb\r\n") == b"a\rb"
    assert chars.strip(b"a\rb\r\nc\n") == b"ab\r\nc\n"


def test_a_long_line_is_reported_by_its_record():
    chars = CharFilter(reject_chars=b"\x00")
    line = b"x" * 3000 + b"\x00" + b"y" * 10
    record = chars.rejected(b"Subject: s\r\n\r\n" + line + b"\r\n")
    assert record == line[2048:]


def test_strip_removes_the_characters_everywhere():
    chars = CharFilter(strip_chars=b"\x7f\t")
    assert chars.strip(b"Sub\x7fject: a\tb\r\n\r\nbo\x7fdy\r\n") == b"Subject: ab\r\n\r\nbody\r\n"
    assert CharFilter().strip(b"a\x7f") == b"a\x7f"
