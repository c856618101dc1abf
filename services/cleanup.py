"""cleanup - turn an envelope and content into a queue entry (Postfix cleanup(8)).

SYNOPSIS
    master.cf:  cleanup   unix  n  -  n  -  0  cleanup

DESCRIPTION
    Serves protocol "cleanup" (mailsys.ipc.proto.cleanup) on
    $queue_directory/private/cleanup to smtpd, the sendmail command and
    bounce. For each CleanupRequest it:

      1. checks the queue ID the client chose (a well-formed ID, not yet
         in the queue) and message_size_limit;
         a message that postsuper -r requeues (requeued_from: its old
         queue ID) comes through here again, as Postfix's pickup hands a
         requeued file to cleanup: it gets a new queue ID, a Received:
         header "by host (mailsys, from userid N)" above the others, and
         every header rule below once more; it keeps its arrival time,
         client and rewrite context;
      2. builds the Received: header (smtpd's, or "by host (mailsys, from
         userid N)" for local submission) and runs Postfix's header rules
         (mailsys.message.headers): header_checks (each primary header
         looked up in its tables; mailsys.message.header_checks says what
         each action does), hop count, header_size_limit,
         message_drop_headers, and Message-Id/Date/From added when the
         rewrite context is local (or always_add_missing_headers = yes);
         then mime_header_checks and nested_header_checks (the headers of
         each MIME part and of each attached message; both $header_checks
         by default, as in Postfix) and body_checks (each line of body
         text, the first body_checks_size_limit bytes of each part), all
         in mailsys.message.mime_checks. Each action is logged as
         Postfix's cleanup logs it: "QID: reject: header Subject: ... from
         c[ip]; from=<s> to=<r> proto=ESMTP helo=<h>: 5.7.1 message content
         rejected", "QID: warning: body ...", "QID: prepend: header ...:
         X-New: text"; a table entry it cannot use is a warning without
         queue ID that names the parameter ("warning: unknown command in
         body_checks map: FROB x") and changes nothing;
      3. rewrites the envelope (mailsys.message.address_maps):
         sender_canonical_maps, recipient_canonical_maps, canonical_maps,
         masquerade_domains, then virtual_alias_maps expansion, each
         recipient keeping the address it was received as (orig_to= in
         the delivery logs), then always_bcc, sender_bcc_maps and
         recipient_bcc_maps; an expansion past its limits is Postfix's
         Rejected(451, 4.6.0, "Alias expansion error"). For a local
         client (or any client, with remote_header_rewrite_domain set)
         the addresses of From:, To:, Cc:, ... are rewritten during step
         2 too: qualified with @$myorigin (@$remote_header_rewrite_domain),
         then the canonical maps and masquerading of the header_sender
         and header_recipient classes;
      4. hands envelope and content to a group commit
         (mailsys.runtime.store_io.GroupCommit): requests that arrive while
         one commit is in flight are written together by the next, in one
         fsynced transaction;
      5. logs "QID: message-id=<...>" (before the commit, as Postfix
         logs it while reading the header), and after the commit, never
         before, answers Queued(queue_id, size) (DESIGN.md contract 1); qmgr
         is poked with b"I" on $queue_directory/public/qmgr after a batch,
         best effort: the queue is the truth and qmgr also scans on its timer.
         Triggers are paced: the first after a quiet spell goes at once,
         later ones at most one per TRIGGER_SPACING, each covering every
         batch committed meanwhile (one qmgr scan takes them all in).

    The actions of smtpd's access restrictions (CleanupRequest) and of
    header_checks (after smtpd's: the later FILTER and REDIRECT win), as
    Postfix's cleanup and qmgr carry them out:

      hold      the entry is committed to the hold queue instead (a group
                commit of its own; qmgr is not poked), logged the same;
      discard   answered Queued, stored nowhere; smtpd's is answered at
                once, whatever the content, and logged by smtpd only;
      prepend   the header lines go first, before the Received: header;
      bcc       each address is added as a recipient (once), with NOTIFY
                NEVER so that no notice about it reaches the sender;
      redirect  every recipient, the added ones too, becomes the one
                redirect address; its orig_to= is the first recipient;
      filter    kept in the envelope (attribute "filter"), where qmgr
                sends every recipient to that transport:destination.

    The sender's receive_override_options (CleanupRequest) switch steps
    off for one message: no_address_mappings step 3, no_header_body_checks
    the header, MIME and body checks of step 2.

    Refusals: Rejected(554, 5.4.0, "Error: too many hops") and
    Rejected(552, 5.3.4, "Error: message file too big"). Failed commits:
    ErrorReply queue_full (smtpd: 452 4.3.1) for a full map or disk,
    write_error (451 4.3.0) otherwise. A failed request leaves nothing in
    the queue (create_many is all or nothing).

    A request with bounce set (the pickup service's: Postfix's
    CLEANUP_FLAG_BOUNCE) is not answered Rejected for a permanent (5xx)
    refusal, whatever step refused it: the message goes back to its
    sender, as Postfix's cleanup_bounce() returns it. cleanup logs each
    recipient "QID: to=<r>, relay=none, delay=D, delays=D/0/0/0,
    dsn=5.7.1, status=bounced (message content rejected)", commits the
    entry with every recipient bounced (mailsys.message.cleanup_bounce
    says with what status, reason and content) and answers Queued; qmgr
    then has bounce queue the notice, or the postmaster copy notify_classes
    asks for when the sender is <>, and removes the entry. XXX Postfix's
    cleanup asks bounce itself and never queues the message; here qmgr
    does that part, as Postfix's did before 2005, so the log also shows
    qmgr's "QID: from=<s>, size=N, nrcpt=M (queue active)" and "QID:
    removed" lines for it. A temporary (4xx) refusal is still answered.

    Milters: the envelope of mail submitted with sendmail goes to the
    non_smtpd_milters first (mailsys.runtime.cleanup_milters). For mail
    from smtpd, whose smtpd_milters saw the envelope there, the request
    brings their connections (descriptors sent with it, ipc_io pass_fds).
    Either way cleanup goes on with the header, body and end of message
    of the message as it built it in steps 1-3, before step 4
    (mailsys.runtime.cleanup_inspect), then applies
    their changes: new content, a new sender and added recipients
    rewritten as in step 3, deleted recipients, hold, discard,
    milter_header_checks' actions. It logs their verdict as Postfix's
    cleanup logs it: "QID: milter-reject: END-OF-MESSAGE from
    name[addr]: 5.7.1 text; from=<s> to=<r> proto=ESMTP helo=<h>" after
    the message-id= line, then answers Rejected and queues nothing;
    milter-hold and milter-discard lines likewise.

    Many cleanup processes may run (maxproc 0, as Postfix's); each opens the
    queue store once, after the master started it (post_init), never
    before fork.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from typing import Any

import structlog
import trio

from mailsys.config import Config
from mailsys.config.tables import open_table
from mailsys.errors import QueueError, QueueFull
from mailsys.frozen import frozen
from mailsys.ipc import names
from mailsys.ipc.messages import ErrorCode, ErrorReply
from mailsys.ipc.proto.cleanup import (PROTOCOL, CleanupRequest, ForwardedClient, Queued,
                                       Rejected)
from mailsys.ipc.proto.verify import TRACE_FLAGS
from mailsys.maillog.setup import send_pending
from mailsys.message.char_filter import DISALLOWED, CharFilter
from mailsys.message.address_maps import (ALIAS_ERROR, RECIPIENT_HEADERS, SENDER_HEADERS,
                                          AddressMaps, AliasError)
from mailsys.message.dsn import address_type
from mailsys.message.envelope import Envelope, Recipient
from mailsys.message.header_checks import ChecksGate, ContentAction, log_text, screened
from mailsys.message.cleanup_bounce import bounceable, returned
from mailsys.message.headers import (HeaderPolicy, clean_header, encode_header,
                                     wants_missing_headers)
from mailsys.message.message_actions import MessageActions, first_answer, with_actions
from mailsys.message.mime_checks import check_body
from mailsys.message.mime_state import MimePolicy
from mailsys.message.smtp_output import MIME_HEADERS
from mailsys.message.qid import is_qid
from mailsys.message.reply import StatusReply
from mailsys.message.received import received_local, received_smtp
from mailsys.qmgr.settings import local_domain_check
from mailsys.queue import Queue, QueueStore
from mailsys.runtime import ipc_io, skeleton, store_io
from mailsys.runtime.cleanup_inspect import Inspected, MilterInspector, run as run_milters
from mailsys.runtime.cleanup_milters import CLIENT as NON_SMTPD_CLIENT, NonSmtpdMilters, Started

log = structlog.get_logger()

# A trigger is a byte on a connection kept open while triggers come often
# (ipc_io.TriggerLine); qmgr's trigger reader takes it at once. A qmgr too
# busy to take it within a second gets no hint; it scans on its own timer
# anyway.
TRIGGER_TIMEOUT = 1.0
# Under load a trigger per commit costs qmgr a wake-up and a scan of a few
# entries; spacing them lets one scan take in the batches of this many
# seconds. A lone message is not delayed: only a trigger that follows
# another within the spacing waits.
TRIGGER_SPACING = 0.02

# cleanup_strerror.c: CLEANUP_STAT_SIZE as smtpd words it.
TOO_BIG = Rejected(552, "5.3.4", "Error: message file too big")

# The headers whose addresses cleanup rewrites, as clean_header wants their names.
ADDRESS_HEADERS = frozenset(n.encode("ascii") for n in SENDER_HEADERS | RECIPIENT_HEADERS)


class _Box:
    """One request passed down the handler's calls; the one that take()s
    it holds its only reference."""

    __slots__ = ("item",)

    def __init__(self, item: object) -> None:
        self.item = item

    def take(self) -> Any:
        item, self.item = self.item, None
        return item


@frozen
class _Entry:
    """A request turned into what the queue stores, plus what to log after."""

    envelope: Envelope
    content: bytes
    log_lines: tuple[str, ...]
    hold: bool = False
    discard: bool = False
    # False once a content check's REDIRECT or PASS ended the checks: the
    # milters skip the message too (CLEANUP_FLAG_FILTER_ALL).
    milters: bool = True


class Cleanup:
    """The per-process state: config, the group commit and the qmgr trigger."""

    def __init__(self, cfg: Config, store: QueueStore, *,
                 trigger_spacing: float = TRIGGER_SPACING) -> None:
        self.cfg = cfg
        self.policy = HeaderPolicy.from_config(cfg)
        # A table named by several parameters (mime_header_checks and
        # nested_header_checks default to $header_checks) is opened once, as
        # Postfix shares a map among its users: its warnings are logged once.
        opened: dict[str, object] = {}

        def table(spec: str):
            if spec not in opened:
                opened[spec] = open_table(spec, cfg)
            return opened[spec]

        def checks(param: str, kind: str = "header") -> Callable[[str], str | None] | None:
            # An entry cleanup cannot use is warned about, naming param.
            return screened(first_answer([table(spec) for spec in cfg[param]]), param,
                            log.warning, kind)
        mime = not cfg.disable_mime_input_processing
        self.header_checks = checks("header_checks")
        self.mime_checks = checks("mime_header_checks") if mime else None
        self.nested_checks = checks("nested_header_checks") if mime else None
        self.body_checks = checks("body_checks", "body")
        self.mime = mime
        self.chars = CharFilter.from_config(cfg)
        self.mime_policy = MimePolicy.from_config(cfg, header_checks=bool(
            cfg.header_checks or cfg.mime_header_checks or cfg.nested_header_checks))
        self.primary_checks = self._primary_checks()
        self.address_maps = AddressMaps.from_config(cfg, lambda spec: open_table(spec, cfg),
                                                    local_domain_check(cfg))
        self.remote_rewrite_domain = cfg.remote_header_rewrite_domain
        self.myorigin = cfg.myorigin
        self.size_limit = cfg.message_size_limit
        self.commits = store_io.GroupCommit(store, on_commit=self._committed)
        self.holds = store_io.GroupCommit(store, Queue.HOLD)
        self.milters = NonSmtpdMilters.from_config(cfg)      # non_smtpd_milters
        self.inspector = MilterInspector.from_config(cfg)    # smtpd_milters, continued
        self.qmgr = ipc_io.TriggerLine(names.public_path(cfg.path("queue_directory"), names.QMGR))
        self._poke = trio.Event()
        self._spacing = trigger_spacing

    def _primary_checks(self) -> Callable[[str], str | None] | None:
        """The check of the message's own headers: header_checks, except that
        its MIME headers (Content-*, MIME-Version) go to mime_header_checks
        while MIME processing is on, as Postfix's cleanup sends them (seen
        live with Postfix 3.7.11; both default to the same tables)."""
        plain, mime = self.header_checks, self.mime_checks
        if not self.mime or (plain is None and mime is None):
            return plain

        def check(text: str) -> str | None:
            name = text.split(":", 1)[0].strip().lower()
            table = mime if name in MIME_HEADERS else plain
            return table(text) if table is not None else None
        return check

    # -- one request ---------------------------------------------------------

    async def handle(self, req: object, fds: list[int] | None = None) -> object:
        """One request; fds: the descriptors that came with it (smtpd's
        milter connections), closed here unless the milters took them."""
        # Handed down in a box, not as an argument: a coroutine keeps its
        # arguments while it waits, and the content must be able to go
        # before the commit (see _message).
        box = _Box(req)
        # A request whose refusal goes back to its sender (the pickup
        # service's) is kept here for that: its content outlives _message.
        returning = req if isinstance(req, CleanupRequest) and req.bounce else None
        del req
        try:
            answer = await self._handle(box, fds if fds is not None else [])
        finally:
            for fd in fds or ():
                os.close(fd)
        if returning is not None and isinstance(answer, Rejected):
            refusal = StatusReply(answer.code, answer.enhanced, answer.text)
            if bounceable(refusal):
                return await self._return(returning, refusal)
        return answer

    async def _handle(self, box: _Box, fds: list[int]) -> object:
        req = box.item
        if not isinstance(req, CleanupRequest):
            return ErrorReply(ErrorCode.PROTOCOL, f"unexpected request {type(req).__name__}")
        if not is_qid(req.queue_id):
            return ErrorReply(ErrorCode.PROTOCOL, f"bad queue ID {req.queue_id!r}")
        if not req.recipients:
            return ErrorReply(ErrorCode.PROTOCOL, f"{req.queue_id}: no recipients")
        own: Started | None = None
        if self.milters is not None and req.origin == "sendmail" \
                and "no_milters" not in req.receive_override_options:
            started = await self.milters.envelope(req)
            if not isinstance(started, Started):
                return started
            own = started
            box.item = started.request
        del req
        try:
            return await self._message(box, fds, own)
        finally:
            if own is not None:
                await own.session.aclose()

    async def _message(self, box: _Box, fds: list[int],
                       own: Started | None) -> object:
        """The request in box (its envelope told to the non_smtpd_milters of
        own, if any) processed and committed."""
        req: CleanupRequest = box.take()
        if req.discard:
            # Postfix reports success for a discarded message whatever else
            # was wrong with it.
            return Queued(queue_id=req.queue_id, size=len(req.content))
        if self.size_limit and len(req.content) > self.size_limit:
            return TOO_BIG
        entry = self.prepare(req)
        if isinstance(entry, Rejected):
            return entry
        if entry.discard:
            return Queued(queue_id=req.queue_id, size=entry.envelope.size)
        qid = req.queue_id
        # smtpd's milters go on here with the message as stored (Postfix:
        # unless a DISCARD action decided already).
        inspect = (own is not None or bool(req.milters) and len(fds) == len(req.milters)
                   and "no_milters" not in req.receive_override_options) and entry.milters
        if req.milters and len(fds) != len(req.milters):
            log.warning(f"{len(req.milters)} milters but {len(fds)} connections; "
                        "milters skipped", queue_id=qid)
        # What the milter lines need, without the content.
        milter_req = dataclasses.replace(req, content=b"") if inspect else None
        # The content as received is not needed any more: let it go before
        # the wait for the commit (the entry holds the stored form). This
        # is its last reference (handle() passed it down in a box): with
        # 100 KB messages it was a third of cleanup's memory under load.
        del req
        # Logged before the commit, as Postfix's cleanup logs while it reads
        # the header: qmgr may log the message's "from=" as soon as the
        # commit is done, and mail.log must not show qmgr before cleanup.
        for line in entry.log_lines:
            if line.startswith("message-id="):
                log.info("message-id", queue_id=qid, message_id=line[len("message-id="):])
            else:
                log.info(line, queue_id=qid)
        failed: tuple[int, ...] = ()
        if milter_req is not None:
            where = len(milter_req.prepend)
            found = await self.inspector.inspect(milter_req, fds, entry.content, where) \
                if own is None else await run_milters(own.session, own.macros, entry.content,
                                                      where)
            failed = found.failed
            entry, milter_req = self._milter_changes(entry, milter_req, found)
            answer = _milter_verdict(entry, milter_req, failed,
                                     self.logged_recipient(milter_req))
            if answer is not None:
                return answer
        error = await self._commit(self.holds if entry.hold else self.commits,
                                   entry.envelope, entry.content)
        if error is not None:
            return error
        return Queued(queue_id=qid, size=entry.envelope.size, milters_failed=failed)

    async def _commit(self, commits: store_io.GroupCommit, envelope: Envelope,
                      content: bytes) -> ErrorReply | None:
        """Commit one entry; the answer when that fails."""
        try:
            await commits.create(envelope, content)
        except QueueFull as e:
            log.warning(f"queue file write error: {e}", queue_id=envelope.queue_id)
            return ErrorReply(ErrorCode.QUEUE_FULL, str(e))
        except QueueError as e:
            log.warning(f"queue file write error: {e}", queue_id=envelope.queue_id)
            return ErrorReply(ErrorCode.WRITE_ERROR, str(e))
        return None

    async def _return(self, req: CleanupRequest, refusal: StatusReply) -> object:
        """Queue a message refused for good with every recipient bounced, for
        qmgr and bounce to return it to its sender (Postfix's cleanup does
        so for a client that set CLEANUP_FLAG_BOUNCE: cleanup_bounce.c);
        the answer is Queued. Each recipient is logged as Postfix's cleanup
        logs it there, before the notice exists: "QID: to=<r>, relay=none,
        delay=D, delays=D/0/0/0, dsn=5.7.1, status=bounced (message content
        rejected)". The sender and recipients are rewritten as for any
        message (step 3), as Postfix's cleanup rewrote them before it wrote
        them to the queue file that cleanup_bounce() reads; after an alias
        error they stay as requested."""
        now = time.time()
        arrival = req.arrival_time or now
        content = encode_header(self.received(req, arrival)) + req.content
        try:
            sender, recipients = self._addresses(
                req, lambda text: log.warning(text, queue_id=req.queue_id))
        except AliasError:
            sender, recipients = req.sender, _recipients(req)
        envelope, content = returned(
            _envelope(req, sender=sender, recipients=recipients, arrival=arrival,
                      size=len(content), body_type=req.body_type),
            content, refusal, now=now)
        delay = max(0.0, now - arrival)
        for r in envelope.recipients:
            log.info("status", queue_id=req.queue_id, to=r.address, orig_to=r.orig or r.address,
                     relay="none", delay=delay, delays=(delay, 0, 0, 0), dsn=r.dsn_status,
                     status=r.state.value, reason=r.reason)
        error = await self._commit(self.commits, envelope, content)
        if error is not None:
            return error
        return Queued(queue_id=req.queue_id, size=envelope.size)

    def _milter_changes(self, entry: _Entry, req: CleanupRequest,
                        found: Inspected) -> tuple[_Entry, CleanupRequest]:
        """The entry with the milters' changes (Postfix's cleanup_milter.c
        edits the queue file so): the new content; a new sender and added
        recipients rewritten as the envelope's were (canonical maps,
        masquerading, virtual aliases); a deleted recipient matched by the
        address it was received as; hold, discard and milter_header_checks'
        actions. req comes back with the verdict, for the log lines."""
        notes: dict[str, Any] = {}
        if found.checks:
            notes["milter_checks"] = tuple((a.action, a.header, a.text) for a in found.checks)
        if found.refusal is not None:
            notes["milter_reject"] = str(found.refusal)
            return entry, dataclasses.replace(req, **notes)
        if found.discard or found.hold:
            notes["milter_action"] = "discard" if found.discard else "hold"
        req = dataclasses.replace(req, **notes)
        env = entry.envelope
        mappings = self.address_maps.active \
            and "no_address_mappings" not in req.receive_override_options

        def warn(text: str) -> None:
            log.warning(text, queue_id=req.queue_id)
        sender = env.sender
        if found.sender is not None:
            sender = self.address_maps.sender(found.sender, warn) if mappings else found.sender
        recipients = tuple(r for r in env.recipients
                           if (r.orig or r.address).lower() not in found.deleted)
        have = {r.address.lower() for r in recipients}
        for address in found.added:
            # Postfix's cleanup_addr_bcc_dsn(): the one-to-one rewriting,
            # then virtual alias expansion.
            finals = [address]
            if mappings:
                try:
                    finals = self.address_maps.expand(
                        self.address_maps.canonical_recipient_of(address, warn))
                except AliasError as e:
                    warn(str(e))
                    continue
            for final in finals:
                if final.lower() not in have:
                    have.add(final.lower())
                    recipients += (Recipient(final, orig=address if final != address else ""),)
        actions = MessageActions()
        for a in found.checks:
            if a.action in ("hold", "discard", "filter", "redirect"):
                actions.take(a.action, a.text)
        attrs = env.attrs
        if actions.filter:
            attrs = tuple(kv for kv in attrs if kv[0] != "filter") + (("filter", actions.filter),)
        if actions.redirect:
            recipients = with_actions(recipients, (), actions.redirect)
        content = found.content if found.content is not None else entry.content
        envelope = dataclasses.replace(env, sender=sender, recipients=recipients,
                                       size=len(content), attrs=attrs)
        return _Entry(envelope, content, entry.log_lines,
                      entry.hold or found.hold or actions.hold,
                      entry.discard or actions.discard), req

    def prepare(self, req: CleanupRequest) -> _Entry | Rejected:
        """The queue entry for req (pure: no I/O), or the refusal."""
        arrival = req.arrival_time or time.time()
        overrides = req.receive_override_options
        checks = "no_header_body_checks" not in overrides
        mappings = "no_address_mappings" not in overrides

        def warn(text: str) -> None:
            log.warning(text, queue_id=req.queue_id)
        content = req.content
        if checks:
            # Postfix's cleanup looks at each line it receives, before any
            # header or body rule (cleanup_message_headerbody()).
            record = self.chars.rejected(content)
            if record is not None:
                self._act(CharFilter.action(record), MessageActions.of(req), req)
                return Rejected(DISALLOWED.code, DISALLOWED.enhanced, DISALLOWED.text)
            content = self.chars.strip(content)
        # Header addresses are rewritten for local clients, or with a
        # remote_header_rewrite_domain for everyone (Postfix 2.2 and later).
        domain = self.myorigin if req.local else self.remote_rewrite_domain
        rewrite = self.address_maps.header_rewriter(domain, mappings, warn) \
            if req.local or domain else None
        gate = ChecksGate()
        cleaned = clean_header(
            content, policy=self.policy, received=self.received(req, arrival),
            queue_id=req.queue_id, arrival=arrival, sender=req.sender,
            fullname=req.fullname, prepend=req.prepend,
            check=gate.wrap(self.primary_checks) if checks else None,
            rewrite=rewrite, rewrite_names=ADDRESS_HEADERS,
            add_missing=wants_missing_headers(
                local_client=req.local,
                always_add_missing_headers=self.cfg.always_add_missing_headers))
        for warning in cleaned.warnings:
            log.warning(warning, queue_id=req.queue_id)
        actions = MessageActions.of(req)
        for act in cleaned.actions:
            self._act(act, actions, req)
        error = cleaned.error
        source = content
        if error is None and not actions.discard and checks and not gate.closed and (
                self.mime_checks or self.nested_checks or self.body_checks):
            body = source[cleaned.body_offset:]
            found = check_body(body, cleaned.content_type if self.mime else "",
                               mime=gate.wrap(self.mime_checks),
                               nested=gate.wrap(self.nested_checks),
                               lines=gate.wrap(self.body_checks),
                               limit=self.cfg.body_checks_size_limit,
                               boundary_limit=self.mime_policy.boundary_limit)
            for act in found.actions:
                self._act(act, actions, req)
            error = found.error
            if found.edits:
                source = source[:cleaned.body_offset] + found.apply(body)
        body_type = req.body_type
        if error is None and not actions.discard:
            # Postfix's MIME state machine (strict_* and its limits), in one
            # pass after the header and body rules (mailsys.message.mime_state).
            # A Content-Transfer-Encoding: 8bit wins over BODY=7BIT too
            # (Postfix 3.7.11 relayed such a message with BODY=8BITMIME).
            scan = self.mime_policy.scan(content, want_8bit=body_type.upper() not in (
                "8BITMIME", "BINARYMIME"))
            if scan.error is not None:
                log.info(scan.error.log(origin=_origin(req), sender=req.sender,
                                        recipient=self.logged_recipient(req) or "unknown"),
                         queue_id=req.queue_id)
                error = scan.error.reply
            elif scan.declares_8bit:
                body_type = "8BITMIME"
        if error is not None:
            return Rejected(error.code, error.enhanced, error.text)
        try:
            sender, recipients = self._addresses(req, warn)
        except AliasError as e:
            warn(str(e))
            return Rejected(451, *ALIAS_ERROR)
        content = cleaned.assemble(source, crlf=req.crlf)
        envelope = _envelope(
            req, sender=sender, recipients=with_actions(recipients, actions.bcc, actions.redirect),
            arrival=arrival, size=len(content), body_type=body_type,
            attrs=((("filter", actions.filter),) if actions.filter else ())
            + (((TRACE_FLAGS, req.trace_flags),) if req.trace_flags else ()))
        return _Entry(envelope, content, cleaned.log_lines, actions.hold, actions.discard,
                      milters=not gate.closed)

    def _addresses(self, req: CleanupRequest, warn: Callable[[str], None]
                   ) -> tuple[str, tuple[Recipient, ...]]:
        """The envelope's sender and recipients after the canonical maps,
        masquerading and virtual aliases (unless no_address_mappings);
        raises AliasError. A recipient without ORCPT gets one made of its
        address, after the canonical maps when they apply."""
        mapped = self.address_maps.active \
            and "no_address_mappings" not in req.receive_override_options
        recipients = _recipients(req, orcpt=not mapped)
        if not mapped:
            return req.sender, recipients
        return self.address_maps.envelope(
            req.sender, recipients, warn,
            orcpt_of=lambda address: _dsn_orcpt(address, req.smtputf8))

    def logged_recipient(self, req: CleanupRequest) -> str | None:
        """The recipient cleanup's content and milter lines name ("to=<r>"):
        Postfix's state->recip (src/cleanup/cleanup_addr.c), the last
        recipient, rewritten one-to-one (canonical maps, masquerading) as
        the envelope's are, before virtual alias expansion."""
        if not req.recipients:
            return None
        address = req.recipients[-1].address
        if self.address_maps.active and "no_address_mappings" not in req.receive_override_options:
            try:
                # Its warnings are the envelope rewriting's to log.
                address = self.address_maps.canonical_recipient_of(address, lambda text: None)
            except AliasError:
                pass
        return address

    def _act(self, act: ContentAction, actions: MessageActions, req: CleanupRequest) -> None:
        """Keep a content check's action, logged as Postfix's cleanup logs it."""
        if act.action == "unknown":         # not from a screened() table
            log.warning(f"unknown command in header_checks map: {act.text}")
            return
        if not actions.take(act.action, act.text):
            return
        smtpd = req.origin == "smtpd"
        fwd = req.forwarded
        log.info(log_text(act, origin=_origin(req), sender=req.sender,
                          recipient=self.logged_recipient(req),
                          proto=("" if not smtpd else fwd.protocol if fwd is not None
                                 else req.protocol),
                          helo=("" if not smtpd else fwd.helo if fwd is not None
                                else req.helo)),
                 queue_id=req.queue_id)

    def received(self, req: CleanupRequest, arrival: float) -> str:
        """The Received: header this request gets (received.py has the layouts)."""
        host = self.cfg.myhostname
        if req.requeued_from:
            # Postfix's pickup adds "by host (Postfix, from userid N)" to a
            # requeued file, dated when it was requeued, above the others.
            return received_local(myhostname=host, queue_id=req.queue_id, arrival=time.time(),
                                  uid=req.uid if req.uid >= 0 else None)
        if req.origin != "smtpd":
            return received_local(myhostname=host, queue_id=req.queue_id, arrival=arrival,
                                  uid=req.uid if req.uid >= 0 else None)
        text = received_smtp(
            helo=req.helo, client_name=req.client_name or "unknown",
            client_addr=req.client_addr, myhostname=req.received_by or host,
            protocol=req.protocol,
            queue_id=req.queue_id, recipients=[r.address for r in req.recipients],
            arrival=arrival,
            sasl_username=req.sasl_user if self.cfg.smtpd_sasl_authenticated_header else "")
        if req.tls:
            # smtpd describes its TLS session (the "(using ...)" lines) when
            # its smtpd_tls_received_header says so; they follow the first line.
            first, rest = text.split("\n", 1)
            tls = "\n".join("\t" + line.strip() for line in req.tls.splitlines() if line.strip())
            text = f"{first}\n{tls}\n{rest}"
        return text

    # -- after commits --------------------------------------------------------

    def _committed(self, qids: object) -> None:
        self._poke.set()

    async def trigger_qmgr(self) -> None:
        """Send qmgr b"I" after batches, at most one per trigger spacing;
        the batches committed while one waits fold into it."""
        sent = -math.inf
        try:
            while True:
                await self._poke.wait()
                await trio.sleep_until(sent + self._spacing)
                self._poke = trio.Event()
                sent = trio.current_time()
                send_pending()      # the message-id lines go before qmgr's from=
                await self.qmgr.send(names.QMGR_REQ_SCAN_INCOMING, timeout=TRIGGER_TIMEOUT)
        finally:
            self.qmgr.close()


