"""smtp_client_io - drive mailsys.smtp.ClientConnection over a trio stream.

SYNOPSIS
    target = Target("mx.example.org", "192.0.2.1", 25)
    session = await connect(target, timeouts, helo_name="mail.example.com")
    result = await session.send_mail("alice@example.com", [Rcpt("bob@example.org")], content)
    if session.reusable:
        cache.put("example.org", session)       # ConnectionCache, swept by cache.run()
    else:
        await session.close()

DESCRIPTION
    The I/O shell of the smtp delivery agent, as Postfix's smtp_connect.c
    and smtp_chat.c are around smtp_proto.c. The protocol decisions are the
    sans-IO ClientConnection's; this module only moves bytes and keeps time.
    Every wait runs under the deadline ClientConnection.stage_timeout names
    (smtp_helo_timeout, smtp_mail_timeout, smtp_rcpt_timeout,
    smtp_data_init_timeout, smtp_data_xfer_timeout, smtp_data_done_timeout,
    smtp_quit_timeout, ...), taken from the ``timeouts`` mapping.

    Failures are SessionError with Postfix's text and status:

      connect to mx.example.org[192.0.2.1]:25: Connection refused      4.4.1
      host mx.example.org[192.0.2.1] refused to talk to me: 554 ...    from the reply
      conversation with mx.example.org[192.0.2.1] timed out while sending RCPT TO   4.4.2
      lost connection with mx.example.org[192.0.2.1] while receiving the initial server greeting   4.4.2

    A SessionError raised by send_mail() carries ``settled``: the recipients
    the server had already answered for good; the others are undecided and
    get the error's text (a lost connection after the final dot "may be sent
    more than once": the recipients are deferred and retried, never dropped).

    STARTTLS: connect() takes a ``tls`` policy (TlsPolicy). With level may,
    a server that offers STARTTLS is asked for it; a failed handshake raises
    SessionError(tls_failed=True), and the caller reconnects in plaintext
    (what Postfix's smtp_tls_fallback_level does for may). With encrypt,
    verify or secure, a server without STARTTLS is a 4.7.4 deferral and a
    refused STARTTLS or a failed handshake 4.7.5 ("Server certificate not
    verified" when the certificate was the trouble).

    Level fingerprint (main.cf or a smtp_tls_policy_maps entry): encrypt, and the
    server certificate's or its public key's digest must be one of
    TlsPolicy.fingerprints, else 4.7.5 "Server certificate not verified".

    SASL: connect(sasl=...) takes a mailsys.runtime.smtp_sasl.SaslRequest
    and logs in after the last EHLO (inside TLS when STARTTLS was used);
    its failures are SessionErrors like the others.

    Loops: connect(myhostname=...) ends the session when the server's EHLO
    reply gives our own name (SessionError(final=True), 5.4.6 or 4.4.6).

    ConnectionCache keeps idle sessions per next hop for a short while
    (Postfix's scache with smtp_connection_cache_time_limit). A session
    take() hands out is checked with RSET by its next send_mail(): in the
    same write as MAIL, RCPT and DATA when the server offers PIPELINING
    (no round trip of its own), alone before MAIL otherwise. When the
    server closed meanwhile, resets the connection, refuses the RSET or
    does not answer it within smtp_rset_timeout, send_mail() raises
    StaleSession (a SessionError): nothing of the message counted there,
    and the caller drops the session without a word in the log and sends
    the message over a fresh connection.
"""

from __future__ import annotations

import errno
import os
import socket
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import structlog
import trio

from mailsys.frozen import frozen
from mailsys.runtime.fast_stream import FastStream
from mailsys.smtp.ehlo_mask import discard_names, discard_text
from mailsys.smtp.client import (DOT_CRLF, NEED_DATA, ClientConnection, ClientState,
                                 ConnectionLost, EhloDone,
                                 EhloRejected, Greeting, HeloRejected, ProbeFailed, QuitDone, Rcpt,
                                 RSET_PROBE, RecipientStatus, StartTlsReady, StartTlsRefused,
                                 TransactionDone, TransactionResult, greeting_name, refused_text,
                                 says_esmtp)
from mailsys.smtp.errors import RemoteProtocolError
from mailsys.smtp.trace import Trace, TracedClientConnection

__all__ = ["Target", "SessionError", "StaleSession", "SmtpSession", "TlsPolicy", "PixWorkarounds",
           "connect", "open_stream",
           "trio_close", "ConnectionCache", "RECV_SIZE"]

log = structlog.get_logger()

