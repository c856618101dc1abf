"""permit_mx_backup in the pure evaluation: the MX rules, NeedRecords, temporary failures."""

from __future__ import annotations

import pytest

from mailsys.policy.restrictions import (DnsStatus, HostRecords, NeedRecords, PolicyContext,
                                         Restrictions)

EXISTS, NOT_FOUND, TEMPFAIL = DnsStatus.EXISTS, DnsStatus.NOT_FOUND, DnsStatus.TEMPFAIL
ME = "mx.example.test"             # in mydestination
PRIMARY = "mx1.remote.example"
RELAY_DENIED = "554 5.7.1 <bob@remote.example>: Relay access denied"


def make(**over):
    settings = {"myhostname": ME, "mydestination": (ME, "example.test"),
                "relay_domains": ("relayed.example",),
                "inet_interfaces": ("127.0.0.1",), "local_recipient_maps": (),
                "mynetworks": ("192.168.0.0/16",),
                "smtpd_relay_restrictions": ("permit_mx_backup", "reject_unauth_destination"),
                **over}
    return Restrictions(None, lambda spec, cfg: None, overrides=settings)


def evaluate(r, zone, recipient="bob@remote.example"):
    """evaluate_rcpt, answering NeedRecords from zone as smtpd would; the
    decision and the rounds of queries asked."""
    found: dict = {}
    rounds = []
    ctx = PolicyContext(client_name="unknown", client_addr="198.51.100.7", helo="c.example",
                        sender="s@example.org", recipient=recipient)
    while True:
        try:
            return r.evaluate_rcpt(ctx, records=lambda kind, name: found.get((kind, name))), rounds
        except NeedRecords as need:
            assert need.queries and all(q not in found for q in need.queries)
            rounds.append(need.queries)
            for q in need.queries:
                found[q] = zone.get(q, HostRecords(NOT_FOUND))


def mx(*pairs):
    return HostRecords(EXISTS, tuple(pairs))


def addrs(*found):
    return HostRecords(EXISTS, tuple(found))


ZONE = {("MX", "remote.example"): mx((10, PRIMARY), (20, ME)),
        ("ADDR", PRIMARY): addrs("192.0.2.1")}


def test_a_backup_mx_by_name_is_permitted():
    d, rounds = evaluate(make(), ZONE)
    assert d.accepted
    assert rounds == [(("MX", "remote.example"),), (("ADDR", PRIMARY),)]


def test_a_backup_mx_by_address_is_permitted():
    zone = {("MX", "remote.example"): mx((10, PRIMARY), (20, "backup.example.net")),
            ("ADDR", PRIMARY): addrs("192.0.2.1"), ("ADDR", "backup.example.net"): addrs("127.0.0.1")}
    assert evaluate(make(), zone)[0].accepted


def test_all_hosts_of_a_preference_are_asked_for_in_one_round():
    zone = {("MX", "remote.example"): mx((10, "b.example"), (10, "a.example"), (20, "c.example"),
                                         (30, "d.example")),
            ("ADDR", "d.example"): addrs("127.0.0.1")}
    d, rounds = evaluate(make(), zone)
    assert d.accepted
    assert rounds == [(("MX", "remote.example"),), (("ADDR", "b.example"), ("ADDR", "a.example")),
                      (("ADDR", "c.example"), ("ADDR", "d.example"))]


@pytest.mark.parametrize("zone", [
    {("MX", "remote.example"): mx((10, ME), (20, "backup.example.net"))},        # we are primary
    {("MX", "remote.example"): mx((10, PRIMARY), (10, ME), (20, "x.example"))},  # one of the primaries
    {("MX", "remote.example"): mx((10, PRIMARY), (20, "backup.example.net"))},   # not listed
    {("MX", "remote.example"): mx((10, "x.example."), (10, "127.0.0.1.example"))},
    {("MX", "remote.example"): HostRecords(NOT_FOUND, no_data=True)},           # no MX, or a null MX
    {("MX", "remote.example"): HostRecords(NOT_FOUND)},                         # NXDOMAIN
], ids=["primary", "among-primaries", "not-listed", "one-level", "no-mx", "nxdomain"])
def test_not_permitted(zone):
    answer = zone[("MX", "remote.example")]
    for _, host in answer.records:          # every other host resolves, not to us
        zone.setdefault(("ADDR", host), addrs("203.0.113.5"))
    assert evaluate(make(), zone)[0].reply == RELAY_DENIED


def test_a_primary_named_with_a_trailing_dot_is_still_us():
    zone = {("MX", "remote.example"): mx((10, ME + "."), (20, "backup.example.net"))}
    assert evaluate(make(), zone)[0].reply == RELAY_DENIED


@pytest.mark.parametrize("recipient", ["bob@example.test", "bob@relayed.example", "bob"])
def test_authorized_destinations_are_permitted_without_lookups(recipient):
    d, rounds = evaluate(make(), {}, recipient)
    assert d.accepted and rounds == []


