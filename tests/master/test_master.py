"""The master supervisor with real processes: start, stop, reload, restarts, throttling."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mailsys.runtime import supervisor

pytestmark = pytest.mark.integration

ECHO = Path(__file__).with_name("echo_service.py")
TRIGGER = Path(__file__).with_name("trigger_service.py")


def echo_line(port, maxproc="-", args=""):
    return f"127.0.0.1:{port} inet n - n - {maxproc} {ECHO} {args}".rstrip()


def stress_of(conn):
    """The $stress of the echo process serving conn."""
    conn.sendall(b"stress?")
    return conn.recv(100)


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_start_status_stop(mailsys_instance):
    inst = mailsys_instance
    inst.start()
    pid = int(inst.pid_file.read_text())
    assert pid == inst.master_pid()
    status = inst.cli("status")
    assert status.returncode == 0
    assert f"the mailsys mail system is running: PID: {pid}" in status.stderr
    assert [p.argv[p.argv.index("-n") + 1] for p in inst.children()] == ["postlog"]
    inst.wait_log(f"mailsys/master[{pid}]: daemon started -- version 0.1.0,"
                  f" configuration {inst.config_dir}")
    # postlogd received the master's line (the socket is where maillog sends)
    # and is the process that holds mail.log open.
    [postlogd] = inst.children("postlog")
    fds = Path(f"/proc/{postlogd.pid}/fd")
    assert str(inst.log_path) in {os.readlink(fd) for fd in fds.iterdir()}

    stop = inst.stop()
    assert stop.returncode == 0, stop.stderr
    assert "stopping the mailsys mail system" in stop.stderr
    assert not inst.pid_file.exists()
    status = inst.cli("status")
    assert status.returncode == 1
    assert "the mailsys mail system is not running" in status.stderr
    assert inst.master_pid() is None and inst.children() == []
    assert f"mailsys/master[{pid}]: terminating on signal 15" in inst.log_text()
    for command in ("stop", "reload", "abort"):
        r = inst.cli(command)
        assert r.returncode == 1
        assert "mailsys: fatal: the mailsys mail system is not running" in r.stderr


def test_start_twice_is_refused(mailsys_running):
    again = mailsys_running.cli("start")
    assert again.returncode == 1
    assert "mailsys: fatal: the mailsys mail system is already running" in again.stderr
    assert mailsys_running.cli("status").returncode == 0


def test_port_in_use_names_host_and_port(mailsys_instance):
    inst = mailsys_instance
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        inst.write_config([echo_line(port)])
        r = inst.cli("start")
    assert r.returncode == 1
    assert f"bind 127.0.0.1 port {port}: Address already in use" in r.stderr
    assert "Traceback" not in r.stderr
    assert inst.cli("status").returncode == 1
    assert inst.master_pid() is None


def test_stale_pid_file_is_not_running(mailsys_instance):
    inst = mailsys_instance
    dead = subprocess.Popen(["true"])
    dead.wait()
    inst.pid_file.parent.mkdir(parents=True, exist_ok=True)
    inst.pid_file.write_text(f"{dead.pid:>10}\n")
    assert inst.cli("status").returncode == 1
    inst.start()
    assert int(inst.pid_file.read_text()) == inst.master_pid()


def test_check_bad_value_names_file_line_and_parameter(mailsys_instance):
    inst = mailsys_instance
    main_cf = inst.config_dir / "main.cf"
    lines = main_cf.read_text().splitlines()
    main_cf.write_text("\n".join([*lines, "message_size_limit = lots"]) + "\n")
    for command in ("check", "start"):
        r = inst.cli(command)
        assert r.returncode == 1
        assert f"{main_cf}, line {len(lines) + 1}" in r.stderr
        assert "message_size_limit" in r.stderr
        assert "Traceback" not in r.stderr
    assert inst.master_pid() is None


def test_check_prints_warnings_and_passes(mailsys_instance):
    inst = mailsys_instance
    inst.write_config([f"trig unix n - y - 1 {TRIGGER}"], main_cf={"no_such_parameter": "1"})
    r = inst.cli("check")
    assert r.returncode == 0, r.stderr
    assert "mailsys: warning: " in r.stderr
    assert "unused parameter: no_such_parameter=1" in r.stderr
    assert "chroot" in r.stderr


def test_check_takes_a_name_master_cf_refers_to_for_used(mailsys_instance):
    # As postconf -n: main.cf's my_checks is used by the service's -o value.
    inst = mailsys_instance
    inst.write_config([f"trig unix n - n - 1 {TRIGGER}",
                       "  -o smtpd_recipient_restrictions=$my_checks"],
                      main_cf={"my_checks": "permit_mynetworks, reject", "not_mine": "1"})
    r = inst.cli("check")
    assert r.returncode == 0, r.stderr
    assert "unused parameter: not_mine=1" in r.stderr
    assert "my_checks" not in r.stderr


@pytest.mark.parametrize("line, words", [
    ("nothere unix - - n - 1 no_such_daemon", "unknown command: no_such_daemon"),
    (f"relay fifo - - n - - {TRIGGER}", 'invalid type field "fifo"'),
])
def test_check_bad_service_names_master_cf_line(mailsys_instance, line, words):
    inst = mailsys_instance
    inst.write_config([line])
    r = inst.cli("check")
    assert r.returncode == 1
    assert f"{inst.config_dir / 'master.cf'}, line 2: " in r.stderr
    assert words in r.stderr


def test_inet_service_and_handler_errors(mailsys_instance):
    inst = mailsys_instance
    port = inst.free_port()
    inst.write_config([echo_line(port, args="-o syslog_name=mailsys/submission")])
    inst.start()
    with inst.connect(port) as s:
        assert inst.echo(s, b"hello\r\n") == b"hello\r\n"
    with inst.connect(port) as s:
        s.sendall(b"boom\r\n")
        assert s.recv(100) == b""                    # only this connection ends
    [child] = inst.children(f"127.0.0.1:{port}")
    inst.wait_log(f"mailsys/submission/echo[{child.pid}]: error: 127.0.0.1:{port}:"
                  " unexpected error in client handler")
    assert "RuntimeError: boom requested by the client" in inst.log_text()
    with inst.connect(port) as s:
        assert inst.echo(s, b"still here\n") == b"still here\n"


def test_reload_adds_removes_and_keeps_listeners(mailsys_instance):
    inst = mailsys_instance
    kept, added = inst.free_port(), inst.free_port()
    inst.write_config([echo_line(kept)])
    inst.start()
    before = inst.connect(kept)
    assert inst.echo(before, b"1") == b"1"
    assert refused(added)

    inst.write_config([echo_line(kept), echo_line(added)])
    assert inst.cli("reload").returncode == 0
    inst.wait_until(lambda: not refused(added))
    with inst.connect(added) as s:
        assert inst.echo(s, b"new") == b"new"
    assert inst.echo(before, b"2") == b"2"           # untouched service, same process

    # A changed entry gets new processes; the listener stays open throughout
    # and a connection accepted before the reload is still served.
    old = {p.pid for p in inst.children("127.0.0.1:%d" % kept)}
    inst.write_config([echo_line(kept, maxproc="3"), echo_line(added)])
    assert inst.cli("reload").returncode == 0
    stop = threading.Event()
    failures = []

    def hammer():
        while not stop.is_set():
            try:
                with inst.connect(kept) as s:
                    if inst.echo(s, b"x") != b"x":
                        failures.append("short echo")
            except OSError as e:
                failures.append(repr(e))

    t = threading.Thread(target=hammer)
    t.start()
    try:
        inst.wait_until(lambda: {p.pid for p in inst.children("127.0.0.1:%d" % kept)} - old)
        assert inst.echo(before, b"3") == b"3"
    finally:
        stop.set()
        t.join()
    assert failures == []
    before.close()

    inst.write_config([echo_line(kept)])
    assert inst.cli("reload").returncode == 0
    inst.wait_until(lambda: refused(added))
    with inst.connect(kept) as s:
        assert inst.echo(s, b"4") == b"4"
    assert inst.log_text().count("reload -- version 0.1.0") == 3


def test_child_killed_is_logged_and_restarted(mailsys_running):
    inst = mailsys_running
    [child] = inst.children("postlog")
    os.kill(child.pid, signal.SIGKILL)
    inst.wait_log(f"warning: process {Path(__file__).parents[2] / 'services' / 'postlogd.py'}"
                  f" pid {child.pid} killed by signal 9")
    [new] = inst.wait_until(lambda: inst.children("postlog"))
    assert new.pid != child.pid
    assert "bad command startup" not in inst.log_text()
    # The new postlogd writes the log again: a reload line arrives.
    assert inst.cli("reload").returncode == 0
    inst.wait_log("reload -- version")


def test_crash_at_startup_is_throttled(mailsys_instance):
    inst = mailsys_instance
    port = inst.free_port()
    inst.write_config([echo_line(port, args="crash")])
    inst.start()
    assert "exit status 3" not in inst.log_text()    # on demand: no process before a client
    waiting = socket.create_connection(("127.0.0.1", port), timeout=2)
    inst.wait_log(f"{ECHO}: bad command startup -- throttling")
    assert "exit status 3" in inst.log_text()
    time.sleep(1.0)                                   # far beyond the 0.1 s restart back-off
    assert inst.log_text().count("exit status 3") == 1
    assert not refused(port)                          # the listener stays, clients wait
    waiting.close()


def test_children_exit_when_master_is_killed(mailsys_instance):
    inst = mailsys_instance
    port = inst.free_port()
    inst.write_config([echo_line(port)])
    inst.start()
    with inst.connect(port) as s:                     # on demand: a client starts the echo
        assert inst.echo(s, b"a") == b"a"
    children = inst.children()
    assert len(children) == 2
    os.kill(inst.master_pid(), signal.SIGKILL)
    inst.wait_until(lambda: not inst.children(), timeout=5)
    assert inst.cli("status").returncode == 1


def test_abort_kills_everything(mailsys_running):
    inst = mailsys_running
    r = inst.cli("abort")
    assert r.returncode == 0
    assert "aborting the mailsys mail system" in r.stderr
    assert inst.master_pid() is None
    inst.wait_until(lambda: not inst.children(), timeout=2)


def test_graceful_stop_finishes_in_flight_connection(mailsys_instance):
    inst = mailsys_instance
    port = inst.free_port()
    inst.write_config([echo_line(port)])
    inst.start()
    conn = inst.connect(port)
    assert inst.echo(conn, b"a") == b"a"
    started = time.monotonic()
    stop = inst.popen("stop")
    inst.wait_until(lambda: refused(port), timeout=5)  # no new clients once stopping
    time.sleep(0.5)
    assert inst.echo(conn, b"b") == b"b"              # the accepted one is still served
    assert stop.poll() is None                         # and stop waits for it
    conn.close()
    stop.communicate(timeout=15)
    assert stop.returncode == 0
    assert time.monotonic() - started < 10             # ended when the client left, not at the bound
    assert inst.master_pid() is None and not inst.children()
    assert f"127.0.0.1:{port}: done" in inst.log_text()   # the skeleton's exit hook ran


def test_more_processes_when_all_are_busy(mailsys_instance):
    inst = mailsys_instance
    port = inst.free_port()
    inst.write_config([echo_line(port, maxproc="2", args="concurrency=1")])
    inst.start()
    name = f"127.0.0.1:{port}"
    assert inst.children(name) == []                  # on demand: none before a client
    first = inst.connect(port)
    assert inst.echo(first, b"1") == b"1"
    inst.wait_until(lambda: len(inst.children(name)) == 2)
    with inst.connect(port) as second:
        assert inst.echo(second, b"2") == b"2"         # served while the first is held
        # Both busy at the limit. A loopback-only service is local (Postfix's
        # MASTER_FLAG_LOCAL_ONLY): no stress mode, and no warning.
        assert stress_of(second) == b"-"
        time.sleep(2 * supervisor.TICK)
        assert len(inst.children(name)) == 2
        assert "process limit" not in inst.log_text()
    first.close()


def test_public_service_at_its_limit_enters_stress_mode_and_warns(mailsys_instance):
    inst = mailsys_instance
    port = inst.free_port()
    inst.write_config([f"0.0.0.0:{port} inet n - n - 2 {ECHO} concurrency=1"])
    inst.start()
    name = f"0.0.0.0:{port}"
    with inst.connect(port) as first:
        assert stress_of(first) == b"-"        # one process of two: no stress yet
        # Starting the process that reaches the limit puts the service in
        # stress mode: the running process is restarted (it keeps its
        # client) and the new ones get -o stress=yes.
        with inst.connect(port) as second, inst.connect(port) as third:
            assert stress_of(second) == b"yes"
            assert stress_of(third) == b"yes"
            assert inst.echo(first, b"still") == b"still"   # the restarted one finishes its client
            # The three lines are logged together; each is waited for, as
            # mail.log may get them in separate writes.
            inst.wait_log(f'warning: service "{name}" ([0.0.0.0]:{port}) has reached its '
                          'process limit "2": new clients may experience noticeable delays')
            inst.wait_log("warning: to avoid this condition, increase the process count in "
                          "master.cf or reduce the service time per client")
            inst.wait_log("warning: see http://www.postfix.org/STRESS_README.html for examples "
                          "of stress-adapting configuration settings")


def test_extra_idle_process_is_retired_after_max_idle(mailsys_instance):
    inst = mailsys_instance
    port = inst.free_port()
    inst.write_config([echo_line(port, maxproc="2", args="-o max_idle=1s concurrency=1")])
    inst.start()
    name = f"127.0.0.1:{port}"
    with inst.connect(port) as first:
        assert inst.echo(first, b"1") == b"1"
        inst.wait_until(lambda: len(inst.children(name)) == 2)
    # Every process of an on-demand service goes after max_idle, the first
    # too, and the next client starts one again.
    inst.wait_until(lambda: inst.children(name) == [], timeout=5)
    with inst.connect(port) as s:
        assert inst.echo(s, b"2") == b"2"
    assert "exit status" not in inst.log_text() and "killed by signal" not in inst.log_text()


def test_wakeup_and_triggers_are_coalesced(mailsys_instance):
    inst = mailsys_instance
    inst.write_config([f"trig unix n - n 1 1 {TRIGGER}"])
    inst.start()
    inst.wait_log("triggers: W", timeout=5)           # the master's wakeup, every second
    path = inst.queue_dir / "public" / "trig"
    for request in (b"D", b"F", b"DF"):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(path))
            s.sendall(request)
    inst.wait_until(lambda: "triggers: DF" in inst.log_text() or
                    ("triggers: D" in inst.log_text() and "triggers: F" in inst.log_text()))


def test_on_demand_trigger_service_is_retired_unless_it_has_a_loop(mailsys_instance):
    inst = mailsys_instance
    inst.write_config([f"trig unix n - n - 1 {TRIGGER} -o max_idle=2s",
                       f"busy unix n - n - 1 {TRIGGER} loop -o max_idle=2s"])
    inst.start()
    assert inst.children("trig") == [] and inst.children("busy") == []

    def trigger(name, request):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(inst.queue_dir / "public" / name))
            s.sendall(request)

    trigger("trig", b"D")
    trigger("busy", b"D")
    [first] = inst.wait_until(lambda: inst.children("trig"))
    [busy] = inst.wait_until(lambda: inst.children("busy"))
    inst.wait_log(f"mailsys/trigger[{first.pid}]: triggers: D")
    # A trigger run counts as a client: triggered more often than max_idle,
    # the process stays.
    for _ in range(10):
        time.sleep(0.3)
        trigger("trig", b"W")
    assert inst.children("trig") == [first]
    # Idle for max_idle after its last trigger run: retired, and the next
    # trigger starts a new process. The one with a loop stays.
    inst.wait_until(lambda: inst.children("trig") == [], timeout=8)
    time.sleep(2.5)
    assert inst.children("busy") == [busy]
    trigger("trig", b"F")
    [second] = inst.wait_until(lambda: inst.children("trig"))
    assert second.pid != first.pid
    inst.wait_log(f"mailsys/trigger[{second.pid}]: triggers: F")
    assert "exit status" not in inst.log_text() and "killed by signal" not in inst.log_text()


def test_start_fg_runs_in_the_foreground_and_stops_on_sigint(mailsys_instance):
    inst = mailsys_instance
    fg = inst.popen("start-fg")
    try:
        pid = inst.wait_until(inst.master_pid)
        assert pid == fg.pid                              # the command became the master
        inst.wait_until(lambda: inst.cli("status").returncode == 0)
        inst.wait_until(lambda: inst.children("postlog"))
        fg.send_signal(signal.SIGINT)
        fg.communicate(timeout=20)
    finally:
        if fg.poll() is None:
            fg.kill()
            fg.communicate()
    assert fg.returncode == 0
    assert not inst.children()
    assert f"terminating on signal {int(signal.SIGINT)}" in inst.log_text()


def test_ipv6_loopback_service(mailsys_instance):
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    inst = mailsys_instance
    port = inst.free_port()
    inst.write_config([f"[::1]:{port} inet n - n - - {ECHO}", f"{port} inet n - n - - {ECHO}"],
                      main_cf={"inet_interfaces": "127.0.0.1"})
    r = inst.cli("start")
    # the second service wants 127.0.0.1:port too, which the first does not hold
    assert r.returncode == 0, r.stderr
    with socket.create_connection(("::1", port), timeout=5) as s:
        assert inst.echo(s, b"v6") == b"v6"
    with inst.connect(port) as s:
        assert inst.echo(s, b"v4") == b"v4"


def test_master_imports_no_lmdb():
    code = "import sys, services.master; assert 'lmdb' not in sys.modules, 'lmdb imported'"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_postlogd_follows_log_rotation(mailsys_running):
    inst = mailsys_running
    inst.wait_log("daemon started")
    [postlogd] = inst.children("postlog")
    rotated = inst.log_path.with_name("mail.log.1")
    inst.log_path.rename(rotated)
    # Lines logged between the rename and the reopen may still reach the old
    # file, as with syslog; the reload's SIGHUP makes postlogd reopen at once.
    assert inst.cli("reload").returncode == 0
    inst.wait_until(lambda: "reload -- version" in inst.log_text() + rotated.read_text())
    assert inst.cli("reload").returncode == 0
    inst.wait_log(f"mailsys/master[{inst.master_pid()}]: reload -- version")
    assert inst.children("postlog") == [postlogd]       # reopened, not restarted


def test_flush_triggers_qmgr(mailsys_instance):
    inst = mailsys_instance
    inst.write_config([f"qmgr unix n - n - 1 {TRIGGER}"])
    down = inst.cli("flush")
    assert down.returncode == 69
    assert "Cannot flush mail queue - mail system is down" in down.stderr
    inst.start()
    assert inst.children("qmgr") == []                # no wakeup: started on demand
    assert inst.cli("flush").returncode == 0
    [qmgr] = inst.wait_until(lambda: inst.children("qmgr"))
    inst.wait_log(f"mailsys/trigger[{qmgr.pid}]: triggers: F")


def test_start_reports_a_queue_directory_it_cannot_make(mailsys_instance):
    inst = mailsys_instance
    blocker = inst.root / "not-a-dir"
    blocker.write_text("")
    inst.write_config(main_cf={"queue_directory": str(blocker / "queue")})
    r = inst.cli("start")
    assert r.returncode == 1
    assert f"mailsys: fatal: {blocker / 'queue'}: Not a directory" in r.stderr
    assert "Traceback" not in r.stderr


def test_bad_configuration_is_not_loaded_by_reload(mailsys_instance):
    inst = mailsys_instance
    port = inst.free_port()
    inst.write_config([echo_line(port)])
    inst.start()
    (inst.config_dir / "master.cf").write_text(
        (inst.config_dir / "master.cf").read_text() + "broken unix x - n - 1 postlogd\n")
    r = inst.cli("reload")
    assert r.returncode == 1
    assert f"{inst.config_dir / 'master.cf'}, line 3" in r.stderr
    # A SIGHUP that bypasses the check is refused by the master itself.
    os.kill(inst.master_pid(), signal.SIGHUP)
    inst.wait_log("warning: reload failed, keeping the running configuration:")
    with inst.connect(port) as s:
        assert inst.echo(s, b"ok") == b"ok"


# The master run in a wrapper that counts its main.cf loads and says so at exit.
COUNTED_MASTER = """
import sys
import services.master as master
real, loads = master.load, []
master.load = lambda *a, **k: loads.append(1) or real(*a, **k)
status = master.main(sys.argv[1:])
print(f"main.cf loads: {len(loads)}", file=sys.stderr)
sys.exit(status)
"""


def counted_master(inst) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", COUNTED_MASTER, "-c", str(inst.config_dir),
                             "--foreground"], stderr=subprocess.PIPE, text=True)


def test_the_master_reads_main_cf_once_at_start(mailsys_instance):
    # Once for $import_environment and itself: the environment it strips
    # and the configuration it runs come from one reading of the file.
    inst = mailsys_instance
    master = counted_master(inst)
    try:
        inst.wait_until(lambda: inst.children("postlog"), timeout=20)
        inst.wait_log("daemon started -- version")
        master.send_signal(signal.SIGTERM)
        _, err = master.communicate(timeout=30)
    finally:
        if master.poll() is None:
            master.kill()
            master.communicate()
    assert master.returncode == 0, err
    assert "main.cf loads: 1\n" in err


def test_a_bad_main_cf_is_reported_once_with_file_and_line(mailsys_instance):
    inst = mailsys_instance
    main_cf = inst.config_dir / "main.cf"
    lines = main_cf.read_text().splitlines()
    main_cf.write_text("\n".join([*lines, "message_size_limit = lots"]) + "\n")
    master = counted_master(inst)
    _, err = master.communicate(timeout=30)
    assert master.returncode == 1
    assert err.count(f"mailsys: fatal: {main_cf}, line {len(lines) + 1}: ") == 1, err
    assert "message_size_limit" in err and "main.cf loads: 1\n" in err
    assert not inst.children()
