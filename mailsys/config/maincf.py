"""maincf - read main.cf and expand $name references in its values.

parse_main_cf() turns main.cf text into Entry records, one per parameter
(the last of duplicate names wins, as in Postfix). A logical line without
``=`` is a ConfigError naming file and line (Postfix: "missing '=' after
attribute name").

Expander implements Postfix's mac_expand() over a lookup function that gives
the unexpanded text of a parameter (or None when nothing defines it):

    $name ${name} $(name)       value of name, itself expanded (recursively)
    ${name?text} ${name?{text}} text when name's value is non-empty
    ${name:text} ${name:{text}} text when name's value is empty or undefined
    ${name?{t1}:{t2}}           either
    ${{a} OP {b}?{t1}:{t2}}     relational: OP is == != < <= >= >, numeric
                                when both sides are all digits, else by text;
                                <level <=level >level >=level compare
                                compatibility levels (3.6 < 3.10)
    $$                          a literal $

An undefined name expands to the empty string with the warning
``FILE: undefined parameter: NAME``. A value that refers back to itself is a
ConfigError. Pure: no I/O.
"""

from __future__ import annotations

import re
from typing import Callable

from mailsys.config.lines import logical_lines
from mailsys.errors import ConfigError
from mailsys.frozen import frozen


@frozen
class Entry:
    """One `name = value` setting and where it was written."""
    name: str
    value: str
    file: str | None
    line: int | None


_NAME_VALUE = re.compile(r"([^\s=]+)\s*=\s*(.*)", re.DOTALL)
_NAME_CHARS = re.compile(r"[A-Za-z0-9_]+")
WHITESPACE = " \t\r\n"


def parse_main_cf(text: str, file: str, warnings: list[str] | None = None) -> dict[str, Entry]:
    """Entries of main.cf text, by name; the last of duplicates wins."""
    entries: dict[str, Entry] = {}
    for ll in logical_lines(text, file, warnings):
        name, value = split_name_value(ll.text, file, ll.line)
        entries.pop(name, None)          # keep file order of the winning line
        entries[name] = Entry(name, value, file, ll.line)
    return entries


def split_name_value(text: str, file: str | None, line: int | None) -> tuple[str, str]:
    """``name = value`` -> (name, value), or Postfix's error."""
    if text.startswith("="):
        raise ConfigError(f'missing attribute name: "{text}"', file=file, line=line)
    m = _NAME_VALUE.fullmatch(text)
    if not m:
        raise ConfigError(f"missing '=' after attribute name: \"{text}\"", file=file, line=line)
    return m.group(1), m.group(2).strip()


def references(text: str) -> set[str]:
    """Names a value refers to with $name, ${name...} or $(name)."""
    return set(re.findall(r"\$[{(]?\s*([A-Za-z0-9_]+)", text.replace("$$", "")))


Lookup = Callable[[str], "str | None"]