@pytest.mark.parametrize("recipient", ["bob%remote.example@relayed.example",
                                       "bob@[192.0.2.9]"])
def test_routed_addresses_and_literals_are_not_permitted(recipient):
    d, rounds = evaluate(make(), ZONE, recipient)
    assert d.reply.startswith("554 5.7.1 ") and rounds == []


@pytest.mark.parametrize("networks, primary_addrs, accepted", [
    (("192.0.2.0/24",), ("192.0.2.1",), True),
    (("192.0.2.0/24",), ("192.0.2.1", "198.51.100.1"), False),      # every address must match
    (("198.51.100.0/24",), ("192.0.2.1",), False),
    (("remote.example",), ("192.0.2.1",), True),                    # a parent domain matches the name
])
def test_permit_mx_backup_networks_restricts_the_primaries(networks, primary_addrs, accepted):
    zone = dict(ZONE)
    zone["ADDR", PRIMARY] = addrs(*primary_addrs)
    d, _ = evaluate(make(permit_mx_backup_networks=networks), zone)
    assert d.accepted is accepted
    if not accepted:
        assert d.reply == RELAY_DENIED


def test_a_temporary_mx_failure_defers_a_later_reject():
    d, _ = evaluate(make(), {("MX", "remote.example"): HostRecords(TEMPFAIL)})
    assert d.reply == ("450 4.4.4 <bob@remote.example>: Recipient address rejected: "
                       "Unable to look up mail exchanger information: Host not found, try again")


def test_a_temporary_failure_does_not_stop_a_permit():
    zone = dict(ZONE)
    zone["ADDR", PRIMARY] = HostRecords(TEMPFAIL)
    assert evaluate(make(), zone)[0].accepted


@pytest.mark.parametrize("primary, reply", [
    (HostRecords(TEMPFAIL), "Unable to look up mail exchanger host mx1.remote.example: "
                            "Temporary failure in name resolution"),
    (HostRecords(NOT_FOUND), "Unable to look up mail exchanger host mx1.remote.example: "
                             "Name or service not known"),
    (HostRecords(NOT_FOUND, no_data=True), "Unable to look up mail exchanger host "
                                           "mx1.remote.example: No address associated with hostname"),
])
def test_the_first_lookup_failure_is_the_deferral(primary, reply):
    zone = dict(ZONE)
    zone["ADDR", PRIMARY] = primary
    d, _ = evaluate(make(permit_mx_backup_networks=("192.0.2.0/24",)), zone)
    assert d.reply == f"450 4.4.4 <bob@remote.example>: Recipient address rejected: {reply}"


def test_a_primary_that_cannot_be_checked_against_the_networks_is_not_permitted():
    zone = {("MX", "remote.example"): mx((10, PRIMARY), (10, "mx2.remote.example"), (20, ME)),
            ("ADDR", PRIMARY): addrs("192.0.2.1"),
            ("ADDR", "mx2.remote.example"): HostRecords(NOT_FOUND, no_data=True)}
    d, _ = evaluate(make(permit_mx_backup_networks=("192.0.2.0/24",)), zone)
    assert d.reply == ("450 4.4.4 <bob@remote.example>: Recipient address rejected: Unable to "
                       "look up mail exchanger host mx2.remote.example: No address associated "
                       "with hostname")


def test_an_earlier_deferral_is_kept():
    zone = {("MX", "remote.example"): HostRecords(TEMPFAIL)}
    r = make(smtpd_relay_restrictions=("defer_if_reject", "permit_mx_backup",
                                       "reject_unauth_destination"))
    assert evaluate(r, zone)[0].reply == ("450 4.7.0 <bob@remote.example>: Recipient address "
                                          "rejected: defer_if_reject requested")


def test_the_dns_dry_run_looks_up_no_records():
    r = make(smtpd_relay_restrictions=("permit_mx_backup", "reject_unknown_recipient_domain",
                                       "reject_unauth_destination"))
    ctx = PolicyContext(client_name="unknown", client_addr="198.51.100.7",
                        sender="s@example.org", recipient="bob@remote.example")
    assert r.domains_to_resolve(ctx) == ("remote.example",)


def test_permit_mx_backup_networks_is_a_known_parameter(tmp_path):
    from mailsys.config import load
    (tmp_path / "main.cf").write_text("permit_mx_backup_networks = 192.0.2.0/24, remote.example\n"
                                      "mydestination = mx.example.test\n")
    cfg = load(tmp_path)
    assert cfg.warnings == ()                       # no "unused parameter"
    r = Restrictions.from_config(cfg, lambda spec, cfg: None)
    assert r.mx_backup_networks.match("mx1.remote.example", "198.51.100.1")
    assert r.mx_backup_networks.match("unknown", "192.0.2.7")
    assert not r.mx_backup_networks.match("other.example", "198.51.100.1")
