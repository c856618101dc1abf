"""smtp_io - pump a trio stream through a sans-IO ServerConnection.

SYNOPSIS
    pump = SmtpPump(stream, conn, policy, timeout=cfg.smtpd_timeout,
                    error_sleep=cfg.smtpd_error_sleep_time)
    end = await pump.run(greeting)  # End.QUIT, LOST, TIMEOUT, ERRORS, HANGUP
    await pump.send_greeting(reply) # a 421 refusal instead of a session
    pump.stream                     # the stream in use now (TLS after STARTTLS)
    pump.unread(100)                # what the client sent beyond the current command

DESCRIPTION
    The I/O half of smtpd (h11's TrioHTTPWrapper in shape): it reads client
    bytes in large pieces, feeds them to mailsys.smtp.ServerConnection,
    asks the policy for the answer to each event that owes one, and writes
    the replies. It knows nothing of restrictions, anvil or the queue; the
    policy (mailsys.runtime.smtpd_session) does.

    Every read and every write runs under smtpd_timeout. When a read times
    out the client gets "421 4.4.2 <host> Error: timeout exceeded" and the
    session ends with End.TIMEOUT (Postfix smtpd.c).

    With per_request (smtpd_per_request_deadline = yes, Postfix 3.7)
    smtpd_timeout is a deadline for a whole request instead: a command line
    (or an AUTH response) must be complete within it however the client
    trickles it, counted from the first read for it. Message content
    (DATA, a BDAT chunk) starts with smtpd_timeout too, and each read of N
    bytes adds N / min_data_rate seconds, never beyond smtpd_timeout from
    now (Postfix's vstream deadline), so only a client sending at least
    min_data_rate bytes a second can go on indefinitely. Postfix 3.7 seen
    with smtpd_timeout = 3s: a command line trickled a byte every half
    second gets the 421 after 3.5 s ("timeout after CONNECT"); content in
    complete 48-byte lines at 200 bytes a second is cut off after 5.5 s
    ("timeout after DATA (1050 bytes)"), at 1000 bytes a second never.
    The reads are the ones that differ: a write is one send_all() under
    smtpd_timeout either way.

    With a footer (smtpd_reject_footer), every 4xx and 5xx reply goes out
    as footer(reply) makes it.

    Replies to pipelined commands are collected and written in one piece
    when the connection has to wait for the client again, before a delay
    (smtpd_error_sleep_time) and when the session ends: Postfix's
    smtp_flush() before each read. A client that waits for each reply gets
    it at once, because it sends nothing until then and the pump must read.

    STARTTLS: after the 220 is written the policy's start_tls(stream)
    returns the TLS stream (or None when the handshake failed: the session
    ends), and the core forgets the session (conn.start_tls_done()). What
    the client pipelined after STARTTLS in plaintext is dropped by the core.

POLICY INTERFACE
    async answer(event) -> Reply | None   None: the core's default reply; also
                                          asked about an unknown command (the
                                          RemoteProtocolError, .unknown set):
                                          None keeps the core's refusal;
                                          and, first, about a refusal marked
                                          .policy_first (a Reply overrules it)
    chunk(data: bytes)                    message content, in order; may return an
                                          awaitable (content streamed to a
                                          before-queue filter), awaited before
                                          the next read
    bdat(event: Bdat)                     a BDAT chunk begins (its content follows)
    refused(err: RemoteProtocolError)     the core refused a command itself
    async start_tls(stream) -> Stream | None
"""

from __future__ import annotations

import enum
import math
from collections.abc import Awaitable, Callable
from typing import Protocol

import trio

from mailsys.smtp import (NEED_DATA, PAUSED, REPLY_OWED, Bdat, ConnectionClosed, DataChunk,
                          RemoteProtocolError, Reply, ServerConnection, StartTls, State)

# One read takes up to this much: a whole pipelined transaction or a large
# piece of message content per system call, so the per-byte cost stays in C.
READ_SIZE = 65536

# The states in which the client sends message content.
_CONTENT = (State.DATA, State.BDAT)

# The 421 after a timeout is a courtesy: a client that does not read gets
# no longer than this.
FAREWELL_TIMEOUT = 1.0


class End(enum.Enum):
    QUIT = "quit"               # the core closed after a 221 (QUIT, non-SMTP command)
    HANGUP = "hangup"           # we closed with a 421/521 (too many errors, limits)
    LOST = "lost connection"    # the client went away
    TIMEOUT = "timeout"         # smtpd_timeout passed while reading or writing
    TLS_FAILED = "tls failed"   # the STARTTLS handshake failed


