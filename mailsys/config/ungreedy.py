"""ungreedy - PCRE's U flag (PCRE2_UNGREEDY) for a pattern in Python's re syntax.

SYNOPSIS
    re.compile(ungreedy(r"<(.+)>"))          # as re.compile(r"<(.+?)>")

DESCRIPTION
    With the U flag of a pcre: table every quantifier's greediness is
    inverted: a bare quantifier (* + ? {m,n}) becomes lazy and a lazy one
    (*? +? ?? {m,n}?) greedy; a possessive one (*+ ++ ?+ {m,n}+) stays as
    it is. Python's re has no such flag, so ungreedy() rewrites the pattern,
    reading it as Python's own parser (sre_parse) does:

      - an escape is a backslash and the next character (\\N{NAME} through
        its closing brace), never a quantifier;
      - a character class runs to its closing "]" (a "]" right after "[" or
        "[^" is a member, a backslash escapes the next character), and holds
        no quantifier;
      - "(?" opens an extension whose "?" is no quantifier: (?:  (?P<name>
        (?P=name)  (?#comment)  (?=  (?!  (?<=  (?<!  (?>  (?(group)
        and inline flags (?aiLmsux) / (?aiLmsux-imsx:;
      - "{" is a quantifier only as Python reads one: digits, optionally a
        comma and digits, and "}"; otherwise it is an ordinary character.

    In verbose mode (the table's x flag, or an inline (?x) at the start) a
    #-comment outside a class runs to the end of the line, and whatever it
    holds is no quantifier. (White space changes nothing: Python takes the
    "?" or "+" that makes a quantifier lazy or possessive only right after
    it, verbose or not.) A pattern that turns verbose mode on or off for a
    part of itself ((?x:...), (?-x:...)) is refused with ValueError:
    whether a "#" there starts a comment depends on a scope this reading
    does not track.

SEE ALSO
    pcre2pattern(3) "Setting options", Python's re module documentation,
    Lib/re/_parser.py.
"""

from __future__ import annotations

import re

_INTERVAL = re.compile(r"\{[0-9]*(?:,[0-9]*)?\}")
_FLAGS = re.compile(r"\(\?([aiLmsux]*)(?:-([imsx]*))?([:)])")


def ungreedy(pattern: str, *, verbose: bool = False) -> str:
    """pattern with the greediness of every quantifier inverted (see the
    module description); verbose when compiled with re.VERBOSE."""
    flags = _FLAGS.match(pattern)
    if flags and flags.group(3) == ")" and "x" in flags.group(1):
        verbose = True                      # a global (?x) at the start
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            end = i + 2
            if pattern.startswith("\\N{", i):
                end = pattern.find("}", i) + 1 or n
            out.append(pattern[i:end])
            i = end
        elif ch == "[":
            end = _class_end(pattern, i)
            out.append(pattern[i:end])
            i = end
        elif ch == "(" and pattern.startswith("(?", i):
            end = _extension_end(pattern, i)
            out.append(pattern[i:end])
            i = end
        elif verbose and ch == "#":
            end = pattern.find("\n", i)
            end = n if end < 0 else end
            out.append(pattern[i:end])
            i = end
        elif ch in "*+?" or (ch == "{" and _INTERVAL.match(pattern, i)):
            end = i + 1 if ch != "{" else _INTERVAL.match(pattern, i).end()
            out.append(pattern[i:end])
            i = end
            if i < n and pattern[i] == "+":          # possessive: as it is
                out.append("+")
                i += 1
            elif i < n and pattern[i] == "?":        # lazy: now greedy
                i += 1
            else:                                    # greedy: now lazy
                out.append("?")
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _class_end(pattern: str, i: int) -> int:
    """The index after the "]" closing the class that starts at pattern[i]."""
    j = i + 1
    if j < len(pattern) and pattern[j] == "^":
        j += 1
    if j < len(pattern) and pattern[j] == "]":
        j += 1
    while j < len(pattern) and pattern[j] != "]":
        j += 2 if pattern[j] == "\\" else 1
    return min(j + 1, len(pattern))


def _extension_end(pattern: str, i: int) -> int:
    """The index after the head of the "(?" extension at pattern[i]: where
    its subpattern (if any) begins."""
    rest = pattern[i + 2:i + 4]
    if rest.startswith(("P<", "P=", "#", "(")):
        close = {"P<": ">", "P=": ")", "#": ")", "(": ")"}[rest[:2] if rest[0] == "P" else rest[0]]
        end = pattern.find(close, i + 2)
        return len(pattern) if end < 0 else end + 1
    if rest.startswith(("<=", "<!")):
        return i + 4
    if rest[:1] in (":", "=", "!", ">"):
        return i + 3
    flags = _FLAGS.match(pattern, i)
    if flags:
        if flags.group(3) == ":" and "x" in (flags.group(1) or "") + (flags.group(2) or ""):
            raise ValueError("verbose mode for part of a pattern")
        return flags.end()
    return i + 2                            # not an extension Python knows: re says so


__all__ = ["ungreedy"]
