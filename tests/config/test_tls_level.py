"""The TLS security level from main.cf, with the obsolete Booleans Postfix still reads."""

import pytest

from mailsys.config import load
from mailsys.config.tls_level import client_level, server_level


def cfg(tmp_path, **params):
    (tmp_path / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in params.items()))
    return load(tmp_path)


@pytest.mark.parametrize("params, level", [
    ({}, "none"),
    ({"smtpd_use_tls": "yes"}, "may"),
    ({"smtpd_enforce_tls": "yes"}, "encrypt"),
    ({"smtpd_use_tls": "yes", "smtpd_enforce_tls": "yes"}, "encrypt"),
    ({"smtpd_use_tls": "yes", "smtpd_tls_security_level": "none"}, "none"),   # the level wins
    ({"smtpd_enforce_tls": "yes", "smtpd_tls_security_level": "may"}, "may"),
    ({"smtpd_tls_security_level": "Encrypt"}, "encrypt"),
])
def test_server_level(tmp_path, params, level):
    assert server_level(cfg(tmp_path, **params)) == level


@pytest.mark.parametrize("params, level", [
    ({}, "none"),
    ({"smtp_use_tls": "yes"}, "may"),
    ({"smtp_enforce_tls": "yes"}, "verify"),
    ({"smtp_enforce_tls": "yes", "smtp_tls_enforce_peername": "no"}, "encrypt"),
    ({"smtp_enforce_tls": "yes", "smtp_tls_security_level": "may"}, "may"),
    ({"smtp_tls_security_level": "secure"}, "secure"),
])
def test_client_level(tmp_path, params, level):
    assert client_level(cfg(tmp_path, **params)) == level


@pytest.mark.parametrize("params, level", [
    ({}, "none"),
    ({"smtpd_use_tls": "yes"}, "may"),                     # postscreen_use_tls = $smtpd_use_tls
    ({"smtpd_enforce_tls": "yes"}, "encrypt"),
    ({"smtpd_tls_security_level": "may"}, "may"),           # ... = $smtpd_tls_security_level
    ({"smtpd_use_tls": "yes", "postscreen_use_tls": "no"}, "none"),
    ({"postscreen_tls_security_level": "encrypt"}, "encrypt"),
])
def test_postscreen_level_follows_smtpd_s_by_default(tmp_path, params, level):
    assert server_level(cfg(tmp_path, **params), "postscreen") == level
