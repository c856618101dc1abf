"""status_filter - the *_delivery_status_filter tables (Postfix dsn_filter(3)).

SYNOPSIS
    rewrite = StatusFilter.from_config(cfg, "local_delivery_status_filter", open_table, warn)
    result = rewrite(result)            # before it is logged and reported

DESCRIPTION
    A delivery agent may pass each recipient's status through a table:
    the key is "X.Y.Z text" (the enhanced status code and the text that
    status=... shows), the answer "X.Y.Z new text". A success may become
    another success only, a failure another failure only; a 4.x.x answer
    to a bounce defers the recipient and a 5.x.x answer to a deferral
    bounces it, as Postfix's bounce_append() and defer_append() do. Any
    other answer is refused with Postfix's warning and the status is kept:

        warning: local_delivery_status_filter: bad status code: 5.0.0 bad

    Each agent reads its own parameter, all defaulting to
    $default_delivery_status_filter (empty): local_, virtual_ and
    pipe_delivery_status_filter here.

    Compared with Postfix 3.7.11 (local, a regexp table): "2.0.0 delivered
    to mailbox" -> "2.0.0 stored in the mailbox" was logged as
    "dsn=2.0.0, status=sent (stored in the mailbox)"; '5.1.1 unknown user:
    "nosuchuser"' -> 4.3.0 was logged "dsn=4.3.0, status=deferred (no such
    user: "nosuchuser")"; 2.0.0 -> 5.0.0 gave the warning above and the
    status unchanged.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

from mailsys.frozen import frozen
from mailsys.ipc.proto.deliver import BOUNCED, DEFERRED, SENT, RecipientResult
from mailsys.message.message_actions import first_answer

__all__ = ["StatusFilter"]

# dsn_valid(): class 2, 4 or 5, then 1-3 digits twice, then the end or a space.
_DSN = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")


@frozen
class StatusFilter:
    """One agent's filter: the tables' first answer, and where warnings go."""

    title: str
    lookup: Callable[[str], str | None] | None
    warn: Callable[[str], None]

    @classmethod
    def from_config(cls, cfg, param: str, open_table: Callable[[str], object],
                    warn: Callable[[str], None]) -> StatusFilter:
        """from_config - the filter the parameter names (none when empty)."""
        return cls(param, first_answer([open_table(spec) for spec in cfg[param]]), warn)

    def __call__(self, result: RecipientResult) -> RecipientResult:
        if self.lookup is None or not _DSN.match(result.dsn):
            return result
        answer = self.lookup(f"{result.dsn} {result.reason}")
        if answer is None:
            return result
        m = _DSN.match(answer)
        success = result.dsn.startswith("2")
        if m is None or (m.group(1) == "2") != success:
            self.warn(f"{self.title}: bad status code: {answer}")
            return result
        status = SENT if success else BOUNCED if m.group(1) == "5" else DEFERRED
        return dataclasses.replace(result, status=status, dsn=m.group(0),
                                   reason=answer[m.end():].strip())
