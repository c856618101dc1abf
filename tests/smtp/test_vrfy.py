"""VRFY argument parsing (bytes in, replies out), as Postfix 3.7's smtpd.c vrfy_cmd() does it.

Every row was sent to a private Postfix 3.7.11 (smtputf8_enable = no unless
said otherwise, mynetworks = 127.0.0.0/8) and its reply copied here: the
argument's words joined by one space must hold exactly one address that the
resolver takes (extract_addr(), sloppy), else "501 5.1.3 Bad recipient
address syntax"; the 252 repeats the joined words.
"""

from __future__ import annotations

import pytest
from _smtp_testlib import connect, run

from mailsys.smtp import Reply, Vrfy
from mailsys.smtp._extract_addr import extract_address, smtpd_tokens, smtpd_words

pytestmark = pytest.mark.timeout(30)

BAD = "501 5.1.3 Bad recipient address syntax"

# Postfix 3.7.11, smtputf8_enable = no.
POSTFIX_SMTPUTF8_NO = [
    ('VRFY John Smith', '501 5.1.3 Bad recipient address syntax'),
    ('VRFY <a@x.example> <b@x.example>', '501 5.1.3 Bad recipient address syntax'),
    ('VRFY a@x.example SMTPUTF8 x', '501 5.1.3 Bad recipient address syntax'),
    ('VRFY <>', '501 5.1.3 Bad recipient address syntax'),
    ('VRFY <a@x.example> SMTPUTF8', '501 5.1.3 Bad recipient address syntax'),
    ('VRFY a@x.example', '252 2.0.0 a@x.example'),
    ('VRFY <a@x.example>', '252 2.0.0 <a@x.example>'),
    ('VRFY john', '252 2.0.0 john'),
    ('VRFY "John Smith"@x.example', '252 2.0.0 "John Smith"@x.example'),
    ('VRFY <"John Smith"@x.example>', '252 2.0.0 <"John Smith"@x.example>'),
    ('VRFY John Smith <js@x.example>', '252 2.0.0 John Smith <js@x.example>'),
    ('VRFY js@x.example (John Smith)', '252 2.0.0 js@x.example (John Smith)'),
    ('VRFY (comment) js@x.example', '252 2.0.0 (comment) js@x.example'),
    ('VRFY <js@x.example> (John)', '252 2.0.0 <js@x.example> (John)'),
    ('VRFY <@route.example:js@x.example>', '252 2.0.0 <@route.example:js@x.example>'),
    ('VRFY @route.example:js@x.example', '252 2.0.0 @route.example:js@x.example'),
    ('VRFY a@x.example, b@x.example', '501 5.1.3 Bad recipient address syntax'),
    ('VRFY a@x.example,b@x.example', '501 5.1.3 Bad recipient address syntax'),
    ('VRFY a@x.example b@x.example', '501 5.1.3 Bad recipient address syntax'),
    ('VRFY <a@x.example', '252 2.0.0 <a@x.example'),
    ('VRFY a@x.example>', '252 2.0.0 a@x.example>'),
    ('VRFY <<a@x.example>>', '252 2.0.0 <<a@x.example>>'),
    ('VRFY "unterminated@x.example', '252 2.0.0 "unterminated@x.example'),
    ('VRFY a@', '501 5.1.3 Bad recipient address syntax'),
    ('VRFY @x.example', '252 2.0.0 @x.example'),
    ('VRFY a@@x.example', '252 2.0.0 a@@x.example'),
    ('VRFY a@x.example;', '252 2.0.0 a@x.example;'),
    ('VRFY a b@x.example', '501 5.1.3 Bad recipient address syntax'),
    ('VRFY ""', '501 5.1.3 Bad recipient address syntax'),
    ('VRFY <"">', '501 5.1.3 Bad recipient address syntax'),
    ('VRFY "<a@x.example>"', '501 5.1.3 Bad recipient address syntax'),
    ('VRFY (just a comment)', '501 5.1.3 Bad recipient address syntax'),
    ('VRFY SMTPUTF8', '252 2.0.0 SMTPUTF8'),
    ('VRFY a@x.example smtputf8', '501 5.1.3 Bad recipient address syntax'),
    ('VRFY <-foo@x.example>', '501 5.1.3 Bad recipient address syntax'),
    ('VRFY a.@x.example', '252 2.0.0 a.@x.example'),
    ('VRFY Group: a@x.example;', '252 2.0.0 Group: a@x.example;'),
    ('VRFY a@[1.2.3.4]', '252 2.0.0 a@[1.2.3.4]'),
    ('VRFY a@x.example\ttab', '501 5.1.3 Bad recipient address syntax'),
    ('VRFY a\\ b@x.example', '252 2.0.0 a\\ b@x.example'),
    ('VRFY <a@x.example>junk', '501 5.1.3 Bad recipient address syntax'),
    ('VRFY <a@x.example> junk', '501 5.1.3 Bad recipient address syntax'),
    ('VRFY x <>', '501 5.1.3 Bad recipient address syntax'),
    ('VRFY  js@x.example   (John)', '252 2.0.0 js@x.example (John)'),
    ('VRFY John   Smith   <js@x.example>', '252 2.0.0 John Smith <js@x.example>'),
    ('VRFY <a b@x.example>', '501 5.1.3 Bad recipient address syntax'),
    ('VRFY <"a b"@x.example>', '252 2.0.0 <"a b"@x.example>'),
    ('VRFY <a@x.example> <>', '501 5.1.3 Bad recipient address syntax'),
    ('VRFY 1.2.3.4', '252 2.0.0 1.2.3.4'),
    ('VRFY a@1.2.3.4', '501 5.1.3 Bad recipient address syntax'),
    ('VRFY a@[1.2.3.4', '252 2.0.0 a@[1.2.3.4'),
    ('VRFY a@[256.1.1.1]', '501 5.1.3 Bad recipient address syntax'),
    ('VRFY a@x_y.example', '252 2.0.0 a@x_y.example'),
    ('VRFY a@-x.example', '501 5.1.3 Bad recipient address syntax'),
    ('VRFY a@x.example.', '252 2.0.0 a@x.example.'),
    ('VRFY <a@x.example>>', '252 2.0.0 <a@x.example>>'),
    ('VRFY a@x.example (unterminated', '252 2.0.0 a@x.example (unterminated'),
    ('VRFY Joe <a@x.example>, Ann <b@x.example>', '501 5.1.3 Bad recipient address syntax'),
    ('VRFY <a@x.example>,', '252 2.0.0 <a@x.example>,'),
    ('VRFY ,a@x.example', '252 2.0.0 ,a@x.example'),
    ('VRFY a@x.example:', '501 5.1.3 Bad recipient address syntax'),
    ('VRFY a:b@x.example', '252 2.0.0 a:b@x.example'),
    ('VRFY john.', '252 2.0.0 john.'),
    ('VRFY "John Smith"', '252 2.0.0 "John Smith"'),
    ('VRFY "a b" c@x.example', '501 5.1.3 Bad recipient address syntax'),
    ('VRFY a."b c"@x.example', '252 2.0.0 a."b c"@x.example'),
    ('VRFY a@x.example SMTPUTF8', '501 5.1.3 Bad recipient address syntax'),
    ('VRFY <> SMTPUTF8', '252 2.0.0 <> SMTPUTF8'),
    ('VRFY John Smith SMTPUTF8', '501 5.1.3 Bad recipient address syntax'),
    ('VRFY <a@x.example> smtputf8', '501 5.1.3 Bad recipient address syntax'),
    ('VRFY a@x.example SMTPUTF8 SMTPUTF8', '501 5.1.3 Bad recipient address syntax'),
    ('VRFY <a@x.example>(c)', '252 2.0.0 <a@x.example>(c)'),
    ('VRFY (c)<a@x.example>', '252 2.0.0 (c)<a@x.example>'),
    ('VRFY <(c)a@x.example>', '252 2.0.0 <(c)a@x.example>'),
    ('VRFY x@y@z.example', '252 2.0.0 x@y@z.example'),
    ('VRFY "x@y"@z.example', '252 2.0.0 "x@y"@z.example'),
    ('VRFY <a@x.example>;', '252 2.0.0 <a@x.example>;'),
    ('VRFY a@x.example ;', '252 2.0.0 a@x.example ;'),
    ('VRFY <@a,@b:c@x.example>', '252 2.0.0 <@a,@b:c@x.example>'),
    ('VRFY @a,@b:c@x.example', '252 2.0.0 @a,@b:c@x.example'),
    ('VRFY <a@[IPv6:::1]>', '252 2.0.0 <a@[IPv6:::1]>'),
]

