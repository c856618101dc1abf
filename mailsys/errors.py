"""errors - the exceptions mailsys raises on purpose.

    MailsysError                  anything mailsys reports to a person
    ├── ConfigError               a bad main.cf / master.cf / table; names file, line, parameter
    ├── UsageError                a bad command line; the CLI prints it and exits 64 or 1
    ├── QueueError                the queue store could not do what was asked
    │   ├── QueueFull             map or disk full: smtpd answers 452 4.3.1
    │   └── NoSuchEntry           no entry with that queue ID
    └── ServiceUnavailable        a mailsys service could not be reached (master down, socket gone)

Protocol errors live with their protocol (mailsys.smtp.errors, mailsys.ipc).
Any other exception is a bug: the service skeleton logs it with a traceback.
"""

from __future__ import annotations


class MailsysError(Exception):
    """Base of every error that is meant to reach a person as one clear line."""


class ConfigError(MailsysError):
    """A configuration file holds something mailsys cannot use.

    str() gives Postfix's shape: ``/etc/mailsys/main.cf, line 3: parameter
    message_size_limit: bad size value "lots"``.
    """

    def __init__(self, message: str, *, file: str | None = None,
                 line: int | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.param = param

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file
            if self.line:
                where += f", line {self.line}"
            where += ": "
        what = f"parameter {self.param}: " if self.param else ""
        return f"{where}{what}{self.message}"


class UsageError(MailsysError):
    """A command line that cannot be carried out."""


class QueueError(MailsysError):
    """The queue store failed."""


class QueueFull(QueueError):
    """No room in the LMDB map or on the disk (Postfix: 452 4.3.1)."""


class NoSuchEntry(QueueError):
    """No queue entry has this queue ID."""


class ServiceUnavailable(MailsysError):
    """A mailsys service did not answer: not running, or its socket is gone."""
