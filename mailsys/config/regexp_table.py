"""regexp_table - Postfix regexp_table(5) and pcre_table(5) files.

SYNOPSIS
    table = read_regexp("regexp:/etc/mailsys/header_checks", path, warn, pcre=False)
    table.lookup("Subject: hello")       -> "REJECT no thanks" or None

DESCRIPTION
    One rule per logical line (comments and continuation lines as in
    main.cf):

        [!]/pattern/flags result     the first rule that matches gives the
                                     result, $1 ${1} $(1) replaced by the
                                     text the subexpression matched, $$ a $
        /pattern/flags!/pattern2/ result
                                     (regexp only) pattern matches and
                                     pattern2 does not
        if [!]/pattern/flags         the rules up to the matching endif
        endif                        apply only to keys the pattern matches

    Any non-space character other than a letter or digit may delimit a
    pattern; a backslash escapes it. regexp patterns are POSIX extended
    expressions (basic ones with the x flag), read by posix_regex; pcre
    patterns are Python's re syntax, which reads Perl's mostly alike.
    Flags: i (toggle case-insensitive, on by default), m (regexp: newline
    sensitive; pcre: multi-line), x (regexp: basic regular expression;
    pcre: extended, whitespace ignored); pcre also s (dot matches newline),
    A (anchored), U (ungreedy: every quantifier's greediness inverted, see
    ungreedy), E and X (accepted, nothing to do for one-line keys).

    A bad line does not make the table unusable: as Postfix does, it is
    skipped (or, for a missing result or text after IF, taken as far as it
    makes sense) with a warning naming the map, file and line, in Postfix's
    words ("regexp map /etc/x, line 3: unknown regexp option "q": skipping
    this rule"). A pattern that does not compile is named with the C
    library's regerror() text (regexp) or "error in regex at offset N: ..."
    (pcre), as Postfix's logs show them. An IF without ENDIF encloses the
    rest of the file, with a warning at its line. Warnings go to the warn
    callback given; the table opener's default logs them (tables).

SEE ALSO
    Postfix regexp_table(5), pcre_table(5), src/util/dict_regexp.c,
    dict_pcre.c, mac_parse.c; posix_regex, tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mailsys.config.lines import logical_lines
from mailsys.config.posix_regex import from_posix, posix_error_text
from mailsys.config.ungreedy import ungreedy
from mailsys.errors import ConfigError
from mailsys.frozen import frozen

Warn = Callable[[str], None]


@frozen
class _Rule:
    pattern: re.Pattern
    negate: bool
    result: tuple | None = None     # literal text and group numbers; None for "if"
    # /pattern/!/pattern2/: a second pattern, with its negation ("!" means
    # must not match, "!!" must match).
    second: re.Pattern | None = None
    second_negate: bool = False
    body: tuple = ()                # the rules inside an if
    line: int = 0


@frozen
class RegexpTable:
    """regexp_table(5) / pcre_table(5): the first matching rule gives the result."""
    spec: str
    rules: tuple

    def lookup(self, key: str) -> str | None:
        return _match(self.rules, key)


def _match(rules: tuple, key: str) -> str | None:
    for rule in rules:
        m = rule.pattern.search(key)
        if (m is None) != rule.negate:
            continue
        if rule.result is None:                       # if /pattern/ ... endif
            found = _match(rule.body, key)
            if found is not None:
                return found
            continue
        if rule.second is not None and (rule.second.search(key) is None) != rule.second_negate:
            continue
        return "".join(piece if isinstance(piece, str) else (m.group(piece) or "")
                       for piece in rule.result)
    return None


def read_regexp(spec: str, path: Path | None, warn: Warn, *, pcre: bool,
                rules: tuple[str, ...] = ()) -> RegexpTable:
    """Parse the regexp (or pcre) table file at path; see the module
    description. Without a path, the rules are the table's lines (an
    inline table, Postfix 3.7's ``regexp:{ {/a/ b}, {/c/ d} }``)."""
    if path is None:
        file, text = spec, "\n".join(rules)
    else:
        file = str(path)
        try:
            text = path.read_text(encoding="utf-8", errors="surrogateescape")
        except OSError as e:
            raise ConfigError(f"open {file}: {e.strerror}") from None
    reader = _Reader(f"{'pcre' if pcre else 'regexp'} map {file}", pcre, warn)
    stack: list[list[_Rule]] = [[]]
    opened: list[_Rule] = []
    for ll in logical_lines(text, file):
        reader.line = ll.line
        p = ll.text
        if not p[0].isalnum():
            rule = reader.match_rule(p)
            if rule is not None:
                stack[-1].append(rule)
        elif p[:2].lower() == "if" and not p[2:3].isalnum():
            rule = reader.if_rule(p[2:].lstrip())
            if rule is not None:
                opened.append(rule)
                stack.append([])
        elif p[:5].lower() == "endif" and not p[5:6].isalnum():
            if not opened:
                reader.warn("ignoring ENDIF without matching IF")
                continue
            if p[5:].strip():
                reader.warn("ignoring extra text after ENDIF")
            cond = opened.pop()
            body = stack.pop()
            stack[-1].append(_Rule(cond.pattern, cond.negate, body=tuple(body), line=cond.line))
        else:
            reader.warn("ignoring unrecognized request")
    # An IF without ENDIF encloses the rest of the file.
    while opened:
        cond = opened.pop()
        reader.line = cond.line
        reader.warn("IF has no matching ENDIF")
        body = stack.pop()
        stack[-1].append(_Rule(cond.pattern, cond.negate, body=tuple(body), line=cond.line))
    return RegexpTable(spec, tuple(stack[0]))


