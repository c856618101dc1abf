"""smtpd restrictions: each restriction, reply texts byte for byte, relay
control against address tricks, access tables, unlisted recipients."""

import sys
from pathlib import Path

import pytest

from mailsys.config import load
from mailsys.errors import ConfigError
from mailsys.policy.restrictions import (DnsStatus, DomainClass, HostRecords, NeedRecords, Note,
                                         PolicyContext, Restrictions, dsn_fix, note_log_text,
                                         reject_log_text)

sys.path.insert(0, str(Path(__file__).parents[1]))      # tests/memtable.py (tests/ is no package)
from memtable import Table  # noqa: E402


BASE = {
    "mydestination": ("example.com", "localhost"),
    "virtual_mailbox_domains": ("virt.example",),
    "virtual_mailbox_maps": ("texthash:/vmailbox",),
    "relay_domains": ("relay.example",),
    "mynetworks": ("127.0.0.0/8", "[::1]/128", "192.0.2.0/24"),
    "local_recipient_maps": ("texthash:/local",),
}


def make(tables=None, **over):
    tables = dict(tables or {})
    tables.setdefault("texthash:/local", Table({"alice": "x", "bob": "x"}))
    tables.setdefault("texthash:/vmailbox", Table({"carol@virt.example": "virt.example/carol/"}))
    settings = dict(BASE)
    settings.update(over)
    return Restrictions(None, lambda spec, cfg: tables[spec], overrides=settings)


OUTSIDER = dict(client_name="unknown", client_addr="198.51.100.7", helo="spammer.example",
                sender="spam@spammer.example")
TRUSTED = dict(client_name="localhost", client_addr="192.0.2.10", helo="client.example.org",
               sender="alice@example.com")
AUTHED = dict(OUTSIDER, sasl_user="bob")


def rcpt(r, recipient, who=OUTSIDER, resolver=None, **extra):
    return r.evaluate_rcpt(PolicyContext(recipient=recipient, **dict(who, **extra)), resolver)


# -- default relay policy -----------------------------------------------------

def test_default_relay_policy_defers_untrusted_relay_with_postfix_reply_and_log_line():
    r = make()
    ctx = PolicyContext(recipient="victim@remote.example", **OUTSIDER)
    d = r.evaluate_rcpt(ctx)
    assert d.reply == "454 4.7.1 <victim@remote.example>: Relay access denied"
    assert d.restriction_list == "smtpd_relay_restrictions"
    # postfix-samples/maillog-3.7.11.txt line 136, after the tag
    assert reject_log_text(d, ctx, queue_id="NOQUEUE") == (
        "NOQUEUE: reject: RCPT from unknown[198.51.100.7]: 454 4.7.1 <victim@remote.example>: "
        "Relay access denied; from=<spam@spammer.example> to=<victim@remote.example> "
        "proto=ESMTP helo=<spammer.example>")


@pytest.mark.parametrize("who", [TRUSTED, AUTHED, dict(OUTSIDER, client_addr="::1"),
                                 dict(OUTSIDER, client_addr="::ffff:127.0.0.1")])
def test_default_relay_policy_lets_mynetworks_and_sasl_clients_relay(who):
    assert rcpt(make(), "carol@remote.example", who).accepted


@pytest.mark.parametrize("recipient", ["alice@example.com", "bob@localhost", "ALICE@Example.COM.",
                                       "carol@virt.example", "anyone@relay.example",
                                       "anyone@sub.relay.example"])
def test_our_domains_are_accepted_from_anyone(recipient):
    assert rcpt(make(), recipient, OUTSIDER).accepted


def test_reject_unauth_destination_replies_554():
    r = make(smtpd_relay_restrictions=("permit_mynetworks", "reject_unauth_destination"))
    assert rcpt(r, "x@remote.example").reply == "554 5.7.1 <x@remote.example>: Relay access denied"
    assert rcpt(r, "x@remote.example", TRUSTED).accepted


@pytest.mark.parametrize("before, reply", [
    # Postfix 3.7, smtpd_relay_restrictions = reject_unauth_destination and
    # smtpd_recipient_restrictions = check_recipient_access inline:{
    # {c@d.example = REJECT blocked here} }:
    (True, "554 5.7.1 <c@d.example>: Relay access denied"),
    (False, "554 5.7.1 <c@d.example>: Recipient address rejected: blocked here")])
def test_smtpd_relay_before_recipient_restrictions_orders_the_two_lists(before, reply):
    tables = {"texthash:/r": Table({"c@d.example": "REJECT blocked here"})}
    r = make(tables, smtpd_relay_restrictions=("reject_unauth_destination",),
             smtpd_recipient_restrictions=("check_recipient_access", "texthash:/r"),
             smtpd_relay_before_recipient_restrictions=before)
    assert rcpt(r, "c@d.example").reply == reply


def test_relay_before_recipient_restrictions_follows_compatibility_level(tmp_path):
    (tmp_path / "main.cf").write_text("compatibility_level = 3.5\n")
    assert load(tmp_path).smtpd_relay_before_recipient_restrictions is False
    (tmp_path / "main.cf").write_text("compatibility_level = 3.6\n")
    assert load(tmp_path).smtpd_relay_before_recipient_restrictions is True


def test_relay_domains_reject_code_is_honoured():
    r = make(smtpd_relay_restrictions=("reject_unauth_destination",), relay_domains_reject_code=550)
    assert rcpt(r, "x@remote.example").reply == "550 5.7.1 <x@remote.example>: Relay access denied"


# -- address tricks -------------------------------------------------------

TRICKS = [
    "user%remote.example@example.com",        # percent hack through a local domain
    "remote.example!user@example.com",        # bang path
    "user@remote.example@example.com",        # two @
    '"user@remote.example"@example.com',      # quoted local part holding @
    '"user%remote.example"@example.com',      # quoted local part holding %
    '"remote.example!user"@example.com',      # quoted bang path
    "@example.com:user@remote.example",       # source route through us
    "@example.com,@localhost:user@remote.example",
    "user%remote.example@virt.example",       # routing operator to a virtual domain
    "user@remote.example@virt.example",
    "remote.example!user@relay.example",      # ... and to a relay domain
    "user%remote.example@relay.example",
    '"user@remote.example"@relay.example',
    "user%remote.example%example.com@example.com",
    "user@remote.example.",                    # trailing dot
    "user@[203.0.113.5]",                      # someone else's address literal
    "user%[203.0.113.5]@example.com",
]


@pytest.mark.parametrize("recipient", TRICKS)
@pytest.mark.parametrize("relay, reply", [
    (("permit_mynetworks", "permit_sasl_authenticated", "defer_unauth_destination"), "454 4.7.1"),
    (("permit_mynetworks", "reject_unauth_destination"), "554 5.7.1"),
])
def test_address_tricks_never_open_a_relay_for_untrusted_clients(recipient, relay, reply):
    r = make(smtpd_relay_restrictions=relay)
    d = rcpt(r, recipient)
    assert d.reply == f"{reply} <{recipient}>: Relay access denied"


@pytest.mark.parametrize("recipient", TRICKS)
@pytest.mark.parametrize("who", [TRUSTED, AUTHED])
def test_address_tricks_relay_for_trusted_clients(recipient, who):
    assert rcpt(make(), recipient, who).accepted


@pytest.mark.parametrize("recipient, local, domain, cls", [
    ("user%remote.example@example.com", "user", "remote.example", DomainClass.DEFAULT),
    ("remote.example!user@example.com", "user", "remote.example", DomainClass.DEFAULT),
    ("a!b!user@example.com", "b!user", "a", DomainClass.DEFAULT),
    ('"user@remote.example"@example.com', "user", "remote.example", DomainClass.DEFAULT),
    ("@remote.example:alice@example.com", "alice", "example.com", DomainClass.LOCAL),
    ("alice%localhost@example.com", "alice", "localhost", DomainClass.LOCAL),
    ("alice@EXAMPLE.com.", "alice", "example.com", DomainClass.LOCAL),
    ("<alice@example.com>", "alice", "example.com", DomainClass.LOCAL),
    ("alice", "alice", "localhost", DomainClass.LOCAL),
    ("alice@", "alice", "localhost", DomainClass.LOCAL),
    ("user%remote.example@", "user", "remote.example", DomainClass.DEFAULT),
    ("carol@virt.example", "carol", "virt.example", DomainClass.VIRTUAL),
    ("x@relay.example", "x", "relay.example", DomainClass.RELAY),
])
def test_resolve(recipient, local, domain, cls):
    res = make().resolve(recipient)
    assert (res.local, res.domain, res.cls) == (local, domain, cls)


