"""smtpd restrictions through a real master: access tables, HELO/sender/recipient checks, DNS, relay."""

from __future__ import annotations

import re
import runpy
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from mailsys.queue import Queue, QueueStore

pytestmark = pytest.mark.integration

h = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("smtpd_helpers.py"))))
sys.path.insert(0, str(Path(__file__).parents[1]))      # tests/dnsserver.py (tests/ is no package)
from dnsserver import NXDOMAIN, SERVFAIL, DnsServer  # noqa: E402

REJECT = "NOQUEUE: reject: RCPT from localhost[127.0.0.1]: "


@pytest.fixture(autouse=True)
def _show_log(mailsys_instance):
    yield
    print(mailsys_instance.log_text())


def table(inst, name: str, text: str) -> str:
    path = inst.config_dir / name
    path.write_text(text)
    return f"texthash:{path}"


def rcpt_replies(port: int, recipients, sender: str = "a@example.org") -> dict[str, str]:
    """One transaction from sender: each recipient's RCPT reply, "250 2.1.5 Ok"-style."""
    with h.session(port) as s:
        s.ehlo("c.example")
        s.mail(sender)
        got = {}
        for rcpt in recipients:
            code, text = s.rcpt(rcpt)
            got[rcpt] = f"{code} {text.decode()}"
    return got


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
        assert rcpt_replies(port, expect) == expect
        assert ("nowhere.example", "A") in dns.queries or ("nowhere.example", "MX") in dns.queries
    inst.wait_log(REJECT + expect["r@nowhere.example"] + "; from=<a@example.org> "
                  "to=<r@nowhere.example> proto=ESMTP helo=<c.example>")


def test_reject_unknown_domain_refuses_a_null_mx(mailsys_instance):
    """A domain whose MX is RFC 7505's null MX is refused with Postfix's
    fixed codes, whatever unknown_address_reject_code says, though it has an
    A record. Postfix 3.7 (own network namespace, tests/dnsserver.py on
    127.0.0.1:53, unknown_address_reject_code = 554) answered and logged:
      NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 550 5.7.27 <a@nullmx.test>:
      Sender address rejected: Domain nullmx.test does not accept mail (nullMX);
      from=<a@nullmx.test> to=<b@good.test> proto=ESMTP helo=<vm>
      ... 556 5.1.10 <b@nullmx.test>: Recipient address rejected: Domain
      nullmx.test does not accept mail (nullMX); from=<a@good.test> ..."""
    inst = mailsys_instance
    zone = {"nullmx.test": {"MX": [(0, ".")], "A": ["192.0.2.1"]},
            "mixed.test": {"MX": [(0, "."), (10, "mx.good.test")]},
            "good.test": {"MX": [(10, "mx.good.test")]}}
    with DnsServer(zone) as dns:
        port = h.start(inst, {"dns_nameservers": dns.spec, "unknown_address_reject_code": "554",
                              "smtpd_sender_restrictions": "reject_unknown_sender_domain",
                              "smtpd_recipient_restrictions": "reject_unknown_recipient_domain"})
        rcpt = {"b@nullmx.test": "556 5.1.10 <b@nullmx.test>: Recipient address rejected: "
                                 "Domain nullmx.test does not accept mail (nullMX)",
                # Postfix 3.7 the same for a "." beside a real exchanger.
                "b@mixed.test": "556 5.1.10 <b@mixed.test>: Recipient address rejected: "
                                "Domain mixed.test does not accept mail (nullMX)",
                "b@good.test": "250 2.1.5 Ok"}
        assert rcpt_replies(port, rcpt, sender="a@good.test") == rcpt
        sender = {"b@good.test": "550 5.7.27 <a@nullmx.test>: Sender address rejected: "
                                 "Domain nullmx.test does not accept mail (nullMX)"}
        assert rcpt_replies(port, sender, sender="a@nullmx.test") == sender
        # The null MX ends the lookup: its A record is not asked for.
        assert ("nullmx.test", "MX") in dns.queries and ("nullmx.test", "A") not in dns.queries
    inst.wait_log(REJECT + rcpt["b@nullmx.test"] + "; from=<a@good.test> "
                  "to=<b@nullmx.test> proto=ESMTP helo=<c.example>")
    inst.wait_log(REJECT + sender["b@good.test"] + "; from=<a@nullmx.test> "
                  "to=<b@good.test> proto=ESMTP helo=<c.example>")


