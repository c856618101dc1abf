"""local - the local delivery agent's work for one request (Postfix local(8), virtual(8)).

SYNOPSIS
    plans = plan_request(request, content, settings, aliases)  # one RecipientPlan each
    results = deliver_request(request, content, settings)    # one RecipientResult each

DESCRIPTION
    Synchronous and blocking (file system calls with fsync, waits for
    mailbox locks): services/local runs it in a worker thread. For each
    recipient:

     1. find the mailbox, a Maildir or an mbox file
        (mailsys.delivery.mailbox);
     2. refuse a loop: the message already carries ``Delivered-To:`` with
        this recipient, so it has been here before: bounce 5.4.6 ``mail
        forwarding loop for bob@example.com`` (Postfix's delivered_hdr check);
     3. write the message with ``Return-Path: <sender>``,
        ``X-Original-To: <original recipient>`` and ``Delivered-To:
        <recipient>`` in front, as Postfix's agents add them for both
        formats (addresses quoted as quote_822_local(3) does):
        into a Maildir (mailsys.delivery.maildir: tmp/, fsync, link into
        new/, fsync), or appended to an mbox file under its locks after a
        ``From sender  date`` line, with ``>From `` quoting and a closing
        empty line (mailsys.delivery.mbox_format, mailsys.delivery.mbox);
        with strict_mailbox_ownership (the default) an mbox file that its
        recipient does not own defers with 4.2.0 ``destination FILE is not
        owned by recipient`` and Postfix's warning (mailbox_owners() says
        whose it may be);
     4. say ``delivered to maildir`` or ``delivered to mailbox`` (2.0.0),
        with relay=local or relay=virtual as the address class says.

    A local recipient (relay=local) is first expanded through $alias_maps
    (mailsys.delivery.aliases, which also applies mailbox_transport(_maps),
    mailbox_command(_maps), fallback_transport(_maps) and luser_relay in
    Postfix's order): each resulting mailbox is written as above
    under the address it was reached as (``to=<alice@host>,
    orig_to=<root@host>``), duplicates once; a ``|command`` or ``/file``
    destination, or a mailbox_command, is run or appended to
    (mailsys.delivery.command, mailsys.delivery.file); addresses to
    forward and recipients to hand to another transport are returned in
    the plan, for services/local to submit to cleanup or to pass to that
    transport's agent, and a failure of one piece is
    logged as that piece's line. plan_request gives, per recipient, every
    line to log and the forwards; combine() folds the pieces into the one
    result qmgr gets: deferred when any piece deferred (the whole
    recipient is tried again, as Postfix does), else bounced when any
    bounced, else sent.

    Failures never lose mail: a permanent one (unknown user, loop, message
    over the mailbox size limit) bounces; anything else (permissions, full
    disk, a mailbox locked by a reader, configuration) defers and qmgr
    retries. An mbox failure reads as Postfix's: ``cannot update mailbox
    /var/mail/bob for user bob. unable to lock for exclusive access:
    Resource temporarily unavailable`` from local,
    ``delivery failed to mailbox /var/vmail/bob: error writing message:
    File too large`` from virtual.
"""

from __future__ import annotations

import os
import pwd

from mailsys.delivery import biff, maildir, mbox
from mailsys.delivery.aliases import (AliasSettings, Command, Failure, File, Forward, Pass, Privs,
                                      Seen, Target, expand, local_expand, split_local)
from mailsys.delivery.aliases import Mailbox as ToMailbox
from mailsys.delivery.command import (DEFAULT_EXPANSION_FILTER, CommandSpec, command_env,
                                      filtered, run_command)
from mailsys.delivery.errors import DeliveryError
from mailsys.delivery.file import deliver_file
from mailsys.delivery.mailbox import (Mailbox, MailboxError, MailboxSettings, find_mailbox,
                                      split_address)
from mailsys.delivery.maildir import to_lf
from mailsys.delivery.mbox_format import envelope_line, mbox_entry
from mailsys.delivery.report import deferred, failed, sent
from mailsys.frozen import frozen
from mailsys.ipc.proto.deliver import (BOUNCED, DEFERRED, DeliverRecipient, DeliverRequest,
                                       RecipientResult)
from mailsys.message.address import quote_822_local, unquote_822_local

__all__ = ["deliver_request", "deliver_one", "delivered_to", "relay_name", "plan_request",
           "RecipientPlan", "combine"]

