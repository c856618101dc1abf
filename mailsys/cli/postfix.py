"""postfix - start, stop and look after the mail system (Postfix postfix(1)).

SYNOPSIS
    mailsys [-c DIR] start | start-fg | stop | abort | reload | status | check | flush
    mailsys [-c DIR] logrotate                       (mailsys.cli.logrotate)

DESCRIPTION
    start     checks the configuration (as `check`), then starts the master
              (services/master.py) detached: a new session, standard I/O on
              /dev/null, working directory /. The master writes its pid to
              $queue_directory/pid/master.pid and locks it. start returns 0
              only after the master reported that its listeners are open and
              its first processes are up; otherwise it prints why (already
              running, "bind 127.0.0.1 port 2525: Address already in use", a
              bad configuration) and exits 1.
    start-fg  the same in the foreground: this process becomes the master
              (for make run, systemd and containers); log lines are echoed
              to a terminal. Ctrl-C stops it like `stop`.
    stop      SIGTERM to the master: listeners close, children finish what
              they hold. Waits up to STOP_WAIT seconds (saying so after 5, as
              postfix-script does), then kills what is left.
    abort     SIGKILL to the master and its children at once.
    reload    checks the configuration, then SIGHUP to the master.
    status    "the mailsys mail system is running: PID: N" (exit 0) or
              "... is not running" (exit 1). A pid file whose process is gone,
              or whose lock nobody holds, is stale: not running.
    check     reads main.cf and master.cf as start would and prints their
              warnings (unused parameters, the chroot column); a bad value
              names file, line and parameter, and so does a pipe(8) entry
              with bad attributes (no user=, user=root, an unknown flag or
              macro). Exit 0 or 1.
    flush     sends the flush request (b"F") to the master.cf service named
              qmgr, like `postqueue -f`; exit 69 when the mail system is down
              or has no qmgr.

    Messages use Postfix's wording with "mailsys" for "Postfix", on
    standard error, prefixed "mailsys: "; start, stop, abort and reload
    messages are also logged as <syslog_name>/postfix-script, as Postfix does.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import structlog

from mailsys.cli.postconf_master import master_names
from mailsys.config import load, parse_master_cf
from mailsys.delivery.pipe_attr import check_service
from mailsys.errors import ConfigError, UsageError
from mailsys.maillog.files import check_prefixes
from mailsys.maillog.setup import configure
from mailsys.runtime import listeners
from mailsys.runtime.handoff import resolve_command
from mailsys.runtime.pidfile import pid_path, running
from mailsys.runtime.procs import child_states

log = structlog.get_logger()

NAME = "the mailsys mail system"
START_WAIT = 30.0          # the master's own READY_WAIT (10 s) plus interpreter start-ups
STOP_WAIT = 20.0           # the master's stop grace (12 s) plus a margin
STOP_PATIENCE = 5.0        # postfix-script: "waiting for ... to terminate" after this
EX_UNAVAILABLE = 69
QUEUE_SERVICE = "qmgr"
USAGE = ("Usage: mailsys start (or start-fg, stop, reload, abort, flush, check, status,"
         " logrotate)")


def say(text: str) -> None:
    print(f"mailsys: {text}", file=sys.stderr)


def fatal(text: str) -> int:
    print(f"mailsys: fatal: {text}", file=sys.stderr)
    return 1


def checked(config_dir: Path, *, quiet: bool = False):
    """checked - load both files as the master will; print warnings. Raises ConfigError.

    A main.cf name that a master.cf -o value refers to ($name) is used,
    as for postconf -n (Postfix's postconf_user.c)."""
    referenced, _ = master_names(config_dir)
    cfg = load(config_dir, referenced=referenced)
    warnings: list[str] = []
    specs = parse_master_cf(config_dir / "master.cf", cfg, warnings)
    for spec in specs:
        resolve_command(spec.command, file=spec.file, line=spec.line)
        if spec.command == "pipe":
            # pipe(8) reads its attributes only when it delivers; refuse
            # an entry it could never use now, with its line.
            check_service(spec, cfg.mail_owner, warnings)
        try:
            eps = listeners.endpoints(spec, cfg)
        except listeners.ListenError as e:
            raise ConfigError(str(e), file=spec.file, line=spec.line) from None
        for ep in eps:
            if ep.kind != "inet" and len(os.fsencode(ep.path)) > listeners.MAX_UNIX_PATH:
                raise ConfigError(f"socket path {ep.path} is longer than {listeners.MAX_UNIX_PATH}"
                                  " bytes; use a shorter queue_directory", file=spec.file, line=spec.line)
    if not quiet:
        for w in (*cfg.warnings, *warnings):
            say(f"warning: {w}")
    return cfg, specs


def _log_as_script(cfg, text: str) -> None:
    configure(cfg, "postfix-script")
    log.info(text)


def master_argv(config_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-P", "-m", "services.master", "-c", str(config_dir), *extra]


def cmd_start(config_dir: Path) -> int:
    cfg, _ = checked(config_dir)
    if running(pid_path(cfg)):
        return fatal(f"{NAME} is already running")
    say(f"starting {NAME}")
    _log_as_script(cfg, f"starting {NAME}")
    r, w = os.pipe()
    # Until it is ready the master's stderr is this unlinked file, so that a
    # crash before logging works can still be shown; then it lets go of it.
    with tempfile.TemporaryFile() as early_stderr:
        try:
            proc = subprocess.Popen(master_argv(config_dir, "--ready-fd", str(w)), pass_fds=(w,),
                                    start_new_session=True, cwd="/", stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=early_stderr)
        finally:
            os.close(w)
        try:
            line = _read_line(r, START_WAIT)
        finally:
            os.close(r)
        if line == "ok":
            return 0
        if line.startswith("error: "):
            return fatal(line[len("error: "):])
        try:
            status = f"status {proc.wait(timeout=5)}"
        except subprocess.TimeoutExpired:
            return fatal(f"{NAME} did not report ready within {START_WAIT:.0f}s; see the mail log")
        early_stderr.seek(0)
        sys.stderr.write(early_stderr.read()[-4000:].decode(errors="replace"))
        return fatal(f"the master exited during start-up ({status}); see the mail log")


def _read_line(fd: int, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()


def cmd_start_fg(config_dir: Path) -> int:
    cfg, _ = checked(config_dir)
    if running(pid_path(cfg)):
        return fatal(f"{NAME} is already running")
    say(f"starting {NAME}")
    sys.stdout.flush()
    sys.stderr.flush()
    argv = master_argv(config_dir, "--foreground")
    os.execv(argv[0], argv)
    return 1    # not reached


def _wait_gone(path: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while running(path):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _kill_all(pid: int) -> None:
    kids = list(child_states(pid))
    for p in (pid, *kids):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def cmd_stop(config_dir: Path) -> int:
    cfg = load(config_dir)
    path = pid_path(cfg)
    pid = running(path)
    if not pid:
        return fatal(f"{NAME} is not running")
    say(f"stopping {NAME}")
    _log_as_script(cfg, f"stopping {NAME}")
    os.kill(pid, signal.SIGTERM)
    if _wait_gone(path, STOP_PATIENCE):
        return 0
    say(f"waiting for {NAME} to terminate")
    if _wait_gone(path, STOP_WAIT - STOP_PATIENCE):
        return 0
    say(f"stopping {NAME} with force")
    _kill_all(pid)
    _wait_gone(path, 5)
    return 0


def cmd_abort(config_dir: Path) -> int:
    cfg = load(config_dir)
    path = pid_path(cfg)
    pid = running(path)
    if not pid:
        return fatal(f"{NAME} is not running")
    say(f"aborting {NAME}")
    _log_as_script(cfg, f"aborting {NAME}")
    _kill_all(pid)
    _wait_gone(path, 5)
    return 0


def cmd_reload(config_dir: Path) -> int:
    cfg, _ = checked(config_dir)
    pid = running(pid_path(cfg))
    if not pid:
        return fatal(f"{NAME} is not running")
    say(f"refreshing {NAME}")
    _log_as_script(cfg, f"refreshing {NAME}")
    os.kill(pid, signal.SIGHUP)
    return 0


def cmd_status(config_dir: Path) -> int:
    cfg = load(config_dir)
    pid = running(pid_path(cfg))
    if pid:
        say(f"{NAME} is running: PID: {pid}")
        return 0
    say(f"{NAME} is not running")
    return 1


def cmd_check(config_dir: Path) -> int:
    checked(config_dir)
    return 0


def cmd_flush(config_dir: Path) -> int:
    cfg, specs = checked(config_dir, quiet=True)
    # Postfix sends to the service named $queue_service_name ("qmgr"), whatever runs it.
    qmgr = [s for s in specs if s.name == QUEUE_SERVICE and s.type == "unix"]
    if not running(pid_path(cfg)) or not qmgr:
        print("mailsys: fatal: Cannot flush mail queue - mail system is down", file=sys.stderr)
        return EX_UNAVAILABLE
    path = listeners.socket_path(cfg, qmgr[0].name, qmgr[0].private)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(path))
            sock.sendall(b"F")
    except OSError as e:
        print(f"mailsys: fatal: Cannot flush mail queue - {path}: {e.strerror}", file=sys.stderr)
        return EX_UNAVAILABLE
    return 0


COMMANDS = {
    "start": cmd_start, "start-fg": cmd_start_fg, "stop": cmd_stop, "abort": cmd_abort,
    "reload": cmd_reload, "status": cmd_status, "check": cmd_check, "flush": cmd_flush,
}


def main(argv: list[str], config_dir: Path, command: str) -> int:
    if argv:
        raise UsageError(f"unexpected argument: {argv[0]!r}. {USAGE}")
    try:
        check_prefixes(load(config_dir))      # postfix(1) refuses it for every command
        return COMMANDS[command](config_dir)
    except ConfigError as e:
        return fatal(str(e))
