"""from_posix: POSIX regular expressions (regexp: tables) as Python patterns,
checked against glibc's own regcomp()/regexec() where it matters."""

from __future__ import annotations

import ctypes
import ctypes.util
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailsys.config.posix_regex import from_posix, posix_error_text


@pytest.mark.parametrize("source, matching, not_matching", [
    (r"^[[:alnum:]._-]+@example\.com$", ["a.b-c_9@example.com"], ["a+b@example.com"]),
    (r"[[:space:]]x", ["a\tx", "a x", "a\vx"], ["ax"]),
    (r"^[[:upper:][:digit:]]+$", ["AB12"], ["ab", "A b"]),
    (r"^[^[:punct:]]+$", ["abc 1"], ["a!", "a\\", "a]"]),
    (r"^[[:xdigit:]]+$", ["09afAF"], ["g"]),
    (r"^[[:cntrl:]]$", ["\x00", "\x7f"], ["a"]),
    (r"^[]a]+$", ["]a]"], ["b"]),                   # "]" first is a member
    (r"^[^]a]+$", ["bc"], ["]", "a"]),
    (r"^[\.]$", ["\\", "."], ["a"]),                # backslash is a member, no escape
    (r"^[[=a=]b]$", ["a", "b"], ["c"]),
    (r"^[[.-.]a]$", ["-", "a"], ["b"]),
    (r"x[[]y", ["x[y"], ["xy"]),                    # "[" inside is a member
    (r"^[a&&b]$", ["&"], ["x"]),                    # no set operations in POSIX
    (r"\[not a set\]", ["[not a set]"], ["n"]),     # escaped brackets stay outside
    (r"\bword\b", ["a word here"], ["swordfish"]),  # glibc's \b as Python's
])
def test_posix_bracket_expressions(source, matching, not_matching):
    pattern = re.compile(from_posix(source), re.ASCII | re.DOTALL)
    assert [s for s in matching if not pattern.search(s)] == []
    assert [s for s in not_matching if pattern.search(s)] == []


@pytest.mark.parametrize("source, message", [         # glibc regerror()'s words
    ("[abc", "Unmatched [, [^, [:, [., or [="), ("a[[:alpha:]", "Unmatched [, [^, [:, [., or [="),
    ("[[:nope:]]", "Invalid character class name"), ("[[.ab.]]", "Invalid collation character"),
])
def test_bad_bracket_expressions(source, message):
    with pytest.raises(ValueError) as e:
        from_posix(source)
    assert str(e.value) == message


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="[]^-:=.\\\\abc(){}*+?|$", max_size=24))
def test_any_pattern_translates_or_is_refused_cleanly(source):
    # The table reader catches ValueError and re.error and names file and line.
    try:
        pattern = from_posix(source)
    except ValueError:
        return
    try:
        re.compile(pattern)
    except re.error:
        pass



def python(source: str, *, extended: bool = True, newline: bool = False, icase: bool = False):
    return re.compile(from_posix(source, extended=extended, newline=newline, icase=icase),
                      re.ASCII | (re.IGNORECASE if icase else 0)
                      | (re.MULTILINE if newline else re.DOTALL))


@pytest.mark.parametrize("source, matching, not_matching", [
    (r"^\(a*\)b$", ["b", "aab"], ["ab+", "(a)b"]),              # \( \) group
    (r"^\(ab\)\{2\}$", ["abab"], ["ab", "ababab"]),             # \{ \} interval
    (r"^a\{,2\}$", ["", "aa"], ["aaa"]),
    (r"^a\{2,\}$", ["aa", "aaaa"], ["a"]),
    (r"^a+?|{}()$", ["a+?|{}()"], ["a", "aa"]),                  # ordinary in a BRE
    (r"^a\+$", ["a", "aaa"], ["", "a+"]),                        # GNU \+ \? \|
    (r"^ab\?$", ["a", "ab"], ["abb"]),
    (r"^a\|b$", ["a", "xb", "ax"], ["x"]),
    (r"*a", ["*a"], ["a", "aa"]),                                # * literal at the start
    (r"^*a", ["*a"], ["a"]),                                     # ... and after ^
    (r"\(*a\)", ["*a"], ["a"]),                                 # ... and after \(
    (r"x\|*a", ["x", "*a"], ["a"]),                              # ... and after \|
    (r"a^b", ["a^b"], ["ab"]),                                   # ^ only at a start
    (r"a$b", ["a$b"], ["ab"]),                                   # $ only at an end
    (r"\(^a$\)", ["a"], ["ba", "ab"]),
    (r"^\(a\)\1$", ["aa"], ["a", "ab"]),                         # back reference
    (r"\(a\)\(b\)\2\1", ["abba"], ["abab"]),
    (r"a**", None, None),                                        # BRE: no stacked *
    (r"a\{2\}*", None, None),
    (r"\{1\}a", None, None),
    (r"a*\+", ["", "b"], []),                                    # \+ may follow one
])
def test_basic_regular_expressions(source, matching, not_matching):
    if matching is None:
        with pytest.raises(ValueError, match="Invalid preceding regular expression"):
            from_posix(source, extended=False)
        return
    pattern = python(source, extended=False)
    assert [t for t in matching if not pattern.search(t)] == []
    assert [t for t in not_matching if pattern.search(t)] == []


