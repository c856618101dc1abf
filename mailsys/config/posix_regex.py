"""posix_regex - a POSIX extended regular expression as a Python pattern.

SYNOPSIS
    re.compile(from_posix(r"^[[:alnum:]._-]+@example\\.com$"))

DESCRIPTION
    Postfix's regexp: tables are POSIX extended regular expressions
    (regcomp(3) with REG_EXTENDED, glibc's flavour). Python's re reads most
    of them the same way; what differs is inside bracket expressions, which
    from_posix() rewrites:

      [:alpha:] [:digit:] ...  the twelve POSIX character classes, as the
                               C locale defines them;
      [=c=] [.c.]              an equivalence class or collating element of
                               one character: that character;
      \\                       a backslash is an ordinary character inside
                               brackets ("[\\.]" is backslash or dot);
      [ and the set            characters Python would read as nested sets or
      operators && -- || ~~    set operations are escaped.

    A "]" right after "[" or "[^" is an ordinary member, as in POSIX. Outside
    brackets the pattern is left alone: glibc's \\w \\s \\b \\< \\> extensions
    mean there what Python's \\w \\s \\b mean.

ERRORS
    ValueError for an unterminated bracket expression, an unknown class
    name, or a multi-character collating element.
"""

from __future__ import annotations

import re

# The C locale's classes (glibc), as members of a Python character set.
_CLASSES = {
    "alpha": "a-zA-Z",
    "digit": "0-9",
    "alnum": "a-zA-Z0-9",
    "upper": "A-Z",
    "lower": "a-z",
    "space": " \\t\\n\\r\\f\\v",
    "blank": " \\t",
    "punct": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
    "print": " -~",
    "graph": "!-~",
    "cntrl": "\\x00-\\x1f\\x7f",
    "xdigit": "0-9A-Fa-f",
}


def from_posix(source: str) -> str:
    """The Python pattern that matches what the POSIX ERE ``source`` matches."""
    out: list[str] = []
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        if ch == "\\" and i + 1 < n:
            out.append(source[i:i + 2])
            i += 2
        elif ch == "[":
            members, i = _bracket(source, i + 1)
            out.append(members)
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _bracket(source: str, i: int) -> tuple[str, int]:
    """The bracket expression starting at source[i] (after "["): its Python
    set, and the index after its closing "]"."""
    n = len(source)
    out = ["["]
    if i < n and source[i] == "^":
        out.append("^")
        i += 1
    first = True
    while True:
        if i >= n:
            raise ValueError("brackets ([ ]) not balanced")
        ch = source[i]
        if ch == "]" and not first:
            out.append("]")
            return "".join(out), i + 1
        first = False
        if ch == "[" and i + 1 < n and source[i + 1] in ":=.":
            kind = source[i + 1]
            end = source.find(kind + "]", i + 2)
            if end < 0:
                raise ValueError("brackets ([ ]) not balanced")
            name = source[i + 2:end]
            if kind == ":":
                if name not in _CLASSES:
                    raise ValueError(f"invalid character class [:{name}:]")
                out.append(_CLASSES[name])
            elif len(name) != 1:
                raise ValueError(f"invalid collation character [{kind}{name}{kind}]")
            else:
                out.append(re.escape(name))
            i = end + 2
            continue
        if ch in "\\[]" or (ch in "&~|" and i + 1 < n and source[i + 1] == ch):
            out.append("\\" + ch)
        elif ch == "-" and i + 1 < n and source[i + 1] == "-":
            out.append("-\\-")          # a range ending in "-", or "--" set difference
            i += 1
        else:
            out.append(ch)
        i += 1


__all__ = ["from_posix"]
