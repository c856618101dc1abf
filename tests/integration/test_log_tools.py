"""pflogsumm and fail2ban over the mail.log of a real run, and `mailsys log --id`.

One run per syslog_name sends a known mix through smtpd and sendmail:
N delivered, M deferred, K bounced (each bounce returns a notice to a
local Maildir, itself one more delivery), R rejected at RCPT and failed
SASL logins. The real Debian pflogsumm and fail2ban-regex then read the
mail.log. These tools are not Python packages: without them a test
skips locally and fails under CI (CI=true), where .ci/run installs them.
"""

from __future__ import annotations

import os
import pty
import re
import runpy
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from mailsys_test_instance import Instance

site_mod = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("live_site.py"))))
sinks = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("smtpsink.py"))))

pytestmark = pytest.mark.integration

DELIVERED = [("alice@example.com", "r1@ok.test"), ("carol@example.com", "r2@ok.test"),
             ("carol@example.com", "r3@ok.test")]
DEFERRED = [("bob@example.com", "x1@dead.test"), ("alice@example.com", "x2@slow.test")]
BOUNCED = [("alice@example.com", "nobody@bad.test")]
REJECTED = ["victim@foreign.test", "ghost@example.com"]
SENDMAILED = ("dave@example.com", "r4@ok.test")
FAILED_LOGINS = 2


def need(tool: str) -> str:
    path = shutil.which(tool) or next((p for p in (f"/usr/sbin/{tool}", f"/usr/bin/{tool}")
                                       if os.access(p, os.X_OK)), None)
    if path:
        return path
    if os.environ.get("CI") == "true":
        pytest.fail(f"{tool} is not installed (CI installs the Debian package)")
    pytest.skip(f"{tool} is not installed (apt-get install pflogsumm fail2ban)")


def run_mix(tmp_path: Path, syslog_name: str) -> SimpleNamespace:
    """A real run with the known mix; the mail.log text and the queue IDs."""
    sink = sinks.SmtpSink(rcpt={"nobody@bad.test": "550 5.1.1 <nobody@bad.test>: User unknown",
                                "x2@slow.test": "450 4.2.1 <x2@slow.test>: try again later"})
    inst = Instance(tmp_path / syslog_name)
    try:
        with sinks.SinkThread(sink) as port:
            site = site_mod.build(inst, tmp_path / syslog_name, port,
                                  main_cf={"syslog_name": syslog_name})
            qids = {}
            for sender, rcpt in DELIVERED + DEFERRED + BOUNCED:
                qids[rcpt] = site.send(sender, rcpt)
            r = site.sendmail("-f", SENDMAILED[0], SENDMAILED[1], data=b"Subject: cron\n\nran\n")
            assert r.returncode == 0, r.stderr
            for rcpt in REJECTED:
                code, _ = site.refused(rcpt)
                assert code in (454, 550), code
            for _ in range(FAILED_LOGINS):
                assert site.failed_login() == 535
            for rcpt in [r for _, r in DELIVERED + BOUNCED]:
                inst.wait_log(f"{qids[rcpt]}: removed", timeout=20)
            for _, rcpt in DEFERRED:
                inst.wait_log(f"to=<{rcpt}>", timeout=20)
            inst.wait_log("to=<r4@ok.test>", timeout=20)
            inst.wait_until(lambda: inst.log_text().count("to=<alice@example.com>") == len(BOUNCED))
            inst.wait_until(lambda: inst.log_text().count(": removed") == len(DELIVERED) + 1
                            + 2 * len(BOUNCED))
            inst.stop()
        log_path = tmp_path / f"{syslog_name}.log"
        shutil.copy(inst.log_path, log_path)
        return SimpleNamespace(log=log_path, text=log_path.read_text(), qids=qids,
                               config_dir=inst.config_dir)
    finally:
        inst.cleanup()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """syslog_name -> its run, made on first use."""
    made = {}

    def get(name: str) -> SimpleNamespace:
        if name not in made:
            made[name] = run_mix(tmp_path_factory.mktemp("mix"), name)
        return made[name]
    return get


@pytest.fixture(params=["mailsys", "postfix"])
def mix(request, runs):
    return request.param, runs(request.param)




# --- pflogsumm ----------------------------------------------------------------

