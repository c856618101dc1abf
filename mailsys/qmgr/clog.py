"""clog - the warning that one destination fills the active queue.

SYNOPSIS
    for line in clog.warnings(seen, messages=len(active), active_limit=20000):
        log.warning(line)

DESCRIPTION
    Postfix's qmgr_entry_create() warns, at most once per
    qmgr_clog_warn_time for a destination, when a new job finds the
    destination holding more than a fifth of qmgr_message_active_limit
    (jobs waiting and in flight), and guesses why. The Scheduler notes
    such a destination (Clogged), unless helpful_warnings = no or
    qmgr_clog_warn_time = 0; warnings() words it as Postfix 3.7 does:

        warning: mail for [127.0.0.1]:3103 is using up 3 of 3 active queue entries
        warning: you may need to increase the main.cf smtp_destination_concurrency_limit from 1
        warning: please avoid flushing the whole queue when you have
        warning: lots of deferred mail, that is bad for performance
        warning: to turn off these warnings specify: qmgr_clog_warn_time = 0

    Pure.
"""

from __future__ import annotations


from mailsys.frozen import frozen

__all__ = ["Clogged", "warnings"]


@frozen
class Clogged:
    """A destination as it was when it took up too much of the active queue."""

    transport: str
    nexthop: str
    length: int          # its jobs waiting and in flight
    busy: int            # in flight, before the new job
    window: int
    limit: int           # <transport>_destination_concurrency_limit
    shared: bool         # the transport has other destinations


def warnings(seen: Clogged, *, messages: int, active_limit: int) -> list[str]:
    """warnings - the lines Postfix logs for a clogged destination; messages:
    the entries in the active queue."""
    share = seen.length / max(1, messages)
    out = [f"mail for {seen.nexthop} is using up {seen.length} of {messages} "
           "active queue entries"]
    if share < 0.9:
        out.append("this may slow down other mail deliveries")
    if 0 < seen.limit <= seen.busy + 1:
        out.append(f"you may need to increase the main.cf "
                   f"{seen.transport}_destination_concurrency_limit from {seen.limit}")
    elif seen.window > active_limit * share:
        out.append(f"you may need to increase the main.cf qmgr_message_active_limit "
                   f"from {active_limit}")
    elif seen.shared:
        out.append(f"you may need a separate master.cf transport for {seen.nexthop}")
    else:
        out += [f"you may need to reduce {seen.transport} connect and helo timeouts",
                "so that Postfix quickly skips unavailable hosts",
                "you may need to increase the main.cf minimal_backoff_time and "
                "maximal_backoff_time",
                "so that Postfix wastes less time on undeliverable mail",
                f"you may need to increase the master.cf {seen.transport} process limit"]
    out += ["please avoid flushing the whole queue when you have",
            "lots of deferred mail, that is bad for performance",
            "to turn off these warnings specify: qmgr_clog_warn_time = 0"]
    return out
