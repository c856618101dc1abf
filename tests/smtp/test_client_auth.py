"""The client side of SMTP AUTH: ClientConnection.auth() with server bytes in, command bytes out."""

from __future__ import annotations

import base64

import pytest
from _smtp_testlib import client_feed as feed

from mailsys.smtp import LocalProtocolError
from mailsys.smtp.client import (AuthAborted, AuthDone, ClientConnection, ClientState, EhloDone,
                                 Greeting, TransactionDone)
from mailsys.smtp.client_auth import (AuthError, choose_mechanism, client_mechanism,
                                      filter_mechanisms)

EHLO_AUTH = (b"250-mx.example.com\r\n250-PIPELINING\r\n250-AUTH PLAIN LOGIN CRAM-MD5\r\n"
             b"250 8BITMIME\r\n")
EHLO_NO_AUTH = b"250-mx.example.com\r\n250 PIPELINING\r\n"


def session(ehlo: bytes = EHLO_AUTH, **kw) -> ClientConnection:
    cc = ClientConnection("client.example.org", **kw)
    [greeting] = feed(cc, b"220 mx.example.com ESMTP\r\n")
    assert isinstance(greeting, Greeting)
    cc.ehlo()
    [done] = feed(cc, ehlo)
    assert isinstance(done, EhloDone)
    return cc


@pytest.mark.parametrize("step", [None, 1])
def test_plain_sends_its_credentials_with_the_command(step):
    cc = session()
    out = cc.auth(client_mechanism("PLAIN", "user@example.com", "s3cret"))
    assert out == b"AUTH PLAIN " + base64.b64encode(b"\0user@example.com\0s3cret") + b"\r\n"
    assert cc.state is ClientState.AUTH
    assert cc.stage_info == ("performing the EHLO handshake", "smtp_helo_timeout")
    [done] = feed(cc, b"235 2.7.0 Authentication successful\r\n", step)
    assert isinstance(done, AuthDone) and done.ok
    assert cc.authenticated and cc.state is ClientState.READY


@pytest.mark.parametrize("step", [None, 1])
def test_login_answers_username_then_password(step):
    cc = session()
    assert cc.auth(client_mechanism("LOGIN", "user", "pw")) == b"AUTH LOGIN\r\n"
    assert feed(cc, b"334 VXNlcm5hbWU6\r\n", step) == []
    assert cc.data_to_send() == b"dXNlcg==\r\n"
    assert feed(cc, b"334 UGFzc3dvcmQ6\r\n", step) == []
    assert cc.data_to_send() == b"cHc=\r\n"
    [done] = feed(cc, b"235 2.7.0 Authentication successful\r\n", step)
    assert done.ok and cc.authenticated


def test_cram_md5_answers_the_rfc_2195_example():
    cc = session()
    assert cc.auth(client_mechanism("CRAM-MD5", "tim", "tanstaaftanstaaf")) == b"AUTH CRAM-MD5\r\n"
    challenge = base64.b64encode(b"<1896.697170952@postoffice.reston.mci.net>")
    assert feed(cc, b"334 " + challenge + b"\r\n") == []
    # RFC 2195 section 2, the example's response.
    assert cc.data_to_send() == b"dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n"
    [done] = feed(cc, b"235 2.7.0 Authentication successful\r\n")
    assert done.ok


def test_a_refused_login_is_the_servers_reply_and_the_session_stays_usable():
    cc = session()
    cc.auth(client_mechanism("PLAIN", "user", "wrong"))
    [done] = feed(cc, b"535 5.7.8 Error: authentication failed: authentication failure\r\n")
    assert isinstance(done, AuthDone) and not done.ok
    assert done.response.dsn == "5.7.8"
    assert done.response.text == "535 5.7.8 Error: authentication failed: authentication failure"
    assert not cc.authenticated and cc.state is ClientState.READY
    assert cc.quit() == b"QUIT\r\n"


def test_a_plain_server_that_asks_for_the_response_gets_it():
    cc = session()
    cc.auth(client_mechanism("PLAIN", "u", "p"))
    assert feed(cc, b"334 \r\n") == []
    assert cc.data_to_send() == base64.b64encode(b"\0u\0p") + b"\r\n"


def test_a_challenge_that_is_not_base64_aborts_and_closes():
    cc = session()
    cc.auth(client_mechanism("LOGIN", "user", "pw"))
    [aborted] = feed(cc, b"334 not*base64!\r\n")
    assert isinstance(aborted, AuthAborted)
    assert aborted.reason == "invalid base64 data in server challenge"
    assert cc.closed and cc.data_to_send() == b""


def test_an_endless_exchange_stops_after_a_hundred_rounds():
    cc = session()
    cc.auth(client_mechanism("LOGIN", "user", "pw"))
    feed(cc, b"334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n")
    cc.data_to_send()
    # LOGIN has nothing to say past the password: the third challenge aborts.
    [aborted] = feed(cc, b"334 UGFzc3dvcmQ6\r\n")
    assert isinstance(aborted, AuthAborted) and aborted.reason == "unexpected server challenge"


