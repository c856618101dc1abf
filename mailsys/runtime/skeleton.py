"""skeleton - the one way a mailsys daemon becomes a daemon.

SYNOPSIS
    from mailsys.runtime import skeleton

    async def handle(stream, ctx): ...            # one client connection
    skeleton.run("smtpd", handle, post_init=setup)

    async def scan(requests, ctx): ...             # frozenset({b"W", b"D"})
    skeleton.run("qmgr", scan, mode="trigger", solitary=True, loop=scheduler)

    async def record(datagram, ctx): ...           # one datagram
    skeleton.run("postlogd", record, mode="dgram", solitary=True, on_reload=reopen)

DESCRIPTION
    Postfix's single_server.c, multi_server.c and trigger_server.c folded
    into one function. run() never returns; in order it:

     1. reads the argv the master gave (mailsys.runtime.handoff);
     2. loads Config from the master's config directory with the service's
        master.cf -o overrides on top, and calls maillog configure() once, so
        the log tag is "<syslog_name>/<program>" ("mailsys/smtpd",
        "mailsys/submission/smtpd" with -o syslog_name=mailsys/submission);
     3. runs pre_init(ctx), then post_init(ctx) (sync or async). Whatever a
        hook returns (other than None) becomes ctx.state for the handler.
        mailsys runs unprivileged and does not chroot, so there is no
        privilege drop between the two (Postfix drops privileges there);
     4. wraps the inherited listeners and serves them in trio:
          serve    one handler task per accepted stream connection (for a
                   master.cf "pass" service, per client connection passed
                   over an accepted one: mailsys.runtime.fd_pass). A
                   per-process CapacityLimiter (concurrency) bounds the
                   clients in hand; a process at the limit stops calling
                   accept(), so new clients go to its siblings or wait in the
                   backlog while the master starts another process.
          trigger  every connection (or datagram) to the socket carries
                   one-byte requests (W I D F A); they are folded into a set
                   and the handler runs with the set of requests that arrived
                   since its last run (Postfix qmgr_trigger_event: "there is
                   no client feedback so there is no need to process each
                   request in order"). The master's wakeup arrives as b"W".
          dgram    the handler runs once per datagram, in arrival order;
                   each wake-up handles every datagram already queued.
        A handler exception is logged with its traceback and ends only that
        connection (trio.serve_listeners would let it crash the process);
     5. tells the master READY, then BUSY / AVAIL / IDLE as clients come and
        go (mailsys.runtime.status); IDLE only once the process has been
        without a client for IDLE_REPORT_DELAY, so that a process serving
        one client after another does not write two records (and wake the
        master twice) per client; a trigger run counts as a client, and a
        process with a loop (below) stays AVAIL, so that the master, which
        retires processes idle for $max_idle, never retires it;
     6. runs loop(ctx), if given, beside the serving (Postfix's
        CA_MAIL_SERVER_LOOP; qmgr's scheduler); it keeps running through
        the grace period and is cancelled with whatever is left after it;
     7. calls on_reload(ctx) on SIGHUP (the master sends it on a reload that
        leaves the service's processes running);
     8. on SIGTERM, or when the master is gone (end-of-file on the alive
        pipe), stops accepting, gives in-flight handlers graceful_timeout
        seconds, cancels what is left, and exits 0. A datagram service first
        drains the datagrams already queued on its socket;
     9. calls on_exit(ctx) (sync), if given, once trio and its worker threads
        are gone (Postfix's CA_MAIL_SERVER_EXIT): the place to close an LMDB
        environment, which must not close while threads may use it.

    SIGINT is ignored: on a terminal, Ctrl-C reaches the whole process
    group, and only the master decides how its children stop.

    nice=N lowers the process's nice value by N at start (os.nice(-N)),
    where the system allows it (root, or CAP_SYS_NICE), and leaves it
    alone otherwise: see MANY_CLIENTS_NICE.

    solitary=True refuses to run unless master.cf says maxproc 1 (Postfix
    CA_MAIL_SERVER_SOLITARY). Postfix's max_use is not applied: a mailsys
    process serves many clients at once and lives long; the master retires
    processes that stay idle for $max_idle (see mailsys.runtime.supervisor).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import gc
import inspect
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import structlog
import trio

from mailsys.config import Config, load
from mailsys.errors import ConfigError
from mailsys.frozen import frozen
from mailsys.maillog.setup import configure
from mailsys.runtime import fd_pass, listeners
from mailsys.runtime.fast_stream import FastListener, FastStream
from mailsys.runtime.handoff import ChildArgs, parse_argv
from mailsys.runtime.ipc_io import TRIGGER_IDLE, TRIGGER_LIFETIME, TRIGGER_LIMIT
from mailsys.runtime.status import State, StatusReporter

log = structlog.get_logger()

# Clients one process serves at once before it reports BUSY and stops
# accepting. An SMTP session mostly waits on the network, so one process
# carries many; the number bounds one process' memory, and maxproc
# multiplies it across cores.
DEFAULT_CONCURRENCY = 100

# Seconds in-flight work gets after SIGTERM before it is cancelled. The
# master waits this long plus a margin before it SIGKILLs (Postfix's
# `postfix stop` waits 5 s, then forces).
GRACEFUL_TIMEOUT = 10.0

# The collector's thresholds in a daemon. A session or request lives long
# enough to reach the oldest generation and dies as a reference cycle; with
# Python's (700, 10, 10) only every hundredth collection looks there, and a
# busy smtpd (200 clients) carried some 900 finished sessions, 5 MB. Here
# every tenth does (and the interpreter still skips it while less than a
# quarter of that generation is new). It costs little: the modules the fork
# server froze (mailsys.runtime.zygote) are never scanned.
GC_THRESHOLDS = (700, 10, 1)

# How much more of the CPU the processes that accept mail for many clients
# at once take (smtpd with up to its concurrency in hand, cleanup with every
# smtpd's messages): nice -5, a scheduler weight of 3121 against 1024, about
# three processes' share. Postfix gives every client an smtpd and a cleanup
# process of its own, each with a full share; under CPU contention one
# process serving fifty clients had one share among the busy processes, and
# the 250 a client waited for came a scheduler turn later. At 50 sessions
# (make bench, 1 KB, four runs each way) the end of DATA to the 250 went
# from p99 1.15-1.57 to 1.05-1.13 times Postfix's, the end-to-end rate from
# 0.83-0.95 to 0.93-1.11; at 10 and 200 sessions it stayed within the noise.
# Relative to the master's nice value: `nice mailsys start` lowers them all.
MANY_CLIENTS_NICE = 5

DATAGRAM_MAX = 256 * 1024      # a log event bigger than this is the sender's bug
DRAIN_BATCH = 256              # datagrams handled per wake-up before other tasks run
CLOSE_GRACE = 1.0
# A pass service (master.cf type "pass") waits this long for the client
# descriptor on a connection to its socket; postscreen sends it at once.
PASS_TIMEOUT = 10.0
# The master needs IDLE only to retire a process after $max_idle (100 s by
# default): telling it a moment late costs nothing, telling it between
# every two clients costs the master a wake-up each time.
IDLE_REPORT_DELAY = 0.5

MODES = ("serve", "trigger", "dgram")


@frozen
class ServiceContext:
    """What a daemon's hooks and handler know about the process they run in."""

    program: str                       # "smtpd": the log tag's last part
    service: str                       # master.cf column 1 ("smtp", "submission", ...)
    type: str                          # master.cf column 2
    config: Config                     # main.cf with this service's -o overrides
    args: tuple[str, ...] = ()         # master.cf arguments other than -o
    state: Any = None                  # what pre_init / post_init returned


