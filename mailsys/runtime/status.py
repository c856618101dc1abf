"""status - the child -> master status channel.

DESCRIPTION
    Every child gets the write end of its own pipe (--status-fd). It writes
    fixed-size records of three fields, Postfix master_proto's
    {pid, gen, avail}: the child's pid, the service generation it was started
    for, and one state byte:

        READY   sent once, after post_init, when the child serves (it has no
                client yet). A child that dies before READY "terminated before
                completing its first request" and gets its service throttled.
        IDLE    no client in hand any more.
        AVAIL   some clients in hand, room for more.
        BUSY    as many clients in hand as its per-process concurrency allows.
                When every process of a service is BUSY the master starts
                another one, up to maxproc.

    A record is 9 bytes, well under PIPE_BUF, so a write is atomic. The child
    writes without blocking and drops a record when the pipe is full: status
    is a hint for process management, never needed for correctness. The
    master reads until end-of-file, which comes when the child is gone.
"""

from __future__ import annotations

import enum
import errno
import os
import struct

from mailsys.frozen import frozen

RECORD = struct.Struct("=iiB")


class State(enum.IntEnum):
    BUSY = 0          # Postfix MASTER_STAT_TAKEN
    AVAIL = 1         # Postfix MASTER_STAT_AVAIL
    IDLE = 2
    READY = 3


@frozen
class Status:
    pid: int
    gen: int
    state: State


def encode(status: Status) -> bytes:
    return RECORD.pack(status.pid, status.gen, int(status.state))


class StatusDecoder:
    """Splits the master's reads of a status pipe into Status records."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[Status]:
        self._buf += data
        out = []
        while len(self._buf) >= RECORD.size:
            pid, gen, state = RECORD.unpack_from(self._buf)
            self._buf = self._buf[RECORD.size:]
            try:
                out.append(Status(pid, gen, State(state)))
            except ValueError:
                continue    # a state from a newer child; ignore it, like Postfix ignores extra attributes
        return out


class StatusReporter:
    """The child's end: report(state) writes a record when the state changes."""

    def __init__(self, fd: int | None, gen: int) -> None:
        self._fd = fd
        self._gen = gen
        self._last: State | None = None
        if fd is not None:
            os.set_blocking(fd, False)

    def report(self, state: State) -> None:
        if self._fd is None or state == self._last:
            return
        self._last = state
        try:
            os.write(self._fd, encode(Status(os.getpid(), self._gen, state)))
        except BlockingIOError:
            pass                                  # pipe full: the master is behind; a hint may be lost
        except OSError as e:
            if e.errno != errno.EPIPE:            # master gone: the alive pipe will tell us
                raise

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
