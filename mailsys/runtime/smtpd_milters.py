"""smtpd_milters - smtpd's side of smtpd_milters: each SMTP stage asks the milters.

SYNOPSIS
    milters = SmtpdMilters(session)                # only when smtpd_milters is set
    greeting = await milters.connect()             # None, or the greeting to send instead
    reply = await milters.helo(event) / mail(event) / rcpt(event) / data()
    handoff = milters.handoff(qid)                 # to cleanup, with the message
    await milters.handed_back(handoff, queued.milters_failed)
    await milters.end_transaction(); await milters.aclose()

DESCRIPTION
    Postfix's smtpd.c calls into milter8 at each command; this does the
    same for a mailsys.runtime.smtpd_session.Session, with the macros
    Postfix's smtpd_milter_eval() gives, each sent only when a
    milter_*_macros list (or the milter's own SMFIR_SETSYMLIST) names it
    and it has a value, else milter_macro_defaults has one:

      j, v, {daemon_name}, {daemon_addr}, {daemon_port}   this server
      _ ("ptr [addr]", "(may be forged)" after it when the name the
      address has is not its verified name), {client_addr}, {client_name},
      {client_port}, {client_ptr}, {client_resolve}, {client_connections}
      {tls_version}, {cipher}, {cipher_bits} once TLS is on; {cert_subject},
      {cert_issuer} (the CNs) for a client certificate that is trusted
      i (the queue ID, once there is one), {auth_type}, {auth_authen},
      {auth_author} (MAIL FROM AUTH=)
      {mail_addr}, {mail_host}, {mail_mailer} from MAIL FROM on; {rcpt_addr},
      {rcpt_host}, {rcpt_mailer} from RCPT TO on: the address (with @$myhostname
      when it has no domain, the local part quoted as needed), its next hop
      and its transport as trivial-rewrite resolves it (worked out only
      when asked for; mailsys.runtime.smtpd_server route)

    {rcpt_*} name the recipient at hand during RCPT, the first one accepted
    after it. At end of message the macros are those Postfix's cleanup
    knows (no {mail_*}, {rcpt_*}, {client_resolve}, {client_connections}
    nor TLS ones), worked out here and sent to cleanup with the message:
    the end-of-header list goes before each header and the end of header,
    the end-of-data list before each body piece and the end of message.
    Every command of a stage gets its SMFIC_MACRO, empty or not.

    and it answers and logs as Postfix 3.7 (seen live):

      CONNECT  a 421 is the greeting and ends the session; a 5XX makes the
               greeting "554 <myhostname> ESMTP not accepting connections"
               (the session goes on, and the milter's reply answers every
               later stage); a 4XX changes nothing visible yet;
      HELO     logged, but only a 421 answers the client;
      MAIL, RCPT, DATA  the milter's reply is the command's reply; a
               recipient smtpd's restrictions refused goes to the milters
               that negotiated SMFIP_RCPT_REJ ({rcpt_mailer} "error",
               {rcpt_host} the enhanced status code, {rcpt_addr} the
               reply text after the address), whose answer changes nothing;
      UNKNOWN  a command smtpd does not know goes to the milters
               (SMFIC_UNKNOWN with the command word, as Postfix sends it;
               milter_unknown_command_macros); their refusal is the reply
               instead of smtpd's "500 5.5.2 Error: command not recognized";
      END-OF-MESSAGE    (in cleanup) the reply refuses the message, which
               is not queued.

    Each refusal is logged "NOQUEUE: milter-reject: RCPT from name[addr]:
    550 5.7.1 Command rejected; from=<s> to=<r> proto=ESMTP helo=<h>"
    (with the queue ID once there is one). A quarantine holds the message
    ("milter-hold: ... milter triggers HOLD action"), a discard drops it
    ("milter-discard: ... milter triggers DISCARD action").

    At end of DATA the conversations move to cleanup, as Postfix's smtpd
    hands them over (milter8_send()): handoff() gives each milter's
    negotiated state and its connection's descriptor, which go with the
    CleanupRequest (SCM_RIGHTS), and the macro values of cleanup's stage.
    cleanup (mailsys.runtime.cleanup_inspect) writes the message first
    (header_checks, address rewriting, the headers it adds), then gives
    the milters that header and body and end of message, applies their
    changes, logs their verdict as Postfix's cleanup does ("QID:
    milter-reject: END-OF-MESSAGE from ...: 5.7.1 Command rejected;
    ...") and answers. This session keeps its own copy of each
    connection for the next transaction (SMFIC_ABORT, the next MAIL);
    a milter cleanup gave up (timed out, hung up) is given up here too
    (handed_back()). A message a DISCARD action drops already goes to no
    milter.

    After XCLIENT the conversations end (SMFIC_QUIT) and new ones start
    about the client XCLIENT names, as Postfix does (seen live).

    Without smtpd_milters no SmtpdMilters exists: the session only tests
    for None.

BUGS
    {client_resolve} is OK or
    FAIL: mailsys does not tell a forged name from a failed lookup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

from mailsys.frozen import frozen
from mailsys.message.address import quote_822_local
from mailsys.milter.macros import MacroValues, Value
from mailsys.runtime.milter import MilterSession, MilterSettings, Verdict
from mailsys.smtp import Helo, MailFrom, RcptTo, Reply

if TYPE_CHECKING:
    from mailsys.runtime.smtpd_session import Session

log = structlog.get_logger()

_TRIGGERS = {"hold": "milter triggers HOLD action", "discard": "milter triggers DISCARD action"}


# The macros Postfix's cleanup has no value for at end of message, where
# smtpd's have one (cleanup_milter_eval(); seen live, 3.7.11).
_NOT_IN_CLEANUP = ("mail_addr", "mail_host", "mail_mailer", "rcpt_addr", "rcpt_host",
                   "rcpt_mailer", "client_resolve", "client_connections", "tls_version",
                   "cipher", "cipher_bits", "cert_subject", "cert_issuer")


def _external(address: str, hostname: str) -> str:
    """An address as Postfix gives {mail_addr} and {rcpt_addr}: with
    @$myhostname when it has no domain (as the resolver gives it back),
    the local part quoted when it needs it (quote_821_local()); smtpd
    keeps a quoted local part as the client sent it."""
    if "@" not in address:
        address = f"{address}@{hostname}"
    if address.startswith('"'):
        return address
    return quote_822_local(address)


def _args(address: str, params: tuple[tuple[str, str | None], ...]) -> tuple[str, ...]:
    return (f"<{address}>",) + tuple(k if v is None else f"{k}={v}" for k, v in params)


@frozen
class Handoff:
    """The milters' part of a CleanupRequest: its fields, the descriptors
    to send with it, and where each milter is in the session."""
    fields: dict[str, Any]
    fds: list[int]
    where: list[int]

    @property
    def extra_time(self) -> float:
        """How much longer smtpd waits for cleanup with these milters: one
        milter_content_timeout each (the bound of each of cleanup's waits
        for it), so that one milter that times out there is answered with
        its default action rather than smtpd's own time-out."""
        return sum(m.content_timeout for m in self.fields.get("milters", ()))


