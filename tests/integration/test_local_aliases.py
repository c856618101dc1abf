"""Local aliases end to end through a real master: smtpd -> cleanup -> qmgr -> local,
with alias_maps = hash:FILE built by `mailsys newaliases`; forwarded copies go back
through cleanup and out to a sink relayhost."""

from __future__ import annotations

import re
import runpy
import smtplib
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.integration

here = Path(__file__).parent
sinks = SimpleNamespace(**runpy.run_path(str(here / "smtpsink.py")))
h = SimpleNamespace(**runpy.run_path(str(here / "smtpd_helpers.py")))

MASTER = ["cleanup unix - - n - 0 cleanup", "qmgr unix n - n 300 1 qmgr",
          "bounce unix - - n - 0 bounce", "smtp unix - - n - - smtp",
          "relay unix - - n - - smtp", "local unix - n n - - local"]
STATUS = r"delay=[\d.]+, delays=[\d.]+/[\d.]+/0/[\d.]+, dsn=2\.0\.0, status=sent"


@pytest.fixture
def site(mailsys_instance, tmp_path):
    inst = mailsys_instance
    spool = tmp_path / "spool"
    spool.mkdir()
    members = tmp_path / "members"
    members.write_text("# list members\nfar4@example.net\nalice\n")
    aliases = tmp_path / "aliases"
    aliases.write_text(f"# aliases(5)\npostmaster: root\nroot: alice\n"
                       f"remote: far@example.net,\n  alice\n"
                       f"list: :include:{members}\nowner-list: alice\n")
    sink = sinks.SmtpSink()
    with sinks.SinkThread(sink) as sink_port:
        port = inst.free_port()
        inst.write_config(
            master_cf=[*MASTER, f"127.0.0.1:{port} inet n - n - - smtpd"],
            main_cf={"relayhost": f"[127.0.0.1]:{sink_port}", "mydestination": "example.test",
                     "myorigin": "example.test", "mynetworks": "127.0.0.0/8",
                     "mail_spool_directory": str(spool), "local_recipient_maps": "",
                     "alias_database": f"hash:{aliases}", "alias_maps": "$alias_database"})
        r = inst.cli("newaliases")
        assert (r.returncode, r.stderr) == (0, "")
        inst.start()
        inst.wait_until(lambda: h.listening(port))
        yield SimpleNamespace(inst=inst, port=port, spool=spool, sink=sink)


def send(site, rcpt: str, sender: str = "sender@example.org") -> str:
    with smtplib.SMTP("127.0.0.1", site.port, timeout=10) as s:
        s.ehlo("c.example")
        s.mail(sender)
        s.rcpt(rcpt)
        return h.qid_of(s.data(f"Subject: to {rcpt}\r\n\r\nhello\r\n".encode())[1])


def test_alias_to_a_local_user_is_delivered_to_her_mailbox(site):
    qid = send(site, "postmaster@example.test")
    log = site.inst.wait_log(f"{qid}: removed", timeout=20)
    assert re.search(rf"mailsys/local\[\d+\]: {qid}: to=<alice@example\.test>, "
                     rf"orig_to=<postmaster@example\.test>, relay=local, {STATUS} "
                     rf"\(delivered to mailbox\)", log), log
    box = (site.spool / "alice").read_bytes()
    assert b"X-Original-To: postmaster@example.test\nDelivered-To: alice@example.test\n" in box
    assert b"Subject: to postmaster@example.test\n" in box
    assert not (site.spool / "root").exists() and not (site.spool / "postmaster").exists()


def test_alias_to_a_remote_address_is_forwarded_through_cleanup(site):
    qid = send(site, "remote@example.test")
    log = site.inst.wait_log(f"{qid}: removed", timeout=20)
    found = re.search(rf"mailsys/local\[\d+\]: {qid}: to=<remote@example\.test>, relay=local, "
                      rf"{STATUS} \(forwarded as (\w+)\)", log)
    assert found, log
    new = found.group(1)
    assert new != qid
    # the local member of the same alias is delivered here, in the same pass
    assert re.search(rf"{qid}: to=<alice@example\.test>, orig_to=<remote@example\.test>, "
                     rf"relay=local, {STATUS} \(delivered to mailbox\)", log), log
    log = site.inst.wait_log(f"{new}: removed", timeout=20)
    assert f"{new}: from=<sender@example.org>," in log
    assert re.search(rf"{new}: to=<far@example\.net>, orig_to=<remote@example\.test>, "
                     rf"relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, .*status=sent", log), log
    [message] = site.sink.messages
    assert (message.sender, message.rcpts) == ("sender@example.org", ["far@example.net"])
    head = message.data.split(b"\r\n\r\n")[0]
    lines = head.split(b"\r\n")
    assert lines[0] == b"Received: by mx.example.test (mailsys)"
    assert lines[1].startswith(f"\tid {new}; ".encode())
    assert lines[2] == b"Delivered-To: remote@example.test"
    assert f"with ESMTP id {qid}".encode() in head      # the original message follows


def test_include_list_with_owner_forwards_every_member_from_the_owner(site):
    qid = send(site, "list@example.test")
    log = site.inst.wait_log(f"{qid}: removed", timeout=20)
    found = re.search(rf"{qid}: to=<list@example\.test>, relay=local, {STATUS} "
                      rf"\(forwarded as (\w+)\)", log)
    assert found, log
    new = found.group(1)
    log = site.inst.wait_log(f"{new}: removed", timeout=20)
    assert f"{new}: from=<owner-list@example.test>, size=" in log
    # a mailing list starts afresh: no orig_to= in the copy's lines (as Postfix)
    assert re.search(rf"{new}: to=<alice@example\.test>, relay=local, {STATUS} "
                     rf"\(delivered to mailbox\)", log), log
    assert re.search(rf"{new}: to=<far4@example\.net>, relay=127\.0\.0\.1", log), log
    [message] = site.sink.messages
    assert (message.sender, message.rcpts) == ("owner-list@example.test", ["far4@example.net"])
    assert b"Delivered-To: list@example.test\r\n" in message.data
    box = (site.spool / "alice").read_bytes()
    assert b"Return-Path: <owner-list@example.test>\n" in box
