"""smtpd through a real master: sessions with smtplib and swaks, queue entries, limits, failures."""

from __future__ import annotations

import contextlib
import json
import os
import re
import runpy
import shutil
import signal
import smtplib
import socket
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.integration

h = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("smtpd_helpers.py"))))
MESSAGE, SERVICES, start, queued, qid_of, session = \
    h.MESSAGE, h.SERVICES, h.start, h.queued, h.qid_of, h.session
_listening = h.listening


@pytest.fixture(autouse=True)
def _show_log(mailsys_instance):
    """mail.log goes to the captured output, which pytest shows for a failed test."""
    yield
    print(mailsys_instance.log_text())


def test_smtplib_message_is_queued_with_received_header(mailsys_instance):
    inst = mailsys_instance
    port = start(inst)
    with session(port) as s:
        code, banner = s.ehlo("client.example.org")
        assert code == 250 and b"PIPELINING" in banner and b"SIZE 10240000" in banner
        assert b"CHUNKING" in banner and b"STARTTLS" not in banner
        s.mail("alice@example.org")
        s.rcpt("bob@example.test")
        code, reply = s.data(MESSAGE)
        assert code == 250 and reply.startswith(b"2.0.0 Ok: queued as ")
    qid = qid_of(reply)
    log = inst.wait_log(f"{qid}: message-id=")
    assert "connect from localhost[127.0.0.1]" in log
    assert f"{qid}: client=localhost[127.0.0.1]" in log
    inst.wait_log("disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5")
    envelope, queue, content = queued(inst, qid)
    assert envelope.sender == "alice@example.org"
    assert [r.address for r in envelope.recipients] == ["bob@example.test"]
    assert content.startswith(b"Received: from client.example.org (localhost [127.0.0.1])")
    assert b"with ESMTP id " + qid.encode() in content
    assert content.endswith(b"line one\r\n.leading dot\r\n")


def test_pipelined_transaction_in_one_write(mailsys_instance):
    inst = mailsys_instance
    port = start(inst)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        f = sock.makefile("rb")
        assert f.readline().startswith(b"220 ")
        sock.sendall(b"EHLO c.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n"
                     b"RCPT TO:<c@example.test>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n"
                     b"MAIL FROM:<a@example.org>\r\nRCPT TO:<d@example.test>\r\nBDAT 6 LAST\r\n"
                     b"hi\r\n\r\nQUIT\r\n")
        lines = []
        while True:
            line = f.readline()
            if not line:
                break
            lines.append(line.decode().rstrip("\r\n"))
    finals = [l for l in lines if l[3:4] == " "]
    assert [l[:3] for l in finals] == ["250", "250", "250", "250", "354", "250",
                                       "250", "250", "250", "221"], lines
    assert "queued as" in finals[5] and "6 bytes queued as" in finals[8]
    # Postfix's note, client text escaped, as fail2ban's default filter reads it.
    inst.wait_log("improper command pipelining after EHLO from localhost[127.0.0.1]: "
                  "MAIL FROM:<a@example.org>\\r\\nRCPT TO:<b@example.test>\\r\\n")


def test_failed_bdat_queues_nothing(mailsys_instance):
    # Postfix 3.7.11 with the same bytes: after a refused BDAT the chunks up
    # to BDAT LAST are discarded and nothing is queued.
    inst = mailsys_instance
    port = start(inst)
    with h.Raw(port) as c:
        c.reply()
        c.send(b"EHLO c.example\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@example.test>\r\n"
               b"BDAT 0\r\nBDAT 0 LAST\r\nQUIT\r\n")
        replies = [c.reply() for _ in range(6)]
    assert replies[3:] == [b"551 5.7.1 Null BDAT request",
                           b"551 5.0.0 Discarded 0 bytes after earlier error", b"221 2.0.0 Bye"]
    log = inst.wait_log("disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=1 bdat=0/2 quit=1 "
                        "commands=4/6")
    [line] = [l for l in log.splitlines() if "null BDAT request" in l]
    assert re.search(r"\]: warning: [0-9A-Za-z]{10,}: null BDAT request from localhost\[127\.0\.0\.1\]$",
                     line), line
    assert h.all_entries(inst) == []


