"""backoff - when a deferred entry is tried again, and when it expires.

Postfix's rules (src/qmgr/qmgr_active.c, postfix-compat.md 2.3):

  * After a deferral the next attempt is now + the message's age, clamped
    to [minimal_backoff_time, maximal_backoff_time]. Because the age grows
    with every wait, the waits roughly double until they reach the maximum.
  * A recipient still undelivered once the message is maximal_queue_lifetime
    old (bounce_queue_lifetime for mail from the null sender, i.e. bounces)
    is returned to the sender: ``status=expired, returned to sender``. A
    lifetime of 0 means "try once".
  * delay_warning_time (0 = off) is the age after which the sender gets one
    "Delayed Mail" notice.

Pure: times are float seconds since the epoch.
"""

from __future__ import annotations

from mailsys.message.envelope import Envelope
from mailsys.qmgr.settings import QmgrSettings

__all__ = ["retry_delay", "next_attempt", "lifetime", "expired", "delay_warning_due"]


def retry_delay(age: float, minimal: float, maximal: float) -> float:
    """retry_delay - the wait before the next attempt of a message this old."""
    return min(max(age, minimal), max(minimal, maximal))


def next_attempt(env: Envelope, now: float, s: QmgrSettings) -> float:
    """next_attempt - when a message deferred at now is due again."""
    age = max(0.0, now - env.arrival_time)
    return now + retry_delay(age, s.minimal_backoff_time, s.maximal_backoff_time)


def lifetime(sender: str, s: QmgrSettings) -> float:
    """lifetime - how long mail from sender may stay in the queue."""
    return s.maximal_queue_lifetime if sender else s.bounce_queue_lifetime


def expired(env: Envelope, now: float, s: QmgrSettings) -> bool:
    """expired - whether the message's deferred recipients are to be returned."""
    return now - env.arrival_time >= lifetime(env.sender, s)


def delay_warning_due(env: Envelope, now: float, s: QmgrSettings) -> bool:
    """delay_warning_due - whether the sender is owed a delay notice now."""
    return (s.delay_warning_time > 0 and not env.delay_warned and bool(env.sender)
            and now - env.arrival_time >= s.delay_warning_time)
