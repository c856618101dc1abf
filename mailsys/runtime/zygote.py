"""zygote - the master's fork server: services start as forks of one warm interpreter.

SYNOPSIS
    python -P -m mailsys.runtime.zygote -c CONFIG_DIR --fd FD [PADDING]
    prepare(config_dir)             # in the master, before it forks the server
    run_forked(ctl, config_dir)     # in a fork of the master, before it opened anything
    (started by the master through mailsys.runtime.zygote_client, never by hand)

DESCRIPTION
    Every mailsys service is a Python process that imports trio, structlog,
    the configuration code and its own modules: about 18 MB of private
    memory each when every one is a fresh interpreter. The master therefore
    starts this process first. It imports those modules once (PRELOAD and
    the modules of CORE_SERVICES; another service's when it is first
    forked), runs what every child runs first a few times (warm_up: loading
    the configuration, a trio run over a socketpair), so that the code is
    specialised and the caches filled once, fills the free blocks the
    imports left in the small-object pools (mailsys.runtime.heap_holes: a
    child's own small objects then go to pages of its own), gives the C
    heap's free pages back (malloc_trim), freezes it all for the garbage
    collector (gc.freeze: a collection in a child then never writes to the
    objects it shares), and on request forks a child that shares them
    copy-on-write.

    It is a plain, single-threaded process: it runs trio only in that
    warm-up, which leaves no descriptor, thread or handler. The master
    does all that itself (prepare) and forks it first thing (run_forked),
    so that the master shares the modules too: had the fork server
    imported them after the fork, the master would keep its own copy of
    every page those imports wrote to (some 4 MB). It forks it before it
    opens a listener or the alive pipe, starts trio or a thread; a
    replacement for one that died is exec'd fresh and prepares itself.
    Either way it holds no descriptor of the master's but its end of one
    SOCK_SEQPACKET socket (FD), one message per request and per reply:

      zygote -> master  {"ready": PID} once the modules are imported
      master -> zygote  {"argv": [...], "fds": [N, ...]} with the
                        descriptors themselves attached (SCM_RIGHTS), in
                        the order of "fds"
      zygote -> master  {"pid": PID} or {"error": TEXT}

    "argv" is the command line mailsys.runtime.handoff.build_argv() wrote
    (python -P -m services.NAME ... or python -P /absolute/file.py ...),
    and "fds" the descriptor numbers the child must have: those the argv
    names, plus 1 and 2 for the master's standard output and error.

    A request forks twice (zygote -> intermediate -> child) and the
    intermediate exits at once, so the child is reparented to the master,
    which is a child subreaper (prctl PR_SET_CHILD_SUBREAPER): the master,
    not this process, reaps and supervises it. The reply comes after the
    intermediate is reaped, so by then the child is already the master's;
    and the child itself waits for the intermediate to be gone before it
    runs anything (wait_reparented), so that the service never sees
    another parent (os.getppid()) than the master.

    The child then looks as if exec'd from that argv: exactly the
    descriptors of "fds" at those numbers and standard input on /dev/null,
    nothing else open (not this socket); the signal dispositions a fresh
    interpreter has and an empty signal mask; a fresh seed for the random
    module (and trio's scheduler); sys.argv and sys.orig_argv as the argv
    gives them; /proc/PID/cmdline rewritten to that argv
    (mailsys.runtime.proctitle; the master pads its own argv, and this
    process' when it execs it, so that there is room), so ps and tools find
    "services.NAME" as before. It runs the service module as __main__
    with runpy (the preloaded copy is dropped first, as `python -m` would
    run a fresh one), or an absolute path with runpy.run_path, and exits as
    the interpreter would.

    What a child cannot get fresh: the hash seed of str and bytes is the
    zygote's (it is fixed at interpreter start), and a service module's
    code is the one preload() read (MAIN_CODE: shared, not read again by
    each child), as every module it imports is the preloaded one: a changed
    file takes effect at the next start of mailsys.

    End-of-file on the socket means the master is gone or closed it: the
    zygote exits 0. SIGINT is ignored (Ctrl-C on `mailsys start-fg` reaches
    the whole process group; the master decides); children get it back.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import gc
import importlib
import json
import os
import random
import runpy
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import CodeType

import trio

from mailsys.config import load
from mailsys.frozen import frozen
from mailsys.runtime import heap_holes, proctitle
from mailsys.runtime.fast_stream import FastStream
from mailsys.runtime.handoff import invocation

# What every service imports, dnspython, which the smtp agent (MX
# lookups) and smtpd (restrictions) load on first use, and psutil, which
# every process that reads the interface table (mailsys.config.interfaces)
# imports on first use. Not pyOpenSSL: it is the largest, and only a
# configuration with TLS loads it.
PRELOAD = ("trio", "structlog", "mailsys.config", "mailsys.runtime.skeleton",
           "dns.asyncresolver", "dns.asyncbackend", "dns.resolver", "dns.nameserver",
           "psutil")
# The services nearly every mail system runs, imported with PRELOAD: a
# relaying mailsys runs all of them at its first message. Any other
# (local, bounce, verify, lmtp, postscreen...) is imported here when it is
# first forked: a service that never runs costs no memory (the others
# together were 3.3 MB of the fork server's RSS, and 1.4-1.9 MB of a
# relaying mailsys's summed Pss_Anon), and the first start of one takes
# its import time longer (with the core loaded: local 61 ms, bounce 17).
CORE_SERVICES = ("smtpd", "cleanup", "qmgr", "smtp", "postlogd")
# Python 3.11 specialises a function's code in place on its 8th call, and
# every child that makes those calls itself writes its own copy of the
# page the code is on: the fork server makes them first.
WARM_RUNS = 10
# The code of each service module as load_service() read it, for the child
# that runs it as __main__: the module's own code objects are shared as well.
MAIN_CODE: dict[str, tuple[ModuleSpec, CodeType]] = {}
_TRIED: set[str] = set()       # the service modules load_service() imported or tried
MAX_MESSAGE = 1 << 20          # one request: an argv with its -o pairs
MAX_FDS = 64                   # listeners, status, alive, stdout, stderr


# --- the protocol (both ends) ---------------------------------------------------

def encode(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def decode(data: bytes) -> dict:
    obj = json.loads(data)
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    return obj


@frozen
class Request:
    argv: tuple[str, ...]
    targets: tuple[int, ...]      # the child's descriptor numbers, in the order of fds
    fds: tuple[int, ...]          # the received descriptors, in this process
    module: str | None            # "services.NAME" when argv runs a module, else None

    @classmethod
    def parse(cls, data: bytes, fds: Sequence[int]) -> "Request":
        obj = decode(data)
        argv, targets = obj.get("argv"), obj.get("fds")
        if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
            raise ValueError("argv: not a list of strings")
        if not (isinstance(targets, list) and all(isinstance(n, int) and n > 0 for n in targets)):
            raise ValueError("fds: not a list of descriptor numbers")
        if len(set(targets)) != len(targets) or len(targets) != len(fds):
            raise ValueError(f"fds: {len(targets)} numbers for {len(fds)} descriptors")
        kind, target, _args = invocation(argv)        # ValueError for anything but a service
        return cls(tuple(argv), tuple(targets), tuple(fds), target if kind == "module" else None)


@frozen
class Job:
    """What a forked child runs: one service, as `python -P -m services.NAME` would."""

    argv: tuple[str, ...]

    def run(self) -> None:
        kind, target, args = invocation(self.argv)
        sys.orig_argv = list(self.argv)
        sys.argv = [target, *args]                    # runpy puts the file in argv[0]
        if kind == "path":
            runpy.run_path(target, run_name="__main__")
            return
        # `python -m` runs a fresh copy of the module as __main__ and leaves
        # services.NAME itself unimported; runpy warns about a copy already
        # in sys.modules, so forget the preloaded one (its imports stay).
        sys.modules.pop(target, None)
        package, _, name = target.rpartition(".")
        if hasattr(sys.modules.get(package), name):
            delattr(sys.modules[package], name)
        compiled = MAIN_CODE.get(target)
        if compiled is None:
            runpy.run_module(target, run_name="__main__", alter_sys=True)
            return
        # What run_module(alter_sys=True) does after it read the code: the
        # code read once by preload(), not once per child (a fresh copy of
        # every code object of the module was some 0.7 MB a child).
        spec, code = compiled
        runpy._run_module_code(code, None, "__main__", spec)


# --- the server ------------------------------------------------------------------

def preload() -> None:
    """Import what every service imports, and the modules of CORE_SERVICES."""
    for name in PRELOAD:
        importlib.import_module(name)
    for name in CORE_SERVICES:
        load_service(f"services.{name}")


def load_service(name: str) -> None:
    """Import the service module name and keep its code for the child that
    runs it; tried once. A module that fails to import is left to that
    child, which reports the same error."""
    if name in _TRIED:
        return
    _TRIED.add(name)
    try:
        spec = importlib.import_module(name).__spec__
        MAIN_CODE[name] = (spec, spec.loader.get_code(name))
    except Exception:       # noqa: BLE001 - the child that runs it reports the same error
        pass


def warm_up(config_dir: str | None) -> None:
    """Run here, WARM_RUNS times, what every child runs first.

    Load the configuration, start trio, pass bytes over a stream and wait on
    a deadline: code specialised and caches filled here are shared. A child
    then dirties some 0.5 MB less (1 KB x 200 sessions: 3 MB less in all).
    Nothing of it stays behind: no descriptor, thread or signal handler.
    """
    for _ in range(WARM_RUNS):
        try:
            if config_dir is not None:
                load(Path(config_dir))
            trio.run(_warm_trio)
        except Exception:       # noqa: BLE001 - only a warm-up: each child reports its own errors
            return


async def _warm_trio() -> None:
    a, b = socket.socketpair()
    async with FastStream(a) as one, FastStream(b) as two:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(one.send_all, b"warm-up\r\n")
            await two.receive_some()
        with trio.move_on_after(0.001):
            await two.receive_some()


def release_free_heap() -> None:
    """Give back the C heap's free pages (about 1 MB after the imports).

    Freed but resident, they would count in this process for as long as it
    lives and help no child: a child that allocates there writes its own
    copy of the page anyway.
    """
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass                              # not glibc: nothing to give back this way


def serve(ctl: socket.socket, dispositions: dict) -> Job | None:
    """Answer requests until end-of-file; in a forked child, return its Job."""
    try:
        ctl.send(encode({"ready": os.getpid()}))
    except OSError:
        return None
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(ctl, MAX_MESSAGE, MAX_FDS)
        except ConnectionError:
            return None
        if not data:
            _close(fds)
            return None
        try:
            request = Request.parse(data, fds)
        except ValueError as e:
            _close(fds)
            try:
                ctl.send(encode({"error": f"bad request: {e}"}))
            except OSError:
                return None
            continue
        module = request.module
        if module is not None and module not in _TRIED:
            settle(lambda: load_service(module))
        result = fork(request, ctl, dispositions)
        if isinstance(result, Job):
            return result                         # the child: leave the loop, run it
        _close(fds)
        try:
            ctl.send(encode({"error": result} if isinstance(result, str) else {"pid": result}))
        except OSError:
            return None                           # the master is gone


def fork(request: Request, ctl: socket.socket, dispositions: dict) -> int | str | Job:
    """The child's pid (an error text on failure); the Job in the child itself."""
    r, w = os.pipe()
    try:
        middle = os.fork()
    except OSError as e:
        os.close(r)
        os.close(w)
        return f"fork: {e.strerror}"
    if middle == 0:
        # The intermediate: fork the child and go at once, so that the
        # child is reparented to the master (a subreaper).
        try:
            os.close(r)
            middle_pid = os.getpid()
            gate, held = os.pipe()              # held: open here until this process exits
            pid = os.fork()
            if pid == 0:
                os.close(w)
                os.close(held)
                wait_reparented(gate, middle_pid)
                return become(request, ctl, dispositions)
            os.write(w, str(pid).encode())
        except BaseException:               # noqa: BLE001 - in either forked process
            try:
                traceback.print_exc()
            finally:
                os._exit(1)
        os._exit(0)
    os.close(w)
    _, status = os.waitpid(middle, 0)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    if not data:
        return f"fork: intermediate process exit status {os.waitstatus_to_exitcode(status)}"
    return int(data)


