"""server - ServerConnection, the sans-IO ESMTP server (Postfix smtpd's protocol engine).

The caller owns the socket. Three calls make the whole surface (h11 style):

    conn = ServerConnection(settings)
    out = conn.send(replies.greeting(banner))      # bytes to write
    conn.receive_data(data)                         # b"" means the client closed
    event = conn.next_event()                       # an Event, NEED_DATA or PAUSED
    out = conn.send(reply)                          # answer the event (or conn.default_reply())

Every command yields one event that owes a reply (or a RemoteProtocolError
carrying the reply the core chose); until that reply is sent next_event()
returns PAUSED and reads nothing further. So replies leave in command order
however much the client pipelined, and nothing is lost or reordered: the
unread bytes wait in the buffer. Message content arrives as DataChunk events.

What the core decides itself, with Postfix's texts (replies.py): command
syntax, command order (503s), ESMTP parameter checks, SIZE= and body size
limits, smtpd_recipient_limit, bare LF handling, BDAT framing, SASL base64
framing and ``*`` cancel, XCLIENT/XFORWARD syntax, order and authorization
(the caller sets xclient_allowed / xforward_allowed from its tables; an
XCLIENT is answered with a new greeting, after which the core forgets
HELO, AUTH and the transaction), the CVE-2011-0411 plaintext discard after
STARTTLS, non-SMTP command detection, error counting up to
smtpd_hard_error_limit. What it leaves to the caller (policy): everything
that needs a table, DNS, anvil, a password or the queue; and the 501 for a
VRFY argument without one good address, which Postfix gives only after
the recipient rate and the milters (ev.Vrfy: address None, the default
reply).

Per-command statistics for the ``disconnect from`` log line are kept the way
smtpd.c smtpd_format_cmd_stats() does; see command_stats().

The I/O shell's loop (services/smtpd over a trio stream), in outline:

    await send_all(conn.send(greeting_or_421))
    while not conn.closed:
        try:
            event = conn.next_event()
        except RemoteProtocolError as err:        # the core refused; reply is exact
            event, reply = None, err.reply
        else:
            if event is NEED_DATA:                # read only now: the buffer stays bounded
                conn.receive_data(await receive_some(...))   # under fail_after(smtpd_timeout)
                continue
            if isinstance(event, ConnectionClosed):
                break                             # log "lost connection after {conn.where}"
            if isinstance(event, DataChunk):
                stream event.data to cleanup; continue
            reply = policy(event) or conn.default_reply()    # every REPLY_OWED event
        if conn.should_delay():
            await sleep(smtpd_error_sleep_time)
        await send_all(conn.send(reply))
        if isinstance(event, StartTls) and reply.code == 220:
            wrap the stream in TLS; conn.start_tls_done()
    log f"disconnect from {client} {conn.command_stats()}"
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections import deque
from typing import Literal

from mailsys.maillog.postfix import printable
from mailsys.policy.hostnames import truncate_dot, valid_hostname

from . import _grammar as g
from . import events as ev
from . import replies as R
from ._body import DataReader
from ._params import ParamError, mail_params, rcpt_params
from ._state import ABORT as _ABORT
from ._state import BDAT_ERROR as _BDAT_ERROR
from ._state import BDAT_SKIP as _BDAT_SKIP
from ._state import ERROR as _ERROR
from ._state import GREETING, IN_TRANSACTION, Outcome, State, outcome_of, transition
from ._extract_addr import extract_address, smtpd_tokens, smtpd_words
from ._xclient import NEUTER, XattrError, parse_xclient, parse_xforward
from .address import min_user, numeric_domain, numeric_literal, parse_path
from .errors import LocalProtocolError, RemoteProtocolError
from .replies import Reply
from .settings import Settings

# smtpd.c smtpd_cmd_table order, which is the order of the disconnect statistics.
# Postfix has no HELP command: it is an unknown command like any other.
STAT_ORDER = ("helo", "ehlo", "xclient", "xforward", "starttls", "auth", "mail", "rcpt",
              "data", "bdat", "rset", "noop", "vrfy", "etrn", "quit", "unknown")
# The message of a refused MAIL/RCPT address; the I/O shell logs Postfix's
# "Illegal address syntax from CLIENT in MAIL command: <path>" from it.
ILLEGAL_ADDRESS = "illegal address syntax: "
# The message of a command line refused for its bare LF (and of the
# content refused for one): the I/O shell logs Postfix's "NOQUEUE: reject:
# CMD from CLIENT: bare <LF> received; from=<> ..." from it.
BARE_LF = "bare <LF> received"
# The messages of a BDAT refused for its syntax (the command line
# follows) and of one whose chunk would make the message too big: the I/O
# shell logs Postfix's "QID: malformed BDAT command syntax from CLIENT:
# LINE" and "QID: BDAT request from CLIENT exceeds message size limit".
MALFORMED_BDAT = "malformed BDAT command syntax: "
BDAT_TOO_BIG = "BDAT request exceeds message size limit"
# The message of a refused "BDAT 0": the I/O shell logs Postfix's
# "QID: null BDAT request from CLIENT" warning from it.
NULL_BDAT = "null BDAT request"
# The message of an AUTH whose initial response is no base64, before the
# mechanism: the I/O shell logs Postfix's "SASL PLAIN authentication
# failed" warning from it (a continued response's is the exchange's own).
BAD_INITIAL_RESPONSE = "bad base64 initial response for "
# SMTPD_CMD_FLAG_LIMIT: commands that can be repeated without cost to the
# client, counted against smtpd_junk_command_limit.
_JUNK = frozenset({"helo", "ehlo", "rset", "noop", "vrfy", "etrn"})
# What _cmd holds for a verb of smtpd_noop_commands.
_CONFIGURED_NOOP = "smtpd_noop_commands"

# How much of a line refused as too long is kept for the log (Postfix: %.30s).
_SKIPPED_HEAD = 30
# SMTPD_CMD_FLAG_PRE_TLS: allowed before STARTTLS when TLS is required.
_PRE_TLS = frozenset({"HELO", "EHLO", "STARTTLS", "NOOP", "QUIT"})



class ServerConnection:
    """One SMTP session, server side. Not thread-safe; one per client."""

    def __init__(self, settings: Settings | None = None, *, tls_active: bool = False,
                 authenticated: bool = False) -> None:
        self.settings = settings if settings is not None else Settings()
        self.state = State.GREETING
        self.tls_active = tls_active          # wrapper mode (smtps) starts with True
        self.authenticated = authenticated
        # smtpd_authorized_xclient_hosts / _xforward_hosts matched this client:
        # the caller decides (a table lookup), the core advertises and obeys.
        self.xclient_allowed = False
        self.xforward_allowed = False
        self.helo_name: str | None = None
        self.esmtp = False
        self.mail: ev.MailFrom | None = None
        self.rcpt_count = 0                   # recipients accepted in this transaction
        self.error_count = 0
        self.junk_count = 0
        # The last command smtpd_command_filter replaced: (as received, as run).
        self.replaced: tuple[str, str] | None = None
        # The last command cut at line_length_limit, for Postfix's warning
        # "CLIENT: request longer than 2048: NOOP xxxxxxxxxxxxxxxxxxxxxxxxx..."
        # (the caller logs it and sets it back to None).
        self.long_request: str | None = None
        # Set by the caller before send(): the reply is the last one, then
        # the connection closes whatever its code (smtpd.c's "break" out of
        # the command loop, as for smtpd_forbid_unauth_pipelining's 554).
        self.hang_up = False
        self.where = "CONNECT"                # Postfix state->where, for "... after X from ..."
        self._line = ""                       # the command being answered, as the filter left it
        # The caller's 503 for every command but QUIT once the client
        # restrictions refused the client at connect (Postfix state->access_denied).
        self.access_denied: Reply | None = None
        self._buf = bytearray()
        self._eof = False
        self._pending: deque[ev.Event] = deque()
        self._owed: tuple[object, object, bool] | None = None   # (what, event-or-error, ok_override)
        self._cmd: str | None = None           # stats name of the command being answered
        self._counts: dict[str, list[int]] = {}
        self._overshoot = 0
        self._body: DataReader | None = None
        self._data_bytes = 0
        self._skip_line = False
        self._skipped = b""          # the start of the last line refused as too long
        self._cut = b""              # the first line_length_limit bytes of a command being skipped
        self._skip_bytes = 0
        self._skip_error: RemoteProtocolError | None = None
        self._bdat_remaining = 0
        self._bdat_size = 0
        self._bdat_last = False
        self._bdat_total = 0
        # What Postfix counts beyond the chunks' bytes (see _bdat_end).
        self._bdat_bare_lf = 0
        self._bdat_after_cr = False
        self._bdat_at_eol = True

    # ------------------------------------------------------------------ input

    def receive_data(self, data: bytes | bytearray) -> None:
        """Add bytes from the client; b"" means end of file."""
        if self.state is State.CLOSED:
            return
        if self._eof:
            if data:
                raise LocalProtocolError("data received after end of file")
            return
        if not data:
            self._eof = True
            return
        if self.state is State.TLS_HANDSHAKE:
            # Bytes after our 220 belong to the TLS layer, never to SMTP.
            return
        self._buf += data

    @property
    def buffered(self) -> int:
        """Unread client bytes (for Postfix's "improper command pipelining" note)."""
        return len(self._buf)

    def peek(self, limit: int) -> bytes:
        """The first ``limit`` unread client bytes: the text of that note."""
        return bytes(self._buf[:limit])

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    @property
    def protocol(self) -> str:
        """``ESMTP`` after EHLO, else ``SMTP``: the ``proto=`` field of Postfix's reject lines."""
        return "ESMTP" if self.esmtp else "SMTP"

    @property
    def received_protocol(self) -> str:
        """The ``with`` word of the Received: header (RFC 3848, RFC 6531 section 3.7.3):
        SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA, or UTF8SMTP... when the current
        transaction uses SMTPUTF8."""
        if not self.esmtp:
            return "SMTP"
        base = "UTF8SMTP" if self.mail is not None and self.mail.smtputf8 else "ESMTP"
        return base + ("S" if self.tls_active else "") + ("A" if self.authenticated else "")

    @property
    def data_bytes(self) -> int:
        """Raw bytes read in the current/last DATA phase ("lost connection after DATA (N bytes)")."""
        return self._body.received if self._body is not None else self._data_bytes

    # ----------------------------------------------------------------- events

    def next_event(self) -> ev.Event | object:
        """The next event, NEED_DATA, or PAUSED (a reply is owed, or TLS is pending).

        Raises RemoteProtocolError (with .reply, which is then owed) when the
        client broke the protocol. Raises nothing else."""
        if self._pending:
            return self._hand_out(self._pending.popleft())
        if self._owed is not None or self.state in (State.GREETING, State.TLS_HANDSHAKE):
            return ev.PAUSED
        if self.state is State.CLOSED:
            return ev.ConnectionClosed()
        try:
            if self.state is State.DATA:
                result = self._read_data()
            elif self.state is State.BDAT:
                result = self._read_bdat()
            elif self.state is State.AUTH:
                result = self._read_auth()
            else:
                result = self._read_command()
        except RemoteProtocolError as err:
            self._owed = (getattr(err, "_what", _ERROR), err, getattr(err, "_ok", False))
            raise
        if isinstance(result, (ev._Sentinel, ev.ConnectionClosed)):
            return result
        return self._hand_out(result)

    def _hand_out(self, event: ev.Event) -> ev.Event:
        if isinstance(event, ev.REPLY_OWED):
            self._owed = (type(event), event, False)
        elif isinstance(event, ev.Bdat):
            self._move(ev.Bdat, Outcome.NONE)
        return event

    def _move(self, what: object, outcome: Outcome) -> None:
        nxt = transition(self.state, what, outcome)
        if nxt is None:
            name = what.__name__ if isinstance(what, type) else what
            raise LocalProtocolError(
                f"can't answer {name} with a {outcome.value} reply in state {self.state.value}")
        self.state = nxt

    # ----------------------------------------------------------------- output

    def default_reply(self) -> Reply:
        """The canned Postfix answer to what is owed now.

        For EndOfData, Auth and AuthResponse there is none: those need the
        policy (a queue ID, a password check), so LocalProtocolError."""
        if self._owed is None:
            if self.state is State.GREETING:
                return R.greeting(f"{self.settings.hostname} ESMTP")
            raise LocalProtocolError("no reply is owed")
        what, obj, _ = self._owed
        if isinstance(obj, RemoteProtocolError):
            return obj.reply
        s = self.settings
        match obj:
            case ev.Helo(extended=True):
                return R.ehlo(s, tls_active=self.tls_active, xclient=self.xclient_allowed,
                              xforward=self.xforward_allowed)
            case ev.Helo():
                return R.helo(s.hostname)
            case ev.MailFrom():
                return R.MAIL_OK
            case ev.RcptTo():
                return R.RCPT_OK
            case ev.DataStart():
                return R.START_DATA
            case ev.DataRejected(reply=reply):
                return reply
            case ev.EndOfChunk(size=size):
                return R.bdat_chunk_ok(size)
            case ev.Rset() | ev.Noop():
                return R.OK
            case ev.Quit():
                return R.BYE
            case ev.Vrfy(address=None):
                return R.BAD_RECIPIENT
            case ev.Vrfy(argument=arg):
                return R.vrfy(arg)
            case ev.Etrn():
                return R.ETRN_OK
            case ev.StartTls():
                return R.READY_FOR_TLS
            case ev.Xforward():
                return R.OK
            case ev.Xclient():
                return R.greeting(f"{s.hostname} ESMTP")
        raise LocalProtocolError(f"{type(obj).__name__} has no default reply: policy must answer")

    def send(self, reply: Reply) -> bytes:
        """Answer what is owed; returns the bytes to write."""
        if not isinstance(reply, Reply):
            raise LocalProtocolError(f"send() takes a Reply, not {type(reply).__name__}")
        if self.state is State.CLOSED:
            raise LocalProtocolError("connection is closed")
        outcome = outcome_of(reply.code)
        hangup = reply.closes or self.hang_up
        if self._owed is None:
            if self.state is not State.GREETING:
                raise LocalProtocolError("no reply is owed")
            self._move(GREETING, outcome)
        else:
            owed = self._owed[1]
            hangup = hangup or (isinstance(owed, RemoteProtocolError) and owed.hangup)
            self._answer(reply, outcome)
        if hangup:
            self.state = State.CLOSED
            self._buf.clear()
            self._pending.clear()
        return reply.render()

    def _answer(self, reply: Reply, outcome: Outcome) -> None:
        what, obj, ok_override = self._owed  # type: ignore[misc]
        if isinstance(obj, RemoteProtocolError):
            if outcome is not Outcome.FAIL and not reply.closes:
                raise LocalProtocolError("a protocol error must be answered with 4xx/5xx or a hangup")
            self._move(what, Outcome.FAIL)
            if what == _BDAT_ERROR:
                self._reset_transaction()
        else:
            self._move(what, outcome)
            self._apply(obj, reply, outcome)
        self._owed = None
        if outcome is not Outcome.MORE:
            # A refusal chosen by the core counts as ok only where smtpd.c says so.
            success = ok_override if isinstance(obj, RemoteProtocolError) else reply.is_positive
            self._finish_command(success, counted=obj)

    def _apply(self, event: object, reply: Reply, outcome: Outcome) -> None:
        ok = outcome is Outcome.OK
        match event:
            case ev.Helo(name=name, extended=extended) if ok:
                # smtpd.c helo_cmd()/ehlo_cmd(): the name kept for later
                # checks, log lines and Received: is printable() and
                # neutered ("a b" is "a?b"); the HELO check and the milters
                # saw it as sent.
                self.helo_name = printable(name, self.settings.smtputf8).translate(NEUTER)
                self.esmtp = extended
                self._reset_transaction()
            case ev.MailFrom() if ok:
                self._reset_transaction()
                self.mail = event
            case ev.RcptTo() if ok:
                self.rcpt_count += 1
            case ev.DataStart() if outcome is Outcome.MORE:
                self._body = DataReader(self.settings.forbid_bare_newline,
                                        self.settings.message_size_limit)
                self.where = "DATA content"
            case ev.EndOfData() | ev.DataRejected():
                self._reset_transaction()
            case ev.EndOfChunk() if not ok:
                self._reset_transaction()
            case ev.Rset() if ok:
                self._reset_transaction()
            case ev.StartTls() if ok:
                # CVE-2011-0411: whatever the client pipelined after STARTTLS
                # was sent in plaintext and must never be read as a command.
                self._buf.clear()
                self._pending.clear()
            case ev.Auth() | ev.AuthResponse() if ok:
                self.authenticated = True
            case ev.Xclient():
                # The session starts over whatever the new greeting says
                # (smtpd.c xclient_cmd): HELO and AUTH are forgotten unless
                # the command gave them, and the protocol is SMTP unless
                # PROTO said ESMTP.
                self.helo_name = event.get("HELO") or None
                self.esmtp = event.get("PROTO") == "ESMTP"
                self.authenticated = bool(event.get("LOGIN"))
                self._reset_transaction()

    def _finish_command(self, success: bool, counted: object) -> None:
        name = self._cmd
        if name == _CONFIGURED_NOOP:
            # Not counted, but junk all the same (smtpd.c: junk_cmds++).
            if self.junk_count > self.settings.junk_command_limit:
                self.error_count += 1
            self.junk_count += 1
            self._cmd = None
            return
        if type(counted) is ev.Xclient:
            # Postfix restarts the session with a longjmp from inside the
            # command: it is counted as received, neither ok nor an error
            # ("xclient=0/1" in the disconnect line of a successful XCLIENT).
            self._cmd = None
            return
        if name is not None:
            if success:
                self._counts[name][0] += 1
            elif not (isinstance(counted, RemoteProtocolError) and not counted.counts_as_error):
                self.error_count += 1
            if name in _JUNK and not (isinstance(counted, RemoteProtocolError) and counted.denied):
                # smtpd.c: "if (flags & LIMIT && state->junk_cmds++ > limit) error_count++"
                if self.junk_count > self.settings.junk_command_limit:
                    self.error_count += 1
                self.junk_count += 1
        elif not (isinstance(counted, RemoteProtocolError) and not counted.counts_as_error):
            self.error_count += 1
        self._cmd = None

    def start_tls_done(self) -> None:
        """The TLS handshake after our 220 succeeded: forget the session (RFC 3207 4.2)."""
        if self.state is not State.TLS_HANDSHAKE:
            raise LocalProtocolError("start_tls_done() without an accepted STARTTLS")
        self.tls_active = True
        self.helo_name = None
        self.esmtp = False
        self.authenticated = False
        self._reset_transaction()
        self._buf.clear()
        self.state = State.IDLE

    def should_delay(self) -> bool:
        """True when the next reply must wait smtpd_error_sleep_time.

        smtpd_chat.c smtpd_chat_reply(): "Sleep-on-anything slows down clients
        that make an excessive number of errors within a session":
        ``if (state->error_count >= var_smtpd_soft_erlim) sleep(var_smtpd_err_sleep)``
        before every reply, positive or not."""
        limit = self.settings.soft_error_limit
        return limit > 0 and self.error_count >= limit

    def command_stats(self) -> str:
        """``ehlo=1 mail=1 rcpt=0/1 ... commands=2/3`` as Postfix logs it on disconnect.

        A command is listed when it was received at least once, as ok or
        ok/total when some failed; ``commands=`` always ends the line, with
        /total when something failed or nothing was received."""
        parts = []
        ok_all = total_all = 0
        for name in STAT_ORDER:
            if name in self._counts:
                ok, total = self._counts[name]
                parts.append(f"{name}={ok}" if ok == total else f"{name}={ok}/{total}")
                ok_all += ok
                total_all += total
        parts.append(f"commands={ok_all}" if ok_all == total_all and total_all
                     else f"commands={ok_all}/{total_all}")
        return " ".join(parts)

    def after(self, reason: str) -> str | None:
        """Postfix's note on an abnormal end, or None when it logs none.

        ``reason`` is "lost connection", "timeout" or "too many errors";
        the result is e.g. "lost connection after DATA (14 bytes)" or
        "timeout after EHLO" (smtpd.c smtpd_proto(): a lost connection right
        after the end of a message is normal and not logged)."""
        if self.where == "DATA content":
            return f"{reason} after DATA ({self.data_bytes} bytes)"
        if self.where == "BDAT content":
            # smtpd.c: act_size (each complete line with a CRLF) and what
            # is read of the rest; the bytes of this message's chunks so
            # far, a bare LF counted as two.
            return f"{reason} after BDAT ({self._bdat_total + self._bdat_bare_lf} bytes)"
        if self.where == "END-OF-MESSAGE" and reason == "lost connection":
            return None
        return f"{reason} after {self.where}"

    @property
    def counts(self) -> dict[str, tuple[int, int]]:
        return {k: (v[0], v[1]) for k, v in self._counts.items()}

    # ---------------------------------------------------------------- readers

    def _take_line(self, limit: int, cut: bool = False) -> bytes | None | Literal[False]:
        """One line without its LF (and CR); None: need more; False: too long
        (skipped). With cut, a line that is too long is its first limit
        bytes instead, the rest skipped, as Postfix's smtp_get() with
        SMTP_GET_FLAG_SKIP reads a command (3.7.11 live: "NOOP" and 5,000
        x's is answered "250 2.0.0 Ok"); long_request then says so."""
        buf = self._buf
        nl = buf.find(b"\n")
        if nl < 0:
            if len(buf) > limit + 1:
                if not self._skip_line:
                    self._skipped = bytes(buf[:_SKIPPED_HEAD])
                    self._cut = bytes(buf[:limit])
                self._skip_line = True
                buf.clear()
            return None
        line = bytes(buf[:nl])
        del buf[:nl + 1]
        if self._skip_line:
            self._skip_line = False
            return self._cut_off(self._cut, limit) if cut else False
        if line.endswith(b"\r"):
            line = line[:-1]
        elif self.settings.forbid_bare_newline == "reject":
            # Postfix 3.9 "reject" refuses commands ended by a bare LF too:
            # smtpd.c smtpd_proto() logs the reject, replies and hangs up
            # whatever smtpd_forbid_bare_newline_reject_code says (3.7.11).
            s = self.settings
            # XXX An AUTH response is refused too (the exchange ends),
            # where Postfix, reading it with smtpd_chat_query_limit(),
            # does not look.
            in_auth = self.state is State.AUTH
            err = self._fail(R.bare_lf(s.hostname, s.bare_newline_reject_code), BARE_LF,
                             what=_ABORT if in_auth else _ERROR)
            err.hangup = not in_auth
            raise err
        if len(line) > limit:
            self._skipped = line[:_SKIPPED_HEAD]
            return self._cut_off(line[:limit], limit) if cut else False
        return line

    def _cut_off(self, head: bytes, limit: int) -> bytes:
        """A command cut at limit bytes, with Postfix's warning about it
        (smtpd_chat_query_limit(): printable(), cut to 30 characters)."""
        shown = "".join(chr(c) if 32 <= c < 127 else "?" for c in self._skipped)
        self.long_request = f"request longer than {limit}: {shown}..."
        self._cut = b""
        return head

    def _policy_first(self, name: str, check, arg):
        """check(arg): the rest of a command's checks, whose refusal the
        policy may overrule when settings.policy_first names the command
        (smtpd.c asks anvil or the milters before them)."""
        try:
            return check(arg)
        except RemoteProtocolError as err:
            err.policy_first = name in self.settings.policy_first
            raise

    def overrule(self) -> None:
        """The policy refused the owed command before the core's own refusal
        (a RemoteProtocolError.policy_first) applied: a failed command and an
        error, and an RCPT beyond smtpd_recipient_limit is not counted
        against the overshoot limit, as smtpd.c never got that far."""
        what, err, ok = self._owed if self._owed is not None else (None, None, False)
        if not isinstance(err, RemoteProtocolError):
            raise LocalProtocolError("overrule() without a refusal owed")
        if ok:                      # only the RCPT overshoot is a refusal that counts as ok
            self._overshoot -= 1
        err.counts_as_error = True
        self._owed = (what, err, False)

    def _fail(self, reply: Reply, message: str, *, what: object = _ERROR,
              counts_as_error: bool = True, ok: bool = False) -> RemoteProtocolError:
        """A RemoteProtocolError; ``ok`` makes the refusal count as a successful
        command in the statistics (RCPT over the recipient limit, as smtpd.c)."""
        err = RemoteProtocolError(message, reply=reply, counts_as_error=counts_as_error)
        err._what = what  # type: ignore[attr-defined]
        err._ok = ok  # type: ignore[attr-defined]
        return err

    def _read_command(self) -> ev.Event | ev._Sentinel:
        s = self.settings
        if self._skip_error is not None:
            n = min(self._skip_bytes, len(self._buf))
            del self._buf[:n]
            self._skip_bytes -= n
            if self._skip_bytes:
                return ev.ConnectionClosed() if self._eof else ev.NEED_DATA
            err, self._skip_error = self._skip_error, None
            raise err  # type: ignore[misc]
        if s.hard_error_limit and self.error_count >= s.hard_error_limit:
            raise self._fail(R.too_many_errors(s.hostname), "too many errors", counts_as_error=False)
        line = self._take_line(s.line_length_limit, cut=True)
        if line is None:
            if self._eof:
                self._buf.clear()
                return ev.ConnectionClosed()
            return ev.NEED_DATA
        assert line is not False            # a command that is too long is cut
        # smtpd.c works on the command as a C string: whatever follows a NUL
        # byte is never seen ("NOOP\0x" is NOOP, "NO\0OP" an unknown NO,
        # "MAIL FROM:<a\0@b.c>" a bad address "<a", "\0" an empty command).
        nul = line.find(b"\x00")
        if nul >= 0:
            line = line[:nul]
        # smtpd.c smtpd_proto(): only with smtputf8_enable is a command that
        # is not valid UTF-8 refused; without it 8-bit bytes pass as they
        # came (carried as surrogate escapes, which the queue keeps).
        try:
            text = line.decode("utf-8") if s.smtputf8 else line.decode("utf-8", "surrogateescape")
        except UnicodeDecodeError:
            raise self._fail(R.BAD_UTF8, "bad UTF-8 syntax") from None
        if s.command_filter is not None:
            given = text.lstrip(" \t")
            replacement = s.command_filter(given)
            if replacement is not None:
                self.replaced = (text, replacement)
                text = replacement
        # The verb, then everything after the first run of blanks (smtpd_token()
        # also splits on blanks); str.split keeps this linear in the line length.
        self._line = text
        words = text.split(None, 1)
        if not words:
            raise self._fail(R.BAD_SYNTAX, "bad syntax")
        verb = words[0].upper()
        arg = words[1].strip() if len(words) == 2 else ""
        if verb in s.noop_commands:
            self._cmd = _CONFIGURED_NOOP
            return ev.Noop()
        handler = _HANDLERS.get(verb)
        if handler is None:
            self._begin("unknown")
            self.where = "UNKNOWN"
            forbidden = verb in s.forbid_commands if s.forbid_match is None \
                else s.forbid_match(words[0])
            if g.HEADER_LIKE_RE.match(verb) or forbidden:
                raise self._fail(R.BREAK_RULES, f"non-SMTP command: {text[:100]}",
                                 counts_as_error=False)
            if self.access_denied is not None:
                raise self._denied()
            err = self._fail(R.NOT_RECOGNIZED, "command not recognized")
            err.unknown = text
            raise err
        if self.access_denied is not None and verb != "QUIT":
            self._begin(verb.lower())
            raise self._denied()
        self.where = verb
        if s.tls_required and not self.tls_active and verb not in _PRE_TLS:
            self._begin(verb.lower())
            raise self._fail(R.MUST_STARTTLS, "TLS required")
        return handler(self, verb, arg)

    def _denied(self) -> RemoteProtocolError:
        """smtpd.c: after the connect refusal every command but QUIT gets
        the 503, counted as an error and not as junk; the unknown keep
        their place (where) as UNKNOWN, the others leave it alone."""
        assert self.access_denied is not None
        err = self._fail(self.access_denied, "access denied")
        err.denied = True
        return err

    def _begin(self, name: str) -> None:
        self._cmd = name
        self._counts.setdefault(name, [0, 0])[1] += 1

    def _read_data(self) -> ev.Event | ev._Sentinel:
        reader = self._body
        assert reader is not None
        if not self._buf:
            return ev.ConnectionClosed() if self._eof else ev.NEED_DATA
        # The reader joins its short tail to the buffer in one copy.
        content, done, leftover = reader.feed(self._buf)
        self._buf.clear()
        if not done:
            if content:
                return ev.DataChunk(content)
            return ev.ConnectionClosed() if self._eof else ev.NEED_DATA
        self._buf += leftover
        self._data_bytes = reader.received
        self._body = None
        self.where = "END-OF-MESSAGE"
        final: ev.Event
        s = self.settings
        if reader.too_big:
            final = ev.DataRejected(R.MESSAGE_TOO_BIG, "message file too big", reader.size)
        elif reader.bare_lf and s.forbid_bare_newline == "reject":
            final = ev.DataRejected(R.bare_lf(s.hostname, s.bare_newline_reject_code),
                                    BARE_LF, reader.size)
        else:
            final = ev.EndOfData(reader.size, reader.bare_lf)
        if content:
            self._pending.append(final)
            return ev.DataChunk(content)
        return final

    def _read_bdat(self) -> ev.Event | ev._Sentinel:
        if self._bdat_remaining:
            if not self._buf:
                return ev.ConnectionClosed() if self._eof else ev.NEED_DATA
            n = min(self._bdat_remaining, len(self._buf))
            chunk = bytes(self._buf[:n])
            del self._buf[:n]
            self._bdat_remaining -= n
            self._bdat_total += n
            # An LF without CR before it, the CR perhaps ending the last piece.
            self._bdat_bare_lf += chunk.count(b"\n") - chunk.count(b"\r\n") \
                - (1 if self._bdat_after_cr and chunk[:1] == b"\n" else 0)
            self._bdat_after_cr = chunk[-1:] == b"\r"
            self._bdat_at_eol = chunk[-1:] == b"\n"
            if self._bdat_remaining:
                return ev.DataChunk(chunk)
            self._pending.append(self._bdat_end())
            return ev.DataChunk(chunk)
        return self._bdat_end()

    def _bdat_end(self) -> ev.Event:
        # After a chunk that is not the last, "BDAT content" stays until
        # the next command (smtpd.c bdat_cmd(): "NOT: state->where = ...").
        if self._bdat_last:
            self.where = "END-OF-MESSAGE"
            # The size Postfix reports ("250 2.0.0 Ok: N bytes queued as"),
            # smtpd.c bdat_cmd()'s act_size: each line counts with a CRLF,
            # so a bare LF counts two bytes, and a last line without its
            # line end gets the CRLF the queue file adds (live, Postfix
            # 3.7.11: "BDAT 3 LAST" + "abc" gives "Ok: 5 bytes").
            # XXX Postfix also adds two for each line_length_limit piece
            # of a longer line; that is not counted here.
            size = self._bdat_total + self._bdat_bare_lf
            if self._bdat_total and not self._bdat_at_eol:
                size += 2
            return ev.EndOfData(size)
        return ev.EndOfChunk(self._bdat_size, self._bdat_total)

    def _read_auth(self) -> ev.Event | ev._Sentinel:
        line = self._take_line(self.settings.sasl_response_limit)
        if line is None:
            if self._eof:
                self._buf.clear()
                return ev.ConnectionClosed()
            return ev.NEED_DATA
        if line is False:
            # Postfix 3.7 logs "warning: unknown[127.0.0.1]: request longer
            # than 12288: AGFsaWNlAHNlY3JldA==AAAAAAAAAA..." (live).
            head = self._skipped.decode("ascii", "replace")
            raise self._fail(R.SASL_RESPONSE_TOO_LONG,
                             f"request longer than {self.settings.sasl_response_limit}: {head}...",
                             what=_ABORT)
        if line.strip() == b"*":
            raise self._fail(R.AUTH_ABORTED, "authentication aborted", what=_ABORT)
        data = _b64(line.strip())
        if data is None:
            raise self._fail(R.BAD_BASE64_CONTINUED, "bad base64", what=_ABORT)
        return ev.AuthResponse(data)

    def _in_transaction(self) -> bool:
        """A MAIL command was accepted and the transaction is open
        (smtpd.c SMTPD_IN_MAIL_TRANSACTION); a failed BDAT keeps it."""
        return self.state in IN_TRANSACTION or (self.state is State.BDAT_FAILED
                                                and self.mail is not None)

    def _reset_transaction(self) -> None:
        self.mail = None
        self.rcpt_count = 0
        self._overshoot = 0
        self._bdat_total = 0
        self._bdat_bare_lf = 0
        self._bdat_after_cr = False
        self._bdat_at_eol = True
        if self._body is not None:
            self._data_bytes = self._body.received
        self._body = None

    # --------------------------------------------------------------- commands

    def _helo(self, verb: str, arg: str):
        self._begin(verb.lower())
        if not arg:
            raise self._fail(R.helo_syntax(verb), "missing hostname")
        return ev.Helo(arg, verb == "EHLO")

    def _mail(self, verb: str, arg: str):
        s = self.settings
        self._begin("mail")
        if s.helo_required and self.helo_name is None:
            raise self._fail(R.SEND_HELO_FIRST, "MAIL before HELO")
        # smtpd.c mail_cmd(): an open transaction comes first, so MAIL
        # after an accepted BDAT chunk is "nested"; "MAIL after BDAT" is
        # for a failed BDAT outside a transaction.
        if self._in_transaction():
            raise self._fail(R.NESTED_MAIL, "nested MAIL")
        if self.state is State.BDAT_FAILED:
            raise self._fail(R.MAIL_AFTER_BDAT, "MAIL after BDAT")
        # smtpd.c mail_cmd(): the words as smtpd_token.c splits them.
        words = smtpd_tokens(arg)
        if len(words) < 2 or words[0][0].lower() != "from:":
            raise self._fail(R.MAIL_SYNTAX, "MAIL syntax")
        word, whole = words[1]
        if not whole:
            raise self._fail(R.BAD_SENDER, "unbalanced sender address")
        path = parse_path(word, strict=s.strict_rfc821_envelopes)
        if path is None or _unresolvable(path.address, s):
            raise self._fail(R.BAD_SENDER, f"{ILLEGAL_ADDRESS}{word}")
        try:
            params, fields = mail_params([w for w, _whole in words[2:]], s,
                                         auth_active=bool(s.auth_offered(tls_active=self.tls_active)))
        except ParamError as e:
            raise self._fail(e.reply, "bad MAIL parameter") from None
        if path.address and _bad_address(path.address, s, bool(fields.get("smtputf8"))):
            raise self._fail(R.BAD_SENDER, f"{ILLEGAL_ADDRESS}{word}")
        size = fields.get("size")
        if s.message_size_limit and isinstance(size, int) and size > s.message_size_limit:
            err = self._fail(R.SIZE_EXCEEDS_LIMIT, "SIZE exceeds limit")
            err.sender = path.address
            raise err
        if s.strict_smtputf8 and not path.address.isascii() and not fields.get("smtputf8"):
            raise self._fail(R.NEED_SMTPUTF8, "unicode address without SMTPUTF8")
        if fields.get("verp") and not path.address:
            raise self._fail(R.XVERP_NULL_SENDER, "XVERP with the null sender")
        return ev.MailFrom(path.address, word, params, **fields)  # type: ignore[arg-type]

    def _rcpt(self, verb: str, arg: str):
        s = self.settings
        self._begin("rcpt")
        # smtpd.c rcpt_cmd(): the transaction first, then BDAT.
        if not self._in_transaction():
            raise self._fail(R.NEED_MAIL, "RCPT without MAIL")
        if self.state in (State.CHUNKING, State.BDAT_FAILED):
            raise self._fail(R.RCPT_AFTER_BDAT, "RCPT after BDAT")
        # smtpd.c rcpt_cmd(): the words as smtpd_token.c splits them.
        words = smtpd_tokens(arg)
        if len(words) < 2 or words[0][0].lower() != "to:":
            raise self._fail(R.RCPT_SYNTAX, "RCPT syntax")
        return self._policy_first("rcpt", self._rcpt_address, words)

    def _rcpt_address(self, words: list[tuple[str, bool]]):
        s = self.settings
        word, whole = words[1]
        if not whole:
            raise self._fail(R.BAD_RECIPIENT, "unbalanced recipient address")
        path = parse_path(word, allow_null=False, strict=s.strict_rfc821_envelopes)
        if path is None or _unresolvable(path.address, s) or _bad_address(
                path.address, s, self.mail is not None and self.mail.smtputf8):
            raise self._fail(R.BAD_RECIPIENT, f"{ILLEGAL_ADDRESS}{word}")
        try:
            params, notify, orcpt = rcpt_params([w for w, _whole in words[2:]], s)
        except ParamError as e:
            raise self._fail(e.reply, "bad RCPT parameter") from None
        if s.recipient_limit and self.rcpt_count >= s.recipient_limit:
            # smtpd.c rcpt_cmd: the first overshoot_limit excess RCPTs are not errors.
            within = self._overshoot < s.recipient_overshoot_limit
            self._overshoot += 1
            raise self._fail(R.TOO_MANY_RECIPIENTS, "too many recipients",
                             counts_as_error=not within, ok=within)
        assert self.mail is not None
        if s.strict_smtputf8 and not path.address.isascii() and not self.mail.smtputf8:
            raise self._fail(R.NEED_SMTPUTF8, "unicode address without SMTPUTF8")
        return ev.RcptTo(path.address, word, params, notify, orcpt)

    def _data(self, verb: str, arg: str):
        # smtpd.c data_cmd(): the recipient checks come before the syntax check.
        self._begin("data")
        if self.state in (State.CHUNKING, State.BDAT_FAILED):
            raise self._fail(R.DATA_AFTER_BDAT, "DATA after BDAT")
        if self.state is State.IDLE:
            raise self._fail(R.NEED_RCPT, "DATA without MAIL")
        if self.state is State.MAIL:
            raise self._fail(R.NO_VALID_RCPTS, "DATA without accepted recipients")
        if arg:
            raise self._fail(R.DATA_SYNTAX, "DATA with argument")
        self._data_bytes = 0
        return ev.DataStart()

    def _bdat(self, verb: str, arg: str):
        s = self.settings
        self._begin("bdat")
        # Either way the next bytes may be content that cannot be skipped
        # without the chunk's size: smtpd.c bdat_cmd() hangs up (521).
        if not s.chunking:
            raise self._fail(R.BDAT_NOT_IMPLEMENTED, "BDAT without CHUNKING")
        m = g.BDAT_ARG_RE.match(arg)
        if m is None:
            raise self._fail(R.BDAT_SYNTAX, MALFORMED_BDAT + self._line)
        size, last = int(m.group("size")), m.group("last") is not None
        # The checks in smtpd.c bdat_cmd() order. The empty chunk comes
        # first, whatever the state; the checks for MAIL and RCPT only
        # for the first chunk of a message.
        problem: Reply | None = None
        why = ""
        if size == 0 and not last:
            problem, why = R.NULL_BDAT, NULL_BDAT
        elif self.state is State.BDAT_FAILED:
            problem, why = R.bdat_discarded(size), "BDAT after earlier error"
        elif self.state is State.IDLE:
            problem, why = R.NEED_RCPT, "BDAT without MAIL"
        elif self.state is State.MAIL:
            problem, why = R.NO_VALID_RCPTS, "BDAT without accepted recipients"
        elif s.message_size_limit and self._bdat_total + size > s.message_size_limit:
            problem, why = R.CHUNK_TOO_BIG, BDAT_TOO_BIG
        if problem is not None:
            # Read the chunk and throw it away, then refuse (RFC 3030 2: the
            # server must consume the chunk before replying). smtpd.c
            # skip_bdat(): a refused LAST chunk ends the transaction; any
            # other leaves the BDAT error state, where the chunks the client
            # pipelined after it are discarded too.
            self._skip_bytes = size
            self._skip_error = self._fail(problem, why, what=_BDAT_ERROR if last else _BDAT_SKIP)
            return self._read_command()
        self._bdat_remaining = self._bdat_size = size
        self._bdat_last = last
        self.where = "BDAT content"
        return ev.Bdat(size, last)

    def _rset(self, verb: str, arg: str):
        self._begin("rset")
        if arg:
            raise self._fail(R.RSET_SYNTAX, "RSET with argument")
        return ev.Rset()

    def _noop(self, verb: str, arg: str):
        # smtpd.c noop_cmd: the RFC 821 "no arguments" check is compiled out.
        self._begin("noop")
        return ev.Noop()

    def _quit(self, verb: str, arg: str):
        self._begin("quit")
        return ev.Quit()

    def _vrfy(self, verb: str, arg: str):
        self._begin("vrfy")
        if not self.settings.vrfy:
            raise self._fail(R.VRFY_DISABLED, "VRFY disabled")
        # RFC 6531 3.7.4.2: VRFY may end in SMTPUTF8. Postfix 3.7.11 with
        # smtputf8_enable = yes answered "VRFY <\u00fc@x.example> SMTPUTF8" with
        # "252 2.0.0 <\u00fc@x.example>", "VRFY" and "VRFY SMTPUTF8" with "501
        # 5.5.4 Syntax: VRFY address [SMTPUTF8]", and with strict_smtputf8 = yes
        # "VRFY \u00fc@x.example" with 553 5.6.7, as MAIL and RCPT.
        words = smtpd_words(arg)
        smtputf8 = self.settings.smtputf8 and bool(words) and words[-1].upper() == "SMTPUTF8"
        if smtputf8:
            words.pop()
        if not words:
            raise self._fail(R.VRFY_SYNTAX_SMTPUTF8 if self.settings.smtputf8 else R.VRFY_SYNTAX,
                             "VRFY without argument")
        # smtpd.c vrfy_cmd(): the words joined by one space (collapse_args)
        # hold exactly one address (extract_addr(), sloppy) that the
        # resolver takes, else 501 (live, Postfix 3.7.11: "VRFY John Smith",
        # "VRFY <a@x> <b@x>", "VRFY <>", "VRFY <-foo@example.net>", "VRFY
        # <u@1.2.3.4>"); the 252 repeats the joined text.
        # The refusal of a bad address waits for the policy (see ev.Vrfy).
        arg = " ".join(words)
        address = extract_address(arg)
        if address is None or _bad_address(address, self.settings, smtputf8):
            return ev.Vrfy(arg, None)
        if self.settings.strict_smtputf8 and not smtputf8 and not arg.isascii():
            raise self._fail(R.NEED_SMTPUTF8, "unicode address without SMTPUTF8")
        return ev.Vrfy(arg, address)

    def _etrn(self, verb: str, arg: str):
        self._begin("etrn")
        if not self.settings.etrn:
            raise self._fail(R.NOT_IMPLEMENTED, "ETRN disabled")
        if self.settings.helo_required and self.helo_name is None:
            raise self._fail(R.ETRN_SEND_HELO_FIRST, "ETRN before HELO")
        return self._policy_first("etrn", self._etrn_domain, arg)

    def _etrn_domain(self, arg: str):
        if self._in_transaction():
            raise self._fail(R.ETRN_TXN_IN_PROGRESS, "ETRN in transaction")
        if not arg or len(arg.split()) != 1:
            raise self._fail(R.ETRN_SYNTAX, "ETRN without domain")
        # smtpd.c etrn_cmd(): a leading "@" or "#" (RFC 1985 forms) is
        # skipped, then the rest must be a valid host name or, as Postfix's
        # extension, an address literal.
        domain = arg[1:] if arg[0] in "@#" else arg
        if not _HOSTNAME_RE.match(domain) and not _mailhost_literal(domain):
            raise self._fail(R.ETRN_BAD_DOMAIN, "ETRN bad domain")
        return ev.Etrn(domain)

    def _starttls(self, verb: str, arg: str):
        self._begin("starttls")
        if arg:
            raise self._fail(R.STARTTLS_SYNTAX, "STARTTLS with argument")
        if self.tls_active:
            raise self._fail(R.TLS_ACTIVE, "TLS already active")
        if not self.settings.starttls:
            raise self._fail(R.NOT_IMPLEMENTED, "STARTTLS not offered")
        return ev.StartTls()

    def _auth(self, verb: str, arg: str):
        # Checks in smtpd_sasl_proto.c smtpd_sasl_auth_cmd() order.
        self._begin("auth")
        if self.settings.helo_required and self.helo_name is None:
            raise self._fail(R.SEND_HELO_FIRST, "AUTH before HELO")
        offered = self.settings.auth_offered(tls_active=self.tls_active)
        if not offered:
            raise self._fail(R.AUTH_NOT_ENABLED, "AUTH not enabled")
        # XXX Postfix also takes AUTH after a failed BDAT outside a
        # transaction (BDAT_FAILED without MAIL) and stays in its BDAT error
        # state; an AUTH exchange here ends in IDLE, so it is refused.
        if self.state is not State.IDLE:
            raise self._fail(R.TXN_IN_PROGRESS, "AUTH in transaction")
        if self.authenticated:
            raise self._fail(R.ALREADY_AUTHENTICATED, "already authenticated")
        words = arg.split()
        if not words or len(words) > 2:
            raise self._fail(R.AUTH_SYNTAX, "AUTH syntax")
        mechanism = words[0].upper()
        if mechanism not in offered:
            raise self._fail(R.INVALID_MECHANISM, f"invalid mechanism {mechanism}")
        initial: bytes | None = None
        if len(words) == 2:
            initial = b"" if words[1] == "=" else _b64(words[1].encode("ascii", "replace"))
            if initial is None:
                raise self._fail(R.BAD_BASE64_INITIAL, BAD_INITIAL_RESPONSE + mechanism)
        return ev.Auth(mechanism, initial)


    def _xclient(self, verb: str, arg: str):
        # Checks in smtpd.c xclient_cmd() order.
        self._begin("xclient")
        if self._in_transaction():
            raise self._fail(R.TXN_IN_PROGRESS, "XCLIENT in transaction")
        if not arg:
            raise self._fail(R.XCLIENT_SYNTAX, "XCLIENT without attributes")
        if not self.xclient_allowed:
            raise self._fail(R.INSUFFICIENT_AUTHORIZATION, "XCLIENT not authorized")
        try:
            return ev.Xclient(parse_xclient(arg))
        except XattrError as e:
            raise self._fail(e.reply, "bad XCLIENT attribute") from None

    def _xforward(self, verb: str, arg: str):
        # Checks in smtpd.c xforward_cmd() order.
        self._begin("xforward")
        if self._in_transaction():
            raise self._fail(R.TXN_IN_PROGRESS, "XFORWARD in transaction")
        if not arg:
            raise self._fail(R.XFORWARD_SYNTAX, "XFORWARD without attributes")
        if not self.xforward_allowed:
            raise self._fail(R.INSUFFICIENT_AUTHORIZATION, "XFORWARD not authorized")
        try:
            return ev.Xforward(parse_xforward(arg))
        except XattrError as e:
            raise self._fail(e.reply, "bad XFORWARD attribute") from None


def _unresolvable(address: str, s: Settings) -> bool:
    """An address Postfix's resolver flags as bad syntax (resolve.c): one that
    begins with "-" (allow_min_user = no), one whose domain is digits and
    dots unless it is an IPv4 address and resolve_numeric_domain = yes."""
    if not s.allow_min_user and min_user(address):
        return True
    if numeric_domain(address):
        return not (s.resolve_numeric_domain and numeric_literal(address.rpartition("@")[2]))
    return False


def _bad_address(address: str, s: Settings, smtputf8: bool) -> bool:
    """An extracted MAIL, RCPT or VRFY address that smtpd_check_addr()
    refuses ("Illegal address syntax"): none at all, or one the resolver flags (resolve.c: the domain after the last
    "@" must be a host name, one trailing dot allowed, or a valid
    [address] literal; "user@" only with resolve_null_domain). A domain
    that is not ASCII needs the SMTPUTF8 keyword (Postfix 3.7.11: "VRFY
    a@\u00fc.example" 501, with SMTPUTF8 252; "a@\u00fc-.example" 501)."""
    if not address or _unresolvable(address, s):
        return True
    if "@" not in address:
        return False
    domain = address.rpartition("@")[2]
    if not domain:
        return not s.resolve_null_domain
    if domain.startswith("["):
        return not _mailhost_literal(domain)
    if numeric_domain(address):
        return False                        # _unresolvable() has decided
    domain = truncate_dot(domain)
    if not domain.isascii():
        return not (smtputf8 and _utf8_hostname(domain))
    return not valid_hostname(domain)


def _utf8_hostname(domain: str) -> bool:
    """Postfix valid_utf8_hostname(): a valid host name once in A-labels."""
    if any(label.startswith("-") or label.endswith("-") for label in domain.split(".")):
        return False
    try:
        return valid_hostname(domain.encode("idna").decode("ascii"))
    except UnicodeError:
        return False


def _mailhost_literal(text: str) -> bool:
    """Postfix valid_mailhost_literal(): [IPv4] or [IPv6:address]."""
    if not text.endswith("]"):
        return False
    inner = text[1:-1]
    try:
        if inner[:5].lower() == "ipv6:":
            ipaddress.IPv6Address(inner[5:])
        else:
            ipaddress.IPv4Address(inner)
    except ValueError:
        return False
    return True


def _b64(data: bytes) -> bytes | None:
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return None
    if not g.BASE64_RE.match(text):
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


# valid_hostname(): dot-separated labels of letters, digits and hyphens.
_HOSTNAME_RE = re.compile(r"(?=.{1,255}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                          r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?\Z")

_HANDLERS = {
    "HELO": ServerConnection._helo,
    "EHLO": ServerConnection._helo,
    "MAIL": ServerConnection._mail,
    "RCPT": ServerConnection._rcpt,
    "DATA": ServerConnection._data,
    "BDAT": ServerConnection._bdat,
    "RSET": ServerConnection._rset,
    "NOOP": ServerConnection._noop,
    "QUIT": ServerConnection._quit,
    "VRFY": ServerConnection._vrfy,
    "ETRN": ServerConnection._etrn,
    "STARTTLS": ServerConnection._starttls,
    "AUTH": ServerConnection._auth,
    "XCLIENT": ServerConnection._xclient,
    "XFORWARD": ServerConnection._xforward,
}
