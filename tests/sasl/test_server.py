"""SMTP AUTH exchanges against a real users file: PLAIN, LOGIN, CRAM-MD5,
failures, Postfix replies and the fail2ban-matched log line, reloads."""

import base64
import hashlib
import hmac
import os
import re

import pytest

from mailsys.sasl.passwords import cram_key, hash_password
from mailsys.sasl.server import Challenge, Failure, SaslServer, Success, auth_failed_log_text
from mailsys.sasl.users import UserDatabase, set_user, write_users_file

# fail2ban 1.0.2 filter.d/postfix.conf, mode=auth, after the "warning: " prefix
# (its "(?i)" written as a scoped group, which Python 3.11 requires)
FAIL2BAN_AUTH = re.compile(r"^warning: [^[]*\[(?P<host>[^\]]+)\](?::\d+)?: SASL ((?i:LOGIN|PLAIN|"
                           r"(?:CRAM|DIGEST)-MD5)) authentication failed:(?! Connection lost to "
                           r"authentication server| Invalid authentication mechanism)")


def b64(text):
    return base64.b64encode(text.encode()).decode()


@pytest.fixture(scope="module")
def hashes():
    # scrypt is deliberately slow: hash once per module.
    return {"bob": hash_password("bobpw"), "carol": hash_password("carolpw")}


@pytest.fixture
def users_path(tmp_path, hashes):
    path = tmp_path / "sasl_users"
    text = set_user("# users\n", "bob", [hashes["bob"]])
    text = set_user(text, "carol", [hashes["carol"], cram_key("carolpw")])
    write_users_file(path, text)
    return path


@pytest.fixture
def server(users_path):
    return SaslServer(UserDatabase(users_path), hostname="mx.example.com")


def test_mechanisms_offer_cram_md5_only_when_a_key_exists(server, tmp_path, hashes):
    assert server.mechanisms() == ("PLAIN", "LOGIN", "CRAM-MD5")
    path = tmp_path / "plain_only"
    write_users_file(path, set_user("", "bob", [hashes["bob"]]))
    assert UserDatabase(path).mechanisms() == ("PLAIN", "LOGIN")
    assert UserDatabase(tmp_path / "missing").mechanisms() == ("PLAIN", "LOGIN")


def test_plain_initial_response(server):
    result = server.begin("PLAIN").start(b64("\0bob\0bobpw"))
    assert result == Success("PLAIN", "bob")
    assert result.reply == "235 2.7.0 Authentication successful"


def test_plain_after_empty_challenge_with_matching_authzid(server):
    ex = server.begin("plain")
    assert ex.start(None) == Challenge("")
    assert ex.respond(b64("bob\0bob\0bobpw")) == Success("PLAIN", "bob")


def test_plain_foreign_authzid_is_refused(server):
    result = server.begin("PLAIN").start(b64("carol\0bob\0bobpw"))
    assert isinstance(result, Failure) and result.username == "bob"


def test_plain_wrong_password_reply_and_log_line(server):
    result = server.begin("PLAIN").start(b64("\0bob\0wrong"))
    assert isinstance(result, Failure)
    assert result.reply == "535 5.7.8 Error: authentication failed: authentication failure"
    line = "warning: " + result.log_text("unknown[203.0.113.9]")
    assert line == ("warning: unknown[203.0.113.9]: SASL PLAIN authentication failed: "
                    "authentication failure, sasl_username=bob")
    assert FAIL2BAN_AUTH.match(line).group("host") == "203.0.113.9"


def test_plain_unknown_user_fails_like_a_wrong_password(server):
    result = server.begin("PLAIN").start(b64("\0nobody\0bobpw"))
    assert isinstance(result, Failure) and result.reply.startswith("535 5.7.8")


@pytest.mark.parametrize("payload", ["bob\0bobpw", "\0\0", "\0bob\0bobpw\0x"])
def test_plain_malformed(server, payload):
    assert isinstance(server.begin("PLAIN").start(b64(payload)), Failure)


def test_login_exchange(server):
    ex = server.begin("LOGIN")
    assert ex.start(None).reply == "334 VXNlcm5hbWU6"
    assert ex.respond(b64("bob")).reply == "334 UGFzc3dvcmQ6"
    assert ex.respond(b64("bobpw")) == Success("LOGIN", "bob")


