"""smtpd_milters through a real master: a milter written in the test
(milter_peer.py) that refuses, answers its own reply, edits the message and
its envelope, one that is down, and OpenDKIM signing."""

from __future__ import annotations

import contextlib
import re
import runpy
import smtplib
import socket
import ssl
from pathlib import Path
from types import SimpleNamespace

import pytest
import trustme

pytestmark = pytest.mark.integration

here = Path(__file__).parent
sinks = SimpleNamespace(**runpy.run_path(str(here / "smtpsink.py")))
h = SimpleNamespace(**runpy.run_path(str(here / "smtpd_helpers.py")))
MilterPeer = runpy.run_path(str(here / "milter_peer.py"))["MilterPeer"]

MASTER_CF = ["cleanup unix - - n - 0 cleanup", "qmgr unix n - n 300 1 qmgr",
             "bounce unix - - n - 0 bounce", "smtp unix - - n - - smtp"]


def start(inst, sink_port: int, **main_cf: str) -> int:
    port = inst.free_port()
    inst.write_config(master_cf=MASTER_CF + [f"127.0.0.1:{port} inet n - n - - smtpd"],
                      main_cf={"relayhost": f"[127.0.0.1]:{sink_port}", "mydestination": "",
                               "mynetworks": "127.0.0.0/8", **main_cf})
    inst.start()
    inst.wait_until(lambda: h.listening(port))
    return port


@contextlib.contextmanager
def milter_smtpd(inst, peer, **main_cf: str):
    """smtpd on a fresh port with peer as its milter, relaying to a sink:
    (port, sink)."""
    sink = sinks.SmtpSink()
    with sinks.SinkThread(sink) as sink_port, peer.running() as milter_port:
        yield start(inst, sink_port, smtpd_milters=f"inet:127.0.0.1:{milter_port}",
                    **main_cf), sink


def test_milter_refuses_replies_and_edits_the_message(mailsys_instance):
    inst = mailsys_instance
    peer = MilterPeer(rcpt={"reject@example.com": "r", "custom@example.com": "y553 5.7.1 Go away"},
                      eom_add=[("X-Milter", "seen")], eom_insert=[(0, "X-Top", "zero")],
                      eom_change=[(1, "Subject", "changed")],
                      eom_swap_rcpt=("change@example.com", "changed@example.com"))
    sink = sinks.SmtpSink()
    with sinks.SinkThread(sink) as sink_port, peer.running() as milter_port:
        port = start(inst, sink_port, smtpd_milters=f"inet:127.0.0.1:{milter_port}")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.ehlo("client.example")
            s.mail("a@example.org")
            assert s.rcpt("reject@example.com") == (550, b"5.7.1 Command rejected")
            assert s.rcpt("custom@example.com") == (553, b"5.7.1 Go away")
            assert s.rcpt("change@example.com")[0] == 250
            assert s.rcpt("b@example.com")[0] == 250
            qid = h.qid_of(s.data(b"Subject: milter\r\nFrom: a@example.org\r\n\r\nhello\r\n")[1])
        inst.wait_until(lambda: len(sink.messages) == 1, timeout=20)
    [msg] = sink.messages
    assert sorted(msg.rcpts) == ["b@example.com", "changed@example.com"]
    head = msg.data.split(b"\r\n\r\n", 1)[0]
    # As Postfix 3.7.11 places them (seen live): a header inserted at index
    # 0 above the Received: header milters are not shown, the added one
    # after the Message-Id: and Date: cleanup adds for a local client.
    assert head.startswith(b"X-Top: zero\r\nReceived: from client.example (localhost [127.0.0.1])")
    assert re.search(rb"\r\nSubject: changed\r\nFrom: a@example.org\r\nMessage-Id: <[^>]+>\r\n"
                     rb"Date: [^\r]+\r\nX-Milter: seen$", head), head
    assert msg.data.endswith(b"hello\r\n")
    log = inst.log_text()
    assert ("NOQUEUE: milter-reject: RCPT from localhost[127.0.0.1]: 550 5.7.1 Command rejected; "
            "from=<a@example.org> to=<reject@example.com> proto=ESMTP helo=<client.example>\n") in log
    assert "553 5.7.1 Go away; from=<a@example.org> to=<custom@example.com>" in log
    # The milter saw the message under its queue ID, the headers as sent.
    assert peer.macros(b"E") == {"i": qid}
    assert peer.headers()[:2] == [("Subject", "milter"), ("From", "a@example.org")]


