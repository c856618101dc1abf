"""sendmail through a real master: cleanup queues the message, the log says so."""

from __future__ import annotations

import json
import os
import pwd
import re
import subprocess
import sys
import time

import pytest

from mailsys.cli.sendmail import fullname
from mailsys.ipc.proto.cleanup import CleanupRecipient, CleanupRequest
from mailsys.message.qid import new_qid
from mailsys.queue import Queue, QueueStore, maildrop

pytestmark = pytest.mark.integration

SERVICES = ["cleanup unix - - n - 0 cleanup", "anvil unix - - n - 1 anvil"]
PICKUP = "pickup unix n - n - 1 pickup"
QMGR = "qmgr unix n - n 300 1 qmgr"
MESSAGE = b"Subject: hello\nTo: bob@example.org\n\nfirst line\n.\nafter the dot\n"


def sendmail(inst, *args: str, data: bytes = MESSAGE) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailsys.cli.main", "-c", str(inst.config_dir),
                           "sendmail", *args], input=data, capture_output=True, timeout=60)


def queued(inst) -> dict:
    """queue ID -> (envelope, content), read with the master stopped."""
    with QueueStore.open(inst.queue_dir) as store:
        return {env.queue_id: (env, store.load_content(env.queue_id))
                for env, _ in store.scan_all([Queue.INCOMING])}


def test_sendmail_submission_is_queued_and_logged(mailsys_instance):
    inst = mailsys_instance
    inst.write_config(master_cf=SERVICES, main_cf={"myorigin": "example.com"})
    inst.start()
    r = sendmail(inst, "-i", "-f", "alice@example.com", "-F", "Alice Example", "bob@example.org")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"" and r.stderr == b""
    uid = os.getuid()
    log = inst.wait_log("from=<alice@example.com>")
    qid = re.search(rf"mailsys/pickup\[\d+\]: (\w+): uid={uid} from=<alice@example.com>", log)
    assert qid, log
    qid = qid.group(1)
    inst.wait_log("mailsys/cleanup[")
    assert re.search(rf"mailsys/cleanup\[\d+\]: {qid}: message-id=<{qid}@mx.example.test>", inst.log_text())
    # The admin tools see it while the mail system runs.
    listing = [json.loads(line) for line in inst.cli("postqueue", "-j").stdout.splitlines()]
    assert [(e["queue_id"], e["queue_name"], e["sender"]) for e in listing] == [
        (qid, "incoming", "alice@example.com")]
    assert [r["address"] for r in listing[0]["recipients"]] == ["bob@example.org"]
    inst.stop()
    entries = queued(inst)
    env, content = entries[qid]
    assert env.sender == "alice@example.com"
    assert [r.address for r in env.recipients] == ["bob@example.org"]
    assert content.startswith(b"Received: by mx.example.test (mailsys, from userid %d)\r\n" % uid)
    assert b"\r\nFrom: Alice Example <alice@example.com>\r\n" in content
    assert content.endswith(b"\r\n\r\nfirst line\r\n.\r\nafter the dot\r\n")   # -i: the dot is data


def test_sendmail_defaults_dot_and_t(mailsys_instance):
    inst = mailsys_instance
    inst.write_config(master_cf=SERVICES, main_cf={"myorigin": "example.com"})
    inst.start()
    # Without -i a lone dot ends the message; without -f the login name @ myorigin.
    r = sendmail(inst, "carol")
    assert r.returncode == 0, r.stderr
    # -t: recipients from To/Cc/Bcc plus the command line; Bcc is removed.
    msg = (b"To: Bob <bob@example.org>\nCc: c1@example.net, \"X, Y\" <c2@example.net>\n"
           b"Bcc: hidden@example.org\nSubject: t\n\nbody\n")
    r = sendmail(inst, "-t", "-oi", "extra@example.org", data=msg)
    assert r.returncode == 0, r.stderr
    inst.wait_log("uid=", timeout=10)
    inst.wait_until(lambda: inst.log_text().count("message-id=") >= 2)
    inst.stop()
    entries = sorted(queued(inst).values(), key=lambda e: e[0].queue_id)
    assert len(entries) == 2
    (env1, c1), (env2, c2) = entries
    login = pwd.getpwuid(os.getuid()).pw_name
    assert env1.sender == f"{login}@example.com"
    assert [r.address for r in env1.recipients] == ["carol@example.com"]
    # Postfix's cleanup keeps "carol" as the original recipient (orig_to=<carol>)
    # and gives each recipient a DSN original recipient (cleanup_addr.c).
    assert (env1.recipients[0].orig, env1.recipients[0].orcpt) == (
        "carol", "rfc822;carol@example.com")
    assert {(r.address, r.orig, r.orcpt) for r in env2.recipients} >= {
        ("extra@example.org", "", "rfc822;extra@example.org")}
    assert c1.endswith(b"\r\n\r\nfirst line\r\n")
    # Without -F the added From: has the user's full name (Postfix fullname()).
    name = fullname()
    assert (f"\r\nFrom: {name} <{login}@example.com>\r\n" if name else
            f"\r\nFrom: {login}@example.com\r\n").encode() in c1
    assert sorted(r.address for r in env2.recipients) == sorted(
        ["extra@example.org", "bob@example.org", "c1@example.net", "c2@example.net",
         "hidden@example.org"])
    assert b"hidden" not in c2 and b"Bcc" not in c2


