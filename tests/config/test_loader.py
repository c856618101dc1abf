"""load() and Config: typed values, validation errors, overrides, warnings."""

from pathlib import Path

import pytest

from mailsys.config import Config, load
from mailsys.errors import ConfigError


def test_defaults_are_typed(confdir):
    cfg = load(confdir("myhostname = mx.example.com\n"))
    assert cfg.message_size_limit == 10240000
    assert cfg.smtpd_timeout == 300.0
    assert cfg.smtpd_hard_error_limit == 20
    assert cfg.max_idle == 100.0 and cfg.max_use == 100 and cfg.default_process_limit == 100
    assert cfg.smtpd_helo_required is False
    assert cfg.smtpd_banner == "mx.example.com ESMTP mailsys"
    assert cfg.raw("smtpd_banner") == "$myhostname ESMTP $mail_name"
    assert cfg.syslog_name == "mailsys"
    assert cfg.mydomain == "example.com"
    assert cfg.mydestination == ("mx.example.com", "localhost.example.com", "localhost")
    assert cfg.smtpd_relay_restrictions == ("permit_mynetworks", "permit_sasl_authenticated",
                                            "defer_unauth_destination")
    assert cfg.relay_domains == ()
    assert cfg.mynetworks_style == "host"
    assert cfg.smtputf8_enable is True
    assert cfg.mynetworks[0] == "127.0.0.1/32"          # mynetworks_style host, inet_interfaces all
    assert cfg.smtpd_client_event_limit_exceptions == cfg.mynetworks


def test_compatibility_level_selects_old_defaults(confdir):
    cfg = load(confdir("myhostname = mx.example.com\ncompatibility_level = 0\n"))
    assert cfg.relay_domains == cfg.mydestination
    assert cfg.smtpd_relay_restrictions == ()
    assert cfg.smtputf8_enable is False


def test_stress_shortens_smtpd_limits(confdir):
    cfg = load(confdir("stress = yes\n"))
    assert cfg.smtpd_timeout == 10.0
    assert cfg.smtpd_hard_error_limit == 1


def test_time_units_per_parameter(confdir):
    cfg = load(confdir("maximal_queue_lifetime = 2\nbounce_queue_lifetime = 1\n"
                       "delay_warning_time = 4\nsmtpd_timeout = 60\nmax_idle = 2m\n"))
    assert cfg.maximal_queue_lifetime == 2 * 86400
    assert cfg.bounce_queue_lifetime == 86400
    assert cfg.delay_warning_time == 4 * 3600
    assert cfg.smtpd_timeout == 60
    assert cfg.max_idle == 120


def test_size_suffixes(confdir):
    assert load(confdir("message_size_limit = 50M\n")).message_size_limit == 50 * 1024 * 1024


def test_bad_value_names_file_line_and_parameter(confdir):
    d = confdir("# comment\nmyhostname = a.b\nmessage_size_limit = lots\n")
    with pytest.raises(ConfigError) as e:
        load(d)
    assert str(e.value) == f'{d}/main.cf, line 3: parameter message_size_limit: bad size value "lots"'
    assert (e.value.file, e.value.line, e.value.param) == (f"{d}/main.cf", 3, "message_size_limit")


def test_bad_value_with_trailing_hash_explains_comments(confdir):
    with pytest.raises(ConfigError) as e:
        load(confdir("smtpd_helo_required = yes # be strict\n"))
    assert 'bad boolean value "yes # be strict"' in str(e.value)
    assert "comment only at the beginning of a line" in str(e.value)


def test_bad_expanded_value_is_reported(confdir):
    with pytest.raises(ConfigError, match=r'line 2: parameter smtpd_timeout: bad time value "xs"'):
        load(confdir("t = x\nsmtpd_timeout = ${t}s\n"))


def test_range_checked(confdir):
    with pytest.raises(ConfigError, match=r"parameter max_use: value \"0\" is below the minimum 1"):
        load(confdir("max_use = 0\n"))