def _origin(req: CleanupRequest) -> str:
    """Who cleanup's content lines name as the client: "local" for mail
    not from smtpd; after XFORWARD the original client (Postfix's
    log_client_* attributes)."""
    if req.origin != "smtpd":
        return "local"
    fwd = req.forwarded
    return fwd.namaddr if fwd is not None else f"{req.client_name or 'unknown'}[{req.client_addr}]"


def _recipients(req: CleanupRequest, orcpt: bool = True) -> tuple[Recipient, ...]:
    """The request's recipients as the queue keeps them, not tried yet;
    orcpt: those without a DSN original recipient get one of their address."""
    return tuple(Recipient(r.address, orig=r.orig, notify=r.notify,
                           orcpt=r.orcpt or (_dsn_orcpt(r.address, req.smtputf8) if orcpt else ""))
                 for r in req.recipients)


def _dsn_orcpt(address: str, smtputf8: bool) -> str:
    """The DSN original recipient Postfix's cleanup gives a recipient that
    came without one ("Fix 20141024", src/cleanup/cleanup_addr.c):
    "rfc822;" and the address (the "Original-Recipient:" of a notice), "utf-8;"
    for a non-ASCII one in SMTPUTF8 mail; none for the null address."""
    return f"{address_type(address, smtputf8)};{address}" if address else ""


