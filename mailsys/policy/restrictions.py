"""restrictions - Postfix SMTP access restrictions, evaluated without I/O.

DESCRIPTION
    Restrictions.from_config(cfg) compiles smtpd_client_restrictions,
    smtpd_helo_restrictions, smtpd_sender_restrictions,
    smtpd_relay_restrictions, smtpd_recipient_restrictions and
    smtpd_data_restrictions and smtpd_end_of_data_restrictions once:
    restriction names become small functions,
    match lists become netmatch matchers, lookup tables are opened once.
    evaluate_rcpt(ctx) then answers one RCPT TO with a Decision, following
    Postfix's SMTPD_ACCESS_README:

    - With smtpd_delay_reject = yes (the default) the client, HELO and sender
      lists are evaluated at RCPT time, in that order, then the relay list,
      then the recipient list (the recipient list first with
      smtpd_relay_before_recipient_restrictions = no, Postfix's order
      before 3.6). Within a list the first restriction that
      permits or rejects decides that list; "permit" only ends its own list,
      a reject anywhere rejects the recipient.
    - After the lists, with smtpd_reject_unlisted_recipient = yes, a
      recipient in a local or virtual domain that no table knows is refused
      (550 5.1.1 <r>: Recipient address rejected: User unknown in local
      recipient table), whatever the lists said, as Postfix does;
      postmaster, MAILER-DAEMON and the double-bounce address of a local
      domain are exempt, and a bare "postmaster" is accepted outright.
    - check_*_access tables act as in access(5) (see access), and a value
      or a list element may name a smtpd_restriction_classes class.
    - Relay control follows Postfix's trivial-rewrite resolver with
      allow_untrusted_routing = no (see resolve): no address form reaches a
      remote domain without being treated as relaying.
    - warn_if_reject turns the next restriction's reject into a
      reject_warning Note; defer_if_permit and defer_if_reject hold a
      deferral until the evaluation ends in a permit or a reject. With
      smtpd_delay_reject = no the client, HELO and sender stages refuse
      only on a reject: a defer_if_permit they end with is handed back as
      Decision.held, and evaluate_rcpt starts with it (ctx.deferred), as
      Postfix's defer_if_permit_client, _helo and _sender.

    Replies are built as Postfix builds them (smtpd_check.c): the DSN class
    is forced to the reply class (a 5xx reply never carries 4.x.x, and
    address detail codes are mapped between sender and recipient like
    smtpd_dsn_fix), and soft_bounce = yes turns every 5xx reject into 4xx.
    reject_log_text() renders the "reject: RCPT from name[addr]: ...; from=<s>
    to=<r> proto=ESMTP helo=<h>" line that pflogsumm and fail2ban read.

    DNS-based restrictions ask an injected resolver callback, domain ->
    DnsStatus, so this package stays pure (see context and dnschecks);
    check_policy_service asks an injected PolicyAnswers callback and raises
    NeedPolicy for a service not asked yet (see service); permit_mx_backup
    asks an injected RecordLookups callback and raises NeedRecords for
    records not looked up yet (see mxbackup); reject_unverified_recipient
    and reject_unverified_sender ask an injected VerifyAnswers callback and
    raise NeedVerify for an address verify was not asked about yet (see
    verify); "sleep N" raises
    NeedPause unless the caller says (paused=) it has made that pause
    already (see needs).
    reject_unauth_pipelining decides on PolicyContext.ill_pipelining. Anything else unknown is
    logged at compile time and answers 451 4.3.5 Server configuration
    error, as Postfix answers an unknown restriction.

    This module holds the compiler and the evaluation loop; the pieces live
    beside it, and every public name of the package is importable from here:

        context     PolicyContext, DnsStatus, Resolver
        decision    Decision, ACCEPT, Note
        replies     reply classes, dsn_fix, split_dsn, reply code defaults
        logtext     reject_log_text, note_log_text
        hostnames   valid_hostname, valid_hostaddr
        resolve     split_address, DomainClass, Resolved, AddressResolver
        params      main.cf values and tables with Postfix defaults
        state       the per-evaluation Run, OK / DUNNO, Step
        evaluate    restrictions on the session's own facts, relay control
        dnschecks   reject_unknown_*_domain / _helo_hostname, DNS lists
        mxbackup    permit_mx_backup
        access      check_*_access lookups and access(5) actions
        server_access  check_*_{mx,ns,a}_access: access by a domain's servers
        users       unlisted recipients and senders, sender login maps
        verify      reject_unverified_recipient, reject_unverified_sender
        service     check_policy_service
        needs       NeedPolicy, NeedRecords, NeedPause, NeedVerify: I/O the caller does
                    before evaluating again

SEE ALSO
    Postfix SMTPD_ACCESS_README, access(5), postconf(5),
    src/smtpd/smtpd_check.c, src/trivial-rewrite/resolve.c.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from typing import Any, Callable, Iterable, Mapping

from mailsys.config.interfaces import own_addresses
from mailsys.errors import ConfigError
from mailsys.ipc.proto.verify import OK as VERIFY_OK
from mailsys.policy import dnschecks, dnsxl, evaluate, mxbackup, server_access, users, verify
from mailsys.policy.access import check_access
from mailsys.policy.context import (DnsStatus, HostRecords, PolicyAnswers, PolicyContext,
                                   RecordLookups, Resolver, VerifyAnswers)
from mailsys.policy.decision import ACCEPT, Decision, Note
from mailsys.policy.hostnames import valid_hostaddr, valid_hostname
from mailsys.policy.logtext import note_log_text, reject_log_text
from mailsys.policy.needs import Need, NeedPause, NeedPolicy, NeedRecords, NeedVerify
from mailsys.policy.netmatch import ClientMatcher, DomainMatcher, Table
from mailsys.policy.params import PARENT_DEFAULT, Tables, TablesOpener, param_value
from mailsys.policy.permit_log import PermitLog, action_class, permit_text
from mailsys.policy.replies import (CLIENT, CODE_DEFAULTS, CONFIG_ERROR_TEXT, DATA, EOD, ETRN, HELO,
                                    RECIPIENT, SENDER, dsn_fix, split_dsn)
from mailsys.policy.resolve import AddressResolver, DomainClass, Resolved, split_address
from mailsys.policy.service import check_policy_service
from mailsys.policy.state import DUNNO, OK, ListInfo, Run, Step, Verdict


# smtpd_check.c: without smtpd_relay_restrictions the recipient list must
# hold one of these, or any client could relay.
_RELAY_GUARDS = ("reject_unauth_destination", "defer_unauth_destination", "reject",
                 "defer", "defer_if_permit")

# Restrictions that take the next list element as their argument.
_TAKES_ARG = frozenset({
    "check_client_access", "check_reverse_client_hostname_access", "check_client_a_access",
    "check_client_mx_access", "check_client_ns_access", "check_reverse_client_hostname_a_access",
    "check_reverse_client_hostname_mx_access", "check_reverse_client_hostname_ns_access",
    "check_helo_access",
    "check_helo_a_access", "check_helo_mx_access", "check_helo_ns_access",
    "check_sender_access", "check_sender_a_access", "check_sender_mx_access",
    "check_sender_ns_access", "check_recipient_access", "check_recipient_a_access",
    "check_recipient_mx_access", "check_recipient_ns_access", "check_policy_service",
    "reject_rbl_client", "reject_rhsbl_client", "reject_rhsbl_sender", "reject_rhsbl_helo",
    "reject_rhsbl_recipient", "reject_rhsbl_reverse_client", "permit_dnswl_client",
    "permit_rhswl_client", "check_ccert_access", "check_sasl_access", "check_etrn_access",
    "sleep",
})

# What the dry run of domains_to_resolve() answers permit_mx_backup and
# reject_unverified_*.
_NO_RECORDS = HostRecords(DnsStatus.NOT_FOUND)
_FOUND = HostRecords(DnsStatus.EXISTS)      # ... and reject_unknown_helo_hostname
_DELIVERABLE = (VERIFY_OK, "")

# smtpd_check.c's words for "sleep" without a number after it.
_SLEEP_WITHOUT_NUMBER = "restriction sleep must be followed by number"

_MAX_NESTING = 20          # access-table values that name restrictions may nest; Postfix stops at 100

_LIST_CLASS = {
    "smtpd_client_restrictions": CLIENT,
    "smtpd_helo_restrictions": HELO,
    "smtpd_sender_restrictions": SENDER,
    "smtpd_relay_restrictions": RECIPIENT,
    "smtpd_recipient_restrictions": RECIPIENT,
    "smtpd_data_restrictions": DATA,
    "smtpd_end_of_data_restrictions": EOD,
    "smtpd_etrn_restrictions": ETRN,
}

_SIMPLE: dict[str, Callable[..., Any]] = {
    "permit": evaluate.permit,
    "reject": evaluate.reject_all,
    "defer": evaluate.defer_all,
    "reject_unauth_pipelining": evaluate.reject_unauth_pipelining,
    "reject_multi_recipient_bounce": evaluate.reject_multi_recipient_bounce,
    "permit_inet_interfaces": evaluate.permit_inet_interfaces,
    "defer_if_permit": evaluate.defer_if_permit_step,
    "defer_if_reject": evaluate.defer_if_reject_step,
    "permit_mynetworks": evaluate.permit_mynetworks,
    "permit_sasl_authenticated": evaluate.permit_sasl,
    "permit_tls_clientcerts": evaluate.permit_tls_clientcerts,
    "permit_tls_all_clientcerts": evaluate.permit_tls_all_clientcerts,
    "permit_auth_destination": evaluate.permit_auth_destination,
    "reject_unauth_destination": evaluate.reject_unauth_destination,
    "defer_unauth_destination": evaluate.defer_unauth_destination,
    "reject_non_fqdn_sender": evaluate.reject_non_fqdn_sender,
    "reject_non_fqdn_recipient": evaluate.reject_non_fqdn_recipient,
    "reject_invalid_helo_hostname": evaluate.reject_invalid_helo,
    "reject_invalid_hostname": evaluate.reject_invalid_helo,
    "reject_non_fqdn_helo_hostname": evaluate.reject_non_fqdn_helo,
    "reject_non_fqdn_hostname": evaluate.reject_non_fqdn_helo,
    "reject_unknown_sender_domain": dnschecks.reject_unknown_sender_domain,
    "permit_mx_backup": mxbackup.permit_mx_backup,
    "reject_unknown_recipient_domain": dnschecks.reject_unknown_recipient_domain,
    "reject_unknown_helo_hostname": dnschecks.reject_unknown_helo,
    "reject_unknown_hostname": dnschecks.reject_unknown_helo,
    "reject_unlisted_recipient": users.reject_unlisted_recipient,
    "reject_unverified_recipient": verify.reject_unverified_recipient,
    "reject_unverified_sender": verify.reject_unverified_sender,
    "reject_unlisted_sender": users.reject_unlisted_sender,
    "reject_plaintext_session": evaluate.reject_plaintext_session,
    "reject_unknown_client_hostname": evaluate.reject_unknown_client_hostname,
    "reject_unknown_client": evaluate.reject_unknown_client_hostname,
    "reject_unknown_reverse_client_hostname": evaluate.reject_unknown_reverse_client_hostname,
    "reject_sender_login_mismatch": users.reject_sender_login_mismatch,
    "reject_authenticated_sender_login_mismatch": users.reject_authenticated_sender_login_mismatch,
    "reject_known_sender_login_mismatch": users.reject_sender_login_mismatch,
    "reject_unauthenticated_sender_login_mismatch":
        users.reject_unauthenticated_sender_login_mismatch,
}


_DNSBL = frozenset({"reject_rbl_client", "reject_rhsbl_client", "reject_rhsbl_reverse_client",
                    "reject_rhsbl_helo", "reject_rhsbl_sender", "reject_rhsbl_recipient"})
_DNSWL = frozenset({"permit_dnswl_client", "permit_rhswl_client"})

# smtpd_check_reject() sends at most 510 characters of reply ("550 5.7.1
# text"), control characters (a TAB in an access table's text) as spaces
# (vstring_truncate(error_text, 510); printable(error_text, ' ')).
REPLY_LIMIT = 510
_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")


def _fit_reply(code: int, enhanced: str, text: str) -> str:
    """A restriction's reply text as smtpd_check_reject() sends it."""
    room = REPLY_LIMIT - len(f"{code} {enhanced} ")
    return _CONTROLS.sub(" ", text[:max(0, room)])