def test_resolve_marks_routing_operators_left_for_a_virtual_domain():
    res = make().resolve("user%remote.example@virt.example")
    assert res.routed and res.cls is DomainClass.VIRTUAL


def test_our_address_literal_is_local():
    r = make(inet_interfaces=("192.0.2.1",))
    assert r.resolve("alice@[192.0.2.1]").cls is DomainClass.LOCAL
    assert rcpt(r, "alice@[192.0.2.1]").accepted
    assert rcpt(r, "alice@[192.0.2.2]").reply == "454 4.7.1 <alice@[192.0.2.2]>: Relay access denied"


def test_allow_percent_hack_off_keeps_percent_local():
    r = make(allow_percent_hack=False, smtpd_reject_unlisted_recipient=False)
    assert r.resolve("user%remote.example@example.com").cls is DomainClass.LOCAL
    assert rcpt(r, "user%remote.example@example.com").accepted


# -- unlisted recipients -------------------------------------------------------

@pytest.mark.parametrize("who", [OUTSIDER, TRUSTED, AUTHED])
def test_unknown_local_user_rejected_for_every_client(who):
    d = rcpt(make(), "nobody@example.com", who)
    assert d.reply == ("550 5.1.1 <nobody@example.com>: Recipient address rejected: "
                       "User unknown in local recipient table")
    assert d.restriction_list == "smtpd_reject_unlisted_recipient"


def test_unknown_virtual_user_rejected():
    assert rcpt(make(), "dave@virt.example").reply == (
        "550 5.1.1 <dave@virt.example>: Recipient address rejected: "
        "User unknown in virtual mailbox table")


def test_virtual_catch_all_and_virtual_alias_maps_count_as_known():
    vm = Table({"@virt.example": "catchall/"})
    assert rcpt(make(tables={"texthash:/vmailbox": vm}), "dave@virt.example").accepted
    r = make(virtual_alias_maps=("texthash:/valias",),
             tables={"texthash:/valias": Table({"nobody@example.com": "alice"})})
    assert rcpt(r, "nobody@example.com").accepted


def test_relay_recipient_maps():
    r = make(relay_recipient_maps=("texthash:/relayrcpt",),
             tables={"texthash:/relayrcpt": Table({"known@relay.example": "x"})})
    assert rcpt(r, "known@relay.example").accepted
    assert rcpt(r, "unknown@relay.example").reply == (
        "550 5.1.1 <unknown@relay.example>: Recipient address rejected: "
        "User unknown in relay recipient table")


def test_address_extension_is_stripped_for_the_user_lookup():
    assert not rcpt(make(), "alice+tag@example.com").accepted
    assert rcpt(make(recipient_delimiter="+"), "alice+tag@example.com").accepted


def test_unlisted_check_off_and_empty_maps_accept_everyone():
    assert rcpt(make(smtpd_reject_unlisted_recipient=False), "nobody@example.com").accepted
    assert rcpt(make(local_recipient_maps=()), "nobody@example.com").accepted


def test_relocated_recipients_are_refused_with_their_new_address():
    # The replies of Postfix 3.7.11 for the same relocated_maps.
    r = make(relocated_maps=("texthash:/relocated",),
             tables={"texthash:/relocated": Table({"alice@example.com": "alice@new.example",
                                                   "@moved.example": "new.example"})})
    assert rcpt(r, "alice@example.com", TRUSTED).reply == (
        "550 5.1.6 <alice@example.com>: Recipient address rejected: "
        "User has moved to alice@new.example")
    assert rcpt(r, "bob@moved.example", TRUSTED).reply == (
        "550 5.1.6 <bob@moved.example>: Recipient address rejected: User has moved to new.example")
    assert rcpt(make(relocated_maps=("texthash:/relocated",), smtpd_reject_unlisted_recipient=False,
                     tables={"texthash:/relocated": Table({"alice@example.com": "x"})}),
                "alice@example.com").accepted


def test_no_unknown_recipient_checks_accepts_unknown_users_even_in_a_list():
    r = make(receive_override_options=("no_unknown_recipient_checks",),
             smtpd_recipient_restrictions=("reject_unlisted_recipient", "permit_mynetworks"))
    assert rcpt(r, "nobody@example.com").accepted
    assert rcpt(r, "dave@virt.example").accepted


def test_unlisted_check_lookup_keys_for_a_local_user():
    t = Table()
    rcpt(make(tables={"texthash:/local": t}, recipient_delimiter="+"), "eve+x@example.com")
    assert t.keys == ["eve+x@example.com", "eve@example.com", "eve+x", "eve", "@example.com"]


def test_relay_rejection_comes_before_the_unlisted_check():
    d = rcpt(make(), "nobody@remote.example")
    assert d.reply.startswith("454 4.7.1")


def test_show_user_unknown_table_name_off():
    d = rcpt(make(show_user_unknown_table_name=False), "nobody@example.com")
    assert d.reply == "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown"


# -- simple restrictions and their texts ------------------------------------------

def test_reject_and_defer_texts_follow_the_list():
    r = make(smtpd_client_restrictions=("reject",))
    assert rcpt(r, "alice@example.com").reply == \
        "554 5.7.1 <unknown[198.51.100.7]>: Client host rejected: Access denied"
    r = make(smtpd_helo_restrictions=("reject",))
    assert rcpt(r, "alice@example.com").reply == \
        "554 5.7.1 <spammer.example>: Helo command rejected: Access denied"
    r = make(smtpd_sender_restrictions=("defer",))
    assert rcpt(r, "alice@example.com").reply == \
        "450 4.3.2 <spam@spammer.example>: Sender address rejected: Try again later"
    r = make(smtpd_recipient_restrictions=("reject",))
    assert rcpt(r, "alice@example.com").reply == \
        "554 5.7.1 <alice@example.com>: Recipient address rejected: Access denied"


def test_null_sender_reply_name():
    r = make(smtpd_sender_restrictions=("reject",))
    assert rcpt(r, "alice@example.com", sender="").reply == \
        "554 5.7.1 <>: Sender address rejected: Access denied"


@pytest.mark.parametrize("sender, ok", [
    ("alice@example.com", True), ("", True), ("alice", False), ("alice@localhost", False),
    ("alice@[192.0.2.1]", True), ("alice@example.com.", True), ("alice@bad_host!.com", False),
])
def test_reject_non_fqdn_sender(sender, ok):
    r = make(smtpd_sender_restrictions=("reject_non_fqdn_sender",))
    d = rcpt(r, "alice@example.com", sender=sender)
    assert d.accepted is ok
    if not ok:
        assert d.reply == f"504 5.5.2 <{sender}>: Sender address rejected: need fully-qualified address"


def test_reject_non_fqdn_recipient():
    r = make(smtpd_recipient_restrictions=("reject_non_fqdn_recipient",),
             smtpd_reject_unlisted_recipient=False)
    assert rcpt(r, "alice").reply == \
        "504 5.5.2 <alice>: Recipient address rejected: need fully-qualified address"
    assert rcpt(r, "alice@example.com").accepted


@pytest.mark.parametrize("helo, ok", [
    ("client.example.org", True), ("localhost", True), ("[192.0.2.1]", True),
    ("[IPv6:2001:db8::1]", True), ("192.0.2.1", True), ("x y", False), ("bad..name", False),
    ("-bad.example", False), ("under_score.example", True), ("1.2.3.4.5", False),
])
def test_reject_invalid_helo_hostname(helo, ok):
    r = make(smtpd_helo_restrictions=("reject_invalid_helo_hostname",))
    d = rcpt(r, "alice@example.com", helo=helo)
    assert d.accepted is ok
    if not ok:
        assert d.reply == f"501 5.5.2 <{helo}>: Helo command rejected: Invalid name"


def test_reject_non_fqdn_helo_hostname():
    r = make(smtpd_helo_restrictions=("reject_non_fqdn_helo_hostname",))
    assert rcpt(r, "alice@example.com", helo="localhost").reply == \
        "504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname"
    assert rcpt(r, "alice@example.com", helo="mx.example.org").accepted
    assert rcpt(r, "alice@example.com", helo="[192.0.2.1]").accepted


def test_helo_restrictions_skip_when_no_helo_was_sent():
    r = make(smtpd_helo_restrictions=("reject_invalid_helo_hostname", "reject_non_fqdn_helo_hostname"))
    d = rcpt(r, "alice@example.com", helo=None)
    assert d.accepted


# -- DNS restrictions ------------------------------------------------------

def dns(table):
    return lambda name: table.get(name, DnsStatus.EXISTS)


