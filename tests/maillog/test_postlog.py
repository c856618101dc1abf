"""mailsys postlog, run as a script runs it, with no postlogd: the records land in maillog_file."""

import re
import subprocess
import sys


def postlog(etc, *args, input=None):
    return subprocess.run([sys.executable, "-m", "mailsys.cli.main", "-c", str(etc), "postlog",
                           *args], capture_output=True, text=True, timeout=30, input=input)


def setup(tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    (tmp_path / "q").mkdir()
    (etc / "main.cf").write_text(f"queue_directory = {tmp_path}/q\n"
                                 f"maillog_file = {tmp_path}/mail.log\nmaillog_file_prefixes = {tmp_path}\n"
                                 "myhostname = mx.example\n")
    return etc, tmp_path / "mail.log"


def records(log):
    return [re.sub(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d mx ", "", line).replace(
        re.search(r"\[\d+\]", line).group(), "[PID]") for line in log.read_text().splitlines()]


def test_text_tag_and_priorities(tmp_path):
    etc, log = setup(tmp_path)
    assert postlog(etc, "-t", "backup", "job", "done").returncode == 0
    assert postlog(etc, "-p", "warn", "disk low").returncode == 0
    assert postlog(etc, "-p", "error", "tape\tstuck").returncode == 0
    assert records(log) == ["backup[PID]: job done",
                            "mailsys/postlog[PID]: warning: disk low",
                            "mailsys/postlog[PID]: error: tape?stuck"]


def test_standard_input_lines_and_fatal_ends_it(tmp_path):
    etc, log = setup(tmp_path)
    assert postlog(etc, input="one\ntwo\n").returncode == 0
    assert postlog(etc, "-p", "fatal", input="gone\nnever\n").returncode == 1
    assert records(log) == ["mailsys/postlog[PID]: one", "mailsys/postlog[PID]: two",
                            "mailsys/postlog[PID]: fatal: gone"]


def test_a_bad_priority_is_a_usage_error(tmp_path):
    etc, log = setup(tmp_path)
    r = postlog(etc, "-p", "loud", "x")
    assert r.returncode == 64 and "unknown priority value: loud" in r.stderr
    assert "Traceback" not in r.stderr and not log.exists()
