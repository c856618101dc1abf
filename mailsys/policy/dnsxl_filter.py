"""dnsxl_filter - which A records of a DNS list count: the "=filter" after its zone.

SYNOPSIS
    from mailsys.policy.dnsxl_filter import ReplyFilter
    f = ReplyFilter.parse("127.0.0.[2..11]")     # ValueError: why not
    f.matches("127.0.0.4")                       # True

DESCRIPTION
    Postfix's ip_match(3) patterns, as reject_rbl_client, permit_dnswl_client,
    the rhsbl restrictions and postscreen_dnsbl_sites take them after
    "zone=": four dot-separated octet patterns, each a number from 0 to
    255 or "[...]" holding numbers and ranges a..b separated by ";"
    ("127.0.0.[2..11]", "127.0.[0..255].[1;3]"). An A record counts when
    each of its four octets is allowed.

    Pure: the lookups themselves are the caller's.
"""

from __future__ import annotations

import re

from mailsys.frozen import frozen

__all__ = ["ReplyFilter"]

# Four octet patterns; a "[...]" one may hold ".." ranges, so not a plain split.
_FILTER = re.compile(r"\.".join([r"(\[[^\]]*\]|\d+)"] * 4))


@frozen
class ReplyFilter:
    octets: tuple[frozenset[int], ...]         # the values each octet may take
    text: str

    @classmethod
    def parse(cls, text: str) -> "ReplyFilter":
        m = _FILTER.fullmatch(text)
        if m is None:
            raise ValueError(f"bad address pattern: {text}")
        return cls(tuple(_octet(p, text) for p in m.groups()), text)

    def matches(self, address: str) -> bool:
        """Whether an A record (a dotted quad) passes the filter."""
        parts = address.split(".")
        if len(parts) != 4 or not all(p.isdigit() for p in parts):
            return False
        return all(int(p) in allowed for p, allowed in zip(parts, self.octets))


def _octet(pattern: str, text: str) -> frozenset[int]:
    if pattern.isdigit():
        values = {int(pattern)}
    else:
        values = set()
        for part in pattern[1:-1].split(";"):
            lo, dots, hi = part.partition("..")
            if not lo.isdigit() or (dots and not hi.isdigit()):
                raise ValueError(f"bad address pattern: {text}")
            values.update(range(int(lo), int(hi if dots else lo) + 1))
    if not values or max(values) > 255:
        raise ValueError(f"bad address pattern: {text}")
    return frozenset(values)
