"""pipe(8) argv= macros: parsing, per-recipient expansion, and the q/h/u flags."""

from __future__ import annotations

import pytest

from mailsys.delivery.pipe_macros import (Macro, MacroError, Recipient, expand_argv,
                                          parse_template, request_values, split_addr)

VALUES = request_values(sender="Alice@Example.ORG", null_sender="MAILER-DAEMON",
                        nexthop="MX.Example.COM", size=1234, queue_id="4F2A1C3B7D",
                        client_address="192.0.2.7", client_hostname="c.example",
                        client_port="40123", client_protocol="ESMTP", client_helo="helo.example",
                        sasl_method="PLAIN", sasl_username="alice")
BOB = Recipient("Bob+Box@Example.COM", "bob.orig@Example.COM")
CAROL = Recipient("carol@example.net", "carol@example.net")


def test_parse_forms_and_dollar():
    assert parse_template("-d${user}@$domain$(size)$$x") == (
        "-d", Macro("user"), "@", Macro("domain"), Macro("size"), "$x")
    assert parse_template("plain") == ("plain",)
    assert parse_template("$$") == ("$",)


@pytest.mark.parametrize("word, why", [
    ("${nosuch}", 'unknown macro name: "nosuch"'),
    ("$Recipient", 'unknown macro name: "Recipient"'),
    ("${recipient", "missing '}'"),
    ("a$", "empty macro name"),
    ("$-x", "empty macro name"),
])
def test_parse_errors(word, why):
    with pytest.raises(MacroError, match=why):
        parse_template(word)


def test_recipient_expands_to_one_argument_per_recipient():
    argv = ("/usr/lib/dovecot/deliver", "-f", "${sender}", "-d", "${recipient}", "--", "$nexthop")
    assert expand_argv(argv, VALUES, [BOB, CAROL]) == [
        "/usr/lib/dovecot/deliver", "-f", "Alice@Example.ORG", "-d",
        "Bob+Box@Example.COM", "carol@example.net", "--", "MX.Example.COM"]


def test_a_word_with_several_per_recipient_macros_is_per_recipient():
    argv = ("x", "${user}|${extension}|${mailbox}|${domain}|${original_recipient}|${size}")
    assert expand_argv(argv, VALUES, [BOB, CAROL], delimiters="+") == [
        "x", "Bob|Box|Bob+Box|Example.COM|bob.orig@Example.COM|1234",
        "carol||carol|example.net|carol@example.net|1234"]


def test_every_request_macro():
    names = ("client_address", "client_hostname", "client_port", "client_protocol", "client_helo",
             "sasl_method", "sasl_username", "sasl_sender", "queue_id", "size")
    assert expand_argv([f"${{{n}}}" for n in names], VALUES, [BOB]) == [
        "192.0.2.7", "c.example", "40123", "ESMTP", "helo.example", "PLAIN", "alice", "",
        "4F2A1C3B7D", "1234"]


def test_folding_flags():
    argv = ("${recipient}", "${original_recipient}", "${user}", "${domain}", "${nexthop}")
    values = request_values(sender="", null_sender="MAILER-DAEMON", nexthop="MX.Example.COM",
                            size=1, queue_id="Q", flags=frozenset("hu"))
    assert expand_argv(argv, values, [BOB], frozenset("hu"), "+") == [
        "bob+box@example.com", "bob.orig@example.com", "bob", "example.com", "mx.example.com"]
    assert expand_argv(argv, VALUES, [BOB], frozenset("u"), "+") == [
        "bob+box@Example.COM", "bob.orig@Example.COM", "bob", "Example.COM", "MX.Example.COM"]
    values = request_values(sender="", null_sender="", nexthop="MX.Example.COM", size=1,
                            queue_id="Q", flags=frozenset("h"))
    assert expand_argv(argv, values, [BOB], frozenset("h"), "+") == [
        "Bob+Box@example.com", "bob.orig@example.com", "Bob", "example.com", "mx.example.com"]


def test_quote_flag_touches_whole_addresses_only():
    odd = Recipient("John Doe+x@Example.COM", "John Doe+x@Example.COM")
    q = frozenset("q")
    values = request_values(sender="a b@example.org", null_sender="MAILER-DAEMON", nexthop="h",
                            size=1, queue_id="Q", flags=q)
    assert expand_argv(("${sender}", "${recipient}", "${original_recipient}", "${user}",
                        "${mailbox}"), values, [odd], q, "+") == [
        '"a b"@example.org', '"John Doe+x"@Example.COM', '"John Doe+x"@Example.COM',
        "John Doe", "John Doe+x"]


def test_null_sender():
    assert request_values(sender="", null_sender="MAILER-DAEMON", nexthop="h", size=1,
                          queue_id="Q")["sender"] == "MAILER-DAEMON"
    # an empty replacement stays empty under q; a non-empty one is quoted
    assert request_values(sender="", null_sender="", nexthop="h", size=1, queue_id="Q",
                          flags=frozenset("q"))["sender"] == ""
    assert request_values(sender="", null_sender="no body", nexthop="h", size=1, queue_id="Q",
                          flags=frozenset("q"))["sender"] == '"no body"'


def test_values_are_not_expanded_again():
    tricky = Recipient("a$sender@example.com", "a$sender@example.com")
    assert expand_argv(("${recipient}",), VALUES, [tricky]) == ["a$sender@example.com"]


def test_an_empty_user_leaves_the_argument_out_for_that_recipient():
    blank = Recipient("@example.com", "@example.com")
    assert expand_argv(("-m", "${user}"), VALUES, [blank, CAROL]) == ["-m", "carol"]


@pytest.mark.parametrize("local, delims, expected", [
    ("bob+box", "+", ("bob", "box")),
    ("bob", "+", ("bob", None)),
    ("+box", "+", ("+box", None)),          # a delimiter in front does not split
    ("bob+", "+", ("bob", "")),
    ("bob-x+y", "+-", ("bob", "x+y")),      # at the first of any delimiter
    ("owner-list", "-", ("owner-list", None)),
    ("list-request", "-", ("list-request", None)),
    ("owner-list", "+", ("owner-list", None)),
    ("Postmaster", "+", ("Postmaster", None)),
    ("MAILER-DAEMON", "-", ("MAILER-DAEMON", None)),
    ("double-bounce", "-", ("double-bounce", None)),
    ("bob+box", "", ("bob+box", None)),
])
def test_split_addr(local, delims, expected):
    assert split_addr(local, delims) == expected
