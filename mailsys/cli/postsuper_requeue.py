"""postsuper_requeue - postsuper -r: a queued message through cleanup again, under a new ID.

SYNOPSIS
    requeuer = Requeuer(cfg, store)
    outcome = requeuer.requeue(qid, queues)      # Requeued, or NotRequeued(why)
    requeuer.close()

DESCRIPTION
    Postfix's postsuper -r moves a message file to the maildrop queue,
    where pickup hands it to cleanup as if it were new mail: the message
    gets a new queue ID, a Received: header "by host (Postfix, from userid
    N)" above its others, and address rewriting and header_checks once
    more; it keeps its arrival time (delay= counts from it), its client
    attributes (header_checks log lines still say "from c[a]; ... helo=")
    and its rewrite context, and only the recipients that were not yet
    done (delivered or bounced) come along, with their DSN original
    recipient, with no deferral reason and no retry schedule. Postfix
    3.7 logs (checked on a private instance):

        postfix/postsuper[26444]: AA03D20C859: requeued
        postfix/postsuper[26444]: Requeued: 1 message
        postfix/pickup[26404]: B95D920C936: uid=103 from=<a@example.org> orig_id=AA03D20C859
        postfix/cleanup[28388]: B95D920C936: message-id=<m2@example.org>
        postfix/qmgr[26406]: B95D920C936: from=<new@example.org>, size=370, nrcpt=2 (queue active)

    mailsys has no maildrop queue: requeue() reads the entry (envelope and
    content) from the store, sends cleanup a CleanupRequest with a new
    queue ID and requeued_from set (services/cleanup), and logs pickup's
    line, under the "<syslog_name>/pickup" tag, once cleanup has taken the
    connection and before the message goes over it (as the sendmail
    command does, so that it comes before qmgr's "from=" line). cleanup
    commits the new entry (fsynced) and pokes qmgr; only after it has
    answered Queued is the old entry removed. The two are not one
    transaction, and need not be: in this order a crash in between leaves
    both entries, and the message is delivered twice, never zero times
    (DESIGN.md contract 2). Every failure before the removal leaves the
    old entry exactly as it was.

    An old entry in the active queue may have deliveries in flight: they
    finish, and qmgr, which finds the entry gone, drops it (as for
    postsuper -d); a recipient delivered by them is delivered again from
    the new entry, as with Postfix.

    Where mailsys differs from Postfix:
    - A recipient that is done but still owed a delivery status notice
      (bounce could not be reached when it bounced) must not lose it: the
      old entry then stays, due at once, its requeued recipients marked
      sent (reason "requeued as NEWID", no notice), and qmgr sends the
      notice and removes it. Postfix loses such a notice.
    - When cleanup refuses the message again (a header_checks REJECT),
      the old entry stays and postsuper says why; Postfix's pickup would
      return the message to its sender.
    - When the mail system is down there is no cleanup to take the
      message: it is requeued in place, under its queue ID (its deferred
      recipients made pending again, retry schedule and forced expiry
      cleared, back in the incoming queue), with a warning. Postfix
      leaves it in maildrop until pickup runs.
"""

from __future__ import annotations

import os
import time

import trio

from mailsys.config import Config
from mailsys.errors import NoSuchEntry
from mailsys.frozen import frozen
from mailsys.ipc.errors import IpcError, IpcUnavailable
from mailsys.ipc.proto.cleanup import CleanupRecipient, CleanupRequest, Queued, Rejected
from mailsys.maillog.event import LogEvent
from mailsys.maillog.writer import Writer
from mailsys.message.envelope import Envelope, Notify, RcptState, Recipient
from mailsys.message.qid import new_qid
from mailsys.queue import Queue, QueueStore
from mailsys.runtime import ipc_io
from mailsys.runtime.cleanup_client import cleanup_path

# Where an entry may be when its old copy is removed: qmgr may have moved
# it meanwhile (deferred -> active, active -> deferred).
LIVE_QUEUES = (Queue.HOLD, Queue.INCOMING, Queue.ACTIVE, Queue.DEFERRED)


@frozen
class Requeued:
    new_id: str | None            # None: requeued in place (mail system down)


@frozen
class NotRequeued:
    why: str                      # the warning postsuper prints


def owes_notice(r: Recipient) -> bool:
    """Done, but a delivery status notice about it is not queued yet."""
    if r.notified:
        return False
    return r.state is RcptState.BOUNCED or (r.state is RcptState.SENT
                                            and Notify.SUCCESS in r.notify)


