"""The transition table in _state.py: allowed moves, refusals that stay, caller bugs."""

from __future__ import annotations

import pytest

from mailsys.smtp import events as ev
from mailsys.smtp._state import (
    ABORT, BDAT_ERROR, GREETING, TRANSITIONS, Outcome, State, outcome_of, transition,
)


@pytest.mark.parametrize("state,what,outcome,new", [
    (State.GREETING, GREETING, Outcome.OK, State.IDLE),
    (State.IDLE, ev.MailFrom, Outcome.OK, State.MAIL),
    (State.MAIL, ev.RcptTo, Outcome.OK, State.RCPT),
    (State.MAIL, ev.RcptTo, Outcome.FAIL, State.MAIL),        # a refused RCPT changes nothing
    (State.RCPT, ev.DataStart, Outcome.MORE, State.DATA),
    (State.RCPT, ev.DataStart, Outcome.FAIL, State.RCPT),
    (State.DATA, ev.EndOfData, Outcome.FAIL, State.IDLE),
    (State.RCPT, ev.Bdat, Outcome.NONE, State.BDAT),
    (State.BDAT, ev.EndOfChunk, Outcome.OK, State.CHUNKING),
    (State.CHUNKING, ev.Rset, Outcome.OK, State.IDLE),
    (State.RCPT, ev.Helo, Outcome.OK, State.IDLE),
    (State.MAIL, ev.StartTls, Outcome.OK, State.TLS_HANDSHAKE),
    (State.IDLE, ev.Auth, Outcome.MORE, State.AUTH),
    (State.AUTH, ABORT, Outcome.FAIL, State.IDLE),
    (State.CHUNKING, BDAT_ERROR, Outcome.FAIL, State.IDLE),
    (State.RCPT, ev.Quit, Outcome.OK, State.CLOSED),
])
def test_transitions(state, what, outcome, new):
    assert transition(state, what, outcome) is new


@pytest.mark.parametrize("state,what,outcome", [
    (State.IDLE, ev.MailFrom, Outcome.MORE),     # 354 to MAIL
    (State.IDLE, ev.DataStart, Outcome.MORE),    # DATA outside a transaction
    (State.MAIL, ev.Auth, Outcome.MORE),
    (State.IDLE, ev.Bdat, Outcome.NONE),
])
def test_illegal_moves(state, what, outcome):
    assert transition(state, what, outcome) is None


def test_table_never_leaves_closed():
    assert not [k for k in TRANSITIONS if k[0] is State.CLOSED]


@pytest.mark.parametrize("code,outcome", [(250, Outcome.OK), (334, Outcome.MORE),
                                          (354, Outcome.MORE), (452, Outcome.FAIL),
                                          (554, Outcome.FAIL)])
def test_outcome_of(code, outcome):
    assert outcome_of(code) is outcome
