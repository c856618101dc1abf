"""non_smtpd_milters: mail submitted with sendmail through a real master and
a milter written in the test (milter_peer.py); what the milter is told and
what is logged are Postfix 3.7.11's (seen live)."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from mailsys.queue import Queue, QueueStore

pytestmark = pytest.mark.integration

here = Path(__file__).parent
MilterPeer = runpy.run_path(str(here / "milter_peer.py"))["MilterPeer"]
SERVICES = ["cleanup unix - - n - 0 cleanup", "anvil unix - - n - 1 anvil"]


def sendmail(inst, *args: str, data: bytes) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailsys.cli.main", "-c", str(inst.config_dir),
                           "sendmail", *args], input=data, capture_output=True, timeout=60)


def test_sendmail_mail_goes_through_non_smtpd_milters(mailsys_instance):
    inst = mailsys_instance
    peer = MilterPeer(rcpt={"bad@example.com": "r"}, eom_add=[("X-NS", "1")],
                      eom_swap_rcpt=("b@example.com", "c@example.com"))
    with peer.running() as milter_port:
        inst.write_config(master_cf=SERVICES,
                          main_cf={"non_smtpd_milters": f"inet:127.0.0.1:{milter_port}",
                                   "myhostname": "mx.example.test"})
        inst.start()
        ok = sendmail(inst, "-f", "me@example.org", "b@example.com",
                      data=b"Subject: local\n\nbody\n")
        assert ok.returncode == 0, ok.stderr
        refused = sendmail(inst, "-f", "me@example.org", "bad@example.com",
                           data=b"Subject: local2\n\nbody\n")
        log = inst.wait_log("message not accepted, try again later")
        inst.stop()
    assert refused.returncode == 75, refused       # EX_TEMPFAIL
    with QueueStore.open(inst.queue_dir) as store:
        [(env, content)] = [(e, store.load_content(e.queue_id))
                            for e, _ in store.scan_all([Queue.INCOMING])]
    assert [r.address for r in env.recipients] == ["c@example.com"]
    assert b"\nSubject: local\r\n" in content and b"\r\nX-NS: 1\r\n" in content
    assert content.endswith(b"\r\n\r\nbody\r\n")
    # As Postfix's cleanup tells milters about a local submission.
    first = peer.seen[:8]
    assert first[2] == (b"C", b"localhost\x004\x00\x00127.0.0.1\x00")
    assert peer.macros(b"C")["_"] == "localhost [127.0.0.1]"
    assert (b"H", b"localhost\x00") in peer.seen
    assert (b"M", b"me@example.org\x00") in peer.seen
    assert (b"R", b"b@example.com\x00") in peer.seen
    assert ("Subject", "local") in peer.headers()
    assert (b"B", b"body\r\n") in peer.seen
    assert ": milter-reject: RCPT from localhost[127.0.0.1]: 5.7.1 Command rejected; " \
           "from=<me@example.org> to=<bad@example.com>\n" in log
    assert "warning: " in log and ": milter configuration error: can't reject recipient in " \
           "non-smtpd(8) submission\n" in log


def test_what_non_smtpd_milters_are_told(mailsys_instance):
    # Postfix 3.7.11 with the same macro lists and the same submission
    # (seen live): the macros at each stage, {rcpt_addr} the last recipient
    # from DATA on, and the Message-Id:, Date: and From: cleanup adds,
    # after the headers submitted, before the milter sees the header.
    inst = mailsys_instance
    peer = MilterPeer(eom_add=[("X-NS", "1")])
    lists = {
        "milter_connect_macros": "j {daemon_name} {daemon_addr} {daemon_port} v _ {client_addr} "
                                 "{client_name} {client_port} {client_ptr} {client_connections} "
                                 "{client_resolve} {mail_addr} i",
        "milter_helo_macros": "i {mail_addr} {client_name}",
        "milter_mail_macros": "i {auth_type} {mail_addr} {mail_host} {mail_mailer} {rcpt_addr}",
        "milter_rcpt_macros": "i {rcpt_addr} {rcpt_host} {rcpt_mailer} {mail_addr} {mail_host}",
        "milter_data_macros": "i {rcpt_addr} {mail_addr}",
        "milter_end_of_header_macros": "i {mail_addr} {rcpt_addr} {daemon_port} {client_port}",
        "milter_end_of_data_macros": "i {mail_addr} {rcpt_addr}"}
    with peer.running() as milter_port:
        inst.write_config(master_cf=SERVICES,
                          main_cf={"non_smtpd_milters": f"inet:127.0.0.1:{milter_port}",
                                   "myhostname": "mx.example.test", **lists})
        inst.start()
        ok = sendmail(inst, "-f", "me@example.org", "-F", "Me Myself", "b@example.com",
                      "c@example.com", data=b"Subject: local\n\nbody\n")
        assert ok.returncode == 0, ok.stderr
        inst.stop()
    with QueueStore.open(inst.queue_dir) as store:
        [(env, content)] = [(e, store.load_content(e.queue_id))
                            for e, _ in store.scan_all([Queue.INCOMING])]
    qid = env.queue_id
    assert peer.macros(b"C") == {
        "j": "mx.example.test", "{daemon_name}": "mx.example.test",
        "{daemon_addr}": "127.0.0.1", "{daemon_port}": "0", "v": peer.macros(b"C")["v"],
        "_": "localhost [127.0.0.1]", "{client_addr}": "127.0.0.1",
        "{client_name}": "localhost", "{client_port}": "0", "{client_ptr}": "localhost",
        "i": qid}
    assert peer.macros(b"H") == {"i": qid, "{client_name}": "localhost"}
    assert peer.macros(b"M") == {"i": qid, "{mail_addr}": "me@example.org"}
    addresses = {"{rcpt_addr}": "c@example.com", "{mail_addr}": "me@example.org"}
    assert peer.macros(b"R") == peer.macros(b"T") == peer.macros(b"E") == {"i": qid, **addresses}
    assert peer.macros(b"N") == {"i": qid, **addresses, "{daemon_port}": "0",
                                 "{client_port}": "0"}
    assert [n for n, _ in peer.headers()] == ["Subject", "Message-Id", "Date", "From"]
    assert ("From", "Me Myself <me@example.org>") in peer.headers()
    head = content.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    assert head.count(b"\r\nMessage-Id: <") == head.count(b"\r\nDate: ") == 1
    assert head.endswith(b"\r\nFrom: Me Myself <me@example.org>\r\nX-NS: 1\r\n")


def test_non_smtpd_milters_see_the_header_as_cleanup_wrote_it(mailsys_instance):
    # As a live Postfix 3.7.11 with the same settings and submission: the
    # milter sees header_checks' PREPEND and REPLACE and From: masqueraded,
    # then the Message-Id: and Date: cleanup adds; not cleanup's Received:,
    # above which a header inserted at index 0 lands.
    inst = mailsys_instance
    table = inst.root / "header_checks"
    table.write_text("/^Subject:/ PREPEND X-Checked: yes\n/^X-Old:/ REPLACE X-New: replaced\n")
    peer = MilterPeer(eom_insert=[(0, "X-Top", "zero")])
    with peer.running() as milter_port:
        inst.write_config(master_cf=SERVICES,
                          main_cf={"non_smtpd_milters": f"inet:127.0.0.1:{milter_port}",
                                   "myhostname": "mx.example.test",
                                   "header_checks": f"regexp:{table}",
                                   "masquerade_domains": "example.org"})
        inst.start()
        ok = sendmail(inst, "-f", "me@mail.example.org", "b@example.com",
                      data=b"Subject: local\nFrom: Me <me@mail.example.org>\nX-Old: o\n\nbody\n")
        assert ok.returncode == 0, ok.stderr
        inst.stop()
    assert [n for n, _ in peer.headers()] == ["X-Checked", "Subject", "From", "X-New",
                                              "Message-Id", "Date"]
    assert ("From", "Me <me@example.org>") in peer.headers()
    with QueueStore.open(inst.queue_dir) as store:
        [(env, content)] = [(e, store.load_content(e.queue_id))
                            for e, _ in store.scan_all([Queue.INCOMING])]
    assert env.sender == "me@example.org"
    assert content.startswith(b"X-Top: zero\r\nReceived: by mx.example.test (mailsys, from userid ")
    assert b"\r\nX-Checked: yes\r\nSubject: local\r\nFrom: Me <me@example.org>\r\n" \
           b"X-New: replaced\r\nMessage-Id: <" in content
