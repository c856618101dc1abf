"""client_config(): the lmtp program reads lmtp_* under the smtp_* names (Postfix lmtp_params.c)."""

import pytest

from mailsys.config import load
from mailsys.config.client_program import client_config, twins
from mailsys.config.params import PARAMS
from mailsys.errors import ConfigError


def _cfg(tmp_path, text=""):
    (tmp_path / "main.cf").write_text("myhostname = mx.example.test\n" + text)
    return load(tmp_path)


def test_smtp_is_the_configuration_itself(tmp_path):
    cfg = _cfg(tmp_path)
    assert client_config(cfg, "smtp") is cfg


def test_lmtp_defaults_are_postfix_lmtp_defaults(tmp_path):
    view = client_config(_cfg(tmp_path), "lmtp")
    assert view.smtp_connect_timeout == 0            # lmtp_connect_timeout = 0s
    assert view.smtp_helo_name == "mx.example.test"  # lmtp_lhlo_name = $myhostname
    assert view.smtp_helo_timeout == 300 and view.smtp_rset_timeout == 20
    assert view.smtp_data_done_timeout == 600 and view.smtp_send_xforward_command is False
    assert view.lmtp_tcp_port == "24"


def test_lmtp_values_and_overrides_win(tmp_path):
    cfg = _cfg(tmp_path, "smtp_helo_name = smtp.example\nlmtp_lhlo_name = lhlo.example\n"
                         "lmtp_rcpt_timeout = 7s\nlmtp_tls_cert_file = /x.pem\n"
                         "smtp_rcpt_timeout = 9s\n")
    view = client_config(cfg.with_overrides({"lmtp_data_init_timeout": "11s"}), "lmtp")
    assert (view.smtp_helo_name, view.smtp_rcpt_timeout) == ("lhlo.example", 7)
    assert view.smtp_data_init_timeout == 11
    assert view.smtp_tls_key_file == "/x.pem"        # $lmtp_tls_cert_file
    assert cfg.smtp_helo_name == "smtp.example"      # the smtp program is untouched


def test_a_bad_lmtp_value_is_named_as_such(tmp_path):
    with pytest.raises(ConfigError) as e:
        client_config(_cfg(tmp_path, "lmtp_mail_timeout = soon\n"), "lmtp")
    assert "lmtp_mail_timeout" in str(e.value) and "main.cf" in str(e.value)


def test_unknown_program(tmp_path):
    with pytest.raises(ValueError):
        client_config(_cfg(tmp_path), "pipe")


# `postconf -d` of Postfix 3.7.11 for every lmtp parameter mailsys has.
POSTFIX_DEFAULTS = """\
lmtp_address_preference = any
lmtp_bind_address =
lmtp_bind_address6 =
lmtp_connect_timeout = 0s
lmtp_connection_cache_on_demand = yes
lmtp_connection_cache_time_limit = 2s
lmtp_connection_reuse_time_limit = 300s
lmtp_data_done_timeout = 600s
lmtp_data_init_timeout = 120s
lmtp_data_xfer_timeout = 180s
lmtp_destination_concurrency_limit = $default_destination_concurrency_limit
lmtp_destination_recipient_limit = $default_destination_recipient_limit
lmtp_discard_lhlo_keyword_address_maps =
lmtp_discard_lhlo_keywords =
lmtp_dns_support_level =
lmtp_enforce_tls = no
lmtp_fallback_relay =
lmtp_host_lookup = dns
lmtp_lhlo_name = $myhostname
lmtp_lhlo_timeout = 300s
lmtp_line_length_limit = 998
lmtp_mail_timeout = 300s
lmtp_mx_address_limit = 5
lmtp_mx_session_limit = 2
lmtp_quit_timeout = 300s
lmtp_randomize_addresses = yes
lmtp_rcpt_timeout = 300s
lmtp_rset_timeout = 20s
lmtp_sasl_auth_enable = no
lmtp_sasl_auth_cache_name =
lmtp_sasl_auth_cache_time = 90d
lmtp_sasl_auth_soft_bounce = yes
lmtp_sasl_mechanism_filter =
lmtp_sasl_password_maps =
lmtp_sasl_security_options = noplaintext, noanonymous
lmtp_sasl_tls_security_options = $lmtp_sasl_security_options
lmtp_sasl_tls_verified_security_options = $lmtp_sasl_tls_security_options
lmtp_send_dummy_mail_auth = no
lmtp_send_xforward_command = no
lmtp_sender_dependent_authentication = no
lmtp_skip_5xx_greeting = yes
lmtp_starttls_timeout = 300s
lmtp_tcp_port = 24
lmtp_tls_CAfile =
lmtp_tls_CApath =
lmtp_tls_cert_file =
lmtp_tls_chain_files =
lmtp_tls_ciphers = medium
lmtp_tls_enforce_peername = yes
lmtp_tls_exclude_ciphers =
lmtp_tls_fingerprint_cert_match =
lmtp_tls_fingerprint_digest = ${{$compatibility_level} <level {3.6} ? {md5} : {sha256}}
lmtp_tls_key_file = $lmtp_tls_cert_file
lmtp_tls_loglevel = 0
lmtp_tls_mandatory_ciphers = medium
lmtp_tls_mandatory_exclude_ciphers =
lmtp_tls_mandatory_protocols = >=TLSv1
lmtp_tls_note_starttls_offer = no
lmtp_tls_policy_maps =
lmtp_tls_protocols = >=TLSv1
lmtp_tls_scert_verifydepth = 9
lmtp_tls_secure_cert_match = nexthop
lmtp_tls_security_level =
lmtp_tls_servername =
lmtp_tls_session_cache_database =
lmtp_tls_verify_cert_match = hostname
lmtp_tls_wrappermode = no
lmtp_use_tls = no
lmtp_xforward_timeout = 300s
lmtp_body_checks =
lmtp_generic_maps =
lmtp_header_checks =
lmtp_mime_header_checks =
lmtp_nested_header_checks =
lmtp_skip_quit_response = no
lmtp_quote_rfc821_envelope = yes
lmtp_defer_if_no_mx_address_found = no
lmtp_cname_overrides_servername = no
lmtp_address_verify_target = rcpt
lmtp_balance_inet_protocols = yes
lmtp_reply_filter =
lmtp_dns_reply_filter =
lmtp_delivery_status_filter = $default_delivery_status_filter
lmtp_per_record_deadline =
lmtp_per_request_deadline = ${lmtp_per_record_deadline?{$lmtp_per_record_deadline}:{no}}
lmtp_min_data_rate = 500
lmtp_tls_block_early_mail_reply = no
lmtp_tls_connection_reuse = no
lmtp_connection_reuse_count_limit = 0
lmtp_connection_cache_destinations =
lmtp_pix_workarounds = disable_esmtp,delay_dotcrlf
lmtp_pix_workaround_maps =
lmtp_pix_workaround_delay_time = 10s
lmtp_pix_workaround_threshold_time = 500s
"""


def test_every_twin_has_postfix_name_and_default():
    postfix = dict(line.partition(" =")[::2] for line in POSTFIX_DEFAULTS.splitlines())
    postfix = {k: v.strip() for k, v in postfix.items()}
    lmtp = {name for name in PARAMS if name.startswith("lmtp_")}
    assert set(twins().values()) == set(postfix) - {
        "lmtp_destination_concurrency_limit", "lmtp_destination_recipient_limit"}
    assert lmtp == set(postfix)
    for name in lmtp:
        assert PARAMS[name].default == postfix[name], name
