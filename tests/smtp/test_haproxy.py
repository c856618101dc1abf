"""The PROXY protocol header (smtpd_upstream_proxy_protocol = haproxy), fed as bytes."""

import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailsys.smtp.haproxy import V2_SIGNATURE, HaproxyError, Proxied, parse_proxy

V1 = b"PROXY TCP4 198.51.100.22 203.0.113.7 35646 25\r\n"


def v2(command=0x21, family=0x11, body=None):
    if body is None:
        body = (socket.inet_aton("192.0.2.9") + socket.inet_aton("192.0.2.10")
                + struct.pack("!HH", 5555, 25))
    return V2_SIGNATURE + bytes([command, family]) + struct.pack("!H", len(body)) + body


def test_version_1_and_what_follows_it_stays():
    assert parse_proxy(V1 + b"EHLO x\r\n") == Proxied("198.51.100.22", 35646, "203.0.113.7", 25,
                                                      len(V1))
    assert parse_proxy(b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 25\n").client_addr == "2001:db8::1"


def test_version_2_proxy_and_local():
    assert parse_proxy(v2()) == Proxied("192.0.2.9", 5555, "192.0.2.10", 25, len(v2()))
    six = v2(family=0x21, body=bytes(15) + b"\x01" + bytes(15) + b"\x02" + struct.pack("!HH", 1, 2))
    assert parse_proxy(six).client_addr == "::1"
    assert parse_proxy(v2(command=0x20, family=0, body=b"")).local


# The reasons Postfix 3.7.11 logged for the same headers ("warning: haproxy read: ...").
@pytest.mark.parametrize("data, reason", [
    (b"EHLO x\r\n", "short protocol header"),
    (b"PROXY UNKNOWN\r\n", "bad or missing protocol type"),
    (b"PROXY TCP4 1.2.3 4.5.6.7 1 2\r\n", "bad or missing client address"),
    (b"PROXY TCP4 1.2.3.4 4.5.6 1 2\r\n", "bad or missing server address"),
    (b"PROXY TCP4 1.2.3.4 4.5.6.7 99999 2\r\n", "bad or missing client port"),
    (b"PROXY TCP4 1.2.3.4 4.5.6.7 1 x\r\n", "bad or missing server port"),
    (b"PROXY TCP4 1.2.3.4", "missing protocol header terminator"),
    (b"PROXY TCP4 2001:db8::1 4.5.6.7 1 2\r\n", "bad or missing client address"),
])
def test_bad_headers_get_postfixs_reasons(data, reason):
    with pytest.raises(HaproxyError, match=f"^{reason}$"):
        parse_proxy(data)


def test_a_partial_header_waits_for_more():
    for cut in (1, 6, 20, len(V1) - 1):
        assert parse_proxy(V1[:cut], more_to_come=True) is None
    assert parse_proxy(v2()[:20], more_to_come=True) is None
    with pytest.raises(HaproxyError):
        parse_proxy(b"EHLO example\r\n", more_to_come=True)


@given(st.binary(max_size=200))
def test_any_bytes_parse_or_are_refused(data):
    try:
        found = parse_proxy(data, more_to_come=False)
    except HaproxyError as e:
        assert str(e)
    else:
        assert 0 < found.length <= len(data)
