"""Server certificate name checks at the verify and secure levels (mailsys.tls_match).

The expectations are OpenSSL's X509_check_host / X509_check_ip as Postfix
3.7.11 uses them, seen live against certificates with these names.
"""

from __future__ import annotations

import ipaddress

import pytest
import trustme
from cryptography import x509

from mailsys.tls_match import (NameCheck, certificate_addresses, certificate_names, host_matches,
                               match_names, names_match)


@pytest.mark.parametrize("cert_name, wanted, ok", [
    ("example.com", "example.com", True),
    ("EXAMPLE.com", "example.COM", True),
    ("mx.example.com", "example.com", False),
    ("example.com", "mx.example.com", False),
    # "*" is one whole first label...
    ("*.example.com", "mx.example.com", True),
    ("*.example.com", "a.mx.example.com", False),     # live: also at multiple labels = yes
    ("*.example.com", "example.com", False),
    ("*.example.com", "*.example.com", True),
    # ... of a name with three labels or more, else a plain name
    ("*.com", "example.com", False),
    ("*.com", "*.com", True),
    ("mx*.example.com", "mx1.example.com", False),
    ("*mx.example.com", "amx.example.com", False),
    ("*.*.example.com", "a.b.example.com", False),
    # ".domain": any certificate name ending in it, a wildcard included
    ("mx.example.com", ".example.com", True),
    ("a.b.example.com", ".example.com", True),
    ("*.example.com", ".example.com", True),
    ("example.com", ".example.com", False),
    ("badexample.com", ".example.com", False),
])
def test_host_matches(cert_name, wanted, ok):
    assert host_matches(cert_name, wanted) is ok


def test_any_certificate_name_meets_any_wanted_name():
    assert names_match(["example.com", "other.net"], ["x.org", "other.net"])
    assert not names_match(["example.com"], ["x.org", ".x.org"])
    assert not names_match([], ["example.com"])


def test_strategies_stand_for_the_host_and_the_next_hop():
    assert match_names(["hostname"], "mx.example.com", "example.com") == ("mx.example.com",)
    assert match_names(["NextHop", "dot-nexthop"], "mx.example.com", "example.com") == (
        "example.com", ".example.com")
    assert match_names(["mail.example.net", ".example.org", ""], "h", "n") == (
        "mail.example.net", ".example.org")


def test_an_address_is_checked_besides_the_names_and_only_the_first():
    check = NameCheck.of(["127.0.0.1", ".127.0.0.1", "mx.example.com", "127.0.0.2"])
    assert check.hosts == (".127.0.0.1", "mx.example.com")
    assert check.ip == ipaddress.ip_address("127.0.0.1")
    assert check.refused == ("127.0.0.2",)


def certificate(*names):
    return x509.load_pem_x509_certificate(
        trustme.CA().issue_cert(*names).cert_chain_pems[0].bytes())


def test_failures_in_openssls_order():
    mx, ip = certificate("mx.example.com"), certificate("127.0.0.1")
    assert NameCheck.of(["mx.example.com", "127.0.0.1"]).failures(ip) == ["hostname"]
    assert NameCheck.of(["mx.example.com", "127.0.0.1"]).failures(mx) == ["ip"]
    assert NameCheck.of(["other.example.com", "127.0.0.2"]).failures(mx) == ["hostname", "ip"]
    # Postfix secure with next hop [127.0.0.1]: nexthop, dot-nexthop
    assert NameCheck.of(["127.0.0.1", ".127.0.0.1"]).failures(ip) == ["hostname"]
    assert NameCheck.of(["127.0.0.1"]).failures(ip) == []
    assert NameCheck.of(["MX.example.com"]).failures(mx) == []
    assert NameCheck.of(["x"]).failures(None) == ["hostname"]


def test_names_come_from_subject_alt_names():
    cert = certificate("mx.example.com", "Smtp.Example.com", "192.0.2.1")
    assert certificate_names(cert) == ["mx.example.com", "smtp.example.com"]
    assert certificate_addresses(cert) == [ipaddress.ip_address("192.0.2.1")]
    assert certificate_names(None) == [] and certificate_addresses(None) == []
