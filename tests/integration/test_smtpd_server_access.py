"""check_*_{mx,ns,a}_access through a real master and a real DNS server.

The replies and warnings are those Postfix 3.7 gave for the same zone and
table (a private instance in a network namespace whose resolv.conf pointed
at tests/dnsserver.py on 127.0.0.1:53).
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.integration

h = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("smtpd_helpers.py"))))
sys.path.insert(0, str(Path(__file__).parents[1]))      # tests/dnsserver.py (tests/ is no package)
from dnsserver import NXDOMAIN, SERVFAIL, DnsServer  # noqa: E402

ZONE = {
    "bad.example": {"MX": [(10, "mx.bad.example")]},
    "mx.bad.example": {"A": ["192.0.2.10"]},
    "addr.example": {"MX": [(10, "mx.addr.example")]},
    "mx.addr.example": {"A": ["192.0.2.20"]},
    "nomx.example": {"A": ["192.0.2.30"]},
    "okmx.example": {"MX": [(10, "mx.okhost.example")]},
    "mx.okhost.example": {"A": ["192.0.2.99"]},
    "fail.example": SERVFAIL,
    "nx.example": NXDOMAIN,
    "sub.ns.example": {"A": ["192.0.2.1"]},
    "ns.example": {"NS": ["ns1.badns.example."]},
    "ns1.badns.example": {"A": ["192.0.2.70"]},
    "nullmx.example": {"MX": [(0, ".")]},
    "clean.example": {"MX": [(10, "mx.clean.example")], "NS": ["ns.clean.example."]},
    "mx.clean.example": {"A": ["192.0.2.200"]},
    "ns.clean.example": {"A": ["192.0.2.201"]},
    "net.example": {"A": ["198.51.100.7"]},
}
ACCESS = ("mx.bad.example REJECT\n192.0.2.20 REJECT\n192.0.2.30 REJECT\nmx.okhost.example OK\n"
          "ns1.badns.example REJECT\n198.51.100 REJECT\n192.0.2.40 REJECT\n")
DENIED = "554 5.7.1 <{0}>: Sender address rejected: Access denied"
CONFIG_ERROR = "451 4.3.5 Server configuration error"
OK = "250 2.1.5 Ok"


def sender_replies(port: int, senders) -> dict[str, str]:
    """For each sender, one transaction's RCPT reply (sender restrictions
    are judged at RCPT with smtpd_delay_reject = yes)."""
    got = {}
    with h.session(port) as s:
        s.ehlo("c.example")
        for sender in senders:
            s.mail(sender)
            code, text = s.rcpt("bob@example.test")
            got[sender] = f"{code} {text.decode()}"
            s.rset()
    return got


def test_sender_mx_ns_and_a_access_with_real_dns(mailsys_instance):
    inst = mailsys_instance
    path = inst.config_dir / "servers"
    path.write_text(ACCESS)
    spec = f"texthash:{path}"
    with DnsServer(ZONE) as dns:
        port = h.start(inst, {"dns_nameservers": dns.spec, "smtpd_sender_restrictions":
                              f"check_sender_ns_access {spec}, check_sender_mx_access {spec}, "
                              f"check_sender_a_access {spec}"})
        expect = {
            "a@bad.example": DENIED,              # MX host name
            "a@addr.example": DENIED,             # MX host address
            "a@nomx.example": DENIED,             # no MX: the domain itself
            "a@sub.ns.example": DENIED,           # the parent domain's name server
            "a@net.example": DENIED,              # its own address's network (A)
            "a@[192.0.2.40]": DENIED,             # an address literal
            "a@okmx.example": CONFIG_ERROR,       # OK is not allowed
            "a@fail.example": OK,
            "a@nx.example": OK,
            "a@nullmx.example": OK,
            "a@clean.example": OK,
        }
        expect = {s: reply.format(s) for s, reply in expect.items()}
        assert sender_replies(port, expect) == expect
        assert ("example", "NS") in dns.queries       # nx.example's NS walked up to the top
    inst.wait_log("warning: restriction check_sender_mx_access returns OK for a@okmx.example")
    inst.wait_log("warning: this is not allowed for security reasons")
    inst.wait_log("warning: use DUNNO instead of OK if you want to make an exception")
    inst.wait_log("warning: Unable to look up NS host for fail.example: Host not found, try again")
    inst.wait_log("warning: Unable to look up MX host for fail.example: Host not found, try again")
    inst.wait_log("warning: Unable to look up NS host for a@nx.example: Host not found")
    inst.wait_log("warning: Unable to look up MX host nx.example for Sender address a@nx.example: "
                  "Name or service not known")
    inst.wait_log("NOQUEUE: reject: RCPT from localhost[127.0.0.1]: "
                  + DENIED.format("a@bad.example")
                  + "; from=<a@bad.example> to=<bob@example.test> proto=ESMTP helo=<c.example>")


def test_recipient_and_helo_mx_access_and_the_reply_filter(mailsys_instance):
    inst = mailsys_instance
    path = inst.config_dir / "servers"
    path.write_text(ACCESS)
    spec = f"texthash:{path}"
    rrfilter = inst.config_dir / "rrfilter"
    rrfilter.write_text("/^clean\\.example\\. .* MX /  IGNORE\n")
    with DnsServer(ZONE) as dns:
        port = h.start(inst, {"dns_nameservers": dns.spec,
                              "smtpd_dns_reply_filter": f"regexp:{rrfilter}",
                              "smtpd_helo_restrictions": f"check_helo_mx_access {spec}",
                              "smtpd_recipient_restrictions": f"check_recipient_mx_access {spec}"})
        with h.session(port) as s:
            s.ehlo("clean.example")
            s.mail("s@example.org")
            assert s.rcpt("b@bad.example") == (
                554, b"5.7.1 <b@bad.example>: Recipient address rejected: Access denied")
            assert s.rcpt("c@okmx.example") == (451, b"4.3.5 Server configuration error")
            assert s.rcpt("bob@example.test")[0] == 250
        with h.session(port) as s:
            s.ehlo("bad.example")
            s.mail("s@example.org")
            assert s.rcpt("bob@example.test") == (
                554, b"5.7.1 <bad.example>: Helo command rejected: Access denied")
    inst.wait_log("warning: Unable to look up MX host for clean.example: DNS reply filter policy")
    inst.wait_log("warning: restriction check_recipient_mx_access returns OK for c@okmx.example")
