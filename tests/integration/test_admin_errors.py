"""Every admin tool answers a bad argument, an unknown queue ID or a mail
system that is not running with one clear line, never a traceback.

The exit status is Postfix's (postfix-compat.md 3.3-3.8): sysexits for
postqueue and sendmail, 1 for postsuper, postcat, qshape. Two answers are
deliberately not failures, as in Postfix: postsuper and postqueue -i on an
ID that is in no queue (an entry may leave the queue between mailq and
postsuper; scripts rely on it) warn in one line and exit 0. Reading tools
(mailq, postqueue -p/-j, postcat, qshape, postsuper, log) read the queue
store and the log directly, so they work while the master is down.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from mailsys.queue import QueueStore

live = SimpleNamespace(**__import__("runpy").run_path(str(Path(__file__).with_name("live_site.py"))))

pytestmark = pytest.mark.integration

QID = "4jbJDG3zVyz09x4"           # the shape of a mailsys queue ID, in no queue
# sendmail.c names the sender and uid: "alice(1000): No recipient ...".
WHO = f"{pwd.getpwuid(os.getuid()).pw_name}({os.getuid()})"

# (arguments, standard input, exit status, the stderr lines, each whole or its start with "...")
BAD_ARGUMENTS = [
    # glibc getopt's own line first, as for Postfix's tools.
    (("postqueue", "-x"), None, 69, "postqueue: invalid option -- 'x'\n"
     "postqueue: fatal: usage: postqueue -f | postqueue -i queueid | "
     "postqueue -j | postqueue -p | postqueue -s site"),
    (("postqueue", "-p", "-j"), None, 69, "postqueue: fatal: usage: ..."),
    (("postqueue", "-s", "not a site"), None, 69,
     'postqueue: fatal: Cannot flush mail queue - invalid destination: "not a site"'),
    # mailq is Postfix's sendmail: its usage error exits 75 (3.7.11 live).
    (("mailq", "-Z"), None, 75, "mailq: invalid option -- 'Z'\nmailq: invalid option -- 'Z'\n"
     "mailq: fatal: usage: mailq [options]"),
    (("postqueue", "-i", "bad/id"), None, 69,
     'postqueue: fatal: Cannot flush queue ID - invalid name: "bad/id"'),
    (("postsuper", "-x"), None, 1,
     "postsuper: invalid option -- 'x'\npostsuper: fatal: usage: postsuper ..."),
    (("postsuper", "-d"), None, 1,
     "postsuper: option requires an argument -- 'd'\npostsuper: fatal: usage: postsuper ..."),
    (("postsuper", "-d", "ALL", "bogusqueue"), None, 1,
     "postsuper: fatal: invalid directory name: bogusqueue"),
    (("postcat",), None, 1, "postcat: fatal: usage: postcat ..."),
    (("postcat", "-x", "-q", QID), None, 1,
     "postcat: invalid option -- 'x'\npostcat: fatal: usage: postcat ..."),
    (("qshape", "-x"), None, 1, "qshape: fatal: usage: qshape ..."),
    (("qshape", "-b", "many"), None, 1, "qshape: fatal: usage: qshape ..."),
    (("qshape", "-b", "99999999999"), None, 1, "qshape: fatal: bucket count at most 64, ..."),
    (("qshape", "bogusqueue"), None, 1, "qshape: fatal: invalid queue name: bogusqueue"),
    (("sendmail", "-bx"), "", 75, "sendmail: fatal: unsupported: -bx"),
    (("sendmail", "-x", "-N", "bogus", "-qR"), "", 75,
     'sendmail: warning: unknown DSN NOTIFY command value "bogus" in "bogus"\n'
     "sendmail: warning: bad -N option value -- ignored\n"
     "sendmail: fatal: specify: -qRsitename"),
    (("postalias",), None, 1, "postalias: fatal: usage: postalias ..."),
    (("newaliases", "extra"), None, 64, "newaliases: fatal: usage: newaliases [-c config_dir]"),
    (("sendmail",), "Subject: x\n\n", 75,
     f"sendmail: fatal: {WHO}: Recipient addresses must be specified ..."),
    (("sendmail", "-t"), "Subject: x\n\n", 75,
     f"sendmail: fatal: {WHO}: No recipient addresses found in message header"),
    (("log", "--bogus"), None, 64, "log: fatal: unrecognized arguments: --bogus; usage: ..."),
    (("log", "-n", "x"), None, 64, "log: fatal: argument -n: invalid int value: 'x'; usage: ..."),
]

UNKNOWN_ID = [
    (("postcat", "-q", QID), None, 1, f"postcat: fatal: open queue file {QID}: No such file or directory"),
    (("log", "--id", QID), None, 1, f"log: fatal: no lines for queue ID {QID} in ..."),
]

MASTER_DOWN = [
    (("postqueue", "-f"), None, 69, "postqueue: fatal: Cannot flush mail queue - mail system is down"),
    (("postqueue", "-i", QID), None, 69,
     "postqueue: fatal: Cannot flush mail queue - mail system is down"),
    (("postqueue", "-s", "ok.test"), None, 69,
     "postqueue: fatal: Cannot flush mail queue - mail system is down"),
]


def answer(r: subprocess.CompletedProcess, status: int, line: str) -> None:
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == status, r.stderr
    lines = r.stderr.splitlines()
    expected = line.split("\n")
    assert len(lines) == len(expected), r.stderr
    for got, line in zip(lines, expected):
        if line.endswith("..."):
            assert got.startswith(line[:-3].rstrip(".").rstrip()), got
        elif line.endswith("(...)"):
            assert got.startswith(line[:-5]) and got.endswith(")"), got
        else:
            assert got == line


@pytest.fixture
def down(mailsys_instance, tmp_path):
    """A site that ran once (queue store and log exist), now stopped."""
    inst = mailsys_instance
    site = live.build(inst, tmp_path, inst.free_port())
    inst.stop()
    inst.wait_until(lambda: inst.master_pid() is None)
    return site


@pytest.fixture
def up(mailsys_instance, tmp_path):
    return live.build(mailsys_instance, tmp_path, mailsys_instance.free_port())


def test_master_down(down):
    for args, stdin, status, line in BAD_ARGUMENTS + UNKNOWN_ID + MASTER_DOWN:
        answer(down.tool(*args, stdin=stdin), status, line)
    # Neither plain sendmail nor sendmail -bs is refused: the message waits
    # in the maildrop (Postfix's postdrop; its -bs smtpd posts through it).
    r = down.tool("sendmail", "bob@ok.test", stdin="Subject: x\n\nbody\n")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert len(os.listdir(down.inst.queue_dir / "maildrop")) == 1
    r = down.tool("sendmail", "-bs", stdin="HELO x\r\nMAIL FROM:<a@ok.test>\r\n"
                  "RCPT TO:<bob@ok.test>\r\nDATA\r\nSubject: y\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "250 2.0.0 Ok: queued as " in r.stdout and r.stdout.endswith("221 2.0.0 Bye\n")
    assert len(os.listdir(down.inst.queue_dir / "maildrop")) == 2


def test_running_system(up):
    for args, stdin, status, line in BAD_ARGUMENTS + UNKNOWN_ID:
        answer(up.tool(*args, stdin=stdin), status, line)
    # Not an error, as in Postfix, but said in one line.
    r = up.tool("postqueue", "-i", QID)
    assert (r.returncode, r.stderr) == (0, f"postqueue: warning: {QID}: not in the deferred queue\n")
    r = up.tool("postsuper", "-d", QID)
    assert r.returncode == 0 and "Traceback" not in r.stderr
    # Postfix says nothing of a well-formed ID it did not find.
    assert r.stderr == "postsuper: Deleted: 0 messages\n"


def test_readers_work_while_the_master_is_down(down):
    with QueueStore.open(down.inst.queue_dir):
        pass
    assert down.tool("mailq").stdout == "Mail queue is empty\n"
    for args in (("postqueue", "-j"), ("qshape",), ("postsuper", "-d", "ALL"), ("log", "-n", "1")):
        r = down.tool(*args)
        assert r.returncode == 0 and "Traceback" not in r.stderr, (args, r.stderr)


def test_no_configuration(tmp_path):
    for args in (("mailq",), ("postsuper", "-d", "ALL"), ("postcat", "-q", QID), ("qshape",),
                 ("sendmail", "bob@ok.test"), ("log",)):
        r = subprocess.run([*live.MAILSYS, "-c", str(tmp_path / "nowhere"), *args], input="",
                           capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and "Traceback" not in r.stderr
        assert r.stderr.count("\n") == 1 and "nowhere/main.cf: No such file or directory" in r.stderr


def test_sendmail_bd_starts_the_mail_system(down):
    # Postfix's sendmail -bd runs "postfix start" in the background and
    # exits 0 (sendmail.c mail_run_background); with a recipient it refuses.
    inst = down.inst
    r = down.tool("sendmail", "-bd", "bob@ok.test")
    assert (r.returncode, r.stderr) == (75, "sendmail: fatal: daemon mode requires no recipient\n")
    # The start command's own line comes on the same stderr, as Postfix's does.
    r = down.tool("sendmail", "-bd")
    assert (r.returncode, r.stdout) == (0, "") and "fatal" not in r.stderr
    try:
        inst.wait_until(lambda: inst.master_pid() is not None, timeout=30)
    finally:
        inst.stop()
        inst.wait_until(lambda: inst.master_pid() is None, timeout=30)
