"""cleanup's MIME state machine checks, against what Postfix 3.7.11 answered."""

import pytest

from mailsys.message.mime_state import (BODY_8BIT, ENCODING_DOMAIN, HEADER_8BIT, NESTING,
                                        MimePolicy)

STRICT = MimePolicy(header_8bit=True, body_8bit=True, encoding_domain=True, nesting=True)


def nest(n: int) -> bytes:
    """A multipart in the primary header and n more nested inside it."""
    out = b"Subject: nest\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=L0\r\n\r\n"
    for i in range(n):
        out += b"--L%d\r\nContent-Type: multipart/mixed; boundary=L%d\r\n\r\n" % (i, i + 1)
    out += b"--L%d\r\nContent-Type: text/plain\r\n\r\nhi\r\n--L%d--\r\n" % (n, n)
    for i in range(n - 1, -1, -1):
        out += b"--L%d--\r\n" % i
    return out


def test_8bit_header():
    found = STRICT.scan(b"Subject: caf\xc3\xa9\r\n\r\nbody\r\n")
    assert found.error.text == HEADER_8BIT
    assert found.error.reply.code == 550 and found.error.reply.enhanced == "5.6.0"
    assert found.error.log(origin="unknown[127.0.0.1]", sender="s@example.com",
                           recipient="r@example.net") == (
        "reject: mime-error improper use of 8-bit data in message header: Subject: caf?? "
        "from unknown[127.0.0.1]; from=<s@example.com> to=<r@example.net>")


def test_8bit_body_in_a_7bit_part_but_not_in_an_8bit_one():
    found = STRICT.scan(b"Subject: ok\r\n\r\nbody caf\xc3\xa9\r\n")
    assert found.error.text == BODY_8BIT and found.error.where == b"body caf\xc3\xa9"
    ok = b"Subject: ok\r\nContent-Transfer-Encoding: 8bit\r\n\r\nbody caf\xc3\xa9\r\n"
    assert STRICT.scan(ok).error is None
    part = (b"Subject: ok\r\nContent-Type: multipart/mixed; boundary=A\r\n\r\n--A\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\ncaf\xc3\xa9\r\n--A\r\n\r\nplain \xff\r\n--A--\r\n")
    assert STRICT.scan(part).error.where == b"plain \xff"


def test_strict_options_are_off_by_default():
    assert MimePolicy().scan(b"Subject: caf\xc3\xa9\r\n\r\nbody \xff\r\n").error is None


def test_encoding_domain():
    msg = (b"Subject: ok\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=A\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n--A\r\nContent-Type: text/plain\r\n\r\nhi\r\n--A--\r\n")
    found = STRICT.scan(msg)
    assert found.error.text == ENCODING_DOMAIN and found.error.where == b"base64"
    assert MimePolicy(nesting=True).scan(msg).error is None


@pytest.mark.parametrize("limit, deepest_accepted", [(1, 2), (2, 3), (3, 4)])
def test_nesting_limit_counts_as_postfix(limit, deepest_accepted):
    # Postfix 3.7.11 with header_checks set: mime_nesting_limit = 1 accepted
    # nest(2) and refused nest(3); 2 -> nest(3) / nest(4); 3 -> nest(4) / nest(5).
    policy = MimePolicy(nesting_limit=limit, nesting=True)
    assert policy.scan(nest(deepest_accepted)).error is None
    found = policy.scan(nest(deepest_accepted + 1))
    assert found.error.text == NESTING
    assert found.error.where == b"Content-Type: multipart/mixed; boundary=L%d" % (limit + 2)
    # without header_checks or a strict_* parameter it is not reported
    assert MimePolicy(nesting_limit=limit).scan(nest(deepest_accepted + 1)).error is None


def test_the_most_serious_error_is_the_one_answered():
    msg = b"Subject: caf\xc3\xa9\r\n\r\nbody \xff\r\n"
    assert STRICT.scan(msg).error.text == HEADER_8BIT


def test_detect_8bit_encoding_header_in_any_header_block():
    primary = b"Subject: x\r\nContent-Transfer-Encoding: 8bit\r\n\r\nbody\r\n"
    part = (b"Subject: x\r\nContent-Type: multipart/mixed; boundary=A\r\n\r\n--A\r\n"
            b"Content-Transfer-Encoding: BINARY\r\n\r\nhi\r\n--A--\r\n")
    in_body = b"Subject: x\r\n\r\nContent-Transfer-Encoding: 8bit\r\n"
    assert MimePolicy().scan(primary).declares_8bit
    assert MimePolicy().scan(part).declares_8bit
    assert not MimePolicy().scan(in_body).declares_8bit
    assert not MimePolicy(detect_8bit=False).scan(primary).declares_8bit
    assert not MimePolicy().scan(primary, want_8bit=False).declares_8bit


def test_boundaries_are_compared_on_their_first_characters():
    msg = (b"Subject: x\r\nContent-Type: multipart/mixed; boundary=ABCDEF\r\n\r\n"
           b"--ABCxyz\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\xff\r\n--ABCDEF--\r\n")
    assert STRICT.scan(msg).error.text == BODY_8BIT
    short = MimePolicy(header_8bit=True, body_8bit=True, boundary_limit=3)
    assert short.scan(msg).error is None
