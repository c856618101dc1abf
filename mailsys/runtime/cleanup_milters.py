"""cleanup_milters - non_smtpd_milters: the milters for mail submitted with sendmail.

SYNOPSIS
    milters = NonSmtpdMilters.from_config(cfg)       # None without non_smtpd_milters
    req = await milters.filter(req)                  # CleanupRequest, or the refusal

DESCRIPTION
    Postfix's cleanup runs non_smtpd_milters for mail that did not come
    through smtpd (sendmail, pickup). mailsys's cleanup does the same for
    requests of origin "sendmail", before it processes the message: the
    milters get what Postfix 3.7.11 gives them (seen live): a connection
    from "localhost" 127.0.0.1 port 0 ({_} "localhost [127.0.0.1]"),
    HELO "localhost", MAIL and RCPT with the bare addresses (no angle
    brackets, the local part quoted as needed), DATA, the header, with the
    Message-Id:, Date: and From: that cleanup adds when they are missing
    after the others (Postfix's milters read them from the queue file),
    the body with CRLF line ends, and end of message, each with its macros
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
    as for mail received with SMTP (mailsys.runtime.milter.end_of_message).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import structlog

from mailsys.ipc.messages import ErrorCode, ErrorReply
from mailsys.ipc.proto.cleanup import CleanupRequest
from mailsys.message.address import quote_822_local
from mailsys.runtime.milter import MilterSession, MilterSettings, Verdict, end_of_message

log = structlog.get_logger()

CLIENT = "localhost[127.0.0.1]"


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

    async def filter(self, req: CleanupRequest) -> CleanupRequest | ErrorReply:
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
                    return self._refuse(req, command, verdict, rcpt)
                self._log(req, command, verdict, rcpt)
                hold, discard = hold or verdict.kind == "hold", discard or verdict.kind == "discard"
            content = req.content if req.crlf else \
                req.content.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            missing = self.settings.missing_headers(
                content, local=req.local, queue_id=req.queue_id,
                arrival=req.arrival_time or time.time(), sender=req.sender, fullname=req.fullname)
            done = await end_of_message(session, req.sender, req.recipients, content, macros,
                                        missing)
        finally:
            await session.aclose()
        changes: dict[str, Any] = {"crlf": True, "content": done.content or content,
                                   "sender": done.sender, "recipients": done.recipients,
                                   "prepend": req.prepend + done.prepend,
                                   "append": req.append + done.append,
                                   "hold": req.hold or hold or done.hold,
                                   "discard": req.discard or discard or done.discard}
        if done.refusal is not None:
            changes["milter_reject"] = str(done.refusal)
        elif done.discard or done.hold:
            changes["milter_action"] = "discard" if done.discard else "hold"
        # milter_header_checks: cleanup logs what it found, and does it.
        if done.checks:
            changes["milter_checks"] = tuple((a.action, a.header, a.text) for a in done.checks)
        for a in done.checks:
            if a.action in ("hold", "discard"):
                changes[a.action] = True
            elif a.action in ("filter", "redirect"):
                changes[a.action] = a.text
        return dataclasses.replace(req, **changes)

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
