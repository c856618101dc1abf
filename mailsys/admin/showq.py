"""showq - the mail queue listing of mailq / postqueue -p and postqueue -j.

SYNOPSIS
    from mailsys.admin.showq import iter_listing, render_listing, render_json
    text = render_listing(store.scan_all())       # "Mail queue is empty\\n" or the table
    for piece in iter_listing(store.scan_all()): ...
    for line in render_json(store.scan_all()): ...

DESCRIPTION
    Postfix's showq daemon writes these two renderings (src/showq/
    showq_compat.c and showq_json.c); mailsys produces them from the
    envelopes in the queue store, byte for byte in Postfix's formats
    (postfix-compat.md 3.1, 3.2). mailsys queue IDs have the shape of
    Postfix's long queue IDs, so the listing uses the long-ID columns:

        heading    "%-17s %8s %-19s %s\\n"
        message    "%-17s %8ld %19.19s %s\\n"   ID+status, size, asctime, sender
        reason     "%*s(%s)\\n"                 ")" ends in column 78
        recipient  "%-17s %8s %-19s %s\\n"      47 spaces, then the address
        trailer    "\\n-- %lu Kbytes in %lu Request%s.\\n"

    The status characters follow the ID: "*" in the active queue, "!" in
    the hold queue, then "#" when an administrator forced expiry. Only
    recipients without a final state are listed: first those with a
    deferral on record (Postfix's defer log), each run of equal reasons
    under one reason line, then those not tried yet (Postfix's remaining
    queue-file recipients). A deferred recipient without reason text shows
    "(reason unavailable)".

    The arrival time is asctime() in local time, as Postfix's. Entries come
    in the order they are given (QueueStore.scan_all: active, incoming,
    deferred, hold, oldest first in each; Postfix also lists maildrop first,
    which mailsys does not have).

    Pure: envelopes in, text out.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from mailsys.admin.addresses import shown
from mailsys.message.envelope import Envelope, RcptState, Recipient

if TYPE_CHECKING:      # importing mailsys.queue would load lmdb
    from mailsys.queue.schema import Queue

EMPTY = "Mail queue is empty\n"
HEADING = "%-17s %8s %-19s %s\n" % (
    "----Queue ID-----", "--Size--", "---Arrival Time----", "--Sender/Recipient------")
MESSAGE = "%-17s %8d %19.19s %s\n"
RECIPIENT = "%-17s %8s %-19s %s\n"
TRAILER = "\n-- %d Kbytes in %d Request%s.\n"
# showq_compat.c: padding = 76 - strlen(reason), so ")" lands in column 78.
REASON_END = 76
UNAVAILABLE = "reason unavailable"


def arrival(when: float) -> str:
    """asctime(localtime(when)) without its newline."""
    return time.asctime(time.localtime(when))


def status_id(env: Envelope, queue: Queue) -> str:
    """The queue ID with Postfix's status characters."""
    mark = {"active": "*", "hold": "!"}.get(queue.value, "")
    return env.queue_id + mark + ("#" if env.forced_expire else "")


def listed(env: Envelope) -> list[tuple[Recipient, str | None]]:
    """The recipients mailq lists, in its order, each with its delay reason
    (None for one not tried yet)."""
    deferred = [(r, r.reason or None) for r in env.recipients
                if r.state is RcptState.DEFERRED]
    untried = [(r, None) for r in env.recipients if r.state is RcptState.PENDING]
    return deferred + untried


def reason_line(reason: str) -> str:
    return "%*s(%s)\n" % (max(0, REASON_END - len(reason)), "", reason)


def render_entry(env: Envelope, queue: Queue, utf8: bool = True) -> str:
    """One message's block of lines, without the separating blank line.
    utf8: smtputf8_enable (addresses.shown)."""
    out = [MESSAGE % (status_id(env, queue), env.size, arrival(env.arrival_time),
                      shown(env.sender, utf8))]
    previous: str | None = None
    for rcpt, reason in listed(env):
        if rcpt.state is RcptState.DEFERRED:
            text = reason or UNAVAILABLE
            if text != previous:
                out.append(reason_line(text))
                previous = text
        out.append(RECIPIENT % ("", "", "", shown(rcpt.address, utf8)))
    return "".join(out)


def iter_listing(entries: Iterable[tuple[Envelope, Queue]],
                 utf8: bool = True) -> Iterator[str]:
    """The mailq output for entries, a piece at a time, so a large queue is
    written as it is read."""
    total = count = 0
    for env, queue in entries:
        yield HEADING if not count else "\n"
        yield render_entry(env, queue, utf8)
        total += env.size
        count += 1
    if not count:
        yield EMPTY
    else:
        yield TRAILER % (total // 1024, count, "" if count == 1 else "s")


def render_listing(entries: Iterable[tuple[Envelope, Queue]], utf8: bool = True) -> str:
    """The whole mailq output for entries."""
    return "".join(iter_listing(entries, utf8))


def json_entry(env: Envelope, queue: Queue, utf8: bool = True) -> str:
    """One postqueue -j line (without the newline), keys in Postfix's order."""
    recipients = []
    for rcpt, reason in listed(env):
        item = {"address": shown(rcpt.address, utf8)}
        if reason is not None:
            item["delay_reason"] = reason
        recipients.append(item)
    obj = {
        "queue_name": queue.value,
        "queue_id": env.queue_id,
        "arrival_time": int(env.arrival_time),
        "message_size": env.size,
        "forced_expire": env.forced_expire,
        "sender": shown(env.sender, utf8),
        "recipients": recipients,
    }
    # json.dumps' default separators are Postfix's ", " and ": "; non-ASCII
    # stays UTF-8 as showq_json.c writes it.
    return json.dumps(obj, ensure_ascii=False)


def render_json(entries: Iterable[tuple[Envelope, Queue]],
                utf8: bool = True) -> Iterator[str]:
    """postqueue -j: one JSON object per line; nothing for an empty queue."""
    for env, queue in entries:
        yield json_entry(env, queue, utf8) + "\n"
