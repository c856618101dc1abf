"""writer - a process's side of logging: send each event to postlogd.

SYNOPSIS
    w = Writer.from_config(cfg, console=False)
    w.emit(event)            # never raises, never blocks for long
    w.close()

DESCRIPTION
    Every event is serialised once (LogEvent.encode(), one JSON object) and
    sent as ONE datagram to postlogd's socket, <queue_directory>/private/
    postlog, an AF_UNIX SOCK_DGRAM socket the master binds (Postfix:
    "postlog unix-dgram n - n - 1 postlogd"). A datagram arrives whole or
    not at all, so postlogd never sees half an event, and because postlogd
    is the only writer of the files, lines from different processes never
    interleave.

    The socket is non-blocking and unconnected: each sendto() names the
    path, so a restarted postlogd is found again without reconnecting.
    When the datagram cannot be delivered - no socket file (ENOENT), nobody
    bound to it (ECONNREFUSED), an event bigger than MAX_DATAGRAM (64 KiB,
    what postlogd receives at once) or than the kernel allows (EMSGSIZE),
    postlogd's queue still full (EAGAIN) after a retry of a few
    milliseconds, or any other error - the process appends the event itself
    through a LogSink: both renderings, one os.write() each, on O_APPEND
    descriptors of maillog_file and mail.json, creating the directories.
    That is the fallback Postfix's own command-line tools use while
    postlogd is down. The next event tries the socket again.

    Logging never blocks a server for more than the retry (RETRY_DELAYS,
    8 ms in all) and never raises into the caller: a fallback that fails
    too ends on standard error.

    emit() may be called from any thread (trio worker threads log too):
    the socket is created once under a lock, sendto() is one system call,
    and the fallback files serialise their own writes.

    With console=True (``mailsys start-fg`` on a terminal) each event's
    Postfix line is also written to standard error.
"""

from __future__ import annotations

import errno
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from mailsys.maillog import postfix
from mailsys.maillog.event import LogEvent
from mailsys.maillog.files import to_stderr
from mailsys.maillog.sink import MAX_DATAGRAM, LogSink

POSTLOG_SERVICE = "postlog"

# Short waits before giving up on a full postlogd queue (EAGAIN/ENOBUFS):
# long enough to ride out a burst, short enough not to stall a trio loop.
RETRY_DELAYS = (0.001, 0.002, 0.005)


def postlog_path(cfg: Any) -> Path:
    """postlogd's socket: <queue_directory>/private/postlog."""
    return cfg.path("queue_directory") / "private" / POSTLOG_SERVICE


class Writer:
    """Sends events to postlogd; appends them itself while postlogd is away."""

    def __init__(self, socket_path: Path, fallback: LogSink, host: str,
                 *, console: bool = False) -> None:
        self.socket_path = Path(socket_path)
        self._address = os.fsencode(self.socket_path)
        self._fallback = fallback
        self._host = host
        self._console = console
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg: Any, *, console: bool = False) -> "Writer":
        return cls(postlog_path(cfg), LogSink(cfg), postfix.short_host(str(cfg.myhostname)),
                   console=console)

    def emit(self, event: LogEvent) -> None:
        """Deliver one event to postlogd, or append it directly."""
        try:
            sent = self._send(event.encode())
            if not sent:
                self._fallback.append(event)
            if self._console and (sent or not self._fallback.logs_to_stderr):
                to_stderr("".join(line + "\n" for line in postfix.render_lines(event, self._host)))
        except Exception as e:  # noqa: BLE001 - logging must not raise into the caller
            to_stderr(f"{event.tag}[{event.pid}]: warning: logging failed: {e!r}\n")

    def _send(self, datagram: bytes) -> bool:
        if len(datagram) > MAX_DATAGRAM:
            return False
        sock = self._socket()
        for delay in (*RETRY_DELAYS, None):
            try:
                sock.sendto(datagram, self._address)
                return True
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as e:
                if e.errno != errno.ENOBUFS:
                    return False            # ENOENT, ECONNREFUSED, EMSGSIZE, ...
            if delay is None:
                return False
            time.sleep(delay)
        return False

    def _socket(self) -> socket.socket:
        sock = self._sock
        if sock is None:
            with self._lock:
                if self._sock is None:
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                    s.setblocking(False)
                    self._sock = s
                sock = self._sock
        return sock

    def close(self) -> None:
        """Release the socket and files; a later emit() opens them again."""
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        self._fallback.close()
