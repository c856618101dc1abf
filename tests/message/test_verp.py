"""verp_sender: Postfix verp_sender(3)'s address for one recipient."""

import pytest

from mailsys.message.verp import verp_sender


@pytest.mark.parametrize("sender, recipient, delimiters, expected", [
    ("owner-list@lists.example", "u1@example.net", "+=", "owner-list+u1=example.net@lists.example"),
    ("owner-list@lists.example", "u1@example.net", "-=", "owner-list-u1=example.net@lists.example"),
    ("owner", "u@x.example", "+=", "owner+u=x.example"),        # a sender without a domain
    ("a@b.example", "local", "+=", "a+local@b.example"),        # a recipient without one
    ("", "u@x.example", "+=", ""),                              # the null sender stays null
])
def test_verp_sender(sender, recipient, delimiters, expected):
    assert verp_sender(sender, recipient, delimiters) == expected