Hook = Callable[[ServiceContext], Any]


def run(program: str, handler: Callable[..., Awaitable[None]], *, mode: str = "serve",
        pre_init: Hook | None = None, post_init: Hook | None = None,
        loop: Callable[[ServiceContext], Awaitable[None]] | None = None,
        on_reload: Hook | None = None, on_exit: Hook | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        solitary: bool = False, graceful_timeout: float = GRACEFUL_TIMEOUT,
        nice: int = 0, argv: list[str] | None = None) -> NoReturn:
    """run - become the daemon `program`; see the module description."""
    if mode not in MODES:
        raise ValueError(f"skeleton mode must be one of {MODES}, not {mode!r}")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if nice:
        with contextlib.suppress(PermissionError):
            os.nice(-nice)      # unprivileged: the process keeps its priority
    gc.set_threshold(*GC_THRESHOLDS)
    args = parse_argv(sys.argv[1:] if argv is None else argv)
    try:
        cfg = load(args.config_dir, dict(args.overrides))
        configure(cfg, program)
    except ConfigError as e:
        # No logging yet: the master logs our exit status, stderr says why.
        print(f"{program}: fatal: {e}", file=sys.stderr)
        sys.exit(1)
    if solitary and args.maxproc != 1:
        log.critical(f"service {args.service} requires a process limit of 1")
        sys.exit(1)
    ctx = ServiceContext(program, args.service, args.type, cfg, args.args)
    daemon = _Daemon(ctx, args, handler, mode, concurrency, graceful_timeout)
    status = 0
    try:
        trio.run(daemon.main, pre_init, post_init, loop, on_reload)
    except ConfigError as e:
        # A table the configuration names is missing or bad: one line, as
        # Postfix's "fatal: open database ...", not a traceback.
        log.critical(str(e))
        status = 1
    except Exception:
        log.critical(f"{program}: unexpected error", exc_info=True)
        status = 1
    if on_exit is not None:
        try:
            on_exit(daemon.ctx)
        except Exception:
            log.critical(f"{program}: unexpected error in exit hook", exc_info=True)
            status = 1
    sys.exit(status)


