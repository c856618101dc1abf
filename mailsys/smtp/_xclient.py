"""_xclient - the attribute lists of XCLIENT and XFORWARD (Postfix XCLIENT_README, XFORWARD_README).

Both commands carry ``NAME=value`` pairs from a trusted proxy or content
filter. This module turns the argument of one command into validated,
normalized values, or the 501 reply Postfix 3.7 gives; it decides nothing
about who may send them (server.py) or what they change (the caller).

What Postfix 3.7 does with a value, as observed on a live 3.7.11 and
followed here, in this order:

- ``name=value`` with a value is required ("501 5.5.4 Error: attribute=value
  expected"); a value over 255 bytes gets "501 5.5.4 Error: attribute value
  too long". Attribute names are matched without regard to case.
- The value is xtext-decoded (RFC 3461 4) when it is valid xtext; a stray
  ``+`` not followed by two hex digits is kept as it is. Characters that
  are not printable become ``?``.
- ``[UNAVAILABLE]`` (and for XCLIENT NAME and REVERSE_NAME also
  ``[TEMPUNAVAIL]``) means the proxy does not know: names and addresses
  become ``unknown``, a HELO name, protocol or ident becomes empty. XCLIENT
  NAME and REVERSE_NAME keep the two words as given, for the caller to
  tell a name that is unknown for good from one whose lookup failed for
  now (smtpd.c: SMTPD_PEER_CODE_PERM and _TEMP; both are "unknown").
- Names must be valid host names, addresses IPv4 or ``IPv6:``-prefixed
  IPv6 (stored without the prefix, in canonical lower-case form), ports
  at most five digits, XCLIENT PROTO is SMTP or ESMTP, XFORWARD SOURCE
  LOCAL or REMOTE; otherwise "501 5.5.4 Bad NAME syntax: value".
- HELO names, XFORWARD names, protocols and idents have the characters
  that could forge a header or a log field replaced with ``?`` (Postfix's
  NEUTER_CHARACTERS).
- The first bad attribute refuses the whole command and nothing of it is
  kept (3.7 applies none of the command's earlier attributes either).

The result is a tuple of (ATTRIBUTE, value) in the order given, the
attribute name in upper case; a later duplicate simply wins, as in Postfix.

The client side (smtp_send_xforward_command) is xforward_commands(): the
XFORWARD lines Postfix 3.7's smtp client sends before MAIL, name, address
and port in the first, protocol, HELO name, ident and source in the
second, each attribute only when the server offers it and its value is
known, xtext-encoded; IPv6 addresses get their ``IPv6:`` prefix back.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from mailsys.frozen import frozen

from . import _grammar as g
from . import replies as R
from .replies import Reply

XCLIENT_ATTRIBUTES = ("NAME", "ADDR", "PROTO", "HELO", "REVERSE_NAME", "PORT", "LOGIN",
                      "DESTADDR", "DESTPORT")
XFORWARD_ATTRIBUTES = ("NAME", "ADDR", "PROTO", "HELO", "SOURCE", "PORT", "IDENT")

UNAVAILABLE = "[UNAVAILABLE]"
TEMPUNAVAIL = "[TEMPUNAVAIL]"
UNKNOWN = "unknown"
# smtpd.c: the longest attribute value accepted.
VALUE_LIMIT = 255
# smtpd.c: the longest XFORWARD PROTO value.
PROTO_LIMIT = 64

# smtpd.c NEUTER_CHARACTERS: what could forge a header or a log field.
NEUTER = str.maketrans({c: "?" for c in ' <>()\\";@'})
_NONPRINT_RE = re.compile(r"[^\x20-\x7e]")
# valid_hostname(): labels of letters, digits, "-" and "_", at most 63
# each and 255 in all, not all digits (a numeric "name" is an address).
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME_RE = re.compile(rf"(?=.{{1,255}}\Z){_LABEL}(?:\.{_LABEL})*\.?\Z")
_NUMERIC_RE = re.compile(r"[0-9.]+\Z")


class XattrError(Exception):
    """A refused XCLIENT/XFORWARD argument; ``reply`` is Postfix's answer."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(str(reply))
        self.reply = reply


_XTEXT_SAFE = frozenset(range(0x21, 0x7f)) - {ord("+"), ord("=")}


def xtext_encode(value: str) -> str:
    """RFC 3461 4: xtext-encode (``+XX`` for ``+``, ``=``, blanks and controls)."""
    return "".join(c if ord(c) in _XTEXT_SAFE else
                   "".join(f"+{b:02X}" for b in c.encode("utf-8")) for c in value)


def xtext_decode(value: str) -> str:
    """RFC 3461 xtext, as Postfix's smtpd takes it: decoded when valid, else as given."""
    decoded = g.xtext_unquote(value)
    return value if decoded is None else decoded


def valid_hostname(name: str) -> bool:
    return bool(_HOSTNAME_RE.match(name)) and not _NUMERIC_RE.match(name)


def normalize_address(value: str) -> str | None:
    """An IPv4 address, or ``IPv6:`` and an IPv6 address, in canonical form; None if neither."""
    if value[:5].lower() == "ipv6:":
        try:
            return str(ipaddress.IPv6Address(value[5:]))
        except ValueError:
            return None
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        return None


def _pairs(arg: str):
    for word in arg.split():
        name, eq, value = word.partition("=")
        if not eq or not value:
            raise XattrError(R.XATTR_EXPECTED)
        if len(value.encode("utf-8", "surrogateescape")) > VALUE_LIMIT:
            raise XattrError(R.XATTR_TOO_LONG)
        yield name, _NONPRINT_RE.sub("?", xtext_decode(value))


