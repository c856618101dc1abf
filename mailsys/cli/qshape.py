"""qshape - print the queue's domain and age distribution.

SYNOPSIS
    mailsys qshape [-s] [-p] [-m min_subdomains] [-b bucket_count]
                   [-t bucket_time] [-l] [-w terminal_width] [queue_name ...]

DESCRIPTION
    Postfix's qshape over the LMDB queue store (mailsys.admin.qshape has
    the table). The queues default to incoming and active, as in Postfix;
    name others (deferred, hold) to see them. -s counts sender domains
    instead of recipient domains, -p adds parent domains. -N and -n
    (interim results on a terminal) are accepted and ignored: the store is
    read in one pass. Ages are counted from each message's arrival time.

    A queue name that is no mailsys queue is an error: "qshape: fatal:
    invalid queue name: NAME", exit 1; so are more than 64 buckets or a
    width over 10000.
"""

from __future__ import annotations

import getopt
import sys
import time
from pathlib import Path

from mailsys.admin import access
from mailsys.admin.qshape import Shape, render, tally
from mailsys.errors import QueueError
from mailsys.queue import Queue

PROGRAM = "qshape"
USAGE = ("usage: qshape [ -s ] [ -p ] [ -m <min_subdomains> ] [ -l ] "
         "[ -b <bucket_count> ] [ -t <bucket_time> ] [ -w <terminal_width> ] "
         "[ -N <batch_msg_count> ] [ -n <batch_top_domains> ] [ <queue_name> ... ]")
DEFAULT_QUEUES = (Queue.INCOMING, Queue.ACTIVE)
MIN_WIDTH = 80
# qshape.pl has no upper bounds; these keep a typo from building a table
# the size of memory. 64 doubling buckets outlast any queue lifetime.
MAX_BUCKETS = 64
MAX_WIDTH = 10000


def fatal(text: str) -> int:
    print(f"{PROGRAM}: fatal: {text}", file=sys.stderr)
    return 1


def main(argv: list[str], config_dir: Path, command: str = "qshape") -> int:
    try:
        opts, names = getopt.gnu_getopt(argv, "hlpsw:b:t:m:n:N:")
        given = {o[1]: a for o, a in opts}
        if "h" in given:
            raise getopt.GetoptError("help")
        numbers = {k: int(v) for k, v in given.items() if k in "wbtmnN"}
    except (getopt.GetoptError, ValueError):
        return fatal(USAGE)
    if numbers.get("b", 0) > MAX_BUCKETS or numbers.get("w", 0) > MAX_WIDTH:
        return fatal(f"bucket count at most {MAX_BUCKETS}, terminal width at most {MAX_WIDTH}")
    # qshape.pl takes only values that make sense and keeps its defaults otherwise.
    base = Shape()
    shape = Shape(
        buckets=numbers["b"] if numbers.get("b", 0) > 0 else base.buckets,
        tick=numbers["t"] if numbers.get("t", 0) > 0 else base.tick,
        linear="l" in given,
        width=numbers["w"] if numbers.get("w", 0) > MIN_WIDTH else base.width,
        parents="p" in given,
        min_subdomains=numbers["m"] if numbers.get("m", 0) > 0 else base.min_subdomains)
    try:
        queues = tuple(dict.fromkeys(Queue(n) for n in names)) or DEFAULT_QUEUES
    except ValueError:
        bad = next(n for n in names if n not in {q.value for q in Queue})
        return fatal(f"invalid queue name: {bad}")
    cfg = access.config(config_dir)
    qdir = access.queue_dir(cfg)
    if not qdir.is_dir():
        return fatal(f"chdir {qdir}: No such file or directory")
    try:
        with access.open_store(qdir) as store:
            entries = store.scan_all(queues, on_corrupt=lambda *_: None) if store else ()
            counts, subdomains = tally(entries, time.time(), shape, by_sender="s" in given)
    except QueueError as e:
        return fatal(str(e))
    sys.stdout.write(render(counts, subdomains, shape))
    return 0
