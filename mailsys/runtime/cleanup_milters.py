"""cleanup_milters - non_smtpd_milters: the milters for mail submitted with sendmail.

SYNOPSIS
    milters = NonSmtpdMilters.from_config(cfg)       # None without non_smtpd_milters
    started = await milters.envelope(req)            # Started, or the refusal
    found = await cleanup_inspect.run(started.session, started.macros, content, 0)
    await started.session.aclose()

DESCRIPTION
    Postfix's cleanup runs non_smtpd_milters for mail that did not come
    through smtpd (sendmail, pickup). mailsys's cleanup does the same for
    requests of origin "sendmail": the milters get what Postfix 3.7.11
    gives them (seen live): a connection from "localhost" 127.0.0.1 port
    0 ({_} "localhost [127.0.0.1]"), HELO "localhost", MAIL and RCPT with
    the bare addresses (no angle brackets, the local part quoted as
    needed) and DATA before cleanup processes the message (envelope());
    then, once cleanup wrote it (header_checks, address rewriting, the
    Message-Id:, Date: and From: it adds after the others), its header
    without cleanup's Received:, the body with CRLF line ends, and end of
    message (mailsys.runtime.cleanup_inspect run()), each with its macros
    ({i} the queue ID throughout).

    A milter that refuses before end of message cannot refuse a local
    submission: as Postfix does, the refusal is logged ("QID: milter-reject:
    RCPT from localhost[127.0.0.1]: 5.7.1 Command rejected; from=<s>
    to=<r>", then "warning: QID: milter configuration error: can't reject
    recipient in non-smtpd(8) submission" for a recipient) and the message
    is not accepted for now ("warning: QID: message not accepted, try again
    later"; sendmail then exits with EX_TEMPFAIL, where Postfix's pickup
    would try again). A refusal at end of message refuses the message
    (logged by cleanup as for smtpd); hold, discard and the changes apply
    as for mail received with SMTP (services/cleanup).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import structlog

from mailsys.frozen import frozen
from mailsys.ipc.messages import ErrorCode, ErrorReply
from mailsys.ipc.proto.cleanup import CleanupRequest
from mailsys.message.address import quote_822_local
from mailsys.runtime.milter import MilterSession, MilterSettings, Verdict

log = structlog.get_logger()

CLIENT = "localhost[127.0.0.1]"


@frozen
class Started:
    """The envelope told: the open session, its macros, the request."""
    session: MilterSession
    macros: dict[str, str | None]
    request: CleanupRequest


class NonSmtpdMilters:
    def __init__(self, settings: MilterSettings, cfg: Any) -> None:
        self.settings = settings
        self._queue_dir = cfg.path("queue_directory")
        self._static = {"j": cfg.myhostname, "daemon_name": cfg.milter_macro_daemon_name,
                        "v": cfg.milter_macro_v, "daemon_addr": "127.0.0.1",
                        "daemon_port": "0", "_": "localhost [127.0.0.1]",
                        "client_addr": "127.0.0.1", "client_name": "localhost",
                        "client_ptr": "localhost", "client_port": "0"}

    @classmethod
    def from_config(cls, cfg: Any) -> "NonSmtpdMilters | None":
        if not cfg.non_smtpd_milters:
            return None
        return cls(MilterSettings.from_config(cfg, "non_smtpd_milters"), cfg)

    async def envelope(self, req: CleanupRequest) -> Started | ErrorReply:
        """CONNECT, HELO, MAIL, RCPT and DATA for req: the session (for
        cleanup_inspect.run() on the message once cleanup wrote it, then
        aclose()) and req with their hold or discard; or the refusal."""
        session = MilterSession(self.settings, self._queue_dir)
        # {mail_addr} from MAIL on, {rcpt_addr} from the first RCPT on: the
        # last recipient told (seen live, 3.7.11).
        macros: dict[str, str | None] = dict(self._static, i=req.queue_id)
        hold = discard = False
        try:
            steps = [("CONNECT", None), ("HELO", None), ("MAIL", None)]
            steps += [("RCPT", r.address) for r in req.recipients] + [("DATA", None)]
            for command, rcpt in steps:
                if command == "MAIL":
                    macros["mail_addr"] = quote_822_local(req.sender)   # quote_821_local()
                elif command == "RCPT":
                    macros["rcpt_addr"] = quote_822_local(rcpt or "")
                verdict = await self._step(session, command, req, rcpt, macros)
                if verdict is None:
                    continue
                if verdict.kind == "reply":
                    await session.aclose()
                    return self._refuse(req, command, verdict, rcpt)
                self._log(req, command, verdict, rcpt)
                hold, discard = hold or verdict.kind == "hold", discard or verdict.kind == "discard"
        except BaseException:
            await session.aclose()
            raise
        return Started(session, macros, dataclasses.replace(req, hold=req.hold or hold,
                                                            discard=req.discard or discard))

    @staticmethod
    async def _step(session: MilterSession, command: str, req: CleanupRequest,
                    rcpt: str | None, macros: dict) -> Verdict | None:
        if command == "CONNECT":
            return await session.connect("localhost", "127.0.0.1", 0, macros)
        if command == "HELO":
            return await session.helo("localhost", macros)
        if command == "MAIL":
            return await session.mail((macros["mail_addr"] or "",), macros)
        if command == "RCPT":
            return await session.rcpt((macros["rcpt_addr"] or "",), macros)
        return await session.data(macros)

    def _log(self, req: CleanupRequest, command: str, verdict: Verdict,
             recipient: str | None) -> None:
        if verdict.kind == "reply":
            assert verdict.reply is not None
            text, action = str(verdict.reply).split(" ", 1)[1], "milter-reject"
        else:
            text = f"milter triggers {verdict.kind.upper()} action"
            action = f"milter-{verdict.kind}"
        log.info("reject", action=action, command=command, client=CLIENT, reply=text,
                 sender=req.sender, recipient=recipient, queue_id=req.queue_id)

    def _refuse(self, req: CleanupRequest, command: str, verdict: Verdict,
                recipient: str | None) -> ErrorReply:
        self._log(req, command, verdict, recipient)
        if command == "RCPT":
            log.warning("milter configuration error: can't reject recipient in non-smtpd(8) "
                        "submission", queue_id=req.queue_id)
        log.warning("message not accepted, try again later", queue_id=req.queue_id)
        return ErrorReply(ErrorCode.UNAVAILABLE, "message not accepted, try again later")


__all__ = ["NonSmtpdMilters"]
