"""hostnames - host name and address literal syntax, as Postfix checks it.

DESCRIPTION
    valid_hostname() is Postfix's valid_hostname(): dot-separated labels of
    letters, digits, '-' and '_', at most 63 octets each and 255 in all, and
    not all numeric. valid_hostaddr() accepts an address literal as a HELO
    name may carry it: [1.2.3.4], [IPv6:...], or a bare address.
    truncate_dot() drops the one trailing dot a HELO name may end in.

SEE ALSO
    Postfix src/util/valid_hostname.c, src/util/dup_if_truncate.c,
    RFC 1123 2.1, RFC 5321 4.1.3.
"""

from __future__ import annotations

import ipaddress
import re

_LABEL_RE = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?$")


def truncate_dot(name: str) -> str:
    """Postfix dup_if_truncate: drop one trailing dot, but not from '..'."""
    if len(name) > 1 and name.endswith(".") and not name.endswith(".."):
        return name[:-1]
    return name


def valid_hostname(name: str) -> bool:
    """Postfix valid_hostname(): labels of letters, digits, '-', '_'; not all numeric."""
    if not name or len(name) > 255:
        return False
    labels = name.split(".")
    for label in labels:
        if len(label) > 63 or not _LABEL_RE.match(label):
            return False
    # A name made only of digits and dots is an address, not a host name.
    return not all(label.isdigit() for label in labels)


def valid_hostaddr(text: str) -> bool:
    """An address literal as HELO accepts it: [1.2.3.4], [IPv6:...], or bare."""
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
        if text[:5].lower() == "ipv6:":
            text = text[5:]
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


__all__ = ["truncate_dot", "valid_hostaddr", "valid_hostname"]