def _envelope(req: CleanupRequest, *, sender: str, recipients: tuple[Recipient, ...],
              arrival: float, size: int, body_type: str,
              attrs: tuple[tuple[str, str], ...] = ()) -> Envelope:
    """The envelope of the request's entry: what cleanup decided (sender,
    recipients, size, body type, attributes) with the request's client,
    DSN and origin fields."""
    logged = _logged_client(req)
    return Envelope(
        queue_id=req.queue_id, sender=sender, recipients=recipients,
        arrival_time=arrival, size=size,
        client_name=logged.name, client_addr=logged.addr, client_port=logged.port,
        helo=logged.helo, protocol=logged.protocol, log_ident=logged.ident,
        sasl_user=req.sasl_user, sasl_method=req.sasl_method, sasl_sender=req.sasl_sender,
        verp_delimiters=req.verp_delimiters if sender else "",
        rewrite_context="local" if req.local else "remote",
        envid=req.envid, ret=req.ret, body_type=body_type, smtputf8=req.smtputf8,
        attrs=(("origin", req.origin),) + ((("uid", str(req.uid)),) if req.uid >= 0 else ())
        + attrs)


def _logged_client(req: CleanupRequest) -> ForwardedClient:
    """Who the message is logged (and later XFORWARDed) as coming from:
    what smtpd's XFORWARD said, else the actual client."""
    if req.forwarded is not None:
        return req.forwarded
    return ForwardedClient(req.client_name, req.client_addr, req.client_port, req.helo,
                           req.protocol)


