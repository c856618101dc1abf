"""address.py: Path parsing as Postfix does it, and the relay-control helpers."""

from __future__ import annotations

import pytest

from mailsys.smtp import AddressParts, Path, parse_path, routing_tricks, split_address


@pytest.mark.parametrize("text,address", [
    ("<a@b.example>", "a@b.example"),
    ("a@b.example", "a@b.example"),
    ("<>", ""),
    ("<@r1.example,@r2.example:u@d.example>", "u@d.example"),
    ('<"john doe"@d.example>', '"john doe"@d.example'),
    ('<"john"@d.example>', "john@d.example"),
    ('<"a\\"b"@d>', '"a\\"b"@d'),
    ("<postmaster>", "postmaster"),
    ("<u@[192.0.2.1]>", "u@[192.0.2.1]"),
    ("<u@[IPv6:2001:db8::1]>", "u@[IPv6:2001:db8::1]"),
    ("<user%other@d.example>", "user%other@d.example"),
    ("<a!b@d>", "a!b@d"),
    ("<ü@bücher.example>", "ü@bücher.example"),
    ("<a@b.example.>", "a@b.example."),
    # Postfix's RFC 822 parser (strict_rfc821_envelopes = no), each seen
    # as from=<...> in the log of Postfix 3.7.11:
    ("<<a@b.example>>", "a@b.example"),
    ("<a@b.example>>", "a@b.example"),
    ("a@b.example>", "a@b.example"),
    ("<a(comment)@b.example>", "a@b.example"),
    ("<i@b.example (Joe)>", "i@b.example"),
    ("<x@a@b.example>", '"x@a"@b.example'),
    ("<a\\@b@c.example>", '"a@b"@c.example'),
    ("<h.@b.example>", '"h."@b.example'),
    ("<a..b@c.example>", '"a..b"@c.example'),
    ("<>x", "x"),
    # the resolver, not the parser, refuses these (smtpd_check_addr())
    ("<a@>", "a@"),
    ("<a@-b>", "a@-b"),
    ("<a@b..c>", "a@b..c"),
    ("<@a.example:>", ""),
])
def test_parse_path_accepts(text, address):
    path = parse_path(text)
    assert path is not None and path.address == address


@pytest.mark.parametrize("text", [
    "<a b@c>", "<a@b c>", "<a@b.example,c@d.example>", "<a@b.example;c@d.example>",
    "<a@b.example>BODY=8BITMIME", "John Smith",
])
def test_parse_path_rejects_more_than_one_address(text):
    assert parse_path(text) is None


@pytest.mark.parametrize("text", [
    "a@b.example", "<a(c)@b.example>", "<a@b.example>(c)", "a@b>", "<a@b.example>x",
])
def test_strict_rfc821_envelopes_wants_the_address_alone_in_brackets(text):
    assert parse_path(text, strict=True) is None


@pytest.mark.parametrize("text,address", [
    ("<a@b.example>", "a@b.example"), ("<@r.example:a@b.example>", "a@b.example"),
    ('<"a b"@c.example>', '"a b"@c.example'),
])
def test_strict_rfc821_envelopes_takes_a_plain_path(text, address):
    path = parse_path(text, strict=True)
    assert path is not None and path.address == address


def test_null_path_can_be_refused():
    assert parse_path("<>", allow_null=False) is None


def test_source_route_is_kept_aside():
    assert parse_path("<@a,@b:u@d>") == Path("u@d", ("@a", "@b"), True)
    assert parse_path("u@d") == Path("u@d", (), False)


@pytest.mark.parametrize("address,parts", [
    ("a@Example.COM.", AddressParts("a", "example.com", False)),
    ('"a@b"@c.example', AddressParts("a@b", "c.example", True)),
    ('"a\\"q"@c', AddressParts('a"q', "c", True)),
    ("postmaster", AddressParts("postmaster", "", False)),
    ("user%remote@local", AddressParts("user%remote", "local", False)),
])
def test_split_address(address, parts):
    assert split_address(address) == parts


@pytest.mark.parametrize("address,route,tricks", [
    ("a@local.example", (), ()),
    ("user%remote.example@local.example", (), ("percent",)),
    ("remote!user@local.example", (), ("bang",)),
    ('"user@remote.example"@local.example', (), ("at-in-local-part",)),
    ("u@local.example", ("@relay.example",), ("source-route",)),
    ('"a%b!c@d"@e', ("@x",), ("source-route", "percent", "bang", "at-in-local-part")),
])
def test_routing_tricks(address, route, tricks):
    assert routing_tricks(address, route) == tricks


@pytest.mark.parametrize("text", [
    "<a" + "." * 40 + "@>", "<" + "a." * 900 + "@>", "<x@" + "a" * 2000 + "->",
    "<@" + "a" * 1000 + "-:x@y>", '<"' + "\\" * 1999, "<" + '"a' * 1000,
])
def test_no_slow_regex_on_hostile_paths(text):
    # each of these took seconds (or forever) with nested quantifiers
    import time
    t = time.perf_counter()
    parse_path(text)
    assert time.perf_counter() - t < 0.05


@pytest.mark.parametrize("text", ["<a..b@c>", "<.a@c>", "<a.@c>"])
def test_lenient_local_parts(text):
    assert parse_path(text) is not None
