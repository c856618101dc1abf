"""writer - a process's side of logging: send events to postlogd.

SYNOPSIS
    w = Writer.from_config(cfg, console=False)
    w.emit(event)            # never raises, never sleeps; sends now, at the end of
                             # the trio scheduler pass, or within 1 ms
    w.flush()                # deliver what is pending (waits up to 0.5 s for room)
    w.close()                # flush(), then release the socket and files

DESCRIPTION
    Every event is serialised once (LogEvent.encode(), one JSON object
    without a raw newline) and sent to postlogd's socket, <queue_directory>/
    private/postlog, an AF_UNIX SOCK_DGRAM socket the master binds
    (Postfix: "postlog unix-dgram n - n - 1 postlogd"). A datagram carries
    one or more encoded events, one per line, at most MAX_DATAGRAM (64 KiB)
    in all. A datagram arrives whole or not at all, so postlogd never sees
    half an event, and because postlogd is the only writer of the files,
    lines from different processes never interleave.

    The socket is non-blocking and unconnected: each sendto() names the
    path, so a restarted postlogd is found again without reconnecting.

    emit() never sleeps: the caller's thread is a whole trio loop. It adds
    the event to a pending buffer, in order, and then sends at once or
    leaves the sending for a moment, so that the events of a burst share a
    datagram and postlogd pays one wake-up and one write per file for all
    of them:

      at once       while postlogd has not yet taken a datagram from this
                    writer (the first event, and after a fallback, so that
                    a process without postlogd appends synchronously), for
                    a warning or worse (it may be the last line before the
                    process dies), and once MAX_DATAGRAM bytes are held;
      end of pass   in the thread of a running trio loop: a trio
                    Instrument sends what is held when the scheduler is
                    about to wait for I/O, so every event of a scheduler
                    pass goes before the process waits, in one datagram;
      COALESCE      in any other thread (worker threads, processes without
                    trio): a flusher thread (a daemon started on first
                    need) sends 1 ms after the first event held.

    Sending takes the pending events oldest first, as many per datagram as
    MAX_DATAGRAM allows. When postlogd's queue is full (EAGAIN or ENOBUFS;
    Linux queues only net.unix.max_dgram_qlen datagrams per socket, often
    10), they stay pending: the flusher retries after RETRY_FIRST, backing
    off to RETRY_MAX while nothing goes through, and whatever send comes
    next takes them along.

    The process appends events itself, through a LogSink (both renderings,
    one os.write() per file, on O_APPEND descriptors of maillog_file and
    mail.json, creating the directories), when postlogd cannot take them:
    no socket file (ENOENT), nobody bound to it (ECONNREFUSED), any other
    send error, postlogd's queue full for FULL_TIMEOUT (0.5 s) without a
    datagram going through, or more than MAX_PENDING bytes pending. The
    pending events are appended then, all of them, oldest first, before
    the event at hand; an event bigger than MAX_DATAGRAM is appended in its
    turn. That is the fallback Postfix's own command-line tools use while
    postlogd is down. The next event tries the socket again.

    Order: a process's events leave the writer in the order of the emit()
    calls (two threads: in the order they take the lock), whichever way
    each goes; pending events are always appended before any later event.
    A direct append can overtake only the datagrams postlogd has received
    but not yet written, and only when postlogd does not keep up at all
    (stuck for FULL_TIMEOUT, MAX_PENDING exceeded, or full at close).

    Nothing pending is lost at exit: close(), and an atexit hook for every
    writer still open, send what postlogd takes within FULL_TIMEOUT
    (flush(); the only place the writer waits) and append the rest. A
    forked child drops its copy of the parent's pending events, which the
    parent still delivers.

    A held event is lost only if the process dies by SIGKILL (or os._exit)
    before the end of its scheduler pass or the millisecond, like the work
    it was doing.

    emit() may be called from any thread (trio worker threads log too): one
    lock guards the socket and the pending buffer, held for a deque append
    and at most one sendto() in the common case. It never raises into the
    caller: a fallback that fails too ends on standard error.

    With console=True (``mailsys start-fg`` on a terminal) each event's
    Postfix line is also written to standard error, once: at emit(), or,
    when the fallback itself writes to standard error (empty maillog_file),
    when the event goes to postlogd.
"""

from __future__ import annotations

import atexit
import collections
import errno
import os
import socket
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from mailsys.maillog import postfix
from mailsys.maillog.event import LogEvent
from mailsys.maillog.files import to_stderr
from mailsys.maillog.sink import MAX_DATAGRAM, LogSink

POSTLOG_SERVICE = "postlog"

