"""restrictions - Postfix SMTP access restrictions, evaluated without I/O.

DESCRIPTION
    Restrictions.from_config(cfg) compiles smtpd_client_restrictions,
    smtpd_helo_restrictions, smtpd_sender_restrictions,
    smtpd_relay_restrictions, smtpd_recipient_restrictions and
    smtpd_data_restrictions once: restriction names become small functions,
    match lists become netmatch matchers, lookup tables are opened once.
    evaluate_rcpt(ctx) then answers one RCPT TO with a Decision, following
    Postfix's SMTPD_ACCESS_README:

    - With smtpd_delay_reject = yes (the default) the client, HELO and sender
      lists are evaluated at RCPT time, in that order, then the relay list,
      then the recipient list. Within a list the first restriction that
      permits or rejects decides that list; "permit" only ends its own list,
      a reject anywhere rejects the recipient.
    - After the lists, with smtpd_reject_unlisted_recipient = yes, a
      recipient in a local or virtual domain that no table knows is refused
      (550 5.1.1 <r>: Recipient address rejected: User unknown in local
      recipient table), whatever the lists said, as Postfix does;
      postmaster, MAILER-DAEMON and the double-bounce address of a local
      domain are exempt, and a bare "postmaster" is accepted outright.
    - check_*_access tables act as in access(5): OK, RELAY, REJECT, DEFER,
      4xx/5xx text, DUNNO, DEFER_IF_PERMIT, DEFER_IF_REJECT, WARN, INFO,
      HOLD, DISCARD, FILTER, REDIRECT, BCC, PREPEND (returned as Notes for
      smtpd to log and carry out), or a restriction list such as
      "permit_mynetworks, reject" or a smtpd_restriction_classes name.
      Addresses are looked up after resolution, so an entry for one of our
      domains never matches user%remote@ours, and an OK for a recipient
      that still routes onwards counts as DUNNO.
    - Relay control follows Postfix's trivial-rewrite resolver with
      allow_untrusted_routing = no: a recipient domain is ours when it is in
      mydestination, virtual_alias_domains, virtual_mailbox_domains or
      relay_domains; a local domain is stripped and what remains is resolved
      again (user%host@local, host!user@local, user@host@local and quoted
      "user@host"@local all end at host), and a localpart that still holds
      a routing operator for a virtual or relay domain is not authorized.
      No address form reaches a remote domain without being treated as
      relaying.

    Replies are built as Postfix builds them (smtpd_check.c): the DSN class
    is forced to the reply class (a 5xx reply never carries 4.x.x, and
    address detail codes are mapped between sender and recipient like
    smtpd_dsn_fix), and soft_bounce = yes turns every 5xx reject into 4xx.
    reject_log_text() renders the "reject: RCPT from name[addr]: ...; from=<s>
    to=<r> proto=ESMTP helo=<h>" line that pflogsumm and fail2ban read.

    DNS-based restrictions (reject_unknown_sender_domain,
    reject_unknown_recipient_domain, reject_unknown_helo_hostname) ask an
    injected resolver callback, domain -> DnsStatus, so this module stays
    pure. An async caller first asks domains_to_resolve(ctx) which names an
    evaluation may look up, resolves them, and passes a dictionary-backed
    resolver. Without a resolver a lookup counts as a temporary failure.

    reject_rbl_client and reject_rhsbl_* ask the same resolver whether
    the list holds the name; a "=127.0.0.2"-style reply filter cannot be
    checked that way, so such an entry is skipped with a compile-time
    warning. reject_unknown_client_hostname and
    reject_unknown_reverse_client_hostname go by client_name "unknown".
    reject_unauth_pipelining (smtpd's own job) and permit_tls_clientcerts
    (no certificate facts here) never decide. Anything else unknown, such as
    check_policy_service, is logged at compile time and answers 451 4.3.5
    Server configuration error, as Postfix answers an unknown restriction.

SEE ALSO
    Postfix SMTPD_ACCESS_README, access(5), postconf(5),
    src/smtpd/smtpd_check.c, src/trivial-rewrite/resolve.c.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Mapping

from mailsys.config.values import split_list
from mailsys.errors import ConfigError
from mailsys.policy.netmatch import (ClientMatcher, DomainMatcher, Table, parent_domains,
                                     parse_address)


class DnsStatus(enum.Enum):
    """What a resolver callback reports for one name (MX, A or AAAA)."""
    EXISTS = "exists"
    NOT_FOUND = "not-found"
    TEMPFAIL = "tempfail"


Resolver = Callable[[str], DnsStatus]
TablesOpener = Callable[[str, Any], Table]


@dataclass(frozen=True, slots=True)
class PolicyContext:
    """What the restrictions see of one SMTP session at one command.

    client_name is "unknown" when the client has no verified name. helo,
    sender and recipient are None until the client sent them; a null sender
    is "". Addresses are given without angle brackets.
    """
    client_name: str
    client_addr: str
    helo: str | None = None
    sender: str | None = None
    recipient: str | None = None
    sasl_user: str | None = None
    tls: bool = False
    protocol: str = "ESMTP"

    @property
    def namaddr(self) -> str:
        return f"{self.client_name or 'unknown'}[{self.client_addr}]"


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of evaluating restrictions.

    code 0 means accepted; otherwise code/enhanced/text is the reply, and
    restriction_list names the parameter whose list decided (or
    "smtpd_reject_unlisted_recipient"). notes holds the Notes the caller
    logs or applies whatever the reply (see Note).
    """
    code: int = 0
    enhanced: str = ""
    text: str = ""
    restriction_list: str = ""
    notes: tuple["Note", ...] = ()

    @property
    def accepted(self) -> bool:
        return self.code == 0

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500

    @property
    def reply(self) -> str:
        """'554 5.7.1 <r@d>: Relay access denied' (empty when accepted)."""
        return f"{self.code} {self.enhanced} {self.text}" if self.code else ""


ACCEPT = Decision()


@dataclass(frozen=True, slots=True)
class Note:
    """Something the restrictions ask smtpd to log or do besides the reply.

    action: "reject_warning" (warn_if_reject), "warn", "info", "hold",
    "discard", "filter", "redirect", "bcc", "prepend". text is what Postfix
    logs after "<action>: RCPT from name[addr]: " (note_log_text renders
    the line; "prepend" is not logged, its text is empty). value is the
    action's argument: the header line for prepend, transport:destination
    for filter, the address for redirect and bcc.
    """
    action: str
    text: str
    value: str = ""

# Reply names (Postfix SMTPD_NAME_*): the second part of "<x>: %s rejected: ...".
CLIENT = "Client host"
HELO = "Helo command"
SENDER = "Sender address"
RECIPIENT = "Recipient address"
DATA = "Data command"

CONFIG_ERROR_TEXT = "Server configuration error"

# Postfix defaults of the reply-code parameters (mail_params.h DEF_*_CODE),
# used when the configuration does not define them.
_CODE_DEFAULTS: dict[str, int] = {
    "reject_code": 554,
    "defer_code": 450,
    "relay_domains_reject_code": 554,
    "access_map_reject_code": 554,
    "access_map_defer_code": 450,
    "unknown_address_reject_code": 450,
    "unknown_hostname_reject_code": 450,
    "non_fqdn_reject_code": 504,
    "invalid_hostname_reject_code": 501,
    "unknown_local_recipient_reject_code": 550,
    "unknown_virtual_mailbox_reject_code": 550,
    "unknown_virtual_alias_reject_code": 550,
    "unknown_relay_recipient_reject_code": 550,
    "unknown_client_reject_code": 450,
    "plaintext_reject_code": 450,
    "maps_rbl_reject_code": 554,
}

