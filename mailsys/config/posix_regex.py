"""posix_regex - a POSIX regular expression as a Python pattern.

SYNOPSIS
    re.compile(from_posix(r"^[[:alnum:]._-]+@example\\.com$"), re.ASCII | re.DOTALL)
    re.compile(from_posix(r"^\\(a*\\)\\{2\\}$", extended=False), re.ASCII | re.DOTALL)

DESCRIPTION
    Postfix's regexp: tables are POSIX regular expressions as glibc's
    regcomp(3) reads them: extended (REG_EXTENDED) by default, basic when
    the table's x flag turns REG_EXTENDED off. from_posix() translates
    either into a Python pattern that matches the same strings, to be
    compiled with re.ASCII (the C locale's classes and case folding) and
    re.DOTALL, or re.MULTILINE when newline=True (REG_NEWLINE, the table's
    m flag: "." and [^...] do not match a newline, ^ and $ match at one).

    Extended (ERE): ( ) groups, | alternation, * + ? {m,n} repetition
    (repetitions may follow each other: "a**", "a{2}{3}"), ^ $ anchors
    anywhere. A ")" without "(" is an ordinary character; a repetition at
    the start of the expression, of a group or branch, or after an anchor is
    an error, as in glibc.

    Basic (BRE, GNU flavour): \\( \\) groups, \\| alternation, \\{m,n\\}
    intervals, * and GNU's \\+ \\? repetition; + ? | { } ( ) are ordinary
    characters. * (and \\+ \\?) at the start of the expression, of a group
    or branch, or after ^ is an ordinary character; ^ is an anchor only at
    those starts and $ only at the end of the expression, group or branch,
    elsewhere they are ordinary. * or an interval right after another
    repetition is an error (\\+ and \\? may follow one).

    Both: back references \\1 to \\9 (to a group already closed), the GNU
    escapes \\w \\W \\s \\S \\b \\B \\< \\> \\` \\', any other escaped
    character standing for itself ("\\." a dot, "\\d" the letter d; but
    case-insensitive, as regexp tables are by default, glibc compares an
    escaped letter unfolded with the subject folded to upper case, so "\\d"
    matches nothing and "\\D" both d and D, and so here), and bracket
    expressions:

      [:alpha:] [:digit:] ...  the twelve POSIX character classes, as the
                               C locale defines them;
      [=c=] [.c.]              an equivalence class or collating element of
                               one character: that character;
      \\                       a backslash is an ordinary character inside
                               brackets ("[\\.]" is backslash or dot);
      [ and the set            characters Python would read as nested sets or
      operators && -- || ~~    set operations are escaped.

    A "]" right after "[" or "[^" is an ordinary member, as in POSIX; so is
    "-" first or last, or as the end of a range ("[!--]").

    Which strings match is the same; what a group captured can differ where
    POSIX's leftmost-longest rule and Python's first-alternative-first
    backtracking pick different ways to match (an alternation whose first
    branch is a prefix of a later one).

ERRORS
    ValueError for what glibc's regcomp() refuses, worded as its regerror()
    words it ("Unmatched ( or \\(", "Invalid preceding regular
    expression"). posix_error_text() gives that text for a ValueError from
    here, or for the re.error Python may raise on a translated pattern.
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
_ESIZE = "Regular expression too big"
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

# glibc's RE_DUP_MAX: the largest count an interval may give.
_DUP_MAX = 0x7FFF

# The GNU escapes, for patterns compiled with re.ASCII.
_ESCAPES = {
    "w": "\\w", "W": "\\W", "s": "\\s", "S": "\\S", "b": "\\b",
    # Python's \B never matches in an empty string; glibc's does.
    "B": "(?:\\B|\\A\\Z)",
    "<": "\\b(?=\\w)", ">": "\\b(?<=\\w)", "`": "\\A", "'": "\\Z",
}
_ANCHOR_ESCAPES = frozenset("bB<>`'")


def posix_error_text(e: Exception) -> str:
    """What glibc's regerror() says for the mistake behind e (a ValueError
    from from_posix, or Python's re.error on its result)."""
    if isinstance(e, re.error):
        return next((text for python, text in _PYTHON_TEXTS if e.msg.startswith(python)),
                    _BADPAT)
    return str(e)


def from_posix(source: str, *, extended: bool = True, newline: bool = False,
               icase: bool = False) -> str:
    """The Python pattern that matches what the POSIX expression ``source``
    matches (see the module description); icase says the pattern will be
    compiled case-insensitive (REG_ICASE)."""
    return _Translator(source, extended, newline, icase).translate()


class _Piece:
    """One element of a branch: its Python text, and what may follow it."""

    __slots__ = ("text", "repeated", "anchor")

    def __init__(self, text: str, *, anchor: bool = False) -> None:
        self.text = text
        self.repeated = False       # ends in a repetition
        self.anchor = anchor        # ^ $ \b ...: nothing to repeat


