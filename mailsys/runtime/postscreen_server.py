"""postscreen_server - what the postscreen process builds once and all its sessions share.

SYNOPSIS
    server = PostscreenServer.from_config(cfg)        # services/postscreen post_init
    server.close()                                    # on_exit

DESCRIPTION
    The parameters of postscreen(8), read once per process (the service's
    master.cf -o overrides included): the compiled postscreen_access_list,
    the DNSBL sites and reply map, the actions and times of each test, the
    temporary allow list (mailsys.runtime.postscreen_cache), the path of the
    pass service clients are handed to ($queue_directory/private/
    $smtpd_service_name), and the counters the connection limits need:

      per_client   connections each client address has open in postscreen
                   (postscreen_client_connection_count_limit);
      screening    clients in the tests, not yet handed over or refused
                   (postscreen_pre_queue_limit);
      handing      hand-offs smtpd has not yet taken
                   (postscreen_post_queue_limit).

    postscreen runs as one process (master.cf maxproc 1, as Postfix
    requires), so these counters are the whole truth.

    The DNS resolver (dnspython on trio, mailsys.runtime.resolver) is made
    only when postscreen_dnsbl_sites names a site.

    Which tests are on (Postfix's rule): pregreet when
    postscreen_greet_banner is not empty, DNSBL when postscreen_dnsbl_sites
    names a site, each deep test by its postscreen_*_enable. The settings
    of postscreen's own SMTP engine (mailsys.policy.postscreen_smtp) are
    made once here too, with the TLS context for STARTTLS in that engine
    when postscreen_tls_security_level is may or encrypt (when it is empty,
    what postscreen_use_tls and postscreen_enforce_tls say, which default
    to smtpd's, as in Postfix: mailsys.config.tls_level) (the context
    smtpd makes from the smtpd_tls_* parameters: Postfix's tlsproxy uses
    those too).

    cache_maintenance() is the process's background task: the cache
    cleanup every postscreen_cache_cleanup_interval (Postfix dict_cache),
    dropping records whose tests all expired more than
    postscreen_cache_retention_time ago.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
import trio

from mailsys.config.tables import open_table
from mailsys.config.values import split_list
from mailsys.config.tls_level import server_level
from mailsys.errors import ConfigError
from mailsys.policy.netmatch import ClientMatcher
from mailsys.policy.postscreen_access import AccessList
from mailsys.policy.postscreen_dnsbl import Site, parse_sites
from mailsys.policy.postscreen_smtp import BARE_NEWLINE, NON_SMTP, PIPELINING, CommandList, \
    EngineSettings
from mailsys.policy.postscreen_tests import DNSBL, PREGREET, retained
from mailsys.runtime.listeners import socket_path
from mailsys.runtime.postscreen_cache import PostscreenCache
from mailsys.runtime.resolver import dns_resolver, parse_nameserver
from mailsys.routing import first_lookup
from mailsys.runtime.tls_context import server_tls_context
from mailsys.smtp.replies import Reply, with_footer

# Seconds a hand-off to smtpd may take before the client is told that all
# server ports are busy (Postfix PSC_SEND_SOCK_CONNECT_TIMEOUT plus its
# notify wait; both are a few seconds).
PASS_TIMEOUT = 10.0

log = structlog.get_logger()


@dataclass(slots=True)
class PostscreenServer:
    cfg: Any
    hostname: str
    greet_banner: str
    smtpd_banner: str
    greet_wait: float
    greet_action: str
    greet_ttl: float
    denylist_action: str
    respectful: bool
    access: AccessList
    sites: tuple[Site, ...]
    dnsbl_threshold: int
    allowlist_threshold: int
    dnsbl_action: str
    dnsbl_timeout: float
    dnsbl_min_ttl: float
    dnsbl_max_ttl: float
    reply_maps: tuple[Any, ...]
    cache: PostscreenCache
    smtpd_path: Path
    connection_limit: int
    pre_queue_limit: int
    post_queue_limit: int
    command_time_limit: float
    command_count_limit: int
    size_limit: int
    nameservers: tuple[tuple[str, int], ...]
    decimals: int                        # delay_logging_resolution_limit, for "after T"
    enabled: frozenset[str]              # the tests that are on
    ttls: dict[str, float]               # test -> how long a pass lasts
    min_ttl: float                       # the shortest of them: an "ignore"d deep test
    engine: EngineSettings
    interfaces: ClientMatcher            # postscreen_allowlist_interfaces
    cleanup_interval: float
    retention: float
    tls_context: Any                     # an OpenSSL.SSL.Context for STARTTLS, or None
    starttls_timeout: float
    upstream_proxy: str                  # postscreen_upstream_proxy_protocol: "" or "haproxy"
    upstream_proxy_timeout: float
    reject_footer: str                   # postscreen_reject_footer, as written ("" = none)
    reject_footer_maps: tuple[Any, ...]  # reply text -> footer
    discard_maps: tuple[Any, ...]        # postscreen_discard_ehlo_keyword_address_maps
    per_client: Counter = field(default_factory=Counter)
    screening: int = 0
    handing: int = 0
    _resolver: Any = None

    @classmethod
    def from_config(cls, cfg: Any) -> "PostscreenServer":
        def opener(spec: str):
            return open_table(spec, cfg)
        mynetworks = ClientMatcher.compile(cfg.mynetworks, opener=opener)
        sites = parse_sites(cfg.postscreen_dnsbl_sites)
        enabled = {name for name, on in (
            (PREGREET, bool(cfg.postscreen_greet_banner)), (DNSBL, bool(sites)),
            (PIPELINING, cfg.postscreen_pipelining_enable),
            (NON_SMTP, cfg.postscreen_non_smtp_command_enable),
            (BARE_NEWLINE, cfg.postscreen_bare_newline_enable)) if on}
        min_dnsbl = cfg.postscreen_dnsbl_min_ttl
        ttls = {PREGREET: cfg.postscreen_greet_ttl, DNSBL: min_dnsbl,
                PIPELINING: cfg.postscreen_pipelining_ttl,
                NON_SMTP: cfg.postscreen_non_smtp_command_ttl,
                BARE_NEWLINE: cfg.postscreen_bare_newline_ttl}
        tls_level = server_level(cfg, "postscreen")
        # Postfix asks tlsproxy, which uses smtpd's certificates; this
        # process does the handshake itself with the same context smtpd makes.
        tls_context = server_tls_context(cfg) if tls_level in ("may", "encrypt") else None
        engine = EngineSettings(
            hostname=cfg.myhostname, banner=cfg.smtpd_banner, size_limit=cfg.message_size_limit,
            actions=((PIPELINING, cfg.postscreen_pipelining_action.lower()),
                     (NON_SMTP, cfg.postscreen_non_smtp_command_action.lower()),
                     (BARE_NEWLINE, cfg.postscreen_bare_newline_action.lower())),
            forbidden=CommandList.compile(cfg.postscreen_forbidden_commands, opener),
            command_filter=(opener(cfg.postscreen_command_filter)
                            if cfg.postscreen_command_filter.strip() else None),
            command_count_limit=cfg.postscreen_command_count_limit,
            line_limit=cfg.line_length_limit, helo_required=cfg.postscreen_helo_required,
            disable_vrfy=cfg.postscreen_disable_vrfy_command,
            ehlo_vrfy=not cfg.disable_vrfy_command,
            discard_ehlo=frozenset(w.upper() for w in cfg.postscreen_discard_ehlo_keywords),
            smtputf8=cfg.smtputf8_enable, soft_bounce=cfg.soft_bounce,
            starttls=tls_context is not None, require_tls=tls_level == "encrypt")
        try:
            servers = tuple(parse_nameserver(s) for s in cfg.dns_nameservers)
        except ValueError as e:
            raise ConfigError(f"dns_nameservers: {e}", param="dns_nameservers") from None
        return cls(
            cfg=cfg,
            hostname=cfg.myhostname,
            greet_banner=cfg.postscreen_greet_banner,
            smtpd_banner=cfg.smtpd_banner,
            greet_wait=cfg.postscreen_greet_wait,
            greet_action=cfg.postscreen_greet_action.lower(),
            greet_ttl=cfg.postscreen_greet_ttl,
            denylist_action=cfg.postscreen_denylist_action.lower(),
            respectful=cfg.respectful_logging,
            access=AccessList.compile(cfg.postscreen_access_list, mynetworks, opener),
            sites=sites,
            dnsbl_threshold=cfg.postscreen_dnsbl_threshold,
            allowlist_threshold=cfg.postscreen_dnsbl_allowlist_threshold,
            dnsbl_action=cfg.postscreen_dnsbl_action.lower(),
            dnsbl_timeout=cfg.postscreen_dnsbl_timeout,
            dnsbl_min_ttl=cfg.postscreen_dnsbl_min_ttl,
            dnsbl_max_ttl=max(cfg.postscreen_dnsbl_min_ttl, cfg.postscreen_dnsbl_max_ttl),
            reply_maps=tuple(opener(spec) for spec in cfg.postscreen_dnsbl_reply_map),
            cache=PostscreenCache.open(cfg.postscreen_cache_map, cfg),
            smtpd_path=socket_path(cfg, cfg.smtpd_service_name, True),
            connection_limit=cfg.postscreen_client_connection_count_limit,
            pre_queue_limit=cfg.postscreen_pre_queue_limit,
            post_queue_limit=cfg.postscreen_post_queue_limit,
            command_time_limit=cfg.postscreen_command_time_limit,
            command_count_limit=cfg.postscreen_command_count_limit,
            size_limit=cfg.message_size_limit,
            nameservers=servers,
            decimals=min(6, max(0, cfg.delay_logging_resolution_limit)),
            enabled=frozenset(enabled),
            ttls=ttls,
            min_ttl=min(ttls.values()),
            engine=engine,
            interfaces=ClientMatcher.compile(cfg.postscreen_allowlist_interfaces,
                                             param="postscreen_allowlist_interfaces",
                                             opener=opener),
            cleanup_interval=cfg.postscreen_cache_cleanup_interval,
            retention=cfg.postscreen_cache_retention_time,
            tls_context=tls_context,
            starttls_timeout=cfg.smtpd_starttls_timeout,
            upstream_proxy=cfg.postscreen_upstream_proxy_protocol,
            upstream_proxy_timeout=cfg.postscreen_upstream_proxy_timeout,
            reject_footer=_raw_footer(cfg),
            reject_footer_maps=tuple(opener(spec) for spec in cfg.postscreen_reject_footer_maps),
            discard_maps=tuple(opener(spec)
                               for spec in cfg.postscreen_discard_ehlo_keyword_address_maps),
        )

    def footer_for(self, reply: Reply, addr: str, port: int) -> Reply:
        """reply with postscreen_reject_footer (postscreen_reject_footer_maps,
        by the complete reply, first) after it when it is a 4xx or 5xx one.
        Its $names are those Postfix's postscreen knows: client_address,
        client_port, server_name; any other is empty, with Postfix's
        warning (seen live: main.cf parameters are not among them)."""
        footer = self.reject_footer
        if self.reject_footer_maps:
            key = " ".join([str(reply.code), *([reply.enhanced] if reply.enhanced else []),
                            reply.lines[0]])
            footer = first_lookup(self.reject_footer_maps, [key]) or footer
        if not footer or reply.code < 400:
            return reply
        values = {"client_address": addr, "client_port": str(port), "server_name": self.hostname}

        def lookup(name: str) -> str | None:
            if name not in values:
                log.warning(f'unknown macro name "{name}" in expansion request')
            return values.get(name)
        return with_footer(reply, footer, lookup)

    def discarded_keywords(self, addr: str) -> tuple[str, ...] | None:
        """The EHLO keywords postscreen_discard_ehlo_keyword_address_maps
        gives addr (words as written, silent-discard included), None when it
        has no entry (postscreen_discard_ehlo_keywords then)."""
        if not self.discard_maps:
            return None
        words = first_lookup(self.discard_maps, [addr])
        return None if words is None else split_list(words)

    def resolver(self):
        """dnspython's resolver for the DNSBL lookups, made on first use."""
        if self._resolver is None:
            self._resolver = dns_resolver(self.nameservers, self.dnsbl_timeout)
        return self._resolver

    def reply_name(self, domain: str) -> str:
        """The DNSBL name shown to a client: postscreen_dnsbl_reply_map's, else the domain."""
        for table in self.reply_maps:
            found = table.lookup(domain)
            if found is not None:
                return found.strip()
        return domain

    def list_word(self, allow: bool) -> str:
        """ALLOWLISTED / DENYLISTED, or the pre-3.6 words (respectful_logging = no)."""
        if self.respectful:
            return "ALLOWLISTED" if allow else "DENYLISTED"
        return "WHITELISTED" if allow else "BLACKLISTED"

    def close(self) -> None:
        self.cache.close()

    async def cache_maintenance(self) -> None:
        """Clean the cache now if the last cleanup is older than the interval,
        then every interval (Postfix logs the same line each time)."""
        if self.cleanup_interval <= 0:
            return
        while True:
            await trio.sleep(self.cache.next_cleanup(self.cleanup_interval, time.time()))
            when = time.time() - self.retention
            kept, dropped = await self.cache.cleanup(
                lambda text: retained(text, self.enabled, when))
            log.info(f"cache {self.cache.spec} full cleanup: retained={kept} "
                     f"dropped={dropped} entries")


def _raw_footer(cfg: Any) -> str:
    """postscreen_reject_footer as written: its $names are the session's,
    expanded for each reply. Postfix's default, $smtpd_reject_footer,
    stands for that parameter's text as written (seen live)."""
    text = cfg.raw("postscreen_reject_footer")
    if text.strip() in ("$smtpd_reject_footer", "${smtpd_reject_footer}"):
        return cfg.raw("smtpd_reject_footer")
    return text
