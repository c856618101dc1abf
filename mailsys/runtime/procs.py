"""procs - one supervised child process, as the master sees it.

DESCRIPTION
    spawn() starts a child with its listeners, a fresh status pipe and the
    shared alive pipe (see handoff and status), and returns a Child: the
    master's mutable record of that process (state from its status records,
    when it went idle, whether the master asked it to go).

    With a fork server (mailsys.runtime.zygote_client) the child is forked
    from it and reparented to the master; the master's handle on it is a
    ForkedProcess (a pidfd: it waits without a thread and signals the
    process itself even if its pid were ever reused). Without one, or when
    the fork server cannot serve, the child is exec'd as
    `python -P -m services.NAME ...` and the handle is a trio.Process. Both
    offer pid, returncode, send_signal() and wait().

    reap_orphans() reaps zombies that are the master's children but not its
    services: as a subreaper the master inherits every orphaned descendant
    (a process a service started and left behind when it died).

    exit_warning() words an abnormal exit the way Postfix's master_reap_child
    does, so log tools that know Postfix recognise it:

        warning: process /path/services/smtpd.py pid 1234 exit status 1
        warning: process /path/services/smtpd.py pid 1234 killed by signal 9
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
from dataclasses import dataclass, field

import trio

from mailsys.runtime.handoff import ChildArgs, Command, build_argv
from mailsys.runtime.status import State
from mailsys.runtime.zygote_client import Zygote


class ForkedProcess:
    """A child the master did not fork itself but must reap (the fork server's)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._pidfd = os.pidfd_open(pid)       # works for a child that already exited

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            signal.pidfd_send_signal(self._pidfd, signum)

    async def wait(self) -> int:
        if self.returncode is None:
            await trio.lowlevel.wait_readable(self._pidfd)     # readable once it exited
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
            os.close(self._pidfd)
        return self.returncode


@dataclass(slots=True, eq=False)
class Child:
    """The master's record of one child (mutable: it follows the process)."""

    proc: trio.Process | ForkedProcess
    gen: int
    status_fd: int                      # read end of the child's status pipe
    started: float                      # trio.current_time() at spawn
    state: State | None = None          # None until the first status record
    ready: bool = False                 # reported READY: start-up completed
    idle_since: float | None = None     # when it last became idle
    retiring: bool = False              # the master told it to finish and exit
    reaped: trio.Event = field(default_factory=trio.Event)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def on_status(self, state: State, now: float) -> None:
        if state == State.READY:
            self.ready = True
            state = State.IDLE
        if state == State.IDLE and self.state != State.IDLE:
            self.idle_since = now
        elif state != State.IDLE:
            self.idle_since = None
        self.state = state

    def signal(self, signum: int) -> None:
        if self.proc.returncode is None:
            try:
                self.proc.send_signal(signum)
            except ProcessLookupError:
                pass

    def retire(self) -> None:
        """Ask the child to stop accepting, finish what it has in hand, and exit."""
        self.retiring = True
        self.signal(signal.SIGTERM)


async def spawn(command: Command, args: ChildArgs, zygote: Zygote | None = None) -> Child:
    """spawn - start one child (forked by zygote if it can); args.status_fd is filled in here."""
    status_r, status_w = os.pipe()
    try:
        args = dataclasses.replace(args, status_fd=status_w)
        argv = build_argv(command, args)
        pid = await zygote.fork(argv, args.pass_fds) if zygote is not None else None
        if pid is not None:
            proc = ForkedProcess(pid)
        else:
            proc = await trio.lowlevel.open_process(
                argv, pass_fds=args.pass_fds, stdin=subprocess.DEVNULL)
    except BaseException:
        os.close(status_r)
        raise
    finally:
        os.close(status_w)       # the child holds the only write end: EOF when it exits
    return Child(proc=proc, gen=args.gen, status_fd=status_r, started=trio.current_time())


def child_states(parent: int) -> dict[int, bytes]:
    """child_states - the children of parent, from /proc: pid -> state letter (b"Z": zombie)."""
    kids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # State and ppid follow the parenthesised command, which may hold spaces.
        state, ppid = stat[stat.rindex(b")") + 2:].split()[:2]
        if int(ppid) == parent:
            kids[int(entry)] = state
    return kids


def reap_orphans(known: set[int]) -> list[int]:
    """reap_orphans - reap this process' zombie children whose pid is not in known."""
    reaped = []
    for pid, state in child_states(os.getpid()).items():
        if state == b"Z" and pid not in known:
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    reaped.append(pid)
            except ChildProcessError:
                pass
    return reaped


def exit_warning(path: str, pid: int, returncode: int) -> str | None:
    """exit_warning - Postfix's words for an abnormal exit, None for exit status 0."""
    if returncode > 0:
        return f"process {path} pid {pid} exit status {returncode}"
    if returncode < 0:
        return f"process {path} pid {pid} killed by signal {-returncode}"
    return None