def test_unknown_address_tempfail_action_with_a_servfail(mailsys_instance):
    """A SERVFAIL for the recipient domain: with reject_tempfail_action =
    defer (so unknown_address_tempfail_action = defer) the 450 comes at
    once, before the access table's reject; Postfix 3.7 answered
    "450 4.1.8 <a@broken.example>: Sender address rejected: Domain not
    found" for the same setting and a sender domain, and with the default
    (defer_if_permit) the later reject."""
    inst = mailsys_instance
    spec = table(inst, "rcpt_access", "r@broken.example REJECT blocked here\n")
    zone = {"broken.example": SERVFAIL}
    with DnsServer(zone) as dns:
        port = h.start(inst, {"dns_nameservers": dns.spec, "reject_tempfail_action": "defer",
                              "unknown_address_reject_code": "550",
                              "smtpd_recipient_restrictions":
                                  f"reject_unknown_recipient_domain, check_recipient_access {spec}"})
        expect = {
            "r@broken.example": "450 4.1.2 <r@broken.example>: Recipient address rejected: "
                                "Domain not found",
            "bob@example.test": "250 2.1.5 Ok",
        }
        assert rcpt_replies(port, expect) == expect
        assert ("broken.example", "MX") in dns.queries or ("broken.example", "A") in dns.queries
    inst.wait_log(": reject: RCPT from localhost[127.0.0.1]: " + expect["r@broken.example"]
                  + "; from=<a@example.org> to=<r@broken.example> proto=ESMTP helo=<c.example>")


def test_permit_mx_backup_with_real_dns(mailsys_instance):
    """permit_mx_backup relays for domains whose backup MX is this host (by
    name or address) and whose primaries are in permit_mx_backup_networks.
    Postfix 3.7.11 gave the same replies for the same zone (run in a network
    namespace whose resolv.conf pointed at this server)."""
    inst = mailsys_instance
    zone = {"backup.example": {"MX": [(10, "mx1.backup.example"), (20, "mx.example.test")]},
            "mx1.backup.example": {"A": ["192.0.2.1"]},
            "byaddr.example": {"MX": [(10, "mx1.backup.example"), (20, "mx2.byaddr.example")]},
            "mx2.byaddr.example": {"A": ["127.0.0.1"]},
            "primary.example": {"MX": [(10, "mx.example.test"), (20, "mx1.backup.example")]},
            "stranger.example": {"MX": [(10, "mx1.backup.example"), (20, "other.example")]},
            "other.example": {"A": ["203.0.113.9"]},
            "outside.example": {"MX": [(10, "mx1.outside.example"), (20, "mx.example.test")]},
            "mx1.outside.example": {"A": ["198.51.100.1"]},
            "broken.example": SERVFAIL,
            "noaddr.example": {"MX": [(10, "gone.example"), (20, "mx.example.test")]},
            "gone.example": NXDOMAIN,
            "nodata.example": {"MX": [(10, "empty.example"), (20, "mx.example.test")]},
            "empty.example": {"TXT": []},
            "badprimary.example": {"MX": [(10, "srvfail.example"), (20, "mx.example.test")]},
            "srvfail.example": SERVFAIL,
            "nomx.example": {"A": ["192.0.2.9"]}}
    with DnsServer(zone) as dns:
        port = h.start(inst, {"dns_nameservers": dns.spec,
                              "permit_mx_backup_networks": "192.0.2.0/24",
                              "smtpd_relay_restrictions":
                                  "permit_mx_backup, reject_unauth_destination"})
        denied = "554 5.7.1 <r@{0}>: Relay access denied"
        expect = {
            "r@backup.example": "250 2.1.5 Ok",
            "r@byaddr.example": "250 2.1.5 Ok",
            "r@primary.example": denied.format("primary.example"),
            "r@stranger.example": denied.format("stranger.example"),
            "r@outside.example": denied.format("outside.example"),
            "r@broken.example": "450 4.4.4 <r@broken.example>: Recipient address rejected: "
                                "Unable to look up mail exchanger information: "
                                "Host not found, try again",
            "r@noaddr.example": "450 4.4.4 <r@noaddr.example>: Recipient address rejected: "
                                "Unable to look up mail exchanger host gone.example: "
                                "Name or service not known",
            "r@nodata.example": "450 4.4.4 <r@nodata.example>: Recipient address rejected: "
                                "Unable to look up mail exchanger host empty.example: "
                                "No address associated with hostname",
            "r@badprimary.example": "450 4.4.4 <r@badprimary.example>: Recipient address "
                                    "rejected: Unable to look up mail exchanger host "
                                    "srvfail.example: Temporary failure in name resolution",
            "r@nomx.example": denied.format("nomx.example"),
            "bob@example.test": "250 2.1.5 Ok",
        }
        assert rcpt_replies(port, expect) == expect
        assert ("backup.example", "MX") in dns.queries
        assert ("mx2.byaddr.example", "A") in dns.queries
        assert not any(name.endswith("example.test") for name, _ in dns.queries)   # ours by name
    # After the first accepted recipient the line carries the queue ID.
    inst.wait_log(": reject: RCPT from localhost[127.0.0.1]: " + expect["r@broken.example"]
                  + "; from=<a@example.org> to=<r@broken.example> proto=ESMTP helo=<c.example>")


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
    # The lines reach mail.log one by one: wait for all of them, then count.
    line = "Relay access denied; from=<a@example.org>"
    inst.wait_until(lambda: inst.log_text().count(line) >= len(denied))
    assert inst.log_text().count(line) == len(denied)


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