def pflogsumm(*args: str) -> str:
    r = subprocess.run([need("pflogsumm"), *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def grand_totals(report: str) -> dict[str, int]:
    block = report.split("Grand Totals", 1)[1].split("Per-Hour", 1)[0]
    return {m[2]: int(m[1]) for m in re.finditer(r"^ +(\d+)k?   ([a-z /]+?)\b(?: +\(|$)", block, re.M)}


def table(report: str, title: str) -> dict[str, int]:
    block = report.split(f"{title}\n", 1)[1].split("\n\n", 1)[0]
    return {m[2]: int(m[1]) for m in re.finditer(r"^ +(\d+)   (\S+)$", block, re.M)}


def test_pflogsumm_counts_the_mix(mix):
    name, run = mix
    args = ["--syslog-name=mailsys"] if name == "mailsys" else []
    report = pflogsumm(*args, str(run.log))
    totals = grand_totals(report)
    assert totals["received"] == len(DELIVERED + DEFERRED + BOUNCED) + 1
    assert totals["delivered"] == len(DELIVERED) + 1 + len(BOUNCED)   # + the notices
    assert totals["deferred"] == len(DEFERRED)
    assert totals["bounced"] == len(BOUNCED)
    assert totals["rejected"] == len(REJECTED)
    senders = {}
    for sender, _ in DELIVERED + DEFERRED + BOUNCED + [SENDMAILED]:
        senders[sender] = senders.get(sender, 0) + 1
    assert table(report, "Senders by message count\n------------------------") == senders
    delivered_to = [r for _, r in DELIVERED] + [SENDMAILED[1]] + ["alice@example.com"] * len(BOUNCED)
    assert table(report, "Recipients by message count\n---------------------------") == \
        {r: delivered_to.count(r) for r in delivered_to}
    assert "Relay access denied (total: 1)" in report
    assert "User unknown in virtual mailbox table (total: 1)" in report


def test_pflogsumm_without_the_option_ignores_the_mailsys_tag(runs):
    assert grand_totals(pflogsumm(str(runs("mailsys").log)))["received"] == 0


# --- fail2ban -----------------------------------------------------------------

MAILSYS_DAEMON = r'_daemon="mailsys/\w+(?:/smtp[ds])?"'


def fail2ban(log: Path, spec: str) -> list[str]:
    """The lines of log that the filter spec matches."""
    r = subprocess.run([need("fail2ban-regex"), "-o", "msg", str(log), spec],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def filter_spec(name: str, mode: str = "") -> str:
    options = ([f"mode={mode}"] if mode else []) + ([MAILSYS_DAEMON] if name == "mailsys" else [])
    return "postfix" + (f"[{', '.join(options)}]" if options else "")


def test_fail2ban_postfix_filter_matches_the_rejects(mix):
    name, run = mix
    matched = fail2ban(run.log, filter_spec(name))
    expected = [line for line in run.text.splitlines() if ": reject: RCPT from " in line]
    assert len(expected) == len(REJECTED)
    assert matched == expected


def test_fail2ban_postfix_sasl_filter_matches_the_failed_logins(mix):
    name, run = mix
    matched = fail2ban(run.log, filter_spec(name, "auth"))
    expected = [line for line in run.text.splitlines() if "authentication failed" in line]
    assert len(expected) == 2 * FAILED_LOGINS          # smtplib tries PLAIN, then LOGIN
    assert matched == expected
    assert all("[127.0.0.1]: SASL " in line for line in matched)


def test_fail2ban_without_the_override_misses_the_mailsys_tag(runs):
    assert fail2ban(runs("mailsys").log, "postfix") == []


# --- mailsys log --id -----------------------------------------------------------

def test_log_id_shows_one_messages_whole_life(mix):
    name, run = mix
    qid = run.qids[BOUNCED[0][1]]
    r = subprocess.run([*site_mod.MAILSYS, "-c", str(run.config_dir), "log", "--id", qid],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    mine = [line for line in run.text.splitlines() if f"]: {qid}: " in line]
    assert r.stdout.splitlines() == mine                      # all of them, in log order
    programs = [re.search(rf" {name}/(\w+)\[", line)[1] for line in mine]
    assert programs == ["smtpd", "cleanup", "qmgr", "smtp", "bounce", "qmgr"], mine
    assert mine[-1].endswith(f"{qid}: removed")
    assert "status=bounced" in mine[3]


def test_log_colours_rejects_and_warnings_on_a_terminal(mix):
    name, run = mix
    master, slave = pty.openpty()
    proc = subprocess.Popen([*site_mod.MAILSYS, "-c", str(run.config_dir), "log", "-n", "1000"],
                            stdout=slave, stderr=subprocess.DEVNULL,
                            env={k: v for k, v in os.environ.items() if k != "NO_COLOR"})
    os.close(slave)
    got = b""
    try:
        while chunk := _read_pty(master):
            got += chunk
        assert proc.wait(30) == 0
    finally:
        os.close(master)
    lines = got.decode().splitlines()
    reject = [x for x in lines if ": reject: " in x]
    warning = [x for x in lines if "authentication failed" in x]
    assert reject and all(x.startswith("\x1b[31m") and x.endswith("\x1b[0m") for x in reject)
    assert warning and all(x.startswith("\x1b[33m") and x.endswith("\x1b[0m") for x in warning)
    assert all("\x1b" not in x for x in lines if "status=sent" in x)


def _read_pty(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:                                   # EIO: the child closed the terminal
        return b""
