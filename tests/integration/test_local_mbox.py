"""mbox delivery end to end through a real master: smtpd -> cleanup -> qmgr -> local,
into mbox files under a temporary mail_spool_directory (Postfix's default layout)."""

from __future__ import annotations

import re
import resource
import runpy
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

sh = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("smtpd_helpers.py"))))

pytestmark = pytest.mark.integration

SERVICES = [*sh.SERVICES, "qmgr unix n - n 300 1 qmgr", "bounce unix - - n - 0 bounce",
            "local unix - n n - 1 local"]
FROM_LINE = rb"From %s  \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\n"

# Another program (a mail reader) holding a kernel lock on a file until its stdin closes.
HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def site(mailsys_instance, tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    port = sh.start(mailsys_instance, services=SERVICES, main_cf={
        "mail_spool_directory": str(spool),
        "deliver_lock_attempts": "2", "deliver_lock_delay": "1s",
        "minimal_backoff_time": "1s", "maximal_backoff_time": "2s", "queue_run_delay": "1s"})
    return SimpleNamespace(inst=mailsys_instance, port=port, spool=spool)


def send(site, subject: str, rcpt: str = "carol@example.test", sender: str = "alice@example.test",
         body: str = "Hello.\r\nFrom the start of a line.\r\n>From already quoted.\r\n") -> str:
    message = f"From: alice@example.test\r\nSubject: {subject}\r\n\r\n{body}".encode()
    with sh.session(site.port) as s:
        s.ehlo("client.example.org")
        s.mail(sender)
        s.rcpt(rcpt)
        code, reply = s.data(message)
        assert code == 250, reply
    return sh.qid_of(reply)


def entries(data: bytes) -> list[bytes]:
    starts = [m.start() for m in re.finditer(rb"(?m)^From ", data)]
    return [data[a:b] for a, b in zip(starts, starts[1:] + [len(data)])]


def test_two_messages_are_appended_in_order_as_postfix_writes_them(site):
    first = send(site, "one")
    site.inst.wait_log(f"{first}: removed", timeout=20)
    second = send(site, "two", sender="")
    log = site.inst.wait_log(f"{second}: removed", timeout=20)
    for qid in (first, second):
        assert re.search(rf"mailsys/local\[\d+\]: {qid}: to=<carol@example\.test>, relay=local, "
                         rf"delay=[\d.]+, delays=[\d.]+/[\d.]+/0/[\d.]+, dsn=2\.0\.0, "
                         rf"status=sent \(delivered to mailbox\)", log), log
    box = site.spool / "carol"
    assert oct(box.stat().st_mode & 0o777) == "0o600"
    one, two = entries(box.read_bytes())
    for entry, sender, return_path, subject, qid in (
            (one, b"alice@example.test", b"<alice@example.test>", b"one", first),
            (two, b"MAILER-DAEMON", b"<>", b"two", second)):
        assert re.match(FROM_LINE % re.escape(sender), entry), entry
        header, _, body = entry.partition(b"\n\n")
        lines = header.split(b"\n")[1:]
        assert lines[:3] == [b"Return-Path: " + return_path, b"X-Original-To: carol@example.test",
                             b"Delivered-To: carol@example.test"], lines
        assert lines[3].startswith(b"Received: from client.example.org ("), lines
        assert f"with ESMTP id {qid}".encode() in header
        assert b"Subject: " + subject in lines
        assert body == b"Hello.\n>From the start of a line.\n>From already quoted.\n\n"
        assert b"\r" not in entry


def test_a_mailbox_held_by_a_reader_is_retried_and_delivered_once_it_lets_go(site):
    box = site.spool / "carol"
    box.write_bytes(b"")
    reader = subprocess.Popen([sys.executable, "-c", HOLDER, str(box)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline() == "locked\n"
        qid = send(site, "locked out")
        site.inst.wait_log(
            f"{qid}: to=<carol@example.test>, relay=local,", timeout=20)
        log = site.inst.wait_log("status=deferred", timeout=20)
        assert (f"dsn=4.2.0, status=deferred (cannot update mailbox {box} for user carol. "
                f"unable to lock for exclusive access: Resource temporarily unavailable)") in log, log
        assert box.read_bytes() == b""
    finally:
        reader.stdin.close()
        reader.stdout.close()
        reader.wait(timeout=10)
    site.inst.wait_log(f"{qid}: removed", timeout=20)
    [entry] = entries(box.read_bytes())
    assert b"Subject: locked out\n" in entry


def test_a_dotlock_defers_until_it_is_removed(site):
    box = site.spool / "carol"
    lock = site.spool / "carol.lock"
    lock.write_bytes(b"")
    qid = send(site, "dotlocked")
    log = site.inst.wait_log("status=deferred", timeout=20)
    assert (f"{qid}: to=<carol@example.test>, relay=local,") in log
    assert (f"status=deferred (cannot update mailbox {box} for user carol. "
            f"unable to create lock file {lock}: File exists)") in log, log
    assert not box.exists()
    lock.unlink()
    site.inst.wait_log(f"{qid}: removed", timeout=20)
    [entry] = entries(box.read_bytes())
    assert b"Subject: dotlocked\n" in entry
    assert not lock.exists()


def test_a_write_that_fails_leaves_the_mailbox_as_it_was(site):
    box = site.spool / "carol"
    first = send(site, "fits")
    site.inst.wait_log(f"{first}: removed", timeout=20)
    before = box.read_bytes()
    [agent] = site.inst.children("local")
    # The kernel's file size limit on the running agent: the append gets part
    # of the way and then fails with EFBIG, as a write to a full disk would.
    resource.prlimit(agent.pid, resource.RLIMIT_FSIZE, (len(before) + 300, resource.RLIM_INFINITY))
    try:
        big = send(site, "too big", sender="", body=("y" * 70 + "\r\n") * 60)
        log = site.inst.wait_log(f"{big}: removed", timeout=20)
    finally:
        resource.prlimit(agent.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
    assert (f"{big}: to=<carol@example.test>, relay=local, ") in log
    assert (f"dsn=5.2.2, status=bounced (cannot update mailbox {box} for user carol. "
            f"error writing message: File too large)") in log, log
    assert box.read_bytes() == before
    after = send(site, "after")
    site.inst.wait_log(f"{after}: removed", timeout=20)
    data = box.read_bytes()
    assert data.startswith(before) and len(entries(data)) == 2


def test_mailbox_size_limit_caps_the_whole_file(mailsys_instance, tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    port = sh.start(mailsys_instance, services=SERVICES, main_cf={
        "mail_spool_directory": str(spool), "mailbox_size_limit": "1500",
        "message_size_limit": "1500"})
    site = SimpleNamespace(inst=mailsys_instance, port=port, spool=spool)
    body = ("z" * 60 + "\r\n") * 8            # about 700 bytes an entry: two fit, three do not
    qids = [send(site, f"number {i}", sender="", body=body) for i in range(3)]
    log = site.inst.wait_log(f"{qids[2]}: removed", timeout=20)
    box = spool / "carol"
    results = [re.search(rf"{q}: to=<carol@example\.test>.*status=(\w+) \((.*)\)", log).groups()
               for q in qids]
    sent = [r for r in results if r[0] == "sent"]
    assert len(sent) >= 1 and all(r == ("sent", "delivered to mailbox") for r in sent)
    assert ("bounced", f"cannot update mailbox {box} for user carol. error writing message: "
                       f"File too large") in results
    data = box.read_bytes()
    assert len(data) <= 1500 and len(entries(data)) == len(sent)
    assert data.endswith(b"\n\n")
