"""postscreen_cache - the temporary allow list: which clients passed which tests, until when.

SYNOPSIS
    cache = PostscreenCache.open(cfg.postscreen_cache_map, cfg)    # post_init
    text = cache.get("192.0.2.7")                 # "PREGREET;DNSBL;PIPEL;NSMTP;BARLF" or None
    await cache.put("192.0.2.7", text)
    retained, dropped = await cache.cleanup(keep)  # keep(text) -> bool
    cache.close()                                  # on_exit

DESCRIPTION
    Postfix's postscreen_cache_map. A client's record holds one expiry
    time per test in Postfix's own text layout (mailsys.policy.
    postscreen_tests); a client whose tests are all current goes straight
    to smtpd ("PASS OLD").

    Where it lives, by the map's type (btree:, hash: or lmdb: PATH, an
    LMDB file that survives a restart; or memory), and how it is read and
    written, is mailsys.runtime.map_file's, shared with verify's cache.

    cleanup() is Postfix's dict_cache cleanup: it removes the records keep()
    refuses, in one transaction, stores the time it finished under
    "_LAST_CACHE_CLEANUP_COMPLETED_" (as Postfix does, so a restart does not
    clean again before postscreen_cache_cleanup_interval has passed; see
    next_cleanup()), and returns what it kept and dropped, which the caller
    logs as Postfix does: "cache btree:PATH full cleanup: retained=N
    dropped=N entries".
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mailsys.runtime.map_file import MapFile

__all__ = ["PostscreenCache", "LAST_CLEANUP"]

# Postfix dict_cache's bookkeeping key (DC_LAST_CACHE_CLEANUP_COMPLETED).
LAST_CLEANUP = "_LAST_CACHE_CLEANUP_COMPLETED_"


class PostscreenCache:
    """The allow list over a MapFile; see the module description."""

    def __init__(self, table: MapFile) -> None:
        self.table = table
        self.path = table.path
        self.spec = table.spec
        try:
            self.last_cleanup = float(table.entries.get(LAST_CLEANUP, 0))
        except ValueError:
            self.last_cleanup = 0.0

    @classmethod
    def open(cls, spec: str, cfg=None) -> PostscreenCache:
        return cls(MapFile.open(spec or "memory", cfg, param="postscreen_cache_map"))

    @property
    def entries(self) -> dict[str, str]:
        """Every client's record (the bookkeeping key left out)."""
        return {addr: text for addr, text in self.table.entries.items() if addr != LAST_CLEANUP}

    def get(self, addr: str) -> str | None:
        return None if addr == LAST_CLEANUP else self.table.entries.get(addr)

    async def put(self, addr: str, text: str) -> None:
        await self.table.put(addr, text)

    def next_cleanup(self, interval: float, now: float) -> float:
        """Seconds until the next cleanup is due (0: now)."""
        return max(0.0, self.last_cleanup + interval - now)

    async def cleanup(self, keep: Callable[[str], bool]) -> tuple[int, int]:
        """Drop the records keep() refuses; (retained, dropped)."""
        records = self.entries
        drop = [addr for addr, text in records.items() if not keep(text)]
        await self.table.drop(drop)
        self.last_cleanup = time.time()
        await self.table.put(LAST_CLEANUP, str(int(self.last_cleanup)))
        return len(records) - len(drop), len(drop)

    def close(self) -> None:
        self.table.close()
