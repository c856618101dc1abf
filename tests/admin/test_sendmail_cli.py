"""sendmail's command line as Postfix 3.7.11's sendmail answers it: the texts
on stderr, exit status 75 for every fatal error, which bad options are only
warnings, and the same warning and fatal lines in the mail log. Each
expected text was seen live with Postfix 3.7.11 (src/sendmail/sendmail.c)."""

from __future__ import annotations

import io
import os
import pwd
import sys

import pytest

from admin_fixtures import log_lines, run_tool

WHO = f"{pwd.getpwuid(os.getuid()).pw_name}({os.getuid()})"
NO_RCPT = "Recipient addresses must be specified on the command line or via the -t option"

# (arguments, the stderr lines: glibc getopt's lines first, then the fatal one)
FATAL = [
    (("-Z",), ["invalid option -- 'Z'"] * 2, "usage: sendmail [options]"),
    (("-Z", "-Y"), ["invalid option -- 'Z'", "invalid option -- 'Y'", "invalid option -- 'Z'"],
     "usage: sendmail [options]"),
    (("-bz", "-Z"), ["invalid option -- 'Z'"], "unsupported: -bz"),
    (("-C",), ["option requires an argument -- 'C'"] * 2, "usage: sendmail [options]"),
    (("-bz",), [], "unsupported: -bz"),
    (("-bD",), [], "unsupported: -bD"),
    (("-qX",), [], "-qX is not implemented"),
    (("-qR",), [], "specify: -qRsitename"),
    (("-qI",), [], "specify: -qIqueueid"),
    (("-B", "8bitmime", "x@y"), [], "-B option needs 8BITMIME or 7BIT"),
    (("-n",), [], "-n option not supported"),
    (("-Xz",), [], "unsupported: -Xz"),
    (("-XVab",), [], "-V requires two characters from -=+"),
    (("-oA",), [], "-oA requires pathname"),
    (("-t", "-bp"), [], "-t can be used only in delivery mode"),
    (("-bv", "-t"), [], "-t option cannot be used with -bv"),
    (("-bv", "-N", "never", "root"), [], "-N option cannot be used with -bv"),
    (("-bv", "-R", "full", "root"), [], "-R option cannot be used with -bv"),
    (("-bv", "-v", "root"), [], "-v option cannot be used with -bv"),
    (("-bd", "root"), [], "daemon mode requires no recipient"),
    (("-bp", "root"), [], "display queue mode requires no recipient"),
    (("-q", "root"), [], "flush queue mode requires no recipient"),
    (("-qRsite.example", "root"), [], "flush site requires no recipient"),
    (("-qIABC", "root"), [], "flush queue_id requires no recipient"),
    (("-bi", "root"), [], "alias initialization mode requires no recipient"),
    (("-bs", "root"), [], "stand-alone mode requires no recipient"),
    (("-f", "", "-XV", "root"), [], f"({os.getuid()}): -V option requires non-null sender address"),
    (("-f", "foo"), [], f"foo({os.getuid()}): {NO_RCPT}"),
    ((), [], f"{WHO}: {NO_RCPT}"),
    (("-t",), [], f"{WHO}: No recipient addresses found in message header"),
]


@pytest.fixture
def stdin(monkeypatch):
    """An empty standard input with the binary buffer sendmail reads."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))


@pytest.mark.parametrize("args, complaints, text", FATAL)
def test_fatal_errors(capsys, setup, stdin, args, complaints, text):
    status, out, err = run_tool(capsys, setup, "sendmail", *args)
    assert (status, out) == (75, "")
    assert err.splitlines() == [f"sendmail: {c}" for c in complaints] + [f"sendmail: fatal: {text}"]
    # getopt's own lines are not logged; the fatal line is.
    assert log_lines(setup) == [f"mailsys/sendmail: fatal: {text}"]


@pytest.mark.parametrize("args, warnings", [
    (("-N", "bogus"), ['unknown DSN NOTIFY command value "bogus" in "bogus"',
                       "bad -N option value -- ignored"]),
    (("-N", "never,success"), ["bad -N option value -- ignored"]),
    (("-R", "bogus"), ["bad -R option value -- ignored"]),
    (("-V", "x" * 101), ["too long -V option value -- ignored"]),
    (("-V", "a\tb"), ["bad syntax in -V option value -- ignored"]),
    (("-f", "a@b.example, c@d.example"),
     ["-f option specified malformed sender: a@b.example, c@d.example"]),
])
def test_bad_dsn_values_are_warnings(capsys, setup, stdin, args, warnings):
    # Postfix warns, ignores the value and goes on to queue the message
    # (here into the maildrop: the mail system is not running).
    status, out, err = run_tool(capsys, setup, "sendmail", *args, "bob@example.com")
    assert (status, out) == (0, "")
    assert err.splitlines() == [f"sendmail: warning: {w}" for w in warnings]
    assert log_lines(setup) == [f"mailsys/sendmail: warning: {w}" for w in warnings]
    assert len(os.listdir(setup.queue_dir / "maildrop")) == 1


def test_sender_and_uid_prefix_with_a_warning(capsys, setup, stdin):
    status, _, err = run_tool(capsys, setup, "sendmail", "-f", "<a@b.example>", "-R", "x")
    assert status == 75
    assert err.splitlines() == ["sendmail: warning: bad -R option value -- ignored",
                                f"sendmail: fatal: a@b.example({os.getuid()}): {NO_RCPT}"]


@pytest.mark.parametrize("args", [("-V", "+="), ("-V+=",)])
def test_old_verp_option_forms(capsys, setup, stdin, args):
    # "-V xy" is -XV (default delimiters) and xy a recipient; "-Vxy" is -XVxy.
    status, _, err = run_tool(capsys, setup, "sendmail", *args, "bob@example.com")
    new = "-XV" if len(args) == 2 else f"-X{args[0][1:]}"
    assert (status, err) == (0, f"sendmail: warning: option {args[0]} is deprecated "
                                f"with Postfix 2.3; specify {new} instead\n")


@pytest.mark.parametrize("args", [("-bh",), ("-bH", "root"), ("-q30m", "root")])
def test_modes_that_do_nothing(capsys, setup, stdin, args):
    assert run_tool(capsys, setup, "sendmail", *args) == (0, "", "")


def test_mailq_is_sendmail(capsys, setup, queue):
    # Postfix's mailq ignores -x as its sendmail does, and refuses recipients.
    status, out, err = run_tool(capsys, setup, "mailq", "-x")
    assert (status, err) == (0, "") and out.startswith("----Queue ID---")
    assert run_tool(capsys, setup, "mailq", "root") == (
        75, "", "mailq: fatal: display queue mode requires no recipient\n")
    assert log_lines(setup) == ["mailsys/sendmail: fatal: display queue mode requires no recipient"]


def test_no_queue_directory(capsys, setup, stdin):
    setup.queue_dir.rmdir()
    assert run_tool(capsys, setup, "sendmail", "bob@example.com") == (
        75, "", f"sendmail: fatal: chdir {setup.queue_dir}: No such file or directory\n")
