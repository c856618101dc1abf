"""settings - the main.cf values the queue manager reads (postfix-compat.md 2.3).

QmgrSettings holds the global values; Limits holds the per-transport ones,
read as ``<transport>_destination_concurrency_limit`` and friends, which
mailsys.config defaults to the ``default_destination_...`` parameters as
Postfix does. Times are float seconds.

Feedback is a destination concurrency feedback value as Postfix's
qmgr_feedback.c reads it: a number ("1", "0.5", "0"), a fraction ("1/8"),
or a number per concurrency window ("1/concurrency"), between 0 and 1. A
value that is none of these is taken as 1, with Postfix's warning
("ignoring malformed or unreasonable feedback"), told to the logger that
Limits.from_config() is given, with the debug line of
destination_concurrency_feedback_debug. Pure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mailsys.config.interfaces import own_addresses
from mailsys.config.tables import open_table
from mailsys.frozen import frozen
from mailsys.routing import AddressClass, DomainSet, LookupTable, RoutingSettings, resolve

__all__ = ["QmgrSettings", "Limits", "Feedback", "TableDomains", "local_domain_check",
           "routing_settings"]

_PER_WINDOW = "concurrency"          # "1/concurrency" (qmgr_feedback_map)


@frozen
class Feedback:
    """A concurrency feedback value: base, or base / window when per_window."""

    base: float = 1.0
    per_window: bool = False

    def at(self, window: int) -> float:
        """at - the feedback for one delivery at this window."""
        return self.base / window if self.per_window else self.base

    @classmethod
    def parse(cls, text: str) -> Feedback:
        """parse - "1", "1/8", "1/concurrency"; ValueError for anything
        else, or a value outside [0, 1]."""
        num, slash, denom = (part.strip() for part in text.partition("/"))
        base = float(num)
        per_window = bool(slash) and denom == _PER_WINDOW
        if slash and not per_window:
            divisor = float(denom)
            if not 0 <= base <= 2**31 - 1 or not 1 / (2**31 - 1) <= divisor <= 2**31 - 1:
                raise ValueError(text)
            base /= divisor
        if not 0 <= base <= 1:
            raise ValueError(text)
        return cls(base, per_window)


def _feedback(cfg: Any, transport: str, suffix: str, default_name: str, log: Any) -> Feedback:
    """A transport's feedback parameter as Postfix's qmgr_feedback_init()
    reads it, with its warning and its debug line."""
    name = f"{transport}_{suffix}"
    default = str(cfg[default_name])
    try:
        value = str(cfg[name])
    except (KeyError, AttributeError):
        value = default
    # Postfix names the default parameter when the value is its value.
    shown = name if value != default else default_name
    try:
        feedback = Feedback.parse(value)
    except ValueError:
        if log is not None:
            log.warning(f"{shown}: ignoring malformed or unreasonable feedback: {value}")
        feedback = Feedback()
    if log is not None and cfg.destination_concurrency_feedback_debug:
        initial = int(cfg.initial_destination_concurrency)
        log.info(f"{transport}: {shown} feedback type {int(feedback.per_window)} "
                 f"value at {initial}: {feedback.at(initial):g}")
    return feedback


@frozen
class Limits:
    """One transport's scheduling limits (0 means unlimited for the first two)."""

    concurrency: int = 20            # <transport>_destination_concurrency_limit
    recipients: int = 50             # <transport>_destination_recipient_limit
    rate_delay: float = 0.0          # <transport>_destination_rate_delay
    initial: int = 5                 # <transport>_initial_destination_concurrency
    failed_cohorts: int = 1          # <transport>_destination_concurrency_failed_cohort_limit
    positive: Feedback = Feedback()  # <transport>_destination_concurrency_positive_feedback
    negative: Feedback = Feedback()  # <transport>_destination_concurrency_negative_feedback
    transport_rate_delay: float = 0.0    # <transport>_transport_rate_delay
    in_memory: int = 20000           # <transport>_recipient_limit (in-core pool)
    refill_limit: int = 100          # <transport>_recipient_refill_limit
    refill_delay: float = 5.0        # <transport>_recipient_refill_delay
    extra: int = 1000                # <transport>_extra_recipient_limit
    slot_cost: int = 5               # <transport>_delivery_slot_cost
    slot_loan: int = 3               # <transport>_delivery_slot_loan
    slot_discount: int = 50          # <transport>_delivery_slot_discount
    min_slots: int = 3               # <transport>_minimum_delivery_slots

    @property
    def initial_window(self) -> int:
        """The window a destination starts at: the initial concurrency, but
        not above the concurrency limit (Postfix qmgr_transport_create())."""
        initial = max(1, self.initial)
        return min(initial, self.concurrency) if self.concurrency > 0 else initial

    @classmethod
    def from_config(cls, cfg: Any, transport: str, log: Any = None) -> Limits:
        """from_config - the transport's limits; log (warning(), info()):
        where a bad feedback value and the feedback debug lines go."""
        def name(suffix: str) -> str:
            return suffix if suffix.startswith("initial") else f"default_{suffix}"

        def get(suffix: str) -> Any:
            try:
                return cfg[f"{transport}_{suffix}"]
            except (KeyError, AttributeError):
                # A transport name the config cannot make parameters for
                # (odd characters): the defaults apply, as in Postfix.
                return cfg[name(suffix)]

        def feedback(suffix: str) -> Feedback:
            return _feedback(cfg, transport, suffix, name(suffix), log)
        return cls(concurrency=int(get("destination_concurrency_limit")),
                   recipients=int(get("destination_recipient_limit")),
                   rate_delay=float(get("destination_rate_delay")),
                   initial=int(get("initial_destination_concurrency")),
                   failed_cohorts=int(get("destination_concurrency_failed_cohort_limit")),
                   positive=feedback("destination_concurrency_positive_feedback"),
                   negative=feedback("destination_concurrency_negative_feedback"),
                   transport_rate_delay=float(get("transport_rate_delay")),
                   in_memory=int(get("recipient_limit")),
                   refill_limit=int(get("recipient_refill_limit")),
                   refill_delay=float(get("recipient_refill_delay")),
                   extra=int(get("extra_recipient_limit")),
                   slot_cost=int(get("delivery_slot_cost")),
                   slot_loan=int(get("delivery_slot_loan")),
                   slot_discount=int(get("delivery_slot_discount")),
                   min_slots=int(get("minimum_delivery_slots")))