def _actions_site(inst):
    """smtpd whose recipient restrictions refuse b@rej.test first, then act on the sender."""
    rejects = table(inst, "rcpt_access", "b@rej.test REJECT\n")
    actions = table(inst, "sender_access", "hold@x.test HOLD\ndisc@x.test DISCARD\n")
    return h.start(inst, {"smtpd_recipient_restrictions":
                          f"check_recipient_access {rejects}, check_sender_access {actions}, "
                          "permit_mynetworks, reject_unauth_destination"})


def _queues(inst) -> dict[str, tuple[Queue, list[str]]]:
    """Every queue entry's queue and recipients, read after the master stopped."""
    inst.stop()
    with QueueStore.open(inst.queue_dir) as store:
        return {e.queue_id: (q, [r.address for r in e.recipients]) for e, q in store.scan_all()}


def _transaction(s, sender: str, rcpts: list[str]) -> tuple[list[int], str]:
    """One message: the RCPT reply codes, and the queue ID DATA was answered with."""
    assert s.mail(sender)[0] == 250
    codes = [s.rcpt(rcpt)[0] for rcpt in rcpts]
    code, reply = s.data(h.MESSAGE)
    assert code == 250
    return codes, h.qid_of(reply)


def _note(action: str, sender: str, rcpt: str) -> str:
    return (f"NOQUEUE: {action}: RCPT from localhost[127.0.0.1]: <{sender}>: Sender address triggers "
            f"{action.upper()} action; from=<{sender}> to=<{rcpt}> proto=ESMTP helo=<c.example>")


def test_hold_action_puts_the_message_on_hold(mailsys_instance):
    # As Postfix 3.7 does: logged once per transaction, the other recipients
    # still evaluated, the whole message held; the next transaction is not.
    inst = mailsys_instance
    port = _actions_site(inst)
    with h.session(port) as s:
        s.ehlo("c.example")
        codes, held = _transaction(s, "hold@x.test", ["a@example.test", "c@example.test", "b@rej.test"])
        assert codes == [250, 250, 554]
        codes, free = _transaction(s, "good@example.org", ["a@example.test"])
        assert codes == [250]
    text = inst.wait_log(f"{held}: reject: RCPT from localhost[127.0.0.1]: 554 5.7.1 <b@rej.test>")
    assert text.count(_note("hold", "hold@x.test", "a@example.test")) == 1
    assert ": hold: " not in text.replace(_note("hold", "hold@x.test", "a@example.test"), "")
    assert _queues(inst) == {held: (Queue.HOLD, ["a@example.test", "c@example.test"]),
                             free: (Queue.INCOMING, ["a@example.test"])}


def test_discard_action_claims_delivery_and_stores_nothing(mailsys_instance):
    # As Postfix 3.7 does: the client is told "queued as", the recipients
    # after the DISCARD are not evaluated, nothing is stored, and the next
    # transaction is evaluated and stored again.
    inst = mailsys_instance
    port = _actions_site(inst)
    with h.session(port) as s:
        s.ehlo("c.example")
        codes, discarded = _transaction(s, "disc@x.test", ["a@example.test", "b@rej.test"])
        assert codes == [250, 250]                      # b@rej.test not evaluated any more
        codes, kept = _transaction(s, "good@example.org", ["b@rej.test", "a@example.test"])
        assert codes == [554, 250]
    # cleanup's line about the later message: its line about the discarded
    # one, if any, would be in the log before it.
    text = inst.wait_log(f"{kept}: message-id=")
    assert _note("discard", "disc@x.test", "a@example.test") in text
    assert f"{discarded}: client=localhost[127.0.0.1]" in text
    refused = [line for line in text.splitlines() if "<b@rej.test>" in line]
    assert len(refused) == 1 and "from=<good@example.org>" in refused[0], refused
    assert f"{discarded}: message-id=" not in text      # cleanup stored and logged nothing
    assert _queues(inst) == {kept: (Queue.INCOMING, ["a@example.test"])}


def test_hold_at_connect_is_skipped_with_a_warning_when_delay_reject_is_no(mailsys_instance):
    # Postfix 3.7 logs the same warning and queues the message normally.
    inst = mailsys_instance
    spec = table(inst, "client_access", "127.0.0.1 HOLD\n")
    port = h.start(inst, {"smtpd_delay_reject": "no",
                          "smtpd_client_restrictions": f"check_client_access {spec}"})
    with h.session(port) as s:
        s.ehlo("c.example")
        assert s.sendmail("a@example.org", ["bob@example.test"], h.MESSAGE) == {}
    inst.wait_log(f"warning: access table {spec}: with smtpd_delay_reject=no, action HOLD is always "
                  "skipped in Client host or Helo command restrictions")
    assert ": hold: " not in inst.log_text()
    assert [q for q, _ in _queues(inst).values()] == [Queue.INCOMING]


