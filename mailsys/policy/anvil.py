"""anvil - per-client connection and rate counters, and the limits smtpd enforces with them.

SYNOPSIS
    counters = Anvil(time_unit=cfg.anvil_rate_time_unit)          # in the anvil service
    counts = counters.connect("smtp", "192.0.2.10")               # ConnectCounts(count, rate)
    counters.message("smtp", "192.0.2.10") -> rate
    counters.disconnect("smtp", "192.0.2.10")
    for line in counters.statistics(): log.info(line)             # every anvil_status_update_time

    limits = ClientLimits.from_config(cfg)                        # in smtpd
    hit = check_connect(counts, limits, service="smtp", namaddr="c.example[192.0.2.10]",
                        addr="192.0.2.10", myhostname=cfg.myhostname)
    if hit: log.warning(hit.warning); reply hit.reply and hang up

DESCRIPTION
    The counting core of Postfix's anvil(8), without I/O: the anvil service
    wraps one ``Anvil`` and answers smtpd's queries over IPC. Counters are
    kept per (master.cf service name, client address); the ident
    ``service:addr`` is what the statistics lines show.

    Per client it counts: concurrent connections (up on connect, down on
    disconnect), and over a window of ``anvil_rate_time_unit`` seconds the
    connection rate, message rate (MAIL commands), recipient rate (RCPT
    commands), new (not resumed) TLS session rate and AUTH command rate.

    FIXED WINDOW, as Postfix does it: a client's window starts at its first
    event; when an event finds ``start + time_unit < now`` all five rates are
    reset to zero and the window restarts at now. The clock is read in whole
    seconds (Postfix's event_time()). A limit trips when a count is
    **greater** than the limit, so a count equal to the limit still passes.
    Time comes from an injectable ``clock`` so tests are deterministic.

    Which events smtpd reports is its business and follows Postfix: connect
    and disconnect whenever the connection count or rate limit is on (the
    count limit, 50, is on by default), message/recipient/newtls/auth only
    when that rate limit is non-zero. Clients matching
    smtpd_client_event_limit_exceptions (default $mynetworks) are not
    reported at all; that matching is the caller's, so anvil stays
    independent of the restriction code.

MEMORY
    A client with no open connection is dropped one time unit after it went
    idle, as Postfix's anvil does with its expiry timer, provided its window
    has run out by then (a rate event while idle keeps it until its window
    ends). The table therefore holds the clients connected now plus those
    seen within about the last time unit. Expiry is checked on every event,
    oldest idle client first, and costs O(1) when nothing has expired.

    Under abuse from many addresses (IPv6 spraying) that can still be large,
    so the table is capped at ``max_clients`` entries (default 100000, about
    20 MB). When a new client arrives at the cap, the client that has been
    idle (no connection) the longest is forgotten first, whatever its rates:
    the worst this does is let a quiet client's rate restart from zero. A
    client with an open connection is never forgotten; their number is
    bounded by the smtpd processes' own connection limits, so the table may
    exceed the cap only by clients that are connected right now. ``evicted``
    counts the forgotten clients.

STATISTICS
    ``statistics()`` returns the lines Postfix's anvil logs every
    anvil_status_update_time and on exit, and resets the maxima
    (postfix-compat.md 4.5)::

        statistics: max connection rate 2/60s for (smtp:192.0.2.10) at Nov 27 00:21:49
        statistics: max connection count 1 for (smtp:192.0.2.10) at Nov 27 00:21:40
        statistics: max message rate 1/60s for (smtp:198.51.100.7) at Nov 27 00:23:21
        statistics: max recipient rate 2/60s for (smtp:198.51.100.7) at Nov 27 00:23:21
        statistics: max newtls rate 1/60s for (smtp:192.0.2.10) at Nov 27 00:25:13
        statistics: max auth rate 3/60s for (submission:192.0.2.10) at Nov 27 00:25:13
        statistics: max cache size 1 at Nov 27 00:21:40

    each only when its maximum is above zero, times as ``ctime() + 4``.

LIMIT CHECKS
    ``check_*`` turn a count into smtpd's verdict: the warning text (logged
    after ``warning: ``) and the reply, word for word as Postfix 3.7 smtpd.c
    writes them, or None when the client is within its limits.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import tzinfo
from typing import Any

from mailsys.frozen import frozen
from mailsys.message.dates import short_time
from mailsys.message.reply import StatusReply

__all__ = [
    "Anvil", "ConnectCounts", "ClientCounts", "ClientLimits", "LimitExceeded",
    "check_connect", "check_message", "check_recipient", "check_auth",
    "check_starttls", "check_new_tls", "DEFAULT_MAX_CLIENTS",
]

# About 200 bytes per tracked client: 100000 clients is some 20 MB, far more
# distinct clients than one host sees in a minute outside an attack.
DEFAULT_MAX_CLIENTS = 100_000


@frozen
class ConnectCounts:
    """anvil's answer to a connect: concurrent connections and connection rate, this one included."""

    count: int
    rate: int