# Postfix 3.7.11, smtputf8_enable = yes.
POSTFIX_SMTPUTF8_YES = [
    ("VRFY <a@x.example> SMTPUTF8", "252 2.0.0 <a@x.example>"),
    ("VRFY a@x.example SMTPUTF8 x", BAD),
    ("VRFY John Smith SMTPUTF8", BAD),
    ("VRFY <> SMTPUTF8", BAD),
    ("VRFY John Smith <js@x.example> SMTPUTF8", "252 2.0.0 John Smith <js@x.example>"),
    ("VRFY <ü@x.example>", "252 2.0.0 <ü@x.example>"),
    ("VRFY a@ü.example", BAD),
    ("VRFY a@ü-.example", BAD),
    ("VRFY a@ü.example SMTPUTF8", "252 2.0.0 a@ü.example"),
    ("VRFY a@ü-.example SMTPUTF8", BAD),
    ("VRFY a@ü_x.example SMTPUTF8", "252 2.0.0 a@ü_x.example"),
]


@pytest.mark.parametrize("command, reply", POSTFIX_SMTPUTF8_NO)
def test_vrfy_as_postfix_answers_without_smtputf8(command, reply):
    res = run(f"{command}\r\n".encode(), smtputf8=False)
    assert res.replies == [reply]