def request_for(env: Envelope, content: bytes, new_id: str, uid: int) -> CleanupRequest | None:
    """What cleanup gets for the entry: the recipients not yet done, the
    rest as queued. None when every recipient is done."""
    rcpts = tuple(CleanupRecipient(r.address, orcpt=r.orcpt,
                                   notify=tuple(n.value for n in r.notify), orig=r.orig)
                  for r in env.recipients if not r.final)
    if not rcpts:
        return None
    return CleanupRequest(
        queue_id=new_id, sender=env.sender, recipients=rcpts, content=content,
        arrival_time=env.arrival_time, origin=env.attr("origin", "smtpd") or "smtpd",
        local=env.rewrite_context == "local", client_name=env.client_name,
        client_addr=env.client_addr, client_port=env.client_port, helo=env.helo,
        protocol=env.protocol or "ESMTP", sasl_method=env.sasl_method, sasl_user=env.sasl_user,
        sasl_sender=env.sasl_sender,
        envid=env.envid, ret=env.ret, body_type=env.body_type, smtputf8=env.smtputf8,
        uid=uid,
        # A content_filter decided at arrival still applies: dropping it
        # would let a requeue skip the filter.
        filter=env.attr("filter", "") or "",
        requeued_from=env.queue_id)


class Requeuer:
    """Requeues entries one by one through cleanup (see DESCRIPTION)."""

    def __init__(self, cfg: Config, store: QueueStore) -> None:
        self.cfg = cfg
        self.store = store
        self.uid = os.getuid()
        self.down = False                 # cleanup unreachable: requeue in place
        self._pickup: Writer | None = None

    def requeue(self, qid: str, queues: tuple[Queue, ...]) -> Requeued | NotRequeued:
        """Requeue one entry found in queues; NoSuchEntry when it is in none."""
        env, queue = self.store.load(qid)
        if queue not in queues:
            raise NoSuchEntry(qid)
        if self.down:
            return self.in_place(qid, queue)
        content = self.store.load_content(qid)
        request = request_for(env, content, new_qid(), self.uid)
        if request is None:
            # Nothing left to deliver (only notices owed): qmgr settles it.
            return self.in_place(qid, queue)
        try:
            reply = trio.run(self._submit, request)
        except IpcUnavailable:
            self.down = True
            return self.in_place(qid, queue)
        except IpcError as e:
            return NotRequeued(f"not requeued: cleanup: {e}; the message stays as it was")
        if isinstance(reply, Rejected):
            return NotRequeued(f"not requeued: {reply.code} {reply.enhanced} {reply.text}; "
                               "the message stays as it was")
        self._retire(env, request.queue_id)
        return Requeued(request.queue_id)

    async def _submit(self, request: CleanupRequest) -> Queued | Rejected:
        timeout = self.cfg.ipc_timeout
        deadline = trio.current_time() + timeout
        async with await ipc_io.connect(cleanup_path(self.cfg), protocol="cleanup",
                                        timeout=timeout) as chan:
            self._log_pickup(request)
            return await chan.call(request, expect=(Queued, Rejected),
                                   timeout=max(0.0, deadline - trio.current_time()))

    def _retire(self, env: Envelope, new_id: str) -> None:
        """The old entry after the new one is committed: removed, or kept
        for the notices it owes with its requeued recipients marked done."""
        moved = {i for i, r in enumerate(env.recipients) if not r.final}
        if not any(owes_notice(r) for r in env.recipients):
            self.store.remove_many([env.queue_id], src=LIVE_QUEUES)
            return
        try:
            self.store.update(env.queue_id, src=LIVE_QUEUES, next_attempt=time.time(),
                              rcpt={i: dict(state=RcptState.SENT, notified=True,
                                            reason=f"requeued as {new_id}") for i in moved})
        except NoSuchEntry:
            pass                          # qmgr finished it meanwhile

    def in_place(self, qid: str, queue: Queue) -> Requeued:
        """The mail system is down: back to incoming under the same queue ID."""
        env, _ = self.store.load(qid)
        fresh = {i: dict(state=RcptState.PENDING, dsn_status="", reason="",
                         remote_mta="", diagnostic="", deferred_as="")
                 for i, r in enumerate(env.recipients) if r.state is RcptState.DEFERRED}
        self.store.update(qid, src=queue, dst=Queue.INCOMING, rcpt=fresh,
                          next_attempt=0.0, last_reason="", forced_expire=False)
        return Requeued(None)

    def _log_pickup(self, request: CleanupRequest) -> None:
        """pickup's "NEWID: uid=N from=<s> orig_id=OLD", under pickup's tag."""
        if self._pickup is None:
            self._pickup = Writer.from_config(self.cfg)
        self._pickup.emit(LogEvent.from_event_dict(
            {"event": "pickup", "level": "info", "timestamp": time.time(),
             "queue_id": request.queue_id, "uid": self.uid, "sender": request.sender,
             "orig_id": request.requeued_from},
            tag=f"{self.cfg.syslog_name}/pickup", pid=os.getpid()))

    def close(self) -> None:
        if self._pickup is not None:
            self._pickup.close()