class Policy(Protocol):
    async def answer(self, event: object) -> Reply | None: ...
    def chunk(self, data: bytes) -> Awaitable[None] | None: ...
    def bdat(self, event: Bdat) -> None: ...
    def refused(self, err: RemoteProtocolError) -> None: ...
    def replaced(self, received: str, run: str) -> None: ...     # smtpd_command_filter
    def long_request(self, text: str) -> None: ...               # a command cut at the limit
    async def start_tls(self, stream: trio.abc.Stream) -> trio.abc.Stream | None: ...


class _Lost(Exception):
    """The client's side of the stream is gone (reset, broken pipe, EOF on write)."""


class SmtpPump:
    """One session's I/O loop; see the module description."""

    def __init__(self, stream: trio.abc.Stream, conn: ServerConnection, policy: Policy, *,
                 timeout: float, error_sleep: float = 1.0, timeout_reply: Reply | None = None,
                 footer: Callable[[Reply], Reply] | None = None,
                 per_request: bool = False, min_data_rate: int = 500) -> None:
        self.stream = stream
        self.conn = conn
        self.policy = policy
        self.timeout = timeout
        self.error_sleep = error_sleep
        self.timeout_reply = timeout_reply
        # smtpd_reject_footer: applied to every 4xx and 5xx reply written.
        self.footer = footer
        self._slack = timeout / 100
        self._out = bytearray()
        # run()'s session-wide cancel scope; its deadline is armed at the
        # start of each read (_reading), write and answer, and disarmed
        # before anything else that may wait (stop_clock(), the error
        # sleep, the TLS handshake).
        self._deadline: trio.CancelScope | None = None
        self._reading = False
        # smtpd_per_request_deadline: another read method, chosen once, so
        # that the default per-read timeout pays nothing for it.
        self.min_data_rate = min_data_rate
        if per_request:
            self._receive = self._receive_per_request

    def unread(self, limit: int = 100) -> bytes:
        """The first `limit` bytes the client sent that the core has not read
        yet: the text of Postfix's "improper command pipelining" line."""
        return self.conn.peek(limit)

    async def send_greeting(self, reply: Reply) -> bool:
        """Write the 220 (or a 421 refusal); False when the client is already gone."""
        self._out += self.conn.send(self._footed(reply))
        try:
            await self._flush()
        except (_Lost, trio.TooSlowError):
            return False
        return True

    async def run(self, greeting: Reply | None = None) -> End:
        """The session, after the greeting if one is given (else sent already)."""
        # One cancel scope for the whole session whose deadline is armed
        # when a read, a write or an answer starts, instead of a
        # fail_after() scope per system call: a scope costs several times
        # what moving a deadline does, and a message takes about fifteen
        # reads and writes. Arming keeps a deadline that is at most a
        # hundredth of the timeout early, so while the client keeps up the
        # deadline does not move at all; it is disarmed only before a wait
        # for something other than the client (stop_clock, _disarm), and
        # the next read or write arms it again.
        scope = self._deadline = trio.CancelScope()
        reading = False
        try:
            with scope:
                if greeting is not None:
                    self._out += self.conn.send(self._footed(greeting))
                    await self._flush()
                return await self._loop()
        except _Lost:
            return End.LOST
        finally:
            reading, self._deadline = self._reading, None
        # Only our own deadline gets here: any other cancellation propagates.
        if reading and self.timeout_reply is not None:
            with trio.move_on_after(FAREWELL_TIMEOUT):
                try:
                    await self.stream.send_all(self._footed(self.timeout_reply).render())
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    pass
        return End.TIMEOUT

    def _replaced(self) -> None:
        received, run = self.conn.replaced
        self.conn.replaced = None
        self.policy.replaced(received, run)

    def _long_request(self) -> None:
        text, self.conn.long_request = self.conn.long_request, None
        self.policy.long_request(text)

    async def _loop(self) -> End:
        conn = self.conn
        while True:
            try:
                event = conn.next_event()
            except RemoteProtocolError as err:
                if conn.long_request is not None:
                    self._long_request()
                if conn.replaced is not None:
                    self._replaced()
                event, reply = err, None
                if err.policy_first:
                    # The policy's check comes first (smtpd: the recipient rate).
                    self._arm(self._deadline, False)
                    reply = await self.policy.answer(err)
                    if reply is not None:
                        conn.overrule()
                if reply is None:
                    self.policy.refused(err)
                    reply = err.reply
                    if err.unknown is not None:
                        # An unknown command: the policy may answer it (smtpd's milters).
                        self._arm(self._deadline, False)
                        reply = await self.policy.answer(err) or reply
            else:
                if conn.long_request is not None:
                    self._long_request()
                if conn.replaced is not None:
                    self._replaced()
                if event is NEED_DATA:
                    await self._flush()
                    conn.receive_data(await self._receive())
                    continue
                if isinstance(event, DataChunk):
                    pending = self.policy.chunk(event.data)
                    if pending is not None:      # content for a before-queue filter
                        await pending
                    continue
                if isinstance(event, ConnectionClosed):
                    return End.LOST
                if isinstance(event, Bdat):
                    self.policy.bdat(event)
                    continue
                if event is PAUSED:
                    # Every owed reply is sent before the next call: a bug.
                    raise RuntimeError("SMTP core paused with nothing owed")
                if not isinstance(event, REPLY_OWED):
                    continue
                # The answer gets at least 99 % of smtpd_timeout of its own
                # (usually the deadline the read armed: no move); a policy
                # about to wait on another server stops the clock first.
                self._arm(self._deadline, False)
                reply = await self.policy.answer(event) or conn.default_reply()
            if conn.should_delay():
                await self._flush()
                self._disarm()
                await trio.sleep(self.error_sleep)
            self._out += conn.send(reply if self.footer is None or reply.code < 400
                                   else self.footer(reply))
            if conn.closed:
                await self._flush()
                return End.QUIT if reply.code == 221 else End.HANGUP
            if isinstance(event, StartTls) and reply.code == 220:
                await self._flush()
                self._disarm()
                tls = await self.policy.start_tls(self.stream)
                if tls is None:
                    return End.TLS_FAILED
                self.stream = tls
                conn.start_tls_done()

    def _footed(self, reply: Reply) -> Reply:
        return reply if self.footer is None or reply.code < 400 else self.footer(reply)

    def stop_clock(self) -> None:
        """The policy is about to wait on another server (the queue, anvil,
        DNS, SASL): smtpd_timeout stops counting until the next read or write,
        as Postfix times only the client's own reads and writes."""
        if self._deadline is not None:
            self._disarm()

    def _arm(self, scope: trio.CancelScope, reading: bool) -> None:
        # Moving a deadline is the dearest part of a read (trio re-files the
        # scope); while reads follow each other closely (message content)
        # a deadline that is at most a hundredth of the timeout early is
        # kept: a silent client is cut off after 99 to 100 % of
        # smtpd_timeout, never later.
        deadline = trio.current_time() + self.timeout
        if not deadline - self._slack <= scope.deadline <= deadline:
            scope.deadline = deadline
        self._reading = reading

    def _disarm(self) -> None:
        scope = self._deadline
        if scope.deadline != math.inf and not scope.cancel_called:
            scope.deadline = math.inf

    async def _receive(self) -> bytes:
        self._arm(self._deadline, True)
        try:
            return await self.stream.receive_some(READ_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return b""          # the core turns end-of-file into ConnectionClosed

    async def _receive_per_request(self) -> bytes:
        scope = self._deadline
        # A read that follows a read goes on with the same request; one
        # after a reply, an answer or a wait elsewhere (stop_clock) starts
        # a new one.
        if not self._reading or scope.deadline == math.inf:
            scope.deadline = trio.current_time() + self.timeout
            self._reading = True
        try:
            data = await self.stream.receive_some(READ_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return b""
        if self.conn.state in _CONTENT:
            scope.deadline = min(scope.deadline + len(data) / self.min_data_rate,
                                 trio.current_time() + self.timeout)
        return data

    async def _flush(self) -> None:
        if not self._out:
            return
        data = bytes(self._out)
        self._out.clear()
        scope = self._deadline
        try:
            if scope is None:           # the greeting, before run()
                with trio.CancelScope(deadline=trio.current_time() + self.timeout) as greeting:
                    await self.stream.send_all(data)
                if greeting.cancelled_caught:
                    raise trio.TooSlowError
                return
            self._arm(scope, False)
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
            raise _Lost() from e
