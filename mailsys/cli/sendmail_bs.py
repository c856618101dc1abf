"""sendmail_bs - `sendmail -bs`: one SMTP session on standard input and output.

SYNOPSIS
    mailsys sendmail -bs < session.txt

DESCRIPTION
    Sendmail's "stand-alone SMTP" mode, which some programs use to submit
    mail through a pipe (Postfix runs its smtpd on the pipe for this). The
    protocol is mailsys.smtp.ServerConnection, the same engine smtpd
    drives, with the local user's privileges: no STARTTLS, no AUTH, no
    relay control (local submission is trusted as with plain sendmail), no
    BDAT. Each message is handed to cleanup exactly as `mailsys sendmail`
    does (origin "sendmail", local header rewriting), and its reply is
    "250 2.0.0 Ok: queued as QID" only once it is queued. Addresses
    without a domain get @$myorigin.

    When cleanup cannot be reached (the mail system is stopped), a message
    goes to the maildrop as plain sendmail leaves it, for the pickup
    service to queue once the mail system runs, and the reply is the usual
    "250 2.0.0 Ok: queued as QID": Postfix's stand-alone smtpd posts through
    postdrop into its maildrop whether the mail system runs or not. When
    cleanup answers but cannot take a message the reply is smtpd's: 452
    4.3.1 Insufficient system storage for a full queue, 451 4.3.0 Error:
    queue file write error otherwise, and the session goes on.

EXIT STATUS
    0 when the session ended with QUIT or end of input, 74 (EX_IOERR) when
    standard output cannot be written.
"""

from __future__ import annotations

import os
import time
from typing import BinaryIO

from mailsys.cli import sendmail
from mailsys.config import Config
from mailsys.errors import UsageError
from mailsys.ipc.errors import IpcError, IpcUnavailable, RemoteError
from mailsys.ipc.proto.cleanup import CleanupRecipient, CleanupRequest, Rejected
from mailsys.message.qid import new_qid
from mailsys.smtp import (NEED_DATA, PAUSED, ConnectionClosed, DataChunk, EndOfData,
                          MailFrom, RcptTo, RemoteProtocolError, Reply, ServerConnection,
                          Settings, replies)

__all__ = ["smtp_session"]

EX_IOERR = 74                                # its own status (see EXIT STATUS)
READ_SIZE = 64 * 1024


def smtp_session(cfg: Config, stdin: BinaryIO, stdout: BinaryIO) -> int:
    """Run one SMTP session over the two streams; the exit status."""
    conn = ServerConnection(Settings(
        hostname=cfg.myhostname, message_size_limit=cfg.message_size_limit,
        starttls=False, auth_mechanisms=(), chunking=False))
    try:
        _write(stdout, conn.send(replies.greeting(cfg.smtpd_banner)))
        session = _Session(cfg)
        while not conn.closed:
            try:
                event = conn.next_event()
            except RemoteProtocolError as err:
                _write(stdout, conn.send(err.reply))
                continue
            if event is NEED_DATA:
                conn.receive_data(stdin.read1(READ_SIZE) if hasattr(stdin, "read1")
                                  else stdin.read(READ_SIZE))
                continue
            if event is PAUSED or isinstance(event, ConnectionClosed):
                break
            if isinstance(event, DataChunk):
                session.chunks.append(event.data)
                continue
            _write(stdout, conn.send(session.answer(event, conn)))
    except (BrokenPipeError, OSError):
        return EX_IOERR
    return 0


def _write(stdout: BinaryIO, data: bytes) -> None:
    stdout.write(data)
    stdout.flush()


class _Session:
    """The transaction being built, and the answers that need mailsys."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.sender = ""
        self.mail: MailFrom | None = None
        self.recipients: list[CleanupRecipient] = []
        self.chunks: list[bytes] = []

    def answer(self, event: object, conn: ServerConnection) -> Reply:
        if isinstance(event, MailFrom):
            try:
                self.sender = sendmail.qualify(event.address, self.cfg) if event.address else ""
            except UsageError:
                return Reply(501, "5.1.7", "Bad sender address syntax")
            self.mail, self.recipients, self.chunks = event, [], []
        elif isinstance(event, RcptTo):
            try:
                self.recipients.append(sendmail.recipient(
                    event.address, self.cfg, orcpt=event.dsn_orcpt,
                    notify=tuple(event.notify or ())))
            except UsageError:
                return Reply(501, "5.1.3", "Bad recipient address syntax")
        elif isinstance(event, EndOfData):
            return self.queue(conn)
        return conn.default_reply()

    def queue(self, conn: ServerConnection) -> Reply:
        mail, content = self.mail, b"".join(self.chunks)
        self.chunks = []
        request = CleanupRequest(
            queue_id=new_qid(), sender=self.sender, recipients=tuple(self.recipients),
            content=content, arrival_time=time.time(), origin="sendmail", local=True,
            protocol=conn.received_protocol, uid=os.getuid(),
            envid=(mail.envid or "") if mail else "", ret=(mail.ret or "") if mail else "",
            body_type=(mail.body or "") if mail else "",
            smtputf8=bool(mail and mail.smtputf8), filter=self.cfg.content_filter,
            receive_override_options=tuple(self.cfg.receive_override_options))
        answered: list[bool] = []
        try:
            reply = sendmail.submit(self.cfg, request, answered)
        except RemoteError as e:
            return replies.INSUFFICIENT_STORAGE if e.code == "queue_full" \
                else replies.QUEUE_WRITE_ERROR
        except IpcUnavailable:
            if answered:                # cleanup may hold it already
                return replies.QUEUE_WRITE_ERROR
            return self.drop(request)
        except IpcError:
            return replies.QUEUE_WRITE_ERROR
        if isinstance(reply, Rejected):
            return Reply(reply.code, reply.enhanced, reply.text)
        return replies.queued(reply.queue_id)

    def drop(self, request: CleanupRequest) -> Reply:
        """The message into the maildrop, for pickup: no cleanup to talk to."""
        try:
            sendmail.leave_in_maildrop(self.cfg, request)
        except OSError:
            return replies.QUEUE_WRITE_ERROR
        return replies.queued(request.queue_id)