# Postfix 3.7 default of parent_domain_matches_subdomains.
_PARENT_DEFAULT = ("debug_peer_list", "fast_flush_domains", "mynetworks", "permit_mbox_mail_errors",
                   "qmqpd_authorized_clients", "relay_domains", "smtpd_access_maps")

# smtpd_check.c: without smtpd_relay_restrictions the recipient list must
# hold one of these, or any client could relay.
_RELAY_GUARDS = ("reject_unauth_destination", "defer_unauth_destination", "reject",
                 "defer", "defer_if_permit")

# Restrictions that take the next list element as their argument.
_TAKES_ARG = frozenset({
    "check_client_access", "check_reverse_client_hostname_access", "check_client_a_access",
    "check_client_mx_access", "check_client_ns_access", "check_helo_access",
    "check_helo_a_access", "check_helo_mx_access", "check_helo_ns_access",
    "check_sender_access", "check_sender_a_access", "check_sender_mx_access",
    "check_sender_ns_access", "check_recipient_access", "check_recipient_a_access",
    "check_recipient_mx_access", "check_recipient_ns_access", "check_policy_service",
    "reject_rbl_client", "reject_rhsbl_client", "reject_rhsbl_sender", "reject_rhsbl_helo",
    "reject_rhsbl_recipient", "reject_rhsbl_reverse_client", "permit_dnswl_client",
    "permit_rhswl_client", "check_ccert_access", "check_sasl_access",
})

_MAX_NESTING = 20          # access-table values that name restrictions may nest; Postfix stops at 100
_MAX_RESOLVE_STEPS = 50    # each step strips a domain or an operator; bounds hostile input


# -- reply construction ------------------------------------------------------

# smtpd_dsn_fix.c: an address detail code reported for the other kind of
# address, or for something that is not an address at all, is translated.
_TO_SENDER = {"1.1": "1.7", "1.2": "1.8", "1.3": "1.7", "1.6": "1.7"}
_TO_RECIPIENT = {"1.7": "1.1", "1.8": "1.2"}


def dsn_fix(enhanced: str, code: int, reply_class: str) -> str:
    """Postfix smtpd_dsn_fix plus the class rule: the DSN class follows the code."""
    parts = enhanced.split(".", 1)
    if len(parts) != 2 or not parts[0].isdigit():
        parts = ["5", "0.0"]
    detail = parts[1]
    if detail.startswith("1."):
        if reply_class == SENDER:
            detail = _TO_SENDER.get(detail, detail)
        elif reply_class == RECIPIENT:
            detail = _TO_RECIPIENT.get(detail, detail)
        else:
            detail = "0.0"
    return f"{code // 100}.{detail}"


_WORD_RE = re.compile(r"(\S*)\s*(.*)", re.S)     # an access action and its text
_DSN_RE = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)")


def split_dsn(text: str, default: str) -> tuple[str, str]:
    """'5.7.2 go away' -> ('5.7.2', 'go away'); a text without a code keeps default."""
    m = _DSN_RE.match(text)
    if m:
        return f"{m.group(1)}.{m.group(2)}.{m.group(3)}", text[m.end():]
    return default, text


# -- address resolution ------------------------------------------------------

def _unquoted(addr: str, ch: str) -> list[int]:
    """Indexes of ch outside double quotes and backslash escapes."""
    found = []
    quoted = False
    escaped = False
    for i, c in enumerate(addr):
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == '"':
            quoted = not quoted
        elif c == ch and not quoted:
            found.append(i)
    return found


def _unquoted_rfind(addr: str, ch: str) -> int:
    """Index of the last ch outside quotes, or -1."""
    found = _unquoted(addr, ch)
    return found[-1] if found else -1


def _dequote(local: str) -> str:
    if len(local) >= 2 and local[0] == '"' and local[-1] == '"':
        return re.sub(r"\\(.)", r"\1", local[1:-1])
    return local


def split_address(addr: str) -> tuple[str, str]:
    """('local', 'domain') split at the last unquoted @; domain '' when none."""
    at = _unquoted_rfind(addr, "@")
    if at < 0:
        return addr, ""
    return addr[:at], addr[at + 1:]


class DomainClass(enum.Enum):
    """Postfix's address classes (trivial-rewrite RESOLVE_CLASS_*)."""
    LOCAL = "local"        # mydestination, our own address literals
    ALIAS = "alias"        # virtual_alias_domains
    VIRTUAL = "virtual"    # virtual_mailbox_domains
    RELAY = "relay"        # relay_domains
    DEFAULT = "default"    # anything else: the Internet

    @property
    def final(self) -> bool:
        return self in (DomainClass.LOCAL, DomainClass.ALIAS, DomainClass.VIRTUAL)


@dataclass(frozen=True, slots=True)
class Resolved:
    """Where an address goes: local part, domain, class, and whether the
    local part still carries a routing operator (RESOLVE_FLAG_ROUTED)."""
    local: str
    domain: str
    cls: DomainClass
    routed: bool

    @property
    def address(self) -> str:
        return f"{self.local}@{self.domain}" if self.domain else self.local


# -- the evaluator ------------------------------------------------------------

class _Verdict(enum.Enum):
    OK = "ok"
    DUNNO = "dunno"


OK = _Verdict.OK
DUNNO = _Verdict.DUNNO


@dataclass(frozen=True, slots=True)
class _ListInfo:
    param: str
    reply_class: str


class _Run:
    """Mutable state of one evaluation (Postfix: the per-request SMTPD_STATE bits)."""

    __slots__ = ("ctx", "resolver", "notes", "defer_if_permit", "defer_if_reject",
                 "warn_if_reject", "depth", "lookups")

    def __init__(self, ctx: PolicyContext, resolver: Resolver | None) -> None:
        self.ctx = ctx
        self.resolver = resolver
        self.notes: list[Note] = []
        self.defer_if_permit: Decision | None = None
        self.defer_if_reject: Decision | None = None
        self.warn_if_reject = False
        self.depth = 0
        self.lookups: list[str] = []

    def reply_name(self, reply_class: str) -> str:
        ctx = self.ctx
        if reply_class == CLIENT:
            return ctx.namaddr
        if reply_class == HELO:
            return ctx.helo or ""
        if reply_class == SENDER:
            return ctx.sender or ""
        if reply_class == RECIPIENT:
            return ctx.recipient or ""
        return "DATA"     # smtpd_check_data: the command name stands in

    def dns(self, name: str) -> DnsStatus:
        self.lookups.append(name)
        if self.resolver is None:
            return DnsStatus.TEMPFAIL
        return self.resolver(name)


Step = Callable[[_Run, _ListInfo], "_Verdict | Decision"]


def _param(cfg: Any, name: str, default: Any) -> Any:
    """cfg[name], or default when the configuration does not know the name.

    A parameter the config table does not declare but main.cf sets comes
    back as text; it is converted to the type of the default.
    """
    if cfg is None:
        return default
    try:
        value = cfg[name]
    except KeyError:
        return default
    if isinstance(value, str) and not isinstance(default, str):
        text = value.strip()
        if isinstance(default, bool):
            return text.lower() in ("yes", "true", "1")
        if isinstance(default, int):
            try:
                return int(text)
            except ValueError:
                raise ConfigError(f'bad numerical configuration: {name} = {text}', param=name) from None
        if isinstance(default, tuple):
            return split_list(text)
    return value


