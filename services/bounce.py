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

    Postmaster copies, per notify_classes (Postfix bounce_notify_service.c,
    bounce_warn_service.c), go in NoticeReady.copies, sent from
    $double_bounce_sender@$myorigin so that they never bounce:

      bounce    a copy of every non-delivery notice, headers only, with
                every bounced recipient whatever its NOTIFY, to
                bounce_notice_recipient ("postmaster non-delivery
                notification: ID", logged after the sender's notice); and
                what 2bounce does ("bounce (also implies 2bounce)",
                postconf(5))
      2bounce   a bounce of null-sender mail, with the whole message, to
                2bounce_notice_recipient (instead of nothing)
      delay     a copy of every delay notice to delay_notice_recipient
                ("postmaster delay notification: ID")

    A success notice (NOTIFY=SUCCESS, sendmail -bv) about null-sender mail
    goes, with 2bounce, to 2bounce_notice_recipient: the sender's notice
    as it is, from $double_bounce_sender, logged ``QID: sender delivery
    status notification: ID`` (bounce_trace_service.c; seen live with
    Postfix 3.7.11); it travels in NoticeReady.copies too. Null-sender mail
    gets no delay notice at all: qmgr asks for none, as Postfix's cleanup
    schedules no delay warning for it (cleanup_envelope.c).

    Mail from the double-bounce sender itself is never reported:
    ``warning: QID: undeliverable postmaster notification discarded``. A
    success notice about double-bounce mail, or about null-sender mail
    without 2bounce, is not sent either, and is logged as Postfix's
    bounce_trace_service.c logs that: ``QID: not sending trace/success
    notification for single-bounce message`` (``double-bounce``).
    A recipient without a domain gets @$myorigin, as cleanup would add.
"""

from __future__ import annotations

import dataclasses
import time

import structlog

from mailsys.config import Config
from mailsys.errors import ConfigError, NoSuchEntry, QueueError
from mailsys.frozen import frozen
from mailsys.ipc.messages import ErrorCode, ErrorReply
from mailsys.ipc.proto import bounce as proto
from mailsys.ipc.proto.bounce import NoticeReady, NoticeRequest, PostmasterCopy
from mailsys.message.dsn import Kind, NoticeSettings, build_notice, wants_notice
from mailsys.message.envelope import Envelope
from mailsys.message.headers import HeaderPolicy, clean_header
from mailsys.message.qid import new_qid
from mailsys.message.received import received_local
from mailsys.message.verp import verp_sender
from mailsys.queue import QueueStore
from mailsys.runtime import ipc_io, skeleton, store_io

log = structlog.get_logger()

# The words of the notification log line (Postfix bounce_notify_service.c,
# bounce_notify_verp.c, bounce_trace_service.c).
LOG_KIND = {Kind.FAILURE: "sender non-delivery", Kind.DELAY: "sender delay",
            Kind.SUCCESS: "sender delivery status", Kind.VERIFY: "sender delivery status"}


@frozen
class Notice:
    """A notice ready for the queue, and what cleanup would have logged."""

    queue_id: str
    recipient: str
    content: bytes
    log_lines: tuple[str, ...]
    orig: str = ""          # the recipient as configured, when qualified here


def double_bounce_address(cfg: Config) -> str:
    """The sender of postmaster copies (Postfix mail_addr_double_bounce())."""
    return _qualified(cfg.double_bounce_sender, cfg)


def _qualified(address: str, cfg: Config) -> str:
    return address if "@" in address else f"{address}@{cfg.myorigin}"


def notice_settings(cfg: Config) -> NoticeSettings:
    """The notices' settings, bounce_template_file read now: its warnings are
    logged, and an unreadable file leaves the built-in templates."""
    try:
        return NoticeSettings.from_config(cfg, warn=log.warning)
    except ConfigError as e:
        log.warning(f"{e} -- using the built-in templates")
        return NoticeSettings.from_config(cfg.with_overrides({"bounce_template_file": ""}))


def compose(kind: Kind, env: Envelope, content: bytes, indexes: tuple[int, ...],
            cfg: Config, now: float, settings: NoticeSettings | None = None) -> Notice | None:
    """compose - the notice for the given recipients, or None when none is due."""
    if not env.sender or env.sender.lower() == double_bounce_address(cfg).lower():
        return None
    rcpts = [env.recipients[i] for i in indexes
             if 0 <= i < len(env.recipients) and wants_notice(env.recipients[i], kind)]
    if not rcpts:
        return None
    body = build_notice(kind, env, content, rcpts, settings or notice_settings(cfg), now=now,
                        warn=lambda text: log.warning(text, queue_id=env.queue_id))
    return _queued(body, env.sender, cfg, now)


# (notice kind, original sender null?) -> (the notify_classes words that ask
# for a postmaster copy, the parameter naming its recipient). "bounce" implies
# "2bounce" (bounce_notify_service.c: MAIL_ERROR_2BOUNCE | MAIL_ERROR_BOUNCE);
# for a success report only "2bounce" counts (bounce_trace_service.c).
_COPIES = {(Kind.FAILURE, False): (("bounce",), "bounce_notice_recipient"),
           (Kind.FAILURE, True): (("2bounce", "bounce"), "2bounce_notice_recipient"),
           (Kind.DELAY, False): (("delay",), "delay_notice_recipient"),
           (Kind.SUCCESS, True): (("2bounce",), "2bounce_notice_recipient"),
           (Kind.VERIFY, True): (("2bounce",), "2bounce_notice_recipient")}
LOG_COPY = {Kind.FAILURE: "postmaster non-delivery", Kind.DELAY: "postmaster delay",
            Kind.SUCCESS: LOG_KIND[Kind.SUCCESS], Kind.VERIFY: LOG_KIND[Kind.VERIFY]}


def postmaster_copy(kind: Kind, env: Envelope, content: bytes, indexes: tuple[int, ...],
                    cfg: Config, now: float,
                    settings: NoticeSettings | None = None) -> Notice | None:
    """postmaster_copy - the copy notify_classes asks for, or None."""
    if env.sender.lower() == double_bounce_address(cfg).lower():
        return None
    which = _COPIES.get((kind, not env.sender))
    classes = {c.lower() for c in cfg.notify_classes}
    if which is None or classes.isdisjoint(which[0]):
        return None
    success = kind in (Kind.SUCCESS, Kind.VERIFY)
    rcpts = [env.recipients[i] for i in indexes if 0 <= i < len(env.recipients)
             and (not success or wants_notice(env.recipients[i], kind))]
    if not rcpts:
        return None
    to = _qualified(cfg[which[1]], cfg)
    if success:
        # bounce_trace_service.c: the notice the sender would get (its
        # subject, boilerplate and recipients), to 2bounce_notice_recipient.
        body = build_notice(kind, env, content, rcpts, settings or notice_settings(cfg),
                            now=now, to=to)
    else:
        body = build_notice(kind, env, content, rcpts, settings or notice_settings(cfg),
                            now=now, postmaster=to, full=not env.sender)
    # Postfix's cleanup keeps "postmaster" as the original recipient of
    # postmaster@$myorigin: "to=<postmaster@host>, orig_to=<postmaster>".
    return dataclasses.replace(_queued(body, to, cfg, now),
                               orig=cfg[which[1]] if to != cfg[which[1]] else "")


def _queued(body: bytes, recipient: str, cfg: Config, now: float) -> Notice:
    """A notice with the headers cleanup gives local mail and its own queue ID."""
    qid = new_qid()
    cleaned = clean_header(
        body, policy=HeaderPolicy.from_config(cfg),
        received=received_local(myhostname=cfg.myhostname, queue_id=qid, arrival=now,
                                mail_name=cfg.mail_name),
        queue_id=qid, arrival=now, sender="", add_missing=True)
    return Notice(qid, recipient, cleaned.assemble(body), cleaned.log_lines)


@frozen
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
        for index, address, orig in req.delivered:
            if 0 <= index < len(env.recipients):
                env = env.with_recipient(index, address=address, orig=orig)
        now = time.time()
        settings = notice_settings(self.cfg)
        if kind is Kind.FAILURE and env.verp_delimiters and len(req.indexes) == 1 \
                and not self.cfg.disable_verp_bounces:
            # A VERP message's bounce goes to the sender its recipient had
            # (Postfix bounce_notify_verp; qmgr asks once per recipient).
            rcpt = env.recipients[req.indexes[0]].address
            env = dataclasses.replace(env, sender=verp_sender(env.sender, rcpt,
                                                              env.verp_delimiters))
        notice = compose(kind, env, content, req.indexes, self.cfg, now, settings)
        copy = postmaster_copy(kind, env, content, req.indexes, self.cfg, now, settings)
        # The sender's notice is logged first, then the postmaster's copy
        # (bounce_notify_service.c, bounce_warn_service.c).
        if notice is not None:
            _log_notice(req.queue_id, LOG_KIND[kind], notice)
        else:
            _log_not_sent(req.queue_id, kind, env.sender, self.cfg, copy is not None)
        copies: tuple[PostmasterCopy, ...] = ()
        if copy is not None:
            _log_notice(req.queue_id, LOG_COPY[kind], copy)
            copies = (PostmasterCopy(copy.queue_id, double_bounce_address(self.cfg),
                                     copy.recipient, copy.content, copy.orig),)
        if notice is None:
            return NoticeReady(notice_id="", sender="", recipient=env.sender, content=b"",
                               copies=copies)
        return NoticeReady(notice_id=notice.queue_id, sender="", recipient=notice.recipient,
                           content=notice.content, copies=copies)


def _log_not_sent(qid: str, kind: Kind, sender: str, cfg: Config, copied: bool) -> None:
    """Why no notice goes to the sender, when that is worth a line."""
    double = sender.lower() == double_bounce_address(cfg).lower()
    if kind in (Kind.SUCCESS, Kind.VERIFY) and (double or not sender and not copied):
        # bounce_trace_service.c's words.
        log.info("not sending trace/success notification for "
                 f"{'double' if double else 'single'}-bounce message", queue_id=qid)
    elif double:
        log.warning("undeliverable postmaster notification discarded", queue_id=qid)
    elif not sender and not copied:
        log.info(f"{LOG_KIND[kind]} notification discarded: the sender is <>", queue_id=qid)


def _log_notice(qid: str, kind: str, notice: Notice) -> None:
    """The lines cleanup and bounce log for a notice that is queued."""
    for line in notice.log_lines:
        if line.startswith("message-id="):
            log.info("message-id", queue_id=notice.queue_id,
                     message_id=line[len("message-id="):])
    log.info("notification", queue_id=qid, kind=kind, notice_id=notice.queue_id)


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