def test_login_with_initial_username(server):
    ex = server.begin("LOGIN")
    assert ex.start(b64("carol")) == Challenge("UGFzc3dvcmQ6")
    assert ex.respond(b64("carolpw")) == Success("LOGIN", "carol")


def test_login_failure_is_postfix_and_fail2ban_exact(server):
    ex = server.begin("LOGIN")
    ex.start(b64("info"))
    result = ex.respond(b64("guess"))
    assert result.reply == "535 5.7.8 Error: authentication failed: UGFzc3dvcmQ6"
    line = "warning: " + result.log_text("unknown[1.2.3.4]")
    # postfix-compat.md 2.2 / 4.4, byte for byte
    assert line == "warning: unknown[1.2.3.4]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=info"
    assert FAIL2BAN_AUTH.match(line)
    ipv6 = "warning: " + result.log_text("unknown[2001:db8::5]")
    assert FAIL2BAN_AUTH.match(ipv6).group("host") == "2001:db8::5"


def cram_response(challenge_b64, user, secret):
    challenge = base64.b64decode(challenge_b64)
    digest = hmac.new(secret.encode(), challenge, hashlib.md5).hexdigest()
    return b64(f"{user} {digest}")


def test_cram_md5_success(server):
    ex = server.begin("CRAM-MD5")
    ch = ex.start(None)
    assert isinstance(ch, Challenge)
    assert re.fullmatch(r"<\d+\.\d+@mx\.example\.com>", base64.b64decode(ch.data).decode())
    assert ex.respond(cram_response(ch.data, "carol", "carolpw")) == Success("CRAM-MD5", "carol")


def test_cram_md5_challenges_differ(server):
    assert server.begin("CRAM-MD5").start(None) != server.begin("CRAM-MD5").start(None)


def test_cram_md5_wrong_secret_and_replayed_response(server):
    ex = server.begin("CRAM-MD5")
    ch = ex.start(None)
    result = ex.respond(cram_response(ch.data, "carol", "nope"))
    assert isinstance(result, Failure) and result.username == "carol"
    assert FAIL2BAN_AUTH.match("warning: " + result.log_text("unknown[1.2.3.4]"))
    # A response computed for another challenge does not work.
    old = cram_response(ch.data, "carol", "carolpw")
    ex2 = server.begin("CRAM-MD5")
    ex2.start(None)
    assert isinstance(ex2.respond(old), Failure)


def test_cram_md5_refused_for_user_without_key(server):
    ex = server.begin("CRAM-MD5")
    ch = ex.start(None)
    assert isinstance(ex.respond(cram_response(ch.data, "bob", "bobpw")), Failure)


def test_cram_md5_not_offered_means_invalid_mechanism(tmp_path, hashes):
    path = tmp_path / "u"
    write_users_file(path, set_user("", "bob", [hashes["bob"]]))
    result = SaslServer(UserDatabase(path), "mx").begin("CRAM-MD5").start(None)
    assert result.reply == "535 5.7.8 Error: authentication failed: Invalid authentication mechanism"
    # fail2ban deliberately ignores this one
    assert not FAIL2BAN_AUTH.match("warning: " + result.log_text("unknown[1.2.3.4]"))


def test_abort_is_logged_but_not_as_a_failure(server):
    ex = server.begin("LOGIN")
    ex.start(b64("bob"))
    result = ex.respond("*")
    assert result.reply == "501 5.7.0 Authentication aborted"
    line = "warning: " + result.log_text("unknown[1.2.3.4]")
    assert line == "warning: unknown[1.2.3.4]: SASL LOGIN authentication aborted"
    assert not FAIL2BAN_AUTH.match(line)


def test_bad_base64_counts_as_a_failure(server):
    result = server.begin("PLAIN").start("!!notbase64")
    assert result.reply == "535 5.7.8 Error: authentication failed: Invalid base64 data in initial response"
    ex = server.begin("LOGIN")
    ex.start(None)
    result = ex.respond("%%%")
    assert result.reply.endswith("Invalid base64 data in continued response")
    assert FAIL2BAN_AUTH.match("warning: " + result.log_text("unknown[1.2.3.4]"))


