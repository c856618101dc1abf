"""verify_cache - when the verify service answers from its cache, probes, forgets.

SYNOPSIS
    times = VerifyTimes.from_config(cfg)
    out = on_query(entry_or_None, now, times)   # .status .text .probe .store .delete
    new = on_update(entry_or_None, status, text, now)   # the entry to write, or None: keep
    expired(entry, now, times)                   # address_verify_cache_cleanup_interval drops it

DESCRIPTION
    The decisions of Postfix's verify(8) (src/verify/verify.c), without
    I/O. An address's entry holds its status (mailsys.ipc.proto.verify:
    OK, DEFER, BOUNCE, or TODO while nothing is known), when the last probe
    for it was sent, when a probe's result last set the status, and the
    probe's answer text. It is stored as Postfix writes it:
    "status:probed:updated:text".

    A query answers the entry's status and text, or TODO "Address
    verification in progress" when there is no entry, it cannot be read,
    or it has expired (address_verify_positive_expire_time for a
    deliverable address, address_verify_negative_expire_time for the
    others) and no probe went out in the last PROBE_TTL seconds. A probe
    is sent when the status is older than its refresh time
    (address_verify_positive_refresh_time, _negative_refresh_time) and
    none is out; the entry then remembers the probe time, so that many
    queries send one probe. Without address_verify_negative_cache nothing
    is written for an unknown address, and an expired negative entry is
    deleted.

    An update writes the probe's result, except that a failed probe never
    replaces a deliverable status that has not expired: that address is
    probed again at the next query, and stays deliverable while some
    probes succeed.

SEE ALSO
    services/verify.py (the service), mailsys.runtime.verify_map (the
    LMDB file), Postfix verify(8), ADDRESS_VERIFICATION_README.
"""

from __future__ import annotations

from typing import Any

from mailsys.frozen import frozen
from mailsys.ipc.proto.verify import OK, STATUSES, TODO

__all__ = ["IN_PROGRESS", "PROBE_TTL", "QueryOutcome", "VerifyEntry", "VerifyTimes", "probe_sender",
           "expired", "on_query", "on_update"]

# verify.c: a probe with no result after this many seconds is taken as
# lost, and may be sent again.
PROBE_TTL = 1000
IN_PROGRESS = "Address verification in progress"


@frozen
class VerifyEntry:
    """One address's cache entry (times in seconds since the epoch, 0: never)."""
    status: int
    probed: float
    updated: float
    text: str

    def encode(self) -> str:
        return f"{self.status}:{int(self.probed)}:{int(self.updated)}:{self.text}"

    @classmethod
    def decode(cls, raw: str) -> VerifyEntry | None:
        """The entry, or None for a malformed one (which counts as absent)."""
        parts = raw.split(":", 3)
        if len(parts) != 4:
            return None
        try:
            status, probed, updated = int(parts[0]), int(parts[1]), int(parts[2])
        except ValueError:
            return None
        # verify.c: an entry with neither time stamp is never written.
        if status not in STATUSES or not (probed or updated):
            return None
        return cls(status, float(probed), float(updated), parts[3])


@frozen
class VerifyTimes:
    """The address_verify_* times, in seconds."""
    positive_expire: float = 31 * 86400
    positive_refresh: float = 7 * 86400
    negative_expire: float = 3 * 86400
    negative_refresh: float = 3 * 3600
    negative_cache: bool = True

    @classmethod
    def from_config(cls, cfg: Any) -> VerifyTimes:
        return cls(float(cfg.address_verify_positive_expire_time),
                   float(cfg.address_verify_positive_refresh_time),
                   float(cfg.address_verify_negative_expire_time),
                   float(cfg.address_verify_negative_refresh_time),
                   bool(cfg.address_verify_negative_cache))


@frozen
class QueryOutcome:
    status: int
    text: str
    probe: bool                       # send a probe now
    store: VerifyEntry | None = None  # write this entry
    delete: bool = False              # remove the address's entry


def _expired(entry: VerifyEntry, now: float, t: VerifyTimes) -> bool:
    limit = t.positive_expire if entry.status == OK else t.negative_expire
    return entry.updated + limit < now


def _stale(entry: VerifyEntry, now: float, t: VerifyTimes) -> bool:
    limit = t.positive_refresh if entry.status == OK else t.negative_refresh
    return entry.updated + limit < now


def on_query(entry: VerifyEntry | None, now: float, t: VerifyTimes) -> QueryOutcome:
    """What a query for an address with this entry answers and does."""
    delete = False
    if entry is None or (now - entry.probed > PROBE_TTL and _expired(entry, now, t)):
        delete = entry is not None and not t.negative_cache
        entry = VerifyEntry(TODO, 0.0, 0.0, IN_PROGRESS)
    if not (now - entry.probed > PROBE_TTL and _stale(entry, now, t)):
        return QueryOutcome(entry.status, entry.text, probe=False, delete=delete)
    # A new probe. Without negative caching, only a known address (one a
    # probe already answered for) keeps an entry.
    store = None
    if entry.updated or t.negative_cache:
        store = VerifyEntry(entry.status, now, entry.updated, entry.text)
    return QueryOutcome(entry.status, entry.text, probe=True, store=store,
                        delete=delete and store is None)


def on_update(entry: VerifyEntry | None, status: int, text: str, now: float) -> VerifyEntry | None:
    """The entry after a probe's result, or None to keep the one there."""
    if status != OK and entry is not None and entry.status == OK:
        return None
    return VerifyEntry(status, 0.0, now, text)


def expired(entry: VerifyEntry | None, now: float, t: VerifyTimes) -> bool:
    """Whether the periodic cleanup drops this entry: unreadable, or expired
    with no probe out."""
    return entry is None or (now - entry.probed > PROBE_TTL and _expired(entry, now, t))


# Postfix safe_ultostr()'s digits: no vowels, so that a time stamp never
# spells a word; base 31 keeps to digits and upper case (verify_sender_addr.c).
_DIGITS = "0123456789BCDFGHJKLMNPQRSTVWXYZ"


def _base31(n: int) -> str:
    out = ""
    while True:
        n, d = divmod(n, 31)
        out = _DIGITS[d] + out
        if not n:
            return out


def probe_sender(sender: str, ttl: float, now: float, myorigin: str) -> str:
    """The sender of a probe (Postfix make_verify_sender_addr): "" for an
    empty or "<>" address_verify_sender, else that address with, when
    address_verify_sender_ttl is set, the time slot appended to its local
    part, and @$myorigin when it has no domain."""
    sender = sender.strip()
    if not sender or sender == "<>":
        return ""
    local, at, domain = sender.partition("@")
    if ttl > 0:
        local += _base31(int(now // ttl))
    return f"{local}@{domain if at else myorigin}"