def test_sendmail_fix_line_endings_never_keeps_cr_as_data(mailsys_instance):
    inst = mailsys_instance
    inst.write_config(master_cf=SERVICES,
                      main_cf={"myorigin": "example.com", "sendmail_fix_line_endings": "never"})
    inst.start()
    r = sendmail(inst, "bob", data=b"Subject: cr\r\n\r\nbody\r\n.\r\nafter\r\n")
    assert r.returncode == 0, r.stderr
    inst.wait_log("message-id=")
    inst.write_config(master_cf=SERVICES, main_cf={"sendmail_fix_line_endings": "sometimes"})
    bad = sendmail(inst, "bob")
    assert (bad.returncode, bad.stderr) == (
        75, b"sendmail: fatal: invalid sendmail_fix_line_endings value: sometimes\n")
    inst.stop()
    [(_, content)] = queued(inst).values()
    # Each CR stays before its line's CRLF, and ".<CR>" did not end the message.
    assert content.endswith(b"\r\n\r\r\nbody\r\r\n.\r\r\nafter\r\r\n")


def test_sendmail_while_down_leaves_the_message_for_pickup(mailsys_instance):
    """As Postfix's postdrop: sendmail succeeds with the mail system stopped,
    and the message is queued by pickup when the master starts."""
    inst = mailsys_instance
    inst.write_config(master_cf=[*SERVICES, PICKUP], main_cf={"myorigin": "example.com"})
    r = sendmail(inst, "-i", "-f", "alice@example.com", "bob@example.org")
    assert (r.returncode, r.stdout, r.stderr) == (0, b"", b"")
    dropped = os.listdir(inst.queue_dir / "maildrop")
    assert len(dropped) == 1 and not dropped[0].startswith(".")
    assert not queued(inst)
    # mailq shows it meanwhile, as Postfix lists its maildrop.
    listing = inst.cli("mailq").stdout.splitlines()
    assert listing[1].split()[0] == dropped[0] and listing[1].endswith(" alice@example.com")
    assert listing[2].strip() == "bob@example.org" and listing[-1].endswith(" in 1 Request.")
    [entry] = [json.loads(line) for line in inst.cli("postqueue", "-j").stdout.splitlines()]
    assert (entry["queue_name"], entry["queue_id"]) == ("maildrop", dropped[0])
    inst.start()
    log = inst.wait_log("from=<alice@example.com>")
    qid = re.search(rf"mailsys/pickup\[\d+\]: (\w+): uid={os.getuid()} from=<alice@example.com>",
                    log)
    assert qid and qid.group(1) == dropped[0], log
    inst.wait_log(f"{qid.group(1)}: message-id=")
    inst.wait_until(lambda: not os.listdir(inst.queue_dir / "maildrop"))
    inst.stop()
    env, content = queued(inst)[qid.group(1)]
    assert env.sender == "alice@example.com"
    assert [r.address for r in env.recipients] == ["bob@example.org"]
    assert content.startswith(b"Received: by mx.example.test (mailsys, from userid %d)\r\n"
                              % os.getuid())
    assert content.endswith(b"\r\n\r\nfirst line\r\n.\r\nafter the dot\r\n")


