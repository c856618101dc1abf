"""smtp_agent - one DeliverRequest to a remote SMTP server (Postfix smtp(8)'s work).

SYNOPSIS
    settings = SmtpSettings.from_config(cfg, own=own_endpoints(cfg))
    agent = SmtpAgent(settings, Resolver.from_config(cfg), load_content, ConnectionCache(2.0))
    status = await agent.deliver(request)          # DeliveryStatus, every recipient answered

DESCRIPTION
    For a request the agent:

     1. parses the next hop (mailsys.routing.parse_nexthop): ``domain[:port]``
        looks up MX records, ``[host][:port]`` does not;
     2. reuses an idle connection to the same next hop when the cache holds
        one (logged as conn_use=N), checked with an RSET that goes in front
        of MAIL FROM (in the same pipelined write when the server offers
        PIPELINING): when the check fails, the session is dropped without
        a log line and the message goes over a fresh connection;
     3. otherwise resolves the hosts to try: MX records by preference, equal
        preferences shuffled, the domain itself when it has no MX, RFC 7505
        null MX bounced (5.1.0); NXDOMAIN bounces (5.1.2), SERVFAIL or a
        timeout defers (4.4.3), as "Host or domain name not found. Name
        service error for name=X type=MX: Host not found[, try again]";
        with ignore_mx_lookup_error = yes a failed MX lookup is forgotten
        and the domain's own addresses are tried, as for no MX (Postfix
        smtp_addr.c); then drops this host and every worse MX (routing.drop_self): mail
        that would come back here bounces "mail for X loops back to myself"
        (5.4.6). Own addresses are (address, port) pairs of the smtpd
        services in master.cf, so a peer on another port of 127.0.0.1 is
        not a loop. A [bracketed] destination is not checked against them
        (Postfix delivers to relayhost = [127.0.0.1]:2526 on a host whose
        inet_interfaces is 127.0.0.1). The smtp_fallback_relay next hops
        come after these addresses, or instead of them for a destination
        that cannot be found, never for one of which this host is an MX;
     4. tries the addresses in turn (at most smtp_mx_address_limit, with at
        most smtp_mx_session_limit sessions that got as far as a greeting):
        a connection failure or a refused greeting logs Postfix's
        ``connect to host[addr]:port: Connection refused`` and moves on; a
        server on port 25 that answers EHLO with our own myhostname is a
        loop too (5.4.6 at a best MX host, 4.4.6 at a backup; a greeting
        naming it only gets a warning; smtp_client_io.SmtpSession.hello).
        When every recipient ends with such a loop and best_mx_transport
        names a transport, the whole request goes to it instead
        (mailsys.runtime.best_mx), unless the next hop is the relayhost.
        Recipients that no server took keep the last failure seen (a
        later next hop's lookup failure outranks an earlier connection
        failure); when that status is hard
        and the last next hop was a smtp_fallback_relay one, or the next
        hop's first destination is the whole of $relayhost, it becomes
        4.3.5 with its text, after "warning: smtp_fallback_relay
        configuration problem" or "warning: relayhost configuration
        problem", once per request (Postfix smtp_connect.c; not for
        LMTP). A 5xx greeting is 4.x.x with smtp_skip_5xx_greeting
        (Postfix 3.7: "554 5.7.1 ..." deferred as 4.7.1);
     5. sends the message from the queue store (read only: qmgr owns every
        state change), per-recipient replies becoming sent / deferred /
        bounced with Postfix's texts, relay=host[addr]:port, Remote-MTA and
        Diagnostic-Code for the bounce service. A recipient the server
        deferred before the message was sent (a 4xx to MAIL, RCPT or DATA,
        or a session that broke before the content went out) is left for
        the next MX host, as Postfix does for every server but the last
        (smtp_trouble.c); once the content may have reached a server,
        nobody else gets it in this attempt;
        An address verification probe (DeliverRequest.probe: verify(8)'s,
        or sendmail -bv) goes as far as RCPT TO and then says RSET, never
        DATA (Postfix smtp_address_verify_target = rcpt): a recipient the
        server accepts is "deliverable" with that reply, as
        mailsys.delivery.report logs it;
     6. keeps the connection for the next request to this next hop
        (smtp_connection_cache_time_limit, default 2 s), or says QUIT;
     7. logs each recipient's status line and answers qmgr.

    LMTP (SmtpSettings.lmtp, the lmtp program: mailsys.config.client_program
    hands the agent the lmtp_* values under the smtp_* names, as Postfix's
    lmtp(8) is its smtp(8) under another name). The next hop is
    routing.parse_lmtp_nexthop()'s: ``unix:private/dovecot-lmtp`` (a
    relative path under $queue_directory) or ``unix:/path`` is one socket,
    named after $myhostname in the log (relay=mail.example.com[private/
    dovecot-lmtp], "connect to mail.example.com[private/x]: No such file or
    directory" without a log line of its own); ``inet:host:port``,
    ``host:port``, ``[host]:port`` and ``host`` are the host's addresses on
    $lmtp_tcp_port (24) by default, never MX records, and no loop check
    (Postfix checks for loops on port 25 only). The session says LHLO, and
    after the final dot each recipient gets its own reply. Opportunistic
    TLS (may) over a socket is turned off with Postfix's warning;
    encrypt and up are honoured.

    TLS per destination: smtp_tls_policy_maps (SmtpSettings.tls_for,
    mailsys.runtime.smtp_tls.tls_policies) gives the next hop its own
    level and attributes; an unusable entry defers the request with 4.7.5
    "client TLS configuration problem", relay=none, no server tried.

    Output rewriting (SmtpSettings.output, mailsys.message.smtp_output):
    with smtp_generic_maps or any smtp_*_checks table (lmtp_* for lmtp),
    each transaction sends the rewritten sender, recipients and content
    and logs what the checks did, as Postfix's smtp_proto.c does per
    session. A recipient the generic map changed carries its address
    before the rewriting as ORCPT (unless it has an ORCPT of its own), and
    SIZE= stays the size of the queued content, as Postfix announces the
    queue file's. A generic map result that is no address defers the
    recipients with "unknown mail transport error" (4.3.0): Postfix's
    smtp client stops with a fatal error there. Without any of those
    tables output is None and the send path does not look at the content.

    SASL (SmtpSettings.sasl, mailsys.runtime.smtp_sasl): after EHLO and
    STARTTLS each new session logs in when smtp_sasl_password_maps has
    credentials for the sender (smtp_sender_dependent_authentication), the
    server's host name or the next hop; a failed login is a session
    failure like a refused greeting (the next MX host, else the
    recipients get "SASL authentication failed; ..."). With sender-
    dependent logins no session goes into the connection cache.

    Session and envelope details, each as Postfix 3.7 does it (compared
    live): smtp_skip_quit_response (yes; lmtp_: no) hangs up right after
    QUIT; smtp_always_send_ehlo = no says HELO to a greeting that does not
    name ESMTP after the server's name; smtp_quote_rfc821_envelope quotes
    a local part that is no dot-atom (no: sends it bare); next hops without
    a port get $smtp_tcp_port (the "smtp" service, 25) or $lmtp_tcp_port;
    smtp_address_verify_target = data takes a probe as far as the 354 to
    DATA and hangs up there ("deliverable (354 ...)", 2.0.0);
    smtp_defer_if_no_mx_address_found defers (4.4.4) where no MX host has
    an address, with Postfix's warning "no MX host for X has a valid
    address record"; smtp_balance_inet_protocols keeps addresses of both
    families within smtp_mx_address_limit (routing.balance_inet_protocols);
    smtp_cname_overrides_servername names a server after the end of its
    CNAME chain.

    Filters: smtp_reply_filter rewrites each line of a server's reply
    before it is read (smtp.ClientConnection reply_filter); a
    smtp_dns_reply_filter drops DNS records (Resolver); and
    smtp_delivery_status_filter (default $default_delivery_status_filter,
    mailsys.delivery.status_filter) rewrites each recipient's
    final status and text once, just before its status line.

    smtp_per_request_deadline (default: the older smtp_per_record_deadline,
    else no) makes each smtp_*_timeout one deadline for a request and its
    response, with content earning N/smtp_min_data_rate seconds a write
    (SmtpSession.next_event).

    The connection cache keeps a session after its message unless
    smtp_connection_cache_on_demand is off and the destination is not in
    smtp_connection_cache_destinations (mailsys has no queue-manager hint
    of a backlog: "on demand" is every destination), the session is
    TLS-encrypted and smtp_tls_connection_reuse is off (Postfix's default:
    it can cache TLS only through tlsproxy), it has carried
    smtp_connection_reuse_count_limit + 1 messages, or it is older than
    smtp_connection_reuse_time_limit. smtp_tls_block_early_mail_reply
    defers (4.7.0 "unexpected server message") when a server inside TLS
    sent replies nobody asked for before MAIL FROM.

    A request has no deadline of its own: every wait inside it already has
    its smtp_*_timeout. smtp_dns_support_level = disabled skips MX lookups;
    smtp_host_lookup picks DNS or the system's resolver for host addresses;
    smtp_bind_address[6] picks the source address.
"""

