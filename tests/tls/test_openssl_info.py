"""What the TLS layer says about its OpenSSL, for postconf -T."""

import re

from OpenSSL import SSL

from mailsys import tls

# "openssl version"'s form, as Postfix's -T compile-version prints it:
# "OpenSSL 3.0.11 19 Sep 2023".
VERSION = re.compile(r"OpenSSL \d+\.\d+\.\d+\S* +\d+ [A-Z][a-z]{2} \d{4}")


def test_versions_are_openssls_text():
    assert VERSION.fullmatch(tls.compile_version())
    assert VERSION.fullmatch(tls.run_version())
    assert tls.run_version() == SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode()


def test_public_key_algorithms_are_postfixs_names_in_its_order():
    algorithms = tls.public_key_algorithms()
    assert {"ecdsa", "rsa"} <= set(algorithms)
    assert list(algorithms) == [name for name in ("dsa", "ecdsa", "rsa") if name in algorithms]