def test_postqueue_f_has_pickup_queue_the_maildrop(mailsys_instance):
    """A file in the maildrop while the system runs (as sendmail leaves one
    when cleanup cannot be reached) is queued on postqueue -f."""
    inst = mailsys_instance
    inst.write_config(master_cf=[*SERVICES, PICKUP, QMGR])
    inst.start()
    request = CleanupRequest(queue_id=new_qid(), sender="carol@example.com",
                             recipients=(CleanupRecipient("dave@example.org"),),
                             content=b"Subject: dropped\r\n\r\nbody\r\n", arrival_time=time.time(),
                             origin="sendmail", local=True, protocol="local", uid=os.getuid())
    maildrop.drop(inst.queue_dir, request)
    (inst.queue_dir / "maildrop" / "junk").write_bytes(b"not a request")
    flushed = inst.cli("postqueue", "-f")
    assert flushed.returncode == 0, flushed.stderr
    inst.wait_log(f"{request.queue_id}: uid={os.getuid()} from=<carol@example.com>")
    inst.wait_log("junk: not a cleanup request")
    inst.wait_until(lambda: not os.listdir(inst.queue_dir / "maildrop"))
    assert (inst.queue_dir / "corrupt" / "junk").read_bytes() == b"not a request"
    inst.wait_log(f"{request.queue_id}: message-id=")


def test_pickup_removes_a_file_already_queued_and_sets_aside_one_cleanup_cannot_take(
        mailsys_instance):
    """A maildrop file whose message cleanup had queued before (the file
    outlived its unlink in a crash) is removed, and one with no recipient
    is set aside; neither holds up the file behind it."""
    inst = mailsys_instance
    inst.write_config(master_cf=[*SERVICES, PICKUP])

    def request(sender: str, *recipients: str) -> CleanupRequest:
        return CleanupRequest(queue_id=new_qid(), sender=sender,
                              recipients=tuple(CleanupRecipient(r) for r in recipients),
                              content=b"Subject: dropped\r\n\r\nbody\r\n",
                              arrival_time=time.time(), origin="sendmail", local=True,
                              protocol="local", uid=os.getuid())
    twice = request("erin@example.com", "frank@example.org")
    maildrop.drop(inst.queue_dir, twice)
    inst.start()
    inst.cli("postqueue", "-f")
    inst.wait_log(f"{twice.queue_id}: message-id=")
    inst.wait_until(lambda: not os.listdir(inst.queue_dir / "maildrop"))
    inst.stop()
    # The same file again, as a crash would leave it; then two more, in order.
    maildrop.drop(inst.queue_dir, twice)
    nobody = request("gina@example.com")
    maildrop.drop(inst.queue_dir, nobody)
    after = request("hank@example.com", "ivan@example.org")
    maildrop.drop(inst.queue_dir, after)
    inst.start()
    log = inst.wait_log(f"{after.queue_id}: message-id=")
    assert (f"warning: {twice.queue_id}: already queued; removing maildrop/{twice.queue_id}"
            in log), log
    assert f"{nobody.queue_id}: cleanup cannot take it" in log, log
    inst.wait_until(lambda: not os.listdir(inst.queue_dir / "maildrop"))
    assert os.listdir(inst.queue_dir / "corrupt") == [nobody.queue_id]
    inst.stop()
    assert set(queued(inst)) == {twice.queue_id, after.queue_id}


def returning_site(inst, tmp_path, checks: str) -> None:
    """A configuration with pickup, qmgr and bounce, header_checks of
    checks, and alice@example.com's Maildir (where her notices arrive)."""
    (tmp_path / "header_checks").write_text(checks)
    (tmp_path / "vmailbox").write_text("alice@example.com example.com/alice/\n")
    inst.write_config(
        master_cf=[*SERVICES, PICKUP, QMGR, "bounce unix - - n - 0 bounce",
                   "virtual unix - n n - - local"],
        main_cf={"myorigin": "example.com", "mydestination": "",
                 "header_checks": f"regexp:{tmp_path}/header_checks",
                 "virtual_mailbox_domains": "example.com",
                 "virtual_mailbox_base": str(tmp_path / "vmail"),
                 "virtual_mailbox_maps": f"texthash:{tmp_path}/vmailbox"})


def maildir(tmp_path) -> list[bytes]:
    return [p.read_bytes() for p in sorted((tmp_path / "vmail" / "example.com" / "alice" /
                                            "new").glob("*"))]


