"""envelope - what the queue knows about a message besides its content.

SYNOPSIS
    from mailsys.message.envelope import Envelope, Recipient, RcptState
    env = Envelope(queue_id=new_qid(), sender="alice@example.com",
                   recipients=(Recipient("bob@example.org"),),
                   arrival_time=time.time(), size=len(content))
    env = env.with_recipient(0, state=RcptState.DEFERRED, dsn_status="4.4.1",
                             reason="connect to ...: Connection refused")

DESCRIPTION
    Envelope and Recipient are frozen, slotted dataclasses: pure values that
    cleanup builds, the queue store persists (mailsys.queue.records), qmgr
    changes one recipient at a time, bounce reads to write a DSN, and the
    admin tools print. They hold Postfix's envelope records
    (src/global/rec_type.h) that mailsys needs: the sender, recipients with
    their DSN parameters (RFC 3461 NOTIFY / ORCPT, ENVID, RET), where the
    message came from (client name/address, HELO, protocol, SASL user), and
    the scheduling state (attempts, next attempt, last reason, forced
    expiry, delay warning sent).

    Each recipient carries its own delivery state. A recipient is final once
    it is SENT or BOUNCED; an entry may leave the queue only when every
    recipient is final and any notice for the bounced ones is queued
    (DESIGN.md contract 2).

    Every field has a default, so a field added later reads back from an
    older queue record as its default (see mailsys.queue.records). Never
    rename a field: the name is its key on disk. Times are float seconds
    since the epoch; 0.0 means "not set".

    This module imports nothing but the standard library.
"""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Any

from mailsys.frozen import frozen


class RcptState(str, Enum):
    """Where one recipient stands. SENT and BOUNCED are final."""

    PENDING = "pending"      # not tried yet, or handed back after a crash
    DEFERRED = "deferred"    # a temporary failure; retried later
    SENT = "sent"            # delivered (remote 2xx, or written to a mailbox)
    BOUNCED = "bounced"      # failed for good (5xx, expired, loop); needs a notice

    @property
    def final(self) -> bool:
        return self in (RcptState.SENT, RcptState.BOUNCED)


class Notify(str, Enum):
    """RFC 3461 NOTIFY= keywords."""

    NEVER = "NEVER"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    DELAY = "DELAY"


@frozen
class Recipient:
    """One envelope recipient and its delivery state.

    address      the recipient after rewriting, as delivered to
    orig         the address as the client gave it, when rewriting changed
                 it (Postfix original_recipient; logged as orig_to=)
    orcpt        the RFC 3461 ORCPT parameter, "type;address" ("" = none)
    notify       RFC 3461 NOTIFY keywords; empty means the default
                 (FAILURE, and DELAY at the MTA's discretion)
    state        RcptState
    dsn_status   the last enhanced status code ("5.1.1", "4.4.1", "2.0.0")
    reason       the last result text (mailq's reason, DSN Diagnostic text)
    remote_mta   the host that gave the last result (DSN Remote-MTA)
    diagnostic   the remote reply as given ("smtp; 550 5.1.1 ..."), if any
    last_attempt when the last delivery attempt ended
    notified     a DSN for this recipient's final state has been queued
    action       the DSN Action the agent gave a delivery ("delivered",
                 "relayed"); "" lets the notice decide ("relayed" when a
                 remote MTA took it)
    deferred_as  the address the last deferral went to when the resolver
                 rewrote the queued one (u@[192.0.2.1] for u@192.0.2.1),
                 else ""; mailq lists it as Postfix's defer log does
    """

    address: str
    orig: str = ""
    orcpt: str = ""
    notify: tuple[Notify, ...] = ()
    state: RcptState = RcptState.PENDING
    dsn_status: str = ""
    reason: str = ""
    remote_mta: str = ""
    diagnostic: str = ""
    last_attempt: float = 0.0
    notified: bool = False
    action: str = ""
    deferred_as: str = ""

    def __post_init__(self) -> None:
        # Accept the plain strings a decoder or caller naturally has.
        if not isinstance(self.state, RcptState):
            object.__setattr__(self, "state", RcptState(self.state))
        if not (isinstance(self.notify, tuple)
                and all(isinstance(n, Notify) for n in self.notify)):
            object.__setattr__(self, "notify", tuple(Notify(n) for n in self.notify))

    @property
    def final(self) -> bool:
        return self.state.final

    def replace(self, **changes: Any) -> Recipient:
        return dataclasses.replace(self, **changes)


