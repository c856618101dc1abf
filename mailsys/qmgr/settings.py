"""settings - the main.cf values the queue manager reads (postfix-compat.md 2.3).

QmgrSettings holds the global values; Limits holds the per-transport ones,
read as ``<transport>_destination_concurrency_limit`` and friends, which
mailsys.config defaults to the ``default_destination_...`` parameters as
Postfix does. Times are float seconds. Pure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mailsys.config.interfaces import own_addresses
from mailsys.config.tables import open_table
from mailsys.routing import AddressClass, DomainSet, LookupTable, RoutingSettings, resolve

__all__ = ["QmgrSettings", "Limits", "TableDomains", "local_domain_check", "routing_settings"]


@dataclass(frozen=True, slots=True)
class Limits:
    """One transport's scheduling limits (0 means unlimited for the first two)."""

    concurrency: int = 20            # <transport>_destination_concurrency_limit
    recipients: int = 50             # <transport>_destination_recipient_limit
    rate_delay: float = 0.0          # <transport>_destination_rate_delay
    initial: int = 5                 # <transport>_initial_destination_concurrency
    failed_cohorts: int = 1          # <transport>_destination_concurrency_failed_cohort_limit

    @classmethod
    def from_config(cls, cfg: Any, transport: str) -> Limits:
        def get(suffix: str) -> Any:
            try:
                return cfg[f"{transport}_{suffix}"]
            except (KeyError, AttributeError):
                # A transport name the config cannot make parameters for
                # (odd characters): the defaults apply, as in Postfix.
                name = suffix if suffix.startswith("initial") else f"default_{suffix}"
                return cfg[name]
        return cls(concurrency=int(get("destination_concurrency_limit")),
                   recipients=int(get("destination_recipient_limit")),
                   rate_delay=float(get("destination_rate_delay")),
                   initial=int(get("initial_destination_concurrency")),
                   failed_cohorts=int(get("destination_concurrency_failed_cohort_limit")))


@dataclass(frozen=True, slots=True)
class QmgrSettings:
    """The global queue manager parameters."""

    queue_run_delay: float = 300.0
    minimal_backoff_time: float = 300.0
    maximal_backoff_time: float = 4000.0
    maximal_queue_lifetime: float = 5 * 86400.0
    bounce_queue_lifetime: float = 5 * 86400.0
    delay_warning_time: float = 0.0
    active_limit: int = 20000        # qmgr_message_active_limit
    recipient_limit: int = 20000     # qmgr_message_recipient_limit
    ipc_timeout: float = 3600.0
    verp_bounces_off: bool = False   # disable_verp_bounces

    @classmethod
    def from_config(cls, cfg: Any) -> QmgrSettings:
        return cls(queue_run_delay=float(cfg.queue_run_delay),
                   minimal_backoff_time=float(cfg.minimal_backoff_time),
                   maximal_backoff_time=float(cfg.maximal_backoff_time),
                   maximal_queue_lifetime=float(cfg.maximal_queue_lifetime),
                   bounce_queue_lifetime=float(cfg.bounce_queue_lifetime),
                   delay_warning_time=float(cfg.delay_warning_time),
                   active_limit=int(cfg.qmgr_message_active_limit),
                   recipient_limit=int(cfg.qmgr_message_recipient_limit),
                   ipc_timeout=float(cfg.ipc_timeout),
                   verp_bounces_off=bool(cfg.disable_verp_bounces))


@dataclass(frozen=True, slots=True)
class TableDomains:
    """A domain list that may name lookup tables (virtual_mailbox_domains
    defaults to $virtual_mailbox_maps): a domain matches a listed name, as
    DomainSet matches, or is a key of a listed table (Postfix match_list
    with type:table entries)."""

    names: DomainSet
    tables: tuple[LookupTable, ...] = ()

    def match(self, domain: str) -> bool:
        if self.names.match(domain):
            return True
        key = domain.lower().rstrip(".")
        return any(t.lookup(key) is not None for t in self.tables)


def _domains(cfg: Any, name: str) -> TableDomains:
    items = tuple(cfg[name])
    specs = [i for i in items if ":" in i and not i.startswith("[")]
    plain = [i for i in items if i not in specs]
    return TableDomains(DomainSet.of(plain, parent=name == "relay_domains"),
                        tuple(open_table(spec, cfg) for spec in specs))


def routing_settings(cfg: Any, *, probe: bool = False) -> RoutingSettings:
    """routing_settings - resolve()'s settings from a Config, tables opened.
    This host's addresses (inet_interfaces, proxy_interfaces) make
    user@[address] local, as smtpd already takes it. probe: those of
    address verification probes (the address_verify_* transports)."""
    own = own_addresses(cfg.inet_interfaces, cfg.proxy_interfaces, cfg.inet_protocols)
    return RoutingSettings.from_config(cfg, open_table=lambda spec: open_table(spec, cfg),
                                       domains=lambda name: _domains(cfg, name),
                                       own_addresses=[str(a) for a in own], probe=probe)


def local_domain_check(cfg: Any) -> Callable[[str], bool]:
    """is_local(domain): the domain is this host's (mydestination, or an
    address literal of ours), as trivial-rewrite's resolve_local() says."""
    settings = routing_settings(cfg)
    return lambda domain: resolve(f"postmaster@{domain}", settings).address_class \
        is AddressClass.LOCAL
