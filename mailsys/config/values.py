"""values - the typed value parsers of main.cf parameters.

Every parameter in mailsys.config.params has one of the value types below.
A type turns the fully expanded text of a parameter into a Python value:

    Int     "100"            -> 100
    Size    "10240000", "50M" -> bytes (int); k, M, G are powers of 1024
    Time    "300s", "5d", "5" -> seconds (float); a bare number is in the
                                 parameter's own default unit (Postfix: days
                                 for the queue lifetimes, hours for
                                 delay_warning_time, seconds elsewhere)
    Bool    "yes" / "no"      -> bool
    Str     anything          -> str (surrounding whitespace dropped)
    List    "a, b c { d e }"  -> ("a", "b", "c", "d e")

Size suffixes are a mailsys extension: Postfix refuses
``message_size_limit = 50M``, which is a common admin mistake that costs
nothing to accept. A value that cannot be parsed raises BadValue with the
message Postfix's wording suggests (``bad size value "lots"``); the loader
adds file, line and parameter name. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Callable

from mailsys.frozen import frozen


class BadValue(ValueError):
    """A parameter value does not parse under its type or is out of range."""


# CHARS_COMMA_SP in Postfix's sys_defs.h: the list element separators.
LIST_SEPARATORS = ", \t\r\n"

_INT_RE = re.compile(r"[+-]?\d+")
_SIZE_RE = re.compile(r"(\d+)\s*([kmg]?)b?", re.IGNORECASE)
_TIME_RE = re.compile(r"(\d+(?:\.\d+)?)([smhdw]?)")

SIZE_UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}
TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_int(text: str, unit: str = "s") -> int:
    """A decimal integer, optionally signed."""
    text = text.strip()
    if not _INT_RE.fullmatch(text):
        raise BadValue(f'bad numerical value "{text}"')
    return int(text)


def parse_size(text: str, unit: str = "s") -> int:
    """Bytes: a plain number, or a number with a k/M/G suffix (x1024)."""
    text = text.strip()
    m = _SIZE_RE.fullmatch(text)
    if not m:
        raise BadValue(f'bad size value "{text}"')
    return int(m.group(1)) * SIZE_UNITS[m.group(2).lower()]


def parse_time(text: str, unit: str = "s") -> float:
    """Seconds from ``N[smhdw]``; a bare N is in `unit`."""
    text = text.strip()
    m = _TIME_RE.fullmatch(text)
    if not m:
        raise BadValue(f'bad time value "{text}"')
    return float(m.group(1)) * TIME_UNITS[m.group(2) or unit]


def parse_bool(text: str, unit: str = "s") -> bool:
    """Postfix accepts exactly yes and no (in any case)."""
    word = text.strip().lower()
    if word == "yes":
        return True
    if word == "no":
        return False
    raise BadValue(f'bad boolean value "{text.strip()}" (use yes or no)')


def parse_str(text: str, unit: str = "s") -> str:
    return text.strip()


def split_list(text: str, separators: str = LIST_SEPARATORS) -> tuple[str, ...]:
    """Split a list value the way Postfix's mystrtokq() + extpar() do.

    Elements are separated by any run of `separators`; empty elements are
    skipped. Braces group: a separator inside ``{ ... }`` does not split, so
    ``check_policy_service { inet:127.0.0.1:9998, timeout=10s }`` is two
    elements. An element that is wholly one ``{ ... }`` group loses its
    outer braces and the whitespace just inside them (``{ a b }`` -> ``a b``);
    braces inside an element (``inline:{ a=1, b=2 }``) are kept.
    """
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in separators:
            i += 1
        if i >= n:
            break
        start, level = i, 0
        while i < n and (level > 0 or text[i] not in separators):
            if text[i] == "{":
                level += 1
            elif text[i] == "}":
                level -= 1
                if level < 0:
                    raise BadValue(f'unbalanced "}}" in "{text.strip()}"')
            i += 1
        if level:
            raise BadValue(f'missing "}}" in "{text.strip()}"')
        out.append(strip_braces(text[start:i]))
    return tuple(out)


def endpoint_attributes(item: str, parsers: Mapping[str, Callable[[str], Any]],
                        warn: Callable[[str], None]) -> dict[str, Any]:
    """A "{ endpoint, name=value, ... }" list element (Postfix 3.0's form for
    check_policy_service and milters): {"endpoint": ..., name: parsed value};
    an attribute parsers does not know, or a bad value, is left out with
    warn('unknown attribute "x=1"' or the BadValue text)."""
    parts = split_list(item, ", \t\n")
    found: dict[str, Any] = {"endpoint": parts[0] if parts else ""}
    for part in parts[1:]:
        name, eq, value = part.partition("=")
        name, value = name.strip(), value.strip()
        parse = parsers.get(name)
        try:
            if not eq or parse is None:
                raise BadValue(f'unknown attribute "{part}"')
            found[name] = parse(value)
        except BadValue as e:
            warn(str(e))
    return found


def strip_braces(element: str) -> str:
    """``{ a b }`` -> ``a b`` when the braces enclose the whole element."""
    if element.startswith("{") and element.endswith("}") and _matching(element) == len(element) - 1:
        return element[1:-1].strip()
    return element


def _matching(text: str) -> int:
    """Index of the brace that closes the one at text[0], or -1."""
    level = 0
    for i, ch in enumerate(text):
        if ch == "{":
            level += 1
        elif ch == "}":
            level -= 1
            if level == 0:
                return i
    return -1


def parse_list(text: str, unit: str = "s") -> tuple[str, ...]:
    return split_list(text)


@frozen
class ValueType:
    """One value type: its name for documentation and its parser."""
    name: str
    parse: Callable[[str, str], object]

    def __repr__(self) -> str:
        return self.name


Int = ValueType("Int", parse_int)
Size = ValueType("Size", parse_size)
Time = ValueType("Time", parse_time)
Bool = ValueType("Bool", parse_bool)
Str = ValueType("Str", parse_str)
List = ValueType("List", parse_list)
