"""cleanup protocol - what smtpd, sendmail and bounce send to cleanup.

One request per message, on a kept-open channel (ipc_io.ChannelPool): the
envelope and the content as received, dot-unstuffed, with CRLF line ends.
cleanup adds the Received header and whatever headers are missing, enforces
the header limits, commits the entry durably (group commit) and only then
answers Queued; smtpd says "250 2.0.0 Ok: queued as QID" after that reply
and never before (DESIGN.md contract 1).

Replies:
    Queued       the entry is committed to the incoming queue and qmgr poked
                 (to the hold queue for hold; nothing at all for discard).
    Rejected     the content was refused (e.g. 554 5.4.0 Error: too many
                 hops); smtpd sends the reply as given and logs the reject.
                 With bounce set, only a temporary refusal (4xx) comes
                 back: a permanent one is returned to the sender, Queued.
    ErrorReply   queue_full -> 452 4.3.1 Insufficient system storage;
                 write_error, unavailable, protocol, internal -> 451 4.3.0
                 Error: queue file write error. Nothing stays in the queue.

The queue ID is chosen by the sender of the request (smtpd logs
"QID: client=..." at the first accepted RCPT, as Postfix does, before the
content exists); cleanup refuses an ID that is already in the queue.
"""

from __future__ import annotations


from mailsys.frozen import frozen
from mailsys.ipc.codec import message

PROTOCOL = "cleanup"


@message("cleanup_recipient", version=1)
@frozen
class CleanupRecipient:
    address: str
    orcpt: str = ""              # DSN ORCPT as given ("rfc822;a@b"), or ""
    notify: tuple[str, ...] = () # DSN NOTIFY values, upper case
    orig: str = ""               # the address before rewriting, when it differs
                                 # (postsuper -r keeps a queued recipient's; local's forwarded
                                 # copy names the alias it came from)


@frozen
class CleanupMilter:
    """One smtpd milter whose conversation cleanup continues (Postfix's
    milter8_send() attributes): its connection comes with the request as
    a descriptor (SCM_RIGHTS), one per CleanupMilter, in order; this is
    what was configured and negotiated, and where the conversation is."""
    endpoint: str                # "inet:127.0.0.1:8891", as configured
    command_timeout: float
    content_timeout: float
    default_action: str          # milter_default_action: accept, reject, tempfail, quarantine
    version: int                 # negotiated protocol version
    actions: int                 # negotiated SMFIF_* actions
    protocol: int                # negotiated SMFIP_* flags
    # The macro names per stage (SMFIM_* index, or "unknown"), after SETSYMLIST.
    macro_lists: tuple[tuple[str, tuple[str, ...]], ...] = ()
    accepted_message: bool = False   # SMFIR_ACCEPT during the envelope: nothing more


@frozen
class ForwardedClient:
    """The client a message is logged under when smtpd got XFORWARD (Postfix's
    log_client_name, log_client_address, ... queue file attributes): the
    forwarded ones when XFORWARD named any client attribute, else the
    actual client's. ``ident`` is the forwarded IDENT (the queue ID on the
    upstream MTA), "" when none was given."""
    name: str = "unknown"
    addr: str = "unknown"
    port: int = 0
    helo: str = ""
    protocol: str = ""
    ident: str = ""

    @property
    def namaddr(self) -> str:
        """``name[addr]``, or the name alone when the address is unknown (smtpd.c)."""
        return self.name if self.addr == "unknown" else f"{self.name}[{self.addr}]"


