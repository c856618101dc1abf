"""deliver protocol - qmgr hands recipients to a delivery agent.

qmgr (the only owner of queue state changes, DESIGN.md contract 3) sends a
DeliverRequest to the agent named by the recipient's transport (smtp,
local, ...) on `<queue_directory>/private/<transport>`. The agent reads the
content from the queue store itself (read only), delivers, logs each
recipient's result in Postfix's form (`QID: to=<r>, relay=..., delay=...,
delays=a/b/c/d, dsn=X.Y.Z, status=sent (...)`, the "status" event of
mailsys.maillog), and answers one DeliveryStatus with a result for every
recipient it was given. qmgr then records the results in the store:
sent -> done, deferred -> retry with back-off, bounced -> notice.

An agent that dies or times out leaves its recipients untouched in the
store; qmgr retries them (a crash may deliver twice, never zero times).
"""

from __future__ import annotations


from mailsys.frozen import frozen
from mailsys.ipc.codec import message

PROTOCOL = "deliver"

SENT, DEFERRED, BOUNCED = "sent", "deferred", "bounced"


@message("deliver_recipient", version=1)
@frozen
class DeliverRecipient:
    index: int                   # the recipient's index in the queue entry
    address: str
    orig: str = ""               # original recipient, for orig_to=
    orcpt: str = ""
    notify: tuple[str, ...] = ()


@message("deliver_request", version=1)
@frozen
class DeliverRequest:
    queue_id: str
    transport: str               # master.cf service name of the agent ("smtp", "relay", "local")
    nexthop: str                 # Postfix next-hop syntax: "example.com", "[host]:port", "" for local
    sender: str
    recipients: tuple[DeliverRecipient, ...]
    arrival_time: float
    size: int
    queued_at: float             # when qmgr took the entry into active (delays= a/b split)
    envid: str = ""
    ret: str = ""
    body_type: str = ""
    smtputf8: bool = False
    address_class: str = ""      # routing class for the local agent ("local", "virtual")
    # Where the message came from, for smtp_send_xforward_command: the queue
    # entry's client (the original one when a content filter forwarded it),
    # the queue ID to forward as IDENT (upstream's, else this entry's; ""
    # for mail that did not come in over SMTP) and the rewrite context
    # ("local"/"remote"). The local agent exports the client, HELO,
    # protocol and SASL login to commands and passes them on with a
    # forwarded copy, as Postfix's delivery request carries them.
    client_name: str = ""
    client_addr: str = ""
    client_port: int = 0
    client_helo: str = ""
    client_protocol: str = ""
    log_ident: str = ""
    rewrite_context: str = ""
    sasl_method: str = ""
    sasl_user: str = ""
    sasl_sender: str = ""        # pipe ${sasl_sender}, local SASL_SENDER
    # An address verification probe (Postfix DEL_REQ_FLAG_MTA_VRFY): find
    # out what would become of each recipient without delivering (smtp:
    # RCPT TO, then RSET; local: the user, alias or mailbox), and log
    # status=deliverable or status=undeliverable instead of sent, deferred
    # or bounced. qmgr reports the results to verify and drops the probe.
    probe: bool = False


@message("deliver_result", version=1)
@frozen
class RecipientResult:
    index: int
    status: str                  # SENT, DEFERRED or BOUNCED
    dsn: str                     # "2.0.0", "4.4.1", "5.1.1"
    reason: str                  # the text in status=... (reason)
    relay: str = "none"          # relay= field: "host[addr]:port", "local", "none"
    remote_mta: str = ""         # DSN Remote-MTA (the remote host name), if one answered
    diagnostic: str = ""         # DSN Diagnostic-Code ("smtp; 550 5.1.1 ..."), if any
    action: str = ""             # DSN Action of a success ("delivered", "relayed"); ""
                                 # lets the notice decide by remote_mta
    success_passed: bool = False # the next hop announced DSN: it reports a success
                                 # itself, none is owed from here (Postfix smtp_rcpt.c)


@message("deliver_status", version=1)
@frozen
class DeliveryStatus:
    queue_id: str
    results: tuple[RecipientResult, ...]
    dead_destination: bool = False   # the next hop failed as a whole (connect refused,
                                     # DNS tempfail): qmgr may throttle the destination
