"""reject_unknown_helo_hostname over a real DNS server: A, AAAA, then MX.

Postfix 3.7.11 (smtpd_check.c reject_unknown_hostname) in a network
namespace whose resolv.conf pointed at tests/dnsserver.py with this zone and
smtpd_dns_reply_filter answered RCPT (client in mynetworks) and logged:

  amxf.example (A; MX filtered)          250, no warning, asked A only
  af.example (A filtered)                250, warning: af.example: address or
                                         MX lookup error: DNS reply filter drops all results
  nullmx.example (null MX only)          250
  nullmxfail.example (null MX, A SERVFAIL)
      450 4.7.1 <nullmxfail.example>: Helo command rejected: Host not found
  mxfail.example (MX SERVFAIL, A)        250, asked A only
  mxonly.example                         250, asked A, AAAA, MX
  nx.example (NXDOMAIN)                  450 ... Host not found, asked A, AAAA, MX
  fail.example (SERVFAIL)                450 ... Host not found
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio
from structlog.testing import capture_logs

sys.path.insert(0, str(Path(__file__).parent))      # _smtpd_testlib.py (tests/ is no package)
sys.path.insert(0, str(Path(__file__).parents[1]))  # dnsserver.py
from _smtpd_testlib import PARAMS, open_session, trio_test  # noqa: E402
from dnsserver import NXDOMAIN, SERVFAIL, DnsServer  # noqa: E402

pytestmark = pytest.mark.timeout(60)

ZONE = {
    "amxf.example": {"A": ["192.0.2.1"], "MX": [(10, "mx.clean.example")]},
    "af.example": {"A": ["192.0.2.2"]},
    "nullmx.example": {"MX": [(0, ".")]},
    "nullmxfail.example": {"MX": [(0, ".")], "A": SERVFAIL},
    "mxfail.example": {"MX": SERVFAIL, "A": ["192.0.2.3"]},
    "mxonly.example": {"MX": [(10, "mx.clean.example")]},
    "nx.example": NXDOMAIN,
    "fail.example": SERVFAIL,
}
FILTER = "/^amxf\\.example\\. .* MX /  IGNORE\n/^af\\.example\\. .* A /  IGNORE\n"
NOT_FOUND = "450 4.7.1 <{0}>: Helo command rejected: Host not found"
EXPECT = {
    "amxf.example": "250 2.1.5 Ok",
    "af.example": "250 2.1.5 Ok",
    "nullmx.example": "250 2.1.5 Ok",
    "nullmxfail.example": NOT_FOUND,
    "mxfail.example": "250 2.1.5 Ok",
    "mxonly.example": "250 2.1.5 Ok",
    "nx.example": NOT_FOUND,
    "fail.example": NOT_FOUND,
}


@trio_test
async def test_helo_names_as_postfix_looks_them_up(make_config, tmp_path):
    (tmp_path / "filter").write_text(FILTER)
    commands = b"".join(f"EHLO {name}\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<r@example.net>\r\n"
                        f"RSET\r\n".encode() for name in EXPECT)
    with DnsServer(ZONE) as dns:
        cfg = make_config(**PARAMS, dns_nameservers=dns.spec, mynetworks="192.0.2.0/24",
                          smtpd_helo_restrictions="reject_unknown_helo_hostname",
                          smtpd_dns_reply_filter=f"regexp:{tmp_path}/filter")
        with capture_logs() as logs:
            async with trio.open_nursery() as nursery:
                client, _ = await open_session(nursery, cfg)
                await client.send(commands)
                got = await client.replies(4 * len(EXPECT))
                nursery.cancel_scope.cancel()
        queries = list(dns.queries)
    assert dict(zip(EXPECT, got[2::4])) == {n: r.format(n) for n, r in EXPECT.items()}
    warnings = [e["event"] for e in logs if e.get("log_level") == "warning"]
    assert warnings == [
        "af.example: address or MX lookup error: DNS reply filter drops all results"]
    asked = [(n, t) for n, t in queries if n in ("amxf.example", "mxfail.example", "nx.example")]
    assert asked == [("amxf.example", "A"), ("mxfail.example", "A"),
                     ("nx.example", "A"), ("nx.example", "AAAA"), ("nx.example", "MX")]
