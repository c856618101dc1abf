"""smtp_sasl_cache - the smtp client's memory of refused logins (Postfix smtp_sasl_auth_cache.c).

SYNOPSIS
    cache = SaslAuthCache.from_config(cfg)      # None: smtp_sasl_auth_cache_name is empty
    refused = await cache.find(host, user, password)
    if refused is not None: ...                 # refused.dsn, refused.text
    await cache.store(host, user, password, "5.7.8", "535 5.7.8 Authentication ...")

DESCRIPTION
    With smtp_sasl_auth_cache_name set, a server that answers a login with
    535 is remembered for smtp_sasl_auth_cache_time (90d), so that mail
    for it is not sent to try the same bad password again: until the
    password in smtp_sasl_password_maps changes or the entry expires, each
    delivery fails without an AUTH command, with Postfix's text

        SASL [CACHED] authentication failed; server HOST said: REPLY

    (HOST the server's name without its address; the status the stored
    one, 5xx made 4xx by smtp_sasl_auth_soft_bounce, like a live refusal).

    The table is Postfix's: key "HOST;USER", value
    "TIME;BASE64(SHA1(PASSWORD));DSN;REPLY". An expired entry, one for
    another password and a malformed one (with the warning "bad
    smtp_sasl_auth_cache entry: ...") are deleted when found.

    Postfix wants the name to start with "proxy:" (every smtp process
    writes through the one proxywrite server) and says, as a fatal error,
    'SASL authentication cache name "NAME" must start with "proxy:' (sic).
    mailsys checks the same and then opens the table behind proxy: itself
    (mailsys.runtime.map_file: btree:, hash: or lmdb: PATH, an LMDB file
    that all smtp processes share; LMDB lets them write in turn) and reads
    each key from the file when it is needed, so that what another process
    stored is seen.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Callable

import structlog

from mailsys.errors import ConfigError
from mailsys.frozen import frozen
from mailsys.runtime.map_file import MapFile

__all__ = ["CachedRefusal", "SaslAuthCache"]

log = structlog.get_logger()

# sscanf(entry, "%lu;%[^;];%[^;];%[^\n]") and dsn_valid(): class 2, 4 or 5,
# subject and detail of one to three digits.
_ENTRY = re.compile(r"(\d+);([^;]+);([^;]+);([^\n]+)")
_DSN = re.compile(r"[245]\.\d{1,3}\.\d{1,3}\Z")


@frozen
class CachedRefusal:
    dsn: str          # as the server gave it ("5.7.8")
    text: str         # the whole reply ("535 5.7.8 Authentication credentials invalid")


class SaslAuthCache:
    """See the module description."""

    def __init__(self, table: MapFile, ttl: float, clock: Callable[[], float] = time.time) -> None:
        self.table = table
        self.ttl = ttl
        self.clock = clock

    @classmethod
    def from_config(cls, cfg, program: str = "smtp") -> SaslAuthCache | None:
        """cfg is the program's view (lmtp values under smtp_* names)."""
        name = str(cfg.smtp_sasl_auth_cache_name).strip()
        if not name:
            return None
        param = f"{program}_sasl_auth_cache_name"
        if any(c in name for c in ", \t\r\n"):
            raise ConfigError(f'SASL authentication cache name "{name}" contains multiple values',
                              param=param)
        if not name.startswith("proxy:"):
            raise ConfigError(f'SASL authentication cache name "{name}" must start with "proxy:',
                              param=param)
        table = MapFile.open(name.removeprefix("proxy:"), cfg, param=param)
        return cls(table, float(cfg.smtp_sasl_auth_cache_time))

    async def find(self, host: str, user: str, password: str) -> CachedRefusal | None:
        """The refusal remembered for this server, user and password, if still valid."""
        key = f"{host};{user}"
        entry = await self.table.fetch(key)
        if entry is None:
            return None
        m = _ENTRY.match(entry)
        if m is None or not _DSN.match(m.group(3)):
            log.warning(f"bad smtp_sasl_auth_cache entry: {entry[:100]}")
        elif int(m.group(1)) + self.ttl >= self.clock() and m.group(2) == _hashed(password):
            return CachedRefusal(m.group(3), m.group(4))
        # Expired, another password, or malformed: it goes.
        await self.table.delete(key)
        return None

    async def store(self, host: str, user: str, password: str, dsn: str, text: str) -> None:
        value = f"{int(self.clock())};{_hashed(password)};{dsn};{text}"
        await self.table.put(f"{host};{user}", value)

    def close(self) -> None:
        self.table.close()


def _hashed(password: str) -> str:
    # Postfix stores the password only as base64(SHA-1(password)).
    digest = hashlib.sha1(password.encode("utf-8", "surrogateescape")).digest()
    return base64.b64encode(digest).decode("ascii")