RECV_SIZE = 65536
WRITE_SIZE = 256 * 1024
# Idle connections kept per next hop. Every session a destination's
# concurrency (default_destination_concurrency_limit, 20) had open may be
# needed again a moment later: closing the ones above a small cap made a
# third of the deliveries of a busy destination connect, greet and EHLO
# anew. Idle ones still go after smtp_connection_cache_time_limit. This is
# the most requests qmgr hands one agent process at once (its channel pool).
MAX_IDLE_PER_KEY = 100
# A QUIT to an idle cached connection, or after delivery, must never hold
# the agent up long; Postfix gives it smtp_quit_timeout, but nothing waits
# for its answer to decide anything.
QUIT_GRACE = 5.0

# Postfix checks a server's greeting and EHLO reply for its own name only
# when mail goes to this port (IPPORT_SMTP, not $smtp_tcp_port), never for
# LMTP: smtp_connect.c sets SMTP_MISC_FLAG_LOOP_DETECT for port 25 alone.
LOOP_DETECT_PORT = 25


@frozen
class Target:
    """One address of one MX host, or an LMTP server's UNIX-domain socket.

    A socket target has port 0, ``address`` the path as the next hop wrote
    it and ``path`` the one to connect to; Postfix names it after
    $myhostname: ``mail.example.com[private/dovecot-lmtp]``, no port."""

    host: str
    address: str
    port: int = 25
    best: bool = True          # one of the best MX hosts (a loop there bounces, else defers)
    path: str = ""             # UNIX-domain socket to connect to (port 0)

    @property
    def peer(self) -> str:
        """Postfix's namaddr: ``mx.example.org[192.0.2.1]``."""
        return f"{self.host}[{self.address}]"

    @property
    def relay(self) -> str:
        """The relay= field: ``mx.example.org[192.0.2.1]:25`` (no port for a socket)."""
        return f"{self.peer}:{self.port}" if self.port else self.peer


class SessionError(Exception):
    """One host failed: Postfix's reason text and enhanced status code.

    connected: the failure came from a server that answered (relay= then
    names it). final: no other host may be tried either (a loop). settled: recipients already decided.
    tls_failed: the STARTTLS handshake failed (opportunistic TLS retries
    in plaintext). remote: (Remote-MTA host, server reply) when the
    failure is a server's answer that a bounce should quote. suspends:
    when it is the last server's, the destination counts as dead for
    qmgr (false for a failed SASL login: Postfix 3.7 tried the next
    message for that server 3 s later, no "delivery temporarily
    suspended")."""

    def __init__(self, dsn: str, text: str, *, connected: bool = False, final: bool = False,
                 settled: tuple[RecipientStatus, ...] = (),
                 tls_failed: bool = False, remote: tuple[str, str] | None = None,
                 suspends: bool = True) -> None:
        super().__init__(text)
        self.dsn = dsn
        self.text = text
        self.connected = connected
        self.final = final
        self.settled = settled
        self.tls_failed = tls_failed
        self.remote = remote
        self.suspends = suspends


class StaleSession(SessionError):
    """A cached session failed its RSET check before anything of the
    message counted: the server has it nowhere, and a fresh connection may
    carry it. A caller that treats it as any SessionError defers the
    recipients, which is safe too."""


@frozen
class PixWorkarounds:
    """smtp_pix_workarounds for one delivery: what a server whose greeting
    is nothing but "220" and asterisks (a CISCO PIX "smtp fixup") gets.

    words: of disable_esmtp (HELO, not EHLO) and delay_dotcrlf (a pause
    of ``delay`` seconds before the final ".", only for mail queued at
    least smtp_pix_workaround_threshold_time: the caller leaves it out
    otherwise). queue_id: for Postfix's log line
    "QID: enabling PIX workarounds: WORDS for HOST[ADDR]:PORT"."""

    words: tuple[str, ...] = ()
    delay: float = 10.0
    queue_id: str = ""


