"""delivery_status_filter - rewrite a recipient's final status (Postfix dsn_filter(3)).

SYNOPSIS
    dsf = DeliveryStatusFilter.from_config(cfg, "smtp_delivery_status_filter", opener)
    result = dsf.apply(result, warn)          # a RecipientResult, maybe replaced

DESCRIPTION
    The *_delivery_status_filter parameters (default_delivery_status_filter
    and the per-agent ones, smtp_, lmtp_, local_, pipe_, virtual_) name
    tables that may replace the enhanced status code and the text of each
    recipient's final result. The tables are asked, in order, with one
    line, ``X.Y.Z text`` (``4.1.1 host mx[192.0.2.1] said: ...``); the
    first result wins and must have the same shape. A success (2.X.X)
    may only become another success and a failure (4.X.X, 5.X.X) only
    another failure, where 4 and 5 may change places: the recipient is
    then deferred or bounced as the new code says. A result that breaks
    the rule is ignored with Postfix's warning

        <parameter>: bad status code: <result>

    Only the status line changes (the log's dsn= and status=, the notice's
    Status and text): Remote-MTA and Diagnostic-Code stay the server's.

    Pure: the tables come in opened (mailsys.config.tables).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mailsys.config.tables import Table
from mailsys.ipc.proto.deliver import BOUNCED, DEFERRED, RecipientResult

__all__ = ["DeliveryStatusFilter"]

# dsn_valid(3): class 2, 4 or 5, subject and detail of 1 to 3 digits.
_STATUS_RE = re.compile(r"\s*([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)\s*")


@dataclass(frozen=True, slots=True)
class DeliveryStatusFilter:
    """The tables of one *_delivery_status_filter parameter."""

    title: str                       # the parameter's name, for warnings
    tables: tuple[Table, ...]

    @classmethod
    def from_config(cls, cfg, name: str, opener: Callable[[str], Table], title: str = ""
                    ) -> DeliveryStatusFilter | None:
        """The filter the parameter ``name`` names (title: the name its
        warnings give, when cfg reads it under another); None when it names
        no table."""
        specs = tuple(cfg[name])
        return cls(title or name, tuple(opener(spec) for spec in specs)) if specs else None

    def lookup(self, dsn: str, text: str, warn: Callable[[str], None]
               ) -> tuple[str, str] | None:
        """The (status, text) that replace these, or None (no match, or a bad result)."""
        query = f"{dsn} {text}"
        result = _first(self.tables, query)
        if result is None:
            return None
        m = _STATUS_RE.match(result)
        if m is None or (m.group(1) == "2") != dsn.startswith("2"):
            warn(f"{self.title}: bad status code: {result}")
            return None
        return ".".join(m.groups()), result[m.end():]

    def apply(self, result: RecipientResult, warn: Callable[[str], None]) -> RecipientResult:
        """result with its status code and text replaced when a table says so."""
        found = self.lookup(result.dsn, result.reason, warn)
        if found is None:
            return result
        dsn, reason = found
        status = {"4": DEFERRED, "5": BOUNCED}.get(dsn[0], result.status)
        return dataclasses.replace(result, status=status, dsn=dsn, reason=reason)


def _first(tables: Sequence[Table], key: str) -> str | None:
    for table in tables:
        value = table.lookup(key)
        if value is not None:
            return value
    return None
