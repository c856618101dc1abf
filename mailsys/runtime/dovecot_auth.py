"""dovecot_auth - smtpd's SMTP AUTH through Dovecot's auth server (smtpd_sasl_type = dovecot).

SYNOPSIS
    main.cf:  smtpd_sasl_auth_enable = yes
              smtpd_sasl_type = dovecot
              smtpd_sasl_path = private/auth          # or /abs/path, unix:..., inet:host:port
    sasl = DovecotSasl.from_config(cfg)
    await sasl.refresh()                               # the mechanisms EHLO offers
    sasl.mechanisms(), sasl.tls_mechanisms()
    ex = sasl.begin("PLAIN", local="127.0.0.1", remote="192.0.2.1", secured=False)
    result = await ex.start(initial)                   # Challenge, Success or Failure
    result = await ex.respond(line)

DESCRIPTION
    The I/O around mailsys.sasl.dovecot. Each AUTH command gets a
    connection of its own to the auth server (a relative smtpd_sasl_path
    is taken under $queue_directory, as Postfix takes it), the handshake,
    then the AUTH request and its CONT steps; the connection closes with
    the exchange. Dovecot's own failure delay (auth_failure_delay) is
    waited for in the exchange, while the other sessions go on.

    The mechanisms EHLO offers come from the handshake, filtered by
    smtpd_sasl_security_options (and, in a TLS session, by
    smtpd_sasl_tls_security_options). They are read when smtpd starts and
    again with every exchange, and at most every REFRESH seconds when a
    session starts while the list is empty (the auth server was down):
    until then EHLO offers no AUTH. An auth server that cannot be reached
    is logged as Postfix logs it, "warning: SASL: Connect to private/auth
    failed: No such file or directory", and the AUTH gets "535 5.7.8
    Error: authentication failed: Can't connect to authentication server";
    one that goes away mid-exchange, "Connection lost to authentication
    server".

BUGS
    Postfix keeps one connection per smtpd process and numbers its
    requests on it; mailsys opens one per exchange.
"""

from __future__ import annotations

import os

import structlog
import trio

from mailsys.sasl import dovecot
from mailsys.sasl.server import Challenge, Failure, Result

log = structlog.get_logger()

TIMEOUT = 10.0        # Postfix's AUTH_TIMEOUT for the auth server
REFRESH = 10.0        # least seconds between retries of an unreachable server
MAX_LINE = 65536
CANNOT_CONNECT = "Can't connect to authentication server"
CONNECTION_LOST = "Connection lost to authentication server"


class _Unreachable(Exception):
    pass


