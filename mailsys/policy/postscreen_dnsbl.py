"""postscreen_dnsbl - postscreen_dnsbl_sites: sites, filters, weights and the score.

SYNOPSIS
    sites = parse_sites(cfg.postscreen_dnsbl_sites)
    for domain in query_domains(sites): name = query_name("192.0.2.7", domain)
    score, first = score_answers(sites, {domain: ["127.0.0.2", ...]})

DESCRIPTION
    Postfix's psc_dnsbl.c and the site syntax of postconf(5):

        domain[=filter][*weight]

    domain   the list's DNS zone; the client 192.0.2.7 is looked up as
             7.2.0.192.domain (an IPv6 address as its reversed nibbles).
    filter   which A records count (mailsys.policy.dnsxl_filter:
             "127.0.0.[2..11]", "127.0.[0..255].[1;3]"). Without a filter
             every A record counts.
    weight   added to the score when the site lists the client (default 1);
             a negative weight ("list.dnswl.org*-5") lowers it, for allow
             lists.

    The same domain may appear several times with different filters and
    weights (zen.spamhaus.org=127.0.0.[10;11]*8 zen.spamhaus.org*3): it is
    queried once and each entry whose filter matches one of the answers adds
    its weight once. The score decides against postscreen_dnsbl_threshold
    (fail at or above) and postscreen_dnsbl_allowlist_threshold (at or below
    a negative value: skip the other tests). The site named in replies is
    the first one, in configuration order, with a positive weight that
    listed the client; postscreen_dnsbl_reply_map may show another name for
    it.

    Pure: the lookups themselves are the caller's.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping

from mailsys.errors import ConfigError
from mailsys.frozen import frozen
from mailsys.policy.dnsxl_filter import ReplyFilter

_SITE = re.compile(r"(?P<domain>[^=*]+)(?:=(?P<filter>[^*]+))?(?:\*(?P<weight>-?\d+))?\Z")


@frozen
class Site:
    domain: str
    filter: ReplyFilter | None           # None: every A record counts
    weight: int = 1
    text: str = ""

    def matches(self, address: str) -> bool:
        """Whether an A record (a dotted quad) passes this site's filter."""
        return self.filter is None or self.filter.matches(address)


def parse_site(text: str) -> Site:
    m = _SITE.match(text.strip())
    if m is None:
        raise ConfigError(f"bad postscreen_dnsbl_sites entry: {text}", param="postscreen_dnsbl_sites")
    pattern = m["filter"]
    filt = None
    if pattern:
        try:
            filt = ReplyFilter.parse(pattern)
        except ValueError:
            raise ConfigError(f"bad postscreen_dnsbl_sites filter in {text!r}: {pattern}",
                              param="postscreen_dnsbl_sites") from None
    weight = int(m["weight"]) if m["weight"] is not None else 1
    return Site(m["domain"].lower().rstrip("."), filt, weight, text)


def parse_sites(items: Iterable[str]) -> tuple[Site, ...]:
    return tuple(parse_site(item) for item in items)


def query_domains(sites: Iterable[Site]) -> tuple[str, ...]:
    """Each DNS zone once, in configuration order."""
    return tuple(dict.fromkeys(site.domain for site in sites))


def query_name(addr: str, domain: str) -> str:
    """The name looked up for client addr in one zone."""
    ip = ipaddress.ip_address(addr)
    reverse = ip.reverse_pointer.rsplit(".", 2)[0]      # without in-addr.arpa / ip6.arpa
    return f"{reverse}.{domain}"


def score_answers(sites: Iterable[Site], answers: Mapping[str, Iterable[str]]
                  ) -> tuple[int, str]:
    """The combined weight of the sites that list the client, and the
    domain to name in a reply ("" when no positive site listed it).
    answers maps each zone to the A records found (absent: not listed)."""
    score, first = 0, ""
    for site in sites:
        records = answers.get(site.domain) or ()
        if any(site.matches(r) for r in records):
            score += site.weight
            if site.weight > 0 and not first:
                first = site.domain
    return score, first
