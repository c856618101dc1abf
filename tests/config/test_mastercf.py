"""master.cf: columns, defaults, -o forms, continuation, service names, errors."""

import re

import pytest

from mailsys.config import ServiceSpec, load, parse_master_cf
from mailsys.errors import ConfigError

HEADER = "# service type  private unpriv  chroot  wakeup  maxproc command + args\n"


def services(confdir, master, main="default_process_limit = 7\n", warnings=None):
    d = confdir(main, HEADER + master)
    return d, parse_master_cf(d / "master.cf", load(d), warnings)


def test_columns_and_defaults(confdir):
    d, (s,) = services(confdir, "cleanup   unix  n       -       n       -       0       cleanup\n")
    assert s == ServiceSpec(name="cleanup", type="unix", private=False, unpriv=True, chroot=False,
                            wakeup=0, wakeup_lazy=False, maxproc=0, command="cleanup", args=(),
                            overrides=(), host="", port=0, file=str(d / "master.cf"), line=2)


def test_dash_defaults(confdir):
    _, (s,) = services(confdir, "smtp unix - - - - - smtp\n")
    assert (s.private, s.unpriv, s.chroot, s.wakeup, s.maxproc) == (True, True, False, 0, 7)


def test_wakeup_forms(confdir):
    _, (a, b) = services(confdir, "qmgr unix n - n 300 1 qmgr\nflush unix n - n 1000? 0 flush\n")
    assert (a.wakeup, a.wakeup_lazy, a.maxproc) == (300, False, 1)
    assert (b.wakeup, b.wakeup_lazy) == (1000, True)


def test_submission_entry_with_overrides(confdir):
    _, (s,) = services(confdir, """\
submission  inet  n       -       y       -       -       smtpd
  -o syslog_name=postfix/submission
  # a comment between -o lines
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o { smtpd_recipient_restrictions = permit_sasl_authenticated, reject }
""")
    assert (s.name, s.type, s.chroot, s.command, s.args) == ("submission", "inet", True, "smtpd", ())
    assert s.overrides == (("syslog_name", "postfix/submission"),
                           ("smtpd_tls_security_level", "encrypt"),
                           ("smtpd_sasl_auth_enable", "yes"),
                           ("smtpd_recipient_restrictions", "permit_sasl_authenticated, reject"))
    assert (s.host, s.port) == ("", 587)


def test_chroot_y_warns(confdir):
    warnings: list[str] = []
    d, _ = services(confdir, "smtp inet n - y - - smtpd\n", warnings=warnings)
    assert len(warnings) == 1 and "line 2" in warnings[0] and "chroot" in warnings[0]


def test_grouped_args(confdir):
    _, (s,) = services(confdir, "x unix - n n - - pipe -o a=b flags=R { user=a b } argv=/bin/cat\n")
    assert s.args == ("flags=R", "user=a b", "argv=/bin/cat")
    assert s.overrides == (("a", "b"),)


def test_options_end_at_the_first_argument(confdir):
    # Postfix's daemons read their options with getopt("+..."): an -o after
    # the first argument is the command's (the classic spamc entry).
    _, (s,) = services(confdir, "spamassassin unix - n n - - pipe -o x=1 user=spamd "
                                "argv=/usr/bin/spamc -f -e /usr/sbin/sendmail -oi -f ${sender} "
                                "-o y=2\n")
    assert s.overrides == (("x", "1"),)
    assert s.args == ("user=spamd", "argv=/usr/bin/spamc", "-f", "-e", "/usr/sbin/sendmail",
                      "-oi", "-f", "${sender}", "-o", "y=2")


@pytest.mark.parametrize("name,host,port", [
    ("127.0.0.1:2525", "127.0.0.1", 2525), ("2525", "", 2525), ("[::1]:2526", "::1", 2526),
    ("smtp", "", 25), ("127.0.0.1:smtp", "127.0.0.1", 25), ("localhost:submission", "localhost", 587),
])
def test_inet_service_names(confdir, name, host, port):
    _, (s,) = services(confdir, f"{name} inet n - n - - smtpd\n")
    assert (s.name, s.host, s.port) == (name, host, port)


@pytest.mark.parametrize("name,message", [
    ("nosuchservicename", "unknown service: nosuchservicename/tcp"),
    ("1.2.3.4:99999", "bad port number"),
    ("[::1]", "expected [address]:port"),
])
def test_bad_inet_names(confdir, name, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        services(confdir, f"{name} inet n - n - - smtpd\n")


def test_bad_field_count(confdir):
    with pytest.raises(ConfigError) as e:
        services(confdir, "smtp inet n - n - - smtpd\nbroken unix n -\n")
    assert str(e.value).endswith("master.cf, line 3: bad field count")


@pytest.mark.parametrize("line,message", [
    ("foo unix x - n - - smtp", 'invalid private field "x" in "foo unix x - n - - smtp"'),
    ("foo unix - maybe n - - smtp", 'invalid unprivileged field "maybe"'),
    ("foo unix - - n 1m - smtp", 'invalid wakeup field "1m"'),
    ("foo unix - - n - many smtp", 'invalid process_limit field "many"'),
    ("foo tcp - - n - - smtp", 'invalid type field "tcp"'),
])
def test_bad_fields(confdir, line, message):
    with pytest.raises(ConfigError, match="line 2: " + message.replace("(", r"\(")):
        services(confdir, line + "\n")


def test_inet_cannot_be_private(confdir):
    with pytest.raises(ConfigError, match="line 2: inet service cannot be private"):
        services(confdir, "smtp inet - - n - - smtpd\n")


def test_duplicate_service_is_an_error(confdir):
    with pytest.raises(ConfigError, match=r'line 3: duplicate service "smtp/inet" \(first defined at line 2\)'):
        services(confdir, "smtp inet n - n - - smtpd\nsmtp inet n - n - - smtpd\n")
    # same name, other type: fine
    _, specs = services(confdir, "smtp inet n - n - - smtpd\nsmtp unix - - n - - smtp\n")
    assert [s.type for s in specs] == ["inet", "unix"]


def test_bad_override_value_names_master_cf_line_and_parameter(confdir):
    with pytest.raises(ConfigError) as e:
        services(confdir, "smtp inet n - n - - smtpd\n  -o syslog_name=x\n  -o smtpd_timeout=soon\n")
    assert e.value.file.endswith("master.cf") and e.value.line == 4 and e.value.param == "smtpd_timeout"
    assert 'bad time value "soon"' in str(e.value)


def test_override_without_equals(confdir):
    with pytest.raises(ConfigError, match='-o argument without "name=value"'):
        services(confdir, "smtp inet n - n - - smtpd -o foo\n")


def test_unknown_override_warns(confdir):
    warnings: list[str] = []
    services(confdir, "smtp inet n - n - - smtpd -o nosuch=1\n", warnings=warnings)
    assert any("unused parameter: nosuch=1" in w and "master.cf, line 2" in w for w in warnings)


def test_unbalanced_braces(confdir):
    with pytest.raises(ConfigError, match="line 2"):
        services(confdir, "smtp inet n - n - - smtpd -o { a = b\n")
