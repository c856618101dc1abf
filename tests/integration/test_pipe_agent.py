"""The pipe agent under a real master: smtpd -> cleanup -> qmgr -> pipe -> a real script,
with bounces going out to a sink relayhost; master.cf entries as a Postfix admin writes them."""

from __future__ import annotations

import json
import os
import pwd
import re
import runpy
import shutil
import signal
import smtplib
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.integration

here = Path(__file__).parent
sinks = SimpleNamespace(**runpy.run_path(str(here / "smtpsink.py")))
h = SimpleNamespace(**runpy.run_path(str(here / "smtpd_helpers.py")))

MASTER = ["cleanup unix - - n - 0 cleanup", "qmgr unix n - n 300 1 qmgr",
          "bounce unix - - n - 0 bounce", "smtp unix - - n - - smtp",
          "relay unix - - n - - smtp"]
NOBODY = pwd.getpwnam("nobody")
# Records its argv (after its own three), uid and input as one JSON file per
# run in the directory of its first argument, prints its third argument ("-":
# nothing) and exits with its second ("sleep": sleeps first, then exits 0).
SCRIPT = """#!/usr/bin/python3
import json, os, sys, time
out, mode, say = sys.argv[1:4]
data = sys.stdin.buffer.read()
with open(os.path.join(out, f"{os.getpid()}.json"), "w") as f:
    json.dump({"argv": sys.argv[4:], "uid": os.getuid(), "input": data.decode()}, f)
if mode == "sleep":
    time.sleep(30)
print("" if say == "-" else say, end="")
sys.exit(int(mode) if mode.isdigit() else 0)
"""


@pytest.fixture
def out_dir():
    """Where the script writes: the user it runs as (nobody) may not enter
    pytest's directories."""
    d = Path(tempfile.mkdtemp(prefix="mspipe", dir="/tmp"))
    os.chmod(d, 0o1777)
    (d / "runs").mkdir(mode=0o1777)
    os.chmod(d / "runs", 0o1777)
    script = d / "deliver"
    script.write_text(SCRIPT)
    script.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def make_site(mailsys_instance, tmp_path, out_dir):
    """make_site(entries, **main_cf): the master started with the pipe entries
    (SCRIPT and RUNS replaced) beside smtpd, cleanup, qmgr and bounce."""
    inst = mailsys_instance
    sink = sinks.SmtpSink()
    sink_thread = sinks.SinkThread(sink)
    sink_port = sink_thread.__enter__()
    transport = tmp_path / "transport"

    def make(entries: list[str], transports: str = "", **main):
        port = inst.free_port()
        transport.write_text(transports)
        lines = [e.replace("SCRIPT", str(out_dir / "deliver")).replace("RUNS", str(out_dir / "runs"))
                 for e in entries]
        inst.write_config(
            master_cf=[*MASTER, f"127.0.0.1:{port} inet n - n - - smtpd", *lines],
            main_cf={"relayhost": f"[127.0.0.1]:{sink_port}", "mydestination": "example.test",
                     "myorigin": "example.test", "mynetworks": "127.0.0.0/8",
                     "local_recipient_maps": "", "transport_maps": f"texthash:{transport}",
                     **main})
        inst.start()
        inst.wait_until(lambda: h.listening(port))
        return SimpleNamespace(inst=inst, port=port, sink=sink)
    try:
        yield make
    finally:
        inst.stop()
        sink_thread.__exit__(None, None, None)


def send(site, *rcpts: str, sender: str = "Sender@example.org", body: str = "hello") -> str:
    with smtplib.SMTP("127.0.0.1", site.port, timeout=10) as s:
        s.ehlo("c.example")
        s.mail(sender)
        for r in rcpts:
            assert s.docmd(f"RCPT TO:<{r}>")[0] == 250, r     # as written: '"a b"@x' stays quoted
        return h.qid_of(s.data(f"Subject: pipe test\r\n\r\n{body}\r\nFrom the start\r\n"
                               f".dot\r\n".encode())[1])


