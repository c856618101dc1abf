"""files - where mail.log and mail.json are, and how lines are appended.

SYNOPSIS
    log_path, json_path = log_paths(cfg)
    check_prefixes(cfg)                      # raises ConfigError
    f = AppendFile(log_path); f.write(b"line\\n"); f.maybe_reopen(); f.reopen(); f.close()

DESCRIPTION
    mail.log is $maillog_file (a relative value is taken from the directory
    that holds the configuration directory, Config.path()). mail.json always
    lies beside it, in the same directory. An empty maillog_file means "no
    file": the writer then falls back to standard error. A maillog_file
    under /dev (Postfix allows /dev/stdout) gets no mail.json.

    check_prefixes() is Postfix's maillog_client_init() check, made by
    every program that logs (configure(), the postfix commands): a
    maillog_file that does not start with one of $maillog_file_prefixes
    (default /var, /dev/stdout) is refused with ConfigError
    "maillog_file value 'V' does not match any prefix in
    maillog_file_prefixes", so that one mistake cannot make a privileged
    process append to any file. As in Postfix the match is on the text
    (/var also admits /variable); mailsys compares the path it will
    write, so a relative maillog_file and a relative prefix are both
    first taken from the directory that holds the configuration
    directory, like every mailsys path.

    AppendFile is the one way lines reach these files, used by postlogd's
    LogSink and by a process's own fallback writer alike. It opens with
    O_APPEND, creating the file (mode 0644 before umask) and its parent
    directories. Each write() is one os.write() of a whole record: with
    O_APPEND the kernel positions and writes it under the inode lock, so
    records from different processes never interleave inside a line.

    Log rotation (rename, then a new file; or copy and truncate) is
    followed by reopen(): when the path names another file than the one
    open (or none), the old descriptor is closed and the path opened again.
    maybe_reopen() does the same check at most once per interval, so a busy
    writer pays one stat() a second. Truncation needs nothing: O_APPEND
    always writes at the current end.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from mailsys.errors import ConfigError

JSON_NAME = "mail.json"
REOPEN_INTERVAL = 1.0            # seconds between rotation checks


def log_paths(cfg: Any) -> tuple[Path | None, Path | None]:
    """(mail.log path, mail.json path) from the configuration; None = none."""
    if not str(cfg["maillog_file"]).strip():
        return None, None
    log = cfg.path("maillog_file")
    if log.parent == Path("/dev"):
        return log, None
    return log, log.parent / JSON_NAME


def check_prefixes(cfg: Any) -> None:
    """Refuse a maillog_file outside $maillog_file_prefixes (ConfigError)."""
    value = str(cfg["maillog_file"]).strip()
    if not value:
        return
    path = str(cfg.path("maillog_file"))
    base = cfg.config_dir.absolute().parent
    for prefix in cfg["maillog_file_prefixes"]:
        # Path() drops a trailing slash; keep it, it narrows the match.
        text = str(base / prefix) + ("/" if prefix.endswith("/") and prefix != "/" else "")
        if path.startswith(text):
            return
    raise ConfigError(f"maillog_file value '{value}' does not match any prefix "
                      "in maillog_file_prefixes")


class AppendFile:
    """A log file opened for appending that follows rotation. Thread-safe."""

    __slots__ = ("path", "_fd", "_ident", "_checked", "_lock")

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._ident: tuple[int, int] | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        """Append data with one write (more only if the disk is nearly full)."""
        with self._lock:
            if self._fd is None:
                self._open()
            assert self._fd is not None
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]

    def maybe_reopen(self, interval: float = REOPEN_INTERVAL) -> None:
        """reopen(), but at most once per interval seconds."""
        now = time.monotonic()
        if now - self._checked >= interval:
            self.reopen()

    def reopen(self) -> None:
        """Reopen the path if it now names another file, or no file."""
        with self._lock:
            self._checked = time.monotonic()
            if self._fd is None:
                return
            try:
                st = os.stat(self.path)
                current = (st.st_dev, st.st_ino)
            except FileNotFoundError:
                current = None
            if current != self._ident:
                self._close()
                self._open()

    def close(self) -> None:
        with self._lock:
            self._close()

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        st = os.fstat(fd)
        self._fd, self._ident = fd, (st.st_dev, st.st_ino)
        self._checked = time.monotonic()

    def _close(self) -> None:
        if self._fd is not None:
            fd, self._fd, self._ident = self._fd, None, None
            os.close(fd)


def to_stderr(text: str) -> None:
    """The last resort, one write to fd 2; if even that fails, nowhere is left."""
    try:
        os.write(2, text.encode("utf-8", "backslashreplace"))
    except OSError:
        pass