from __future__ import annotations

import dataclasses
import functools
import random
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import field
from pathlib import Path

import structlog

from mailsys.config import parse_master_cf
from mailsys.config.interfaces import own_interfaces
from mailsys.config.tables import Table, open_table
from mailsys.config.values import BadValue, parse_time, split_list
from mailsys.delivery.status_filter import StatusFilter
from mailsys.delivery.report import Stopwatch, deferred, failed, log_status, sent
from mailsys.errors import ConfigError
from mailsys.frozen import frozen
from mailsys.ipc.proto.deliver import (DeliverRecipient, DeliverRequest, DeliveryStatus,
                                       RecipientResult)
from mailsys.message.address import quote_822_local, unquote_822_local
from mailsys.message.message_actions import first_answer
from mailsys.policy.postscreen_smtp import CommandList
from mailsys.message.smtp_output import PARAMETERS as OUTPUT_PARAMETERS
from mailsys.message.smtp_output import OutputError, OutputRewrite
from mailsys.routing import (LMTP_PORT, SMTP_PORT, BadNextHop, balance_inet_protocols, MxAddress, MxHost, NextHop, RouteError,
                             drop_self, first_lookup, mx_hosts, parse_lmtp_nexthop, parse_nexthop,
                             service_port)
from mailsys.runtime.best_mx import BestMxPass
from mailsys.runtime.peer_debug import DebugPeers
from mailsys.runtime.resolver import POLICY, DnsError, Resolver, dns_disabled
from mailsys.config.params import PIX_WORKAROUNDS
from mailsys.runtime.smtp_client_io import (ConnectionCache, PixWorkarounds, SessionError,
                                            SmtpSession,
                                            StaleSession, Target, TlsPolicy, connect,
                                            trio_close)
from mailsys.runtime.smtp_sasl import SaslSettings
from mailsys.smtp.client import (DATA, MAIL_FROM, RCPT_TO, Rcpt, RecipientStatus, XforwardAttributes,
                                 said_text)
from mailsys.smtp.errors import LocalProtocolError
from mailsys.smtp.trace import Trace

log = structlog.get_logger()

__all__ = ["SmtpSettings", "SmtpAgent", "own_endpoints", "TIMEOUT_PARAMS"]

# The stage deadlines ClientConnection.stage_timeout names, with Postfix's
# defaults for the two the parameter table does not carry.
TIMEOUT_PARAMS = ("smtp_connect_timeout", "smtp_helo_timeout", "smtp_mail_timeout",
                  "smtp_rcpt_timeout", "smtp_data_init_timeout", "smtp_data_xfer_timeout",
                  "smtp_data_done_timeout", "smtp_quit_timeout", "smtp_starttls_timeout",
                  "smtp_xforward_timeout")
EXTRA_TIMEOUTS = {"smtp_rset_timeout": 20.0}
# Postfix smtp_connection_cache_time_limit default (mail_params.h).
CACHE_TIME_LIMIT = 2.0


def _time_param(cfg, name: str, default: float) -> float:
    """A time parameter the table may not carry yet: typed when it does,
    else parsed from main.cf text (a bad value is a ConfigError), else default."""
    try:
        value = cfg[name]
    except KeyError:
        return default
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return parse_time(str(value))
    except BadValue as e:
        raise ConfigError(f"{e}", param=name) from None