class _Tables:
    """Opens each table spec once, whatever list or restriction names it."""

    def __init__(self, opener: TablesOpener | None, cfg: Any) -> None:
        self._opener = opener
        self._cfg = cfg
        self._open: dict[str, Table] = {}

    def __call__(self, spec: str) -> Table:
        table = self._open.get(spec)
        if table is None:
            opener = self._opener
            if opener is None:
                from mailsys.config.tables import open_table   # deferred: tests pass their own
                opener = open_table
            # proxy: only moves a lookup into Postfix's proxymap daemon; the
            # answers are the table's own, so mailsys reads the table directly.
            bare = spec[len("proxy:"):] if spec.startswith("proxy:") else spec
            table = opener(bare, self._cfg)
            self._open[spec] = table
        return table


def _access_keys_address(addr: str, parent: bool, delimiter: str) -> list[str]:
    """access(5) lookup order for an e-mail address (mail_addr_find_strategy)."""
    addr = addr.lower()
    local, domain = split_address(addr)
    keys = [addr]
    if delimiter and local:
        base = _strip_extension(local, delimiter)
        if base != local:
            keys.append(f"{base}@{domain}" if domain else base)
    if domain:
        keys.extend(_access_keys_domain(domain, parent))
    if local:
        keys.append(local + "@")
        if delimiter:
            base = _strip_extension(local, delimiter)
            if base != local:
                keys.append(base + "@")
    return keys


def _access_keys_domain(domain: str, parent: bool) -> list[str]:
    """check_domain_access: the name, then each parent domain, top-level too;
    "example.com" with parent-domain matching, else ".example.com"."""
    keys = [domain]
    if valid_hostaddr(domain):
        return keys      # no subdomain magic for numerical names
    keys.extend(p if parent else "." + p for p in parent_domains(domain))
    return keys


def _access_keys_addr(addr: str) -> list[str]:
    """check_addr_access: the address, then cut at the last '.' (IPv4) or
    ':' (IPv6) again and again: 1.2.3.4 1.2.3 1.2 1 / 2001:db8::5 2001:db8: ..."""
    ip = parse_address(addr)
    text = str(ip) if ip is not None else addr.lower()
    sep = ":" if ":" in text else "."
    keys = []
    while text:
        keys.append(text)
        cut = text.rfind(sep)
        if cut < 0:
            break
        text = text[:cut]
    return keys


def _strip_extension(local: str, delimiter: str) -> str:
    for i, c in enumerate(local):
        if c in delimiter:
            return local[:i] if i > 0 else local
    return local


_LABEL_RE = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?$")


def _truncate_dot(name: str) -> str:
    """Postfix dup_if_truncate: drop one trailing dot, but not from '..'."""
    if len(name) > 1 and name.endswith(".") and not name.endswith(".."):
        return name[:-1]
    return name


def valid_hostname(name: str) -> bool:
    """Postfix valid_hostname(): labels of letters, digits, '-', '_'; not all numeric."""
    if not name or len(name) > 255:
        return False
    labels = name.split(".")
    for label in labels:
        if len(label) > 63 or not _LABEL_RE.match(label):
            return False
    # A name made only of digits and dots is an address, not a host name.
    return not all(label.isdigit() for label in labels)


