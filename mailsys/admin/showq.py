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
    deferral on record (Postfix's defer log), under the address the
    deferral went to, each run of equal reasons under one reason line, then
    those not tried yet (Postfix's remaining queue-file recipients), which
    a "(reason unavailable)" line precedes when a reason came before them.

    The arrival time is asctime() in local time, as Postfix's. Entries come
    in the order they are given (postqueue: the messages sendmail left in
    the maildrop first, as Postfix lists its maildrop queue, with the queue
    name "maildrop" and no status character; then QueueStore.scan_all:
    active, incoming, deferred, hold, oldest first in each).

    Pure: envelopes in, text out.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from mailsys.admin.addresses import shown
from mailsys.message.envelope import Envelope, RcptState

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


def queue_name(queue: Queue | str) -> str:
    """A queue's name: a Queue of the store, or "maildrop"."""
    return getattr(queue, "value", queue)


def status_id(env: Envelope, queue: Queue | str) -> str:
    """The queue ID with Postfix's status characters."""
    mark = {"active": "*", "hold": "!"}.get(queue_name(queue), "")
    return env.queue_id + mark + ("#" if env.forced_expire else "")


def listed(env: Envelope) -> list[tuple[str, str]]:
    """The recipients mailq lists, in its order, as (address, delay reason),
    the reason "" for one not tried yet. Postfix's showq lists its defer
    log first, under the address each deferral went to, then the queue
    file's undelivered recipients whose address the defer log did not
    name: a recipient the resolver rewrote (u@192.0.2.1 deferred as
    u@[192.0.2.1]) is listed twice, deferred as rewritten and untried as
    queued."""
    deferred = [(r.deferred_as or r.address, r.reason) for r in env.recipients
                if r.state is RcptState.DEFERRED]
    named = {address for address, _ in deferred}
    untried = [(r.address, "") for r in env.recipients
               if (r.state is RcptState.PENDING
                   or (r.state is RcptState.DEFERRED and r.deferred_as))
               and r.address not in named]
    return deferred + untried


def reason_line(reason: str) -> str:
    return "%*s(%s)\n" % (max(0, REASON_END - len(reason)), "", reason)


def render_entry(env: Envelope, queue: Queue | str, utf8: bool = True) -> str:
    """One message's block of lines, without the separating blank line.
    utf8: smtputf8_enable (addresses.shown). As showq_compat.c, a reason
    line comes whenever the reason changes from the previous recipient's,
    "(reason unavailable)" when it changes to none."""
    out = [MESSAGE % (status_id(env, queue), env.size, arrival(env.arrival_time),
                      shown(env.sender, utf8))]
    previous = ""
    for address, reason in listed(env):
        if reason != previous:
            out.append(reason_line(reason or UNAVAILABLE))
            previous = reason
        out.append(RECIPIENT % ("", "", "", shown(address, utf8)))
    return "".join(out)


def iter_listing(entries: Iterable[tuple[Envelope, Queue | str]],
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


def render_listing(entries: Iterable[tuple[Envelope, Queue | str]], utf8: bool = True) -> str:
    """The whole mailq output for entries."""
    return "".join(iter_listing(entries, utf8))


def json_entry(env: Envelope, queue: Queue | str, utf8: bool = True) -> str:
    """One postqueue -j line (without the newline), keys in Postfix's order."""
    recipients = []
    for address, reason in listed(env):
        item = {"address": shown(address, utf8)}
        if reason:
            item["delay_reason"] = reason
        recipients.append(item)
    obj = {
        "queue_name": queue_name(queue),
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


def render_json(entries: Iterable[tuple[Envelope, Queue | str]],
                utf8: bool = True) -> Iterator[str]:
    """postqueue -j: one JSON object per line; nothing for an empty queue."""
    for env, queue in entries:
        yield json_entry(env, queue, utf8) + "\n"
