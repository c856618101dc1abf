"""zygote_client - the master's end of its fork server (mailsys.runtime.zygote).

SYNOPSIS
    zygote = Zygote.start(config_dir)    # before trio.run, listeners and the alive pipe;
                                         # None where it cannot work (then exec only)
    pid = await zygote.fork(argv, fds)   # in trio; None: exec the child instead
    zygote.reap()                        # on SIGCHLD: notice a zygote that died
    zygote.close()                       # after trio.run: the zygote exits

DESCRIPTION
    start() makes the master a child subreaper (prctl
    PR_SET_CHILD_SUBREAPER, through ctypes) so that the children the zygote
    double-forks become the master's own, and starts the zygote with one
    end of a SOCK_SEQPACKET socketpair: forked from the master when the
    master's argv area has room for its children's command lines (the
    master re-execs itself with mailsys.runtime.proctitle.ROOM bytes of
    padding for that), after the master itself imported and warmed up
    what the zygote preloads (mailsys.runtime.zygote.prepare), so that the
    master, the zygote and every child share those modules; otherwise,
    and for every restart, exec'd with such padding and standard input on
    /dev/null. It returns None, and
    the master execs every child as before, where the kernel lacks
    pidfd_open (Linux < 5.3) or refuses the subreaper.

    fork() sends the child's argv and descriptors (the argv's own plus the
    master's current standard output and error) and returns the pid the
    zygote answers. One request is in flight at a time. When the zygote is
    gone (noticed at once by reap() on SIGCHLD, or by the next request),
    hangs (REPLY_TIMEOUT), or refuses a request, fork() returns None,
    so a service is always started, by exec at worst; a zygote that died or
    hung is killed, reaped and logged ("warning: fork server pid N: ...")
    and started again at the next request, after a back-off that doubles
    from RESTART_BACKOFF up to RESTART_BACKOFF_MAX while it keeps failing.

    close() closes the socket and sends SIGTERM (the zygote reads the socket
    only once it has imported everything); it is reaped, SIGKILLed after
    CLOSE_WAIT. A master killed outright closes the
    socket too, so the zygote never outlives it for long; it never holds a
    listener or the alive pipe, so it keeps no client waiting and no child
    running.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import structlog
import trio

from mailsys.runtime import proctitle, zygote
from mailsys.runtime.zygote import MAX_MESSAGE, decode, encode

log = structlog.get_logger()

PR_SET_CHILD_SUBREAPER = 36
# The imports (the first reply, and a service's first fork unless it is one of
# zygote.CORE_SERVICES) or one double fork, on a loaded machine.
REPLY_TIMEOUT = 10.0
RESTART_BACKOFF = 1.0
RESTART_BACKOFF_MAX = 300.0
CLOSE_WAIT = 5.0


def become_subreaper() -> bool:
    """become_subreaper - orphaned descendants are reparented to this process, not init."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def usable() -> bool:
    """Whether this kernel lets the master supervise a child it did not fork itself."""
    if not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    return True


