"""anvil limits through a real master: each trips one above its value; exceptions; statistics."""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.integration

h = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("smtpd_helpers.py"))))
HOST = "mx.example.test"
LIMITS = {"smtpd_client_message_rate_limit": "2", "smtpd_client_recipient_rate_limit": "2",
          "smtpd_client_auth_rate_limit": "1", "smtpd_sasl_auth_enable": "yes"}


@pytest.fixture(autouse=True)
def _show_log(mailsys_instance):
    yield
    print(mailsys_instance.log_text())


def add_user(inst, user, password):
    r = inst.cli("saslpasswd", "add", user, input=password + "\n")
    assert r.returncode == 0, r.stderr


def test_connection_rate_limit(mailsys_instance):
    inst = mailsys_instance
    port = h.start(inst, {"smtpd_client_connection_rate_limit": "2", "anvil_status_update_time": "1s",
                          "smtpd_client_event_limit_exceptions": ""})
    service = f"127.0.0.1:{port}"
    with h.session(port) as s:                  # start()'s probe was the first connection
        assert s.noop()[0] == 250
    with h.Raw(port) as c:
        assert c.line() == f"421 4.7.0 {HOST} Error: too many connections from 127.0.0.1\r\n".encode()
        assert c.line() == b""
    inst.wait_log(f"warning: Connection rate limit exceeded: 3 from localhost[127.0.0.1] "
                  f"for service {service}")
    # anvil_status_update_time: logged while anvil runs, not only when it exits.
    inst.wait_log(f"statistics: max connection rate 3/60s for ({service}:127.0.0.1) at ")
    inst.wait_log("statistics: max connection count ")


def test_message_recipient_and_auth_rates(mailsys_instance):
    inst = mailsys_instance
    port = h.start(inst, {**LIMITS, "smtpd_client_event_limit_exceptions": ""})
    add_user(inst, "alice", "secret")
    service = f"127.0.0.1:{port}"
    with h.session(port) as s:
        s.ehlo("c.example")
        assert s.mail("a@example.org")[0] == 250
        assert s.rcpt("b1@example.test")[0] == 250
        assert s.rcpt("b2@example.test")[0] == 250
        assert s.rcpt("b3@example.test") == (450, b"4.7.1 Error: too many recipients from 127.0.0.1")
        s.rset()
        assert s.mail("a@example.org")[0] == 250
        s.rset()
        assert s.mail("a@example.org") == (450, b"4.7.1 Error: too much mail from 127.0.0.1")
        assert s.docmd("AUTH PLAIN AGFsaWNlAHdyb25n") == \
            (535, b"5.7.8 Error: authentication failed: authentication failure")
        assert s.docmd("AUTH PLAIN AGFsaWNlAHNlY3JldA==") == \
            (450, b"4.7.1 Error: too many AUTH commands from 127.0.0.1")
    tail = f" from localhost[127.0.0.1] for service {service}"
    inst.wait_log("warning: Recipient address rate limit exceeded: 3" + tail)
    inst.wait_log("warning: Message delivery request rate limit exceeded: 3" + tail)
    inst.wait_log("warning: localhost[127.0.0.1]: SASL PLAIN authentication failed: "
                  "authentication failure, sasl_username=alice")
    inst.wait_log("warning: AUTH command rate limit exceeded: 2" + tail)
    assert "reject: MAIL" not in inst.log_text() and "reject: RCPT" not in inst.log_text()
    inst.stop()
    log = inst.log_text()
    ident = f"({service}:127.0.0.1)"
    for line in (f"max message rate 3/60s for {ident} at ", f"max recipient rate 3/60s for {ident} at ",
                 f"max auth rate 2/60s for {ident} at ", "max cache size 1 at "):
        assert "mailsys/anvil[" in log and f"]: statistics: {line}" in log, line


def test_mynetworks_is_exempt_by_default(mailsys_instance):
    inst = mailsys_instance
    port = h.start(inst, {**LIMITS, "smtpd_client_connection_count_limit": "1",
                          "smtpd_client_connection_rate_limit": "1"})
    add_user(inst, "alice", "secret")
    with h.session(port) as one, h.session(port) as two:
        assert one.noop()[0] == 250 and two.noop()[0] == 250
        two.ehlo("c.example")
        for _ in range(3):
            assert two.mail("a@example.org")[0] == 250
            assert [two.rcpt(f"b{i}@example.test")[0] for i in range(3)] == [250] * 3
            two.rset()
        assert two.docmd("AUTH PLAIN AGFsaWNlAHdyb25n")[0] == 535
        assert two.docmd("AUTH PLAIN AGFsaWNlAHNlY3JldA==")[0] == 235
    assert "limit exceeded" not in inst.log_text()