def test_reject_unknown_recipient_domain():
    r = make(smtpd_recipient_restrictions=("reject_unknown_recipient_domain",))
    res = dns({"nowhere.example": DnsStatus.NOT_FOUND})
    assert rcpt(r, "x@nowhere.example", TRUSTED, res).reply == \
        "450 4.1.2 <x@nowhere.example>: Recipient address rejected: Domain not found"
    assert rcpt(r, "x@somewhere.example", TRUSTED, res).accepted
    r550 = make(smtpd_recipient_restrictions=("reject_unknown_recipient_domain",),
                unknown_address_reject_code=550)
    assert rcpt(r550, "x@nowhere.example", TRUSTED, res).reply == \
        "550 5.1.2 <x@nowhere.example>: Recipient address rejected: Domain not found"


def test_reject_unknown_sender_domain():
    r = make(smtpd_sender_restrictions=("reject_unknown_sender_domain",))
    res = dns({"spammer.example": DnsStatus.NOT_FOUND})
    assert rcpt(r, "alice@example.com", resolver=res).reply == \
        "450 4.1.8 <spam@spammer.example>: Sender address rejected: Domain not found"
    r550 = make(smtpd_sender_restrictions=("reject_unknown_sender_domain",),
                unknown_address_reject_code=550)
    assert rcpt(r550, "alice@example.com", resolver=res).reply == \
        "550 5.1.8 <spam@spammer.example>: Sender address rejected: Domain not found"


def test_reject_unknown_domain_refuses_a_null_mx():
    # Postfix 3.7 smtpd_check.c reject_unknown_mailhost(): fixed codes, not
    # unknown_address_reject_code; the DSN class follows the code.
    res = dns({"nullmx.example": DnsStatus.NULL_MX})
    r = make(smtpd_sender_restrictions=("reject_unknown_sender_domain",),
             smtpd_recipient_restrictions=("reject_unknown_recipient_domain",),
             unknown_address_reject_code=554)
    assert rcpt(r, "alice@example.com", TRUSTED, res, sender="a@nullmx.example").reply == \
        "550 5.7.27 <a@nullmx.example>: Sender address rejected: " \
        "Domain nullmx.example does not accept mail (nullMX)"
    assert rcpt(r, "b@nullmx.example", TRUSTED, res).reply == \
        "556 5.1.10 <b@nullmx.example>: Recipient address rejected: " \
        "Domain nullmx.example does not accept mail (nullMX)"
    assert rcpt(r, "b@somewhere.example", TRUSTED, res).accepted
    soft = make(smtpd_recipient_restrictions=("reject_unknown_recipient_domain",),
                soft_bounce=True)
    assert rcpt(soft, "b@nullmx.example", TRUSTED, res).reply == \
        "456 4.1.10 <b@nullmx.example>: Recipient address rejected: " \
        "Domain nullmx.example does not accept mail (nullMX)"


def test_unknown_domain_checks_skip_our_domains_and_null_sender():
    asked = []

    def res(name):
        asked.append(name)
        return DnsStatus.NOT_FOUND

    r = make(smtpd_sender_restrictions=("reject_unknown_sender_domain",),
             smtpd_recipient_restrictions=("reject_unknown_recipient_domain",))
    assert rcpt(r, "alice@example.com", TRUSTED, res).accepted
    assert rcpt(r, "alice@example.com", OUTSIDER, res, sender="").accepted
    assert asked == []


def test_dns_tempfail_defers_only_what_would_be_permitted():
    r = make(smtpd_sender_restrictions=("reject_unknown_sender_domain",))
    res = dns({"spammer.example": DnsStatus.TEMPFAIL})
    assert rcpt(r, "alice@example.com", resolver=res).reply == \
        "450 4.1.8 <spam@spammer.example>: Sender address rejected: Domain not found"
    # a later reject wins over the deferral
    assert rcpt(r, "x@remote.example", resolver=res).reply.startswith("454 4.7.1 <x@remote.example>")


# Postfix 3.7 (its resolver pointed at a server answering SERVFAIL for
# broken.example), client in mynetworks, smtpd_recipient_restrictions =
# check_recipient_access inline:{ {c@d.example = REJECT blocked here} },
# unknown_address_reject_code = 550:
#   default:         "554 5.7.1 <c@d.example>: Recipient address rejected: blocked here"
#   defer:           "450 4.1.8 <a@broken.example>: Sender address rejected: Domain not found"
#   HELO defer:      "450 4.7.1 <broken.example>: Helo command rejected: Host not found"
# and reject_tempfail_action = defer alone did what the defer lines did.
BLOCKED = "554 5.7.1 <c@d.example>: Recipient address rejected: blocked here"
SENDER_TEMPFAIL = "450 4.1.8 <a@broken.example>: Sender address rejected: Domain not found"
HELO_TEMPFAIL = "450 4.7.1 <broken.example>: Helo command rejected: Host not found"


@pytest.mark.parametrize("restriction, who, over, reply", [
    ("reject_unknown_sender_domain", {"sender": "a@broken.example"}, {}, BLOCKED),
    ("reject_unknown_sender_domain", {"sender": "a@broken.example"},
     {"unknown_address_tempfail_action": "defer"}, SENDER_TEMPFAIL),
    ("reject_unknown_sender_domain", {"sender": "a@broken.example"},
     {"reject_tempfail_action": "defer"}, SENDER_TEMPFAIL),
    ("reject_unknown_sender_domain", {"sender": "a@broken.example"},
     {"unknown_helo_hostname_tempfail_action": "defer"}, BLOCKED),
    ("reject_unknown_helo_hostname", {"helo": "broken.example"}, {}, BLOCKED),
    ("reject_unknown_helo_hostname", {"helo": "broken.example"},
     {"unknown_helo_hostname_tempfail_action": "defer"}, HELO_TEMPFAIL),
    ("reject_unknown_helo_hostname", {"helo": "broken.example"},
     {"reject_tempfail_action": "defer"}, HELO_TEMPFAIL),
    ("reject_unknown_helo_hostname", {"helo": "broken.example"},
     {"unknown_address_tempfail_action": "defer"}, BLOCKED),
])
def test_unknown_tempfail_actions(restriction, who, over, reply):
    lists = {"reject_unknown_sender_domain": "smtpd_sender_restrictions",
             "reject_unknown_helo_hostname": "smtpd_helo_restrictions"}
    r = make({"texthash:/r": Table({"c@d.example": "REJECT blocked here"})},
             **{lists[restriction]: (restriction,)},
             smtpd_recipient_restrictions=("check_recipient_access", "texthash:/r"),
             unknown_address_reject_code=550, **over)
    res = dns({"broken.example": DnsStatus.TEMPFAIL})
    tempfail = HostRecords(DnsStatus.TEMPFAIL)
    ctx = PolicyContext(recipient="c@d.example", **dict(TRUSTED, **who))
    assert r.evaluate_rcpt(ctx, res, records=lambda kind, name: tempfail).reply == reply


def test_unknown_tempfail_actions_default_to_reject_tempfail_action(tmp_path):
    (tmp_path / "main.cf").write_text("reject_tempfail_action = defer\n")
    cfg = load(tmp_path)
    assert cfg.unknown_address_tempfail_action == "defer"
    assert cfg.unknown_helo_hostname_tempfail_action == "defer"
    assert cfg.unverified_recipient_tempfail_action == "defer"
    (tmp_path / "main.cf").write_text("unknown_address_tempfail_action = bogus\n")
    with pytest.raises(ConfigError):
        load(tmp_path)


def test_domains_to_resolve_lists_what_an_evaluation_asks():
    r = make(smtpd_sender_restrictions=("reject_unknown_sender_domain",),
             smtpd_helo_restrictions=("reject_unknown_helo_hostname",),
             smtpd_recipient_restrictions=("reject_unknown_recipient_domain",))
    ctx = PolicyContext(recipient="x@far.example", **TRUSTED)
    # The HELO name is asked as ("HOSTNAME", name) records (tests/services/test_smtpd_dns.py).
    assert r.domains_to_resolve(ctx) == ("far.example",)


def test_missing_resolver_counts_as_tempfail():
    r = make(smtpd_recipient_restrictions=("reject_unknown_recipient_domain",))
    d = rcpt(r, "x@far.example", TRUSTED)
    assert d.reply == "450 4.1.2 <x@far.example>: Recipient address rejected: Domain not found"


# -- access tables ---------------------------------------------------------