def runs(out_dir: Path, count: int, inst) -> list[dict]:
    """The script's records, once there are `count` of them, by argv."""
    folder = out_dir / "runs"
    inst.wait_until(lambda: len(os.listdir(folder)) >= count, timeout=20)
    found = []
    for name in os.listdir(folder):
        path = folder / name
        inst.wait_until(lambda: path.stat().st_size > 0)
        found.append(json.loads(path.read_text()))
    return sorted(found, key=lambda r: r["argv"])


def status_line(qid: str, rcpt: str, relay: str, dsn: str, status: str, reason: str) -> str:
    return (rf"mailsys/pipe\[\d+\]: {qid}: to=<{re.escape(rcpt)}>, relay={relay}, "
            rf"delay=[\d.]+, delays=[\d.]+/[\d.]+/0/[\d.]+, dsn={re.escape(dsn)}, "
            rf"status={status} \({re.escape(reason)}\)")


def test_dovecot_style_entry_gets_one_recipient_per_run(make_site, out_dir):
    site = make_site(
        ["dovecot unix - n n - - pipe",
         "  flags=DRhu user=nobody argv=SCRIPT RUNS 0 - -f ${sender} -d ${recipient}"
         " ${user} ${extension} ${nexthop} ${queue_id} ${client_address}"],
        virtual_transport="dovecot", virtual_mailbox_domains="pipe.example",
        recipient_delimiter="+", dovecot_destination_recipient_limit="1")
    qid = send(site, "Bob+Box@Pipe.Example", "carol@pipe.example")
    bob, carol = runs(out_dir, 2, site.inst)
    assert bob["argv"] == ["-f", "Sender@example.org", "-d", "bob+box@pipe.example", "bob", "box",
                           "pipe.example", qid, "127.0.0.1"]
    assert carol["argv"][:4] == ["-f", "Sender@example.org", "-d", "carol@pipe.example"]
    if os.geteuid() == 0:
        assert bob["uid"] == carol["uid"] == NOBODY.pw_uid
    head, _, body = bob["input"].partition("\n\n")
    assert head.startswith("Return-Path: <Sender@example.org>\nDelivered-To: Bob+Box@Pipe.Example\n"
                           "Received: from c.example")
    assert "\r" not in bob["input"]
    assert body == "hello\nFrom the start\n.dot\n"          # no quoting without > or .
    for rcpt in ("Bob+Box@Pipe.Example", "carol@pipe.example"):
        log = site.inst.wait_log(f"to=<{rcpt}>")
        assert re.search(status_line(qid, rcpt, "dovecot", "2.0.0", "sent",
                                     "delivered via dovecot service"), log), log


def test_filter_entry_with_flags_and_all_recipients_in_one_run(make_site, out_dir):
    site = make_site(
        ["filter unix - n n - - pipe",
         "  flags=Rq.>B user=nobody argv=SCRIPT RUNS 0 { queued as 42 } -f ${sender}",
         "  -- ${recipient}"],
        transports="pipe.example filter:\n")
    qid = send(site, '"a b"@pipe.example', "c@pipe.example", sender="")
    [run] = runs(out_dir, 1, site.inst)
    assert run["argv"] == ["-f", "MAILER-DAEMON", "--", '"a b"@pipe.example', "c@pipe.example"]
    assert run["input"].startswith("Return-Path: <MAILER-DAEMON>\nReceived: ")
    assert run["input"].endswith("\n\nhello\n>From the start\n..dot\n\n")
    log = site.inst.wait_log("to=<c@pipe.example>")
    assert re.search(status_line(qid, "c@pipe.example", "filter", "2.0.0", "sent",
                                 "delivered via filter service (queued as 42)"), log), log


@pytest.mark.parametrize("mode, dsn, status", [("67", "5.1.1", "bounced"),
                                                ("75", "4.3.0", "deferred")])