def wait_reparented(gate: int, middle_pid: int) -> None:
    """In the child: return once the intermediate has exited and this
    process is the master's, before anything of the service runs.

    End-of-file on gate comes when the intermediate's end closes at its
    exit; the kernel reparents its children a moment after it closes its
    descriptors, hence the short wait for getppid() to change.
    """
    os.read(gate, 1)
    os.close(gate)
    while os.getppid() == middle_pid:
        time.sleep(0.0001)


def become(request: Request, ctl: socket.socket, dispositions: dict) -> Job:
    """Make this fresh fork look like the exec'd child of request.argv."""
    ctl.close()
    place_fds(request.fds, request.targets)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    for signum, handler in dispositions.items():
        if signal.getsignal(signum) is not handler:
            signal.signal(signum, handler)
    reseed()
    proctitle.set_argv(request.argv)
    return Job(request.argv)


def place_fds(fds: Sequence[int], targets: Sequence[int]) -> None:
    """Leave exactly fds at the numbers targets (inheritable) and /dev/null on 0."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    base = max([*targets, *fds, devnull, 2]) + 1
    # Above every number in play first, so no dup2 below lands on a source.
    moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, base) for fd in (devnull, *fds)]
    keep = set(moved)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass                          # the listing's own descriptor, already closed
    for src, dst in zip(moved, (0, *targets)):
        os.dup2(src, dst)
    for fd in moved:
        os.close(fd)


def reseed() -> None:
    """A fresh random state: nothing a sibling could predict from its own."""
    random.seed()                            # os.fork() already did; say it where it matters
    trio_run = sys.modules.get("trio._core._run")
    rng = getattr(trio_run, "_r", None)      # trio's scheduler shuffle
    if isinstance(rng, random.Random):
        rng.seed()


def _close(fds: Sequence[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _all_signals() -> list[int]:
    return [s for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP)]


def title(config_dir: str) -> list[str]:
    """The fork server's command line, as ps shows it however it was started."""
    return [sys.executable, "-P", "-m", "mailsys.runtime.zygote", "-c", config_dir]


