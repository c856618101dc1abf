"""from_posix: POSIX extended regular expressions (regexp: tables) as Python patterns."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailsys.config.posix_regex import from_posix


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
    pattern = re.compile(from_posix(source))
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