@pytest.mark.parametrize("value, reply", [
    ("OK", None),
    ("1234", None),
    ("DUNNO", None),
    ("permit", None),
    ("REJECT", "554 5.7.1 <spam@spammer.example>: Sender address rejected: Access denied"),
    ("REJECT go away", "554 5.7.1 <spam@spammer.example>: Sender address rejected: go away"),
    ("REJECT 5.7.26 spf fail", "554 5.7.26 <spam@spammer.example>: Sender address rejected: spf fail"),
    ("DEFER", "450 4.7.1 <spam@spammer.example>: Sender address rejected: Access denied"),
    ("DEFER later", "450 4.7.1 <spam@spammer.example>: Sender address rejected: later"),
    ("550 no thanks", "550 5.7.1 <spam@spammer.example>: Sender address rejected: no thanks"),
    ("550 5.1.1 gone", "550 5.1.7 <spam@spammer.example>: Sender address rejected: gone"),
    ("550 4.7.1 mixed", "550 5.7.1 <spam@spammer.example>: Sender address rejected: mixed"),
    ("421 closing", "421 4.7.1 <spam@spammer.example>: Sender address rejected: closing"),
    ("reject", "554 5.7.1 <spam@spammer.example>: Sender address rejected: Access denied"),
    ("permit_mynetworks, reject", "554 5.7.1 <spam@spammer.example>: Sender address rejected: Access denied"),
    ("bogus_action", "451 4.3.5 Server configuration error"),
])
def test_access_actions(value, reply):
    t = Table({"spammer.example": value})
    r = make(smtpd_sender_restrictions=("check_sender_access", "texthash:/access"),
             tables={"texthash:/access": t})
    d = rcpt(r, "alice@example.com")
    assert d.reply == (reply or "")


def test_access_ok_permits_only_its_list():
    t = Table({"spammer.example": "OK"})
    r = make(smtpd_sender_restrictions=("check_sender_access", "texthash:/access", "reject"),
             tables={"texthash:/access": t})
    assert rcpt(r, "alice@example.com").accepted
    assert rcpt(r, "x@remote.example").reply.startswith("454 4.7.1")


def test_access_permit_restriction_name_in_recipient_table():
    t = Table({"victim@remote.example": "PERMIT"})
    r = make(smtpd_relay_restrictions=("check_recipient_access", "texthash:/a", "reject_unauth_destination"),
             tables={"texthash:/a": t})
    assert rcpt(r, "victim@remote.example").accepted
    assert rcpt(r, "other@remote.example").reply.startswith("554 5.7.1")


def test_sender_lookup_order():
    t = Table()
    r = make(smtpd_sender_restrictions=("check_sender_access", "texthash:/a"),
             tables={"texthash:/a": t}, recipient_delimiter="+")
    rcpt(r, "alice@example.com", sender="User+Ext@Mail.Example.COM")
    assert t.keys == ["user+ext@mail.example.com", "user@mail.example.com", "mail.example.com",
                      "example.com", "com", "user+ext@", "user@"]


def test_sender_lookup_order_without_parent_matching():
    t = Table()
    r = make(smtpd_sender_restrictions=("check_sender_access", "texthash:/a"),
             tables={"texthash:/a": t}, parent_domain_matches_subdomains=())
    rcpt(r, "alice@example.com", sender="u@mail.example.com")
    assert t.keys == ["u@mail.example.com", "mail.example.com", ".example.com", ".com", "u@"]


def test_null_sender_lookup_key():
    t = Table({"<>": "REJECT no bounces"})
    r = make(smtpd_sender_restrictions=("check_sender_access", "texthash:/a"),
             tables={"texthash:/a": t})
    assert rcpt(r, "alice@example.com", sender="").reply == \
        "554 5.7.1 <>: Sender address rejected: no bounces"


def test_first_key_found_decides_even_dunno():
    t = Table({"spam@spammer.example": "DUNNO", "spammer.example": "REJECT"})
    r = make(smtpd_sender_restrictions=("check_sender_access", "texthash:/a"),
             tables={"texthash:/a": t})
    assert rcpt(r, "alice@example.com").accepted


def test_client_access_lookup_order_and_reply():
    t = Table({"198.51": "REJECT blocked net"})
    r = make(smtpd_client_restrictions=("check_client_access", "texthash:/c"),
             tables={"texthash:/c": t})
    d = rcpt(r, "alice@example.com", client_name="mx.bad.example")
    assert d.reply == "554 5.7.1 <mx.bad.example[198.51.100.7]>: Client host rejected: blocked net"
    assert t.keys == ["mx.bad.example", "bad.example", "example", "198.51.100.7", "198.51.100",
                      "198.51"]


def test_client_access_ipv6_prefixes():
    t = Table()
    r = make(smtpd_client_restrictions=("check_client_access", "texthash:/c"),
             tables={"texthash:/c": t})
    rcpt(r, "alice@example.com", client_addr="2001:db8:1:2::5")
    # the name first, even "unknown"; then cut at the last ':' like Postfix's split_at_right
    assert t.keys == ["unknown", "2001:db8:1:2::5", "2001:db8:1:2:", "2001:db8:1:2", "2001:db8:1",
                      "2001:db8", "2001"]


@pytest.mark.parametrize("recipient", ["user%remote.example@example.com",
                                       "remote.example!user@example.com",
                                       '"user@remote.example"@example.com'])
def test_recipient_access_ok_for_our_domain_cannot_be_abused_to_relay(recipient):
    # A common admin entry: "example.com OK" ahead of reject_unauth_destination.
    t = Table({"example.com": "OK"})
    r = make(smtpd_relay_restrictions=("check_recipient_access", "texthash:/a",
                                       "reject_unauth_destination"),
             tables={"texthash:/a": t})
    assert rcpt(r, recipient).reply == f"554 5.7.1 <{recipient}>: Relay access denied"
    assert "user@remote.example" in t.keys and "example.com" not in t.keys


def test_recipient_access_ok_is_ignored_for_routed_relay_domain_recipients():
    t = Table({"relay.example": "OK"})
    r = make(smtpd_relay_restrictions=("check_recipient_access", "texthash:/a",
                                       "reject_unauth_destination"),
             tables={"texthash:/a": t})
    assert rcpt(r, "x@relay.example").accepted
    assert rcpt(r, "user%remote.example@relay.example").reply == \
        "554 5.7.1 <user%remote.example@relay.example>: Relay access denied"


def test_helo_and_recipient_access():
    r = make(smtpd_helo_restrictions=("check_helo_access", "texthash:/h"),
             smtpd_recipient_restrictions=("check_recipient_access", "texthash:/r"),
             tables={"texthash:/h": Table({"example.com": "REJECT You are not me"}),
                     "texthash:/r": Table({"bob@": "550 5.2.1 Mailbox disabled"})})
    assert rcpt(r, "alice@example.com", helo="mx.example.com").reply == \
        "554 5.7.1 <mx.example.com>: Helo command rejected: You are not me"
    assert rcpt(r, "bob@example.com", TRUSTED).reply == \
        "550 5.2.1 <bob@example.com>: Recipient address rejected: Mailbox disabled"


@pytest.mark.parametrize("value, accepted, note", [
    ("HOLD suspicious", True, Note("hold", "<spam@spammer.example>: Sender address suspicious")),
    ("HOLD", True, Note("hold", "<spam@spammer.example>: Sender address triggers HOLD action")),
    ("DISCARD", True, Note("discard", "<spam@spammer.example>: Sender address triggers DISCARD action")),
    ("FILTER smtp:[127.0.0.1]:10025", True,
     Note("filter", "<spam@spammer.example>: Sender address triggers FILTER smtp:[127.0.0.1]:10025",
          "smtp:[127.0.0.1]:10025")),
    ("FILTER nocolon", True, None),
    ("REDIRECT abuse@example.com", True,
     Note("redirect", "<spam@spammer.example>: Sender address triggers REDIRECT abuse@example.com",
          "abuse@example.com")),
    ("BCC archive@example.com", True,
     Note("bcc", "<spam@spammer.example>: Sender address triggers BCC archive@example.com",
          "archive@example.com")),
    ("WARN looks odd", True, Note("warn", "looks odd")),
    ("INFO seen", True, Note("info", "seen")),
    ("PREPEND X-Flag: yes", True, Note("prepend", "", "X-Flag: yes")),
    ("PREPEND not a header", True, None),
])
def test_access_actions_with_side_effects(value, accepted, note):
    r = make(smtpd_sender_restrictions=("check_sender_access", "texthash:/a"),
             tables={"texthash:/a": Table({"spammer.example": value})})
    d = rcpt(r, "alice@example.com")
    assert d.accepted is accepted
    assert d.notes == ((note,) if note else ())


def test_discard_permits_its_list_and_hold_does_not():
    def sender_list(value):
        return make(smtpd_sender_restrictions=("check_sender_access", "texthash:/a", "reject"),
                    tables={"texthash:/a": Table({"spammer.example": value})})
    assert rcpt(sender_list("DISCARD"), "alice@example.com").accepted
    assert not rcpt(sender_list("HOLD"), "alice@example.com").accepted


