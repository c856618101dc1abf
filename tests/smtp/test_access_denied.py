"""ServerConnection after a refusal at connect (smtpd_delay_reject = no): the
refusal is the greeting, every command but QUIT gets the 503 (Postfix 3.7.11)."""

from __future__ import annotations

import pytest
from _smtp_testlib import HOST, run, settings

from mailsys.smtp import Reply, ServerConnection, replies

pytestmark = pytest.mark.timeout(10)

NAMADDR = "unknown[127.0.0.2]"
REFUSAL = Reply(554, "5.7.1", f"<{NAMADDR}>: Client host rejected: Access denied")
DENIED = f"503 5.7.0 Error: access denied for {NAMADDR}"


def refused(**kw) -> tuple[ServerConnection, bytes]:
    """A session whose greeting is the refusal, as the session layer starts it."""
    conn = ServerConnection(settings(**kw))
    conn.access_denied = replies.access_denied(NAMADDR)
    conn.error_count += 1                 # smtpd_check_reject() counts the refusal
    return conn, conn.send(REFUSAL)


def test_the_refusal_is_the_greeting_and_every_command_but_quit_gets_503():
    # Postfix 3.7.11: EHLO, MAIL, RCPT, DATA, NOOP, RSET, an unknown command
    # and VRFY each "503 5.7.0 Error: access denied for unknown[127.0.0.1]",
    # QUIT "221 2.0.0 Bye"; "disconnect from ... ehlo=0/1 mail=0/1 rcpt=0/1
    # data=0/1 rset=0/1 noop=0/1 vrfy=0/1 quit=1 unknown=0/1 commands=1/9".
    conn, greeting = refused()
    assert greeting == b"554 5.7.1 <unknown[127.0.0.2]>: Client host rejected: Access denied\r\n"
    res = run(b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nNOOP\r\nRSET\r\n"
              b"FOO\r\nVRFY x\r\nSTARTTLS\r\nQUIT\r\n", conn=conn)
    assert res.replies == [DENIED] * 9 + ["221 2.0.0 Bye"]
    assert res.events[-1].__class__.__name__ == "Quit"
    assert conn.command_stats() == ("ehlo=0/1 starttls=0/1 mail=0/1 rcpt=0/1 data=0/1 rset=0/1 "
                                    "noop=0/1 vrfy=0/1 quit=1 unknown=0/1 commands=1/10")


def test_the_503s_count_toward_the_hard_error_limit():
    # Postfix 3.7.11, smtpd_hard_error_limit = 3: the refusal, HELO, NOOP,
    # then "421 4.7.0 HOST Error: too many errors" and "too many errors
    # after CONNECT" (a known command leaves "where" alone).
    conn, _ = refused(hard_error_limit=3)
    res = run(b"HELO x\r\nNOOP\r\nNOOP\r\nQUIT\r\n", conn=conn)
    assert res.replies == [DENIED, DENIED, f"421 4.7.0 {HOST} Error: too many errors"]
    assert conn.closed
    assert conn.where == "CONNECT"
    assert conn.command_stats() == "helo=0/1 noop=0/1 commands=0/2"


def test_an_unknown_command_is_denied_after_unknown():
    # Postfix 3.7.11: "FOO" then a hang-up logs "lost connection after UNKNOWN".
    conn, _ = refused()
    res = run(b"FOO\r\n", conn=conn)
    assert res.replies == [DENIED]
    assert conn.where == "UNKNOWN"


def test_syntax_and_non_smtp_commands_keep_their_own_replies():
    # Postfix 3.7.11: an empty line "500 5.5.2 Error: bad syntax"; "GET /"
    # "221 2.7.0 Error: I can break rules, too. Goodbye."
    conn, _ = refused()
    res = run(b"\r\nGET / HTTP/1.0\r\nNOOP\r\n", conn=conn)
    assert res.replies == ["500 5.5.2 Error: bad syntax",
                           "221 2.7.0 Error: I can break rules, too. Goodbye."]


def test_the_503s_are_not_junk_commands():
    # smtpd.c answers the 503 and continues before its junk command count.
    conn, _ = refused(junk_command_limit=1, hard_error_limit=100)
    run(b"NOOP\r\n" * 5, conn=conn)
    assert (conn.error_count, conn.junk_count) == (6, 0)


def test_smtpd_noop_commands_stay_noops():
    # Postfix checks smtpd_noop_commands before the command table.
    conn, _ = refused(noop_commands=("XYZZY",))
    res = run(b"XYZZY\r\n", conn=conn)
    assert res.replies == ["250 2.0.0 Ok"]


def test_without_a_refusal_nothing_changes():
    conn = ServerConnection(settings())
    assert conn.access_denied is None
    conn.send(replies.greeting(f"{HOST} ESMTP"))
    res = run(b"HELO x\r\nQUIT\r\n", conn=conn)
    assert res.replies == [f"250 {HOST}", "221 2.0.0 Bye"]
