"""One pipe(8) delivery request against real commands: what they get, and the verdicts."""

from __future__ import annotations

import json
import os
import pwd
import time

import pytest

from mailsys.delivery.command import Outcome
from mailsys.delivery.pipe import Note, PipeSettings, deliver_request, diagnostic, pipe_verdict
from mailsys.delivery.pipe_attr import parse_attributes
from mailsys.ipc.proto.deliver import DeliverRecipient, DeliverRequest

NOBODY = pwd.getpwnam("nobody")
CONTENT = b"Subject: hi\r\n\r\nFrom here\r\n.dot\r\n"
# Writes its argv, uid, gid, cwd and environment as JSON, then its input, to $OUT_DIR/out.
RECORDER = """#!/usr/bin/python3
import json, os, sys
out = sys.argv[1]
with open(out, "wb") as f:
    f.write(json.dumps({"argv": sys.argv[2:], "uid": os.getuid(), "gid": os.getgid(),
                        "groups": os.getgroups(), "cwd": os.getcwd(),
                        "env": dict(os.environ)}).encode() + b"\\n")
    f.write(sys.stdin.buffer.read())
print(os.environ.get("SAY", ""), end="")
sys.exit(int(os.environ.get("EXIT", "0")))
"""


def request(*rcpts: str, sender="alice@example.org", size=len(CONTENT)) -> DeliverRequest:
    now = time.time()
    return DeliverRequest(
        queue_id="4F2A1C3B7D", transport="filter", nexthop="Example.COM", sender=sender,
        recipients=tuple(DeliverRecipient(i, r) for i, r in enumerate(rcpts)),
        arrival_time=now, size=size, queued_at=now, client_addr="192.0.2.7",
        client_name="c.example", client_port=40123, client_protocol="ESMTP")


@pytest.fixture
def recorder(shared_dir):
    script = shared_dir / "recorder"
    script.write_text(RECORDER)
    script.chmod(0o755)
    return script


def settings(*args: str, env=(), time_limit=10.0, queue_dir="/") -> PipeSettings:
    return PipeSettings(service="filter", attr=parse_attributes(["user=nobody", *args]),
                        time_limit=time_limit, env=(("PATH", "/usr/bin:/bin"), *env),
                        queue_directory=queue_dir, config_directory="/etc/mailsys",
                        delimiters="+")


def recorded(path):
    head, _, data = path.read_bytes().partition(b"\n")
    return json.loads(head), data


def test_command_gets_argv_input_and_rights(recorder, shared_dir):
    out = shared_dir / "out"
    s = settings("flags=DORhu", f"argv={recorder}", str(out), "-f", "${sender}", "--",
                 "${recipient}", "${user}", "$nexthop", "${client_address}:${client_port}",
                 queue_dir=str(shared_dir))
    [r] = deliver_request(request("Bob+Box@Example.COM"), CONTENT, s).results
    assert (r.status, r.dsn, r.reason, r.relay) == (
        "sent", "2.0.0", "delivered via filter service", "filter")
    info, data = recorded(out)
    assert info["argv"] == ["-f", "alice@example.org", "--", "bob+box@example.com", "bob",
                            "example.com", "192.0.2.7:40123"]
    if os.geteuid() == 0:
        assert (info["uid"], info["gid"], info["groups"]) == (
            NOBODY.pw_uid, NOBODY.pw_gid, [NOBODY.pw_gid])
    assert info["cwd"] == str(shared_dir)
    assert info["env"]["PATH"] == "/usr/bin:/bin"
    assert set(info["env"]) <= {"PATH", "LC_CTYPE"}      # LC_CTYPE: Python's own (PEP 538)
    assert data == (b"Return-Path: <alice@example.org>\nX-Original-To: Bob+Box@Example.COM\n"
                     b"Delivered-To: Bob+Box@Example.COM\nSubject: hi\n\nFrom here\n.dot\n")


@pytest.mark.parametrize("flags,action", [("flags=X", "delivered"), ("flags=q", "relayed")])
def test_flag_x_makes_the_success_final_delivery(recorder, shared_dir, flags, action):
    # Postfix 3.7.11: the same log text with and without X ("status=sent
    # (delivered via pipex service)"), and in the NOTIFY=SUCCESS report
    # "Action: delivered" for the X entry, "Action: relayed" for the other.
    s = settings(flags, f"argv={recorder}", str(shared_dir / "out"))
    [r] = deliver_request(request("a@example.com"), CONTENT, s).results
    assert (r.status, r.reason, r.action) == ("sent", "delivered via filter service", action)


def test_one_command_for_all_recipients(recorder, shared_dir):
    out = shared_dir / "out"
    s = settings(f"argv={recorder}", str(out), "${recipient}", env=(("SAY", "queued as 9\n"),))
    results = deliver_request(request("a@example.com", "b@example.com"), CONTENT, s).results
    assert [(r.index, r.status, r.reason) for r in results] == [
        (0, "sent", "delivered via filter service (queued as 9)"),
        (1, "sent", "delivered via filter service (queued as 9)")]
    assert recorded(out)[0]["argv"] == ["a@example.com", "b@example.com"]


@pytest.mark.parametrize("flag", ["D", "O"])
def test_d_and_o_need_one_recipient(recorder, shared_dir, flag):
    s = settings(f"flags={flag}", f"argv={recorder}", str(shared_dir / "out"))
    done = deliver_request(request("a@example.com", "b@example.com"), CONTENT, s)
    assert {(r.status, r.dsn, r.reason) for r in done.results} == {
        ("deferred", "4.3.5", "mail system configuration error")}
    # Postfix logs this one after the status lines
    assert done.notes == (Note("warning", f"pipe flag `{flag}' requires "
                                          "filter_destination_recipient_limit = 1", after=True),)
    assert not (shared_dir / "out").exists()


