"""postcat - show queue entries in Postfix's postcat layout.

SYNOPSIS
    mailsys postcat [-bdehoqrv] [-c config_dir] [-s offset] -q queue_id ...

DESCRIPTION
    Prints each named queue entry, looked up in every queue, with the
    sections chosen by -e (envelope), -h (header) and -b (body), all three
    when none is given (mailsys.admin.postcat has the layout). As in
    Postfix, the "*** ... ***" section lines come only with -e: -h and -b
    print the bare header and body text. Postfix's
    postcat without -q reads queue files by path; mailsys has no queue
    files, so the names are always queue IDs and -q may be left out.
    -d, -o, -r, -s and -v (record types, offsets, file order, start offset,
    verbose) concern the file format and are accepted and ignored; -s must
    still be a number ("bad offset"). -c names the configuration
    directory. Options end at the first name, as with Postfix's getopt "+".

    An ID that is in no queue stops the program with Postfix's message:
    "postcat: fatal: open queue file QID: No such file or directory" (with
    -q; without it Postfix opens a file by that name: "open NAME: No such
    file or directory"), exit status 1. With -q a name that is not 1 to 255
    letters, digits and "_" is "bad mail queue ID: NAME". postcat writes
    its errors to standard error only: Postfix's does not log.
"""

from __future__ import annotations

import getopt
import sys
from pathlib import Path

from mailsys.admin import access
from mailsys.admin.postcat import Sections, render
from mailsys.cli.getopt_errors import complaint
from mailsys.errors import NoSuchEntry, QueueError
from mailsys.message.qid import queue_id_ok

PROGRAM = "postcat"
# src/postcat/postcat.c usage(), seen live with Postfix 3.7.11.
USAGE = ("usage: postcat [-b (body text)] [-c config_dir] [-d (decimal record type)] "
         "[-e (envelope records)] [-h (header text)] [-q (access queue)] [-v] [file(s)...]")


def fatal(text: str) -> int:
    print(f"{PROGRAM}: fatal: {text}", file=sys.stderr)
    return 1


def main(argv: list[str], config_dir: Path, command: str = "postcat") -> int:
    try:
        # Postfix's "bc:dehoqrs:v", POSIX style (src/postcat/postcat.c).
        opts, qids = getopt.getopt(argv, "bc:dehoqrs:v")
    except getopt.GetoptError as e:
        line = complaint(e)
        if line is not None:
            print(f"{PROGRAM}: {line}", file=sys.stderr)
        return fatal(USAGE)
    for opt, value in opts:
        if opt == "-c":
            config_dir = Path(value).absolute()
        elif opt == "-s" and not (value.isascii() and value.isdigit()):
            return fatal(f"bad offset: {value}")             # postcat.c
    if not qids:
        return fatal(USAGE)
    flags = {o[1] for o, _ in opts}
    chosen = flags & set("ehb")
    sections = (Sections(envelope="e" in chosen, header="h" in chosen, body="b" in chosen)
                if chosen else Sections())
    cfg = access.config(config_dir)
    qdir = access.queue_dir(cfg)
    if not qdir.is_dir():
        return fatal(f"chdir {qdir}: No such file or directory")
    search = "q" in flags
    out = sys.stdout.buffer
    try:
        with access.open_store(qdir) as store:
            for qid in qids:
                if search and not queue_id_ok(qid):
                    out.flush()
                    return fatal(f"bad mail queue ID: {qid}")   # postcat.c
                try:
                    if store is None or not queue_id_ok(qid):
                        raise NoSuchEntry(qid)
                    env, queue = store.load(qid)
                    content = store.load_content(qid)
                except NoSuchEntry:
                    out.flush()
                    what = "queue file " if search else ""
                    return fatal(f"open {what}{qid}: No such file or directory")
                out.write(render(env, queue, content, sections))
            out.flush()
    except QueueError as e:
        return fatal(str(e))
    return 0