SPAM = b"Subject: buy viagra\nTo: bob@example.org\n\nthe body\n"


def test_message_cleanup_refuses_at_pickup_goes_back_to_its_sender(mailsys_instance, tmp_path):
    """As Postfix's pickup with CLEANUP_FLAG_BOUNCE: a message left in the
    maildrop that cleanup refuses for good is returned to its sender with
    the reason (cleanup_bounce.c), and its file is removed."""
    inst = mailsys_instance
    returning_site(inst, tmp_path, "/^Subject:.*viagra/ REJECT\n")
    r = sendmail(inst, "-i", "-f", "alice@example.com", "bob@example.org", data=SPAM)
    assert (r.returncode, r.stderr) == (0, b"")
    [qid] = os.listdir(inst.queue_dir / "maildrop")
    inst.start()
    log = inst.wait_log(f"{qid}: removed", timeout=20)
    assert re.search(rf"mailsys/cleanup\[\d+\]: {qid}: reject: header Subject: buy viagra from "
                     rf"local; from=<alice@example.com> to=<bob@example.org>: 5\.7\.1 message "
                     rf"content rejected$", log, re.M), log
    # Logged by cleanup as Postfix's cleanup_bounce() logs it: no qmgr, no agent.
    assert re.search(rf"mailsys/cleanup\[\d+\]: {qid}: to=<bob@example.org>, relay=none, "
                     rf"delay=[\d.]+, delays=[\d.]+/0/0/0, dsn=5\.7\.1, status=bounced "
                     rf"\(message content rejected\)$", log, re.M), log
    notice = re.search(rf"{qid}: sender non-delivery notification: (\w+)$", log, re.M)
    assert notice, log
    assert not os.listdir(inst.queue_dir / "maildrop")
    assert not (inst.queue_dir / "corrupt").exists()
    inst.wait_log(f"{notice.group(1)}: removed", timeout=20)
    [mail] = maildir(tmp_path)
    assert b"\nTo: alice@example.com\n" in mail
    assert b"<bob@example.org>: message content rejected" in mail
    assert b"\nStatus: 5.7.1\n" in mail
    # Headers only: the body that was refused does not go back.
    assert b"\nSubject: buy viagra\n" in mail and b"the body" not in mail
    assert b"Content-Type: text/rfc822-headers" in mail
    # sendmail itself, while the system runs, still gets the refusal.
    r = sendmail(inst, "-i", "-f", "alice@example.com", "bob@example.org", data=SPAM)
    assert (r.returncode, r.stderr) == (75, b"sendmail: fatal: 550 5.7.1 message content "
                                            b"rejected\n")


def test_refused_null_sender_mail_is_dropped_and_temporary_refusals_wait(mailsys_instance,
                                                                         tmp_path):
    """A refused message from <> gets no notice (Postfix's bounce drops it
    unless notify_classes asks for a postmaster copy); one refused for now
    (4xx) stays in the maildrop, as Postfix's pickup keeps it."""
    inst = mailsys_instance
    returning_site(inst, tmp_path, "/^Subject:.*viagra/ REJECT\n/^Subject: later/ REJECT "
                                   "4.7.1 try again later\n")
    r = sendmail(inst, "-i", "-f", "<>", "bob@example.org", data=SPAM)
    assert r.returncode == 0, r.stderr
    [dropped] = os.listdir(inst.queue_dir / "maildrop")
    later = sendmail(inst, "-i", "-f", "alice@example.com", "bob@example.org",
                     data=b"Subject: later\n\nbody\n")
    assert later.returncode == 0, later.stderr
    [waiting] = set(os.listdir(inst.queue_dir / "maildrop")) - {dropped}
    inst.start()
    log = inst.wait_log(f"{dropped}: removed", timeout=20)
    assert re.search(rf"{dropped}: to=<bob@example.org>, relay=none, .*dsn=5\.7\.1, "
                     rf"status=bounced \(message content rejected\)$", log, re.M), log
    assert "non-delivery notification:" not in log
    log = inst.wait_log(f"{waiting}: cleanup refused the message for now: 451 4.7.1 try again "
                        f"later; it stays in the maildrop")
    assert f"{waiting}: to=<" not in log
    assert os.listdir(inst.queue_dir / "maildrop") == [waiting]
    assert not (inst.queue_dir / "corrupt").exists()
    assert maildir(tmp_path) == []