_prepared = False


def settle(work: Callable[[], object]) -> None:
    """Run work (imports, the warm-up) the way that keeps the most shared.

    No collection meanwhile: it would leave holes that the children's
    allocations fill, dirtying shared pages. Then the holes there are
    anyway are filled, the C heap's free pages given back, and everything
    frozen for the garbage collector.
    """
    gc.disable()
    try:
        work()
        heap_holes.fill()
        release_free_heap()
        gc.freeze()
    finally:
        gc.enable()


def prepare(config_dir: str | None) -> None:
    """Preload, warm up, fill the pools' holes, give back the free heap and
    freeze; once per process.

    The master calls it itself before it forks this server (so that what it
    imports is shared by the master too); run() does it otherwise.
    """
    global _prepared
    if _prepared:
        return

    def load_and_warm_up() -> None:
        preload()
        warm_up(config_dir)
    settle(load_and_warm_up)
    _prepared = True


def run(ctl: socket.socket, config_dir: str | None = None) -> int:
    """Preload, then serve; in a forked child, run its service. The exit status."""
    # What a fresh interpreter has; a child gets exactly these back.
    dispositions = {s: h for s in _all_signals() if (h := signal.getsignal(s)) is not None}
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    prepare(config_dir)
    sys.stdout.flush()
    sys.stderr.flush()
    job = serve(ctl, dispositions)
    if job is None:
        return 0
    job.run()
    return 0


def run_forked(ctl: socket.socket, config_dir: str) -> int:
    """run() in a process just forked from the master, before it opened anything.

    Only ctl and the standard output and error stay open (the master's
    --ready-fd does not), with standard input on /dev/null.
    """
    place_fds([ctl.fileno(), 1, 2], [ctl.fileno(), 1, 2])
    proctitle.set_argv(title(config_dir))
    return run(ctl, config_dir)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="zygote")
    p.add_argument("-c", dest="config_dir", required=True)    # for ps: which instance
    p.add_argument("--fd", type=int, required=True)
    p.add_argument("padding", nargs="?", default="")          # room for children's argv
    ns = p.parse_args(argv)
    if ns.padding:
        proctitle.set_argv(title(ns.config_dir))              # ps shows no padding
    return run(socket.socket(fileno=ns.fd), ns.config_dir)


if __name__ == "__main__":
    sys.exit(main())