@frozen
class ClientCounts:
    """Everything anvil knows about one client (Postfix's "lookup" request)."""

    count: int
    rate: int
    mail: int
    rcpt: int
    ntls: int
    auth: int


class _Client:
    """One (service, address) entry: Postfix's ANVIL_REMOTE."""

    __slots__ = ("ident", "count", "start", "rate", "mail", "rcpt", "ntls", "auth")

    def __init__(self, ident: str, now: int) -> None:
        self.ident = ident
        self.count = 0
        self.start = now
        self.rate = self.mail = self.rcpt = self.ntls = self.auth = 0

    def roll(self, now: int, unit: int) -> None:
        """Restart the window when it has run out (ANVIL_REMOTE_INCR_RATE)."""
        if self.start + unit < now:
            self.start = now
            self.rate = self.mail = self.rcpt = self.ntls = self.auth = 0


class _Peak:
    """The largest value seen since the last statistics dump, who and when."""

    __slots__ = ("value", "ident", "when")

    def __init__(self) -> None:
        self.value = 0
        self.ident = ""
        self.when = 0

    def update(self, value: int, ident: str, now: int) -> None:
        if value > self.value:
            self.value, self.ident, self.when = value, ident, now


class Anvil:
    """The per-client counters of one anvil process. Not thread-safe; one owner."""

    def __init__(self, time_unit: int = 60, *, clock: Callable[[], float] = time.time,
                 max_clients: int = DEFAULT_MAX_CLIENTS, tz: tzinfo | None = None) -> None:
        if time_unit < 1:
            raise ValueError("anvil time unit must be at least 1 second")
        if max_clients < 1:
            raise ValueError("max_clients must be at least 1")
        self.time_unit = int(time_unit)
        self.max_clients = max_clients
        self.evicted = 0
        self._clock = clock
        self._tz = tz
        self._clients: dict[str, _Client] = {}
        # Clients with no connection, oldest first, with the time they went
        # idle: the candidates for expiry and for eviction at the cap.
        self._idle: OrderedDict[str, int] = OrderedDict()
        self._conn_rate = _Peak()
        self._conn_count = _Peak()
        self._mail_rate = _Peak()
        self._rcpt_rate = _Peak()
        self._ntls_rate = _Peak()
        self._auth_rate = _Peak()
        self._cache_size = 0
        self._cache_when = 0

    def __len__(self) -> int:
        return len(self._clients)

    def _now(self) -> int:
        return int(self._clock())

    def _get(self, service: str, addr: str, now: int) -> _Client:
        """The client's entry, created idle when new (dropping expired ones first)."""
        self._sweep(now)
        ident = f"{service}:{addr}"
        client = self._clients.get(ident)
        if client is not None:
            client.roll(now, self.time_unit)
            return client
        if len(self._clients) >= self.max_clients and self._idle:
            victim, _ = self._idle.popitem(last=False)
            del self._clients[victim]
            self.evicted += 1
        client = self._clients[ident] = _Client(ident, now)
        self._idle[ident] = now
        if len(self._clients) > self._cache_size:
            self._cache_size = len(self._clients)
            self._cache_when = now
        return client

    def _sweep(self, now: int) -> None:
        """Drop idle clients whose window has run out; O(1) when there is nothing to drop."""
        unit = self.time_unit
        idle = self._idle
        while idle:
            ident, since = next(iter(idle.items()))
            if since + unit >= now:
                return
            del idle[ident]
            client = self._clients[ident]
            if client.start + unit < now:
                del self._clients[ident]
            else:
                # A rate event while idle restarted its window: look again later.
                idle[ident] = client.start

    def expire(self) -> int:
        """expire - drop every idle client whose window has run out now; returns how many are left."""
        self._sweep(self._now())
        return len(self._clients)

    # Events, each as Postfix's anvil protocol names them.

    def connect(self, service: str, addr: str) -> ConnectCounts:
        """connect - a client connected: count it and its connection rate."""
        now = self._now()
        client = self._get(service, addr, now)
        if client.count == 0:
            self._idle.pop(client.ident, None)
        client.count += 1
        client.rate += 1
        self._conn_rate.update(client.rate, client.ident, now)
        self._conn_count.update(client.count, client.ident, now)
        return ConnectCounts(client.count, client.rate)

    def disconnect(self, service: str, addr: str) -> None:
        """disconnect - a client's connection ended (an unknown client is ignored, as Postfix does)."""
        now = self._now()
        self._sweep(now)
        client = self._clients.get(f"{service}:{addr}")
        if client is None or client.count == 0:
            return
        client.count -= 1
        if client.count == 0:
            self._idle[client.ident] = now

    def message(self, service: str, addr: str) -> int:
        """message - a MAIL command; returns the message rate including this one."""
        now = self._now()
        client = self._get(service, addr, now)
        client.mail += 1
        self._mail_rate.update(client.mail, client.ident, now)
        return client.mail

    def recipient(self, service: str, addr: str) -> int:
        """recipient - a RCPT command; returns the recipient rate including this one."""
        now = self._now()
        client = self._get(service, addr, now)
        client.rcpt += 1
        self._rcpt_rate.update(client.rcpt, client.ident, now)
        return client.rcpt

    def newtls(self, service: str, addr: str) -> int:
        """newtls - a new (not resumed) TLS session; returns the rate including this one."""
        now = self._now()
        client = self._get(service, addr, now)
        client.ntls += 1
        self._ntls_rate.update(client.ntls, client.ident, now)
        return client.ntls

    def newtls_status(self, service: str, addr: str) -> int:
        """newtls_status - the new-TLS-session rate so far, counting nothing (asked before STARTTLS)."""
        now = self._now()
        self._sweep(now)
        client = self._clients.get(f"{service}:{addr}")
        if client is None:
            return 0
        client.roll(now, self.time_unit)
        return client.ntls

    def auth(self, service: str, addr: str) -> int:
        """auth - an AUTH command; returns the AUTH rate including this one."""
        now = self._now()
        client = self._get(service, addr, now)
        client.auth += 1
        self._auth_rate.update(client.auth, client.ident, now)
        return client.auth

    def lookup(self, service: str, addr: str) -> ClientCounts | None:
        """lookup - the client's counters as they stand now, or None for an unknown client."""
        now = self._now()
        self._sweep(now)
        client = self._clients.get(f"{service}:{addr}")
        if client is None:
            return None
        client.roll(now, self.time_unit)
        return ClientCounts(client.count, client.rate, client.mail, client.rcpt,
                            client.ntls, client.auth)

    def statistics(self) -> list[str]:
        """statistics - the ``statistics:`` lines for the maxima since the last call, then reset them."""
        unit = self.time_unit
        lines: list[str] = []

        def rate(peak: _Peak, name: str) -> None:
            if peak.value > 0:
                lines.append(f"statistics: max {name} rate {peak.value}/{unit}s for "
                             f"({peak.ident}) at {short_time(peak.when, self._tz)}")
                peak.value = 0

        rate(self._conn_rate, "connection")
        if self._conn_count.value > 0:
            peak = self._conn_count
            lines.append(f"statistics: max connection count {peak.value} for "
                         f"({peak.ident}) at {short_time(peak.when, self._tz)}")
            peak.value = 0
        rate(self._mail_rate, "message")
        rate(self._rcpt_rate, "recipient")
        rate(self._ntls_rate, "newtls")
        rate(self._auth_rate, "auth")
        if self._cache_size > 0:
            lines.append(f"statistics: max cache size {self._cache_size} "
                         f"at {short_time(self._cache_when, self._tz)}")
            self._cache_size = 0
        return lines


