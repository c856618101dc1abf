"""procs - one supervised child process, as the master sees it.

DESCRIPTION
    spawn() starts a child with its listeners, a fresh status pipe and the
    shared alive pipe (see handoff and status), and returns a Child: the
    master's mutable record of that process (state from its status records,
    when it went idle, whether the master asked it to go).

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


@dataclass(slots=True, eq=False)
class Child:
    """The master's record of one child (mutable: it follows the process)."""

    proc: trio.Process
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


async def spawn(command: Command, args: ChildArgs) -> Child:
    """spawn - start one child; args.status_fd is filled in here."""
    status_r, status_w = os.pipe()
    try:
        args = dataclasses.replace(args, status_fd=status_w)
        proc = await trio.lowlevel.open_process(
            build_argv(command, args), pass_fds=args.pass_fds, stdin=subprocess.DEVNULL)
    except BaseException:
        os.close(status_r)
        raise
    finally:
        os.close(status_w)       # the child holds the only write end: EOF when it exits
    return Child(proc=proc, gen=args.gen, status_fd=status_r, started=trio.current_time())


def exit_warning(path: str, pid: int, returncode: int) -> str | None:
    """exit_warning - Postfix's words for an abnormal exit, None for exit status 0."""
    if returncode > 0:
        return f"process {path} pid {pid} exit status {returncode}"
    if returncode < 0:
        return f"process {path} pid {pid} killed by signal {-returncode}"
    return None
