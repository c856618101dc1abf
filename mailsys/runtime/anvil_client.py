"""anvil_client - smtpd's side of the anvil service; never stops smtpd.

SYNOPSIS
    anvil = AnvilClient(names.private_path(queue_dir, names.ANVIL))
    counts = await anvil.connect("smtp", "192.0.2.10")      # AnvilCounts(count, rate)
    rate = await anvil.event("smtp", "192.0.2.10", proto.RECIPIENT)
    await anvil.disconnect("smtp", "192.0.2.10")             # AnvilCounts(0, 0)
    await anvil.aclose()

DESCRIPTION
    One kept-open channel per smtpd process (Postfix's anvil_clnt keeps
    one too); the many sessions of the process take turns on it. Each call
    has a short deadline: a rate check must not hold up an SMTP reply.

    When anvil cannot be reached (not running, restarting, too slow, a
    protocol error) the call answers "no limit" (zero counts, which never
    exceed a limit) and the session goes on: a mail system without its
    rate limits is better than one that refuses all mail (Postfix smtpd
    does the same). The failure is logged as Postfix words it,

        warning: problem talking to server private/anvil: <reason>

    at most once per WARN_INTERVAL, and the client does not try again for
    RETRY_DELAY, so a dead anvil costs each session nothing, not a connect
    timeout per command. The next call after that reconnects.

    A disconnect is sent only for a connect that the current channel
    registered; after a reconnect the new anvil knows nothing of the old
    connections (the old anvil, or the closed channel, released them).
"""

from __future__ import annotations

import math
from pathlib import Path

import structlog
import trio

from mailsys.ipc.errors import IpcError
from mailsys.ipc.proto import anvil as proto
from mailsys.runtime import ipc_io

__all__ = ["AnvilClient", "TIMEOUT", "RETRY_DELAY", "WARN_INTERVAL"]

log = structlog.get_logger()

# anvil answers from memory in microseconds; one second means it is stuck.
# (Postfix's anvil client waits $ipc_timeout, 3600 s, and lets smtpd hang:
# a deliberate difference.)
TIMEOUT = 1.0
# After a failure, calls answer "no limit" at once for this long.
RETRY_DELAY = 5.0
# Postfix logs its "problem talking to server" warning per failed request;
# under a dead anvil that is one line per SMTP command, so mailsys keeps
# one line a minute.
WARN_INTERVAL = 60.0

NO_LIMIT = proto.AnvilCounts(count=0, rate=0)


class AnvilClient:
    """A kept-open, self-healing channel to anvil; see the module description."""

    def __init__(self, path: Path | str, *, timeout: float = TIMEOUT,
                 retry_delay: float = RETRY_DELAY, warn_interval: float = WARN_INTERVAL) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.retry_delay = retry_delay
        self.warn_interval = warn_interval
        self._chan: ipc_io.Channel | None = None
        self._connecting = trio.Lock()
        self._retry_at = -math.inf
        self._warned_at = -math.inf
        self._generation = 0                    # grows with each new channel
        self._registered: dict[tuple[str, str], list[int]] = {}
        self.failures = 0

    @property
    def server_name(self) -> str:
        """The name Postfix's warning gives the server: "private/anvil"."""
        return f"{self.path.parent.name}/{self.path.name}"

    async def connect(self, service: str, addr: str) -> proto.AnvilCounts:
        """connect - count a new connection; its count and connection rate."""
        result = await self._call(proto.AnvilConnect(service, addr))
        if result is None:
            return NO_LIMIT
        self._registered.setdefault((service, addr), []).append(self._generation)
        return result

    async def disconnect(self, service: str, addr: str) -> proto.AnvilCounts:
        """disconnect - the connection ended; only one this channel counted is sent."""
        gens = self._registered.get((service, addr))
        if not gens:
            return NO_LIMIT
        gen = gens.pop()
        if not gens:
            del self._registered[service, addr]
        if gen != self._generation or self._chan is None:
            return NO_LIMIT      # counted by an anvil (or channel) that is gone
        return await self._call(proto.AnvilDisconnect(service, addr)) or NO_LIMIT

    async def event(self, service: str, addr: str, kind: str) -> int:
        """event - count a MAIL/RCPT/NEWTLS/AUTH (kind from mailsys.ipc.proto.anvil); its rate."""
        result = await self._call(proto.AnvilEvent(service, addr, kind))
        return 0 if result is None else result.rate

    async def _call(self, msg: object) -> proto.AnvilCounts | None:
        """The reply, or None when anvil could not answer (warned, backed off)."""
        try:
            with trio.fail_after(self.timeout):
                chan = await self._channel()
                if chan is None:
                    return None
                return await chan.call(msg, expect=proto.AnvilCounts, timeout=self.timeout)
        except (IpcError, trio.TooSlowError) as e:
            self._failed(e if isinstance(e, IpcError) else "timeout")
            return None

    async def _channel(self) -> ipc_io.Channel | None:
        if self._chan is not None and self._chan.usable:
            return self._chan
        async with self._connecting:
            if self._chan is not None and self._chan.usable:
                return self._chan
            if trio.current_time() < self._retry_at:
                return None
            self._chan = await ipc_io.connect(self.path, protocol=proto.PROTOCOL,
                                              timeout=self.timeout)
            self._generation += 1
            return self._chan

    def _failed(self, reason: object) -> None:
        self.failures += 1
        now = trio.current_time()
        self._retry_at = now + self.retry_delay
        if self._chan is not None:
            self._chan._close_now()
            self._chan = None
        if now - self._warned_at >= self.warn_interval:
            self._warned_at = now
            log.warning(f"problem talking to server {self.server_name}: {reason}")

    async def aclose(self) -> None:
        """aclose - close the channel; anvil releases what it still counts."""
        chan, self._chan = self._chan, None
        self._registered.clear()
        if chan is not None:
            await chan.aclose()
