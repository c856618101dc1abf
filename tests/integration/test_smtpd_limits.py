"""smtpd limits through a real master: each trips at exactly its configured value."""

from __future__ import annotations

import runpy
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.integration

h = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("smtpd_helpers.py"))))
HOST = "mx.example.test"
MAIL = b"EHLO c.example\r\nMAIL FROM:<a@example.org>\r\n"


@pytest.fixture(autouse=True)
def _show_log(mailsys_instance):
    yield
    print(mailsys_instance.log_text())


def test_message_size_limit_boundary(mailsys_instance):
    inst = mailsys_instance
    port = h.start(inst, {"message_size_limit": "2000"})
    exact = b"Subject: x\r\n\r\n" + b"y" * (2000 - 14 - 2) + b"\r\n"
    assert len(exact) == 2000
    with h.session(port) as s:
        s.ehlo("c.example")
        assert s.mail("a@example.org", ["SIZE=2000"]) == (250, b"2.1.0 Ok")
        s.rset()
        assert s.mail("a@example.org", ["SIZE=2001"]) == (552, b"5.3.4 Message size exceeds fixed limit")
        s.mail("a@example.org")
        s.rcpt("bob@example.test")
        code, reply = s.data(exact)
        assert code == 250, reply
        s.mail("a@example.org")
        s.rcpt("bob@example.test")
        assert s.data(exact + b"z") == (552, b"5.3.4 Error: message file too big")
    inst.wait_log("NOQUEUE: reject: MAIL from localhost[127.0.0.1]: 552 5.3.4 Message size exceeds "
                  "fixed limit; from=<a@example.org> proto=ESMTP helo=<c.example>")
    log = inst.wait_log(": queue file size limit exceeded")
    [line] = [l for l in log.splitlines() if "queue file size limit exceeded" in l]
    assert line.split("]: ", 1)[1].startswith("warning: ") and line.count(":") >= 4
    entries = h.all_entries(inst)
    assert [q for q, _ in entries] == [h.qid_of(reply)]


def test_recipient_limit_overshoot_counts_errors(mailsys_instance):
    inst = mailsys_instance
    port = h.start(inst, {"smtpd_recipient_limit": "2", "smtpd_recipient_overshoot_limit": "1",
                          "smtpd_hard_error_limit": "2"})
    with h.Raw(port) as c:
        c.reply()
        c.send(MAIL + b"".join(b"RCPT TO:<r%d@example.test>\r\n" % i for i in range(5)))
        replies = [c.reply() for _ in range(8)]
        assert c.line() == b""
    too_many = b"452 4.5.3 Error: too many recipients"
    assert replies[2:] == [b"250 2.1.5 Ok", b"250 2.1.5 Ok", too_many, too_many, too_many,
                           b"421 4.7.0 mx.example.test Error: too many errors"]
    inst.wait_log("too many errors after RCPT from localhost[127.0.0.1]")
    inst.wait_log("disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=3/5 commands=5/7")
    assert "reject: RCPT" not in inst.log_text()


def test_soft_error_limit_delays_replies(mailsys_instance):
    inst = mailsys_instance
    port = h.start(inst, {"smtpd_soft_error_limit": "2", "smtpd_error_sleep_time": "1s"})
    took = []
    with h.Raw(port) as c:
        c.reply()
        for _ in range(3):
            t0 = time.monotonic()
            c.send(b"BOGUS\r\n")
            assert c.reply() == b"500 5.5.2 Error: command not recognized"
            took.append(time.monotonic() - t0)
        t0 = time.monotonic()
        c.send(b"NOOP\r\n")
        assert c.reply() == b"250 2.0.0 Ok"
        took.append(time.monotonic() - t0)
    assert took[0] < 0.5 and took[1] < 0.5, took
    # From the soft limit on, every reply waits (smtpd_chat.c: sleep-on-anything).
    assert 0.9 < took[2] < 3 and 0.9 < took[3] < 3, took


def test_command_line_length_limit(mailsys_instance):
    inst = mailsys_instance
    port = h.start(inst, {"line_length_limit": "100"})
    with h.Raw(port) as c:
        c.reply()
        c.send(b"NOOP " + b"x" * 95 + b"\r\n")
        assert c.reply() == b"250 2.0.0 Ok"
        # Cut at the limit and run, as Postfix 3.7.11 does, with its warning.
        c.send(b"NOOP " + b"x" * 96 + b"\r\n")
        assert c.reply() == b"250 2.0.0 Ok"
        c.send(b"NOOP\r\n")
        assert c.reply() == b"250 2.0.0 Ok"
    log = inst.wait_log("request longer than 100")
    assert "warning: localhost[127.0.0.1]: request longer than 100: NOOP xxxxxxxxxxxxxxxxxxxxxxxxx..." \
        in log


def test_header_size_limit_cuts_the_header(mailsys_instance):
    inst = mailsys_instance
    port = h.start(inst, {"header_size_limit": "300"})
    folded = b"Subject: start\r\n" + b"".join(b" part%03d %s\r\n" % (i, b"w" * 40) for i in range(20))
    with h.session(port) as s:
        s.ehlo("c.example")
        s.mail("a@example.org")
        s.rcpt("bob@example.test")
        code, reply = s.data(folded + b"X-After: kept\r\n\r\nbody\r\n")
        assert code == 250
    _, _, content = h.queued(inst, h.qid_of(reply))
    header, body = content.split(b"\r\n\r\n", 1)
    subject = header[header.index(b"Subject:"):header.index(b"X-After:")]
    # Lines are kept while the header is below the limit: 14 + 5 * 50 < 300 <= 14 + 6 * 50.
    assert subject == folded[:16 + 6 * 51]
    assert subject.endswith(b" part005 " + b"w" * 40 + b"\r\n")
    assert b"X-After: kept" in header and body == b"body\r\n"