@frozen
class TlsPolicy:
    """What smtp_tls_security_level asks for one connection.

    level: none, may, encrypt, verify or secure. engine: makes a client
    TlsEngine for a server name and the request's next hop (None: TLS
    unavailable, as with level none). wrap: turns (stream, engine) into a handshaken-ready stream;
    both come from mailsys.tls / mailsys.runtime.tls_stream."""

    level: str = "none"
    engine: Callable[[str, str], object] | None = None     # (MX host, next hop)
    wrap: Callable[[trio.abc.Stream, object], trio.abc.Stream] | None = None
    log: bool = False            # smtp_tls_loglevel >= 1: log each established session
    note_offer: bool = False     # smtp_tls_note_starttls_offer: log servers that offer it
    # Level fingerprint: hex digests (any case, colons or not) of which the
    # server certificate's or its public key's must be one.
    fingerprints: tuple[str, ...] = ()
    digest: str = "sha256"       # smtp_tls_fingerprint_digest
    # A setting that makes TLS unusable (Postfix's warning): the delivery
    # defers with "client TLS configuration problem" before any connection.
    problem: str = ""

    @property
    def required(self) -> bool:
        return self.level in ("encrypt", "fingerprint", "verify", "secure")

    @property
    def wanted(self) -> bool:
        return self.level != "none" and self.engine is not None