def test_prepend_redirect_bcc_and_filter_actions(mailsys_instance):
    # As Postfix 3.7 does: REDIRECT, BCC and FILTER are logged at every
    # recipient that triggers them, PREPEND never, and each RCPT's PREPEND
    # adds its header again.
    inst = mailsys_instance
    spec = table(inst, "sender_access", "pre@x.test PREPEND X-Flag: yes\n"
                 "red@x.test REDIRECT boss@example.test\nbcc@x.test BCC arch@example.test\n"
                 "fil@x.test FILTER smtp:[127.0.0.1]:10025\n")
    port = h.start(inst, {"smtpd_recipient_restrictions": f"check_sender_access {spec}, "
                          "permit_mynetworks, reject_unauth_destination"})
    rcpts = ["a@example.test", "c@example.test"]
    with h.session(port) as s:
        s.ehlo("c.example")
        qids = {sender: _transaction(s, f"{sender}@x.test", rcpts)[1]
                for sender in ("pre", "red", "bcc", "fil")}
    text = inst.wait_log(f"{qids['fil']}: message-id=")
    for sender, line in (("red", "REDIRECT boss@example.test"), ("bcc", "BCC arch@example.test"),
                         ("fil", "FILTER smtp:[127.0.0.1]:10025")):
        action = line.split()[0].lower()
        for n, rcpt in enumerate(rcpts):
            where = "NOQUEUE" if n == 0 else qids[sender]
            assert (f"{where}: {action}: RCPT from localhost[127.0.0.1]: <{sender}@x.test>: Sender "
                    f"address triggers {line}; from=<{sender}@x.test> to=<{rcpt}> proto=ESMTP "
                    f"helo=<c.example>") in text
    assert ": prepend: " not in text
    inst.stop()
    with QueueStore.open(inst.queue_dir) as store:
        assert store.load_content(qids["pre"]).startswith(b"X-Flag: yes\r\nX-Flag: yes\r\nReceived: ")
        assert [(r.address, r.orig) for r in store.load(qids["red"])[0].recipients] == \
            [("boss@example.test", "a@example.test")]
        assert [r.address for r in store.load(qids["bcc"])[0].recipients] == \
            ["a@example.test", "c@example.test", "arch@example.test"]
        assert store.load(qids["fil"])[0].attr("filter") == "smtp:[127.0.0.1]:10025"


def _greylist():
    """Like postgrey: a (client, sender, recipient) triplet is deferred the
    first time and passed, with a header, after that."""
    seen: set[tuple[str, str, str]] = set()

    def answer(attrs: dict[str, str]) -> str:
        triplet = (attrs["client_address"], attrs["sender"], attrs["recipient"])
        if attrs["protocol_state"] != "RCPT":
            return "DUNNO"
        if triplet in seen:
            return "PREPEND X-Greylist: delayed"
        seen.add(triplet)
        return "DEFER_IF_PERMIT Greylisted, see http://example.org/greylist"
    return answer


def test_check_policy_service_greylists_through_a_policy_server(mailsys_instance):
    inst = mailsys_instance
    with h.PolicyServer(_greylist()) as policy:
        port = h.start(inst, {
            "smtpd_recipient_restrictions": f"check_policy_service {policy.service}, "
                                            "permit_mynetworks, reject_unauth_destination",
            "smtpd_data_restrictions": f"check_policy_service {policy.service}"})
        with h.session(port) as s:
            s.ehlo("c.example")
            assert s.mail("a@example.org")[0] == 250
            assert s.rcpt("bob@example.test") == \
                (450, b"4.7.1 <bob@example.test>: Recipient address rejected: Greylisted, see "
                      b"http://example.org/greylist")
            s.rset()
            codes, qid = _transaction(s, "a@example.org", ["bob@example.test"])
            assert codes == [250]
    inst.wait_log(REJECT + "450 4.7.1 <bob@example.test>: Recipient address rejected: Greylisted, "
                  "see http://example.org/greylist; from=<a@example.org> to=<bob@example.test> "
                  "proto=ESMTP helo=<c.example>")
    inst.stop()
    with QueueStore.open(inst.queue_dir) as store:
        assert store.load_content(qid).startswith(b"X-Greylist: delayed\r\nReceived: ")
    first, second, data = policy.requests
    assert {k: first[k] for k in ("request", "protocol_state", "protocol_name", "helo_name",
                                  "sender", "recipient", "client_address", "client_name",
                                  "recipient_count", "queue_id")} == {
        "request": "smtpd_access_policy", "protocol_state": "RCPT", "protocol_name": "ESMTP",
        "helo_name": "c.example", "sender": "a@example.org", "recipient": "bob@example.test",
        "client_address": "127.0.0.1", "client_name": "localhost", "recipient_count": "0",
        "queue_id": ""}
    assert (data["protocol_state"], data["recipient_count"], data["queue_id"]) == ("DATA", "1", qid)
    assert second["instance"] == data["instance"] != first["instance"]


