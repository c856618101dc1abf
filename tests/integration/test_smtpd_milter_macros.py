"""What smtpd's milters are told, through a real master and a milter written
in the test (milter_peer.py): the macros at each stage and their
milter_macro_defaults, unknown commands (SMFIC_UNKNOWN), the headers cleanup
adds before the milters see the message, and milter_header_checks. The
values are those a live Postfix 3.7.11 gave the same milter with the same
settings."""

from __future__ import annotations

import re
import runpy
import smtplib
import ssl
from pathlib import Path
from types import SimpleNamespace

import pytest
import trustme
from cryptography import x509
from cryptography.x509.oid import NameOID

from mailsys.queue import Queue, QueueStore

pytestmark = pytest.mark.integration

here = Path(__file__).parent
sinks = SimpleNamespace(**runpy.run_path(str(here / "smtpsink.py")))
h = SimpleNamespace(**runpy.run_path(str(here / "smtpd_helpers.py")))
milter_tests = SimpleNamespace(**runpy.run_path(str(here / "test_smtpd_milter.py")))
MilterPeer = runpy.run_path(str(here / "milter_peer.py"))["MilterPeer"]
start, dialog = milter_tests.start, milter_tests.dialog

# Every macro of Postfix's MILTER_README table, asked for where it can have a value.
MACRO_LISTS = {
    "milter_connect_macros": "j {daemon_name} {daemon_addr} {daemon_port} v _ {client_addr} "
                             "{client_name} {client_port} {client_ptr} {client_connections} "
                             "{client_resolve} "
                             "{foo} bar",
    "milter_helo_macros": "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer} i",
    "milter_mail_macros": "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} "
                          "{mail_mailer} {rcpt_addr}",
    "milter_rcpt_macros": "i {rcpt_addr} {rcpt_host} {rcpt_mailer} {mail_addr} {mail_host}",
    "milter_data_macros": "i {rcpt_addr} {mail_addr}",
    "milter_end_of_header_macros": "i {mail_addr}",
    "milter_end_of_data_macros": "i {mail_addr} {rcpt_addr}",
    "milter_unknown_command_macros": "i {client_addr} {mail_addr}",
    "milter_macro_defaults": "foo=1, {bar = two words}",
}


def test_macros_at_each_stage(mailsys_instance):
    inst = mailsys_instance
    peer = MilterPeer()
    sink = sinks.SmtpSink()
    with sinks.SinkThread(sink) as sink_port, peer.running() as milter_port:
        port = start(inst, sink_port, smtpd_milters=f"inet:127.0.0.1:{milter_port}",
                     **MACRO_LISTS)
        # The readiness probe's conversation is over first.
        inst.wait_until(lambda: (b"Q", b"") in peer.seen)
        del peer.seen[:]
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.ehlo("client.example")
            client_port = s.sock.getsockname()[1]
            connect = peer.macros(b"C")
            helo = peer.macros(b"H")
            s.mail("a@example.org")
            mail = peer.macros(b"M")
            s.rcpt("b@example.com")
            first = peer.macros(b"R")
            s.rcpt('"x y"@example.com')
            second = peer.macros(b"R")
            s.rcpt("postmaster")
            third = peer.macros(b"R")
            qid = h.qid_of(s.data(b"Subject: live\r\nX-Orig: 1\r\n\r\nbody\r\n")[1])
        inst.wait_until(lambda: len(sink.messages) == 1, timeout=20)
    hop = f"[127.0.0.1]:{sink_port}"
    version = connect["v"]
    assert version.startswith("mailsys ")
    # As Postfix 3.7.11 gave them (seen live), the client's name aside:
    # Postfix's was "unknown" (no peer name lookup), giving {client_resolve} FAIL.
    assert connect == {
        "j": "mx.example.test", "{daemon_name}": "mx.example.test",
        "{daemon_addr}": "127.0.0.1", "{daemon_port}": str(port), "v": version,
        "_": "localhost [127.0.0.1]", "{client_addr}": "127.0.0.1",
        "{client_name}": "localhost", "{client_port}": str(client_port),
        "{client_ptr}": "localhost", "{client_connections}": "0", "{client_resolve}": "OK",
        "{foo}": "1", "bar": "two words"}
    assert helo == {}
    assert mail == {"{mail_addr}": "a@example.org", "{mail_host}": hop, "{mail_mailer}": "smtp"}
    also = {"{mail_addr}": "a@example.org", "{mail_host}": hop}
    assert first == {"{rcpt_addr}": "b@example.com", "{rcpt_host}": hop,
                     "{rcpt_mailer}": "smtp", **also}
    assert second == {"i": qid, "{rcpt_addr}": '"x y"@example.com', "{rcpt_host}": hop,
                      "{rcpt_mailer}": "smtp", **also}
    assert third == {"i": qid, "{rcpt_addr}": "postmaster@mx.example.test", "{rcpt_host}": hop,
                     "{rcpt_mailer}": "smtp", **also}
    # DATA names the first recipient; the end of message pass is cleanup's
    # in Postfix, which knows neither address.
    assert peer.macros(b"T") == {"i": qid, "{rcpt_addr}": "b@example.com",
                                 "{mail_addr}": "a@example.org"}
    assert peer.macros(b"N") == peer.macros(b"L") == {"i": qid}
    assert peer.macros(b"E") == peer.macros(b"B") == {"i": qid}
    # Cleanup's Message-Id:, Date: and From: come after the headers received.
    assert [n for n, _ in peer.headers()] == ["Subject", "X-Orig", "Message-Id", "Date", "From"]
    assert ("From", "a@example.org") in peer.headers()
    head = sink.messages[0].data.split(b"\r\n\r\n", 1)[0]
    assert head.count(b"\r\nMessage-Id: <") == 1 and head.count(b"\r\nFrom: a@example.org") == 1