class SmtpSession:
    """One open SMTP connection, ready for transactions (after connect())."""

    def __init__(self, stream: trio.abc.Stream, cc: ClientConnection, target: Target,
                 timeouts: Mapping[str, float]) -> None:
        self.stream = stream
        self.cc = cc
        self.target = target
        self.timeouts = timeouts
        self.uses = 0                  # transactions started on this connection
        self.tls = None                # the TlsEngine once STARTTLS succeeded
        self.broken = False
        self.probe = False             # from the cache: the next send_mail() checks it with RSET
        self._pending = b""            # bytes a command method returned, not yet written
        self.ehlo_name = ""            # the name the server gave in its EHLO reply ("" after HELO)
        self.send_ehlo = True          # not smtp_never_send_ehlo
        self.always_ehlo = True        # smtp_always_send_ehlo (no: only after "ESMTP")
        self.skip_quit = True          # smtp_skip_quit_response: hang up after QUIT
        self.skip_5xx_greeting = True  # smtp_skip_5xx_greeting: a 5xx banner is soft
        self.discard_note = ""         # "discarding EHLO keywords: ..." for the first EHLO
        # smtp_per_request_deadline: one deadline for a request and its
        # response (0: a deadline per read and per write); the content
        # earns more time at min_data_rate bytes a second.
        self.per_request = False
        self.block_early_reply = ""    # "smtp_tls_block_early_mail_reply" when on
        self.pix: PixWorkarounds | None = None
        self.pix_delay = 0.0           # delay_dotcrlf turned on by the greeting
        self.started = trio.current_time()
        self.min_data_rate = 500.0
        self._deadline_for: tuple = ()
        self._deadline = 0.0

    # -- the driver loop (ClientConnection's docstring) ----------------------------

    def _timeout(self, name: str) -> float:
        return float(self.timeouts.get(name, 300.0))

    async def next_event(self) -> object:
        """Write what is queued, then read until the connection has an event.

        Replies may queue more output (the body after 354, the next command
        without PIPELINING), so output is written before every read.

        Each write and each read gets its own deadline, as Postfix's
        smtp_*_timeout bounds each read and write (a large message on a slow
        link is not cut off as a whole). With smtp_per_request_deadline
        (per_request) the deadline is instead one for a request and its
        response: it starts when the stage or the number of replies owed
        changes and holds over every read and write until then, so a
        server that trickles a reply a byte at a time cannot stretch it;
        each write of message content adds N/smtp_min_data_rate seconds,
        never to more than smtp_data_xfer_timeout ahead (Postfix 3.7
        smtp_stream_setup(), vstream deadlines). They are kept on one cancel scope
        whose deadline moves before every operation: a scope of its own for
        each cost three times as much. A deadline that passed just as an
        operation completed leaves that scope cancelled for good; the
        exchange then goes on in a fresh one, so the operation that
        completed in time still counts."""
        cc = self.cc
        event: object = None      # cc's answer, returned once the output is written
        out: deque[bytes] = deque()   # the output to write, in pieces (_output)
        pos = 0                   # how much of out[0] went
        pause: bytes | None = None    # delay_dotcrlf: the piece to pause before
        stage = ""                # what the operation in progress is part of
        while True:
            with trio.CancelScope() as scope:
                while not scope.cancel_called:
                    if event is None:
                        try:
                            event = cc.next_event()
                        except RemoteProtocolError as e:
                            self.broken = True
                            raise SessionError("4.5.0", f"conversation with {self.target.peer} "
                                               f"failed: protocol error: {e}", connected=True,
                                               settled=cc.settled) from None
                        stage, limit = cc.stage_info
                        pause = self._output(out, limit) or pause
                    if out:
                        piece = out[0]
                        if piece is pause and pos == 0:
                            # delay_dotcrlf: the content went, the "." waits
                            # (Postfix smtp_proto.c: flush, sleep).
                            pause = None
                            scope.deadline = float("inf")     # the pause is ours
                            await trio.sleep(self.pix_delay)
                        end = pos + WRITE_SIZE
                        chunk = piece if pos == 0 and end >= len(piece) \
                            else memoryview(piece)[pos:end]
                        await self._write(chunk, stage, limit, scope)
                        if end < len(piece):
                            pos = end
                        else:
                            out.popleft()
                            pos = 0
                        continue
                    if event is not NEED_DATA:
                        return event
                    stage, limit = cc.stage_info
                    scope.deadline = self._deadline_at(stage, limit)
                    try:
                        data = await self.stream.receive_some(RECV_SIZE)
                    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                        # A reset or a broken TLS record is the end of the
                        # connection: let the protocol core see EOF and say
                        # what it was waiting for.
                        data = b""
                    cc.receive_data(data)
                    event = None
            if scope.cancelled_caught:
                self.broken = True
                raise SessionError("4.4.2", f"conversation with {self.target.peer} timed out "
                                   f"while {stage}", connected=True, settled=cc.settled)

    def _output(self, out: deque[bytes], limit: str) -> bytes | None:
        """Queue on out what the commands and cc have for the server: in
        one write when it is small (pipelined commands, a small message),
        else piece by piece, so that a large message's content is written
        from the bytes the caller gave, never copied. Returns the DOT_CRLF
        piece to pause before when delay_dotcrlf applies to a message's end."""
        parts = self.cc.data_parts()
        if self._pending:
            parts.insert(0, self._pending)
            self._pending = b""
        if not parts:
            return None
        end = None
        if self.pix_delay and limit == "smtp_data_xfer_timeout" and len(parts) > 1 \
                and parts[-1] is DOT_CRLF:
            end = parts.pop()
        if len(parts) > 1 and sum(map(len, parts)) <= WRITE_SIZE:
            parts = [b"".join(parts)]
        out.extend(parts)
        if end is not None:
            out.append(end)
        return end

    async def _write(self, chunk, stage: str, limit: str, scope: trio.CancelScope) -> None:
        """One write under its deadline; content earns smtp_min_data_rate time."""
        scope.deadline = self._deadline_at(stage, limit)
        try:
            await self.stream.send_all(chunk)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            self.broken = True
            raise SessionError("4.4.2", f"lost connection with {self.target.peer}"
                               f" while {stage}", connected=True,
                               settled=self.cc.settled) from None
        if self.per_request and limit == "smtp_data_xfer_timeout":
            self._deadline = min(self._deadline + len(chunk) / self.min_data_rate,
                                 trio.current_time() + self._timeout(limit))

    def _deadline_at(self, stage: str, limit: str) -> float:
        """When the read or write about to start must be done by."""
        now = trio.current_time()
        if not self.per_request:
            return now + self._timeout(limit)
        key = (stage, limit, self.cc.replies_owed)
        if key != self._deadline_for:
            self._deadline_for = key
            self._deadline = now + self._timeout(limit)
        return self._deadline

    def send(self, data: bytes) -> None:
        """Queue bytes a ClientConnection command returned; next_event() writes them."""
        self._pending += data

    def lost(self, event: ConnectionLost) -> SessionError:
        """The SessionError for a connection the server closed."""
        return self._lost(event)

    def _lost(self, event: ConnectionLost) -> SessionError:
        self.broken = True
        return SessionError("4.4.2", f"lost connection with {self.target.peer} while {event.stage}",
                            connected=True, settled=self.cc.settled)

    # -- session setup ----------------------------------------------------------------

    async def hello(self, tls: TlsPolicy, myhostname: str = "", nexthop: str = "",
                    sasl=None) -> None:
        """Greeting, EHLO (HELO after a refusal), STARTTLS as the policy says,
        then SASL authentication when ``sasl`` (smtp_sasl.SaslRequest) says so.

        On port 25 (LOOP_DETECT_PORT; myhostname is "" for LMTP), a
        greeting that names myhostname first gets Postfix's warning "host
        X[a]:25 greeted me with my own hostname NAME" and the session goes
        on; a server that names itself myhostname in its EHLO reply (not
        in a HELO reply) is this host (behind a NAT or a proxy): "mail
        for NEXTHOP loops back to myself", 5.4.6 at a best MX host, 4.4.6
        at a backup (smtp_proto.c), also when it does so only inside TLS.
        On other ports neither is checked."""
        event = await self.next_event()
        if isinstance(event, ConnectionLost):
            raise self._lost(event)
        assert isinstance(event, Greeting)
        if not event.ok:
            dsn = event.response.dsn
            if self.skip_5xx_greeting and dsn.startswith("5"):
                # smtp_skip_5xx_greeting: Postfix smtp_helo() makes the
                # status soft (554 5.7.1 is deferred as 4.7.1), so the next
                # server is tried and the last one's recipients are deferred.
                dsn = "4" + dsn[1:]
            raise SessionError(dsn, refused_text(self.target.peer, event.response),
                               connected=True)
        if not self.always_ehlo and not says_esmtp(event.response, myhostname):
            self.send_ehlo = False      # Postfix smtp_helo(): HELO unless the banner says ESMTP
        if self.target.port != LOOP_DETECT_PORT:
            myhostname = ""
        if myhostname and greeting_name(event.response).lower() == myhostname.lower():
            log.warning(f"host {self.target.relay} greeted me with my own hostname {myhostname}")
        if self.pix is not None and _pix_greeting(event.response):
            log.info(f"enabling PIX workarounds: {' '.join(self.pix.words)} for "
                     f"{self.target.relay}", queue_id=self.pix.queue_id)
            if "disable_esmtp" in self.pix.words and not self.cc.lmtp:
                self.send_ehlo = False
            if "delay_dotcrlf" in self.pix.words:
                self.pix_delay = self.pix.delay
        await self._ehlo()
        self._check_loop(myhostname, nexthop)
        await self._starttls(tls, nexthop)
        self._check_loop(myhostname, nexthop)   # smtp_helo() again, on the EHLO reply inside TLS
        if sasl is not None:
            await sasl.login(self)

    async def _starttls(self, tls: TlsPolicy, nexthop: str) -> None:
        if self.cc.tls_active or not tls.wanted and not tls.required:
            if tls.note_offer and self.cc.capabilities.starttls and not self.cc.tls_active:
                log.info(f"Host offered STARTTLS: [{self.target.host}]")
            return
        if not self.cc.capabilities.starttls:
            if tls.required:
                raise SessionError("4.7.4", f"TLS is required, but was not offered by host "
                                   f"{self.target.peer}", connected=True)
            return
        self._pending += self.cc.starttls()
        event = await self.next_event()
        if isinstance(event, ConnectionLost):
            raise self._lost(event)
        if isinstance(event, StartTlsRefused):
            if tls.required:
                # Postfix smtp_proto.c, smtp_start_tls() caller: smtp_site_fail()
                # with the server's reply, so its status (a 5xx bounces) and
                # Remote-MTA / Diagnostic-Code go into the notice (seen live
                # with Postfix 3.7.11: 454 4.7.0 defers as 4.7.0, 554 5.7.3
                # bounces as 5.7.3).
                raise SessionError(event.response.dsn,
                                   f"TLS is required, but host {self.target.peer} "
                                   f"refused to start TLS: {event.response.text}",
                                   connected=True,
                                   remote=(self.target.host, event.response.text))
            return
        assert isinstance(event, StartTlsReady)
        await self._handshake(tls, nexthop)
        await self._ehlo()

    def _check_loop(self, myhostname: str, nexthop: str) -> None:
        if not myhostname or self.ehlo_name.lower() != myhostname.lower():
            return
        log.warning(f"host {self.target.relay} replied to HELO/EHLO with my own hostname {myhostname}")
        raise SessionError("5.4.6" if self.target.best else "4.4.6",
                           f"mail for {nexthop or self.target.host} loops back to myself",
                           connected=True, final=True)

    async def _handshake(self, tls: TlsPolicy, nexthop: str = "") -> None:
        assert tls.engine is not None and tls.wrap is not None
        try:
            engine = tls.engine(self.target.host, nexthop)
            for name in engine.refused_names:
                # Postfix: OpenSSL takes one address to match (SSL_add1_host).
                log.warning(f'{self.target.relay}: error loading match name: "{name}"')
            stream = tls.wrap(self.stream, engine)
            await stream.handshake(self._timeout("smtp_starttls_timeout"))   # type: ignore[attr-defined]
        except Exception as e:
            self.broken = True
            # may: the caller reconnects in plaintext; encrypt and up: the
            # next MX host is tried (Postfix smtp_tls_fallback_level).
            raise SessionError("4.7.5", f"Cannot start TLS: handshake failure with "
                               f"{self.target.peer}: {e}", connected=True,
                               tls_failed=True) from None
        from mailsys.tls import DANE_NO_MATCH, established_text, verify_failure
        # The level decides only now, as in Postfix: first the reason the
        # certificate failed, then (smtp_tls_loglevel >= 1) the session.
        failure = None
        if tls.fingerprints:
            if not _fingerprint_matches(engine, tls.fingerprints, tls.digest):
                failure = (f"server certificate verification failed for {self.target.relay}: "
                           f"num={DANE_NO_MATCH}:no matching DANE TLSA records")
        elif tls.level in ("verify", "secure"):
            failure = verify_failure(engine, self.target.relay)
        if failure is not None:
            log.info(failure)
        if tls.log:
            log.info(established_text(engine, self.target.relay))
        if failure is not None:
            # Postfix smtp_start_tls(): the level demands a verified peer,
            # so no mail goes over this session.
            self.broken = True
            raise SessionError("4.7.5", "Server certificate not verified", connected=True)
        self.stream = stream
        self.tls = engine
        self.cc.tls_started()

    async def _ehlo(self) -> None:
        if self.discard_note:
            log.info(self.discard_note)     # Postfix smtp_helo(): once, before STARTTLS
            self.discard_note = ""
        if self.send_ehlo or self.cc.lmtp:
            self._pending += self.cc.ehlo()
            event = await self.next_event()
        else:
            event = EhloRejected(None)      # smtp_never_send_ehlo: HELO at once
        said_helo = isinstance(event, EhloRejected)
        if said_helo:
            self._pending += self.cc.helo()
            event = await self.next_event()
        if isinstance(event, ConnectionLost):
            raise self._lost(event)
        if isinstance(event, HeloRejected):
            self.broken = True
            raise SessionError(event.response.dsn, refused_text(self.target.peer, event.response),
                               connected=True)
        assert isinstance(event, EhloDone)
        words = event.response.lines[0][4:].split() if event.response.lines else []
        # Postfix reads the server's name from an EHLO reply only.
        self.ehlo_name = words[0] if words and not said_helo else ""

    # -- mail ---------------------------------------------------------------------

    async def send_mail(self, sender: str, recipients: Sequence[Rcpt], content: bytes,
                        **params: object) -> TransactionResult:
        """One message; raises SessionError (with .settled) when the session
        fails, StaleSession when a cached one failed its RSET check."""
        if self.block_early_reply and self.tls is not None and self.cc.unread:
            # CVE-2009-3555: replies to commands we did not send, waiting
            # inside TLS before our MAIL FROM (Postfix smtp_proto.c: the
            # recipients defer, 4.7.0, and a warning names the policy).
            log.warning(f"server {self.target.peer} violates {self.block_early_reply} policy")
            self.broken = True
            raise SessionError("4.7.0", "unexpected server message", connected=True)
        self.uses += 1
        probe, self.probe = self.probe, False
        self._pending += self.cc.send_mail(sender, recipients, content, probe=probe,
                                           **params)   # type: ignore[arg-type]
        try:
            event = await self.next_event()
        except SessionError as e:
            # A failed write or no answer to the RSET: the server had
            # nothing of this message yet (its replies come in order).
            if probe and self.cc.probing:
                raise self._stale(e.text) from None
            raise
        if isinstance(event, ProbeFailed):
            # smtp_proto.c's words for the cached-session check: "RSET probe".
            raise self._stale(f"host {self.target.peer} said: {event.response.text} "
                              f"(in reply to {RSET_PROBE})" if event.response is not None
                              else f"lost connection with {self.target.peer} while sending RSET probe")
        if isinstance(event, ConnectionLost):
            raise self._lost(event)
        assert isinstance(event, TransactionDone), event
        return event.result

    def _stale(self, text: str) -> StaleSession:
        self.broken = True
        return StaleSession("4.4.2", text, connected=True)

    @property
    def reusable(self) -> bool:
        return not self.broken and self.cc.state is ClientState.READY

    async def close(self) -> None:
        """QUIT when the session is still sane, then close; never raises."""
        with trio.move_on_after(min(QUIT_GRACE, self._timeout("smtp_quit_timeout"))) as scope:
            scope.shield = True
            try:
                if not self.broken and not self.cc.closed:
                    if self.cc.state in (ClientState.HELLO, ClientState.READY, ClientState.REFUSED):
                        self._pending += self.cc.quit()
                        if self.skip_quit:
                            # smtp_skip_quit_response: nothing waits for the
                            # 221 (seen live: Postfix 3.7 hangs up right
                            # after QUIT).
                            out, self._pending = self._pending, b""
                            await self.stream.send_all(out)
                        else:
                            event = await self.next_event()
                            assert isinstance(event, (QuitDone, ConnectionLost))
            except (SessionError, AssertionError, trio.BrokenResourceError,
                    trio.ClosedResourceError, OSError):
                pass
            try:
                await self.stream.aclose()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass
        if scope.cancelled_caught:
            trio_close(self.stream)


