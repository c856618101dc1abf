"""|command delivery: environment, rights, exit status mapping and time limit (pipe_command(3))."""

from __future__ import annotations

import os
import pwd
import time

import pytest

from mailsys.delivery.command import CommandSpec, command_env, run_command, verdict
from mailsys.delivery.errors import DeliveryError

NOBODY = pwd.getpwnam("nobody")
AS = dict(uid=NOBODY.pw_uid, gid=NOBODY.pw_gid) if os.geteuid() == 0 else {}


@pytest.mark.parametrize("code, output, expected", [
    # as Postfix 3.7 logged them: "exit 75" -> deferred (temporary failure),
    # "exit 1" -> bounced (Command died with status 1: "exit 1")
    (0, "", ("2.0.0", "delivered to command: CMD")),
    (75, "", ("4.3.0", "temporary failure")),
    (75, "try later", ("4.3.0", "temporary failure. Command output: try later")),
    (1, "", ("5.3.0", 'Command died with status 1: "CMD"')),
    (2, "oops ", ("5.3.0", 'Command died with status 2: "CMD". Command output: oops ')),
    (67, "", ("5.1.1", "user unknown")),
    (73, "", ("5.2.0", "can't create user output file")),
    (71, "", ("4.3.0", "system resource problem")),
    (1, "4.2.2 mailbox full", ("4.2.2", "mailbox full")),
    (-9, "", ("4.3.0", 'Command died with signal 9: "CMD"')),
])
def test_verdict(code, output, expected):
    assert verdict("CMD", code, output) == expected


def test_verdict_time_limit():
    assert verdict("CMD", -9, "", timed_out=True) == ("5.3.0", 'Command time limit exceeded: "CMD"')


def test_environment_is_built_from_nothing(monkeypatch):
    monkeypatch.setenv("LANG", "C")
    monkeypatch.setenv("SECRET", "x")
    monkeypatch.delenv("TZ", raising=False)
    monkeypatch.delenv("MAIL_CONFIG", raising=False)
    env = dict(command_env({"USER": "pipe", "SENDER": "a b;$(x)@example.org", "EXTENSION": ""},
                           ("TZ", "MAIL_CONFIG", "LANG", "FOO=bar"), "/etc/mailsys"))
    assert env == {"MAIL_CONFIG": "/etc/mailsys", "LANG": "C", "FOO": "bar",
                   "PATH": "/usr/bin:/bin", "USER": "pipe", "SENDER": "a_b___x_@example.org"}


def test_runs_with_message_env_and_rights(shared_dir):
    out = shared_dir / "out"
    spec = CommandSpec(f"/bin/sh -c 'id -u > {out}; env >> {out}; cat >> {out}'",
                       env=(("PATH", "/usr/bin:/bin"), ("RECIPIENT", "pipe@example.test")),
                       **AS)
    assert run_command(spec, b"From a  x\nSubject: hi\n\nbody\n") == (
        "2.0.0", f"delivered to command: {spec.command}")
    lines = out.read_text().splitlines()
    assert lines[0] == str(NOBODY.pw_uid if AS else os.geteuid())
    assert "RECIPIENT=pipe@example.test" in lines
    assert lines[-4:] == ["From a  x", "Subject: hi", "", "body"]


def test_failures(tmp_path):
    with pytest.raises(DeliveryError) as e:
        run_command(CommandSpec("/bin/sh -c 'echo busy; exit 75'", **AS), b"x\n")
    assert (e.value.dsn, e.value.text) == ("4.3.0", "temporary failure. Command output: busy ")
    with pytest.raises(DeliveryError) as e:
        run_command(CommandSpec("/bin/false", **AS), b"x\n")
    assert (e.value.dsn, e.value.text) == ("5.3.0", 'Command died with status 1: "/bin/false"')
    with pytest.raises(DeliveryError) as e:
        run_command(CommandSpec("/nonexistent/prog -x", **AS), b"x\n")
    assert e.value.dsn == "4.3.0"
    assert e.value.text.startswith("temporary failure. Command output: local: fatal: "
                                   "pipe_command: execvp /nonexistent/prog: ")


def test_time_limit_kills_the_command_and_its_children():
    started = time.monotonic()
    with pytest.raises(DeliveryError) as e:
        run_command(CommandSpec("/bin/sh -c 'sleep 30 & sleep 30'", time_limit=1, **AS), b"")
    assert time.monotonic() - started < 10
    assert (e.value.dsn, e.value.text) == (
        "5.3.0", "Command time limit exceeded: \"/bin/sh -c 'sleep 30 & sleep 30'\"")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can be refused running as root")
def test_never_as_root():
    with pytest.raises(DeliveryError) as e:
        run_command(CommandSpec("/bin/true", uid=0, gid=0), b"")
    assert (e.value.dsn, e.value.text) == ("4.3.5", "mail system configuration error")
