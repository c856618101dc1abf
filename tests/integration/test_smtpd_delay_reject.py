"""smtpd_delay_reject = no through a real master: the client restrictions at connect.

The replies and log lines are those a private Postfix 3.7.11 gave with
smtpd_delay_reject = no and smtpd_client_restrictions = check_client_access
with the same table, to clients bound to 127.0.0.2 ... 127.0.0.4:

    554 5.7.1 <unknown[127.0.0.2]>: Client host rejected: Access denied   (the greeting)
    HELO x -> 503 5.7.0 Error: access denied for unknown[127.0.0.2]
    QUIT   -> 221 2.0.0 Bye
    NOQUEUE: reject: CONNECT from unknown[127.0.0.2]: 554 5.7.1 <unknown[127.0.0.2]>: Client host rejected: Access denied; proto=SMTP
    disconnect from unknown[127.0.0.2] helo=0/1 quit=1 commands=1/2
"""

from __future__ import annotations

import runpy
import shutil
import socket
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

h = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("smtpd_helpers.py"))))

TABLE = "127.0.0.2 REJECT\n127.0.0.3 DEFER_IF_PERMIT\n127.0.0.4 450 4.7.1 go away later\n"


def start(inst, tmp_path, **params):
    table = tmp_path / "clients"
    table.write_text(TABLE)
    return h.start(inst, main_cf={"smtpd_peername_lookup": "no", "smtpd_delay_reject": "no",
                                  "smtpd_client_restrictions": f"check_client_access cidr:{table}",
                                  **params})


def chat(port: int, source: str, *commands: bytes) -> list[bytes]:
    """The greeting and the reply to each command, from a client bound to source."""
    with socket.create_connection(("127.0.0.1", port), timeout=10,
                                  source_address=(source, 0)) as s:
        f = s.makefile("rb")

        def reply() -> bytes:
            while True:
                line = f.readline()
                if line[3:4] != b"-":
                    return line.rstrip(b"\r\n")
        got = [reply()]
        for command in commands:
            s.sendall(command + b"\r\n")
            got.append(reply())
        return got


def test_a_refused_client_gets_the_refusal_as_its_greeting(mailsys_instance, tmp_path):
    inst = mailsys_instance
    port = start(inst, tmp_path)
    denied = b"503 5.7.0 Error: access denied for unknown[127.0.0.2]"
    assert chat(port, "127.0.0.2", b"HELO x", b"MAIL FROM:<a@example.org>", b"FOO", b"QUIT") == [
        b"554 5.7.1 <unknown[127.0.0.2]>: Client host rejected: Access denied",
        denied, denied, denied, b"221 2.0.0 Bye"]
    log = inst.wait_log("disconnect from unknown[127.0.0.2]")
    assert ("]: NOQUEUE: reject: CONNECT from unknown[127.0.0.2]: 554 5.7.1 <unknown[127.0.0.2]>: "
            "Client host rejected: Access denied; proto=SMTP\n") in log, log
    assert "disconnect from unknown[127.0.0.2] helo=0/1 mail=0/1 quit=1 unknown=0/1 commands=1/4\n" \
        in log, log


def test_a_4xx_refusal_is_the_greeting_too(mailsys_instance, tmp_path):
    inst = mailsys_instance
    port = start(inst, tmp_path)
    assert chat(port, "127.0.0.4", b"HELO x", b"QUIT") == [
        b"450 4.7.1 <unknown[127.0.0.4]>: Client host rejected: go away later",
        b"503 5.7.0 Error: access denied for unknown[127.0.0.4]", b"221 2.0.0 Bye"]
    log = inst.wait_log("disconnect from unknown[127.0.0.4]")
    assert ("NOQUEUE: reject: CONNECT from unknown[127.0.0.4]: 450 4.7.1 <unknown[127.0.0.4]>: "
            "Client host rejected: go away later; proto=SMTP\n") in log, log
    assert "disconnect from unknown[127.0.0.4] helo=0/1 quit=1 commands=1/2\n" in log, log


