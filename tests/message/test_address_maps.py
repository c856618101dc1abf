"""address_maps: cleanup's canonical, masquerade, virtual alias and BCC rewriting, as Postfix's."""

import sys
from pathlib import Path

import pytest

from mailsys.message.address_maps import AddressMaps, AliasError, masquerade
from mailsys.message.envelope import Notify, Recipient

sys.path.insert(0, str(Path(__file__).parents[1]))      # tests/memtable.py (tests/ is no package)
from memtable import Table  # noqa: E402


def maps(**kw):
    kw.setdefault("myorigin", "example.com")
    kw.setdefault("delimiter", "+")
    kw.setdefault("is_local", lambda d: d == "example.com")
    return AddressMaps(**kw)


def no_warning(text):
    raise AssertionError(text)


def test_lookup_keys_in_mail_addr_find_order():
    t = Table({}, fold=True)
    m = maps(virtual_alias=[t])
    m.expand("joe+ext@example.com")
    assert t.keys == ["joe+ext@example.com", "joe@example.com", "joe+ext", "joe", "@example.com"]
    t.keys.clear()
    m.expand("joe+ext@remote.example")          # not ours: no bare user keys
    assert t.keys == ["joe+ext@remote.example", "joe@remote.example", "@remote.example"]


@pytest.mark.parametrize("entries, address, expected", [
    ({"a@example.com": "b@example.net"}, "a@example.com", ["b@example.net"]),
    # An unmatched extension goes into every result (propagate_unmatched_extensions).
    ({"a@example.com": "b@example.net, c"}, "a+x@example.com", ["b+x@example.net", "c+x@example.com"]),
    ({"a+x@example.com": "b@example.net"}, "a+x@example.com", ["b@example.net"]),
    # @otherdomain keeps the user.
    ({"@example.com": "@example.net"}, "a+x@example.com", ["a+x@example.net"]),
    ({"a": "root"}, "a@example.com", ["root@example.com"]),
    ({"a": "<b@example.org> c@example.org"}, "a@example.com", ["b@example.org", "c@example.org"]),
])
def test_virtual_alias_results(entries, address, expected):
    assert maps(virtual_alias=[Table(entries, fold=True)]).expand(address) == expected


def test_extension_not_propagated_when_switched_off():
    m = maps(virtual_alias=[Table({"a@example.com": "b@example.net"}, fold=True)], propagate=frozenset())
    assert m.expand("a+x@example.com") == ["b@example.net"]


def test_expansion_is_recursive_and_an_address_may_keep_itself():
    t = Table({"list@example.com": "ann@example.com, bob@example.com",
               "bob@example.com": "bob@example.com, bob@backup.example",
               "ann@example.com": "ann@elsewhere.example"}, fold=True)
    assert maps(virtual_alias=[t]).expand("list@example.com") == [
        "ann@elsewhere.example", "bob@example.com", "bob@backup.example"]


def test_a_loop_is_an_alias_expansion_error():
    m = maps(virtual_alias=[Table({"a@example.com": "b@example.com",
                                   "b@example.com": "a@example.com"}, fold=True)], recursion_limit=20)
    with pytest.raises(AliasError, match="unreasonable virtual_alias_maps map nesting for a@example.com"):
        m.expand("a@example.com")


def test_too_many_addresses_is_an_alias_expansion_error():
    many = ", ".join(f"u{i}@example.net" for i in range(6))
    m = maps(virtual_alias=[Table({"a@example.com": many}, fold=True)], expansion_limit=5)
    with pytest.raises(AliasError, match="map expansion size for a@example.com -- message not accepted"):
        m.expand("a@example.com")


def test_canonical_is_one_to_one_and_repeats_to_a_fixed_point():
    warnings = []
    t = Table({"root@host.example.com": "admin@example.com, other@example.com",
               "admin@example.com": "Admin@example.com"}, fold=True)
    m = maps(canonical_sender=[t])
    assert m.sender("root@host.example.com", warnings.append) == "Admin@example.com"
    assert warnings == ["multi-valued canonical_maps entry for root@host.example.com"]
    assert m.sender("", no_warning) == ""


def test_sender_canonical_before_canonical_then_masquerading():
    m = maps(sender_canonical=[Table({"a@x.example.com": "b@y.example.com"}, fold=True)],
             canonical_sender=[Table({"b@y.example.com": "c@mail.example.com"}, fold=True)],
             masquerade_domains=("example.com",))
    assert m.sender("a@x.example.com", no_warning) == "c@example.com"


