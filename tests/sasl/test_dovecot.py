"""The Dovecot auth protocol client, line by line (lines as Dovecot 2.3.19 sends them)."""

from __future__ import annotations

import pytest

from mailsys.sasl import dovecot
from mailsys.sasl.server import Challenge, Failure, Success

HANDSHAKE = ["VERSION\t1\t2", "MECH\tPLAIN\tplaintext", "MECH\tLOGIN\tplaintext",
             "MECH\tCRAM-MD5\tdictionary\tactive", "MECH\tANONYMOUS\tanonymous",
             "MECH\tSECRET\tprivate", "SPID\t21343", "CUID\t1",
             "COOKIE\t4d88552028b987f0451923398865eb93", "DONE"]


def handshake(lines=HANDSHAKE):
    hs = dovecot.Handshake()
    done = [hs.feed(line) for line in lines]
    assert done == [False] * (len(lines) - 1) + [True]
    return hs


def test_handshake_request():
    assert dovecot.handshake_request(1234) == b"VERSION\t1\t2\nCPID\t1234\n"


def test_handshake_keeps_mechanisms_but_private_ones():
    hs = handshake()
    assert [m.name for m in hs.mechanisms] == ["PLAIN", "LOGIN", "CRAM-MD5", "ANONYMOUS"]
    assert hs.mechanisms[2].properties == {"dictionary", "active"}


def test_other_major_version_is_refused():
    with pytest.raises(dovecot.ProtocolError, match=r"mismatch \(2 vs. 1\)"):
        dovecot.Handshake().feed("VERSION\t2\t0")
    with pytest.raises(dovecot.ProtocolError, match="version error"):
        dovecot.Handshake().feed("VERSION\tx")


@pytest.mark.parametrize("options, offered", [
    (["noanonymous"], ("PLAIN", "LOGIN", "CRAM-MD5")),
    (["noanonymous", "noplaintext"], ("CRAM-MD5",)),
    ([], ("PLAIN", "LOGIN", "CRAM-MD5", "ANONYMOUS")),
    (["noactive", "noanonymous"], ("PLAIN", "LOGIN")),
    (["nodictionary"], ("PLAIN", "LOGIN", "ANONYMOUS")),
    (["mutual_auth"], ()),
    (["NoPlainText"], ("CRAM-MD5", "ANONYMOUS")),
])
def test_security_options_filter(options, offered):
    assert dovecot.usable(handshake().mechanisms, options) == offered


def test_unknown_security_option_is_an_error():
    with pytest.raises(ValueError, match='unknown smtpd_sasl_security_options value "nofoo"'):
        dovecot.check_options(["noanonymous", "nofoo"], "smtpd_sasl_security_options")


def test_auth_request_as_postfix_sends_it():
    assert dovecot.auth_request(7, "PLAIN", service="smtp", local="127.0.0.1",
                                remote="192.0.2.1", secured=True, initial="AGEAYg==") == (
        b"AUTH\t7\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=192.0.2.1"
        b"\tsecured\tresp=AGEAYg==\n")
    assert dovecot.auth_request(8, "LOGIN", service="smtp", local="", remote="::1",
                                secured=False, initial=None) == (
        b"AUTH\t8\tLOGIN\tservice=smtp\tnologin\tlip=\trip=::1\n")
    assert dovecot.continue_request(8, "YWxpY2U=") == b"CONT\t8\tYWxpY2U=\n"
    with pytest.raises(ValueError):
        dovecot.continue_request(8, "a\nAUTH\t9\tPLAIN")


def test_replies():
    assert dovecot.reply("CONT\t3\tVXNlcm5hbWU6", 3, "LOGIN") == Challenge("VXNlcm5hbWU6")
    assert dovecot.reply("OK\t3\tuser=alice@example.com", 3, "LOGIN") == \
        Success("LOGIN", "alice@example.com")
    assert dovecot.reply("FAIL\t3\tuser=alice@example.com", 3, "LOGIN") == \
        Failure("LOGIN", "(reason unavailable)", "alice@example.com")
    assert dovecot.reply("FAIL\t3\treason=Invalid base64 data in continued response", 3,
                         "PLAIN") == Failure("PLAIN", "Invalid base64 data in continued response")
    assert dovecot.reply("FAIL\t3", 3, "PLAIN") == Failure("PLAIN", "(reason unavailable)")
    # xsasl_dovecot_server.c: an OK without a user field is a failure.
    assert dovecot.reply("OK\t3", 3, "PLAIN") == \
        Failure("PLAIN", "Authentication backend error")


def test_replies_to_other_requests_and_unknown_lines_are_skipped():
    assert dovecot.reply("OK\t4\tuser=bob", 3, "PLAIN") is None
    assert dovecot.reply("NOTICE\tsomething", 3, "PLAIN") is None
    assert dovecot.reply("OK\tx", 3, "PLAIN") is None
