"""maillog_file_prefixes: Postfix's maillog_client_init() check, as a unit and at the CLI.

Postfix 3.7.11 with maillog_file = /tmp/pfx-logrotate/log/maillog and the
default prefixes refused it in every program that logs, postconf aside:
    postfix: fatal: maillog_file value '/tmp/pfx-logrotate/log/maillog' does
        not match any prefix in maillog_file_prefixes     (reload, check: exit 1)
    postfix/postlog: fatal: ... (exit 1), sendmail: fatal: ... (exit 75),
    postqueue: fatal: ... (exit 69)
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from mailsys.errors import ConfigError
from mailsys.maillog.files import check_prefixes
from mailsys.maillog.setup import configure

pytestmark = pytest.mark.timeout(60)


def refusal(value: str) -> str:
    return f"maillog_file value '{value}' does not match any prefix in maillog_file_prefixes"


@pytest.mark.parametrize("log, prefixes", [
    ("/var/log/mail.log", "/var, /dev/stdout"),
    ("/variable/mail.log", "/var"),              # a prefix of the text, as strncmp()
    ("/dev/stdout", "/var, /dev/stdout"),
    ("./var/log/mail.log", "./var"),             # both taken from the same directory
    ("./var/log/mail.log", "{root}/var/log"),
    ("{root}/var/log/mail.log", "./var/"),
    ("", "/nowhere"),                             # no file, nothing to check
])
def test_accepted(make_config, short_root, log, prefixes):
    cfg = make_config(maillog_file=log.format(root=short_root),
                      maillog_file_prefixes=prefixes.format(root=short_root))
    check_prefixes(cfg)


@pytest.mark.parametrize("log, prefixes", [
    ("/tmp/x/mail.log", "/var, /dev/stdout"),
    ("/variable/mail.log", "/var/"),             # a trailing slash narrows the match
    ("./var/log/mail.log", "/var"),              # relative: not under /var
    ("/etc/passwd", ""),
])
def test_refused(make_config, log, prefixes):
    cfg = make_config(maillog_file=log, maillog_file_prefixes=prefixes)
    with pytest.raises(ConfigError) as e:
        check_prefixes(cfg)
    assert str(e.value) == refusal(log)


def test_configure_refuses(make_config):
    with pytest.raises(ConfigError, match="does not match any prefix"):
        configure(make_config(maillog_file="/tmp/x/mail.log", maillog_file_prefixes="/var"), "smtpd")


def mailsys(etc, *args):
    return subprocess.run([sys.executable, "-m", "mailsys.cli.main", "-c", str(etc), *args],
                          capture_output=True, text=True, timeout=30, input="Subject: x\n\nx\n")


@pytest.mark.parametrize("args, prefix, status", [
    (("check",), "mailsys", 1),
    (("status",), "mailsys", 1),
    (("logrotate",), "mailsys", 1),
    (("postlog", "hello"), "postlog", 1),
    (("sendmail", "root"), "sendmail", 75),
    (("postqueue", "-p"), "postqueue", 69),
])
def test_programs_that_log_refuse(make_config, short_root, args, prefix, status):
    cfg = make_config(maillog_file="/tmp/x/mail.log", maillog_file_prefixes="/var, /dev/stdout")
    r = mailsys(cfg.config_dir, *args)
    assert (r.returncode, r.stderr) == (status, f"{prefix}: fatal: {refusal('/tmp/x/mail.log')}\n")
    assert not (short_root / "var").exists()          # nothing was queued or logged


def test_postconf_does_not_check(make_config):
    cfg = make_config(maillog_file="/tmp/x/mail.log", maillog_file_prefixes="/var")
    r = mailsys(cfg.config_dir, "postconf", "maillog_file")
    assert (r.returncode, r.stdout) == (0, "maillog_file = /tmp/x/mail.log\n")
