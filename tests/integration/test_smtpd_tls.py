"""smtpd through a real master with TLS: STARTTLS, wrapper mode, AUTH on submission."""

from __future__ import annotations

import base64
import runpy
import smtplib
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import trustme

from mailsys.queue import QueueStore

pytestmark = pytest.mark.integration

h = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("smtpd_helpers.py"))))

SERVICES = ["cleanup unix - - n - 0 cleanup", "anvil unix - - n - 1 anvil"]
MESSAGE = b"Subject: tls\r\n\r\nover TLS\r\n"
SUBMISSION = ("-o syslog_name=mailsys/submission -o smtpd_tls_security_level=encrypt "
              "-o smtpd_sasl_auth_enable=yes -o smtpd_tls_auth_only=yes "
              "-o smtpd_reject_unlisted_recipient=no "
              "-o smtpd_relay_restrictions=permit_sasl_authenticated,reject")


@pytest.fixture(autouse=True)
def _show_log(mailsys_instance):
    yield
    print(mailsys_instance.log_text())


@pytest.fixture
def ca():
    return trustme.CA()


def start(inst, ca, *, main_cf=None, opts="", cert=True):
    """smtpd with a trustme certificate for mx.example.test; its port."""
    params = {"mydestination": "$myhostname, localhost, example.test", "local_recipient_maps": "",
              "smtpd_tls_security_level": "may", "smtpd_tls_loglevel": "1",
              "smtpd_tls_received_header": "yes", "smtpd_error_sleep_time": "0"}
    if cert:
        pem = inst.root / "cert.pem"
        ca.issue_cert("mx.example.test").private_key_and_cert_chain_pem.write_to_path(str(pem))
        params["smtpd_tls_cert_file"] = str(pem)
    params.update(main_cf or {})
    port = inst.free_port()
    inst.write_config(master_cf=[*SERVICES, f"127.0.0.1:{port} inet n - n - - smtpd {opts}"],
                      main_cf=params)
    inst.start()
    inst.wait_until(lambda: _banner(port))
    return port


