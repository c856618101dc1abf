"""postscreen_cache - the temporary allow list: which clients passed which tests, until when.

SYNOPSIS
    cache = PostscreenCache.open(cfg.postscreen_cache_map, cfg)    # post_init
    entry = cache.get("192.0.2.7")                    # CacheEntry or None
    await cache.put("192.0.2.7", CacheEntry(pregreet=t1, dnsbl=t2))
    cache.close()                                     # on_exit

DESCRIPTION
    Postfix's postscreen_cache_map. A client that passed the pregreet test
    and the DNSBL test is remembered, each test until its own expiry time
    (postscreen_greet_ttl; postscreen_dnsbl_min_ttl..max_ttl from the DNS
    answers), and its next connection goes straight to smtpd ("PASS OLD").

    Where it lives, by the map's type:

      btree:PATH, hash:PATH, lmdb:PATH
                  an LMDB file at PATH (with "-lock" beside it), so that the
                  list survives a restart as Postfix's does. Postfix's
                  btree/hash files are not read: the file is mailsys's own.
      memory, internal:NAME
                  this process only; a restart forgets it.

    Every entry is held in memory as well (postscreen is a single process,
    maxproc 1, as in Postfix); the file is read once when the process
    starts and written as entries change, each write in a worker thread in
    one short transaction (STYLE.md (d): LMDB calls never run on the trio
    thread, never span an await).

    A value is Postfix's text layout, "PREGREET;DNSBL" as seconds since
    the epoch (0: not passed).

BUGS
    postscreen_cache_retention_time and postscreen_cache_cleanup_interval
    are not implemented: expired entries stay in the file and are simply
    not honoured.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import trio

from mailsys.errors import ConfigError

# The cache file holds one small record per client ever passed.
MAP_SIZE = 1 << 30
_FILE_TYPES = ("btree", "hash", "lmdb")


@dataclass(frozen=True, slots=True)
class CacheEntry:
    pregreet: float = 0.0          # the pregreet test pass expires at this time
    dnsbl: float = 0.0             # the DNSBL test pass expires at this time

    def encode(self) -> bytes:
        return f"{int(self.pregreet)};{int(self.dnsbl)}".encode()

    @classmethod
    def decode(cls, data: bytes) -> "CacheEntry":
        fields = data.decode("ascii", "replace").split(";")
        try:
            return cls(float(fields[0]), float(fields[1]) if len(fields) > 1 else 0.0)
        except ValueError:
            return cls()

    def passed(self, now: float, *, dnsbl: bool) -> bool:
        """Whether every enabled test is passed and not expired."""
        return self.pregreet > now and (not dnsbl or self.dnsbl > now)


class PostscreenCache:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, CacheEntry] = {}
        self._env = None

    @classmethod
    def open(cls, spec: str, cfg=None) -> "PostscreenCache":
        spec = spec.strip()
        kind, colon, name = spec.partition(":")
        if not spec or kind == "memory" or kind == "internal":
            return cls(None)
        if not colon or kind not in _FILE_TYPES or not name:
            raise ConfigError(f"postscreen_cache_map: unsupported map {spec!r} "
                              "(btree:, hash: or lmdb: PATH, or memory)",
                              param="postscreen_cache_map")
        path = Path(name)
        if not path.is_absolute() and cfg is not None:
            path = cfg.config_dir.parent / path
        cache = cls(path)
        cache._load()
        return cache

    def _load(self) -> None:
        import lmdb
        assert self.path is not None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._env = lmdb.open(os.fspath(self.path), subdir=False, map_size=MAP_SIZE,
                                  max_dbs=0)
        except (OSError, lmdb.Error) as e:
            raise ConfigError(f"postscreen_cache_map: open {self.path}: {e}",
                              param="postscreen_cache_map") from None
        with self._env.begin() as txn:
            for key, value in txn.cursor():
                self.entries[bytes(key).decode("ascii", "replace")] = CacheEntry.decode(bytes(value))

    def get(self, addr: str) -> CacheEntry | None:
        return self.entries.get(addr)

    async def put(self, addr: str, entry: CacheEntry) -> None:
        self.entries[addr] = entry
        if self._env is not None:
            await trio.to_thread.run_sync(self._write, addr.encode(), entry.encode())

    def _write(self, key: bytes, value: bytes) -> None:
        with self._env.begin(write=True) as txn:
            txn.put(key, value)

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None
