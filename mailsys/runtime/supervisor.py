"""supervisor - the master's services, their listeners and their processes.

DESCRIPTION
    A Supervisor runs inside the master's trio loop. For every master.cf
    service it holds the listeners (opened by the master before any child
    starts: mailsys.runtime.listeners), the child processes, and one manager
    task that decides when to start or retire a process.

    On demand. As in Postfix, a stream service (inet or unix) gets its first
    process only when a client needs it: while the service has no process,
    the manager waits until one of its listeners is readable (a connection
    in the backlog) and then starts one; the client waits in the backlog
    meanwhile. Every process of such a service, the first included, is
    retired after $max_idle without a client (Postfix: "every process exits
    after max_idle"), and the next client starts a new one. Two kinds run
    from the start and keep one process: a service with a wakeup time
    (qmgr: Postfix wakes it at once, and it has work of its own, deferred
    mail), and a unix-dgram service (postlogd: every process logs, and a
    datagram that finds the socket's queue full is written by its sender to
    the log file itself, out of order). So a system that never uses bounce,
    local or its submission port pays no memory for them.

    Process count. Postfix starts a process per client, up to maxproc. A
    Python process is too heavy for that, and every mailsys child serves
    many clients at once with trio, so the manager starts another process
    (up to maxproc; 0 = unlimited) only when every process of the service
    reports BUSY, i.e. holds as many clients as its per-process concurrency
    allows (mailsys.runtime.status). Like every parameter a daemon reads,
    max_idle and service_throttle_time may be set per service with -o in
    master.cf. At the limit, a service that remote clients reach enters
    stress mode and the master warns, as Postfix's does
    (mailsys.runtime.stress).

    Deaths. A child that exits abnormally is logged in Postfix's words
    ("process PATH pid N exit status N" / "killed by signal N"). If it died
    before it ever reported READY, it "terminated before completing its first
    request": Postfix's "PATH: bad command startup -- throttling", and the
    service gets no new process for $service_throttle_time (60s). Postfix
    uses "before its first client" here; mailsys children serve for long and
    a client may never come to an idle one, so READY (start-up completed) is
    the mark. A child that dies after READY is restarted after an
    exponential back-off (0.1 s doubling up to $service_throttle_time, reset
    after a child lived BACKOFF_RESET seconds); so is one that exits with
    status 0 unasked, so that a daemon returning at once cannot make the
    master spin. The listeners stay open
    throughout: clients wait in the kernel's backlog, as with Postfix.

    Wakeup. A service with a wakeup time gets the trigger b"W" on its socket
    every N seconds (Postfix master_wakeup.c). The "N?" form (no wakeup
    before first use) is treated as N: an early wakeup costs one idle scan.

    Reload. reload() compares the new services with the running ones by
    (name, type). Removed services lose their listeners and processes;
    added ones are bound and started; a service whose master.cf entry
    changed, or every service when main.cf changed, gets a new generation of
    processes while the old ones are retired (SIGTERM: stop accepting,
    finish the clients in hand, exit; Postfix: "Don't drop the already
    accepted client request after postfix reload; that would be rude").
    Listeners of services that stay are never closed, so no client sees a
    refused connection across a reload. Services left alone get SIGHUP,
    which the skeleton turns into the daemon's reopen hook (postlogd reopens
    its log files).

    Stop. stop() closes every listener, retires every child, waits up to a
    grace period and SIGKILLs what is left.

    Fork server. Given a Zygote (mailsys.runtime.zygote_client), children
    are forked from it rather than exec'd (mailsys.runtime.procs), and
    become the master's children all the same: the master is a subreaper.
    Being one, it also inherits any orphaned descendant; those that exit
    are reaped on SIGCHLD (procs.reap_orphans), never one whose pid is a
    fork still in flight.

    The master never touches the queue; this module imports no lmdb.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import select
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path

import structlog
import trio

from mailsys.errors import ConfigError
from mailsys.runtime import listeners, procs
from mailsys.runtime.handoff import ChildArgs, Command, resolve_command
from mailsys.runtime.status import State, StatusDecoder
from mailsys.runtime.stress import Stress, local_only
from mailsys.runtime.zygote_client import Zygote

log = structlog.get_logger()

BACKOFF_INITIAL = 0.1
BACKOFF_RESET = 30.0          # a child that lived this long proves its service healthy again
THROTTLE_DEFAULT = 60.0       # Postfix DEF_SVC_THROTTLE_TIME; used while params.py lacks it
TICK = 1.0                    # the manager re-checks idle processes at least this often
WAKEUP_TIMEOUT = 5.0          # a wakeup trigger that cannot be delivered is dropped


def _param(cfg, name: str, default):
    try:
        return cfg[name]
    except (KeyError, AttributeError):
        return default


def comparable(spec):
    """A ServiceSpec without its place in master.cf, for change detection."""
    return dataclasses.replace(spec, file="", line=0)


@dataclass(slots=True, eq=False)
class Service:
    """One master.cf service at run time (mutable: the manager drives it)."""

    spec: object                     # mailsys.config.ServiceSpec
    command: Command
    endpoints: tuple[listeners.Endpoint, ...]
    sockets: list[socket.socket]
    max_idle: float = 100.0          # this service's $max_idle (its -o overrides apply)
    throttle_time: float = THROTTLE_DEFAULT
    gen: int = 0
    children: list[procs.Child] = field(default_factory=list)
    backoff: float = BACKOFF_INITIAL
    not_before: float = 0.0          # no new process before this time (back-off, throttle)
    stopping: bool = False
    stress: Stress = field(default_factory=lambda: Stress(eligible=False, warns=False))
    demanded: bool = False           # on demand: a client waits and no process serves it yet
    changed: trio.Event = field(default_factory=trio.Event)
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)

    @property
    def key(self) -> tuple[str, str]:
        return (self.spec.name, self.spec.type)

    @property
    def endpoint(self) -> str:
        """Postfix's internal name for the service: "private/cleanup",
        "public/qmgr"; "[127.0.0.1]:2525" or "25" for inet."""
        if self.spec.type == "inet":
            if self.spec.host and self.endpoints:
                return f"[{self.endpoints[0].host}]:{self.spec.port}"
            return str(self.spec.port)
        return f"{'private' if self.spec.private else 'public'}/{self.spec.name}"

    @property
    def active(self) -> list[procs.Child]:
        return [c for c in self.children if not c.retiring]

    @property
    def on_demand(self) -> bool:
        """First process only when a client comes (see the module description)."""
        resident = self.spec.type == "unix-dgram" or (
            self.spec.wakeup > 0 and not self.spec.wakeup_lazy)
        return not resident

    def pending(self) -> bool:
        """Whether a client waits on one of the listeners right now."""
        poller = select.poll()
        for sock in self.sockets:
            poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))

    def close_listeners(self) -> None:
        for sock, ep in zip(self.sockets, self.endpoints):
            try:
                trio.lowlevel.notify_closing(sock)    # wakes the manager's demand watch
            except RuntimeError:
                pass                                 # outside trio (start-up failure): no watch
            listeners.close(sock, ep)
        self.sockets = []


def timings(cfg, spec) -> tuple[float, float]:
    """($max_idle, $service_throttle_time) as the service sees them, -o included."""
    scfg = cfg.with_overrides(dict(spec.overrides)) if spec.overrides else cfg
    return (float(_param(scfg, "max_idle", 100.0)),
            float(_param(scfg, "service_throttle_time", THROTTLE_DEFAULT)))


def prepare(cfg, spec) -> Service:
    """prepare - resolve a service's command and open its listeners (no process yet)."""
    command = resolve_command(spec.command, file=spec.file, line=spec.line)
    eps = listeners.endpoints(spec, cfg)
    max_idle, throttle_time = timings(cfg, spec)
    local = local_only(spec.type, (ep.host for ep in eps if ep.kind == "inet"))
    return Service(spec=spec, command=command, endpoints=eps, sockets=bind_all(eps),
                   max_idle=max_idle, throttle_time=throttle_time,
                   stress=Stress.for_service(spec.maxproc, local))