def test_warn_note_log_line():
    r = make(smtpd_sender_restrictions=("check_sender_access", "texthash:/a"),
             tables={"texthash:/a": Table({"spammer.example": "WARN looks odd"})})
    ctx = PolicyContext(recipient="alice@example.com", **OUTSIDER)
    assert note_log_text(r.evaluate_rcpt(ctx).notes[0], ctx, queue_id="NOQUEUE") == (
        "NOQUEUE: warn: RCPT from unknown[198.51.100.7]: looks odd; from=<spam@spammer.example> "
        "to=<alice@example.com> proto=ESMTP helo=<spammer.example>")


@pytest.mark.parametrize("value, reply", [
    ("RELAY", ""),
    ("", ""),
    ("450", ""),
    ("DEFER_IF_PERMIT", "450 4.7.1 <spam@spammer.example>: Sender address rejected: Service unavailable"),
    ("DEFER_IF_PERMIT 4.7.26 slow down", "450 4.7.26 <spam@spammer.example>: Sender address rejected: slow down"),
    ("hash:/etc/postfix/other", "451 4.3.5 Server configuration error"),
    ("REJECT\tgo away", "554 5.7.1 <spam@spammer.example>: Sender address rejected: go away"),
])
def test_access_odd_values(value, reply):
    r = make(smtpd_sender_restrictions=("check_sender_access", "texthash:/a"),
             tables={"texthash:/a": Table({"spammer.example": value.replace("\\t", "\t")})})
    assert rcpt(r, "alice@example.com").reply == reply


def test_defer_if_reject_turns_a_later_reject_into_a_deferral():
    r = make(smtpd_sender_restrictions=("check_sender_access", "texthash:/a"),
             smtpd_relay_restrictions=("reject_unauth_destination",),
             tables={"texthash:/a": Table({"spammer.example": "DEFER_IF_REJECT"})})
    assert rcpt(r, "x@remote.example").reply == \
        "450 4.7.1 <spam@spammer.example>: Sender address rejected: Service unavailable"
    assert rcpt(r, "alice@example.com").accepted


def test_defer_if_permit_and_defer_if_reject_restrictions():
    r = make(smtpd_client_restrictions=("defer_if_permit",))
    assert rcpt(r, "alice@example.com").reply == \
        "450 4.7.0 <unknown[198.51.100.7]>: Client host rejected: defer_if_permit requested"
    assert rcpt(r, "x@remote.example").reply.startswith("454 4.7.1")
    r = make(smtpd_client_restrictions=("defer_if_reject",),
             smtpd_relay_restrictions=("reject_unauth_destination",))
    assert rcpt(r, "x@remote.example").reply == \
        "450 4.7.0 <unknown[198.51.100.7]>: Client host rejected: defer_if_reject requested"


# -- order of the lists, reply code rules --------------------------------------------

def test_lists_evaluated_in_postfix_order_and_permit_ends_only_its_list():
    r = make(smtpd_client_restrictions=("permit",),
             smtpd_helo_restrictions=("reject_invalid_helo_hostname",))
    assert rcpt(r, "alice@example.com", helo="x y").reply.startswith("501 5.5.2 <x y>")
    r = make(smtpd_client_restrictions=("reject",), smtpd_relay_restrictions=("reject_unauth_destination",))
    assert "Client host rejected" in rcpt(r, "x@remote.example").reply


def test_delay_reject_no_leaves_client_helo_sender_to_their_stages():
    r = make(smtpd_delay_reject=False, smtpd_client_restrictions=("reject",),
             smtpd_helo_restrictions=("reject",), smtpd_sender_restrictions=("reject",))
    ctx = PolicyContext(recipient="alice@example.com", **OUTSIDER)
    assert r.evaluate_rcpt(ctx).accepted
    assert "Client host rejected" in r.evaluate_client(ctx).reply
    assert "Helo command rejected" in r.evaluate_helo(ctx).reply
    assert "Sender address rejected" in r.evaluate_sender(ctx).reply


def test_delay_reject_no_holds_a_defer_if_permit_for_rcpt():
    # Postfix 3.7.11, smtpd_delay_reject = no: DEFER_IF_PERMIT at the client,
    # HELO or sender stage lets that stage pass; RCPT answers it unless the
    # recipient is refused, the earliest stage's text first.
    r = make(smtpd_delay_reject=False,
             smtpd_client_restrictions=("check_client_access", "texthash:/c"),
             smtpd_helo_restrictions=("check_helo_access", "texthash:/h"),
             smtpd_recipient_restrictions=("check_recipient_access", "texthash:/r"),
             tables={"texthash:/c": Table({"198.51.100.7": "DEFER_IF_PERMIT"}),
                     "texthash:/h": Table({"spammer.example": "DEFER_IF_PERMIT"}),
                     "texthash:/r": Table({"bad@example.com": "REJECT"})})
    ctx = PolicyContext(**OUTSIDER)
    client = r.evaluate_client(ctx)
    assert client.accepted
    assert client.held.reply == ("450 4.7.1 <unknown[198.51.100.7]>: Client host rejected: "
                                 "Service unavailable")
    helo = r.evaluate_helo(PolicyContext(**OUTSIDER, deferred=client.held))
    assert helo.accepted and helo.held is client.held
    assert r.evaluate_helo(ctx).held.reply == ("450 4.7.1 <spammer.example>: Helo command "
                                               "rejected: Service unavailable")
    assert rcpt(r, "alice@example.com", deferred=client.held) == client.held
    assert rcpt(r, "bad@example.com", deferred=client.held).reply == (
        "554 5.7.1 <bad@example.com>: Recipient address rejected: Access denied")
    assert rcpt(r, "alice@example.com").accepted


def test_delay_reject_yes_defers_at_rcpt_without_holding():
    r = make(smtpd_client_restrictions=("check_client_access", "texthash:/c"),
             tables={"texthash:/c": Table({"198.51.100.7": "DEFER_IF_PERMIT"})})
    d = rcpt(r, "alice@example.com")
    assert d.reply.startswith("450 4.7.1 <unknown[198.51.100.7]>: Client host rejected")
    assert d.held is None


@pytest.mark.parametrize("action", ["HOLD", "DISCARD", "FILTER smtp:[127.0.0.1]:10025",
                                    "REDIRECT abuse@example.com", "BCC archive@example.com",
                                    "PREPEND X-Flag: yes"])
def test_delay_reject_no_skips_message_actions_at_client_and_helo(action):
    # Postfix not_in_client_helo(): outside a mail transaction there is no
    # message to act on; the action is DUNNO, with a warning, and the list
    # goes on (so DISCARD does not permit what follows).
    r = make(smtpd_delay_reject=False,
             smtpd_client_restrictions=("check_client_access", "texthash:/c", "reject"),
             smtpd_helo_restrictions=("check_helo_access", "texthash:/h", "reject"),
             smtpd_sender_restrictions=("check_sender_access", "texthash:/s"),
             tables={"texthash:/c": Table({"198.51.100.7": action}),
                     "texthash:/h": Table({"spammer.example": action}),
                     "texthash:/s": Table({"spammer.example": action})})
    ctx = PolicyContext(**OUTSIDER)
    word = action.split()[0]
    for stage, table, rejected in ((r.evaluate_client, "/c", "Client host rejected"),
                                   (r.evaluate_helo, "/h", "Helo command rejected")):
        d = stage(ctx)
        assert rejected in d.reply
        assert d.notes == (Note("warning", f"access table texthash:{table}: with "
                                f"smtpd_delay_reject=no, action {word} is always skipped in "
                                f"Client host or Helo command restrictions"),)
    # In the transaction (MAIL FROM) the action is taken.
    assert r.evaluate_sender(ctx).notes[0].action == word.lower()


def test_soft_bounce_turns_5xx_into_4xx():
    r = make(soft_bounce=True, smtpd_relay_restrictions=("reject_unauth_destination",))
    assert rcpt(r, "x@remote.example").reply == "454 4.7.1 <x@remote.example>: Relay access denied"
    assert rcpt(r, "nobody@example.com").reply.startswith("450 4.1.1 <nobody@example.com>")


def test_soft_bounce_comes_after_defer_if_reject():
    # smtpd_check_reject(): the 5xx becomes the deferral first, so the
    # client is told the deferral's reason, not the softened reject's.
    r = make(soft_bounce=True, smtpd_client_restrictions=("defer_if_reject",),
             smtpd_relay_restrictions=("reject_unauth_destination",))
    assert rcpt(r, "x@remote.example").reply == \
        "450 4.7.0 <unknown[198.51.100.7]>: Client host rejected: defer_if_reject requested"