def test_the_round_limit_itself():
    class Chatty(type(client_mechanism("LOGIN", "u", "p"))):
        __slots__ = ()

        def _answer(self, challenge, step):
            return b"more"
    cc = session()
    cc.auth(Chatty("u", "p"))
    # Postfix answers a hundred challenges and gives up at the next one.
    assert feed(cc, b"334 eA==\r\n" * 100) == []
    assert cc.data_to_send() == b"bW9yZQ==\r\n" * 100
    events = feed(cc, b"334 eA==\r\n")
    assert [type(e) for e in events] == [AuthAborted]
    assert events[0].reason == "authentication protocol loop"


def test_dummy_mail_auth_only_after_a_login():
    cc = session(dummy_mail_auth=True)
    assert cc.send_mail("a@example.org", ["b@example.net"], b"x\r\n").startswith(
        b"MAIL FROM:<a@example.org>\r\n")
    feed(cc, b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n")
    [done] = feed(cc, b"250 2.0.0 Ok\r\n")
    assert isinstance(done, TransactionDone)
    cc.auth(client_mechanism("PLAIN", "u", "p"))
    feed(cc, b"235 2.7.0 Authentication successful\r\n")
    assert cc.send_mail("a@example.org", ["b@example.net"], b"x\r\n").startswith(
        b"MAIL FROM:<a@example.org> AUTH=<>\r\n")


def test_no_dummy_mail_auth_by_default():
    cc = session()
    cc.auth(client_mechanism("PLAIN", "u", "p"))
    feed(cc, b"235 2.7.0 Authentication successful\r\n")
    assert b"AUTH=" not in cc.send_mail("a@example.org", ["b@example.net"], b"x\r\n")


def test_auth_needs_an_offer_and_a_ready_session():
    with pytest.raises(LocalProtocolError):
        session(EHLO_NO_AUTH).auth(client_mechanism("PLAIN", "u", "p"))
    cc = session()
    cc.auth(client_mechanism("PLAIN", "u", "p"))
    with pytest.raises(LocalProtocolError):
        cc.auth(client_mechanism("PLAIN", "u", "p"))


def test_a_421_to_auth_closes():
    cc = session()
    cc.auth(client_mechanism("LOGIN", "u", "p"))
    [done] = feed(cc, b"421 4.7.0 mx.example.com Error: too many errors\r\n")
    assert isinstance(done, AuthDone) and not done.ok and cc.closed


# ------------------------------------------------------------------ choosing

@pytest.mark.parametrize("offered, options, chosen", [
    (("PLAIN", "LOGIN", "CRAM-MD5"), ("noanonymous",), "CRAM-MD5"),
    (("LOGIN", "PLAIN"), ("noanonymous",), "PLAIN"),
    (("LOGIN",), (), "LOGIN"),
    (("LOGIN", "PLAIN"), ("noplaintext", "noanonymous"), None),        # Postfix's default
    (("PLAIN", "CRAM-MD5"), ("noplaintext", "noanonymous"), "CRAM-MD5"),
    (("CRAM-MD5",), ("noactive",), None),
    (("GSSAPI", "XOAUTH2"), (), None),
    (("plain",), ("NOANONYMOUS",), "PLAIN"),
])
def test_choose_mechanism_as_the_cyrus_client(offered, options, chosen):
    assert choose_mechanism(offered, options) == chosen


def test_mechanism_filter_first_match_wins_case_insensitive():
    offered = ["PLAIN", "LOGIN", "CRAM-MD5", "GSSAPI"]
    assert filter_mechanisms(offered, []) == offered
    assert filter_mechanisms(offered, ["plain", "login"]) == ["PLAIN", "LOGIN"]
    assert filter_mechanisms(offered, ["!gssapi", "!login", "static:rest"],
                             lambda spec, mech: spec == "static:rest") == ["PLAIN", "CRAM-MD5"]
    assert filter_mechanisms(offered, ["!cram-md5"]) == []


def test_unknown_mechanism_and_bad_challenge():
    with pytest.raises(ValueError):
        client_mechanism("GSSAPI", "u", "p")
    with pytest.raises(AuthError):
        client_mechanism("CRAM-MD5", "u", "p").respond("%%%")


# ------------------------------------------------------------------ against mailsys's own server

@pytest.fixture(scope="module")
def sasl_server(tmp_path_factory):
    from mailsys.sasl.passwords import cram_key, hash_password
    from mailsys.sasl.server import SaslServer
    from mailsys.sasl.users import UserDatabase, set_user, write_users_file
    path = tmp_path_factory.mktemp("sasl") / "sasl_users"
    write_users_file(path, set_user("", "carol", [hash_password("carolpw"), cram_key("carolpw")]))
    return SaslServer(UserDatabase(path), "mx.example.com")


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
@pytest.mark.parametrize("password, ok", [("carolpw", True), ("wrong", False)])
def test_each_mechanism_against_the_smtpd_side(sasl_server, mechanism, password, ok):
    from mailsys.sasl.server import Challenge
    cc = session()
    words = cc.auth(client_mechanism(mechanism, "carol", password)).decode().split()
    assert words[:2] == ["AUTH", mechanism]
    exchange = sasl_server.begin(mechanism)
    result = exchange.start(words[2] if len(words) > 2 else None)
    while isinstance(result, Challenge):
        assert feed(cc, (result.reply + "\r\n").encode()) == []
        result = exchange.respond(cc.data_to_send().decode().removesuffix("\r\n"))
    [done] = feed(cc, (result.reply + "\r\n").encode())
    assert isinstance(done, AuthDone) and done.ok is ok and cc.authenticated is ok