# How long the flusher holds routine events emitted outside a trio loop's
# thread before it sends them, so that the events of one burst share a
# datagram (and postlogd one wake-up and one write per file).
COALESCE = 0.001
# Its waits for room in postlogd's queue, doubled after each try that sends
# nothing: postlogd drains its queue within a millisecond or two when it
# runs at all.
RETRY_FIRST = 0.001
RETRY_MAX = 0.016
# Held for COALESCE only these; a warning or worse is sent at once (it may
# be the last line before the process dies).
_ROUTINE = frozenset({"info", "debug"})
# postlogd's queue full this long with nothing going through: it is stuck or
# gone, append directly instead of holding the events.
FULL_TIMEOUT = 0.5
# Pending bytes beyond which the events are appended directly at once.
MAX_PENDING = 16 * MAX_DATAGRAM

_SEPARATOR = b"\n"


def postlog_path(cfg: Any) -> Path:
    """postlogd's socket: <queue_directory>/private/postlog."""
    return cfg.path("queue_directory") / "private" / POSTLOG_SERVICE


class Writer:
    """Sends events to postlogd; holds them while its queue is full, and
    appends them itself while postlogd is away."""

    def __init__(self, socket_path: Path, fallback: LogSink, host: str,
                 *, console: bool = False) -> None:
        self.socket_path = Path(socket_path)
        self._address = os.fsencode(self.socket_path)
        self._fallback = fallback
        self._host = host
        # Echo to stderr at emit(), unless the fallback writes there itself:
        # then echo only what goes to postlogd, so each line shows once.
        self._echo_emitted = console and not fallback.logs_to_stderr
        self._echo_sent = console and fallback.logs_to_stderr
        self._sock: socket.socket | None = None
        self._pending: collections.deque[tuple[LogEvent, bytes]] = collections.deque()
        self._pending_bytes = 0
        self._full_since: float | None = None     # monotonic; None = queue not full
        # postlogd took the last datagram: routine events may wait a moment.
        self._coalescing = False
        self._trio_root: object = None            # the trio run whose passes flush
        self._flusher: threading.Thread | None = None
        self._flusher_idle = False
        self._new_locks()
        _live.add(self)

    def _new_locks(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)

    @classmethod
    def from_config(cls, cfg: Any, *, console: bool = False) -> "Writer":
        return cls(postlog_path(cfg), LogSink(cfg), postfix.short_host(str(cfg.myhostname)),
                   console=console)

    def emit(self, event: LogEvent) -> None:
        """Hand one event to postlogd (now or a moment later), or append it."""
        try:
            data = event.encode()
            with self._lock:
                self._hold(event, data)
                if (not self._coalescing or self._pending_bytes >= MAX_DATAGRAM
                        or event.level not in _ROUTINE):
                    self._flush_locked()
                # In a trio loop's own thread the end of the scheduler pass
                # sends (unless postlogd's queue is full: the flusher's job).
                if self._pending and (self._full_since is not None or not self._in_trio()):
                    self._start_flusher()
            if self._echo_emitted:
                to_stderr(_lines(event, self._host, self._fallback.utf8))
        except Exception as e:  # noqa: BLE001 - logging must not raise into the caller
            to_stderr(f"{event.tag}[{event.pid}]: warning: logging failed: {e!r}\n")

    def flush(self, timeout: float = FULL_TIMEOUT) -> None:
        """Deliver every pending event before returning: send what postlogd
        takes within timeout seconds, append the rest. Sleeps only while
        postlogd's queue is full, so it is for close() and exit, not emit()."""
        try:
            deadline = time.monotonic() + timeout
            delay = RETRY_FIRST
            with self._lock:
                self._flush_locked()
                while self._pending and (left := deadline - time.monotonic()) > 0:
                    self._wake.wait(min(delay, left))
                    delay = min(delay * 2, RETRY_MAX)
                    self._flush_locked()
                self._append_pending()
        except Exception as e:  # noqa: BLE001 - called at exit, must not raise
            to_stderr(f"warning: logging failed: {e!r}\n")

    def close(self) -> None:
        """Deliver what is pending; release the socket and files (a later emit()
        opens them again)."""
        self.flush()
        with self._lock:
            sock, self._sock = self._sock, None
            self._coalescing = False
            self._flusher = None          # the flusher sees it is retired and ends
            self._wake.notify_all()
        if sock is not None:
            sock.close()
        self._fallback.close()

    # --- with the lock held ------------------------------------------------------

    def _hold(self, event: LogEvent, data: bytes) -> None:
        self._pending.append((event, data))
        self._pending_bytes += len(data)

    def _sent(self, event: LogEvent) -> None:
        if self._echo_sent:
            to_stderr(_lines(event, self._host, self._fallback.utf8))

    def _sendto(self, data: bytes) -> bool | None:
        """One datagram: True when sent, False when postlogd's queue is full,
        None when postlogd is away (everything pending is appended then)."""
        sock = self._sock
        if sock is None:
            sock = self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.setblocking(False)
        try:
            sock.sendto(data, self._address)
        except (BlockingIOError, InterruptedError):
            return self._full()
        except OSError as e:
            if e.errno == errno.ENOBUFS:
                return self._full()
            # ENOENT, ECONNREFUSED, EMSGSIZE, ...: postlogd cannot take it.
            self._coalescing = False
            self._append_pending()
            return None
        self._full_since = None
        self._coalescing = True
        return True

    def _full(self) -> bool:
        if self._full_since is None:
            self._full_since = time.monotonic()
        return False

    def _flush_locked(self) -> None:
        """Send the pending events, oldest first, as many per datagram as fit;
        append them when postlogd is away or stuck, or too much is pending."""
        pending = self._pending
        while pending:
            event, data = pending[0]
            if len(data) > MAX_DATAGRAM:
                pending.popleft()
                self._pending_bytes -= len(data)
                self._fallback.append(event)
                continue
            n, size = 1, len(data)
            while n < len(pending) and size + 1 + len(pending[n][1]) <= MAX_DATAGRAM:
                size += 1 + len(pending[n][1])
                n += 1
            datagram = data if n == 1 else _SEPARATOR.join(pending[i][1] for i in range(n))
            sent = self._sendto(datagram)
            if not sent:
                if sent is False and (self._pending_bytes > MAX_PENDING or
                                      time.monotonic() - self._full_since >= FULL_TIMEOUT):
                    self._append_pending()
                return
            for _ in range(n):
                self._sent(pending.popleft()[0])
            self._pending_bytes -= size - (n - 1)

    def _append_pending(self) -> None:
        events = [event for event, _ in self._pending]
        self._pending.clear()
        if events:
            self._fallback.append(*events)
        self._pending_bytes = 0
        self._full_since = None

    def _in_trio(self) -> bool:
        """True in the thread of a running trio loop, which then flushes at the
        end of each scheduler pass (installed here on first use in a run)."""
        trio = sys.modules.get("trio")
        if trio is None:
            return False            # a process without trio: the flusher does it
        try:
            root = trio.lowlevel.current_root_task()
        except RuntimeError:
            return False            # a worker thread, or no run
        if root is not self._trio_root:
            trio.lowlevel.add_instrument(end_of_pass_hook(trio)(self))
            self._trio_root = root
        return True

    def end_of_pass(self) -> None:
        """Send what the scheduler pass just ended held (trio instrument hook)."""
        if self._pending and self._full_since is None:
            with self._lock:
                if self._pending and self._full_since is None:
                    self._flush_locked()
                    if self._pending:
                        self._start_flusher()

    def _start_flusher(self) -> None:
        if self._flusher is None:
            self._flusher = threading.Thread(target=self._run_flusher, daemon=True,
                                             name="maillog-flusher")
            self._flusher_idle = False
            self._flusher.start()
        elif self._flusher_idle:
            self._wake.notify()       # a retrying flusher wakes by itself

    # --- the flusher thread ------------------------------------------------------

    def _run_flusher(self) -> None:
        me = threading.current_thread()
        delay = COALESCE
        with self._wake:
            while self._flusher is me:
                if not self._pending:
                    delay = COALESCE
                    self._flusher_idle = True
                    self._wake.wait()
                    self._flusher_idle = False
                    continue
                self._wake.wait(delay)
                if self._flusher is me and self._pending:
                    before = len(self._pending)
                    try:
                        self._flush_locked()
                    except Exception as e:  # noqa: BLE001 - keep the thread alive
                        to_stderr(f"warning: logging failed: {e!r}\n")
                    # Back off only while nothing goes through.
                    delay = RETRY_FIRST if len(self._pending) < before else \
                        min(max(delay, RETRY_FIRST) * 2, RETRY_MAX)

    def _after_fork(self) -> None:
        # The parent delivers its pending events; the child's copy would
        # repeat them. The lock may have been held by another thread.
        self._new_locks()
        self._pending.clear()
        self._pending_bytes = 0
        self._full_since = None
        self._coalescing = False
        self._trio_root = None
        self._flusher = None
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


_pass_hook: type | None = None


def end_of_pass_hook(trio: Any) -> type:
    """The trio Instrument class that calls target.end_of_pass() (a Writer's,
    or postlogd's LogSink's) each time the scheduler is about to wait for
    I/O (built on first use: trio is imported only by the processes that
    run it)."""
    global _pass_hook
    if _pass_hook is None:
        class EndOfPass(trio.abc.Instrument):
            __slots__ = ("target",)

            def __init__(self, target: Any) -> None:
                self.target = target

            def before_io_wait(self, timeout: float) -> None:
                try:
                    self.target.end_of_pass()
                except Exception as e:  # noqa: BLE001 - trio would drop the hook
                    to_stderr(f"warning: logging failed: {e!r}\n")
        _pass_hook = EndOfPass
    return _pass_hook


def _lines(event: LogEvent, host: str, utf8: bool) -> str:
    return "".join(line + "\n" for line in postfix.render_lines(event, host, utf8=utf8))


_live: "weakref.WeakSet[Writer]" = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:
    for writer in list(_live):
        writer.flush()


def _forked() -> None:
    for writer in list(_live):
        writer._after_fork()


os.register_at_fork(after_in_child=_forked)
