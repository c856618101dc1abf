"""postsuper - delete, hold, release, requeue and expire queue entries.

SYNOPSIS
    mailsys postsuper [-psSv] [-d queue_id] [-h queue_id] [-H queue_id]
                      [-r queue_id] [-e queue_id] [-f queue_id] [queue ...]

DESCRIPTION
    Postfix's postsuper (postfix-compat.md 3.4) over the LMDB queue store.
    Each of -d -h -H -r -e -f takes a queue ID, ALL (upper case only) for
    every entry in the queues it works on, or "-" to read queue IDs from
    standard input, one per line (as in Postfix, mailq's "*" and "!" must
    be stripped by the caller). The options may be repeated and combined.
    Trailing queue names replace each option's default queues:

        -d  delete                          hold incoming active deferred
        -h  put on hold                     incoming active deferred
        -H  release from hold to deferred   hold
        -r  requeue                         hold incoming active deferred
        -e  force expiry                    hold incoming active deferred
        -f  force expiry, release if held   hold incoming active deferred

    Each entry named by queue ID (an argument or a line of standard input)
    that is changed is reported on standard error and in the mail log
    ("postsuper: QID: removed", "placed on hold", "released from hold",
    "requeued", "expired"); entries changed through ALL are only counted,
    as Postfix's mass operations in postsuper.c super() count and do not
    log. Then comes one summary line per requested operation, printed
    even when the count is 0 ("postsuper: Deleted: 0 messages"). As in
    Postfix (postsuper.c delete_one() and the others), a queue ID that is
    not 1 to 255 letters, digits and "_" gets "warning: invalid mail queue
    id: ID", and one that is well formed but in none of the queues is
    passed over without a word; standard input is read a line at a time,
    as it is, so an empty line is an invalid ID too. Operations run in
    the order they are given, as in Postfix 3.5 and later.

    Options end at the first argument that is not one, as with Postfix's
    getopt "+" (src/util/sys_defs.h): what follows is queue names. -c
    names the configuration directory and must be an absolute path.
    Errors once main.cf is read (a bad queue name, a missing queue
    directory) are also logged, as Postfix's msg_fatal() does.

    -r sends the message through cleanup again, as Postfix's pickup does
    with a requeued file: a new queue ID (pickup's line "NEWID: uid=N
    from=<sender> orig_id=QID" is logged), a new Received: header, address
    rewriting and header_checks once more, the recipients not yet done,
    the arrival time kept; the old entry is removed once the new one is
    committed (mailsys.cli.postsuper_requeue, which also says what happens
    when the mail system is down).

    Where mailsys differs from Postfix, because its queue is an LMDB store
    and not a directory of files:
    - -e and -f mark the entry; qmgr returns it when it next takes it up,
      which for a deferred entry is its next retry (as in Postfix; run
      "postqueue -i QID" to make that now).
    - -H and -f release to the deferred queue due at once (Postfix's
      released file keeps an old time stamp and is retried at the next
      deferred queue scan, which comes to the same).
    - -s and -S (structure check and repair) clear LMDB reader slots left
      by dead processes. -p removes the temporary files of sendmails that
      died while writing to the maildrop, once a day old
      (mailsys.queue.maildrop.purge; the master does it at start and
      reload), quietly as Postfix's: with -v, "postsuper: removed file
      maildrop/NAME" for each. With no operation given, postsuper does
      both, as Postfix does.
    - Postfix allows only root; mailsys allows whoever owns the queue.
    - The queue names maildrop, bounce, defer, trace and flush are accepted
      and hold no entries.
    After a change, qmgr is poked so it notices at once; when the mail
    system is down the trigger is simply not delivered.

EXIT STATUS
    0 when the operations ran (also when an ID was not found); 1 on a
    usage error, a bad queue name or a queue store failure.
"""

from __future__ import annotations

