"""flush - make deferred queue entries due now (postqueue -f / -i / -s, ETRN's flush service).

SYNOPSIS
    from mailsys.admin.flush import make_due, site_entries
    make_due(store, site_entries(store, "example.com"))    # then poke qmgr

DESCRIPTION
    What Postfix's postqueue and flush(8) ask of its qmgr, done through
    the queue store, so that the next deferred scan takes the entries even
    if the trigger is lost: make_due() sets next_attempt to now on the
    given deferred entries (those that left the deferred queue meanwhile
    are qmgr's already); site_entries() finds the deferred entries with an
    undelivered recipient at a domain ("[192.0.2.1]" for an address
    literal), where Postfix's flush service keeps a log per site.

    site_status() is the flush service's answer to a site, shared by
    services/flush.py (ETRN) and postqueue -s so that both decide alike:
    BAD for a site that is no domain name or address literal, DENY for
    one that $fast_flush_domains (default $relay_domains) does not match,
    else OK (Postfix FLUSH_STAT_*, src/global/flush_clnt.h; DENY is what
    src/flush/flush.c flush_send_service answers when flush_domains does
    not match). fast_flush_matcher() compiles the list once, with its
    lookup tables opened.

    Synchronous LMDB calls: run them in a worker thread from trio
    (mailsys.runtime.store_io).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable

from mailsys.config.tables import open_table
from mailsys.errors import NoSuchEntry
from mailsys.ipc.proto import flush as proto
from mailsys.policy.netmatch import DomainMatcher
from mailsys.queue import Queue, QueueStore, WrongQueue

__all__ = ["fast_flush_matcher", "make_due", "site_entries", "site_status", "valid_site"]

# RFC 1035 host name labels, or an RFC 5321 address literal.
_HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?")
_LITERAL = re.compile(r"\[(?:[0-9.]+|IPv6:[0-9A-Fa-f:.]+)\]")


def valid_site(site: str) -> bool:
    """Whether site is a domain name or an address literal."""
    return bool(_HOSTNAME.fullmatch(site) or _LITERAL.fullmatch(site))


def fast_flush_matcher(cfg) -> DomainMatcher:
    """$fast_flush_domains, compiled; subdomains match when
    parent_domain_matches_subdomains names it, as for every domain list."""
    parents = {x.lower() for x in cfg.parent_domain_matches_subdomains}
    return DomainMatcher.compile(
        cfg.fast_flush_domains, param="fast_flush_domains",
        opener=lambda spec: open_table(spec, cfg), parent="fast_flush_domains" in parents)


def site_status(site: str, domains: DomainMatcher) -> int:
    """The flush service's answer to a request for site: BAD, DENY or OK."""
    if not valid_site(site):
        return proto.BAD
    if not domains.match(site.lower().rstrip(".")):
        return proto.DENY
    return proto.OK


def make_due(store: QueueStore, qids: Iterable[str]) -> int:
    """Set next_attempt to now on the given deferred entries; how many."""
    now = time.time()
    done = 0
    for qid in list(qids):
        try:
            store.update(qid, src=Queue.DEFERRED, next_attempt=now)
            done += 1
        except (NoSuchEntry, WrongQueue):
            continue
    return done


def site_entries(store: QueueStore, site: str,
                 on_corrupt: Callable[[str, Exception], None] | None = None) -> list[str]:
    """Deferred entries with an undelivered recipient at site."""
    want = site.lower().rstrip(".")
    out = []
    for env, _ in store.scan_all((Queue.DEFERRED,), on_corrupt=on_corrupt):
        if any(r.address.rpartition("@")[2].lower().rstrip(".") == want
               for r in env.recipients if not r.final):
            out.append(env.queue_id)
    return out
