"""smtp_tls_policy_maps entries and lookup keys (Postfix TLS_README, smtp_tls_policy.c)."""

from __future__ import annotations

import pytest

from mailsys.config.tables import DictTable
from mailsys.config.tls_policy import BadPolicy, SitePolicy, find_policy, lookup_keys, parse_policy

TITLE = "smtp_tls_policy_maps"


def table(**entries: str) -> DictTable:
    return DictTable("inline:test", {k.lower(): v for k, v in entries.items()})


def test_lookup_keys_walk_parent_domains_of_a_plain_domain_only():
    assert lookup_keys("mail.example.com") == ["mail.example.com", ".example.com", ".com"]
    assert lookup_keys("[mx.example.com]:587") == ["[mx.example.com]:587"]
    assert lookup_keys("[mx.example.com]") == ["[mx.example.com]"]
    assert lookup_keys("example.com:2525") == ["example.com:2525"]
    assert lookup_keys("inet:lmtp.example.com:24") == ["lmtp.example.com:24"]
    assert lookup_keys("unix:private/dovecot-lmtp") == ["private/dovecot-lmtp"]


def test_the_most_specific_entry_wins():
    t = DictTable("texthash:p", {"example.com": "encrypt", ".example.com": "verify",
                                 "[mx.example.com]:587": "secure match=mx.example.com"})
    assert find_policy([t], "example.com", TITLE) == SitePolicy("encrypt")
    assert find_policy([t], "a.b.example.com", TITLE) == SitePolicy("verify")
    assert find_policy([t], "[mx.example.com]:587", TITLE) == SitePolicy(
        "secure", match=("mx.example.com",))
    # Brackets and a port match only their own entry, never a parent domain.
    assert find_policy([t], "[mx.example.com]", TITLE) is None
    assert find_policy([t], "example.org", TITLE) is None


def test_tables_are_searched_in_order_for_each_key():
    first, second = table(**{"mail.example.com": "may"}), table(**{"mail.example.com": "none"})
    assert find_policy([first, second], "mail.example.com", TITLE).level == "may"


def test_attributes():
    p = parse_policy("Secure, ciphers=high protocols=>=TLSv1.2 exclude=3DES "
                     "match=nexthop:dot-nexthop match=mx.example.net", "w")
    assert p == SitePolicy("secure", ciphers="high", protocols=">=TLSv1.2", exclude="3DES",
                           match=("nexthop", "dot-nexthop", "mx.example.net"))
    fp = parse_policy("fingerprint match=AB:CD:EF|01:23 match=45:67", "w")
    assert fp.match == ("AB:CD:EF", "01:23", "45:67")
    assert parse_policy("may connection_reuse=yes", "w") == SitePolicy("may")


def test_level_none_ignores_attributes_with_postfix_warnings():
    p = parse_policy("none ciphers=high", 'smtp_tls_policy_maps, next-hop destination "x"')
    assert p.level == "none"
    assert p.warnings == ('smtp_tls_policy_maps, next-hop destination "x": ignoring attribute '
                          '"ciphers=high" with TLS disabled',)


W = 'smtp_tls_policy_maps, next-hop destination "example.com"'


@pytest.mark.parametrize("value, warning", [
    ("", f"{W}: invalid empty policy"),
    ("strong", f'{W}: invalid security level "strong"'),
    ("encrypt match=example.com", f'{W}: attribute "match" invalid at security level "encrypt"'),
    ("verify match=", f'{W}: attribute "match" has empty value'),
    ("may ciphers=", f'{W}: attribute "ciphers" has empty value'),
    ("may ciphers=high ciphers=low", f'{W}: attribute "ciphers" is specified multiple times'),
    ("may foo=bar", f'{W}: invalid attribute name: "foo"'),
    ("verify tafile=/x", f'{W}: attribute "tafile" is not supported'),
    ("may high", f"{W}: malformed attribute/value pair \"high\": missing '=' after attribute name"),
    ("fingerprint", "nexthop domain example.com: configured at fingerprint security level, "
                    "but with no fingerprints to match."),
])
def test_bad_entries_say_why_as_postfix(value, warning):
    with pytest.raises(BadPolicy) as e:
        find_policy([table(**{"example.com": value})], "example.com", TITLE)
    assert str(e.value) == warning


@pytest.mark.parametrize("value", ["hostname", "NextHop", "smtp.example.net"])
def test_servername_attribute(value):
    assert parse_policy(f"may servername={value}", "w").servername == value


def test_an_invalid_servername_is_postfix_s_warning():
    with pytest.raises(BadPolicy) as e:
        parse_policy("encrypt servername=bad_name!", "w")
    assert str(e.value) == 'w: "servername=bad_name!" specifies an invalid hostname'
