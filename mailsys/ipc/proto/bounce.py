"""bounce protocol - qmgr asks bounce for a delivery status notice.

When an entry has recipients that bounced (or, with delay_warning_time,
have waited too long, or asked NOTIFY=SUCCESS), qmgr sends a NoticeRequest.
bounce reads the entry from the queue store, builds the RFC 3464 notice
(mailsys.message.dsn) with its own queue ID and the headers cleanup would
add, logs `QID: sender non-delivery notification: NEWQID`, and answers
NoticeReady with the notice's envelope and content. It does not write the
queue: qmgr commits the notice and removes (or updates) the original entry
in one transaction (QueueStore.remove(qid, notices=...)), so an entry never
leaves the queue without its notice (DESIGN.md contract 2).

A notice to the null sender is never built (bounces of bounces are dropped
with a log line, as Postfix does for undeliverable postmaster notices).

Postmaster copies (notify_classes: bounce, 2bounce, delay) travel in
NoticeReady.copies, each a whole notice with its own queue ID, envelope
sender ($double_bounce_sender) and recipient; qmgr commits them with the
sender's notice. The field has a default, so either side may be older.
"""

from __future__ import annotations


from mailsys.frozen import frozen
from mailsys.ipc.codec import message

PROTOCOL = "bounce"

FAILURE, DELAY, SUCCESS = "failure", "delay", "success"
VERIFY = "verify"        # sendmail -bv: the report on every recipient


@message("bounce_notice_request", version=1)
@frozen
class NoticeRequest:
    queue_id: str
    kind: str                    # FAILURE, DELAY or SUCCESS
    indexes: tuple[int, ...]     # the recipients to report
    # (index, address, orig) of a reported recipient qmgr delivers to
    # another address than the queued one (the resolver rewrote it)
    delivered: tuple[tuple[int, str, str], ...] = ()


@frozen
class PostmasterCopy:
    notice_id: str               # the copy's own queue ID
    sender: str                  # $double_bounce_sender@$myorigin: a copy never bounces
    recipient: str               # bounce_notice_recipient, 2bounce_... or delay_...
    content: bytes
    orig: str = ""               # that parameter's value when @$myorigin was added to it


@message("bounce_notice_ready", version=1)
@frozen
class NoticeReady:
    notice_id: str               # "" when no notice is due (null sender, NOTIFY=NEVER)
    sender: str                  # always "" (the null sender) when a notice is built
    recipient: str               # the original sender
    content: bytes
    copies: tuple[PostmasterCopy, ...] = ()