def _pix_greeting(response) -> bool:
    """A greeting of "2", "0", "*" and blanks only: Postfix's sign of a CISCO
    PIX that hides the real banner (smtp_proto.c: strspn "20 *\\t\\n")."""
    return all(c in "20 *\t\n" for c in "\n".join(response.lines))


def _fingerprint_matches(engine, wanted: Sequence[str], digest: str) -> bool:
    """Whether the peer certificate, or its public key (DER SubjectPublicKeyInfo),
    has one of the wanted digests (Postfix tls_fprint.c: both are checked)."""
    from mailsys.tls import fingerprints
    cert = engine.peer_certificate
    if cert is None:
        return False
    want = {w.replace(":", "").lower() for w in wanted}
    return any(p.replace(":", "").lower() in want for p in fingerprints(cert, digest))


def trio_close(stream: trio.abc.Stream) -> None:
    """Close a stream's socket at once, without the niceties that timed out."""
    sock = getattr(getattr(stream, "transport_stream", stream), "socket", None)
    if sock is not None:
        sock.close()


def _strerror(e: OSError) -> str:
    # trio's connect() decorates strerror ("Error connecting to ..."); Postfix
    # prints the plain system text.
    return os.strerror(e.errno) if e.errno else (e.strerror or os.strerror(errno.EIO))