def test_a_permitted_client_gets_220(mailsys_instance, tmp_path):
    inst = mailsys_instance
    port = start(inst, tmp_path)
    got = chat(port, "127.0.0.1", b"HELO x", b"QUIT")
    assert got[0].startswith(b"220 ") and got[1].startswith(b"250 "), got
    log = inst.wait_log("disconnect from unknown[127.0.0.1] helo=")
    assert "reject:" not in log, log


# Postfix 3.7.11 with smtpd_delay_reject = no and these lists: a
# DEFER_IF_PERMIT of the client, HELO or sender restrictions lets the
# client in (220, HELO and MAIL accepted) and is the answer at RCPT unless
# the recipient is refused; the earliest stage's text wins.
HELD = {"smtpd_helo_restrictions": "check_helo_access inline:{ deferhelo=DEFER_IF_PERMIT }",
        "smtpd_sender_restrictions": "check_sender_access inline:{ d@example.org=DEFER_IF_PERMIT }",
        "smtpd_recipient_restrictions": "check_recipient_access inline:{ bad@example.test=REJECT }"}
CLIENT_HELD = b"450 4.7.1 <unknown[127.0.0.3]>: Client host rejected: Service unavailable"


@pytest.mark.parametrize("source, helo, sender, rcpts, answers", [
    ("127.0.0.3", b"x", b"a@example.org", [b"bad@example.test", b"bob@example.test"],
     [b"554 5.7.1 <bad@example.test>: Recipient address rejected: Access denied", CLIENT_HELD]),
    ("127.0.0.1", b"deferhelo", b"a@example.org", [b"bob@example.test"],
     [b"450 4.7.1 <deferhelo>: Helo command rejected: Service unavailable"]),
    ("127.0.0.1", b"x", b"d@example.org", [b"bob@example.test"],
     [b"450 4.7.1 <d@example.org>: Sender address rejected: Service unavailable"]),
    ("127.0.0.3", b"deferhelo", b"d@example.org", [b"bob@example.test"], [CLIENT_HELD]),
])
def test_defer_if_permit_is_held_until_rcpt(mailsys_instance, tmp_path, source, helo, sender,
                                            rcpts, answers):
    inst = mailsys_instance
    port = start(inst, tmp_path, **HELD)
    got = chat(port, source, b"HELO " + helo, b"MAIL FROM:<" + sender + b">",
               *[b"RCPT TO:<" + r + b">" for r in rcpts], b"QUIT")
    assert got[0].startswith(b"220 ") and got[1].startswith(b"250 "), got
    assert got[2:] == [b"250 2.1.0 Ok", *answers, b"221 2.0.0 Bye"], got
    log = inst.wait_log(f"disconnect from unknown[{source}] helo=")
    for rcpt, answer in zip(rcpts, answers):
        assert (f"NOQUEUE: reject: RCPT from unknown[{source}]: {answer.decode()}; "
                f"from=<{sender.decode()}> to=<{rcpt.decode()}> proto=SMTP "
                f"helo=<{helo.decode()}>\n") in log, log
    assert "reject: CONNECT" not in log and "reject: HELO" not in log, log


def test_a_held_sender_deferral_ends_with_its_transaction(mailsys_instance, tmp_path):
    # Postfix 3.7.11: after RSET a new MAIL FROM decides again (250 2.1.5 Ok).
    inst = mailsys_instance
    port = start(inst, tmp_path, **HELD)
    got = chat(port, "127.0.0.1", b"HELO x", b"MAIL FROM:<d@example.org>", b"RCPT TO:<bob@example.test>",
               b"RSET", b"MAIL FROM:<a@example.org>", b"RCPT TO:<bob@example.test>", b"QUIT")
    assert got[3] == b"450 4.7.1 <d@example.org>: Sender address rejected: Service unavailable"
    assert got[4:] == [b"250 2.0.0 Ok", b"250 2.1.0 Ok", b"250 2.1.5 Ok", b"221 2.0.0 Bye"], got