@pytest.mark.parametrize("source, extended, matching, not_matching", [
    (r"a**", True, ["", "aa"], []),                              # ERE: stacked repetitions
    (r"^(ab){2}{2}$", True, ["ab" * 4], ["ab" * 2]),
    (r"^a+?$", True, ["", "aaa"], ["b"]),                        # (a+)?, not a lazy a+
    (r"a)", True, ["a)"], ["a"]),                                # a lone ) is ordinary
    (r"\d\.", True, ["d."], ["1.", "dx"]),                       # escaped: the character itself
    (r"\<ab\>", True, ["ab", "x ab y"], ["xab", "abx"]),          # GNU word edges
    (r"^\w+\W\s\S$", True, ["a_1- x"], ["a_1-  "]),
    (r"c$", True, ["abc"], ["abc\n"]),                          # $ is the very end
])
def test_extended_regular_expression_details(source, extended, matching, not_matching):
    pattern = python(source, extended=extended)
    assert [t for t in matching if not pattern.search(t)] == []
    assert [t for t in not_matching if pattern.search(t)] == []


def test_newline_sensitive_matching():
    pattern = python(r"^b[^a]*$", newline=True)
    assert [t for t in ("a\nbc\nd", "b\nc", "xb") if pattern.search(t)] == ["a\nbc\nd", "b\nc"]
    assert not python(r"^b[^a]*$").search("a\nbc")
    assert python(r"a.b").search("a\nb") and not python(r"a.b", newline=True).search("a\nb")


# -- glibc as the oracle ------------------------------------------------------------------

class _Glibc:
    """regcomp()/regexec() of the C library, the regexp engine Postfix uses."""

    EXTENDED, ICASE, NEWLINE = 1, 2, 4
    REGEX_T_SIZE = 256          # generously more than glibc's sizeof(regex_t) (64)

    def __init__(self) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.regcomp.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
        libc.regexec.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                                 ctypes.c_void_p, ctypes.c_int]
        libc.regerror.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
        libc.regfree.argtypes = [ctypes.c_void_p]
        self.libc = libc

    def outcome(self, source: str, flags: int, subjects) -> "str | list[bool]":
        """regerror()'s text, or for each subject whether it matches."""
        regex = ctypes.create_string_buffer(self.REGEX_T_SIZE)
        status = self.libc.regcomp(regex, source.encode(), flags)
        if status:
            text = ctypes.create_string_buffer(200)
            self.libc.regerror(status, regex, text, 200)
            return text.value.decode()
        try:
            return [self.libc.regexec(regex, t.encode(), 0, None, 0) == 0 for t in subjects]
        finally:
            self.libc.regfree(regex)


GLIBC = _Glibc()
# Pieces of patterns: every operator of both flavours, escapes, intervals good
# and bad, bracket expressions. (Ranges stay within letters: glibc compares
# a range like "b-[" differently under REG_ICASE, no configuration writes one.)
TOKENS = list("aAbB.*+?{}()|^$[]\\,12-") + [
    "\\(", "\\)", "\\{", "\\}", "\\|", "\\+", "\\?", "\\1", "\\2", "{1}", "{1,2}", "{2,}",
    "{,1}", "\\{1\\}", "\\{,1\\}", "\\{2,\\}", "[ab]", "[^a]", "[a-c]", "[]a]", "[[:alpha:]]",
    "[^[:lower:]]", "\\<", "\\>", "\\w", "\\W", "\\s", "\\b", "\\B", "\\`", "\\'", "\\\\", "\\d"]
SUBJECTS = ["", "a", "b", "ab", "ba", "aab", "abab", "a*", "*a", "a+", "+a", "a?", "{1}", "a{1}",
            "(a)", "a|b", "^a", "a$", "a\\", "aa", "bb", "a b", "}", "{", ")", "(", "|", "a,", "1",
            "11", "A", "aB", "Ab", "AB", " a", "a_b", "-", "aaa", "d"]
# glibc lets "." take a newline and an anchor in mid-pattern then match after
# it even without REG_NEWLINE (".^" matches "a\nb"); no table relies on that,
# so without the m flag the subjects hold no newline.
NEWLINE_SUBJECTS = SUBJECTS + ["a\nb", "\n", "\nb", "a\n"]


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=8).map("".join),
       st.booleans(), st.booleans(), st.booleans())
@example("[a-A", False, False, True)        # REG_ICASE folds a range's ends: a-A is A-A
@example("[A-_]", False, False, True)
@example("[_-a]", True, False, True)
@example("[a-a-", False, False, False)      # a "-" after a range, then the end: ERANGE
@example("\\(\\(\\)\\1", False, False, False)   # \1 names the group still open: ESUBREG
def test_the_translation_matches_what_glibc_matches(source, extended, newline, icase):
    flags = ((GLIBC.EXTENDED if extended else 0) | (GLIBC.NEWLINE if newline else 0)
             | (GLIBC.ICASE if icase else 0))
    subjects = NEWLINE_SUBJECTS if newline else SUBJECTS
    expected = GLIBC.outcome(source, flags, subjects)
    try:
        pattern = python(source, extended=extended, newline=newline, icase=icase)
        got = [pattern.search(t) is not None for t in subjects]
    except (ValueError, re.error) as e:
        got = posix_error_text(e)
    assert got == expected