import functools
import getopt
import itertools
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from mailsys.admin import access
from mailsys.cli.diag import Diag, logger
from mailsys.cli.getopt_errors import complaint
from mailsys.cli.postsuper_requeue import NotRequeued, Requeuer
from mailsys.errors import NoSuchEntry, QueueError
from mailsys.message.qid import queue_id_ok
from mailsys.queue import Queue, QueueStore, WrongQueue, maildrop

PROGRAM = "postsuper"
USAGE = ("usage: postsuper [-c config_dir] [-d queue_id (delete)] "
         "[-e queue_id (expire)] [-f queue_id (expire and/or un-hold)] "
         "[-h queue_id (hold)] [-H queue_id (un-hold)] "
         "[-p (purge temporary files)] [-r queue_id (requeue)] "
         # Postfix 3.7's text, missing space included.
         "[-s (structure fix)] [-S (redundant structure fix)]"
         "[-v (verbose)] [queue...]")

ALL = "ALL"
STDIN = "-"
MESSAGE_QUEUES = (Queue.HOLD, Queue.INCOMING, Queue.ACTIVE, Queue.DEFERRED)
# Postfix queue directories with no mailsys counterpart: valid names, empty.
EMPTY_QUEUES = frozenset({"maildrop", "bounce", "defer", "trace", "flush"})

DEFAULT_QUEUES = {
    "d": MESSAGE_QUEUES,
    "h": (Queue.INCOMING, Queue.ACTIVE, Queue.DEFERRED),
    "H": (Queue.HOLD,),
    "r": MESSAGE_QUEUES,
    "e": MESSAGE_QUEUES,
    "f": MESSAGE_QUEUES,
}
# Summary lines, in Postfix's order; (counter, text).
SUMMARIES = (("requeued", "Requeued"), ("deleted", "Deleted"),
             ("expired", "Force-expired"), ("held", "Placed on hold"),
             ("released", "Released from hold"))
# Which counters an option reports.
REPORTS = {"d": ("deleted",), "h": ("held",), "H": ("released",),
           "r": ("requeued",), "e": ("expired",), "f": ("expired", "released")}
# qmgr requests after a change: scan incoming (requeue, though cleanup pokes
# it too) and deferred (release, expiry, an old entry a requeue kept for the
# notice it owes), or just wake up (it drops held and deleted entries it holds).
TRIGGERS = {"requeued": b"DI", "released": b"D", "expired": b"D",
            "held": b"W", "deleted": b"W"}


log = structlog.get_logger()


class Usage(Exception):
    pass


@dataclass(slots=True)
class Counts:
    requeued: int = 0
    deleted: int = 0
    expired: int = 0
    held: int = 0
    released: int = 0
    reported: set[str] = field(default_factory=set)


def report(text: str, qid: str | None = None, *, warning: bool = False) -> None:
    """A result, as Postfix's msg_info(): on standard error and in the log."""
    prefix = f"{qid}: " if qid else ""
    print(f"{PROGRAM}: {'warning: ' if warning else ''}{prefix}{text}", file=sys.stderr)
    (log.warning if warning else log.info)(text, **({"queue_id": qid} if qid else {}))


def plural(n: int) -> str:
    return f"{n} message" + ("" if n == 1 else "s")


@dataclass(slots=True)
class Options:
    ops: list[tuple[str, str]]  # the operations, in command-line order
    structure: bool             # -s, -S, or no operation
    purge: bool                 # -p, or no operation
    verbose: int                # how many -v
    queues: list[str]
    config_dir: Path | None     # -c


def parse(argv: list[str]) -> Options:
    # Postfix's GETOPT_LIST "c:d:e:f:h:H:pr:sSv", POSIX style: the first
    # argument that is no option ends them (src/postsuper/postsuper.c).
    try:
        opts, rest = getopt.getopt(argv, "c:d:e:f:h:H:pr:sSv")
    except getopt.GetoptError as e:
        raise Usage(complaint(e)) from None
    config_dir = None
    for opt, value in opts:
        if opt == "-c":
            if not value.startswith("/"):
                raise ValueError("-c requires absolute pathname")   # postsuper.c
            config_dir = Path(value)
    letters = [o[1] for o, _ in opts if o != "-c"]
    ops = [(o[1], a) for o, a in opts if o[1] in DEFAULT_QUEUES]
    return Options(ops, any(c in "sS" for c in letters) or not ops,
                   "p" in letters or not ops, letters.count("v"), rest, config_dir)


