"""STARTTLS (plaintext discard, session reset) and AUTH (SASL framing, mailsys.sasl.server mechanisms)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from _smtp_testlib import HOST, connect, run, sasl_policy

from mailsys.smtp import (
    NEED_DATA, PAUSED, Auth, Helo, LocalProtocolError, MailFrom, Noop, RemoteProtocolError,
    StartTls, State, replies,
)

TLS = dict(starttls=True)
AUTH = dict(auth_mechanisms=("PLAIN", "LOGIN", "CRAM-MD5"))


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


# ----------------------------------------------------------------------- STARTTLS

def test_starttls_discards_pipelined_plaintext():
    conn, _ = connect(**TLS)
    conn.receive_data(b"EHLO c\r\nSTARTTLS\r\nMAIL FROM:<injected@evil>\r\nRCPT TO:<x@y>\r\n")
    assert isinstance(conn.next_event(), Helo)
    conn.send(conn.default_reply())
    assert conn.next_event() == StartTls()
    assert conn.send(conn.default_reply()) == b"220 2.0.0 Ready to start TLS\r\n"
    assert conn.state is State.TLS_HANDSHAKE
    assert conn.buffered == 0                # CVE-2011-0411: injected commands are gone
    conn.receive_data(b"\x16\x03\x01 handshake bytes are not SMTP")
    assert conn.next_event() is PAUSED
    conn.start_tls_done()
    assert conn.tls_active and conn.helo_name is None and conn.state is State.IDLE
    conn.receive_data(b"EHLO c\r\n")
    assert isinstance(conn.next_event(), Helo)
    ehlo = conn.send(conn.default_reply()).decode()
    assert "STARTTLS" not in ehlo


@pytest.mark.parametrize("step", [1, 5])
def test_starttls_pipelined_in_pieces_still_discards(step):
    conn, _ = connect(**TLS)
    data = b"EHLO c\r\nSTARTTLS\r\nNOOP\r\nNOOP\r\n"
    seen = []
    for i in range(0, len(data), step):
        conn.receive_data(data[i:i + step])
        while (event := conn.next_event()) not in (NEED_DATA, PAUSED):
            seen.append(event)
            conn.send(conn.default_reply())
    assert conn.state is State.TLS_HANDSHAKE and conn.buffered == 0
    conn.start_tls_done()
    assert conn.next_event() is NEED_DATA
    assert not [e for e in seen if isinstance(e, Noop)]


def test_starttls_resets_session_and_auth():
    res = run(b"EHLO c\r\nMAIL FROM:<a@b>\r\nSTARTTLS\r\n", **TLS)
    conn = res.conn
    assert conn.mail is None and conn.helo_name is None
    conn.receive_data(b"RCPT TO:<b@c>\r\n")
    with pytest.raises(RemoteProtocolError) as e:
        conn.next_event()
    assert e.value.reply == replies.NEED_MAIL


@pytest.mark.parametrize("line,reply", [
    (b"STARTTLS now", "501 5.5.4 Syntax: STARTTLS"),
])
def test_starttls_errors(line, reply):
    assert run(line + b"\r\n", **TLS).replies == [reply]


def test_starttls_twice():
    res = run(b"STARTTLS\r\n", **TLS)
    res = run(b"STARTTLS\r\n", conn=res.conn)
    assert res.replies == ["554 5.5.1 Error: TLS already active"]


def test_starttls_refused_by_policy_keeps_plaintext_session():
    res = run(b"STARTTLS\r\nNOOP\r\n", policy=lambda c, e: replies.Reply(
        454, "4.7.0", "TLS not available due to local problem") if isinstance(e, StartTls) else None,
        **TLS)
    assert res.replies == ["454 4.7.0 TLS not available due to local problem", "250 2.0.0 Ok"]


def test_start_tls_done_without_starttls():
    conn, _ = connect(**TLS)
    with pytest.raises(LocalProtocolError):
        conn.start_tls_done()


# --------------------------------------------------------------------------- AUTH

USERS = {"bob": "s3cret"}


@pytest.mark.parametrize("step", [None, 1])
def test_auth_plain_initial_response(step):
    ir = b64(b"\x00bob\x00s3cret")
    res = run(b"EHLO c\r\nAUTH PLAIN " + ir + b"\r\nMAIL FROM:<bob@example.com>\r\n",
              step=step, policy=sasl_policy(USERS), **AUTH)
    assert res.of(Auth) == [Auth("PLAIN", b"\x00bob\x00s3cret")]
    assert res.replies[-2:] == ["235 2.7.0 Authentication successful", "250 2.1.0 Ok"]
    assert res.conn.authenticated
    assert res.conn.command_stats() == "ehlo=1 auth=1 mail=1 commands=3"


def test_auth_plain_with_empty_challenge():
    res = run(b"EHLO c\r\nAUTH PLAIN\r\n" + b64(b"\x00bob\x00s3cret") + b"\r\n",
              policy=sasl_policy(USERS), **AUTH)
    assert res.replies[-2:] == ["334 ", "235 2.7.0 Authentication successful"]


def test_auth_login():
    res = run(b"EHLO c\r\nAUTH LOGIN\r\n" + b64(b"bob") + b"\r\n" + b64(b"wrong") + b"\r\n",
              policy=sasl_policy(USERS), **AUTH)
    assert res.replies[-3:] == ["334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6",
                                "535 5.7.8 Error: authentication failed: UGFzc3dvcmQ6"]
    assert not res.conn.authenticated
    assert res.conn.command_stats() == "ehlo=1 auth=0/1 commands=1/2"
    assert res.conn.error_count == 1


def test_auth_login_with_initial_username():
    res = run(b"EHLO c\r\nAUTH LOGIN " + b64(b"bob") + b"\r\n" + b64(b"s3cret") + b"\r\n",
              policy=sasl_policy(USERS), **AUTH)
    assert res.replies[-2:] == ["334 UGFzc3dvcmQ6", "235 2.7.0 Authentication successful"]


def test_auth_cram_md5():
    conn, _ = connect(**AUTH)
    policy = sasl_policy(USERS)
    res = run(b"EHLO c\r\nAUTH CRAM-MD5\r\n", conn=conn, policy=policy)
    challenge = base64.b64decode(res.replies[-1][4:])
    assert challenge.startswith(b"<") and challenge.endswith(f"@{HOST}>".encode())
    digest = hmac.new(b"s3cret", challenge, hashlib.md5).hexdigest().encode()
    res = run(b64(b"bob " + digest) + b"\r\n", conn=conn, policy=policy)
    assert res.replies == ["235 2.7.0 Authentication successful"]


def test_auth_cancel():
    res = run(b"EHLO c\r\nAUTH LOGIN\r\n*\r\nNOOP\r\n", policy=sasl_policy(USERS), **AUTH)
    assert res.replies[-3:] == ["334 VXNlcm5hbWU6", "501 5.7.0 Authentication aborted", "250 2.0.0 Ok"]
    assert res.conn.command_stats() == "ehlo=1 auth=0/1 noop=1 commands=2/3"


@pytest.mark.parametrize("data,reply", [
    (b"AUTH PLAIN !!!!\r\n", "535 5.7.8 Error: authentication failed: Invalid base64 data in initial response"),
    (b"AUTH LOGIN\r\n@@@\r\n", "535 5.7.8 Error: authentication failed: Invalid base64 data in continued response"),
    (b"AUTH LOGIN\r\n" + b"A" * 20000 + b"\r\n", "500 5.5.6 SASL response limit exceeded"),
    (b"AUTH\r\n", "501 5.5.4 Syntax: AUTH mechanism"),
    (b"AUTH GSSAPI\r\n", "535 5.7.8 Error: authentication failed: Invalid authentication mechanism"),
    (b"MAIL FROM:<a@b>\r\nAUTH PLAIN\r\n", "503 5.5.1 Error: MAIL transaction in progress"),
])
def test_auth_errors(data, reply):
    res = run(b"EHLO c\r\n" + data + b"NOOP\r\n", policy=sasl_policy(USERS), **AUTH)
    assert res.replies[-2:] == [reply, "250 2.0.0 Ok"]
    assert res.conn.state is State.IDLE or res.of(MailFrom)


def test_auth_before_ehlo_and_twice():
    ir = b64(b"\x00bob\x00s3cret")
    # HELO is only demanded with smtpd_helo_required (smtpd_sasl_auth_cmd)
    res = run(b"AUTH PLAIN " + ir + b"\r\n", policy=sasl_policy(USERS), **AUTH)
    assert res.replies == ["235 2.7.0 Authentication successful"]
    res = run(b"AUTH PLAIN =\r\n", helo_required=True, **AUTH)
    assert res.replies == ["503 5.5.1 Error: send HELO/EHLO first"]
    res = run(b"EHLO c\r\nAUTH PLAIN " + ir + b"\r\nAUTH PLAIN " + ir + b"\r\n",
              policy=sasl_policy(USERS), **AUTH)
    assert res.replies[-1] == "503 5.5.1 Error: already authenticated"


def test_mail_auth_param_while_sasl_unusable():
    # Postfix 3.7's smtpd_sasl_mail_opt() does not ask whether AUTH is
    # usable: the parameter is taken, and here not recorded.
    res = run(b"EHLO c\r\nMAIL FROM:<a@b> AUTH=x@y\r\n", auth_mechanisms=("PLAIN",),
              tls_auth_only=True)
    assert res.replies[-1] == "250 2.1.0 Ok"
    assert [m.auth for m in res.of(MailFrom)] == [None]
    res = run(b"EHLO c\r\nMAIL FROM:<a@b> AUTH=x@y\r\n", auth_mechanisms=("PLAIN",))
    assert [m.auth for m in res.of(MailFrom)] == ["x@y"]
    # Postfix 3.7.11: "MAIL FROM:<a@b.example> AUTH=<> AUTH=x" -> "250 2.1.0 Ok"
    # (AUTH=<> records nothing), "AUTH=x AUTH=<>" -> "503 5.5.4 Error: multiple AUTH= options".
    res = run(b"EHLO c\r\nMAIL FROM:<a@b> AUTH=<> AUTH=x\r\n", auth_mechanisms=("PLAIN",))
    assert res.replies[-1] == "250 2.1.0 Ok"
    res = run(b"EHLO c\r\nMAIL FROM:<a@b> AUTH=x AUTH=<>\r\n", auth_mechanisms=("PLAIN",))
    assert res.replies[-1] == "503 5.5.4 Error: multiple AUTH= options"


def test_auth_only_over_tls():
    res = run(b"EHLO c\r\nAUTH PLAIN =\r\n", auth_mechanisms=("PLAIN",), tls_auth_only=True)
    assert res.replies[-1] == "503 5.5.1 Error: authentication not enabled"


def test_auth_equals_is_empty_initial_response():
    res = run(b"EHLO c\r\nAUTH PLAIN =\r\n", **AUTH)
    assert res.of(Auth) == [Auth("PLAIN", b"")]


def test_auth_needs_policy_answer():
    conn, _ = connect(**AUTH)
    conn.receive_data(b"EHLO c\r\n")
    conn.next_event()
    conn.send(conn.default_reply())
    conn.receive_data(b"AUTH PLAIN\r\n")
    conn.next_event()
    with pytest.raises(LocalProtocolError):
        conn.default_reply()


@pytest.mark.parametrize("step", [None, 1000])
def test_a_too_long_auth_response_is_refused_naming_its_start_for_the_log(step):
    # Postfix 3.7: "500 5.5.6 SASL response limit exceeded" and the warning
    # "unknown[127.0.0.1]: request longer than 12288: AGFsaWNlAHNlY3JldA==AAAAAAAAAA..."
    conn = run(b"EHLO c\r\nAUTH LOGIN\r\n", policy=sasl_policy(USERS), **AUTH).conn
    line = b"AGFsaWNlAHNlY3JldA==" + b"A" * 13000 + b"\r\n"
    errors = []
    for piece in ([line] if step is None else [line[i:i + step] for i in range(0, len(line), step)]):
        conn.receive_data(piece)
        try:
            assert conn.next_event() is NEED_DATA
        except RemoteProtocolError as err:
            errors.append(err)
    assert [str(e.reply) for e in errors] == ["500 5.5.6 SASL response limit exceeded"]
    assert str(errors[0]) == "request longer than 12288: AGFsaWNlAHNlY3JldA==AAAAAAAAAA..."