def open_queue(ctx: skeleton.ServiceContext) -> Cleanup:
    try:
        store = QueueStore.open(ctx.config.path("queue_directory"),
                                min_free=ctx.config.queue_minfree)
    except QueueError as e:
        log.critical(f"cannot open the queue: {e}")
        raise SystemExit(1) from None
    return Cleanup(ctx.config, store)


async def serve_client(stream: trio.abc.Stream, ctx: skeleton.ServiceContext) -> None:
    # Descriptors come with a request only from smtpd with smtpd_milters.
    await ipc_io.serve(stream, ctx.state.handle, protocol=PROTOCOL, pass_fds=True)


async def background(ctx: skeleton.ServiceContext) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ctx.state.commits.run)
        nursery.start_soon(ctx.state.holds.run)
        nursery.start_soon(ctx.state.trigger_qmgr)


def _log_milter(req: CleanupRequest, action: str, text: str, recipient: str | None) -> None:
    """A milter's end-of-message verdict, as Postfix's cleanup logs it:
    "QID: milter-reject: END-OF-MESSAGE from name[addr]: 5.7.1 text;
    from=<s> to=<r> proto=ESMTP helo=<h>" (seen live, 3.7.11)."""
    if req.origin != "smtpd":           # non_smtpd_milters: no protocol, no HELO
        log.info("reject", action=action, command="END-OF-MESSAGE", client=NON_SMTPD_CLIENT,
                 reply=text, sender=req.sender, recipient=recipient, queue_id=req.queue_id)
        return
    who = _logged_client(req)
    log.info("reject", action=action, command="END-OF-MESSAGE",
             client=f"{who.name or 'unknown'}[{who.addr}]", reply=text, sender=req.sender,
             recipient=recipient, proto=who.protocol, helo=who.helo, queue_id=req.queue_id)


