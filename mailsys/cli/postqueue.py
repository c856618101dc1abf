"""postqueue - list and flush the mail queue.

SYNOPSIS
    mailsys postqueue -p
    mailsys postqueue -j
    mailsys postqueue -f | -i queue_id | -s site

DESCRIPTION
    -p (and mailq, which is sendmail's -bp) prints Postfix's queue listing, -j one
    JSON object per queue entry (mailsys.admin.showq has the formats).
    The listing is read straight from the LMDB queue store, which is safe
    for concurrent readers, so it works whether or not the mail system
    runs; Postfix instead asks its showq service and reads the queue
    directly (with a warning) only as root while the mail system is down.
    mailsys needs no showq service and prints no such warning.

    -f makes every deferred entry due now and asks qmgr to look, as
    Postfix's postqueue -f sends qmgr "FADI" (forget dead destinations,
    scan all ignoring retry times, scan deferred, scan incoming;
    src/global/mail_flush.c). The due times are changed through the queue
    store too, so the flush happens at qmgr's next scan even if the
    trigger is lost. When sendmail has left mail in the maildrop, the
    pickup service is woken too, as Postfix's flush wakes pickup.
    -i queue_id does the same for one deferred entry. An ID that is not
    1 to 255 letters, digits and "_" stops postqueue with 'Cannot flush
    queue ID - invalid name: "id"', as Postfix's does; one that is not in
    the deferred queue is not an error (exit status 0, as in Postfix,
    where the entry may just have been delivered), but mailsys says so in
    one warning line where Postfix is silent.
    -s site makes due every deferred entry with an undelivered recipient at
    the domain site ("[192.0.2.1]" for an address literal) and pokes qmgr.
    Postfix serves -s through its flush service and per-site logs;
    mailsys's postqueue reads the deferred queue (mailsys.admin.flush,
    which its flush service uses for ETRN) and takes the flush service's
    decision from there too: a site that is no domain name or address
    literal stops postqueue with 'Cannot flush mail queue - invalid
    destination: "site"' (Postfix's postqueue checks that itself, before
    asking the service), and one that $fast_flush_domains (default
    $relay_domains) does not match with 'Flush service is not configured
    for destination "site"' (the service's DENY), both with exit status
    69, as Postfix's postqueue exits.
    Both also ask qmgr to forget dead destinations ("F"), or the entries
    would only be deferred again with "delivery temporarily suspended":
    Postfix's flush service does the same for -s (UNTHROTTLE_BEFORE) and
    for -i has qmgr unthrottle the entry's own destinations as it reads
    the file (src/flush/flush.c); mailsys has no per-entry mark, so -i
    revives every dead destination, which costs at most one early attempt.

    Flushing needs a running mail system: when the master is down (no live
    pid in $queue_directory/pid/master.pid) or qmgr cannot be reached,
    postqueue says "Cannot flush mail queue - mail system is down" and
    exits 69, as Postfix does.

EXIT STATUS
    0 done; 69 a usage error, a bad site or queue ID, mail system down, or
    a site that cannot be flushed (flush only); 71 queue store error; 74
    output error (Postfix's sysexits, postfix-compat.md 3.8; its usage
    errors exit 69 as said in main).

DIAGNOSTICS
    Fatal errors go to standard error, and once main.cf is read to the
    mail log too, tagged <syslog_name>/postqueue, as Postfix's postqueue
    logs them (mailsys.cli.diag): a bad command line is not logged, a
    missing mode, a bad site or queue ID and "mail system is down" are.
"""

from __future__ import annotations

import getopt
import itertools
import sys
from pathlib import Path

from mailsys.admin import access
from mailsys.admin.flush import fast_flush_matcher, make_due, site_entries, site_status, valid_site
from mailsys.admin.showq import iter_listing, render_json
from mailsys.cli.diag import Diag
from mailsys.cli.getopt_errors import complaint
from mailsys.config import Config
from mailsys.errors import ConfigError, QueueError
from mailsys.ipc.proto import flush as flush_proto
from mailsys.maillog.files import check_prefixes
from mailsys.queue import Queue, maildrop

PROGRAM = "postqueue"
USAGE = ("usage: postqueue -f | postqueue -i queueid | postqueue -j | "
         "postqueue -p | postqueue -s site")

EX_OK = 0
EX_UNAVAILABLE = 69
EX_OSERR = 71
EX_IOERR = 74

DOWN = "Cannot flush mail queue - mail system is down"
# Postfix's QMGR_REQ_FLUSH_DEAD, SCAN_ALL, SCAN_DEFERRED, SCAN_INCOMING.
FLUSH_ALL_TRIGGER = b"FADI"
FLUSH_SOME_TRIGGER = b"FAD"
VALID_HOSTNAME_LEN = 255            # Postfix valid_hostname.h


def parse(argv: list[str]) -> tuple[str | None, str | None]:
    """The one mode letter (None: none given) and its argument; raises
    getopt.GetoptError. mailq is Postfix's sendmail (mailsys.cli.sendmail)."""
    opts, rest = getopt.getopt(argv, "fi:jps:v")
    modes = [(o[1], a or None) for o, a in opts if o != "-v"]
    if rest or len(modes) > 1:
        raise getopt.GetoptError("usage")
    return modes[0] if modes else (None, None)


