"""diag - a command's warnings and fatal errors, on stderr and in the mail log.

SYNOPSIS
    diag = Diag("sendmail")                  # stderr "sendmail: ...", log tag sendmail
    diag.cfg = cfg                           # from here on, the mail log too
    diag.warn("bad -N option value -- ignored")
    return diag.fatal("unsupported: -bz", EX_TEMPFAIL)
    log = logger(cfg, "pickup")              # another tag in the same process

DESCRIPTION
    Postfix's sendmail and postqueue report through msg(3) to standard error
    (msg_vstream_init(argv[0], VSTREAM_ERR)) and to the mail log
    (maillog_client_init(mail_task(name))): once main.cf is read, each
    warning and fatal error is also "postfix/sendmail[pid]: fatal: text" in
    $maillog_file (seen live with Postfix 3.7.11). The name on stderr is the
    one the command was called by (mailq), the log tag the program's own.

    Before the configuration is read (a bad command line for postqueue)
    Postfix can only log to syslog, which mailsys does not use, so Diag
    writes stderr only while cfg is None. Without $maillog_file mailsys's
    log lines go to stderr (mailsys.maillog.sink), where the line is
    already, so nothing more is written then.

    logger() configures structlog for one tag, again only when the tag
    changes: sendmail logs its own diagnostics as "sendmail" and the queue
    ID line as "pickup".
"""

from __future__ import annotations

import sys
from typing import Any

import structlog

from mailsys.maillog.files import log_paths
from mailsys.maillog.setup import configure

__all__ = ["Diag", "logger"]

_configured: tuple[int, str] | None = None


def logger(cfg: Any, program: str) -> Any:
    """structlog's logger, its lines tagged $syslog_name/program."""
    global _configured
    if _configured != (id(cfg), program):
        configure(cfg, program)
        _configured = (id(cfg), program)
    return structlog.get_logger()


class Diag:
    """Report as Postfix's msg_warn() and msg_fatal_status() do."""

    def __init__(self, name: str, program: str | None = None) -> None:
        self.name = name                    # on stderr: argv[0]
        self.program = program or name      # in the log: mail_task(program)
        self.cfg: Any = None

    def warn(self, text: str) -> None:
        self._say("warning", text)

    def fatal(self, text: str, status: int) -> int:
        """Report text; the exit status to return."""
        self._say("fatal", text)
        return status

    def _say(self, severity: str, text: str) -> None:
        print(f"{self.name}: {severity}: {text}", file=sys.stderr, flush=True)
        if self.cfg is not None and log_paths(self.cfg)[0] is not None:
            log = logger(self.cfg, self.program)
            (log.warning if severity == "warning" else log.critical)(text)
