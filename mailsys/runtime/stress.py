"""stress - when a service runs out of processes: stress mode and the warning.

SYNOPSIS
    from mailsys.runtime.stress import Stress, local_only
    stress = Stress.for_service(maxproc, local_only(spec.type, hosts))
    if stress.restart_before_last(now, running, maxproc): retire them all
    overrides = stress.overrides(now)          # (("stress", "yes"),) or ()
    for line in stress.warning(now, name, endpoint, maxproc): log.warning(line)

DESCRIPTION
    Postfix's master (master_ent.c, master_avail.c, master_spawn.c) treats
    a service that may see remote clients differently from one that only
    local processes use. A service is local-only when it is a unix or fifo
    socket (here also unix-dgram), or an inet service whose every listening
    address is a loopback address; a pass service (postscreen's hand-off)
    is not, since its clients are remote.

    Stress mode: a service that is not local-only and has a process limit
    above 1 is eligible. When the master is about to start the process
    that reaches the limit, the service enters stress mode for STRESS_TIME
    seconds (renewed each time that happens again); on entering it, the
    processes already running are restarted (they finish the clients in
    hand and exit), and every process started while the mode lasts gets
    "-o stress=yes", so that main.cf's ${stress?{...}:{...}} defaults
    (smtpd_timeout 10s, smtpd_hard_error_limit 1, ...) take their
    overload values (STRESS_README). A process keeps the setting it was
    started with.

    The warning: when every process of a service that is not local-only
    and whose limit is not 1 (postscreen's) is busy and the limit is
    reached, the master says so, at most once per WARN_INTERVAL seconds,
    in Postfix's three lines (the third only for a service eligible for
    stress mode). A limit of 0 (no limit) is never reached.

    Pure: no trio, no I/O; the supervisor calls it with its clock.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Stress", "local_only", "STRESS_TIME", "WARN_INTERVAL"]

STRESS_TIME = 1000.0        # master_avail.c: "below the limit for at least 1000 seconds"
WARN_INTERVAL = 1000.0      # master_avail.c: busy_warn_time


def local_only(kind: str, hosts: Iterable[str]) -> bool:
    """Whether only local clients reach a service of this type listening on hosts."""
    if kind == "pass":
        return False
    if kind != "inet":
        return True
    hosts = list(hosts)
    return bool(hosts) and all(ipaddress.ip_address(h.split("%")[0]).is_loopback for h in hosts)


@dataclass(slots=True)
class Stress:
    """One service's stress state (mutable: the supervisor drives it)."""

    eligible: bool            # not local-only, limit > 1
    warns: bool               # not local-only, limit != 1
    expires: float = -math.inf
    warned: float = -math.inf

    @classmethod
    def for_service(cls, maxproc: int, local: bool) -> Stress:
        return cls(eligible=not local and maxproc > 1, warns=not local and maxproc != 1)

    def restart_before_last(self, now: float, running: int, maxproc: int) -> bool:
        """Called before a process is started: whether the running ones
        must be restarted because the service now enters stress mode."""
        if not self.eligible or running + 1 < maxproc:
            return False
        entering = self.expires < now
        self.expires = now + STRESS_TIME
        return entering

    def overrides(self, now: float) -> tuple[tuple[str, str], ...]:
        """What a process started now gets on its command line."""
        return (("stress", "yes"),) if self.eligible and self.expires > now else ()

    def warning(self, now: float, service: str, endpoint: str, maxproc: int) -> list[str]:
        """The lines to log now that every process is busy at the limit."""
        if not self.warns or maxproc == 0 or now - self.warned <= WARN_INTERVAL:
            return []
        self.warned = now
        lines = [f'service "{service}" ({endpoint}) has reached its process limit "{maxproc}":'
                 ' new clients may experience noticeable delays',
                 "to avoid this condition, increase the process count in master.cf"
                 " or reduce the service time per client"]
        if self.eligible:
            lines.append("see http://www.postfix.org/STRESS_README.html for examples"
                         " of stress-adapting configuration settings")
        return lines
