"""smtpd_milters - smtpd's side of smtpd_milters: each SMTP stage asks the milters.

SYNOPSIS
    milters = SmtpdMilters(session)                # only when smtpd_milters is set
    greeting = await milters.connect()             # None, or the greeting to send instead
    reply = await milters.helo(event) / mail(event) / rcpt(event) / data()
    result = await milters.end_of_message(qid, mail, recipients, content)
    await milters.end_transaction(); await milters.aclose()

DESCRIPTION
    Postfix's smtpd.c calls into milter8 at each command; this does the
    same for a mailsys.runtime.smtpd_session.Session, with the macros
    Postfix gives ({j}, {daemon_name}, {daemon_addr}, {v}, {_}, {i},
    {auth_type}, {auth_authen}, {auth_author}, {mail_addr}, {rcpt_addr},
    {client_addr}, {client_name}, {client_port}, {tls_version}, {cipher},
    {cipher_bits}, ... each sent only when a milter_*_macros
    list names it and it has a value) and answers and logs as Postfix 3.7
    does (seen live):

      CONNECT  a 421 is the greeting and ends the session; a 5XX makes the
               greeting "554 <myhostname> ESMTP not accepting connections"
               (the session goes on, and the milter's reply answers every
               later stage); a 4XX changes nothing visible yet;
      HELO     logged, but only a 421 answers the client;
      MAIL, RCPT, DATA  the milter's reply is the command's reply;
      END-OF-MESSAGE    the reply refuses the message, which is not queued.

    Each refusal is logged "NOQUEUE: milter-reject: RCPT from name[addr]:
    550 5.7.1 Command rejected; from=<s> to=<r> proto=ESMTP helo=<h>"
    (with the queue ID once there is one). A quarantine holds the message
    ("milter-hold: ... milter triggers HOLD action"), a discard drops it
    ("milter-discard: ... milter triggers DISCARD action"). The verdict at
    end of message goes to cleanup with the message, which logs it as
    Postfix's cleanup does ("QID: milter-reject: END-OF-MESSAGE from ...:
    5.7.1 Command rejected; ...") and refuses, holds or drops the message.

    At end of message the headers and body as received go to the milters
    (without the Received: header cleanup adds, which Postfix 3.7 does not
    send either, seen live); their header and body changes give the new
    content, their sender and recipient changes the new envelope. Headers
    a milter puts above all received ones go above the Received: header,
    those it appends after the ones cleanup adds, as in Postfix
    (mailsys.milter.edits split_added).

    After XCLIENT the conversations end (SMFIC_QUIT) and new ones start
    about the client XCLIENT names, as Postfix does (seen live).

    Without smtpd_milters no SmtpdMilters exists: the session only tests
    for None.

BUGS
    Not given: {mail_host}, {mail_mailer}, {rcpt_host}, {rcpt_mailer} (the
    address resolution) and {cert_subject}, {cert_issuer} are not given; unknown
    commands are not passed on (SMFIC_UNKNOWN). Milters see the message
    before cleanup adds a missing Message-Id:, Date: or From: (Postfix's
    cleanup adds them first), so a signing milter does not cover those.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

from mailsys.ipc.proto.cleanup import CleanupRecipient
from mailsys.runtime.milter import (MessageResult, MilterSession, MilterSettings, Verdict,
                                    end_of_message)
from mailsys.smtp import Helo, MailFrom, RcptTo, Reply

if TYPE_CHECKING:
    from mailsys.runtime.smtpd_session import Session

log = structlog.get_logger()

_TRIGGERS = {"hold": "milter triggers HOLD action", "discard": "milter triggers DISCARD action"}


def _args(address: str, params: tuple[tuple[str, str | None], ...]) -> tuple[str, ...]:
    return (f"<{address}>",) + tuple(k if v is None else f"{k}={v}" for k, v in params)


class SmtpdMilters:
    """The milters of one smtpd session (see the module description)."""

    def __init__(self, session: "Session", settings: MilterSettings, cfg: Any,
                 server_addr: str = "") -> None:
        self.session = session
        self.milters = MilterSession(settings, session.server.queue_dir)
        self._static = {"j": cfg.myhostname, "daemon_name": cfg.milter_macro_daemon_name,
                        "v": cfg.milter_macro_v, "daemon_addr": server_addr or None}

    def macros(self, **extra: str | None) -> dict[str, str | None]:
        s = self.session
        values: dict[str, str | None] = dict(self._static)
        values.update({
            "_": f"{s.name} [{s.addr}]", "client_addr": s.addr, "client_name": s.name,
            "client_port": str(s.port), "client_ptr": s.reverse_name,
            "i": s.qid, "auth_type": s.auth.method or None, "auth_authen": s.auth.user or None,
            "mail_addr": s.mail.address if s.mail is not None else None,
        })
        tls = s.tls_info
        if tls is not None:
            values.update({"tls_version": tls.protocol, "cipher": tls.cipher,
                           "cipher_bits": str(tls.usebits)})
        values.update(extra)
        return values

    def _log(self, command: str, verdict: Verdict, *, sender: str | None = None,
             recipient: str | None = None, helo: str | None = None) -> None:
        if verdict.kind == "reply":
            assert verdict.reply is not None
            text, action = str(verdict.reply), "milter-reject"
        else:
            text, action = _TRIGGERS[verdict.kind], f"milter-{verdict.kind}"
        self.session._log_reject(command, text, sender=sender, recipient=recipient, helo=helo,
                                 action=action)

    async def connect(self) -> Reply | None:
        """The greeting to send instead of the usual one, or None."""
        s = self.session
        self.session._stop_clock()         # the milter, not the client, is awaited
        verdict = await self.milters.connect(s.name, s.addr, s.port, self.macros())
        if verdict is None:
            return None
        self._log("CONNECT", verdict, helo="")
        if verdict.kind != "reply":
            return None
        assert verdict.reply is not None
        if verdict.closes:
            return verdict.reply
        if verdict.reply.code >= 500:
            return Reply(554, None, f"{s.server.cfg.myhostname} ESMTP not accepting connections")
        return None

    async def helo(self, event: Helo) -> Reply | None:
        self.session._stop_clock()
        verdict = await self.milters.helo(event.name, self.macros())
        if verdict is None:
            return None
        self._log("EHLO" if event.extended else "HELO", verdict, helo=event.name)
        # Postfix answers HELO itself unless the milter closes the session.
        return verdict.reply if verdict.closes else None

    async def mail(self, event: MailFrom) -> Reply | None:
        self.session._stop_clock()
        verdict = await self.milters.mail(_args(event.address, event.params),
                                          self.macros(mail_addr=event.address,
                                                      auth_author=event.auth))
        return self._command("MAIL", verdict, sender=event.address, recipient=None)

    async def rcpt(self, event: RcptTo) -> Reply | None:
        self.session._stop_clock()
        verdict = await self.milters.rcpt(_args(event.address, event.params),
                                          self.macros(rcpt_addr=event.address))
        s = self.session
        return self._command("RCPT", verdict, sender=s.mail.address if s.mail else None,
                             recipient=event.address)

    async def data(self) -> Reply | None:
        s = self.session
        self.session._stop_clock()
        verdict = await self.milters.data(self.macros())
        # Postfix names the first recipient here (seen live), not the last.
        return self._command("DATA", verdict, sender=s.mail.address if s.mail else None,
                             recipient=s.recipients[0].address if s.recipients else None)

    def _command(self, command: str, verdict: Verdict | None, *, sender: str | None,
                 recipient: str | None) -> Reply | None:
        if verdict is None:
            return None
        self._log(command, verdict, sender=sender, recipient=recipient)
        if verdict.kind == "reply":
            return verdict.reply
        self.session.actions.take(verdict.kind, "")
        return None

    async def end_of_message(self, qid: str, sender: str, recipients: tuple[CleanupRecipient, ...],
                             content: bytes) -> MessageResult:
        """The milters' verdict and changes; cleanup logs the verdict
        (CleanupRequest milter_reject, milter_action), as Postfix's does."""
        return await end_of_message(self.milters, sender, recipients, content,
                                    self.macros(i=qid, mail_addr=sender))

    async def end_transaction(self) -> None:
        await self.milters.abort()

    async def aclose(self) -> None:
        await self.milters.aclose()


__all__ = ["SmtpdMilters"]