def test_an_unreachable_policy_service_answers_its_default_action(mailsys_instance):
    inst = mailsys_instance
    port = h.start(inst, {"smtpd_policy_service_try_limit": "1",
                          "smtpd_recipient_restrictions": "check_policy_service unix:private/nopolicy, "
                                                          "permit_mynetworks, reject_unauth_destination"})
    with h.session(port) as s:
        s.ehlo("c.example")
        s.mail("a@example.org")
        assert s.rcpt("bob@example.test") == \
            (451, b"4.3.5 <bob@example.test>: Recipient address rejected: Server configuration problem")
    inst.wait_log("warning: connect to private/nopolicy: No such file or directory\n")
    inst.wait_log("warning: problem talking to server private/nopolicy: No such file or directory")


def test_end_of_data_restrictions_see_the_size_and_refuse_before_queueing(mailsys_instance):
    # The classic use: a policy server that limits by the real message size.
    inst = mailsys_instance

    def answer(attrs: dict[str, str]) -> str:
        if int(attrs["size"]) > 200:
            return "552 5.3.4 Message too big for you"
        return "PREPEND X-Size-Checked: yes"
    with h.PolicyServer(answer) as policy:
        port = h.start(inst, {"smtpd_end_of_data_restrictions":
                              f"check_policy_service {policy.service}"})
        with h.session(port) as s:
            s.ehlo("c.example")
            codes, small = _transaction(s, "a@example.org", ["bob@example.test"])
            assert s.mail("a@example.org")[0] == 250 and s.rcpt("bob@example.test")[0] == 250
            code, text = s.data(h.MESSAGE + b"x" * 300 + b"\r\n")
            assert (code, text) == (552, b"5.3.4 <END-OF-MESSAGE>: End-of-data rejected: "
                                         b"Message too big for you")
    seen = policy.requests
    assert [(a["protocol_state"], a["recipient_count"], a["recipient"]) for a in seen] == \
        [("END-OF-MESSAGE", "1", "bob@example.test")] * 2
    assert int(seen[0]["size"]) == len(h.MESSAGE) and int(seen[1]["size"]) > 300
    text = inst.wait_log(": reject: END-OF-MESSAGE from localhost[127.0.0.1]: 552 5.3.4 "
                         "<END-OF-MESSAGE>: End-of-data rejected: Message too big for you; "
                         "from=<a@example.org> to=<bob@example.test> proto=ESMTP helo=<c.example>")
    refused = seen[1]["queue_id"]
    assert f"{refused}: reject: END-OF-MESSAGE" in text
    assert _queues(inst) == {small: (Queue.INCOMING, ["bob@example.test"])}
    with QueueStore.open(inst.queue_dir) as store:
        assert store.load_content(small).startswith(b"X-Size-Checked: yes\r\nReceived: ")


def test_client_access_and_mynetworks_from_cidr_tables(mailsys_instance):
    inst = mailsys_instance
    access = inst.config_dir / "client_access.cidr"
    access.write_text("10.0.0.0/8   REJECT\n127.0.0.1   WARN matched by cidr\n")
    nets = inst.config_dir / "mynetworks.cidr"
    nets.write_text("192.0.2.0/24  x\n127.0.0.0/8  x\n")
    port = h.start(inst, {"mynetworks": f"cidr:{nets}",
                          "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
                          "smtpd_recipient_restrictions": f"check_client_access cidr:{access}"})
    with h.session(port) as s:
        s.ehlo("c.example")
        s.mail("a@example.org")
        assert s.rcpt("x@remote.example")[0] == 250           # relaying: in mynetworks
    inst.wait_log("NOQUEUE: warn: RCPT from localhost[127.0.0.1]: matched by cidr; "
                  "from=<a@example.org> to=<x@remote.example> proto=ESMTP helo=<c.example>")


def test_reject_unauth_pipelining_refuses_data_sent_with_the_data_command(mailsys_instance):
    # The classic spam-engine tell, and the classic Postfix rule against it.
    inst = mailsys_instance
    port = h.start(inst, {"smtpd_data_restrictions": "reject_unauth_pipelining"})
    with h.Raw(port) as c:
        c.reply()
        for command in (b"EHLO c.example", b"MAIL FROM:<a@example.org>", b"RCPT TO:<bob@example.test>"):
            c.send(command + b"\r\n")
            assert c.reply().startswith(b"250")
        c.send(b"DATA\r\nSubject: now\r\n\r\nbody\r\n.\r\n")
        assert c.reply() == b"503 5.5.0 <DATA>: Data command rejected: Improper use of SMTP " \
                            b"command pipelining"
    inst.wait_log("improper command pipelining after DATA from localhost[127.0.0.1]: Subject: now")
    inst.wait_log(": reject: DATA from localhost[127.0.0.1]: 503 5.5.0 <DATA>: Data command "
                  "rejected: Improper use of SMTP command pipelining; from=<a@example.org> "
                  "to=<bob@example.test> proto=ESMTP helo=<c.example>")
    # A client that waits for each reply is not refused.
    with h.session(port) as s:
        assert s.sendmail("a@example.org", ["bob@example.test"], h.MESSAGE) == {}


