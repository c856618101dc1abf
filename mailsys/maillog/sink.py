"""sink - turn log events into lines of mail.log and mail.json.

SYNOPSIS
    sink = LogSink(cfg)
    sink.write(sock.recv(MAX_DATAGRAM))     # postlogd: one datagram from a process
    sink.append(event)       # a process's own fallback, see writer.py
    sink.reopen()            # after log rotation (SIGHUP), or let write() notice
    sink.close()

DESCRIPTION
    postlogd (services/postlogd.py) is the one writer of mail.log and
    mail.json, as Postfix's postlogd owns $maillog_file: it receives every
    process's events as datagrams on <queue_directory>/private/postlog and
    hands each to LogSink.write(). The sink decodes the event, renders it
    once for each file (mailsys.maillog.postfix, mailsys.maillog.jsonl) and
    appends each rendering with one write (mailsys.maillog.files), so lines
    never interleave. The same class does the direct append a process falls
    back to while postlogd is unreachable.

    A datagram that is not a log event is not lost silently and never
    raises: it becomes a warning line of postlogd's own, naming its size and
    showing its first bytes escaped. A write that fails (disk full, file
    removed with its directory) is reported on standard error and dropped;
    logging must never take a mail server down. With an empty maillog_file
    the Postfix lines go to standard error and there is no mail.json.

    Rotation: write() checks at most once a second whether the paths still
    name the open files and reopens them if not (logrotate's rename-and-
    create); reopen() checks at once, for postlogd's SIGHUP handler.
"""

from __future__ import annotations

import os
import time
from typing import Any

from mailsys.maillog import jsonl, postfix
from mailsys.maillog.event import LogEvent
from mailsys.maillog.files import AppendFile, log_paths, to_stderr

# How much of an undecodable datagram the warning shows.
SHOW_BAD_BYTES = 100

# The largest datagram a writer sends; postlogd receives with a buffer of
# this size, so nothing is ever cut short. Bigger events (a long traceback)
# take the direct-append path instead. 64 KiB fits well inside Linux's
# default socket buffer (net.core.wmem_default, 208 KiB).
MAX_DATAGRAM = 64 * 1024


class LogSink:
    """Renders events and appends them to mail.log and mail.json."""

    __slots__ = ("_log", "_json", "_host", "_fqdn", "_tag", "_pid")

    def __init__(self, cfg: Any) -> None:
        log_path, json_path = log_paths(cfg)
        self._log = AppendFile(log_path) if log_path else None
        self._json = AppendFile(json_path) if json_path else None
        self._fqdn = str(cfg.myhostname)
        self._host = postfix.short_host(self._fqdn)
        self._tag = f"{cfg.syslog_name}/postlogd"
        self._pid = os.getpid()

    @property
    def logs_to_stderr(self) -> bool:
        """True when there is no mail.log (empty maillog_file): lines go to stderr."""
        return self._log is None

    def write(self, datagram: bytes) -> None:
        """Decode one datagram and append it; a bad one becomes a warning."""
        try:
            event = LogEvent.decode(datagram)
        except ValueError as e:
            shown = postfix.escape(datagram[:SHOW_BAD_BYTES].decode("latin-1"))
            event = LogEvent(time=time.time(), tag=self._tag, pid=self._pid, level="warning",
                             event=f"malformed log datagram ({len(datagram)} bytes): {e}: {shown}")
        self.append(event)

    def append(self, event: LogEvent) -> None:
        """Append both renderings of one event, one write each."""
        lines = "".join(line + "\n" for line in postfix.render_lines(event, self._host))
        if self._log is None:
            to_stderr(lines)
        else:
            self._append(self._log, lines, fallback=lines)
        if self._json is not None:
            self._append(self._json, jsonl.render(event, self._fqdn) + "\n")

    def _append(self, target: AppendFile, data: str, fallback: str = "") -> None:
        try:
            target.maybe_reopen()
            target.write(data.encode("utf-8", "backslashreplace"))
        except OSError as e:
            to_stderr(f"{self._tag}: warning: cannot write {target.path}: {e.strerror}\n{fallback}")

    def reopen(self) -> None:
        """Reopen the files whose paths now name other files (rotation)."""
        for target in (self._log, self._json):
            if target is not None:
                target.reopen()

    def close(self) -> None:
        for target in (self._log, self._json):
            if target is not None:
                target.close()
