"""check_reverse_client_hostname_access and
check_reverse_client_hostname_{mx,ns,a}_access: the client's PTR name,
verified or not, in the access table.

Postfix 3.7 looks the reverse name up as the check_client_* forms look the
verified name up (the server forms skip "unknown"), answers "<name>:
Unverified Client host rejected: Access denied" and refuses an OK. The
replies are those Postfix 3.7.11 gave for the same zone and table with the
reverse name set by XCLIENT REVERSE_NAME.
"""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest

from mailsys.policy.restrictions import HostRecords, NeedRecords, PolicyContext

t = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("test_server_access.py"))))

REV_DENIED = "554 5.7.1 <{0}>: Unverified Client host rejected: Access denied"


def evaluate(r, reverse_name, client_name="unknown"):
    answers: dict = {}
    asked = []
    ctx = PolicyContext(client_name=client_name, client_addr="127.0.0.1", helo="c.test",
                        sender="s@example.org", recipient="r@example.com",
                        reverse_client_name=reverse_name)
    while True:
        try:
            return r.evaluate_rcpt(ctx, records=lambda kind, name: answers.get((kind, name))), asked
        except NeedRecords as need:
            for q in need.queries:
                asked.append(q)
                answers[q] = t.ZONE.get(q, HostRecords(t.NOT_FOUND))


def client(rtype):
    return {"smtpd_client_restrictions": (f"check_reverse_client_hostname_{rtype}_access", "T")}


@pytest.mark.parametrize("rtype, reverse, reply", [
    ("mx", "bad.example", REV_DENIED),         # its MX host's name
    ("mx", "nomx.example", REV_DENIED),        # no MX: the name itself, by address
    ("mx", "clean.example", ""),
    ("ns", "sub.ns.example", REV_DENIED),      # the parent domain's name server
    ("ns", "clean.example", ""),
    ("a", "ahost.example", REV_DENIED),
    ("a", "net.example", REV_DENIED),
    ("a", "bad.example", ""),                  # no address
    ("mx", "okmx.example", t.CONFIG_ERROR),
])
def test_reverse_client_server_access(rtype, reverse, reply):
    d, _ = evaluate(t.make(client(rtype)), reverse)
    assert d.reply == reply.format(reverse)


def test_the_verified_name_is_not_what_is_looked_up():
    d, _ = evaluate(t.make(client("mx")), "clean.example", client_name="bad.example")
    assert d.accepted
    d, _ = evaluate(t.make({"smtpd_client_restrictions": ("check_client_mx_access", "T")}),
                    "clean.example", client_name="bad.example")
    assert d.reply == "554 5.7.1 <bad.example[127.0.0.1]>: Client host rejected: Access denied"


def test_nx_reverse_name_warns_with_the_reverse_name():
    d, _ = evaluate(t.make(client("mx")), "nx.example")
    assert d.accepted
    assert t.warnings(d) == ["Unable to look up MX host nx.example for Unverified Client host "
                             "nx.example: Name or service not known"]


def test_postfix_has_no_check_reverse_client_mx_access():
    """Postfix 3.7: warning: unknown smtpd restriction: "check_reverse_client_mx_access"."""
    d, _ = evaluate(t.make({"smtpd_client_restrictions": ("check_reverse_client_mx_access", "T")}),
                    "clean.example")
    assert d.reply == t.CONFIG_ERROR


def test_unknown_reverse_name_asks_nothing():
    for rtype in ("mx", "ns", "a"):
        d, asked = evaluate(t.make(client(rtype)), "unknown")
        assert d.accepted and asked == []


def test_ok_is_refused_with_the_reverse_name():
    d, _ = evaluate(t.make(client("mx")), "okmx.example")
    assert t.warnings(d) == [
        "restriction check_reverse_client_hostname_mx_access returns OK for okmx.example",
        "this is not allowed for security reasons",
        "use DUNNO instead of OK if you want to make an exception"]


def test_reverse_client_hostname_access():
    r = t.make({"smtpd_client_restrictions": ("check_reverse_client_hostname_access", "T")},
               t.Table({"ptr.example": "REJECT", "ok.example": "OK", "127.0.0.1": "REJECT"}))
    d, asked = evaluate(r, "host.ptr.example")
    assert d.reply == REV_DENIED.format("host.ptr.example") and asked == []
    d, _ = evaluate(r, "ok.example")
    assert d.reply == t.CONFIG_ERROR
    assert t.warnings(d)[0] == ("restriction check_reverse_client_hostname_access "
                                "returns OK for ok.example")
    d, _ = evaluate(r, "other.example")
    assert d.reply == REV_DENIED.format("other.example")    # then the address
