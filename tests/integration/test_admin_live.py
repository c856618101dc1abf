"""The queue tools against a running mail system with entries in every queue.

Mail goes in through smtpd and sendmail to destinations that defer (a port
where nothing listens, a sink answering 450), one that hangs (the entry
stays active) and, with qmgr_message_active_limit = 1, one that waits in
incoming behind it. mailq, postqueue -j, postcat and qshape are compared
with Postfix's formats (postfix-compat.md 3.1-3.5) for that state; then
postsuper changes the queue under the running qmgr and the flush requests
make qmgr deliver at once what it would otherwise retry 300 s later.
"""

from __future__ import annotations

import json
import os
import re
import smtplib
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from mailsys.queue import QueueStore

here = Path(__file__).parent
live = SimpleNamespace(**__import__("runpy").run_path(str(here / "live_site.py")))
sinks = SimpleNamespace(**__import__("runpy").run_path(str(here / "smtpsink.py")))

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _show_log(mailsys_instance):
    yield
    print(mailsys_instance.log_text())


def refused(port: int) -> str:
    return f"connect to 127.0.0.1[127.0.0.1]:{port}: Connection refused"


def listing(inst, entries: list[tuple[str, str, str, list[tuple[str | None, list[str]]]]]) -> str:
    """Postfix's mailq text (showq_compat.c printf formats, long queue IDs)
    for (qid, status chars, sender, [(reason, recipients)]); sizes and
    arrival times are read from the store."""
    out, total = ["%-17s %8s %-19s %s\n" % ("----Queue ID-----", "--Size--",
                                            "---Arrival Time----", "--Sender/Recipient------")], 0
    with QueueStore.open(inst.queue_dir) as store:
        for i, (qid, status, sender, groups) in enumerate(entries):
            env, _ = store.load(qid)
            size = len(store.load_content(qid))
            total += size
            if i:
                out.append("\n")
            out.append("%-17s %8d %19.19s %s\n" % (qid + status, size,
                                                    time.asctime(time.localtime(env.arrival_time)),
                                                    sender))
            for reason, rcpts in groups:
                if reason is not None:
                    out.append("%*s(%s)\n" % (max(0, 76 - len(reason)), "", reason))
                out += ["%47s%s\n" % ("", r) for r in rcpts]
    n = len(entries)
    out.append("\n-- %d Kbytes in %d Request%s.\n" % (total // 1024, n, "" if n == 1 else "s"))
    return "".join(out)


def logged_reason(inst, qid: str) -> str:
    """The reason of the entry's last deferral in mail.log."""
    return re.findall(rf": {qid}: to=<.*, status=deferred \((.*)\)$", inst.log_text(), re.M)[-1]


def queue_of(site, qid: str) -> str | None:
    return site.queue_of(qid)


@pytest.fixture
def states(mailsys_instance, tmp_path):
    """A running site with one entry in each state (see the module description)."""
    inst = mailsys_instance
    sink = sinks.SmtpSink(rcpt={"x2@slow.test": "450 4.2.1 <x2@slow.test>: try again later"})
    stall = sinks.SmtpSink(stall="MAIL")
    stall_thread = sinks.SinkThread(stall)
    with sinks.SinkThread(sink) as port, stall_thread as stall_port:
        site = live.build(inst, tmp_path, port, stall_port=stall_port,
                          main_cf={"qmgr_message_active_limit": "1"})
        q = SimpleNamespace()
        q.dead = site.send("bob@example.com", "x1@dead.test")
        q.slow = site.send("alice@example.com", "x2@slow.test", "r5@ok.test")
        q.held = site.send("carol@example.com", "x3@dead.test")
        q.expire = site.send("alice@example.com", "x4@dead.test")
        for qid in (q.dead, q.slow, q.held, q.expire):
            inst.wait_until(lambda qid=qid: queue_of(site, qid) == "deferred", timeout=20)
        assert site.tool("postsuper", "-h", q.held).returncode == 0
        assert site.tool("postsuper", "-e", q.expire).returncode == 0
        q.active = site.send("erin@example.com", "s1@stall.test")
        inst.wait_until(lambda: stall.sessions, timeout=20)
        r = site.sendmail("-t", "-i", "-f", "frank@example.com", "-F", "Frank",
                          data=b"To: r6@ok.test\nSubject: waits\n\n.\nbody\n")
        assert r.returncode == 0 and r.stderr == b"", r.stderr
        q.incoming = inst.wait_until(
            lambda: re.findall(r"pickup\[\d+\]: (\w+): uid=", inst.log_text()))[-1]
        yield SimpleNamespace(site=site, inst=inst, qid=q, sink=sink, stall=stall,
                              hang_up=stall_thread.stop)


def test_mailq_postqueue_postcat_qshape_show_every_state(states):
    site, q = states.site, states.qid
    dead = refused(site.dead_port)
    # The first deferral marks the destination dead; the next entries for it
    # are deferred by qmgr with "delivery temporarily suspended: ..." as in Postfix.
    assert logged_reason(states.inst, q.dead) == dead
    suspended = [logged_reason(states.inst, qid) for qid in (q.expire, q.held)]
    assert set(suspended) <= {dead, f"delivery temporarily suspended: {dead}"}
    slow = ("host 127.0.0.1[127.0.0.1] said: 450 4.2.1 <x2@slow.test>: try again later "
            "(in reply to RCPT TO command)")
    expected = listing(states.inst, [
        (q.active, "*", "erin@example.com", [(None, ["s1@stall.test"])]),
        (q.incoming, "", "frank@example.com", [(None, ["r6@ok.test"])]),
        (q.dead, "", "bob@example.com", [(dead, ["x1@dead.test"])]),
        (q.slow, "", "alice@example.com", [(slow, ["x2@slow.test"])]),   # r5 was delivered
        (q.expire, "#", "alice@example.com", [(suspended[0], ["x4@dead.test"])]),
        (q.held, "!", "carol@example.com", [(suspended[1], ["x3@dead.test"])]),
    ])
    for args in (("mailq",), ("postqueue", "-p")):
        r = site.tool(*args)
        assert (r.returncode, r.stderr) == (0, "")
        assert r.stdout == expected

    jobs = [json.loads(line) for line in site.tool("postqueue", "-j").stdout.splitlines()]
    assert [list(j) for j in jobs] == [["queue_name", "queue_id", "arrival_time", "message_size",
                                        "forced_expire", "sender", "recipients"]] * 6
    assert [(j["queue_name"], j["queue_id"], j["forced_expire"]) for j in jobs] == [
        ("active", q.active, False), ("incoming", q.incoming, False), ("deferred", q.dead, False),
        ("deferred", q.slow, False), ("deferred", q.expire, True), ("hold", q.held, False)]
    assert jobs[3]["recipients"] == [{"address": "x2@slow.test", "delay_reason": slow}]
    assert jobs[0]["recipients"] == [{"address": "s1@stall.test"}]

    r = site.tool("postcat", "-q", q.held)
    assert r.returncode == 0
    sections = re.findall(r"^\*\*\* (.+) \*\*\*$", r.stdout, re.M)
    assert sections == [f"{s} hold/{q.held}" for s in (
        "ENVELOPE RECORDS", "MESSAGE CONTENTS", "HEADER EXTRACTED", "MESSAGE FILE END")]
    assert "\nsender: carol@example.com\n" in r.stdout
    assert "\nrecipient: x3@dead.test\n" in r.stdout
    # -h and -b print the bare text, no section lines (postcat.c prints
    # them only with -e); -b starts with the empty line after the header.
    header = site.tool("postcat", "-h", "-q", q.incoming).stdout
    assert header.startswith("Received: ") and "***" not in header
    assert "From: Frank <frank@example.com>\n" in header and "\nbody" not in header
    assert not header.endswith("\n\n")
    body = site.tool("postcat", "-b", "-q", q.incoming).stdout
    assert body == "\n.\nbody\n"                            # -i: the dot is data
    both = site.tool("postcat", "-hb", "-q", q.incoming).stdout
    assert both == header + body
    envelope = site.tool("postcat", "-e", "-q", q.active).stdout
    assert envelope.startswith(f"*** ENVELOPE RECORDS active/{q.active} ***\nmessage_size: ")
    assert envelope.endswith(f"\n*** MESSAGE CONTENTS active/{q.active} ***\n"
                             f"*** HEADER EXTRACTED active/{q.active} ***\n"
                             f"*** MESSAGE FILE END active/{q.active} ***\n")

    shape = site.tool("qshape").stdout.splitlines()
    assert re.fullmatch(r" *T +5 +10 .*", shape[0])
    rows = {line.split()[0]: line.split()[1] for line in shape[1:]}
    assert rows == {"TOTAL": "2", "stall.test": "1", "ok.test": "1"}
    rows = {line.split()[0]: line.split()[1] for line in site.tool("qshape", "deferred", "hold")
            .stdout.splitlines()[1:]}
    assert rows == {"TOTAL": "4", "dead.test": "3", "slow.test": "1"}


def test_postsuper_under_a_running_qmgr(states):
    site, q, inst = states.site, states.qid, states.inst
    # Deleting the entry qmgr is delivering: qmgr drops it when the agent
    # gives up, frees the slot and takes the incoming entry.
    r = site.tool("postsuper", "-d", q.active)
    assert r.stderr == f"postsuper: {q.active}: removed\npostsuper: Deleted: 1 message\n"
    states.hang_up()
    inst.wait_log(f"{q.incoming}: removed", timeout=30)
    assert queue_of(site, q.active) is None
    assert f"{q.active}: removed" in inst.log_text()      # postsuper's own log line
    assert "to=<r6@ok.test>" in inst.log_text() and not re.search(
        rf"{q.active}: to=<s1@stall.test>.*status=sent", inst.log_text())

    # Forced expiry: returned to the sender at the next look, made now by -i.
    assert site.tool("postqueue", "-i", q.expire).returncode == 0
    log = inst.wait_log(f"{q.expire}: removed", timeout=20)
    assert f"{q.expire}: from=<alice@example.com>, status=force-expired, returned to sender" in log
    inst.wait_log("to=<alice@example.com>, relay=virtual", timeout=20)   # the notice

    # Release, then requeue: qmgr takes it in again and defers it again.
    r = site.tool("postsuper", "-H", "ALL")
    assert r.stderr == "postsuper: Released from hold: 1 message\n"       # ALL: the sum only
    assert queue_of(site, q.held) == "deferred"
    arrival = {json.loads(l)["queue_id"]: json.loads(l)["arrival_time"]
               for l in site.tool("postqueue", "-j").stdout.splitlines()}[q.held]
    r = site.tool("postsuper", "-r", q.held)
    assert r.stderr == f"postsuper: {q.held}: requeued\npostsuper: Requeued: 1 message\n"
    # As Postfix's pickup takes in a requeued file: a new queue ID, logged
    # with the old one; cleanup and qmgr go on under the new ID.
    inst.wait_log(f" orig_id={q.held}\n")
    [new] = re.findall(rf"/pickup\[\d+\]: (\w+): uid={os.getuid()} from=<\S*> orig_id={q.held}$",
                       inst.log_text(), re.M)
    inst.wait_log(f"{new}: to=<x3@dead.test>", timeout=20)
    inst.wait_until(lambda: queue_of(site, new) == "deferred", timeout=10)
    assert queue_of(site, q.held) is None
    [entry] = [json.loads(l) for l in site.tool("postqueue", "-j").stdout.splitlines()
               if json.loads(l)["queue_id"] == new]
    assert entry["arrival_time"] == arrival                   # delay= counts from arrival
    head = site.tool("postcat", "-h", "-q", new).stdout.splitlines()
    assert head[0].startswith(f"Received: by mx.example.test (mailsys, from userid {os.getuid()})")
    assert head[1].startswith(f"\tid {new}; ")
    assert head[2].startswith("Received: ")                  # the message's own, kept
    q.held = new

    # Hold everything deferred, then release by queue name.
    r = site.tool("postsuper", "-h", "ALL", "deferred")
    assert r.stderr == "postsuper: Placed on hold: 3 messages\n"
    assert site.tool("mailq").stdout.count("!") == 3
    assert site.tool("postsuper", "-H", "ALL", "hold").stderr.endswith(
        "Released from hold: 3 messages\n")

    # The man page's pipeline: delete bob's mail, IDs read from standard input.
    pipeline = (f"{' '.join(live.MAILSYS)} -c {inst.config_dir} mailq | tail -n +2 | "
                "grep -v '^ *(' | awk 'BEGIN { RS = \"\" } { if ($7 == \"bob@example.com\") "
                f"print $1 }}' | tr -d '*!#' | {' '.join(live.MAILSYS)} -c {inst.config_dir} "
                "postsuper -d -")
    r = subprocess.run(["sh", "-c", pipeline], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stderr == (f"postsuper: {q.dead}: removed\n"
                                              "postsuper: Deleted: 1 message\n")
    r = site.tool("postsuper", "-d", "ALL", "deferred")
    assert r.stderr == "postsuper: Deleted: 2 messages\n"
    assert site.tool("mailq").stdout == "Mail queue is empty\n"
    assert site.tool("postqueue", "-j").stdout == ""
    # qmgr is still at work: new mail is delivered.
    qid = site.send("alice@example.com", "r7@ok.test")
    inst.wait_log(f"{qid}: removed", timeout=20)


def test_flush_requests_make_qmgr_retry_now(mailsys_instance, tmp_path):
    inst = mailsys_instance
    sink = sinks.SmtpSink()
    with sinks.SinkThread(sinks.SmtpSink()) as unused:
        site = live.build(inst, tmp_path, unused)
    qids = {d: site.send("alice@example.com", f"u@{d}") for d in ("a.test", "b.test", "c.test")}
    for qid in qids.values():
        inst.wait_until(lambda qid=qid: queue_of(site, qid) == "deferred", timeout=20)
    assert site.tool("mailq").stdout.count(f"{refused(site.later_port)})\n") == 3
    with sinks.SinkThread(sink, port=site.later_port):
        assert site.tool("postqueue", "-i", qids["a.test"]).returncode == 0
        inst.wait_log(f"{qids['a.test']}: removed", timeout=20)
        assert [queue_of(site, qids[d]) for d in ("b.test", "c.test")] == ["deferred"] * 2
        assert site.tool("postqueue", "-s", "b.test").returncode == 0
        inst.wait_log(f"{qids['b.test']}: removed", timeout=20)
        assert queue_of(site, qids["c.test"]) == "deferred"
        r = site.tool("postqueue", "-f")
        assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
        inst.wait_log(f"{qids['c.test']}: removed", timeout=20)
    assert sorted(m.rcpts[0] for m in sink.messages) == ["u@a.test", "u@b.test", "u@c.test"]
    assert site.tool("mailq").stdout == "Mail queue is empty\n"


def test_etrn_flushes_one_of_fast_flush_domains(mailsys_instance, tmp_path):
    # Postfix 3.7.11 (relay_domains = example.com, the default
    # fast_flush_domains = $relay_domains): "ETRN example.com" 250 Queuing
    # started; "ETRN other.com" 459 <other.com>: service unavailable, and
    # "warning: reject: ETRN other.com... from unknown[127.0.0.1]".
    inst = mailsys_instance
    sink = sinks.SmtpSink()
    with sinks.SinkThread(sinks.SmtpSink()) as unused:
        site = live.build(inst, tmp_path, unused)
    qids = {d: site.send("alice@example.com", f"u@{d}") for d in ("a.test", "b.test")}
    for qid in qids.values():
        inst.wait_until(lambda qid=qid: queue_of(site, qid) == "deferred", timeout=20)
    with sinks.SinkThread(sink, port=site.later_port):
        with smtplib.SMTP("127.0.0.1", site.smtpd_port, timeout=30) as s:
            s.ehlo("client.example")
            assert s.docmd("ETRN", "b.test") == (250, b"Queuing started")
            assert s.docmd("ETRN", "@other.test") == (459, b"<other.test>: service unavailable")
        inst.wait_log(f"{qids['b.test']}: removed", timeout=20)
    assert queue_of(site, qids["a.test"]) == "deferred"
    assert [m.rcpts[0] for m in sink.messages] == ["u@b.test"]
    assert re.search(r"smtpd\[\d+\]: warning: reject: ETRN other\.test\.\.\. from "
                     r"localhost\[127\.0\.0\.1\]\n", inst.log_text())


def test_sendmail_mail_is_delivered(mailsys_instance, tmp_path):
    inst = mailsys_instance
    sink = sinks.SmtpSink()
    with sinks.SinkThread(sink) as port:
        site = live.build(inst, tmp_path, port)
        # Recipients as arguments, -oi, -f and -F: into bob's Maildir.
        r = site.sendmail("-oi", "-f", "alice@example.com", "-F", "Alice", "bob@example.com",
                          data=b"Subject: cron\n\n.\nreport\n")
        assert (r.returncode, r.stdout, r.stderr) == (0, b"", b"")
        # -bs: two messages in one session, relayed to the sink.
        r = site.sendmail("-bs", data=b"EHLO cron\r\nMAIL FROM:<alice>\r\nRCPT TO:<r1@ok.test>\r\n"
                                      b"DATA\r\nSubject: one\r\n\r\n1\r\n.\r\n"
                                      b"MAIL FROM:<>\r\nRCPT TO:<r2@ok.test>\r\nDATA\r\n\r\n2\r\n.\r\n"
                                      b"QUIT\r\n")
        assert r.returncode == 0 and r.stderr == b""
        queued = re.findall(rb"250 2\.0\.0 Ok: queued as (\w+)\r\n", r.stdout)
        assert len(queued) == 2, r.stdout
        for qid in queued:
            inst.wait_log(f"{qid.decode()}: removed", timeout=20)
        inst.wait_until(lambda: inst.log_text().count("status=sent") == 3, timeout=20)
    [mail] = list((site.vmail / "example.com" / "bob" / "new").iterdir())
    data = mail.read_bytes()
    assert b"From: Alice <alice@example.com>\n" in data and data.endswith(b"\n.\nreport\n")
    assert sorted((m.sender, m.rcpts[0]) for m in sink.messages) == [
        ("", "r2@ok.test"), ("alice@example.com", "r1@ok.test")]
    assert site.tool("mailq").stdout == "Mail queue is empty\n"


def test_quoted_local_parts_are_shown_quoted_once(mailsys_instance, tmp_path):
    """An address whose local part needs quotes comes out of every tool and
    header as Postfix 3.7.11 prints it, quoted once: mailq
    ``"john doe"@example.com``, postqueue -j ``"\\"john doe\\"@example.com"``,
    the From: cleanup adds ``From: "john doe"@example.com``, the virtual
    agent's ``Return-Path: <"john doe"@example.com>``. A plain address and
    the null sender are shown as before."""
    inst = mailsys_instance
    sink = sinks.SmtpSink()
    with sinks.SinkThread(sink) as port:
        site = live.build(inst, tmp_path, port)

        def send(sender: str, *rcpts: str) -> str:
            with smtplib.SMTP("127.0.0.1", site.smtpd_port, timeout=10) as s:
                s.ehlo("client.example.org")
                assert s.docmd(f"MAIL FROM:<{sender}>")[0] == 250
                for rcpt in rcpts:
                    assert s.docmd(f"RCPT TO:<{rcpt}>")[0] == 250, rcpt
                code, text = s.data(b"Subject: no From header\r\n\r\nbody\r\n")
                assert code == 250, text
            return text.decode().rsplit("queued as ", 1)[1].strip()

        quoted = send('"john doe"@example.com', '"odd,name"@dead.test', "bob@example.com")
        plain = send("alice@example.com", "x1@dead.test")
        null = send("", "x2@dead.test")
        for qid in (quoted, plain, null):
            inst.wait_until(lambda qid=qid: queue_of(site, qid) == "deferred", timeout=20)
        [mail] = list((site.vmail / "example.com" / "bob" / "new").iterdir())

    lines = site.tool("mailq").stdout.splitlines()
    # The sender or recipient starts in column 48 (showq_compat.c formats).
    shown = [line[47:] for line in lines[1:] if line and not line.lstrip().startswith("(")
             and not line.startswith("--")]
    assert sorted(shown) == sorted(['"john doe"@example.com', '"odd,name"@dead.test',
                                    "alice@example.com", "x1@dead.test",
                                    "MAILER-DAEMON", "x2@dead.test"])
    jobs = {json.loads(line)["queue_id"]: json.loads(line)
            for line in site.tool("postqueue", "-j").stdout.splitlines()}
    assert '"sender": "\\"john doe\\"@example.com"' in json.dumps(jobs[quoted])
    assert jobs[quoted]["recipients"][0]["address"] == '"odd,name"@dead.test'
    assert (jobs[plain]["sender"], jobs[null]["sender"]) == ("alice@example.com", "MAILER-DAEMON")

    header = site.tool("postcat", "-q", quoted).stdout
    assert '\nFrom: "john doe"@example.com\n' in header
    assert "\nFrom: alice@example.com\n" in site.tool("postcat", "-q", plain).stdout
    assert "\nFrom: MAILER-DAEMON\n" in site.tool("postcat", "-q", null).stdout
    data = mail.read_bytes()
    assert data.startswith(b'Return-Path: <"john doe"@example.com>\n')
    assert b'\nFrom: "john doe"@example.com\n' in data
    # The log keeps the external form it always had (info_log_address_format).
    assert f'{quoted}: from=<"john doe"@example.com>' in inst.log_text()