def test_plain_password_check_against_cram_key_only_entry(tmp_path):
    path = tmp_path / "u"
    write_users_file(path, set_user("", "dave", [cram_key("davepw")]))
    server = SaslServer(UserDatabase(path), "mx")
    assert server.begin("PLAIN").start(b64("\0dave\0davepw")) == Success("PLAIN", "dave")
    assert isinstance(server.begin("PLAIN").start(b64("\0dave\0x")), Failure)


def test_reload_when_the_file_changes(users_path, hashes):
    db = UserDatabase(users_path)
    server = SaslServer(db, "mx")
    assert isinstance(server.begin("PLAIN").start(b64("\0erin\0erinpw")), Failure)
    text = users_path.read_text()
    write_users_file(users_path, set_user(text, "erin", [hash_password("erinpw")]))
    assert server.begin("PLAIN").start(b64("\0erin\0erinpw")) == Success("PLAIN", "erin")
    # deleted again: even with the same size and a restored mtime the inode differs
    st = os.stat(users_path)
    write_users_file(users_path, text)
    os.utime(users_path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert isinstance(server.begin("PLAIN").start(b64("\0erin\0erinpw")), Failure)


def test_bad_lines_are_skipped_with_warnings(tmp_path, hashes):
    path = tmp_path / "u"
    path.write_text(f"bob:{hashes['bob']}\nbroken line\nx:{{CRAM-MD5}}00ff\nz:$scrypt$junk\n"
                    f"y:{cram_key('a')}:{cram_key('b')}\n")
    db = UserDatabase(path)
    assert db.names() == ["bob"]
    assert [w.split(": ", 1)[0] for w in db.warnings] == [f"{path}, line {n}" for n in (2, 3, 4, 5)]
    assert "64 hex digits" in db.warnings[1]
    assert "more than one CRAM-MD5 key" in db.warnings[3]


# `doveadm pw -s CRAM-MD5 -p password` (see test_passwords.py for the source)
DOVEADM_PASSWORD = "{CRAM-MD5}9186d855e11eba527a7a52ca82b313e180d62234f0acc9051b527243d41e2740"


def test_entry_pasted_from_doveadm_serves_cram_md5_plain_and_login(tmp_path):
    path = tmp_path / "u"
    path.write_text(f"frank:{DOVEADM_PASSWORD}\n")
    server = SaslServer(UserDatabase(path), "mx")
    assert server.mechanisms() == ("PLAIN", "LOGIN", "CRAM-MD5")
    ex = server.begin("CRAM-MD5")
    ch = ex.start(None)
    assert ex.respond(cram_response(ch.data, "frank", "password")) == Success("CRAM-MD5", "frank")
    ex = server.begin("CRAM-MD5")
    ch = ex.start(None)
    assert isinstance(ex.respond(cram_response(ch.data, "frank", "Password")), Failure)
    assert server.begin("PLAIN").start(b64("\0frank\0password")) == Success("PLAIN", "frank")
    ex = server.begin("LOGIN")
    ex.start(b64("frank"))
    assert ex.respond(b64("password")) == Success("LOGIN", "frank")


def test_legacy_cram_key_lines_still_work(tmp_path, hashes):
    # the form earlier versions of mailsys saslpasswd --cram-md5 wrote
    path = tmp_path / "u"
    path.write_text(f"carol:{hashes['carol']}:{{CRAM-MD5-KEY}}{b'carolpw'.hex()}\n"
                    f"dave:{{CRAM-MD5-KEY}}{b'davepw'.hex()}\n")
    db = UserDatabase(path)
    assert db.warnings == ()
    server = SaslServer(db, "mx")
    assert server.mechanisms() == ("PLAIN", "LOGIN", "CRAM-MD5")
    for user, pw in (("carol", "carolpw"), ("dave", "davepw")):
        ex = server.begin("CRAM-MD5")
        ch = ex.start(None)
        assert ex.respond(cram_response(ch.data, user, pw)) == Success("CRAM-MD5", user)
        assert server.begin("PLAIN").start(b64(f"\0{user}\0{pw}")) == Success("PLAIN", user)
        assert isinstance(server.begin("PLAIN").start(b64(f"\0{user}\0{pw}x")), Failure)
    assert db.get("dave").cram.encode() == cram_key("davepw")


def test_auth_failed_log_text_without_username():
    assert auth_failed_log_text("h[192.0.2.1]", "PLAIN", "authentication failure") == \
        "h[192.0.2.1]: SASL PLAIN authentication failed: authentication failure, sasl_username=(unavailable)"


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory, hashes):
    path = tmp_path_factory.mktemp("fuzz") / "sasl_users"
    write_users_file(path, set_user("", "carol", [hashes["carol"], cram_key("carolpw")]))
    return SaslServer(UserDatabase(path), "mx")


