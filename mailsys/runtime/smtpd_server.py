"""smtpd_server - what one smtpd process builds once and all its sessions share.

SYNOPSIS
    server = SmtpdServer.from_config(cfg, service="smtp")     # skeleton post_init
    settings = server.settings(name, addr)                      # per session (AUTH may change)
    await server.aclose()

DESCRIPTION
    Postfix's smtpd reads its parameters and compiles its restriction lists
    once per process (smtpd.c pre_jail_init / post_jail_init). So does this:
    the protocol Settings derived from main.cf and the service's -o
    overrides, the compiled Restrictions, the anvil limits with the clients
    exempt from them (smtpd_client_event_limit_exceptions), the clients
    that may send XCLIENT and XFORWARD, the SASL users
    file, the TLS server context, a DNS resolver, the anvil client and the
    pool of kept-open channels to cleanup. The TLS context and the DNS
    resolver exist only when the configuration asks for them (a TLS level
    or wrapper mode; a restriction that looks names up), and only then
    does the process load pyOpenSSL or dnspython: each costs several MB
    of memory in every smtpd process.

    TLS: STARTTLS is offered at smtpd_tls_security_level may or encrypt
    (or what the obsolete smtpd_use_tls and smtpd_enforce_tls say when it is
    empty: mailsys.config.tls_level).
    When no certificate is configured, or it cannot be loaded, the process
    logs a warning; with "may" STARTTLS is then not offered, with
    "encrypt" it is (mail still needs it) and answers "454 4.7.0 TLS not
    available due to local problem", as Postfix does.

    local_header_rewrite_clients keeps Postfix's default,
    permit_inet_interfaces: a client connecting from one of this host's own
    listening addresses (inet_interfaces, proxy_interfaces; loopback for
    "all" and "loopback-only") submits local mail, and cleanup adds missing
    From:/Date:/Message-ID: headers for it.

    Queue space: as Postfix's smtpd_check_size, MAIL is refused with "452
    4.3.1 Insufficient system storage" while the queue file system is short
    of room (queue_space_short); cleanup refuses at commit time too. Not
    with a before-queue filter (smtpd_proxy_filter), whose mail is not
    queued here, unless smtpd_proxy_options has speed_adjust (the message
    is spooled here first), as in Postfix.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import structlog

from mailsys.config.tables import open_table
from mailsys.config.tls_level import server_level
from mailsys.config.values import split_list
from mailsys.delivery.pipe_attr import unescape
from mailsys.errors import ConfigError
from mailsys.ipc import names
from mailsys.ipc.proto.cleanup import PROTOCOL as CLEANUP_PROTOCOL
from mailsys.policy.anvil import ClientLimits
from mailsys.policy.netmatch import ClientMatcher, parse_address
from mailsys.policy.postscreen_smtp import CommandList
from mailsys.policy.restrictions import Restrictions
from mailsys.qmgr.settings import routing_settings
from mailsys.routing import Route, RoutingSettings, first_lookup, resolve
from mailsys.runtime import ipc_io
from mailsys.runtime.anvil_client import AnvilClient
from mailsys.runtime.byte_budget import ByteBudget
from mailsys.runtime.dovecot_auth import DovecotSasl
from mailsys.runtime.milter import MilterSettings
from mailsys.runtime.peer_debug import DebugPeers
from mailsys.runtime.policy_client import PolicyClients
from mailsys.runtime.sasl_filter import MechanismFilter
from mailsys.runtime.verify_client import VerifyClient
from mailsys.runtime.smtpd_dns import HostLookups, SmtpdDns
from mailsys.runtime.smtpd_proxy import ProxyFilter
from mailsys.runtime.tls_context import server_tls_context
from mailsys.sasl import SERVER_TYPES
from mailsys.sasl.server import SaslServer
from mailsys.smtp import Reply, Settings, replies
from mailsys.smtp.ehlo_mask import discard_names, discard_text

log = structlog.get_logger()

# Channels to cleanup one process keeps open. A channel carries one request
# at a time, so this bounds how many of this process's messages can share
# one group commit; sessions beyond it wait for a free channel and then for
# a later commit. Two smtpd processes (200 sessions at the skeleton's 100
# clients each) stay within the 100 clients of one cleanup process, whose
# commits would otherwise split between two processes.
CLEANUP_CHANNELS = 48
# The large content (over smtpd_session.SPOOL_WAITING) this process hands
# to cleanup at once, in bytes (mailsys.runtime.byte_budget): each is a
# copy here while it goes and in cleanup until committed. Six messages of
# the default message_size_limit; small ones never wait for it, and what
# waits stays in its spool file meanwhile.
CONTENT_IN_FLIGHT = 64 << 20

# Restriction names that make evaluate_rcpt ask DNS; without any of them the
# dry run that collects names to resolve is skipped on every RCPT.
_DNS_RESTRICTIONS = ("reject_unknown_sender_domain", "reject_unknown_recipient_domain",
                     "reject_rbl_client", "reject_rhsbl_",
                     "permit_dnswl_client", "permit_rhswl_client")
_LISTS = ("smtpd_client_restrictions", "smtpd_helo_restrictions", "smtpd_sender_restrictions",
          "smtpd_relay_restrictions", "smtpd_recipient_restrictions")

# Postfix's EHLO keywords (mailsys.smtp.ehlo_mask), each with the Settings
# field that stops advertising it. XCLIENT and
# XFORWARD are named in the line but stay advertised to the clients allowed
# to use them.
_EHLO_KEYWORDS = {"8bitmime": "eightbitmime", "auth": "auth_mechanisms", "etrn": "etrn_keyword",
                  "pipelining": "pipelining", "size": "size", "verp": "verp_keyword",
                  "vrfy": "vrfy_keyword",
                  "xclient": None, "xforward": None, "starttls": "starttls",
                  "enhancedstatuscodes": "enhancedstatuscodes", "dsn": "dsn",
                  "smtputf8": "smtputf8", "chunking": "chunking"}


def discarded(settings: Settings, words: Iterable[str]) -> tuple[Settings, str]:
    """settings without the EHLO keywords words names (smtpd_discard_ehlo_keywords
    or a smtpd_discard_ehlo_keyword_address_maps result), and the text of
    Postfix's "discarding EHLO keywords: ..." line ("" with silent-discard)."""
    words = list(words)
    off = {_EHLO_KEYWORDS[k]: () if k == "auth" else False
           for k in discard_names(words) if _EHLO_KEYWORDS[k]}
    if off:
        settings = dataclasses.replace(settings, **off)
    return settings, discard_text(words)