@message("cleanup_request", version=1)
@frozen
class CleanupRequest:
    queue_id: str
    sender: str                  # "" for the null sender
    recipients: tuple[CleanupRecipient, ...]
    content: bytes               # header + body, CRLF, dot-unstuffed
    arrival_time: float
    origin: str = "smtpd"        # "smtpd", "sendmail", "bounce": who submits
    # postsuper -r: the queue ID the message had. The entry gets a new ID
    # and a Received: header of its own; origin, client and arrival_time
    # are the message's (as Postfix's pickup copies a requeued file).
    requeued_from: str = ""
    # Postfix's CLEANUP_FLAG_BOUNCE, which the pickup service sets: a
    # message cleanup refuses for good (5xx) is queued with every recipient
    # bounced, for qmgr and bounce to return it to its sender with the
    # reason, and the answer is Queued (mailsys.message.cleanup_bounce).
    # sendmail, whose user is there to be told, leaves it off: Rejected.
    bounce: bool = False
    local: bool = False          # add missing headers (local_header_rewrite_clients)
    client_name: str = ""
    client_addr: str = ""
    client_port: int = 0
    helo: str = ""
    protocol: str = "ESMTP"      # SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA, UTF8SMTP...
    tls: str = ""                # TLS description for Received, "" without TLS
    sasl_method: str = ""
    sasl_user: str = ""
    sasl_sender: str = ""        # MAIL FROM AUTH= as sent ("" for none or AUTH=<>)
    verp_delimiters: str = ""    # XVERP / sendmail -V: two characters, or "" for no VERP
    envid: str = ""
    ret: str = ""                # "FULL", "HDRS" or ""
    body_type: str = ""          # "7BIT", "8BITMIME", "BINARYMIME" or ""
    smtputf8: bool = False
    uid: int = -1                # sendmail: the submitting user's uid
    fullname: str = ""           # sendmail -F: the From: phrase when From: is added
    crlf: bool = False           # every line end in content is CRLF (smtpd checked
                                 # while reading DATA); cleanup need not look again
    # The actions of smtpd's access restrictions for the message (Postfix's
    # CLEANUP_FLAG_HOLD, CLEANUP_FLAG_DISCARD, FILTER, REDIRECT, BCC and
    # PREPEND records); services/cleanup says what each does.
    hold: bool = False
    discard: bool = False
    filter: str = ""             # transport:destination
    redirect: str = ""
    bcc: tuple[str, ...] = ()
    prepend: tuple[str, ...] = ()   # header lines
    # The sender's receive_override_options (Postfix passes them to cleanup
    # as flags): "no_address_mappings" and "no_header_body_checks" switch
    # off cleanup's address rewriting and content checks for the message.
    receive_override_options: tuple[str, ...] = ()
    # The "by" host of smtpd's Received: header: that smtpd's $myhostname,
    # which master.cf -o may set apart from cleanup's ("" = cleanup's).
    received_by: str = ""
    # XFORWARD: who the message is logged as coming from, and what a later
    # smtp client forwards; None without XFORWARD. client_* above stay the
    # actual client (the Received: header names it, as Postfix's does).
    forwarded: ForwardedClient | None = None
    # The milters' verdict at end of message, noted by cleanup itself for
    # its log lines (a sender leaves them empty): milter_reject is the
    # reply of a milter that refused the message ("554 5.7.1 text"; logged,
    # answered Rejected, nothing queued); milter_action "hold" or
    # "discard" is logged as the milter's action; milter_checks what
    # milter_header_checks found in the headers milters added, as
    # (action, header, text), logged "QID: milter-header-reject: header
    # ..." (a REJECT or DISCARD among them is logged by these lines alone).
    milter_reject: str = ""
    milter_action: str = ""
    milter_checks: tuple[tuple[str, str, str], ...] = ()
    # smtpd_milters whose conversation cleanup continues with the header,
    # body and end of message of the message as cleanup stored it, as
    # Postfix's cleanup does: their connections come with the request
    # (one descriptor each, in order); milter_macros are the values
    # cleanup has for their macros (Postfix's cleanup_milter_eval()), and
    # milter_macro_defaults smtpd's. Absent without smtpd_milters.
    milters: tuple[CleanupMilter, ...] = ()
    milter_macros: tuple[tuple[str, str], ...] = ()
    milter_macro_defaults: tuple[tuple[str, str], ...] = ()
    # An address verification probe (Postfix's DEL_REQ_FLAG_MTA_VRFY
    # trace flag): kept as the entry's "trace_flags" attribute, which makes
    # qmgr deliver it in trace-only mode and report to verify, never to
    # the sender. "" for ordinary mail.
    trace_flags: str = ""


@message("cleanup_queued", version=1)
@frozen
class Queued:
    queue_id: str
    size: int                    # bytes stored: what mailq shows
    # The CleanupRequest milters that failed here (their index): smtpd
    # gives them up too, as their conversation is out of step.
    milters_failed: tuple[int, ...] = ()


@message("cleanup_rejected", version=1)
@frozen
class Rejected:
    code: int                    # 554
    enhanced: str                # "5.4.0"
    text: str                    # "Error: too many hops"
    milters_failed: tuple[int, ...] = ()     # as Queued's
