"""qshape - queue entries by domain and age, in the table of Postfix's qshape.

SYNOPSIS
    from mailsys.admin.qshape import Shape, tally, render
    shape = Shape()                                   # 10 buckets of 5, 10, 20 ... minutes
    counts, subdomains = tally(store.scan_all(queues), now, shape, by_sender=False)
    text = render(counts, subdomains, shape)

DESCRIPTION
    Postfix's qshape (auxiliary/qshape/qshape.pl) counts, per recipient
    domain (or per sender domain with -s), the undelivered recipients of
    the queued messages by message age, in buckets that double in width:

                                     T  5 10 20 40 80 160 320 640 1280 1280+
                              TOTAL  5  0  0  1  0  0   0   0   1    0     3
                     remote.example  4  0  0  1  0  0   0   0   1    0     2

    Column T is the row's total; the bucket headed N holds ages below N
    minutes (and at least the previous heading), the last one everything
    older. Each column is as wide as its widest cell (heading or TOTAL
    count) plus one space, and at least 3; the domain column takes what is
    left of the terminal width (80), at least 18, with the domain right
    aligned and cut at the left behind a "+" when too long. Rows are
    sorted by total, largest first (TOTAL leads), then by shorter name
    (then by name, so the order is stable; Perl's hash order is not).
    Addresses are lowercased; the null sender counts as MAILER-DAEMON.

    With -p every parent domain of a domain (not the top-level one) also
    gets a row, named with a leading dot, shown only when it has at least
    min_subdomains distinct subdomains. -l makes buckets linear.

    Pure: envelopes in, text out.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING

from mailsys.frozen import frozen
from mailsys.message.envelope import Envelope

if TYPE_CHECKING:      # importing mailsys.queue would load lmdb
    from mailsys.queue.schema import Queue

TOTAL = "TOTAL"
NULL_SENDER = "MAILER-DAEMON"
MIN_DOMAIN_WIDTH = 18


@frozen
class Shape:
    buckets: int = 10          # -b
    tick: int = 5              # -t, minutes
    linear: bool = False       # -l
    width: int = 80            # -w
    parents: bool = False      # -p
    min_subdomains: int = 5    # -m


def bucket(age: float, shape: Shape) -> int:
    """The bucket (1 .. shape.buckets) for a message age in seconds."""
    m = age / (60 * shape.tick)
    if m < 1:
        return 1
    b = int(m + 1) if shape.linear else 2 + int(math.log(m) / math.log(2))
    return min(b, shape.buckets)


def domain_of(address: str) -> str:
    """The domain qshape files an address under (qshape.pl's rewriting)."""
    a = address.lower()
    if a == "":
        return NULL_SENDER
    a = re.sub(r".*@", "", a, count=1, flags=re.S)
    a = a.replace("..", ".")
    m = re.fullmatch(r"\.?(.+?)\.?", a, flags=re.S)
    return m.group(1) if m else a


def tally(entries: Iterable[tuple[Envelope, Queue]], now: float, shape: Shape,
          by_sender: bool = False) -> tuple[dict[str, list[int]], dict[str, int]]:
    """Per-domain counts (index 0 = total, 1.. = buckets) and, for -p, the
    number of subdomains of each parent domain."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0] * (shape.buckets + 1))
    subdomains: dict[str, int] = defaultdict(int)
    for env, _ in entries:
        b = bucket(now - env.arrival_time, shape)
        addresses = ([env.sender] if by_sender
                     else [r.address for r in env.recipients if not r.final])
        for address in addresses:
            counts[TOTAL][0] += 1
            counts[TOTAL][b] += 1
            name = domain_of(address)
            new = False
            while True:
                row = counts[name]
                old = row[0] > 0
                row[0] += 1
                row[b] += 1
                if new:
                    subdomains[name] += 1
                new = not old
                if not shape.parents:
                    break
                parent = re.sub(r"^(?:\.)?[^.]+\.(.*\.)", r".\1", name, count=1)
                if parent == name:
                    break
                name = parent
    return dict(counts), dict(subdomains)


def headings(shape: Shape) -> list[str]:
    out = ["T"]
    t = 0
    for i in range(1, shape.buckets + 1):
        if i < shape.buckets:
            t += t if (t and not shape.linear) else shape.tick
            out.append(str(t))
        else:
            out.append(f"{t}+")
    return out


def render(counts: dict[str, list[int]], subdomains: dict[str, int], shape: Shape) -> str:
    total = counts.get(TOTAL, [0] * (shape.buckets + 1))
    heads = headings(shape)
    widths = []
    for head, n in zip(heads, total):
        w = max(len(str(n)), len(head))
        widths.append(w + 1 if w > 2 else 3)
    dw = max(shape.width - sum(widths), MIN_DOMAIN_WIDTH)

    def row(name: str, cells: list) -> str:
        if len(name) > dw:
            name = (".+" + name[len(name) - dw + 2:] if name.startswith(".")
                    else "+" + name[len(name) - dw + 1:])
        return name.rjust(dw) + "".join(str(c).rjust(w) for c, w in zip(cells, widths)) + "\n"

    lines = [row("", heads), row(TOTAL, total)]
    for name in sorted((d for d in counts if d != TOTAL),
                       key=lambda d: (-counts[d][0], len(d), d)):
        if name.startswith(".") and subdomains.get(name, 0) < shape.min_subdomains:
            continue
        lines.append(row(name, counts[name]))
    return "".join(lines)
