"""VRFY through a real master: one address or 501, as Postfix 3.7's smtpd answers.

Postfix 3.7.11 (smtputf8_enable = no) answered "VRFY John Smith", "VRFY
<a@x> <b@x>", "VRFY <>" and "VRFY <a@x> SMTPUTF8" with "501 5.1.3 Bad
recipient address syntax" and logged "warning: Illegal address syntax from
unknown[127.0.0.1] in VRFY command: John Smith"; "VRFY John Smith
<js@x.example>" got "252 2.0.0 John Smith <js@x.example>".
"""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

h = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("smtpd_helpers.py"))))

BAD = (501, b"5.1.3 Bad recipient address syntax")


def test_vrfy_wants_exactly_one_address(mailsys_instance):
    inst = mailsys_instance
    port = h.start(inst, {"smtputf8_enable": "no"})
    with h.session(port) as s:
        s.ehlo("client.example")
        assert s.docmd("VRFY", "John Smith") == BAD
        assert s.docmd("VRFY", "<a@x.example> <b@x.example>") == BAD
        assert s.docmd("VRFY", "<>") == BAD
        assert s.docmd("VRFY", "<a@x.example> SMTPUTF8") == BAD
        assert s.docmd("VRFY", "John  Smith <js@x.example>") == (
            252, b"2.0.0 John Smith <js@x.example>")
    log = inst.wait_log("vrfy=1/5")
    for arg in ("John Smith", "<a@x.example> <b@x.example>", "<>", "<a@x.example> SMTPUTF8"):
        assert f"warning: Illegal address syntax from localhost[127.0.0.1] in VRFY command: {arg}\n" \
            in log, log
