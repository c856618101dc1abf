"""Routing: next-hop syntax, address classes, transport_maps, MX order, null MX, loops."""

import itertools
import random
from collections import Counter
from dataclasses import replace

import pytest

from mailsys.config import load
from mailsys.config.tables import DictTable, open_table
from mailsys.routing import (
    AddressClass, BadNextHop, DomainSet, MxAddress, MxHost, NextHop, Route, RouteError,
    RoutingSettings, drop_self, error_status, mx_hosts, parse_lmtp_nexthop, parse_nexthop,
    parse_nexthops, resolve, resolved_address,
    transport_lookup,
)

L, A, V, R, D = (AddressClass.LOCAL, AddressClass.ALIAS, AddressClass.VIRTUAL,
                 AddressClass.RELAY, AddressClass.DEFAULT)


def entries(pairs: dict[str, str]) -> DictTable:
    return DictTable("inline:test", {k.lower(): v for k, v in pairs.items()})


BASE = RoutingSettings(
    myhostname="mx.example.com",
    mydestination=DomainSet.of(["mx.example.com", "localhost.example.com", "localhost"]),
    virtual_alias_domains=DomainSet.of(["alias.example"]),
    virtual_mailbox_domains=DomainSet.of(["example.com", "virt.example"]),
    relay_domains=DomainSet.of(["relayed.example"], parent=True),
    local_transport="local:mx.example.com",
    own_addresses=frozenset({"192.0.2.25", "2001:db8::25"}),
)


# -- next-hop syntax ------------------------------------------------------------

@pytest.mark.parametrize("text, host, port, mx", [
    ("example.com", "example.com", 25, True),
    ("Example.COM.", "example.com", 25, True),
    ("example.test:2526", "example.test", 2526, True),
    ("example.test:", "example.test", 25, True),
    ("[mail.example.com]", "mail.example.com", 25, False),
    ("[mail.example.com]:587", "mail.example.com", 587, False),
    ("[192.0.2.1]", "192.0.2.1", 25, False),
    ("[192.0.2.1]:2526", "192.0.2.1", 2526, False),
    ("[::1]:25", "::1", 25, False),
    ("[::1]", "::1", 25, False),
    ("[ipv6:2001:DB8:0::1]:2526", "2001:db8::1", 2526, False),
    ("[IPv6:::1]", "::1", 25, False),
    ("example.test:smtp", "example.test", 25, True),
    ("  [127.0.0.1]:2525  ", "127.0.0.1", 2525, False),
    ("bücher.example", "bücher.example", 25, True),
])
def test_parse_nexthop(text, host, port, mx):
    assert parse_nexthop(text) == NextHop(host, port, mx)


@pytest.mark.parametrize("text", [
    "", "[]", "[192.0.2.1", "[192.0.2.1]x", "[192.0.2.1]:0", "[192.0.2.1]:65536",
    "example.com:no-such-service-here", "2001:db8::1", "[2001:db8::zz]", "bad host", "-x.example",
    "a..b", "[a.example]:25:25",
])
def test_bad_nexthop(text):
    with pytest.raises(BadNextHop):
        parse_nexthop(text)


def test_default_port_and_round_trip():
    assert parse_nexthop("[gw.example]", default_port=587) == NextHop("gw.example", 587, False)
    for text in ["example.com", "example.test:2526", "[192.0.2.1]", "[::1]:2526",
                 "[mail.example.com]:587"]:
        assert str(parse_nexthop(text)) == text
        assert parse_nexthop(str(parse_nexthop(text))) == parse_nexthop(text)


# lmtp(8) / smtp_connect.c: unix: and inet: prefixes, no MX lookups, port 24.
@pytest.mark.parametrize("text, hop", [
    ("unix:private/dovecot-lmtp", NextHop("", 0, False, "private/dovecot-lmtp")),
    ("unix:/var/run/cyrus/socket/lmtp", NextHop("", 0, False, "/var/run/cyrus/socket/lmtp")),
    ("inet:127.0.0.1:2424", NextHop("127.0.0.1", 2424, False)),
    ("inet:mail.example.com", NextHop("mail.example.com", 24, False)),
    ("mail.example.com:25", NextHop("mail.example.com", 25, False)),
    ("[192.0.2.1]:24", NextHop("192.0.2.1", 24, False)),
    ("[2001:db8::1]", NextHop("2001:db8::1", 24, False)),
    ("Mail.Example.com", NextHop("mail.example.com", 24, False)),
])
def test_parse_lmtp_nexthop(text, hop):
    assert parse_lmtp_nexthop(text) == hop