async def open_stream(target: Target, timeout: float, bind: Mapping[int, str] | None = None
                      ) -> FastStream:
    """TCP connect within smtp_connect_timeout (0: no limit of its own), or
    a UNIX-domain connect for a socket target; SessionError says why not.

    bind maps an address family to the local address to send from
    (smtp_bind_address, smtp_bind_address6)."""
    if target.path:
        family = socket.AF_UNIX
    else:
        family = socket.AF_INET6 if ":" in target.address else socket.AF_INET
    sock = trio.socket.socket(family, socket.SOCK_STREAM)
    try:
        source = (bind or {}).get(family)
        if target.path:
            if len(os.fsencode(target.path)) >= 108:      # sizeof(sun_path) on Linux
                # Postfix smtp_connect_unix(): "unix-domain name too long".
                log.warning(f"unix-domain name too long: {target.path}")
                raise SessionError("4.3.5", "Server configuration error")
        elif source:
            try:
                await sock.bind((source, 0))
            except OSError as e:
                raise SessionError("4.4.1", f"bind {source} port 0: {_strerror(e)}") from None
        with trio.fail_after(timeout) if timeout > 0 else trio.CancelScope():
            await sock.connect(target.path or (target.address, target.port))
    except trio.TooSlowError:
        sock.close()
        raise SessionError("4.4.1", f"connect to {target.relay}: Connection timed out") from None
    except OSError as e:
        sock.close()
        raise SessionError("4.4.1", f"connect to {target.relay}: {_strerror(e)}") from None
    except BaseException:
        sock.close()
        raise
    return FastStream.from_trio_socket(sock)