def test_exit_status_bounces_or_defers(make_site, out_dir, mode, dsn, status):
    site = make_site([f"mda unix - n n - - pipe user=nobody",
                      f"  argv=SCRIPT RUNS {mode} {{ no such user }} ${{recipient}}"],
                     transports="pipe.example mda:\n")
    qid = send(site, "u@pipe.example")
    text = {"67": "user unknown", "75": "temporary failure"}[mode]
    log = site.inst.wait_log(f"status={status}", timeout=20)
    assert re.search(status_line(qid, "u@pipe.example", "mda", dsn, status,
                                 f"{text}. Command output: no such user"), log), log
    if status == "bounced":
        notice = site.inst.wait_until(lambda: site.sink.messages, timeout=20)[0]
        assert notice.rcpts == ["Sender@example.org"]
        assert b"Status: 5.1.1" in notice.data
        assert b"Diagnostic-Code: x-unix; no such user" in notice.data


def test_time_limit_bounces(make_site, out_dir):
    site = make_site(["slow unix - n n - - pipe user=nobody argv=SCRIPT RUNS sleep -"],
                     transports="pipe.example slow:\n", slow_time_limit="1s")
    qid = send(site, "u@pipe.example")
    log = site.inst.wait_log("status=bounced", timeout=20)
    script = str(out_dir / "deliver")
    assert re.search(status_line(qid, "u@pipe.example", "slow", "5.3.0", "bounced",
                                 f'Command time limit exceeded: "{script}"'), log), log


def test_bad_entries_are_refused_with_master_cf_and_line(mailsys_instance):
    inst = mailsys_instance
    for entry, why in [
            ("x unix - n n - - pipe flags=R argv=/bin/cat", "missing user= command-line attribute"),
            ("x unix - n n - - pipe user=nobody flags=Rz argv=/bin/cat",
             "unknown flag: z (ignored)"),
            ("x unix - n n - - pipe user=root argv=/bin/cat",
             "user= command-line attribute specifies root privileges"),
            ("x unix - n n - - pipe flags=R user=nobody", "missing argv= command-line attribute"),
            ("x unix - n n - - pipe user=nobody argv=/bin/cat ${recipeint}",
             'unknown macro name: "recipeint"')]:
        inst.write_config(master_cf=[entry])
        for command in ("check", "start"):
            r = inst.cli(command)
            assert r.returncode == 1, (command, r.stderr)
            assert f"{inst.config_dir}/master.cf, line 2: service x: {why}" in r.stderr, r.stderr


def test_an_entry_that_reaches_the_daemon_unchecked_is_one_fatal_line(make_site, out_dir):
    # `mailsys reload` checks master.cf first; a bare SIGHUP to the master
    # does not, so the daemon itself must refuse, as Postfix's pipe does.
    site = make_site(["mda unix - n n - - pipe user=nobody argv=SCRIPT RUNS 0 -"],
                     transports="pipe.example mda:\n")
    inst = site.inst
    master_cf = inst.config_dir / "master.cf"
    master_cf.write_text(master_cf.read_text().replace("pipe user=nobody argv=", "pipe argv="))
    os.kill(inst.master_pid(), signal.SIGHUP)
    inst.wait_log("reload")
    qid = send(site, "u@pipe.example")
    log = inst.wait_log("fatal: missing user= command-line attribute", timeout=20)
    assert re.search(r"mailsys/pipe\[\d+\]: fatal: missing user= command-line attribute", log), log
    inst.wait_log("bad command startup -- throttling")
    assert "Traceback" not in log and "unexpected error" not in log
    assert not os.listdir(out_dir / "runs")
    assert qid in inst.cli("mailq").stdout              # nothing lost: still queued


def test_an_unknown_user_is_a_warning_until_mail_goes_that_way(mailsys_instance):
    inst = mailsys_instance
    inst.write_config(master_cf=["maildrop unix - n n - - pipe",
                                 "  flags=DRXhu user=no-such-vmail argv=/usr/bin/maildrop "
                                 "-d ${recipient}"])
    r = inst.cli("check")
    assert (r.returncode, r.stderr) == (
        0, f"mailsys: warning: {inst.config_dir}/master.cf, line 2: service maildrop: "
           "get_service_attr: unknown username: no-such-vmail\n")


