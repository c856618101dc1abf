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
    ConfigError naming the file and line: a pattern that is no address or
    network, a network with host bits set (Postfix: "non-null host address
    bits"; the message names the network meant), a rule without a result,
    an unmatched if or endif.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from mailsys.config.lines import logical_lines
from mailsys.errors import ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class _Rule:
    network: Network
    negate: bool
    result: str | None                  # None for "if"
    body: tuple = ()                    # the rules inside an if


@dataclass(frozen=True, slots=True)
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


def read_cidr(spec: str, path: Path) -> CidrTable:
    """Parse the cidr table file at path."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as e:
        raise ConfigError(f"open {file}: {e.strerror}") from None
    stack: list[list[_Rule]] = [[]]
    opened: list[tuple[_Rule, int]] = []
    for ll in logical_lines(text, file):
        words = ll.text.split(None, 1)
        keyword = words[0].lower()
        if keyword == "endif":
            if not opened:
                raise ConfigError("ignoring ENDIF without matching IF", file=file, line=ll.line)
            cond, _ = opened.pop()
            body = tuple(stack.pop())
            stack[-1].append(_Rule(cond.network, cond.negate, None, body))
            continue
        if keyword == "if":
            if len(words) < 2:
                raise ConfigError("IF without a pattern", file=file, line=ll.line)
            pattern, rest = (words[1].split(None, 1) + [""])[:2]
            if rest:
                raise ConfigError(f'text after IF pattern: "{rest}"', file=file, line=ll.line)
            opened.append((_parse(pattern, file, ll.line, None), ll.line))
            stack.append([])
            continue
        if len(words) < 2:
            raise ConfigError(f'no result after "{words[0]}"', file=file, line=ll.line)
        stack[-1].append(_parse(words[0], file, ll.line, words[1].strip()))
    if opened:
        raise ConfigError(f"IF has no matching ENDIF (line {opened[-1][1]})", file=file)
    return CidrTable(spec, tuple(stack[0]))


def _parse(pattern: str, file: str, line: int, result: str | None) -> _Rule:
    negate = pattern.startswith("!")
    text = pattern[1:] if negate else pattern
    address, slash, prefix = text.partition("/")
    address = address[1:-1] if address.startswith("[") and address.endswith("]") else address
    try:
        network = ipaddress.ip_network(f"{address}/{prefix}" if slash else address, strict=False)
    except ValueError:
        raise ConfigError(f'bad net/mask pattern: "{pattern}"', file=file, line=line) from None
    if slash and str(network.network_address) != str(ipaddress.ip_address(address)):
        raise ConfigError(f'non-null host address bits in "{text}", perhaps you should use '
                          f'"{network}" instead', file=file, line=line)
    return _Rule(network, negate, result)


__all__ = ["CidrTable", "read_cidr"]