def valid_hostaddr(text: str) -> bool:
    """An address literal as HELO accepts it: [1.2.3.4], [IPv6:...], or bare."""
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
        if text[:5].lower() == "ipv6:":
            text = text[5:]
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class Restrictions:
    """Compiled smtpd restriction lists; see the module docstring."""

    def __init__(self, cfg: Any = None, tables_opener: TablesOpener | None = None, *,
                 overrides: Mapping[str, Any] | None = None) -> None:
        over = dict(overrides or {})

        def get(name: str, default: Any) -> Any:
            return over[name] if name in over else _param(cfg, name, default)

        self.warnings: list[str] = []
        tables = _Tables(tables_opener, cfg)
        self._tables = tables
        parent_params = {x.lower() for x in get("parent_domain_matches_subdomains", _PARENT_DEFAULT)}
        self._access_parent = "smtpd_access_maps" in parent_params
        self._codes = {name: int(get(name, d)) for name, d in _CODE_DEFAULTS.items()}
        self.soft_bounce = bool(get("soft_bounce", False))
        self.delay_reject = bool(get("smtpd_delay_reject", True))
        self.reject_unlisted_recipient = bool(get("smtpd_reject_unlisted_recipient", True))
        self.reject_unlisted_sender = bool(get("smtpd_reject_unlisted_sender", False))
        self.show_table = bool(get("show_user_unknown_table_name", True))
        self._percent_hack = bool(get("allow_percent_hack", True))
        self._swap_bangpath = bool(get("swap_bangpath", True))
        self._dequote = bool(get("resolve_dequoted_address", True))
        self._untrusted_routing = bool(get("allow_untrusted_routing", False))
        self._delimiter = str(get("recipient_delimiter", ""))
        self._null_key = str(get("smtpd_null_access_lookup_key", "<>"))
        self._myhostname = str(get("myhostname", "localhost")).lower()
        self._relay_code = self._codes["relay_domains_reject_code"]
        double_bounce = str(get("double_bounce_sender", "double-bounce"))
        self._double_bounce = double_bounce.lower()

        def domains(name: str, default: tuple[str, ...]) -> DomainMatcher:
            return DomainMatcher.compile(get(name, default), param=name, opener=tables,
                                         parent=name in parent_params)

        self.mynetworks = ClientMatcher.compile(get("mynetworks", ("127.0.0.0/8", "[::1]/128")),
                                                param="mynetworks", opener=tables,
                                                parent="mynetworks" in parent_params)
        self.mydestination = domains("mydestination", ())
        self.virtual_alias_domains = domains("virtual_alias_domains", ())
        self.virtual_mailbox_domains = domains("virtual_mailbox_domains", ())
        self.relay_domains = domains("relay_domains", ())
        self._local_addrs = self._own_addresses(get("inet_interfaces", ("all",)),
                                                get("proxy_interfaces", ()))

        def maps(name: str, default: tuple[str, ...]) -> tuple[Table, ...]:
            return tuple(tables(spec) for spec in get(name, default))

        self._local_rcpt_maps = maps("local_recipient_maps", ("unix:passwd.byname",))
        self._virtual_alias_maps = maps("virtual_alias_maps", ())
        self._virtual_mailbox_maps = maps("virtual_mailbox_maps", ())
        self._relay_rcpt_maps = maps("relay_recipient_maps", ())
        self._sender_login_maps = maps("smtpd_sender_login_maps", ())

        # smtpd_restriction_classes: names of parameters that hold a
        # restriction list, usable by name in any list or access table.
        self._classes: dict[str, tuple[str, ...]] = {
            c.lower(): tuple(get(c, ())) for c in get("smtpd_restriction_classes", ())}
        self._class_steps: dict[str, tuple[Step, ...]] = {}
        self.lists: dict[str, tuple[Step, ...]] = {}
        self._names: dict[str, tuple[str, ...]] = {}
        default_relay = ("permit_mynetworks", "permit_sasl_authenticated", "defer_unauth_destination")
        for param, default in (("smtpd_client_restrictions", ()),
                               ("smtpd_helo_restrictions", ()),
                               ("smtpd_sender_restrictions", ()),
                               ("smtpd_relay_restrictions", default_relay),
                               ("smtpd_recipient_restrictions", ()),
                               ("smtpd_data_restrictions", ())):
            names = tuple(get(param, default))
            self._names[param] = names
            self.lists[param] = self._compile_list(names, param)
        if not self._names["smtpd_relay_restrictions"] and not any(
                n.lower() in _RELAY_GUARDS for n in self._names["smtpd_recipient_restrictions"]):
            raise ConfigError("specify at least one working instance of: "
                              + ", ".join(_RELAY_GUARDS), param="smtpd_recipient_restrictions")
        self._value_cache: dict[str, tuple[Step, ...]] = {}

    @classmethod
    def from_config(cls, cfg: Any, tables_opener: TablesOpener | None = None) -> "Restrictions":
        """Compile every restriction list and match list of cfg once.

        tables_opener(spec, cfg) -> Table opens "type:name" specs; default
        mailsys.config.tables.open_table.
        """
        return cls(cfg, tables_opener)

    # -- public evaluation -----------------------------------------------------

    def evaluate_client(self, ctx: PolicyContext, resolver: Resolver | None = None) -> Decision:
        """smtpd_client_restrictions alone (at connect when smtpd_delay_reject = no)."""
        return self._evaluate(ctx, resolver, ("smtpd_client_restrictions",), unlisted=False)

    def evaluate_helo(self, ctx: PolicyContext, resolver: Resolver | None = None) -> Decision:
        """smtpd_helo_restrictions alone (at HELO/EHLO when smtpd_delay_reject = no)."""
        return self._evaluate(ctx, resolver, ("smtpd_helo_restrictions",), unlisted=False)

    def evaluate_sender(self, ctx: PolicyContext, resolver: Resolver | None = None) -> Decision:
        """smtpd_sender_restrictions (and the unlisted-sender check) at MAIL FROM
        when smtpd_delay_reject = no."""
        return self._evaluate(ctx, resolver, ("smtpd_sender_restrictions",), unlisted=False)

    def evaluate_rcpt(self, ctx: PolicyContext, resolver: Resolver | None = None) -> Decision:
        """The answer to RCPT TO: ctx.recipient (see the module docstring)."""
        if (ctx.recipient or "").lower() == "postmaster":
            return ACCEPT     # RFC 5321 4.5.1: always accepted, even unqualified
        params: tuple[str, ...] = ("smtpd_relay_restrictions", "smtpd_recipient_restrictions")
        if self.delay_reject:
            params = ("smtpd_client_restrictions", "smtpd_helo_restrictions",
                      "smtpd_sender_restrictions") + params
        return self._evaluate(ctx, resolver, params, unlisted=True)

    def evaluate_data(self, ctx: PolicyContext, resolver: Resolver | None = None) -> Decision:
        """smtpd_data_restrictions at DATA."""
        return self._evaluate(ctx, resolver, ("smtpd_data_restrictions",), unlisted=False)

    def domains_to_resolve(self, ctx: PolicyContext) -> tuple[str, ...]:
        """Names evaluate_rcpt(ctx) may ask the resolver about, in order.

        Found by a dry run that answers every lookup "exists"; an async caller
        resolves these first and passes their results as the resolver.
        """
        run = _Run(ctx, lambda name: DnsStatus.EXISTS)
        params = ("smtpd_client_restrictions", "smtpd_helo_restrictions",
                  "smtpd_sender_restrictions", "smtpd_relay_restrictions",
                  "smtpd_recipient_restrictions")
        for param in params:
            self._run_list(run, param)
        return tuple(dict.fromkeys(run.lookups))

    def resolve(self, addr: str) -> Resolved:
        """Where addr goes, after Postfix's trivial-rewrite address tricks."""
        addr = addr.strip()
        if addr.startswith("<") and addr.endswith(">"):
            addr = addr[1:-1]
        saved_domain = ""
        for _ in range(_MAX_RESOLVE_STEPS):
            # Source route @a,@b:user@c: servers ignore the route (RFC 5321 C).
            if addr.startswith("@") and ":" in addr:
                addr = addr.split(":", 1)[1]
            local, domain = split_address(addr)
            if domain or _unquoted_rfind(addr, "@") >= 0:
                domain = domain.rstrip(".").lower()
                if not domain:
                    addr = local      # a trailing @ is dropped (resolve.c)
                    continue
                if not self._is_local_domain(domain):
                    return self._classify(local, domain)
                # A local domain is stripped; what is left may route further.
                saved_domain = domain
                addr = local
                continue
            bangs = _unquoted(addr, "!") if self._swap_bangpath else []
            if bangs:
                bang = bangs[0]
                addr = f"{addr[bang + 1:]}@{addr[:bang]}"
                continue
            if self._percent_hack and _unquoted_rfind(addr, "%") >= 0:
                pct = _unquoted_rfind(addr, "%")
                addr = f"{addr[:pct]}@{addr[pct + 1:]}"
                continue
            if self._dequote and addr.startswith('"'):
                inner = _dequote(addr)
                if inner != addr and any(op in inner for op in "@!%"):
                    if "@" not in inner and "%" in inner and self._percent_hack:
                        pct = inner.rfind("%")
                        inner = f"{inner[:pct]}@{inner[pct + 1:]}"
                    addr = inner
                    continue
            # An address without a domain is local (trivial-rewrite resolves
            # it at $myhostname).
            return Resolved(addr, saved_domain or self._myhostname, DomainClass.LOCAL, False)
        # Too many rewriting steps: refuse to treat it as ours.
        return Resolved(addr, "", DomainClass.DEFAULT, True)

    # -- compilation -------------------------------------------------------------

    def _compile_list(self, names: Iterable[str], param: str) -> tuple[Step, ...]:
        steps: list[Step] = []
        it = iter(names)
        warn_next = False
        for raw in it:
            name = raw.strip()
            if not name:
                continue
            lname = name.lower()
            arg = None
            if lname in _TAKES_ARG:
                arg = next(it, None)
                if arg is None:
                    self.warnings.append(f"restriction {name} in {param} requires a table argument")
                    steps.append(self._config_error(f"{name} without argument"))
                    continue
            if lname == "warn_if_reject":
                warn_next = True
                continue
            step = self._step(lname, arg, param)
            if warn_next:
                steps.append(_warn_wrapper(step))
                warn_next = False
            else:
                steps.append(step)
        return tuple(steps)

    def _config_error(self, why: str) -> Step:
        def step(run: _Run, info: _ListInfo) -> Decision:
            return self._reject(run, info, 451, "4.3.5", CONFIG_ERROR_TEXT)
        return step

    def _step(self, name: str, arg: str | None, param: str) -> Step:
        simple = _SIMPLE.get(name)
        if simple is not None:
            return lambda run, info: simple(self, run, info)
        if name in self._classes:
            return lambda run, info: self._run_class(run, info, name)
        if name.startswith("check_") and name.endswith("_access") and arg is not None:
            kind = name[len("check_"):-len("_access")]
            if kind in ("client", "helo", "sender", "recipient"):
                table = self._tables(arg)
                return lambda run, info: self._check_access(run, info, kind, table)
        if name in _DNSBL and arg is not None:
            zone, _, want = arg.partition("=")
            if want:
                # The resolver reports only whether a name exists, so a reply
                # filter cannot be honoured; ignoring it could reject clients
                # the admin meant to accept (list error codes), so skip.
                self.warnings.append(f"{name} {arg}: reply filters are not supported; "
                                     "restriction ignored")
                return lambda run, info: DUNNO
            return lambda run, info: self._dnsbl(run, info, name, zone.lower().rstrip("."))
        if name in _NOT_HERE:
            return lambda run, info: DUNNO
        self.warnings.append(f"unknown smtpd restriction: \"{name}\" in {param}")
        return self._config_error(name)

    def _run_class(self, run: _Run, info: _ListInfo, name: str):
        """A restriction class, compiled on first use (classes may name each other)."""
        steps = self._class_steps.get(name)
        if steps is None:
            self._class_steps[name] = ()            # a class naming itself finds nothing
            steps = self._compile_list(self._classes[name], name)
            self._class_steps[name] = steps
        return self._nested(run, info, steps)

    def _nested(self, run: _Run, info: _ListInfo, steps: tuple[Step, ...]):
        if run.depth >= _MAX_NESTING:
            self.warnings.append(f"restrictions nested too deep in {info.param}")
            return self._reject(run, info, 451, "4.3.5", CONFIG_ERROR_TEXT)
        run.depth += 1
        try:
            return self._run_steps(run, info, steps)
        finally:
            run.depth -= 1

    # -- evaluation core -----------------------------------------------------

    def _evaluate(self, ctx: PolicyContext, resolver: Resolver | None, params: tuple[str, ...],
                  *, unlisted: bool) -> Decision:
        run = _Run(ctx, resolver)
        for param in params:
            result = self._run_list(run, param)
            if isinstance(result, Decision):
                return self._with_notes(result, run)
            if param == "smtpd_sender_restrictions" and self.reject_unlisted_sender \
                    and ctx.sender:
                result = self._unlisted(run, _ListInfo("smtpd_reject_unlisted_sender", SENDER),
                                        ctx.sender)
                if isinstance(result, Decision):
                    return self._with_notes(result, run)
        if run.defer_if_permit is not None:
            return self._with_notes(run.defer_if_permit, run)
        if unlisted and self.reject_unlisted_recipient and ctx.recipient is not None:
            result = self._unlisted(run, _ListInfo("smtpd_reject_unlisted_recipient", RECIPIENT),
                                    ctx.recipient)
            if isinstance(result, Decision):
                return self._with_notes(result, run)
        return self._with_notes(ACCEPT, run)

    @staticmethod
    def _with_notes(decision: Decision, run: _Run) -> Decision:
        return replace(decision, notes=tuple(run.notes)) if run.notes else decision

    def _run_list(self, run: _Run, param: str) -> "_Verdict | Decision":
        info = _ListInfo(param, _LIST_CLASS[param])
        return self._run_steps(run, info, self.lists[param])

    def _run_steps(self, run: _Run, info: _ListInfo, steps: tuple[Step, ...]) -> "_Verdict | Decision":
        for step in steps:
            result = step(run, info)
            if result is not DUNNO:
                return result
        return DUNNO

    def _reject(self, run: _Run, info: _ListInfo, code: int, enhanced: str, text: str,
                reply_class: str | None = None) -> "Decision | _Verdict":
        """Postfix smtpd_check_reject: soft_bounce, DSN fix, the defer/warn modifiers."""
        if self.soft_bounce and code // 100 == 5:
            code -= 100
        decision = Decision(code, dsn_fix(enhanced, code, reply_class or info.reply_class), text,
                            info.param)
        if run.warn_if_reject:
            run.notes.append(Note("reject_warning", decision.reply))
            return DUNNO
        if code // 100 == 5 and run.defer_if_reject is not None:
            return run.defer_if_reject
        return decision

    def _defer_if_permit(self, run: _Run, info: _ListInfo, code: int, enhanced: str, text: str,
                         reply_class: str | None = None) -> _Verdict:
        if run.defer_if_permit is None:
            run.defer_if_permit = Decision(code, dsn_fix(enhanced, code, reply_class or info.reply_class),
                                           text, info.param)
        return DUNNO

    # -- relay control -------------------------------------------------------

    def _is_local_domain(self, domain: str) -> bool:
        if domain.startswith("["):
            ip = parse_address(domain)
            return ip is not None and (ip in self._local_addrs or self.mydestination.match(domain))
        return self.mydestination.match(domain)

    def _classify(self, local: str, domain: str) -> Resolved:
        if domain.startswith("["):
            cls = DomainClass.DEFAULT
        elif self.virtual_alias_domains.match(domain):
            cls = DomainClass.ALIAS
        elif self.virtual_mailbox_domains.match(domain):
            cls = DomainClass.VIRTUAL
        elif self.relay_domains.match(domain):
            cls = DomainClass.RELAY
        else:
            cls = DomainClass.DEFAULT
        # resolve.c: a routing operator left in the local part of a non-local
        # destination makes the destination uncertain.
        bare = _dequote(local)
        routed = any(op in bare for op in "@!%")
        return Resolved(local, domain, cls, routed)

    @staticmethod
    def _own_addresses(interfaces: Iterable[str], proxies: Iterable[str]) -> frozenset:
        addrs = set()
        for item in list(interfaces) + list(proxies):
            if item.lower() in ("all", "loopback-only"):
                addrs.update((ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")))
                continue
            ip = parse_address(item)
            if ip is not None:
                addrs.add(ip)
        return frozenset(addrs)

    def _auth_destination(self, run: _Run) -> bool:
        """permit_auth_destination: the recipient is ours to accept."""
        rcpt = run.ctx.recipient
        if rcpt is None:
            return False
        r = self.resolve(rcpt)
        if r.routed and not self._untrusted_routing and r.cls != DomainClass.LOCAL:
            return False
        return r.cls.final or r.cls == DomainClass.RELAY

    # -- individual restrictions ----------------------------------------------

    def _permit(self, run: _Run, info: _ListInfo) -> _Verdict:
        return OK

    def _reject_all(self, run: _Run, info: _ListInfo):
        return self._reject(run, info, self._codes["reject_code"], "5.7.1",
                            f"<{run.reply_name(info.reply_class)}>: {info.reply_class} rejected: Access denied")

    def _defer_all(self, run: _Run, info: _ListInfo):
        return self._reject(run, info, self._codes["defer_code"], "4.3.2",
                            f"<{run.reply_name(info.reply_class)}>: {info.reply_class} rejected: Try again later")

    def _defer_if_permit_step(self, run: _Run, info: _ListInfo):
        return self._defer_if_permit(run, info, 450, "4.7.0",
                                     f"<{run.reply_name(info.reply_class)}>: {info.reply_class} "
                                     "rejected: defer_if_permit requested")

    def _defer_if_reject_step(self, run: _Run, info: _ListInfo):
        if run.defer_if_reject is None:
            run.defer_if_reject = Decision(
                450, dsn_fix("4.7.0", 450, info.reply_class),
                f"<{run.reply_name(info.reply_class)}>: {info.reply_class} rejected: defer_if_reject requested",
                info.param)
        return DUNNO

    def _permit_mynetworks(self, run: _Run, info: _ListInfo) -> _Verdict:
        return OK if self.mynetworks.match(run.ctx.client_name, run.ctx.client_addr) else DUNNO

    def _permit_sasl(self, run: _Run, info: _ListInfo) -> _Verdict:
        return OK if run.ctx.sasl_user else DUNNO

    def _permit_auth_destination(self, run: _Run, info: _ListInfo) -> _Verdict:
        return OK if self._auth_destination(run) else DUNNO

    def _unauth_destination(self, run: _Run, info: _ListInfo, code: int, enhanced: str):
        rcpt = run.ctx.recipient
        if rcpt is None or self._auth_destination(run):
            return DUNNO
        return self._reject(run, info, code, enhanced, f"<{rcpt}>: Relay access denied", RECIPIENT)

    def _reject_unauth_destination(self, run: _Run, info: _ListInfo):
        return self._unauth_destination(run, info, self._codes["relay_domains_reject_code"], "5.7.1")

    def _defer_unauth_destination(self, run: _Run, info: _ListInfo):
        # smtpd_check.c: the relay reject code turned temporary (554 -> 454).
        return self._unauth_destination(run, info, self._relay_code - 100, "4.7.1")

    def _non_fqdn_address(self, run: _Run, info: _ListInfo, addr: str | None, reply_class: str):
        if not addr:
            return DUNNO
        _, domain = split_address(addr)
        domain = domain.rstrip(".")
        if domain.startswith("[") and domain.endswith("]"):
            return DUNNO
        if domain and valid_hostname(domain) and "." in domain:
            return DUNNO
        return self._reject(run, info, self._codes["non_fqdn_reject_code"], "5.5.2",
                            f"<{addr}>: {reply_class} rejected: need fully-qualified address",
                            reply_class)

    def _reject_non_fqdn_sender(self, run: _Run, info: _ListInfo):
        return self._non_fqdn_address(run, info, run.ctx.sender, SENDER)

    def _reject_non_fqdn_recipient(self, run: _Run, info: _ListInfo):
        return self._non_fqdn_address(run, info, run.ctx.recipient, RECIPIENT)

    def _helo_literal(self, run: _Run, info: _ListInfo, helo: str):
        """reject_invalid_hostaddr: a HELO [literal] must hold a valid address."""
        if valid_hostaddr(helo):
            return DUNNO
        return self._reject(run, info, self._codes["invalid_hostname_reject_code"], "5.5.2",
                            f"<{helo}>: Helo command rejected: invalid ip address", HELO)

    def _reject_invalid_helo(self, run: _Run, info: _ListInfo):
        helo = run.ctx.helo
        if helo is None:
            return DUNNO
        if helo.startswith("["):
            return self._helo_literal(run, info, helo)
        name = _truncate_dot(helo)
        # A bare address is tolerated for backwards compatibility (smtpd_check.c).
        if valid_hostname(name) or valid_hostaddr(name):
            return DUNNO
        return self._reject(run, info, self._codes["invalid_hostname_reject_code"], "5.5.2",
                            f"<{helo}>: Helo command rejected: Invalid name", HELO)

    def _reject_non_fqdn_helo(self, run: _Run, info: _ListInfo):
        helo = run.ctx.helo
        if helo is None:
            return DUNNO
        if helo.startswith("["):
            return self._helo_literal(run, info, helo)
        name = _truncate_dot(helo)
        if valid_hostname(name) and "." in name:
            return DUNNO
        return self._reject(run, info, self._codes["non_fqdn_reject_code"], "5.5.2",
                            f"<{helo}>: Helo command rejected: need fully-qualified hostname", HELO)

    def _unknown_domain(self, run: _Run, info: _ListInfo, addr: str | None, reply_class: str):
        """reject_unknown_{sender,recipient}_domain (smtpd_check.c reject_unknown_address)."""
        if not addr:
            return DUNNO
        r = self.resolve(addr)
        if r.cls.final or not r.domain or r.domain.startswith("["):
            return DUNNO
        status = run.dns(r.domain)
        if status is DnsStatus.EXISTS:
            return DUNNO
        enhanced = "4.1.8" if reply_class == SENDER else "4.1.2"
        text = f"<{addr}>: {reply_class} rejected: Domain not found"
        if status is DnsStatus.TEMPFAIL:
            # unknown_address_tempfail_action = defer_if_permit
            return self._defer_if_permit(run, info, 450, enhanced, text, reply_class)
        return self._reject(run, info, self._codes["unknown_address_reject_code"], enhanced, text,
                            reply_class)

    def _reject_unknown_sender_domain(self, run: _Run, info: _ListInfo):
        return self._unknown_domain(run, info, run.ctx.sender, SENDER)

    def _reject_unknown_recipient_domain(self, run: _Run, info: _ListInfo):
        return self._unknown_domain(run, info, run.ctx.recipient, RECIPIENT)

    def _reject_unknown_helo(self, run: _Run, info: _ListInfo):
        helo = run.ctx.helo
        if helo is None:
            return DUNNO
        if helo.startswith("["):
            return self._helo_literal(run, info, helo)
        status = run.dns(_truncate_dot(helo).lower())
        if status is DnsStatus.EXISTS:
            return DUNNO
        text = f"<{helo}>: Helo command rejected: Host not found"
        if status is DnsStatus.TEMPFAIL:
            return self._defer_if_permit(run, info, 450, "4.7.1", text, HELO)
        return self._reject(run, info, self._codes["unknown_hostname_reject_code"], "4.7.1", text, HELO)

    def _reject_unlisted_recipient(self, run: _Run, info: _ListInfo):
        if run.ctx.recipient is None:
            return DUNNO
        return self._unlisted(run, info, run.ctx.recipient)

    def _reject_unlisted_sender(self, run: _Run, info: _ListInfo):
        if not run.ctx.sender:
            return DUNNO
        return self._unlisted(run, info, run.ctx.sender, SENDER)

    def _reject_plaintext_session(self, run: _Run, info: _ListInfo):
        if run.ctx.tls:
            return DUNNO
        return self._reject(run, info, self._codes["plaintext_reject_code"], "4.7.1",
                            "Session encryption is required", CLIENT)

    def _unknown_client(self, run: _Run, info: _ListInfo, what: str, enhanced: str):
        ctx = run.ctx
        if ctx.client_name and ctx.client_name != "unknown":
            return DUNNO
        return self._reject(run, info, self._codes["unknown_client_reject_code"], enhanced,
                            f"Client host rejected: cannot find your {what}, [{ctx.client_addr}]",
                            CLIENT)

    def _reject_unknown_client_hostname(self, run: _Run, info: _ListInfo):
        # RFC 7372 "reverse DNS validation failed"
        return self._unknown_client(run, info, "hostname", "4.7.25")

    def _reject_unknown_reverse_client_hostname(self, run: _Run, info: _ListInfo):
        return self._unknown_client(run, info, "reverse hostname", "4.7.1")

    def _dnsbl(self, run: _Run, info: _ListInfo, name: str, zone: str):
        """reject_rbl_client and reject_rhsbl_*: listed when <query>.<zone> exists.

        Reply as Postfix's default_rbl_reply without a TXT reason:
        '554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.example'.
        A lookup that fails temporarily does not reject (Postfix likewise).
        """
        ctx = run.ctx
        if name == "reject_rbl_client":
            ip = parse_address(ctx.client_addr)
            if ip is None:
                return DUNNO
            query = ip.reverse_pointer.rsplit(".", 2)[0]     # drop in-addr.arpa / ip6.arpa
            what, reply_class = str(ip), CLIENT
        else:
            kind = name[len("reject_rhsbl_"):]
            if kind in ("client", "reverse_client"):
                domain = ctx.client_name if ctx.client_name != "unknown" else ""
                reply_class = CLIENT
            elif kind == "helo":
                domain, reply_class = ctx.helo or "", HELO
            else:
                addr = ctx.sender if kind == "sender" else ctx.recipient
                domain = split_address(addr or "")[1]
                reply_class = SENDER if kind == "sender" else RECIPIENT
            domain = domain.lower().rstrip(".")
            # Postfix skips names ending in a numerical label: some lists
            # answer "No IP queries" for them.
            if not domain or domain.startswith("[") or domain.rsplit(".", 1)[-1].isdigit() \
                    or not valid_hostname(domain):
                return DUNNO
            query = what = domain
        if run.dns(f"{query}.{zone}") is not DnsStatus.EXISTS:
            return DUNNO
        return self._reject(run, info, self._codes["maps_rbl_reject_code"], "5.7.1",
                            f"Service unavailable; {reply_class} [{what}] blocked using {zone}",
                            reply_class)

    def _sender_login_mismatch(self, run: _Run, info: _ListInfo, authenticated: bool,
                               unauthenticated: bool):
        """reject_*sender_login_mismatch against smtpd_sender_login_maps."""
        ctx = run.ctx
        if not ctx.sender or not self._sender_login_maps:
            return DUNNO
        local, domain = split_address(ctx.sender.lower())
        keys = _recipient_keys(local, domain, self._delimiter, False)
        owners = None
        for key in keys:
            for table in self._sender_login_maps:
                owners = table.lookup(key)
                if owners is not None:
                    break
            if owners is not None:
                break
        if ctx.sasl_user:
            if not authenticated:
                return DUNNO
            names = {o.strip().lower() for o in re.split(r"[,\s]+", owners or "") if o.strip()}
            if ctx.sasl_user.lower() in names:
                return DUNNO
            return self._reject(run, info, 553, "5.7.1",
                                f"<{ctx.sender}>: Sender address rejected: not owned by user "
                                f"{ctx.sasl_user}", SENDER)
        if unauthenticated and owners is not None:
            return self._reject(run, info, 553, "5.7.1",
                                f"<{ctx.sender}>: Sender address rejected: not logged in", SENDER)
        return DUNNO

    def _reject_sender_login_mismatch(self, run: _Run, info: _ListInfo):
        return self._sender_login_mismatch(run, info, True, True)

    def _reject_authenticated_sender_login_mismatch(self, run: _Run, info: _ListInfo):
        return self._sender_login_mismatch(run, info, True, False)

    def _reject_unauthenticated_sender_login_mismatch(self, run: _Run, info: _ListInfo):
        return self._sender_login_mismatch(run, info, False, True)

    # -- unknown users ----------------------------------------------------

    def _unlisted(self, run: _Run, info: _ListInfo, addr: str, reply_class: str | None = None):
        """smtpd_check_rcptmap: refuse an address no table of its class knows."""
        reply_class = reply_class or info.reply_class
        r = self.resolve(addr)
        if r.routed or not r.domain and r.cls != DomainClass.LOCAL:
            return DUNNO
        local = _dequote(r.local).lower()
        domain = r.domain.lower()
        if r.cls == DomainClass.LOCAL and local in (self._double_bounce, "postmaster",
                                                    "mailer-daemon"):
            return DUNNO    # generated by bounce or absorbed by qmgr (smtpd_check.c)
        keys = _recipient_keys(local, domain, self._delimiter, r.cls == DomainClass.LOCAL)
        if self._virtual_alias_maps and _found(self._virtual_alias_maps, keys):
            return DUNNO
        if r.cls == DomainClass.LOCAL:
            maps, what, code = self._local_rcpt_maps, "local recipient table", \
                "unknown_local_recipient_reject_code"
        elif r.cls == DomainClass.VIRTUAL:
            maps, what, code = self._virtual_mailbox_maps, "virtual mailbox table", \
                "unknown_virtual_mailbox_reject_code"
        elif r.cls == DomainClass.ALIAS:
            maps, what, code = self._virtual_alias_maps, "virtual alias table", \
                "unknown_virtual_alias_reject_code"
        elif r.cls == DomainClass.RELAY:
            maps, what, code = self._relay_rcpt_maps, "relay recipient table", \
                "unknown_relay_recipient_reject_code"
        else:
            return DUNNO
        if r.cls != DomainClass.ALIAS and not maps:
            return DUNNO    # an empty map list means "every user exists"
        if maps and _found(maps, keys):
            return DUNNO
        suffix = f" in {what}" if self.show_table else ""
        enhanced = "5.1.0" if reply_class == SENDER else "5.1.1"
        return self._reject(run, info, self._codes[code], enhanced,
                            f"<{addr}>: {reply_class} rejected: User unknown{suffix}", reply_class)

    # -- access tables ---------------------------------------------------

    def _check_access(self, run: _Run, info: _ListInfo, kind: str, table: Table):
        ctx = run.ctx
        suspicious = False
        if kind == "client":
            # check_namadr_access: the name (also "unknown") and its parents,
            # then the address and its parent networks.
            keys = _access_keys_domain((ctx.client_name or "unknown").lower(), self._access_parent)
            keys.extend(_access_keys_addr(ctx.client_addr))
            reply_class = CLIENT
        elif kind == "helo":
            if ctx.helo is None:
                return DUNNO
            keys = _access_keys_domain(ctx.helo.lower(), self._access_parent)
            reply_class = HELO
        else:
            addr = ctx.sender if kind == "sender" else ctx.recipient
            if addr is None:
                return DUNNO
            reply_class = SENDER if kind == "sender" else RECIPIENT
            if addr == "":
                keys = [self._null_key]
            else:
                # check_mail_access looks up the resolved address, so that
                # user%remote@ours is looked up as user@remote, never as ours.
                r = self.resolve(addr)
                keys = _access_keys_address(r.address, self._access_parent, self._delimiter)
                suspicious = (reply_class == RECIPIENT and r.routed
                              and not self._untrusted_routing)
        for key in keys:
            value = table.lookup(key)
            if value is not None:
                # The first key found decides, even DUNNO (access(5)).
                result = self._access_result(run, info, value.strip(), reply_class)
                # Source-routed recipients are too suspicious for an OK.
                return DUNNO if result is OK and suspicious else result
        return DUNNO

    def _access_result(self, run: _Run, info: _ListInfo, value: str, reply_class: str):
        """Postfix check_table_result: one access(5) action."""
        name = run.reply_name(reply_class)
        word, rest = _WORD_RE.match(value).groups()
        rest = rest.strip()
        upper = word.upper()

        def refused(code: int, default_dsn: str, default_text: str = "Access denied"):
            enhanced, text = split_dsn(rest, default_dsn)
            return code, enhanced, f"<{name}>: {reply_class} rejected: {text or default_text}"

        if upper == "DUNNO":
            return DUNNO
        if upper == "REJECT":
            return self._reject(run, info, *refused(self._codes["access_map_reject_code"], "5.7.1"),
                                reply_class)
        if upper == "DEFER":
            return self._reject(run, info, *refused(self._codes["access_map_defer_code"], "4.7.1"),
                                reply_class)
        if upper in ("INFO", "WARN"):
            run.notes.append(Note(upper.lower(), rest))
            return DUNNO
        if upper in ("FILTER", "REDIRECT", "BCC"):
            # FILTER needs transport:destination, REDIRECT and BCC an address;
            # Postfix ignores a malformed entry with a warning.
            if rest and (":" in rest if upper == "FILTER" else "@" in rest):
                run.notes.append(Note(upper.lower(), f"<{name}>: {reply_class} triggers {upper} {rest}",
                                      rest))
            return DUNNO
        if upper in ("HOLD", "DISCARD"):
            run.notes.append(Note(upper.lower(),
                                  f"<{name}>: {reply_class} {rest or f'triggers {upper} action'}"))
            return OK if upper == "DISCARD" else DUNNO
        if upper == "DEFER_IF_PERMIT":
            return self._defer_if_permit(
                run, info, *refused(self._codes["access_map_defer_code"], "4.7.1", "Service unavailable"),
                reply_class)
        if upper == "DEFER_IF_REJECT":
            code, enhanced, text = refused(self._codes["access_map_defer_code"], "4.7.1",
                                           "Service unavailable")
            if run.defer_if_reject is None:
                run.defer_if_reject = Decision(code, dsn_fix(enhanced, code, reply_class), text,
                                               info.param)
            return DUNNO
        if upper == "PREPEND":
            if re.match(r"^[!-9;-~]+:", rest):
                run.notes.append(Note("prepend", "", rest))
            return DUNNO
        if value.isdigit():
            return OK     # an all-numerical result is OK (pop-before-smtp time stamps)
        if len(word) == 3 and word.isdigit() and word[0] in "45" and rest:
            return self._reject(run, info, *refused(int(word), f"{word[0]}.7.1"), reply_class)
        if upper in ("OK", "RELAY") or not value:
            return OK
        if ":" in value:
            # Postfix: tables inside access maps are a configuration error;
            # define a restriction class instead.
            self.warnings.append(f"access table entry with lookup table: {value}")
            return self._reject(run, info, 451, "4.3.5", CONFIG_ERROR_TEXT)
        # Anything else is a restriction list of its own ("permit_mynetworks, reject").
        steps = self._value_cache.get(value)
        if steps is None:
            names = [x for x in re.split(r"[,\s]+", value) if x]
            before = len(self.warnings)
            steps = self._compile_list(names, info.param)
            if len(self.warnings) > before:
                # Postfix: an unknown action in an access table is a configuration error.
                steps = (self._config_error(value),)
            self._value_cache[value] = steps
        return self._nested(run, info, steps)


def _warn_wrapper(step: Step) -> Step:
    """warn_if_reject: the next restriction's reject only logs reject_warning."""
    def wrapped(run: _Run, info: _ListInfo):
        saved = run.warn_if_reject
        run.warn_if_reject = True
        try:
            result = step(run, info)
        finally:
            run.warn_if_reject = saved
        return DUNNO if isinstance(result, Decision) else result
    return wrapped


def _recipient_keys(local: str, domain: str, delimiter: str, is_local: bool) -> list[str]:
    """mail_addr_find() order: user+ext@dom, user@dom, [user+ext, user,] @dom."""
    locals_ = [local]
    if delimiter:
        base = _strip_extension(local, delimiter)
        if base != local:
            locals_.append(base)
    keys = [f"{lp}@{domain}" for lp in locals_] if domain else []
    if is_local or not domain:
        keys.extend(locals_)
    if domain:
        keys.append("@" + domain)
    return keys


def _found(maps: tuple[Table, ...], keys: list[str]) -> bool:
    return any(t.lookup(k) is not None for t in maps for k in keys)


_LIST_CLASS = {
    "smtpd_client_restrictions": CLIENT,
    "smtpd_helo_restrictions": HELO,
    "smtpd_sender_restrictions": SENDER,
    "smtpd_relay_restrictions": RECIPIENT,
    "smtpd_recipient_restrictions": RECIPIENT,
    "smtpd_data_restrictions": DATA,
}

_SIMPLE: dict[str, Callable[..., Any]] = {
    "permit": Restrictions._permit,
    "reject": Restrictions._reject_all,
    "defer": Restrictions._defer_all,
    "defer_if_permit": Restrictions._defer_if_permit_step,
    "defer_if_reject": Restrictions._defer_if_reject_step,
    "permit_mynetworks": Restrictions._permit_mynetworks,
    "permit_sasl_authenticated": Restrictions._permit_sasl,
    "permit_auth_destination": Restrictions._permit_auth_destination,
    "reject_unauth_destination": Restrictions._reject_unauth_destination,
    "defer_unauth_destination": Restrictions._defer_unauth_destination,
    "reject_non_fqdn_sender": Restrictions._reject_non_fqdn_sender,
    "reject_non_fqdn_recipient": Restrictions._reject_non_fqdn_recipient,
    "reject_invalid_helo_hostname": Restrictions._reject_invalid_helo,
    "reject_invalid_hostname": Restrictions._reject_invalid_helo,
    "reject_non_fqdn_helo_hostname": Restrictions._reject_non_fqdn_helo,
    "reject_non_fqdn_hostname": Restrictions._reject_non_fqdn_helo,
    "reject_unknown_sender_domain": Restrictions._reject_unknown_sender_domain,
    "reject_unknown_recipient_domain": Restrictions._reject_unknown_recipient_domain,
    "reject_unknown_helo_hostname": Restrictions._reject_unknown_helo,
    "reject_unknown_hostname": Restrictions._reject_unknown_helo,
    "reject_unlisted_recipient": Restrictions._reject_unlisted_recipient,
    "reject_unverified_recipient": Restrictions._reject_unlisted_recipient,
    "reject_unlisted_sender": Restrictions._reject_unlisted_sender,
    "reject_plaintext_session": Restrictions._reject_plaintext_session,
    "reject_unknown_client_hostname": Restrictions._reject_unknown_client_hostname,
    "reject_unknown_client": Restrictions._reject_unknown_client_hostname,
    "reject_unknown_reverse_client_hostname": Restrictions._reject_unknown_reverse_client_hostname,
    "reject_sender_login_mismatch": Restrictions._reject_sender_login_mismatch,
    "reject_authenticated_sender_login_mismatch":
        Restrictions._reject_authenticated_sender_login_mismatch,
    "reject_known_sender_login_mismatch": Restrictions._reject_sender_login_mismatch,
    "reject_unauthenticated_sender_login_mismatch":
        Restrictions._reject_unauthenticated_sender_login_mismatch,
}

_DNSBL = frozenset({"reject_rbl_client", "reject_rhsbl_client", "reject_rhsbl_reverse_client",
                    "reject_rhsbl_helo", "reject_rhsbl_sender", "reject_rhsbl_recipient"})

# Restrictions whose work smtpd does itself (pipelining) or that need facts a
# PolicyContext does not carry (client certificates): they never decide here.
_NOT_HERE = frozenset({"reject_unauth_pipelining", "permit_tls_clientcerts",
                       "permit_tls_all_clientcerts"})


def reject_log_text(decision: Decision, ctx: PolicyContext, *, command: str = "RCPT",
                    action: str = "reject", queue_id: str | None = None) -> str:
    """The smtpd log text of a rejected command (Postfix log_whatsup).

    'reject: RCPT from name[addr]: 554 5.7.1 <r>: Relay access denied;
    from=<s> to=<r> proto=ESMTP helo=<h>'. from= and to= appear when the
    context holds a sender / recipient, helo= when the client sent one.
    With queue_id the text starts 'NOQUEUE: ' (or the queue ID); without,
    the caller's logger adds it.
    """
    return _whatsup(action, command, ctx, decision.reply, queue_id)


def note_log_text(note: Note, ctx: PolicyContext, *, command: str = "RCPT",
                  queue_id: str | None = None) -> str:
    """The log text of a Decision note, e.g. 'reject_warning: RCPT from
    name[addr]: 554 5.7.1 <r>: Relay access denied; from=<s> to=<r> ...'."""
    return _whatsup(note.action, command, ctx, note.text, queue_id)


def _whatsup(action: str, command: str, ctx: PolicyContext, text: str, queue_id: str | None) -> str:
    parts = [f"{action}: {command} from {ctx.namaddr}: {text};"]
    if ctx.sender is not None:
        parts.append(f" from=<{ctx.sender}>")
    if ctx.recipient is not None:
        parts.append(f" to=<{ctx.recipient}>")
    if ctx.protocol:
        parts.append(f" proto={ctx.protocol}")
    if ctx.helo is not None:
        parts.append(f" helo=<{ctx.helo}>")
    line = "".join(parts)
    return f"{queue_id}: {line}" if queue_id else line


__all__ = [
    "ACCEPT", "Decision", "DnsStatus", "DomainClass", "Note", "PolicyContext", "Resolved", "Resolver",
    "Restrictions", "dsn_fix", "note_log_text", "reject_log_text", "split_address", "split_dsn",
    "valid_hostaddr", "valid_hostname",
]