def test_master_purges_old_temporary_files_from_the_maildrop(mailsys_instance):
    """As `postfix start` and `postfix reload` have postsuper remove the
    temporary files a crash left once a day old (postsuper.c MAX_TEMP_AGE):
    the dot-file of a sendmail killed while writing goes, a fresh one stays."""
    inst = mailsys_instance
    inst.write_config(master_cf=[*SERVICES, PICKUP])
    folder = maildrop.directory(inst.queue_dir)
    old, fresh, later = (folder / f".{new_qid()}.tmp{n}" for n in range(3))
    for path in (old, fresh, later):
        path.write_bytes(b"Subject: half a mess")
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    inst.start()
    inst.wait_log(f"mailsys/master[{inst.master_pid()}]: warning: removed file "
                  f"maildrop/{old.name}: a temporary file not modified for over 24 hours")
    assert sorted(os.listdir(folder)) == sorted([fresh.name, later.name])
    os.utime(later, (two_days_ago, two_days_ago))
    assert inst.cli("reload").returncode == 0
    inst.wait_log(f"warning: removed file maildrop/{later.name}: ")
    assert os.listdir(folder) == [fresh.name]
    assert "pickup[" not in inst.log_text()          # nothing for pickup to do


def test_sendmail_errors(mailsys_instance, tmp_path):
    inst = mailsys_instance
    # Neither cleanup nor a maildrop: no queue directory at all.
    inst.write_config(master_cf=SERVICES, main_cf={"queue_directory": str(tmp_path / "none")})
    # Postfix's sendmail exits 75 on every fatal error (its cleanup handler),
    # and changes to the queue directory before anything else (sendmail.c).
    down = sendmail(inst, "bob@example.org")
    assert (down.returncode, down.stderr.decode()) == (
        75, f"sendmail: fatal: chdir {tmp_path / 'none'}: No such file or directory\n")
    # A queue directory without a maildrop that can be written.
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "maildrop").write_text("not a directory\n")
    down = sendmail(inst, "bob@example.org")
    assert down.returncode == 75
    lines = down.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sendmail: fatal: mail system is not running")
    assert "cannot write to the maildrop" in lines[0]
    inst.write_config(master_cf=SERVICES)
    none = sendmail(inst)
    assert none.returncode == 75 and b"Recipient addresses must be specified" in none.stderr
    none_t = sendmail(inst, "-t", data=b"Subject: x\n\nno rcpt\n")
    assert none_t.returncode == 75 and b"No recipient addresses found" in none_t.stderr
    bad = sendmail(inst, "-bx", "bob@example.org")
    assert (bad.returncode, bad.stderr) == (75, b"sendmail: fatal: unsupported: -bx\n")


def test_sendmail_bs_queues_through_smtp_on_stdio(mailsys_instance):
    inst = mailsys_instance
    inst.write_config(master_cf=SERVICES, main_cf={"myorigin": "example.com"})
    inst.start()
    session = (b"HELO client\r\nMAIL FROM:<alice>\r\nRCPT TO:<bob@example.org>\r\n"
               b"RCPT TO:<carol>\r\nDATA\r\nSubject: bs\r\n\r\n..dot\r\n.\r\n"
               b"MAIL FROM:<>\r\nRCPT TO:<dave@example.org>\r\nDATA\r\n\r\nnull\r\n.\r\n"
               b"QUIT\r\n")
    r = sendmail(inst, "-bs", data=session)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    qids = re.findall(r"250 2\.0\.0 Ok: queued as (\w+)\r\n", out)
    assert len(qids) == 2, out
    assert out.startswith("220 mx.example.test ESMTP mailsys\r\n") and out.endswith("221 2.0.0 Bye\r\n")
    inst.wait_log(f"{qids[1]}: uid={os.getuid()} from=<>")
    inst.stop()
    entries = queued(inst)
    env, content = entries[qids[0]]
    assert env.sender == "alice@example.com"
    assert [r.address for r in env.recipients] == ["bob@example.org", "carol@example.com"]
    assert content.endswith(b"\r\n\r\n.dot\r\n")
    assert b"\r\nMessage-Id: <" in content
    assert entries[qids[1]][0].sender == ""