@frozen
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
    recipient_minimum: int = 10      # qmgr_message_recipient_minimum
    ipc_timeout: float = 3600.0
    verp_bounces_off: bool = False   # disable_verp_bounces
    defer_transports: frozenset[str] = frozenset()
    feedback_debug: bool = False     # destination_concurrency_feedback_debug
    clog_warn_time: float = 300.0    # qmgr_clog_warn_time
    helpful_warnings: bool = True
    double_bounce_sender: str = "double-bounce"

    @classmethod
    def from_config(cls, cfg: Any, log: Any = None) -> QmgrSettings:
        """from_config - the global values. qmgr_message_recipient_limit
        is raised to qmgr_message_active_limit when below it, with Postfix's
        warning told to log (qmgr.c qmgr_post_init())."""
        active_limit = int(cfg.qmgr_message_active_limit)
        recipient_limit = int(cfg.qmgr_message_recipient_limit)
        if recipient_limit < active_limit:
            if log is not None:
                log.warning("qmgr_message_recipient_limit is smaller than "
                            "qmgr_message_active_limit - adjusting qmgr_message_recipient_limit")
            recipient_limit = active_limit
        return cls(queue_run_delay=float(cfg.queue_run_delay),
                   minimal_backoff_time=float(cfg.minimal_backoff_time),
                   maximal_backoff_time=float(cfg.maximal_backoff_time),
                   maximal_queue_lifetime=float(cfg.maximal_queue_lifetime),
                   bounce_queue_lifetime=float(cfg.bounce_queue_lifetime),
                   delay_warning_time=float(cfg.delay_warning_time),
                   active_limit=active_limit,
                   recipient_limit=recipient_limit,
                   recipient_minimum=int(cfg.qmgr_message_recipient_minimum),
                   ipc_timeout=float(cfg.ipc_timeout),
                   verp_bounces_off=bool(cfg.disable_verp_bounces),
                   defer_transports=frozenset(cfg.defer_transports),
                   feedback_debug=bool(cfg.destination_concurrency_feedback_debug),
                   clog_warn_time=float(cfg.qmgr_clog_warn_time),
                   helpful_warnings=bool(cfg.helpful_warnings),
                   double_bounce_sender=str(cfg.double_bounce_sender))


@frozen
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