def test_reject_multi_recipient_bounce_at_rcpt(mailsys_instance):
    inst = mailsys_instance
    port = h.start(inst, {"smtpd_recipient_restrictions": "reject_multi_recipient_bounce, "
                          "permit_mynetworks, reject_unauth_destination"})
    with h.session(port) as s:
        s.ehlo("c.example")
        assert s.mail("<>")[0] == 250
        assert s.rcpt("bob@example.test")[0] == 250
        assert s.rcpt("carol@example.test") == \
            (550, b"5.5.3 <carol@example.test>: Recipient address rejected: Multi-recipient bounce")
        s.rset()
        assert s.mail("a@example.org")[0] == 250
        assert [s.rcpt(r)[0] for r in ("bob@example.test", "carol@example.test")] == [250, 250]


def test_sleep_delays_the_reply_then_goes_on_without_holding_up_other_sessions(mailsys_instance):
    """"sleep 1": the RCPT reply comes no sooner than a second later and is the
    next restriction's; meanwhile another client of the same smtpd process
    (maxproc 1) is served at once."""
    inst = mailsys_instance
    spec = table(inst, "rcpt_access", "bob@example.test REJECT go away\n")
    port = inst.free_port()
    inst.write_config(master_cf=[*h.SERVICES, f"127.0.0.1:{port} inet n - n - 1 smtpd"],
                      main_cf={"mydestination": "example.test", "local_recipient_maps": "",
                               "smtpd_error_sleep_time": "0",
                               "smtpd_recipient_restrictions":
                                   f"sleep 1, check_recipient_access {spec}, permit"})
    inst.start()
    inst.wait_until(lambda: h.listening(port))
    with h.Raw(port) as slow, h.session(port) as other:
        assert slow.reply().startswith(b"220 ")
        slow.send(b"EHLO c.example\r\n")
        assert slow.reply().startswith(b"250 ")
        slow.send(b"MAIL FROM:<a@example.org>\r\n")
        assert slow.reply().startswith(b"250 ")
        started = time.monotonic()
        slow.send(b"RCPT TO:<bob@example.test>\r\n")
        time.sleep(0.1)                 # the slow session is in its pause now
        before = time.monotonic()
        assert other.noop()[0] == 250
        assert other.ehlo("d.example")[0] == 250
        assert time.monotonic() - before < 0.5
        assert slow.reply() == b"554 5.7.1 <bob@example.test>: Recipient address rejected: go away"
        assert time.monotonic() - started >= 1.0
    inst.wait_log(REJECT + "554 5.7.1 <bob@example.test>: Recipient address rejected: go away; "
                  "from=<a@example.org> to=<bob@example.test> proto=ESMTP helo=<c.example>")


def test_a_bad_table_line_is_skipped_and_warned_about_by_the_service_that_opened_it(
        mailsys_instance):
    """As Postfix: smtpd (client access) and cleanup (header_checks) each log
    the warning for the bad line of the table they read, and the other
    rules of the table stand."""
    inst = mailsys_instance
    access = inst.config_dir / "client.regexp"
    access.write_text("/^127\\.0\\.0\\.1$/q REJECT bad flag\n/^127\\.0\\.0\\.1$/ DUNNO fine\n"
                      "/^127\\./ REJECT go away\n")
    headers = inst.config_dir / "header_checks"
    headers.write_text("/^Subject:.*(spam/ REJECT unbalanced\n/^Subject: spam/ REJECT no spam\n")
    port = h.start(inst, {"smtpd_client_restrictions": f"check_client_access regexp:{access}",
                          "header_checks": f"regexp:{headers}"})
    with h.session(port) as s:
        s.ehlo("c.example")
        s.mail("a@example.org")
        assert s.rcpt("bob@example.test") == (250, b"2.1.5 Ok")      # line 2's DUNNO
        assert s.data(b"Subject: spam\r\n\r\nbuy\r\n") == (550, b"5.7.1 no spam")

    def logged_by(text: str) -> str:
        line = next(l for l in inst.wait_log(text).splitlines() if text in l)
        return line.split("]: ")[0].rsplit(" ", 1)[1].split("[")[0]
    assert logged_by(f'warning: regexp map {access}, line 1: unknown regexp option "q": '
                     "skipping this rule") == "mailsys/smtpd"
    assert logged_by(f"warning: regexp map {headers}, line 1: Unmatched ( or \\(") == \
        "mailsys/cleanup"
    # header_checks is also mime_header_checks and nested_header_checks by
    # default: one table, one warning.
    assert inst.log_text().count(f"regexp map {headers}, line 1") == 1


