"""counters - the running counters of smtp-source -c and smtp-sink -c.

DESCRIPTION
    smtp-source -c prints the number of completed DATA commands, each
    followed by a carriage return ("1\\r2\\r...500\\r\\n"). smtp-sink -c
    prints "sess=N quit=N mesg=N" followed by a carriage return whenever a
    session ends, QUIT is received or "." is received; mesg counts
    mail transactions (one per message however many recipients it has).
    Both parsers take whatever text has been read so far and return the
    last complete figure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SINK_RE = re.compile(r"sess=(\d+) quit=(\d+) mesg=(\d+)")


@dataclass(frozen=True, slots=True)
class SinkCount:
    sessions: int = 0
    quits: int = 0
    messages: int = 0


def source_count(text: str) -> int:
    """source_count - the last DATA count smtp-source -c printed (0 if none)."""
    last = 0
    for field in re.split(r"[\r\n]", text):
        if field.strip().isdigit():
            last = int(field)
    return last


def sink_count(text: str) -> SinkCount:
    """sink_count - the last complete counter line of smtp-sink -c."""
    # a counter still being written at the end of the text is not complete yet
    end = max(text.rfind("\r"), text.rfind("\n"))
    matches = SINK_RE.findall(text[:end + 1]) if end >= 0 else []
    if not matches:
        return SinkCount()
    return SinkCount(*(int(x) for x in matches[-1]))
