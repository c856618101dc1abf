"""The local agent as the local and virtual daemons under a real master."""

from __future__ import annotations

import os
import re
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio

# The tests directories are not packages: the shared helpers are loaded by path.
h = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("agent_helpers.py"))))

pytestmark = pytest.mark.integration

LOCAL = "local unix - n n - - local"
VIRTUAL = "virtual unix - n n - - local"
queue_message, request, call = h.queue_message, h.request_for, h.call


def test_virtual_and_local_agents_write_maildirs(mailsys_instance, tmp_path):
    inst = mailsys_instance
    vmaps = tmp_path / "vmailbox"
    vmaps.write_text("bob@example.com example.com/bob/\n")
    users = tmp_path / "users"
    users.write_text("carol ok\n")
    inst.write_config(master_cf=[LOCAL, VIRTUAL], main_cf={
        "virtual_mailbox_domains": "example.com",
        "virtual_mailbox_base": str(tmp_path / "vmail"),
        "virtual_mailbox_maps": f"texthash:{vmaps}",
        "local_recipient_maps": f"texthash:{users}",
        "mail_spool_directory": str(tmp_path / "spool") + "/"})
    inst.start()
    qid = queue_message(inst, "bob@example.com", "carol@mx.example.test")

    async def main():
        v = await call(inst, "virtual", request(qid, "", "bob@example.com", "nobody@example.com",
                                                transport="virtual", address_class="virtual"))
        loc = await call(inst, "local", request(qid, "", "carol@mx.example.test",
                                                transport="local", address_class="local"))
        return v, loc
    v, loc = trio.run(main)
    assert [(r.status, r.dsn) for r in v.results] == [("sent", "2.0.0"), ("bounced", "5.1.1")]
    assert (loc.results[0].status, loc.results[0].relay) == ("sent", "local")
    (name,) = os.listdir(tmp_path / "vmail" / "example.com" / "bob" / "new")
    data = (tmp_path / "vmail" / "example.com" / "bob" / "new" / name).read_bytes()
    assert data.startswith(b"Return-Path: <alice@example.com>\nX-Original-To: bob@example.com\n"
                           b"Delivered-To: bob@example.com\n")
    assert len(os.listdir(tmp_path / "spool" / "carol" / "new")) == 1
    log = inst.wait_log("to=<carol@mx.example.test>")
    assert re.search(rf"mailsys/virtual\[\d+\]: {qid}: to=<bob@example\.com>, relay=virtual, "
                     rf"delay=[\d.]+, delays=[\d.]+/[\d.]+/0/[\d.]+, dsn=2\.0\.0, "
                     rf"status=sent \(delivered to maildir\)", log), log
    assert re.search(rf"mailsys/local\[\d+\]: {qid}: to=<carol@mx\.example\.test>, relay=local, ",
                     log), log


def test_virtual_tables_are_reread_on_reload(mailsys_instance, tmp_path):
    inst = mailsys_instance
    vmaps = tmp_path / "vmailbox"
    vmaps.write_text("bob@example.com example.com/bob/\n")
    inst.write_config(master_cf=[VIRTUAL], main_cf={
        "virtual_mailbox_base": str(tmp_path / "vmail"),
        "virtual_mailbox_maps": f"texthash:{vmaps}"})
    inst.start()
    qid = queue_message(inst, "dave@example.com")
    req = request(qid, "", "dave@example.com", transport="virtual", address_class="virtual")
    before = trio.run(call, inst, "virtual", req)
    assert before.results[0].dsn == "5.1.1"
    vmaps.write_text("bob@example.com example.com/bob/\ndave@example.com example.com/dave/\n")
    assert inst.cli("reload").returncode == 0
    after = inst.wait_until(lambda: (r := trio.run(call, inst, "virtual", req)).results[0].status
                            == "sent" and r, timeout=10)
    assert after.results[0].status == "sent"
    assert len(os.listdir(tmp_path / "vmail" / "example.com" / "dave" / "new")) == 1


def test_an_unusable_mailbox_is_deferred_and_logged(mailsys_instance, tmp_path):
    inst = mailsys_instance
    vmaps = tmp_path / "vmailbox"
    vmaps.write_text("bob@example.com example.com/bob/\n")
    (tmp_path / "vmail").write_text("a file where the mailbox base should be")
    inst.write_config(master_cf=[VIRTUAL], main_cf={
        "virtual_mailbox_base": str(tmp_path / "vmail"),
        "virtual_mailbox_maps": f"texthash:{vmaps}"})
    inst.start()
    qid = queue_message(inst, "bob@example.com")
    status = trio.run(call, inst, "virtual", request(qid, "", "bob@example.com",
                                                     transport="virtual", address_class="virtual"))
    r = status.results[0]
    assert (r.status, r.dsn) == ("deferred", "4.2.0")
    log = inst.wait_log("status=deferred")
    assert re.search(rf"mailsys/virtual\[\d+\]: {qid}: to=<bob@example\.com>, relay=virtual, "
                     rf".*dsn=4\.2\.0, status=deferred \(create maildir file .*: Not a directory\)",
                     log), log