def test_unknown_commands_go_to_the_milters(mailsys_instance):
    # Postfix 3.7.11, seen live: SMFIC_UNKNOWN carries the command word; the
    # milter's refusal is the reply, logged as a milter-reject of UNKNOWN.
    inst = mailsys_instance
    peer = MilterPeer(unknown="y550 5.7.1 No FOO")
    sink = sinks.SmtpSink()
    with sinks.SinkThread(sink) as sink_port, peer.running() as milter_port:
        port = start(inst, sink_port, smtpd_milters=f"inet:127.0.0.1:{milter_port}",
                     milter_unknown_command_macros="i {client_addr} {mail_addr}")
        replies = dialog(port, "HELO client.example", "FOO bar baz", "MAIL FROM:<a@example.org>",
                         "RCPT TO:<b@example.com>", "XYZZY", "QUIT")
        log = inst.wait_log(" unknown=0/2 ")
    assert replies[2] == replies[5] == "550 5.7.1 No FOO"
    unknown = [payload for code, payload in peer.seen if code == b"U"]
    assert unknown == [b"FOO\x00", b"XYZZY\x00"]
    last = peer.macros(b"U")            # after RCPT: the queue ID is known
    assert last.pop("i") in log and last == {"{client_addr}": "127.0.0.1",
                                             "{mail_addr}": "a@example.org"}
    assert "NOQUEUE: milter-reject: UNKNOWN from localhost[127.0.0.1]: 550 5.7.1 No FOO; " \
           "proto=SMTP helo=<client.example>\n" in log
    assert ": milter-reject: UNKNOWN from localhost[127.0.0.1]: 550 5.7.1 No FOO; " \
           "from=<a@example.org> to=<b@example.com> proto=SMTP helo=<client.example>\n" in log


def test_without_a_milter_refusal_an_unknown_command_keeps_smtpds_reply(mailsys_instance):
    inst = mailsys_instance
    peer = MilterPeer()
    sink = sinks.SmtpSink()
    with sinks.SinkThread(sink) as sink_port, peer.running() as milter_port:
        port = start(inst, sink_port, smtpd_milters=f"inet:127.0.0.1:{milter_port}")
        plain = dialog(port, "HELO client.example", "FOO bar", "QUIT")
    assert plain[2].startswith("50") and "command not recognized" in plain[2]
    assert (b"U", b"FOO\x00") in peer.seen


def test_milter_header_checks(mailsys_instance):
    # Postfix 3.7.11, seen live: each header a milter adds, inserts or
    # changes is looked up; cleanup logs "milter-header-<action>".
    inst = mailsys_instance
    table = inst.root / "milter_header_checks"
    table.write_text("/^X-Tag: old/ REPLACE X-Tag: new\n/^X-Warn:/ WARN watch it\n"
                     "/^X-Hold:/ HOLD held by hbc\n/^X-Ins: bad/ IGNORE\n"
                     "/^Subject: changed bad/ IGNORE\n/^X-Spam: yes/ REJECT spam here\n")
    peer = MilterPeer(eom_add=[("X-Tag", "old"), ("X-Warn", "w"), ("X-Hold", "h")],
                      eom_insert=[(0, "X-Ins", "bad")], eom_change=[(1, "Subject", "changed bad")])
    sink = sinks.SmtpSink()
    with sinks.SinkThread(sink) as sink_port, peer.running() as milter_port:
        port = start(inst, sink_port, smtpd_milters=f"inet:127.0.0.1:{milter_port}",
                     milter_header_checks=f"regexp:{table}")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.ehlo("client.example")
            s.mail("a@example.org")
            s.rcpt("b@example.com")
            qid = h.qid_of(s.data(b"Subject: orig\r\nFrom: a@example.org\r\n\r\nbody\r\n")[1])
            peer.eom_add.insert(0, ("X-Spam", "yes"))
            s.mail("a@example.org")
            s.rcpt("b@example.com")
            assert s.data(b"Subject: two\r\n\r\nbody\r\n") == (550, b"5.7.1 spam here")
        log = inst.wait_log("milter-header-reject")
        with QueueStore.open(inst.queue_dir) as store:
            [(env, content)] = [(e, store.load_content(e.queue_id))
                                for e, _ in store.scan_all([Queue.HOLD])]
    assert env.queue_id == qid
    head = content.split(b"\r\n\r\n")[0].decode()
    assert "\r\nSubject: orig\r\n" in head and "X-Ins" not in head
    assert head.endswith("\r\nX-Tag: new\r\nX-Warn: w\r\nX-Hold: h")
    tail = "from localhost[127.0.0.1]; from=<a@example.org> to=<b@example.com> proto=ESMTP " \
           "helo=<client.example>: "
    for line in ("milter-header-replace: header X-Tag: old " + tail + "X-Tag: new\n",
                 "milter-header-warning: header X-Warn: w " + tail + "watch it\n",
                 "milter-header-hold: header X-Hold: h " + tail + "held by hbc\n"):
        assert f"mailsys/cleanup" in log and f": {qid}: {line}" in log, line
    assert re.search(r"mailsys/cleanup\[\d+\]: \w+: milter-header-reject: header X-Spam: yes "
                     + re.escape(tail + "5.7.1 spam here\n"), log)
    assert "milter-reject" not in log and "milter-hold" not in log


