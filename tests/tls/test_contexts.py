"""server_context / client_context from main.cf: files, protocols, ciphers, errors."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from OpenSSL import SSL

from mailsys.errors import ConfigError
from mailsys.tls import TlsEngine, client_context, describe, parse_protocols, server_context
from tls_helpers import pump

sys.path.insert(0, str(Path(__file__).parents[1]))      # tests/unprivileged.py (tests/ is no package)
from unprivileged import open_directory, unprivileged  # noqa: E402

T1, T11, T12, T13 = SSL.TLS1_VERSION, SSL.TLS1_1_VERSION, SSL.TLS1_2_VERSION, SSL.TLS1_3_VERSION


def handshake(cfg, level="may"):
    server = TlsEngine(server_context(cfg), server_side=True)
    client = TlsEngine(client_context(cfg, level), server_side=False, server_hostname="mx.example.test")
    pump(client, server)
    return client, server


def test_no_certificate_means_no_tls(make_cfg):
    assert server_context(make_cfg()) is None
    assert server_context(make_cfg(smtpd_tls_security_level="may")) is None


def test_missing_cert_file_names_the_parameter(make_cfg, tmp_path):
    cfg = make_cfg(smtpd_tls_cert_file=tmp_path / "nope.pem")
    with pytest.raises(ConfigError) as e:
        server_context(cfg)
    assert e.value.param == "smtpd_tls_cert_file"
    assert str(e.value) == f"parameter smtpd_tls_cert_file: cannot read {tmp_path / 'nope.pem'}: " \
                           "No such file or directory"


def test_unreadable_key_file_names_the_parameter(make_cfg, pki):
    with open_directory("mailsys-tls-") as d:
        cert, key = d / "cert.pem", d / "key.pem"
        shutil.copy(pki["server_cert"], cert)
        shutil.copy(pki["server_key"], key)
        key.chmod(0)
        cfg = make_cfg(smtpd_tls_cert_file=cert, smtpd_tls_key_file=key)

        def attempt():
            try:
                server_context(cfg)
            except ConfigError as e:
                return e.param, str(e)
            return None

        failure = unprivileged(attempt)
    assert failure is not None
    param, text = failure
    assert param == "smtpd_tls_key_file"
    assert "Permission denied" in text


def test_key_path_that_is_a_directory(make_cfg, pki, tmp_path):
    cfg = make_cfg(smtpd_tls_cert_file=pki["server_cert"], smtpd_tls_key_file=tmp_path)
    with pytest.raises(ConfigError) as e:
        server_context(cfg)
    assert e.value.param == "smtpd_tls_key_file"
    assert str(e.value).endswith("Is a directory")


def test_file_without_a_certificate(make_cfg, tmp_path):
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    with pytest.raises(ConfigError) as e:
        server_context(make_cfg(smtpd_tls_cert_file=tmp_path / "junk.pem"))
    assert e.value.param == "smtpd_tls_cert_file"
    assert "no usable certificate" in str(e.value)


def test_key_that_does_not_match(make_cfg, pki, ca, tmp_path):
    other = ca.issue_cert("other.example.test")
    other.private_key_pem.write_to_path(str(tmp_path / "other-key.pem"))
    cfg = make_cfg(smtpd_tls_cert_file=pki["server_cert"], smtpd_tls_key_file=tmp_path / "other-key.pem")
    with pytest.raises(ConfigError) as e:
        server_context(cfg)
    assert e.value.param == "smtpd_tls_key_file"


def test_separate_cert_and_key_files(make_cfg, pki):
    cfg = make_cfg(smtpd_tls_cert_file=pki["server_cert"], smtpd_tls_key_file=pki["server_key"],
                   smtp_tls_CAfile=pki["ca"])
    client, _ = handshake(cfg, "secure")
    assert describe(client).peer_verified


def test_relative_paths_are_taken_from_the_config_parent(make_cfg, pki):
    # cfg.path(): relative to config_dir.parent, here tmp_path.
    cfg = make_cfg(smtpd_tls_cert_file="pki/server.pem", smtp_tls_CAfile="pki/ca.pem")
    client, _ = handshake(cfg, "secure")
    assert describe(client).peer_verified


def test_chain_files(make_cfg, pki):
    cfg = make_cfg(smtpd_tls_chain_files=pki["server"], smtp_tls_CAfile=pki["ca"])
    client, _ = handshake(cfg, "secure")
    assert describe(client).peer_cn == "mx.example.test"


def test_chain_files_are_read_as_one_concatenation(make_cfg, pki):
    # postconf(5): the key may be in the file listed just before its certificate's.
    cfg = make_cfg(smtpd_tls_chain_files=f"{pki['server_key']}, {pki['server_cert']}",
                   smtp_tls_CAfile=pki["ca"])
    client, _ = handshake(cfg, "secure")
    assert describe(client).peer_cn == "mx.example.test"


def test_client_chain_files_give_the_client_certificate(make_cfg, pki):
    cfg = make_cfg(smtpd_tls_cert_file=pki["server"], smtpd_tls_ask_ccert="yes",
                   smtpd_tls_CAfile=pki["ca"], smtp_tls_CAfile=pki["ca"],
                   smtp_tls_chain_files=pki["client"])
    _, server = handshake(cfg, "secure")
    info = describe(server)
    assert info.peer_cn == "client.example.test" and info.peer_verified


def test_chain_file_without_a_key(make_cfg, pki):
    cfg = make_cfg(smtpd_tls_chain_files=pki["server_cert"])
    with pytest.raises(ConfigError) as e:
        server_context(cfg)
    assert e.value.param == "smtpd_tls_chain_files"


def test_missing_client_ca_file(make_cfg, pki, tmp_path):
    with pytest.raises(ConfigError) as e:
        client_context(make_cfg(smtp_tls_CAfile=tmp_path / "missing.pem"), "secure")
    assert e.value.param == "smtp_tls_CAfile"


def test_unsupported_client_level(make_cfg):
    for level in ("fingerprint", "dane-only", "bogus"):
        with pytest.raises(ConfigError) as e:
            client_context(make_cfg(), level)
        assert e.value.param == "smtp_tls_security_level"


def test_client_without_ca_settings_uses_the_system_store(make_cfg, pki):
    # trustme's CA is not in the system store: secure says why, may still encrypts.
    from mailsys.tls import verify_failure
    cfg = make_cfg(smtpd_tls_cert_file=pki["server"])
    client, _ = handshake(cfg, "may")
    assert not describe(client).peer_verified
    client, _ = handshake(cfg, "secure")
    assert verify_failure(client, "mx[192.0.2.1]:25").startswith(
        "certificate verification failed for mx[192.0.2.1]:25: untrusted issuer /O=trustme")


@pytest.mark.parametrize("words, expected", [
    ((">=TLSv1",), (T1, T13)),
    (("!SSLv2", "!SSLv3"), (T1, T13)),
    (("!SSLv2:!SSLv3:!TLSv1",), (T11, T13)),
    (("TLSv1.2", "TLSv1.3"), (T12, T13)),
    (("<=TLSv1.2",), (T1, T12)),
    ((">=TLSv1.2", "!TLSv1.3"), (T12, T12)),
    (("!TLSv1.3",), (T1, T12)),
    ((), (T1, T13)),
])
def test_protocol_lists(words, expected):
    assert parse_protocols(words) == expected


@pytest.mark.parametrize("words", [("TLSv9",), (">=TLSv1.3", "<=TLSv1.2"), ("SSLv3",), ("!TLSv1", "!TLSv1.1",
                                   "!TLSv1.2", "!TLSv1.3")])
def test_bad_protocol_lists(words):
    with pytest.raises(ConfigError) as e:
        parse_protocols(words, "smtpd_tls_protocols")
    assert e.value.param == "smtpd_tls_protocols"


def test_server_protocols_follow_the_security_level(make_cfg, pki):
    opportunistic = make_cfg(smtpd_tls_cert_file=pki["server"], smtpd_tls_protocols="<=TLSv1.2",
                             smtpd_tls_mandatory_protocols=">=TLSv1.3")
    assert describe(handshake(opportunistic)[1]).protocol == "TLSv1.2"
    mandatory = make_cfg(smtpd_tls_cert_file=pki["server"], smtpd_tls_protocols="<=TLSv1.2",
                         smtpd_tls_mandatory_protocols=">=TLSv1.3", smtpd_tls_security_level="encrypt")
    assert describe(handshake(mandatory)[1]).protocol == "TLSv1.3"


def test_client_protocols_follow_the_level(make_cfg, pki):
    cfg = make_cfg(smtpd_tls_cert_file=pki["server"], smtp_tls_CAfile=pki["ca"],
                   smtp_tls_protocols="!TLSv1.3", smtp_tls_mandatory_protocols=">=TLSv1.3")
    assert describe(handshake(cfg, "may")[0]).protocol == "TLSv1.2"
    assert describe(handshake(cfg, "encrypt")[0]).protocol == "TLSv1.3"


def test_disjoint_protocols_fail_the_handshake(make_cfg, pki):
    from mailsys.tls import TlsError
    cfg = make_cfg(smtpd_tls_cert_file=pki["server"], smtpd_tls_protocols="<=TLSv1.2",
                   smtp_tls_protocols=">=TLSv1.3")
    with pytest.raises(TlsError) as e:
        handshake(cfg)
    assert "protocol" in e.value.reason


@pytest.mark.parametrize("grade", ["high", "medium", "low", "export"])
def test_cipher_grades(make_cfg, pki, grade):
    cfg = make_cfg(smtpd_tls_cert_file=pki["server"], smtpd_tls_ciphers=grade,
                   smtpd_tls_protocols="<=TLSv1.2")
    info = describe(handshake(cfg)[1])
    assert info.protocol == "TLSv1.2" and info.usebits >= 128


def test_client_ca_directory(make_cfg, pki, tmp_path):
    # smtp_tls_CApath: a c_rehash-style directory, <subject hash>.0 per CA.
    from OpenSSL import crypto
    capath = tmp_path / "certs"
    capath.mkdir()
    ca = crypto.load_certificate(crypto.FILETYPE_PEM, pki["ca"].read_bytes())
    (capath / f"{ca.subject_name_hash():08x}.0").write_bytes(pki["ca"].read_bytes())
    cfg = make_cfg(smtpd_tls_cert_file=pki["server"], smtp_tls_CApath=capath)
    client, _ = handshake(cfg, "secure")
    assert describe(client).peer_verified
    empty = tmp_path / "empty"
    empty.mkdir()
    client, _ = handshake(make_cfg(smtpd_tls_cert_file=pki["server"], smtp_tls_CApath=empty), "secure")
    assert not describe(client).peer_verified


def test_two_chain_files_rsa_and_ecdsa(make_cfg, pki, ca, tmp_path):
    from trustme import KeyType
    ca.issue_cert("mx.example.test", key_type=KeyType.RSA).private_key_and_cert_chain_pem.write_to_path(
        str(tmp_path / "rsa.pem"))
    cfg = make_cfg(smtpd_tls_chain_files=f"{tmp_path / 'rsa.pem'}, {pki['server']}",
                   smtp_tls_CAfile=pki["ca"])
    client, server = handshake(cfg, "secure")
    assert describe(client).peer_verified
    assert "server-signature" in describe(server).details


# RFC 7919 ffdhe2048, as `openssl genpkey -genparam -algorithm DH -pkeyopt
# group:ffdhe2048` writes it (a published group, not a secret).
FFDHE2048 = """-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
"""


def _ciphers(ctx) -> list[str]:
    return SSL.Connection(ctx).get_cipher_list()


def test_exclude_ciphers_at_every_level_and_mandatory_ones_at_encrypt(make_cfg, pki):
    base = dict(smtpd_tls_cert_file=pki["server"], smtpd_tls_protocols="<=TLSv1.2",
                smtpd_tls_mandatory_protocols="<=TLSv1.2", smtpd_tls_exclude_ciphers="CHACHA20",
                smtpd_tls_mandatory_exclude_ciphers="AESGCM")
    # (TLS 1.3 suites, "TLS_...", are not chosen by cipher lists.)
    may = [c for c in _ciphers(server_context(make_cfg(**base))) if not c.startswith("TLS_")]
    assert not any("CHACHA20" in c for c in may) and any("AES256-GCM" in c for c in may)
    encrypt = [c for c in _ciphers(server_context(make_cfg(**base, smtpd_tls_security_level="encrypt")))
               if not c.startswith("TLS_")]
    assert encrypt and not any("CHACHA20" in c or "AES256-GCM" in c for c in encrypt)
    client = [c for c in _ciphers(client_context(make_cfg(smtp_tls_exclude_ciphers="AES256"), "may"))
              if not c.startswith("TLS_")]
    assert client and not any("AES256" in c for c in client)


def test_preempt_cipherlist_and_ssl_options(make_cfg, pki):
    from OpenSSL._util import lib
    from mailsys.tls import ssl_options

    def options(**params):
        ctx = server_context(make_cfg(smtpd_tls_cert_file=pki["server"], **params))
        return lib.SSL_CTX_get_options(ctx._context)
    assert not options() & lib.SSL_OP_CIPHER_SERVER_PREFERENCE
    assert options(tls_preempt_cipherlist="yes") & lib.SSL_OP_CIPHER_SERVER_PREFERENCE
    assert not options() & lib.SSL_OP_NO_TICKET
    assert options(tls_ssl_options="NO_TICKET") & lib.SSL_OP_NO_TICKET
    cfg = make_cfg(tls_ssl_options="no_ticket, 0x4000 NO_SUCH_THING")
    assert ssl_options(cfg) == (lib.SSL_OP_NO_TICKET | 0x4000, ("NO_SUCH_THING",))


def test_ecdsa_certificate_beside_the_rsa_one(make_cfg, pki, ca, tmp_path):
    from trustme import KeyType
    rsa = ca.issue_cert("mx.example.test", key_type=KeyType.RSA)
    rsa.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "rsa.pem"))
    ecdsa = ca.issue_cert("mx.example.test", key_type=KeyType.ECDSA)
    ecdsa.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "ec.pem"))
    cfg = make_cfg(smtpd_tls_cert_file=tmp_path / "rsa.pem", smtpd_tls_eccert_file=tmp_path / "ec.pem",
                   smtp_tls_CAfile=pki["ca"])
    client, server = handshake(cfg, "secure")
    assert describe(client).peer_verified
    assert "ECDSA" in describe(server).details or "ecdsa" in describe(server).details
    only_ec = make_cfg(smtpd_tls_eccert_file=tmp_path / "ec.pem", smtp_tls_CAfile=pki["ca"])
    assert describe(handshake(only_ec, "secure")[0]).peer_verified


def test_dh_parameter_file(make_cfg, pki, ca, tmp_path):
    from trustme import KeyType
    ca.issue_cert("mx.example.test", key_type=KeyType.RSA).private_key_and_cert_chain_pem \
        .write_to_path(str(tmp_path / "rsa.pem"))            # DHE-RSA needs an RSA certificate
    dh = tmp_path / "dh2048.pem"
    dh.write_text(FFDHE2048)
    cfg = make_cfg(smtpd_tls_cert_file=tmp_path / "rsa.pem", smtpd_tls_dh1024_param_file=dh,
                   smtpd_tls_protocols="<=TLSv1.2", smtp_tls_ciphers="high",
                   smtpd_tls_exclude_ciphers="ECDHE, kRSA")
    info = describe(handshake(cfg)[1])
    assert info.cipher.startswith("DHE-")
    (tmp_path / "bad.pem").write_text("not DH\n")
    with pytest.raises(ConfigError) as e:
        server_context(make_cfg(smtpd_tls_cert_file=pki["server"],
                                smtpd_tls_dh1024_param_file=tmp_path / "bad.pem"))
    assert e.value.param == "smtpd_tls_dh1024_param_file"