class Zygote:
    """The master's handle on its fork server (restarted as needed)."""

    def __init__(self, config_dir: Path) -> None:
        self.config_dir = config_dir
        self.proc: subprocess.Popen | ForkedZygote | None = None
        self._sock: socket.socket | None = None
        self._ready = False
        self._lock = trio.Lock()
        self._backoff = RESTART_BACKOFF
        self._not_before = 0.0

    @classmethod
    def start(cls, config_dir: Path) -> "Zygote | None":
        """start - a running zygote, or None when the master must exec its children.

        Call it first thing, while the process is one thread with nothing
        open but standard I/O: with room in its argv area (the master
        re-execs itself for that) the zygote is forked from it and shares
        what it imported. In the zygote, and in every child it forks, this
        call never returns: the process exits (SystemExit) when it is done.
        """
        if not usable() or not become_subreaper():
            return None
        server = cls(config_dir)
        try:
            if proctitle.room() >= proctitle.ROOM and threading.active_count() == 1:
                zygote.prepare(str(config_dir))
                server._fork()
            else:
                server._spawn()
        except OSError:
            pass                 # the first fork() request tries again, and logs
        return server

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.returncode is None else None

    def _fork(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            pid = os.fork()
        except BaseException:
            ours.close()
            theirs.close()
            raise
        if pid == 0:
            ours.close()
            sys.exit(zygote.run_forked(theirs, str(self.config_dir)))
        theirs.close()
        ours.setblocking(False)
        self.proc, self._sock, self._ready = ForkedZygote(pid), ours, False

    def _spawn(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            argv = [sys.executable, "-P", "-m", "mailsys.runtime.zygote",
                    "-c", str(self.config_dir), "--fd", str(theirs.fileno()), " " * proctitle.ROOM]
            self.proc = subprocess.Popen(argv, pass_fds=(theirs.fileno(),),
                                         stdin=subprocess.DEVNULL)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        self._sock, self._ready = ours, False

    async def fork(self, argv: Sequence[str], fds: Sequence[int]) -> int | None:
        """fork - the pid of a forked child running argv, or None: exec it instead."""
        async with self._lock:
            if self._sock is None:
                if time.monotonic() < self._not_before:
                    return None
                try:
                    self._spawn()
                except OSError as e:
                    self._failed(f"cannot start: {e.strerror}")
                    return None
            try:
                # Never cancelled half-way: a reply left unread would answer the next request.
                with trio.CancelScope(shield=True), trio.fail_after(REPLY_TIMEOUT):
                    if not self._ready:
                        reply = await self._receive()
                        if "ready" not in reply:
                            raise ValueError(f"unexpected {reply!r}")
                        self._ready = True
                    fd_list = [1, 2, *fds]
                    await self._send(encode({"argv": list(argv), "fds": fd_list}), fd_list)
                    reply = await self._receive()
            except (OSError, ValueError, EOFError, trio.TooSlowError) as e:
                self._failed(str(e) or type(e).__name__)
                return None
            if "pid" in reply:
                self._backoff = RESTART_BACKOFF
                return int(reply["pid"])
            log.warning(f"fork server pid {self.pid}: {reply.get('error', reply)}")
            return None

    def reap(self) -> None:
        """reap - on SIGCHLD: a zygote that died is logged and reaped now, not at the next request."""
        if self.proc is not None and not self._lock.locked() and self.proc.poll() is not None:
            self._failed("exited")

    async def _send(self, data: bytes, fds: list[int]) -> None:
        while True:
            try:
                socket.send_fds(self._sock, [data], fds)
                return
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self._sock)

    async def _receive(self) -> dict:
        while True:
            try:
                data = self._sock.recv(MAX_MESSAGE)
                break
            except BlockingIOError:
                await trio.lowlevel.wait_readable(self._sock)
        if not data:
            raise EOFError("exited")
        return decode(data)

    def _failed(self, reason: str) -> None:
        pid = self.proc.pid if self.proc is not None else None
        status = self._end(kill=True)
        if status is not None and status != 0:
            reason = f"{reason} ({_describe(status)})"
        log.warning(f"fork server pid {pid}: {reason} -- starting services with exec"
                    f" for {self._backoff:.0f}s")
        self._not_before = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, RESTART_BACKOFF_MAX)

    def _end(self, *, kill: bool) -> int | None:
        """Close the socket and reap the zygote; its exit status."""
        if self._sock is not None:
            try:
                trio.lowlevel.notify_closing(self._sock)
            except RuntimeError:
                pass                        # outside trio: nothing waits on it
            self._sock.close()
            self._sock = None
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        # It may be importing still, and reads its socket only after that.
        proc.kill() if kill else proc.terminate()
        try:
            return proc.wait(CLOSE_WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def close(self) -> None:
        """close - the zygote exits (end-of-file on its socket) and is reaped."""
        self._end(kill=False)


class ForkedZygote:
    """The part of subprocess.Popen's interface the master uses, for a zygote it forked."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def _signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(["zygote"], timeout)
            time.sleep(0.005)
        return self.returncode


def _describe(returncode: int) -> str:
    if returncode < 0:
        return f"killed by signal {-returncode}"
    return f"exit status {returncode}"
