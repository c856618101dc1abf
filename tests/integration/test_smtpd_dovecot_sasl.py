"""smtpd_sasl_type = dovecot: SMTP AUTH checked by a real Dovecot auth server.

The replies and log lines are those of Postfix 3.7.11 in front of the same
Dovecot 2.3 (passwd-file users, PLAIN LOGIN CRAM-MD5), recorded on loopback.
"""

from __future__ import annotations

import base64
import runpy
import shutil
import smtplib
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("dovecot") is None,
                                 reason="needs Dovecot (Debian package dovecot-core)")]

h = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("smtpd_helpers.py"))))

SERVICES = ["cleanup unix - - n - 0 cleanup", "anvil unix - - n - 1 anvil"]

DOVECOT_CONF = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols =
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login cram-md5
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={root}
}}
service auth {{
  user = root
  unix_listener {socket} {{
    mode = 0666
  }}
}}
service auth-worker {{
  user = root
}}
"""


@pytest.fixture(autouse=True)
def _show_log(mailsys_instance):
    yield
    print(mailsys_instance.log_text())


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def dovecot(mailsys_instance):
    """A private Dovecot whose auth socket is private/auth under the queue directory."""
    inst = mailsys_instance
    root = inst.root / "dovecot"
    (root / "run").mkdir(parents=True)
    (root / "state").mkdir()
    (root / "users").write_text("alice@example.com:{PLAIN}secret\n")
    sock = inst.root / "auth.sock"
    conf = root / "dovecot.conf"
    conf.write_text(DOVECOT_CONF.format(root=root, socket=sock))
    errors = root / "stderr"
    with errors.open("wb") as err:
        proc = subprocess.Popen(["dovecot", "-F", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                stderr=err)
    try:
        inst.wait_until(lambda: sock.exists() or proc.poll() is not None)
        assert proc.poll() is None, errors.read_text()
        yield sock
    finally:
        proc.terminate()
        proc.wait(10)
        print((root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else "")


def start(inst, sock: Path, **params) -> int:
    port = inst.free_port()
    main_cf = {"smtpd_sasl_auth_enable": "yes", "smtpd_sasl_type": "dovecot",
               "smtpd_sasl_path": str(sock), "smtpd_error_sleep_time": "0",
               "mydestination": "localhost", "local_recipient_maps": "",
               "smtpd_relay_restrictions": "permit_sasl_authenticated, reject"}
    main_cf.update(params)
    inst.write_config(master_cf=[*SERVICES, f"127.0.0.1:{port} inet n - n - - smtpd"],
                      main_cf=main_cf)
    inst.start()
    inst.wait_until(lambda: h.listening(port))
    return port


def test_auth_through_dovecot_and_relay(mailsys_instance, dovecot):
    inst = mailsys_instance
    port = start(inst, dovecot)
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        s.ehlo("client.example")
        assert s.esmtp_features["auth"].split() == ["PLAIN", "LOGIN", "CRAM-MD5"]
        code, _ = s.docmd("AUTH", "PLAIN " + b64(b"\0alice@example.com\0secret"))
        assert code == 235
        s.sendmail("alice@example.com", ["bob@remote.example"], b"Subject: t\r\n\r\nhi\r\n")
    qid_line = inst.wait_log("client=localhost[127.0.0.1], sasl_method=PLAIN, "
                             "sasl_username=alice@example.com")
    assert "warning" not in qid_line


def test_a_too_long_response_is_refused_and_logged_as_postfix_does(mailsys_instance, dovecot):
    # Postfix 3.7 in front of Dovecot: "500 5.5.6 SASL response limit exceeded",
    # "warning: unknown[127.0.0.1]: request longer than 12288: AGFsaWNlAHNlY3JldA==AAAAAAAAAA..."
    inst = mailsys_instance
    port = start(inst, dovecot)
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        s.ehlo("client.example")
        assert s.docmd("AUTH", "PLAIN")[0] == 334
        s.send(b64(b"\0alice\0secret").encode() + b"A" * 13000 + b"\r\n")
        assert s.getreply() == (500, b"5.5.6 SASL response limit exceeded")
        assert s.noop()[0] == 250
    log = inst.wait_log("warning: localhost[127.0.0.1]: request longer than 12288: "
                        "AGFsaWNlAHNlY3JldA==AAAAAAAAAA...")
    # smtpd_sasl_authenticate() returns at once: no "authentication failed"
    # line, which fail2ban would count.
    assert "authentication failed" not in log


def test_a_response_that_is_no_base64_fails_as_postfix_does(mailsys_instance, dovecot):
    # Postfix 3.7.11: xsasl_dovecot_server.c refuses it before Dovecot sees
    # it, and smtpd_sasl_glue.c answers and logs it as any failed login.
    inst = mailsys_instance
    port = start(inst, dovecot)
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        s.ehlo("client.example")
        assert s.docmd("AUTH", "PLAIN !!!!") == (
            535, b"5.7.8 Error: authentication failed: Invalid base64 data in initial response")
        assert s.docmd("AUTH", "LOGIN") == (334, b"VXNlcm5hbWU6")
        assert s.docmd("@@@") == (
            535, b"5.7.8 Error: authentication failed: Invalid base64 data in continued response")
        assert s.noop()[0] == 250
    log = inst.wait_log("Invalid base64 data in continued response")
    assert ("warning: localhost[127.0.0.1]: SASL PLAIN authentication failed: "
            "Invalid base64 data in initial response, sasl_username=(unavailable)") in log
    assert ("warning: localhost[127.0.0.1]: SASL LOGIN authentication failed: "
            "Invalid base64 data in continued response, sasl_username=(unavailable)") in log


def test_failures_are_replied_and_logged_as_postfix_does(mailsys_instance, dovecot):
    # Dovecot delays the answers to a client address that failed before
    # (its auth penalty), so each failure comes from an address of its own.
    inst = mailsys_instance
    port = start(inst, dovecot)
    with smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=("127.0.0.2", 0)) as s:
        s.ehlo("client.example")
        assert s.docmd("AUTH", "PLAIN " + b64(b"\0alice@example.com\0bad")) == (
            535, b"5.7.8 Error: authentication failed: (reason unavailable)")
    with smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=("127.0.0.3", 0)) as s:
        s.ehlo("client.example")
        assert s.docmd("AUTH", "LOGIN") == (334, b"VXNlcm5hbWU6")
        assert s.docmd(b64(b"alice@example.com")) == (334, b"UGFzc3dvcmQ6")
        assert s.docmd(b64(b"wrong")) == (
            535, b"5.7.8 Error: authentication failed: (reason unavailable)")
    with smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=("127.0.0.4", 0)) as s:
        s.ehlo("client.example")
        assert s.docmd("AUTH", "LOGIN") == (334, b"VXNlcm5hbWU6")
        assert s.docmd("*") == (501, b"5.7.0 Authentication aborted")
        # a fresh exchange after the aborted one still works
        assert s.docmd("AUTH", "LOGIN")[0] == 334
        s.docmd(b64(b"alice@example.com"))
        assert s.docmd(b64(b"secret")) == (235, b"2.7.0 Authentication successful")
    log = inst.wait_log("SASL LOGIN authentication aborted")
    assert ("warning: unknown[127.0.0.2]: SASL PLAIN authentication failed: "
            "(reason unavailable), sasl_username=alice@example.com") in log
    assert ("warning: unknown[127.0.0.3]: SASL LOGIN authentication failed: "
            "(reason unavailable), sasl_username=alice@example.com") in log


def test_security_options_filter_dovecots_mechanisms(mailsys_instance, dovecot):
    inst = mailsys_instance
    port = start(inst, dovecot, smtpd_sasl_security_options="noanonymous, noplaintext")
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        s.ehlo("client.example")
        assert s.esmtp_features["auth"].split() == ["CRAM-MD5"]
        assert s.docmd("AUTH", "PLAIN " + b64(b"\0alice@example.com\0secret")) == (
            535, b"5.7.8 Error: authentication failed: Invalid authentication mechanism")
    # Postfix 3.7.11 logs the refusal of a mechanism it does not offer too
    inst.wait_log("warning: localhost[127.0.0.1]: SASL PLAIN authentication failed: "
                  "Invalid authentication mechanism, sasl_username=(unavailable)")


def test_auth_server_down(mailsys_instance, tmp_path):
    inst = mailsys_instance
    port = start(inst, tmp_path / "nothing-here")
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        s.ehlo("client.example")
        assert "auth" not in s.esmtp_features
        assert s.docmd("AUTH", "PLAIN " + b64(b"\0alice@example.com\0secret")) == (
            503, b"5.5.1 Error: authentication not enabled")
    inst.wait_log(f"warning: SASL: Connect to {tmp_path / 'nothing-here'} failed: "
                  "No such file or directory")


def test_auth_server_that_comes_later_is_used(mailsys_instance, dovecot):
    inst = mailsys_instance
    real = dovecot
    moved = real.with_name("auth.later")
    real.rename(moved)
    port = start(inst, real)
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        s.ehlo("client.example")
        assert "auth" not in s.esmtp_features
    moved.rename(real)
    deadline = time.monotonic() + 30
    while True:
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
            s.ehlo("client.example")
            if "auth" in s.esmtp_features or time.monotonic() > deadline:
                break
        time.sleep(0.5)
    assert s.esmtp_features.get("auth", "").split() == ["PLAIN", "LOGIN", "CRAM-MD5"]
