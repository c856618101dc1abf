"""table_files - read, replace and update a compiled table file (FILE.lmdb).

SYNOPSIS
    raw = read_raw(Path("/etc/mailsys/virtual.lmdb"))      # {key bytes: value bytes}, file order
    write_raw(target, raw, like=FileMode.of_source(src_stat))
    with updating(target) as raw: raw[b"k"] = b"v"          # -i and -d: under a lock

DESCRIPTION
    A table file is only ever replaced whole: the new contents are written
    to a temporary file beside it, synced, and renamed over it, so that a
    daemon reading the table (read-only, without a lock: mailsys.config.
    tables) sees the old table or the new one, never half of one.

    updating() changes an existing table the same way: it takes an
    exclusive lock on the table file (fcntl), reads it, lets the caller
    change the entries, writes the result and renames it into place while
    the lock is still held. A second writer that waited for the lock finds
    the file renamed under it and starts over on the new one, so two
    concurrent "postmap -i" runs both land.

    File mode and owner follow Postfix's postmap and postalias: a new table
    gets mode 0644 less the group and other read permissions its source
    file lacks (not with -p: 0644), and, when root builds it, the source
    file's owner and group (not with -o: root's). An updated table keeps
    its own mode and owner.

    The lmdb module is imported only here, by the functions that need it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from mailsys.config.files import sync_directory
from mailsys.errors import ConfigError
from mailsys.frozen import frozen

__all__ = ["FileMode", "read_raw", "write_raw", "updating"]

DEFAULT_MODE = 0o644


@frozen
class FileMode:
    """The mode and owner a table file gets; uid/gid None leave the writer's."""

    mode: int = DEFAULT_MODE
    uid: int | None = None
    gid: int | None = None

    @classmethod
    def of_source(cls, st: os.stat_result, *, save_perm: bool = True,
                  as_owner: bool = True) -> "FileMode":
        """What postmap gives a table built from a source with this stat."""
        mode = DEFAULT_MODE
        if save_perm and stat.S_ISREG(st.st_mode):
            mode &= st.st_mode | ~0o077
        if as_owner and os.geteuid() == 0:
            return cls(mode, st.st_uid, st.st_gid)
        return cls(mode)

    @classmethod
    def of_file(cls, path: Path) -> "FileMode":
        st = path.stat()
        return cls(stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)


def read_raw(path: Path) -> dict[bytes, bytes]:
    """Every entry of the table file, in its order; ConfigError if it cannot be read."""
    import lmdb
    try:
        env = lmdb.open(str(path), subdir=False, readonly=True, lock=False, create=False,
                        max_spare_txns=0)
    except lmdb.Error as e:
        raise ConfigError(f"open database {path}: {_reason(e)}") from None
    try:
        with env.begin() as txn:
            return {bytes(k): bytes(v) for k, v in txn.cursor()}
    finally:
        env.close()


def _reason(e: Exception) -> str:
    # py-lmdb puts the path first: "/x.lmdb: No such file or directory".
    text = str(e)
    return text.split(": ", 1)[1] if ": " in text else text


def write_raw(target: Path, raw: dict[bytes, bytes], like: FileMode = FileMode()) -> Path:
    """Replace target with a table holding exactly raw; see the module description."""
    import lmdb
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    size = 1 << 20
    for key, value in raw.items():
        size += 2 * (len(key) + len(value)) + 64
    env = lmdb.open(str(tmp), subdir=False, map_size=size * 2, lock=False, max_dbs=0,
                    mode=like.mode)
    try:
        with env.begin(write=True) as txn:
            for key, value in raw.items():
                txn.put(key, value)
        env.sync(True)
        env.close()
        os.chmod(tmp, like.mode)          # the umask may have taken bits lmdb.open asked for
        if like.uid is not None and (like.uid, like.gid) != (os.geteuid(), os.getegid()):
            os.chown(tmp, like.uid, like.gid if like.gid is not None else -1)
    except BaseException:
        env.close()
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, target)
    sync_directory(target.parent)
    return target


@contextlib.contextmanager
def updating(target: Path) -> Iterator[dict[bytes, bytes]]:
    """The entries of an existing table, written back on a normal exit (under a lock)."""
    while True:
        try:
            fd = os.open(target, os.O_RDONLY)
        except OSError as e:
            raise ConfigError(f"open database {target}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.stat(target)
            except FileNotFoundError:
                continue
            held = os.fstat(fd)
            if (current.st_dev, current.st_ino) != (held.st_dev, held.st_ino):
                continue                  # replaced while we waited: lock the new one
            raw = read_raw(target)
            yield raw
            write_raw(target, raw, FileMode.of_file(target))
            return
        finally:
            os.close(fd)