def test_helo_required(mailsys_instance):
    inst = mailsys_instance
    port = h.start(inst, {"smtpd_helo_required": "yes"})
    with h.session(port) as s:
        assert s.docmd("MAIL FROM:<a@example.org>") == (503, b"5.5.1 Error: send HELO/EHLO first")
        s.helo("c.example")
        assert s.mail("a@example.org") == (250, b"2.1.0 Ok")


SMUGGLE = (b"Subject: one\r\n\r\nfirst\n.\nMAIL FROM:<evil@example.org>\nRCPT TO:<victim@example.test>\n"
           b"DATA\nsmuggled\n.\n\r.\rRSET\r\r\n.\nNOOP\r\n.\rQUIT\r\n")


@pytest.mark.parametrize("mode", ["normalize", "reject", "no"])
def test_smuggling_through_the_stack_never_makes_two_messages(mailsys_instance, mode):
    inst = mailsys_instance
    port = h.start(inst, {"smtpd_forbid_bare_newline": mode,
                          "smtpd_forbid_bare_newline_exclusions": ""})
    with h.Raw(port) as c:
        c.reply()
        c.send(MAIL + b"RCPT TO:<bob@example.test>\r\nDATA\r\n")
        assert [c.reply()[:3] for _ in range(4)] == [b"250", b"250", b"250", b"354"]
        c.send(SMUGGLE + b".\r\n")
        final = c.reply()
        c.send(b"NOOP\r\n")
        assert c.reply() == b"250 2.0.0 Ok"
    entries = h.all_entries(inst) if mode != "reject" else None
    if mode == "reject":
        assert final == f"550 5.5.2 {HOST} Error: bare <LF> received".encode()
        log = inst.wait_log(": reject: END-OF-MESSAGE from localhost[127.0.0.1]: bare <LF> received; "
                            "from=<a@example.org> to=<bob@example.test> proto=ESMTP helo=<c.example>")
        assert "NOQUEUE: reject: END-OF-MESSAGE" not in log
        assert h.all_entries(inst) == []
        return
    assert final.startswith(b"250 2.0.0 Ok: queued as ")
    [(qid, content)] = entries
    assert qid == h.qid_of(final)
    body = content.split(b"\r\n\r\n", 1)[1]
    if mode == "normalize":
        assert body == (b"first\r\n\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.test>\r\n"
                        b"DATA\r\nsmuggled\r\n\r\n\r.\rRSET\r\r\n\r\nNOOP\r\n\rQUIT\r\n")
    else:       # only dots after CRLF are unstuffed; cleanup stores bare LF as CRLF
        assert body == (b"first\r\n.\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.test>\r\n"
                        b"DATA\r\nsmuggled\r\n.\r\n\r.\rRSET\r\r\n\r\nNOOP\r\n\rQUIT\r\n")


def test_bare_newline_exclusions_default_to_mynetworks(mailsys_instance):
    inst = mailsys_instance
    port = h.start(inst, {"smtpd_forbid_bare_newline": "reject"})     # 127.0.0.1 is in mynetworks
    with h.session(port) as s:
        s.ehlo("c.example")
        s.mail("a@example.org")
        s.rcpt("bob@example.test")
        s.send(b"DATA\r\n")
        assert s.getreply()[0] == 354
        s.send(b"Subject: x\r\n\r\nbare\nline\r\n.\r\n")
        code, reply = s.getreply()
        assert code == 250, reply
    _, _, content = h.queued(inst, h.qid_of(reply))
    assert content.endswith(b"\r\n\r\nbare\r\nline\r\n")      # stored with CRLF


def test_full_queue_answers_452_at_the_end_of_data_and_keeps_nothing(mailsys_instance):
    """cleanup finds the queue full (queue_minfree beyond the free space, set for cleanup
    only so that smtpd's own check at MAIL passes): 452, the session goes on."""
    inst = mailsys_instance
    port = h.start(inst, services=[f"cleanup unix - - n - 0 cleanup -o queue_minfree={1 << 60}",
                                   "anvil unix - - n - 1 anvil"])
    with h.session(port) as s:
        s.ehlo("c.example")
        s.mail("a@example.org")
        s.rcpt("bob@example.test")
        assert s.data(h.MESSAGE) == (452, b"4.3.1 Insufficient system storage")
        assert s.noop()[0] == 250
        s.mail("a@example.org")
        assert s.rcpt("bob@example.test")[0] == 250
    inst.wait_log("less than queue_minfree")
    assert h.all_entries(inst) == []


def test_queue_space_is_checked_at_mail(mailsys_instance):
    inst = mailsys_instance
    port = h.start(inst, {"queue_minfree": str(1 << 60)})
    with h.session(port) as s:
        s.ehlo("c.example")
        assert s.mail("a@example.org") == (452, b"4.3.1 Insufficient system storage")
    inst.wait_log("NOQUEUE: reject: MAIL from localhost[127.0.0.1]: 452 4.3.1 Insufficient system storage; "
                  "from=<a@example.org> proto=ESMTP helo=<c.example>")
    inst.stop()
    inst.write_config(master_cf=[*h.SERVICES, f"127.0.0.1:{port} inet n - n - - smtpd"],
                      main_cf={"mydestination": "example.test", "message_size_limit": "0"})
    inst.start()
    inst.wait_until(lambda: h.listening(port))
    with h.session(port) as s:
        s.ehlo("c.example")
        assert s.mail("a@example.org", ["SIZE=1000"])[0] == 250
        s.rset()
        # A message as big as half the free space is refused too (smtpd_check_size).
        assert s.mail("a@example.org", [f"SIZE={1 << 62}"]) == (452, b"4.3.1 Insufficient system storage")