@pytest.mark.parametrize("text", ["unix:", "inet:", "inet:[x", "host:99999"])
def test_bad_lmtp_nexthops(text):
    with pytest.raises(BadNextHop):
        parse_lmtp_nexthop(text)


def test_lmtp_nexthops_give_distinct_cache_keys():
    hops = ["unix:private/a", "unix:/private/a", "inet:a.example", "a.example:25", "[a.example]:26"]
    assert len({str(parse_lmtp_nexthop(h)) for h in hops}) == len(hops)


def test_lmtp_default_port_is_given_by_the_caller():
    assert parse_lmtp_nexthop("inet:lmtp.example", default_port=2003).port == 2003


def test_nexthop_lists():
    assert parse_nexthops("[a.example]:587, [b.example]:587 c.example") == (
        NextHop("a.example", 587, False), NextHop("b.example", 587, False), NextHop("c.example"))
    assert parse_nexthops("") == ()


# -- address classes ---------------------------------------------------------------

@pytest.mark.parametrize("address, route", [
    ("root@mx.example.com", Route("local", "mx.example.com", L)),
    ("root@LOCALHOST", Route("local", "mx.example.com", L)),
    ("root", Route("local", "mx.example.com", L)),
    ("root@[192.0.2.25]", Route("local", "mx.example.com", L)),
    ("root@[IPv6:2001:db8:0::25]", Route("local", "mx.example.com", L)),
    ("ghost@alias.example", Route("error", "5.1.1 User unknown in virtual alias table", A)),
    ("bob@example.com", Route("virtual", "example.com", V)),
    ("bob@Virt.Example.", Route("virtual", "virt.example", V)),
    ("x@relayed.example", Route("relay", "relayed.example", R)),
    ("x@sub.relayed.example", Route("relay", "sub.relayed.example", R)),  # parent matching
    ("bob@sub.example.com", Route("smtp", "sub.example.com", D)),         # exact names
    ("x@remote.example", Route("smtp", "remote.example", D)),
    ("x@[192.0.2.99]", Route("smtp", "[192.0.2.99]", D)),
    ("x@sub.mx.example.com", Route("smtp", "sub.mx.example.com", D)),
])
def test_address_classes(address, route):
    assert resolve(address, BASE) == route


def test_domain_set():
    exact = DomainSet.of(["Example.COM.", ".dot.example"])
    assert exact.match("example.com") and exact.match("EXAMPLE.com.")
    assert not exact.match("sub.example.com") and not exact.match("xexample.com")
    assert exact.match("a.dot.example") and exact.match("a.b.dot.example")
    assert not exact.match("dot.example")
    parent = DomainSet.of(["example.com"], parent=True)
    assert parent.match("example.com") and parent.match("a.b.example.com")
    assert not parent.match("badexample.com") and not parent.match("com")
    # An empty first label is no subdomain (Postfix match_hostname()).
    assert not parent.match(".example.com") and not exact.match(".example.com")
    for item in ["hash:/etc/domains", "/etc/domains", "!example.com"]:
        with pytest.raises(ValueError):
            DomainSet.of([item])


def test_relayhost_for_relay_and_default_classes_only():
    s = replace(BASE, relayhost="[smarthost.example]:587")
    assert resolve("x@remote.example", s) == Route("smtp", "[smarthost.example]:587", D)
    assert resolve("x@relayed.example", s) == Route("relay", "[smarthost.example]:587", R)
    assert resolve("bob@example.com", s) == Route("virtual", "example.com", V)
    assert resolve("root@localhost", s) == Route("local", "mx.example.com", L)


def test_transport_parameter_nexthop_beats_relayhost():
    s = replace(BASE, relayhost="[smarthost.example]", default_transport="smtp:[gw.example]:2525",
                relay_transport="relay:", virtual_transport="local", local_transport="local")
    assert resolve("x@remote.example", s) == Route("smtp", "[gw.example]:2525", D)
    assert resolve("x@relayed.example", s) == Route("relay", "[smarthost.example]", R)
    # one mailbox agent for both classes; the class still tells them apart
    assert resolve("bob@example.com", s) == Route("local", "example.com", V)
    assert resolve("root@localhost", s) == Route("local", "mx.example.com", L)


# -- transport_maps ----------------------------------------------------------------------