def bind_all(eps) -> list[socket.socket]:
    socks: list[socket.socket] = []
    try:
        for ep in eps:
            socks.append(listeners.bind(ep))
    except BaseException:
        for sock, ep in zip(socks, eps):
            listeners.close(sock, ep)
        raise
    return socks


def prepare_all(cfg, specs) -> list[Service]:
    """prepare_all - every service, or none: a failure closes what was opened."""
    done: list[Service] = []
    try:
        for spec in specs:
            done.append(prepare(cfg, spec))
    except BaseException:
        for svc in done:
            svc.close_listeners()
        raise
    return done


class Supervisor:
    """Starts, watches, restarts, reloads and stops the master's children."""

    def __init__(self, cfg, nursery: trio.Nursery, zygote: Zygote | None = None) -> None:
        self.cfg = cfg
        self.config_dir = Path(cfg.config_dir)
        self.nursery = nursery
        self.zygote = zygote
        self.services: dict[tuple[str, str], Service] = {}
        self.children: set[procs.Child] = set()
        self.stopping = False
        self._spawning = 0               # forks in flight: their pids are not known yet
        self._orphans_waiting = False
        # The master keeps the write end and never writes: children see
        # end-of-file on the read end when the master is gone (even by SIGKILL).
        self._alive_r, self._alive_w = os.pipe()

    # --- start ---------------------------------------------------------------

    def start(self, services: list[Service]) -> None:
        if self.zygote is not None:
            self.nursery.start_soon(self._reap_orphans)
        for svc in services:
            self._launch(svc)

    def _launch(self, svc: Service) -> None:
        self.services[svc.key] = svc
        self.nursery.start_soon(self._manage, svc)

    async def wait_started(self, timeout: float) -> None:
        """Wait until every resident first process reported READY, died, or timeout passed.

        On-demand services have no process yet; their listeners are open, so
        "started" still means every client can connect.
        """
        with trio.move_on_after(timeout):
            while any(not c.ready and c.proc.returncode is None for c in self.children) \
                    or any(not svc.children and not svc.on_demand and not svc.stopping
                           and svc.not_before == 0.0 for svc in self.services.values()):
                await trio.sleep(0.02)

    # --- the manager -----------------------------------------------------------

    async def _manage(self, svc: Service) -> None:
        with svc.scope:
            async with trio.open_nursery() as nursery:
                if svc.spec.wakeup > 0:
                    nursery.start_soon(self._wakeup, svc)
                while True:
                    svc.changed = trio.Event()
                    wait = await self._reconcile(svc)
                    with trio.move_on_after(wait):
                        if svc.on_demand and not svc.active and not svc.demanded \
                                and trio.current_time() >= svc.not_before:
                            await self._watch_demand(svc)
                        else:
                            await svc.changed.wait()

    async def _watch_demand(self, svc: Service) -> None:
        """Return when a client waits on a listener of svc, or svc changed."""
        async with trio.open_nursery() as watch:
            async def until(wait, demand: bool) -> None:
                try:
                    await wait()
                except trio.ClosedResourceError:
                    pass                 # the listener was closed: reload or stop
                else:
                    svc.demanded = svc.demanded or demand
                watch.cancel_scope.cancel()

            watch.start_soon(until, svc.changed.wait, False)
            for sock in svc.sockets:
                watch.start_soon(until, functools.partial(trio.lowlevel.wait_readable, sock), True)

    async def _reconcile(self, svc: Service) -> float:
        now = trio.current_time()
        active = svc.active
        if now < svc.not_before:
            wait = min(svc.not_before - now, TICK)
        else:
            wait = TICK
            limit = svc.spec.maxproc
            if not active:
                if not svc.on_demand or svc.demanded or svc.pending():
                    svc.demanded = False
                    await self._spawn(svc)
            elif all(c.state == State.BUSY for c in active):
                if limit == 0 or len(active) < limit:
                    if svc.stress.restart_before_last(now, len(active), limit):
                        for child in active:
                            child.retire()   # they finish their clients; new ones start stressed
                    await self._spawn(svc)
                else:
                    for line in svc.stress.warning(now, svc.spec.name, svc.endpoint, limit):
                        log.warning(line)
        keep = 0 if svc.on_demand else 1
        for child in sorted(active, key=lambda c: c.started, reverse=True):
            if len(svc.active) <= keep:
                break
            if child.state == State.IDLE and child.idle_since is not None \
                    and now - child.idle_since >= svc.max_idle:
                child.retire()
        return wait

    async def _spawn(self, svc: Service) -> None:
        spec = svc.spec
        args = ChildArgs(config_dir=self.config_dir, service=spec.name, type=spec.type,
                         overrides=svc.stress.overrides(trio.current_time())
                         + tuple(spec.overrides), gen=svc.gen, maxproc=spec.maxproc,
                         alive_fd=self._alive_r,
                         listen_fds=tuple(s.fileno() for s in svc.sockets),
                         args=tuple(spec.args))
        self._spawning += 1
        try:
            child = await procs.spawn(svc.command, args, self.zygote)
        except OSError as e:
            log.warning(f"{svc.command.path}: cannot start: {e.strerror} -- throttling")
            self._throttle(svc)
            return
        else:
            svc.children.append(child)
            self.children.add(child)
            self.nursery.start_soon(self._watch, svc, child)
            if svc.stopping:
                child.retire()           # removed while it was being started
        finally:
            self._spawning -= 1
            if self._orphans_waiting:
                self._reap()

    def _throttle(self, svc: Service) -> None:
        svc.not_before = trio.current_time() + svc.throttle_time

    async def _watch(self, svc: Service, child: procs.Child) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read_status, svc, child)
            await child.proc.wait()
            nursery.cancel_scope.cancel()
        self._reaped(svc, child)

    async def _read_status(self, svc: Service, child: procs.Child) -> None:
        decoder = StatusDecoder()
        async with trio.lowlevel.FdStream(child.status_fd) as stream:
            while data := await stream.receive_some(4096):
                for status in decoder.feed(data):
                    if status.gen == child.gen:
                        child.on_status(status.state, trio.current_time())
                        svc.changed.set()

    def _reaped(self, svc: Service, child: procs.Child) -> None:
        svc.children.remove(child)
        self.children.discard(child)
        child.reaped.set()
        rc = child.proc.returncode
        expected = child.retiring or svc.stopping or self.stopping
        warning = procs.exit_warning(svc.command.path, child.pid, rc)
        if warning and not (expected and rc in (-signal.SIGTERM, -signal.SIGKILL)):
            log.warning(warning)
        if expected:
            return
        now = trio.current_time()
        if rc != 0 and not child.ready:
            log.warning(f"{svc.command.path}: bad command startup -- throttling")
            self._throttle(svc)
        else:
            # Also after exit status 0: a daemon that keeps returning at once
            # must not turn the master into a busy loop.
            if now - child.started >= BACKOFF_RESET:
                svc.backoff = BACKOFF_INITIAL
            svc.not_before = max(svc.not_before, now + svc.backoff)
            svc.backoff = min(svc.backoff * 2, svc.throttle_time)
        svc.changed.set()

    async def _reap_orphans(self) -> None:
        """As a subreaper the master inherits orphaned descendants: reap those that exit."""
        with trio.open_signal_receiver(signal.SIGCHLD) as signals:
            async for _ in signals:
                self._reap()

    def _reap(self) -> None:
        if self._spawning:
            self._orphans_waiting = True     # a fork's pid may be among them: after it
            return
        self._orphans_waiting = False
        known = {c.pid for c in self.children}
        if self.zygote is not None:
            self.zygote.reap()
            if self.zygote.pid is not None:
                known.add(self.zygote.pid)
        procs.reap_orphans(known)

    async def _wakeup(self, svc: Service) -> None:
        while True:
            await trio.sleep(svc.spec.wakeup)
            ep = svc.endpoints[0] if svc.endpoints else None
            if ep is None:
                continue
            with trio.move_on_after(WAKEUP_TIMEOUT):
                try:
                    await send_trigger(ep, b"W")
                except OSError:
                    pass             # no process up right now; the next wakeup will do

    # --- reload and stop ---------------------------------------------------------

    async def reload(self, cfg, specs, main_cf_changed: bool) -> None:
        """reload - make the running services match a freshly read configuration."""
        new = {(s.name, s.type): s for s in specs}
        self.cfg = cfg
        for key in [k for k in self.services if k not in new]:
            self._remove(self.services.pop(key))
        for key, spec in new.items():
            svc = self.services.get(key)
            if svc is None:
                try:
                    self._launch(prepare(cfg, spec))
                except (ConfigError, listeners.ListenError) as e:
                    log.warning(f"service {spec.name} ({spec.type}) not started: {e}")
            elif main_cf_changed or comparable(spec) != comparable(svc.spec):
                self._renew(svc, cfg, spec)
            else:
                # Only READY children have their SIGHUP handler installed; one
                # still starting would die of the default action, and it reads
                # the (unchanged) files anyway.
                for child in svc.active:
                    if child.ready:
                        child.signal(signal.SIGHUP)

    def _renew(self, svc: Service, cfg, spec) -> None:
        """A changed service: same listeners when they still fit, new processes."""
        try:
            command = resolve_command(spec.command, file=spec.file, line=spec.line)
            eps = listeners.endpoints(spec, cfg)
            if eps != svc.endpoints:
                svc.close_listeners()
                svc.endpoints = ()
                svc.sockets = bind_all(eps)
                svc.endpoints = eps
        except (ConfigError, listeners.ListenError) as e:
            log.warning(f"service {spec.name} ({spec.type}) stopped: {e}")
            self._remove(self.services.pop(svc.key))
            return
        svc.spec, svc.command = spec, command
        svc.max_idle, svc.throttle_time = timings(cfg, spec)
        svc.gen += 1
        for child in svc.active:
            child.retire()
        svc.backoff, svc.not_before = BACKOFF_INITIAL, 0.0
        svc.changed.set()

    def _remove(self, svc: Service) -> None:
        svc.stopping = True
        svc.scope.cancel()
        svc.close_listeners()
        for child in svc.children:
            child.retire()

    async def stop(self, grace: float) -> None:
        """stop - close listeners, let children finish within grace, then SIGKILL."""
        self.stopping = True
        for svc in list(self.services.values()):
            self._remove(svc)
        with trio.move_on_after(grace):
            for child in list(self.children):
                await child.reaped.wait()
        for child in list(self.children):
            child.signal(signal.SIGKILL)
        with trio.move_on_after(5):
            for child in list(self.children):
                await child.reaped.wait()
        os.close(self._alive_w)
        os.close(self._alive_r)


async def send_trigger(ep: listeners.Endpoint, data: bytes) -> None:
    """send_trigger - deliver a one-byte request to a service (Postfix *_trigger)."""
    if ep.kind == "unix-dgram":
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        with sock:
            await sock.sendto(data, ep.path)
        return
    if ep.kind == "unix":
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        address = ep.path
    else:
        family = socket.AF_INET6 if ":" in ep.host else socket.AF_INET
        sock = trio.socket.socket(family, socket.SOCK_STREAM)
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(ep.host, ep.host)
        address = (host, ep.port)
    with sock:
        await sock.connect(address)
        await sock.send(data)