def test_certificate_macros_for_a_trusted_client_certificate(mailsys_instance, tmp_path):
    # Postfix gives {cert_subject} and {cert_issuer} (the CNs; the issuer's
    # organisation when it has no CN) only for a certificate it trusts.
    inst = mailsys_instance
    ca = trustme.CA()
    pem, cafile = tmp_path / "cert.pem", tmp_path / "ca.pem"
    ca.issue_cert("mx.example.test").private_key_and_cert_chain_pem.write_to_path(str(pem))
    ca.cert_pem.write_to_path(str(cafile))
    client = ca.issue_cert("client.example", common_name="client.example")
    issuer = x509.load_pem_x509_certificate(ca.cert_pem.bytes()).subject \
        .get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
    peer = MilterPeer()
    sink = sinks.SmtpSink()
    with sinks.SinkThread(sink) as sink_port, peer.running() as milter_port:
        port = start(inst, sink_port, smtpd_milters=f"inet:127.0.0.1:{milter_port}",
                     smtpd_tls_security_level="may", smtpd_tls_cert_file=str(pem),
                     smtpd_tls_ask_ccert="yes", smtpd_tls_CAfile=str(cafile))
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        client.configure_cert(ctx)
        ctx.check_hostname = False
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.ehlo("client.example")
            s.starttls(context=ctx)
            s.ehlo("client.example")
            version, cipher = s.sock.version(), s.sock.cipher()
    assert peer.macros(b"H") == {"{tls_version}": version, "{cipher}": cipher[0],
                                 "{cipher_bits}": str(cipher[2]),
                                 "{cert_subject}": "client.example", "{cert_issuer}": issuer}


def test_rejected_recipients_go_to_milters_that_ask_for_them(mailsys_instance):
    # SMFIP_RCPT_REJ, as Postfix 3.7.11 sends it (seen live): a recipient
    # the restrictions refuse goes to a milter that negotiated the flag,
    # with {rcpt_mailer} "error", {rcpt_host} the enhanced status code and
    # {rcpt_addr} the text after the address; its answer changes nothing.
    # A milter without the flag hears only the accepted recipient.
    inst = mailsys_instance
    table = inst.root / "access"
    table.write_text("/^bad@/ REJECT no such user\n")
    wants = MilterPeer(protocol=0x800, rcpt={"bad@example.com": "r"})
    plain = MilterPeer()
    sink = sinks.SmtpSink()
    with sinks.SinkThread(sink) as sink_port, wants.running() as p1, plain.running() as p2:
        port = start(inst, sink_port, smtpd_milters=f"inet:127.0.0.1:{p1}, inet:127.0.0.1:{p2}",
                     smtpd_recipient_restrictions=f"check_recipient_access regexp:{table}, "
                                                  "permit_mynetworks, reject")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.ehlo("client.example")
            s.mail("a@example.org")
            assert s.rcpt("bad@example.com") == (
                554, b"5.7.1 <bad@example.com>: Recipient address rejected: no such user")
            assert s.rcpt("b@example.com")[0] == 250
            assert s.data(b"Subject: s\r\n\r\nbody\r\n")[0] == 250
        # The session's own disconnect line (the probe's came first).
        log = inst.wait_log("rcpt=1/2", timeout=10)
    rcpts = [payload for code, payload in wants.seen if code == b"R"]
    assert rcpts == [b"<bad@example.com>\0", b"<b@example.com>\0"]
    first = [payload for code, payload in wants.seen if code == b"D" and payload[:1] == b"R"][0]
    items = first[1:].split(b"\0")[:-1]
    assert dict(zip(items[::2], items[1::2])) == {
        b"{rcpt_addr}": b"Recipient address rejected: no such user", b"{rcpt_host}": b"5.7.1",
        b"{rcpt_mailer}": b"error"}
    assert [payload for code, payload in plain.seen if code == b"R"] == [b"<b@example.com>\0"]
    assert "milter-reject" not in log
