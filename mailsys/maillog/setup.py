"""setup - the one place structlog is configured.

SYNOPSIS
    from mailsys.maillog.setup import configure
    configure(cfg, "smtpd")                        # tag "mailsys/smtpd"
    configure(cfg, "smtpd", tag="mailsys/submission/smtpd")
    configure(cfg, "master", console=True)         # start-fg on a terminal

    log = structlog.get_logger()
    log.info("connect from localhost[127.0.0.1]")
    log.info("removed", queue_id="4F2A1C3B7D")
    log.warning("process /x pid 12 exit status 1")

DESCRIPTION
    configure() is called exactly once per process, by the service skeleton
    (and by command-line tools that log), before the first event. It
    raises ConfigError for a maillog_file outside $maillog_file_prefixes
    (mailsys.maillog.files.check_prefixes), as every Postfix program
    that logs refuses one. The tag
    defaults to "<syslog_name>/<program>"; the pid in every line is
    os.getpid() at the time of the call.

    The processor chain is one processor, the hand-off to the log writer,
    which does in one call what structlog's recommended chain does in five
    (each processor is a call per event, and every mail costs several
    events in several processes):

      merge_contextvars   queue_id, client, ... bound per task or connection
                          (only once anything was ever bound: nothing in
                          mailsys binds, so it costs a dict check)
      level               the method name: info, warning, error, critical
                          -> Postfix severity (event.normalize_level also
                          maps warn and exception, as add_log_level does)
      timestamp           time.time(), as TimeStamper(fmt=None) sets it
      format_exc_info     exc_info / log.exception -> "exception" text
      hand-off            builds a LogEvent and gives it to the Writer

    and returns an empty string to structlog's ReturnLogger (cheaper than
    raising DropEvent). The bound logger class is structlog's filtering
    one with _proxy_to_logger() (the hook structlog leaves to custom
    wrappers) made one step shorter while the chain is exactly that
    hand-off and the logger a ReturnLogger: the hand-off gets the event
    dict without the copy of an empty context, and its result is returned
    without the call to ReturnLogger, which would return it as it is. Any
    other chain (capture_logs() in tests) takes structlog's own path.

    The Writer (mailsys.maillog.writer) sends it to postlogd without ever
    sleeping in the caller: routine events are held for a millisecond so
    that those of a burst share one datagram (a warning or worse goes at
    once), and longer while postlogd's queue is full; it appends them
    directly while postlogd is unreachable or stuck, and what is still held
    at exit is delivered then. mail.log gets the Postfix line (a traceback
    adds one line per traceback line, same prefix), mail.json the JSON line.

    send_pending() hands what is held to postlogd now (never sleeping):
    a process calls it before it tells another process to go on with a
    message, so that its own lines about the message come first in
    mail.log (smtpd before it passes a message to cleanup, cleanup before
    it wakes qmgr), as Postfix's processes log before they hand over.

    Events below info are dropped cheaply (make_filtering_bound_logger).
    Loggers are cached on first use in production; under pytest they are
    not, so that later configure() calls and capture_logs() take effect
    (structlog docs/testing.md).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any, MutableMapping

import structlog

from mailsys.maillog import postfix
from mailsys.maillog.event import LogEvent
from mailsys.maillog.files import check_prefixes
from mailsys.maillog.writer import Writer

_writer: Writer | None = None


class _HandOff:
    """Final processor: the event dict becomes a LogEvent for the writer."""

    __slots__ = ("writer", "tag", "pid")

    def __init__(self, writer: Writer, tag: str, pid: int) -> None:
        self.writer, self.tag, self.pid = writer, tag, pid

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> str:
        if _bound_vars is None or _bound_vars:
            merge_contextvars(logger, method, event_dict)
        if "exc_info" in event_dict:
            format_exc_info(logger, method, event_dict)
        # What add_log_level and TimeStamper(fmt=None) set, whatever the caller passed.
        event_dict["level"] = method
        event_dict["timestamp"] = _now()
        self.writer.emit(LogEvent.from_event_dict(event_dict, tag=self.tag, pid=self.pid))
        return ""                 # for ReturnLogger, which returns it to the caller


_now = time.time
merge_contextvars = structlog.contextvars.merge_contextvars
format_exc_info = structlog.processors.format_exc_info
# structlog's registry of the context variables bind_contextvars() made: empty
# until anything is bound, so merge_contextvars() has nothing to merge. None
# (a structlog without it): always merge.
_bound_vars: dict | None = getattr(structlog.contextvars, "_CONTEXT_VARS", None)


class _BoundLogger(structlog.make_filtering_bound_logger(logging.INFO)):  # type: ignore[misc]
    """Events below info are dropped; the rest go to the hand-off directly."""

    def _proxy_to_logger(self, method_name: str, event: str | None = None,
                         **event_kw: Any) -> Any:
        procs = self._processors
        if len(procs) != 1 or type(procs[0]) is not _HandOff or \
                type(self._logger) is not structlog.ReturnLogger:
            return super()._proxy_to_logger(method_name, event, **event_kw)
        # As _process_event(): a copy of the context, the keywords, the event.
        if self._context:
            event_dict = self._context.copy()
            event_dict.update(event_kw)
        else:
            event_dict = event_kw         # a new dict of this call's own
        if event is not None:
            event_dict["event"] = event
        try:
            return procs[0](self._logger, method_name, event_dict)
        except structlog.DropEvent:
            return None


def send_pending() -> None:
    """Send this process's held log events now (without sleeping)."""
    if _writer is not None:
        _writer.end_of_pass()


def configure(cfg: Any, program: str, *, tag: str | None = None, console: bool = False) -> None:
    """Route this process's structlog events to postlogd (or the files)."""
    global _writer
    check_prefixes(cfg)
    postfix.set_address_form(str(cfg.info_log_address_format))
    postfix.set_delay_resolution(cfg.delay_logging_resolution_limit)
    writer = Writer.from_config(cfg, console=console)
    structlog.configure(
        processors=[_HandOff(writer, tag or f"{cfg.syslog_name}/{program}", os.getpid())],
        wrapper_class=_BoundLogger,
        # Gets the hand-off's empty string and returns it.
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use="pytest" not in sys.modules,
    )
    old, _writer = _writer, writer
    if old is not None:
        old.close()
