"""command - deliver a message to a |command of an alias (Postfix local(8) command.c, pipe_command(3)).

SYNOPSIS
    spec = CommandSpec(command="/usr/bin/procmail -a x", uid=65534, gid=65534,
                       env=command_env(...), time_limit=1000)
    dsn, text = run_command(spec, message)      # ("2.0.0", "delivered to command: ...")
    # or raises DeliveryError(dsn, text): 4.x.x defers, 5.x.x bounces

DESCRIPTION
    The message goes to the command's standard input as Postfix's local
    writes it: ``From SENDER  DATE``, ``Return-Path:``, ``X-Original-To:``,
    ``Delivered-To:``, then the message with LF line ends (no ``>From``
    quoting, no closing empty line). The command runs

      * as uid/gid (with no other groups) in a session of its own, when
        mailsys runs as root; never as root (a configuration error, 4.3.5);
      * through $local_command_shell, or /bin/sh -c when the command has
        shell metacharacters, else split on blanks and executed directly;
      * with an environment made from nothing: PATH=/usr/bin:/bin, the
        $export_environment names (MAIL_CONFIG is the configuration
        directory), and local(8)'s variables: HOME and SHELL (not with
        $default_privs), LOGNAME and USER (the recipient's user name),
        SENDER, RECIPIENT, LOCAL, DOMAIN, EXTENSION, ORIGINAL_RECIPIENT,
        each value with characters outside $command_expansion_filter
        turned into ``_``;
      * for at most $command_time_limit: then the command and everything
        it started are killed.

    Its standard output and error are kept (the first 4096 bytes, tabs and
    newlines made blanks, other unprintable bytes ``_``) for the status
    text. The exit status, as pipe_command(3) reads it:

        0                       2.0.0 delivered to command: CMD
        killed by the time limit 5.3.0 Command time limit exceeded: "CMD"
        killed by a signal       4.3.0 Command died with signal N: "CMD"
        output "D.S.N text"      that status and text
        a <sysexits.h> code      its status and text: 75 EX_TEMPFAIL is
                                 4.3.0 "temporary failure" (deferred),
                                 67 EX_NOUSER 5.1.1 "user unknown", ...
        any other code           5.3.0 Command died with status N: "CMD"

    and ``. Command output: OUTPUT`` follows when there was any. A command
    that cannot be started defers (Postfix's child exits with EX_TEMPFAIL).

    The pieces are the pipe(8) agent's too (mailsys.delivery.pipe): spawn()
    runs an argument vector and says how it ended (an Outcome), failure()
    turns an Outcome that is not success into Postfix's status and text.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile

from mailsys.delivery.errors import DeliveryError
from mailsys.frozen import frozen

__all__ = ["CommandSpec", "Outcome", "run_command", "spawn", "verdict", "failure",
           "command_env", "SYS_EXITS", "DSN_TEXT", "DEFAULT_EXPANSION_FILTER"]

# src/global/sys_exits.c.
SYS_EXITS = {
    64: ("5.3.0", "command line usage error"),
    65: ("5.6.0", "data format error"),
    66: ("5.3.0", "cannot open input"),
    67: ("5.1.1", "user unknown"),
    68: ("5.1.2", "host name unknown"),
    69: ("5.3.0", "service unavailable"),
    70: ("5.3.0", "internal software error"),
    71: ("4.3.0", "system resource problem"),
    72: ("5.3.0", "critical OS file missing"),
    73: ("5.2.0", "can't create user output file"),
    74: ("5.3.0", "input/output error"),
    75: ("4.3.0", "temporary failure"),
    76: ("5.5.0", "remote error in protocol"),
    77: ("5.7.0", "permission denied"),
    78: ("5.3.5", "local configuration error"),
}
EX_TEMPFAIL = 75
OUTPUT_LIMIT = 4096                       # Postfix VSTREAM_BUFSIZE
DEFAULT_PATH = "/usr/bin:/bin"            # _PATH_DEFPATH
DEFAULT_EXPANSION_FILTER = ("1234567890!@%-_=+:,./abcdefghijklmnopqrstuvwxyz"
                            "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
# exec_command(3): with any of these the shell runs the command.
_SHELL_META = set("!\"#$%&'()*;<>?[\\]`{|}~=\n\r")
DSN_TEXT = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\s+(.*)$", re.S)


@frozen
class Outcome:
    """How a command ended: its exit status (-N: killed by signal N), its
    output as a status text may quote it, and whether the time limit did it."""

    returncode: int
    output: str = ""
    timed_out: bool = False
    child_error: str = ""      # the "fatal:" line of a child that could not run the command


@frozen
class CommandSpec:
    command: str
    uid: int | None = None                 # None: run as ourselves (not root)
    gid: int | None = None
    env: tuple[tuple[str, str], ...] = ()
    shell: str = ""                        # local_command_shell
    time_limit: float = 1000.0
    cwd: str | None = None


def command_env(values: dict[str, str], export: tuple[str, ...], config_dir: str,
                allowed: str = DEFAULT_EXPANSION_FILTER) -> tuple[tuple[str, str], ...]:
    """The command's whole environment (see DESCRIPTION); values in local(8)'s order."""
    env: dict[str, str] = {}
    for item in export:
        name, eq, value = item.partition("=")
        if eq:
            env[name] = value
        elif name in os.environ:
            env[name] = os.environ[name]
        elif name == "MAIL_CONFIG":
            env[name] = config_dir
    env["PATH"] = DEFAULT_PATH
    for name, value in values.items():
        if value:
            env[name] = filtered(value, allowed)
    return tuple(env.items())


def filtered(value: str, allowed: str) -> str:
    """value with every character outside allowed turned into "_"
    ($command_expansion_filter, $execution_directory_expansion_filter)."""
    ok = set(allowed)
    return "".join(c if c in ok else "_" for c in value)


def _argv(spec: CommandSpec) -> list[str]:
    if spec.shell:
        return [*spec.shell.split(), spec.command]
    if any(c in _SHELL_META for c in spec.command):
        return ["/bin/sh", "-c", spec.command]
    return spec.command.split()


def _printable(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").replace("\t", " ").replace("\n", " ")
    return "".join(c if c.isprintable() else "_" for c in text)


def failure(command: str, outcome: Outcome) -> tuple[str, str]:
    """(dsn, text) for a command that did not exit 0 (pipe_command(3))."""
    output = outcome.output
    tail = f". Command output: {output}" if output else ""
    if outcome.timed_out:
        return "5.3.0", f'Command time limit exceeded: "{command}"{tail}'
    if outcome.returncode < 0:
        return "4.3.0", f'Command died with signal {-outcome.returncode}: "{command}"{tail}'
    m = DSN_TEXT.match(output)
    if m:
        return f"{m.group(1)}.{m.group(2)}.{m.group(3)}", m.group(4)
    if outcome.returncode in SYS_EXITS:
        dsn, text = SYS_EXITS[outcome.returncode]
        return dsn, f"{text}{tail}"
    return "5.3.0", f'Command died with status {outcome.returncode}: "{command}"{tail}'


def verdict(command: str, returncode: int, output: str, timed_out: bool = False
            ) -> tuple[str, str]:
    """(dsn, text) for how the command ended, as local(8) reports it."""
    if returncode == 0 and not timed_out:
        return "2.0.0", f"delivered to command: {command}"
    return failure(command, Outcome(returncode, output, timed_out))


def spawn(argv: list[str], message: bytes, *, uid: int | None = None, gid: int | None = None,
          env: tuple[tuple[str, str], ...] = (), cwd: str | None = None,
          time_limit: float = 1000.0, program: str = "local") -> Outcome:
    """Run argv (searched in the environment's PATH) with the message on its
    input, as uid/gid when we are root, in a session of its own; how it
    ended. A command that cannot be started ends as Postfix's child does
    when its exec fails: exit status 75 with a "fatal:" line as output."""
    as_user = {}
    if os.geteuid() == 0 and uid is not None and gid is not None:
        # set_ugid(3): the group list is the one group.
        as_user = dict(user=uid, group=gid, extra_groups=[gid])
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out, stderr=out,
                                    env=dict(env), cwd=cwd, start_new_session=True,
                                    close_fds=True, **as_user)
        except OSError as e:
            why = os.strerror(e.errno or 0)
            if cwd is not None and e.filename == cwd:
                # Postfix's child fails here before its messages go to the
                # command output: the line is only logged.
                text = f'cannot change directory to "{cwd}" for uid={uid} gid={gid}: {why}'
                return Outcome(EX_TEMPFAIL, "", child_error=text)
            text = f"pipe_command: execvp {argv[0]}: {why}"
            # The child's message ends in a newline, which becomes a blank.
            output = _printable(f"{program}: fatal: {text}\n".encode())
            return Outcome(EX_TEMPFAIL, output, child_error=text)
        timed_out = False
        try:
            proc.communicate(message, timeout=time_limit)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc.pid)
            proc.wait()
        except BaseException:
            _kill_group(proc.pid)
            proc.wait()
            raise
        out.seek(0)
        output = _printable(out.read(OUTPUT_LIMIT))
    return Outcome(proc.returncode, output, timed_out)


def run_command(spec: CommandSpec, message: bytes, program: str = "local") -> tuple[str, str]:
    """Run the command with the message on its input: (dsn, text) when it
    was delivered; DeliveryError otherwise."""
    if os.geteuid() == 0 and (spec.uid in (None, 0) or spec.gid in (None, 0)):
        raise DeliveryError("4.3.5", "mail system configuration error")
    argv = _argv(spec)
    if not argv:
        raise DeliveryError("5.3.0", f'Command died with status 0: "{spec.command}"')
    outcome = spawn(argv, message, uid=spec.uid, gid=spec.gid, env=spec.env, cwd=spec.cwd,
                    time_limit=spec.time_limit, program=program)
    dsn, text = verdict(spec.command, outcome.returncode, outcome.output, outcome.timed_out)
    if dsn.startswith("2"):
        return dsn, text
    raise DeliveryError(dsn, text, fatal=outcome.child_error)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