def test_end_of_message_reject_and_quarantine(mailsys_instance):
    inst = mailsys_instance
    peer = MilterPeer(eom="y554 5.7.1 Spam not welcome")
    sink = sinks.SmtpSink()
    with sinks.SinkThread(sink) as sink_port, peer.running() as milter_port:
        port = start(inst, sink_port, smtpd_milters=f"inet:127.0.0.1:{milter_port}")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.ehlo("client.example")
            s.mail("a@example.org")
            s.rcpt("b@example.com")
            assert s.data(b"Subject: spam\r\n\r\nbuy\r\n") == (554, b"5.7.1 Spam not welcome"), \
                inst.log_text()
            peer.eom, peer.eom_quarantine = "c", "looks odd"
            s.mail("a@example.org")
            s.rcpt("b@example.com")
            held = h.qid_of(s.data(b"Subject: odd\r\n\r\nhmm\r\n")[1])
        line = inst.wait_log("milter-hold: END-OF-MESSAGE", timeout=10)
    # Logged by cleanup, as Postfix's cleanup logs them (pflogsumm counts
    # cleanup's END-OF-MESSAGE rejects), after its message-id= line.
    log = inst.log_text()
    assert re.search(r"mailsys/cleanup\[\d+\]: \w+: message-id=<.*\n.*mailsys/cleanup\[\d+\]: \w+: "
                     r"milter-reject: END-OF-MESSAGE from localhost\[127\.0\.0\.1\]: 5\.7\.1 Spam not "
                     r"welcome; from=<a@example\.org> to=<b@example\.com> proto=ESMTP "
                     r"helo=<client\.example>\n", log), log
    assert re.search(rf"mailsys/cleanup\[\d+\]: {held}: milter-hold: END-OF-MESSAGE from "
                     r"localhost\[127\.0\.0\.1\]: milter triggers HOLD action; from=<a@example\.org> "
                     r"to=<b@example\.com> proto=ESMTP helo=<client\.example>\n", log), log
    mailq = inst.cli("postqueue", "-p").stdout
    assert f"{held}!" in mailq
    assert sink.messages == []


