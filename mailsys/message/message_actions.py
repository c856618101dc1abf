"""message_actions - what smtpd's and cleanup's actions make of one message.

SYNOPSIS
    actions = MessageActions()                  # smtpd, per transaction
    if actions.take(note.action, note.value):   # an access(5) action
        log it
    actions = MessageActions.of(request)        # cleanup: smtpd's, then ...
    actions.take(act.action, act.text)          # ... header_checks / body_checks
    envelope recipients = with_actions(given, actions.bcc, actions.redirect)

DESCRIPTION
    smtpd keeps the actions of its restrictions for each transaction and
    sends them to cleanup with the message (CleanupRequest); cleanup finds
    more in header_checks and body_checks. MessageActions gathers them in
    that order, as Postfix does: HOLD and DISCARD stay
    set, the later FILTER and REDIRECT win, BCC addresses add up; a HOLD
    already in force is not logged again. with_actions() makes the envelope
    recipients of it: BCC addresses added once each with NOTIFY=NEVER (no
    notice about them reaches the sender), then, under REDIRECT, every
    recipient replaced by the one redirect address, whose orig_to= is the
    first recipient (Postfix keeps the originals and its qmgr folds their
    deliveries into one). first_answer() is a list of lookup tables as
    header_checks uses them: the first table that answers decides.

    Pure: no I/O, no logging.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .envelope import Notify, Recipient


class _Table(Protocol):
    def lookup(self, key: str) -> str | None: ...


@dataclass(slots=True)
class MessageActions:
    """The actions in force for one message (Postfix smtpd's saved_flags,
    saved_filter, saved_redirect, saved_bcc and prepend list; cleanup's
    state flags). Mutable: filled as the message goes."""

    hold: bool = False
    discard: bool = False
    filter: str = ""                 # transport:destination; the last FILTER wins
    redirect: str = ""               # the last REDIRECT wins
    bcc: list[str] = field(default_factory=list)
    prepend: list[str] = field(default_factory=list)   # header lines, in order

    @classmethod
    def of(cls, request: Any) -> "MessageActions":
        """smtpd's actions, as a CleanupRequest carries them (its PREPEND
        lines are the request's to apply)."""
        return cls(request.hold, request.discard, request.filter, request.redirect,
                   list(request.bcc))

    def take(self, action: str, value: str = "") -> bool:
        """Keep the effect of one action (hold, discard, filter, redirect,
        bcc, prepend; value its argument); whether to log it: a HOLD already
        in force is not logged again."""
        if action == "hold":
            if self.hold:
                return False
            self.hold = True
        elif action == "discard":
            self.discard = True
        elif action == "filter":
            self.filter = value
        elif action == "redirect":
            self.redirect = value
        elif action == "bcc":
            self.bcc.append(value)
        elif action == "prepend":
            self.prepend.append(value)
        return True


def with_actions(given: Iterable[Recipient], bcc: Sequence[str],
                 redirect: str) -> tuple[Recipient, ...]:
    """The envelope recipients: as given, plus BCC, under REDIRECT."""
    rcpts = list(given)
    have = {r.address for r in rcpts}
    for address in bcc:
        if address not in have:
            have.add(address)
            rcpts.append(Recipient(address, notify=(Notify.NEVER,)))
    if redirect and rcpts:
        first = rcpts[0]
        rcpts = [Recipient(redirect, orig=first.address if first.address != redirect else "",
                           orcpt=first.orcpt, notify=first.notify)]
    return tuple(rcpts)


def first_answer(tables: Sequence[_Table]) -> Callable[[str], str | None] | None:
    """The answer of the first table that has one; None without tables."""
    if not tables:
        return None

    def check(key: str) -> str | None:
        for table in tables:
            value = table.lookup(key)
            if value is not None:
                return value
        return None
    return check


__all__ = ["MessageActions", "first_answer", "with_actions"]
