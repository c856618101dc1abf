"""Certificate name matching for the smtp client's secure level (Postfix match_servername)."""

from __future__ import annotations

import trustme
from cryptography import x509

from mailsys.tls import certificate_names, names_match


def test_exact_names_and_single_label_wildcards():
    assert names_match(["example.com"], ["example.com"])
    assert names_match(["EXAMPLE.com"], ["example.com."])
    assert names_match(["*.example.com"], ["mx.example.com"])
    assert not names_match(["*.example.com"], ["a.mx.example.com"])
    assert not names_match(["*.example.com"], ["example.com"])
    assert not names_match(["mx.example.com"], ["example.com"])


def test_dot_pattern_matches_names_strictly_below():
    assert names_match(["mx.example.com"], [".example.com"])
    assert names_match(["a.b.example.com"], [".example.com"])
    assert names_match(["*.example.com"], [".example.com"])
    assert not names_match(["example.com"], [".example.com"])
    assert not names_match(["badexample.com"], [".example.com"])
    assert names_match(["example.com", "other.net"], ["x.org", "other.net"])
    assert not names_match([], ["example.com"])


def test_names_come_from_subject_alt_names():
    cert = x509.load_pem_x509_certificate(
        trustme.CA().issue_cert("mx.example.com", "Smtp.Example.com").cert_chain_pems[0].bytes())
    assert certificate_names(cert) == ["mx.example.com", "smtp.example.com"]
    assert certificate_names(None) == []
