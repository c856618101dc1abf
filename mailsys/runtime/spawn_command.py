"""spawn_command - run a command on a client connection (Postfix spawn_command(3), spawn(8)).

SYNOPSIS
    job = SpawnJob(attrs, time_limit=1000.0, env=(("PATH", "/usr/bin:/bin"),), cwd="/var/spool/x")
    status = await job.run(sock)          # wait(2)-style: 0, N > 0 exit status, -N signal

DESCRIPTION
    SpawnJob.run() gives the connected socket to a new process as its
    standard input, output and error (the socket becomes blocking first:
    the descriptor's flags are shared with the command, which expects
    ordinary blocking reads), runs attrs.argv without a shell in a session
    of its own, with exactly the environment `env`, in the directory
    `cwd`, and waits for it to exit. The caller closes its own copy of the
    socket afterwards; the client sees end-of-file once the command (and
    whatever it started) has let go of the descriptors too.

    Privileges. As root, the command runs with attrs.uid and attrs.gid and
    no other group (Postfix set_ugid()). mailsys normally runs without
    root, and then the command runs as mailsys itself: there is no other
    account it could switch to, as local(8)'s commands.

    Time limit. A command still running after time_limit seconds is killed
    with its whole process group (SIGKILL), after Postfix's warning
    "ARGV0: process id PID: command time limit exceeded".

    Exit. As Postfix's spawn(8), a command that does not exit with status 0
    is reported: "command ARGV0 exit status N" or "command ARGV0 killed by
    signal N" (warnings). A command that cannot be executed is logged as
    Postfix 3.7's forked child logs its failed execvp(), "fatal:
    spawn_comand: execvp ARGV0: REASON" (sic), and counts as exit status 1,
    which is how that child exits.

    Postfix 3.7 itself cannot kill a command that runs as another user at
    its time limit: spawn has given up root by then (its kill() fails with
    EPERM), so it logs the time-limit warning and waits for the command to
    end on its own. mailsys kills it, as spawn(8) says it does, and then
    logs "command ARGV0 killed by signal 9" as spawn would.

    Cancellation (the service is stopping and its grace period is over)
    kills the process group as the time limit does, and reaps the command.
"""

from __future__ import annotations

import os
import signal
import socket

import structlog
import trio

from mailsys.config.spawn_attributes import SpawnAttributes
from mailsys.frozen import frozen

__all__ = ["SpawnJob", "exit_warning", "EXEC_FAILED"]

log = structlog.get_logger()

# Postfix's child calls msg_fatal() when execvp() fails: exit status 1.
EXEC_FAILED = 1


def exit_warning(argv0: str, status: int) -> str | None:
    """spawn(8)'s warning for a command's wait status, None for a normal exit."""
    if status > 0:
        return f"command {argv0} exit status {status}"
    if status < 0:
        return f"command {argv0} killed by signal {-status}"
    return None


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@frozen
class SpawnJob:
    """One spawn service's command and how to run it."""

    attrs: SpawnAttributes
    time_limit: float
    env: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None

    def _privileges(self) -> dict:
        if os.geteuid() != 0:
            return {}
        return dict(user=self.attrs.uid, group=self.attrs.gid, extra_groups=[self.attrs.gid])

    async def run(self, sock: socket.socket) -> int:
        """Run the command on sock; its wait status (see the module description)."""
        argv0 = self.attrs.argv[0]
        sock.setblocking(True)
        fd = sock.fileno()
        try:
            proc = await trio.lowlevel.open_process(
                list(self.attrs.argv), stdin=fd, stdout=fd, stderr=fd, env=dict(self.env),
                cwd=self.cwd, start_new_session=True, close_fds=True, **self._privileges())
        except OSError as e:
            # Postfix 3.7 spells its function name so in this line.
            log.critical(f"spawn_comand: execvp {argv0}: {e.strerror}")
            status = EXEC_FAILED
        else:
            status = await self._wait(proc)
        warning = exit_warning(argv0, status)
        if warning:
            log.warning(warning)
        return status

    async def _wait(self, proc: trio.Process) -> int:
        try:
            with trio.move_on_after(self.time_limit) as scope:
                await proc.wait()
            if scope.cancelled_caught:
                log.warning(f"{self.attrs.argv[0]}: process id {proc.pid}:"
                            " command time limit exceeded")
                _kill_group(proc.pid)
                await proc.wait()
        finally:
            if proc.returncode is None:
                _kill_group(proc.pid)
                with trio.CancelScope(shield=True):
                    await proc.wait()
        return proc.returncode
