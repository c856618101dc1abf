"""The master<->child contract without processes: argv, status records, exit wording, pid file."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mailsys.errors import ConfigError
from mailsys.runtime import handoff, pidfile, procs, status


def test_argv_round_trip():
    args = handoff.ChildArgs(config_dir=Path("/etc/mailsys"), service="submission", type="inet",
                             overrides=(("syslog_name", "mailsys/submission"),
                                        ("smtpd_tls_security_level", "encrypt")),
                             gen=3, maxproc=0, status_fd=7, alive_fd=8, listen_fds=(5, 6),
                             args=("-v", "--", "x=y"))
    cmd = handoff.Command(("python", "-P", "-m", "services.smtpd"), "/x/services/smtpd.py")
    argv = handoff.build_argv(cmd, args)
    assert argv[:4] == ["python", "-P", "-m", "services.smtpd"]
    assert handoff.parse_argv(argv[4:]) == args
    assert set(args.pass_fds) == {5, 6, 7, 8}


def test_override_value_may_hold_equals_signs():
    parsed = handoff.parse_argv(["-c", "/e", "-n", "s", "-t", "unix", "-o", "a=b=c"])
    assert parsed.overrides == (("a", "b=c"),)
    assert parsed.listen_fds == () and parsed.status_fd is None


def test_commands_resolve_to_services_modules_or_absolute_files(tmp_path):
    cmd = handoff.resolve_command("postlogd")
    assert cmd.argv[1:] == ("-P", "-m", "services.postlogd")
    assert cmd.path.endswith("/services/postlogd.py")
    script = tmp_path / "d.py"
    script.write_text("")
    assert handoff.resolve_command(str(script)).argv[1:] == ("-P", str(script))
    for bad in ("nosuchdaemon", "../x", str(tmp_path / "missing.py")):
        with pytest.raises(ConfigError) as e:
            handoff.resolve_command(bad, file="master.cf", line=9)
        assert str(e.value).startswith("master.cf, line 9: ")


@pytest.mark.parametrize("step", [None, 1, 4])
def test_status_records_split_anywhere(step):
    records = [status.Status(10, 1, status.State.READY), status.Status(10, 1, status.State.BUSY),
               status.Status(10, 2, status.State.IDLE)]
    data = b"".join(status.encode(r) for r in records)
    dec = status.StatusDecoder()
    step = step or len(data)
    got = [r for i in range(0, len(data), step) for r in dec.feed(data[i:i + step])]
    assert got == records


def test_reporter_writes_only_changes():
    r, w = os.pipe()
    rep = status.StatusReporter(w, gen=4)
    for s in (status.State.READY, status.State.BUSY, status.State.BUSY, status.State.IDLE):
        rep.report(s)
    rep.close()
    with os.fdopen(r, "rb") as f:
        got = status.StatusDecoder().feed(f.read())
    assert [(x.pid, x.gen, x.state) for x in got] == [
        (os.getpid(), 4, status.State.READY), (os.getpid(), 4, status.State.BUSY),
        (os.getpid(), 4, status.State.IDLE)]


def test_exit_wording_is_postfix():
    assert procs.exit_warning("/p/smtpd.py", 12, 1) == "process /p/smtpd.py pid 12 exit status 1"
    assert procs.exit_warning("/p/smtpd.py", 12, -9) == "process /p/smtpd.py pid 12 killed by signal 9"
    assert procs.exit_warning("/p/smtpd.py", 12, 0) is None


def test_pid_file_lock_decides_running(tmp_path):
    path = tmp_path / "pid" / "master.pid"
    assert pidfile.running(path) is None
    holder = pidfile.PidFile(path)
    assert holder.acquire()
    assert pidfile.running(path) == os.getpid()
    assert not pidfile.PidFile(path).acquire()          # a second master is refused
    holder.release(remove=False)
    assert path.exists() and pidfile.running(path) is None   # left behind: stale
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    path.write_text(f"{dead.pid:>10}\n")
    assert pidfile.running(path) is None


def endpoints_for(tmp_path, main_cf, line):
    from mailsys.config import load, parse_master_cf
    from mailsys.runtime import listeners

    (tmp_path / "main.cf").write_text(f"queue_directory = /q\n{main_cf}\n")
    (tmp_path / "master.cf").write_text(line + "\n")
    cfg = load(tmp_path)
    [spec] = parse_master_cf(tmp_path / "master.cf", cfg)
    return [(e.kind, e.host, e.port, e.path) for e in listeners.endpoints(spec, cfg)]


def test_endpoints_follow_inet_interfaces_and_protocols(tmp_path):
    assert endpoints_for(tmp_path, "inet_interfaces = loopback-only\ninet_protocols = ipv4",
                         "2525 inet n - n - - smtpd") == [("inet", "127.0.0.1", 2525, "")]
    assert endpoints_for(tmp_path, "inet_interfaces = 127.0.0.1, 127.0.0.2",
                         "2525 inet n - n - - smtpd") == [("inet", "127.0.0.1", 2525, ""),
                                                          ("inet", "127.0.0.2", 2525, "")]
    assert endpoints_for(tmp_path, "inet_interfaces = all", "127.0.0.1:25 inet n - n - - smtpd") \
        == [("inet", "127.0.0.1", 25, "")]
    assert endpoints_for(tmp_path, "", "cleanup unix n - n - 0 postlogd") \
        == [("unix", "", 0, "/q/public/cleanup")]
    assert endpoints_for(tmp_path, "", "postlog unix-dgram - - n - 1 postlogd") \
        == [("unix-dgram", "", 0, "/q/private/postlog")]
