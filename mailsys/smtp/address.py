"""address - envelope addresses: parse a Path, split it, spot routing tricks.

parse_path() turns the path word of ``MAIL FROM:`` / ``RCPT TO:`` into the
address Postfix would use: brackets removed, a source route
(``<@a,@b:u@d>``) accepted but dropped (RFC 5321 4.1.1.3; Postfix does the
same), needless quotes removed (``"joe"@d`` is ``joe@d``), ``<>`` kept as the
null address "". Unless strict_rfc821_envelopes = yes, it also takes what
Postfix's RFC 822 parser takes: bare addresses without brackets, comments,
stray brackets (``<<a@b>>``, ``a@b>``), a second ``@`` (``<x@a@b>`` is
``"x@a"@b``). The address is kept in the external form, its local part
quoted where Postfix's quote_822_local() quotes it (``<a..b@d>`` is
``"a..b"@d``); ``<user@>`` is "user@", which only resolve_null_domain = yes
lets through.

min_user() is allow_min_user's test: the address begins with "-" once its
quotes are gone (Postfix's resolver refuses such an address, so that no
command ever takes it for an option). numeric_domain() finds a domain of
digits and dots, which Postfix's resolver takes for no hostname
(valid_hostname(): "numeric hostname"): bad syntax, or with
resolve_numeric_domain = yes, when it is an IPv4 address, that address in
brackets (numeric_literal()).

split_address() / routing_tricks() are for relay control on the policy side:
an address whose local part still holds ``%``, ``!`` or ``@`` (inside
quotes), or that came with a source route, must never be taken as local just
because its domain is (Postfix's "allow_untrusted_routing = no" rule).
"""

from __future__ import annotations

import re

from mailsys.frozen import frozen
from mailsys.message.address import quote_822_local

from . import _grammar as g
from ._extract_addr import envelope_address


@frozen
class Path:
    address: str            # "" for <>
    route: tuple[str, ...]  # the dropped source route, e.g. ("@a", "@b")
    bracketed: bool


def parse_path(text: str, *, allow_null: bool = True, strict: bool = False) -> Path | None:
    """The address of a MAIL/RCPT path word, or None when Postfix calls its
    syntax bad. strict: strict_rfc821_envelopes."""
    bracketed = text.startswith("<")
    if text == "<>":
        return Path("", (), True) if allow_null else None
    m = g.PATH_RE.match(text if bracketed else f"<{text}>")
    if m is not None and (bracketed or not strict):
        adl = m.group("adl")
        route = tuple(adl[:-1].split(",")) if adl else ()
        return Path(_canonical(m.group("local"), m.group("domain")), route, bracketed)
    # Anything else as smtpd.c extract_addr() reads it.
    found = envelope_address(text, strict)
    if found is None:
        return None
    address, route = found
    if (not address and not allow_null) or (strict and address.startswith("@")):
        return None
    return Path(quote_822_local(address, internal=True), route, bracketed)


def min_user(address: str) -> bool:
    """The address begins with "-" when unquoted (``-joe@d``, ``"-joe"@d``)."""
    return address.lstrip('"\\').startswith("-")


_NUMERIC_DOMAIN = re.compile(r"[0-9.]+\Z")
_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
                   r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\Z")


def numeric_name(domain: str) -> bool:
    """The domain is digits and dots only (``192.0.2.1``, ``123``)."""
    return domain[-1:].isdigit() and _NUMERIC_DOMAIN.match(domain) is not None


def numeric_domain(address: str) -> bool:
    """The address's domain is digits and dots only (``u@192.0.2.1``)."""
    return address[-1:].isdigit() and "@" in address and numeric_name(address.rpartition("@")[2])


def numeric_literal(domain: str) -> str | None:
    """``[192.0.2.1]`` for the domain 192.0.2.1 (resolve_numeric_domain); None
    when the digits are no IPv4 address (Postfix valid_hostaddr())."""
    return f"[{domain}]" if _IPV4.match(domain) else None


def _canonical(local: str, domain: str | None) -> str:
    """The queue's form: quoted where Postfix's quote_822_local() quotes
    the internal form (``"joe"@d`` is ``joe@d``, ``a..b@d`` is ``"a..b"@d``)."""
    if local.startswith('"') and local.endswith('"') and len(local) >= 2:
        local = _unquote(local[1:-1])
    return quote_822_local(f"{local}@{domain}" if domain is not None else local, internal=True)


def _unquote(s: str) -> str:
    out = []
    it = iter(s)
    for ch in it:
        if ch == "\\":
            ch = next(it, "")
        out.append(ch)
    return "".join(out)


@frozen
class AddressParts:
    local: str              # unquoted local part
    domain: str             # lower-cased, trailing dot removed; "" when absent
    quoted: bool            # the local part was a quoted string


def split_address(address: str) -> AddressParts:
    """Split at the last ``@`` outside quotes (``"a@b"@c`` has local ``a@b``)."""
    in_quote = False
    escaped = False
    at = -1
    for i, ch in enumerate(address):
        if escaped:
            escaped = False
        elif ch == "\\" and in_quote:
            escaped = True
        elif ch == '"':
            in_quote = not in_quote
        elif ch == "@" and not in_quote:
            at = i
    local, domain = (address[:at], address[at + 1:]) if at >= 0 else (address, "")
    quoted = local.startswith('"') and local.endswith('"') and len(local) >= 2
    if quoted:
        local = _unquote(local[1:-1])
    return AddressParts(local, domain.rstrip(".").lower(), quoted)


def routing_tricks(address: str, route: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Why this address could route mail elsewhere than its domain says.

    Returns the tricks found, in a fixed order: "source-route", "percent",
    "bang", "at-in-local-part". An empty tuple means none; relay control must
    refuse to treat a tricky address as local-only (user%remote@local would
    otherwise be relayed to remote).
    """
    parts = split_address(address)
    found = []
    if route:
        found.append("source-route")
    if "%" in parts.local:
        found.append("percent")
    if "!" in parts.local:
        found.append("bang")
    if "@" in parts.local:
        found.append("at-in-local-part")
    return tuple(found)
