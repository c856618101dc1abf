"""files - replace a configuration file so that a crash never leaves half of it.

SYNOPSIS
    from mailsys.config.files import replace_file, sync_directory

    replace_file(path, text)                # keeps path's mode (0644 when new)
    replace_file(path, text, mode=0o600)    # a file of secrets
    sync_directory(path.parent)             # after a rename of one's own

DESCRIPTION
    replace_file() writes the text to a temporary file beside path, fsyncs
    it, gives it its mode, renames it over path and fsyncs the directory:
    a reader sees the old file or the new one, and after a crash the new
    one if replace_file() returned. Text is written as UTF-8; undecodable
    bytes read with errors="surrogateescape" go back out unchanged; bytes
    are written as they are. The temporary file's name begins with a dot.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def replace_file(path: Path | str, text: str | bytes, mode: int | None = None) -> None:
    """Replace path with text atomically and durably; see DESCRIPTION."""
    path = Path(path)
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with (os.fdopen(fd, "wb") if isinstance(text, bytes) else
              os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape")) as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    sync_directory(path.parent)


def sync_directory(path: Path | str) -> None:
    """Make a rename in `path` survive a crash (the entry lives in the directory)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["replace_file", "sync_directory"]