@dataclass(slots=True)
class _Pattern:
    source: str
    negate: bool
    flags: str


class _Reader:
    """Parses one table's lines; warns as "<map>, line N: <text>"."""

    def __init__(self, where: str, pcre: bool, warn: Warn) -> None:
        self.where = where
        self.pcre = pcre
        self._warn = warn
        self.line = 0

    def warn(self, text: str) -> None:
        self._warn(f"{self.where}, line {self.line}: {text}")

    def match_rule(self, text: str) -> _Rule | None:
        first, rest = self.pattern(text)
        if first is None:
            return None
        second = None
        if rest.startswith("!") and not self.pcre:
            second, rest = self.pattern(rest)
            if second is None:
                return None
        result = rest.strip()
        if not result:
            self.warn("no replacement text: using empty string")
        pieces = self.replacement(result)
        if pieces is None:
            return None
        groups = max((p for p in pieces if isinstance(p, int)), default=0)
        if groups and first.negate:
            self.warn("$number found in negative match replacement text: skipping this rule")
            return None
        compiled = self.compile(first)
        if compiled is None:
            return None
        if groups > compiled.groups:
            self.warn(f'out of range replacement index "{groups}": skipping this rule')
            return None
        rule = _Rule(compiled, first.negate, pieces, line=self.line)
        if second is not None:
            also = self.compile(second)
            if also is None:
                return None
            rule = _Rule(compiled, first.negate, pieces, also, second.negate, line=self.line)
        return rule

    def if_rule(self, text: str) -> _Rule | None:
        pattern, rest = self.pattern(text)
        if pattern is None:
            return None
        rest = rest.strip()
        if rest:
            self.warn(f'ignoring extra text after IF statement: "{rest}"')
            self.warn("do not prepend whitespace to statements between IF and ENDIF")
        compiled = self.compile(pattern)
        if compiled is None:
            return None
        return _Rule(compiled, pattern.negate, line=self.line)

    def pattern(self, text: str) -> tuple[_Pattern | None, str]:
        """``[!]/pattern/flags`` at the start of text: the pattern and what follows."""
        negate = False
        i = 0
        while i < len(text) and (text[i] == "!" or text[i].isspace()):
            negate ^= text[i] == "!"
            i += 1
        if i >= len(text):
            self.warn("no regexp: skipping this rule")
            return None, ""
        delim = text[i]
        start = j = i + 1
        while j < len(text) and text[j] != delim:
            j += 2 if text[j] == "\\" and j + 1 < len(text) else 1
        if j >= len(text):
            self.warn(f'no closing regexp delimiter "{delim}": '
                      f'{"ignoring" if self.pcre else "skipping"} this rule')
            return None, ""
        source = text[start:j]
        j += 1
        flags_start = j
        while j < len(text) and not text[j].isspace() and (self.pcre or text[j] != "!"):
            if text[j] not in ("imsxAEXU" if self.pcre else "imx"):
                self.warn(f'unknown regexp option "{text[j]}": skipping this rule')
                return None, ""
            j += 1
        return _Pattern(source, negate, text[flags_start:j]), text[j:]

    def replacement(self, text: str) -> tuple | None:
        """Postfix mac_parse() on the result: literal text and group
        numbers, or None (warned) when it is no good."""
        pieces: list = []
        literal: list[str] = []
        i, n = 0, len(text)
        while i < n:
            ch = text[i]
            if ch != "$":
                literal.append(ch)
                i += 1
                continue
            if text[i + 1:i + 2] == "$":
                literal.append("$")
                i += 2
                continue
            close = {"{": "}", "(": ")"}.get(text[i + 1:i + 2])
            if close is not None:
                end = text.find(close, i + 2)
                other = text.find("}" if close == ")" else ")", i + 2)
                if end < 0 or 0 <= other < end:
                    self._warn(f'truncated macro reference: "{text}"')
                    self.warn("bad replacement syntax: skipping this rule")
                    return None
                name, i = text[i + 2:end], end + 1
            else:
                m = re.match(r"[A-Za-z0-9_]*", text[i + 1:])
                name = m.group(0)
                i += 1 + len(name)
            if not name:
                self._warn(f'empty macro name: "{text}"')
                self.warn("bad replacement syntax: skipping this rule")
                return None
            if not name.isascii() or not name.isdigit():
                self.warn(f'non-numeric replacement index "{name}"')
                self.warn("bad replacement syntax: skipping this rule")
                return None
            if int(name) < 1:
                self.warn(f'{"out of range" if self.pcre else "out-of-range"} '
                          f'replacement index "{name}"')
                self.warn("bad replacement syntax: skipping this rule")
                return None
            if literal:
                pieces.append("".join(literal))
                literal.clear()
            pieces.append(int(name))
        if literal:
            pieces.append("".join(literal))
        return tuple(pieces)

    def compile(self, pattern: _Pattern) -> re.Pattern | None:
        """The compiled pattern, or None (warned) when it does not compile."""
        source = pattern.source
        if self.pcre:
            return self._compile_pcre(source, pattern.flags)
        # POSIX regcomp() without REG_NEWLINE lets "." match a newline (a
        # folded header is one string with newlines in it); the m flag is
        # REG_NEWLINE.
        icase = extended = True
        newline = False
        for ch in pattern.flags:
            if ch == "i":
                icase = not icase
            elif ch == "m":
                newline = not newline
            elif ch == "x":
                extended = not extended
        try:
            python = from_posix(source, extended=extended, newline=newline, icase=icase)
            # re.ASCII: the C locale's classes and case folding, as Postfix has them.
            flags = re.ASCII | (re.IGNORECASE if icase else 0) | \
                (re.MULTILINE if newline else re.DOTALL)
            return re.compile(python, flags)
        except (ValueError, re.error) as e:
            self.warn(posix_error_text(e))
            return None

    def _compile_pcre(self, source: str, options: str) -> re.Pattern | None:
        flags = re.IGNORECASE
        anchored = lazy = False
        for ch in options:
            if ch == "i":
                flags ^= re.IGNORECASE
            elif ch == "m":
                flags ^= re.MULTILINE
            elif ch == "s":
                flags ^= re.DOTALL
            elif ch == "x":
                flags ^= re.VERBOSE
            elif ch == "A":
                anchored = not anchored
            elif ch == "U":
                lazy = not lazy
            # E and X: "$" only at the very end, strict escapes; keys have no
            # newline and Python already refuses unknown letter escapes.
        if lazy:
            try:
                source = ungreedy(source, verbose=bool(flags & re.VERBOSE))
            except ValueError as e:
                self.warn(f"flag U: {e} is not supported: skipping this rule")
                return None
        try:
            return re.compile(f"\\A(?:{source})" if anchored else source, flags)
        except re.error as e:
            offset, text = pcre_error(source, e)
            self.warn(f"error in regex at offset {offset}: {text}")
            return None