def test_transport_lookup_order():
    full = {"user+ext@sub.example.org": "a:", "user@sub.example.org": "b:",
            "sub.example.org": "c:", ".example.org": "d:", ".org": "e:", "*": "f:"}
    keys = list(full)
    for i in range(len(keys)):
        t = entries({k: full[k] for k in keys[i:]})
        assert transport_lookup("User+Ext@Sub.Example.ORG", [t], "+") == full[keys[i]]
    assert transport_lookup("user+ext@sub.example.org", [], "+") is None


def test_stripped_address_needs_a_delimiter():
    t = entries({"user@example.org": "b:"})
    assert transport_lookup("user+ext@example.org", [t], "") is None
    assert transport_lookup("user+ext@example.org", [t], "+") == "b:"
    assert transport_lookup("user-ext@example.org", [t], "+-") == "b:"


def test_domain_does_not_match_subdomains_without_dot_entry():
    t = entries({"example.org": "smtp:[a.example]"})
    assert transport_lookup("x@sub.example.org", [t]) is None
    assert transport_lookup("x@example.org", [t]) == "smtp:[a.example]"
    dot = entries({".example.org": "smtp:[b.example]"})
    assert transport_lookup("x@example.org", [dot]) is None
    assert transport_lookup("x@deep.sub.example.org", [dot]) == "smtp:[b.example]"


def test_each_key_in_every_table_before_the_next_key():
    first = entries({"example.org": "first:"})
    second = entries({"x@example.org": "second:"})
    assert transport_lookup("x@example.org", [first, second]) == "second:"
    assert transport_lookup("y@example.org", [first, second]) == "first:"


@pytest.mark.parametrize("value, route", [
    ("smtp:example.test:2526", Route("smtp", "example.test:2526", V)),
    ("smtp:[127.0.0.1]:2526", Route("smtp", "[127.0.0.1]:2526", V)),
    ("local:", Route("local", "example.com", V)),
    ("local", Route("local", "example.com", V)),
    ("slow:", Route("slow", "example.com", V)),
    (":[gw.example]", Route("virtual", "[gw.example]", V)),      # keep the transport
    (":", Route("virtual", "example.com", V)),                     # a no-op
    ("error:5.1.1 mailbox unavailable", Route("error", "5.1.1 mailbox unavailable", V)),
    ("error:", Route("error", "Address is undeliverable", V)),
])
def test_transport_map_results(value, route):
    s = replace(BASE, transport_maps=(entries({"example.com": value}),))
    assert resolve("bob@example.com", s) == route


def test_transport_maps_override_every_class_and_wildcard_uses_recipient_domain():
    s = replace(BASE, transport_maps=(entries({"*": "smtp:", "mx.example.com": "local:"}),))
    assert resolve("x@remote.example", s) == Route("smtp", "remote.example", D)
    assert resolve("bob@example.com", s) == Route("smtp", "example.com", V)
    assert resolve("root@mx.example.com", s) == Route("local", "mx.example.com", L)


@pytest.mark.parametrize("text, default, expected", [
    ("5.1.1 mailbox unavailable", "5.0.0", ("5.1.1", "mailbox unavailable")),
    ("mailbox unavailable", "5.0.0", ("5.0.0", "mailbox unavailable")),
    ("4.2.2 try later", "5.0.0", ("5.2.2", "try later")),
    ("5.7.1", "4.0.0", ("4.7.1", "Address is undeliverable")),
    ("", "5.0.0", ("5.0.0", "Address is undeliverable")),
    ("5.1.1x text", "5.0.0", ("5.0.0", "5.1.1x text")),
])
def test_error_status(text, default, expected):
    assert error_status(text, default) == expected


def test_from_config_with_real_tables(tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "transport").write_text("example.test  smtp:example.test:2526\n"
                                   "bounce.example  error:5.1.1 mailbox unavailable\n"
                                   ".sub.example  smtp:[127.0.0.1]:2527\n")
    (etc / "main.cf").write_text(
        "myhostname = mx.example.com\nmydomain = example.com\n"
        "virtual_mailbox_domains = example.com\n"
        "relay_domains = relayed.example\n"
        f"transport_maps = texthash:{etc / 'transport'}\n"
        "relayhost = [relay.example]:2525\n")
    cfg = load(etc)
    s = RoutingSettings.from_config(cfg, open_table=lambda spec: open_table(spec, cfg))
    assert resolve("a@example.test", s) == Route("smtp", "example.test:2526", D)
    assert resolve("a@bounce.example", s) == Route("error", "5.1.1 mailbox unavailable", D)
    assert resolve("a@x.sub.example", s) == Route("smtp", "[127.0.0.1]:2527", D)
    assert resolve("a@elsewhere.example", s) == Route("smtp", "[relay.example]:2525", D)
    assert resolve("root@localhost.example.com", s) == Route("local", "mx.example.com", L)
    assert resolve("bob@example.com", s) == Route("virtual", "example.com", V)
    assert resolve("a@sub.relayed.example", s) == Route("relay", "[relay.example]:2525", R)
    assert parse_nexthop(resolve("a@example.test", s).nexthop) == NextHop("example.test", 2526)