def test_log_access_permit_actions(mailsys_instance):
    # The lines Postfix 3.7.11 logged for the same restrictions and session
    # (smtpd_log_access_permit_actions = static:all), queue IDs and name aside.
    inst = mailsys_instance
    client_ok = table(inst, "client_ok", "127.0.0.1 OK\n")
    rcpt_ok = table(inst, "rcpt_ok", "b@example.net OK\nc@example.net PERMIT\n")
    port = h.start(inst, {
        "smtpd_log_access_permit_actions": "static:all",
        "smtpd_client_restrictions": f"check_client_access {client_ok}",
        "smtpd_helo_restrictions": "permit",
        "smtpd_sender_restrictions": "permit_mynetworks",
        "smtpd_relay_restrictions": "permit_auth_destination, reject",
        "smtpd_recipient_restrictions": f"check_recipient_access {rcpt_ok}, permit",
        "smtpd_data_restrictions": "permit",
        "relay_domains": "example.net", "mynetworks": "127.0.0.0/8"})
    with h.session(port) as s:
        s.ehlo("c.example")
        s.mail("a@example.org")
        for rcpt in ("b@example.net", "c@example.net"):
            assert s.rcpt(rcpt)[0] == 250
        code, _ = s.data(h.MESSAGE)
        assert code == 250
    log = inst.wait_log("permit: DATA from")
    tail = "from=<a@example.org> to=<{}> proto=ESMTP helo=<c.example>"
    client = "action=OK for Client host=localhost[127.0.0.1] from " + client_ok + "; "
    for rcpt, last in (("b@example.net", f"action=OK for Recipient address=b@example.net "
                                         f"from {rcpt_ok}; "),
                       ("c@example.net", "action=PERMIT for Recipient address=c@example.net ; ")):
        for text in (client, "action=permit for Helo command=c.example ; ",
                     "action=permit_mynetworks for Client host=localhost[127.0.0.1] ; ",
                     f"action=permit_auth_destination for Recipient address={rcpt} ; ", last):
            assert re.search(r": permit: RCPT from localhost\[127\.0\.0\.1\]: "
                             + re.escape(text + tail.format(rcpt)), log), (text, log)
    assert re.search(r": permit: DATA from localhost\[127\.0\.0\.1\]: action=permit for Data "
                     r"command=DATA ; from=<a@example\.org> proto=ESMTP helo=<c\.example>", log)


def test_dns_lists_with_reply_filters_txt_reasons_and_allow_lists(mailsys_instance):
    # The client is 127.0.0.1: its name in a list is 1.0.0.127.ZONE.
    inst = mailsys_instance
    zone = {
        # Spamhaus-style: an error answer (127.255.255.254) that the filter keeps out.
        "1.0.0.127.zen.test": {"A": ["127.255.255.254"]},
        "1.0.0.127.block.test": {"A": ["127.0.0.2"], "TXT": ['"https://block.test/q?127.0.0.1"']},
        "1.0.0.127.broken.test": SERVFAIL,
        "spammer.example.dbl.test": {"A": ["127.0.1.2"]},
    }
    with DnsServer(zone) as dns:
        port = h.start(inst, {
            "dns_nameservers": dns.spec, "mynetworks": "192.0.2.0/24",
            "smtpd_recipient_restrictions": (
                "reject_rbl_client broken.test, reject_rbl_client zen.test=127.0.0.[2..11], "
                "reject_rhsbl_sender dbl.test, reject_rbl_client block.test"),
        })
        with h.session(port) as s:
            s.ehlo("c.example")
            s.mail("a@spammer.example")
            assert s.rcpt("bob@example.test") == (554, (
                b"5.7.1 Service unavailable; Sender address [a@spammer.example] blocked using "
                b"dbl.test"))
        with h.session(port) as s:
            s.ehlo("c.example")
            s.mail("a@example.org")
            code, text = s.rcpt("bob@example.test")
    assert (code, text) == (554, b"5.7.1 Service unavailable; Client host [127.0.0.1] blocked "
                                 b"using block.test; https://block.test/q?127.0.0.1")
    log = inst.wait_log("blocked using block.test")
    assert (REJECT + "554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using "
            "block.test; https://block.test/q?127.0.0.1; from=<a@example.org> "
            "to=<bob@example.test> proto=ESMTP helo=<c.example>") in log
    # Postfix's warning for the list that failed, which rejects nobody.
    assert ("warning: 1.0.0.127.broken.test: RBL lookup error: Host or domain name not found. "
            "Name service error for name=1.0.0.127.broken.test type=A: Host not found, "
            "try again") in log