class SmtpdMilters:
    """The milters of one smtpd session (see the module description)."""

    def __init__(self, session: "Session", settings: MilterSettings, cfg: Any,
                 server_addr: str = "", server_port: str = "") -> None:
        self.session = session
        self.milters = MilterSession(settings, session.server.queue_dir)
        self._static: dict[str, Value] = {
            "j": cfg.myhostname, "daemon_name": cfg.milter_macro_daemon_name,
            "v": cfg.milter_macro_v, "daemon_addr": server_addr or None,
            "daemon_port": server_port or None}
        self._hostname = cfg.myhostname
        self._resolve = session.server.route
        # The transaction's MAIL FROM and last RCPT TO addresses, for {mail_*}, {rcpt_*}.
        self._mail: str | None = None
        self._rcpt: str | None = None
        self._author: str | None = None      # MAIL FROM AUTH=, for {auth_author}

    def macros(self, **extra: Value) -> MacroValues:
        """The macro values at this point of the session, as Postfix's
        smtpd_milter_eval() gives them; extra adds or replaces some."""
        s = self.session
        values: dict[str, Value] = dict(self._static)
        name, ptr = s.name, s.reverse_name
        # "(may be forged)": the name the address has does not map back to it.
        forged = "" if name.lower() == ptr.lower() else " (may be forged)"
        values.update({
            "_": f"{ptr} [{s.addr}]{forged}", "client_addr": s.addr, "client_name": name,
            "client_port": str(s.port), "client_ptr": ptr,
            "client_resolve": "OK" if name != "unknown" else "FORGED" if ptr != "unknown"
            else "FAIL",
            "client_connections": str(s.connection_count),
            "i": s.qid, "auth_type": s.auth.method or None, "auth_authen": s.auth.user or None,
            "auth_author": self._author or None,
        })
        tls = s.tls_info
        if tls is not None:
            values.update({"tls_version": tls.protocol, "cipher": tls.cipher,
                           "cipher_bits": str(tls.usebits)})
            if tls.peer_verified:      # Postfix: only a certificate it trusts
                values.update({"cert_subject": tls.peer_cn or None,
                               "cert_issuer": tls.issuer_cn or None})
        # {rcpt_*}: the recipient at hand during RCPT, else the first one
        # accepted (Postfix's state->recipient, seen live).
        rcpt = self._rcpt if self._rcpt is not None \
            else s.recipients[0].address if s.recipients else None
        if self._mail is not None:
            values.update(self._address_macros("mail", self._mail, rcpt))
        if rcpt is not None:
            values.update(self._address_macros("rcpt", rcpt, self._mail))
        values.update(extra)
        return MacroValues(values)

    def _address_macros(self, kind: str, address: str, other: str | None) -> dict[str, Value]:
        """{kind_addr}, {kind_host}, {kind_mailer}: the address as the
        resolver leaves it, its next hop and its transport (Postfix asks
        trivial-rewrite; the sender-dependent maps are searched with other,
        as smtpd_milter.c does), worked out only if a milter asks."""
        route: list = []

        def resolved():
            if not route:
                # As trivial-rewrite resolves it: an address without a
                # domain is at $myhostname, and goes where that goes.
                qualified = address if "@" in address else f"{address}@{self._hostname}"
                route.append(self._resolve(qualified, other))
            return route[0]
        return {f"{kind}_addr": (lambda: _external(address, self._hostname)) if address else "",
                f"{kind}_host": lambda: resolved().nexthop,
                f"{kind}_mailer": lambda: resolved().transport}

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
        # smtpd.c smtpd_proto(): a 421 or a 5xx becomes a greeting of
        # smtpd's own, whatever the milter's text; another 4xx is logged only.
        host = s.server.cfg.myhostname
        if verdict.closes:
            return Reply(421, None, f"{host} Service unavailable - try again later")
        if verdict.reply.code >= 500:
            return Reply(554, None, f"{host} ESMTP not accepting connections")
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
        self._mail, self._rcpt, self._author = event.address, None, event.auth
        verdict = await self.milters.mail(_args(event.address, event.params), self.macros())
        return self._command("MAIL", verdict, sender=event.address, recipient=None)

    async def rcpt(self, event: RcptTo) -> Reply | None:
        self.session._stop_clock()
        self._rcpt = event.address
        try:
            verdict = await self.milters.rcpt(_args(event.address, event.params), self.macros())
        finally:
            self._rcpt = None
        s = self.session
        return self._command("RCPT", verdict, sender=s.mail.address if s.mail else None,
                             recipient=event.address)

    async def rejected_rcpt(self, event: RcptTo, reply: Reply) -> None:
        """A recipient smtpd's restrictions refused, for the milters that
        negotiated SMFIP_RCPT_REJ, with the macros Postfix's
        smtpd_milter_eval() gives then: {rcpt_mailer} "error", {rcpt_host}
        the enhanced status code, {rcpt_addr} the reply text after the
        word that follows it (seen live, 3.7.11)."""
        self.session._stop_clock()
        # "554 5.7.1 <a@b>: Relay access denied" -> "5.7.1", "Relay access
        # denied": split at spaces as Postfix's smtpd_milter_eval() does.
        host, _, rest = str(reply)[4:].partition(" ")
        addr = rest.partition(" ")[2]
        macros = self.macros(rcpt_addr=addr, rcpt_host=host, rcpt_mailer="error")
        await self.milters.rejected_rcpt(_args(event.address, event.params), macros)

    async def data(self) -> Reply | None:
        s = self.session
        self.session._stop_clock()
        verdict = await self.milters.data(self.macros())
        # Postfix names the first recipient here (seen live), not the last.
        return self._command("DATA", verdict, sender=s.mail.address if s.mail else None,
                             recipient=s.recipients[0].address if s.recipients else None)

    async def unknown(self, line: str) -> Reply | None:
        """An unknown command, told to the milters (SMFIC_UNKNOWN, the
        command word alone, as Postfix 3.7.11 sends it): their refusal
        instead of smtpd's own, as Postfix answers and logs it."""
        self.session._stop_clock()
        verdict = await self.milters.unknown(line.split(None, 1)[0], self.macros())
        if verdict is None or verdict.kind != "reply":
            return None
        s = self.session
        self._log("UNKNOWN", verdict, sender=self._mail,
                  recipient=s.recipients[0].address if s.recipients else None)
        return verdict.reply

    def other_event(self) -> Reply | None:
        """The refusal the milters stand by for a command they are not told
        of (VRFY), as Postfix's milter_other_event(): nothing is sent."""
        return self.milters.other_event()

    def _command(self, command: str, verdict: Verdict | None, *, sender: str | None,
                 recipient: str | None) -> Reply | None:
        if verdict is None:
            return None
        self._log(command, verdict, sender=sender, recipient=recipient)
        if verdict.kind == "reply":
            return verdict.reply
        self.session.actions.take(verdict.kind, "")
        return None

    def handoff(self, qid: str) -> "Handoff":
        """What goes to cleanup with the message, for it to run the
        header, body and end-of-message events (Postfix's milter8_send()):
        each milter's state and connection, and the macro values of
        cleanup's stage."""
        states, fds, where = self.milters.handoff()
        if not states:
            return Handoff({}, [], [])
        # Postfix's cleanup knows fewer macros than smtpd (cleanup_milter_eval()).
        macros = self.macros(i=qid, **dict.fromkeys(_NOT_IN_CLEANUP))
        values = tuple((k, v) for k in macros if (v := macros[k]) is not None)
        fields = {"milters": states, "milter_macros": values,
                  "milter_macro_defaults": tuple(self.milters.settings.macro_defaults.items())}
        return Handoff(fields, fds, where)

    async def handed_back(self, handoff: "Handoff", failed: tuple[int, ...] | None) -> None:
        """Cleanup's answer came (failed: the milters it gave up), or none
        did (None: where it left each conversation is unknown)."""
        if not handoff.fds:
            return
        if failed is None:
            failed = tuple(range(len(handoff.fds)))
        await self.milters.failed_elsewhere(failed, handoff.where)

    async def end_transaction(self) -> None:
        self._mail = self._rcpt = self._author = None
        await self.milters.abort()

    async def aclose(self) -> None:
        await self.milters.aclose()


__all__ = ["Handoff", "SmtpdMilters"]
