"""postscreen's pure parts: the access list, DNSBL sites and scores (the SMTP engine and
the test state are in test_postscreen_engine.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mailsys.errors import ConfigError
from mailsys.policy.netmatch import ClientMatcher
from mailsys.policy.postscreen_access import DUNNO, PERMIT, REJECT, AccessList
from mailsys.policy.postscreen_dnsbl import parse_site, parse_sites, query_domains, query_name, \
    score_answers

sys.path.insert(0, str(Path(__file__).parents[1]))      # tests/memtable.py (tests/ is no package)
from memtable import Table  # noqa: E402


def test_access_list_first_deciding_element_wins():
    tables = {"cidr:a": Table({"192.0.2.1": "permit", "192.0.2.2": "REJECT",
                               "192.0.2.3": "dunno", "192.0.2.4": "bogus"}),
              "cidr:b": Table({"192.0.2.3": "reject", "192.0.2.4": "reject"})}
    acl = AccessList.compile(["permit_mynetworks", "cidr:a", "cidr:b"],
                             ClientMatcher.compile(["198.51.100.0/24"]), tables.__getitem__)
    warnings: list[str] = []
    assert acl.verdict("198.51.100.9") == PERMIT
    assert acl.verdict("192.0.2.1") == PERMIT
    assert acl.verdict("192.0.2.2") == REJECT
    assert acl.verdict("192.0.2.3") == REJECT          # dunno in a table: on to the next
    assert acl.verdict("192.0.2.4", warnings) == REJECT
    assert warnings == ["cidr:a: unknown action for 192.0.2.4: bogus"]
    assert acl.verdict("203.0.113.1") == DUNNO


def test_access_list_rejects_unknown_words():
    with pytest.raises(ConfigError):
        AccessList.compile(["permit_sasl_authenticated"], ClientMatcher.compile([]), lambda s: None)


def test_site_syntax_filter_and_weight():
    site = parse_site("zen.example=127.0.[0;1].[2..4;9]*-2")
    assert (site.domain, site.weight) == ("zen.example", -2)
    assert site.matches("127.0.1.3") and site.matches("127.0.0.9")
    assert not site.matches("127.0.1.5") and not site.matches("127.0.2.2")
    assert parse_site("bl.example").filter is None and parse_site("bl.example").weight == 1
    assert parse_site("bl.example=127.0.0.2").matches("127.0.0.2")
    assert not parse_site("bl.example=127.0.0.2").matches("127.0.0.3")
    for bad in ("bl.example=127.0.0", "bl.example=127.0.0.x", "bl.example=127.0.0.[a..b]"):
        with pytest.raises(ConfigError):
            parse_site(bad)


def test_scores_add_weights_once_per_entry():
    sites = parse_sites(["zen.example=127.0.0.[10;11]*8", "zen.example*3", "b.example*2",
                         "wl.example=127.0.[0..255].[1..3]*-5"])
    assert query_domains(sites) == ("zen.example", "b.example", "wl.example")
    assert score_answers(sites, {"zen.example": ["127.0.0.10", "127.0.0.11"]}) == (11, "zen.example")
    assert score_answers(sites, {"zen.example": ["127.0.0.2"], "b.example": ["127.0.0.2"]}) \
        == (5, "zen.example")
    assert score_answers(sites, {"wl.example": ["127.0.10.2"]}) == (-5, "")
    assert score_answers(sites, {}) == (0, "")


def test_query_names():
    assert query_name("192.0.2.7", "zen.example") == "7.2.0.192.zen.example"
    assert query_name("2001:db8::1", "bl.example").startswith("1.0.0.0.")
    assert query_name("2001:db8::1", "bl.example").endswith(".8.b.d.0.1.0.0.2.bl.example")
