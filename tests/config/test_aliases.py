"""aliases(5) syntax: names, values, continuation lines, comments, quoting."""

import pytest

from mailsys.config.aliases import parse_aliases, split_alias_value

# The same source Postfix 3.7's postalias compiled; its "postalias -s" dump
# gave these entries (checked on a private instance).
SOURCE = """\
# test aliases
postmaster: root
Root: alice
both: alice,
  far2@example.net
self: self, far3@example.net
"quoted name": alice
list: :include:/etc/list
pipe: "|/bin/sh -c 'cat > /tmp/out'"
  # a comment inside the continued value
file: /tmp/file.out
"""

DUMP = {
    "postmaster": "root",
    "root": "alice",
    "both": "alice, far2@example.net",
    "self": "self, far3@example.net",
    "quoted name": "alice",
    "list": ":include:/etc/list",
    "pipe": "\"|/bin/sh -c 'cat > /tmp/out'\"",
    "file": "/tmp/file.out",
}


def test_parse_like_postalias():
    entries, warnings = parse_aliases(SOURCE, "/etc/aliases")
    assert entries == DUMP
    assert warnings == []


def test_warnings_like_postalias():
    # Postfix 3.7: "postalias: warning: /tmp/bad, line 2: need name:value pair",
    # and "/tmp/bad.db: duplicate entry: "a"" (the first value is kept).
    text = 'a: b\nnocolon here\n: empty\na: dup\n  # comment\n"q x" : y\n'
    entries, warnings = parse_aliases(text, "/tmp/bad", "/tmp/bad.lmdb")
    assert entries == {"a": "b", "q x": "y"}
    assert warnings == ["/tmp/bad, line 2: need name:value pair",
                        "/tmp/bad, line 3: need name:value pair",
                        '/tmp/bad.lmdb: duplicate entry: "a"']


@pytest.mark.parametrize("value, elements", [
    ("alice, far2@example.net", ["alice", "far2@example.net"]),
    ("a,b ,, c", ["a", "b", "c"]),
    ("\"|/bin/sh -c 'x y'\", bob", ["|/bin/sh -c 'x y'", "bob"]),
    # unquoted, a command ends at the first blank: Postfix delivered "hi" as an address
    ("|/bin/echo hi", ["|/bin/echo", "hi"]),
    ("<bob@example.com>", ["bob@example.com"]),
    (":include:/etc/list", [":include:/etc/list"]),
    ('"john doe"@example.com', ["john doe@example.com"]),
    ("", []),
])
def test_split_value(value, elements):
    assert split_alias_value(value) == elements