class _Translator:
    def __init__(self, source: str, extended: bool, newline: bool, icase: bool) -> None:
        self.s = source
        self.i = 0
        self.ere = extended
        self.newline = newline
        self.icase = icase
        self.opened_groups = 0                  # groups are numbered as they open
        self.closed_groups: set[int] = set()
        self.last_token: str | None = None      # of number()

    def translate(self) -> str:
        out = self.alternation(0)
        if self.i < len(self.s):            # only a BRE "\)" stops the top level
            raise ValueError(_EPAREN)
        return out

    # -- structure -------------------------------------------------------------

    def at(self, text: str) -> bool:
        return self.s.startswith(text, self.i)

    def at_close(self, depth: int) -> bool:
        if self.ere:
            return depth > 0 and self.at(")")
        return self.at("\\)")

    def at_bar(self) -> bool:
        return self.at("|") if self.ere else self.at("\\|")

    def alternation(self, depth: int) -> str:
        branches = [self.branch(depth)]
        while self.at_bar():
            self.i += 1 if self.ere else 2
            branches.append(self.branch(depth))
        return "|".join(branches)

    def branch(self, depth: int) -> str:
        pieces: list[_Piece] = []
        s = self.s
        while self.i < len(s) and not self.at_close(depth) and not self.at_bar():
            if self.repetition(pieces):
                continue
            ch = s[self.i]
            if self.at("(" if self.ere else "\\("):
                self.i += 1 if self.ere else 2
                self.opened_groups += 1
                number = self.opened_groups
                inner = self.alternation(depth + 1)
                if not self.at_close(depth + 1):
                    raise ValueError(_EPAREN)
                self.i += 1 if self.ere else 2
                self.closed_groups.add(number)
                pieces.append(_Piece(f"({inner})"))
            elif ch == "^" and (self.ere or not pieces):
                self.i += 1
                pieces.append(_Piece("^", anchor=True))
            elif ch == "$" and (self.ere or self.at_end_of_branch(depth)):
                self.i += 1
                pieces.append(_Piece("$" if self.newline else "\\Z", anchor=True))
            elif ch == ".":
                self.i += 1
                pieces.append(_Piece("."))
            elif ch == "[":
                text, self.i = _bracket(s, self.i + 1, self.newline, self.icase)
                pieces.append(_Piece(text))
            elif ch == "\\":
                pieces.append(self.escape())
            else:
                self.i += 1
                pieces.append(_Piece(re.escape(ch)))
        return "".join(p.text for p in pieces)

    def at_end_of_branch(self, depth: int) -> bool:
        """BRE: a "$" here is an anchor (the end of the expression, group or branch)."""
        self.i += 1
        try:
            return self.i >= len(self.s) or self.at("\\)") or self.at("\\|")
        finally:
            self.i -= 1

    def escape(self) -> _Piece:
        s = self.s
        if self.i + 1 >= len(s):
            raise ValueError(_EESCAPE)
        ch = s[self.i + 1]
        self.i += 2
        if ch in "123456789":
            # Only to a group already closed: in BRE \(\(\)\1 the one
            # closed is the second (glibc REG_ESUBREG).
            if int(ch) not in self.closed_groups:
                raise ValueError(_ESUBREG)
            return _Piece(f"(?:\\{ch})")
        if ch in _ESCAPES:
            return _Piece(_ESCAPES[ch], anchor=ch in _ANCHOR_ESCAPES)
        if self.icase and "a" <= ch <= "z":
            # glibc folds the subject to upper case under REG_ICASE but not
            # an escaped letter: \d matches nothing, \D both d and D.
            return _Piece("(?!)")
        return _Piece(re.escape(ch))

    # -- repetition ---------------------------------------------------------------

    def repetition(self, pieces: list[_Piece]) -> bool:
        """Translate a repetition operator at the current position onto the
        last piece; False when there is none here (or, in a BRE, it is an
        ordinary character in this place)."""
        s, i = self.s, self.i
        if self.ere:
            if s[i] in "*+?":
                op, length, interval = s[i], 1, False
            elif s[i] == "{":
                op, length, interval = "{", 1, True
            else:
                return False
        else:
            if s[i] == "*":
                op, length, interval = "*", 1, False
            elif s.startswith("\\+", i) or s.startswith("\\?", i):
                op, length, interval = s[i + 1], 2, False
            elif s.startswith("\\{", i):
                op, length, interval = "{", 2, True
            else:
                return False
        last = pieces[-1] if pieces else None
        if last is None or last.anchor:
            if self.ere or interval:
                raise ValueError(_BADRPT)
            return False            # BRE: an ordinary character here
        if last.repeated and not self.ere and op in "*{":
            raise ValueError(_BADRPT)
        self.i += length
        quantifier = self.interval() if interval else op
        if last.repeated:
            last.text = f"(?:{last.text})"
        last.text += quantifier
        last.repeated = True
        return True

    def interval(self) -> str:
        """The Python quantifier for "{m,n}" (after the opening brace),
        read as glibc's parse_dup_op() and fetch_number() read it."""
        low, token = self.number()
        if low == -1:
            if token != ",":
                raise ValueError(_BADBR)             # "{}"
            low = 0                                  # "{,n}" is "{0,n}"
        high = -2
        if low != -2:
            high = low if token == "}" else self.number()[0] if token == "," else -2
            token = self.last_token
        if low == -2 or high == -2:
            raise ValueError(_EBRACE if token is None else _BADBR)
        if (high != -1 and low > high) or token != "}":
            raise ValueError(_BADBR)
        if (low if high == -1 else high) > _DUP_MAX:
            raise ValueError(_ESIZE)
        if high == -1:
            return f"{{{low},}}"
        return f"{{{low}}}" if high == low else f"{{{low},{high}}}"

    def number(self) -> tuple[int, str | None]:
        """glibc fetch_number(): the count up to the next "," or closing
        brace (-1 none, -2 not a number), and that token ("," or "}"; None
        at the end of the pattern)."""
        s = self.s
        num = -1
        while True:
            if self.i >= len(s):
                self.last_token = None
                return -2, None
            ch = s[self.i]
            if ch == "\\" and self.i + 1 < len(s):
                ch = s[self.i + 1]
                self.i += 2
                close = not self.ere and ch == "}"
                digit = ch == "0"               # \1 to \9 are back references
            else:
                self.i += 1
                close = self.ere and ch == "}"
                digit = ch in "0123456789"
            if close or ch == ",":
                self.last_token = "}" if close else ","
                return num, self.last_token
            if not digit or num == -2:
                num = -2
            else:
                num = int(ch) if num == -1 else min(_DUP_MAX + 1, num * 10 + int(ch))


