"""cidr_table - Postfix cidr_table(5): network blocks, first match wins.

SYNOPSIS
    table = read_cidr("cidr:/etc/mailsys/client_access.cidr", path)
    table.lookup("192.0.2.7")           -> "REJECT" or None

DESCRIPTION
    One rule per logical line (comments and continuation lines as in
    main.cf): ``pattern  result``, where the pattern is an IPv4 or IPv6
    address (that host) or ``address/prefix`` (that network; IPv6 may be
    written in brackets, ``[2001:db8::]/32``), and ``!pattern`` matches
    every address the pattern does not. ``if pattern`` ... ``endif`` makes
    the rules between apply only to addresses the pattern matches (they
    nest). The first rule that matches the looked-up address gives the
    result; a key that is not an address matches nothing, and a rule of
    one address family never applies to an address of the other, negated
    or not, as in Postfix.

ERRORS
    A file that cannot be read is a ConfigError. A bad line is skipped, as
    Postfix skips it, with its warning to the warn callback ("cidr map
    /etc/x, line 3: bad address pattern: "nonsense": skipping this rule"):
    a pattern that is no address or network, a network with host bits set
    (the warning names the network meant), a rule without a result, an
    ENDIF without IF or with text after it. An IF without ENDIF encloses
    the rest of the file, with a warning at its line.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Callable

from mailsys.config.lines import logical_lines
from mailsys.errors import ConfigError
from mailsys.frozen import frozen

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@frozen
class _Rule:
    network: Network
    negate: bool
    result: str | None                  # None for "if"
    body: tuple = ()                    # the rules inside an if


@frozen
class CidrTable:
    """cidr_table(5): the first rule matching the address gives the result."""
    spec: str
    rules: tuple[_Rule, ...]

    def lookup(self, key: str) -> str | None:
        try:
            addr = ipaddress.ip_address(key.strip("[]").split("%", 1)[0])
        except ValueError:
            return None
        return _match(self.rules, addr)


def _match(rules: tuple[_Rule, ...], addr) -> str | None:
    for rule in rules:
        # A rule of the other family never applies, negated or not.
        if addr.version != rule.network.version or (addr in rule.network) == rule.negate:
            continue
        if rule.result is not None:
            return rule.result
        found = _match(rule.body, addr)
        if found is not None:
            return found
    return None


def read_cidr(spec: str, path: Path, warn: Callable[[str], None]) -> CidrTable:
    """Parse the cidr table file at path; bad lines are warned about and skipped."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as e:
        raise ConfigError(f"open {file}: {e.strerror}") from None
    stack: list[list[_Rule]] = [[]]
    opened: list[tuple[_Rule, int]] = []
    for ll in logical_lines(text, file):
        def skip(why: str) -> None:
            warn(f"cidr map {file}, line {ll.line}: {why}: skipping this rule")
        words = ll.text.split(None, 1)
        keyword = words[0].lower()
        if keyword == "endif":
            if not opened:
                skip("ENDIF without IF")
            elif len(words) > 1:
                skip("garbage after ENDIF")
            else:
                cond, _ = opened.pop()
                body = tuple(stack.pop())
                stack[-1].append(_Rule(cond.network, cond.negate, None, body))
            continue
        if keyword == "if":
            # The whole rest of the line is the pattern, as in Postfix.
            rule = _parse(words[1] if len(words) > 1 else "", None)
            if isinstance(rule, str):
                skip(rule)
                continue
            opened.append((rule, ll.line))
            stack.append([])
            continue
        negate, rest = _negation(ll.text)
        pattern, result = (rest.split(None, 1) + ["", ""])[:2]
        rule = _parse(("!" if negate else "") + pattern, result.strip())
        if isinstance(rule, str):
            skip(rule)
        elif not rule.result:
            skip("no lookup result")
        else:
            stack[-1].append(rule)
    # An IF without ENDIF encloses the rest of the file.
    while opened:
        cond, line = opened.pop()
        warn(f"cidr map {file}, line {line}: IF has no matching ENDIF")
        body = tuple(stack.pop())
        stack[-1].append(_Rule(cond.network, cond.negate, None, body))
    return CidrTable(spec, tuple(stack[0]))


def _negation(text: str) -> tuple[bool, str]:
    """Leading "!" (each one toggles) and blanks; the rest of text."""
    negate = False
    i = 0
    while i < len(text) and (text[i] == "!" or text[i].isspace()):
        negate ^= text[i] == "!"
        i += 1
    return negate, text[i:]


def _parse(pattern: str, result: str | None) -> "_Rule | str":
    """A rule for ``[!]address[/prefix]`` (brackets allowed around the
    address), or Postfix's words for what is wrong with it."""
    negate, text = _negation(pattern.strip())
    if not text:
        return "no address pattern"
    search = text
    if text.startswith("["):
        inner, bracket, after = text[1:].partition("]")
        if not bracket:
            return f'missing \']\' character after "[{inner}"'
        if after and not after.startswith("/"):
            return f'garbage after "[{inner}]"'
        text, search = inner + after, inner + after
    address, slash, prefix = search.partition("/")
    bits = 128 if ":" in address else 32
    if slash:
        where = f'in "{address}/{prefix}"'
        if not (prefix.isascii() and prefix.isdigit()):
            return f"bad mask value {where}"
        if int(prefix) > bits:
            return f"bad mask length {where}"
        ip = _address(address, bits)
        if ip is None:
            return f"bad network value {where}"
        network = ipaddress.ip_network(f"{ip}/{int(prefix)}", strict=False)
        if network.network_address != ip:
            return (f'non-null host address bits {where}, perhaps you should use '
                    f'"{network.network_address}/{int(prefix)}" instead')
    else:
        ip = _address(address, bits)
        if ip is None:
            return f'bad address pattern: "{address}"'
        network = ipaddress.ip_network(ip)
    return _Rule(network, negate, result)


def _address(text: str, bits: int):
    """inet_pton() of the family the pattern's bit count says, or None."""
    if "%" in text:
        return None                     # a scope is no part of inet_pton's syntax
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    return ip if ip.max_prefixlen == bits else None


__all__ = ["CidrTable", "read_cidr"]