@frozen
class ClientLimits:
    """The smtpd_client_*_limit parameters (0 = off), with Postfix's defaults."""

    connection_count: int = 50       # smtpd_client_connection_count_limit
    connection_rate: int = 0         # smtpd_client_connection_rate_limit
    message_rate: int = 0            # smtpd_client_message_rate_limit
    recipient_rate: int = 0          # smtpd_client_recipient_rate_limit
    new_tls_session_rate: int = 0    # smtpd_client_new_tls_session_rate_limit
    auth_rate: int = 0               # smtpd_client_auth_rate_limit

    @classmethod
    def from_config(cls, cfg: Any) -> ClientLimits:
        """from_config - read the limits from a mailsys Config; absent ones keep Postfix's defaults."""
        def get(name: str, default: int) -> int:
            try:
                return int(cfg[name])
            except (KeyError, AttributeError):
                return default

        return cls(
            connection_count=get("smtpd_client_connection_count_limit", 50),
            connection_rate=get("smtpd_client_connection_rate_limit", 0),
            message_rate=get("smtpd_client_message_rate_limit", 0),
            recipient_rate=get("smtpd_client_recipient_rate_limit", 0),
            new_tls_session_rate=get("smtpd_client_new_tls_session_rate_limit", 0),
            auth_rate=get("smtpd_client_auth_rate_limit", 0),
        )

    @property
    def counts_connections(self) -> bool:
        """Whether smtpd reports connect/disconnect to anvil at all."""
        return self.connection_count > 0 or self.connection_rate > 0


