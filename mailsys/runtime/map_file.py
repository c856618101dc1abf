"""map_file - a daemon's own read-write table: an LMDB file, or memory.

SYNOPSIS
    table = MapFile.open(cfg.address_verify_map, cfg, param="address_verify_map")
    table.entries                       # {key: value} as read when opened
    await table.put("key", "value")     # written through, in a worker thread
    await table.delete("key")
    await table.drop(["a", "b"])        # a cleanup pass, one transaction
    await table.fetch("key")            # the file's value now (a table processes share)
    table.close()                       # on_exit

DESCRIPTION
    What Postfix's solitary daemons keep in a read-write table
    (postscreen_cache_map, address_verify_map), chosen by the map's type:

      btree:PATH, hash:PATH, lmdb:PATH
                  an LMDB file at PATH (with "-lock" beside it), so that
                  the table survives a restart as Postfix's does. A
                  relative PATH is taken from the configuration
                  directory's parent. Postfix's own btree/hash files are
                  not read: the file is mailsys's own.
      memory, internal:NAME, or an empty value
                  this process only; a restart forgets it.

    The daemon is the only one using the file (solitary, maxproc 1), so
    every entry is held in memory too: the file is read once when the
    process starts, and written as entries change, each write in a worker
    thread in one short transaction (STYLE.md (d): LMDB calls never run on
    the trio thread, never span an await). Keys and values are text.

    A table several processes write (smtp_sasl_auth_cache_name, one per
    smtp process, as LMDB allows) is read with fetch(): each key from the
    file when it is asked for, so another process's writes are seen.
"""

from __future__ import annotations

import os
from pathlib import Path

import trio

from mailsys.errors import ConfigError

__all__ = ["MapFile", "MAP_SIZE"]

# A map holds one small record per client or address ever seen.
MAP_SIZE = 1 << 30
_FILE_TYPES = ("btree", "hash", "lmdb")
_MEMORY_TYPES = ("", "memory", "internal")


class MapFile:
    """See the module description."""

    def __init__(self, path: Path | None, spec: str = "memory") -> None:
        self.path = path
        self.spec = spec
        self.entries: dict[str, str] = {}
        self._env = None

    @classmethod
    def open(cls, spec: str, cfg=None, *, param: str) -> MapFile:
        spec = spec.strip()
        kind, colon, name = spec.partition(":")
        if kind in _MEMORY_TYPES:
            return cls(None, spec or "memory")
        if not colon or kind not in _FILE_TYPES or not name:
            raise ConfigError(f"{param}: unsupported map {spec!r} "
                              "(btree:, hash: or lmdb: PATH, or memory)", param=param)
        path = Path(name)
        if not path.is_absolute() and cfg is not None:
            path = cfg.config_dir.parent / path
        table = cls(path, spec)
        table._load(param)
        return table

    def _load(self, param: str) -> None:
        import lmdb
        assert self.path is not None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._env = lmdb.open(os.fspath(self.path), subdir=False, map_size=MAP_SIZE,
                                  max_dbs=0)
        except (OSError, lmdb.Error) as e:
            raise ConfigError(f"{param}: open {self.path}: {e}", param=param) from None
        with self._env.begin() as txn:
            for key, value in txn.cursor():
                self.entries[bytes(key).decode("utf-8", "replace")] = \
                    bytes(value).decode("utf-8", "replace")

    async def fetch(self, key: str) -> str | None:
        """key's value as the file has it now (entries when in memory only)."""
        if self._env is not None:
            value = await trio.to_thread.run_sync(self._read, key)
            if value is None:
                self.entries.pop(key, None)
            else:
                self.entries[key] = value
        return self.entries.get(key)

    def _read(self, key: str) -> str | None:
        with self._env.begin() as txn:
            value = txn.get(key.encode())
        return None if value is None else bytes(value).decode("utf-8", "replace")

    async def put(self, key: str, value: str) -> None:
        self.entries[key] = value
        if self._env is not None:
            await trio.to_thread.run_sync(self._write, ((key, value),), ())

    async def delete(self, key: str) -> None:
        if self.entries.pop(key, None) is not None and self._env is not None:
            await trio.to_thread.run_sync(self._write, (), (key,))

    async def drop(self, keys: list[str]) -> None:
        """Remove many entries in one transaction (a cleanup pass)."""
        for key in keys:
            self.entries.pop(key, None)
        if keys and self._env is not None:
            await trio.to_thread.run_sync(self._write, (), tuple(keys))

    def _write(self, puts, deletes) -> None:
        with self._env.begin(write=True) as txn:
            for key, value in puts:
                txn.put(key.encode(), value.encode())
            for key in deletes:
                txn.delete(key.encode())

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None