def test_a_reply_is_cut_to_510_characters_and_made_printable():
    # smtpd_check_reject(): vstring_truncate(error_text, 510) and
    # printable(error_text, ' ') on "CODE DSN text".
    long = "x" * 600
    r = make(smtpd_sender_restrictions=("check_sender_access", "texthash:/a"),
             tables={"texthash:/a": Table({"spammer.example": f"REJECT go\taway {long}"})})
    reply = rcpt(r, "alice@example.com").reply
    assert len(reply) == 510
    assert reply.startswith("554 5.7.1 <spam@spammer.example>: Sender address rejected: go away xx")


@pytest.mark.parametrize("enhanced, code, cls, expected", [
    ("4.7.1", 554, "Recipient address", "5.7.1"),
    ("5.7.1", 454, "Recipient address", "4.7.1"),
    ("5.1.1", 550, "Sender address", "5.1.7"),
    ("5.1.8", 550, "Recipient address", "5.1.2"),
    ("5.1.1", 550, "Helo command", "5.0.0"),
])
def test_dsn_fix(enhanced, code, cls, expected):
    assert dsn_fix(enhanced, code, cls) == expected


def test_warn_if_reject_logs_instead():
    r = make(smtpd_helo_restrictions=("warn_if_reject", "reject_non_fqdn_helo_hostname"))
    ctx = PolicyContext(recipient="alice@example.com", **dict(OUTSIDER, helo="localhost"))
    d = r.evaluate_rcpt(ctx)
    assert d.accepted
    assert note_log_text(d.notes[0], ctx) == (
        "reject_warning: RCPT from unknown[198.51.100.7]: 504 5.5.2 <localhost>: Helo command "
        "rejected: need fully-qualified hostname; from=<spam@spammer.example> "
        "to=<alice@example.com> proto=ESMTP helo=<localhost>")


def test_unknown_restriction_answers_451_and_warns():
    r = make(smtpd_recipient_restrictions=("reject_bogus_thing",))
    assert rcpt(r, "alice@example.com").reply == "451 4.3.5 Server configuration error"
    assert any("reject_bogus_thing" in w for w in r.warnings)


def test_no_relay_protection_at_all_is_a_config_error():
    with pytest.raises(ConfigError) as e:
        make(smtpd_relay_restrictions=(), smtpd_recipient_restrictions=("permit_mynetworks",))
    assert e.value.param == "smtpd_recipient_restrictions"
    make(smtpd_relay_restrictions=(), smtpd_recipient_restrictions=("permit_mynetworks",
                                                                    "reject_unauth_destination"))


def test_log_line_at_mail_stage_has_no_to():
    r = make(smtpd_delay_reject=False, smtpd_sender_restrictions=("reject",))
    ctx = PolicyContext(**OUTSIDER)
    assert reject_log_text(r.evaluate_sender(ctx), ctx, command="MAIL") == (
        "reject: MAIL from unknown[198.51.100.7]: 554 5.7.1 <spam@spammer.example>: Sender address "
        "rejected: Access denied; from=<spam@spammer.example> proto=ESMTP helo=<spammer.example>")


# -- with the real configuration and tables -----------------------------------------

def test_from_config_with_main_cf_and_texthash_tables(tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "vmailbox").write_text("carol@virt.example virt.example/carol/\n")
    (etc / "access").write_text("spammer.example REJECT no spam here\n")
    (etc / "main.cf").write_text(
        "myhostname = mx.example.com\n"
        "mydestination = $myhostname, example.com\n"
        f"virtual_mailbox_domains = virt.example\n"
        f"virtual_mailbox_maps = texthash:{etc}/vmailbox\n"
        "mynetworks = 127.0.0.0/8 [::1]/128\n"
        f"smtpd_sender_restrictions = check_sender_access texthash:{etc}/access\n"
        "local_recipient_maps = inline:{ alice=x }\n")
    r = Restrictions.from_config(load(etc))
    assert rcpt(r, "carol@virt.example", TRUSTED).accepted
    assert rcpt(r, "alice@mx.example.com", TRUSTED).accepted
    assert rcpt(r, "dave@virt.example", TRUSTED).reply.endswith("User unknown in virtual mailbox table")
    assert rcpt(r, "x@remote.example", TRUSTED, client_addr="203.0.113.1").reply == \
        "454 4.7.1 <x@remote.example>: Relay access denied"
    assert rcpt(r, "alice@example.com", OUTSIDER).reply == \
        "554 5.7.1 <spam@spammer.example>: Sender address rejected: no spam here"
    assert rcpt(r, "x@remote.example", TRUSTED, client_addr="::1").accepted


# -- client name, TLS, DNS lists, sender login -------------------------------------

def test_reject_unknown_client_hostnames():
    r = make(smtpd_client_restrictions=("reject_unknown_client_hostname",))
    assert rcpt(r, "alice@example.com").reply == \
        "450 4.7.25 Client host rejected: cannot find your hostname, [198.51.100.7]"
    assert rcpt(r, "alice@example.com", client_name="mx.example.org").accepted
    r = make(smtpd_client_restrictions=("reject_unknown_reverse_client_hostname",),
             unknown_client_reject_code=550)
    assert rcpt(r, "alice@example.com").reply == \
        "550 5.7.1 Client host rejected: cannot find your reverse hostname, [198.51.100.7]"


def test_unknown_client_names_by_how_their_lookups_went():
    # smtpd_check.c: a PTR name that does not resolve back is enough for
    # reject_unknown_reverse_client_hostname; a lookup that failed for now
    # gets 450 whatever unknown_client_reject_code says.
    forged = dict(client_name="unknown", reverse_client_name="mail.example.org",
                  client_name_status="forged", reverse_name_status="ok")
    temp = dict(client_name="unknown", client_name_status="temp", reverse_name_status="temp")
    strict = make(smtpd_client_restrictions=("reject_unknown_client_hostname",),
                  unknown_client_reject_code=550)
    loose = make(smtpd_client_restrictions=("reject_unknown_reverse_client_hostname",),
                 unknown_client_reject_code=550)
    assert rcpt(strict, "alice@example.com", **forged).reply == \
        "550 5.7.25 Client host rejected: cannot find your hostname, [198.51.100.7]"
    assert rcpt(loose, "alice@example.com", **forged).accepted
    assert rcpt(strict, "alice@example.com", **temp).reply == \
        "450 4.7.25 Client host rejected: cannot find your hostname, [198.51.100.7]"
    assert rcpt(loose, "alice@example.com", **temp).reply == \
        "450 4.7.1 Client host rejected: cannot find your reverse hostname, [198.51.100.7]"


def test_reject_plaintext_session():
    r = make(smtpd_sender_restrictions=("reject_plaintext_session",))
    assert rcpt(r, "alice@example.com").reply == "450 4.7.1 Session encryption is required"
    assert rcpt(r, "alice@example.com", tls=True).accepted


def lists(a: dict, txt: dict | None = None, asked: list | None = None):
    """A records callback for the DNS lists: A and TXT records by name
    (a DnsStatus for a failure); a name not in a is not listed."""
    txt = txt or {}

    def records(kind, name):
        if kind not in ("DNSXL", "TXT"):
            return None
        if asked is not None and kind == "DNSXL":
            asked.append(name)
        found = (a if kind == "DNSXL" else txt).get(name, DnsStatus.NOT_FOUND)
        if isinstance(found, DnsStatus):
            return HostRecords(found)
        return HostRecords(DnsStatus.EXISTS, tuple(found))
    return records


def listed_rcpt(r, recipient, records, who=OUTSIDER, **extra):
    return r.evaluate_rcpt(PolicyContext(recipient=recipient, **dict(who, **extra)),
                           records=records)


def test_reject_rbl_client_queries_reversed_address():
    asked = []
    records = lists({"7.100.51.198.zen.example": ["127.0.0.2"]}, asked=asked)
    r = make(smtpd_client_restrictions=("permit_mynetworks", "reject_rbl_client", "zen.example"))
    assert listed_rcpt(r, "alice@example.com", records).reply == \
        "554 5.7.1 Service unavailable; Client host [198.51.100.7] blocked using zen.example"
    assert listed_rcpt(r, "alice@example.com", records, TRUSTED).accepted
    assert listed_rcpt(r, "alice@example.com", records, client_addr="203.0.113.1").accepted
    assert asked == ["7.100.51.198.zen.example", "1.113.0.203.zen.example"]
    v6 = []
    listed_rcpt(r, "alice@example.com", lists({}, asked=v6), client_addr="2001:db8::1")
    assert v6 == ["1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.example"]


def test_the_lookup_is_asked_of_the_caller_first():
    r = make(smtpd_client_restrictions=("reject_rbl_client", "zen.example"))
    with pytest.raises(NeedRecords) as need:
        rcpt(r, "alice@example.com")
    assert need.value.queries == (("DNSXL", "7.100.51.198.zen.example"),)


