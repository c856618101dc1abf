"""The mailsys entry point: dispatch and usage errors, without tracebacks."""

import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, "-m", "mailsys.cli.main", *args],
                          capture_output=True, text=True, timeout=30)


def test_no_command_prints_usage_and_exits_64():
    r = run()
    assert r.returncode == 64
    assert r.stderr.startswith("usage: mailsys")


def test_unknown_command_is_one_line_without_traceback():
    r = run("bogus")
    assert r.returncode == 64
    assert "unknown command: 'bogus'" in r.stderr
    assert "Traceback" not in r.stderr