def _banner(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


def client_context(ca) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    ctx.check_hostname = False
    return ctx


def add_user(inst, user, password):
    r = subprocess.run([sys.executable, "-m", "mailsys.cli.main", "-c", str(inst.config_dir),
                        "saslpasswd", "add", user], input=password + "\n", capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr


def test_starttls_then_message(mailsys_instance, ca):
    inst = mailsys_instance
    port = start(inst, ca)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("tls.example")
        assert s.has_extn("starttls")
        code, text = s.starttls(context=client_context(ca))
        assert (code, text) == (220, b"2.0.0 Ready to start TLS")
        s.ehlo("tls.example")
        assert not s.has_extn("starttls")
        s.mail("a@example.org")
        s.rcpt("bob@example.test")
        code, reply = s.data(MESSAGE)
        assert code == 250
    qid = reply.decode().rsplit(" ", 1)[1]
    inst.wait_log("Anonymous TLS connection established from localhost[127.0.0.1]: TLSv1.3 with cipher")
    inst.wait_log("disconnect from localhost[127.0.0.1] ehlo=2 starttls=1 mail=1 rcpt=1 data=1 quit=1 "
                  "commands=7")
    inst.stop()
    with QueueStore.open(inst.queue_dir) as store:
        envelope, _ = store.load(qid)
        content = store.load_content(qid)
    assert envelope.protocol == "ESMTPS"
    assert b"\t(using TLSv1.3 with cipher" in content
    assert b"with ESMTPS id " + qid.encode() in content


def test_starttls_without_certificate_is_a_local_problem(mailsys_instance, ca):
    inst = mailsys_instance
    port = start(inst, ca, cert=False, main_cf={"smtpd_tls_security_level": "encrypt"})
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("c.example")
        assert s.has_extn("starttls")
        assert s.mail("a@example.org") == (530, b"5.7.0 Must issue a STARTTLS command first")
        assert s.docmd("STARTTLS") == (454, b"4.7.0 TLS not available due to local problem")
    inst.wait_log("warning: No server certs available. TLS won't be enabled")


def test_submission_auth_after_starttls(mailsys_instance, ca):
    inst = mailsys_instance
    port = start(inst, ca, main_cf={"mynetworks": "192.0.2.0/24"}, opts=SUBMISSION)
    add_user(inst, "alice", "s3cret pass")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("client.example")
        assert not s.has_extn("auth")
        assert s.docmd("AUTH PLAIN AGFsaWNlAHMzY3JldCBwYXNz") == \
            (530, b"5.7.0 Must issue a STARTTLS command first")
        s.starttls(context=client_context(ca))
        s.ehlo("client.example")
        assert s.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
        s.mail("alice@example.org")
        assert s.rcpt("r@remote.example")[0] == 554     # not yet authenticated
        s.rset()
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login("alice", "wrong")
        assert e.value.smtp_code == 535
        assert s.login("alice", "s3cret pass")[0] == 235
        s.mail("alice@example.org")
        assert s.rcpt("r@remote.example")[0] == 250
        code, reply = s.data(MESSAGE)
        assert code == 250
    qid = reply.decode().rsplit(" ", 1)[1]
    inst.wait_log("mailsys/submission/smtpd[")
    inst.wait_log("warning: localhost[127.0.0.1]: SASL PLAIN authentication failed: "
                  "authentication failure, sasl_username=alice")
    inst.wait_log(f"{qid}: client=localhost[127.0.0.1], sasl_method=PLAIN, sasl_username=alice")
    inst.stop()
    with QueueStore.open(inst.queue_dir) as store:
        envelope, _ = store.load(qid)
    assert envelope.protocol == "ESMTPSA" and envelope.sasl_user == "alice"


def test_auth_only_offered_after_tls(mailsys_instance, ca):
    inst = mailsys_instance
    port = start(inst, ca, opts="-o smtpd_sasl_auth_enable=yes -o smtpd_tls_auth_only=yes")
    add_user(inst, "bob", "pw")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("c.example")
        assert not s.has_extn("auth")
        assert s.docmd("AUTH PLAIN AGJvYgBwdw==") == (503, b"5.5.1 Error: authentication not enabled")
        s.starttls(context=client_context(ca))
        s.ehlo("c.example")
        assert s.has_extn("auth")
        assert s.docmd("AUTH PLAIN AGJvYgBwdw==") == (235, b"2.7.0 Authentication successful")


def test_wrapper_mode(mailsys_instance, ca):
    inst = mailsys_instance
    port = start(inst, ca, opts="-o smtpd_tls_wrappermode=yes")
    with smtplib.SMTP_SSL("127.0.0.1", port, timeout=10, context=client_context(ca)) as s:
        s.ehlo("wrapped.example")
        assert not s.has_extn("starttls")
        s.mail("a@example.org")
        s.rcpt("bob@example.test")
        assert s.data(MESSAGE)[0] == 250


def test_client_certificate_required(mailsys_instance, ca):
    inst = mailsys_instance
    port = start(inst, ca, main_cf={"smtpd_tls_security_level": "encrypt",
                                    "smtpd_tls_req_ccert": "yes"})
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("c.example")
        s.starttls(context=client_context(ca))
        with pytest.raises(smtplib.SMTPServerDisconnected):
            s.ehlo("c.example")
            s.mail("a@example.org")
    inst.wait_log("NOQUEUE: abort: TLS from localhost[127.0.0.1]: No client certificate presented")
    assert "lost connection after STARTTLS" not in inst.log_text()


def cram_response(s: smtplib.SMTP, challenge: bytes) -> str:
    return base64.b64encode(s.auth_cram_md5(base64.b64decode(challenge)).encode()).decode()


def test_cram_md5_only_for_users_with_a_cram_key(mailsys_instance, ca):
    inst = mailsys_instance
    port = start(inst, ca, opts="-o smtpd_sasl_auth_enable=yes")
    add_user(inst, "bob", "plain only")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("c.example")
        assert s.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
    r = subprocess.run([sys.executable, "-m", "mailsys.cli.main", "-c", str(inst.config_dir),
                        "saslpasswd", "add", "--cram-md5", "carol"], input="cram secret\n",
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("c.example")
        assert s.esmtp_features["auth"].split() == ["PLAIN", "LOGIN", "CRAM-MD5"]
        s.user, s.password = "bob", "plain only"
        code, text = s.docmd("AUTH", "CRAM-MD5")
        assert code == 334
        assert s.docmd(cram_response(s, text)) == \
            (535, b"5.7.8 Error: authentication failed: authentication failure")
        s.user, s.password = "carol", "cram secret"
        code, text = s.docmd("AUTH", "CRAM-MD5")
        assert s.docmd(cram_response(s, text)) == (235, b"2.7.0 Authentication successful")
    inst.wait_log("warning: localhost[127.0.0.1]: SASL CRAM-MD5 authentication failed: "
                  "authentication failure, sasl_username=bob")


def test_shipped_submission_entry_needs_tls_and_auth_to_send(mailsys_instance, ca):
    """The submission entry of etc/master.cf, verbatim, with a certificate in main.cf."""
    inst = mailsys_instance
    pem = inst.root / "cert.pem"
    ca.issue_cert("mx.example.test").private_key_and_cert_chain_pem.write_to_path(str(pem))
    smtp_port, port = inst.free_port(), inst.free_port()
    inst.write_config(master_cf=[*SERVICES, *h.shipped_smtpd_entries(smtp_port, port)],
                      main_cf={"mydestination": "$myhostname, localhost", "local_recipient_maps": "",
                               "smtpd_tls_cert_file": str(pem), "smtpd_error_sleep_time": "0"})
    inst.start()
    inst.wait_until(lambda: _banner(port))
    add_user(inst, "alice", "pw")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("c.example")
        assert not s.has_extn("auth")
        assert s.mail("a@example.org") == (530, b"5.7.0 Must issue a STARTTLS command first")
        s.starttls(context=client_context(ca))
        s.ehlo("c.example")
        assert s.has_extn("auth")
        s.mail("alice@example.org")
        # Without AUTH nothing goes through, not even mail for this host.
        assert s.rcpt("postmaster@mx.example.test") == (554, b"5.7.1 <postmaster@mx.example.test>: "
                                                              b"Recipient address rejected: Access denied")
        assert s.rcpt("r@remote.example")[0] == 554
        s.rset()
        s.login("alice", "pw")
        s.mail("alice@example.org")
        assert s.rcpt("r@remote.example")[0] == 250
        assert s.data(MESSAGE)[0] == 250


def test_plaintext_pipelined_after_starttls_is_discarded(mailsys_instance, ca):
    """CVE-2011-0411: commands sent with STARTTLS in the clear are never executed."""
    inst = mailsys_instance
    port = start(inst, ca)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(b"EHLO c.example\r\n")
        while f.readline()[3:4] != b" ":
            pass
        sock.sendall(b"STARTTLS\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<bob@example.test>\r\n")
        assert f.readline() == b"220 2.0.0 Ready to start TLS\r\n"
        with client_context(ca).wrap_socket(sock, server_hostname="mx.example.test") as tls:
            tf = tls.makefile("rb")
            tls.sendall(b"MAIL FROM:<a@example.org>\r\n")
            # Had the plaintext MAIL run, this one would be "503 5.5.1 Error: nested MAIL command".
            got = tf.readline()
            tls.sendall(b"NOOP\r\nQUIT\r\n")
            assert [tf.readline(), tf.readline()] == [b"250 2.0.0 Ok\r\n", b"221 2.0.0 Bye\r\n"]
            tf.close()
    assert got == b"250 2.1.0 Ok\r\n"
    inst.wait_log("disconnect from localhost[127.0.0.1] ehlo=1 starttls=1 mail=1 noop=1 quit=1 commands=5")


@pytest.mark.parametrize("obsolete, offered, required", [
    ({"smtpd_use_tls": "yes"}, True, False),
    ({"smtpd_enforce_tls": "yes"}, True, True),
    ({}, False, False),
])
def test_obsolete_use_and_enforce_tls_when_the_level_is_empty(mailsys_instance, ca, obsolete,
                                                               offered, required):
    # Postfix 3.7 still reads them while smtpd_tls_security_level is empty
    # (its default): many main.cf files say only "smtpd_use_tls = yes".
    inst = mailsys_instance
    port = start(inst, ca, main_cf={"smtpd_tls_security_level": "", **obsolete})
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("c.example")
        assert s.has_extn("starttls") is offered
        code, text = s.mail("a@example.org")
        assert (code, text) == ((530, b"5.7.0 Must issue a STARTTLS command first") if required
                                else (250, b"2.1.0 Ok"))


@pytest.mark.parametrize("table", ["texthash", "hash"])
def test_tls_server_sni_maps_choose_the_certificate(mailsys_instance, ca, table):
    inst = mailsys_instance
    chain = inst.root / "sni.pem"
    ca.issue_cert("sni.example").private_key_and_cert_chain_pem.write_to_path(str(chain))
    source = inst.root / "sni"
    source.write_text(f"sni.example {chain}\n.sni.example {chain}\n")
    if table == "hash":
        r = inst.cli("postmap", "-F", f"hash:{source}")     # the base64 of the files
        assert r.returncode == 0, r.stderr
    port = start(inst, ca, main_cf={"tls_server_sni_maps": f"{table}:{source}"})

    assert served_names_over_starttls(port, ca, "mx.sni.example") == ["sni.example"]
    assert served_names_over_starttls(port, ca, "other.test") == ["mx.example.test"]
    inst.wait_log("Anonymous TLS connection established from localhost[127.0.0.1] to "
                  "mx.sni.example: TLSv1.3 with cipher ")
    inst.wait_log("TLS SNI other.test from localhost[127.0.0.1] not matched, using default chain")


def served_names_over_starttls(port, ca, sni) -> list[str]:
    """The DNS names of the certificate smtpd shows a client sending sni."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("c.example")
        code, _ = s.docmd("STARTTLS")
        assert code == 220
        tls = client_context(ca).wrap_socket(s.sock, server_hostname=sni)
        names = [v for _, v in tls.getpeercert()["subjectAltName"]]
        tls.sendall(b"QUIT\r\n")
        tls.recv(100)
        tls.close()
    return names


@pytest.mark.parametrize("mech_filter, offered", [
    ("login", ["LOGIN"]),
    ("!plain, static:rest", ["LOGIN"]),
    ("!login plain", ["PLAIN"]),
])
def test_smtpd_sasl_mechanism_filter(mailsys_instance, ca, mech_filter, offered):
    inst = mailsys_instance
    port = start(inst, ca, main_cf={"smtpd_sasl_auth_enable": "yes",
                                    "smtpd_sasl_mechanism_filter": mech_filter})
    add_user(inst, "bob", "pw")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.starttls(context=client_context(ca))
        s.ehlo("c.example")
        assert s.esmtp_features["auth"].split() == offered
