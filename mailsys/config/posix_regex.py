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
    name, or a multi-character collating element, worded as glibc's
    regerror() words it ("Unmatched [, [^, [:, [., or [="). A pattern
    Python's re then refuses raises re.error; posix_error_text() gives
    either error in regerror()'s words, as Postfix logs them.
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


# glibc's regerror() texts.
_EBRACK = "Unmatched [, [^, [:, [., or [="
_ECTYPE = "Invalid character class name"
_ECOLLATE = "Invalid collation character"
_EPAREN = "Unmatched ( or \\("
_ERPAREN = "Unmatched ) or \\)"
_EBRACE = "Unmatched \\{"
_BADBR = "Invalid content of \\{\\}"
_BADRPT = "Invalid preceding regular expression"
_ERANGE = "Invalid range end"
_ESUBREG = "Invalid back reference"
_EESCAPE = "Trailing backslash"
_BADPAT = "Invalid regular expression"

# Python's re error messages for the same mistakes.
_PYTHON_TEXTS = (
    ("missing ), unterminated subpattern", _EPAREN),
    ("unbalanced parenthesis", _ERPAREN),
    ("unterminated character set", _EBRACK),
    ("nothing to repeat", _BADRPT),
    ("multiple repeat", _BADRPT),
    ("min repeat greater than max repeat", _BADBR),
    ("bad character range", _ERANGE),
    ("bad escape (end of pattern)", _EESCAPE),
    ("invalid group reference", _ESUBREG),
    ("cannot refer to an open group", _ESUBREG),
)


def posix_error_text(e: Exception) -> str:
    """What glibc's regerror() says for the mistake behind e (a ValueError
    from from_posix, or Python's re.error on its result)."""
    if isinstance(e, re.error):
        return next((text for python, text in _PYTHON_TEXTS if e.msg.startswith(python)),
                    _BADPAT)
    return str(e)


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
            raise ValueError(_EBRACK)
        ch = source[i]
        if ch == "]" and not first:
            out.append("]")
            return "".join(out), i + 1
        first = False
        if ch == "[" and i + 1 < n and source[i + 1] in ":=.":
            kind = source[i + 1]
            end = source.find(kind + "]", i + 2)
            if end < 0:
                raise ValueError(_EBRACK)
            name = source[i + 2:end]
            if kind == ":":
                if name not in _CLASSES:
                    raise ValueError(_ECTYPE)
                out.append(_CLASSES[name])
            elif len(name) != 1:
                raise ValueError(_ECOLLATE)
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


__all__ = ["from_posix", "posix_error_text"]
