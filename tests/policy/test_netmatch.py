"""Match lists: addresses v4/v6, brackets, negation, names, files, tables."""

import sys
from pathlib import Path

import pytest

from mailsys.errors import ConfigError
from mailsys.policy.netmatch import ClientMatcher, DomainMatcher, parse_address

sys.path.insert(0, str(Path(__file__).parents[1]))      # tests/memtable.py (tests/ is no package)
from memtable import Table  # noqa: E402


@pytest.mark.parametrize("addr, expected", [
    ("127.0.0.1", True), ("127.255.0.9", True), ("192.0.2.5", True), ("192.0.2.1", False),
    ("192.0.3.1", False), ("::1", True), ("::2", False), ("2001:db8::7", True),
    ("2001:db9::7", False), ("::ffff:192.0.2.5", True), ("::ffff:10.0.0.1", False),
    ("10.1.2.3", True), ("bogus", False), ("", False),
])
def test_addresses_in_order_with_negation(addr, expected):
    m = ClientMatcher.compile(["127.0.0.0/8", "[::1]/128", "!192.0.2.1", "192.0.2.0/24",
                               "[2001:db8::]/32", "10.1.2.3"])
    assert m.match("unknown", addr) is expected


def test_negation_only_applies_when_reached_first():
    m = ClientMatcher.compile(["192.0.2.0/24", "!192.0.2.1"])
    assert m.match("unknown", "192.0.2.1") is True


def test_bracketed_single_ipv6_address():
    m = ClientMatcher.compile(["[2001:db8::1]"])
    assert m.match("unknown", "2001:db8::1")
    assert m.match("unknown", "2001:DB8:0::1")
    assert not m.match("unknown", "2001:db8::2")


def test_host_bits_set_is_config_error_with_postfix_advice():
    with pytest.raises(ConfigError) as e:
        ClientMatcher.compile(["192.0.2.1/24"], param="mynetworks")
    assert 'non-null host address bits in "192.0.2.1/24", perhaps you should use ' \
           '"192.0.2.0/24" instead' in str(e.value)
    assert e.value.param == "mynetworks"


def test_hostnames_and_parent_domain_matching():
    m = ClientMatcher.compile(["example.com"], parent=True)
    assert m.match("example.com", "192.0.2.1")
    assert m.match("mail.Example.COM.", "192.0.2.1")
    assert not m.match("badexample.com", "192.0.2.1")
    # An empty first label is no subdomain, in a list or in a table.
    assert not DomainMatcher.compile(["example.com"], parent=True).match(".example.com")
    t = Table({"example.com": "ok"})
    assert not DomainMatcher.compile(["texthash:/t"], parent=True,
                                     opener=lambda spec: t).match(".example.com")
    strict = ClientMatcher.compile(["example.com"], parent=False)
    assert strict.match("example.com", "192.0.2.1")
    assert not strict.match("mail.example.com", "192.0.2.1")


def test_dot_pattern_matches_subdomains_only():
    m = ClientMatcher.compile([".example.com"], parent=False)
    assert m.match("a.b.example.com", "192.0.2.1")
    assert not m.match("example.com", "192.0.2.1")


def test_negated_hostname():
    m = ClientMatcher.compile(["!bad.example.com", "example.com"], parent=True)
    assert not m.match("bad.example.com", "192.0.2.1")
    assert m.match("good.example.com", "192.0.2.1")


def test_file_patterns(tmp_path):
    f = tmp_path / "nets"
    f.write_text("# trusted\n192.0.2.0/24, 198.51.100.7\n  2001:db8::/32\n")
    m = ClientMatcher.compile(["127.0.0.1", str(f)])
    assert m.match("unknown", "198.51.100.7")
    assert m.match("unknown", "2001:db8::1")
    assert not m.match("unknown", "198.51.100.8")
    neg = ClientMatcher.compile(["!" + str(f), "0.0.0.0/0"])
    assert not neg.match("unknown", "192.0.2.9")
    assert neg.match("unknown", "203.0.113.1")


def test_missing_file_is_config_error(tmp_path):
    with pytest.raises(ConfigError):
        ClientMatcher.compile([str(tmp_path / "nope")])


def test_table_looked_up_by_name_parents_and_address():
    t = Table({"192.0.2.9": "OK", "example.net": "x"})
    m = ClientMatcher.compile(["texthash:/x"], opener=lambda spec: t, parent=True)
    assert m.match("unknown", "192.0.2.9")
    assert m.match("mx.example.net", "203.0.113.1")
    assert not m.match("mx.example.org", "203.0.113.1")
    assert "mx.example.org" in t.keys and "example.org" in t.keys and "203.0.113.1" in t.keys


def test_repeated_questions_get_the_same_answers():
    spec = ["127.0.0.0/8", "!192.0.2.1", "192.0.2.0/24", ".example.com"]
    m = ClientMatcher.compile(spec)
    asked = [("unknown", "127.0.0.1"), ("unknown", "127.0.0.1"), ("unknown", "192.0.2.1"),
             ("unknown", "192.0.2.1"), ("unknown", "192.0.2.7"), ("mx.example.com", "203.0.113.1"),
             ("mx.example.com", "203.0.113.1"), ("mx.example.org", "203.0.113.1"),
             ("unknown", parse_address("192.0.2.7")), ("unknown", None)]
    fresh = [ClientMatcher.compile(spec).match(n, a) for n, a in asked]
    assert [m.match(n, a) for n, a in asked] == fresh == [
        True, True, False, False, True, True, True, False, True, False]


def test_a_table_is_asked_every_time():
    t = Table({"192.0.2.9": "OK"})
    m = ClientMatcher.compile(["texthash:/x"], opener=lambda spec: t)
    assert m.match("unknown", "192.0.2.9")
    t.entries.pop("192.0.2.9")          # rebuilt without it
    assert not m.match("unknown", "192.0.2.9")


def test_table_without_opener_is_config_error():
    with pytest.raises(ConfigError):
        ClientMatcher.compile(["texthash:/x"])


def test_domain_matcher():
    m = DomainMatcher.compile(["example.com", ".sub.example.org", "!no.example.net", "example.net"],
                              parent=True)
    assert m.match("example.com") and m.match("EXAMPLE.com.")
    assert m.match("a.example.com")
    assert m.match("x.sub.example.org") and not m.match("sub.example.org")
    assert not m.match("no.example.net") and m.match("yes.example.net")
    assert not m.match("") and not m.match("example.org")


def test_domain_matcher_table_parent_lookup_forms():
    t = Table({".example.com": "x"})
    m = DomainMatcher.compile(["texthash:/d"], opener=lambda s: t, parent=False)
    assert m.match("a.example.com") and not m.match("example.com")


def test_parse_address_normalises():
    assert str(parse_address("[::ffff:192.0.2.1]")) == "192.0.2.1"
    assert str(parse_address("IPv6:2001:db8::1")) == "2001:db8::1"
    assert parse_address("example.com") is None