# Python's re error messages and PCRE2's for the same mistakes, so that a
# warning reads as Postfix's would.
_PCRE_TEXTS = (
    ("missing ), unterminated subpattern", "missing closing parenthesis", True),
    ("unbalanced parenthesis", "unmatched closing parenthesis", False),
    ("unterminated character set", "missing terminating ] for character class", True),
    ("nothing to repeat", "quantifier does not follow a repeatable item", False),
    ("multiple repeat", "quantifier does not follow a repeatable item", False),
    ("min repeat greater than max repeat", "numbers out of order in {} quantifier", False),
    ("bad character range", "range out of order in character class", False),
    ("bad escape (end of pattern)", "\\ at end of pattern", True),
    ("missing >, unterminated name", "syntax error in subpattern name (missing terminator?)", True),
    ("unknown group name", "reference to non-existent subpattern", False),
    ("invalid group reference", "reference to non-existent subpattern", False),
)


def pcre_error(source: str, e: re.error) -> tuple[int, str]:
    """(offset, text) for a pattern Python's re refused, in PCRE2's words
    where the mistake has a counterpart."""
    pos = e.pos or 0
    for python, text, at_end in _PCRE_TEXTS:
        if e.msg.startswith(python):
            if python.startswith("min repeat"):
                pos = source.find("}", pos)         # PCRE2 points at the closing brace
            return (len(source) if at_end else pos), text
    return pos, e.msg


__all__ = ["RegexpTable", "pcre_error", "read_regexp"]
