"""smtpd_auth - one session's SMTP AUTH, through mailsys.sasl.server.

SYNOPSIS
    auth = SessionAuth(sasl_server, namaddr)   # a SaslServer or a DovecotSasl
    reply = await auth.begin(event, local=.., remote=.., secured=..)  # 334, 235 or 535
    reply = await auth.step(event.data)      # AuthResponse event
    auth.core_ended(reply)                   # the core ended the exchange ("*", bad base64)
    auth.method, auth.user                   # after a 235: "PLAIN", "alice"

DESCRIPTION
    The protocol core (mailsys.smtp) frames AUTH: it checks that AUTH is
    offered, decodes the base64 and handles "*". What is inside is
    mailsys.sasl.server's: the challenges, the password check against
    smtpd_sasl_users_file and Postfix's replies and log texts. A password
    check is an scrypt computation, so it runs in a worker thread and the
    other sessions of the process go on meanwhile. With smtpd_sasl_type =
    dovecot the exchange is Dovecot's auth server's instead
    (mailsys.runtime.dovecot_auth), told this end's and the client's
    addresses and whether the session is under TLS.

    Failures are logged at warning level in the form fail2ban's
    postfix-sasl filter reads: "client[addr]: SASL LOGIN authentication
    failed: UGFzc3dvcmQ6, sasl_username=info".
"""

from __future__ import annotations

import base64

import structlog
import trio

from mailsys.runtime.dovecot_auth import DovecotExchange, DovecotSasl
from mailsys.sasl import server as sasl
from mailsys.smtp import Auth, Reply, replies

log = structlog.get_logger()


class SessionAuth:
    """The AUTH state of one session; see the module description."""

    def __init__(self, server: sasl.SaslServer | DovecotSasl | None, namaddr: str) -> None:
        self.server = server
        self.namaddr = namaddr
        self.exchange: sasl.Exchange | DovecotExchange | None = None
        self.method = ""
        self.user = ""

    async def begin(self, event: Auth, *, local: str = "", remote: str = "",
                    secured: bool = False) -> Reply:
        if self.server is None:
            return replies.AUTH_NOT_ENABLED
        initial = sasl_text(event.initial_response)
        if isinstance(self.server, DovecotSasl):
            self.exchange = self.server.begin(event.mechanism, local=local, remote=remote,
                                              secured=secured)
            return self._result(await self.exchange.start(initial))
        self.exchange = self.server.begin(event.mechanism)
        result = await trio.to_thread.run_sync(self.exchange.start, initial)
        return self._result(result)

    async def step(self, data: bytes) -> Reply:
        if self.exchange is None:
            return replies.auth_failed()
        if isinstance(self.exchange, DovecotExchange):
            return self._result(await self.exchange.respond(sasl_text(data)))
        result = await trio.to_thread.run_sync(self.exchange.respond, sasl_text(data))
        return self._result(result)

    async def aclose(self) -> None:
        """End an exchange the session left in the middle (a Dovecot connection)."""
        if isinstance(self.exchange, DovecotExchange):
            await self.exchange.aclose()

    def core_ended(self, reply: Reply) -> None:
        """The core ended the exchange itself; logged as Postfix 3.7.11's
        smtpd_sasl_authenticate() does: "*" as aborted, a response that is
        no base64 as a failure, one over the limit with only the "request
        longer than" line the session logs."""
        if self.exchange is None or reply not in _CORE_ENDS:
            return
        if isinstance(self.exchange, DovecotExchange):
            self.exchange.abandon()
        mech, self.exchange = self.exchange.mechanism, None
        if reply == replies.AUTH_ABORTED:
            log.warning(f"{self.namaddr}: SASL {mech} authentication aborted")
        elif reply == replies.BAD_BASE64_CONTINUED:
            log.warning(sasl.auth_failed_log_text(self.namaddr, mech,
                                                  replies.BAD_BASE64_CONTINUED_REASON))

    def _result(self, result: sasl.Result) -> Reply:
        if not isinstance(result, sasl.Challenge):
            self.exchange = None
            if isinstance(result, sasl.Success):
                self.method, self.user = result.mechanism, result.username
            else:
                log.warning(result.log_text(self.namaddr))
        return sasl_reply(result)


_CORE_ENDS = (replies.AUTH_ABORTED, replies.BAD_BASE64_CONTINUED, replies.SASL_RESPONSE_TOO_LONG)


def sasl_text(data: bytes | None) -> str | None:
    """What mailsys.sasl.server takes: the client's line as base64 text.

    The protocol core has already checked and decoded the base64 (and
    turned "=" into b""); the exchange wants the line as sent."""
    if data is None:
        return None
    return base64.b64encode(data).decode("ascii") or "="


def sasl_reply(result: sasl.Result) -> Reply:
    """The SMTP reply for one step of an AUTH exchange."""
    if isinstance(result, sasl.Challenge):
        return Reply(334, None, result.data)
    if isinstance(result, sasl.Success):
        return replies.AUTH_OK
    if result.aborted:
        return replies.AUTH_ABORTED
    # smtpd_sasl_glue.c: XSASL_AUTH_TEMP is "454 4.7.0 Temporary
    # authentication failure: %s", any other failure the 535.
    if result.temporary:
        return replies.auth_temporary(result.reason)
    return replies.auth_failed(result.reason)


__all__ = ["SessionAuth", "sasl_reply", "sasl_text"]