@frozen
class SmtpSettings:
    helo_name: str
    timeouts: Mapping[str, float]
    myhostname: str = ""             # a server that gives this name in EHLO is us (a loop)
    own: frozenset = frozenset()
    mx_lookups: bool = True          # False: smtp_dns_support_level = disabled
    mx_address_limit: int = 5
    mx_session_limit: int = 2
    # smtp_fallback_relay: next hops tried after those of a destination
    # that cannot be found or reached (not for one we are an MX host of).
    fallback_relay: tuple[str, ...] = ()
    relayhost: str = ""              # $relayhost: a hard failure of it defers (4.3.5)
    # smtp_discard_ehlo_keywords, and smtp_discard_ehlo_keyword_address_maps
    # by server address (a match replaces the list).
    discard_ehlo: tuple[str, ...] = ()
    discard_maps: tuple[Table, ...] = ()
    send_ehlo: bool = True           # not smtp_never_send_ehlo
    randomize_addresses: bool = True # smtp_randomize_addresses: shuffle equal MX preferences
    skip_5xx_greeting: bool = True
    body_line_limit: int = 998
    cache_time_limit: float = CACHE_TIME_LIMIT
    bind: Mapping[int, str] = field(default_factory=dict)   # family -> smtp_bind_address[6]
    tls: TlsPolicy = field(default_factory=TlsPolicy)
    # smtp_tls_policy_maps: next hop -> its TlsPolicy (None: ``tls`` for all);
    # a SessionError it raises (an unusable entry) defers the request.
    tls_for: Callable[[str], TlsPolicy] | None = None
    sasl: SaslSettings | None = None # smtp_sasl_auth_enable (None: no SASL)
    send_xforward: bool = False      # smtp_send_xforward_command
    lmtp: bool = False               # speak LMTP: the lmtp program (module description)
    # smtp_generic_maps and smtp_*_checks (None: none configured, nothing to do)
    output: OutputRewrite | None = None
    skip_quit_response: bool = True # smtp_skip_quit_response (lmtp_: no)
    always_send_ehlo: bool = True    # smtp_always_send_ehlo (no: EHLO only after "ESMTP")
    quote_envelope: bool = True      # smtp_quote_rfc821_envelope
    defer_no_mx_address: bool = False    # smtp_defer_if_no_mx_address_found
    ignore_mx_lookup_error: bool = False  # ignore_mx_lookup_error
    # best_mx_transport: where mail goes that loops back here (None: it bounces).
    best_mx: BestMxPass | None = None
    cname_overrides: bool = False    # smtp_cname_overrides_servername
    verify_target: str = "rcpt"      # smtp_address_verify_target: rcpt or data
    balance_protocols: bool = True   # smtp_balance_inet_protocols
    reply_filter: Table | None = None    # smtp_reply_filter
    # Which sessions go back to the connection cache: smtp_tls_connection_reuse
    # (TLS ones), smtp_connection_reuse_count_limit (0: no limit),
    # smtp_connection_reuse_time_limit, smtp_connection_cache_on_demand
    # and smtp_connection_cache_destinations (a string list, None: empty).
    tls_connection_reuse: bool = False
    reuse_count_limit: int = 0
    reuse_time_limit: float = 300.0
    cache_on_demand: bool = True
    cache_destinations: CommandList | None = None
    block_early_reply: str = ""      # "smtp_tls_block_early_mail_reply" when on
    # smtp_pix_workarounds, smtp_pix_workaround_maps (by server address),
    # smtp_pix_workaround_delay_time and _threshold_time.
    pix_words: tuple[str, ...] = ("disable_esmtp", "delay_dotcrlf")
    pix_maps: tuple[Table, ...] = ()
    pix_delay: float = 10.0
    pix_threshold: float = 500.0
    per_request_deadline: bool = False   # smtp_per_request_deadline
    min_data_rate: int = 500             # smtp_min_data_rate (bytes/s)
    # smtp_delivery_status_filter (default $default_delivery_status_filter)
    status_filter: StatusFilter | None = None
    # $smtp_tcp_port / $lmtp_tcp_port: the port of a next hop that names
    # none (0: the protocol's own, 25 or 24).
    default_port: int = 0
    socket_dir: str = ""             # LMTP only: where relative unix: paths start ($queue_directory)
    # debug_peer_list: the servers whose chat is logged (None: nobody).
    debug_peers: DebugPeers | None = None

    @classmethod
    def from_config(cls, cfg, *, own: Iterable = (), tls: TlsPolicy | None = None,
                    program: str = "smtp", tls_for: Callable[[str], TlsPolicy] | None = None,
                    sasl: SaslSettings | None = None) -> SmtpSettings:
        """Settings of the smtp or the lmtp program; for lmtp, cfg is the
        client_program.client_config() view (smtp_* names, lmtp values)."""
        timeouts = {name: float(cfg[name]) for name in TIMEOUT_PARAMS}
        for name, default in EXTRA_TIMEOUTS.items():
            timeouts[name] = _time_param(cfg, name, default)
        lmtp = _lmtp_settings(cfg) if program == "lmtp" else {}
        try:
            port = service_port(cfg.smtp_tcp_port)
        except BadNextHop as e:
            raise ConfigError(str(e), param=f"{program}_tcp_port") from None
        return cls(helo_name=cfg.smtp_helo_name, timeouts=timeouts, myhostname=cfg.myhostname,
                   own=frozenset() if lmtp else frozenset(own),
                   mx_lookups=not dns_disabled(cfg),
                   mx_address_limit=cfg.smtp_mx_address_limit,
                   mx_session_limit=cfg.smtp_mx_session_limit,
                   fallback_relay=() if lmtp else tuple(cfg.smtp_fallback_relay),
                   relayhost="" if lmtp else str(cfg.relayhost).strip(),
                   discard_ehlo=tuple(cfg.smtp_discard_ehlo_keywords),
                   discard_maps=tuple(open_table(spec, cfg)
                                      for spec in cfg.smtp_discard_ehlo_keyword_address_maps),
                   send_ehlo=not cfg.smtp_never_send_ehlo,
                   randomize_addresses=cfg.smtp_randomize_addresses,
                   skip_5xx_greeting=cfg.smtp_skip_5xx_greeting,
                   body_line_limit=cfg.smtp_line_length_limit,
                   cache_time_limit=_time_param(cfg, "smtp_connection_cache_time_limit",
                                                CACHE_TIME_LIMIT),
                   bind={f: a for f, a in ((socket.AF_INET, cfg.smtp_bind_address),
                                            (socket.AF_INET6, cfg.smtp_bind_address6)) if a},
                   tls=tls or TlsPolicy(), tls_for=tls_for, sasl=sasl,
                   send_xforward=cfg.smtp_send_xforward_command,
                   output=_output_rewrite(cfg, program),
                   skip_quit_response=cfg.smtp_skip_quit_response,
                   always_send_ehlo=bool(lmtp) or cfg.smtp_always_send_ehlo,
                   quote_envelope=cfg.smtp_quote_rfc821_envelope,
                   defer_no_mx_address=cfg.smtp_defer_if_no_mx_address_found,
                   ignore_mx_lookup_error=cfg.ignore_mx_lookup_error,
                   best_mx=None if lmtp else BestMxPass.from_config(cfg),
                   cname_overrides=cfg.smtp_cname_overrides_servername,
                   verify_target=cfg.smtp_address_verify_target,
                   balance_protocols=cfg.smtp_balance_inet_protocols,
                   tls_connection_reuse=cfg.smtp_tls_connection_reuse,
                   reuse_count_limit=cfg.smtp_connection_reuse_count_limit,
                   reuse_time_limit=_time_param(cfg, "smtp_connection_reuse_time_limit", 300.0),
                   cache_on_demand=cfg.smtp_connection_cache_on_demand,
                   cache_destinations=_string_list(cfg, "smtp_connection_cache_destinations"),
                   block_early_reply=f"{program}_tls_block_early_mail_reply"
                   if cfg.smtp_tls_block_early_mail_reply else "",
                   pix_words=tuple(w.lower() for w in cfg.smtp_pix_workarounds),
                   pix_maps=tuple(open_table(spec, cfg) for spec in cfg.smtp_pix_workaround_maps),
                   pix_delay=float(cfg.smtp_pix_workaround_delay_time),
                   pix_threshold=float(cfg.smtp_pix_workaround_threshold_time),
                   per_request_deadline=cfg.smtp_per_request_deadline,
                   min_data_rate=cfg.smtp_min_data_rate,
                   reply_filter=open_table(cfg.smtp_reply_filter, cfg)
                   if cfg.smtp_reply_filter else None,
                   status_filter=StatusFilter(
                       f"{program}_delivery_status_filter",
                       first_answer([open_table(spec, cfg)
                                     for spec in cfg.smtp_delivery_status_filter]),
                       log.warning) if cfg.smtp_delivery_status_filter else None,
                   default_port=port, debug_peers=DebugPeers.from_config(cfg), **lmtp)