def main(argv: list[str], config_dir: Path, command: str = "postqueue") -> int:
    diag = Diag(PROGRAM)
    try:
        mode, arg = parse(argv)
    except getopt.GetoptError as e:
        if (line := complaint(e)) is not None:
            print(f"{PROGRAM}: {line}", file=sys.stderr)
        # Postfix's postqueue.c passes EX_USAGE to its usage and site
        # errors, but the msg_cleanup() handler it installs, unavailable(),
        # exits with EX_UNAVAILABLE before msg_fatal_status() gets to
        # _exit(): the status is 69 (seen live with 3.7.11). These come
        # before postqueue reads main.cf, so Postfix cannot log them to
        # $maillog_file either (seen live).
        return diag.fatal(USAGE, EX_UNAVAILABLE)
    try:
        cfg = access.config(config_dir)
        check_prefixes(cfg)
    except ConfigError as e:
        return diag.fatal(str(e), EX_UNAVAILABLE)
    # From here on Postfix's postqueue logs its fatal errors as well
    # (postqueue.c reads main.cf, then maillog_client_init(); seen live).
    diag.cfg = cfg
    qdir = access.queue_dir(cfg)
    if not qdir.is_dir():
        return diag.fatal(f"chdir {qdir}: No such file or directory", EX_UNAVAILABLE)
    # postqueue.c's "Further input validation", after main.cf.
    if mode == "s" and not valid_site(arg or ""):
        return diag.fatal("Cannot flush mail queue - invalid destination: "
                          f'"{_shown(arg or "")}"', EX_UNAVAILABLE)
    if mode == "i" and not queue_id_ok(arg or ""):
        return diag.fatal(f'Cannot flush queue ID - invalid name: "{_shown(arg or "")}"',
                          EX_UNAVAILABLE)
    if mode is None:
        return diag.fatal(USAGE, EX_UNAVAILABLE)    # PQ_MODE_DEFAULT: logged too (seen live)
    try:
        if mode in "pj":
            return show(qdir, mode, cfg.smtputf8_enable, diag)
        return flush(cfg, qdir, mode, arg, diag)
    except QueueError as e:
        return diag.fatal(str(e), EX_OSERR)


def queue_id_ok(queue_id: str) -> bool:
    """Postfix's mail_queue_id_ok(): 1 to 255 letters, digits and "_"
    (src/global/mail_queue.c)."""
    return 0 < len(queue_id) <= VALID_HOSTNAME_LEN and \
        all(c.isascii() and (c.isalnum() or c == "_") for c in queue_id)


def show(qdir: Path, mode: str, utf8: bool, diag: Diag) -> int:
    """mailq or postqueue -j; utf8: smtputf8_enable (non-ASCII shown as "?" without it)."""
    with access.open_store(qdir) as store:
        entries = itertools.chain(
            ((env, maildrop.MAILDROP) for env in maildrop.envelopes(qdir)),
            store.scan_all(on_corrupt=_corrupt) if store else ())
        try:
            for piece in (iter_listing if mode == "p" else render_json)(entries, utf8):
                sys.stdout.write(piece)
            sys.stdout.flush()
        except BrokenPipeError:
            raise
        except OSError as e:
            return diag.fatal(f"write error: {e.strerror}", EX_IOERR)
    return EX_OK


def _corrupt(qid: str, error: Exception) -> None:
    # showq warns about a queue file it cannot read and goes on.
    print(f"{PROGRAM}: warning: {qid}: unreadable queue entry: {error}", file=sys.stderr)


def _shown(site: str) -> str:
    """site as Postfix's postqueue quotes it: "%.100s%s", "..." when cut."""
    return site[:100] + ("..." if len(site) > 100 else "")


def flush(cfg: Config, qdir: Path, mode: str, arg: str | None, diag: Diag) -> int:
    if not access.master_running(cfg):
        return diag.fatal(DOWN, EX_UNAVAILABLE)
    if mode == "s" and site_status(arg or "", fast_flush_matcher(cfg)) == flush_proto.DENY:
        return diag.fatal(f'Flush service is not configured for destination "{arg}"',
                          EX_UNAVAILABLE)
    with access.open_store(qdir) as store:
        if store is not None:
            if mode == "f":
                make_due(store, store.list(Queue.DEFERRED))
            elif mode == "i":
                if not make_due(store, [arg]):
                    print(f"{PROGRAM}: warning: {arg}: not in the deferred queue",
                          file=sys.stderr)
            else:
                make_due(store, site_entries(store, arg or "", _corrupt))
    trigger = FLUSH_ALL_TRIGGER if mode == "f" else FLUSH_SOME_TRIGGER
    if not access.poke_qmgr(qdir, trigger):
        return diag.fatal(DOWN, EX_UNAVAILABLE)
    if mode == "f" and maildrop.pending(qdir):
        access.poke_pickup(qdir)    # and the maildrop, as Postfix's flush does
    return EX_OK
