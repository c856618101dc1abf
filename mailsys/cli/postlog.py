"""postlog - log a line to the mail log from a script (Postfix postlog(1)).

SYNOPSIS
    mailsys postlog [-iv] [-c config_dir] [-p priority] [-t tag] [text ...]

DESCRIPTION
    Logs text as one mail.log record, through postlogd as every mailsys
    process does (its own append to $maillog_file when postlogd is not
    running). Without text, each line of standard input is one record.

    -p priority   info (the default), warn or warning, error, fatal or
                  crit; the record starts with "warning: ", "error: " or
                  "fatal: " as Postfix's msg(3) writes them. A fatal
                  record is the last: postlog exits 1 after it.
    -t tag        the name before [pid] (default $syslog_name/postlog)
    -i            accepted: the process ID is always logged
    -v            accepted, as more verbose logging in Postfix

    Postfix's "panic" priority is logged as fatal: mailsys's loggers have
    no panic level.

    Like every record of mailsys, non-printable characters show as "?".
    The text is logged as given, so a record that looks like another
    program's line is still tagged as postlog's.
"""

from __future__ import annotations

import getopt
import sys
from pathlib import Path

import structlog

from mailsys.config import load
from mailsys.errors import UsageError
from mailsys.maillog.setup import configure

USAGE = "usage: postlog [-iv] [-c config_dir] [-p priority] [-t tag] [text...]"

# -p priority -> the structlog method that gives Postfix's severity.
PRIORITIES = {"info": "info", "warn": "warning", "warning": "warning", "error": "error",
              "err": "error", "fatal": "critical", "crit": "critical", "panic": "critical"}


def main(argv: list[str], config_dir: Path, command: str = "postlog") -> int:
    try:
        opts, words = getopt.getopt(argv, "c:ip:t:v")
    except getopt.GetoptError as e:
        raise UsageError(f"{e}. {USAGE}") from None
    priority, tag = "info", None
    for flag, value in opts:
        if flag == "-c":
            config_dir = Path(value)
        elif flag == "-p":
            if value.lower() not in PRIORITIES:
                raise UsageError(f"unknown priority value: {value}")
            priority = value.lower()
        elif flag == "-t":
            tag = value
    cfg = load(config_dir)
    configure(cfg, "postlog", tag=tag)
    emit = getattr(structlog.get_logger(), PRIORITIES[priority])
    lines = [" ".join(words)] if words else (line.rstrip("\n") for line in sys.stdin)
    for line in lines:
        emit(line)
        if PRIORITIES[priority] == "critical":
            return 1                    # as msg_fatal(): the first record ends it
    return 0


__all__ = ["main"]
