"""sink - turn log events into lines of mail.log and mail.json.

SYNOPSIS
    sink = LogSink(cfg)
    sink.write(sock.recv(MAX_DATAGRAM))     # one datagram, one or more events
    sink.hold(datagram); sink.flush()       # postlogd: the datagrams of a wake-up at once
    sink.append(event, ...)  # a process's own fallback, see writer.py
    sink.reopen()            # after log rotation (SIGHUP), or let write() notice
    sink.close()

DESCRIPTION
    postlogd (services/postlogd.py) is the one writer of mail.log and
    mail.json, as Postfix's postlogd owns $maillog_file: it receives every
    process's events as datagrams on <queue_directory>/private/postlog and
    hands each to LogSink.write(). A datagram holds one encoded event
    (LogEvent.encode()) per line; a writer puts several in one while
    postlogd is busy (mailsys.maillog.writer). The sink decodes every line,
    renders each event once for each file (mailsys.maillog.postfix,
    mailsys.maillog.jsonl) and appends all the lines of the datagram, in
    order, with one write per file (mailsys.maillog.files), so lines never
    interleave and a busy postlogd makes two writes per datagram, not per
    event. append() does the same for the events a process appends itself
    while postlogd is unreachable.

    A line that is not a log event is not lost silently and never raises:
    it becomes a warning line of postlogd's own, naming its size and
    showing its first bytes escaped; the other events of its datagram are
    written as usual. Empty lines between events are skipped (an empty
    datagram still becomes the warning). A write that fails (disk full,
    file removed with its directory) is reported on standard error and
    dropped; logging must never take a mail server down. With an empty
    maillog_file the Postfix lines go to standard error and there is no
    mail.json.

    hold() keeps a datagram for the next flush(), which writes all the
    held datagrams as write() writes one, with one write per file for all
    of them. postlogd holds what it receives and flushes when its scheduler
    is about to wait for more (the end of the trio scheduler pass, after
    the datagrams of one wake-up), before a reopen, and at exit: a busy
    postlogd makes two writes per wake-up, not per datagram, and the
    files get the same bytes in the same order.

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

# The largest datagram a writer sends, with all the events it carries;
# postlogd receives with a buffer at least this size, so nothing is ever cut
# short. A bigger event (a long traceback) takes the direct-append path. 64 KiB fits well inside Linux's
# default socket buffer (net.core.wmem_default, 208 KiB).
MAX_DATAGRAM = 64 * 1024


class LogSink:
    """Renders events and appends them to mail.log and mail.json."""

    __slots__ = ("_log", "_json", "_host", "_fqdn", "_tag", "_pid", "utf8", "_held")

    def __init__(self, cfg: Any) -> None:
        log_path, json_path = log_paths(cfg)
        self._log = AppendFile(log_path) if log_path else None
        self._json = AppendFile(json_path) if json_path else None
        self._fqdn = str(cfg.myhostname)
        self._host = postfix.short_host(self._fqdn)
        self._tag = f"{cfg.syslog_name}/postlogd"
        self._pid = os.getpid()
        # Postfix's util_utf8_enable follows smtputf8_enable: with it off,
        # mail.log shows non-ASCII text as "?" (mailsys.maillog.postfix).
        self.utf8 = bool(cfg.smtputf8_enable)
        self._held: list[bytes] = []

    @property
    def logs_to_stderr(self) -> bool:
        """True when there is no mail.log (empty maillog_file): lines go to stderr."""
        return self._log is None

    def write(self, datagram: bytes) -> None:
        """Decode the events of one datagram (one per line) and append them
        all with one write per file; a bad line becomes a warning."""
        if self._held:
            self.flush()                        # what came first goes first
        self.append(*self._events(datagram))

    def hold(self, datagram: bytes) -> None:
        """write() the datagram at the next flush()."""
        self._held.append(datagram)

    def flush(self) -> None:
        """write() the held datagrams, in order, with one write per file."""
        held = self._held
        if len(held) == 1:
            self._held = []
            self.write(held[0])
        elif held:
            self._held = []
            events: list[LogEvent] = []
            for datagram in held:
                events.extend(self._events(datagram))
            self.append(*events)

    end_of_pass = flush                         # for writer.end_of_pass_hook()

    def _events(self, datagram: bytes) -> list[LogEvent]:
        lines = datagram.split(b"\n")
        if len(lines) == 1:
            return [self._decode(datagram)]     # even an empty one: its warning
        return [self._decode(line) for line in lines if line]

    def _decode(self, line: bytes) -> LogEvent:
        try:
            return LogEvent.decode(line)
        except ValueError as e:
            shown = postfix.escape(line[:SHOW_BAD_BYTES])
            return LogEvent(time=time.time(), tag=self._tag, pid=self._pid, level="warning",
                            event=f"malformed log datagram ({len(line)} bytes): {e}: {shown}")

    def append(self, *events: LogEvent) -> None:
        """Append both renderings of the events, in order, one write per file."""
        if not events:
            return
        host, fqdn, want_json, utf8 = self._host, self._fqdn, self._json is not None, self.utf8
        log_lines: list[str] = []
        json_lines: list[str] = []
        for event in events:
            text = postfix.message(event, utf8)       # shared by both renderings
            log_lines.extend(postfix.render_lines(event, host, text, utf8))
            if want_json:
                json_lines.append(jsonl.render(event, fqdn, text))
        log_lines.append("")                    # every line ends with a newline
        lines = "\n".join(log_lines)
        if self._log is None:
            to_stderr(lines)
        else:
            self._append(self._log, lines, fallback=lines)
        if want_json:
            json_lines.append("")
            self._append(self._json, "\n".join(json_lines))

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
        self.flush()
        for target in (self._log, self._json):
            if target is not None:
                target.close()