def dialog(port: int, *commands: str) -> list[str]:
    """The greeting and the last line of each reply, over a plain socket."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        replies = sock.makefile("rb")

        def reply() -> str:
            while True:
                line = replies.readline().decode().rstrip("\r\n")
                if line[3:4] != "-":
                    return line
        out = [reply()]
        for command in commands:
            sock.sendall(command.encode() + b"\r\n")
            out.append(reply())
    return out


@pytest.mark.parametrize("action,greeting,mail", [
    ("tempfail", "220", "451 4.7.1 Service unavailable - try again later"),
    ("reject", "554 mx.example.test ESMTP not accepting connections", "550 5.5.0 Service unavailable"),
    ("accept", "220", "250 2.1.0 Ok")])
def test_milter_down_follows_milter_default_action(mailsys_instance, action, greeting, mail):
    # Postfix 3.7.11 with a milter down, seen live: the reject action
    # makes the greeting a 554 but the session goes on; EHLO is answered
    # (and the refusal logged); MAIL gets the default action's reply.
    inst = mailsys_instance
    down = inst.free_port()
    sink = sinks.SmtpSink()
    with sinks.SinkThread(sink) as sink_port:
        port = start(inst, sink_port, smtpd_milters=f"inet:127.0.0.1:{down}",
                     milter_default_action=action, myhostname="mx.example.test")
        replies = dialog(port, "EHLO client.example", "MAIL FROM:<a@example.org>", "QUIT")
        log = inst.wait_log("quit=1", timeout=10)
    assert replies[0].startswith(greeting)
    assert replies[1].startswith("250 ") and replies[2] == mail
    assert f"warning: connect to Milter service inet:127.0.0.1:{down}: Connection refused" in log
    if action == "accept":
        assert "milter-reject" not in log
    else:
        text = mail
        assert "NOQUEUE: milter-reject: CONNECT from " in log
        assert f": {text}; proto=SMTP\n" in log                            # CONNECT
        assert f": {text}; proto=SMTP helo=<client.example>" in log        # EHLO, logged only
        assert f": {text}; from=<a@example.org> proto=ESMTP helo=<client.example>" in log


def test_etrn_gets_the_refusal_a_failed_milter_stands_by(mailsys_instance):
    # Postfix 3.7.11, smtpd_milters on a port nobody listens on (tempfail):
    # etrn_cmd() asks milter_other_event() before the transaction and
    # syntax checks, so "ETRN example.com", a bare "ETRN" and "ETRN bad!dom"
    # all got "451 4.7.1 Service unavailable - try again later", with no
    # line logged for them ("etrn=0/3" in the disconnect line).
    inst = mailsys_instance
    down = inst.free_port()
    port = h.start(inst, {"smtpd_milters": f"inet:127.0.0.1:{down}"})
    tempfail = (451, b"4.7.1 Service unavailable - try again later")
    with h.session(port) as s:
        s.ehlo("x")
        assert s.docmd("ETRN", "example.com") == tempfail
        assert s.docmd("ETRN") == tempfail
        assert s.docmd("ETRN", "bad!dom") == tempfail
    log = inst.wait_log("etrn=0/3", timeout=10)
    assert "ETRN" not in log.replace("etrn=0/3", ""), log


def test_etrn_gets_the_refusal_of_a_milter_that_refused_helo(mailsys_instance):
    # Postfix 3.7.11 with a milter answering EHLO "reject": EHLO got its
    # 250 (the refusal logged, "milter-reject: EHLO from ..."), then
    # "ETRN example.com" and a bare "ETRN" got "550 5.7.1 Command rejected".
    inst = mailsys_instance
    with MilterPeer(helo="r").running() as milter_port:
        port = h.start(inst, {"smtpd_milters": f"inet:127.0.0.1:{milter_port}"})
        with h.session(port) as s:
            assert s.ehlo("x")[0] == 250
            assert s.docmd("ETRN", "example.com") == (550, b"5.7.1 Command rejected")
            assert s.docmd("ETRN") == (550, b"5.7.1 Command rejected")
        inst.wait_log("etrn=0/2", timeout=10)


def test_per_milter_default_action_overrides(mailsys_instance):
    inst = mailsys_instance
    down = inst.free_port()
    sink = sinks.SmtpSink()
    with sinks.SinkThread(sink) as sink_port:
        port = start(inst, sink_port, milter_default_action="tempfail",
                     smtpd_milters=f"{{ inet:127.0.0.1:{down}, default_action=accept }}")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.ehlo("client.example")
            assert s.mail("a@example.org")[0] == 250
            assert s.rcpt("b@example.com")[0] == 250
            s.data(b"Subject: through\r\n\r\nok\r\n")
        inst.wait_until(lambda: len(sink.messages) == 1, timeout=20)


def test_refusals_at_connect_helo_and_data_and_discard(mailsys_instance):
    # Each as Postfix 3.7.11 answers and logs it (seen live): a milter that
    # rejects the connection gets a 554 greeting and its reply at MAIL; one
    # that rejects HELO has its reply given at MAIL; DATA refused names the
    # first recipient; a discard at RCPT accepts and drops the message.
    inst = mailsys_instance
    peer = MilterPeer(connect="r")
    with milter_smtpd(inst, peer, myhostname="mx.example.test") as (port, sink):
        rcpts = ("RCPT TO:<b@example.com>", "RCPT TO:<c@example.com>")
        assert dialog(port, "EHLO client.example", "MAIL FROM:<a@example.org>", "QUIT") == [
            "554 mx.example.test ESMTP not accepting connections", "250 CHUNKING",
            "550 5.7.1 Command rejected", "221 2.0.0 Bye"]
        peer.connect, peer.helo = "c", "y554 5.7.1 bad helo"
        assert dialog(port, "EHLO client.example", "MAIL FROM:<a@example.org>", "QUIT")[2] == \
            "554 5.7.1 bad helo"
        peer.helo, peer.data = "c", "r"
        assert dialog(port, "EHLO client.example", "MAIL FROM:<a@example.org>", *rcpts, "DATA",
                      "QUIT")[5] == "550 5.7.1 Command rejected"
        peer.data, peer.rcpt = "c", {"b@example.com": "d"}
        replies = dialog(port, "EHLO client.example", "MAIL FROM:<a@example.org>", *rcpts, "DATA",
                         "Subject: x\r\n\r\nbody\r\n.", "QUIT")
        assert replies[3:6] == ["250 2.1.5 Ok", "250 2.1.5 Ok", "354 End data with <CR><LF>.<CR><LF>"]
        assert replies[6].startswith("250 2.0.0 Ok: queued as ")
        log = inst.wait_log("data=1 quit=1", timeout=10)
    assert h.all_entries(inst) == [] and sink.messages == []      # discarded, not queued
    for line in (
            "NOQUEUE: milter-reject: CONNECT from localhost[127.0.0.1]: 550 5.7.1 Command rejected; "
            "proto=SMTP\n",
            "NOQUEUE: milter-reject: EHLO from localhost[127.0.0.1]: 550 5.7.1 Command rejected; "
            "proto=SMTP helo=<client.example>\n",
            "NOQUEUE: milter-reject: MAIL from localhost[127.0.0.1]: 554 5.7.1 bad helo; "
            "from=<a@example.org> proto=ESMTP helo=<client.example>\n",
            ": milter-reject: DATA from localhost[127.0.0.1]: 550 5.7.1 Command rejected; "
            "from=<a@example.org> to=<b@example.com> proto=ESMTP helo=<client.example>\n",
            "NOQUEUE: milter-discard: RCPT from localhost[127.0.0.1]: milter triggers DISCARD "
            "action; from=<a@example.org> to=<b@example.com> proto=ESMTP helo=<client.example>\n"):
        assert line in log, line
    # After a DISCARD the milters hear nothing more of the message (no
    # RCPT, DATA, header or end of message), as in Postfix 3.7.11 (seen live).
    codes = [code for code, _ in peer.seen]
    last = codes[len(codes) - codes[::-1].index(b"C"):]
    assert last.count(b"R") == 1 and not {b"T", b"L", b"E"} & set(last), last


def test_a_client_refused_at_connect_is_not_shown_to_the_milters(mailsys_instance):
    # smtpd.c smtpd_proto(): with smtpd_delay_reject = no, the client
    # restrictions' refusal is the greeting and the milters get no CONNECT.
    inst = mailsys_instance
    peer = MilterPeer()
    with milter_smtpd(inst, peer, smtpd_delay_reject="no",
                      smtpd_client_restrictions="reject") as (port, _):
        replies = dialog(port, "EHLO client.example", "QUIT")
    assert replies[0] == "554 5.7.1 <localhost[127.0.0.1]>: Client host rejected: Access denied"
    assert replies[-1] == "221 2.0.0 Bye"
    assert b"C" not in [code for code, _ in peer.seen]


def test_a_header_checks_redirect_ends_the_milters_inspection(mailsys_instance):
    # cleanup_act(): REDIRECT (and PASS) clear CLEANUP_FLAG_FILTER_ALL, so
    # the milters get no header, body or end-of-message event.
    inst = mailsys_instance
    checks = inst.config_dir / "header_checks"
    checks.write_text("/^Subject: elsewhere/ REDIRECT c@example.com\n")
    peer = MilterPeer()
    with milter_smtpd(inst, peer, header_checks=f"regexp:{checks}") as (port, sink):
        replies = dialog(port, "EHLO client.example", "MAIL FROM:<a@example.org>",
                         "RCPT TO:<b@example.com>", "DATA",
                         "Subject: elsewhere\r\n\r\nbody\r\n.", "QUIT")
        assert replies[5].startswith("250 2.0.0 Ok: queued as "), replies
        inst.wait_until(lambda: len(sink.messages) == 1, timeout=20)
    codes = [code for code, _ in peer.seen]
    assert b"R" in codes and not {b"L", b"N", b"B", b"E"} & set(codes), codes


def test_shutdown_and_421_replies_are_smtpd_s_own(mailsys_instance):
    # smtpd.c: a milter's SMFIR_SHUTDOWN is "421 4.7.0 Server closing
    # connection" (check_milter_reply(), no $myhostname); a 421 at CONNECT,
    # the milter's own text or not, makes the greeting "421 <myhostname>
    # Service unavailable - try again later" (smtpd_proto()).
    inst = mailsys_instance
    peer = MilterPeer(connect="4")
    with milter_smtpd(inst, peer, myhostname="mx.example.test") as (port, _):
        assert dialog(port) == ["421 mx.example.test Service unavailable - try again later"]
        peer.connect = "y421 4.7.0 go away"
        assert dialog(port) == ["421 mx.example.test Service unavailable - try again later"]
        peer.connect, peer.helo = "c", "4"
        assert dialog(port, "EHLO client.example")[1] == "421 4.7.0 Server closing connection"
        log = inst.wait_log("ehlo=0/1", timeout=10)
    assert ("NOQUEUE: milter-reject: CONNECT from localhost[127.0.0.1]: 421 4.7.0 Server "
            "closing connection; proto=SMTP\n") in log
    assert ("NOQUEUE: milter-reject: EHLO from localhost[127.0.0.1]: 421 4.7.0 Server "
            "closing connection; proto=SMTP helo=<client.example>\n") in log


def test_tls_macros_after_starttls(mailsys_instance, tmp_path):
    inst = mailsys_instance
    ca = trustme.CA()
    pem = tmp_path / "cert.pem"
    ca.issue_cert("mx.example.test").private_key_and_cert_chain_pem.write_to_path(str(pem))
    peer = MilterPeer()
    sink = sinks.SmtpSink()
    with sinks.SinkThread(sink) as sink_port, peer.running() as milter_port:
        port = start(inst, sink_port, smtpd_milters=f"inet:127.0.0.1:{milter_port}",
                     smtpd_tls_security_level="may", smtpd_tls_cert_file=str(pem))
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        ctx.check_hostname = False
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.ehlo("client.example")
            assert peer.macros(b"H") == {}
            s.starttls(context=ctx)
            s.ehlo("client.example")
            version, cipher = s.sock.version(), s.sock.cipher()
    assert peer.macros(b"H") == {"{tls_version}": version, "{cipher}": cipher[0],
                                 "{cipher_bits}": str(cipher[2])}


@pytest.mark.parametrize("action, reply", [
    ("tempfail", (454, b"4.3.0 Try again later")),
    ("reject", (550, b"5.5.0 Service unavailable")),
])
def test_starttls_and_auth_get_the_refusal_a_failed_milter_stands_by(
        mailsys_instance, tmp_path, action, reply):
    # smtpd.c starttls_cmd() and smtpd_sasl_proto.c ask milter_other_event()
    # before they act: a 5xx as the milter gave it, a 4xx as "454 4.3.0 Try
    # again later" ("Sendmail compatibility").
    inst = mailsys_instance
    ca = trustme.CA()
    pem = tmp_path / "cert.pem"
    ca.issue_cert("mx.example.test").private_key_and_cert_chain_pem.write_to_path(str(pem))
    (tmp_path / "sasl_users").write_text("")
    down = inst.free_port()
    port = h.start(inst, {"smtpd_milters": f"inet:127.0.0.1:{down}",
                          "milter_default_action": action,
                          "smtpd_tls_security_level": "may", "smtpd_tls_cert_file": str(pem),
                          "smtpd_sasl_auth_enable": "yes",
                          "smtpd_sasl_users_file": str(tmp_path / "sasl_users")})
    code, text = reply
    expected = b"%d %s" % (code, text)
    with h.Raw(port) as raw:
        raw.reply()                     # 554 for "reject", and the session goes on
        raw.send(b"EHLO client.example\r\n")
        ehlo = b"".join(iter(raw.line, b"250 CHUNKING\r\n"))
        assert b"250-STARTTLS" in ehlo and b"250-AUTH" in ehlo
        raw.send(b"STARTTLS\r\n")
        assert raw.reply() == expected
        raw.send(b"AUTH PLAIN AGEAYg==\r\n")
        assert raw.reply() == expected


def test_smtpd_milter_maps_choose_the_milters_per_client(mailsys_instance):
    # Postfix 3.2's smtpd_milter_maps: the client address looked up, the
    # answer used instead of smtpd_milters; DISABLE means none.
    inst = mailsys_instance
    down = inst.free_port()
    peer = MilterPeer(rcpt={"reject@example.com": "r"})
    table = inst.root / "milters.cidr"
    sink = sinks.SmtpSink()
    with sinks.SinkThread(sink) as sink_port, peer.running() as milter_port:
        table.write_text(f"127.0.0.1/32 inet:127.0.0.1:{milter_port}\n")
        port = start(inst, sink_port, smtpd_milter_maps=f"cidr:{table}",
                     smtpd_milters=f"inet:127.0.0.1:{down}")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.ehlo("client.example")
            assert s.mail("a@example.org")[0] == 250
            assert s.rcpt("reject@example.com") == (550, b"5.7.1 Command rejected")
        inst.stop()
        table.write_text("127.0.0.1/32 DISABLE\n")
        inst.start()
        inst.wait_until(lambda: h.listening(port))
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.ehlo("client.example")
            assert s.mail("a@example.org")[0] == 250
            assert s.rcpt("reject@example.com")[0] == 250
    assert f"inet:127.0.0.1:{down}" not in inst.log_text()
    assert peer.connections == 2         # the probe's and the first session's


def test_milter_down_with_quarantine_holds_the_message(mailsys_instance):
    # Postfix 3.7.11, seen live: "milter-hold: ... milter triggers HOLD
    # action" at each command from CONNECT to DATA, none at end of message,
    # and the message in the hold queue.
    inst = mailsys_instance
    down = inst.free_port()
    sink = sinks.SmtpSink()
    with sinks.SinkThread(sink) as sink_port:
        port = start(inst, sink_port, smtpd_milters=f"inet:127.0.0.1:{down}",
                     milter_default_action="quarantine")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.ehlo("client.example")
            s.mail("a@example.org")
            s.rcpt("b@example.com")
            qid = h.qid_of(s.data(b"Subject: held\r\n\r\nwait\r\n")[1])
        log = inst.wait_log(f"{qid}: message-id=")
        mailq = inst.cli("postqueue", "-p").stdout
    for command, tail in (("CONNECT", "proto=SMTP"), ("EHLO", "proto=SMTP helo=<client.example>"),
                          ("MAIL", "from=<a@example.org> proto=ESMTP helo=<client.example>"),
                          ("RCPT", "from=<a@example.org> to=<b@example.com> proto=ESMTP "
                                   "helo=<client.example>")):
        assert (f"NOQUEUE: milter-hold: {command} from localhost[127.0.0.1]: milter triggers "
                f"HOLD action; {tail}\n") in log, command
    assert (f"{qid}: milter-hold: DATA from localhost[127.0.0.1]: milter triggers HOLD action; "
            "from=<a@example.org> to=<b@example.com> proto=ESMTP helo=<client.example>\n") in log
    assert "END-OF-MESSAGE" not in log
    assert f"{qid}!" in mailq and sink.messages == []


def test_xclient_starts_a_new_milter_conversation_about_the_new_client(mailsys_instance):
    # Postfix 3.7.11, seen live: QUIT to the milter, a new connection and
    # SMFIC_CONNECT naming the client XCLIENT gave.
    inst = mailsys_instance
    peer = MilterPeer()
    sink = sinks.SmtpSink()
    with sinks.SinkThread(sink) as sink_port, peer.running() as milter_port:
        port = start(inst, sink_port, smtpd_milters=f"inet:127.0.0.1:{milter_port}",
                     smtpd_authorized_xclient_hosts="127.0.0.1")
        # The readiness probe's own milter conversation is over first.
        inst.wait_until(lambda: (b"Q", b"") in peer.seen)
        replies = dialog(port, "EHLO client.example",
                         "XCLIENT NAME=mail.example.net ADDR=192.0.2.7 PORT=1234",
                         "EHLO client2.example", "MAIL FROM:<a@example.org>", "QUIT")
    assert replies[2].startswith("220 ") and replies[4] == "250 2.1.0 Ok"
    codes = [code for code, _ in peer.seen]
    last = len(codes) - 1 - codes[::-1].index(b"C")
    assert peer.seen[last][1] == b"mail.example.net\x004\x04\xd2192.0.2.7\x00"
    # The session's first conversation (about localhost[127.0.0.1], after
    # the EHLO) ended with QUIT, a new one was negotiated.
    previous = last - 1 - codes[:last][::-1].index(b"C")
    assert peer.seen[previous][1].startswith(b"localhost\x004")
    assert (b"H", b"client.example\x00") in peer.seen[previous:last]
    # The peer records each connection from its own thread, so the old
    # conversation's QUIT may be recorded among the new one's packets.
    assert b"Q" in codes[previous:]
    assert [c for c in codes[previous:last] if c != b"Q"][-2:] == [b"O", b"D"]
    assert peer.macros(b"C")["_"] == "mail.example.net [192.0.2.7]"
    assert (b"H", b"client2.example\x00") in peer.seen


def test_milters_see_the_header_as_cleanup_wrote_it(mailsys_instance):
    # Postfix's cleanup runs the header, body and end-of-message events
    # after it wrote the message: the milter sees header_checks' PREPEND
    # and REPLACE, From: as masquerading rewrote it, the Message-Id: and
    # Date: cleanup added, and not cleanup's own Received: header.
    inst = mailsys_instance
    table = inst.root / "header_checks"
    table.write_text("/^Subject:/ PREPEND X-Checked: yes\n/^X-Old:/ REPLACE X-New: replaced\n")
    peer = MilterPeer(eom_add=[("X-Milter", "seen")])
    sink = sinks.SmtpSink()
    with sinks.SinkThread(sink) as sink_port, peer.running() as milter_port:
        port = start(inst, sink_port, smtpd_milters=f"inet:127.0.0.1:{milter_port}",
                     header_checks=f"regexp:{table}", masquerade_domains="example.org")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.ehlo("client.example")
            s.mail("a@mail.example.org")
            s.rcpt("b@example.com")
            code, _ = s.data(b"Subject: s\r\nX-Old: o\r\nFrom: A <a@mail.example.org>\r\n\r\nbody\r\n")
            assert code == 250, inst.log_text()
        inst.wait_until(lambda: len(sink.messages) == 1, timeout=20)
    seen = peer.headers()
    assert [name for name, _ in seen] == ["X-Checked", "Subject", "X-New", "From", "Message-Id",
                                          "Date"], seen
    assert seen[0][1] == "yes" and seen[2][1] == "replaced" and seen[3][1] == "A <a@example.org>"
    [msg] = sink.messages
    head = msg.data.split(b"\r\n\r\n", 1)[0]
    assert head.startswith(b"Received: from client.example")
    assert re.search(rb"\r\nX-Checked: yes\r\nSubject: s\r\nX-New: replaced\r\n"
                     rb"From: A <a@example.org>\r\nMessage-Id: <[^>]+>\r\nDate: [^\r]+\r\n"
                     rb"X-Milter: seen$", head), head
    # The message reaches the milter once: smtpd sends it nothing of it.
    assert [code for code, _ in peer.seen].count(b"E") == 1


@pytest.mark.parametrize("eom,action,reply", [
    ("sleep3", "tempfail", (451, b"4.7.1 Service unavailable - try again later")),
    ("close", "accept", None)])
def test_milter_failing_in_cleanup_gets_its_default_action(mailsys_instance, eom, action, reply):
    # A milter that times out or hangs up at end of message, now talking to
    # cleanup: logged, and answered with milter_default_action as before.
    # smtpd finds it gone at the next MAIL, as Postfix 3.7.11 does (seen
    # live: cleanup shuts the connection down).
    inst = mailsys_instance
    peer = MilterPeer(eom=eom)
    sink = sinks.SmtpSink()
    with sinks.SinkThread(sink) as sink_port, peer.running() as milter_port:
        port = start(inst, sink_port, smtpd_milters=f"inet:127.0.0.1:{milter_port}",
                     milter_default_action=action, milter_content_timeout="1s")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.ehlo("client.example")
            s.mail("a@example.org")
            s.rcpt("b@example.com")
            got = s.data(b"Subject: one\r\n\r\nbody\r\n")
            if reply is None:
                assert got[0] == 250, inst.log_text()
            else:
                assert got == reply, inst.log_text()
            s.rset()
            peer.eom = "c"
            assert s.mail("a@example.org")[0] == (250 if reply is None else 451)
        # The listening probe logged a "disconnect from" first: wait for this one.
        log = inst.wait_log("can't read SMFIC_MAIL reply packet header", timeout=10)
    why = "Connection timed out" if eom.startswith("sleep") else "Application error"
    assert re.search(rf"mailsys/cleanup\[\d+\]: warning: milter inet:127\.0\.0\.1:{milter_port}: "
                     rf"can't read SMFIC_BODYEOB reply packet header: {why}\n", log), log
    assert re.search(rf"mailsys/smtpd\[\d+\]: warning: milter inet:127\.0\.0\.1:{milter_port}: "
                     r"can't read SMFIC_MAIL reply packet header: Broken pipe\n", log), log
    if reply is not None:
        assert re.search(r"mailsys/cleanup\[\d+\]: \w+: milter-reject: END-OF-MESSAGE from "
                         r"localhost\[127\.0\.0\.1\]: 4\.7\.1 Service unavailable - try again "
                         r"later; from=<a@example\.org> to=<b@example\.com>", log), log


def test_milter_recipient_changes_meet_address_rewriting(mailsys_instance):
    # Postfix's cleanup_milter.c: a recipient a milter deletes is matched
    # by the address it was received as (virtual aliasing came after the
    # milter saw it); one it adds is rewritten and expanded as received
    # ones are (cleanup_addr_bcc_dsn()), a new sender as the envelope's.
    inst = mailsys_instance
    table = inst.root / "virtual"
    table.write_text("/^change@example\\.com$/ other@example.com\n"
                     "/^changed@example\\.com$/ final@example.com\n")
    canonical = inst.root / "sender_canonical"
    canonical.write_text("/^new@inside\\.test$/ new@example.org\n")
    peer = MilterPeer(eom_swap_rcpt=("change@example.com", "changed@example.com"),
                      eom_from="new@inside.test")
    sink = sinks.SmtpSink()
    with sinks.SinkThread(sink) as sink_port, peer.running() as milter_port:
        port = start(inst, sink_port, smtpd_milters=f"inet:127.0.0.1:{milter_port}",
                     virtual_alias_maps=f"regexp:{table}",
                     sender_canonical_maps=f"regexp:{canonical}")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.ehlo("client.example")
            s.mail("a@example.org")
            s.rcpt("change@example.com")
            s.rcpt("b@example.com")
            assert s.data(b"Subject: r\r\n\r\nbody\r\n")[0] == 250, inst.log_text()
        inst.wait_until(lambda: len(sink.messages) == 1, timeout=20)
    [msg] = sink.messages
    assert sorted(msg.rcpts) == ["b@example.com", "final@example.com"]
    assert msg.sender == "new@example.org"
    assert "orig_to=<changed@example.com>" in inst.wait_log("final@example.com", timeout=10)