@pytest.mark.parametrize("line,message", [
    ("smtpd_tls_security_level = mayy", 'bad value "mayy" (expected none, may, encrypt or empty)'),
    ("inet_protocols = ipv4, ipv5", 'bad value "ipv5" (expected all, ipv4, ipv6)'),
])
def test_words_outside_choices_are_refused(confdir, line, message):
    with pytest.raises(ConfigError) as e:
        load(confdir(line + "\n"))
    assert str(e.value).endswith(message)
    assert load(confdir("smtpd_tls_security_level = may\ninet_protocols = ipv4 ipv6\n")).inet_protocols == (
        "ipv4", "ipv6")


def test_unknown_parameter_is_a_warning(confdir):
    d = confdir("foo = bar\nmyhostname = a.b\n")
    cfg = load(d)
    assert cfg.warnings == (f"{d}/main.cf: unused parameter: foo=bar",)
    assert cfg["foo"] == "bar"          # still readable, as text
    with pytest.raises(KeyError):
        cfg["nosuchparam"]
    with pytest.raises(AttributeError):
        cfg.nosuchparam


def test_missing_main_cf(tmp_path):
    with pytest.raises(ConfigError, match="main.cf: No such file or directory"):
        load(tmp_path)


def test_config_is_immutable(confdir):
    cfg = load(confdir(""))
    with pytest.raises(AttributeError):
        cfg.myhostname = "x"


def test_overrides(confdir):
    d = confdir("myhostname = mx.example.com\nsmtpd_timeout = 60s\n")
    base = load(d)
    cfg = load(d, {"syslog_name": "mailsys/submission", "smtpd_timeout": "5s"})
    assert cfg.syslog_name == "mailsys/submission" and cfg.smtpd_timeout == 5
    assert base.smtpd_timeout == 60 and base.syslog_name == "mailsys"
    other = base.with_overrides({"smtpd_tls_security_level": "encrypt"})
    assert other.smtpd_tls_security_level == "encrypt" and other.is_set("smtpd_tls_security_level")
    assert not base.is_set("smtpd_tls_security_level")
    with pytest.raises(ConfigError, match=r"parameter smtpd_timeout: bad time value"):
        base.with_overrides({"smtpd_timeout": "soon"})


def test_path_relative_to_config_parent(confdir):
    d = confdir("queue_directory = var/spool\nmaillog_file = /tmp/x.log\n")
    cfg = load(d)
    assert cfg.path("queue_directory") == d.parent / "var/spool"
    assert cfg.path("maillog_file") == Path("/tmp/x.log")


def test_config_directory_and_sasl_file_default(confdir):
    d = confdir("")
    cfg = load(d)
    assert cfg.config_directory == str(d)
    assert cfg.smtpd_sasl_users_file == f"{d}/sasl_users"


def test_per_transport_parameters(confdir):
    cfg = load(confdir("default_destination_concurrency_limit = 7\nslow_destination_rate_delay = 1m\n"))
    assert cfg.slow_destination_concurrency_limit == 7
    assert cfg.slow_destination_rate_delay == 60
    assert cfg.smtp_destination_recipient_limit == 50
    assert cfg.relay_initial_destination_concurrency == 5
    assert not any("unused" in w for w in cfg.warnings)


def test_list_value_with_groups(confdir):
    cfg = load(confdir("smtpd_recipient_restrictions = permit_mynetworks,\n"
                       "  check_policy_service { inet:127.0.0.1:9998, timeout=10s }, reject\n"))
    assert cfg.smtpd_recipient_restrictions == ("permit_mynetworks", "check_policy_service",
                                                "inet:127.0.0.1:9998, timeout=10s", "reject")


def test_config_pickles(confdir):
    import pickle
    cfg = load(confdir("myhostname = mx.example.com\n")).with_overrides({"max_use": "5"})
    copy = pickle.loads(pickle.dumps(cfg))
    assert (copy.myhostname, copy.max_use, copy.config_dir) == ("mx.example.com", 5, cfg.config_dir)


def test_config_type_exported():
    assert isinstance(Config, type)
