"""policy_client - smtpd's side of check_policy_service (Postfix SMTPD_POLICY_README).

SYNOPSIS
    clients = PolicyClients.from_config(cfg)
    action = await clients.query("inet:127.0.0.1:10023", attrs)
    # "DEFER_IF_PERMIT Greylisted", or the default action on failure

DESCRIPTION
    The service is what follows check_policy_service in a restriction list:
    an endpoint, unix:private/policy (relative to queue_directory, as
    Postfix's private services are), unix:/absolute/path or
    inet:host:port, optionally with Postfix 3.0's per-service settings
    (``check_policy_service { inet:host:port, timeout=10s,
    default_action=DUNNO }``; the configuration parser has removed the
    braces): timeout, default_action, max_idle, max_ttl, request_limit,
    try_limit, retry_delay and policy_context, each defaulting to its
    smtpd_policy_service_* parameter.

    A request is the attributes as name=value lines and an empty line; the
    reply is name=value lines up to an empty line, and its action= value
    is the answer (other attributes are ignored). Newlines in a value are
    sent as spaces.

    Connections are kept and reused, one request at a time each: a
    connection is closed once it has been idle for max_idle, open for
    max_ttl, or has carried request_limit requests (0: no limit).

    A failed exchange (connect, timeout, end of file, a reply without
    action=) is logged as "warning: problem talking to server 127.0.0.1:
    10023: <why>" (after "warning: connect to 127.0.0.1:10023: <why>" for a
    failed connect, as Postfix logs) and tried again after retry_delay,
    try_limit times in
    all; then the answer is default_action ("451 4.3.5 Server configuration
    problem"). A kept connection that turns out closed by the server
    before it answered is replaced at once, without a warning or a try.

GUARANTEES
    query() never raises for the service's sake: it answers an action. A
    bad service specification is logged once and answers default_action.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import structlog
import trio

from mailsys.config.values import endpoint_attributes, parse_int, parse_time
from mailsys.frozen import frozen

log = structlog.get_logger()

MAX_REPLY = 64 * 1024           # a reply longer than this is a broken server


@frozen
class ServiceSettings:
    """How to talk to one policy service."""

    endpoint: str               # as written: "inet:127.0.0.1:10023"
    timeout: float
    max_idle: float
    max_ttl: float
    request_limit: int
    try_limit: int
    retry_delay: float
    default_action: str
    policy_context: str

    @property
    def name(self) -> str:
        """The server as Postfix names it in warnings: "private/policy", "127.0.0.1:10023"."""
        return self.endpoint.split(":", 1)[1] if ":" in self.endpoint else self.endpoint


_PARSERS = {"timeout": parse_time, "max_idle": parse_time, "max_ttl": parse_time,
            "retry_delay": parse_time, "request_limit": parse_int, "try_limit": parse_int,
            "default_action": str, "policy_context": str}


class _Failed(Exception):
    """One exchange failed; the text is why."""


@dataclass(slots=True, eq=False)
class _Connection:
    stream: trio.abc.Stream
    opened: float
    used: float
    requests: int = 0
    buffer: bytes = b""


class PolicyClients:
    """The policy services one smtpd process talks to, and their kept connections."""

    def __init__(self, defaults: ServiceSettings, queue_dir: Path) -> None:
        self._defaults = defaults
        self._queue_dir = Path(queue_dir)
        self._settings: dict[str, ServiceSettings] = {}
        self._idle: dict[str, list[_Connection]] = {}

    @classmethod
    def from_config(cls, cfg: Any) -> "PolicyClients":
        return cls(ServiceSettings(
            endpoint="",
            timeout=cfg.smtpd_policy_service_timeout,
            max_idle=cfg.smtpd_policy_service_max_idle,
            max_ttl=cfg.smtpd_policy_service_max_ttl,
            request_limit=cfg.smtpd_policy_service_request_limit,
            try_limit=cfg.smtpd_policy_service_try_limit,
            retry_delay=cfg.smtpd_policy_service_retry_delay,
            default_action=cfg.smtpd_policy_service_default_action,
            policy_context=cfg.smtpd_policy_service_policy_context,
        ), cfg.path("queue_directory"))

    def settings(self, service: str) -> ServiceSettings:
        """The settings of a service specification (parsed once)."""
        found = self._settings.get(service)
        if found is None:
            found = self._settings[service] = self._parse(service)
        return found

    def _parse(self, service: str) -> ServiceSettings:
        changes = endpoint_attributes(
            service, _PARSERS,
            lambda text: log.warning(f"check_policy_service {service}: {text}; ignored"))
        return dataclasses.replace(self._defaults, **changes)

    async def query(self, service: str, attrs: Mapping[str, str]) -> str:
        """The service's action for attrs, or its default action."""
        s = self.settings(service)
        lines = [f"{k}={_one_line(v)}\n" for k, v in attrs.items()]
        lines.append(f"policy_context={_one_line(s.policy_context)}\n\n")
        request = "".join(lines).encode("utf-8", "surrogateescape")
        for attempt in range(max(1, s.try_limit)):
            if attempt:
                await trio.sleep(s.retry_delay)
            try:
                with trio.fail_after(s.timeout):
                    return await self._exchange(service, s, request)
            except trio.TooSlowError:
                why = "timeout"
            except _Failed as e:
                why = str(e)
            log.warning(f"problem talking to server {s.name}: {why}")
        return s.default_action

    async def _exchange(self, service: str, s: ServiceSettings, request: bytes) -> str:
        conn = await self._take(service, s)
        if conn is not None:
            try:
                return await self._ask(service, s, conn, request)
            except _Stale:
                pass                        # the server closed it meanwhile: a new one
        return await self._ask(service, s, await self._connect(s), request)

    async def _ask(self, service: str, s: ServiceSettings, conn: _Connection,
                   request: bytes) -> str:
        ok = False
        try:
            kept = conn.requests > 0
            try:
                await conn.stream.send_all(request)
                reply = await _read_reply(conn, stale=kept)
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as e:
                if kept and not conn.buffer:
                    raise _Stale(os_error_text(e)) from None     # reset by a server that had closed it
                raise _Failed(os_error_text(e)) from None
            conn.requests += 1
            conn.used = time.monotonic()
            action = _action(reply)
            ok = True
            return action
        finally:
            if ok and _reusable(conn, s):
                self._idle.setdefault(service, []).append(conn)
            else:
                await _close(conn)

    async def _take(self, service: str, s: ServiceSettings) -> _Connection | None:
        idle = self._idle.get(service)
        while idle:
            conn = idle.pop()
            if _reusable(conn, s):
                return conn
            await _close(conn)
        return None

    async def _connect(self, s: ServiceSettings) -> _Connection:
        kind, _, where = s.endpoint.partition(":")
        try:
            if kind == "unix":
                path = Path(where) if where.startswith("/") else self._queue_dir / where
                stream: trio.abc.Stream = await trio.open_unix_socket(str(path))
            elif kind == "inet":
                host, _, port = where.rpartition(":")
                stream = await trio.open_tcp_stream(host.strip("[]") or "localhost", int(port))
            else:
                raise _Failed(f"unsupported endpoint \"{s.endpoint}\" (use inet: or unix:)")
        except (OSError, ValueError) as e:
            log.warning(f"connect to {s.name}: {os_error_text(e)}")
            raise _Failed(os_error_text(e)) from None
        now = time.monotonic()
        return _Connection(stream, opened=now, used=now)

    async def aclose(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                await _close(conn)
        self._idle.clear()


class _Stale(_Failed):
    """A kept connection was closed by the server before it answered."""


async def _read_reply(conn: _Connection, *, stale: bool) -> bytes:
    while b"\n\n" not in conn.buffer:
        if len(conn.buffer) > MAX_REPLY:
            raise _Failed("reply too long")
        data = await conn.stream.receive_some(4096)
        if not data:
            if stale and not conn.buffer:
                raise _Stale("connection closed")
            raise _Failed("unexpected end of input")
        conn.buffer += data
    reply, _, conn.buffer = conn.buffer.partition(b"\n\n")
    return reply


def _action(reply: bytes) -> str:
    for line in reply.decode("utf-8", "replace").split("\n"):
        name, eq, value = line.partition("=")
        if eq and name.strip() == "action":
            return value.strip()
    raise _Failed("reply has no action= attribute")


def _reusable(conn: _Connection, s: ServiceSettings) -> bool:
    now = time.monotonic()
    return (now - conn.used < s.max_idle and now - conn.opened < s.max_ttl
            and (s.request_limit <= 0 or conn.requests < s.request_limit))


async def _close(conn: _Connection) -> None:
    with trio.CancelScope(shield=True):
        await conn.stream.aclose()


def _one_line(value: object) -> str:
    return str(value).replace("\r", " ").replace("\n", " ")


def os_error_text(e: BaseException) -> str:
    """The system's words for a failure ("Connection refused"), as Postfix's %m."""
    cause: BaseException | None = e
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno:
            # The system's text for the number: trio words its own
            # strerror ("Error connecting to ...: Connection refused").
            return os.strerror(cause.errno)
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        if isinstance(cause, BaseExceptionGroup) and cause.exceptions:
            # trio's open_tcp_stream: "all attempts to connect ... failed",
            # each attempt's own error inside.
            return os_error_text(cause.exceptions[0])
        cause = cause.__cause__ or cause.__context__
    return str(e) or type(e).__name__


__all__ = ["PolicyClients", "ServiceSettings", "os_error_text"]