def test_size_limit_and_loop(recorder, shared_dir):
    s = settings("size=10", f"argv={recorder}", str(shared_dir / "out"))
    [r] = deliver_request(request("a@example.com"), CONTENT, s).results
    assert (r.status, r.dsn, r.reason) == ("bounced", "5.2.3", "message too large")
    s = settings("flags=D", f"argv={recorder}", str(shared_dir / "out"))
    [r] = deliver_request(request("A@example.com"), b"Delivered-To: a@Example.com\n\nx\n",
                          s).results
    assert (r.status, r.dsn, r.reason) == ("bounced", "5.4.6",
                                           "mail forwarding loop for A@example.com")
    assert not (shared_dir / "out").exists()


@pytest.mark.parametrize("code, say, status, dsn, reason, diag", [
    # as Postfix 3.7's pipe logged and reported the same exits
    (75, "", "deferred", "4.3.0", "temporary failure", "temporary failure"),
    (75, "busy\n", "deferred", "4.3.0", "temporary failure. Command output: busy ", "busy"),
    (67, "", "bounced", "5.1.1", "user unknown", "user unknown"),
    (1, "", "bounced", "5.3.0", 'Command died with status 1: "CMD"',
     "unknown mail system error 1"),
    (1, "4.2.2 over quota\n", "deferred", "4.2.2", "over quota ", "over quota"),
    (1, "5.7.1 go away", "bounced", "5.7.1", "go away", "go away"),
    (1, "2.0.0 fine", "bounced", "5.0.0", "fine", "fine"),
])
def test_exit_codes(recorder, shared_dir, code, say, status, dsn, reason, diag):
    s = settings(f"argv={recorder}", str(shared_dir / "out"),
                 env=(("EXIT", str(code)), ("SAY", say)))
    done = deliver_request(request("a@example.com"), CONTENT, s)
    [r] = done.results
    assert (r.status, r.dsn, r.reason, r.diagnostic) == (
        status, dsn, reason.replace("CMD", str(recorder)), f"x-unix; {diag}")
    if dsn == "5.0.0":
        assert done.notes == (Note("warning", 'bounce_append: ignoring dsn code "2.0.0"'),)


def test_time_limit_and_missing_command(shared_dir):
    started = time.monotonic()
    s = settings("argv=/bin/sleep", "30", time_limit=1)
    done = deliver_request(request("a@example.com"), CONTENT, s)
    assert time.monotonic() - started < 10
    [r] = done.results
    assert (r.status, r.dsn, r.reason, r.diagnostic) == (
        "bounced", "5.3.0", 'Command time limit exceeded: "/bin/sleep"',
        "x-unix; internal software error")
    assert done.notes == (Note("warning", "pipe_command_read: read time limit exceeded"),)
    done = deliver_request(request("a@example.com"), CONTENT, settings("argv=/no/such/cmd"))
    [r] = done.results
    assert (r.status, r.dsn, r.reason) == (
        "deferred", "4.3.0", "temporary failure. Command output: pipe: fatal: pipe_command: "
                             "execvp /no/such/cmd: No such file or directory ")
    assert done.notes == (
        Note("fatal", "pipe_command: execvp /no/such/cmd: No such file or directory"),)


def test_unusable_directory_is_only_logged(recorder, shared_dir):
    s = settings("directory=/nonexistent", f"argv={recorder}", str(shared_dir / "out"))
    done = deliver_request(request("a@example.com"), CONTENT, s)
    [r] = done.results
    assert (r.status, r.dsn, r.reason) == ("deferred", "4.3.0", "temporary failure")
    uid, gid = (NOBODY.pw_uid, NOBODY.pw_gid)
    assert done.notes == (Note("fatal", f'cannot change directory to "/nonexistent" for '
                                        f"uid={uid} gid={gid}: No such file or directory"),)


def test_unknown_macro_defers_with_postfix_warning(recorder, shared_dir):
    s = settings(f"argv={recorder}", "${nosuch}")
    done = deliver_request(request("a@example.com"), CONTENT, s)
    assert [(r.status, r.dsn) for r in done.results] == [("deferred", "4.3.5")]
    assert done.notes == (Note("warning", "file /etc/mailsys/master.cf: service filter: "
                                          'unknown macro name: "nosuch"'),)


def test_verdicts():
    assert pipe_verdict("x", "/cmd", Outcome(0)) == ("2.0.0", "delivered via x service")
    assert pipe_verdict("x", "/cmd", Outcome(0, "queued as 7 ")) == (
        "2.0.0", "delivered via x service (queued as 7)")
    assert pipe_verdict("x", "/cmd", Outcome(-9, "")) == (
        "4.3.0", 'Command died with signal 9: "/cmd"')
    assert diagnostic(Outcome(-9, "")) == "x-unix; internal software error"
    assert pipe_verdict("x", "/cmd", Outcome(-9, "", timed_out=True)) == (
        "5.3.0", 'Command time limit exceeded: "/cmd"')


def test_time_limit_parameter_per_service(tmp_path):
    from mailsys.config import load
    attr = parse_attributes(["user=nobody", "argv=/bin/cat"])
    (tmp_path / "main.cf").write_text("command_time_limit = 20m\nslow_time_limit = 5s\n"
                                      "export_environment = TZ LANG\n")
    cfg = load(tmp_path)
    assert PipeSettings.from_config(cfg, "dovecot", attr).time_limit == 1200.0
    assert PipeSettings.from_config(cfg, "slow", attr).time_limit == 5.0
    assert dict(PipeSettings.from_config(cfg, "slow", attr).env)["PATH"] == "/usr/bin:/bin"