async def connect(target: Target, timeouts: Mapping[str, float], *, helo_name: str,
                  tls: TlsPolicy = TlsPolicy(), pipelining: bool = True,
                  body_line_limit: int = 0, myhostname: str = "",
                  nexthop: str = "", bind: Mapping[int, str] | None = None,
                  lmtp: bool = False, sasl=None, discard: Sequence[str] = (),
                  send_ehlo: bool = True, always_ehlo: bool = True,
                  skip_quit: bool = True, skip_5xx_greeting: bool = True,
                  reply_filter: Callable[[str], str | None] | None = None,
                  per_request_deadline: bool = False,
                  min_data_rate: float = 500.0,
                  block_early_reply: str = "",
                  pix: PixWorkarounds | None = None,
                  trace: Trace | None = None) -> SmtpSession:
    """A session past EHLO (LHLO with lmtp), STARTTLS and AUTH with one host,
    or SessionError. sasl: a smtp_sasl.SaslRequest (None: no SASL).
    discard: the smtp_discard_ehlo_keywords words for this server;
    send_ehlo=False: smtp_never_send_ehlo; always_ehlo=False:
    smtp_always_send_ehlo = no (EHLO only when the greeting says ESMTP);
    skip_quit: smtp_skip_quit_response (close() does not wait for the 221);
    skip_5xx_greeting: smtp_skip_5xx_greeting (a 5xx greeting fails softly);
    reply_filter: smtp_reply_filter's lookup, applied to each reply line;
    per_request_deadline, min_data_rate: smtp_per_request_deadline and
    smtp_min_data_rate (SmtpSession.next_event); block_early_reply: the
    name of smtp_tls_block_early_mail_reply (or lmtp_'s) when it is on
    (SmtpSession.send_mail); pix: smtp_pix_workarounds for this delivery;
    trace: called with each command and reply line (debug_peer_list)."""
    stream = await open_stream(target, float(timeouts.get("smtp_connect_timeout", 30.0)), bind)
    options = dict(pipelining=pipelining, body_line_limit=body_line_limit,
                   lmtp=lmtp, dummy_mail_auth=sasl is not None and sasl.dummy_mail_auth,
                   discard=discard_names(discard), reply_filter=reply_filter)
    cc = ClientConnection(helo_name, **options) if trace is None \
        else TracedClientConnection(helo_name, trace=trace, **options)
    session = SmtpSession(stream, cc, target, timeouts)
    session.send_ehlo = send_ehlo
    session.always_ehlo = always_ehlo or lmtp
    session.skip_quit = skip_quit
    session.skip_5xx_greeting = skip_5xx_greeting
    session.per_request = per_request_deadline
    session.min_data_rate = float(min_data_rate)
    session.block_early_reply = block_early_reply
    session.pix = pix
    session.discard_note = discard_text(discard)
    try:
        await session.hello(tls, myhostname, nexthop, sasl)
    except BaseException:
        await session.close()
        raise
    return session