def _bracket(source: str, i: int, newline: bool = False,
             icase: bool = False) -> tuple[str, int]:
    """The bracket expression starting at source[i] (after "["): its Python
    set, and the index after its closing "]". With newline (REG_NEWLINE) a
    non-matching list does not match a newline. Ranges are checked as glibc
    checks them: from and to one character (not a class or an equivalence
    class), not backwards, and no "-" straight after a range."""
    n = len(source)
    out = ["["]
    if i < n and source[i] == "^":
        out.append("^\\n" if newline else "^")
        i += 1
    if i >= n:
        raise ValueError(_BADPAT)       # glibc: "[" or "[^" ending the pattern
    first = True
    while True:
        if i >= n:
            raise ValueError(_EBRACK)
        kind, value, i = _element(source, i, first)
        first = False
        if kind == "]":
            out.append("]")
            return "".join(out), i
        if i + 1 < n and source[i] == "-" and source[i + 1] != "]":
            end_kind, end, i = _element(source, i + 1, False)
            if icase and kind == "char" and end_kind == "char":
                # REG_ICASE: glibc folds both ends to upper case first (as
                # it folds the subject), so [a-A] is A-A, [A-_] is A-_ and
                # [Z-a] is backwards.
                value, end = value.upper(), end.upper()
            if kind != "char" or end_kind != "char" or ord(end) < ord(value):
                raise ValueError(_ERANGE)
            if i < n and source[i] == "-" and (i + 1 == n or source[i + 1] != "]"):
                raise ValueError(_ERANGE)       # "[a-z-9]", and "[a-z-" at the end
            out.append(f"{re.escape(value)}-{re.escape(end)}")
        else:
            out.append(value if kind == "class" else re.escape(value))


def _element(source: str, i: int, first: bool) -> tuple[str, str, int]:
    """One element of a bracket expression at source[i]: ("]", "", next) for
    the closing bracket, ("class", Python set members, next) for [:name:],
    ("equiv", c, next) for [=c=], else ("char", c, next), [.c.] included."""
    ch = source[i]
    if ch == "]" and not first:
        return "]", "", i + 1
    if ch == "[" and i + 1 < len(source) and source[i + 1] in ":=.":
        kind = source[i + 1]
        end = source.find(kind + "]", i + 2)
        if end < 0:
            raise ValueError(_EBRACK)
        name = source[i + 2:end]
        if kind == ":":
            if name not in _CLASSES:
                raise ValueError(_ECTYPE)
            return "class", _CLASSES[name], end + 2
        if len(name) != 1:
            raise ValueError(_ECOLLATE)
        return ("equiv" if kind == "=" else "char"), name, end + 2
    return "char", ch, i + 1


__all__ = ["from_posix", "posix_error_text"]