@pytest.mark.parametrize("utf8", ["yes", "no"])
def test_client_text_is_masked_in_mail_log_as_postfix_does(mailsys_instance, utf8):
    # Postfix 3.7.11 logged this session's rejected RCPT with
    #   smtputf8_enable = yes: from=<s\u00e9x@example.org> ... helo=<a?b?c\u00e9e?>
    #   smtputf8_enable = no:  from=<s??x@example.org> ... helo=<a?b?c??e?>
    # and mail.json keeps the client's text exactly, but for the HELO name,
    # which smtpd keeps printable() and neutered as Postfix's does.
    inst = mailsys_instance
    port = start(inst, {"smtputf8_enable": utf8, "smtpd_recipient_restrictions": "reject"})
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        f = sock.makefile("rb")
        assert f.readline().startswith(b"220 ")
        for command in ("HELO a\tb\x01c\u00e9e\x7f", "MAIL FROM:<s\u00e9x@example.org>",
                        "RCPT TO:<b@example.test>", "QUIT"):
            sock.sendall(command.encode() + b"\r\n")
            f.readline()
    shown = ("from=<s\u00e9x@example.org> to=<b@example.test> proto=SMTP helo=<a?b?c\u00e9e?>"
             if utf8 == "yes" else
             "from=<s??x@example.org> to=<b@example.test> proto=SMTP helo=<a?b?c??e?>")
    inst.wait_log("NOQUEUE: reject: RCPT from localhost[127.0.0.1]: ")
    assert shown in inst.wait_log(shown)
    records = [json.loads(line) for line in inst.log_path.with_name("mail.json").read_text().splitlines()]
    [reject] = [r for r in records if r["event"] == "reject"]
    assert reject["fields"]["helo"] == ("a?b?c\u00e9e?" if utf8 == "yes" else "a?b?c??e?")
    assert reject["fields"]["sender"] == "s\u00e9x@example.org"


@pytest.mark.parametrize("strict", ["yes", "no"])
def test_strict_smtputf8_refuses_a_unicode_address_without_smtputf8(mailsys_instance, strict):
    # Postfix 3.7.11 with strict_smtputf8 = yes (smtputf8_enable yes or no):
    #   MAIL FROM:<\u00fc@x.example>             553 5.6.7 Must declare SMTPUTF8 to send unicode address
    #   RCPT TO:<\u00fc@x.example>               553 5.6.7 Must declare SMTPUTF8 to send unicode address
    #   VRFY \u00fc@x.example                    553 5.6.7 Must declare SMTPUTF8 to send unicode address
    #   MAIL FROM:<\u00fc@x.example> SMTPUTF8    250 2.1.0 Ok, then that RCPT: 250 2.1.5 Ok
    # and logged no reject line: "disconnect from ... mail=2/3 rcpt=1/2 rset=1 quit=1".
    inst = mailsys_instance
    port = start(inst, {"strict_smtputf8": strict})
    refused = (b"553 5.6.7 Must declare SMTPUTF8 to send unicode address\r\n"
               if strict == "yes" else None)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock, sock.makefile("rb") as f:
        assert f.readline().startswith(b"220 ")
        sock.sendall(b"EHLO c.example\r\n")
        while f.readline()[3:4] == b"-":
            pass
        for command, reply in (("MAIL FROM:<\u00fc@x.example>", refused or b"250 2.1.0"),
                               ("RSET", b"250 "), ("MAIL FROM:<a@x.example>", b"250 2.1.0"),
                               ("RCPT TO:<\u00fc@example.test>", refused or b"250 2.1.5"),
                               ("RSET", b"250 "),
                               ("VRFY \u00fc@x.example", refused or b"252 2.0.0"),
                               ("MAIL FROM:<\u00fc@x.example> SMTPUTF8", b"250 2.1.0"),
                               ("RCPT TO:<\u00fc@example.test>", b"250 2.1.5"), ("QUIT", b"221 ")):
            sock.sendall(command.encode() + b"\r\n")
            assert f.readline().startswith(reply), command
    counts = ("mail=2/3 rcpt=1/2 rset=2 vrfy=0/1" if strict == "yes"
              else "mail=3 rcpt=2 rset=2 vrfy=1")
    log = inst.wait_log(f"ehlo=1 {counts} quit=1")
    assert "reject:" not in log