def param(cfg: Any, name: str, default: Any) -> Any:
    """cfg[name], or default for a parameter the table does not declare."""
    try:
        return cfg[name]
    except (KeyError, AttributeError):
        return default


@dataclass(slots=True)
class SmtpdServer:
    cfg: Any
    service: str
    base_settings: Settings
    restrictions: Restrictions
    limits: ClientLimits
    limit_exceptions: ClientMatcher
    bare_newline_exclusions: ClientMatcher
    # smtpd_discard_ehlo_keywords: base_settings without them, and the line
    # logged at each EHLO; full_settings before them, for a client that
    # smtpd_discard_ehlo_keyword_address_maps gives keywords of its own.
    full_settings: Settings
    discard_line: str
    discard_maps: tuple[Any, ...]
    # smtpd_sasl_exceptions_networks: clients AUTH is not advertised to.
    sasl_exceptions: ClientMatcher | None
    # smtpd_authorized_verp_clients: the clients that may use XVERP; it is
    # offered to them unless smtpd_discard_ehlo_keywords names it (a
    # discard map's entry decides for the clients it names).
    verp_clients: ClientMatcher | None
    # smtpd_authorized_xclient_hosts / _xforward_hosts; None when empty
    # (the default), so that a session asks nothing.
    xclient_hosts: ClientMatcher | None
    xforward_hosts: ClientMatcher | None
    # debug_peer_list: the clients whose chat is logged; None (the default,
    # an empty list) costs a session nothing.
    debug_peers: DebugPeers | None
    anvil: AnvilClient
    cleanup: ipc_io.ChannelPool
    content_budget: ByteBudget           # large content in flight to cleanup
    policy: PolicyClients                # check_policy_service
    verify: VerifyClient                 # reject_unverified_recipient, _sender
    content_filter: str                  # transport:destination for each message, or ""
    # smtpd_proxy_filter: the before-queue filter that takes each message
    # instead of cleanup; None (the default) costs a session nothing.
    proxy: ProxyFilter | None
    reject_footer: str                   # smtpd_reject_footer, as written ("" = none)
    reject_footer_maps: tuple[Any, ...]  # smtpd_reject_footer_maps: reply text -> footer
    expansion_filter: frozenset[str]     # smtpd_expansion_filter, unescaped
    upstream_proxy: str                  # smtpd_upstream_proxy_protocol: "" or "haproxy"
    upstream_proxy_timeout: float
    receive_override_options: tuple[str, ...]   # passed to cleanup with each message
    dns: SmtpdDns | None                 # None unless needs_dns: no dnspython loaded
    host_lookups: HostLookups            # permit_mx_backup's; dnspython loaded on first use
    sasl: SaslServer | DovecotSasl | None
    sasl_filter: MechanismFilter         # smtpd_sasl_mechanism_filter
    tls_context: Any                     # an OpenSSL.SSL.Context, or None
    own_addresses: frozenset
    needs_dns: bool
    greeting: Reply                     # 220 $smtpd_banner
    timeout_reply: Reply                # 421 4.4.2 $myhostname Error: timeout exceeded
    timeout: float
    delay_open: bool                     # smtpd_delay_open_until_valid_rcpt
    per_request_deadline: bool           # smtpd_per_request_deadline
    min_data_rate: int                   # smtpd_min_data_rate
    starttls_timeout: float
    error_sleep: float
    peername_lookup: bool
    wrappermode: bool
    tls_loglevel: int
    tls_received_header: bool
    port_logging: bool
    require_client_cert: bool
    queue_dir: Any                      # Path
    queue_minfree: int
    # (base_settings, its variant for bare-newline exclusions): built once,
    # not for every session of a client in $mynetworks.
    _bare_newline_excused: tuple[Settings, Settings] | None = None
    # Whether a client that talks before the greeting is noted (smtpd.c):
    # not for the connections postscreen passes (master.cf type "pass"),
    # whose client may have talked to postscreen already.
    pregreet_check: bool = True
    # smtpd_milters; None when there are none (or receive_override_options
    # has no_milters), so that a session without milters pays nothing.
    milters: MilterSettings | None = None
    # smtpd_milter_maps (Postfix 3.2): per client address, over smtpd_milters.
    milter_maps: tuple[Any, ...] = ()
    _milters_by_result: dict[str, MilterSettings | None] = dataclasses.field(default_factory=dict)
    # The resolver's settings for the milters' {mail_host}, {rcpt_mailer}, ...;
    # built the first time a milter asks for one.
    _routing: RoutingSettings | None = None

    @classmethod
    def from_config(cls, cfg: Any, service: str) -> "SmtpdServer":
        queue_dir = cfg.path("queue_directory")
        level = server_level(cfg)
        wrapper = bool(cfg.smtpd_tls_wrappermode)
        tls_context = server_tls_context(cfg) if level in ("may", "encrypt") or wrapper else None
        sasl = _sasl_server(cfg) if cfg.smtpd_sasl_auth_enable else None
        sasl_filter = MechanismFilter.from_config(cfg, "smtpd_sasl_mechanism_filter")
        forbid = str(cfg.smtpd_forbid_bare_newline).lower()
        settings = Settings(
            hostname=cfg.myhostname,
            message_size_limit=cfg.message_size_limit,
            line_length_limit=max(64, cfg.line_length_limit),
            sasl_response_limit=int(param(cfg, "smtpd_sasl_response_limit", 12288)),
            recipient_limit=cfg.smtpd_recipient_limit,
            recipient_overshoot_limit=cfg.smtpd_recipient_overshoot_limit,
            policy_first=frozenset(
                name for name, on in (("rcpt", cfg.smtpd_client_recipient_rate_limit > 0),
                                      ("etrn", bool(cfg.smtpd_milters
                                                    or param(cfg, "smtpd_milter_maps", ()))))
                if on),
            hard_error_limit=cfg.smtpd_hard_error_limit,
            soft_error_limit=cfg.smtpd_soft_error_limit,
            junk_command_limit=cfg.smtpd_junk_command_limit,
            helo_required=cfg.smtpd_helo_required,
            forbid_bare_newline={"yes": "normalize", "normalize": "normalize",
                                 "reject": "reject"}.get(forbid, "no"),
            bare_newline_reject_code=cfg.smtpd_forbid_bare_newline_reject_code,
            forbid_match=CommandList.compile(cfg.smtpd_forbidden_commands,
                                             lambda spec: open_table(spec, cfg)).match,
            noop_commands=tuple(cfg.smtpd_noop_commands),
            command_filter=open_table(cfg.smtpd_command_filter, cfg).lookup
            if cfg.smtpd_command_filter else None,
            vrfy=not cfg.disable_vrfy_command,
            etrn=True,
            starttls=not wrapper and (level == "encrypt" or (level == "may" and tls_context is not None)),
            tls_required=level == "encrypt" and not wrapper,
            auth_mechanisms=tuple(sasl_filter(sasl.mechanisms())) if sasl else (),
            tls_auth_only=cfg.smtpd_tls_auth_only,
            broken_sasl_auth_clients=cfg.broken_sasl_auth_clients,
            smtputf8=cfg.smtputf8_enable,
            strict_smtputf8=cfg.strict_smtputf8,
            strict_rfc821_envelopes=cfg.strict_rfc821_envelopes,
            allow_min_user=cfg.allow_min_user,
            resolve_null_domain=cfg.resolve_null_domain,
            resolve_numeric_domain=cfg.resolve_numeric_domain,
            verp_delimiters=cfg.default_verp_delimiters,
            verp_filter=cfg.verp_delimiter_filter,
        )
        full_settings = settings
        settings, discard_line = discarded(settings, cfg.smtpd_discard_ehlo_keywords)
        restrictions = Restrictions.from_config(cfg, open_table)
        for warning in restrictions.warnings:
            log.warning(warning)
        listed = " ".join(" ".join(param(cfg, p, ())) for p in _LISTS).lower()
        needs_dns = any(name in listed for name in _DNS_RESTRICTIONS)
        return cls(
            cfg=cfg, service=service, base_settings=settings, restrictions=restrictions,
            limits=ClientLimits.from_config(cfg),
            limit_exceptions=ClientMatcher.compile(cfg.smtpd_client_event_limit_exceptions,
                                                   param="smtpd_client_event_limit_exceptions",
                                                   opener=lambda spec: open_table(spec, cfg)),
            bare_newline_exclusions=ClientMatcher.compile(
                cfg.smtpd_forbid_bare_newline_exclusions,
                param="smtpd_forbid_bare_newline_exclusions",
                opener=lambda spec: open_table(spec, cfg)),
            full_settings=full_settings, discard_line=discard_line,
            discard_maps=tuple(open_table(spec, cfg)
                               for spec in cfg.smtpd_discard_ehlo_keyword_address_maps),
            sasl_exceptions=_optional_matcher(cfg, "smtpd_sasl_exceptions_networks"),
            verp_clients=_optional_matcher(cfg, "smtpd_authorized_verp_clients"),
            sasl_filter=sasl_filter,
            xclient_hosts=_optional_matcher(cfg, "smtpd_authorized_xclient_hosts"),
            xforward_hosts=_optional_matcher(cfg, "smtpd_authorized_xforward_hosts"),
            debug_peers=DebugPeers.from_config(cfg),
            anvil=AnvilClient(names.private_path(queue_dir, names.ANVIL)),
            cleanup=ipc_io.ChannelPool(names.private_path(queue_dir, names.CLEANUP),
                                       CLEANUP_PROTOCOL, size=CLEANUP_CHANNELS),
            content_budget=ByteBudget(CONTENT_IN_FLIGHT),
            policy=PolicyClients.from_config(cfg),
            verify=VerifyClient.from_config(cfg),
            content_filter=cfg.content_filter,
            proxy=ProxyFilter.from_config(cfg),
            # Its $names are this session's (client_address, ...), so the
            # text is taken as written and expanded for each reply.
            reject_footer=cfg.raw("smtpd_reject_footer"),
            reject_footer_maps=tuple(open_table(spec, cfg) for spec in cfg.smtpd_reject_footer_maps),
            expansion_filter=frozenset(
                unescape(cfg.raw("smtpd_expansion_filter")).decode("latin-1")),
            upstream_proxy=cfg.smtpd_upstream_proxy_protocol,
            upstream_proxy_timeout=cfg.smtpd_upstream_proxy_timeout,
            receive_override_options=tuple(cfg.receive_override_options),
            dns=SmtpdDns.from_config(cfg) if needs_dns else None,
            host_lookups=HostLookups.from_config(cfg),
            sasl=sasl,
            tls_context=tls_context,
            own_addresses=restrictions.local_addresses,
            needs_dns=needs_dns,
            greeting=replies.greeting(cfg.smtpd_banner),
            timeout_reply=replies.timeout(cfg.myhostname),
            timeout=cfg.smtpd_timeout,
            delay_open=cfg.smtpd_delay_open_until_valid_rcpt,
            per_request_deadline=cfg.smtpd_per_request_deadline,
            min_data_rate=cfg.smtpd_min_data_rate,
            starttls_timeout=cfg.smtpd_starttls_timeout,
            error_sleep=cfg.smtpd_error_sleep_time,
            peername_lookup=cfg.smtpd_peername_lookup,
            wrappermode=wrapper,
            tls_loglevel=cfg.smtpd_tls_loglevel,
            tls_received_header=cfg.smtpd_tls_received_header,
            port_logging=cfg.smtpd_client_port_logging,
            # Postfix: smtpd_tls_req_ccert applies only where TLS is mandatory.
            require_client_cert=bool(cfg.smtpd_tls_req_ccert) and level == "encrypt",
            queue_dir=queue_dir,
            queue_minfree=cfg.queue_minfree,
            milters=_milter_settings(cfg),
            milter_maps=tuple(open_table(spec, cfg) for spec in param(cfg, "smtpd_milter_maps", ())),
        )

    def settings(self, name: str = "unknown", addr: str = "") -> Settings:
        """Settings for a session of client name[addr]: the SASL mechanisms
        follow the users file (CRAM-MD5 only while some user has a CRAM-MD5
        key); a client in smtpd_forbid_bare_newline_exclusions (default
        $mynetworks) keeps the old bare LF behaviour, as in Postfix."""
        s = self.base_settings
        if self.sasl is not None:
            mechs = tuple(self.sasl_filter(self.sasl.mechanisms()))
            tls_mechs = tuple(self.sasl_filter(self.sasl.tls_mechanisms())) \
                if isinstance(self.sasl, DovecotSasl) else None
            if mechs != s.auth_mechanisms or tls_mechs != s.tls_auth_mechanisms:
                s = dataclasses.replace(s, auth_mechanisms=mechs, tls_auth_mechanisms=tls_mechs)
                self.base_settings = s
        if s.forbid_bare_newline != "no" and self.bare_newline_exclusions.match(name, addr):
            excused = self._bare_newline_excused
            if excused is None or excused[0] is not s:
                excused = self._bare_newline_excused = (
                    s, dataclasses.replace(s, forbid_bare_newline="no"))
            s = excused[1]
        # XVERP for smtpd_authorized_verp_clients (offered unless discarded).
        verp = self.verp_clients is not None and self.verp_clients.match(name, addr)
        words = first_lookup(self.discard_maps, [addr]) if self.discard_maps else None
        if words is not None:
            full = dataclasses.replace(self.full_settings, auth_mechanisms=s.auth_mechanisms,
                                       forbid_bare_newline=s.forbid_bare_newline, verp=verp)
            s, _ = discarded(full, split_list(words))
        elif verp:
            s = dataclasses.replace(s, verp=True)
        if self.sasl_exceptions is not None and s.auth_mechanisms \
                and self.sasl_exceptions.match(name, addr):
            s = dataclasses.replace(s, advertise_auth=False)
        return s

    @property
    def sasl_dynamic(self) -> bool:
        """Whether the SASL mechanisms come from an auth server (Dovecot)."""
        return isinstance(self.sasl, DovecotSasl)

    def sasl_stale(self) -> bool:
        """Whether a new session should ask the Dovecot auth server for its
        mechanisms first (none known yet, or it was down a while ago)."""
        return isinstance(self.sasl, DovecotSasl) and self.sasl.stale()

    def ehlo_discard_line(self, addr: str) -> str:
        """The "discarding EHLO keywords: ..." line for an EHLO from addr ("" for none)."""
        if self.discard_maps:
            words = first_lookup(self.discard_maps, [addr])
            if words is not None:
                return discarded(self.full_settings, split_list(words))[1]
        return self.discard_line

    def queue_space_short(self, size: int) -> bool:
        """Whether the queue file system lacks room for a message of size
        bytes (MAIL SIZE=, else 0): Postfix smtpd_check_size refuses MAIL
        when less than queue_minfree is free, when the message would eat
        into queue_minfree, or when it would take half of what is free."""
        try:
            st = os.statvfs(self.queue_dir)
        except OSError:
            return False
        free = st.f_bavail * st.f_frsize
        return self.queue_minfree >= free or size >= free - self.queue_minfree or size >= free // 2

    def exempt(self, name: str, addr: str) -> bool:
        """Whether the client is exempt from the anvil limits."""
        return self.limit_exceptions.match(name, addr)

    def xclient_allowed(self, name: str, addr: str) -> bool:
        """Whether the client may use XCLIENT (smtpd_authorized_xclient_hosts)."""
        return self.xclient_hosts is not None and self.xclient_hosts.match(name, addr)

    def xforward_allowed(self, name: str, addr: str) -> bool:
        """Whether the client may use XFORWARD (smtpd_authorized_xforward_hosts)."""
        return self.xforward_hosts is not None and self.xforward_hosts.match(name, addr)

    def milters_for(self, addr: str) -> MilterSettings | None:
        """The milters for a client: the first smtpd_milter_maps answer for
        its address (DISABLE: none), else smtpd_milters."""
        for table in self.milter_maps:
            found = table.lookup(addr)
            if found is None:
                continue
            found = found.strip()
            if found not in self._milters_by_result:
                self._milters_by_result[found] = None if found.upper() == "DISABLE" or \
                    "no_milters" in self.cfg.receive_override_options else \
                    MilterSettings.from_config(self.cfg, "smtpd_milter_maps",
                                               items=split_list(found))
            return self._milters_by_result[found]
        return self.milters

    def route(self, address: str, sender: str | None = None) -> Route:
        """Where address goes (transport, next hop), as trivial-rewrite
        would tell smtpd; sender for the sender-dependent maps."""
        if self._routing is None:
            self._routing = routing_settings(self.cfg)
        return resolve(address, self._routing, sender)

    def is_local_client(self, addr: str) -> bool:
        ip = parse_address(addr)
        return ip is not None and ip in self.own_addresses

    async def aclose(self) -> None:
        await self.anvil.aclose()
        await self.cleanup.aclose()


def _sasl_server(cfg: Any) -> SaslServer | DovecotSasl:
    """smtpd_sasl_type: "dovecot" relays to Dovecot's auth server; mailsys's
    own users file (smtpd_sasl_users_file) stands where Postfix has Cyrus."""
    kind = str(cfg.smtpd_sasl_type).lower()
    if kind not in SERVER_TYPES:
        raise ConfigError(f"unsupported SASL server implementation: {cfg.smtpd_sasl_type}")
    if kind == "dovecot":
        try:
            return DovecotSasl.from_config(cfg)
        except ValueError as e:
            raise ConfigError(str(e)) from None
    return SaslServer.from_config(cfg)


def _optional_matcher(cfg: Any, name: str) -> ClientMatcher | None:
    items = param(cfg, name, ())
    if not items:
        return None
    # Not in parent_domain_matches_subdomains: "example.com" is that host
    # only, ".example.com" its subdomains.
    return ClientMatcher.compile(items, param=name, opener=lambda spec: open_table(spec, cfg),
                                 parent=False)


def _milter_settings(cfg: Any) -> MilterSettings | None:
    if not cfg.smtpd_milters or "no_milters" in cfg.receive_override_options:
        return None
    return MilterSettings.from_config(cfg, "smtpd_milters")
