"""The parameter table against Postfix and against the fallbacks other modules keep.

Modules that read a parameter through a "default when undeclared" helper
(mailsys.policy, mailsys.message.headers) hold a copy of Postfix's default;
it must be the table's. Where Postfix itself is installed, every default the
table declares is compared with ``postconf -d`` except the deliberate
differences listed below.
"""

import shutil
import subprocess

import pytest

from mailsys.config import load
from mailsys.config.params import PARAMS
from mailsys.errors import ConfigError
from mailsys.message.headers import MESSAGE_DROP_HEADERS, HeaderPolicy
from mailsys.policy.replies import CODE_DEFAULTS

# Defaults that differ from Postfix 3.7's postconf -d on purpose (the reason
# is at each entry in params.py), are computed at run time, or belong to
# parameters Postfix 3.7 does not have.
DIFFERENT_ON_PURPOSE = {
    "myhostname", "mydomain", "mynetworks",          # computed
    "compatibility_level",                           # 3.6, not 0
    "local_recipient_maps", "alias_maps",            # table types mailsys lacks
    "alias_database",                                # empty like alias_maps: nothing under /etc
    "mail_name", "mail_owner", "syslog_name",        # "mailsys"
    "mail_version",                                  # mailsys's own version
    "config_directory", "daemon_directory", "queue_directory", "data_directory", "maillog_file",
    "dns_nameservers", "smtpd_sasl_users_file",      # mailsys only
    "full_name_encoding_charset",                    # Postfix 3.8
    "smtpd_client_connection_limit_exceptions",      # old name; postconf -d omits it
    "fallback_relay",                                # old name; postconf -d omits it
    "authorized_verp_clients",                       # old name; postconf -d omits it
    "smtpd_per_record_deadline",                     # old name; postconf -d omits it
    "smtp_per_record_deadline", "lmtp_per_record_deadline",  # old names; postconf -d omits them
    "smtpd_forbid_bare_newline",                     # Postfix 3.9's default (normalize)
    # Old names postconf -d omits, and 1h where Postfix writes
    # ${postscreen_dnsbl_ttl?{$postscreen_dnsbl_ttl}:{1}}h over an obsolete name.
    "postscreen_blacklist_action", "postscreen_dnsbl_whitelist_threshold",
    "postscreen_whitelist_interfaces", "postscreen_dnsbl_max_ttl",
    # Not yet reconciled: Postfix 3.7 says "$virtual_maps" (an obsolete
    # parameter mailsys does not declare) and adds a regexp table to the
    # forbidden commands.
    "virtual_alias_maps", "smtpd_forbidden_commands",
}


@pytest.fixture(scope="module")
def defaults_cfg(tmp_path_factory):
    d = tmp_path_factory.mktemp("etc")
    (d / "main.cf").write_text("")
    return load(d)


def test_reply_code_fallbacks_match_the_table(defaults_cfg):
    for name, code in CODE_DEFAULTS.items():
        assert name in PARAMS, name
        assert defaults_cfg[name] == code, name


def test_header_policy_defaults_match_the_table(defaults_cfg):
    assert defaults_cfg.message_drop_headers == MESSAGE_DROP_HEADERS
    policy = HeaderPolicy.from_config(defaults_cfg)
    bare = HeaderPolicy(myhostname=policy.myhostname)
    assert policy == bare


def test_set_parameters_are_used_and_typed(tmp_path):
    (tmp_path / "main.cf").write_text(
        "reject_code = 550\n"
        "smtp_rset_timeout = 1m\n"
        "smtp_tls_CApath = /etc/ssl/certs\n"
        "message_drop_headers = bcc, x-secret\n"
        "parent_domain_matches_subdomains = mynetworks\n"
        "strict_smtputf8 = yes\n")
    cfg = load(tmp_path)
    assert cfg.warnings == ()
    assert cfg.reject_code == 550
    assert cfg.smtp_rset_timeout == 60.0
    assert cfg.smtp_tls_CApath == "/etc/ssl/certs"
    assert cfg.message_drop_headers == ("bcc", "x-secret")
    assert cfg.parent_domain_matches_subdomains == ("mynetworks",)
    assert cfg.strict_smtputf8 is True


@pytest.mark.parametrize("value", ["250", "600", "abc"])
def test_reply_code_must_be_4xx_or_5xx(tmp_path, value):
    (tmp_path / "main.cf").write_text(f"maps_rbl_reject_code = {value}\n")
    with pytest.raises(ConfigError):
        load(tmp_path)


@pytest.mark.skipif(shutil.which("postconf") is None, reason="Postfix is not installed")
def test_defaults_match_postconf_d(defaults_cfg):
    out = subprocess.run(["postconf", "-d"], capture_output=True, text=True, check=True,
                         timeout=30).stdout
    # "name = value", or "name =" when the value is empty.
    postfix = {name.strip(): value.strip()
               for name, _, value in (line.partition("=") for line in out.splitlines())}
    differ = {name: (defaults_cfg.raw(name), postfix.get(name))
              for name in PARAMS
              if name not in DIFFERENT_ON_PURPOSE and defaults_cfg.raw(name) != postfix.get(name)}
    assert differ == {}
