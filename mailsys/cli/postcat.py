"""postcat - show queue entries in Postfix's postcat layout.

SYNOPSIS
    mailsys postcat [-bdehoqv] [-s offset] -q queue_id ...

DESCRIPTION
    Prints each named queue entry, looked up in every queue, with the
    sections chosen by -e (envelope), -h (header) and -b (body), all three
    when none is given (mailsys.admin.postcat has the layout). As in
    Postfix, the "*** ... ***" section lines come only with -e: -h and -b
    print the bare header and body text. Postfix's
    postcat without -q reads queue files by path; mailsys has no queue
    files, so the names are always queue IDs and -q may be left out.
    -d, -o, -r, -s and -v (record types, offsets, file order, start offset,
    verbose) concern the file format and are accepted and ignored.

    An ID that is in no queue stops the program with Postfix's message:
    "postcat: fatal: open queue file QID: No such file or directory",
    exit status 1.
"""

from __future__ import annotations

import getopt
import sys
from pathlib import Path

from mailsys.admin import access
from mailsys.admin.postcat import Sections, render
from mailsys.errors import NoSuchEntry, QueueError

PROGRAM = "postcat"
USAGE = "usage: postcat [-bdehnoqv] [-c config_dir] [-s offset] [files...]"


def fatal(text: str) -> int:
    print(f"{PROGRAM}: fatal: {text}", file=sys.stderr)
    return 1


def main(argv: list[str], config_dir: Path, command: str = "postcat") -> int:
    try:
        opts, qids = getopt.gnu_getopt(argv, "bdehnoqrs:v")
    except getopt.GetoptError:
        return fatal(USAGE)
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
    out = sys.stdout.buffer
    try:
        with access.open_store(qdir) as store:
            for qid in qids:
                try:
                    if store is None:
                        raise NoSuchEntry(qid)
                    env, queue = store.load(qid)
                    content = store.load_content(qid)
                except NoSuchEntry:
                    out.flush()
                    return fatal(f"open queue file {qid}: No such file or directory")
                out.write(render(env, queue, content, sections))
            out.flush()
    except QueueError as e:
        return fatal(str(e))
    return 0