def _milter_verdict(entry: _Entry, req: CleanupRequest, failed: tuple[int, ...],
                    recipient: str | None) -> Rejected | Queued | None:
    """Log the milters' verdict, as Postfix's cleanup does after the
    header; the answer when nothing is to be committed (refused, dropped).
    recipient: the one the lines name (Cleanup.logged_recipient())."""
    _log_milter_checks(req, recipient)
    qid = req.queue_id
    if req.milter_reject:
        code, enhanced, text = _split_reply(req.milter_reject)
        if not _checked(req, "reject"):
            _log_milter(req, "milter-reject", f"{enhanced} {text}" if enhanced else text,
                        recipient)
        return Rejected(code, enhanced, text, milters_failed=failed)
    if req.milter_action == "discard":
        if not _checked(req, "discard"):
            _log_milter(req, "milter-discard", "milter triggers DISCARD action", recipient)
        return Queued(queue_id=qid, size=entry.envelope.size, milters_failed=failed)
    if entry.discard:                           # milter_header_checks DISCARD
        return Queued(queue_id=qid, size=entry.envelope.size, milters_failed=failed)
    if req.milter_action == "hold":
        _log_milter(req, "milter-hold", "milter triggers HOLD action", recipient)
    return None


def _checked(req: CleanupRequest, action: str) -> bool:
    """Whether milter_header_checks took this action (which its own line logs)."""
    return any(found[0] == action for found in req.milter_checks)


