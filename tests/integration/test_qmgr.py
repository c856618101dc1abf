"""qmgr and bounce through a real master, with a test delivery agent
(qmgr_agent.py beside this file) as the smtp transport."""

from __future__ import annotations

import email
import email.policy
import json
import os
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from mailsys.message.envelope import RcptState
from mailsys.queue import Queue

# The tests directories are not packages: the shared helpers are loaded by path.
qh = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("qmgr_helpers.py"))))

pytestmark = pytest.mark.integration

AGENT = Path(__file__).with_name("qmgr_agent.py")
MAILSYS = [sys.executable, "-m", "mailsys.cli.main"]
CONTENT = (b"From: alice@example.com\r\nTo: bob@remote.example\r\nSubject: test\r\n"
           b"Message-Id: <m1@example.com>\r\n\r\nhello\r\n")


@pytest.fixture
def mta(mailsys_instance, tmp_path):
    inst = mailsys_instance
    control = tmp_path / "control"
    control.mkdir()
    inst.control = control
    inst.write_config(
        master_cf=["qmgr unix n - n 300 1 qmgr",
                   "bounce unix - - n - 0 bounce",
                   f"smtp unix - - n - - {AGENT} {control}"],
        main_cf={"service_throttle_time": "1s", "mydestination": "mx.example.test"})
    return inst


def inject(inst, *rcpts: str, sender: str = "alice@example.com") -> str:
    return qh.inject(inst, CONTENT, *rcpts, sender=sender)


load = qh.entry


def delivered(inst) -> list[dict]:
    path = inst.control / "delivered"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def start(inst):
    inst.start()
    # qmgr has a wakeup time, so it runs from the start; bounce and smtp
    # start on demand, when qmgr first connects.
    inst.wait_until(lambda: inst.children("qmgr"))


def test_delivered_then_removed(mta):
    start(mta)
    qid = inject(mta, "bob@remote.example")
    log = mta.wait_log(f"{qid}: removed")
    assert f"mailsys/qmgr[" in log
    assert f"{qid}: from=<alice@example.com>, size={len(CONTENT)}, nrcpt=1 (queue active)" in log
    assert f"{qid}: to=<bob@remote.example>, relay=mx.remote.example[192.0.2.1]:25" in log
    # the order of one message's life
    assert log.index("(queue active)") < log.index("status=sent") < log.index(f"{qid}: removed")
    assert delivered(mta) == [{"qid": qid, "rcpt": "bob@remote.example",
                               "sender": "alice@example.com"}]
    assert load(mta, qid) == (None, None)


def test_bounce_sends_a_notice_to_the_sender(mta):
    start(mta)
    qid = inject(mta, "bounce@remote.example", "bob@remote.example")
    log = mta.wait_log(f"{qid}: removed")
    line = next(x for x in log.splitlines() if f"{qid}: sender non-delivery notification: " in x)
    assert "mailsys/bounce[" in line
    notice_id = line.rsplit(" ", 1)[1]
    log = mta.wait_log(f"{notice_id}: removed")
    assert f"{notice_id}: from=<>, size=" in log
    assert f"{notice_id}: message-id=<" in log
    got = delivered(mta)
    assert {"qid": notice_id, "rcpt": "alice@example.com", "sender": ""} in got
    assert {"qid": qid, "rcpt": "bob@remote.example", "sender": "alice@example.com"} in got
    raw = (mta.control / f"{notice_id}.eml").read_bytes()
    assert raw.startswith(b"Received: by mx.example.test (mailsys)\r\n\tid " + notice_id.encode())
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report"
    assert msg["To"] == "alice@example.com"
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    assert msg["Message-Id"]
    report = raw.decode()
    assert "Final-Recipient: rfc822; bounce@remote.example" in report
    assert "Action: failed" in report and "Status: 5.1.1" in report
    assert "bob@remote.example" not in report.split("Content-Description: Undelivered")[0] \
        .split("Content-Description: Notification")[1]
    assert load(mta, qid) == (None, None)


def test_deferred_with_back_off_then_flushed(mta):
    (mta.control / "defer").touch()
    start(mta)
    before = time.time()
    qid = inject(mta, "defer@remote.example")
    mta.wait_log(f"{qid}: to=<defer@remote.example>")
    env, queue = mta.wait_until(lambda: (r := load(mta, qid))[1] is Queue.DEFERRED and r)
    after = time.time()
    # a fresh message waits minimal_backoff_time (300 s)
    assert before + 300 <= env.next_attempt <= after + 300
    assert env.recipients[0].state is RcptState.DEFERRED
    assert env.recipients[0].dsn_status == "4.2.1"
    assert "450 4.2.1 try again later" in env.recipients[0].reason
    assert "status=deferred" in mta.log_text() and f"{qid}: removed" not in mta.log_text()
    (mta.control / "defer").unlink()
    r = mta.cli("postqueue", "-f")
    assert r.returncode == 0, r.stderr
    mta.wait_log(f"{qid}: removed")
    assert [d["qid"] for d in delivered(mta)] == [qid]


