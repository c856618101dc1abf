"""check_*_{mx,ns,a}_access in the pure evaluation: which servers are looked
up in which order, the first key found deciding, OK refused, DNS failures.

The expected replies and warnings are those Postfix 3.7 gave for the same
DNS data (a private instance whose resolv.conf pointed at tests/dnsserver.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mailsys.policy.restrictions import (DnsStatus, HostRecords, NeedRecords, PolicyContext,
                                         Restrictions)

sys.path.insert(0, str(Path(__file__).parents[1]))      # tests/memtable.py (tests/ is no package)
from memtable import Table  # noqa: E402

EXISTS, NOT_FOUND, TEMPFAIL = DnsStatus.EXISTS, DnsStatus.NOT_FOUND, DnsStatus.TEMPFAIL
ACCEPTED = ""
DENIED = "554 5.7.1 <{0}>: Sender address rejected: Access denied"
CONFIG_ERROR = "451 4.3.5 Server configuration error"


ACCESS = {"mx.bad.example": "REJECT", "192.0.2.20": "REJECT", "192.0.2.30": "REJECT",
          "mx.okhost.example": "OK", "ns1.badns.example": "REJECT", "192.0.2.50": "REJECT",
          "198.51.100": "REJECT", "parent.example": "REJECT", "mx.dunno.example": "DUNNO",
          "192.0.2.40": "REJECT"}


def mx(*hosts):
    return HostRecords(EXISTS, tuple((10, host) for host in hosts))


def found(*records):
    return HostRecords(EXISTS, tuple(records))


ZONE = {
    ("MX", "bad.example"): mx("mx.bad.example"),
    ("ADDR", "mx.bad.example"): found("192.0.2.10"),
    ("MX", "addr.example"): mx("mx.addr.example"),
    ("ADDR", "mx.addr.example"): found("192.0.2.20"),
    ("MX", "nomx.example"): HostRecords(NOT_FOUND, no_data=True),
    ("ADDR", "nomx.example"): found("192.0.2.30"),
    ("MX", "okmx.example"): mx("mx.okhost.example"),
    ("MX", "fail.example"): HostRecords(TEMPFAIL),
    ("NS", "fail.example"): HostRecords(TEMPFAIL),
    ("ADDR", "fail.example"): HostRecords(TEMPFAIL),
    ("NS", "sub.ns.example"): HostRecords(NOT_FOUND, no_data=True),
    ("NS", "ns.example"): found("ns1.badns.example"),
    ("ADDR", "ahost.example"): found("192.0.2.50"),
    ("ADDR", "net.example"): found("198.51.100.7"),
    ("MX", "parent.example"): mx("mx.sub.parent.example"),
    ("MX", "dunno.example"): mx("mx.dunno.example"),
    ("ADDR", "mx.dunno.example"): found("192.0.2.10"),
    ("MX", "nullmx.example"): HostRecords(NOT_FOUND, no_data=True, null_mx=True),
    ("MX", "nohost.example"): mx("gone.example"),
    ("MX", "clean.example"): mx("mx.clean.example"),
    ("ADDR", "mx.clean.example"): found("192.0.2.200"),
    ("NS", "clean.example"): found("ns.clean.example"),
    ("ADDR", "ns.clean.example"): found("192.0.2.201"),
    ("ADDR", "bad.example"): HostRecords(NOT_FOUND, no_data=True),
    ("MX", "filtered.example"): HostRecords(TEMPFAIL, filtered=True),
}


def make(restrictions, table=None, **over):
    table = Table(ACCESS) if table is None else table
    settings = {"mydestination": ("example.com",), "local_recipient_maps": (), **over}
    for name, value in restrictions.items():
        settings[name] = tuple(v if v != "T" else "texthash:/access" for v in value)
    return Restrictions(None, lambda spec, cfg: table, overrides=settings)


def evaluate(r, zone=ZONE, sender="a@bad.example", recipient="r@example.com",
             helo="client.test", client_name="unknown"):
    """evaluate_rcpt, answering NeedRecords from zone as smtpd would: the
    decision and the queries asked, in order."""
    answers: dict = {}
    asked = []
    ctx = PolicyContext(client_name=client_name, client_addr="127.0.0.1", helo=helo,
                        sender=sender, recipient=recipient)
    while True:
        try:
            return r.evaluate_rcpt(ctx, records=lambda kind, name: answers.get((kind, name))), asked
        except NeedRecords as need:
            assert need.queries and all(q not in answers for q in need.queries)
            for q in need.queries:
                asked.append(q)
                answers[q] = zone.get(q, HostRecords(NOT_FOUND))


def warnings(d):
    return [n.text for n in d.notes if n.action == "warning"]


SENDER_MX = {"smtpd_sender_restrictions": ("check_sender_mx_access", "T")}
SENDER_NS = {"smtpd_sender_restrictions": ("check_sender_ns_access", "T")}
SENDER_A = {"smtpd_sender_restrictions": ("check_sender_a_access", "T")}


@pytest.mark.parametrize("sender, reply", [
    ("a@bad.example", DENIED),                 # the MX host's name
    ("a@addr.example", DENIED),                # the MX host's address
    ("a@nomx.example", DENIED),                # no MX: the domain is its own MX host
    ("a@ahost.example", DENIED),
    ("a@parent.example", DENIED),              # a parent domain of the MX host
    ("a@dunno.example", ACCEPTED),             # DUNNO found first: its address is not looked up
    ("a@nullmx.example", ACCEPTED),
    ("a@[192.0.2.40]", DENIED),                # an address literal is its own MX host
    ("a@clean.example", ACCEPTED),
    ("", ACCEPTED),
    ("a@okmx.example", CONFIG_ERROR),
])
def test_sender_mx_access(sender, reply):
    d, _ = evaluate(make(SENDER_MX), sender=sender)
    assert d.reply == reply.format(sender)


def test_the_host_name_is_asked_before_its_addresses_are_looked_up():
    t = Table(ACCESS)
    d, asked = evaluate(make(SENDER_MX, t), sender="a@bad.example")
    assert d.reply == DENIED.format("a@bad.example")
    assert asked == [("MX", "bad.example")]
    assert t.keys == ["mx.bad.example"]
    t = Table(ACCESS)
    evaluate(make(SENDER_MX, t), sender="a@clean.example")
    # (each NeedRecords round evaluates again from the start: the last round)
    assert t.keys[-7:] == ["mx.clean.example", "clean.example", "example", "192.0.2.200", "192.0.2",
                      "192.0", "192"]


def test_ok_is_refused_with_postfix_warnings():
    d, _ = evaluate(make(SENDER_MX), sender="a@okmx.example")
    assert d.reply == CONFIG_ERROR
    assert warnings(d) == ["restriction check_sender_mx_access returns OK for a@okmx.example",
                           "this is not allowed for security reasons",
                           "use DUNNO instead of OK if you want to make an exception"]


@pytest.mark.parametrize("sender, warning", [
    ("a@fail.example", "Unable to look up MX host for fail.example: Host not found, try again"),
    ("a@nx.example", "Unable to look up MX host nx.example for Sender address a@nx.example: "
                     "Name or service not known"),
    ("a@nohost.example", "Unable to look up MX host gone.example for Sender address "
                         "a@nohost.example: Name or service not known"),
    ("a@filtered.example", "Unable to look up MX host for filtered.example: "
                           "DNS reply filter policy"),
])
def test_dns_failures_decide_nothing_and_warn(sender, warning):
    d, _ = evaluate(make(SENDER_MX), sender=sender)
    assert d.accepted
    assert warnings(d) == [warning]


@pytest.mark.parametrize("sender, reply, warning", [
    ("a@sub.ns.example", DENIED, None),        # no NS: the parent's name servers
    ("a@clean.example", ACCEPTED, None),
    ("a@[192.0.2.40]", ACCEPTED, None),        # an address literal has no NS host
    ("a@nx.example", ACCEPTED, "Unable to look up NS host for a@nx.example: Host not found"),
    ("a@fail.example", ACCEPTED,
     "Unable to look up NS host for fail.example: Host not found, try again"),
])
def test_sender_ns_access(sender, reply, warning):
    d, asked = evaluate(make(SENDER_NS), sender=sender)
    assert d.reply == reply.format(sender)
    assert warnings(d) == ([warning] if warning else [])


def test_ns_lookups_walk_up_to_the_first_parent_with_records():
    _, asked = evaluate(make(SENDER_NS), sender="a@sub.ns.example")
    assert asked == [("NS", "sub.ns.example"), ("NS", "ns.example")]
    _, asked = evaluate(make(SENDER_NS), sender="a@a.nx.example")
    assert asked == [("NS", "a.nx.example"), ("NS", "nx.example"), ("NS", "example")]


@pytest.mark.parametrize("sender, reply", [
    ("a@ahost.example", DENIED),
    ("a@net.example", DENIED),                 # a parent network of the address
    ("a@bad.example", ACCEPTED),               # no name lookup for A, and no address
    ("a@[192.0.2.40]", DENIED),
    ("a@nx.example", ACCEPTED),
    ("a@fail.example", ACCEPTED),
])
def test_sender_a_access(sender, reply):
    d, _ = evaluate(make(SENDER_A), sender=sender)
    assert d.reply == reply.format(sender)
    assert warnings(d) == []                   # A failures are silent


def test_recipient_helo_and_client_mx_access():
    d, _ = evaluate(make({"smtpd_recipient_restrictions": ("check_recipient_mx_access", "T")}),
                    sender="s@clean.example", recipient="b@bad.example")
    assert d.reply == "554 5.7.1 <b@bad.example>: Recipient address rejected: Access denied"
    d, _ = evaluate(make({"smtpd_helo_restrictions": ("check_helo_mx_access", "T")}),
                    helo="bad.example")
    assert d.reply == "554 5.7.1 <bad.example>: Helo command rejected: Access denied"
    d, _ = evaluate(make({"smtpd_helo_restrictions": ("check_helo_mx_access", "T")}),
                    helo="okmx.example")
    assert d.reply == CONFIG_ERROR
    assert warnings(d)[0] == "restriction check_helo_mx_access returns OK for okmx.example"
    client = {"smtpd_client_restrictions": ("check_client_mx_access", "T")}
    d, _ = evaluate(make(client), client_name="host.bad.example")
    assert d.accepted                          # host.bad.example has no MX of its own...
    d, _ = evaluate(make(client), client_name="bad.example")
    assert d.reply == ("554 5.7.1 <unknown[127.0.0.1]>: Client host rejected: Access denied"
                       .replace("unknown", "bad.example"))
    d, asked = evaluate(make(client), client_name="unknown")
    assert d.accepted and asked == []


def test_other_checks_are_not_confused_with_these():
    """check_sender_access still looks the sender up, not its MX hosts."""
    t = Table({"a@bad.example": "REJECT"})
    d, asked = evaluate(make({"smtpd_sender_restrictions": ("check_sender_access", "T")}, t),
                        sender="a@bad.example")
    assert d.reply == DENIED.format("a@bad.example")
    assert asked == []
    t = Table({"a@bad.example": "REJECT"})
    d, asked = evaluate(make(SENDER_MX, t), sender="a@bad.example")
    assert d.accepted and asked == [("MX", "bad.example"), ("ADDR", "mx.bad.example")]
