"""AddressResolver: resolve_numeric_domain and the null domain, as Postfix 3.7.11's
trivial-rewrite resolved them for smtpd."""

import ipaddress

from mailsys.policy.netmatch import DomainMatcher
from mailsys.policy.resolve import AddressResolver, DomainClass


def resolver(numeric: bool) -> AddressResolver:
    none = DomainMatcher.compile([])
    return AddressResolver(DomainMatcher.compile(["mx.example"]), none, none, none,
                           frozenset({ipaddress.ip_address("127.0.0.1")}), "mx.example",
                           True, True, True, numeric)


def test_a_numeric_domain_is_its_address_literal_with_resolve_numeric_domain():
    # Postfix, resolve_numeric_domain = yes: RCPT TO:<u@127.0.0.1> was local
    # ("550 5.1.1 <u@127.0.0.1>: Recipient address rejected: local delivery
    # disabled ..."), and u@1.2.3.4 went out as to=<u@[1.2.3.4]>.
    r = resolver(True)
    assert r.resolve("u@127.0.0.1").cls is DomainClass.LOCAL
    assert r.resolve("u@1.2.3.4") == r.resolve("u@[1.2.3.4]")
    assert r.resolve("u@1.2.3.4").domain == "[1.2.3.4]"
    assert r.resolve("u@123").domain == "123"                 # no address: left alone
    assert resolver(False).resolve("u@127.0.0.1").domain == "127.0.0.1"


def test_the_null_domain_resolves_at_myhostname():
    assert resolver(False).resolve("u@") == resolver(False).resolve("u")
    assert resolver(False).resolve("u@").cls is DomainClass.LOCAL


def test_no_domain_is_local_only_when_myhostname_is():
    # resolve.c re-resolves "u" as u@$myhostname: with $myhostname outside
    # $mydestination (Postfix 3.7.11, mydestination empty) RCPT TO:<x> was
    # relayed, "554 5.7.1 <x>: Relay access denied" from outside mynetworks.
    none = DomainMatcher.compile([])
    elsewhere = AddressResolver(DomainMatcher.compile(["example.org"]), none, none, none,
                                frozenset(), "mx.example", True, True, True, False)
    got = elsewhere.resolve("u")
    assert (got.cls, got.domain) == (DomainClass.DEFAULT, "mx.example")
    assert resolver(False).resolve("u").cls is DomainClass.LOCAL
