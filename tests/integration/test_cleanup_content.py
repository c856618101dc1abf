"""cleanup's content refusals as an SMTP client sees them, through a real smtpd:
message_reject_characters and the strict MIME checks, compared with Postfix 3.7.11."""

from __future__ import annotations

import re
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.integration

h = SimpleNamespace(**runpy.run_path(str(Path(__file__).parent / "smtpd_helpers.py")))


def refused(port: int, message: bytes) -> tuple[int, bytes]:
    with h.session(port) as s:
        s.ehlo("client.example")
        s.mail("s@example.com")
        s.rcpt("r@example.test")
        return s.data(message)


def test_reject_characters_and_8bit_headers_are_refused_at_end_of_data(mailsys_instance):
    inst = mailsys_instance
    port = h.start(inst, {"message_reject_characters": r"\001", "strict_7bit_headers": "yes"})
    # Postfix 3.7.11: "550 5.7.1 disallowed character", and
    # "550 5.6.0 improper use of 8-bit data in message header".
    assert refused(port, b"Subject: hello\x01there\r\n\r\nbody\r\n") == (
        550, b"5.7.1 disallowed character")
    assert refused(port, b"Subject: caf\xc3\xa9\r\n\r\nbody\r\n") == (
        550, b"5.6.0 improper use of 8-bit data in message header")
    log = inst.wait_log("mime-error", timeout=10)
    assert re.search(r"mailsys/cleanup\[\d+\]: \w+: reject: content Subject: hello\?there from "
                     r"localhost\[127\.0\.0\.1\]; from=<s@example\.com> to=<r@example\.test> "
                     r"proto=ESMTP helo=<client\.example>: 5\.7\.1 disallowed character", log), log
    assert re.search(r"mailsys/cleanup\[\d+\]: \w+: reject: mime-error improper use of 8-bit "
                     r"data in message header: Subject: caf\?\? from localhost\[127\.0\.0\.1\]; "
                     r"from=<s@example\.com> to=<r@example\.test>$", log, re.M), log