@frozen
class Envelope:
    """One message's envelope and scheduling state.

    queue_id      the entry's queue ID (mailsys.message.qid)
    sender        envelope sender; "" is the null sender <>
    recipients    the recipients, in the order the client gave them
    arrival_time  when cleanup accepted the message
    size          content size in bytes as mailq shows it (CRLF line ends)
    client_name, client_addr, client_port, helo, protocol ("ESMTP", "SMTP",
                  "ESMTPSA", "local"), sasl_user, sasl_method, sasl_sender (the
                  MAIL FROM AUTH= value as the client sent it, Postfix's
                  sasl_sender named attribute):
                  where the message came from (Postfix's log_client_* attributes:
                  the original client a content filter named with XFORWARD,
                  else the one that connected)
    verp_delimiters  XVERP's (or sendmail -V's) two delimiters: each recipient
                  gets its own delivery from sender+rcpt=domain@... ("" = none)
    log_ident     the queue ID on the upstream MTA (XFORWARD IDENT), "" when none
    rewrite_context  "remote" or "local" (Postfix rewrite_context)
    envid         RFC 3461 ENVID ("" = none)
    ret           RFC 3461 RET: "FULL", "HDRS" or "" (not given)
    body_type     "7BIT", "8BITMIME" or "" (not given)
    smtputf8      the client asked for SMTPUTF8
    attempts      delivery attempts so far
    next_attempt  when a deferred entry is due again (indexed by the store)
    last_reason   the most recent deferral reason for the whole entry
    forced_expire an administrator asked for expiry (postsuper -e/-f; mailq #)
    delay_warned  a delay warning has been sent (delay_warning_time)
    attrs         named attributes, ((name, value), ...): room for data no
                  field holds yet, like Postfix's named_attribute records
    """

    queue_id: str
    sender: str
    recipients: tuple[Recipient, ...]
    arrival_time: float = 0.0
    size: int = 0
    client_name: str = ""
    client_addr: str = ""
    client_port: int = 0
    helo: str = ""
    protocol: str = ""
    sasl_user: str = ""
    sasl_method: str = ""
    sasl_sender: str = ""
    verp_delimiters: str = ""
    log_ident: str = ""
    rewrite_context: str = "remote"
    envid: str = ""
    ret: str = ""
    body_type: str = ""
    smtputf8: bool = False
    attempts: int = 0
    next_attempt: float = 0.0
    last_reason: str = ""
    forced_expire: bool = False
    delay_warned: bool = False
    attrs: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.recipients, tuple):
            object.__setattr__(self, "recipients", tuple(self.recipients))
        if not isinstance(self.attrs, tuple):
            object.__setattr__(self, "attrs", tuple((k, v) for k, v in self.attrs))

    def replace(self, **changes: Any) -> Envelope:
        return dataclasses.replace(self, **changes)

    def with_recipient(self, index: int, **changes: Any) -> Envelope:
        """A copy with recipient number index changed."""
        rcpts = list(self.recipients)
        rcpts[index] = rcpts[index].replace(**changes)
        return dataclasses.replace(self, recipients=tuple(rcpts))

    @property
    def pending(self) -> tuple[int, ...]:
        """Indexes of the recipients that are not final yet."""
        return tuple(i for i, r in enumerate(self.recipients) if not r.final)

    @property
    def done(self) -> bool:
        """Every recipient is final (sent or bounced)."""
        return all(r.final for r in self.recipients)

    def attr(self, name: str, default: str | None = None) -> str | None:
        for key, value in self.attrs:
            if key == name:
                return value
        return default
