"""smtpd_session - one SMTP client's session: the policy behind the protocol core.

SYNOPSIS
    await serve_client(stream, server)          # services/smtpd's handler

DESCRIPTION
    Postfix's smtpd_proto() and its command handlers, minus the protocol
    engine (mailsys.smtp) and the I/O loop (mailsys.runtime.smtp_io). For
    one accepted connection it:

      - finds the client's name (forward-confirmed PTR, else "unknown") and
        logs "connect from name[addr]";
      - in wrapper mode (smtps) completes the TLS handshake first;
      - asks anvil to count the connection (unless the client matches
        smtpd_client_event_limit_exceptions) and refuses a client over its
        count or rate limit with "421 4.7.0 <host> Error: too many
        connections from <addr>" instead of the banner;
      - with smtpd_delay_reject = no, evaluates the client restrictions at
        connect; a refusal ("NOQUEUE: reject: CONNECT from ...") is then the
        greeting, and every command but QUIT gets "503 5.7.0 Error: access
        denied for name[addr]" from the core, as in Postfix 3.7;
      - answers each event: HELO/EHLO restrictions when smtpd_delay_reject
        = no; MAIL with the anvil message rate; RCPT with the anvil
        recipient rate and the restriction lists (reject lines logged as
        "NOQUEUE: reject: RCPT from ..."), allocating the queue ID and
        logging "QID: client=name[addr]" at the first accepted recipient
        (at each accepted MAIL with smtpd_delay_open_until_valid_rcpt = no,
        so that rejected recipients log "QID: reject: RCPT ...");
        VRFY as Postfix 3.7's vrfy_cmd(): the anvil recipient rate, the
        refusal a failed milter stands by, the address syntax, then the
        same recipient checks as RCPT ("NOQUEUE: reject: VRFY from ...",
        from=<> only inside a transaction), the core's 252 when they pass;
        the actions of the restrictions that concern the message kept for
        the transaction as Postfix keeps them (below);
        the message content to cleanup in one request at the end of DATA
        or BDAT LAST (held meanwhile in memory, or in an unnamed file in
        the queue directory when it is large or must wait for a busy
        cleanup or for the process's budget of large content in flight,
        smtpd_server.CONTENT_IN_FLIGHT), "250 2.0.0 Ok: queued as QID"
        only when cleanup answered Queued (durably committed); STARTTLS
        (the handshake is mailsys.runtime.smtpd_tls); AUTH with the anvil
        AUTH rate (the exchange is mailsys.runtime.smtpd_auth);
      - asks the policy servers of check_policy_service when an evaluation
        reaches them (mailsys.runtime.policy_client), with Postfix's
        request attributes, and evaluates again with the answer; likewise
        looks up the MX and address records permit_mx_backup asks for; sleeps
        for a "sleep N" restriction (this session only), then evaluates
        again past it;
      - XCLIENT from a client in smtpd_authorized_xclient_hosts (a proxy):
        the session starts over as the client it names, with a new
        greeting; XFORWARD from one in smtpd_authorized_xforward_hosts (a
        content filter re-injecting mail): the next message is logged
        ("client=..., orig_queue_id=..., orig_client=...") and queued under
        the original client it names (Postfix 3.7 behaviour, see _xclient
        and events in mailsys.smtp);
      - notes "improper command pipelining after EHLO from ..." once, when
        a client sends more after a command that must end its group, or
        after any command before it said EHLO;
      - at the end logs what Postfix logs: "lost connection after CMD",
        "timeout after CMD", "too many errors after CMD" and always
        "disconnect from name[addr] ehlo=1 mail=1 ... commands=N".

    HOLD, DISCARD, FILTER, REDIRECT, BCC and PREPEND (access(5)) act on
    the whole message, as in Postfix: smtpd logs the note ("NOQUEUE: hold:
    RCPT from ..."; a HOLD once per transaction, the others at every
    command that triggers them, PREPEND never), keeps the action for the
    transaction (message.message_actions) and hands it to cleanup with the
    message, which carries it out (services/cleanup). After a DISCARD the
    transaction's further recipients are accepted without evaluating the
    restrictions. Client and HELO restrictions evaluated at CONNECT or
    HELO (smtpd_delay_reject = no) skip these actions with a warning, as
    Postfix does (mailsys.policy.access).

    When cleanup cannot take a message (down, refusing, too slow) the client
    gets "451 4.3.0 Error: queue file write error", or "452 4.3.1
    Insufficient system storage" for a full queue, and the session goes on.

    With a before-queue content filter (smtpd_proxy_filter, Postfix's
    SMTPD_PROXY_README) cleanup is not involved and there is no queue ID:
    smtpd's own checks run as always, then the first accepted recipient
    opens the filter transaction (mailsys.runtime.smtpd_proxy) and logs
    "NOQUEUE: client=name[addr]"; each RCPT and DATA is the filter's to
    refuse (its reply is the client's); the content is streamed to it
    behind this smtpd's Received: header (spooled here first with
    smtpd_proxy_options = speed_adjust); the filter's answer to the end
    of the message is the client's, logged "proxy-accept: END-OF-MESSAGE:
    250 ...; from=<s> to=<r> proto=ESMTP helo=<h>" or "proxy-reject: ...".
    smtpd_milters see the commands but not the content there, as in
    Postfix (whose cleanup gives milters the content). Without a filter
    none of this costs anything: a None test per recipient, content piece
    and reset.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import itertools
import os
import socket
import tempfile
import time

import structlog
import trio

from mailsys import __version__
from mailsys.ipc import names
from mailsys.ipc.errors import IpcError, RemoteError
from mailsys.ipc.messages import ErrorCode
from mailsys.ipc.proto import anvil as anvil_proto
from mailsys.ipc.proto import flush as flush_proto
from mailsys.ipc.proto.cleanup import (CleanupRecipient, CleanupRequest, ForwardedClient, Queued,
                                       Rejected)
from mailsys.maillog import postfix as postfix_log
from mailsys.maillog.setup import send_pending
from mailsys.message.message_actions import MessageActions
from mailsys.message.received import received_smtp
from mailsys.message.qid import new_qid
from mailsys.policy import anvil as limits
from mailsys.policy.context import NAME_OK, NAME_PERM, NAME_TEMP
from mailsys.policy.restrictions import (Decision, DnsStatus, HostRecords, NeedPause, NeedPolicy,
                                         NeedRecords, NeedVerify, PolicyContext, note_log_text)
from mailsys.routing import first_lookup
from mailsys.runtime import ipc_io, smtp_io
from mailsys.runtime.smtpd_dns import PeerName, peer_name
from mailsys.runtime.smtpd_milters import Handoff, SmtpdMilters
from mailsys.runtime.smtpd_proxy import PROXY_ERROR, FilterTransaction
from mailsys.runtime.smtpd_server import SmtpdServer
from mailsys.runtime.smtpd_auth import SessionAuth
from mailsys.sasl import server as sasl_server
from mailsys.smtp import (Auth, AuthResponse, Bdat, DataRejected, DataStart, EndOfData, Etrn, Helo,
                          MailFrom, Noop, RcptTo, RemoteProtocolError, Reply, Rset, ServerConnection,
                          StartTls, Vrfy, Xclient, Xforward, replies, xtext_encode)
from mailsys.runtime.proxy_header import read_proxy_header
from mailsys.smtp._xclient import TEMPUNAVAIL as XCLIENT_TEMPUNAVAIL
from mailsys.smtp._xclient import UNAVAILABLE as XCLIENT_UNAVAILABLE
from mailsys.smtp.haproxy import HaproxyError
from mailsys.smtp.server import (BAD_INITIAL_RESPONSE, BARE_LF, BDAT_TOO_BIG, ILLEGAL_ADDRESS,
                                 MALFORMED_BDAT, NULL_BDAT)
from mailsys.smtp.trace import TracedServerConnection

log = structlog.get_logger()

TLS_UNAVAILABLE = Reply(454, "4.7.0", "TLS not available due to local problem")

# Cleanup commits in groups with fsync; under load a commit can take a while,
# but a client gets its answer well before its own timeout (RFC 5321 4.5.3.2.6:
# 10 minutes for the reply to the end of data).
CLEANUP_TIMEOUT = 60.0
# The flush service scans the deferred queue for the site before it answers.
FLUSH_TIMEOUT = 30.0
# Message content goes to an unnamed file in the queue directory (as
# Postfix's smtpd writes all of it to its queue file) when it grows beyond
# SPOOL_OVER while it arrives, or when it is over SPOOL_WAITING and every
# cleanup channel is busy or the process's budget of such content in flight
# (smtpd_server.CONTENT_IN_FLIGHT) is spent. Sessions sending huge messages,
# or waiting for cleanup under load, then hold page cache rather than
# process memory; the content is read back once it can go. Below that, a
# file would cost more CPU (creating and dropping it) than the memory is
# worth.
SPOOL_OVER = 1024 * 1024
SPOOL_WAITING = 16 * 1024

# smtpd.c SMTPD_CMD_FLAG_LAST: commands after which a client must wait for the reply.
_LAST_IN_GROUP = (Helo, DataStart, Noop, Vrfy)
# What answer() gets that is not a command of the client's.
_NOT_COMMANDS = (EndOfData, DataRejected, AuthResponse, RemoteProtocolError)

_TRANSACTIONS = itertools.count(1)

_NOTES_LOGGED = frozenset({"reject_warning", "warn", "info", "hold", "discard", "filter",
                           "redirect", "bcc", "permit"})
# The notes whose action is for the message, not the command.
_MESSAGE_ACTIONS = frozenset({"hold", "discard", "filter", "redirect", "bcc", "prepend"})
# XFORWARD attributes that describe the client: when one is given, the
# message is logged under the forwarded client (smtpd.c
# HAVE_FORWARDED_CLIENT_ATTR); IDENT and SOURCE alone keep the actual one.
_FORWARDED_CLIENT = ("NAME", "ADDR", "PORT", "PROTO", "HELO")


async def serve_client(stream: trio.abc.Stream, server: SmtpdServer) -> None:
    """The whole life of one client connection."""
    addr, port = _peer(stream)
    refusal = None
    if server.upstream_proxy:
        try:
            found = await read_proxy_header(stream, server.upstream_proxy_timeout)
            if not found.local:
                addr, port = found.client_addr, found.client_port
        except HaproxyError as e:
            log.warning(f"haproxy read: {e}")
            refusal = Reply(421, "4.3.0", f"{server.cfg.myhostname} Server local error")
    peer = await peer_name(addr) if server.peername_lookup else PeerName()
    session = Session(server, peer.name, addr, port, peer)
    session.greeting_refusal = refusal
    await session.run(stream)


def _peer(stream: trio.abc.Stream) -> tuple[str, int]:
    peer = getattr(stream, "peer", None)       # a FastStream's, from accept()
    try:
        if peer is None:
            peer = stream.socket.getpeername()
    except (AttributeError, OSError):
        return "127.0.0.1", 0
    if isinstance(peer, tuple):
        return peer[0].split("%")[0], peer[1]
    return "127.0.0.1", 0       # a Unix-domain client is this host


def _local_end(stream: trio.abc.Stream) -> tuple[str, str]:
    """This end's address and port ({daemon_addr}, {daemon_port}), "" when
    they cannot be had."""
    try:
        name = getattr(stream, "local", None) or stream.socket.getsockname()
    except (AttributeError, OSError):
        return "", ""
    return (name[0], str(name[1])) if isinstance(name, tuple) else ("", "")


def _command(verb: str, path: str, params) -> str:
    """MAIL FROM / RCPT TO as the client gave it (name upper-cased), for the filter."""
    words = [f"{verb}:{path}"]
    words.extend(name if value is None else f"{name}={value}" for name, value in params)
    return " ".join(words)


def _reply(decision: Decision) -> Reply:
    return Reply(decision.code, decision.enhanced or None, decision.text)


def _limit_reply(hit: limits.LimitExceeded) -> Reply:
    return Reply(hit.reply.code, hit.reply.enhanced or None, hit.reply.text)


class Session:
    """The policy of one session (smtp_io.Policy); see the module description."""

    def __init__(self, server: SmtpdServer, name: str, addr: str, port: int,
                 peer: PeerName | None = None) -> None:
        self.server = server
        self.name = name
        self.reverse_name = name if peer is None else peer.reverse_name
        # How the name lookups went ("": as the names say), for
        # reject_unknown_(reverse_)client_hostname.
        self.name_status = "" if peer is None else peer.name_status
        self.reverse_status = "" if peer is None else peer.reverse_status
        self.addr = addr
        self.port = port
        self.greeting_refusal: Reply | None = None    # said instead of the greeting
        self.server_addr = ""              # XCLIENT DESTADDR / DESTPORT, for policy requests
        self.server_port = ""
        # smtpd_client_port_logging: name[addr]:port in every line that names the client.
        self.namaddr = self._namaddr(name, addr, port)
        peers = server.debug_peers
        if peers is not None and peers.match(name, addr):
            # debug_peer_list: decided once, by the real client (smtpd.c).
            self.conn = TracedServerConnection(server.settings(name, addr), tls_active=False,
                                               trace=peers.chat(lambda: self.namaddr))
        else:
            self.conn = ServerConnection(server.settings(name, addr), tls_active=False)
        # Postfix exempts XCLIENT-authorized clients (proxies) from the anvil limits.
        xclient = server.xclient_hosts is not None and server.xclient_allowed(name, addr)
        self.exempt = xclient or server.exempt(name, addr)
        if xclient:
            self.conn.xclient_allowed = True
        # Decided once, by the real client: XCLIENT does not change it (smtpd.c).
        if server.xforward_hosts is not None and server.xforward_allowed(name, addr):
            self.conn.xforward_allowed = True
        self.anvil_addr: str | None = None     # the address anvil counts this connection under
        # XFORWARD attributes for the next message, {NAME: value}; None when none.
        self.forwarded: dict[str, str] | None = None
        self.auth = SessionAuth(server.sasl, self.namaddr)
        self.tls_text = ""
        self.tls_info = None            # TlsInfo once TLS is on (milters' TLS macros)
        self.too_many_errors = False
        # smtpd_delay_reject = no: the client restrictions' refusal at connect,
        # the greeting (Postfix state->access_denied); the core then answers
        # every command but QUIT with its 503 (conn.access_denied).
        self.access_denied: Reply | None = None
        # The defer_if_permit the client, HELO and sender restrictions held
        # (smtpd_delay_reject = no), each stage's including the earlier
        # ones'; the answer at RCPT, VRFY (the sender's) and ETRN (the
        # HELO's) unless refused otherwise (Postfix defer_if_permit_client,
        # _helo, _sender).
        self.held_client: Decision | None = None
        self.held_helo: Decision | None = None
        self.held_sender: Decision | None = None
        self.pump: smtp_io.SmtpPump | None = None
        self.pipelining_noted = False
        self.tls_refused = False        # closed after the handshake on purpose: no "lost connection"
        self.content: tempfile.SpooledTemporaryFile | None = None
        self.milters: SmtpdMilters | None = None      # smtpd_milters, when there are any
        self.local_addr = ""                # this end's address ({daemon_addr})
        self.local_port = ""                # and port ({daemon_port})
        self.connection_count = 0           # anvil's count ({client_connections}); 0 unasked
        self.dns_records: dict[tuple[str, str], HostRecords] = {}   # see _decide
        # smtpd_proxy_filter: this transaction's connection to the filter.
        self.proxy: FilterTransaction | None = None
        self._reset()

    def _reset(self) -> None:
        self.mail: MailFrom | None = None
        self.qid: str | None = None
        self.recipients: list[CleanupRecipient] = []
        self.last_rcpt: str | None = None
        self.actions = MessageActions()         # what cleanup is to do with this message
        self.transaction = next(_TRANSACTIONS)  # policy requests' "instance" (with the pid)
        self._new_content(None)
        self.in_bdat = False
        if self.proxy is not None:               # the transaction ends: QUIT to the filter
            self.proxy.close()
            self.proxy = None

    def _namaddr(self, name: str, addr: str, port: int | str) -> str:
        return f"{name}[{addr}]:{port}" if self.server.port_logging else f"{name}[{addr}]"

    def _new_content(self, spool: tempfile.SpooledTemporaryFile | None) -> None:
        if self.content is not None:
            self.content.close()
        self.content = spool
        self.spool_error: OSError | None = None

    # --- the connection -------------------------------------------------------

    async def run(self, stream: trio.abc.Stream) -> None:
        server = self.server
        log.info("connect", client=self.namaddr)
        pump = smtp_io.SmtpPump(stream, self.conn, self, timeout=server.timeout,
                                error_sleep=server.error_sleep,
                                timeout_reply=server.timeout_reply,
                                per_request=server.per_request_deadline,
                                min_data_rate=server.min_data_rate,
                                footer=self._footer if server.reject_footer
                                or server.reject_footer_maps else None)
        self.pump = pump
        try:
            if server.wrappermode:
                tls = await self.start_tls(stream) if server.tls_context is not None else None
                if tls is None:
                    if server.tls_context is None:
                        log.warning(f"Wrapper-mode request dropped from {self.namaddr} for "
                                    f"service {server.service}. TLS context initialization "
                                    "failed. For details see earlier warnings in your logs.")
                    return
                pump.stream = tls
                self.conn.tls_active = True
            if self.greeting_refusal is not None:         # a bad PROXY header
                assert self.pump is not None
                await self.pump.send_greeting(self.greeting_refusal)
                return
            if server.limits.counts_connections and not self.exempt:
                hit = await self._anvil_connect()
                if hit is not None:
                    await pump.send_greeting(hit)
                    return
            if server.pregreet_check and not server.wrappermode and self._talked_first(stream) \
                    and server.cfg.smtpd_forbid_unauth_pipelining:
                self.conn.hang_up = True
                await pump.send_greeting(replies.PIPELINING_FORBIDDEN)
                return
            if not server.restrictions.delay_reject:
                await self._check_client()
            if server.sasl_dynamic:                       # smtpd_sasl_type = dovecot
                if server.sasl_stale():
                    await server.sasl.refresh()
                # the mechanisms may have come while this session waited
                self.conn.settings = server.settings(self.name, self.addr)
            greeting = server.greeting
            self.local_addr, self.local_port = _local_end(pump.stream)
            # A client the client restrictions refused (smtpd_delay_reject
            # = no) is not shown to the milters (smtpd.c smtpd_proto()).
            refusal = await self._start_milters() if self.access_denied is None else None
            if refusal is not None and refusal.closes:
                await pump.send_greeting(refusal)
                return
            self._ended(await pump.run(refusal or self.access_denied or greeting))
        finally:
            if self.milters is not None:
                with trio.CancelScope(shield=True):
                    await self.milters.aclose()
            await self.auth.aclose()
            if self.anvil_addr is not None:   # a shielded scope only when there is something to wait for
                with trio.CancelScope(shield=True):
                    await server.anvil.disconnect(server.service, self.anvil_addr)
            log.info("disconnect", client=self.namaddr, stats=self.conn.command_stats())
            self._new_content(None)
            if self.proxy is not None:
                self.proxy.close()
                self.proxy = None
            # The pump refers back to this session (its policy): without this
            # the pair would wait for the cyclic garbage collector.
            self.pump = None

    async def _start_milters(self) -> Reply | None:
        """Connect this client's milters, if any; the greeting they ask for
        instead of the usual one (see smtpd_milters)."""
        server = self.server
        milters = server.milters_for(self.addr) if server.milter_maps else server.milters
        if milters is None or not milters.milters:
            return None
        self.milters = SmtpdMilters(self, milters, server.cfg, self.local_addr, self.local_port)
        return await self.milters.connect()

    async def _anvil_connect(self) -> Reply | None:
        """Count this connection with anvil; the 421 when the client is over a limit."""
        server = self.server
        counts = await server.anvil.connect(server.service, self.addr)
        self.anvil_addr = self.addr
        self.connection_count = counts.count
        hit = limits.check_connect(counts, server.limits, service=server.service,
                                   namaddr=self.namaddr, addr=self.addr,
                                   myhostname=server.cfg.myhostname)
        if hit is None:
            return None
        log.warning(hit.warning)
        return _limit_reply(hit)

    def _ended(self, end: smtp_io.End) -> None:
        if end is smtp_io.End.HANGUP and self.too_many_errors:
            note = self.conn.after("too many errors")
        elif end in (smtp_io.End.LOST, smtp_io.End.TIMEOUT, smtp_io.End.TLS_FAILED) \
                and not self.tls_refused:
            note = self.conn.after("timeout" if end is smtp_io.End.TIMEOUT else "lost connection")
        else:
            note = None
        if note:
            log.info(f"{note} from {self.namaddr}")

    # --- smtp_io.Policy -----------------------------------------------------------

    def chunk(self, data: bytes):
        if self.proxy is not None and not self.proxy.proxy.speed_adjust:
            return self._proxy_content(data)     # the pump awaits it
        content = self.content
        if content is None:
            content = self.content = tempfile.SpooledTemporaryFile(SPOOL_OVER,
                                                                   dir=self.server.queue_dir)
        if self.spool_error is None:
            # In memory, or past SPOOL_OVER a page-cache copy into the file,
            # done in place as Postfix's smtpd writes its queue file.
            try:
                content.write(data)
            except OSError as e:
                self.spool_error = e        # answered at the end of the content

    def bdat(self, event: Bdat) -> None:
        if not self.in_bdat:
            self.in_bdat = True
            self._new_content(None)

    def long_request(self, text: str) -> None:
        # smtpd_chat_query_limit(), seen live with Postfix 3.7.11:
        # "warning: unknown[127.0.0.1]: request longer than 2048: NOOP xx...".
        log.warning(f"{self.namaddr}: {text}")

    def replaced(self, received: str, run: str) -> None:
        # smtpd.c, seen live with Postfix 3.7.11.
        log.info(f'{self.namaddr}: replacing command "{received[:100]}" with "{run[:100]}"')

    def refused(self, err: RemoteProtocolError) -> None:
        reply = err.reply
        text = str(err)
        if text == "too many errors":
            self.too_many_errors = True
        elif text.startswith("non-SMTP command: "):
            # Postfix logs this line escaped (escape()), then cut to 100 characters.
            command = postfix_log.escape(text[len("non-SMTP command: "):])[:100]
            log.warning(f"non-SMTP command from {self.namaddr}: {command}")
        elif text.startswith(ILLEGAL_ADDRESS):
            # smtpd.c extract_addr(), seen live with Postfix 3.7.11.
            log.warning(f"Illegal address syntax from {self.namaddr} in {self.conn.where} command: "
                        f"{postfix_log.printable(text[len(ILLEGAL_ADDRESS):])}")
        elif text == BARE_LF and err.hangup:
            # smtpd.c smtpd_proto(): log_whatsup() before the reply.
            self._log_reject(self.conn.where, BARE_LF,
                             sender=self.mail.address if self.mail else None,
                             recipient=self.last_rcpt)
        elif text == NULL_BDAT:
            # smtpd.c bdat_cmd(): "BDAT 0" without LAST.
            log.warning(f"{self.qid or 'NOQUEUE'}: null BDAT request from {self.namaddr}")
        elif text.startswith(MALFORMED_BDAT):
            log.warning(f"{self.qid or 'NOQUEUE'}: malformed BDAT command syntax from "
                        f"{self.namaddr}: {text[len(MALFORMED_BDAT):][:100]}")
        elif text == BDAT_TOO_BIG:
            log.warning(f"{self.qid or 'NOQUEUE'}: BDAT request from {self.namaddr} exceeds "
                        "message size limit")
        elif text.startswith("request longer than "):
            log.warning(f"{self.namaddr}: {text}")     # an AUTH response over the limit
        elif reply.code == 552 and self.conn.where == "MAIL":
            self._log_reject("MAIL", str(reply), sender=err.sender, recipient=None)
        elif text.startswith("invalid mechanism "):
            # Postfix hands any name to its SASL library and logs the refusal
            # as a failed login (checked with 3.7.11: "AUTH FOO").
            log.warning(sasl_server.auth_failed_log_text(
                self.namaddr, text[len("invalid mechanism "):], "Invalid authentication mechanism"))
        elif text.startswith(BAD_INITIAL_RESPONSE):
            log.warning(sasl_server.auth_failed_log_text(
                self.namaddr, text[len(BAD_INITIAL_RESPONSE):], replies.BAD_BASE64_INITIAL_REASON))
        self.auth.core_ended(reply)

    async def answer(self, event: object) -> Reply | None:
        # smtpd.c smtpd_proto(): a command that must end its group, or any
        # command of a client that did not say EHLO (it may not pipeline).
        if not self.pipelining_noted and (
                isinstance(event, _LAST_IN_GROUP)
                or self.conn.protocol != "ESMTP" and not isinstance(event, _NOT_COMMANDS)):
            self._note_pipelining()
            if self.pipelining_noted and self.server.cfg.smtpd_forbid_unauth_pipelining:
                # smtpd.c: the command is not run; 554, and the session ends.
                self.conn.hang_up = True
                return replies.PIPELINING_FORBIDDEN
        match event:
            case MailFrom():
                return await self._mail(event)
            case RcptTo():
                return await self._rcpt(event)
            case DataStart():
                return await self._data_start()
            case EndOfData():
                return await self._end_of_data(event)
            case DataRejected():
                if self.milters is not None:
                    await self.milters.end_transaction()
                return self._data_rejected(event)
            case Helo():
                refusal = await self._helo(event)
                if self.milters is not None:
                    await self.milters.end_transaction()
                    if refusal is None:
                        refusal = await self.milters.helo(event)
                if refusal is None:
                    self._reset()           # as the core does on a 250
                    self.forwarded = None
                return refusal
            case Rset():
                if self.milters is not None:
                    await self.milters.end_transaction()
                self._reset()
                self.forwarded = None
                return None
            case StartTls():
                return await self._starttls()
            case Auth():
                self._stop_clock()
                return await self._auth(event)
            case AuthResponse():
                self._stop_clock()
                return await self.auth.step(event.data)
            case Etrn():
                self._stop_clock()
                return await self._etrn(event)
            case Vrfy():
                return await self._vrfy(event)
            # Last: a session that uses neither pays nothing for them.
            case Xforward():
                if self.forwarded is None:
                    self.forwarded = {}
                self.forwarded.update(event.attributes)
                return None
            case Xclient():
                return await self._xclient(event)
            case RemoteProtocolError(policy_first=True):
                # Checks smtpd.c makes before the core's refusal: an RCPT still
                # counts toward the recipient rate; ETRN hears the milters.
                if self.conn.where == "ETRN":
                    return self._milters_refusal()
                return await self._recipient_rate()
            case RemoteProtocolError(unknown=str(command)) if self.milters is not None:
                return await self.milters.unknown(command)
        return None

    def _stop_clock(self) -> None:
        """What follows waits on another server, not on the client."""
        if self.pump is not None:
            self.pump.stop_clock()

    def _talked_first(self, stream: trio.abc.Stream) -> bool:
        """Whether the client sent something before the greeting, noted as
        smtpd.c smtpd_flag_ill_pipelining() notes it ("improper command
        pipelining after CONNECT from ..."), with its first 100 bytes."""
        sock = getattr(stream, "socket", None)       # a FastStream's
        if not isinstance(sock, socket.socket):
            return False
        try:
            early = sock.recv(100, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except OSError:                 # nothing yet (EAGAIN), or the client is gone
            return False
        if not early:
            return False
        self.pipelining_noted = True
        log.info(f"improper command pipelining after {self.conn.where} from {self.namaddr}: "
                 f"{postfix_log.escape(early)}")
        return True

    def _note_pipelining(self) -> None:
        """Postfix's note on a client that sent more after a command that must end
        its group (RFC 2920 3.1), once per session; fail2ban's default mode reads it."""
        unread = self.pump.unread(100) if self.pump is not None else b""
        if unread:
            self.pipelining_noted = True
            log.info(f"improper command pipelining after {self.conn.where} from {self.namaddr}: "
                     f"{postfix_log.escape(unread)}")

    # --- commands -------------------------------------------------------------------

    def _context(self, **kw) -> PolicyContext:
        conn = self.conn
        kw.setdefault("rcpt_count", len(self.recipients))
        tls = self.tls_info
        if tls is not None and tls.cert_fingerprint:
            kw.update(ccert_cn=tls.peer_cn, ccert_trusted=tls.peer_verified,
                      ccert_fingerprints=(tls.cert_fingerprint, tls.pkey_fingerprint))
        return PolicyContext(self.name, self.addr, helo=conn.helo_name,
                             reverse_client_name=self.reverse_name,
                             client_name_status=self.name_status,
                             reverse_name_status=self.reverse_status,
                             sasl_user=self.auth.user or None, tls=conn.tls_active,
                             protocol=conn.protocol, ill_pipelining=self.pipelining_noted, **kw)

    def _log_reject(self, command: str, reply: str, *, sender: str | None,
                    recipient: str | None, helo: str | None = None,
                    queue_id: str | None = None, proto: str | None = None,
                    action: str | None = None) -> None:
        queue_id = queue_id or self.qid
        where = {"queue_id": queue_id} if queue_id else {"noqueue": True}
        if action is not None:                  # "milter-reject", "milter-hold", ...
            where["action"] = action
        log.info("reject", command=command, client=self.namaddr, reply=reply, sender=sender,
                 recipient=recipient, proto=proto or self.conn.protocol,
                 # "" for none: the session has forgotten its HELO (XCLIENT)
                 helo=(helo or None) if helo is not None else self.conn.helo_name,
                 sasl_method=self.auth.method, sasl_username=self.auth.user, **where)

    def _log_notes(self, decision: Decision, ctx: PolicyContext, command: str,
                   queue_id: str | None = None, actions: MessageActions | None = None) -> None:
        """Log the notes Postfix logs; keep the message actions among them
        for the transaction (this one's, unless given)."""
        actions = actions or self.actions
        for note in decision.notes:
            if note.action == "warning":
                log.warning(note.text)
                continue
            if note.action in _MESSAGE_ACTIONS and not actions.take(note.action, note.value):
                continue
            if note.action in _NOTES_LOGGED:
                log.info(note_log_text(note, ctx, command=command,
                                       queue_id=queue_id or self.qid or "NOQUEUE"))

    async def _resolver(self, ctx: PolicyContext):
        """The DNS answers an evaluation for ctx may ask for, looked up beforehand."""
        server = self.server
        if not server.needs_dns:
            return None
        found: dict[str, DnsStatus] = {}
        for domain in server.restrictions.domains_to_resolve(ctx):
            self._stop_clock()
            found[domain] = await server.dns.domain_status(domain)
        return lambda name: found.get(name, DnsStatus.TEMPFAIL)

    async def _decide(self, evaluate, ctx: PolicyContext, state: str, resolver=None,
                      policy_facts: dict[str, object] | None = None) -> Decision:
        """evaluate(ctx, resolver), doing the I/O it asks for (see
        mailsys.policy.needs) and evaluating again: each policy service it
        reaches (check_policy_service) is asked, each "sleep N" is slept,
        each address reject_unverified_* reaches is asked of verify.
        Only this session waits: the others go on meanwhile."""
        answers: dict[str, str] = {}
        # DNS records (permit_mx_backup, the DNS lists) stay known for the
        # session: with smtpd_delay_reject each RCPT asks again.
        records = self.dns_records
        verified: dict[str, tuple[int | None, str]] = {}
        paused = 0
        while True:
            try:
                return evaluate(ctx, resolver, policy=answers.get, paused=paused,
                                records=lambda kind, name: records.get((kind, name)),
                                verify=verified.get)
            except NeedRecords as need:
                self._stop_clock()
                for kind, name in need.queries:
                    records[kind, name] = await self.server.host_lookups.lookup(kind, name)
            except NeedPolicy as need:
                self._stop_clock()
                request = self._policy_request(ctx, state)
                if policy_facts:
                    request.update(policy_facts)
                answers[need.service] = await self.server.policy.query(need.service, request)
            except NeedPause as need:
                self._stop_clock()
                await trio.sleep(need.seconds)
                paused += 1
            except NeedVerify as need:
                self._stop_clock()
                verified[need.address] = await self.server.verify.query(need.address)

    def _policy_request(self, ctx: PolicyContext, state: str) -> dict[str, object]:
        """The attributes of a policy request (Postfix SMTPD_POLICY_README);
        what this smtpd does not know is sent empty."""
        mail, tls = self.mail, self.tls_info
        return {
            "request": "smtpd_access_policy", "protocol_state": state,
            "protocol_name": ctx.protocol or self.conn.protocol, "helo_name": ctx.helo or "",
            "queue_id": self.qid or "", "sender": ctx.sender or "",
            "recipient": ctx.recipient or "",
            "recipient_count": len(self.recipients) if state == "DATA" else 0,
            "client_address": self.addr, "client_name": self.name,
            "reverse_client_name": self.reverse_name,
            "instance": f"{os.getpid():x}.{self.transaction:x}",
            "sasl_method": self.auth.method or "", "sasl_username": self.auth.user or "",
            "sasl_sender": (mail.auth or "") if mail is not None else "",
            "size": (mail.size or 0) if mail is not None else 0,
            # Subject and issuer only from a trusted certificate, the
            # fingerprints from any (smtpd_check.c).
            "ccert_subject": xtext_encode(tls.peer_cn) if tls and tls.peer_verified else "",
            "ccert_issuer": xtext_encode(tls.issuer_cn) if tls and tls.peer_verified else "",
            "ccert_fingerprint": tls.cert_fingerprint if tls else "",
            "ccert_pubkey_fingerprint": tls.pkey_fingerprint if tls else "",
            "encryption_protocol": tls.protocol if tls else "",
            "encryption_cipher": tls.cipher if tls else "",
            "encryption_keysize": tls.usebits if tls else 0,
            "etrn_domain": ctx.etrn_domain or "", "stress": self.server.cfg.stress,
            "client_port": self.port, "server_address": self.server_addr,
            "server_port": self.server_port,
            "compatibility_level": self.server.cfg.compatibility_level,
            "mail_version": __version__,
        }

    async def _check_client(self, command: str = "CONNECT", helo: str | None = None,
                            proto: str | None = None) -> None:
        """The client restrictions at connect (smtpd_delay_reject = no), or
        after XCLIENT (command, helo and proto: the session after it)."""
        ctx = self._context()
        decision = await self._decide(self.server.restrictions.evaluate_client, ctx, "CONNECT",
                                      await self._resolver(ctx))
        self._log_notes(decision, ctx, command)     # no message actions here (see above)
        self.held_client = decision.held
        if not decision.accepted:
            self._log_reject(command, decision.reply, sender=None, recipient=None, helo=helo,
                             proto=proto)
            self.access_denied = _reply(decision)
            # smtpd_check_reject() counts the refusal as an error (Postfix
            # 3.7.11 with smtpd_hard_error_limit = 3: the greeting, HELO,
            # NOOP, then "421 4.7.0 ... Error: too many errors").
            self.conn.error_count += 1
            self.conn.access_denied = replies.access_denied(self.namaddr)

    def _footer(self, reply: Reply) -> Reply:
        """smtpd_reject_footer after a 4xx or 5xx reply, its macros this
        session's; smtpd_reject_footer_maps, by the complete reply, first."""
        conn = self.conn
        footer = self.server.reject_footer
        if self.server.reject_footer_maps:
            key = " ".join([str(reply.code), *([reply.enhanced] if reply.enhanced else []),
                            reply.lines[0]])
            footer = first_lookup(self.server.reject_footer_maps, [key]) or footer
        if not footer:
            return reply
        sender = self.mail.address if self.mail is not None else ""
        local, _, domain = sender.rpartition("@") if "@" in sender else (sender, "", "")
        # The names Postfix 3.7.11's smtpd expands there (seen live); any
        # other, main.cf parameters included, is empty with a warning.
        values = {"client_address": self.addr, "client_name": self.name,
                  "reverse_client_name": self.reverse_name, "client_port": str(self.port),
                  "helo_name": conn.helo_name or "", "server_name": conn.settings.hostname,
                  "localtime": time.ctime()[4:19], "sender": sender, "sender_name": local,
                  "sender_domain": domain, "recipient": "", "recipient_name": "",
                  "recipient_domain": ""}

        allowed = self.server.expansion_filter

        def lookup(name: str) -> str | None:
            if name not in values:
                log.warning(f'unknown macro name "{name}" in expansion request')
                return None
            # smtpd_expansion_filter: Postfix 3.7 with "0123456789" answered
            # "500 5.5.2 Client: 127_0_0_1 helo _________" (live).
            return "".join(c if c in allowed else "_" for c in values[name])
        return replies.with_footer(reply, footer, lookup)

    async def _helo(self, event: Helo) -> Reply | None:
        if event.extended:
            line = self.server.ehlo_discard_line(self.addr)
            if line:
                log.info(line)
        r = self.server.restrictions
        if r.delay_reject:
            return None
        ctx = dataclasses.replace(self._context(), helo=event.name,
                                  protocol="ESMTP" if event.extended else "SMTP",
                                  deferred=self.held_client)
        decision = await self._decide(r.evaluate_helo, ctx, "EHLO" if event.extended else "HELO")
        self.held_helo = decision.held
        self._log_notes(decision, ctx, "EHLO" if event.extended else "HELO")
        if decision.accepted:
            return None
        self._log_reject("EHLO" if event.extended else "HELO", decision.reply, sender=None,
                         recipient=None, helo=event.name)
        return _reply(decision)

    async def _etrn(self, event: Etrn) -> Reply:
        """ETRN (smtpd.c etrn_cmd): the milters' standing refusal (asked
        before the core's own checks too), smtpd_etrn_restrictions, then the
        fast flush service (services/flush) makes the site's deferred mail due."""
        refusal = self._milters_refusal()
        if refusal is not None:
            return refusal
        domain = event.domain
        r = self.server.restrictions
        held = self.held_helo or self.held_client       # smtpd_delay_reject = no
        if r.lists.get("smtpd_etrn_restrictions") or r.delay_reject or held is not None:
            ctx = self._context(etrn_domain=domain, deferred=held)
            decision = await self._decide(r.evaluate_etrn, ctx, "ETRN")
            self._log_notes(decision, ctx, "ETRN")
            if not decision.accepted:
                self._log_reject("ETRN", decision.reply, sender=None, recipient=None)
                return _reply(decision)
        cfg = self.server.cfg
        # public/flush: Postfix's master.cf entry is not private ("n").
        path = names.public_path(cfg.path("queue_directory"), cfg.flush_service_name)
        try:
            answer = await ipc_io.call(path, flush_proto.FlushSite(domain),
                                       protocol=flush_proto.PROTOCOL,
                                       expect=flush_proto.FlushStatus, timeout=FLUSH_TIMEOUT)
            status = answer.status
        except IpcError:
            status = flush_proto.FAIL
        if status == flush_proto.OK:
            return replies.ETRN_OK
        if status == flush_proto.DENY:
            log.warning(f"reject: ETRN {domain[:100]}... from {self.namaddr}")
            return Reply(459, None, f"<{domain}>: service unavailable")
        if status == flush_proto.BAD:
            log.warning(f"bad ETRN {domain[:100]}... from {self.namaddr}")
        else:
            log.warning("unable to talk to fast flush service")
        return Reply(458, None, "Unable to queue messages")

    async def _rate(self, kind: str, check) -> Reply | None:
        """Count an anvil event when its limit is on; the refusal when over it."""
        server = self.server
        if self.exempt:
            return None
        self._stop_clock()
        rate = await server.anvil.event(server.service, self.addr, kind)
        hit = check(rate, server.limits, service=server.service, namaddr=self.namaddr, addr=self.addr)
        if hit is None:
            return None
        log.warning(hit.warning)
        return _limit_reply(hit)

    async def _mail(self, event: MailFrom) -> Reply | None:
        server = self.server
        if server.limits.message_rate:
            refusal = await self._rate(anvil_proto.MESSAGE, limits.check_message)
            if refusal is not None:
                return refusal
        if (server.proxy is None or server.proxy.speed_adjust) \
                and server.queue_space_short(event.size or 0):
            self._log_reject("MAIL", str(replies.INSUFFICIENT_STORAGE), sender=event.address,
                             recipient=None)
            return replies.INSUFFICIENT_STORAGE
        if self.milters is not None:
            await self.milters.end_transaction()
        self._reset()                           # the transaction's state starts here
        if not server.restrictions.delay_reject:
            ctx = self._context(sender=event.address, deferred=self.held_helo or self.held_client)
            decision = await self._decide(server.restrictions.evaluate_sender, ctx, "MAIL")
            self.held_sender = decision.held
            self._log_notes(decision, ctx, "MAIL")
            if not decision.accepted:
                self._log_reject("MAIL", decision.reply, sender=event.address, recipient=None)
                return _reply(decision)
        if self.milters is not None:
            refusal = await self.milters.mail(event)
            if refusal is not None:
                return refusal
        self.mail = event
        if not server.delay_open and server.proxy is None:
            self._open_queue_file()
        return None

    def _open_queue_file(self) -> None:
        """The transaction's queue ID and its "QID: client=..." line."""
        self.qid = new_qid()
        log.info("client", queue_id=self.qid, client=self.namaddr,
                 sasl_method=self.auth.method, sasl_username=self.auth.user,
                 sasl_sender=(self.mail.auth or "") if self.mail is not None else "",
                 **(self._orig_fields() if self.forwarded else {}))

    def _milters_refusal(self) -> Reply | None:
        """The refusal the milters stand by for a command they are not told
        of (VRFY, ETRN: Postfix's milter_other_event()); None without one."""
        return self.milters.other_event() if self.milters is not None else None

    async def _recipient_rate(self) -> Reply | None:
        """RCPT and VRFY count toward the client's recipient rate when
        smtpd_client_recipient_rate_limit is on; the refusal when over it."""
        if not self.server.limits.recipient_rate:
            return None
        return await self._rate(anvil_proto.RECIPIENT, limits.check_recipient)

    async def _rcpt(self, event: RcptTo) -> Reply | None:
        server = self.server
        refusal = await self._recipient_rate()
        if refusal is not None:
            return refusal
        assert self.mail is not None
        if not self.actions.discard:            # Postfix looks no further after a DISCARD
            decision = await self._check_rcpt("RCPT", event.address)
            if not decision.accepted:
                if self.milters is not None:
                    await self.milters.rejected_rcpt(event, _reply(decision))
                return _reply(decision)
        if self.milters is not None and not self.actions.discard:
            refusal = await self.milters.rcpt(event)
            if refusal is not None:
                return refusal
        if server.proxy is not None:
            return await self._proxy_rcpt(event)
        if self.qid is None:
            self._open_queue_file()
        orcpt = event.dsn_orcpt
        self.recipients.append(CleanupRecipient(event.address, orcpt=orcpt,
                                                notify=tuple(event.notify or ())))
        self.last_rcpt = event.address
        return None

    async def _check_rcpt(self, command: str, recipient: str) -> Decision:
        """Postfix's smtpd_check_rcpt() for RCPT or VRFY: the recipient
        restrictions (and the ones smtpd_delay_reject put off), their notes
        and a refusal logged as "reject: RCPT from ..." or "reject: VRFY
        from ...", from=<> only inside a transaction."""
        sender = self.mail.address if self.mail is not None else None
        # The sender stage's deferral holds the client's and HELO's; it
        # outlives RSET (Postfix 3.7.11: HELO, MAIL, RSET, VRFY got the
        # client's 450; a VRFY before any MAIL FROM got 252).
        ctx = self._context(sender=sender, recipient=recipient, deferred=self.held_sender)
        decision = await self._decide(self.server.restrictions.evaluate_rcpt, ctx, command,
                                      await self._resolver(ctx))
        # Actions are kept whatever this recipient's fate, as Postfix keeps them.
        self._log_notes(decision, ctx, command)
        if not decision.accepted:
            self._log_reject(command, decision.reply, sender=sender, recipient=recipient)
        return decision

    async def _vrfy(self, event: Vrfy) -> Reply | None:
        """VRFY in Postfix 3.7's vrfy_cmd() order: the anvil recipient rate
        (a client over it gets 450 whatever it asked), a refusal the milters
        stand by, the address syntax, then the recipient checks of RCPT;
        None (the core's 252) when they accept."""
        refusal = await self._recipient_rate() or self._milters_refusal()
        if refusal is not None:
            return refusal
        if event.address is None:
            # smtpd.c extract_addr(), seen live with Postfix 3.7.11.
            log.warning(f"Illegal address syntax from {self.namaddr} in VRFY command: "
                        f"{event.argument}")
            return replies.BAD_RECIPIENT
        decision = await self._check_rcpt("VRFY", event.address)
        return None if decision.accepted else _reply(decision)

    async def _milters_data(self) -> Reply | None:
        """DATA to the milters, unless a DISCARD action dropped the message
        already (Postfix then tells them nothing more of it, seen live)."""
        if self.milters is None or self.actions.discard:
            return None
        return await self.milters.data()

    async def _data_start(self) -> Reply | None:
        refusal = await self._data_checks()
        if refusal is None and self.proxy is not None:
            return await self._proxy_data()
        return refusal

    async def _data_checks(self) -> Reply | None:
        self._new_content(None)
        r = self.server.restrictions
        if not r.lists.get("smtpd_data_restrictions"):
            return await self._milters_data()
        assert self.mail is not None
        # smtpd_check_data: with more than one recipient none is named
        # ("logging only one of them would be misleading").
        ctx = self._context(sender=self.mail.address,
                            recipient=self.last_rcpt if len(self.recipients) == 1 else None)
        decision = await self._decide(r.evaluate_data, ctx, "DATA")
        self._log_notes(decision, ctx, "DATA")
        if decision.accepted:
            return await self._milters_data()
        self._log_reject("DATA", decision.reply, sender=self.mail.address, recipient=ctx.recipient)
        return _reply(decision)

    def _orig_fields(self) -> dict[str, str]:
        """orig_queue_id= and orig_client= of the "client=" line after XFORWARD."""
        fwd = self.forwarded or {}
        out = {}
        if fwd.get("IDENT"):
            out["orig_queue_id"] = fwd["IDENT"]
        if any(k in fwd for k in _FORWARDED_CLIENT):
            name, addr = fwd.get("NAME", "unknown"), fwd.get("ADDR", "unknown")
            port = fwd.get("PORT", "unknown")
            out["orig_client"] = name if addr == "unknown" else self._namaddr(name, addr, port)
        return out

    def _forwarded_client(self) -> ForwardedClient | None:
        """The client the message is logged and forwarded as (see ForwardedClient)."""
        fwd = self.forwarded
        if not fwd:
            return None
        ident = fwd.get("IDENT", "")
        if not any(k in fwd for k in _FORWARDED_CLIENT):
            return ForwardedClient(self.name, self.addr, self.port, self.conn.helo_name or "",
                                   self.conn.received_protocol, ident)
        port = fwd.get("PORT", "")
        return ForwardedClient(fwd.get("NAME", "unknown"), fwd.get("ADDR", "unknown"),
                               int(port) if port.isdigit() else 0, fwd.get("HELO", ""),
                               fwd.get("PROTO", ""), ident)

    def _data_rejected(self, event: DataRejected) -> None:
        """The core refused the content (too big, bare LF); log as Postfix does."""
        if event.reply == replies.MESSAGE_TOO_BIG:
            # "NOQUEUE: ..." with a before-queue filter (no queue ID; 3.7.11 live)
            log.warning("queue file size limit exceeded",
                        **({"queue_id": self.qid} if self.qid else {"noqueue": True}))
        else:
            self._log_reject("END-OF-MESSAGE", event.reason,
                             sender=self.mail.address if self.mail else None,
                             recipient=self.last_rcpt)
        if self.proxy is not None:
            # The filter's last reply, whatever it was (Postfix 3.7.11 live:
            # "proxy-reject: END-OF-MESSAGE: 354 go ahead; ...").
            self._log_proxy(False, self.proxy.last_text)
        self._reset()
        self.forwarded = None
        return None

    async def _end_of_data(self, event: EndOfData) -> Reply:
        if self.server.proxy is not None:
            return await self._proxy_end_of_data(event)
        # The transaction ends here whatever the outcome: take its state once.
        mail, qid, bdat, actions = self.mail, self.qid, self.in_bdat, self.actions
        recipients, last_rcpt = tuple(self.recipients), self.last_rcpt
        content, spool_error, self.content = self.content, self.spool_error, None
        forwarded = self._forwarded_client()
        source = self.forwarded.get("SOURCE") if self.forwarded else None
        self._reset()
        self.forwarded = None
        assert mail is not None and qid is not None
        try:
            if spool_error is not None:
                log.warning(f"{qid}: queue file write error: {spool_error}")
                return replies.INSUFFICIENT_STORAGE if spool_error.errno == errno.ENOSPC \
                    else replies.QUEUE_WRITE_ERROR
            if self.server.restrictions.lists["smtpd_end_of_data_restrictions"]:
                refusal = await self._end_of_data_restrictions(mail, qid, recipients, last_rcpt,
                                                               actions, event.size)
                if refusal is not None:
                    return refusal
            handoff = None
            if self.milters is not None and not actions.discard:
                # The header, body and end of message go to the milters
                # from cleanup, on the message as it stores it (Postfix).
                handoff = self.milters.handoff(qid)
            return await self._queue(event, mail, qid, bdat, recipients, last_rcpt, content,
                                     actions, forwarded, source, handoff)
        finally:
            if content is not None:
                content.close()
            if self.milters is not None:
                await self.milters.end_transaction()

    def _local_context(self, source: str | None) -> bool:
        """Whether cleanup rewrites this message's headers in the local
        context (and adds missing ones): XFORWARD SOURCE says, else the client."""
        return source == "LOCAL" if source else self.server.is_local_client(self.addr)

    async def _end_of_data_restrictions(self, mail: MailFrom, qid: str,
                                        recipients: tuple[CleanupRecipient, ...],
                                        last_rcpt: str | None, actions: MessageActions,
                                        size: int) -> Reply | None:
        """smtpd_end_of_data_restrictions (Postfix smtpd_check_eod): after the
        content, before cleanup; its actions join the transaction's."""
        ctx = self._context(sender=mail.address, rcpt_count=len(recipients),
                            recipient=last_rcpt if len(recipients) == 1 else None)
        decision = await self._decide(self.server.restrictions.evaluate_eod, ctx,
                                      "END-OF-MESSAGE",
                                      policy_facts={"queue_id": qid, "size": size,
                                                    "recipient_count": len(recipients)})
        self._log_notes(decision, ctx, "END-OF-MESSAGE", queue_id=qid, actions=actions)
        if decision.accepted:
            return None
        self._log_reject("END-OF-MESSAGE", decision.reply, sender=mail.address,
                         recipient=ctx.recipient, queue_id=qid)
        return _reply(decision)

    async def _queue(self, event: EndOfData, mail: MailFrom, qid: str, bdat: bool,
                     recipients: tuple[CleanupRecipient, ...], last_rcpt: str | None,
                     content: tempfile.SpooledTemporaryFile | None,
                     actions: MessageActions, forwarded: ForwardedClient | None = None,
                     source: str | None = None, handoff: Handoff | None = None) -> Reply:
        conn = self.conn
        envelope = dict(
            queue_id=qid, sender=mail.address, recipients=recipients,
            arrival_time=time.time(), origin="smtpd",
            # XFORWARD SOURCE says where the upstream MTA got the message
            # (Postfix's rewrite context); else this client decides.
            local=self._local_context(source),
            forwarded=forwarded,
            client_name=self.name, client_addr=self.addr, client_port=self.port,
            helo=conn.helo_name or "", protocol=conn.received_protocol,
            tls=self.tls_text,
            sasl_method=self.auth.method, sasl_user=self.auth.user, sasl_sender=mail.auth or "",
            verp_delimiters=mail.verp or "",
            envid=mail.envid or "", ret=mail.ret or "", body_type=mail.body or "",
            smtputf8=mail.smtputf8,
            # DATA content is CRLF-only unless a bare LF passed through
            # (smtpd_forbid_bare_newline = no); BDAT content is not looked at.
            crlf=not bdat and (not event.bare_lf
                               or conn.settings.forbid_bare_newline == "normalize"),
            # content_filter, unless a FILTER action chose (Postfix's smtpd
            # sends its own content_filter to cleanup: "-o content_filter="
            # on a re-injection service turns it off there).
            hold=actions.hold, discard=actions.discard,
            filter=actions.filter or self.server.content_filter,
            redirect=actions.redirect, bcc=tuple(actions.bcc), prepend=tuple(actions.prepend),
            receive_override_options=self.server.receive_override_options,
            received_by=conn.settings.hostname,
            **(handoff.fields if handoff is not None else {}))

        def with_content() -> CleanupRequest:
            if content is None:
                return CleanupRequest(content=b"", **envelope)
            content.seek(0)
            return CleanupRequest(content=content.read(), **envelope)

        def handed_over() -> None:
            # cleanup has the whole message: the copy here (in memory up
            # to SPOOL_OVER) need not wait for the commit with it.
            assert content is not None
            content.close()

        cleanup = self.server.cleanup
        size = content.tell() if content is not None else 0
        # Large content goes within the process's budget (CONTENT_IN_FLIGHT),
        # and waits for it, or for a channel, in its spool file; the wait
        # counts within the time cleanup has to answer.
        budget = self.server.content_budget
        large = size > SPOOL_WAITING
        if large and (cleanup.busy or not budget.free_now(size)):
            try:
                content.rollover()
            except OSError:
                pass            # it waits in memory then
        self._stop_clock()
        send_pending()          # "QID: client=..." goes before cleanup's lines
        fds = handoff.fds if handoff is not None else []
        timeout = max(CLEANUP_TIMEOUT, self.server.timeout) \
            + (handoff.extra_time if handoff is not None else 0.0)
        deadline = trio.current_time() + timeout
        result: Queued | Rejected | None = None
        try:
            async with budget.hold(size, deadline=deadline) if large \
                    else contextlib.nullcontext():
                result = await cleanup.call_made(
                    with_content, expect=(Queued, Rejected),
                    timeout=deadline - trio.current_time(), fds=fds,
                    sent=handed_over if content is not None else None)
        except trio.TooSlowError:
            log.warning("problem talking to server private/cleanup: "
                        f"no room for the content within {timeout:g}s")
            return replies.QUEUE_WRITE_ERROR
        except RemoteError as e:
            log.warning(f"{qid}: queue file write error: {e.text}")
            if e.code == ErrorCode.QUEUE_FULL:
                return replies.INSUFFICIENT_STORAGE
            return replies.QUEUE_WRITE_ERROR
        except (IpcError, OSError) as e:
            log.warning(f"problem talking to server private/cleanup: {e}")
            return replies.QUEUE_WRITE_ERROR
        finally:
            if fds and self.milters is not None:
                assert handoff is not None
                await self.milters.handed_back(
                    handoff, result.milters_failed if result is not None else None)
        if isinstance(result, Rejected):
            # cleanup logged why (header_checks, hop count); Postfix's smtpd
            # logs no reject line of its own for it.
            return Reply(result.code, result.enhanced or None, result.text)
        return replies.bdat_queued(event.size, result.queue_id) if bdat \
            else replies.queued(result.queue_id)

    # --- the before-queue content filter (smtpd_proxy_filter) ------------------------

    async def _proxy_rcpt(self, event: RcptTo) -> Reply | None:
        """RCPT with a before-queue filter (smtpd.c rcpt_cmd): the first
        accepted recipient opens the filter transaction (and logs "NOQUEUE:
        client=..."); each is then the filter's to refuse. No queue ID."""
        assert self.mail is not None and self.server.proxy is not None
        self._stop_clock()
        proxy = self.proxy
        if proxy is None:
            mail = self.mail
            proxy = self.server.proxy.transaction(_command("MAIL FROM", mail.raw, mail.params),
                                                  self._xforward_attrs())
            refusal = await proxy.open()
            if refusal is not None:
                return refusal
            self.proxy = proxy
            log.info("client", noqueue=True, client=self.namaddr,
                     sasl_method=self.auth.method, sasl_username=self.auth.user,
                     sasl_sender=mail.auth or "",
                     **(self._orig_fields() if self.forwarded else {}))
        refusal = await proxy.rcpt(_command("RCPT TO", event.raw, event.params))
        if refusal is not None:
            return refusal
        orcpt = event.dsn_orcpt
        self.recipients.append(CleanupRecipient(event.address, orcpt=orcpt,
                                                notify=tuple(event.notify or ())))
        self.last_rcpt = event.address
        return None

    def _xforward_attrs(self) -> dict[str, str | None]:
        """What XFORWARD tells the filter (smtpd_proxy.c): this client, or the
        one this client named in its own XFORWARD; None: unavailable."""
        fwd = self.forwarded or {}
        conn = self.conn
        name = fwd.get("NAME", self.name)
        addr = fwd.get("ADDR", self.addr)
        if ":" in addr and not addr[:5].lower() == "ipv6:":
            addr = "IPv6:" + addr                 # state->rfc_addr
        port = fwd.get("PORT", str(self.port))
        return {"NAME": None if name == "unknown" else name,
                "ADDR": None if addr == "unknown" else addr,
                "PORT": None if port in ("0", "unknown") else port,
                "HELO": fwd.get("HELO", conn.helo_name or "") or None,
                "IDENT": fwd.get("IDENT") or None,
                "PROTO": fwd.get("PROTO", conn.protocol) or None,
                "SOURCE": "LOCAL" if self._local_context(fwd.get("SOURCE")) else "REMOTE"}

    def _proxy_header(self) -> bytes:
        """What goes before the content: PREPEND lines, then this smtpd's
        Received: header without a queue ID (left out when the client
        itself used XFORWARD: an intermediate proxy, smtpd.c data_cmd)."""
        lines = list(self.actions.prepend)
        if not self.forwarded:
            conn, server = self.conn, self.server
            lines.append(received_smtp(
                helo=conn.helo_name or "", client_name=self.name, client_addr=self.addr,
                myhostname=conn.settings.hostname, protocol=conn.received_protocol,
                queue_id="", recipients=[r.address for r in self.recipients],
                arrival=time.time(),
                tls=self.tls_info if server.tls_received_header else None,
                sasl_username=self.auth.user or "" if server.cfg.smtpd_sasl_authenticated_header
                else ""))
        text = "".join(line.replace("\n", "\r\n") + "\r\n" for line in lines)
        return text.encode("utf-8", "surrogateescape")

    async def _proxy_data(self) -> Reply | None:
        assert self.proxy is not None
        self._stop_clock()
        return await self.proxy.data(self._proxy_header())

    async def _proxy_content(self, data: bytes) -> None:
        proxy = self.proxy
        assert proxy is not None
        self._stop_clock()                        # the filter's own timeout applies
        if not proxy.data_started:                # BDAT: DATA goes with the first chunk
            await proxy.data(self._proxy_header())
        await proxy.content(data)

    async def _proxy_end_of_data(self, event: EndOfData) -> Reply:
        """The end of the message with a before-queue filter: the
        end-of-data restrictions, then "." and the filter's answer is the
        client's, logged "proxy-accept: END-OF-MESSAGE: ..." or
        "proxy-reject: ..." (smtpd.c data_cmd; live 3.7.11)."""
        proxy, mail, actions = self.proxy, self.mail, self.actions
        recipients, last_rcpt = tuple(self.recipients), self.last_rcpt
        content, spool_error, self.content = self.content, self.spool_error, None
        self.proxy = None                         # closed below, not by _reset()
        self._reset()
        self.forwarded = None
        self._stop_clock()
        try:
            if proxy is None or mail is None or not recipients:
                return PROXY_ERROR                # a transaction the filter never saw
            if self.server.restrictions.lists["smtpd_end_of_data_restrictions"]:
                refusal = await self._end_of_data_restrictions(mail, "", recipients, last_rcpt,
                                                               actions, event.size)
                if refusal is not None:
                    return refusal
            if spool_error is not None:
                log.warning(f"proxy speed-adjust log I/O error: {spool_error.strerror}")
                accepted, reply = False, PROXY_ERROR
            else:
                if not proxy.data_started:        # BDAT 0 LAST: no chunk started it
                    await proxy.data(self._proxy_header_for(actions, recipients))
                accepted, reply = await proxy.finish(content)
            self._log_proxy(accepted, proxy.last_text or str(reply), mail.address,
                            recipients[0].address)
            return reply
        finally:
            if proxy is not None:
                proxy.close()
            if content is not None:
                content.close()
            if self.milters is not None:
                await self.milters.end_transaction()

    def _proxy_header_for(self, actions: MessageActions,
                          recipients: tuple[CleanupRecipient, ...]) -> bytes:
        """_proxy_header() for a transaction the session has already let go of."""
        saved = self.actions, self.recipients
        self.actions, self.recipients = actions, list(recipients)
        try:
            return self._proxy_header()
        finally:
            self.actions, self.recipients = saved

    def _log_proxy(self, accepted: bool, text: str, sender: str | None = None,
                   recipient: str | None = None) -> None:
        if sender is None and self.mail is not None:
            sender = self.mail.address
        if recipient is None and self.recipients:
            recipient = self.recipients[0].address
        log.info("proxy", result="accept" if accepted else "reject", command="END-OF-MESSAGE",
                 reply=text, sender=sender, recipient=recipient, proto=self.conn.protocol,
                 helo=self.conn.helo_name, sasl_method=self.auth.method,
                 sasl_username=self.auth.user)

    # --- XCLIENT ----------------------------------------------------------------------

    async def _xclient(self, event: Xclient) -> Reply:
        """The session starts over as the client XCLIENT names (smtpd.c
        xclient_cmd): new name, address and port in every later log line,
        restriction and Received: header, anvil counting under the new
        address, the client restrictions again when smtpd_delay_reject = no,
        and a new greeting as the answer. There is no new "connect from"
        line; "disconnect from" names the last client, as in Postfix."""
        server = self.server
        name, addr, port = self.name, self.addr, self.port
        for key, value in event.attributes:
            if key == "NAME":
                # smtpd.c: [UNAVAILABLE] and [TEMPUNAVAIL] are "unknown" for
                # good or for now; a name given is also the reverse name.
                name, self.name_status = _xclient_name(value)
                if self.name_status == NAME_OK:
                    self.reverse_name, self.reverse_status = name, NAME_OK
            elif key == "REVERSE_NAME":
                self.reverse_name, self.reverse_status = _xclient_name(value)
            elif key == "ADDR":
                addr = value
            elif key == "PORT":
                port = int(value) if value.isdigit() else 0
            elif key == "DESTADDR":
                self.server_addr = value
            elif key == "DESTPORT":
                self.server_port = value
        self.name, self.addr, self.port = name, addr, port
        self.namaddr = self.auth.namaddr = self._namaddr(name, addr, port)
        login = event.get("LOGIN")
        self.auth.method, self.auth.user = ("XCLIENT", login) if login else ("", "")
        self._reset()
        self.forwarded = None
        self.access_denied = None
        self.held_client = self.held_helo = self.held_sender = None
        conn = self.conn
        conn.access_denied = None
        conn.settings = server.settings(name, addr)
        allowed = server.xclient_hosts is not None and server.xclient_allowed(name, addr)
        conn.xclient_allowed = allowed
        self.exempt = allowed or server.exempt(name, addr)
        if self.anvil_addr is not None or (server.limits.counts_connections and not self.exempt):
            self._stop_clock()
            if self.anvil_addr is not None:
                await server.anvil.disconnect(server.service, self.anvil_addr)
                self.anvil_addr = None
            if self.greeting_refusal is not None:         # a bad PROXY header
                assert self.pump is not None
                await self.pump.send_greeting(self.greeting_refusal)
                return
            if server.limits.counts_connections and not self.exempt:
                hit = await self._anvil_connect()
                if hit is not None:
                    return hit
        if not server.restrictions.delay_reject:
            # Postfix's new greeting is then the refusal itself, logged as
            # "NOQUEUE: reject: XCLIENT from ...; proto=SMTP" (3.7.11 live).
            self._stop_clock()
            await self._check_client("XCLIENT", helo=event.get("HELO") or "",
                                     proto=event.get("PROTO") or "SMTP")
            if self.access_denied is not None:
                return self.access_denied
        if self.milters is not None or server.milter_maps:
            # Postfix ends the milters' conversation and starts one about
            # the client XCLIENT names (seen live, 3.7.11).
            self._stop_clock()
            if self.milters is not None:
                milters, self.milters = self.milters, None
                await milters.aclose()
            refusal = await self._start_milters()
            if refusal is not None:
                return refusal
        return server.greeting

    # --- STARTTLS and AUTH -------------------------------------------------------------

    def _milters_refusal_454(self) -> Reply | None:
        """The milters' standing refusal for STARTTLS and AUTH: a 5xx as
        the milter said it, a 4xx as 454 (smtpd.c starttls_cmd(),
        smtpd_sasl_proto.c: "Sendmail compatibility")."""
        refusal = self._milters_refusal()
        if refusal is None or refusal.code >= 500:
            return refusal
        return replies.MILTER_TRY_AGAIN_454

    async def _starttls(self) -> Reply | None:
        refusal = self._milters_refusal_454()
        if refusal is not None:
            return refusal
        server = self.server
        if server.tls_context is None:
            return TLS_UNAVAILABLE
        if server.limits.new_tls_session_rate and not self.exempt:
            self._stop_clock()
            rate = await server.anvil.event(server.service, self.addr, anvil_proto.NEWTLS_STATUS)
            hit = limits.check_starttls(rate, server.limits, service=server.service,
                                        namaddr=self.namaddr)
            if hit is not None:
                log.warning(hit.warning)
                return _limit_reply(hit)
        return None

    async def start_tls(self, stream: trio.abc.Stream) -> trio.abc.Stream | None:
        """The TLS handshake (after our 220, or at connect in wrapper mode)."""
        # Imported here: pyOpenSSL costs ~4 MB in every smtpd process, and a
        # server without a certificate never gets this far.
        from mailsys.runtime.smtpd_tls import server_handshake
        result = await server_handshake(stream, self.server, namaddr=self.namaddr, addr=self.addr,
                                        exempt=self.exempt)
        self.tls_refused = result.refused
        self.tls_text = result.received
        self.tls_info = result.info
        return result.stream

    async def _auth(self, event: Auth) -> Reply:
        if self.server.limits.auth_rate:
            refusal = await self._rate(anvil_proto.AUTH, limits.check_auth)
            if refusal is not None:
                return refusal
        refusal = self._milters_refusal_454()
        if refusal is not None:
            return refusal
        return await self.auth.begin(event, local=self.local_addr, remote=self.addr,
                                     secured=self.conn.tls_active)


def _xclient_name(value: str) -> tuple[str, str]:
    """An XCLIENT NAME or REVERSE_NAME value: the name and its lookup status."""
    if value == XCLIENT_UNAVAILABLE:
        return "unknown", NAME_PERM
    if value == XCLIENT_TEMPUNAVAIL:
        return "unknown", NAME_TEMP
    return value, NAME_OK


__all__ = ["Session", "serve_client", "TLS_UNAVAILABLE"]
