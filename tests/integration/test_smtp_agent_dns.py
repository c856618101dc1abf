"""MX lookups and routing of the smtp agent against a real small DNS server on loopback."""

from __future__ import annotations

import dataclasses
import runpy
import random
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio

from mailsys.routing import NextHop, RouteError
from mailsys.runtime.resolver import DnsError, Resolver
from mailsys.runtime.smtp_agent import TIMEOUT_PARAMS, SmtpAgent, SmtpSettings

# The tests directories are not packages: the shared helpers are loaded by path.
h = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("agent_helpers.py"))))

DnsServer = h.dnsserver.DnsServer
NXDOMAIN, SERVFAIL, TIMEOUT = h.dnsserver.NXDOMAIN, h.dnsserver.SERVFAIL, h.dnsserver.TIMEOUT

ZONE = {
    "pref.test": {"MX": [(30, "c.pref.test"), (10, "a.pref.test"), (20, "b.pref.test")]},
    "a.pref.test": {"A": ["192.0.2.1"]}, "b.pref.test": {"A": ["192.0.2.2"]},
    "c.pref.test": {"A": ["192.0.2.3"], "AAAA": ["2001:db8::3"]},
    "equal.test": {"MX": [(10, "x.equal.test"), (10, "y.equal.test"), (20, "z.equal.test")]},
    "x.equal.test": {"A": ["192.0.2.10"]}, "y.equal.test": {"A": ["192.0.2.11"]},
    "z.equal.test": {"A": ["192.0.2.12"]},
    "nomx.test": {"A": ["192.0.2.20"]},
    "nullmx.test": {"MX": [(0, ".")]},
    "mixed.test": {"MX": [(0, "."), (10, "mx.good.test")]},
    "gone.test": NXDOMAIN,
    "broken.test": SERVFAIL,
    "slow.test": TIMEOUT,
    "lame.test": {"MX": [(10, "nowhere.lame.test")]},
    "nowhere.lame.test": NXDOMAIN,
    "loop.test": {"MX": [(10, "me.loop.test"), (20, "other.loop.test")]},
    "me.loop.test": {"A": ["127.0.0.1"]}, "other.loop.test": {"A": ["192.0.2.30"]},
    "backup.test": {"MX": [(10, "primary.backup.test"), (20, "me.loop.test")]},
    "primary.backup.test": {"A": ["192.0.2.40"]},
    "mxfail.test": {"MX": SERVFAIL, "A": ["192.0.2.50"]},
    "mxfail-me.test": {"MX": SERVFAIL, "A": ["127.0.0.1"]},
}


@pytest.fixture(scope="module")
def dns():
    with DnsServer(ZONE) as server:
        yield server


def make_agent(dns, own=(), seed=None, **kw) -> SmtpAgent:
    t = {name: 5.0 for name in TIMEOUT_PARAMS}
    s = SmtpSettings(helo_name="mx.example.test", timeouts=t, own=frozenset(own), mx_address_limit=0,
                     **kw)

    async def load(qid):
        return h.CONTENT
    return SmtpAgent(s, Resolver([("127.0.0.1", dns.port)], lifetime=0.5), load,
                     rng=random.Random(seed))


def targets(agent, domain, port=25, mx=True):
    return [(t.host, t.address) for t in trio.run(agent.targets, NextHop(domain, port, mx))]


def route_error(agent, domain) -> RouteError:
    with pytest.raises(RouteError) as e:
        trio.run(agent.targets, NextHop(domain, 25))
    return e.value


def test_mx_hosts_in_preference_order_with_their_addresses(dns):
    assert targets(make_agent(dns), "pref.test") == [
        ("a.pref.test", "192.0.2.1"), ("b.pref.test", "192.0.2.2"),
        ("c.pref.test", "192.0.2.3"), ("c.pref.test", "2001:db8::3")]


def test_equal_preference_is_shuffled_and_worse_mx_stays_last(dns):
    seen = set()
    for seed in range(20):
        order = targets(make_agent(dns, seed=seed), "equal.test")
        assert order[-1] == ("z.equal.test", "192.0.2.12")
        seen.add(tuple(order[:2]))
    assert seen == {(("x.equal.test", "192.0.2.10"), ("y.equal.test", "192.0.2.11")),
                    (("y.equal.test", "192.0.2.11"), ("x.equal.test", "192.0.2.10"))}


def test_no_mx_falls_back_to_the_address_of_the_domain(dns):
    assert targets(make_agent(dns), "nomx.test") == [("nomx.test", "192.0.2.20")]


def test_bracketed_next_hop_skips_the_mx_lookup(dns):
    dns.queries.clear()
    assert targets(make_agent(dns), "a.pref.test", mx=False) == [("a.pref.test", "192.0.2.1")]
    assert ("a.pref.test", "MX") not in dns.queries


