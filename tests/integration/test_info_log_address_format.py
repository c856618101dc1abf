"""info_log_address_format through a real master: the from=<> of smtpd's reject
line, as Postfix 3.7.11 wrote it with the same setting."""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.integration

h = SimpleNamespace(**runpy.run_path(str(Path(__file__).parent / "smtpd_helpers.py")))
REJECT = {"smtpd_recipient_restrictions": "check_recipient_access inline:{nope@example.net=REJECT}"}


def reject_line(inst, main_cf) -> str:
    port = h.start(inst, {**REJECT, **main_cf})
    with h.session(port) as s:
        s.ehlo("client.example")
        assert s.mail('"a b"@example.com')[0] == 250
        assert s.rcpt("nope@example.net")[0] == 554
    log = inst.wait_log("Recipient address rejected: Access denied;")
    return next(x for x in log.splitlines() if "reject: RCPT" in x)


def test_internal_logs_the_sender_unquoted(mailsys_instance):
    # Postfix 3.7.11: "NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 554 5.7.1
    # <nope@example.net>: Recipient address rejected: Access denied;
    # from=<a b@example.com> to=<nope@example.net> proto=SMTP helo=<x>".
    line = reject_line(mailsys_instance, {"info_log_address_format": "internal"})
    assert "; from=<a b@example.com> to=<nope@example.net> proto=ESMTP" in line


def test_external_is_the_default(mailsys_instance):
    line = reject_line(mailsys_instance, {})
    assert '; from=<"a b"@example.com> to=<nope@example.net> proto=ESMTP' in line