def test_an_allow_list_and_a_reply_template_of_ones_own(mailsys_instance):
    inst = mailsys_instance
    spec = table(inst, "rbl_replies", "soft.test $rbl_code 4.7.9 Try later: $rbl_reason\n")
    zone = {"1.0.0.127.soft.test": {"A": ["127.0.0.2"], "TXT": ['"listed"']},
            "1.0.0.127.wl.test": {"A": ["127.0.10.2"]}}
    with DnsServer(zone) as dns:
        restrictions = "reject_unauth_destination, reject_rbl_client soft.test"
        port = h.start(inst, {"dns_nameservers": dns.spec, "mynetworks": "192.0.2.0/24",
                              "rbl_reply_maps": spec, "maps_rbl_reject_code": "450",
                              "smtpd_recipient_restrictions": restrictions})
        assert rcpt_replies(port, ["bob@example.test"]) == {
            "bob@example.test": "450 4.7.9 Try later: listed"}
        inst.stop()
        port = h.start(inst, {"dns_nameservers": dns.spec, "mynetworks": "192.0.2.0/24",
                              "smtpd_recipient_restrictions":
                              "permit_dnswl_client wl.test=127.0.[0..255].[1..3], " + restrictions})
        # Allowed past the list, never past relay control.
        assert rcpt_replies(port, ["bob@example.test", "x@remote.example"]) == {
            "bob@example.test": "250 2.1.5 Ok",
            "x@remote.example": "454 4.7.1 <x@remote.example>: Relay access denied"}


def test_etrn_restrictions_and_a_missing_flush_service(mailsys_instance):
    # Postfix 3.7.11 with smtpd_etrn_restrictions = reject: "554 5.7.1
    # <example.com>: Etrn command rejected: Access denied", logged "NOQUEUE:
    # reject: ETRN from unknown[127.0.0.1]: 554 5.7.1 <example.com>: Etrn
    # command rejected: Access denied; proto=ESMTP helo=<x>".
    inst = mailsys_instance
    spec = table(inst, "etrn_access", "allowed.example OK\n")
    port = h.start(inst, {"smtpd_etrn_restrictions": f"check_etrn_access {spec}, reject"})
    with h.session(port) as s:
        s.ehlo("x")
        assert s.docmd("ETRN", "example.com") == (
            554, b"5.7.1 <example.com>: Etrn command rejected: Access denied")
        # Allowed, but no flush service runs here.
        assert s.docmd("ETRN", "allowed.example") == (458, b"Unable to queue messages")
    log = inst.wait_log("unable to talk to fast flush service")
    assert ("NOQUEUE: reject: ETRN from localhost[127.0.0.1]: 554 5.7.1 <example.com>: Etrn "
            "command rejected: Access denied; proto=ESMTP helo=<x>") in log


@pytest.mark.parametrize("delay_open", ["yes", "no"])
def test_smtpd_delay_open_until_valid_rcpt(mailsys_instance, delay_open):
    """Postfix 3.7 with no: each accepted MAIL logs "QID: client=unknown[127.0.0.1]"
    with a new queue ID, a refused recipient "QID: reject: RCPT from ..." under it;
    with yes (the default) the ID comes at the first accepted RCPT."""
    inst = mailsys_instance
    spec = table(inst, "rcpt_access", "c@example.test REJECT blocked here\n")
    port = h.start(inst, {"smtpd_delay_open_until_valid_rcpt": delay_open,
                          "smtpd_recipient_restrictions": f"check_recipient_access {spec}"})
    with h.session(port) as s:
        s.ehlo("c.example")
        assert s.mail("a@example.org")[0] == 250
        assert s.rcpt("c@example.test")[0] == 554
        assert s.rset()[0] == 250
        assert s.mail("a@example.org")[0] == 250
        assert s.rcpt("bob@example.test")[0] == 250
        code, text = s.data(h.MESSAGE)
        assert code == 250
    qid = text.decode().rsplit(" ", 1)[1]
    inst.wait_log(f"{qid}: client=localhost[127.0.0.1]")
    inst.wait_log("disconnect from localhost[127.0.0.1]")
    log = inst.log_text()
    clients = re.findall(r"smtpd\[\d+\]: (\w+): client=localhost\[127\.0\.0\.1\]", log)
    reject = re.search(r"smtpd\[\d+\]: (\w+): reject: RCPT from localhost\[127\.0\.0\.1\]: "
                       r"554 5\.7\.1 <c@example\.test>: Recipient address rejected: blocked here", log)
    assert reject is not None
    if delay_open == "no":
        assert len(clients) == 2 and clients[1] == qid and reject.group(1) == clients[0] != qid
    else:
        assert clients == [qid] and reject.group(1) == "NOQUEUE"
