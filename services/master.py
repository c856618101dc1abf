"""master - the mailsys supervisor (Postfix master(8)).

SYNOPSIS
    python -P -m services.master -c CONFIG_DIR [--ready-fd FD] [--foreground]
    (started by `mailsys start` / `mailsys start-fg`, never by hand)

DESCRIPTION
    Reads main.cf (mailsys.config.load) and master.cf (parse_master_cf),
    creates $queue_directory with its private/, public/ and pid/
    subdirectories, takes the lock on $queue_directory/pid/master.pid (a
    second master on the same queue refuses: "the mailsys mail system is
    already running"), opens every listener of every service itself, and only
    then starts the children, handing each its sockets (mailsys.runtime:
    handoff for the argv and descriptors, status for the child -> master
    pipe, supervisor for process counts, restarts, back-off, throttling and
    reload).

    Commands in master.cf column 8 are modules of the services package
    ("postlogd" runs services/postlogd.py) or absolute paths of Python files
    (how the test suite runs its own small services).

    With --ready-fd the master writes one line to that descriptor and closes
    it: "ok" once the listeners are open and the first processes reported
    READY (bounded by READY_WAIT), or "error: <reason>" before exiting 1 (a
    bad configuration, a port in use, already running). `mailsys start`
    waits for this line, so it returns 0 only when the system is up.

    Once started, and after each reload, the master removes the temporary
    files of sendmails that died while writing to the maildrop, when a day
    old ("warning: removed file maildrop/.NAME..."), as `postfix start` and
    `postfix reload` have postsuper purge them; then, at start, it wakes
    the pickup service if mail waits there.

    Signals (Postfix's): SIGHUP re-reads both files and reloads ("reload --
    version V, configuration DIR"); a configuration that no longer loads is
    logged and the running one kept. SIGTERM (and SIGINT, for start-fg on a
    terminal) stops: "terminating on signal 15", listeners closed, children
    given GRACEFUL_TIMEOUT to finish what they hold, stragglers SIGKILLed,
    pid file removed. When the master is killed outright, every child sees
    end-of-file on its alive pipe and exits on its own.

    Before it forks anything the master strips its environment to
    $import_environment (mailsys.runtime.environment), so that every
    daemon, and every command they run, sees the same variables however
    mailsys was started.

    Children are forked from a fork server the master forks before anything
    else (mailsys.runtime.zygote: one copy of the imported modules, shared
    by the master and every child), or exec'd where it cannot be used;
    either way they are the master's children (it is a subreaper) and
    supervised alike. So that their command lines fit in the argv area
    they inherit, the master first re-execs itself with --argv-room and
    padding (ps shows it without).

    The master never opens the LMDB queue (LMDB environments must not cross
    fork). Importing services.master loads no lmdb; the lmdb module comes
    in at start-up with the rest of what the master preloads for the fork
    server (mailsys.runtime.zygote.prepare), to share it. Logging goes through mailsys.maillog as
    "<syslog_name>/master".
"""

from __future__ import annotations

import os
import sys

from mailsys.runtime import proctitle

# Children forked by the fork server show their own command line in the
# argv area they inherit from the master: make it big enough, by one exec
# before the imports below (the padding is dropped from ps right away).
ARGV_ROOM = "--argv-room"
if __name__ == "__main__" and ARGV_ROOM not in sys.argv:
    os.execv(sys.executable, [*sys.orig_argv, ARGV_ROOM, " " * proctitle.ROOM])

import argparse  # noqa: E402 - after the re-exec, which should not pay for them
import signal  # noqa: E402
from pathlib import Path  # noqa: E402

import structlog  # noqa: E402
import trio  # noqa: E402

from mailsys import __version__  # noqa: E402
from mailsys.config import load, parse_master_cf  # noqa: E402
from mailsys.errors import ConfigError  # noqa: E402
from mailsys.maillog.files import check_prefixes  # noqa: E402
from mailsys.maillog.setup import configure  # noqa: E402
from mailsys.runtime import listeners  # noqa: E402
from mailsys.runtime.environment import import_environment  # noqa: E402
from mailsys.runtime.pidfile import PidFile, pid_path  # noqa: E402
from mailsys.runtime.skeleton import GRACEFUL_TIMEOUT  # noqa: E402
from mailsys.runtime.supervisor import Supervisor, prepare_all, send_trigger  # noqa: E402
from mailsys.runtime.zygote_client import Zygote  # noqa: E402

log = structlog.get_logger()

PICKUP_TRIGGER_TIMEOUT = 5.0            # a trigger pickup does not take is dropped
READY_WAIT = 10.0                      # start-up waits at most this long for first READYs
STOP_GRACE = GRACEFUL_TIMEOUT + 2.0    # children's grace plus their exit and reap