class Expander:
    """Postfix's mac_expand() over `lookup` (name -> unexpanded text or None)."""

    def __init__(self, lookup: Lookup, file: str | None) -> None:
        self._lookup = lookup
        self._file = file

    def expand(self, text: str, warnings: list[str] | None = None,
               stack: tuple[str, ...] = ()) -> str:
        out: list[str] = []
        i, n = 0, len(text)
        while i < n:
            j = text.find("$", i)
            if j < 0:
                out.append(text[i:])
                break
            out.append(text[i:j])
            nxt = text[j + 1:j + 2]
            if nxt == "$":
                out.append("$")
                i = j + 2
            elif nxt in ("{", "("):
                close = _balance(text, j + 1)
                if close < 0:
                    raise ConfigError(f'truncated macro reference: "{text[j:]}"', file=self._file)
                out.append(self._expression(text[j + 2:close], warnings, stack))
                i = close + 1
            elif m := _NAME_CHARS.match(text, j + 1):
                out.append(self._use(m.group(0), warnings, stack))
                i = m.end()
            else:
                out.append("$")          # a lone $ stays as it is
                i = j + 1
        return "".join(out)

    # -- named parameters --------------------------------------------------

    def _raw(self, name: str, warnings: list[str] | None) -> str | None:
        value = self._lookup(name)
        if value is None and warnings is not None:
            where = f"{self._file}: " if self._file else ""
            warnings.append(f"{where}undefined parameter: {name}")
        return value

    def _use(self, name: str, warnings: list[str] | None, stack: tuple[str, ...]) -> str:
        if name in stack:
            chain = " -> ".join(f"${n}" for n in stack[stack.index(name):] + (name,))
            raise ConfigError(f"recursive parameter expansion: {chain}", file=self._file, param=stack[0])
        raw = self._raw(name, warnings)
        return self.expand(raw, warnings, stack + (name,)) if raw else ""

    # -- ${...} expressions ---------------------------------------------------

    def _expression(self, body: str, warnings: list[str] | None, stack: tuple[str, ...]) -> str:
        cp = _skip_ws(body, 0)
        if body[cp:cp + 1] == "{":
            result, cp = self._relational(body, cp, warnings, stack)
            lookup: str | None = result
            if cp < len(body) and body[cp] not in "?:":
                raise self._syntax(f'"?" or ":" expected at: "...}}>>>{body[cp:cp + 20]}"')
            if cp >= len(body):
                return result
            name = None
        else:
            m = _NAME_CHARS.match(body, cp)
            if not m:
                raise self._syntax(f'attribute name syntax error at: "{body}"')
            name, cp = m.group(0), _skip_ws(body, m.end())
            if cp >= len(body):
                return self._use(name, warnings, stack)
            if body[cp] not in "?:":
                raise self._syntax(f'attribute name syntax error at: "...{body[:cp]}>>>{body[cp:cp + 20]}"')
            lookup = self._raw(name, warnings)
        op = body[cp]
        cp += 1
        nonempty = bool(lookup)
        if op == "?":
            iftrue, cp = self._operand(body, cp)
            out = self.expand(iftrue, warnings, stack) if nonempty else ""
            if cp >= len(body):
                return out
            if body[cp] != ":":
                raise self._syntax(f'":" expected at: "...{iftrue}}}>>>{body[cp:cp + 20]}"')
            cp += 1
        else:
            out = ""
        iffalse, cp = self._operand(body, cp)
        if cp < len(body):
            raise self._syntax(f'unexpected input at: "...{iffalse}}}>>>{body[cp:cp + 20]}"')
        if not nonempty:
            out = self.expand(iffalse, warnings, stack)
        return out

    def _operand(self, body: str, cp: int) -> tuple[str, int]:
        """A ``{text}`` operand (braces and inner whitespace dropped) or the rest."""
        at = _skip_ws(body, cp)
        if body[at:at + 1] == "{":
            return self._curly(body, at)
        return body[cp:], len(body)

    def _curly(self, body: str, at: int) -> tuple[str, int]:
        close = _balance(body, at)
        if close < 0:
            raise self._syntax(f'unbalanced {{}} in attribute expression: "{body[at:]}"')
        return body[at + 1:close].strip(WHITESPACE), _skip_ws(body, close + 1)

    def _relational(self, body: str, cp: int, warnings: list[str] | None,
                    stack: tuple[str, ...]) -> tuple[str, int]:
        left, cp = self._curly(body, cp)
        m = re.compile(r"([<>!=?+\-*/~&|%]*)([A-Za-z0-9]*)").match(body, cp)
        op, suffix = m.group(1), m.group(2)
        if op not in _OPS or suffix not in ("", "level"):
            raise self._syntax(f'"==" or "!=" or "<" or "<=" or ">=" or ">" expected at: '
                               f'"...{left}}}>>>{body[cp:cp + 20]}"')
        cp = _skip_ws(body, m.end())
        if body[cp:cp + 1] != "{":
            raise self._syntax(f'"{{expression}}" expected at: "...{{{left}}} {op}{suffix}>>>{body[cp:cp + 20]}"')
        right, cp = self._curly(body, cp)
        a = self.expand(left, warnings, stack)
        b = self.expand(right, warnings, stack)
        if suffix:
            delta = _cmp(_level(a, self), _level(b, self))
        elif a.isdigit() and b.isdigit():
            delta = _cmp(int(a), int(b))
        else:
            delta = _cmp(a, b)
        return ("true" if _OPS[op](delta) else ""), cp

    def _syntax(self, message: str) -> ConfigError:
        return ConfigError(message, file=self._file)


_OPS: dict[str, Callable[[int], bool]] = {
    "==": lambda d: d == 0, "!=": lambda d: d != 0,
    "<": lambda d: d < 0, "<=": lambda d: d <= 0,
    ">=": lambda d: d >= 0, ">": lambda d: d > 0,
}


def _cmp(a, b) -> int:
    return (a > b) - (a < b)


def _level(text: str, ex: Expander) -> tuple[int, ...]:
    """A compatibility level (``3``, ``3.6``, ``3.6.1``) as a comparable tuple."""
    parts = text.strip().split(".")
    if not all(p.isdigit() for p in parts) or len(parts) > 3:
        raise ex._syntax(f'bad compatibility level: "{text}"')
    return tuple(int(p) for p in parts) + (0,) * (3 - len(parts))


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in WHITESPACE:
        i += 1
    return i


def _balance(text: str, at: int) -> int:
    """Index of the bracket closing the one at text[at] ('{' or '('), or -1."""
    open_ch = text[at]
    close_ch = "}" if open_ch == "{" else ")"
    level = 0
    for i in range(at, len(text)):
        if text[i] == open_ch:
            level += 1
        elif text[i] == close_ch:
            level -= 1
            if level == 0:
                return i
    return -1
