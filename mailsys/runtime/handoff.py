"""handoff - the command line on which the master hands a service its sockets.

SYNOPSIS
    python -P -m services.NAME  -c CONFIG_DIR -n SERVICE -t TYPE [-o NAME=VALUE ...]
        --gen N --maxproc N --status-fd FD --alive-fd FD [--listen-fd FD ...] [-- ARGS ...]
    python -P /absolute/path/to/daemon.py  (same options)

DESCRIPTION
    This module is the written-down master<->child contract (Postfix keeps
    its own in master_proto.h): the master builds the argv with
    build_argv(), the service skeleton reads it back with parse_argv().

    -c CONFIG_DIR    the configuration directory the master read.
    -n SERVICE       column 1 of master.cf ("smtp", "127.0.0.1:2525", "postlog").
    -t TYPE          column 2: inet, unix, unix-dgram or pass.
    -o NAME=VALUE    the service's master.cf overrides, in order, applied on
                     top of main.cf by the skeleton (Config.with_overrides).
    --gen N          the service generation; it grows on every reload that
                     replaces the service's processes. Status records carry it.
    --maxproc N      column 7 resolved (0 = unlimited): a solitary daemon
                     refuses to run with anything but 1.
    --status-fd FD   write end of this child's status pipe (mailsys.runtime.status).
    --alive-fd FD    read end of the master's "alive" pipe. The master never
                     writes to it; end-of-file means the master is gone and
                     the child must finish up and exit on its own.
    --listen-fd FD   one per socket the master opened for the service: an
                     inet service has one per address (IPv4 and IPv6), a
                     unix or unix-dgram service exactly one. Already bound
                     and, for stream sockets, listening.
    -- ARGS          master.cf arguments other than the -o pairs.

    Descriptor numbers are passed explicitly rather than fixed (Postfix uses
    5 for status and 6 and up for listeners) because subprocess' pass_fds
    keeps the numbers the master happened to get.

    Commands. A command without a slash names a module in the services
    package ("smtpd" runs services/smtpd.py). An absolute path runs that
    Python file, as Postfix runs an absolute command path instead of one in
    $daemon_directory; the test suite uses this for its own small services.
    Python runs with -P so that the current directory never shadows the
    installed mailsys and services packages.

    A master with a fork server (mailsys.runtime.zygote) sends it the same
    argv instead of exec'ing it; invocation() reads the program back out of
    it, and the forked child then behaves as the exec'd one would.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from mailsys.errors import ConfigError
from mailsys.frozen import frozen

_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@frozen
class ChildArgs:
    """Everything the master tells one child process."""

    config_dir: Path
    service: str
    type: str
    overrides: tuple[tuple[str, str], ...] = ()
    gen: int = 0
    maxproc: int = 1
    status_fd: int | None = None
    alive_fd: int | None = None
    listen_fds: tuple[int, ...] = ()
    args: tuple[str, ...] = ()

    @property
    def pass_fds(self) -> tuple[int, ...]:
        """The descriptors the child must inherit."""
        fds = [*self.listen_fds]
        if self.status_fd is not None:
            fds.append(self.status_fd)
        if self.alive_fd is not None:
            fds.append(self.alive_fd)
        return tuple(fds)


@frozen
class Command:
    """How to run a master.cf command: the argv prefix and the path for log lines."""

    argv: tuple[str, ...]
    path: str


def resolve_command(command: str, *, file: str | None = None, line: int | None = None) -> Command:
    """resolve_command - map column 8's command word to a Python invocation.

    Raises ConfigError (naming master.cf and the line) for a command that
    does not exist, so `mailsys check` and `start` catch it up front.
    """
    if os.path.isabs(command):
        if not os.path.isfile(command):
            raise ConfigError(f"command not found: {command}", file=file, line=line)
        return Command((sys.executable, "-P", command), command)
    # Postfix's "trivial-rewrite": a module name has "_" where the command has "-".
    module = command.replace("-", "_")
    if not _MODULE_NAME.match(module):
        raise ConfigError(f"bad command name: {command!r} (a services module or an absolute path)",
                          file=file, line=line)
    spec = importlib.util.find_spec(f"services.{module}")
    if spec is None or spec.origin is None:
        raise ConfigError(f"unknown command: {command} (no module services.{command})",
                          file=file, line=line)
    return Command((sys.executable, "-P", "-m", f"services.{module}"), spec.origin)


def build_argv(command: Command, a: ChildArgs) -> list[str]:
    """build_argv - the full argv of one child process."""
    argv = [*command.argv, "-c", str(a.config_dir), "-n", a.service, "-t", a.type]
    for name, value in a.overrides:
        argv += ["-o", f"{name}={value}"]
    argv += ["--gen", str(a.gen), "--maxproc", str(a.maxproc)]
    if a.status_fd is not None:
        argv += ["--status-fd", str(a.status_fd)]
    if a.alive_fd is not None:
        argv += ["--alive-fd", str(a.alive_fd)]
    for fd in a.listen_fds:
        argv += ["--listen-fd", str(fd)]
    if a.args:
        argv += ["--", *a.args]
    return argv


def invocation(argv: Sequence[str]) -> tuple[str, str, list[str]]:
    """invocation - ("module", "services.NAME", args) or ("path", "/abs/file.py", args).

    argv is one build_argv() wrote; args is what follows the program (the
    child's sys.argv[1:]). Raises ValueError for any other shape.
    """
    if len(argv) >= 4 and argv[1] == "-P" and argv[2] == "-m" and argv[3].startswith("services."):
        return "module", argv[3], list(argv[4:])
    if len(argv) >= 3 and argv[1] == "-P" and os.path.isabs(argv[2]):
        return "path", argv[2], list(argv[3:])
    raise ValueError(f"not a service command line: {list(argv[:4])!r}")


def _override(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"-o needs name=value, got {text!r}")
    return name.strip(), value.strip()


def parse_argv(argv: list[str]) -> ChildArgs:
    """parse_argv - read back what build_argv wrote (argv without the program)."""
    p = argparse.ArgumentParser(prog="mailsys-service", add_help=False)
    p.add_argument("-c", dest="config_dir", type=Path, required=True)
    p.add_argument("-n", dest="service", required=True)
    p.add_argument("-t", dest="type", required=True)
    p.add_argument("-o", dest="overrides", type=_override, action="append", default=[])
    p.add_argument("--gen", type=int, default=0)
    p.add_argument("--maxproc", type=int, default=1)
    p.add_argument("--status-fd", type=int)
    p.add_argument("--alive-fd", type=int)
    p.add_argument("--listen-fd", dest="listen_fds", type=int, action="append", default=[])
    p.add_argument("args", nargs="*")
    ns = p.parse_args(argv)
    return ChildArgs(config_dir=ns.config_dir, service=ns.service, type=ns.type,
                     overrides=tuple(ns.overrides), gen=ns.gen, maxproc=ns.maxproc,
                     status_fd=ns.status_fd, alive_fd=ns.alive_fd,
                     listen_fds=tuple(ns.listen_fds), args=tuple(ns.args))