@pytest.mark.parametrize("domains, address, expected", [
    (("example.com",), "u@host.example.com", "u@example.com"),
    (("example.com",), "u@example.com", "u@example.com"),
    (("example.com",), "u@badexample.com", "u@badexample.com"),
    # The first match decides: a longer domain first keeps more.
    (("sub.example.com", "example.com"), "u@a.sub.example.com", "u@sub.example.com"),
    (("!sub.example.com", "example.com"), "u@a.sub.example.com", "u@a.sub.example.com"),
    (("example.com",), "root@host.example.com", "root@host.example.com"),
])
def test_masquerade(domains, address, expected):
    assert masquerade(address, domains, frozenset({"root"})) == expected


def test_envelope_keeps_the_original_and_adds_bcc_once():
    m = maps(virtual_alias=[Table({"sales@example.com": "ann@example.net, bob@example.net",
                                   "info@example.com": "ann@example.net"}, fold=True)],
             always_bcc="archive@example.org",
             sender_bcc=[Table({"boss@example.com": "audit@example.org"}, fold=True)],
             recipient_bcc=[Table({"@example.com": "archive@example.org"}, fold=True)])
    sender, rcpts = m.envelope("boss@example.com", [
        Recipient("sales@example.com", orcpt="rfc822;sales@example.com"),
        Recipient("info@example.com"), Recipient("carol@example.net")], no_warning)
    assert sender == "boss@example.com"
    assert rcpts == (
        Recipient("ann@example.net", orig="sales@example.com", orcpt="rfc822;sales@example.com"),
        Recipient("bob@example.net", orig="sales@example.com", orcpt="rfc822;sales@example.com"),
        Recipient("carol@example.net"),
        Recipient("archive@example.org", notify=(Notify.NEVER,)),
        Recipient("audit@example.org", notify=(Notify.NEVER,)))


def test_nothing_configured_is_inactive():
    assert not maps().active
    assert maps(always_bcc="a@b").active


def test_header_rewriter_qualifies_maps_and_masquerades_by_class():
    m = maps(header_sender_canonical=[Table({"root@example.com": "admin@example.com"}, fold=True)],
             masquerade_domains=("example.com",), masquerade_header_recipient=False)
    rewrite = m.header_rewriter("example.com", True, no_warning)
    assert rewrite("from", "From: Root <root>") == "From: Root <admin@example.com>"
    assert rewrite("reply-to", "Reply-To: x@mail.example.com") == "Reply-To: x@example.com"
    # Recipients: qualified, not masqueraded (masquerade_classes without header_recipient).
    assert rewrite("to", "To: bob, carol@mail.example.com (Carol)") == \
        "To: bob@example.com, carol@mail.example.com (Carol)"
    assert rewrite("cc", "Cc: undisclosed-recipients:;") is None


def test_header_rewriter_without_mappings_only_qualifies():
    m = maps(header_sender_canonical=[Table({"root@example.com": "admin@example.com"}, fold=True)])
    rewrite = m.header_rewriter("example.com", False, no_warning)
    assert rewrite("from", "From: root") == "From: root@example.com"
    assert m.header_rewriter("", False, no_warning)("from", "From: root") is None


def test_header_rewriter_keeps_header_address_token_limit_tokens_of_a_header_it_changes():
    # Postfix 3.7.11, header_address_token_limit = 5, a local submission:
    # "To: a, b@x.example, c, d@y.example" was queued as
    # "To: a@bench.localdomain, b@x"; "Cc: one@x.example (c1), two@x.example",
    # which needs no rewriting, stayed whole.
    rewrite = maps(token_limit=5).header_rewriter("bench.localdomain", False, no_warning)
    assert rewrite("to", "To: a, b@x.example, c, d@y.example") == "To: a@bench.localdomain, b@x"
    assert rewrite("cc", "Cc: one@x.example (c1), two@x.example") is None
    assert maps().header_rewriter("h.example", False, no_warning)(
        "to", "To: a, b@x.example, c") == "To: a@h.example, b@x.example, c@h.example"


def test_an_at_domain_match_leaves_no_extension_to_propagate():
    # mail_addr_find() sets the unmatched extension only for a key with the
    # user in it: "@domain" keeps user+ext whole, and a catch-all result
    # gets no extension (Postfix 3.7.11 smtp_generic_maps: dave+x@old.example
    # went out as dave+x@new.example with propagation off for generic).
    m = maps(virtual_alias=[Table({"@example.net": "catchall@example.org"}, fold=True)])
    assert m.expand("info+foo@example.net") == ["catchall@example.org"]
    kept = maps(canonical_sender=[Table({"@old.example": "@new.example"}, fold=True)],
                propagate=frozenset())
    assert kept.sender("dave+x@old.example", no_warning) == "dave+x@new.example"
