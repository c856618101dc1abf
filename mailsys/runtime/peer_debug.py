"""peer_debug - debug_peer_list: log the SMTP chat with chosen peers.

SYNOPSIS
    peers = DebugPeers.from_config(cfg)        # None when debug_peer_list is empty
    if peers is not None and peers.match(name, addr):
        conn = TracedServerConnection(settings, trace=peers.chat(lambda: namaddr))

DESCRIPTION
    Postfix's debug_peer_list (a match list like mynetworks: host and
    domain names, network blocks, /file/name, type:table, !negation; a
    domain also matches its subdomains while parent_domain_matches_subdomains
    names debug_peer_list, as by default) names the peers whose sessions
    get debug_peer_level more verbose logging (debug_peer.c). smtpd checks
    the client's name and address once, when the connection starts; the
    smtp client checks the next-hop domain and, for each connection, the
    server's name and address.

    mailsys does not have Postfix's hundreds of verbose-only lines (table
    lookups, attribute dumps); what an administrator reads at every level
    is the chat, which mailsys logs the same way, one line each:

        smtpd: < unknown[127.0.0.1]: EHLO client.example
               > unknown[127.0.0.1]: 250-mail.example.com
        smtp:  > mx.example.org[192.0.2.1]:25: MAIL FROM:<a@example.com>
               < mx.example.org[192.0.2.1]:25: 250 2.1.0 Ok

    The chat goes through mailsys.smtp.trace's connection subclasses, taken
    only for a listed peer: with debug_peer_list empty (the default) a
    session neither matches nor traces anything.

SEE ALSO
    mailsys.smtp.trace, mailsys.policy.netmatch; Postfix debug_peer(3),
    postconf(5) debug_peer_list, debug_peer_level.
"""

from __future__ import annotations

from typing import Any, Callable

import structlog

from mailsys.config.tables import open_table
from mailsys.frozen import frozen
from mailsys.policy.netmatch import ClientMatcher
from mailsys.policy.params import PARENT_DEFAULT, param_value
from mailsys.smtp.trace import Trace

log = structlog.get_logger()


@frozen
class DebugPeers:
    """The compiled debug_peer_list and its level."""

    matcher: ClientMatcher
    level: int

    @classmethod
    def from_config(cls, cfg: Any) -> "DebugPeers | None":
        items = param_value(cfg, "debug_peer_list", ())
        if not items:
            return None
        parents = {p.lower() for p in param_value(cfg, "parent_domain_matches_subdomains",
                                                  PARENT_DEFAULT)}
        matcher = ClientMatcher.compile(items, param="debug_peer_list",
                                        opener=lambda spec: open_table(spec, cfg),
                                        parent="debug_peer_list" in parents)
        return cls(matcher, int(param_value(cfg, "debug_peer_level", 2)))

    def match(self, name: str, addr: str | None) -> bool:
        """Whether the peer name[addr] is listed (addr None: by name only)."""
        return self.matcher.match(name, addr)

    @staticmethod
    def chat(namaddr: Callable[[], str]) -> Trace:
        """The trace callback that logs "< namaddr: line" / "> namaddr: line";
        namaddr is asked at each line (XCLIENT may change the client)."""
        def trace(direction: str, text: str) -> None:
            log.info(f"{direction} {namaddr()}: {text}")
        return trace


__all__ = ["DebugPeers"]
