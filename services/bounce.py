"""bounce - delivery status notices for qmgr (Postfix bounce(8)).

SYNOPSIS
    master.cf:  bounce  unix  -  -  n  -  0  bounce

DESCRIPTION
    Serves NoticeRequest on private/bounce (mailsys.ipc.proto.bounce). For
    each request it reads the entry and its content from the queue store
    (read only), keeps the requested recipients whose NOTIFY asks for this
    kind of notice (dsn.wants_notice), and builds one RFC 3464 notice with
    mailsys.message.dsn: non-delivery (failure), delay, or success. The
    notice gets a fresh queue ID and the headers cleanup gives local mail
    (Received: by <myhostname> (mailsys), Message-Id), so it is ready for
    the queue as it is; bounce logs ``NEWQID: message-id=<...>`` as cleanup
    would, then ``QID: sender non-delivery notification: NEWQID``, and
    answers NoticeReady with the notice. qmgr commits the notice in the
    same transaction that removes the original (DESIGN.md contract 2):
    bounce never writes the queue.

    Mail from the null sender gets no notice (that would be a bounce of a
    bounce): bounce answers NoticeReady(notice_id="") and logs that the
    notice was discarded. So does a request none of whose recipients wants
    the notice (NOTIFY=NEVER, or no NOTIFY=SUCCESS for a success report).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog

from mailsys.config import Config
from mailsys.errors import NoSuchEntry, QueueError
from mailsys.ipc.messages import ErrorCode, ErrorReply
from mailsys.ipc.proto import bounce as proto
from mailsys.ipc.proto.bounce import NoticeReady, NoticeRequest
from mailsys.message.dsn import Kind, NoticeSettings, build_notice, wants_notice
from mailsys.message.envelope import Envelope
from mailsys.message.headers import HeaderPolicy, clean_header
from mailsys.message.qid import new_qid
from mailsys.message.received import received_local
from mailsys.queue import QueueStore
from mailsys.runtime import ipc_io, skeleton, store_io

log = structlog.get_logger()

# The words of the notification log line (Postfix bounce_notify_service.c,
# bounce_notify_verp.c, bounce_trace_service.c).
LOG_KIND = {Kind.FAILURE: "sender non-delivery", Kind.DELAY: "sender delay",
            Kind.SUCCESS: "sender delivery status"}


@dataclass(frozen=True, slots=True)
class Notice:
    """A notice ready for the queue, and what cleanup would have logged."""

    queue_id: str
    recipient: str
    content: bytes
    log_lines: tuple[str, ...]


def compose(kind: Kind, env: Envelope, content: bytes, indexes: tuple[int, ...],
            cfg: Config, now: float) -> Notice | None:
    """compose - the notice for the given recipients, or None when none is due."""
    if not env.sender:
        return None
    rcpts = [env.recipients[i] for i in indexes
             if 0 <= i < len(env.recipients) and wants_notice(env.recipients[i], kind)]
    if not rcpts:
        return None
    body = build_notice(kind, env, content, rcpts, NoticeSettings.from_config(cfg), now=now)
    qid = new_qid()
    cleaned = clean_header(
        body, policy=HeaderPolicy.from_config(cfg),
        received=received_local(myhostname=cfg.myhostname, queue_id=qid, arrival=now,
                                mail_name=cfg.mail_name),
        queue_id=qid, arrival=now, sender="", add_missing=True)
    return Notice(qid, env.sender, cleaned.assemble(body), cleaned.log_lines)


@dataclass(frozen=True, slots=True)
class Bounce:
    """The service's state: its config and the queue store it reads."""

    cfg: Config
    store: QueueStore

    async def answer(self, req: NoticeRequest) -> NoticeReady | ErrorReply:
        if not isinstance(req, NoticeRequest):
            return ErrorReply(ErrorCode.PROTOCOL, f"unexpected {type(req).__name__}")
        try:
            kind = Kind(req.kind)
        except ValueError:
            return ErrorReply(ErrorCode.PROTOCOL, f"unknown notice kind {req.kind!r}")
        try:
            env, _ = await store_io.run(self.store.load, req.queue_id)
            content = await store_io.run(self.store.load_content, req.queue_id)
        except NoSuchEntry as e:
            return ErrorReply(ErrorCode.PROTOCOL, str(e))
        except QueueError as e:
            log.warning(f"{req.queue_id}: cannot read queue entry: {e}")
            return ErrorReply(ErrorCode.UNAVAILABLE, str(e))
        notice = compose(kind, env, content, req.indexes, self.cfg, time.time())
        if notice is None:
            if not env.sender:
                log.info(f"{LOG_KIND[kind]} notification discarded: the sender is <>",
                         queue_id=req.queue_id)
            return NoticeReady(notice_id="", sender="", recipient=env.sender, content=b"")
        for line in notice.log_lines:
            if line.startswith("message-id="):
                log.info("message-id", queue_id=notice.queue_id,
                         message_id=line[len("message-id="):])
        log.info("notification", queue_id=req.queue_id, kind=LOG_KIND[kind],
                 notice_id=notice.queue_id)
        return NoticeReady(notice_id=notice.queue_id, sender="", recipient=notice.recipient,
                           content=notice.content)


def start(ctx: skeleton.ServiceContext) -> Bounce:
    return Bounce(ctx.config, QueueStore.open(ctx.config.path("queue_directory")))


async def handle(stream, ctx: skeleton.ServiceContext) -> None:
    await ipc_io.serve(stream, ctx.state.answer, protocol=proto.PROTOCOL)


def stop(ctx: skeleton.ServiceContext) -> None:
    if isinstance(ctx.state, Bounce):
        ctx.state.store.close()


def main() -> None:
    skeleton.run("bounce", handle, post_init=start, on_exit=stop)


if __name__ == "__main__":
    main()