def _raw(cfg: Any, name: str, default: str) -> str:
    """A parameter's text as written (its $names not expanded), or default."""
    try:
        return cfg.raw(name)
    except (AttributeError, KeyError):
        return default


def _permit_logged(step: Step, action: str) -> Step:
    """smtpd_log_access_permit_actions: a permit by this step is noted for the log."""
    def logged(run: Run, info: ListInfo):
        result = step(run, info)
        if result is OK:
            reply_class = action_class(action, info.reply_class)
            run.notes.append(Note("permit", permit_text(action, reply_class,
                                                        run.reply_name(reply_class))))
        return result
    return logged


def _warn_wrapper(step: Step) -> Step:
    """warn_if_reject: the next restriction's reject only logs reject_warning."""
    def wrapped(run: Run, info: ListInfo):
        saved = run.warn_if_reject
        run.warn_if_reject = True
        try:
            result = step(run, info)
        finally:
            run.warn_if_reject = saved
        return DUNNO if isinstance(result, Decision) else result
    return wrapped


class Restrictions:
    """Compiled smtpd restriction lists; see the module docstring."""

    def __init__(self, cfg: Any = None, tables_opener: TablesOpener | None = None, *,
                 overrides: Mapping[str, Any] | None = None) -> None:
        over = dict(overrides or {})

        def get(name: str, default: Any) -> Any:
            return over[name] if name in over else param_value(cfg, name, default)

        self.warnings: list[str] = []
        tables = Tables(tables_opener, cfg)
        self._tables = tables
        parent_params = {x.lower() for x in get("parent_domain_matches_subdomains", PARENT_DEFAULT)}
        self._access_parent = "smtpd_access_maps" in parent_params
        self._codes = {name: int(get(name, d)) for name, d in CODE_DEFAULTS.items()}
        self.soft_bounce = bool(get("soft_bounce", False))
        self.delay_reject = bool(get("smtpd_delay_reject", True))
        # The RCPT lists in the order they run.
        self._rcpt_lists: tuple[str, ...] = (
            ("smtpd_relay_restrictions", "smtpd_recipient_restrictions")
            if get("smtpd_relay_before_recipient_restrictions", True)
            else ("smtpd_recipient_restrictions", "smtpd_relay_restrictions"))
        self.reject_unlisted_recipient = bool(get("smtpd_reject_unlisted_recipient", True))
        self.reject_unlisted_sender = bool(get("smtpd_reject_unlisted_sender", False))
        # receive_override_options = no_unknown_recipient_checks (a content
        # filter's re-injection service): no address is "unknown" here.
        self.unknown_recipient_checks = \
            "no_unknown_recipient_checks" not in get("receive_override_options", ())
        self.show_table = bool(get("show_user_unknown_table_name", True))
        # What the DNS restrictions do with a temporary lookup failure.
        tempfail = str(get("reject_tempfail_action", "defer_if_permit"))
        self.unknown_address_tempfail = str(get("unknown_address_tempfail_action", tempfail))
        self.unknown_helo_tempfail = str(get("unknown_helo_hostname_tempfail_action", tempfail))
        self.unverified = {RECIPIENT: verify.UnverifiedSettings.read(get, "recipient"),
                           SENDER: verify.UnverifiedSettings.read(get, "sender")}
        percent_hack = bool(get("allow_percent_hack", True))
        swap_bangpath = bool(get("swap_bangpath", True))
        resolve_dequoted = bool(get("resolve_dequoted_address", True))
        self._untrusted_routing = bool(get("allow_untrusted_routing", False))
        self._delimiter = str(get("recipient_delimiter", ""))
        self._null_key = str(get("smtpd_null_access_lookup_key", "<>"))
        myhostname = str(get("myhostname", "localhost")).lower()
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
        # permit_mx_backup: the networks a domain's primary MX hosts must be in.
        self.mx_backup_networks = ClientMatcher.compile(
            get("permit_mx_backup_networks", ()), param="permit_mx_backup_networks", opener=tables,
            parent="permit_mx_backup_networks" in parent_params)
        self.local_addresses = own_addresses(get("inet_interfaces", ("all",)),
                                             get("proxy_interfaces", ()),
                                             get("inet_protocols", ("all",)))
        self._addresses = AddressResolver(
            self.mydestination, self.virtual_alias_domains, self.virtual_mailbox_domains,
            self.relay_domains, self.local_addresses, myhostname, percent_hack, swap_bangpath,
            resolve_dequoted, bool(get("resolve_numeric_domain", False)))

        def maps(name: str, default: tuple[str, ...]) -> tuple[Table, ...]:
            return tuple(tables(spec) for spec in get(name, default))

        self._local_rcpt_maps = maps("local_recipient_maps", ("unix:passwd.byname",))
        self._virtual_alias_maps = maps("virtual_alias_maps", ())
        self._virtual_mailbox_maps = maps("virtual_mailbox_maps", ())
        self._relay_rcpt_maps = maps("relay_recipient_maps", ())
        self._relocated_maps = maps("relocated_maps", ())
        self._sender_login_maps = maps("smtpd_sender_login_maps", ())
        self._permit_log = PermitLog.compile(get("smtpd_log_access_permit_actions", ()), tables)
        self._relay_clientcerts = maps("relay_clientcerts", ())
        # The DNSxL reject reply: templates whose $rbl_* names are expanded
        # for each reply, so taken as written.
        self.default_rbl_reply = str(over.get("default_rbl_reply") or _raw(
            cfg, "default_rbl_reply", dnsxl.DEFAULT_RBL_REPLY))
        self._rbl_reply_maps = maps("rbl_reply_maps", ())

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
                               ("smtpd_data_restrictions", ()),
                               ("smtpd_end_of_data_restrictions", ()),
                               ("smtpd_etrn_restrictions", ())):
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

    def evaluate_client(self, ctx: PolicyContext, resolver: Resolver | None = None,
                        policy: PolicyAnswers | None = None, paused: int = 0,
                        records: RecordLookups | None = None,
                      verify: VerifyAnswers | None = None) -> Decision:
        """smtpd_client_restrictions alone (at connect when smtpd_delay_reject = no);
        a defer_if_permit is held for RCPT (Decision.held), as are the two below."""
        return self._evaluate(ctx, resolver, ("smtpd_client_restrictions",), unlisted=False,
                              delegate=False, policy=policy, paused=paused, records=records,
                              verify=verify, hold=True)

    def evaluate_helo(self, ctx: PolicyContext, resolver: Resolver | None = None,
                      policy: PolicyAnswers | None = None, paused: int = 0,
                      records: RecordLookups | None = None,
                      verify: VerifyAnswers | None = None) -> Decision:
        """smtpd_helo_restrictions alone (at HELO/EHLO when smtpd_delay_reject = no)."""
        return self._evaluate(ctx, resolver, ("smtpd_helo_restrictions",), unlisted=False,
                              delegate=False, policy=policy, paused=paused, records=records,
                              verify=verify, hold=True)

    def evaluate_sender(self, ctx: PolicyContext, resolver: Resolver | None = None,
                        policy: PolicyAnswers | None = None, paused: int = 0,
                        records: RecordLookups | None = None,
                      verify: VerifyAnswers | None = None) -> Decision:
        """smtpd_sender_restrictions (and the unlisted-sender check) at MAIL FROM
        when smtpd_delay_reject = no."""
        return self._evaluate(ctx, resolver, ("smtpd_sender_restrictions",), unlisted=False,
                              policy=policy, paused=paused, records=records, verify=verify,
                              hold=True)

    def evaluate_rcpt(self, ctx: PolicyContext, resolver: Resolver | None = None,
                      policy: PolicyAnswers | None = None, paused: int = 0,
                      records: RecordLookups | None = None,
                      verify: VerifyAnswers | None = None) -> Decision:
        """The answer to RCPT TO: ctx.recipient (see the module docstring)."""
        if (ctx.recipient or "").lower() == "postmaster":
            return ACCEPT     # RFC 5321 4.5.1: always accepted, even unqualified
        params = self._rcpt_lists
        if self.delay_reject:
            params = ("smtpd_client_restrictions", "smtpd_helo_restrictions",
                      "smtpd_sender_restrictions") + params
        return self._evaluate(ctx, resolver, params, unlisted=True, policy=policy, paused=paused,
                              records=records, verify=verify)

    def evaluate_data(self, ctx: PolicyContext, resolver: Resolver | None = None,
                      policy: PolicyAnswers | None = None, paused: int = 0,
                      records: RecordLookups | None = None,
                      verify: VerifyAnswers | None = None) -> Decision:
        """smtpd_data_restrictions at DATA."""
        return self._evaluate(ctx, resolver, ("smtpd_data_restrictions",), unlisted=False,
                              policy=policy, paused=paused, records=records, verify=verify)

    def evaluate_eod(self, ctx: PolicyContext, resolver: Resolver | None = None,
                     policy: PolicyAnswers | None = None, paused: int = 0,
                     records: RecordLookups | None = None,
                     verify: VerifyAnswers | None = None) -> Decision:
        """smtpd_end_of_data_restrictions, once the message content is in."""
        return self._evaluate(ctx, resolver, ("smtpd_end_of_data_restrictions",),
                              unlisted=False, policy=policy, paused=paused, records=records,
                              verify=verify)

    def evaluate_etrn(self, ctx: PolicyContext, resolver: Resolver | None = None,
                      policy: PolicyAnswers | None = None, paused: int = 0,
                      records: RecordLookups | None = None,
                      verify: VerifyAnswers | None = None) -> Decision:
        """smtpd_etrn_restrictions for "ETRN ctx.etrn_domain" (replies name
        the domain: "<example.com>: Etrn command rejected: Access denied")."""
        params: tuple[str, ...] = ("smtpd_etrn_restrictions",)
        if self.delay_reject:           # the client and HELO ones were put off until now
            params = ("smtpd_client_restrictions", "smtpd_helo_restrictions") + params
        return self._evaluate(ctx, resolver, params, unlisted=False, delegate=False,
                              policy=policy, paused=paused, records=records, verify=verify)

    def domains_to_resolve(self, ctx: PolicyContext) -> tuple[str, ...]:
        """Names evaluate_rcpt(ctx) may ask the resolver about, in order.

        Found by a dry run that answers every lookup "exists" (every
        policy service DUNNO, every MX record lookup "none", every sleep as
        made); an async caller resolves these first and passes their
        results as the resolver.
        """
        run = Run(ctx, lambda name: DnsStatus.EXISTS, policy=lambda service: "DUNNO",
                  paused=math.inf,
                  records=lambda kind, name: _FOUND if kind == "HOSTNAME" else _NO_RECORDS,
                  verify=lambda address: _DELIVERABLE)
        params = ("smtpd_client_restrictions", "smtpd_helo_restrictions",
                  "smtpd_sender_restrictions") + self._rcpt_lists
        for param in params:
            self._run_list(run, param)
        return tuple(dict.fromkeys(run.lookups))

    def rbl_template(self, zone: str) -> str:
        """The reply template for a DNSxL zone as written ("zone=filter"):
        rbl_reply_maps', else default_rbl_reply."""
        for table in self._rbl_reply_maps:
            found = table.lookup(zone)
            if found is not None:
                return found
        return self.default_rbl_reply

    def resolve(self, addr: str) -> Resolved:
        """Where addr goes, after Postfix's trivial-rewrite address tricks (see resolve)."""
        return self._addresses.resolve(addr)

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
                    self.warnings.append(_SLEEP_WITHOUT_NUMBER if lname == "sleep" else
                                         f"restriction {name} in {param} requires a table argument")
                    steps.append(self._config_error(f"{name} without argument"))
                    continue
            if lname == "warn_if_reject":
                warn_next = True
                continue
            step = self._step(lname, arg, param)
            if self._permit_log is not None and (lname == "permit" or lname.startswith("permit_")) \
                    and self._permit_log.wants(name):
                step = _permit_logged(step, name)
            if warn_next:
                steps.append(_warn_wrapper(step))
                warn_next = False
            else:
                steps.append(step)
        return tuple(steps)

    def _config_error(self, why: str) -> Step:
        def step(run: Run, info: ListInfo) -> Decision:
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
            if kind in ("client", "helo", "sender", "recipient", "ccert", "sasl", "etrn"):
                table = self._tables(arg)
                return lambda run, info: check_access(self, run, info, kind, table, arg)
            if kind == "reverse_client_hostname":
                table = self._tables(arg)
                return lambda run, info: server_access.forbid_allowlist(
                    self, run, info, name, run.ctx.reverse_name,
                    check_access(self, run, info, kind, table, arg))
            who, _, rtype = kind.rpartition("_")
            if who in server_access.CLASSES and rtype in server_access.TYPES:
                table = self._tables(arg)
                return lambda run, info: server_access.check_server_access(
                    self, run, info, name, who, rtype, table, arg)
        if (name in _DNSBL or name in _DNSWL) and arg is not None:
            try:
                zone = dnsxl.Zone.parse(arg)
            except ValueError as e:
                # Postfix's smtpd stops: "fatal: RBL reply error: ..."
                self.warnings.append(f"RBL reply error: {e}")
                return self._config_error(name)
            check = dnsxl.dnsbl if name in _DNSBL else dnsxl.dnswl
            return lambda run, info: check(self, run, info, name, zone)
        if name == "check_policy_service" and arg is not None:
            return lambda run, info: check_policy_service(self, run, info, arg)
        if name == "sleep" and arg is not None:
            if not re.fullmatch(r"[0-9]+", arg):
                self.warnings.append(_SLEEP_WITHOUT_NUMBER)
                return self._config_error(name)
            seconds = int(arg)
            return lambda run, info: evaluate.sleep_step(self, run, info, seconds)
        self.warnings.append(f"unknown smtpd restriction: \"{name}\" in {param}")
        return self._config_error(name)

    def _run_class(self, run: Run, info: ListInfo, name: str):
        """A restriction class, compiled on first use (classes may name each other)."""
        steps = self._class_steps.get(name)
        if steps is None:
            self._class_steps[name] = ()            # a class naming itself finds nothing
            steps = self._compile_list(self._classes[name], name)
            self._class_steps[name] = steps
        return self._nested(run, info, steps)

    def _nested(self, run: Run, info: ListInfo, steps: tuple[Step, ...]):
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
                  *, unlisted: bool, delegate: bool = True,
                  policy: PolicyAnswers | None = None, paused: int = 0,
                  records: RecordLookups | None = None,
                  verify: VerifyAnswers | None = None, hold: bool = False) -> Decision:
        run = Run(ctx, resolver, delegate, policy, paused, records, verify)
        for param in params:
            result = self._run_list(run, param)
            if isinstance(result, Decision):
                return self._with_notes(result, run)
            if param == "smtpd_sender_restrictions" and self.reject_unlisted_sender \
                    and ctx.sender:
                result = users.unlisted(self, run, ListInfo("smtpd_reject_unlisted_sender", SENDER),
                                        ctx.sender)
                if isinstance(result, Decision):
                    return self._with_notes(result, run)
        if run.defer_if_permit is not None:
            if hold:        # smtpd_check_client/helo/mail() refuse only on a reject
                return self._with_notes(replace(ACCEPT, held=run.defer_if_permit), run)
            return self._with_notes(run.defer_if_permit, run)
        if unlisted and self.reject_unlisted_recipient and ctx.recipient is not None:
            result = users.unlisted(self, run, ListInfo("smtpd_reject_unlisted_recipient", RECIPIENT),
                                    ctx.recipient)
            if isinstance(result, Decision):
                return self._with_notes(result, run)
        return self._with_notes(ACCEPT, run)

    @staticmethod
    def _with_notes(decision: Decision, run: Run) -> Decision:
        return replace(decision, notes=tuple(run.notes)) if run.notes else decision

    def _run_list(self, run: Run, param: str) -> "Verdict | Decision":
        info = ListInfo(param, _LIST_CLASS[param])
        return self._run_steps(run, info, self.lists[param])

    def _run_steps(self, run: Run, info: ListInfo, steps: tuple[Step, ...]) -> "Verdict | Decision":
        for step in steps:
            result = step(run, info)
            if result is not DUNNO:
                return result
        return DUNNO

    def _reject(self, run: Run, info: ListInfo, code: int, enhanced: str, text: str,
                reply_class: str | None = None) -> "Decision | Verdict":
        """Postfix smtpd_check_reject(), in its order: the reply cut to 510
        characters and made printable, a 5xx turned into the deferral
        defer_if_reject holds, then soft_bounce and the DSN fix."""
        text = _fit_reply(code, enhanced, text)
        if not run.warn_if_reject and code // 100 == 5 and run.defer_if_reject is not None:
            return run.defer_if_reject
        if self.soft_bounce and code // 100 == 5:
            code -= 100
        decision = Decision(code, dsn_fix(enhanced, code, reply_class or info.reply_class), text,
                            info.param)
        if run.warn_if_reject:
            run.notes.append(Note("reject_warning", decision.reply))
            return DUNNO
        return decision

    def _defer_if_reject(self, run: Run, info: ListInfo, code: int, enhanced: str, text: str,
                         reply_class: str | None = None) -> None:
        """Postfix DEFER_IF_REJECT: a later 5xx reject becomes this deferral
        (the first reason is kept)."""
        if run.defer_if_reject is None:
            run.defer_if_reject = Decision(code, dsn_fix(enhanced, code, reply_class or info.reply_class),
                                           _fit_reply(code, enhanced, text), info.param)

    def _tempfail(self, run: Run, info: ListInfo, action: str, code: int, enhanced: str,
                  text: str, reply_class: str | None = None) -> "Decision | Verdict":
        """A lookup failed temporarily: Postfix's DEFER_IF_PERMIT2, by the
        *_tempfail_action in force (defer: reject now; defer_if_permit:
        only if nothing rejects later)."""
        if action == "defer":
            return self._reject(run, info, code, enhanced, text, reply_class)
        return self._defer_if_permit(run, info, code, enhanced, text, reply_class)

    def _defer_if_permit(self, run: Run, info: ListInfo, code: int, enhanced: str, text: str,
                         reply_class: str | None = None) -> Verdict:
        if run.defer_if_permit is None:
            run.defer_if_permit = Decision(code, dsn_fix(enhanced, code, reply_class or info.reply_class),
                                           text, info.param)
        return DUNNO


__all__ = [
    "ACCEPT", "Decision", "DnsStatus", "DomainClass", "HostRecords", "Need", "NeedPause",
    "NeedPolicy", "NeedRecords", "NeedVerify", "Note", "PolicyAnswers", "RecordLookups",
    "PolicyContext", "Resolved", "Resolver", "Restrictions", "dsn_fix", "note_log_text",
    "reject_log_text", "split_address", "split_dsn", "valid_hostaddr", "valid_hostname",
]
