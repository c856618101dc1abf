"""check_reverse_client_hostname_{mx,ns,a}_access and
check_reverse_client_hostname_access through a real master and a real DNS
server, the reverse name set by XCLIENT REVERSE_NAME.

The replies and warnings are those Postfix 3.7.11 gave for the same zone and
table (a private instance in a network namespace whose resolv.conf pointed
at tests/dnsserver.py on 127.0.0.1:53, XCLIENT NAME=[UNAVAILABLE]
REVERSE_NAME=... ADDR=127.0.0.1).
"""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.integration

h = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("smtpd_helpers.py"))))
# The check_sender_*_access test's zone (and tests/dnsserver.py's DnsServer).
sa = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("test_smtpd_server_access.py"))))

ZONE = {**sa.ZONE, "clean.example": {**sa.ZONE["clean.example"], "A": ["192.0.2.202"]}}
ACCESS = ("mx.bad.example REJECT\n192.0.2.30 REJECT\nmx.okhost.example OK\n"
          "ns1.badns.example REJECT\n198.51.100 REJECT\nptr.example REJECT\nokptr.example OK\n")
DENIED = "554 5.7.1 <{0}>: Unverified Client host rejected: Access denied"
CONFIG_ERROR, OK = sa.CONFIG_ERROR, sa.OK


def replies(port: int, names) -> dict[str, str]:
    """For each "[verified/]reverse" name, the RCPT reply after XCLIENT."""
    got = {}
    for spec in names:
        name, _, reverse = spec.rpartition("/")
        with h.session(port) as s:
            s.ehlo("proxy.example")
            code, _ = s.docmd(f"XCLIENT NAME={name or '[UNAVAILABLE]'} REVERSE_NAME={reverse} "
                              f"ADDR=127.0.0.1")
            assert code == 220
            s.ehlo("c.example")
            s.mail("s@example.org")
            code, text = s.rcpt("r@example.net")
            got[spec] = f"{code} {text.decode()}"
    return got


def test_reverse_client_hostname_server_access_with_real_dns(mailsys_instance):
    inst = mailsys_instance
    path = inst.config_dir / "servers"
    path.write_text(ACCESS)
    spec = f"texthash:{path}"
    with sa.DnsServer(ZONE) as dns:
        port = h.start(inst, {
            "dns_nameservers": dns.spec, "smtpd_authorized_xclient_hosts": "127.0.0.0/8",
            "smtpd_client_restrictions":
                f"check_reverse_client_hostname_mx_access {spec}, "
                f"check_reverse_client_hostname_ns_access {spec}, "
                f"check_reverse_client_hostname_a_access {spec}, "
                f"check_reverse_client_hostname_access {spec}"})
        expect = {
            "bad.example": DENIED,                # MX host name
            "nomx.example": DENIED,               # no MX: itself, by address
            "sub.ns.example": DENIED,             # the parent's name server
            "net.example": DENIED,                # its address's network
            "host.ptr.example": DENIED,           # check_reverse_client_hostname_access
            "okmx.example": CONFIG_ERROR,
            "clean.example": OK,
            "fail.example": OK,
            "nx.example": OK,
            "[UNAVAILABLE]": OK,                  # "unknown": nothing looked up
            "bad.example/clean.example": OK,      # the verified name is not what counts
        }
        expect = {n: reply.format(n) for n, reply in expect.items()}
        assert replies(port, expect) == expect
    inst.wait_log("warning: restriction check_reverse_client_hostname_mx_access returns OK "
                  "for okmx.example")
    inst.wait_log("warning: Unable to look up MX host for fail.example: Host not found, try again")
    inst.wait_log("warning: Unable to look up NS host for fail.example: Host not found, try again")
    inst.wait_log("warning: Unable to look up MX host nx.example for Unverified Client host "
                  "nx.example: Name or service not known")
    inst.wait_log("warning: Unable to look up NS host for nx.example: Host not found")
    inst.wait_log("NOQUEUE: reject: RCPT from unknown[127.0.0.1]: " + DENIED.format("bad.example"))
