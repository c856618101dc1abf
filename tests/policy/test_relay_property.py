"""Relay safety as a property: no address built from routing operators and
domain names gets an untrusted client's mail to a domain that is not ours."""

from hypothesis import example, given, settings, strategies as st

from mailsys.policy.restrictions import PolicyContext, Restrictions


class Table(dict):
    def lookup(self, key):
        return self.get(key)


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
def test_untrusted_mail_only_reaches_our_domains(addr):
    d = R.evaluate_rcpt(PolicyContext("unknown", "198.51.100.7", "h.example", "s@h.example", addr))
    assert d.accepted or d.code in (454, 550), d.reply
    if d.accepted and "remote.example" in addr:
        # Our users are alice, bob and carol, so the only accepted way to
        # name remote.example is as a plain local part at relay.example or
        # a subdomain of it (relay_domains matches subdomains by default:
        # parent_domain_matches_subdomains), also spelled with a bang path
        # through a local domain: relay.example is named, and after
        # resolution no routing operator is left to carry the mail further.
        assert "relay.example" in addr, addr
        resolved = R.resolve(addr)
        domain = resolved.domain
        assert domain == "relay.example" or (
            domain.endswith(".relay.example") and "" not in domain.split(".")), addr
        assert not any(op in resolved.local for op in "@%!"), addr


@settings(max_examples=200, deadline=None)
@given(addresses)
def test_evaluation_never_raises_for_trusted_clients(addr):
    d = R.evaluate_rcpt(PolicyContext("localhost", "127.0.0.1", "h", "s@h.example", addr))
    assert d.accepted or d.code in (550,), d.reply
