"""VRFY through a real master, as Postfix 3.7's smtpd answers and logs it:
one address or 501, then the recipient rate, the milters' standing refusal
and the recipient restrictions of RCPT ("reject: VRFY from ...").

Postfix 3.7.11 (smtputf8_enable = no) answered "VRFY John Smith", "VRFY
<a@x> <b@x>", "VRFY <>" and "VRFY <a@x> SMTPUTF8" with "501 5.1.3 Bad
recipient address syntax" and logged "warning: Illegal address syntax from
unknown[127.0.0.1] in VRFY command: John Smith"; "VRFY John Smith
<js@x.example>" got "252 2.0.0 John Smith <js@x.example>".
"""

from __future__ import annotations

import os
import runpy
import shutil
import subprocess
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


# Postfix 3.7.11 (mynetworks outside the client, smtpd_relay_restrictions
# at its default, local_recipient_maps knowing root): the reply and the
# line it logged for each VRFY, outside and inside a transaction.
UNKNOWN = (550, b"5.1.1 <nosuch@localhost>: Recipient address rejected: "
                b"User unknown in local recipient table")
RELAY = (454, b"4.7.1 <r@remote.example>: Relay access denied")
REJECTS = [
    "NOQUEUE: reject: VRFY from localhost[127.0.0.1]: 550 5.1.1 <nosuch@localhost>: Recipient "
    "address rejected: User unknown in local recipient table; to=<nosuch@localhost> "
    "proto=ESMTP helo=<x>",
    "NOQUEUE: reject: VRFY from localhost[127.0.0.1]: 454 4.7.1 <r@remote.example>: Relay "
    "access denied; to=<r@remote.example> proto=ESMTP helo=<x>",
    "NOQUEUE: reject: VRFY from localhost[127.0.0.1]: 454 4.7.1 <r@remote.example>: Relay "
    "access denied; from=<a@b.example> to=<r@remote.example> proto=ESMTP helo=<x>",
]
OUTSIDE = {"mynetworks": "192.0.2.0/24", "local_recipient_maps": "inline:{bob=x}"}


def test_vrfy_goes_through_the_recipient_restrictions(mailsys_instance):
    inst = mailsys_instance
    port = h.start(inst, OUTSIDE)
    with h.session(port) as s:
        s.ehlo("x")
        assert s.docmd("VRFY", "<nosuch@localhost>") == UNKNOWN
        assert s.docmd("VRFY", "r@remote.example") == RELAY
        assert s.docmd("VRFY", "<bob@localhost>") == (252, b"2.0.0 <bob@localhost>")
        assert s.docmd("VRFY", "Postmaster") == (252, b"2.0.0 Postmaster")
        s.mail("a@b.example")
        assert s.docmd("VRFY", "r@remote.example") == RELAY
    log = inst.wait_log("vrfy=2/5")
    rejects = [line.split(": ", 1)[1] for line in log.splitlines() if "reject: VRFY" in line]
    assert rejects == REJECTS
    assert "ehlo=1 mail=1 vrfy=2/5 quit=1 commands=5/8" in log

    # The stock fail2ban postfix filter takes the client's address from them.
    matched = fail2ban(inst.log_path)
    assert len(matched) == 3 and all("reject: VRFY from localhost[127.0.0.1]" in m
                                     for m in matched), matched


def test_vrfy_counts_against_the_recipient_rate_before_its_syntax(mailsys_instance):
    # Postfix 3.7.11 with smtpd_client_recipient_rate_limit = 3: the fourth
    # VRFY and every one after it, "VRFY John Smith" too, got "450 4.7.1
    # Error: too many recipients from 192.0.2.7", each with "warning:
    # Recipient address rate limit exceeded: 4 from unknown[192.0.2.7] for
    # service 127.0.0.1:3801"; a bare "VRFY" still got its 501 5.5.4.
    inst = mailsys_instance
    port = h.start(inst, {**OUTSIDE, "smtpd_client_recipient_rate_limit": "3"})
    too_many = (450, b"4.7.1 Error: too many recipients from 127.0.0.1")
    with h.session(port) as s:
        s.ehlo("x")
        for _ in range(3):
            assert s.docmd("VRFY", "bob@localhost") == (252, b"2.0.0 bob@localhost")
        assert s.docmd("VRFY", "bob@localhost") == too_many
        assert s.docmd("VRFY", "John Smith") == too_many
        assert s.docmd("VRFY") == (501, b"5.5.4 Syntax: VRFY address [SMTPUTF8]")
    log = inst.wait_log("vrfy=3/6")
    for n in (4, 5):
        assert (f"warning: Recipient address rate limit exceeded: {n} from "
                f"localhost[127.0.0.1] for service 127.0.0.1:{port}\n") in log, log
    assert "Illegal address syntax" not in log


def test_disabled_vrfy_is_refused_before_any_check(mailsys_instance):
    # Postfix 3.7.11, disable_vrfy_command = yes: "502 5.5.1 VRFY command is
    # disabled" to any argument, and nothing logged but the disconnect line.
    inst = mailsys_instance
    port = h.start(inst, {**OUTSIDE, "disable_vrfy_command": "yes"})
    with h.session(port) as s:
        s.ehlo("x")
        assert s.docmd("VRFY", "nosuch@localhost") == (502, b"5.5.1 VRFY command is disabled")
        assert s.docmd("VRFY", "John Smith") == (502, b"5.5.1 VRFY command is disabled")
    log = inst.wait_log("vrfy=0/2")
    assert "reject:" not in log and "Illegal address" not in log


def test_vrfy_gets_the_refusal_a_failed_milter_stands_by(mailsys_instance):
    # Postfix 3.7.11, smtpd_milters on a port nobody listens on (the
    # default milter_default_action, tempfail): "VRFY root@localhost" and
    # "VRFY John Smith" got "451 4.7.1 Service unavailable - try again
    # later" (milter_other_event(), before the address is looked at), with
    # no line logged for them; a bare "VRFY" its 501 5.5.4.
    inst = mailsys_instance
    dead = inst.free_port()
    port = h.start(inst, {**OUTSIDE, "smtpd_milters": f"inet:127.0.0.1:{dead}"})
    tempfail = (451, b"4.7.1 Service unavailable - try again later")
    with h.session(port) as s:
        s.ehlo("x")
        assert s.docmd("VRFY", "bob@localhost") == tempfail
        assert s.docmd("VRFY", "John Smith") == tempfail
        assert s.docmd("VRFY") == (501, b"5.5.4 Syntax: VRFY address [SMTPUTF8]")
    log = inst.wait_log("vrfy=0/3")
    assert "VRFY from" not in log and "Illegal address" not in log, log


def fail2ban(log) -> list[str]:
    """The lines of log that fail2ban's stock postfix filter matches (mailsys's tag)."""
    tool = shutil.which("fail2ban-regex")
    if tool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("fail2ban-regex is not installed (CI installs the Debian package)")
        pytest.skip("fail2ban-regex is not installed (apt-get install fail2ban)")
    spec = 'postfix[_daemon="mailsys/\\w+(?:/smtp[ds])?"]'
    r = subprocess.run([tool, "-o", "msg", str(log), spec], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()