# -- MX order ---------------------------------------------------------------------------

def test_mx_sorted_by_preference_deterministic_with_seed():
    answers = [(20, "mx3.example.org."), (10, "MX1.example.org."), (30, "mx4.example.org"),
               (10, "mx2.example.org.")]
    first = mx_hosts("example.org", answers, random.Random(7))
    assert first == mx_hosts("example.org", answers, random.Random(7))
    assert [h.preference for h in first] == [10, 10, 20, 30]
    assert {h.host for h in first[:2]} == {"mx1.example.org", "mx2.example.org"}
    assert first[2:] == (MxHost(20, "mx3.example.org"), MxHost(30, "mx4.example.org"))


def test_equal_preferences_are_shuffled():
    answers = [(10, "a.example"), (10, "b.example"), (10, "c.example"), (5, "best.example")]
    orders = Counter(tuple(h.host for h in mx_hosts("example.org", answers, random.Random(seed)))
                     for seed in range(600))
    assert all(order[0] == "best.example" for order in orders)
    assert set(orders) == {("best.example",) + p
                           for p in itertools.permutations(["a.example", "b.example", "c.example"])}
    assert min(orders.values()) > 50          # each of the 6 orders about 100 times


def test_implicit_mx():
    assert mx_hosts("Example.ORG.", [], random.Random(1)) == (MxHost(0, "example.org"),)


@pytest.mark.parametrize("answers", [[(0, ".")], [(0, "")], [(10, ".")],
                                     [(0, "."), (10, "mx.example.com.")]])
def test_null_mx(answers):
    with pytest.raises(RouteError) as e:
        mx_hosts("example.com", answers, random.Random(1))
    assert (e.value.status, e.value.reason) == ("5.1.0", "Domain example.com does not accept mail (nullMX)")
    assert e.value.permanent


# -- loop detection ----------------------------------------------------------------------

ADDRS = [(10, "mx1.example.org", "192.0.2.1"), (10, "mx1.example.org", "2001:db8::1"),
         (20, "mx2.example.org", "192.0.2.2"), (30, "mx3.example.org", "192.0.2.3")]


def test_no_self_keeps_everything():
    assert drop_self("example.org", ADDRS, {"198.51.100.1"}) == tuple(MxAddress(*a) for a in ADDRS)


def test_self_drops_own_and_worse_preferences():
    assert drop_self("example.org", ADDRS, {"192.0.2.2"}) == (
        MxAddress(10, "mx1.example.org", "192.0.2.1"), MxAddress(10, "mx1.example.org", "2001:db8::1"))


def test_self_as_best_mx_loops():
    for own in ({"192.0.2.1"}, {"2001:DB8:0:0::1"}, {"[ipv6:2001:db8::1]"}):
        with pytest.raises(RouteError) as e:
            drop_self("example.org", ADDRS, own)
        assert (e.value.status, e.value.reason) == ("5.4.6", "mail for example.org loops back to myself")


def test_self_when_better_mx_did_not_resolve_is_a_missing_primary():
    with pytest.raises(RouteError) as e:
        drop_self("example.org", ADDRS[2:], {"192.0.2.2"}, best_preference=10)
    assert (e.value.status, e.value.reason) == ("4.4.4", "unable to find primary relay for example.org")
    assert not e.value.permanent


def test_implicit_mx_to_self_loops():
    with pytest.raises(RouteError) as e:
        drop_self("example.org", [(0, "example.org", "127.0.0.1")], {"127.0.0.1"})
    assert e.value.status == "5.4.6"


def test_own_endpoints_match_only_their_port():
    peer = [(0, "localhost", "127.0.0.1")]
    own = {("127.0.0.1", 2525)}
    assert drop_self("localhost", peer, own, port=2526) == (MxAddress(0, "localhost", "127.0.0.1"),)
    with pytest.raises(RouteError):
        drop_self("localhost", peer, own, port=2525)


