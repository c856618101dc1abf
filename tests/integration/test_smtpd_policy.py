"""smtpd restrictions through a real master: access tables, HELO/sender/recipient checks, DNS, relay."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.integration

h = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("smtpd_helpers.py"))))
sys.path.insert(0, str(Path(__file__).parents[1]))      # tests/dnsserver.py (tests/ is no package)
from dnsserver import NXDOMAIN, DnsServer  # noqa: E402

REJECT = "NOQUEUE: reject: RCPT from localhost[127.0.0.1]: "


@pytest.fixture(autouse=True)
def _show_log(mailsys_instance):
    yield
    print(mailsys_instance.log_text())


def table(inst, name: str, text: str) -> str:
    path = inst.config_dir / name
    path.write_text(text)
    return f"texthash:{path}"


def test_client_access_table(mailsys_instance):
    inst = mailsys_instance
    spec = table(inst, "client_access", "127.0.0.1 REJECT\n")
    port = h.start(inst, {"smtpd_client_restrictions": f"check_client_access {spec}"})
    with h.session(port) as s:
        s.ehlo("c.example")
        assert s.mail("a@example.org")[0] == 250          # smtpd_delay_reject: told at RCPT
        assert s.rcpt("bob@example.test") == \
            (554, b"5.7.1 <localhost[127.0.0.1]>: Client host rejected: Access denied")
    inst.wait_log(REJECT + "554 5.7.1 <localhost[127.0.0.1]>: Client host rejected: Access denied; "
                  "from=<a@example.org> to=<bob@example.test> proto=ESMTP helo=<c.example>")


@pytest.mark.parametrize("helo, reply", [
    ("a..b", "501 5.5.2 <a..b>: Helo command rejected: Invalid name"),
    ("localhost", "504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname"),
    ("mail.example.org", None),
])
def test_helo_restrictions(mailsys_instance, helo, reply):
    inst = mailsys_instance
    port = h.start(inst, {"smtpd_helo_restrictions":
                          "reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname"})
    with h.session(port) as s:
        assert s.ehlo(helo)[0] == 250
        assert s.mail("a@example.org")[0] == 250
        code, text = s.rcpt("bob@example.test")
    if reply is None:
        assert code == 250
        return
    assert f"{code} {text.decode()}" == reply
    inst.wait_log(f"{REJECT}{reply}; from=<a@example.org> to=<bob@example.test> proto=ESMTP helo=<{helo}>")


def test_sender_restrictions(mailsys_instance):
    inst = mailsys_instance
    spec = table(inst, "sender_access", "spammer.example REJECT\nbad@example.org 550 no mail from you\n")
    port = h.start(inst, {"smtpd_sender_restrictions": f"reject_non_fqdn_sender, check_sender_access {spec}"})
    expect = {
        "alice": "504 5.5.2 <alice>: Sender address rejected: need fully-qualified address",
        "x@spammer.example": "554 5.7.1 <x@spammer.example>: Sender address rejected: Access denied",
        "bad@example.org": "550 5.7.1 <bad@example.org>: Sender address rejected: no mail from you",
        "good@example.org": "250 2.1.5 Ok",
    }
    with h.session(port) as s:
        s.ehlo("c.example")
        for sender, reply in expect.items():
            assert s.mail(sender)[0] == 250
            code, text = s.rcpt("bob@example.test")
            assert f"{code} {text.decode()}" == reply
            s.rset()
    inst.wait_log(REJECT + expect["x@spammer.example"] + "; from=<x@spammer.example> "
                  "to=<bob@example.test> proto=ESMTP helo=<c.example>")


def test_recipient_restrictions_with_access_table_and_dns(mailsys_instance):
    inst = mailsys_instance
    spec = table(inst, "rcpt_access", "blocked@example.test REJECT no thanks\n")
    zone = {"exists.example": {"A": ["192.0.2.1"]}, "mxonly.example": {"MX": [(10, "mx.exists.example")]},
            "nowhere.example": NXDOMAIN}
    with DnsServer(zone) as dns:
        port = h.start(inst, {"dns_nameservers": dns.spec, "smtpd_recipient_restrictions":
                              f"reject_non_fqdn_recipient, check_recipient_access {spec}, "
                              "reject_unknown_recipient_domain"})
        expect = {
            "bob": "504 5.5.2 <bob>: Recipient address rejected: need fully-qualified address",
            "blocked@example.test": "554 5.7.1 <blocked@example.test>: Recipient address rejected: no thanks",
            "r@nowhere.example": "450 4.1.2 <r@nowhere.example>: Recipient address rejected: Domain not found",
            "r@exists.example": "250 2.1.5 Ok",
            "r@mxonly.example": "250 2.1.5 Ok",
            "bob@example.test": "250 2.1.5 Ok",
        }
        with h.session(port) as s:
            s.ehlo("c.example")
            s.mail("a@example.org")
            got = {}
            for rcpt in expect:
                code, text = s.rcpt(rcpt)
                got[rcpt] = f"{code} {text.decode()}"
        assert got == expect
        assert ("nowhere.example", "A") in dns.queries or ("nowhere.example", "MX") in dns.queries
    inst.wait_log(REJECT + expect["r@nowhere.example"] + "; from=<a@example.org> "
                  "to=<r@nowhere.example> proto=ESMTP helo=<c.example>")


TRICKS = ["user%remote.example@example.test", "remote.example!user@example.test",
          '"user@remote.example"@example.test', '"user%remote.example"@example.test',
          "@example.test:user@remote.example", "user@remote.example@example.test",
          "user%remote.example%example.test@example.test", "user@remote.example.",
          "user@[203.0.113.5]", "user%[203.0.113.5]@example.test"]


def test_address_tricks_never_open_a_relay(mailsys_instance):
    inst = mailsys_instance
    port = h.start(inst, {"mynetworks": "192.0.2.0/24"})
    with h.session(port) as s:
        s.ehlo("c.example")
        s.mail("a@example.org")
        got = {t: s.docmd(f"RCPT TO:<{t}>") for t in TRICKS}    # smtplib would rewrite some
        assert s.rcpt("bob@example.test")[0] == 250
    denied = {t for t, r in got.items() if r[0] == 454 and r[1].endswith(b">: Relay access denied")}
    # The rest do not even parse as paths (Postfix is laxer there; a refusal either way).
    bad_syntax = {t for t, r in got.items() if r == (501, b"5.1.3 Bad recipient address syntax")}
    assert denied | bad_syntax == set(TRICKS) and len(bad_syntax) <= 2, got
    assert inst.wait_log("Relay access denied").count("Relay access denied; from=<a@example.org>") \
        == len(denied)


def test_unknown_local_recipient_is_refused_and_logged(mailsys_instance):
    inst = mailsys_instance
    port = h.start(inst, {"local_recipient_maps": "inline:{bob=x}", "mynetworks": "192.0.2.0/24"})
    with h.session(port) as s:
        s.ehlo("c.example")
        s.mail("a@example.org")
        assert s.rcpt("nobody@example.test") == \
            (550, b"5.1.1 <nobody@example.test>: Recipient address rejected: User unknown in local "
                  b"recipient table")
    inst.wait_log(REJECT + "550 5.1.1 <nobody@example.test>: Recipient address rejected: User unknown in "
                  "local recipient table; from=<a@example.org> to=<nobody@example.test> proto=ESMTP "
                  "helo=<c.example>")
