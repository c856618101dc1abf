"""proctitle - rewrite this process' command line as ps and /proc/PID/cmdline show it.

SYNOPSIS
    from mailsys.runtime import proctitle
    proctitle.room()                       # bytes the argv area holds
    proctitle.set_argv(["python3", "-P", "-m", "services.smtpd", ...])

DESCRIPTION
    A process forked by the fork server (mailsys.runtime.zygote) never goes
    through exec, so the kernel still shows the fork server's argv. Tools
    and tests find a service by /proc/PID/cmdline holding the element
    "services.NAME" (and its -c and -n), so the child writes the argv it
    would have been exec'd with over its own argv area, as Postfix's and
    setproctitle's proctitle code do: the area's bounds come from
    /proc/self/stat (arg_start, arg_end), the bytes are written in place
    with ctypes.

    The area cannot grow: the fork server is exec'd with an argument of
    padding (ROOM bytes) so that its children have room. An argv that does
    not fit is cut at the area's end; the first elements, which name the
    program, the configuration directory and the service, come first.

    The rest of the area is filled with NUL bytes, and its last byte stays
    NUL, so the kernel reports the area as NUL-separated arguments (a
    non-NUL last byte would switch it to setproctitle's single string),
    followed by empty strings.

    Python keeps its own copy of argv (sys.argv, sys.orig_argv); nothing
    reads the C argv strings after start-up but glibc's
    program_invocation_name, which points at argv[0]; callers keep argv[0]
    unchanged.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

ROOM = 8192            # padding a process that will retitle its forks is exec'd with

# Fields of /proc/self/stat, counted after the parenthesised command name
# (field 3, the state, is index 0): arg_start is field 48, arg_end 49.
_ARG_START = 48 - 3
_ARG_END = 49 - 3


def _bounds() -> tuple[int, int]:
    with open("/proc/self/stat", "rb") as f:
        stat = f.read()
    fields = stat[stat.rindex(b")") + 2:].split()
    return int(fields[_ARG_START]), int(fields[_ARG_END])


def room() -> int:
    """room - how many bytes the argv area holds (0 when /proc does not tell)."""
    try:
        start, end = _bounds()
    except (OSError, ValueError, IndexError):
        return 0
    return max(end - start, 0)


def set_argv(argv: Sequence[str]) -> bool:
    """set_argv - show argv as this process' command line; False when it cannot."""
    try:
        start, end = _bounds()
    except (OSError, ValueError, IndexError):
        return False
    size = end - start
    if start == 0 or size <= 1:
        return False
    data = b"".join(a.encode(errors="surrogateescape") + b"\0" for a in argv)
    data = data[:size - 1]
    ctypes.memmove(start, data + b"\0" * (size - len(data)), size)
    return True
