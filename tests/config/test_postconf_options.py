"""postconf's command line: modes, modifiers and Postfix's compatibility matrix."""

import shutil
import subprocess

import pytest

from mailsys.cli.postconf_options import parse
from mailsys.errors import UsageError


@pytest.mark.parametrize("argv, message", [
    # Each message as Postfix 3.7.11's postconf gives it for the same command line.
    (["-d", "-n"], "specify one of -d -n"),
    (["-M", "-p"], "specify one of -M -p"),
    (["-l", "-m", "-M"], "specify one of -l -m -M"),
    (["-e", "-X", "a"], "specify one of -e -X"),
    (["-f", "-X", "a"], "specify one of -f -X"),
    (["-h", "-e", "a=b"], "specify one of -e -h"),
    (["-b", "-t"], "specify one of -b and -t"),
    (["-t", "-b"], "specify one of -b and -t"),
    (["-Mh"], "with option -M, do not specify -h"),
    (["-M", "-d"], "with option -M, do not specify -d"),
    (["-Fn"], "with option -F, do not specify -n"),
    (["-F", "-X", "a"], "with option -F, do not specify -X"),
    (["-P", "-#", "a"], "with option -P, do not specify -#"),
    (["-P", "-n", "-h"], "with option -P, do not specify -n"),
    (["-m", "-x", "-n"], "with option -m, do not specify -n -x"),
    (["-l", "-f"], "with option -l, do not specify -f"),
    (["-a", "-m", "-l"], "specify one of -a -l -m"),
    (["-A", "-x"], "with option -A, do not specify -x"),
    (["-T", "run-version", "-n", "-x"], "with option -T, do not specify -n -x"),
    (["-T", "run-version", "-T", "run-version"], "At most one -T <mode> option may be specified"),
    (["-e"], "-e requires name=value argument"),
    (["-Me"], "-e requires name=value argument"),
])
def test_a_bad_combination_gets_postfixs_message(argv, message):
    with pytest.raises(UsageError) as e:
        parse(argv)
    assert str(e.value) == message


def test_options_end_at_the_first_name():
    # Postfix's GETOPT() is POSIX getopt(): "-h" after a name is a name.
    inv = parse(["relayhost", "-h"])
    assert (inv.mode, inv.flags, inv.names) == ("-p", frozenset(), ("relayhost", "-h"))


@pytest.mark.parametrize("argv, mode", [
    (["mydomain=example.com"], "-p"),
    (["-M", "x/unix=x unix - n n - - pipe"], "-M"),
    (["-P", "relay/unix/syslog_name=relay"], "-P"),
])
def test_a_name_value_argument_is_an_edit(argv, mode):
    inv = parse(argv)
    assert (inv.mode, inv.edit) == (mode, "-e")


def test_p_and_v_are_accepted():
    inv = parse(["-p", "-v", "-v", "-n"])
    assert (inv.mode, inv.flags) == ("-p", frozenset({"-n"}))


def test_a_bad_option_prints_getopts_line_then_usage(capsys):
    with pytest.raises(UsageError) as e:
        parse(["-Z"])
    assert capsys.readouterr().err == "postconf: invalid option -- 'Z'\n"
    assert str(e.value).startswith("usage: postconf [-")


def test_a_missing_argument_is_fatal_with_exit_1(confdir, run_cli):
    d = confdir("myhostname = a.example\n")
    for args, message in ((["-X"], "missing service argument"),
                          (["-MX"], "missing service argument"),
                          (["-b", "a", "b"], "options -b and -t require at most one template file")):
        r = run_cli(d, "postconf", *args)
        assert (r.returncode, r.stdout, r.stderr) == (1, "", f"postconf: fatal: {message}\n"), args


def test_a_name_value_argument_edits_main_cf(confdir, run_cli):
    d = confdir("myhostname = a.example\n")
    r = run_cli(d, "postconf", "mydomain = example.org")
    assert (r.returncode, r.stderr) == (0, "")
    assert (d / "main.cf").read_text() == "myhostname = a.example\nmydomain = example.org\n"


BAD_COMMAND_LINES = (["-d", "-n"], ["-Mh"], ["-m", "-x", "-n"], ["-b", "-t"], ["-e"],
                     ["-X"], ["-F", "-X", "a"], ["-b", "a", "b"], ["-Z"], ["-c"])


@pytest.mark.skipif(shutil.which("postconf") is None, reason="Postfix is not installed")
@pytest.mark.parametrize("args", BAD_COMMAND_LINES)
def test_bad_command_lines_fail_as_postfixs(tmp_path, confdir, run_cli, args):
    ours = confdir("compatibility_level = 3.6\n", "")
    r = run_cli(ours, "postconf", *args)
    theirs = subprocess.run(["postconf", "-c", str(ours), *args], capture_output=True,
                            text=True, timeout=30)
    assert r.returncode == theirs.returncode == 1
    # The usage line itself lists what each build offers; the rest is the same.
    assert r.stderr.split("usage:")[0] == theirs.stderr.split("usage:")[0]


def test_C_reads_classes_and_goes_with_every_mode():
    assert parse(["-C", "Builtin user"]).classes == frozenset({"builtin", "user"})
    assert parse(["-C", "all,"]).classes == frozenset({"builtin", "service", "user"})
    assert parse(["-C", ""]).classes == frozenset()
    # Postfix checks -C as it reads it, and never against the mode.
    assert parse(["-C", "user", "-M"]).mode == "-M"
    with pytest.raises(UsageError) as e:
        parse(["-C", "bogus", "-d", "-n"])
    assert str(e.value) == 'unknown -C option value "bogus" in "bogus"'
