"""MAIL FROM and RCPT TO paths that break RFC 5321 but that Postfix takes
(strict_rfc821_envelopes = no), through a real master: the replies, the
addresses queued and the warning logged, as Postfix 3.7.11 showed them."""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
h = SimpleNamespace(**runpy.run_path(str(HERE / "smtpd_helpers.py")))


def test_a_sloppy_path_is_queued_as_postfix_reads_it(mailsys_instance):
    inst = mailsys_instance
    port = h.start(inst)
    with h.session(port) as s:
        s.ehlo("client.example")
        # Postfix 3.7.11 logged these as from=<"x@a"@example.org> and
        # to=<bob@example.test>.
        assert s.docmd("MAIL FROM:<x@a@example.org>") == (250, b"2.1.0 Ok")
        assert s.docmd("RCPT TO:<<bob@example.test>>") == (250, b"2.1.5 Ok")
        assert s.docmd("RCPT TO:carol@example.test>") == (250, b"2.1.5 Ok")
        code, reply = s.data(b"Subject: sloppy\r\n\r\nHello.\r\n")
        assert code == 250
    envelope, _queue, _content = h.queued(inst, h.qid_of(reply))
    assert envelope.sender == '"x@a"@example.org'
    assert [r.address for r in envelope.recipients] == ["bob@example.test", "carol@example.test"]


def test_strict_rfc821_envelopes_refuses_them_and_says_so(mailsys_instance):
    inst = mailsys_instance
    port = h.start(inst, {"strict_rfc821_envelopes": "yes"})
    with h.session(port) as s:
        s.ehlo("client.example")
        assert s.docmd("MAIL FROM:alice@example.org") == (501, b"5.1.7 Bad sender address syntax")
        assert s.docmd("MAIL FROM:<\x01lice@example.org>(x)") == (501, b"5.1.7 Bad sender address syntax")
        assert s.docmd("MAIL FROM:<alice@example.org") == (501, b"5.1.7 Bad sender address syntax")
        assert s.docmd("MAIL FROM:<alice@example.org>")[0] == 250
        assert s.docmd("RCPT TO:<bob@example.test>(Bob)") == (501, b"5.1.3 Bad recipient address syntax")
    log = inst.wait_log("mail=1/4 rcpt=0/1")
    prefix = "warning: Illegal address syntax from localhost[127.0.0.1] in"
    # The control character is logged as "?" (printable()); the unclosed
    # path gets the 501 without the warning (smtpd_token.c, SMTPD_TOK_ERROR).
    assert [line.split("]: ", 1)[1] for line in log.splitlines() if "Illegal address" in line] == [
        f"{prefix} MAIL command: alice@example.org",
        f"{prefix} MAIL command: <?lice@example.org>(x)",
        f"{prefix} RCPT command: <bob@example.test>(Bob)",
    ]