# -- sender-dependent relayhost and default transport ----------------------------

SENDER_MAPS = replace(
    BASE, relayhost="[smarthost.example]", recipient_delimiter="+",
    sender_relayhost_maps=(entries({"ann@corp.example": "[ann-relay.example]:587",
                                    "@corp.example": "[corp-relay.example]",
                                    "bob@corp.example": "DUNNO",
                                    "<>": "[bounce-relay.example]"}),),
    sender_transport_maps=(entries({"@bulk.example": "bulk:"}),))


@pytest.mark.parametrize("sender, rcpt, expected", [
    ("ann@corp.example", "x@remote.example", Route("smtp", "[ann-relay.example]:587", D)),
    ("ann+tag@corp.example", "x@remote.example", Route("smtp", "[ann-relay.example]:587", D)),
    ("carl@corp.example", "x@remote.example", Route("smtp", "[corp-relay.example]", D)),
    # DUNNO ends the search: the global relayhost.
    ("bob@corp.example", "x@remote.example", Route("smtp", "[smarthost.example]", D)),
    ("", "x@remote.example", Route("smtp", "[bounce-relay.example]", D)),
    ("ann@other.example", "x@remote.example", Route("smtp", "[smarthost.example]", D)),
    # relay_domains take the sender's relayhost too; local and virtual mail never.
    ("ann@corp.example", "x@relayed.example", Route("relay", "[ann-relay.example]:587", R)),
    ("ann@corp.example", "x@virt.example", Route("virtual", "virt.example", V)),
    # The default transport by sender; its next hop still comes from the relayhost maps.
    ("news@bulk.example", "x@remote.example", Route("bulk", "[smarthost.example]", D)),
    (None, "x@remote.example", Route("smtp", "[smarthost.example]", D)),
])
def test_sender_dependent_routes(sender, rcpt, expected):
    assert resolve(rcpt, SENDER_MAPS, sender) == expected


def test_sender_dependent_maps_come_from_the_config(tmp_path):
    (tmp_path / "main.cf").write_text(
        "sender_dependent_relayhost_maps = inline:{ @corp.example=[corp-relay.example] }\n"
        "relayhost = [smarthost.example]\nmydestination =\n")
    settings = RoutingSettings.from_config(load(tmp_path),
                                           open_table=lambda spec: open_table(spec, load(tmp_path)))
    assert resolve("x@remote.example", settings, "a@corp.example").nexthop == "[corp-relay.example]"
    assert resolve("x@remote.example", settings, "a@else.example").nexthop == "[smarthost.example]"


def test_a_recipient_that_begins_with_a_minus_is_bad_syntax_unless_allow_min_user():
    # Postfix 3.7.11: "to=<-bar@example.net>, relay=none, ... dsn=5.1.3,
    # status=bounced (bad address syntax)" from the error agent.
    bad = Route("error", "5.1.3 bad address syntax", D)
    assert resolve("-bar@example.net", BASE) == bad
    assert resolve('"-bar baz"@mx.example.com', BASE) == bad
    assert resolve("bar-@example.net", BASE) == Route("smtp", "example.net", D)
    assert resolve("-bar@example.net", replace(BASE, allow_min_user=True)) == \
        Route("smtp", "example.net", D)


def test_null_and_numeric_domains_are_bad_syntax_unless_resolved():
    # Postfix 3.7.11 with both parameters at "no" refused RCPT TO:<u@> and
    # <u@1.2.3.4> as bad syntax; with "yes" it delivered them as
    # to=<u@bench.localdomain>, orig_to=<u@> and to=<u@[1.2.3.4]>, orig_to=<u@1.2.3.4>.
    bad = Route("error", "5.1.3 bad address syntax", D)
    assert resolve("u@", BASE) == bad
    assert resolve("u@1.2.3.4", BASE) == bad
    assert resolve("u@192.0.2.25", BASE) == bad
    assert resolve("u@example.123", BASE) == Route("smtp", "example.123", D)
    assert resolve("u", BASE) == Route("local", "mx.example.com", L)
    # ... as u@$myhostname (resolve.c): relayed when $myhostname is not local.
    assert resolve("u", replace(BASE, myhostname="out.example")) == Route("smtp", "out.example", D)
    null = replace(BASE, resolve_null_domain=True)
    assert resolve("u@", null) == Route("local", "mx.example.com", L)
    numeric = replace(BASE, resolve_numeric_domain=True)
    assert resolve("u@1.2.3.4", numeric) == Route("smtp", "[1.2.3.4]", D)
    assert resolve("u@192.0.2.25", numeric) == Route("local", "mx.example.com", L)
    assert resolve("u@1.2.3", numeric) == bad                  # digits, but no address