@pytest.mark.parametrize("command, reply", POSTFIX_SMTPUTF8_YES)
def test_vrfy_as_postfix_answers_with_smtputf8(command, reply):
    res = run(f"{command}\r\n".encode())
    assert res.replies == [reply]


@pytest.mark.parametrize("step", [None, 1, 5])
def test_the_reply_does_not_depend_on_how_the_bytes_arrive(step):
    res = run(b"VRFY John Smith\r\nVRFY  John   Smith\t<js@x.example>\r\n", step=step,
              smtputf8=False)
    assert res.replies == [BAD, "252 2.0.0 John Smith <js@x.example>"]


def test_a_bad_address_is_the_policys_to_refuse_with_the_joined_words_for_the_log_line():
    # Postfix: "warning: Illegal address syntax from unknown[127.0.0.1] in
    # VRFY command: a@x.example tab" for "VRFY a@x.example<TAB>tab", and
    # only after the recipient rate: a client over it got "450 4.7.1 Error:
    # too many recipients from 192.0.2.7" for "VRFY John Smith" (3.7.11).
    conn, _ = connect()
    conn.receive_data(b"VRFY a@x.example\ttab\r\n")
    event = conn.next_event()
    assert event == Vrfy("a@x.example tab", None)
    assert str(conn.default_reply()) == BAD
    conn.send(Reply(450, "4.7.1", "Error: too many recipients from 192.0.2.7"))
    assert conn.error_count == 1
    assert conn.command_stats() == "vrfy=0/1 commands=0/1"


@pytest.mark.parametrize("command, address", [
    ("VRFY <nosuch@localhost>", "nosuch@localhost"),
    ("VRFY John Smith <js@x.example>", "js@x.example"),
    ('VRFY "John Smith"@x.example', "John Smith@x.example"),
    ("VRFY john", "john"),
])
def test_the_event_names_the_address_the_restrictions_look_at(command, address):
    conn, _ = connect()
    conn.receive_data(f"{command}\r\n".encode())
    assert conn.next_event() == Vrfy(command[5:], address)


def test_a_refusal_of_the_policy_is_the_reply_and_an_error():
    # Postfix 3.7.11: "550 5.1.1 <nosuch@localhost>: Recipient address
    # rejected: User unknown in local recipient table", vrfy=0/1.
    refusal = Reply(550, "5.1.1", "<nosuch@localhost>: Recipient address rejected: "
                                  "User unknown in local recipient table")
    res = run(b"VRFY nosuch@localhost\r\nVRFY root@localhost\r\n",
              policy=lambda conn, e: refusal if e == Vrfy("nosuch@localhost", "nosuch@localhost")
              else None)
    assert res.replies == [str(refusal), "252 2.0.0 root@localhost"]
    assert res.conn.command_stats() == "vrfy=1/2 commands=1/2"


@pytest.mark.parametrize("text, words", [
    (" a  b\t", ["a", "b"]),
    # smtpd_token.c: [...] is not a quote, unlike <...> and "..."
    ('<a b@x> "c d" [e f]', ["<a b@x>", '"c d"', "[e", "f]"]),
    # "from:" and "to:" end a word
    ("FROM:<a@x> to:b", ["FROM:", "<a@x>", "to:", "b"]),
    ("xto:<a@x>", ["xto:<a@x>"]),
    ("a\\ b", ["a\\ b"]),
    ('<"a >b"@x> c', ['<"a >b"@x>', "c"]),
    ('"a\\" b" c', ['"a\\" b"', "c"]),
    ("<a<b c>d> e", ["<a<b c>d>", "e"]),
])
def test_words_split_at_blanks_outside_quotes(text, words):
    assert smtpd_words(text) == words


@pytest.mark.parametrize("text, whole", [
    ("<a@x>", True), ("<a@x", False), ('"a', False), ('<"a>"', False), ("<a\\", False),
])
def test_a_word_whose_quote_never_closes_is_marked(text, whole):
    assert smtpd_tokens(text) == [(text, whole)]


@pytest.mark.parametrize("text, address", [
    ("John Smith <js@x.example>", "js@x.example"),
    ('"John Smith"@x.example', "John Smith@x.example"),
    ("<@r.example:js@x.example>", "js@x.example"),
    ("(c) <@r.example:js@x.example>", "@r.example:js@x.example"),   # only a leading route goes
    ("Group: a@x.example;", "a@x.example"),
    ("a@[1.2.3.4", "a@[1.2.3.4]"),
    ("a\\ b@x.example", "a b@x.example"),
    ("<> SMTPUTF8", "SMTPUTF8"),
    ("(only a comment)", ""),
    ("<>", ""),
    ("John Smith", None),
    ("a@x.example, b@x.example", None),
    ("<a@x.example>junk", None),
    ('"a b" c@x.example', None),
])
def test_the_one_address_of_an_argument(text, address):
    assert extract_address(text) == address