def test_null_mx_bounces(dns):
    e = route_error(make_agent(dns), "nullmx.test")
    assert (e.status, e.reason) == ("5.1.0", "Domain nullmx.test does not accept mail (nullMX)")
    # Postfix 3.7: "dsn=5.1.0, status=bounced (Domain mixed.test does not
    # accept mail (nullMX))" for a "." beside a real exchanger too.
    e = route_error(make_agent(dns), "mixed.test")
    assert (e.status, e.reason) == ("5.1.0", "Domain mixed.test does not accept mail (nullMX)")


def test_nxdomain_bounces_with_postfix_text(dns):
    e = route_error(make_agent(dns), "gone.test")
    assert e.status == "5.1.2"
    assert e.reason == ("Host or domain name not found. Name service error for name=gone.test "
                        "type=MX: Host not found")


def test_servfail_and_timeout_defer(dns):
    for name in ("broken.test", "slow.test"):
        e = route_error(make_agent(dns), name)
        assert e.status == "4.4.3"
        assert e.reason == (f"Host or domain name not found. Name service error for name={name} "
                            "type=MX: Host not found, try again")


def test_mx_host_without_address(dns):
    e = route_error(make_agent(dns), "lame.test")
    assert e.status == "5.4.4"
    assert "name=nowhere.lame.test type=A: Host not found" in e.reason


def test_loop_detection_drops_self_and_worse_mx(dns):
    own = {("127.0.0.1", 25)}
    e = route_error(make_agent(dns, own), "loop.test")
    assert (e.status, e.reason) == ("5.4.6", "mail for loop.test loops back to myself")
    # As a backup MX we deliver to the better primary only.
    assert targets(make_agent(dns, own), "backup.test") == [("primary.backup.test", "192.0.2.40")]
    # Our address on another port is not us.
    assert targets(make_agent(dns, own), "loop.test", port=2526)[0] == ("me.loop.test", "127.0.0.1")


def test_deliver_reports_dns_failures_per_recipient(dns):
    with h.capture_logs() as logs:
        status = trio.run(make_agent(dns).deliver, h.request("gone.test", "a@gone.test", "b@gone.test"))
    assert [(r.status, r.dsn, r.relay) for r in status.results] == [("bounced", "5.1.2", "none")] * 2
    lines = h.lines(logs, "status")
    assert lines[0].startswith("4F2A1C3B7D: to=<a@gone.test>, relay=none, delay=")
    assert lines[0].endswith(", dsn=5.1.2, status=bounced (Host or domain name not found. "
                             "Name service error for name=gone.test type=MX: Host not found)")


def test_resolver_errors_directly(dns):
    r = Resolver([("127.0.0.1", dns.port)], lifetime=0.5)
    assert trio.run(r.mx, "nomx.test") == []
    assert trio.run(r.mx, "nullmx.test") == [(0, "")]
    with pytest.raises(DnsError) as e:
        trio.run(r.addresses, "gone.test")
    assert not e.value.temporary
    assert trio.run(r.addresses, "192.0.2.99") == ["192.0.2.99"]


def test_native_host_lookup_after_dns(dns):
    # "localhost" is in /etc/hosts, not in the test zone.
    r = Resolver([("127.0.0.1", dns.port)], lifetime=0.5, ipv6=False, host_lookup=("dns", "native"))
    assert trio.run(r.addresses, "localhost") == ["127.0.0.1"]
    dns_only = Resolver([("127.0.0.1", dns.port)], lifetime=0.5, ipv6=False)
    with pytest.raises(DnsError):
        trio.run(dns_only.addresses, "localhost")


def test_without_mx_lookups_the_domain_is_the_host(dns):
    a = make_agent(dns)
    a.settings = dataclasses.replace(a.settings, mx_lookups=False)
    dns.queries.clear()
    assert targets(a, "nomx.test") == [("nomx.test", "192.0.2.20")]
    assert ("nomx.test", "MX") not in dns.queries


def test_failed_mx_lookup_defers_unless_ignore_mx_lookup_error(dns):
    # Postfix smtp_addr.c smtp_domain_addr(): a failed MX lookup sets 4.4.3
    # and, with ignore_mx_lookup_error, smtp_host_addr() looks up the name's
    # own addresses as for no MX at all.
    e = route_error(make_agent(dns), "mxfail.test")
    assert (e.status, e.reason) == ("4.4.3", "Host or domain name not found. Name service error "
                                    "for name=mxfail.test type=MX: Host not found, try again")
    ignoring = make_agent(dns, ignore_mx_lookup_error=True)
    assert targets(ignoring, "mxfail.test") == [("mxfail.test", "192.0.2.50")]
    # Only the MX lookup's failure is ignored: an address lookup that fails still counts.
    e = route_error(ignoring, "broken.test")
    assert e.status == "4.4.3" and "name=broken.test type=A" in e.reason
    # The name's own address being ours is a loop, as smtp_host_addr() says.
    e = route_error(make_agent(dns, {("127.0.0.1", 25)}, ignore_mx_lookup_error=True),
                    "mxfail-me.test")
    assert (e.status, e.reason) == ("5.4.6", "mail for mxfail-me.test loops back to myself")