def test_resolved_address_is_what_the_resolver_delivers_to():
    # Postfix 3.7.11, resolve_numeric_domain = yes: "smtp[24529]: 8E663224935:
    # to=<u@[1.2.3.4]>, orig_to=<u@1.2.3.4>, relay=127.0.0.1[127.0.0.1]:3202, ...
    # status=sent" and the relayhost got "RCPT TO:<u@[1.2.3.4]>".
    numeric = replace(BASE, resolve_numeric_domain=True)
    assert resolved_address("u@1.2.3.4", numeric) == "u@[1.2.3.4]"
    assert resolved_address("u@1.2.3.4", BASE) == "u@1.2.3.4"         # bad syntax: unchanged
    assert resolved_address("u@1.2.3", numeric) == "u@1.2.3"           # no IPv4 address
    assert resolved_address("u@example.123", numeric) == "u@example.123"
    assert resolved_address("u@[1.2.3.4]", numeric) == "u@[1.2.3.4]"
    # resolve.c gives every address the user@domain form.
    assert resolved_address("u", BASE) == "u@mx.example.com"
    assert resolved_address("u@", BASE) == "u@"                          # bad syntax
    assert resolved_address("u@", replace(BASE, resolve_null_domain=True)) == "u@mx.example.com"
    assert resolved_address("", BASE) == ""
    assert resolved_address("bob@example.net", numeric) == "bob@example.net"


def test_a_numeric_domain_is_looked_up_as_its_literal():
    # Postfix 3.7.11, transport_maps = inline:{ {[1.2.3.4]=error:5.1.1 gone} }:
    # "550 5.1.1 <w@1.2.3.4>: Recipient address rejected: gone".
    s = replace(BASE, resolve_numeric_domain=True,
                transport_maps=(entries({"[1.2.3.4]": "error:5.1.1 gone"}),))
    assert resolve("w@1.2.3.4", s) == Route("error", "5.1.1 gone", D)


def test_relocated_addresses_bounce_with_the_new_address():
    s = replace(BASE, relocated_maps=(entries({"alice@mx.example.com": "alice@new.example",
                                              "@gone.example": "gone.example.net"}),))
    assert resolve("alice@mx.example.com", s) == Route(
        "error", "5.1.6 User has moved to alice@new.example", L)
    assert resolve("x@gone.example", s) == Route("error", "5.1.6 User has moved to gone.example.net", D)
    assert resolve("bob@mx.example.com", s).transport == "local"


def test_without_randomizing_equal_preferences_keep_the_dns_order():
    # smtp_randomize_addresses = no
    answers = [(20, "c.example.org."), (10, "b.example.org."), (10, "a.example.org.")]
    assert [h.host for h in mx_hosts("example.org", answers, None)] == [
        "b.example.org", "a.example.org", "c.example.org"]


def _addrs(spec: str) -> list:
    """"4 6 6" -> MxAddress entries of those families, in that order."""
    from mailsys.routing import MxAddress
    return [MxAddress(10, "mx", f"192.0.2.{i}" if f == "4" else f"2001:db8::{i}")
            for i, f in enumerate(spec.split())]


@pytest.mark.parametrize("spec, limit, kept", [
    ("6 6 6 6 6 4", 5, "6 6 6 6 4"),          # region R3: the few IPv4 stay
    ("4 4 4 4 4 6", 5, "4 4 4 4 6"),          # region R1: the few IPv6 stay
    ("6 6 6 6 4 4 4 4", 5, "6 6 6 4 4"),      # R2: halves, the odd one to the first's family
    ("4 4 4 4 6 6 6 6", 5, "4 4 4 6 6"),
    ("6 6 4", 5, "6 6 4"),                    # within the limit: unchanged
    ("6 6 6 6 6 6", 2, "6 6 6 6 6 6"),        # one family: unchanged (truncated later)
])
def test_balance_inet_protocols(spec, limit, kept):
    from mailsys.routing import balance_inet_protocols
    out = balance_inet_protocols(_addrs(spec), limit)
    assert " ".join("6" if ":" in a.address else "4" for a in out) == kept
    assert [a.address for a in out] == [a.address for a in _addrs(spec) if a in out]
