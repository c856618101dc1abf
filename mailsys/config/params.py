"""params - the one table of main.cf parameters mailsys honours.

Every parameter mailsys reads is declared here once, as Postfix declares it
once in mail_params.h: its name, value type (mailsys.config.values), the
default as Postfix's own default text (``$myhostname ESMTP $mail_name``,
expanded at use time like any other value), a one-line meaning, and bounds.
Nothing else in mailsys holds a default for a parameter.

A few defaults cannot be written as text and are computed on first use:
myhostname (the system's FQDN), mydomain (myhostname minus its first label)
and mynetworks (the networks of the inet_interfaces addresses by
mynetworks_style, mailsys.config.interfaces). config_directory defaults to the directory
the configuration was read from.

Deliberate differences from Postfix 3.7, each for a reason given at its
entry: syslog_name and mail_name default to "mailsys", compatibility_level
defaults to 3.6 (mailsys has no pre-3.6 behaviour to stay compatible with),
queue_directory / data_directory / maillog_file name mailsys paths.

Queue-manager parameters also exist per transport, named after the master.cf
service (``slow_destination_concurrency_limit``); param() makes those on
demand with ``$default_destination_...`` as the default, as Postfix does.

Pure: the computed defaults ask mailsys.config.host, and only when first
needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from mailsys import __version__
from mailsys.config import host, interfaces
from mailsys.config.values import Bool, Int, List, Size, Str, Time, ValueType, split_list

# A computed default receives a function that returns the expanded value of
# another parameter (mydomain needs the effective myhostname).
Compute = Callable[[Callable[[str], str]], str]


@dataclass(frozen=True, slots=True)
class Param:
    """One main.cf parameter."""
    name: str
    type: ValueType
    default: str
    doc: str
    min: float | None = None
    max: float | None = None
    unit: str = "s"                 # Time only: the unit of a bare number
    compute: Compute | None = None  # default computed at run time
    choices: tuple[str, ...] = ()   # Str / List: the only words allowed
    raw: bool = False               # never $name-expanded (Postfix's raw parameters:
                                    # the program that reads it expands its own names)


def _myhostname(value: Callable[[str], str]) -> str:
    return host.fqdn()


def _mydomain(value: Callable[[str], str]) -> str:
    # Postfix: "$myhostname minus the first component", or "localdomain".
    _, dot, rest = value("myhostname").partition(".")
    return rest if dot and rest else "localdomain"


def _mynetworks(value: Callable[[str], str]) -> str:
    # Postfix's mynetworks.c: the networks of the addresses inet_interfaces
    # names, by mynetworks_style.
    return " ".join(interfaces.mynetworks(split_list(value("inet_interfaces")),
                                          split_list(value("inet_protocols")),
                                          value("mynetworks_style")))


# The address classes of canonical_classes and masquerade_classes.
ADDRESS_CLASSES = ("envelope_sender", "envelope_recipient", "header_sender", "header_recipient")

P = Param
_TABLE: tuple[Param, ...] = (
    # --- identity and routing (postfix-compat.md 2.1) ---
    P("myhostname", Str, "", "Internet hostname of this mail system (default: the system FQDN)",
      compute=_myhostname),
    P("mydomain", Str, "", "Internet domain of this mail system (default: $myhostname minus its first label)",
      compute=_mydomain),
    P("myorigin", Str, "$myhostname", "Domain that locally-posted mail appears to come from"),
    P("mydestination", List, "$myhostname, localhost.$mydomain, localhost",
      "Domains delivered locally by $local_transport"),
    P("mynetworks", List, "", "Trusted client networks (default: loopback plus this host's addresses)",
      compute=_mynetworks),
    P("mynetworks_style", Str, "${{$compatibility_level} <level {2} ? {subnet} : {host}}",
      "How the default mynetworks is derived: host, subnet or class",
      choices=("host", "subnet", "class")),
    P("inet_interfaces", List, "all", "Addresses smtpd listens on: all, loopback-only or a list"),
    P("inet_protocols", List, "all", "Address families used: all, ipv4, ipv6",
      choices=("all", "ipv4", "ipv6")),
    P("proxy_interfaces", List, "",
      "Addresses of proxies or NAT that forward to this system; mail to them is local"),
    P("relayhost", Str, "", "Next hop for non-local mail; [host]:port skips the MX lookup"),
    P("sender_dependent_relayhost_maps", List, "",
      "Lookup tables from envelope sender to a relayhost that overrides $relayhost"),
    P("sender_dependent_default_transport_maps", List, "",
      "Lookup tables from envelope sender to a transport that overrides $default_transport"),
    P("empty_address_relayhost_maps_lookup_key", Str, "<>",
      "The sender_dependent_relayhost_maps key of the null sender"),
    P("empty_address_default_transport_maps_lookup_key", Str, "<>",
      "The sender_dependent_default_transport_maps key of the null sender"),
    P("relay_domains", List, "${{$compatibility_level} <level {2} ? {$mydestination} : {}}",
      "Domains this system relays mail to"),
    # mailsys has no behaviour from before Postfix 3.6 to stay compatible with.
    P("compatibility_level", Str, "3.6", "Postfix compatibility level that selects the <level defaults"),
    P("transport_maps", List, "", "Lookup tables mapping recipient or domain to transport:nexthop"),
    P("default_transport", Str, "smtp", "Transport for mail not matched elsewhere"),
    P("local_transport", Str, "local:$myhostname", "Transport for domains in $mydestination"),
    P("relay_transport", Str, "relay", "Transport for domains in $relay_domains"),
    P("virtual_transport", Str, "virtual", "Transport for domains in $virtual_mailbox_domains"),
    P("virtual_mailbox_base", Str, "", "Directory prefix of every virtual mailbox path"),
    P("virtual_mailbox_maps", List, "", "Lookup tables from virtual recipient to mailbox path"),
    P("virtual_mailbox_domains", List, "$virtual_mailbox_maps", "Domains delivered to virtual mailboxes"),
    P("virtual_alias_maps", List, "", "Lookup tables rewriting recipients to other addresses"),
    P("virtual_alias_domains", List, "$virtual_alias_maps", "Domains whose every address is an alias"),
    P("virtual_alias_recursion_limit", Int, "1000", "Deepest nesting of a virtual alias expansion",
      min=1),
    P("virtual_alias_expansion_limit", Int, "1000",
      "Most addresses one virtual alias expansion may give", min=1),
    P("virtual_alias_address_length_limit", Int, "1000",
      "Longest address a virtual alias expansion may give", min=1),
    P("canonical_maps", List, "", "Lookup tables rewriting sender and recipient addresses"),
    P("sender_canonical_maps", List, "", "Lookup tables rewriting sender addresses"),
    P("recipient_canonical_maps", List, "", "Lookup tables rewriting recipient addresses"),
    P("canonical_classes", List, "envelope_sender, envelope_recipient, header_sender, header_recipient",
      "Addresses canonical_maps rewrites", choices=ADDRESS_CLASSES),
    P("sender_canonical_classes", List, "envelope_sender, header_sender",
      "Addresses sender_canonical_maps rewrites", choices=ADDRESS_CLASSES),
    P("recipient_canonical_classes", List, "envelope_recipient, header_recipient",
      "Addresses recipient_canonical_maps rewrites", choices=ADDRESS_CLASSES),
    P("masquerade_domains", List, "", "Domains whose subdomains are hidden in addresses"),
    P("masquerade_classes", List, "envelope_sender, header_sender, header_recipient",
      "Addresses masquerade_domains rewrites", choices=ADDRESS_CLASSES),
    P("masquerade_exceptions", List, "", "User names whose addresses are never masqueraded"),
    P("propagate_unmatched_extensions", List, "canonical, virtual",
      "Mappings that carry an unmatched address extension into their result",
      choices=("canonical", "virtual", "alias", "forward", "include", "generic")),
    P("always_bcc", Str, "", "Address that gets a blind copy of every message"),
    P("sender_bcc_maps", List, "", "Lookup tables from sender address to a blind copy address"),
    P("recipient_bcc_maps", List, "", "Lookup tables from recipient address to a blind copy address"),
    P("receive_override_options", List, "", "Processing switched off for mail received here",
      choices=("no_unknown_recipient_checks", "no_address_mappings", "no_header_body_checks",
               "no_milters")),
    P("virtual_minimum_uid", Int, "100", "Lowest uid the virtual delivery agent accepts", min=1),
    P("virtual_uid_maps", List, "", "Lookup tables giving the uid of each virtual mailbox"),
    P("virtual_gid_maps", List, "", "Lookup tables giving the gid of each virtual mailbox"),
    P("virtual_mailbox_limit", Size, "51200000", "Largest virtual mailbox file (0: no limit)", min=0),
    P("relay_recipient_maps", List, "", "Lookup tables of valid recipients in $relay_domains"),
    P("relocated_maps", List, "",
      "Lookup tables of addresses that moved: mail to them bounces with the new address"),
    P("permit_mx_backup_networks", List, "",
      "Networks a domain's primary MX hosts must be in for permit_mx_backup (empty: any)"),
    # Postfix's default is "proxy:unix:passwd.byname $alias_maps"; mailsys reads
    # unix: tables directly.
    P("local_recipient_maps", List, "unix:passwd.byname $alias_maps",
      "Lookup tables of valid local recipients (empty: accept any)"),
    # Postfix's default is "hash:/etc/aliases, nis:mail.aliases": neither table type exists here.
    P("alias_maps", List, "", "Lookup tables of local aliases"),
    # Postfix's default is "hash:/etc/aliases"; empty like alias_maps so that
    # the shipped, unprivileged setup compiles nothing under /etc.
    P("alias_database", List, "", "Alias tables that newaliases compiles"),
    P("allow_mail_to_commands", List, "alias, forward",
      "Where local delivery may run |command destinations (alias, forward, include)",
      choices=("alias", "forward", "include")),
    P("allow_mail_to_files", List, "alias, forward",
      "Where local delivery may append to /file destinations (alias, forward, include)",
      choices=("alias", "forward", "include")),
    P("default_privs", Str, "nobody", "User whose rights alias commands and files get"),
    P("command_time_limit", Time, "1000s",
      "Longest run of a delivery command (local, and pipe's <transport>_time_limit default),"
      " and of a spawn service's command", min=1),
    P("owner_request_special", Bool, "yes",
      "owner-name and name-request addresses get special treatment"),
    P("expand_owner_alias", Bool, "no",
      "An owner-name alias's value, not owner-name itself, becomes the sender"),
    P("duplicate_filter_limit", Int, "1000",
      "Most addresses local delivery remembers to drop duplicates", min=0),
    P("export_environment", List, "TZ MAIL_CONFIG LANG",
      "Environment variables passed to delivery commands"),
    P("local_command_shell", Str, "", "Shell for |command destinations (empty: /bin/sh)"),
    # mailbox_command and luser_relay are raw, as in Postfix: $EXTENSION in
    # the one is the shell's, $user in the other local(8)'s.
    P("mailbox_transport", Str, "", "Transport that local mailbox delivery is handed to"),
    P("mailbox_transport_maps", List, "",
      "Lookup tables: user name to the transport of its mailbox delivery"),
    P("mailbox_command", Str, "", "Command that local mailbox delivery runs as the user",
      raw=True),
    P("mailbox_command_maps", List, "", "Lookup tables: user name to its mailbox command"),
    P("fallback_transport", Str, "", "Transport for local recipients without a mailbox"),
    P("fallback_transport_maps", List, "",
      "Lookup tables: user name to the transport for a recipient without a mailbox"),
    P("luser_relay", Str, "", "Address that mail for unknown local recipients goes to",
      raw=True),
    P("forward_path", List, "$home/.forward${recipient_delimiter}${extension}, $home/.forward",
      "Where local delivery looks for a user's .forward file", raw=True),
    P("command_execution_directory", Str, "",
      "Working directory of local(8) commands ($user, $home, ... expanded per delivery)", raw=True),
    P("execution_directory_expansion_filter", Str,
      "1234567890!@%-_=+:,./abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
      "Characters allowed in an expanded command_execution_directory"),
    P("command_expansion_filter", Str,
      "1234567890!@%-_=+:,./abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
      "Characters allowed in the environment values of delivery commands"),
    P("mailbox_size_limit", Size, "51200000", "Largest local mailbox file (0: no limit)", min=0),
    P("home_mailbox", Str, "", "Mailbox path relative to home; ending in / means Maildir"),
    P("mail_spool_directory", Str, "/var/mail", "Directory of local UNIX-style mailboxes or Maildirs"),
    # Postfix's defaults on Linux (sys_defs.h NATIVE_MAILBOX_LOCK): kernel fcntl locks
    # plus a file.lock beside the mailbox, which MUAs on a shared /var/mail also take.
    P("mailbox_delivery_lock", List, "fcntl, dotlock",
      "How the local agent locks a UNIX-style mailbox (flock, fcntl, dotlock)",
      choices=("flock", "fcntl", "dotlock")),
    P("virtual_mailbox_lock", List, "fcntl, dotlock",
      "How the virtual agent locks a UNIX-style mailbox (flock, fcntl, dotlock)",
      choices=("flock", "fcntl", "dotlock")),
    P("deliver_lock_attempts", Int, "20", "Attempts to lock a mailbox before deferring", min=1),
    P("deliver_lock_delay", Time, "1s", "Time between attempts to lock a mailbox", min=1),
    P("stale_lock_time", Time, "500s", "Age after which a mailbox .lock file is removed as stale",
      min=1),
    P("recipient_delimiter", Str, "", "Characters separating a user name from an address extension"),
    P("append_dot_mydomain", Bool, "${{$compatibility_level} <level {1} ? {yes} : {no}}",
      "Append .$mydomain to addresses whose domain has no dot"),
    P("append_at_myorigin", Bool, "yes", "Append @$myorigin to addresses without a domain"),
    P("allow_percent_hack", Bool, "yes", "Rewrite user%domain to user@domain"),
    P("swap_bangpath", Bool, "yes", "Rewrite site!user to user@site"),
    P("resolve_dequoted_address", Bool, "yes",
      "Resolve a quoted address after removing the quotes (\"user@domain\"@here goes to domain)"),
    # Postfix writes this default with bare commas; the text is kept as postconf -d prints it.
    P("parent_domain_matches_subdomains", List,
      "debug_peer_list,fast_flush_domains,mynetworks,permit_mx_backup_networks,"
      "qmqpd_authorized_clients,relay_domains,smtpd_access_maps",
      "Parameters in which a domain name also matches its subdomains (else write .domain)"),
    P("dns_nameservers", List, "",
      "Name servers as address[:port] for DNS lookups (mailsys); empty means /etc/resolv.conf"),
    # --- names and paths ---
    P("mail_name", Str, "mailsys", "Mail system name shown in the greeting and Received headers"),
    P("mail_version", Str, "", "The mail system's version (read-only; milters see it in {v})",
      compute=lambda value: __version__),
    P("mail_owner", Str, "mailsys", "Account that owns the queue and runs unprivileged daemons"),
    P("config_directory", Str, "", "Directory holding main.cf and master.cf (default: the one read)"),
    P("daemon_directory", Str, "services",
      "Where daemon programs live; mailsys runs master.cf commands as python -m services.COMMAND"),
    P("queue_directory", Str, "/var/spool/mailsys", "Directory of the queue store and service sockets"),
    P("data_directory", Str, "/var/lib/mailsys", "Directory for caches and other writable state"),
    P("process_id_directory", Str, "pid", "Directory of pid files, relative to $queue_directory"),
    P("multi_instance_name", Str, "", "Name of this instance when several run on one host"),
    P("stress", Str, "", "Set to yes by the master while a service is overloaded"),
    P("syslog_name", Str, "${multi_instance_name?{$multi_instance_name}:{mailsys}}",
      "Prefix of the log tag, as in mailsys/smtpd[pid]"),
    P("syslog_facility", Str, "mail", "Syslog facility of log records"),
    P("maillog_file", Str, "/var/log/mailsys/mail.log", "File postlogd writes mail.log lines to"),
    P("postlog_service_name", Str, "postlog", "master.cf name of the postlogd unix-dgram service"),
    P("enable_long_queue_ids", Bool, "no", "Use long, non-repeating queue IDs"),
    P("authorized_mailq_users", List, "static:anyone", "Users allowed to view the queue"),
    P("authorized_flush_users", List, "static:anyone", "Users allowed to flush the queue"),
    P("authorized_submit_users", List, "static:anyone", "Users allowed to submit mail with sendmail"),
    # --- processes (2.5) ---
    P("default_process_limit", Int, "100", "maxproc of a master.cf service whose column says -", min=1),
    P("max_idle", Time, "100s", "Time an idle daemon waits for a client before it exits", min=1),
    P("max_use", Int, "100", "Clients a daemon serves before it exits", min=1),
    P("service_throttle_time", Time, "60s", "Pause before restarting a service that fails at once", min=1),
    P("daemon_timeout", Time, "18000s", "Time limit for a daemon to handle one request", min=1),
    P("trigger_timeout", Time, "10s", "Time limit for sending a trigger to a service", min=1),
    P("in_flow_delay", Time, "1s", "Pause of a mail-receiving process while the queue is full", min=0),
    P("ipc_timeout", Time, "3600s", "Time limit for one exchange with another mailsys service", min=1),
    P("ipc_idle", Time, "5s", "Time a client keeps an idle connection to a service open", min=1),
    P("master_service_disable", List, "", "master.cf services not to start, as name/type"),
    # --- smtpd (2.2) ---
    P("smtpd_banner", Str, "$myhostname ESMTP $mail_name", "Text after 220 in the SMTP greeting"),
    P("smtpd_recipient_limit", Int, "1000", "Recipients accepted per message", min=1),
    P("smtpd_recipient_overshoot_limit", Int, "1000",
      "Recipients refused with 452 before each further one counts as an error", min=0),
    P("message_size_limit", Size, "10240000", "Largest message accepted, header and body, in bytes (0: no limit)", min=0),
    P("header_size_limit", Size, "102400", "Largest message header accepted, in bytes", min=1),
    P("line_length_limit", Int, "2048", "Longest line kept whole; longer ones are split", min=1),
    P("hopcount_limit", Int, "50", "Received headers allowed before a message is bounced", min=1),
    P("smtpd_client_connection_count_limit", Int, "50", "Simultaneous sessions per client (0: none)", min=0),
    P("smtpd_client_connection_rate_limit", Int, "0", "Connects per client per $anvil_rate_time_unit", min=0),
    P("smtpd_client_message_rate_limit", Int, "0", "MAIL commands per client per time unit", min=0),
    P("smtpd_client_recipient_rate_limit", Int, "0", "RCPT commands per client per time unit", min=0),
    P("smtpd_client_new_tls_session_rate_limit", Int, "0", "New TLS sessions per client per time unit",
      min=0),
    P("smtpd_client_auth_rate_limit", Int, "0", "AUTH commands per client per time unit", min=0),
    P("smtpd_client_connection_limit_exceptions", List, "",
      "Older name of smtpd_client_event_limit_exceptions"),
    P("smtpd_client_event_limit_exceptions", List, "${smtpd_client_connection_limit_exceptions:$mynetworks}",
      "Clients exempt from the connection and rate limits"),
    P("anvil_rate_time_unit", Time, "60s", "Window of the anvil rate limits", min=1),
    P("anvil_status_update_time", Time, "600s", "Interval of anvil statistics log lines", min=1),
    P("smtpd_timeout", Time, "${stress?{10}:{300}}s", "Time limit to read a command or send a reply", min=1),
    P("smtpd_starttls_timeout", Time, "${stress?{10}:{300}}s", "Time limit for the TLS handshake after STARTTLS",
      min=1),
    P("smtpd_policy_service_timeout", Time, "100s", "Time limit for a policy service request", min=1),
    P("smtpd_policy_service_max_idle", Time, "300s",
      "Time after which an idle policy service connection is closed", min=1),
    P("smtpd_policy_service_max_ttl", Time, "1000s",
      "Time after which an active policy service connection is closed", min=1),
    P("smtpd_policy_service_request_limit", Int, "0",
      "Requests per policy service connection before it is closed (0: no limit)", min=0),
    P("smtpd_policy_service_try_limit", Int, "2", "Attempts to send a policy service request", min=1),
    P("smtpd_policy_service_retry_delay", Time, "1s", "Delay between policy service attempts", min=1),
    P("smtpd_policy_service_default_action", Str, "451 4.3.5 Server configuration problem",
      "Action when a policy service cannot be reached"),
    P("smtpd_policy_service_policy_context", Str, "",
      "Text sent as policy_context in every policy service request"),
    P("smtpd_hard_error_limit", Int, "${stress?{1}:{20}}", "Errors before smtpd disconnects", min=1),
    P("smtpd_soft_error_limit", Int, "10", "Errors before each reply is delayed", min=0),
    P("smtpd_error_sleep_time", Time, "1s", "Delay of each reply after $smtpd_soft_error_limit errors", min=0),
    P("smtpd_junk_command_limit", Int, "${stress?{1}:{100}}",
      "HELO/EHLO/NOOP/VRFY/ETRN/RSET commands before they count as errors", min=1),
    P("smtpd_helo_required", Bool, "no", "Require HELO or EHLO before MAIL"),
    P("smtpd_delay_reject", Bool, "yes", "Report client, HELO and sender rejections at RCPT"),
    P("smtpd_client_restrictions", List, "", "Restrictions on the client address"),
    P("smtpd_helo_restrictions", List, "", "Restrictions on the HELO/EHLO name"),
    P("smtpd_sender_restrictions", List, "", "Restrictions on the MAIL FROM address"),
    P("smtpd_relay_restrictions", List,
      "${{$compatibility_level} <level {1} ? {} : "
      "{permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination}}",
      "Relay control, applied before smtpd_recipient_restrictions"),
    P("smtpd_recipient_restrictions", List, "", "Restrictions on RCPT TO"),
    P("smtpd_data_restrictions", List, "", "Restrictions applied at DATA"),
    P("smtpd_end_of_data_restrictions", List, "", "Restrictions applied after the message content"),
    P("smtpd_etrn_restrictions", List, "", "Restrictions on the ETRN command"),
    P("authorized_verp_clients", List, "", "Older name of smtpd_authorized_verp_clients"),
    P("smtpd_authorized_verp_clients", List, "$authorized_verp_clients",
      "Clients that may use XVERP (variable envelope return paths)"),
    P("default_verp_delimiters", Str, "+=",
      "The two VERP delimiters of XVERP and sendmail -V without their own"),
    P("verp_delimiter_filter", Str, "-=+", "The characters allowed as VERP delimiters"),
    P("disable_verp_bounces", Bool, "no",
      "One bounce to the plain sender for a VERP message, not one per recipient to its own"),
    P("fast_flush_domains", List, "$relay_domains",
      "Domains whose deferred mail ETRN may flush (the flush service's)"),
    P("flush_service_name", Str, "flush", "The master.cf name of the fast flush service"),
    P("smtpd_restriction_classes", List, "",
      "Names of parameters holding restriction lists usable by name in access tables"),
    P("smtpd_sender_login_maps", List, "",
      "Tables of the SASL login names that own each envelope sender address"),
    P("smtpd_null_access_lookup_key", Str, "<>", "Access table key used for the null sender address"),
    P("allow_untrusted_routing", Bool, "no",
      "Let untrusted clients relay through addresses with sender-specified routing (user@a@b, a!b, %)"),
    P("show_user_unknown_table_name", Bool, "yes",
      "Name the recipient table in \"User unknown in ... table\" replies"),
    # Reply codes of the restrictions (Postfix DEF_*_CODE).
    P("reject_tempfail_action", Str, "defer_if_permit",
      "Default action of a restriction whose lookup failed temporarily",
      choices=("defer", "defer_if_permit")),
    P("reject_code", Int, "554", "Reply code of the reject restriction", min=400, max=599),
    P("defer_code", Int, "450", "Reply code of defer and defer_if_permit", min=400, max=599),
    P("relay_domains_reject_code", Int, "554", "Reply code of reject_unauth_destination",
      min=400, max=599),
    P("access_map_reject_code", Int, "554", "Reply code of an access table REJECT", min=400, max=599),
    P("access_map_defer_code", Int, "450", "Reply code of an access table DEFER", min=400, max=599),
    P("multi_recipient_bounce_reject_code", Int, "550",
      "Reply code of reject_multi_recipient_bounce", min=400, max=599),
    P("unknown_address_reject_code", Int, "450",
      "Reply code when a sender or recipient domain has no DNS A or MX record", min=400, max=599),
    P("unknown_hostname_reject_code", Int, "450",
      "Reply code when the HELO name has no DNS A or MX record", min=400, max=599),
    P("non_fqdn_reject_code", Int, "504", "Reply code of the reject_non_fqdn_* restrictions",
      min=400, max=599),
    P("invalid_hostname_reject_code", Int, "501", "Reply code of reject_invalid_helo_hostname",
      min=400, max=599),
    P("unknown_local_recipient_reject_code", Int, "550",
      "Reply code for a recipient in $mydestination that local_recipient_maps lacks", min=400, max=599),
    P("unknown_virtual_mailbox_reject_code", Int, "550",
      "Reply code for a recipient that virtual_mailbox_maps lacks", min=400, max=599),
    P("unknown_virtual_alias_reject_code", Int, "550",
      "Reply code for a recipient in $virtual_alias_domains that virtual_alias_maps lacks",
      min=400, max=599),
    P("unknown_relay_recipient_reject_code", Int, "550",
      "Reply code for a recipient that relay_recipient_maps lacks", min=400, max=599),
    P("unknown_client_reject_code", Int, "450",
      "Reply code of reject_unknown_client_hostname and reject_unknown_reverse_client_hostname",
      min=400, max=599),
    P("plaintext_reject_code", Int, "450",
      "Reply code of reject_plaintext_session", min=400, max=599),
    P("maps_rbl_reject_code", Int, "554",
      "Reply code of reject_rbl_client and the other DNS blocklist restrictions", min=400, max=599),
    P("default_rbl_reply", Str,
      "$rbl_code Service unavailable; $rbl_class [$rbl_what] blocked using "
      "$rbl_domain${rbl_reason?; $rbl_reason}",
      "The reply template of reject_rbl_client and reject_rhsbl_* ($rbl_code, $rbl_class, "
      "$rbl_what, $rbl_domain, $rbl_reason)", raw=True),
    P("rbl_reply_maps", List, "",
      "Tables from a DNS list zone (as written, =filter included) to its reply template"),
    P("smtpd_reject_unlisted_recipient", Bool, "yes", "Reject recipients no table knows"),
    P("smtpd_reject_unlisted_sender", Bool, "no", "Reject sender addresses no table knows"),
    P("smtpd_forbid_bare_newline", Str, "normalize",
      "Bare LF in DATA: no, normalize, yes or reject (Postfix 3.9 default)",
      choices=("no", "normalize", "yes", "reject", "note")),
    P("smtpd_forbid_bare_newline_exclusions", List, "$mynetworks", "Clients exempt from the bare LF check"),
    P("smtpd_forbid_bare_newline_reject_code", Int, "550", "Reply code for a bare LF rejection",
      min=400, max=599),
    P("smtpd_forbid_unauth_pipelining", Bool, "no", "Disconnect clients that pipeline before EHLO says so"),
    P("smtpd_sasl_mechanism_filter", List, "!external, static:rest",
      "The SASL mechanisms smtpd may announce: names, /files, type:tables, !exclusions"),
    P("smtpd_log_access_permit_actions", List, "",
      "Permit actions of the access restrictions to log (names, /files, type:tables, !exclusions)"),
    P("smtpd_noop_commands", List, "", "Commands answered 250 Ok without checks or a change of state"),
    P("smtpd_command_filter", Str, "",
      "A table that replaces SMTP commands (as received, leading blanks off) before they run"),
    P("smtpd_forbidden_commands", List, "CONNECT, GET, POST",
      "Commands that end the session as non-SMTP (as do header-like lines)"),
    P("smtpd_authorized_xclient_hosts", List, "", "Clients allowed to use XCLIENT"),
    P("smtpd_authorized_xforward_hosts", List, "", "Clients allowed to use XFORWARD"),
    P("smtpd_discard_ehlo_keywords", List, "", "EHLO keywords not to announce (e.g. silent-discard, dsn)"),
    P("smtpd_discard_ehlo_keyword_address_maps", List, "",
      "Lookup tables from client address to the EHLO keywords not to offer it"),
    P("smtpd_sasl_exceptions_networks", List, "", "Clients AUTH is not offered to in the EHLO reply"),
    P("smtpd_upstream_proxy_protocol", Str, "",
      "The proxy protocol before SMTP, from a load balancer: empty or haproxy",
      choices=("", "haproxy")),
    P("smtpd_upstream_proxy_timeout", Time, "5s", "Time limit for the proxy protocol header",
      min=1),
    # The before-queue content filter (Postfix SMTPD_PROXY_README); the
    # names and defaults are 3.7's postconf -d (there is no smtpd_proxy_client).
    P("smtpd_proxy_filter", Str, "",
      "Before-queue content filter: host:port, inet:host:port or unix:/path (empty: none)"),
    P("smtpd_proxy_ehlo", Str, "$myhostname", "Name smtpd sends in EHLO to the before-queue filter"),
    P("smtpd_proxy_timeout", Time, "100s",
      "Time limit for connecting to the before-queue filter and for each exchange with it",
      min=1),
    P("smtpd_proxy_options", List, "",
      "Before-queue filter options: speed_adjust (receive the whole message before connecting)",
      choices=("speed_adjust",)),
    P("smtpd_reject_footer_maps", List, "",
      "Tables from a complete 4xx/5xx reply to the footer to add (before smtpd_reject_footer)"),
    P("smtpd_reject_footer", Str, "",
      "Text after every 4xx and 5xx smtpd reply (\\n: a new line, \\c: the same line)"),
    P("smtpd_client_port_logging", Bool, "no", "Log name[addr]:port instead of name[addr]"),
    P("smtpd_peername_lookup", Bool, "yes", "Look up the client's hostname"),
    P("disable_vrfy_command", Bool, "no", "Refuse VRFY"),
    P("strict_rfc821_envelopes", Bool, "no", "Require <> around MAIL FROM and RCPT TO addresses"),
    P("strict_smtputf8", Bool, "no", "Refuse UTF-8 envelope addresses without the SMTPUTF8 parameter"),
    P("soft_bounce", Bool, "no", "Turn 5xx rejections and bounces into 4xx deferrals"),
    P("smtputf8_enable", Bool, "${{$compatibility_level} <level {1} ? {no} : {yes}}",
      "Advertise and accept SMTPUTF8"),
    P("smtpd_use_tls", Bool, "no", "Obsolete: TLS level may when smtpd_tls_security_level is empty"),
    P("smtpd_enforce_tls", Bool, "no",
      "Obsolete: TLS level encrypt when smtpd_tls_security_level is empty"),
    P("smtpd_tls_exclude_ciphers", List, "", "Ciphers or cipher types smtpd never uses"),
    P("smtpd_tls_mandatory_exclude_ciphers", List, "",
      "Ciphers or cipher types smtpd also excludes with mandatory TLS"),
    P("smtpd_tls_eccert_file", Str, "", "PEM ECDSA server certificate (beside the RSA one)"),
    P("smtpd_tls_eckey_file", Str, "$smtpd_tls_eccert_file", "PEM private key of the ECDSA certificate"),
    P("smtpd_tls_dh1024_param_file", Str, "", "PEM DH parameters for non-export EDH ciphers"),
    P("smtpd_tls_ccert_verifydepth", Int, "9", "Verification depth of client certificates", min=1),
    P("tls_preempt_cipherlist", Bool, "no", "The server's cipher order wins over the client's"),
    P("tls_server_sni_maps", List, "",
      "Tables from a client's TLS SNI name to the keys and certificate chains to use"),
    P("tls_ssl_options", List, "", "OpenSSL SSL_OP_* option names (or a hex mask) to set"),
    P("smtpd_tls_security_level", Str, "", "smtpd TLS: empty or none, may (offer), encrypt (require)",
      choices=("", "none", "may", "encrypt")),
    P("smtpd_tls_cert_file", Str, "", "PEM server certificate"),
    P("smtpd_tls_key_file", Str, "$smtpd_tls_cert_file", "PEM private key of the server certificate"),
    P("smtpd_tls_chain_files", List, "", "PEM files of keys with their certificate chains"),
    P("smtpd_tls_CAfile", Str, "", "PEM CA certificates for client certificate checks"),
    P("smtpd_tls_CApath", Str, "", "Directory of hashed PEM CA certificates for client certificate checks"),
    P("smtpd_tls_protocols", List, ">=TLSv1", "TLS protocols smtpd accepts with opportunistic TLS"),
    P("smtpd_tls_mandatory_protocols", List, ">=TLSv1", "TLS protocols smtpd accepts with mandatory TLS"),
    P("smtpd_tls_ciphers", Str, "medium", "Cipher grade with opportunistic TLS",
      choices=("export", "low", "medium", "high", "null")),
    P("smtpd_tls_mandatory_ciphers", Str, "medium", "Cipher grade with mandatory TLS",
      choices=("export", "low", "medium", "high", "null")),
    P("smtpd_tls_auth_only", Bool, "no", "Offer AUTH only after STARTTLS"),
    P("smtpd_tls_wrappermode", Bool, "no", "Start TLS at connect (port 465)"),
    P("smtpd_tls_received_header", Bool, "no", "Record TLS protocol and cipher in Received headers"),
    P("smtpd_tls_loglevel", Int, "0", "TLS logging: 0 none, 1 handshake summary, 2+ more", min=0),
    P("smtpd_tls_ask_ccert", Bool, "no", "Ask clients for a certificate"),
    P("smtpd_tls_req_ccert", Bool, "no", "Require a client certificate with mandatory TLS"),
    P("smtpd_tls_fingerprint_digest", Str, "${{$compatibility_level} <level {3.6} ? {md5} : {sha256}}",
      "Digest of client certificate fingerprints (check_ccert_access, relay_clientcerts)",
      choices=("md5", "sha1", "sha224", "sha256", "sha384", "sha512")),
    P("relay_clientcerts", List, "", "Client certificate fingerprints that permit_tls_clientcerts allows"),
    P("smtpd_tls_session_cache_database", Str, "", "Server TLS session cache"),
    P("smtpd_tls_session_cache_timeout", Time, "3600s", "Lifetime of cached TLS sessions", min=0),
    P("smtpd_sasl_auth_enable", Bool, "no", "Offer SMTP AUTH"),
    P("smtpd_sasl_type", Str, "cyrus", "SASL implementation"),
    P("smtpd_sasl_path", Str, "smtpd", "SASL configuration name or socket path"),
    P("smtpd_sasl_service", Str, "smtp", "SASL service name"),
    P("smtpd_sasl_users_file", Str, "$config_directory/sasl_users",
      "mailsys's SASL user database (written by mailsys saslpasswd)"),
    P("smtpd_sasl_security_options", List, "noanonymous", "SASL mechanism restrictions"),
    P("smtpd_sasl_tls_security_options", List, "$smtpd_sasl_security_options",
      "SASL mechanism restrictions over TLS"),
    P("smtpd_sasl_authenticated_header", Bool, "no", "Record the SASL login name in Received headers"),
    P("broken_sasl_auth_clients", Bool, "no", "Also advertise AUTH=mechanisms for old clients"),
    # --- postscreen (Postfix POSTSCREEN_README, postscreen(8)) ---
    P("smtpd_service_name", Str, "smtpd", "The master.cf pass service postscreen hands clients to"),
    P("respectful_logging", Bool, "${{$compatibility_level} <level {3.6} ? {no} : {yes}}",
      "Log ALLOWLISTED / DENYLISTED rather than WHITELISTED / BLACKLISTED"),
    P("postscreen_access_list", List, "permit_mynetworks",
      "permit_mynetworks and type:table lookups of the client address (permit, reject, dunno)"),
    P("postscreen_blacklist_action", Str, "", "Older name of postscreen_denylist_action"),
    P("postscreen_denylist_action", Str,
      "${postscreen_blacklist_action?{$postscreen_blacklist_action}:{ignore}}",
      "What a client postscreen_access_list rejects gets: ignore, enforce or drop",
      choices=("ignore", "enforce", "drop")),
    P("postscreen_greet_banner", Str, "$smtpd_banner",
      "Text of the 220- line sent before the pregreet wait (empty: none)"),
    P("postscreen_greet_wait", Time, "${stress?{2}:{6}}s",
      "Time to watch for a client that talks first, and to wait for DNSBL answers", min=1),
    P("postscreen_greet_action", Str, "ignore",
      "What a client that talks before its turn gets: ignore, enforce or drop",
      choices=("ignore", "enforce", "drop")),
    P("postscreen_greet_ttl", Time, "1d", "How long a passed pregreet test is remembered", min=1),
    P("postscreen_dnsbl_sites", List, "", "DNSBL domains, each with an optional =filter and *weight"),
    P("postscreen_dnsbl_threshold", Int, "1", "Combined DNSBL weight at which a client fails", min=1),
    P("postscreen_dnsbl_whitelist_threshold", Int, "0",
      "Older name of postscreen_dnsbl_allowlist_threshold"),
    P("postscreen_dnsbl_allowlist_threshold", Int,
      "${postscreen_dnsbl_whitelist_threshold?{$postscreen_dnsbl_whitelist_threshold}:{0}}",
      "Combined DNSBL weight at or below which a client skips the other tests (0: never)"),
    P("postscreen_dnsbl_action", Str, "ignore",
      "What a client over the DNSBL threshold gets: ignore, enforce or drop",
      choices=("ignore", "enforce", "drop")),
    P("postscreen_dnsbl_reply_map", List, "", "Tables mapping a DNSBL domain to the name shown in replies"),
    P("postscreen_dnsbl_timeout", Time, "10s", "Time limit of one DNSBL lookup", min=1),
    P("postscreen_dnsbl_min_ttl", Time, "60s", "Shortest time a passed DNSBL test is remembered", min=1),
    P("postscreen_dnsbl_max_ttl", Time, "1h", "Longest time a passed DNSBL test is remembered", min=1),
    P("postscreen_cache_map", Str, "btree:$data_directory/postscreen_cache",
      "Where passed tests are remembered: btree:, hash: or lmdb: PATH (an LMDB file), or memory"),
    # --- address verification (verify(8), ADDRESS_VERIFICATION_README) ---
    P("address_verify_map", Str, "btree:$data_directory/verify_cache",
      "Where verify keeps address status: btree:, hash: or lmdb: PATH (an LMDB file), or empty for memory"),
    P("address_verify_sender", Str, "$double_bounce_sender",
      "Sender of address verification probes (<> for the null sender)"),
    P("address_verify_sender_ttl", Time, "0s",
      "Time after which the probe sender changes (0: never)", min=0),
    P("address_verify_positive_expire_time", Time, "31d",
      "Time a deliverable address is remembered", min=1),
    P("address_verify_positive_refresh_time", Time, "7d",
      "Time after which a deliverable address is probed again", min=1),
    P("address_verify_negative_cache", Bool, "yes", "Remember undeliverable addresses"),
    P("address_verify_negative_expire_time", Time, "3d",
      "Time an undeliverable address is remembered", min=1),
    P("address_verify_negative_refresh_time", Time, "3h",
      "Time after which an undeliverable address is probed again", min=1),
    P("address_verify_cache_cleanup_interval", Time, "12h",
      "Time between removals of expired verify cache entries (0: never)", min=0),
    P("address_verify_poll_count", Int, "${stress?{1}:{3}}",
      "How many times smtpd asks verify for a fresh status before it answers", min=1),
    P("address_verify_poll_delay", Time, "3s", "Time between those queries", min=1),
    P("address_verify_service_name", Str, "verify", "The master.cf name of the verify service"),
    P("address_verify_transport_maps", List, "$transport_maps",
      "transport_maps for probes"),
    P("address_verify_default_transport", Str, "$default_transport",
      "default_transport for probes"),
    P("address_verify_local_transport", Str, "$local_transport", "local_transport for probes"),
    P("address_verify_virtual_transport", Str, "$virtual_transport",
      "virtual_transport for probes"),
    P("address_verify_relay_transport", Str, "$relay_transport", "relay_transport for probes"),
    P("address_verify_relayhost", Str, "$relayhost", "relayhost for probes"),
    P("address_verify_sender_dependent_relayhost_maps", List, "$sender_dependent_relayhost_maps",
      "sender_dependent_relayhost_maps for probes"),
    P("address_verify_sender_dependent_default_transport_maps", List,
      "$sender_dependent_default_transport_maps",
      "sender_dependent_default_transport_maps for probes"),
    P("unverified_recipient_reject_code", Int, "450",
      "Reply code of reject_unverified_recipient for an undeliverable address (250: accept)",
      min=250, max=599),
    P("unverified_recipient_defer_code", Int, "450",
      "Reply code of reject_unverified_recipient while the address is not verified yet",
      min=250, max=599),
    P("unverified_recipient_reject_reason", Str, "",
      "Text that replaces the probe's answer in reject_unverified_recipient replies"),
    P("unverified_recipient_tempfail_action", Str, "$reject_tempfail_action",
      "What reject_unverified_recipient does with a temporary result",
      choices=("defer", "defer_if_permit")),
    P("unverified_sender_reject_code", Int, "450",
      "Reply code of reject_unverified_sender for an undeliverable address (250: accept)",
      min=250, max=599),
    P("unverified_sender_defer_code", Int, "450",
      "Reply code of reject_unverified_sender while the address is not verified yet",
      min=250, max=599),
    P("unverified_sender_reject_reason", Str, "",
      "Text that replaces the probe's answer in reject_unverified_sender replies"),
    P("unverified_sender_tempfail_action", Str, "$reject_tempfail_action",
      "What reject_unverified_sender does with a temporary result",
      choices=("defer", "defer_if_permit")),
    P("postscreen_client_connection_count_limit", Int, "$smtpd_client_connection_count_limit",
      "Simultaneous connections per client in postscreen (0: none)", min=0),
    P("postscreen_pre_queue_limit", Int, "$default_process_limit",
      "Clients being screened at once before more get 421", min=10),   # Postfix's minimum
    P("postscreen_post_queue_limit", Int, "$default_process_limit",
      "Clients waiting to be taken by smtpd before more get 421", min=1),
    P("postscreen_command_time_limit", Time, "${stress?{10}:{300}}s",
      "Time limit for a command in postscreen's own SMTP dialogue", min=1),
    P("postscreen_command_count_limit", Int, "20", "Commands in postscreen's own SMTP dialogue", min=1),
    # The "deep protocol tests" after postscreen's own 220 greeting.
    P("postscreen_pipelining_enable", Bool, "no",
      "Test whether a client sends commands before their reply (postscreen does not offer PIPELINING)"),
    P("postscreen_pipelining_action", Str, "enforce",
      "What a client that pipelines gets: ignore, enforce or drop",
      choices=("ignore", "enforce", "drop")),
    P("postscreen_pipelining_ttl", Time, "30d", "How long a passed pipelining test is remembered",
      min=1),
    P("postscreen_non_smtp_command_enable", Bool, "no",
      "Test whether a client sends postscreen_forbidden_commands or header lines"),
    P("postscreen_non_smtp_command_action", Str, "drop",
      "What a client that sends a non-SMTP command gets: ignore, enforce or drop",
      choices=("ignore", "enforce", "drop")),
    P("postscreen_non_smtp_command_ttl", Time, "30d",
      "How long a passed non-SMTP command test is remembered", min=1),
    P("postscreen_forbidden_commands", List, "$smtpd_forbidden_commands",
      "Commands (or type:table lookups of the command word) the non-SMTP command test refuses"),
    P("postscreen_bare_newline_enable", Bool, "no",
      "Test whether a client ends command lines with a bare LF"),
    P("postscreen_bare_newline_action", Str, "ignore",
      "What a client that sends a bare LF gets: ignore, enforce or drop",
      choices=("ignore", "enforce", "drop")),
    P("postscreen_bare_newline_ttl", Time, "30d",
      "How long a passed bare newline test is remembered", min=1),
    P("postscreen_helo_required", Bool, "$smtpd_helo_required",
      "Require HELO or EHLO before MAIL and ETRN in postscreen's own SMTP dialogue"),
    P("postscreen_disable_vrfy_command", Bool, "$disable_vrfy_command",
      "Refuse VRFY in postscreen's own SMTP dialogue (its EHLO reply follows "
      "disable_vrfy_command)"),
    P("postscreen_discard_ehlo_keywords", List, "$smtpd_discard_ehlo_keywords",
      "EHLO keywords postscreen's own SMTP dialogue does not announce"),
    P("postscreen_command_filter", Str, "",
      "A table that replaces a client command line before postscreen's dialogue reads it"),
    P("postscreen_use_tls", Bool, "$smtpd_use_tls",
      "Obsolete: postscreen's TLS level may when postscreen_tls_security_level is empty"),
    P("postscreen_enforce_tls", Bool, "$smtpd_enforce_tls",
      "Obsolete: postscreen's TLS level encrypt when postscreen_tls_security_level is empty"),
    P("postscreen_tls_security_level", Str, "$smtpd_tls_security_level",
      "STARTTLS in postscreen's own SMTP dialogue: empty or none (not offered), may, encrypt"),
    P("postscreen_whitelist_interfaces", List, "", "Older name of postscreen_allowlist_interfaces"),
    P("postscreen_allowlist_interfaces", List,
      "${postscreen_whitelist_interfaces?{$postscreen_whitelist_interfaces}:{static:all}}",
      "Local addresses on which a client can earn the temporary allow list "
      "(static:all, !addr, net/len)"),
    P("postscreen_upstream_proxy_protocol", Str, "",
      "The proxy protocol before postscreen, from a load balancer: empty or haproxy",
      choices=("", "haproxy")),
    P("postscreen_upstream_proxy_timeout", Time, "5s",
      "Time limit for the proxy protocol header before postscreen", min=1),
    P("postscreen_reject_footer", Str, "$smtpd_reject_footer",
      "Text after every 4xx and 5xx postscreen reply ($client_address, $client_port, "
      "$server_name)"),
    P("postscreen_reject_footer_maps", List, "$smtpd_reject_footer_maps",
      "Tables from a postscreen reply's text to its footer"),
    P("postscreen_discard_ehlo_keyword_address_maps", List,
      "$smtpd_discard_ehlo_keyword_address_maps",
      "Tables from client address to the EHLO keywords postscreen does not offer it"),
    P("postscreen_cache_cleanup_interval", Time, "12h",
      "Time between removals of long-expired entries from postscreen_cache_map (0: never)", min=0),
    P("postscreen_cache_retention_time", Time, "7d",
      "How long an entry stays in postscreen_cache_map after its tests expired", min=0),
    # --- queue and scheduling (2.3) ---
    P("queue_run_delay", Time, "300s", "Interval between deferred queue scans", min=1),
    P("minimal_backoff_time", Time, "300s", "Shortest wait before a deferred message is retried", min=1),
    P("maximal_backoff_time", Time, "4000s", "Longest wait before a deferred message is retried", min=1),
    P("maximal_queue_lifetime", Time, "5d", "Age at which undeliverable mail is returned (0: try once)",
      min=0, max=8640000, unit="d"),
    P("bounce_queue_lifetime", Time, "5d", "Age at which an undeliverable bounce is dropped",
      min=0, max=8640000, unit="d"),
    P("default_destination_concurrency_limit", Int, "20", "Parallel deliveries per destination", min=0),
    P("default_destination_recipient_limit", Int, "50", "Recipients per delivery request", min=0),
    P("default_destination_rate_delay", Time, "0s", "Pause between deliveries to one destination", min=0),
    P("default_destination_concurrency_failed_cohort_limit", Int, "1",
      "Failed cohorts before a destination is throttled", min=0),
    P("initial_destination_concurrency", Int, "5", "Concurrency a destination starts at", min=1),
    P("smtp_destination_concurrency_limit", Int, "$default_destination_concurrency_limit",
      "Parallel deliveries per destination for the smtp transport", min=0),
    P("smtp_destination_recipient_limit", Int, "$default_destination_recipient_limit",
      "Recipients per delivery request for the smtp transport", min=0),
    P("local_destination_concurrency_limit", Int, "2",
      "Parallel deliveries per recipient for the local transport", min=0),
    P("local_destination_recipient_limit", Int, "1", "Recipients per local delivery request", min=0),
    P("qmgr_message_active_limit", Int, "20000", "Messages in the active queue", min=1),
    P("qmgr_message_recipient_limit", Int, "20000", "Recipients held in memory by qmgr", min=1),
    P("transport_retry_time", Time, "60s", "Wait before a failed transport is tried again", min=1),
    P("queue_minfree", Size, "0", "Free bytes the queue file system must keep (0: no check)", min=0),
    P("delay_logging_resolution_limit", Int, "2", "Decimal places of delay= and delays= in the log",
      min=0, max=6),
    # --- smtp client (2.4) ---
    P("smtp_use_tls", Bool, "no", "Obsolete: TLS level may when smtp_tls_security_level is empty"),
    P("smtp_enforce_tls", Bool, "no",
      "Obsolete: TLS level verify (encrypt without smtp_tls_enforce_peername) when "
      "smtp_tls_security_level is empty"),
    P("smtp_tls_enforce_peername", Bool, "yes", "Obsolete: with smtp_enforce_tls, verify the name"),
    P("smtp_tls_exclude_ciphers", List, "", "Ciphers or cipher types the smtp client never uses"),
    P("smtp_tls_mandatory_exclude_ciphers", List, "",
      "Ciphers or cipher types the smtp client also excludes with mandatory TLS"),
    P("smtp_tls_scert_verifydepth", Int, "9", "Verification depth of server certificates", min=1),
    P("smtp_tls_servername", Str, "",
      "TLS SNI name to send: empty (none), hostname, nexthop, or a DNS name"),
    P("smtp_tls_fingerprint_digest", Str,
      "${{$compatibility_level} <level {3.6} ? {md5} : {sha256}}",
      "Digest of the fingerprints the fingerprint security level matches",
      choices=("md5", "sha1", "sha224", "sha256", "sha384", "sha512")),
    P("smtp_tls_fingerprint_cert_match", List, "",
      "Server certificate or public-key fingerprints the fingerprint level accepts"),
    P("smtp_tls_security_level", Str, "", "smtp TLS: none, may, encrypt, dane, verify, secure",
      choices=("", "none", "may", "encrypt", "dane", "dane-only", "fingerprint", "verify", "secure")),
    P("smtp_tls_policy_maps", List, "", "Per-destination TLS policy tables"),
    P("smtp_tls_CAfile", Str, "", "PEM CA certificates for server certificate checks"),
    P("smtp_tls_CApath", Str, "", "Directory of hashed PEM CA certificates for server certificate checks"),
    P("smtp_tls_chain_files", List, "", "PEM files of client keys with their certificate chains"),
    P("smtp_tls_cert_file", Str, "", "PEM client certificate"),
    P("smtp_tls_key_file", Str, "$smtp_tls_cert_file", "PEM private key of the client certificate"),
    P("smtp_tls_loglevel", Int, "0", "TLS logging of the smtp client", min=0),
    P("smtp_tls_protocols", List, ">=TLSv1", "TLS protocols with opportunistic TLS"),
    P("smtp_tls_mandatory_protocols", List, ">=TLSv1", "TLS protocols with mandatory TLS"),
    P("smtp_tls_ciphers", Str, "medium", "Cipher grade with opportunistic TLS",
      choices=("export", "low", "medium", "high", "null")),
    P("smtp_tls_mandatory_ciphers", Str, "medium", "Cipher grade with mandatory TLS",
      choices=("export", "low", "medium", "high", "null")),
    # The OpenSSL cipher strings behind the "high" and "medium" grades, as
    # Postfix 3.7 ships them; RC4 is gone from OpenSSL 3, so naming it is
    # harmless. mailsys.tls.CIPHER_GRADES holds the same strings.
    P("tls_high_cipherlist", Str, "aNULL:-aNULL:HIGH:@STRENGTH", "OpenSSL cipher list of the high grade"),
    P("tls_medium_cipherlist", Str, "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH",
      "OpenSSL cipher list of the medium grade"),
    P("smtp_tls_session_cache_database", Str, "", "Client TLS session cache"),
    P("smtp_tls_note_starttls_offer", Bool, "no", "Log servers that offer STARTTLS when TLS is off"),
    P("smtp_connect_timeout", Time, "30s", "Time limit for the TCP connect", min=0),
    P("smtp_helo_timeout", Time, "300s", "Time limit for the greeting and EHLO reply", min=1),
    P("smtp_mail_timeout", Time, "300s", "Time limit for the MAIL FROM reply", min=1),
    P("smtp_rcpt_timeout", Time, "300s", "Time limit for each RCPT TO reply", min=1),
    P("smtp_data_init_timeout", Time, "120s", "Time limit for the DATA reply", min=1),
    P("smtp_data_xfer_timeout", Time, "180s", "Time limit for each write of message content", min=1),
    P("smtp_data_done_timeout", Time, "600s", "Time limit for the reply after the final dot", min=1),
    P("smtp_quit_timeout", Time, "300s", "Time limit for the QUIT reply", min=1),
    P("smtp_rset_timeout", Time, "20s", "Time limit for the RSET reply", min=1),
    P("smtp_xforward_timeout", Time, "300s", "Time limit for the XFORWARD reply", min=1),
    P("smtp_send_xforward_command", Bool, "no",
      "Send the original client's attributes with XFORWARD when the server offers it"),
    # Output rewriting and inspection in the client (Postfix 2.3 generic(5), 2.5 smtp_*_checks).
    P("smtp_generic_maps", List, "",
      "Lookup tables rewriting envelope and header addresses of mail the smtp client sends"),
    P("smtp_header_checks", List, "",
      "Restricted header_checks tables the smtp client applies to each primary header"),
    P("smtp_mime_header_checks", List, "",
      "Restricted header_checks tables the smtp client applies to each MIME header"),
    P("smtp_nested_header_checks", List, "",
      "Restricted header_checks tables the smtp client applies to attached message headers"),
    P("smtp_body_checks", List, "",
      "Restricted body_checks tables the smtp client applies to each body line"),
    P("smtp_host_lookup", List, "dns", "How the smtp client finds hosts: dns, native or both",
      choices=("dns", "native")),
    P("disable_dns_lookups", Bool, "no", "Deprecated: do not use DNS (see smtp_dns_support_level)"),
    P("smtp_dns_support_level", Str, "", "DNS use: empty, disabled, enabled or dnssec",
      choices=("", "disabled", "enabled", "dnssec")),
    P("smtp_helo_name", Str, "$myhostname", "Name the smtp client sends in EHLO"),
    P("smtp_bind_address", Str, "", "Local IPv4 address for outbound connections"),
    P("smtp_bind_address6", Str, "", "Local IPv6 address for outbound connections"),
    P("smtp_address_preference", Str, "any", "Preferred address family: any, ipv4, ipv6",
      choices=("any", "ipv4", "ipv6")),
    P("smtp_connection_cache_on_demand", Bool, "yes", "Reuse connections to backlogged destinations"),
    P("smtp_connection_cache_time_limit", Time, "2s",
      "Time an unused cached connection stays open", min=1),
    P("smtp_connection_reuse_time_limit", Time, "300s",
      "Time after which a cached connection is no longer reused", min=1),
    P("smtp_skip_5xx_greeting", Bool, "yes", "Try the next MX after a 5xx greeting"),
    P("smtp_line_length_limit", Int, "998", "Longest line sent before it is folded (0: none)", min=0),
    P("smtp_mx_address_limit", Int, "5", "Addresses tried per delivery", min=0),
    P("smtp_discard_ehlo_keywords", List, "",
      "EHLO keywords the smtp client ignores in a server's reply (silent-discard: unlogged)"),
    P("smtp_discard_ehlo_keyword_address_maps", List, "",
      "Tables of EHLO keywords to ignore, by remote server address"),
    P("smtp_never_send_ehlo", Bool, "no", "Start every session with HELO"),
    P("smtp_randomize_addresses", Bool, "yes", "Shuffle the order of equal-preference MX hosts"),
    P("fallback_relay", List, "", "Old name of smtp_fallback_relay (its default)"),
    P("smtp_fallback_relay", List, "$fallback_relay",
      "Relay hosts for SMTP destinations that cannot be found or reached"),
    P("smtp_mx_session_limit", Int, "2", "SMTP sessions tried per delivery", min=0),
    P("smtp_starttls_timeout", Time, "300s", "Time limit for the TLS handshake after STARTTLS", min=1),
    P("smtp_tls_wrappermode", Bool, "no", "Start TLS at connect (port 465) instead of STARTTLS"),
    P("smtp_sasl_auth_enable", Bool, "no", "Authenticate to the next hop with SASL"),
    P("smtp_sasl_password_maps", List, "", "Tables of user:password per next hop"),
    P("smtp_sasl_security_options", List, "noplaintext, noanonymous", "SASL mechanism restrictions of the client"),
    P("smtp_sasl_tls_security_options", List, "$smtp_sasl_security_options",
      "SASL mechanism restrictions of the client inside TLS"),
    P("smtp_sasl_tls_verified_security_options", List, "$smtp_sasl_tls_security_options",
      "SASL mechanism restrictions of the client inside TLS with a verified server certificate"),
    P("smtp_sasl_mechanism_filter", List, "",
      "Names, !names, /files or tables the server's SASL mechanisms must match (empty: all)"),
    P("smtp_sasl_auth_soft_bounce", Bool, "yes", "Defer, not bounce, when the server refuses the login"),
    P("smtp_sasl_auth_cache_name", Str, "",
      "proxy:TYPE:PATH table of logins a server refused with 535 (empty: none)"),
    P("smtp_sasl_auth_cache_time", Time, "90d", "How long a refused login is remembered",
      min=0, unit="d"),
    P("smtp_sender_dependent_authentication", Bool, "no",
      "Look up SASL logins by sender first (and cache no connections)"),
    P("smtp_send_dummy_mail_auth", Bool, "no", "Send AUTH=<> with MAIL FROM after a SASL login"),
    # --- bounces and notices (2.6) ---
    P("notify_classes", List, "resource, software", "Problem classes reported to the postmaster",
      choices=("bounce", "2bounce", "data", "delay", "policy", "protocol", "resource", "software")),
    P("bounce_notice_recipient", Str, "postmaster", "Recipient of postmaster copies of bounces"),
    P("2bounce_notice_recipient", Str, "postmaster", "Recipient of undeliverable bounces"),
    P("delay_notice_recipient", Str, "postmaster", "Recipient of postmaster copies of delay notices"),
    P("error_notice_recipient", Str, "postmaster", "Recipient of resource and software error notices"),
    P("bounce_size_limit", Size, "50000", "Largest original message returned whole in a bounce", min=1),
    P("bounce_template_file", Str, "",
      "File of bounce(5) templates for the text of notices (empty: the built-in ones)"),
    P("delay_warning_time", Time, "0h", "Age at which the sender is told of a delay (0: never)",
      min=0, unit="h"),
    P("enable_threaded_bounces", Bool, "no", "Add In-Reply-To and References to bounces"),
    P("double_bounce_sender", Str, "double-bounce", "Sender of notices that must not bounce"),
    P("empty_address_recipient", Str, "MAILER-DAEMON", "Recipient of mail addressed to <>"),
    P("always_add_missing_headers", Bool, "no", "Add missing From, To, Date, Message-ID to all mail"),
    P("local_header_rewrite_clients", List, "permit_inet_interfaces",
      "Clients whose mail gets local header rewriting and missing headers added"),
    P("remote_header_rewrite_domain", Str, "",
      "Domain for header addresses of other clients' mail (empty: do not rewrite them)"),
    P("message_drop_headers", List, "bcc, content-length, resent-bcc, return-path",
      "Headers removed from every message before it is queued"),
    P("undisclosed_recipients_header", Str, "",
      "Header added when a message has no To or Cc header (empty: none)"),
    P("header_from_format", Str, "standard",
      "Form of the From: header cleanup adds with a full name: standard or obsolete",
      choices=("standard", "obsolete")),
    # Postfix 3.8 added this; 3.7 has no such parameter. The 3.8 default.
    P("full_name_encoding_charset", Str, "utf-8",
      "Charset of RFC 2047 encoded full names in generated From headers"),
    P("header_checks", List, "", "Tables of patterns matched against each header (cleanup)"),
    P("content_filter", Str, "",
      "transport:destination every message received is sent to, after it is queued"),
    P("mime_header_checks", List, "$header_checks",
      "Tables of patterns matched against each MIME part header (cleanup)"),
    P("nested_header_checks", List, "$header_checks",
      "Tables of patterns matched against each header of an attached message (cleanup)"),
    P("disable_mime_input_processing", Bool, "no",
      "Read the body as plain text: no MIME part or attached message headers are looked at"),
    P("body_checks", List, "", "Tables of patterns matched against each body line (cleanup)"),
    P("body_checks_size_limit", Size, "51200", "Bytes of each body part body_checks looks at", min=0),
    # Written with C escapes (\0, \t, \177): mailsys.message.char_filter.
    P("message_reject_characters", Str, "",
      "Characters that make cleanup refuse a message holding one (C escapes allowed)"),
    P("message_strip_characters", Str, "",
      "Characters cleanup removes from message content (C escapes allowed)"),
    # --- milters (Postfix MILTER_README; postconf(5) milter_*) ---
    P("smtpd_milters", List, "", "Milter applications for mail received with SMTP"),
    P("non_smtpd_milters", List, "", "Milter applications for mail not received with SMTP"),
    P("smtpd_milter_maps", List, "",
      "Tables from client IP address to the milters for it (DISABLE: none), over smtpd_milters"),
    P("milter_protocol", Int, "6", "The Sendmail milter protocol version offered", min=2, max=6),
    P("milter_default_action", Str, "tempfail",
      "What to do when a milter fails: accept, reject, tempfail or quarantine",
      choices=("accept", "reject", "tempfail", "quarantine")),
    P("milter_connect_timeout", Time, "30s", "Time limit to connect to a milter and negotiate",
      min=1),
    P("milter_command_timeout", Time, "30s", "Time limit for a milter's reply to a command",
      min=1),
    P("milter_content_timeout", Time, "300s",
      "Time limit to send message content to a milter and read its end-of-message reply", min=1),
    P("milter_connect_macros", Str, "j {daemon_name} {daemon_addr} v _",
      "Macros sent to milters with the client connection"),
    P("milter_helo_macros", Str, "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}",
      "Macros sent to milters with HELO/EHLO"),
    P("milter_mail_macros", Str,
      "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}",
      "Macros sent to milters with MAIL FROM"),
    P("milter_rcpt_macros", Str, "i {rcpt_addr} {rcpt_host} {rcpt_mailer}",
      "Macros sent to milters with RCPT TO"),
    P("milter_data_macros", Str, "i", "Macros sent to milters with DATA"),
    P("milter_end_of_header_macros", Str, "i", "Macros sent to milters at the end of the headers"),
    P("milter_end_of_data_macros", Str, "i", "Macros sent to milters at the end of the message"),
    P("milter_unknown_command_macros", Str, "", "Macros sent to milters with an unknown command"),
    P("milter_macro_daemon_name", Str, "$myhostname", "The {daemon_name} macro value"),
    P("milter_macro_v", Str, "$mail_name $mail_version", "The {v} macro value"),
    P("milter_macro_defaults", Str, "",
      "name=value pairs: the values of macros that have none where they are asked for"),
    P("milter_header_checks", List, "",
      "Tables of patterns matched against each header a milter adds (cleanup)"),
)
del P

# The LMTP client (Postfix lmtp(8)) is the smtp client under another name,
# and reads lmtp_* parameters where smtp(8) reads smtp_* (Postfix binds the
# same variables to both sets of names: lmtp_params.c, VAR_LMTP_SMTP()).
# Each smtp client parameter above therefore has an lmtp twin, with the
# same type and bounds; these are the twins whose name or Postfix 3.7
# default differs from the mechanical smtp_ -> lmtp_ rename.
LMTP_NAMES = {"smtp_helo_timeout": "lmtp_lhlo_timeout", "smtp_helo_name": "lmtp_lhlo_name",
              "smtp_discard_ehlo_keywords": "lmtp_discard_lhlo_keywords",
              "smtp_discard_ehlo_keyword_address_maps": "lmtp_discard_lhlo_keyword_address_maps"}
# smtp client parameters lmtp(8) has no twin of (LMTP always starts with LHLO).
_SMTP_ONLY = frozenset({"smtp_never_send_ehlo"})
_LMTP_DEFAULTS = {
    # lmtp_connect_timeout = 0s: no limit of its own (Postfix waits for the
    # kernel's connect timeout; a UNIX-domain connect does not wait).
    "lmtp_connect_timeout": "0s",
    "lmtp_tls_key_file": "$lmtp_tls_cert_file",
    "lmtp_sasl_tls_security_options": "$lmtp_sasl_security_options",
    "lmtp_sasl_tls_verified_security_options": "$lmtp_sasl_tls_security_options",
    "lmtp_destination_concurrency_limit": "$default_destination_concurrency_limit",
    "lmtp_destination_recipient_limit": "$default_destination_recipient_limit",
    "lmtp_fallback_relay": "",
}


def lmtp_name(smtp_name: str) -> str:
    """The lmtp parameter that stands for smtp_name in lmtp(8)."""
    return LMTP_NAMES.get(smtp_name) or "lmtp_" + smtp_name.removeprefix("smtp_")


def _lmtp_twin(p: Param) -> Param:
    name = lmtp_name(p.name)
    doc = p.doc.replace("smtp client", "LMTP client").replace("smtp transport", "lmtp transport")
    doc = doc.replace(" EHLO", " LHLO").replace("smtp TLS", "LMTP TLS")
    return Param(name, p.type, _LMTP_DEFAULTS.get(name, p.default), f"{doc} (lmtp)",
                 min=p.min, max=p.max, unit=p.unit, choices=p.choices)


_TABLE += tuple(_lmtp_twin(p) for p in _TABLE
                if p.name.startswith("smtp_") and p.name not in _SMTP_ONLY) + (
    # The port of an LMTP next hop that names none (Postfix: the IANA lmtp
    # port, 24; the SMTP client's is 25, from its own next-hop rules).
    Param("lmtp_tcp_port", Str, "24", "TCP port of LMTP next hops that name no port (lmtp)"),
)

PARAMS: dict[str, Param] = {p.name: p for p in _TABLE}

# Queue-manager parameters that exist once per transport (Postfix:
# "transport_destination_concurrency_limit" and friends), defaulting to the
# default_ parameter of the same suffix.
TRANSPORT_SUFFIXES = (
    "destination_concurrency_limit",
    "destination_recipient_limit",
    "destination_rate_delay",
    "destination_concurrency_failed_cohort_limit",
    "initial_destination_concurrency",
)
# The parameter a per-transport one defaults to, where not default_<suffix>.
_TRANSPORT_BASE = {"initial_destination_concurrency": "initial_destination_concurrency"}
_TRANSPORT_RE = re.compile(r"([a-z0-9][a-z0-9-]*)_(" + "|".join(TRANSPORT_SUFFIXES) + r")")


# spawn(8)'s and pipe(8)'s command time limit exists once per master.cf
# service ("policyd-spf_time_limit", "dovecot_time_limit"), defaulting to
# $command_time_limit. Postfix's postconf registers the name only for
# services that run spawn or pipe;
# mailsys knows it for any service name, as it knows the queue manager's
# per-transport names above, so such a name is never an "unused parameter".
SERVICE_TIME_LIMIT_SUFFIX = "_time_limit"
_SERVICE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def service_time_limit_name(service: str) -> str:
    """The parameter that limits the commands of a spawn(8) or pipe(8) service."""
    return service + SERVICE_TIME_LIMIT_SUFFIX


def param(name: str) -> Param | None:
    """The Param called `name`, including per-transport ones, or None."""
    found = PARAMS.get(name)
    if found is not None:
        return found
    service = name.removesuffix(SERVICE_TIME_LIMIT_SUFFIX)
    if service != name and _SERVICE_NAME_RE.fullmatch(service):
        base = PARAMS["command_time_limit"]
        return Param(name, base.type, "$command_time_limit",
                     f"Longest run of a command of the service {service}",
                     min=base.min, max=base.max, unit=base.unit)
    m = _TRANSPORT_RE.fullmatch(name)
    if not m or m.group(1) == "default":
        return None
    suffix = m.group(2)
    base = PARAMS[_TRANSPORT_BASE.get(suffix, "default_" + suffix)]
    return Param(name, base.type, f"${base.name}", f"{base.doc} (transport {m.group(1)})",
                 min=base.min, max=base.max, unit=base.unit)