def _port(attr: str, value: str) -> str:
    if value == UNAVAILABLE:
        return UNKNOWN
    if not (value.isascii() and value.isdigit()) or len(value) > 5:
        raise XattrError(R.xattr_bad_syntax(attr, value))
    return value


def _address(attr: str, value: str) -> str:
    if value == UNAVAILABLE:
        return UNKNOWN
    addr = normalize_address(value)
    if addr is None:
        raise XattrError(R.xattr_bad_syntax(attr, value))
    return addr


def parse_xclient(arg: str) -> tuple[tuple[str, str], ...]:
    """The attributes of ``XCLIENT arg``; raises XattrError with the 501 reply."""
    out = []
    for name, value in _pairs(arg):
        attr = name.upper()
        if attr in ("NAME", "REVERSE_NAME"):
            if value not in (UNAVAILABLE, TEMPUNAVAIL) and not valid_hostname(value):
                raise XattrError(R.xattr_bad_syntax(attr, value))
        elif attr in ("ADDR", "DESTADDR"):
            value = _address(attr, value)
        elif attr in ("PORT", "DESTPORT"):
            value = _port(attr, value)
        elif attr == "HELO":
            if value == UNAVAILABLE:
                value = ""
            else:
                value = value.translate(NEUTER)
        elif attr == "PROTO":
            if value.upper() not in ("SMTP", "ESMTP"):
                raise XattrError(R.xattr_bad_syntax(attr, value))
            value = value.upper()
        elif attr == "LOGIN":
            if value == UNAVAILABLE:
                value = ""
        else:
            raise XattrError(R.xattr_bad_name("XCLIENT", name))
        out.append((attr, value))
    return tuple(out)


def parse_xforward(arg: str) -> tuple[tuple[str, str], ...]:
    """The attributes of ``XFORWARD arg``; raises XattrError with the 501 reply."""
    out = []
    for name, value in _pairs(arg):
        attr = name.upper()
        if attr == "NAME":
            if value == UNAVAILABLE:
                value = UNKNOWN
            else:
                value = value.translate(NEUTER)
                if not valid_hostname(value):
                    raise XattrError(R.xattr_bad_syntax(attr, value))
        elif attr == "ADDR":
            value = _address(attr, value)
        elif attr == "PORT":
            value = _port(attr, value)
        elif attr in ("HELO", "IDENT"):
            value = "" if value == UNAVAILABLE else value.translate(NEUTER)
        elif attr == "PROTO":
            if value == UNAVAILABLE:
                value = ""
            elif len(value) > PROTO_LIMIT:
                raise XattrError(R.xattr_bad_syntax(attr, value))
            else:
                value = value.translate(NEUTER)
        elif attr == "SOURCE":
            if value == UNAVAILABLE:
                value = "LOCAL"
            if value.upper() not in ("LOCAL", "REMOTE"):
                raise XattrError(R.xattr_bad_syntax(attr, value))
            value = value.upper()
        else:
            raise XattrError(R.xattr_bad_name("XFORWARD", name))
        out.append((attr, value))
    return tuple(out)


# --------------------------------------------------------------- client side

# Postfix's words for the two commands ("... (in reply to X)", smtp_proto.c).
XFORWARD_NAME_ADDR = "XFORWARD name/address command"
XFORWARD_PROTO_HELO = "XFORWARD protocol/helo_name command"
_GROUPS = ((XFORWARD_NAME_ADDR, ("NAME", "ADDR", "PORT")),
           (XFORWARD_PROTO_HELO, ("PROTO", "HELO", "IDENT", "SOURCE")))
# RFC 5321 4.5.3.1.4: a command line is at most 512 octets with its CRLF.
# Postfix's two commands fit with sane values; longer ones are split here.
COMMAND_LIMIT = 510


@frozen
class XforwardAttributes:
    """What the smtp client forwards about a message's original client:
    the queue entry's client name, address, port, protocol and HELO name,
    its queue ID upstream (ident) and where it came from (source "LOCAL"
    or "REMOTE"). An empty value, "unknown" or port 0 is not sent."""
    name: str = ""
    addr: str = ""
    port: int = 0
    proto: str = ""
    helo: str = ""
    ident: str = ""
    source: str = ""

    def value(self, attribute: str) -> str:
        if attribute == "PORT":
            return str(self.port) if self.port > 0 else ""
        value = getattr(self, attribute.lower())
        if value.lower() == UNKNOWN:
            return ""
        if attribute == "ADDR" and ":" in value and value[:5].lower() != "ipv6:":
            return "IPv6:" + value
        return value


def xforward_commands(attrs: XforwardAttributes, offered: Iterable[str]
                      ) -> list[tuple[str, str]]:
    """The XFORWARD lines (without CRLF) to send before MAIL, each with the
    name of the command its reply answers; [] when there is nothing the
    server takes. ``offered``: the attribute names of the server's EHLO
    XFORWARD line."""
    offered = {a.upper() for a in offered}
    out = []
    for what, names in _GROUPS:
        line = "XFORWARD"
        for name in names:
            value = attrs.value(name) if name in offered else ""
            if not value:
                continue
            item = f" {name}={xtext_encode(value)}"
            if len(line) + len(item) > COMMAND_LIMIT and line != "XFORWARD":
                out.append((line, what))
                line = "XFORWARD"
            line += item
        if line != "XFORWARD":
            out.append((line, what))
    return out
