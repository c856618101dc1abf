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

from dataclasses import dataclass

from mailsys.runtime.map_file import MapFile


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
    """The allow list over a MapFile (mailsys.runtime.map_file)."""

    def __init__(self, table: MapFile) -> None:
        self.table = table
        self.path = table.path
        self.entries: dict[str, CacheEntry] = {
            addr: CacheEntry.decode(value.encode()) for addr, value in table.entries.items()}

    @classmethod
    def open(cls, spec: str, cfg=None) -> "PostscreenCache":
        return cls(MapFile.open(spec or "memory", cfg, param="postscreen_cache_map"))

    def get(self, addr: str) -> CacheEntry | None:
        return self.entries.get(addr)

    async def put(self, addr: str, entry: CacheEntry) -> None:
        self.entries[addr] = entry
        await self.table.put(addr, entry.encode().decode())

    def close(self) -> None:
        self.table.close()
