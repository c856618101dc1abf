"""address_list.token_cut: tokens counted as Postfix's tok822_scan_limit() counts them."""

import pytest

from mailsys.message.address_list import rewrite_addresses, token_cut


@pytest.mark.parametrize("value, limit, head", [
    (" a, b@x.example, c", 5, " a, b@x"),                   # operators are tokens
    (' "a, b" <a@x>', 2, ' "a, b" <'),                      # a quoted string is one
    (" (one (two)) [1.2.3.4], z", 2, " (one (two)) [1.2.3.4]"),  # a comment, a literal
    (" a\\ b@x", 1, " a\\ b"),                              # an escaped space stays in the atom
    (" a@x", 3, " a@x"),
    (" a@x", 9, " a@x"),
])
def test_token_cut(value, limit, head):
    assert value[:token_cut(value, limit)] == head


def test_a_value_within_the_limit_is_rewritten_whole():
    qualify = lambda a: a if "@" in a else a + "@h"     # noqa: E731
    assert rewrite_addresses(" a, b", qualify, 3) == " a@h, b@h"
    assert rewrite_addresses(" a, b", qualify, 2) == " a@h,"
    assert rewrite_addresses(" a@x, b", qualify, 3) == " a@x, b"   # nothing changed in the head
