"""Relay safety as a property: no address built from routing operators and
domain names gets an untrusted client's mail to a domain that is not ours."""

import sys
from pathlib import Path

from hypothesis import example, given, settings, strategies as st

from mailsys.policy.resolve import DomainClass, dequote
from mailsys.policy.restrictions import PolicyContext, Restrictions

sys.path.insert(0, str(Path(__file__).parents[1]))      # tests/memtable.py (tests/ is no package)
from memtable import Table  # noqa: E402


TABLES = {"texthash:/local": Table(alice="x", bob="x"),
          "texthash:/vmailbox": Table({"carol@virt.example": "x"})}

R = Restrictions(None, lambda spec, cfg: TABLES[spec], overrides={
    "mydestination": ("example.com", "localhost"),
    "virtual_mailbox_domains": ("virt.example",),
    "virtual_mailbox_maps": ("texthash:/vmailbox",),
    "relay_domains": ("relay.example",),
    "mynetworks": ("127.0.0.0/8",),
    "local_recipient_maps": ("texthash:/local",),
})

TOKENS = ["alice", "bob", "carol", "remote.example", "example.com", "localhost", "virt.example",
          "relay.example", "@", "@", "%", "!", '"', ":", ",", ".", "\\", "[", "]", "+", " "]

# A local part of tokens, then one of our domains (or none) so that most
# examples get past the first domain check and exercise the rewriting.
SUFFIXES = ["@example.com", "@relay.example", "@virt.example", "@localhost", "@example.com.", ""]
addresses = st.builds(lambda parts, suffix: "".join(parts) + suffix,
                      st.lists(st.sampled_from(TOKENS), min_size=1, max_size=7),
                      st.sampled_from(SUFFIXES)) \
    .filter(lambda a: not a.startswith("@"))   # source routes are stripped by design


@settings(max_examples=400, deadline=None)
@given(addresses)
@example("remote.example@.relay.example@example.com")      # an empty label is no subdomain
@example("remote.example@alice.relay.example@example.com")  # a subdomain of relay.example
@example("remote.example:alice!@example.com")   # a bang path with nothing after the bang
@example("alice@..relay.example@example.com")     # two empty labels are no subdomain either
def test_untrusted_mail_only_reaches_our_domains(addr):
    d = R.evaluate_rcpt(PolicyContext("unknown", "198.51.100.7", "h.example", "s@h.example", addr))
    assert d.accepted or d.code in (454, 550), d.reply
    if not d.accepted:
        return
    # Where the mail would go after resolution: never to a domain that is
    # not ours, and with no routing operator left in the local part to
    # carry it further. relay.example matches its subdomains
    # (parent_domain_matches_subdomains), but an empty label is no subdomain.
    resolved = R.resolve(addr)
    assert resolved.cls is not DomainClass.DEFAULT, (addr, resolved)
    assert not any(op in resolved.local for op in "@%!"), (addr, resolved)
    if resolved.cls is DomainClass.RELAY:
        domain = resolved.domain
        assert domain == "relay.example" or (
            domain.endswith(".relay.example") and "" not in domain.split(".")), (addr, resolved)
    else:
        # One of our final destinations: a user we have, by any spelling.
        assert resolved.domain in ("example.com", "localhost", "virt.example"), (addr, resolved)
        assert dequote(resolved.local) in ("alice", "bob", "carol"), (addr, resolved)


@settings(max_examples=200, deadline=None)
@given(addresses)
def test_evaluation_never_raises_for_trusted_clients(addr):
    d = R.evaluate_rcpt(PolicyContext("localhost", "127.0.0.1", "h", "s@h.example", addr))
    assert d.accepted or d.code in (550,), d.reply