# Postfix reads at most this much header when it looks for Delivered-To
# (it stops at the end of the header; a bound keeps a headerless message cheap).
HEADER_SCAN_LIMIT = 1 << 20


def relay_name(req: DeliverRequest) -> str:
    """relay=virtual for virtual mailboxes, relay=local for mydestination users."""
    cls = req.address_class or ("virtual" if req.transport == "virtual" else "local")
    return "virtual" if cls == "virtual" else "local"


def delivered_to(content: bytes) -> set[str]:
    """Every Delivered-To address in the message header, lower-cased."""
    head = content[:HEADER_SCAN_LIMIT]
    end = len(head)
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = head.find(sep)
        if 0 <= i < end:
            end = i
    found = set()
    for line in head[:end].replace(b"\r\n", b"\n").split(b"\n"):
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() == b"delivered-to":
            found.add(value.strip().decode("utf-8", "replace").lower())
    return found


def _header(sender: str, rcpt: DeliverRecipient, delivered: str | None,
            original: bool = True) -> bytes:
    """What goes in front of a mailbox copy; delivered: the Delivered-To
    address, None for none (prepend_delivered_header without "file");
    original: whether X-Original-To goes in (enable_original_recipient)."""
    orig = rcpt.orig or rcpt.address
    lines = [f"Return-Path: <{quote_822_local(sender) if sender else ''}>"]
    if original:
        lines.append(f"X-Original-To: {quote_822_local(orig)}")
    if delivered is not None:
        lines.append(f"Delivered-To: {quote_822_local(delivered)}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def mailbox_owners(box: Mailbox) -> frozenset[int]:
    """The uids an mbox file may belong to under strict_mailbox_ownership:
    the recipient's (when known), as in Postfix. Unprivileged, mailsys
    writes every mailbox as itself, so its own uid counts as the
    recipient's too; as root a file without a known owner is root's."""
    euid = os.geteuid()
    if euid == 0:
        return frozenset({box.owner[0] if box.owner is not None else 0})
    return frozenset({euid} if box.owner is None else {euid, box.owner[0]})


def _append_mbox(box: Mailbox, relay: str, header: bytes, sender: str, content: bytes,
                 settings: MailboxSettings) -> int:
    """Append to the mbox file; the offset the message starts at."""
    try:
        return mbox.append(box.path, mbox_entry(header, content, sender), policy=box.locks,
                           limit=box.limit, owner=box.owner,
                           owners=mailbox_owners(box) if settings.strict_owner else None)
    except DeliveryError as e:
        if isinstance(e, mbox.NotOwned):
            settings.warn('specify "strict_mailbox_ownership = no" to ignore mailbox '
                          'ownership mismatch')
        # Each Postfix agent puts its own words in front of the reason.
        prefix = (f"delivery failed to mailbox {box.path}: " if relay == "virtual"
                  else f"cannot update mailbox {box.path} for user {box.user}. ")
        raise DeliveryError(e.dsn, prefix + e.text) from None


def deliver_one(req: DeliverRequest, rcpt: DeliverRecipient, content: bytes,
                settings: MailboxSettings, seen: set[str], hostname: str | None = None,
                boxes: set[str] | None = None, delivered: str = "") -> RecipientResult | None:
    """Write one mailbox; None when `boxes` shows it was written for this request already.
    delivered: the Delivered-To address of a local delivery (the recipient
    the delivery started with, under frozen_delivered_to); default the
    recipient's own."""
    relay = relay_name(req)
    try:
        box = find_mailbox(rcpt.address, relay, settings)
    except MailboxError as e:
        return failed(rcpt, e.dsn, e.text, relay=relay)
    if boxes is not None:
        if str(box.path) in boxes:
            return None
        boxes.add(str(box.path))
    if rcpt.address.lower() in seen:
        return failed(rcpt, "5.4.6", f"mail forwarding loop for {rcpt.address}", relay=relay)
    # local(8) adds Delivered-To where prepend_delivered_header says
    # "file" (its mailbox context too); virtual(8) always does.
    wanted = relay == "virtual" or "file" in settings.delivered_header
    header = _header(req.sender, rcpt, (delivered or rcpt.address) if wanted else None,
                     settings.original_recipient)
    try:
        if box.mbox:
            offset = _append_mbox(box, relay, header, req.sender, content, settings)
            if settings.biff and relay != "virtual":
                biff.notify(box.user, offset)
        else:
            maildir.deliver(box.path, header, content, limit=box.limit, hostname=hostname)
    except DeliveryError as e:
        return failed(rcpt, e.dsn, e.text, relay=relay)
    return sent(rcpt, "delivered to mailbox" if box.mbox else "delivered to maildir", relay=relay)


@frozen
class RecipientPlan:
    """One recipient's outcome so far: the lines to log, what to forward, and
    what to hand to another transport."""
    rcpt: DeliverRecipient
    parts: tuple[tuple[DeliverRecipient, RecipientResult], ...]
    forwards: tuple[Forward, ...] = ()
    passes: tuple[Pass, ...] = ()

    @property
    def deferred(self) -> bool:
        return any(r.status == DEFERRED for _, r in self.parts)


def combine(plan: RecipientPlan, extra: tuple = ()) -> RecipientResult:
    """The one result qmgr gets for the recipient (extra: the forwarding lines)."""
    results = [r for _, r in plan.parts + tuple(extra)]
    for status in (DEFERRED, BOUNCED):
        for r in results:
            if r.status == status:
                return r
    if results:
        return results[0]
    # Every piece was a duplicate of one already delivered for this request.
    return sent(plan.rcpt, "delivered", relay="local")


def _as_logged(rcpt: DeliverRecipient, t: Target) -> DeliverRecipient:
    return DeliverRecipient(rcpt.index, t.address, orig=t.orig, orcpt=t.orcpt, notify=t.notify)


def plan_local(req: DeliverRequest, rcpt: DeliverRecipient, content: bytes,
               settings: MailboxSettings, aliases: AliasSettings, loops: set[str], seen: Seen,
               boxes: set[str], hostname: str | None = None) -> RecipientPlan:
    """Expand and deliver one local recipient; forwards are left to the caller."""
    top = Target(rcpt.address, rcpt.orig or rcpt.address, req.sender, orcpt=rcpt.orcpt,
                 notify=rcpt.notify)
    parts: list[tuple[DeliverRecipient, RecipientResult]] = []
    forwards: list[Forward] = []
    passes: list[Pass] = []
    for step in expand(top, aliases, seen, frozenset(loops)):
        who = _as_logged(rcpt, step.target)
        if isinstance(step, Forward):
            forwards.append(step)
        elif isinstance(step, Pass):
            passes.append(step)
        elif isinstance(step, Failure):
            parts.append((who, failed(who, step.dsn, step.text, relay="local")))
        elif isinstance(step, ToMailbox):
            result = deliver_one(req, who, content, settings, set(), hostname, boxes,
                                 delivered=step.target.delivered)
            if result is not None:
                parts.append((who, result))
        elif isinstance(step, (Command, File)):
            parts.append((who, _run(req, step, who, content, settings, aliases)))
    return RecipientPlan(rcpt, tuple(parts), tuple(forwards), tuple(passes))


def _copy_header(t: Target, delivered: bool = True, original: bool = True) -> bytes:
    """What local(8)'s mail_copy() puts in front for a command or a file;
    delivered: whether prepend_delivered_header names that context;
    original: enable_original_recipient."""
    lines = [f"Return-Path: <{quote_822_local(t.sender) if t.sender else ''}>"]
    if t.orig and original:
        lines.append(f"X-Original-To: {quote_822_local(t.orig)}")
    if delivered:
        lines.append(f"Delivered-To: {quote_822_local(t.delivered or t.address)}")
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")


def _privs(step: Command | File, aliases: AliasSettings) -> Privs | None:
    """The rights to run with: the step's, or $default_privs' (None if unknown).
    Nothing runs as root: root's own mailbox_command gets default_privs' ids."""
    if step.privs is not None and step.privs.uid != 0 and step.privs.gid != 0:
        return step.privs
    try:
        entry = pwd.getpwnam(aliases.default_privs)
    except KeyError:
        return None
    if step.privs is not None:
        return Privs(entry.pw_uid, entry.pw_gid, step.privs.name, step.privs.home,
                     step.privs.shell)
    return Privs(entry.pw_uid, entry.pw_gid, entry.pw_name)


def mailbox_known(address: str, settings: MailboxSettings, passwd_only: bool = False) -> bool:
    """Whether the local recipient has a mailbox here (find_mailbox says no
    "unknown user"). mailsys writes a spool mailbox for a name without a
    password entry where Postfix needs one; passwd_only asks Postfix's
    question, for when fallback_transport or luser_relay should take such
    mail."""
    try:
        find_mailbox(address, "local", settings)
    except MailboxError as e:
        return e.dsn != "5.1.1"
    if passwd_only:
        _, user, _ = split_address(address, settings.recipient_delimiter)
        try:
            pwd.getpwnam(user)
        except KeyError:
            return False
    return True


def _run(req: DeliverRequest, step: Command | File, who: DeliverRecipient, content: bytes,
         settings: MailboxSettings, aliases: AliasSettings) -> RecipientResult:
    """Run a |command or append to a /file of an alias; its status line."""
    t = step.target
    privs = _privs(step, aliases)
    if privs is None:
        aliases.warn(f"unknown default_privs user: {aliases.default_privs}")
        return deferred(who, "4.3.5", "mail system configuration error", relay="local")
    header = _copy_header(t, ("command" if isinstance(step, Command) else "file")
                          in settings.delivered_header, settings.original_recipient)
    try:
        if isinstance(step, Command):
            # local/command.c exports the addresses in the internal form:
            # SENDER=a b@x for "a b"@x (then through the expansion filter).
            recipient = unquote_822_local(t.address)
            local, user, ext, _, domain = split_local(recipient, aliases.delimiter,
                                                      aliases.owner_request_special)
            values = {"LOGNAME": user, "USER": user, "SENDER": unquote_822_local(t.sender),
                      "RECIPIENT": recipient, "LOCAL": local, "DOMAIN": domain,
                      "EXTENSION": ext, "ORIGINAL_RECIPIENT": unquote_822_local(t.orig),
                      "CLIENT_HOSTNAME": req.client_name, "CLIENT_ADDRESS": req.client_addr,
                      "CLIENT_HELO": req.client_helo, "CLIENT_PROTOCOL": req.client_protocol,
                      "SASL_METHOD": req.sasl_method, "SASL_USERNAME": req.sasl_user,
                      "SASL_SENDER": req.sasl_sender}
            if step.privs is not None:          # not for $default_privs (Postfix)
                values = {"HOME": privs.home, **values, "SHELL": privs.shell}
            cwd = aliases.queue_directory or None
            if aliases.exec_directory:
                cwd = filtered(local_expand(aliases.exec_directory, {
                    "user": user, "home": privs.home, "shell": privs.shell,
                    "recipient": recipient, "local": local, "domain": domain,
                    "extension": ext, "recipient_delimiter": aliases.delimiter if ext else ""}),
                    aliases.exec_filter or DEFAULT_EXPANSION_FILTER)
            spec = CommandSpec(step.command, privs.uid, privs.gid,
                               env=command_env(values, aliases.export, aliases.config_dir,
                                               aliases.expansion_filter
                                               or DEFAULT_EXPANSION_FILTER),
                               shell=aliases.shell, time_limit=aliases.time_limit, cwd=cwd)
            message = envelope_line(t.sender) + header + to_lf(content)
            dsn, text = run_command(spec, message)
        else:
            entry = mbox_entry(header, content, t.sender)
            text = deliver_file(step.path, entry, header, content, privs=(privs.uid, privs.gid),
                                policy=settings.local_locks, limit=settings.local_limit,
                                warn=aliases.warn)
            dsn = "2.0.0"
    except DeliveryError as e:
        if e.fatal:
            aliases.fatal(e.fatal)
        return failed(who, e.dsn, e.text, relay="local")
    return sent(who, text, dsn=dsn, relay="local")


def plan_request(req: DeliverRequest, content: bytes, settings: MailboxSettings,
                 aliases: AliasSettings | None = None, hostname: str | None = None
                 ) -> list[RecipientPlan]:
    """Deliver what can be delivered here; one plan per recipient of the request."""
    loops = delivered_to(content)
    if aliases is None or relay_name(req) != "local":
        return [RecipientPlan(r, ((r, deliver_one(req, r, content, settings, loops, hostname)),))
                for r in req.recipients]
    seen, boxes = Seen(aliases.dup_limit), set()
    return [plan_local(req, r, content, settings, aliases, loops, seen, boxes, hostname)
            for r in req.recipients]


def deliver_request(req: DeliverRequest, content: bytes, settings: MailboxSettings,
                    hostname: str | None = None) -> list[RecipientResult]:
    """Mailbox delivery without aliases, one result per recipient."""
    return [combine(plan) for plan in plan_request(req, content, settings, None, hostname)]