class _Lines:
    """Newline-separated lines from a stream."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.buf = bytearray()

    async def next(self) -> str:
        while True:
            end = self.buf.find(b"\n")
            if end >= 0:
                line = bytes(self.buf[:end])
                del self.buf[:end + 1]
                return line.decode("utf-8", "replace")
            if len(self.buf) > MAX_LINE:
                raise dovecot.ProtocolError("line too long")
            data = await self.stream.receive_some(MAX_LINE)
            if not data:
                raise EOFError
            self.buf += data


class DovecotSasl:
    """The auth server of one smtpd process; see the module description."""

    def __init__(self, path: str, shown: str, *, service: str, options: list[str],
                 tls_options: list[str]) -> None:
        self.path = path                  # what to connect to
        self.shown = shown                # smtpd_sasl_path as configured, for log lines
        self.service = service
        self.options = options
        self.tls_options = tls_options
        self._mechs: list[dovecot.Mechanism] = []
        self._last_try = float("-inf")
        self._refreshing: trio.Event | None = None

    @classmethod
    def from_config(cls, cfg) -> "DovecotSasl":
        shown = str(cfg.smtpd_sasl_path)
        path = shown
        if not path.startswith("inet:"):
            path = path.removeprefix("unix:")
            if not os.path.isabs(path):
                path = str(cfg.path("queue_directory") / path)
        options = list(cfg.smtpd_sasl_security_options)
        tls_options = list(cfg.smtpd_sasl_tls_security_options)
        dovecot.check_options(options, "smtpd_sasl_security_options")
        dovecot.check_options(tls_options, "smtpd_sasl_tls_security_options")
        return cls(path, shown, service=str(cfg.smtpd_sasl_service), options=options,
                   tls_options=tls_options)

    def mechanisms(self) -> tuple[str, ...]:
        return dovecot.usable(self._mechs, self.options)

    def tls_mechanisms(self) -> tuple[str, ...]:
        return dovecot.usable(self._mechs, self.tls_options)

    def stale(self) -> bool:
        """Whether a session should try the auth server first (or wait for
        another session's try)."""
        return not self._mechs and (self._refreshing is not None
                                    or trio.current_time() - self._last_try >= REFRESH)

    async def refresh(self) -> None:
        """Read the mechanism list again (a warning when the server is down);
        when a refresh is under way already, wait for that one."""
        if self._refreshing is not None:
            await self._refreshing.wait()
            return
        self._refreshing = trio.Event()
        try:
            # Shielded: the session that asked may lose its client meanwhile,
            # and the sessions waiting here want the answer all the same.
            with trio.CancelScope(shield=True):
                stream, _ = await self.connect()
                await stream.aclose()
        except _Unreachable:
            pass
        finally:
            self._refreshing.set()
            self._refreshing = None

    async def connect(self) -> tuple[trio.abc.Stream, _Lines]:
        """A connection past the handshake; _Unreachable (logged) when there is none."""
        stream = None
        try:
            with trio.fail_after(TIMEOUT):
                stream = await self._open()
                await stream.send_all(dovecot.handshake_request(os.getpid()))
                lines = _Lines(stream)
                hs = dovecot.Handshake()
                while not hs.feed(await lines.next()):
                    pass
        except OSError as e:
            log.warning(f"SASL: Connect to {self.shown} failed: {e.strerror or e}")
        except trio.TooSlowError:
            log.warning(f"SASL: Connect to {self.shown} failed: Connection timed out")
        except EOFError:
            log.warning(f"SASL: Connect to {self.shown} failed: handshake ended early")
        except dovecot.ProtocolError as e:
            log.warning(f"SASL: {e}")
        else:
            self._mechs = hs.mechanisms
            return stream, lines
        self._last_try = trio.current_time()
        if stream is not None:
            await stream.aclose()
        raise _Unreachable

    async def _open(self) -> trio.abc.Stream:
        if self.path.startswith("inet:"):
            host, _, port = self.path[5:].rpartition(":")
            return await trio.open_tcp_stream(host.strip("[]"), int(port))
        return await trio.open_unix_socket(self.path)

    def begin(self, mechanism: str, *, local: str, remote: str, secured: bool) -> "DovecotExchange":
        return DovecotExchange(self, mechanism.upper(), local, remote, secured)


class DovecotExchange:
    """One AUTH command relayed to the auth server."""

    _ids = 0

    def __init__(self, sasl: DovecotSasl, mechanism: str, local: str, remote: str,
                 secured: bool) -> None:
        self.sasl = sasl
        self.mechanism = mechanism
        self.local, self.remote, self.secured = local, remote, secured
        self.stream: trio.abc.Stream | None = None
        self.lines: _Lines | None = None
        DovecotExchange._ids += 1
        self.request_id = DovecotExchange._ids

    async def start(self, initial: str | None) -> Result:
        try:
            self.stream, self.lines = await self.sasl.connect()
        except _Unreachable:
            return Failure(self.mechanism, CANNOT_CONNECT, temporary=True)
        request = dovecot.auth_request(self.request_id, self.mechanism, service=self.sasl.service,
                                       local=self.local, remote=self.remote,
                                       secured=self.secured, initial=initial)
        return await self._ask(request)

    async def respond(self, line: str) -> Result:
        if self.stream is None:
            return Failure(self.mechanism, CONNECTION_LOST, temporary=True)
        return await self._ask(dovecot.continue_request(self.request_id, line))

    async def _ask(self, request: bytes) -> Result:
        assert self.stream is not None and self.lines is not None
        try:
            await self.stream.send_all(request)
            while True:
                with trio.fail_after(TIMEOUT + 5):      # Dovecot's failure delay is inside
                    result = dovecot.reply(await self.lines.next(), self.request_id,
                                           self.mechanism)
                if result is not None:
                    break
        except (OSError, EOFError, trio.TooSlowError, trio.BrokenResourceError,
                dovecot.ProtocolError):
            result = Failure(self.mechanism, CONNECTION_LOST, temporary=True)
        if isinstance(result, Failure) and result.reason == dovecot.BACKEND_ERROR:
            log.warning("missing Dovecot server OK username field")
        if not isinstance(result, Challenge):
            await self.aclose()
        return result

    def abandon(self) -> None:
        """Drop the connection now (the client gave up between steps)."""
        if self.stream is not None:
            stream, self.stream = self.stream, None
            sock = getattr(stream, "socket", None)
            if sock is not None:
                sock.close()

    async def aclose(self) -> None:
        if self.stream is not None:
            stream, self.stream = self.stream, None
            with trio.CancelScope(shield=True):
                await stream.aclose()


__all__ = ["DovecotSasl", "DovecotExchange", "CANNOT_CONNECT", "CONNECTION_LOST"]