class ReadyPipe:
    """The one line `mailsys start` waits for."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    def _send(self, line: str) -> None:
        if self._fd is None:
            return
        try:
            os.write(self._fd, (line + "\n").encode())
        except OSError:
            pass                       # the starter gave up waiting; nothing to tell
        os.close(self._fd)
        self._fd = None

    def ok(self) -> None:
        detached = self._fd is not None
        self._send("ok")
        if detached:
            # `mailsys start` held our stderr only to show a start-up crash.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)

    def fail(self, reason: str) -> None:
        self._send(f"error: {reason}")


def read_config(config_dir: Path):
    cfg = load(config_dir)
    check_prefixes(cfg)
    return cfg, parse_master_cf(config_dir / "master.cf", cfg), (config_dir / "main.cf").read_bytes()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="master")
    p.add_argument("-c", dest="config_dir", type=Path, required=True)
    p.add_argument("--ready-fd", type=int)
    p.add_argument("--foreground", action="store_true")
    p.add_argument(ARGV_ROOM, dest="argv_room", default="")
    ns = p.parse_args(argv)
    if ns.argv_room:
        proctitle.set_argv(sys.orig_argv[:-2])
    config_dir = ns.config_dir.absolute()
    # main.cf and master.cf are read once at start: the environment is
    # stripped to $import_environment before anything is forked (Postfix's
    # master does it at start-up only), and the same Config runs the master.
    # A configuration that does not load is reported by _main(), once.
    try:
        loaded = read_config(config_dir)
    except (ConfigError, OSError) as e:
        loaded = e
    else:
        import_environment(loaded[0])
    # First of all, while this is one thread with nothing open: the fork
    # server is forked from here and shares every module imported so far.
    # (In the fork server and its children this call does not return.)
    zygote = None if isinstance(loaded, Exception) else Zygote.start(config_dir)
    try:
        return _main(ns, config_dir, zygote, loaded)
    finally:
        if zygote is not None:
            zygote.close()


def _main(ns: argparse.Namespace, config_dir: Path, zygote: Zygote | None,
          loaded: tuple | Exception) -> int:
    ready = ReadyPipe(ns.ready_fd)

    def fatal(reason: str) -> int:
        ready.fail(reason)
        if ns.ready_fd is None or ns.foreground:
            print(f"mailsys: fatal: {reason}", file=sys.stderr)
        return 1

    try:
        if isinstance(loaded, Exception):
            raise loaded
        cfg, specs, main_text = loaded
        listeners.make_dirs(cfg)
    except ConfigError as e:
        return fatal(str(e))
    except OSError as e:
        return fatal(f"{e.filename}: {e.strerror}")
    pidfile = PidFile(pid_path(cfg))
    if not pidfile.acquire():
        return fatal("the mailsys mail system is already running")
    configure(cfg, "master", console=ns.foreground and sys.stderr.isatty())
    if zygote is None:
        log.info("no fork server on this system (pidfd, subreaper): services are exec'd")

    def release() -> None:
        if zygote is not None:
            zygote.close()
        pidfile.release()

    try:
        services = prepare_all(cfg, specs)
    except (ConfigError, listeners.ListenError) as e:
        log.critical(str(e))
        release()
        return fatal(str(e))
    log.info(f"daemon started -- version {__version__}, configuration {config_dir}")
    try:
        trio.run(_supervise, cfg, services, config_dir, main_text, ready, zygote)
    except Exception as e:
        # A bug: say so where the administrator looks (stderr is /dev/null
        # after `mailsys start`); children see the alive pipe close and exit.
        log.critical(f"unexpected error: {e!r}", exc_info=True)
        ready.fail(f"unexpected error: {e!r}; see the mail log")
        return 1
    finally:
        release()
    return 0


async def _supervise(cfg, services, config_dir: Path, main_text: bytes, ready: ReadyPipe,
                     zygote: Zygote | None) -> None:
    with trio.open_signal_receiver(signal.SIGHUP, signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            sup = Supervisor(cfg, nursery, zygote)
            sup.start(services)
            await sup.wait_started(READY_WAIT)
            ready.ok()
            nursery.start_soon(_wake_pickup, cfg, services)
            async for signum in signals:
                if signum == signal.SIGHUP:
                    try:
                        new_cfg, specs, new_text = read_config(config_dir)
                    except (ConfigError, OSError) as e:
                        log.warning(f"reload failed, keeping the running configuration: {e}")
                        continue
                    log.info(f"reload -- version {__version__}, configuration {config_dir}")
                    await sup.reload(new_cfg, specs, new_text != main_text)
                    nursery.start_soon(_purge_maildrop, new_cfg)
                    main_text = new_text
                else:
                    log.info(f"terminating on signal {int(signum)}")
                    await sup.stop(STOP_GRACE)
                    nursery.cancel_scope.cancel()
                    break


async def _purge_maildrop(cfg) -> None:
    """Remove the temporary files that sendmails killed while writing left
    in the maildrop a day ago or more (mailsys.queue.maildrop.purge), each
    with a warning: Postfix's `postfix start` and `postfix reload` run
    postsuper, which removes such files (with no word unless -v: "removed
    file maildrop/NAME"; a lost submission is worth a warning here)."""
    from mailsys.queue import maildrop

    try:
        removed = await trio.to_thread.run_sync(maildrop.purge, cfg.path("queue_directory"))
    except OSError as e:
        log.warning(f"cannot purge old temporary files from the maildrop: {e}")
        return
    for name in removed:
        log.warning(f"removed file {maildrop.MAILDROP}/{name}: a temporary file not modified "
                    f"for over {maildrop.TEMP_AGE // 3600} hours")


async def _wake_pickup(cfg, services) -> None:
    """Mail that sendmail left in the maildrop while the system was down:
    the pickup service queues it now (Postfix's pickup scans at its first
    wakeup), once the old temporary files are purged."""
    from mailsys.queue import maildrop

    await _purge_maildrop(cfg)
    if not await trio.to_thread.run_sync(maildrop.pending, cfg.path("queue_directory")):
        return
    pickup = [svc for svc in services if svc.spec.command == "pickup" and svc.endpoints]
    if not pickup:
        log.warning("the maildrop holds mail and master.cf has no pickup service to queue it")
        return
    with trio.move_on_after(PICKUP_TRIGGER_TIMEOUT):
        try:
            await send_trigger(pickup[0].endpoints[0], b"W")
        except OSError as e:
            log.warning(f"cannot wake the pickup service: {e}")


if __name__ == "__main__":
    sys.exit(main())