def test_reject_rhsbl_sender_names_the_whole_address_and_tempfail_is_ignored():
    r = make(smtpd_sender_restrictions=("reject_rhsbl_sender", "dbl.example"))
    records = lists({"spammer.example.dbl.example": ["127.0.1.2"]})
    assert listed_rcpt(r, "alice@example.com", records).reply == (
        "554 5.7.1 Service unavailable; Sender address [spam@spammer.example] blocked "
        "using dbl.example")
    tempfail = lists({"spammer.example.dbl.example": DnsStatus.TEMPFAIL})
    assert listed_rcpt(r, "alice@example.com", tempfail).accepted


def test_the_reply_filter_decides_which_answers_list():
    # Spamhaus answers 127.255.255.x for errors: "=127.0.0.[2..11]" keeps them out.
    r = make(smtpd_client_restrictions=("reject_rbl_client", "zen.example=127.0.0.[2..11]"))
    query = "7.100.51.198.zen.example"
    assert listed_rcpt(r, "alice@example.com", lists({query: ["127.255.255.254"]})).accepted
    assert not listed_rcpt(r, "alice@example.com",
                           lists({query: ["127.255.255.254", "127.0.0.4"]})).accepted
    assert not r.warnings


def test_a_bad_reply_filter_is_a_configuration_error():
    r = make(smtpd_client_restrictions=("reject_rbl_client", "zen.example=127.0.0.[2..x]"))
    assert listed_rcpt(r, "alice@example.com", lists({})).reply == \
        "451 4.3.5 Server configuration error"
    assert r.warnings == ["RBL reply error: bad address pattern: 127.0.0.[2..x]"]


def test_the_txt_records_are_the_reason():
    r = make(smtpd_client_restrictions=("reject_rbl_client", "zen.example"))
    query = "7.100.51.198.zen.example"
    records = lists({query: ["127.0.0.2"]},
                    {query: ["https://zen.example/q/198.51.100.7", "listed $today"]})
    assert listed_rcpt(r, "alice@example.com", records).reply == (
        "554 5.7.1 Service unavailable; Client host [198.51.100.7] blocked using "
        "zen.example; https://zen.example/q/198.51.100.7 / listed $today")


def test_rbl_reply_maps_and_default_rbl_reply():
    tables = {"texthash:/rbl": Table({
        "zen.example=127.0.0.2": "$rbl_code 5.7.9 Go away $client_address ($rbl_what)",
        "bad.example": "$rbl_code is not a code",
        "worse.example": "Listed by $rbl_domain"})}
    r = make(tables, rbl_reply_maps=("texthash:/rbl",),
             default_rbl_reply="$rbl_code Blocked by $rbl_domain: $rbl_reason",
             smtpd_client_restrictions=("reject_rbl_client", "zen.example=127.0.0.2",
                                        "reject_rbl_client", "bad.example",
                                        "reject_rbl_client", "worse.example",
                                        "reject_rbl_client", "other.example"))
    q = "7.100.51.198."
    d = listed_rcpt(r, "alice@example.com", lists({q + "zen.example": ["127.0.0.2"]}))
    assert d.reply == "554 5.7.9 Go away 198.51.100.7 (198.51.100.7)"
    d = listed_rcpt(r, "alice@example.com", lists({q + "other.example": ["127.0.0.2"]},
                                                   {q + "other.example": ["why"]}))
    assert d.reply == "554 5.7.1 Blocked by other.example: why"
    # A template that makes no reply: Postfix's warning and its generic reply.
    d = listed_rcpt(r, "alice@example.com", lists({q + "worse.example": ["127.0.0.2"]}))
    assert d.reply == "450 4.7.1 Service unavailable"
    assert [n.text for n in d.notes] == [
        "rbl response code configuration error: Listed by worse.example"]


def test_permit_dnswl_client_permits_but_never_opens_a_relay():
    r = make(smtpd_recipient_restrictions=("permit_dnswl_client", "list.dnswl.example",
                                           "reject_unauth_destination",
                                           "reject_rbl_client", "zen.example"))
    q = "7.100.51.198."
    both = lists({q + "list.dnswl.example": ["127.0.10.1"], q + "zen.example": ["127.0.0.2"]})
    assert listed_rcpt(r, "alice@example.com", both).accepted
    assert listed_rcpt(r, "x@remote.example", both).reply.endswith(
        "<x@remote.example>: Relay access denied")
    blocked = lists({q + "zen.example": ["127.0.0.2"]})
    assert listed_rcpt(r, "alice@example.com", blocked).reply.startswith("554 5.7.1 Service")


def test_permit_dnswl_client_tempfail_defers_a_later_reject():
    r = make(smtpd_recipient_restrictions=("permit_dnswl_client", "list.dnswl.example",
                                           "reject_rbl_client", "zen.example"))
    q = "7.100.51.198."
    records = lists({q + "list.dnswl.example": DnsStatus.TEMPFAIL, q + "zen.example": ["127.0.0.2"]})
    assert listed_rcpt(r, "alice@example.com", records).reply == \
        "450 4.7.1 <198.51.100.7>: Client host rejected: Service unavailable"


def test_unauth_pipelining_refuses_a_client_that_sent_ahead():
    r = make(smtpd_data_restrictions=("reject_unauth_pipelining",))
    assert r.evaluate_data(PolicyContext(**OUTSIDER)).accepted and not r.warnings
    assert r.evaluate_data(PolicyContext(**OUTSIDER, ill_pipelining=True)).reply == \
        "503 5.5.0 <DATA>: Data command rejected: Improper use of SMTP command pipelining"


def test_data_restrictions_reply_name():
    r = make(smtpd_data_restrictions=("reject",))
    assert r.evaluate_data(PolicyContext(**OUTSIDER)).reply == \
        "554 5.7.1 <DATA>: Data command rejected: Access denied"


def test_end_of_data_restrictions_reply_name():
    r = make(smtpd_end_of_data_restrictions=("reject",))
    ctx = PolicyContext(**OUTSIDER)
    assert r.evaluate_eod(ctx).reply == \
        "554 5.7.1 <END-OF-MESSAGE>: End-of-data rejected: Access denied"
    assert r.evaluate_data(ctx).accepted


def test_sender_login_mismatch():
    logins = Table({"alice@example.com": "alice, alice2", "@shared.example": "bob"})
    r = make(smtpd_sender_login_maps=("texthash:/logins",),
             smtpd_sender_restrictions=("reject_sender_login_mismatch",),
             tables={"texthash:/logins": logins})
    assert rcpt(r, "x@remote.example", sasl_user="alice2", sender="alice@example.com").accepted
    assert rcpt(r, "x@remote.example", sasl_user="bob", sender="any@shared.example").accepted
    assert rcpt(r, "x@remote.example", sasl_user="bob", sender="alice@example.com").reply == \
        "553 5.7.1 <alice@example.com>: Sender address rejected: not owned by user bob"
    assert rcpt(r, "alice@example.com", OUTSIDER, sender="alice@example.com").reply == \
        "553 5.7.1 <alice@example.com>: Sender address rejected: not logged in"
    assert rcpt(r, "alice@example.com", OUTSIDER, sender="nobody@elsewhere.example").accepted


@pytest.mark.parametrize("maps", [None, "proxy:unix:passwd.byname", "unix:passwd.byname"])
def test_local_users_from_the_password_file(tmp_path, maps):
    import pwd
    user = pwd.getpwuid(0).pw_name
    etc = tmp_path / "etc"
    etc.mkdir()
    text = "myhostname = mx.example.com\nmydestination = example.com\n"
    if maps:
        text += f"local_recipient_maps = {maps}\n"
    (etc / "main.cf").write_text(text)
    r = Restrictions.from_config(load(etc))
    assert rcpt(r, f"{user}@example.com").accepted
    assert rcpt(r, "no-such-user-4711@example.com").reply == (
        "550 5.1.1 <no-such-user-4711@example.com>: Recipient address rejected: "
        "User unknown in local recipient table")


def test_parameters_outside_the_config_table_are_read_from_main_cf(tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "main.cf").write_text(
        "myhostname = mx.example.com\nmydestination = example.com\nlocal_recipient_maps =\n"
        "smtpd_relay_restrictions = reject_unauth_destination\n"
        "relay_domains_reject_code = 550\nallow_percent_hack = no\n"
        "parent_domain_matches_subdomains = smtpd_access_maps, mynetworks\n")
    r = Restrictions.from_config(load(etc))
    assert rcpt(r, "x@remote.example").reply == "550 5.7.1 <x@remote.example>: Relay access denied"
    assert r.resolve("u%remote.example@example.com").cls is DomainClass.LOCAL
    (etc / "main.cf").write_text("relay_domains_reject_code = lots\n")
    with pytest.raises(ConfigError):
        Restrictions.from_config(load(etc))


