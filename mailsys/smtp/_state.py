"""_state - the ESMTP server's states and the one table of transitions.

Rule 1 (after h11's _state.py): every state change of ServerConnection is
looked up here; server.py never assigns a state on its own.
Rule 2: this file knows nothing about bytes or parsing.

A transition is keyed by (state, what happened, outcome):
- "what happened" is the event class the reply answers (or GREETING for the
  banner, or an event class that moves the state without a reply: Bdat);
- outcome is OK (2xx), MORE (3xx: 334 challenge, 354 go ahead), FAIL (4xx/5xx),
  or NONE for replyless events.
A refusal (FAIL) that is not in the table leaves the state as it was, which is
what a refused SMTP command does. An OK or MORE reply that is not in the table
is a caller bug (LocalProtocolError): e.g. 354 to MAIL, or 235 outside AUTH.
Replies 221/421/521 always close the session (Postfix hangs up after them).
"""

from __future__ import annotations

import enum

from . import events as ev


class State(enum.Enum):
    GREETING = "GREETING"          # connected, banner not yet sent
    IDLE = "IDLE"                  # between transactions
    MAIL = "MAIL"                  # MAIL accepted, no recipient accepted yet
    RCPT = "RCPT"                  # at least one recipient accepted
    DATA = "DATA"                  # reading a DATA body
    BDAT = "BDAT"                  # reading the bytes of a BDAT chunk
    CHUNKING = "CHUNKING"          # between BDAT chunks of one message
    # A BDAT chunk was refused: later chunks are read and discarded until
    # BDAT LAST, RSET or HELO/EHLO (smtpd.c SMTPD_BDAT_STAT_ERROR). The
    # transaction, if there was one, stays open: MAIL is "nested".
    BDAT_FAILED = "BDAT_FAILED"
    AUTH = "AUTH"                  # a 334 challenge was sent; reading the response
    TLS_HANDSHAKE = "TLS_HANDSHAKE"  # 220 to STARTTLS sent; waiting for start_tls_done()
    CLOSED = "CLOSED"              # 221/421/521 sent, or the caller closed


class Outcome(enum.Enum):
    OK = "OK"
    MORE = "MORE"
    FAIL = "FAIL"
    NONE = "NONE"


GREETING = "greeting"     # the banner, the first reply of a session
# Refusals the core makes itself (RemoteProtocolError) are keyed by these:
ERROR = "error"           # a plain refusal: the state stays
ABORT = "abort"           # ends a SASL exchange
BDAT_ERROR = "bdat-error"  # a refused BDAT LAST: ends the transaction (smtpd.c skip_bdat)
BDAT_SKIP = "bdat-skip"    # a refused BDAT that is not LAST: later chunks are discarded
ANY_COMMAND_STATE = (State.IDLE, State.MAIL, State.RCPT, State.CHUNKING, State.BDAT_FAILED)
IN_TRANSACTION = (State.MAIL, State.RCPT, State.CHUNKING)

OK, MORE, FAIL, NONE = Outcome.OK, Outcome.MORE, Outcome.FAIL, Outcome.NONE

TRANSITIONS: dict[tuple[State, object, Outcome], State] = {
    (State.GREETING, GREETING, OK): State.IDLE,
    # A 554 banner (client rejected at connect) keeps the session: Postfix
    # then answers everything but QUIT with 503 (policy's job).
    (State.GREETING, GREETING, FAIL): State.IDLE,
    (State.IDLE, ev.MailFrom, OK): State.MAIL,
    (State.MAIL, ev.RcptTo, OK): State.RCPT,
    (State.RCPT, ev.RcptTo, OK): State.RCPT,
    (State.RCPT, ev.DataStart, MORE): State.DATA,
    (State.DATA, ev.EndOfData, OK): State.IDLE,
    (State.DATA, ev.EndOfData, FAIL): State.IDLE,
    (State.DATA, ev.DataRejected, FAIL): State.IDLE,
    (State.RCPT, ev.Bdat, NONE): State.BDAT,
    (State.CHUNKING, ev.Bdat, NONE): State.BDAT,
    (State.BDAT, ev.EndOfChunk, OK): State.CHUNKING,
    # smtpd.c bdat_cmd(): a refused chunk that is not the last ends the
    # transaction, and the chunks the client pipelined after it are discarded.
    (State.BDAT, ev.EndOfChunk, FAIL): State.BDAT_FAILED,
    (State.BDAT, ev.EndOfData, OK): State.IDLE,
    (State.BDAT, ev.EndOfData, FAIL): State.IDLE,
    (State.IDLE, ev.Auth, MORE): State.AUTH,
    (State.AUTH, ev.AuthResponse, MORE): State.AUTH,
    (State.AUTH, ev.AuthResponse, OK): State.IDLE,
    (State.AUTH, ev.AuthResponse, FAIL): State.IDLE,
    (State.AUTH, ABORT, FAIL): State.IDLE,
}
for _s in ANY_COMMAND_STATE:
    # smtpd.c skip_bdat(): a refused BDAT LAST resets the transaction
    # (mail_reset), any other refused BDAT leaves the BDAT error state.
    TRANSITIONS[(_s, BDAT_ERROR, FAIL)] = State.IDLE
    TRANSITIONS[(_s, BDAT_SKIP, FAIL)] = State.BDAT_FAILED

for _s in ANY_COMMAND_STATE:
    # HELO/EHLO and RSET end any transaction (smtpd.c helo_cmd, rset_cmd).
    TRANSITIONS[(_s, ev.Helo, OK)] = State.IDLE
    TRANSITIONS[(_s, ev.Rset, OK)] = State.IDLE
    TRANSITIONS[(_s, ev.StartTls, OK)] = State.TLS_HANDSHAKE
    for _cls in (ev.Noop, ev.Vrfy, ev.Etrn):
        TRANSITIONS[(_s, _cls, OK)] = _s
    # Postfix accepts 250 to QUIT in the state machine but hangs up anyway.
    TRANSITIONS[(_s, ev.Quit, OK)] = State.CLOSED
    TRANSITIONS[(_s, ev.Auth, OK)] = _s
# XCLIENT and XFORWARD are refused inside a transaction (server.py), so
# they only ever leave IDLE, or BDAT_FAILED without a transaction; XCLIENT's
# answer is a new greeting that starts the session over (mail_reset), and a
# greeting that refuses (554 access denied) keeps the session as at connect.
TRANSITIONS[(State.IDLE, ev.Xclient, OK)] = State.IDLE
TRANSITIONS[(State.IDLE, ev.Xforward, OK)] = State.IDLE
TRANSITIONS[(State.BDAT_FAILED, ev.Xclient, OK)] = State.IDLE
TRANSITIONS[(State.BDAT_FAILED, ev.Xforward, OK)] = State.BDAT_FAILED
del _s, _cls


def transition(state: State, what: object, outcome: Outcome) -> State | None:
    """The next state, or None when the move is not allowed."""
    nxt = TRANSITIONS.get((state, what, outcome))
    if nxt is None and outcome is FAIL:
        return state
    return nxt


def outcome_of(code: int) -> Outcome:
    if code < 300:
        return OK
    if code < 400:
        return MORE
    return FAIL