def _output_rewrite(cfg, program: str) -> OutputRewrite | None:
    """The generic maps and checks of the program, tables opened; None without any."""
    if not any(cfg[name] for name in OUTPUT_PARAMETERS):
        return None
    # Imported here: the routing tables behind "is this domain ours" are
    # opened only when a generic map may ask.
    from mailsys.qmgr.settings import local_domain_check
    return OutputRewrite.from_config(cfg, lambda spec: open_table(spec, cfg),
                                     local_domain_check(cfg), program)


def _string_list(cfg, name: str) -> CommandList | None:
    """A Postfix string_list parameter: words (case does not matter, !word
    excludes), /file/name (its words) and type:table (its keys); None
    when empty."""
    words: list[str] = []
    for item in cfg[name]:
        bare = item.lstrip("!")
        if bare.startswith("/"):
            try:
                text = Path(bare).read_text()
            except OSError as e:
                raise ConfigError(f"open {bare}: {e.strerror}", param=name) from None
            neg = "!" if item.startswith("!") else ""
            words += [neg + w for line in text.splitlines() if not line.lstrip().startswith("#")
                      for w in split_list(line)]
        else:
            words.append(item)
    return CommandList.compile(words, lambda spec: open_table(spec, cfg)) if words else None


def _lmtp_settings(cfg) -> dict:
    return dict(lmtp=True, socket_dir=str(cfg.path("queue_directory")))


def _interface_addresses(cfg, host: str) -> list[str]:
    """The addresses an smtpd service with this host part listens on."""
    words = [host] if host else list(cfg.inet_interfaces)
    if any(w.lower() == "localhost" for w in words):
        words.append("loopback-only")           # both families, whatever the resolver says
    return [str(i.ip) for i in own_interfaces(words, cfg.inet_protocols)]


def own_endpoints(cfg) -> frozenset[tuple[str, int]]:
    """(address, port) of every smtpd inet service in master.cf: mail to one is a loop."""
    try:
        specs = parse_master_cf(cfg.config_dir / "master.cf", cfg)
    except Exception:
        return frozenset()
    return frozenset((addr, spec.port) for spec in specs
                     if spec.type == "inet" and spec.command == "smtpd"
                     for addr in _interface_addresses(cfg, spec.host))