def test_postmaster_is_always_accepted():
    r = make(smtpd_client_restrictions=("reject",))
    assert rcpt(r, "postmaster").accepted and rcpt(r, "Postmaster").accepted
    # postmaster@ours is exempt from the local user table, not from the lists
    assert rcpt(make(), "postmaster@example.com").accepted
    assert rcpt(make(), "MAILER-DAEMON@example.com").accepted
    assert not rcpt(r, "postmaster@example.com").accepted
    assert not rcpt(make(), "postmaster@virt.example").accepted


def test_restriction_classes():
    r = make(smtpd_restriction_classes=("trusted_only", "loop"),
             trusted_only=("permit_mynetworks", "reject"), loop=("loop",),
             smtpd_recipient_restrictions=("check_recipient_access", "texthash:/a"),
             tables={"texthash:/a": Table({"alice@example.com": "trusted_only",
                                          "bob@example.com": "loop"})})
    assert rcpt(r, "alice@example.com", TRUSTED).accepted
    assert rcpt(r, "alice@example.com").reply == \
        "554 5.7.1 <alice@example.com>: Recipient address rejected: Access denied"
    # a class that names itself ends like Postfix's "unreasonable recursion"
    assert rcpt(r, "bob@example.com").reply == "451 4.3.5 Server configuration error"
    r = make(smtpd_restriction_classes=("strict",), strict=("reject_non_fqdn_helo_hostname",),
             smtpd_helo_restrictions=("strict",))
    assert "need fully-qualified hostname" in rcpt(r, "alice@example.com", helo="localhost").reply


def test_rhsbl_skips_numerical_names():
    asked = []
    r = make(smtpd_helo_restrictions=("reject_rhsbl_helo", "dbl.example"))
    listed_rcpt(r, "alice@example.com", lists({}, asked=asked), helo="host.123")
    assert asked == []


def test_reject_multi_recipient_bounce():
    # Postfix: the second recipient of a null-sender transaction at RCPT,
    # more than one in all at DATA; any sender but <> passes.
    r = make(smtpd_recipient_restrictions=("reject_multi_recipient_bounce",),
             smtpd_data_restrictions=("reject_multi_recipient_bounce",))
    bounce = dict(OUTSIDER, sender="")
    assert rcpt(r, "alice@example.com", bounce, rcpt_count=0).accepted
    assert rcpt(r, "bob@example.com", bounce, rcpt_count=1).reply == \
        "550 5.5.3 <bob@example.com>: Recipient address rejected: Multi-recipient bounce"
    assert rcpt(r, "bob@example.com", OUTSIDER, rcpt_count=1).accepted
    assert r.evaluate_data(PolicyContext(**bounce, rcpt_count=1)).accepted
    assert r.evaluate_data(PolicyContext(**bounce, rcpt_count=2)).reply == \
        "550 5.5.3 <DATA>: Data command rejected: Multi-recipient bounce"


def test_permit_inet_interfaces():
    # The client connects from one of our own addresses; "all" counts loopback.
    r = make(inet_interfaces=("192.0.2.25", "loopback-only"),
             smtpd_relay_restrictions=("permit_inet_interfaces", "reject_unauth_destination"))
    for addr, accepted in (("192.0.2.25", True), ("127.0.0.1", True), ("::1", True),
                           ("192.0.2.26", False)):
        d = rcpt(r, "x@remote.example", OUTSIDER, client_addr=addr)
        assert d.accepted is accepted, addr


# -- client certificates and SASL login names (smtpd_check.c) ------------------

CERT = "AA:BB:CC"
PKEY = "11:22:33"
CERT_OUTSIDER = dict(client_name="unknown", client_addr="198.51.100.7", helo="c.example",
                     sender="a@remote.example", tls=True)
WITH_CERT = dict(CERT_OUTSIDER, ccert_cn="client.example", ccert_fingerprints=(CERT, PKEY))


def with_relay_list(relay_list, tables=None, **over):
    return make(tables, smtpd_relay_restrictions=relay_list, **over)


def relay(r, **who):
    return r.evaluate_rcpt(PolicyContext(recipient="x@remote.example", **who))


RELAY_BY_CERT = ("permit_tls_clientcerts", "reject_unauth_destination")


@pytest.mark.parametrize("listed", [CERT, PKEY])
def test_permit_tls_clientcerts_by_certificate_or_public_key_fingerprint(listed):
    certs = Table({listed: "client.example"})
    r = with_relay_list(RELAY_BY_CERT, {"hash:/certs": certs}, relay_clientcerts=("hash:/certs",))
    assert relay(r, **WITH_CERT).accepted
    assert certs.keys[0] == CERT


def test_permit_tls_clientcerts_needs_a_listed_certificate():
    r = with_relay_list(RELAY_BY_CERT, {"hash:/certs": Table({"FF:FF": "other"})},
             relay_clientcerts=("hash:/certs",))
    assert relay(r, **WITH_CERT).reply == "554 5.7.1 <x@remote.example>: Relay access denied"
    assert relay(r, **CERT_OUTSIDER).reply == "554 5.7.1 <x@remote.example>: Relay access denied"


def test_permit_tls_all_clientcerts_needs_a_trusted_chain():
    r = with_relay_list(("permit_tls_all_clientcerts", "reject_unauth_destination"))
    assert relay(r, **WITH_CERT, ccert_trusted=True).accepted
    assert not relay(r, **WITH_CERT).accepted


def test_check_ccert_access_rejects_with_the_certificate_cn():
    table = Table({PKEY: "REJECT no such client"})
    r = with_relay_list(("check_ccert_access", "hash:/ccert", "permit"), {"hash:/ccert": table})
    d = relay(r, **WITH_CERT)
    assert d.reply == "554 5.7.1 <client.example>: Client certificate rejected: no such client"
    assert table.keys == [CERT, PKEY]


def test_check_ccert_access_dunno_for_the_certificate_tries_the_public_key():
    table = Table({CERT: "DUNNO", PKEY: "OK"})
    r = with_relay_list(("check_ccert_access", "hash:/ccert", "reject_unauth_destination"),
             {"hash:/ccert": table})
    assert relay(r, **WITH_CERT).accepted
    assert table.keys == [CERT, PKEY]


def test_check_ccert_access_without_a_certificate_looks_nothing_up():
    table = Table({CERT: "OK"})
    r = with_relay_list(("check_ccert_access", "hash:/ccert", "reject_unauth_destination"),
             {"hash:/ccert": table})
    assert not relay(r, **CERT_OUTSIDER).accepted
    assert table.keys == []


def test_check_sasl_access_looks_up_the_login_name():
    table = Table({"bob@example.com": "REJECT account suspended"})
    r = with_relay_list(("check_sasl_access", "hash:/sasl", "permit"), {"hash:/sasl": table})
    d = relay(r, **CERT_OUTSIDER, sasl_user="bob@example.com")
    assert d.reply == "554 5.7.1 <bob@example.com>: SASL login name rejected: account suspended"
    assert relay(r, **CERT_OUTSIDER, sasl_user="carol").accepted
    assert table.keys == ["bob@example.com", "carol"]
    assert relay(r, **CERT_OUTSIDER).accepted                 # not authenticated: nothing looked up
    assert len(table.keys) == 2


def test_etrn_restrictions_name_the_domain_and_see_the_client_ones_first():
    tables = {"texthash:/etrn": Table({"example.com": "OK", "bad.example": "REJECT no flush"})}
    r = make(tables, smtpd_etrn_restrictions=("check_etrn_access", "texthash:/etrn", "reject"))
    r2 = make({**tables, "texthash:/clients": Table({"198.51.100.7": "REJECT"})},
              smtpd_etrn_restrictions=("check_etrn_access", "texthash:/etrn"),
              smtpd_client_restrictions=("check_client_access", "texthash:/clients"))
    etrn = dict(OUTSIDER, sender=None)
    assert r.evaluate_etrn(PolicyContext(**etrn, etrn_domain="sub.example.com")).accepted
    assert r.evaluate_etrn(PolicyContext(**etrn, etrn_domain="bad.example")).reply == \
        "554 5.7.1 <bad.example>: Etrn command rejected: no flush"
    assert r.evaluate_etrn(PolicyContext(**etrn, etrn_domain="other.example")).reply == \
        "554 5.7.1 <other.example>: Etrn command rejected: Access denied"
    # smtpd_delay_reject: the client restrictions come first.
    assert r2.evaluate_etrn(PolicyContext(**etrn, etrn_domain="example.com")).reply == \
        "554 5.7.1 <unknown[198.51.100.7]>: Client host rejected: Access denied"