@dataclass(slots=True)
class _Idle:
    session: SmtpSession
    expires: float


@dataclass(slots=True)
class ConnectionCache:
    """Idle sessions per next hop, kept for time_limit seconds (0: no caching)."""

    time_limit: float = 2.0
    _idle: dict[str, list[_Idle]] = field(default_factory=dict)
    _changed: trio.Event = field(default_factory=trio.Event)
    _wake: float = float("inf")        # when run() wakes next by itself

    def put(self, key: str, session: SmtpSession, until: float | None = None) -> bool:
        """Keep a session that is ready for the next message, no longer than
        until (trio time: smtp_connection_reuse_time_limit); False when refused."""
        if self.time_limit <= 0 or not session.reusable:
            return False
        if len(self._idle.get(key, ())) >= MAX_IDLE_PER_KEY:
            return False
        expires = trio.current_time() + self.time_limit
        if until is not None:
            if until <= trio.current_time():
                return False
            expires = min(expires, until)
        self._idle.setdefault(key, []).append(_Idle(session, expires))
        if expires < self._wake:
            # Only a session that expires before run()'s wake-up is news to
            # it: with one time limit for all, that is the first after a
            # quiet spell, not every message of a busy one.
            self._changed.set()
        return True

    async def take(self, key: str) -> SmtpSession | None:
        """A cached session for key, or None. Its next send_mail() checks it
        with RSET (and raises StaleSession when that fails)."""
        while self._idle.get(key):
            idle = self._idle[key].pop()
            if not self._idle[key]:
                del self._idle[key]
            session = idle.session
            if idle.expires > trio.current_time() and session.reusable:
                session.probe = True
                return session
            await session.close()
        return None

    def __len__(self) -> int:
        return sum(len(v) for v in self._idle.values())

    async def run(self) -> None:
        """Close sessions whose time is up; runs for the life of the process."""
        async with trio.open_nursery() as nursery:
            try:
                while True:
                    now = trio.current_time()
                    for key in list(self._idle):
                        keep = [i for i in self._idle[key] if i.expires > now]
                        for i in self._idle[key]:
                            if i.expires <= now:
                                nursery.start_soon(i.session.close)
                        if keep:
                            self._idle[key] = keep
                        else:
                            del self._idle[key]
                    self._wake = min((i.expires for v in self._idle.values() for i in v),
                                     default=float("inf"))
                    self._changed = trio.Event()
                    with trio.move_on_at(self._wake):
                        await self._changed.wait()
            finally:
                for v in self._idle.values():
                    for i in v:
                        trio_close(i.session.stream)
                self._idle.clear()