def _log_milter_checks(req: CleanupRequest, recipient: str | None) -> None:
    """What milter_header_checks found, as Postfix's cleanup logs it:
    "QID: milter-header-reject: header X-Spam: yes from name[addr];
    from=<s> to=<r> proto=ESMTP helo=<h>: 5.7.1 message content rejected"
    (the header cut to 60 characters)."""
    if not req.milter_checks:
        return
    if req.origin == "smtpd":
        who = _logged_client(req)
        origin, proto, helo = f"{who.name or 'unknown'}[{who.addr}]", who.protocol, who.helo
    else:
        origin, proto, helo = NON_SMTPD_CLIENT, "", ""
    for action, header, text in req.milter_checks:
        if action == "prepend":
            log.warning("the milter_header/body_checks prepend action is not implemented")
        elif action == "unknown":           # not from a screened() table
            log.warning(f"unsupported command in milter_header_checks map: {text}")
        else:
            found = ContentAction(f"milter-header-{action}", header[:60], text)
            log.info(log_text(found, origin=origin, sender=req.sender, recipient=recipient,
                              proto=proto, helo=helo), queue_id=req.queue_id)


def _split_reply(reply: str) -> tuple[int, str, str]:
    """"554 5.7.1 text" -> (554, "5.7.1", "text"); no enhanced code -> ""."""
    code, _, rest = reply.partition(" ")
    enhanced, _, text = rest.partition(" ")
    parts = enhanced.split(".")
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        return int(code), enhanced, text
    return int(code), "", rest


def main() -> None:
    skeleton.run("cleanup", serve_client, post_init=open_queue, loop=background,
                 nice=skeleton.MANY_CLIENTS_NICE)


if __name__ == "__main__":
    main()
