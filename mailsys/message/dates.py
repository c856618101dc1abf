"""dates - the date and time texts Postfix puts in headers and log lines.

``mail_date(t)`` is Postfix's mail_date(3): the RFC 5322 date used in
``Received:``, an added ``Date:``, DSN ``Arrival-Date:`` and friends, written
as Postfix 3.7 writes it::

    Fri, 27 Nov 2026 00:22:14 +0000 (UTC)
    Wed,  2 Dec 2026 00:23:06 +0000 (UTC)

The day of the month is space-padded (strftime ``%e``), as in 3.7; 3.9 and
later zero-pad it. The zone comment is the zone's abbreviation.

``short_time(t)`` is ``ctime() + 4`` cut to 15 characters, the form anvil and
scache use in ``statistics:`` lines: ``Nov 27 00:21:40`` (``Nov  7 ...`` for a
single-digit day, as ctime pads with a space).

Names of days and months are always English: Postfix runs in the C locale,
and so must these texts whatever the process locale is. Both functions take
``tz``: ``None`` means the local zone of the process (as Postfix uses
localtime()), a ``tzinfo`` pins it (tests use ``timezone.utc``).
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone, tzinfo

__all__ = ["mail_date", "short_time", "utc_stamp"]

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _local(t: float, tz: tzinfo | None) -> datetime:
    if tz is None:
        return datetime.fromtimestamp(t).astimezone()
    return datetime.fromtimestamp(t, tz)


# (epoch second, tz, time.tzname, text) of the last mail_date(): cleanup
# dates every message it queues, and a busy second dates hundreds.
# time.tzset() makes a new time.tzname, so a changed local zone is noticed.
_last_date: tuple[int, tzinfo | None, object, str] = (-1, None, None, "")


def mail_date(t: float, tz: tzinfo | None = None) -> str:
    """mail_date - ``Fri, 27 Nov 2026 00:22:14 +0000 (UTC)`` for epoch seconds ``t``."""
    global _last_date
    second = math.floor(t)
    # Within a microsecond of the next second, datetime's rounding may
    # carry into it: no shortcut there.
    if t - second >= 0.999999:
        return _mail_date(t, tz)
    last_second, last_tz, last_zone, text = _last_date
    zone = time.tzname
    if last_second == second and last_tz is tz and last_zone is zone:
        return text
    text = _mail_date(t, tz)
    _last_date = (second, tz, zone, text)
    return text


def _mail_date(t: float, tz: tzinfo | None) -> str:
    d = _local(t, tz)
    off = d.utcoffset()
    minutes = int(off.total_seconds() // 60) if off is not None else 0
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    zone = d.tzname() or "GMT"
    return (f"{_DAYS[d.weekday()]}, {d.day:2d} {_MONTHS[d.month - 1]} {d.year:04d} "
            f"{d.hour:02d}:{d.minute:02d}:{d.second:02d} "
            f"{sign}{minutes // 60:02d}{minutes % 60:02d} ({zone})")


def short_time(t: float, tz: tzinfo | None = None) -> str:
    """short_time - ``Nov 27 00:21:40``: ``ctime(&t) + 4``, 15 characters."""
    d = _local(t, tz)
    return (f"{_MONTHS[d.month - 1]} {d.day:2d} "
            f"{d.hour:02d}:{d.minute:02d}:{d.second:02d}")


def utc_stamp(t: float) -> str:
    """utc_stamp - ``20261127002214``: UTC ``%Y%m%d%H%M%S``, as in generated Message-Ids."""
    d = datetime.fromtimestamp(t, timezone.utc)
    return (f"{d.year:04d}{d.month:02d}{d.day:02d}"
            f"{d.hour:02d}{d.minute:02d}{d.second:02d}")