def test_random_client_lines_give_well_formed_replies(fuzz_server):
    from hypothesis import given, settings, strategies as st

    lines = st.one_of(st.text(max_size=40), st.binary(max_size=40).map(
        lambda b: base64.b64encode(b).decode()))

    @settings(max_examples=150, deadline=None)
    @given(st.sampled_from(["PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2"]),
           st.one_of(st.none(), lines), st.lists(lines, max_size=3))
    def exchange(mech, initial, more):
        ex = fuzz_server.begin(mech)
        result = ex.start(None if mech == "CRAM-MD5" else initial)
        for line in more:
            if not isinstance(result, Challenge):
                break
            result = ex.respond(line)
        assert not isinstance(result, Success)
        assert re.match(r"^(334 |535 5\.7\.8 Error: authentication failed: |501 5\.7\.0 )",
                        result.reply)

    exchange()


def test_from_config(tmp_path, hashes):
    from mailsys.config import load
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "main.cf").write_text("myhostname = mx.example.com\n")
    write_users_file(etc / "sasl_users", set_user("", "carol", [hashes["carol"], cram_key("carolpw")]))
    server = SaslServer.from_config(load(etc))
    ch = server.begin("CRAM-MD5").start(None)
    assert base64.b64decode(ch.data).decode().endswith("@mx.example.com>")
    assert server.begin("PLAIN").start(b64("\0carol\0carolpw")) == Success("PLAIN", "carol")


# smtpd_sasl_local_domain: the realm Cyrus appends to a name without "@".

@pytest.fixture
def realm_server(tmp_path, hashes):
    path = tmp_path / "realm_users"
    text = set_user("", "bob@example.net", [hashes["bob"]])
    text = set_user(text, "carol@example.net", [hashes["carol"], cram_key("carolpw")])
    write_users_file(path, text)
    return SaslServer(UserDatabase(path), "mx.example.com", realm="example.net")


def test_realm_completes_a_plain_or_login_name(realm_server):
    assert realm_server.begin("PLAIN").start(b64("\0bob\0bobpw")) == \
        Success("PLAIN", "bob@example.net")
    assert realm_server.begin("PLAIN").start(b64("bob\0bob@example.net\0bobpw")) == \
        Success("PLAIN", "bob@example.net")
    ex = realm_server.begin("LOGIN")
    ex.start(None)
    ex.respond(b64("bob"))
    assert ex.respond(b64("bobpw")) == Success("LOGIN", "bob@example.net")


def test_realm_completes_a_cram_md5_name(realm_server):
    ex = realm_server.begin("CRAM-MD5")
    challenge = ex.start(None)
    assert ex.respond(cram_response(challenge.data, "carol", "carolpw")) == \
        Success("CRAM-MD5", "carol@example.net")


def test_without_the_realm_the_short_name_is_unknown(tmp_path, hashes):
    path = tmp_path / "realm_users"
    write_users_file(path, set_user("", "bob@example.net", [hashes["bob"]]))
    result = SaslServer(UserDatabase(path), "mx").begin("PLAIN").start(b64("\0bob\0bobpw"))
    assert isinstance(result, Failure) and result.username == "bob"


def test_failure_log_cuts_mechanism_and_username_at_100():
    # smtpd_sasl_glue.c: "%s: SASL %.100s authentication failed: %s, sasl_username=%.100s".
    text = auth_failed_log_text("c[192.0.2.1]", "M" * 150, "why", "u" * 150)
    assert text == f"c[192.0.2.1]: SASL {'M' * 100} authentication failed: why, sasl_username={'u' * 100}"