async def _call(hook: Hook | None, ctx: ServiceContext) -> ServiceContext:
    if hook is None:
        return ctx
    result = hook(ctx)
    if inspect.isawaitable(result):
        result = await result
    return ctx if result is None else dataclasses.replace(ctx, state=result)


class _Daemon:
    """One process' serving machinery (internal to run())."""

    def __init__(self, ctx: ServiceContext, args: ChildArgs, handler, mode: str,
                 concurrency: int, graceful_timeout: float) -> None:
        self.ctx = ctx
        self.args = args
        self.handler = handler
        self.mode = mode
        self.graceful_timeout = graceful_timeout
        self.limiter = trio.CapacityLimiter(concurrency) if mode == "serve" else None
        self.in_flight = 0
        self.status = StatusReporter(args.status_fd, args.gen)
        self.shutdown = trio.Event()
        self.triggers: set[bytes] = set()
        self.triggered = trio.Event()
        self.resident = False               # has work of its own: never report IDLE
        self.emptied = trio.Event()         # the last client left: IDLE soon

    async def main(self, pre_init, post_init, loop, on_reload) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGHUP) as signals:
            socks = [listeners.inherit(fd) for fd in self.args.listen_fds]
            self.ctx = await _call(post_init, await _call(pre_init, self.ctx))
            async with trio.open_nursery() as root:
                root.start_soon(self._signals, signals, on_reload)
                if self.args.alive_fd is not None:
                    root.start_soon(self._master_alive, self.args.alive_fd)
                if loop is not None:
                    self.resident = True
                    root.start_soon(loop, self.ctx)
                if self.mode == "serve":
                    root.start_soon(self._report_idle)
                await self._serve(socks)
                root.cancel_scope.cancel()

    async def _signals(self, signals, on_reload) -> None:
        async for signum in signals:
            if signum == signal.SIGHUP:
                if on_reload is not None:
                    try:
                        await _call(on_reload, self.ctx)
                    except Exception:
                        log.error("reload hook failed", exc_info=True)
            else:
                self.shutdown.set()

    async def _master_alive(self, fd: int) -> None:
        async with trio.lowlevel.FdStream(fd) as pipe:
            while await pipe.receive_some(16):
                pass          # the master never writes; only end-of-file matters
        self.shutdown.set()

    # --- serving ----------------------------------------------------------------

    async def _serve(self, socks: list[socket.socket]) -> None:
        async with trio.open_nursery() as work:           # in-flight handlers
            async with trio.open_nursery() as intake:     # accept / receive loops
                if self.mode == "trigger":
                    work.start_soon(self._run_triggers)
                for sock in socks:
                    if sock.type == socket.SOCK_DGRAM:
                        intake.start_soon(self._receive, sock)
                    else:
                        intake.start_soon(self._accept, listeners.stream_listener(sock), work)
                self.status.report(State.READY)
                if self.resident:
                    # A loop works without clients (qmgr's scheduler): the
                    # master must not take this process for idle and retire it.
                    self.status.report(State.AVAIL)
                await self.shutdown.wait()
                intake.cancel_scope.cancel()
            # Stop accepting (the listeners are closed by their loops' exit),
            # then give what is in hand a bounded grace period.
            work.cancel_scope.deadline = trio.current_time() + self.graceful_timeout
            self.triggered.set()            # a trigger worker runs what is pending, then ends
        self.status.close()

    async def _accept(self, listener: FastListener, work: trio.Nursery) -> None:
        async with listener:
            while True:
                # The client's slot is taken before accept() and handed to its
                # handler, so a process at its limit leaves the backlog alone.
                slot = object()
                if self.limiter is not None:
                    # A free token is taken without the scheduler pass of
                    # acquire_on_behalf_of() (fair: trio's limiter has one
                    # free only while nobody waits); accept() below is the
                    # cancel point, and a schedule point now and then.
                    try:
                        self.limiter.acquire_on_behalf_of_nowait(slot)
                    except trio.WouldBlock:
                        await self.limiter.acquire_on_behalf_of(slot)
                try:
                    stream = await listener.accept()
                except BaseException as e:
                    if self.limiter is not None:
                        self.limiter.release_on_behalf_of(slot)
                    # trio.serve_listeners' rule: out of descriptors or memory
                    # is transient, anything else is a bug worth crashing for.
                    if isinstance(e, OSError) and e.errno in (
                            errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS):
                        log.warning(f"accept: {e.strerror}; retrying in 100 ms")
                        await trio.sleep(0.1)
                        continue
                    raise
                if self.mode == "trigger":
                    work.start_soon(self._read_trigger, stream)
                else:
                    self.in_flight += 1
                    self._report_load()
                    work.start_soon(self._serve_one, stream, slot)

    async def _serve_one(self, stream: FastStream, slot: object) -> None:
        try:
            if self.ctx.type == "pass":
                # The connection carries a client's; that is what is served.
                try:
                    stream = await fd_pass.receive_connection(stream, PASS_TIMEOUT)
                except fd_pass.PassError as e:
                    log.warning(f"{self.ctx.service}: {e}")
                    return
            await self.handler(stream, self.ctx)
        except Exception:
            log.error(f"{self.ctx.service}: unexpected error in client handler", exc_info=True)
        finally:
            if type(stream) is FastStream:
                stream.close()      # nothing to flush: no cancel scope, no scheduler pass
            else:
                with trio.move_on_after(CLOSE_GRACE, shield=True):
                    await stream.aclose()
            self.limiter.release_on_behalf_of(slot)
            self.in_flight -= 1
            self._report_load()

    def _report_load(self) -> None:
        used, total = self.in_flight, self.limiter.total_tokens
        if used == 0:
            if self.shutdown.is_set():
                self.status.report(State.IDLE)
            else:
                self.emptied.set()          # _report_idle tells the master, if it lasts
        else:
            self.status.report(State.BUSY if used >= total else State.AVAIL)

    async def _report_idle(self) -> None:
        while True:
            await self.emptied.wait()
            self.emptied = trio.Event()
            await trio.sleep(IDLE_REPORT_DELAY)
            if self.in_flight == 0:
                self.status.report(State.IDLE)

    # --- triggers and datagrams --------------------------------------------------

    def _report_trigger(self, state: State) -> None:
        """A trigger run counts as a client: the master's idle clock starts after it."""
        if not self.resident:
            self.status.report(state)

    async def _read_trigger(self, stream: trio.abc.Stream) -> None:
        # A client writes its requests and closes (Postfix's trigger clients,
        # the master's wakeup), or keeps the connection and writes one request
        # at a time (ipc_io.TriggerLine: cleanup's): each piece counts as it
        # arrives. A connection quiet for TRIGGER_IDLE, or open for
        # TRIGGER_LIFETIME, is closed; a TriggerLine never writes near either.
        with trio.move_on_after(TRIGGER_LIFETIME):
            while True:
                chunk = b""
                with trio.move_on_after(TRIGGER_IDLE):
                    try:
                        chunk = await stream.receive_some(TRIGGER_LIMIT)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass
                if not chunk:
                    break
                self._add_triggers(chunk)
        with trio.move_on_after(CLOSE_GRACE, shield=True):
            await stream.aclose()

    def _add_triggers(self, data: bytes) -> None:
        if data:
            self.triggers.update(data[i:i + 1] for i in range(len(data)))
            self.triggered.set()

    async def _run_triggers(self) -> None:
        while True:
            await self.triggered.wait()
            self.triggered = trio.Event()
            if self.triggers:
                requests, self.triggers = frozenset(self.triggers), set()
                self._report_trigger(State.AVAIL)
                try:
                    await self.handler(requests, self.ctx)
                except Exception:
                    log.error(f"{self.ctx.service}: unexpected error in trigger handler",
                              exc_info=True)
                self._report_trigger(State.IDLE)
            if self.shutdown.is_set() and not self.triggers:
                return

    async def _receive(self, sock: socket.socket) -> None:
        # One wake-up per burst, not per datagram: after the socket turns
        # readable, every datagram already queued is handled with plain
        # non-blocking recv() calls until EAGAIN (or DRAIN_BATCH of them, so
        # that a flood still lets the other tasks run), in arrival order.
        with sock:
            try:
                while True:
                    await trio.lowlevel.wait_readable(sock)
                    await self._drain(sock, limit=DRAIN_BATCH)
            finally:
                if self.shutdown.is_set():
                    with trio.CancelScope(shield=True):
                        await self._drain(sock)

    async def _drain(self, sock: socket.socket, limit: int | None = None) -> None:
        """Handle the datagrams already queued (up to limit), without waiting for more."""
        handled = 0
        while limit is None or handled < limit:
            try:
                data = sock.recv(DATAGRAM_MAX, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError:
                if limit is None:       # the last drain on the way out
                    return
                raise
            await self._datagram(data)
            handled += 1

    async def _datagram(self, data: bytes) -> None:
        if self.mode == "trigger":
            self._add_triggers(data)
            return
        try:
            await self.handler(data, self.ctx)
        except Exception:
            log.error(f"{self.ctx.service}: unexpected error in datagram handler", exc_info=True)