def test_vrfy_and_etrn_answer_a_held_deferral_as_postfix_does(mailsys_instance, tmp_path):
    # Postfix 3.7.11: VRFY takes the sender stage's deferral (none before any
    # MAIL FROM: 252; after MAIL and RSET the client's 450), ETRN the HELO
    # stage's, the client's included.
    inst = mailsys_instance
    port = start(inst, tmp_path, **HELD, disable_vrfy_command="no")
    got = chat(port, "127.0.0.3", b"HELO x", b"VRFY bob@example.test", b"ETRN example.test",
               b"MAIL FROM:<a@example.org>", b"RSET", b"VRFY bob@example.test", b"QUIT")
    assert got[2][:4] == b"252 ", got
    assert got[3] == got[6] == CLIENT_HELD, got
    got = chat(port, "127.0.0.1", b"HELO deferhelo", b"ETRN example.test", b"QUIT")
    assert got[2] == b"450 4.7.1 <deferhelo>: Helo command rejected: Service unavailable", got
    log = inst.wait_log("disconnect from unknown[127.0.0.1] helo=")
    assert (f"NOQUEUE: reject: VRFY from unknown[127.0.0.3]: {CLIENT_HELD.decode()}; "
            "to=<bob@example.test> proto=SMTP helo=<x>\n") in log, log
    assert (f"NOQUEUE: reject: ETRN from unknown[127.0.0.3]: {CLIENT_HELD.decode()}; "
            "proto=SMTP helo=<x>\n") in log, log
    assert ("NOQUEUE: reject: ETRN from unknown[127.0.0.1]: 450 4.7.1 <deferhelo>: Helo command "
            "rejected: Service unavailable; proto=SMTP helo=<deferhelo>\n") in log, log


def test_the_503s_count_toward_the_hard_error_limit(mailsys_instance, tmp_path):
    # Postfix 3.7.11, smtpd_hard_error_limit = 3: the refusal counts as one.
    inst = mailsys_instance
    port = start(inst, tmp_path, smtpd_hard_error_limit="3")
    got = chat(port, "127.0.0.2", b"HELO x", b"NOOP", b"NOOP")
    assert got[1:3] == [b"503 5.7.0 Error: access denied for unknown[127.0.0.2]"] * 2
    assert got[3].startswith(b"421 4.7.0 ") and got[3].endswith(b" Error: too many errors"), got
    log = inst.wait_log("disconnect from unknown[127.0.0.2]")
    assert "too many errors after CONNECT from unknown[127.0.0.2]\n" in log, log
    assert "disconnect from unknown[127.0.0.2] helo=0/1 noop=0/1 commands=0/2\n" in log, log


# Postfix 3.7.11's line, as it logged it.
POSTFIX_LINE = ("Nov 28 08:37:50 bench postfix/smtpd[28910]: NOQUEUE: reject: CONNECT from "
                "unknown[127.0.0.2]: 554 5.7.1 <unknown[127.0.0.2]>: Client host rejected: "
                "Access denied; proto=SMTP\n")


def test_fail2ban_sees_the_connect_reject_as_it_sees_postfixs(mailsys_instance, tmp_path):
    # The stock postfix filter's command is four capitals ([A-Z]{4}): it
    # misses Postfix's own CONNECT reject line (fail2ban-regex: "1 lines,
    # 0 ignored, 0 matched, 1 missed"), and so mailsys's the same way.
    tool = shutil.which("fail2ban-regex")
    if tool is None:
        pytest.skip("fail2ban-regex is not installed")
    inst = mailsys_instance
    port = start(inst, tmp_path, syslog_name="postfix")
    chat(port, "127.0.0.2", b"QUIT")
    log = inst.wait_log("disconnect from unknown[127.0.0.2]")
    [mine] = [line for line in log.splitlines() if "reject: CONNECT" in line]
    assert mine.split(": ", 1)[1] == POSTFIX_LINE.rstrip("\n").split(": ", 1)[1]
    verdicts = []
    for line in (POSTFIX_LINE, mine + "\n"):
        path = tmp_path / "one.log"
        path.write_text(line)
        r = subprocess.run([tool, str(path), "postfix"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        verdicts.append([x for x in r.stdout.splitlines() if x.startswith("Lines:")])
    assert verdicts[0] == verdicts[1] == ["Lines: 1 lines, 0 ignored, 0 matched, 1 missed"]