def test_swaks_session(mailsys_instance):
    swaks = shutil.which("swaks")
    if swaks is None:
        pytest.skip("swaks is not installed")
    inst = mailsys_instance
    port = start(inst)
    out = subprocess.run([swaks, "--server", "127.0.0.1", "--port", str(port), "--from",
                          "alice@example.org", "--to", "bob@example.test", "--helo", "swaks.example",
                          "--pipeline"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "250 2.0.0 Ok: queued as " in out.stdout
    qid = out.stdout.split("250 2.0.0 Ok: queued as ")[1].split()[0]
    envelope, _, content = queued(inst, qid)
    assert envelope.helo == "swaks.example"
    assert b"from swaks.example (localhost [127.0.0.1])" in content


def test_relay_denied_for_client_outside_mynetworks(mailsys_instance):
    inst = mailsys_instance
    port = start(inst, {"mynetworks": "192.0.2.0/24"})
    with session(port) as s:
        s.ehlo("spammer.example")
        s.mail("spam@spammer.example")
        code, text = s.rcpt("r@remote.example")
        assert (code, text) == (454, b"4.7.1 <r@remote.example>: Relay access denied")
        assert s.rcpt("bob@example.test")[0] == 250
    inst.wait_log("NOQUEUE: reject: RCPT from localhost[127.0.0.1]: 454 4.7.1 <r@remote.example>: "
                  "Relay access denied; from=<spam@spammer.example> to=<r@remote.example> "
                  "proto=ESMTP helo=<spammer.example>")


def test_unknown_local_user(mailsys_instance):
    inst = mailsys_instance
    port = start(inst, {"local_recipient_maps": "inline:{bob=x}"})
    with session(port) as s:
        s.ehlo("c.example")
        s.mail("a@example.org")
        code, text = s.rcpt("nobody@example.test")
        assert code == 550 and text.startswith(b"5.1.1 <nobody@example.test>: Recipient address "
                                               b"rejected: User unknown in local recipient table")
        assert s.rcpt("bob@example.test")[0] == 250


def test_message_size_limit(mailsys_instance):
    inst = mailsys_instance
    port = start(inst, {"message_size_limit": "2000"})
    with session(port) as s:
        s.ehlo("c.example")
        assert s.mail("a@example.org", ["SIZE=5000"]) == (552, b"5.3.4 Message size exceeds fixed limit")
        s.mail("a@example.org")
        s.rcpt("bob@example.test")
        code, text = s.data(b"Subject: big\r\n\r\n" + b"x" * 70 + b"\r\n" * 0 + (b"y" * 78 + b"\r\n") * 40)
        assert (code, text) == (552, b"5.3.4 Error: message file too big")
        assert s.noop()[0] == 250
        s.mail("a@example.org")
        s.rcpt("bob@example.test")
        assert s.data(MESSAGE)[0] == 250
    inst.wait_log("queue file size limit exceeded")


def test_message_over_the_spool_size_is_stored_whole(mailsys_instance):
    # Over smtpd_session.SPOOL_OVER (1 MB) the content waits in an unnamed
    # file in the queue directory; it must reach the queue byte for byte,
    # sent with DATA and with BDAT, and leave no file behind.
    inst = mailsys_instance
    port = start(inst)
    body = b"".join(b"line %06d " % i + b"z" * 60 + b"\r\n" for i in range(20_000))
    assert len(body) > 1024 * 1024
    with session(port) as s:
        s.ehlo("c.example")
        s.mail("a@example.org")
        s.rcpt("bob@example.test")
        code, reply = s.data(b"Subject: big\r\n\r\n" + body)
        assert code == 250
        s.mail("a@example.org")
        s.rcpt("bob@example.test")
        half = len(body) // 2
        s.putcmd(f"BDAT {half}")
        s.send(body[:half])
        assert s.getreply()[0] == 250
        s.putcmd(f"BDAT {len(body) - half} LAST")
        s.send(body[half:])
        code, bdat_reply = s.getreply()
        assert code == 250
    for r in (reply, bdat_reply):
        _, _, content = queued(inst, qid_of(r))
        assert content.endswith(body)       # after the headers cleanup added
    assert [p.name for p in inst.queue_dir.iterdir() if not p.is_dir()] == []


def test_recipient_limit(mailsys_instance):
    inst = mailsys_instance
    port = start(inst, {"smtpd_recipient_limit": "2"})
    with session(port) as s:
        s.ehlo("c.example")
        s.mail("a@example.org")
        assert s.rcpt("b1@example.test")[0] == 250
        assert s.rcpt("b2@example.test")[0] == 250
        assert s.rcpt("b3@example.test") == (452, b"4.5.3 Error: too many recipients")
        code, reply = s.data(MESSAGE)
    envelope, _, _ = queued(inst, qid_of(reply))
    assert [r.address for r in envelope.recipients] == ["b1@example.test", "b2@example.test"]


def test_hard_error_limit(mailsys_instance):
    inst = mailsys_instance
    port = start(inst, {"smtpd_hard_error_limit": "3"})
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(b"BOGUS\r\nBOGUS\r\nBOGUS\r\nNOOP\r\n")
        lines = [f.readline() for _ in range(4)]
        assert f.readline() == b""
    assert [l[:3] for l in lines] == [b"500", b"500", b"500", b"421"]
    assert lines[3] == b"421 4.7.0 mx.example.test Error: too many errors\r\n"
    inst.wait_log("too many errors after UNKNOWN from localhost[127.0.0.1]")


def test_smtpd_timeout(mailsys_instance):
    inst = mailsys_instance
    port = start(inst, {"smtpd_timeout": "1s"})
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(b"EHLO c.example\r\n")
        while f.readline()[3:4] != b" ":
            pass
        t0 = time.monotonic()
        assert f.readline() == b"421 4.4.2 mx.example.test Error: timeout exceeded\r\n"
        assert 0.5 < time.monotonic() - t0 < 5
        assert f.readline() == b""
    inst.wait_log("timeout after EHLO from localhost[127.0.0.1]")


def test_smtpd_per_request_deadline_cuts_off_a_trickled_command_line(mailsys_instance):
    # Postfix 3.7, smtpd_timeout = 3s: a byte every half second got
    # "421 4.4.2 ... Error: timeout exceeded" after 3.5 s and
    # "timeout after CONNECT from unknown[127.0.0.1]".
    inst = mailsys_instance
    port = start(inst, {"smtpd_timeout": "2s", "smtpd_per_request_deadline": "yes"})
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        f = sock.makefile("rb")
        f.readline()
        t0 = time.monotonic()
        sock.setblocking(False)
        try:
            for byte in b"EHLO " + b"x" * 20:
                sock.send(bytes([byte]))
                time.sleep(0.4)
                with contextlib.suppress(BlockingIOError):
                    if sock.recv(1, socket.MSG_PEEK):
                        break
        finally:
            sock.settimeout(10)
        assert f.readline() == b"421 4.4.2 mx.example.test Error: timeout exceeded\r\n"
        assert 1.5 < time.monotonic() - t0 < 4
    inst.wait_log("timeout after CONNECT from localhost[127.0.0.1]")


def test_connection_count_limit(mailsys_instance):
    inst = mailsys_instance
    port = start(inst, {"smtpd_client_connection_count_limit": "1",
                        "smtpd_client_event_limit_exceptions": ""})
    inst.wait_log("disconnect from")        # start()'s probe is no longer counted
    first = session(port)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            f = sock.makefile("rb")
            assert f.readline() == b"421 4.7.0 mx.example.test Error: too many connections from 127.0.0.1\r\n"
            assert f.readline() == b""
    finally:
        first.quit()
    inst.wait_log("warning: Connection concurrency limit exceeded: 2 from localhost[127.0.0.1] for service")


def test_cleanup_down_gives_451_and_session_goes_on(mailsys_instance):
    inst = mailsys_instance
    port = start(inst, services=["anvil unix - - n - 1 anvil"])
    with session(port) as s:
        s.ehlo("c.example")
        s.mail("a@example.org")
        s.rcpt("bob@example.test")
        assert s.data(MESSAGE) == (451, b"4.3.0 Error: queue file write error")
        assert s.noop()[0] == 250
        s.mail("a@example.org")
        assert s.rcpt("bob@example.test")[0] == 250


@pytest.mark.parametrize("victim", ["smtpd", "cleanup", "all"])
def test_kill_after_250_keeps_message(mailsys_instance, victim):
    inst = mailsys_instance
    port = start(inst)
    s = session(port)
    s.ehlo("c.example")
    s.mail("a@example.org")
    s.rcpt("bob@example.test")
    code, reply = s.data(MESSAGE)
    assert code == 250
    if victim == "all":                         # the master first, so nothing is restarted
        killed = [inst.master_pid()] + [p.pid for p in inst.children()]
    else:
        killed = [p.pid for p in inst.children(f"127.0.0.1:{port}" if victim == "smtpd" else victim)]
    assert killed
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    s.close()
    envelope, _, content = queued(inst, qid_of(reply))
    assert envelope.recipients[0].address == "bob@example.test"
    assert content.endswith(b".leading dot\r\n")


def test_shipped_smtp_and_submission_entries(mailsys_instance):
    """etc/master.cf's smtpd entries as shipped (no certificate), on free ports."""
    inst = mailsys_instance
    smtp_port, submission_port = inst.free_port(), inst.free_port()
    entries = h.shipped_smtpd_entries(smtp_port, submission_port)
    inst.write_config(master_cf=[*SERVICES, *entries],
                      main_cf={"mydestination": "$myhostname, localhost", "local_recipient_maps": ""})
    inst.start()
    inst.wait_until(lambda: _listening(smtp_port) and _listening(submission_port))
    with session(smtp_port) as s:
        s.ehlo("c.example")
        s.mail("a@example.org")
        assert s.rcpt("postmaster@mx.example.test")[0] == 250
        assert s.data(MESSAGE)[0] == 250
    with session(submission_port) as s:
        s.ehlo("c.example")
        assert s.has_extn("starttls") and not s.has_extn("auth")
        assert s.mail("a@example.org") == (530, b"5.7.0 Must issue a STARTTLS command first")
        assert s.docmd("STARTTLS") == (454, b"4.7.0 TLS not available due to local problem")
    inst.wait_log("mailsys/submission/smtpd[")


def test_anvil_down_mail_still_flows(mailsys_instance):
    inst = mailsys_instance
    port = start(inst, {"smtpd_client_event_limit_exceptions": "",
                        "smtpd_client_message_rate_limit": "5"},
                 services=["cleanup unix - - n - 0 cleanup"])
    with session(port) as s:
        s.ehlo("c.example")
        s.mail("a@example.org")
        s.rcpt("bob@example.test")
        assert s.data(MESSAGE)[0] == 250
    inst.wait_log("warning: problem talking to server private/anvil: ")


def test_receive_log_lines_are_postfix_lines(mailsys_instance):
    """Each line, tag aside, is byte for byte what Postfix writes; pflogsumm's and fail2ban's
    patterns find them under syslog_name = postfix."""
    inst = mailsys_instance
    port = start(inst, {"syslog_name": "postfix", "mynetworks": "192.0.2.0/24"})
    inst.wait_log("disconnect from")                      # start()'s probe
    probe_end = len(inst.log_text().splitlines())
    with session(port) as s:
        s.ehlo("client.example.org")
        s.mail("alice@example.com")
        s.rcpt("carol@remote.example")
        s.rcpt("bob@example.test")
        code, reply = s.data(b"Message-ID: <20240101.1@client.example.org>\r\nSubject: s\r\n\r\nhi\r\n")
    qid = qid_of(reply)
    inst.wait_log(f"{qid}: message-id=")
    lines = inst.wait_log("commands=5/6").splitlines()[probe_end:]
    prefix = re.compile(r"^[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d mx postfix/(smtpd|cleanup)\[\d+\]: ")
    assert all(prefix.match(line) for line in lines), lines
    got = sorted(prefix.sub(r"\1: ", line) for line in lines)
    assert got == sorted([
        "smtpd: connect from localhost[127.0.0.1]",
        "smtpd: NOQUEUE: reject: RCPT from localhost[127.0.0.1]: 454 4.7.1 <carol@remote.example>: "
        "Relay access denied; from=<alice@example.com> to=<carol@remote.example> proto=ESMTP "
        "helo=<client.example.org>",
        f"smtpd: {qid}: client=localhost[127.0.0.1]",
        f"cleanup: {qid}: message-id=<20240101.1@client.example.org>",
        "smtpd: disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=1/2 data=1 quit=1 commands=5/6",
    ])
    pflogsumm = re.compile(r"^(?:postfix)(?:/(?:smtps|submission))?/([^\[:]*).*?: ([^:\s]+)")
    received = [l for l in lines if pflogsumm.search(l.split(" ", 4)[4]).group(1) == "smtpd"
                and re.search(r"\[\d+\]: \w+: client=(.+?)(,|$)", l)]
    assert len(received) == 1


def test_command_filter_and_noop_commands(mailsys_instance):
    # Compared with Postfix 3.7.11: the same table and commands give the
    # same replies, log lines and disconnect statistics (XYZZY uncounted).
    inst = mailsys_instance
    table = inst.config_dir / "command_filter"
    table.write_text("/^HELO\\s*$/ HELO domain.invalid\n/^FOO(.*)/ NOOP$1\n")
    port = h.start(inst, {"smtpd_command_filter": f"regexp:{table}",
                          "smtpd_noop_commands": "XYZZY"})
    with h.Raw(port) as c:
        assert c.reply().startswith(b"220 ")
        replies = []
        for command in (b"HELO", b"XYZZY blah", b"FOO bar", b"MAIL FROM:<a@example.org>",
                        b"RCPT TO:<b@example.test>", b"QUIT"):
            c.send(command + b"\r\n")
            replies.append(c.reply())
    assert replies == [b"250 mx.example.test", b"250 2.0.0 Ok", b"250 2.0.0 Ok", b"250 2.1.0 Ok",
                       b"250 2.1.5 Ok", b"221 2.0.0 Bye"]
    inst.wait_log('localhost[127.0.0.1]: replacing command "HELO" with "HELO domain.invalid"')
    inst.wait_log('localhost[127.0.0.1]: replacing command "FOO bar" with "NOOP bar"')
    inst.wait_log("disconnect from localhost[127.0.0.1] helo=1 mail=1 rcpt=1 noop=1 quit=1 "
                  "commands=5")


def _byte_peer(lines: list[bytes]) -> int:
    """A one-session SMTP peer on loopback that keeps every line as bytes."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        conn, _ = listener.accept()
        listener.close()
        with conn, conn.makefile("rb") as f:
            conn.sendall(b"220 peer ESMTP\r\n")
            in_data = False
            while line := f.readline():
                lines.append(line)
                if in_data:
                    in_data = line != b".\r\n"
                    if not in_data:
                        conn.sendall(b"250 2.0.0 Ok: queued as PEER\r\n")
                    continue
                verb = line[:4].upper()
                in_data = verb == b"DATA"
                conn.sendall({b"EHLO": b"250-peer\r\n250 8BITMIME\r\n", b"DATA": b"354 go\r\n",
                              b"QUIT": b"221 bye\r\n"}.get(verb, b"250 ok\r\n"))

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1]


def test_eight_bit_envelope_without_smtputf8_is_relayed_byte_for_byte(mailsys_instance):
    # Postfix 3.7.11 with smtputf8_enable = no took HELO \xfc, MAIL
    # FROM:<\xfc@x.example>, RCPT TO:<\xfc@y.example> and relayed them:
    #   qmgr: 86B2F224053: from=<?@x.example>, size=299, nrcpt=1 (queue active)
    #   smtp: 86B2F224053: to=<?@y.example>, relay=127.0.0.1[127.0.0.1]:3302, ... status=sent
    inst = mailsys_instance
    seen: list[bytes] = []
    peer = _byte_peer(seen)
    port = start(inst, {"smtputf8_enable": "no", "relayhost": f"[127.0.0.1]:{peer}"},
                 services=[*SERVICES, "qmgr unix n - n 300 1 qmgr", "bounce unix - - n - 0 bounce",
                           "smtp unix - - n - - smtp"])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock, sock.makefile("rb") as f:
        assert f.readline().startswith(b"220 ")
        for command, reply in ((b"HELO \xfc", b"250 "), (b"MAIL FROM:<\xfc@x.example>", b"250 2.1.0"),
                               (b"RCPT TO:<\xfc@y.example>", b"250 2.1.5"), (b"DATA", b"354 "),
                               (b"Subject: x\r\n\r\nhi\r\n.", b"250 2.0.0 Ok: queued as"),
                               (b"QUIT", b"221 ")):
            sock.sendall(command + b"\r\n")
            assert f.readline().startswith(reply), command
    inst.wait_log("from=<?@x.example>, size=")
    inst.wait_log("to=<?@y.example>, relay=127.0.0.1[127.0.0.1]")
    assert "status=sent (250 2.0.0 Ok: queued as PEER)" in inst.wait_log("status=sent")
    assert b"MAIL FROM:<\xfc@x.example>\r\n" in seen and b"RCPT TO:<\xfc@y.example>\r\n" in seen
    # The HELO name as smtpd.c keeps it, printable(): Postfix 3.7.11 wrote
    # "Received: from ? (unknown [127.0.0.1])" for this session (postcat).
    assert b"Received: from ? (localhost [127.0.0.1])\r\n" in seen


def test_every_recipient_keeps_its_original_address_for_dsn(mailsys_instance):
    # Postfix 3.7.11's postcat for the same three RCPTs: "dsn_orig_rcpt=
    # rfc822;User@Example.NET", "...=rfc822;v@example.net", and the ORCPT
    # given, xtext-decoded, "...=rfc822;orig+w@example.net"; its smtp client
    # then sends each as "ORCPT=rfc822;..." to a server offering DSN.
    inst = mailsys_instance
    port = h.start(inst, {"mynetworks": "127.0.0.0/8"})
    with h.session(port) as s:
        s.ehlo("client.example.org")
        s.mail("a@example.org")
        s.rcpt("User@Example.NET")
        s.rcpt("v@example.net", ["NOTIFY=SUCCESS"])
        s.rcpt("w@example.net", ["ORCPT=rfc822;orig+2Bw@example.net"])
        code, reply = s.data(h.MESSAGE)
        assert code == 250
    envelope, _, _ = h.queued(inst, h.qid_of(reply))
    assert [(r.address, r.orcpt) for r in envelope.recipients] == [
        ("User@Example.NET", "rfc822;User@Example.NET"),
        ("v@example.net", "rfc822;v@example.net"),
        ("w@example.net", "rfc822;orig+w@example.net")]