def test_qmgr_killed_while_active_delivers_after_restart(mta):
    (mta.control / "hold").touch()
    start(mta)
    [old] = mta.children("qmgr")
    qid = inject(mta, "bob@remote.example")
    mta.wait_until(lambda: load(mta, qid)[1] is Queue.ACTIVE)
    os.kill(old.pid, signal.SIGKILL)
    new = mta.wait_until(lambda: [p for p in mta.children("qmgr") if p.pid != old.pid])
    assert new
    (mta.control / "hold").unlink()
    mta.wait_log(f"{qid}: removed", timeout=20)
    assert qid in [d["qid"] for d in delivered(mta)]
    assert load(mta, qid) == (None, None)


def test_postsuper_expire_then_flush_returns_the_message(mta):
    (mta.control / "defer").touch()
    start(mta)
    qid = inject(mta, "defer@remote.example")
    mta.wait_until(lambda: load(mta, qid)[1] is Queue.DEFERRED)
    r = mta.cli("postsuper", "-e", qid)
    assert r.returncode == 0, r.stderr
    assert mta.cli("postqueue", "-f").returncode == 0
    log = mta.wait_log(f"{qid}: removed")
    assert f"{qid}: from=<alice@example.com>, status=force-expired, returned to sender" in log
    assert f"{qid}: sender non-delivery notification: " in log
    # tried once, before the expiry; never again
    assert log.count(f"{qid}: to=<defer@remote.example>") == 1


def test_held_mail_waits_until_released(mta):
    (mta.control / "defer").touch()
    start(mta)
    qid = inject(mta, "defer@remote.example")
    mta.wait_until(lambda: load(mta, qid)[1] is Queue.DEFERRED)
    assert mta.cli("postsuper", "-h", qid).returncode == 0
    (mta.control / "defer").unlink()
    assert mta.cli("postqueue", "-f").returncode == 0
    time.sleep(1)
    assert load(mta, qid)[1] is Queue.HOLD
    assert f"{qid}: removed" not in mta.log_text()
    assert mta.cli("postsuper", "-H", qid).returncode == 0
    mta.wait_log(f"{qid}: removed")
    assert [d["qid"] for d in delivered(mta)] == [qid]


def test_mail_from_sendmail_through_cleanup_is_delivered(mta):
    lines = mta.config_dir.joinpath("master.cf").read_text()
    mta.config_dir.joinpath("master.cf").write_text(lines + "cleanup unix - - n - 0 cleanup\n")
    start(mta)
    r = subprocess.run([*MAILSYS, "-c", str(mta.config_dir), "sendmail", "-f", "alice@example.com",
                        "bob@remote.example"], input=b"Subject: via sendmail\n\nhi\n",
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    log = mta.wait_log("status=sent")
    qid = next(x for x in log.splitlines() if "(queue active)" in x).split(": ")[1]
    log = mta.wait_log(f"{qid}: removed")
    assert f"{qid}: uid=" in log and f"{qid}: message-id=<" in log
    assert [(d["qid"], d["rcpt"]) for d in delivered(mta)] == [(qid, "bob@remote.example")]
    assert b"Subject: via sendmail" in (mta.control / f"{qid}.eml").read_bytes()


def test_reload_hands_over_to_a_new_qmgr_that_keeps_delivering(mta):
    start(mta)
    [old] = mta.children("qmgr")
    first = inject(mta, "bob@remote.example")
    mta.wait_log(f"{first}: removed")
    main_cf = mta.config_dir / "main.cf"
    main_cf.write_text(main_cf.read_text() + "delay_warning_time = 4h\n")
    assert mta.cli("reload").returncode == 0
    [new] = mta.wait_until(lambda: [p for p in mta.children("qmgr") if p.pid != old.pid])
    mta.wait_until(lambda: old.pid not in [p.pid for p in mta.children("qmgr")])
    second = inject(mta, "carol@remote.example")
    mta.wait_log(f"{second}: removed")
    assert f"mailsys/qmgr[{new.pid}]: {second}: removed" in mta.log_text()
    assert [d["qid"] for d in delivered(mta)] == [first, second]