class _Budget:
    """smtp_mx_session_limit: sessions (servers that answered) one request may use (0: no limit)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    @property
    def left(self) -> bool:
        return self.limit <= 0 or self.used < self.limit

    def spend(self) -> None:
        self.used += 1


class _SelfMx(RouteError):
    """We are the best MX host of the destination (a loop), or no better one
    is found: never a case for the fallback relays."""


class _NoRoute(RouteError):
    """No server to try for a request; fallback: the failure is that of
    the last smtp_fallback_relay next hop."""

    def __init__(self, status: str, reason: str, fallback: bool = False) -> None:
        super().__init__(status, reason)
        self.fallback = fallback


@frozen
class _Route:
    """The servers of a request. fallback: smtp_fallback_relay next hops
    come last; failed: the lookup failure of the last next hop, which is
    what the recipients get when no server took them (Postfix keeps the
    last failure it saw)."""
    targets: list[Target]
    failed: RouteError | None = None
    fallback: bool = False


@functools.lru_cache(maxsize=1024)
def _destination(transport: str, nexthop: str, port: int, lmtp: bool = False
                 ) -> tuple[NextHop, str]:
    """The parsed next hop and the connection cache's key for it (an LMTP
    next hop when lmtp); port is the one of a next hop that names none.
    qmgr sends the same few (transport, next hop) pairs over and over; a
    bad one raises BadNextHop every time (exceptions are not cached)."""
    hop = parse_lmtp_nexthop(nexthop, port) if lmtp else parse_nexthop(nexthop, port)
    return hop, f"{transport}:{hop}"


def _dns_status(e: DnsError, soft: str, hard: str) -> str:
    """The status of a failed lookup: Postfix's 4.7.0 when the reply filter
    dropped every record (DNS_POLICY), else soft or hard."""
    if e.kind == POLICY:
        return "4.7.0"
    return soft if e.temporary else hard


def _smtpd_protocol(protocol: str) -> str:
    """What Postfix forwards as PROTO: its smtpd's SMTP or ESMTP. The entry
    keeps the word of the Received: header (RFC 3848: ESMTPSA, UTF8SMTPS...),
    which Postfix 3.7 does not forward (PROTO=ESMTP after AUTH, seen live)."""
    if protocol.startswith(("ESMTP", "UTF8SMTP")):
        return "ESMTP"
    return protocol


def _rewrite(output: OutputRewrite, req: DeliverRequest, rcpts: list[DeliverRecipient],
             content: bytes) -> tuple[str, list[Rcpt], bytes, int]:
    """The sender, recipients and content output rewriting sends, and the
    SIZE= of the content as queued; logs what the checks did."""
    def warn(text: str) -> None:
        log.warning(text)
    sender = output.address(req.sender, warn)
    sent = []
    for r in rcpts:
        rcpt = _rcpt(r)
        address = output.address(rcpt.address, warn)
        if address != rcpt.address:
            # The receiver learns the address before the rewriting, as
            # Postfix sends its original recipient as ORCPT.
            rcpt = Rcpt(address, notify=rcpt.notify, orcpt=rcpt.orcpt or r.orig or r.address)
        sent.append(rcpt)
    size = len(content) + content.count(b"\n") - content.count(b"\r\n")
    if content and not content.endswith(b"\n"):
        size += 2                      # the CRLF the client adds at the end
    content, notes = output.content(content)
    for note in notes:
        if note.queue_id:
            log.info(note.text, queue_id=req.queue_id)
        else:
            log.warning(note.text)
    return sender, sent, content, size


def _envelope(sender: str, rcpts: list[Rcpt], quote: bool) -> tuple[str, list[Rcpt]]:
    """The addresses as MAIL FROM and RCPT TO write them: a local part that
    is no dot-atom quoted (smtp_quote_rfc821_envelope = yes, Postfix's
    quote_821_local), or every quote taken away (no: seen live, Postfix
    3.7 then sends ``MAIL FROM:<john doe@example.com>``). The queue may
    hold either form (smtpd keeps the client's quotes, sendmail the bare
    words), so each is first brought to the unquoted one."""
    def form(address: str) -> str:
        bare = unquote_822_local(address)
        return quote_822_local(bare) if quote else bare
    return form(sender), [r if form(r.address) == r.address
                          else dataclasses.replace(r, address=form(r.address)) for r in rcpts]


def _rcpt(r: DeliverRecipient) -> Rcpt:
    orcpt = r.orcpt.partition(";")[2] if ";" in r.orcpt else r.orcpt
    return Rcpt(r.address, notify=tuple(r.notify) or None, orcpt=orcpt or None)


class SmtpAgent:
    """Delivers requests; one per process, shared by every qmgr connection."""

    def __init__(self, settings: SmtpSettings, resolver: Resolver,
                 load_content: Callable[[str], Awaitable[bytes]],
                 cache: ConnectionCache | None = None, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.resolver = resolver
        self.load_content = load_content
        self.cache = cache if cache is not None else ConnectionCache(settings.cache_time_limit)
        self.rng = rng or random.Random()
        # $smtp_tcp_port (Postfix: "smtp", the services entry) or $lmtp_tcp_port.
        self.port = settings.default_port or (LMTP_PORT if settings.lmtp else SMTP_PORT)

    async def deliver(self, req: DeliverRequest) -> DeliveryStatus:
        watch = Stopwatch.start(req)
        done, dead = await self._deliver(req, watch)
        best_mx = self.settings.best_mx
        if best_mx is not None and best_mx.applies(req, (r for r, _ in done.values())):
            # We are the best MX host: the transport delivers and logs (smtp_connect.c).
            status = await best_mx.hand_over(req)
            if status is not None:
                return status
            done = {r.index: (deferred(r, "4.3.0", "mail transport unavailable"), 0)
                    for r in req.recipients}
        ordered = []
        status_filter = self.settings.status_filter
        for rcpt in req.recipients:
            result, conn_use = done[rcpt.index]
            if status_filter is not None:
                # Once per recipient, on its final result (Postfix: when
                # no other server is left to try).
                result = status_filter(result)
            log_status(req, rcpt, result, watch, conn_use=conn_use)
            ordered.append(result)
        return DeliveryStatus(req.queue_id, tuple(ordered), dead_destination=dead)

    async def _deliver(self, req: DeliverRequest, watch: Stopwatch
                       ) -> tuple[dict[int, tuple[RecipientResult, int]], bool]:
        """Every recipient's result (with the conn_use of its session), and whether
        the destination as a whole failed (no server could be reached)."""
        done: dict[int, tuple[RecipientResult, int]] = {}

        def finish(rcpts: Iterable[DeliverRecipient], dsn: str, reason: str, **kw: str) -> None:
            for r in rcpts:
                done[r.index] = (failed(r, dsn, reason, **kw), 0)

        try:
            hop, key = _destination(req.transport, req.nexthop, self.port, self.settings.lmtp)
        except BadNextHop as e:
            finish(req.recipients, "4.3.5", f"mail transport unavailable: {e}")
            return done, True
        try:
            content = await self.load_content(req.queue_id)
        except Exception as e:       # the entry is gone or unreadable: qmgr decides
            finish(req.recipients, "4.3.0", f"error reading message: {e}")
            return done, False

        pending = list(req.recipients)
        session = await self.cache.take(key)
        route: _Route | None = None
        targets: list[Target] | None = None
        tried: set[Target] = set()
        budget = _Budget(self.settings.mx_session_limit)
        answered = False
        while pending:
            if session is None:
                if route is None:
                    try:
                        route = await self._route(hop)
                    except _NoRoute as e:
                        if answered:
                            break      # a server's own answer beats a DNS failure
                        status = self._left_over(req, e.status, e.fallback)
                        finish(pending, status, e.reason)
                        return done, not status.startswith("5")
                    targets = route.targets
                session, error, last = await self._open(
                    [t for t in targets if t not in tried], budget, tried, req.nexthop,
                    req.sender, req)
                if session is None:
                    if answered or error is None or last is None:
                        break          # recipients kept for a next server keep its answer
                    if route.failed is not None and error.dsn.startswith("4"):
                        # Kept for the next hop, which could not be found.
                        status = self._left_over(req, route.failed.status, route.fallback)
                        finish(pending, status, route.failed.reason, relay="none")
                        return done, not status.startswith("5")
                    # relay=none unless a server answered (a refused greeting).
                    extra = {} if error.remote is None else dict(
                        remote_mta=error.remote[0], diagnostic=f"smtp; {error.remote[1]}")
                    finish(pending, error.dsn, error.text,
                           relay=last.relay if error.connected else "none", **extra)
                    return done, not answered and error.suspends
            if watch.setup_done is None:
                watch.connected()
            try:
                outcome = await self._transact(session, req, pending, content)
            except StaleSession:
                # A cached session the server had given up (closed, reset,
                # RSET refused): nothing of the message is there. Postfix
                # drops it quietly and connects anew; so does this.
                trio_close(session.stream)
                session = None
                watch.restart_setup()
                continue
            except BaseException:
                # Cancelled (the daemon is stopping) or a bug: the server
                # must not keep a half transaction open on our account.
                trio_close(session.stream)
                raise
            answered = True
            tried.add(session.target)          # a cached session's host counts as tried
            # Postfix smtp_trouble.c: a soft failure before the message was
            # sent leaves the recipient for the next MX host, unless this
            # server was the last one to try.
            more = targets is None or any(t not in tried for t in targets)
            retry: list[DeliverRecipient] = []
            for rcpt, (result, again) in zip(pending, outcome):
                done[rcpt.index] = (result, session.uses)     # stands if no server is left
                if again and more and budget.left:
                    retry.append(rcpt)
            # Sender-dependent logins must not carry another sender's mail.
            sasl = self.settings.sasl
            if sasl is not None and sasl.sender_dependent or not self._keep(session, hop) \
                    or not self.cache.put(key, session, session.started
                                          + self.settings.reuse_time_limit):
                await session.close()
            session = None
            pending = retry
        return done, False

    def _left_over(self, req: DeliverRequest, status: str, fallback: bool) -> str:
        """The status of recipients no server of the destination took,
        after Postfix smtp_connect.c: a hard one (not 4.x.x) that a
        fallback relay or the relayhost left is a configuration problem,
        deferred as 4.3.5 with its text, and warned about once per request;
        LMTP has neither. (A loop with best_mx_transport is deliver()'s.)"""
        s = self.settings
        if status.startswith("4") or s.lmtp:
            return status
        if fallback:
            log.warning("smtp_fallback_relay configuration problem")
            return "4.3.5"
        # strcmp(sites->argv[0], var_relayhost): the first destination of
        # the next hop is the whole of $relayhost.
        sites = split_list(req.nexthop)
        if s.relayhost and sites and sites[0] == s.relayhost:
            log.warning("relayhost configuration problem")
            return "4.3.5"
        return status

    def _keep(self, session: SmtpSession, hop: NextHop) -> bool:
        """Whether a session that is still good goes back to the cache."""
        s = self.settings
        if not s.cache_on_demand and not (
                s.cache_destinations is not None
                and s.cache_destinations.match(hop.socket_path or hop.host)):
            return False
        if session.tls is not None and not s.tls_connection_reuse:
            # Postfix caches a TLS session only through tlsproxy(8), with
            # smtp_tls_connection_reuse (seen live: with it off, three
            # messages to one TLS server took three sessions).
            return False
        # Used N+1 times: the limit counts reuses. (The age limit,
        # smtp_connection_reuse_time_limit, is the cache's: ConnectionCache.put.)
        return not (s.reuse_count_limit > 0 and session.uses > s.reuse_count_limit)

    # -- where to connect --------------------------------------------------------

    async def targets(self, hop: NextHop) -> list[Target]:
        """The addresses to try for hop, best first, then those of the
        fallback relays; RouteError when there are none."""
        return (await self._route(hop)).targets

    async def _route(self, hop: NextHop) -> _Route:
        """targets(), and how the last next hop failed; _NoRoute when there
        are no addresses."""
        if hop.socket_path:
            path = hop.socket_path
            if not path.startswith("/"):
                path = f"{self.settings.socket_dir.rstrip('/')}/{path}"
            return _Route([Target(self.settings.myhostname, hop.socket_path, 0, path=path)])
        fallback = self.settings.fallback_relay
        failed: RouteError | None = None
        try:
            found, i_am_mx = await self._hop_targets(hop)
        except _SelfMx as e:
            raise _NoRoute(e.status, e.reason) from None
        except RouteError as e:
            # Postfix: "relay hosts for SMTP destinations that can't be found".
            if not fallback:
                raise _NoRoute(e.status, e.reason) from None
            found, i_am_mx, failed = [], False, e
        if not fallback or i_am_mx:
            # To prevent loops, never for a destination we are an MX host of.
            return _Route(found)
        extra, failed = await self._fallback_targets()
        found += [t for t in extra if t not in found]
        if not found:
            assert failed is not None
            raise _NoRoute(failed.status, failed.reason, fallback=True)
        return _Route(found, failed, fallback=True)

    def _trace(self, target: Target, nexthop: str) -> Trace | None:
        """debug_peer_list: the chat logger when the next hop (as qmgr gave it,
        by name) or this server (name, address) is listed (Postfix smtp.c
        checks request->nexthop with address "noaddr", smtp_session.c the
        server)."""
        peers = self.settings.debug_peers
        if peers is None:
            return None
        if not (peers.match(nexthop, None)
                or peers.match(target.host, target.address)):
            return None
        relay = target.relay
        return peers.chat(lambda: relay)

    def _pix(self, target: Target, req: DeliverRequest | None) -> PixWorkarounds:
        """The PIX workarounds a server gets if its greeting looks like a PIX's."""
        s = self.settings
        words = s.pix_words
        if s.pix_maps and not target.path:
            found = first_lookup(s.pix_maps, [target.address])
            if found is not None:
                words = tuple(w.lower() for w in split_list(found))
        age = time.time() - req.arrival_time if req is not None else 0.0
        if age < s.pix_threshold:
            words = tuple(w for w in words if w != "delay_dotcrlf")
        return PixWorkarounds(tuple(w for w in PIX_WORKAROUNDS if w in words), s.pix_delay,
                              req.queue_id if req is not None else "")

    def _discard(self, target: Target) -> tuple[str, ...]:
        """The EHLO keywords to ignore from this server."""
        s = self.settings
        if s.discard_maps and not target.path:
            found = first_lookup(s.discard_maps, [target.address])
            if found is not None:
                return tuple(split_list(found))
        return s.discard_ehlo

    async def _fallback_targets(self) -> tuple[list[Target], RouteError | None]:
        """The addresses of the smtp_fallback_relay next hops, in order (none
        best), and the lookup failure of the last one tried (None when it
        has addresses). One that loops back here ends the list, as Postfix
        tries no next hop after a loop."""
        out: list[Target] = []
        failed: RouteError | None = None
        for relay in self.settings.fallback_relay:
            try:
                found, _ = await self._hop_targets(parse_nexthop(relay, self.port))
            except BadNextHop:
                continue
            except _SelfMx as e:
                return out, e
            except RouteError as e:
                failed = e
                continue
            failed = None
            out += [dataclasses.replace(t, best=False) for t in found]
        return out, failed

    async def _hop_targets(self, hop: NextHop) -> tuple[list[Target], bool]:
        """The addresses of one next hop, and whether we are one of its MX hosts."""
        best: int | None = None
        if hop.mx_lookup and self.settings.mx_lookups:
            try:
                answers = await self.resolver.mx(hop.host)
            except DnsError as e:
                if not self.settings.ignore_mx_lookup_error:
                    raise RouteError(_dns_status(e, "4.4.3", "5.1.2"), e.reason) from None
                # smtp_addr.c: the failed MX lookup is forgotten and the
                # destination's own addresses tried, as for the implicit MX.
                answers = []
            hosts = mx_hosts(hop.host, answers,
                             self.rng if self.settings.randomize_addresses else None)
            if answers:
                best = hosts[0].preference
        else:
            hosts = (MxHost(0, hop.host),)
        found: list[tuple[int, str, str]] = []
        error: DnsError | None = None
        for h in hosts:
            try:
                if self.settings.cname_overrides:
                    # smtp_cname_overrides_servername: the server is named
                    # after the end of its CNAME chain (logs, TLS names,
                    # SASL lookups), Postfix's SMTP_HNAME() rname.
                    name, addrs = await self.resolver.named_addresses(h.host)
                else:
                    name, addrs = h.host, await self.resolver.addresses(h.host)
                found += [(h.preference, name, a) for a in addrs]
            except DnsError as e:
                error = e if error is None or e.temporary else error
        if not found:
            status = "4.4.3" if error is not None and error.temporary else "5.4.4"
            if best is not None:
                # MX hosts, none with an address (Postfix smtp_domain_addr()).
                log.warning(f"no MX host for {hop.host} has a valid address record")
                if self.settings.defer_no_mx_address:
                    status = "4" + status[1:]      # the same text, deferred
            if error is not None:
                raise RouteError(_dns_status(error, status, status), error.reason)
            raise RouteError(status, f"Host or domain name not found. Name service error for "
                             f"name={hosts[0].host} type=A: Host found but no data record "
                             f"of requested type")
        # A [bracketed] destination is tried even on an address of ours (a
        # content filter's re-injection port, a relayhost on another port),
        # as Postfix 3.7 does; a server there that answers EHLO with our
        # own name is still a loop (_check_loop).
        try:
            kept = drop_self(hop.host, found, self.settings.own, port=hop.port,
                             best_preference=best) if hop.mx_lookup else tuple(
                MxAddress(p, h, a) for p, h, a in found)
        except RouteError as e:
            raise _SelfMx(e.status, e.reason) from None
        i_am_mx = len(kept) < len(found)
        limit = self.settings.mx_address_limit
        if limit > 0 and self.settings.balance_protocols:
            kept = balance_inet_protocols(kept, limit)
        kept = kept[:limit] if limit > 0 else kept
        return [Target(a.host, a.address, hop.port, best=a.preference == kept[0].preference)
                for a in kept], i_am_mx

    async def _open(self, targets: list[Target], budget: _Budget, tried: set[Target],
                    nexthop: str, sender: str = "", req: DeliverRequest | None = None
                    ) -> tuple[SmtpSession | None, SessionError | None, Target | None]:
        """The first target that gives a session, within the session budget;
        every target tried goes into ``tried``."""
        s = self.settings
        error: SessionError | None = None
        last: Target | None = None
        policy = s.tls
        try:
            if s.tls_for is not None:
                policy = s.tls_for(nexthop)
            if policy.problem:
                log.warning(policy.problem)
                raise SessionError("4.7.5", "client TLS configuration problem")
        except SessionError as e:
            # An unusable smtp_tls_policy_maps entry or TLS setting: nothing
            # is tried. Postfix warns for each address it skips.
            for target in targets:
                log.warning(f"TLS policy lookup for {nexthop}/{target.host}: {e.text}")
            return None, e, targets[0] if targets else None
        sasl = s.sasl.request(sender, nexthop) if s.sasl is not None else None
        for target in targets:
            if not budget.left:
                break
            last = target
            tried.add(target)
            tls = policy
            if target.path and tls.level == "may":
                log.warning("smtp_connect_local: opportunistic TLS encryption is not "
                            "appropriate for unix-domain destinations.")
                tls = TlsPolicy()
            for attempt in (1, 2):
                try:
                    session = await connect(target, s.timeouts, helo_name=s.helo_name, tls=tls,
                                            body_line_limit=s.body_line_limit,
                                            myhostname="" if s.lmtp else s.myhostname,
                                            nexthop=nexthop, bind=s.bind, lmtp=s.lmtp,
                                            sasl=sasl, discard=self._discard(target),
                                            send_ehlo=s.send_ehlo,
                                            always_ehlo=s.always_send_ehlo,
                                            skip_quit=s.skip_quit_response,
                                            skip_5xx_greeting=s.skip_5xx_greeting,
                                            reply_filter=s.reply_filter.lookup
                                            if s.reply_filter is not None else None,
                                            per_request_deadline=s.per_request_deadline,
                                            min_data_rate=s.min_data_rate,
                                            block_early_reply=s.block_early_reply,
                                            pix=self._pix(target, req),
                                            trace=self._trace(target, nexthop))
                    budget.spend()
                    return session, None, target
                except SessionError as e:
                    error = e
                    if e.tls_failed and tls.level == "may" and attempt == 1:
                        # Opportunistic TLS: a failed handshake is not worth
                        # losing the mail over; try once more in plaintext.
                        log.info(f"{e.text}; trying plaintext")
                        tls = TlsPolicy()
                        continue
                    break
            assert error is not None
            if error.final:
                break
            if error.connected:
                budget.spend()
            # Postfix logs a failed TCP connection on its own line ("the
            # reason already includes the IP address and TCP port"), a
            # UNIX-domain one only in the status lines. A server that
            # answered and failed the session (a refused greeting, a failed
            # SASL login) gets a line only when another server is tried
            # after it (smtp_trouble.c, SMTP_MISC_FLAG_FINAL_SERVER); at
            # the last one the status lines say it.
            final_server = target is targets[-1] or not budget.left
            if not target.path and not (error.connected and final_server):
                log.info(error.text)
            if error.connected and not s.skip_5xx_greeting and error.dsn.startswith("5"):
                break
        return None, error, last

    # -- the message -----------------------------------------------------------------

    async def _transact(self, session: SmtpSession, req: DeliverRequest,
                        rcpts: list[DeliverRecipient], content: bytes
                        ) -> list[tuple[RecipientResult, bool]]:
        """One message to rcpts: each result, and whether another server may try it."""
        target = session.target
        params = dict(body_type=req.body_type or None, smtputf8=req.smtputf8,
                      ret=req.ret or None, envid=req.envid or None)
        if req.probe:
            # Address verification: RCPT TO, then RSET; or (target data)
            # DATA, then hang up at the 354.
            params["rcpt_only"] = True
            params["data_only"] = self.settings.verify_target == "data"
        if self.settings.send_xforward:
            params["xforward"] = XforwardAttributes(
                req.client_name, req.client_addr, req.client_port,
                _smtpd_protocol(req.client_protocol),
                req.client_helo, req.log_ident,
                "LOCAL" if req.rewrite_context == "local" else "REMOTE")
        sender, sent = req.sender, [_rcpt(r) for r in rcpts]
        if self.settings.output is not None:
            try:
                # Postfix decides whether SMTPUTF8 is needed on the queued
                # addresses, not the rewritten ones (seen live: a generic map
                # to ASCII still bounced 5.6.7 at a server without SMTPUTF8).
                params["utf8_addresses"] = not all(
                    a.isascii() for a in (req.sender, *(r.address for r in rcpts)))
                sender, sent, content, params["size"] = _rewrite(
                    self.settings.output, req, rcpts, content)
            except OutputError as e:
                log.warning(str(e))
                return [(deferred(r, "4.3.0", "unknown mail transport error"), False)
                        for r in rcpts]
        sender, sent = _envelope(sender, sent, self.settings.quote_envelope)
        try:
            result = await session.send_mail(sender, sent, content, **params)
            statuses = dict(enumerate(result.recipients))
            error = None
            for response, command in result.xforward_refused:
                # Postfix warns and delivers all the same (smtp_proto.c).
                log.warning(said_text(target.relay, response, command))
        except LocalProtocolError as e:
            # Something in the request cannot be said in SMTP (a control
            # character in an address, say): nothing was sent; keep the mail.
            session.broken = True
            return [(deferred(r, "4.3.0", f"mail delivery failed: {e}"), False) for r in rcpts]
        except StaleSession:
            raise                  # the caller sends the message over a fresh connection
        except SessionError as e:
            statuses = {}
            for st in e.settled:
                for i, r in enumerate(sent):
                    if r.address == st.address and i not in statuses:
                        statuses[i] = st
                        break
            error = e
        out = []
        for i, rcpt in enumerate(rcpts):
            st = statuses.get(i)
            if st is None:
                assert error is not None
                # The content may have reached the server: no other server
                # gets it now, the next attempt decides (never zero times).
                again = not any(w in error.text for w in ("end of data", "message body"))
                out.append((deferred(rcpt, error.dsn, error.text, relay=target.relay,
                                     remote_mta=target.host), again))
            else:
                again = st.status == "deferred" and st.in_reply_to in (MAIL_FROM, RCPT_TO, DATA)
                out.append((self._verdict(rcpt, st, target, session.cc.capabilities.dsn),
                            again))
        return out

    @staticmethod
    def _verdict(rcpt: DeliverRecipient, st: RecipientStatus, target: Target,
                 dsn_server: bool = False) -> RecipientResult:
        """dsn_server: the server announced DSN, so it reports a success
        the sender asked for, not this client (Postfix smtp_rcpt_done()
        drops NOTIFY=SUCCESS then)."""
        text = st.text(target.peer)
        diagnostic = f"smtp; {st.response.text}" if st.response is not None else ""
        remote = target.host if st.response is not None else ""
        if st.status == "sent":
            return sent(rcpt, text, dsn=st.dsn, relay=target.relay, remote_mta=remote,
                        diagnostic=diagnostic, success_passed=dsn_server)
        return failed(rcpt, st.dsn, text, relay=target.relay, remote_mta=remote,
                      diagnostic=diagnostic)