def test_sasl_sender_macro_is_the_mail_from_auth_parameter(make_site, out_dir, tmp_path):
    # Postfix 3.7.11, smtpd_sasl_auth_enable = yes, MAIL FROM:<a@x.example>
    # AUTH=<s+2Bq@y.example> (no AUTH command): smtpd logged
    #   9E4D4224987: client=unknown[127.0.0.1], sasl_sender=<s+2Bq@y.example>
    # and a pipe entry's ${sasl_sender} argument was "<s+2Bq@y.example>".
    (tmp_path / "sasl_users").write_text("")
    site = make_site(
        ["auth unix - n n - - pipe",
         "  user=nobody argv=SCRIPT RUNS 0 - ${sasl_sender} ${sasl_method}"],
        transports="pipe.example auth:\n", smtpd_sasl_auth_enable="yes",
        smtpd_sasl_users_file=str(tmp_path / "sasl_users"))
    with smtplib.SMTP("127.0.0.1", site.port, timeout=10) as s:
        s.ehlo("c.example")
        assert s.docmd("MAIL FROM:<a@example.org> AUTH=<s+2Bq@y.example>")[0] == 250
        assert s.docmd("RCPT TO:<u@pipe.example>")[0] == 250
        qid = h.qid_of(s.data(b"Subject: auth\r\n\r\nhi\r\n")[1])
    [run] = runs(out_dir, 1, site.inst)
    assert run["argv"] == ["<s+2Bq@y.example>", ""]
    site.inst.wait_log(f"{qid}: client=localhost[127.0.0.1], sasl_sender=<s+2Bq@y.example>\n")


def test_flag_x_success_notice_says_delivered_and_the_others_relayed(make_site, out_dir):
    # Postfix 3.7.11, the same two entries, NOTIFY=SUCCESS for both:
    #   pipe: ...: to=<u@pipex.test>, relay=pipex, ..., dsn=2.0.0, status=sent (delivered via pipex service)
    #   notice: <v@pipeq.test>: delivery via pipeq: delivered via pipeq service
    #           Final-Recipient: rfc822; v@pipeq.test ... Action: relayed
    #           Final-Recipient: rfc822; u@pipex.test ... Action: delivered
    site = make_site(["pipex unix - n n - - pipe", "  flags=X user=nobody argv=SCRIPT RUNS 0 -",
                      "pipeq unix - n n - - pipe", "  flags=q user=nobody argv=SCRIPT RUNS 0 -"],
                     transports="pipex.test pipex:\npipeq.test pipeq:\n")
    with smtplib.SMTP("127.0.0.1", site.port, timeout=10) as s:
        s.ehlo("c.example")
        assert s.docmd("MAIL FROM:<a@x.example>")[0] == 250
        for rcpt in ("v@pipeq.test", "u@pipex.test"):
            assert s.docmd(f"RCPT TO:<{rcpt}> NOTIFY=SUCCESS")[0] == 250
        qid = h.qid_of(s.data(b"Subject: x\r\n\r\nhi\r\n")[1])
    log = site.inst.wait_log("sender delivery status notification", timeout=20)
    for rcpt, relay in (("u@pipex.test", "pipex"), ("v@pipeq.test", "pipeq")):
        assert re.search(status_line(qid, rcpt, relay, "2.0.0", "sent",
                                     f"delivered via {relay} service"), log), log
    site.inst.wait_until(lambda: site.sink.messages, timeout=20)
    notice = site.sink.messages[0].data.decode()
    for rcpt, relay, action in (("v@pipeq.test", "pipeq", "relayed"),
                                ("u@pipex.test", "pipex", "delivered")):
        assert f"\r\n<{rcpt}>: delivery via {relay}: delivered via {relay} service\r\n" in notice
        assert re.search(rf"\r\nFinal-Recipient: rfc822; {re.escape(rcpt)}\r\n"
                         rf"(Original-Recipient: .*\r\n)?Action: {action}\r\n", notice), notice
