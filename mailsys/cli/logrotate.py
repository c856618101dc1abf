"""logrotate - rotate $maillog_file (Postfix `postfix logrotate`).

SYNOPSIS
    mailsys [-c DIR] logrotate

DESCRIPTION
    Renames $maillog_file to $maillog_file.SUFFIX, SUFFIX being the local
    time formatted with $maillog_file_rotate_suffix (strftime, by default
    %Y%m%d-%H%M%S), and mail.json beside it the same way when it exists.
    Then, when the mail system runs, it sends SIGHUP to the master, as
    postfix-script does: the master reloads and tells postlogd to reopen
    its files, which creates new ones at the next line. After a pause of
    one second (lines already on their way may still reach the old file)
    it runs "$maillog_file_compressor FILE" on each renamed file and waits
    for it, as postfix-script 3.7 does: the compressor is one program name,
    run without a shell, that replaces FILE with its compressed form
    (gzip, the default, writes FILE.gz).

    Errors are Postfix's, on standard error and in the mail log as
    <syslog_name>/postfix-script, each with exit status 1:

        fatal: usage postfix logrotate (no arguments)     (here "mailsys logrotate")
        fatal: bad string length 0 < 1: maillog_file_compressor =
        fatal: empty 'maillog_file' parameter value - logfile rotation failed
        fatal: not rotating '/dev/stdout'
        fatal: logfile 'F' rotation failed: mv: cannot stat 'F': No such file or directory
        fatal: logfile 'F' rotation failed: gzip: F.SUFFIX.gz already exists; not overwritten

    The text after "rotation failed: " is what the failed step wrote to
    standard error (for a compressor that fails silently, nothing); a
    compressor that cannot be run reads "NAME: not found" or its
    strerror. A file renamed but not compressed stays as it is.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import structlog

from mailsys.config import load
from mailsys.errors import ConfigError
from mailsys.maillog.files import check_prefixes, log_paths
from mailsys.maillog.setup import configure
from mailsys.runtime.pidfile import pid_path, running

log = structlog.get_logger()

# postfix-script sleeps this long between the master's SIGHUP and the compressor.
REOPEN_PAUSE = 1.0
# Postfix's postfix(1) loads these two with a minimum length of 1.
NONEMPTY = ("maillog_file_rotate_suffix", "maillog_file_compressor")


class RotateError(Exception):
    """One step failed; the text is what it wrote to standard error."""


def _fatal(cfg, text: str) -> int:
    print(f"{cfg.syslog_name}/postfix-script: fatal: {text}", file=sys.stderr)
    if log_paths(cfg)[0] is not None:
        # With no maillog_file the log line would be this one again, on stderr.
        configure(cfg, "postfix-script")
        log.critical(text)
    return 1


def _rename(path: Path, suffix: str) -> Path:
    """mv PATH PATH.SUFFIX, with mv's complaint when it fails."""
    target = path.with_name(f"{path.name}.{suffix}")
    try:
        os.rename(path, target)
    except OSError as e:
        raise RotateError(f"mv: cannot stat '{path}': {e.strerror}"
                          if e.errno == errno.ENOENT else f"mv: cannot move '{path}' to '{target}': {e.strerror}")
    return target


def _compress(compressor: str, path: Path) -> None:
    try:
        r = subprocess.run([compressor, str(path)], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except FileNotFoundError:
        raise RotateError(f"{compressor}: not found") from None
    except OSError as e:
        raise RotateError(f"{compressor}: {e.strerror}") from None
    if r.returncode != 0:
        raise RotateError(r.stderr.decode(errors="replace").rstrip("\n"))


def rotate(cfg) -> None:
    """Rename, make postlogd reopen, compress. Raises RotateError."""
    log_path, json_path = log_paths(cfg)
    assert log_path is not None
    suffix = time.strftime(str(cfg["maillog_file_rotate_suffix"]))
    renamed = [_rename(log_path, suffix)]
    if json_path is not None and json_path.exists():
        renamed.append(_rename(json_path, suffix))
    pid = running(pid_path(cfg))
    if pid:
        try:
            os.kill(pid, signal.SIGHUP)
        except ProcessLookupError:
            pass                    # stopped meanwhile: nothing writes the old files
        time.sleep(REOPEN_PAUSE)
    compressor = str(cfg["maillog_file_compressor"])
    for path in renamed:
        _compress(compressor, path)


def main(argv: list[str], config_dir: Path, command: str = "logrotate") -> int:
    try:
        cfg = load(config_dir)
        check_prefixes(cfg)                 # postfix(1) refuses it for every command
    except ConfigError as e:
        print(f"mailsys: fatal: {e}", file=sys.stderr)
        return 1
    if argv:
        return _fatal(cfg, "usage mailsys logrotate (no arguments)")
    for name in NONEMPTY:
        if not str(cfg[name]):
            # postfix(1) itself refuses before postfix-script runs; it logs nothing.
            print(f"mailsys: fatal: bad string length 0 < 1: {name} = ", file=sys.stderr)
            return 1
    value = str(cfg["maillog_file"]).strip()
    if not value:
        return _fatal(cfg, "empty 'maillog_file' parameter value - logfile rotation failed")
    log_path, _ = log_paths(cfg)
    if str(log_path).startswith("/dev/"):
        return _fatal(cfg, f"not rotating '{value}'")
    try:
        rotate(cfg)
    except RotateError as e:
        return _fatal(cfg, f"logfile '{log_path}' rotation failed: {e}")
    return 0