def queue_names(names: list[str]) -> tuple[Queue, ...] | None:
    """The queues named on the command line (None: each option's default);
    ValueError(name) for a name that is no queue."""
    if not names:
        return None
    out = []
    for name in names:
        if name in EMPTY_QUEUES:
            continue
        try:
            queue = Queue(name)
        except ValueError:
            raise ValueError(name) from None
        if queue not in out:
            out.append(queue)
    return tuple(out)


def main(argv: list[str], config_dir: Path, command: str = "postsuper") -> int:
    diag = Diag(PROGRAM)
    try:
        options = parse(argv)
    except Usage as e:
        if e.args and e.args[0]:
            print(f"{PROGRAM}: {e.args[0]}", file=sys.stderr)
        return diag.fatal(USAGE, 1)
    except ValueError as e:
        return diag.fatal(str(e), 1)
    cfg = access.config(options.config_dir or config_dir)
    diag.cfg = cfg
    try:
        restrict = queue_names(options.queues)
    except ValueError as e:
        # Postfix finds out only after main.cf is read, so it is logged too.
        return diag.fatal(f"invalid directory name: {e}", 1)
    qdir = access.queue_dir(cfg)
    if not qdir.is_dir():
        return diag.fatal(f"chdir {qdir}: No such file or directory", 1)
    logger(cfg, PROGRAM)                 # the same set-up diag.fatal() uses
    counts = Counts()
    requeuer = None
    try:
        with access.open_store(qdir) as store:
            if store is not None and options.structure:
                store.reader_check()
            if options.purge:
                purge(qdir, options.verbose)
            if store is not None:
                requeuer = Requeuer(cfg, store)
            operations = {**OPERATIONS, "r": functools.partial(requeue, requeuer)}
            # In command-line order, as Postfix does since 3.5 (postsuper.c
            # main(), second getopt loop); a second "-" finds standard input
            # at its end, as there.
            for op, target in options.ops:
                counts.reported.update(REPORTS[op])
                queues = restrict if restrict is not None else DEFAULT_QUEUES[op]
                if target == ALL:
                    if store is not None and queues:
                        operations[op](store, everything(store, queues), queues,
                                       counts, False)
                    continue
                qids = read_ids(sys.stdin) if target == STDIN else [target]
                for run in well_formed_runs(qids):
                    if store is not None and queues:
                        operations[op](store, run, queues, counts, True)
    except QueueError as e:
        return diag.fatal(str(e), 1)
    finally:
        if requeuer is not None:
            requeuer.close()
    for name, text in SUMMARIES:
        if name in counts.reported:
            report(f"{text}: {plural(getattr(counts, name))}")
    request = bytes(sorted({byte for n, _ in SUMMARIES if getattr(counts, n)
                            for byte in TRIGGERS[n]}))
    if request:
        access.poke_qmgr(qdir, request)      # a hint; ignored when down
    return 0


def purge(qdir: Path, verbose: int) -> None:
    """-p: the maildrop's old temporary files, removed."""
    try:
        removed = maildrop.purge(qdir)
    except OSError as e:
        report(f"cannot purge old temporary files from the maildrop: {e}", warning=True)
        return
    for name in removed if verbose else ():
        report(f"removed file {maildrop.MAILDROP}/{name}")


def read_ids(stream: Iterable[str]) -> list[str]:
    """Each line as it is, without its newline, as Postfix's operate_stream()
    reads it with vstring_get_nonl(): no trimming, empty lines kept."""
    return [line[:-1] if line.endswith("\n") else line for line in stream]