@frozen
class LimitExceeded:
    """A tripped limit: what smtpd logs (after ``warning: ``) and what it answers."""

    warning: str
    reply: StatusReply


def _over(value: int, limit: int) -> bool:
    return limit > 0 and value > limit


def check_connect(counts: ConnectCounts, limits: ClientLimits, *, service: str, namaddr: str,
                  addr: str, myhostname: str) -> LimitExceeded | None:
    """check_connect - the greeting-time verdict: concurrency first, then connection rate (421, hang up)."""
    reply = StatusReply(421, "4.7.0", f"{myhostname} Error: too many connections from {addr}")
    if _over(counts.count, limits.connection_count):
        return LimitExceeded(f"Connection concurrency limit exceeded: {counts.count} from "
                             f"{namaddr} for service {service}", reply)
    if _over(counts.rate, limits.connection_rate):
        return LimitExceeded(f"Connection rate limit exceeded: {counts.rate} from "
                             f"{namaddr} for service {service}", reply)
    return None


def check_message(rate: int, limits: ClientLimits, *, service: str, namaddr: str,
                  addr: str) -> LimitExceeded | None:
    """check_message - the MAIL-time verdict (450 4.7.1 Error: too much mail from <addr>)."""
    if not _over(rate, limits.message_rate):
        return None
    return LimitExceeded(
        f"Message delivery request rate limit exceeded: {rate} from {namaddr} for service {service}",
        StatusReply(450, "4.7.1", f"Error: too much mail from {addr}"))


def check_recipient(rate: int, limits: ClientLimits, *, service: str, namaddr: str,
                    addr: str) -> LimitExceeded | None:
    """check_recipient - the RCPT-time verdict (450 4.7.1 Error: too many recipients from <addr>)."""
    if not _over(rate, limits.recipient_rate):
        return None
    return LimitExceeded(
        f"Recipient address rate limit exceeded: {rate} from {namaddr} for service {service}",
        StatusReply(450, "4.7.1", f"Error: too many recipients from {addr}"))


def check_auth(rate: int, limits: ClientLimits, *, service: str, namaddr: str,
               addr: str) -> LimitExceeded | None:
    """check_auth - the AUTH-time verdict (450 4.7.1 Error: too many AUTH commands from <addr>)."""
    if not _over(rate, limits.auth_rate):
        return None
    return LimitExceeded(
        f"AUTH command rate limit exceeded: {rate} from {namaddr} for service {service}",
        StatusReply(450, "4.7.1", f"Error: too many AUTH commands from {addr}"))


def check_starttls(rate: int, limits: ClientLimits, *, service: str,
                   namaddr: str) -> LimitExceeded | None:
    """check_starttls - before the handshake, with ``newtls_status``: refuse STARTTLS (454, session goes on)."""
    if not _over(rate, limits.new_tls_session_rate):
        return None
    return LimitExceeded(
        f"Refusing STARTTLS request from {namaddr} for service {service}",
        StatusReply(454, "4.7.0", f"Error: too many new TLS sessions from {namaddr}"))


def check_new_tls(rate: int, limits: ClientLimits, *, service: str, namaddr: str,
                  myhostname: str) -> LimitExceeded | None:
    """check_new_tls - after a new (not resumed) handshake, with ``newtls``: 421 and hang up."""
    if not _over(rate, limits.new_tls_session_rate):
        return None
    return LimitExceeded(
        f"New TLS session rate limit exceeded: {rate} from {namaddr} for service {service}",
        StatusReply(421, "4.7.0", f"{myhostname} Error: too many new TLS sessions from {namaddr}"))