def everything(store: QueueStore, queues: Iterable[Queue]) -> list[str]:
    return [qid for q in queues for qid in store.list(q)]


def well_formed_runs(qids: list[str]) -> Iterator[list[str]]:
    """The IDs in runs of well-formed ones, warning in their place about
    each malformed one, as Postfix's delete_one() and the others do first
    thing (postsuper.c): "warning: invalid mail queue id: ID"."""
    for ok, run in itertools.groupby(qids, key=queue_id_ok):
        if ok:
            yield list(run)
        else:
            for qid in run:
                report(f"invalid mail queue id: {qid}", warning=True)


def changed(text: str, qid: str, named: bool) -> None:
    """Report one entry changed when it was named by queue ID; ALL only counts."""
    if named:
        report(text, qid)


def delete(store: QueueStore, qids: list[str], queues: tuple[Queue, ...],
           counts: Counts, named: bool) -> None:
    removed = store.remove_many(qids, src=queues)
    for qid in removed:
        changed("removed", qid, named)
    counts.deleted += len(removed)


def hold(store: QueueStore, qids: list[str], queues: tuple[Queue, ...],
         counts: Counts, named: bool) -> None:
    sources = tuple(q for q in queues if q is not Queue.HOLD)
    moved = store.move_many(qids, sources, Queue.HOLD) if sources else []
    for qid in moved:
        changed("placed on hold", qid, named)
    counts.held += len(moved)


def _each(store: QueueStore, qids: list[str], queues: tuple[Queue, ...], fn) -> None:
    """Call fn(qid, queue) for each entry in queues; entries in none of
    them, or that vanish or move meanwhile (qmgr got there first), are
    passed over without a word, as in Postfix."""
    for qid in qids:
        try:
            _, queue = store.load(qid)
            if queue not in queues:
                raise NoSuchEntry(qid)
            fn(qid, queue)
        except (NoSuchEntry, WrongQueue):
            pass
        except QueueError as e:
            report(str(e), qid, warning=True)


def release(store: QueueStore, qids: list[str], queues: tuple[Queue, ...],
            counts: Counts, named: bool) -> None:
    def fn(qid: str, queue: Queue) -> None:
        if queue is not Queue.HOLD:
            raise NoSuchEntry(qid)
        _release(store, qid, counts, named)
    _each(store, qids, queues, fn)


def _release(store: QueueStore, qid: str, counts: Counts, named: bool) -> None:
    store.update(qid, src=Queue.HOLD, dst=Queue.DEFERRED, next_attempt=time.time())
    changed("released from hold", qid, named)
    counts.released += 1


def requeue(requeuer: Requeuer, store: QueueStore, qids: list[str],
            queues: tuple[Queue, ...], counts: Counts, named: bool) -> None:
    def fn(qid: str, queue: Queue) -> None:
        was_down = requeuer.down
        outcome = requeuer.requeue(qid, queues)
        if isinstance(outcome, NotRequeued):
            report(outcome.why, qid, warning=True)
            return
        if requeuer.down and not was_down:
            report("mail system is down: requeued in place, under the same queue ID",
                   warning=True)
        changed("requeued", qid, named)
        counts.requeued += 1
    _each(store, qids, queues, fn)


def _expire(release_held: bool):
    def op(store: QueueStore, qids: list[str], queues: tuple[Queue, ...],
           counts: Counts, named: bool) -> None:
        def fn(qid: str, queue: Queue) -> None:
            store.update(qid, src=queue, forced_expire=True)
            changed("expired", qid, named)
            counts.expired += 1
            if release_held and queue is Queue.HOLD:
                _release(store, qid, counts, named)
        _each(store, qids, queues, fn)
    return op


# -r is requeue() with the Requeuer main() makes.
OPERATIONS = {"d": delete, "h": hold, "H": release,
              "e": _expire(False), "f": _expire(True)}
