"""context - what the restrictions see of one SMTP session, and of DNS.

DESCRIPTION
    PolicyContext holds the facts of one SMTP command that the restriction
    lists judge: the client's name and address, the HELO name, sender,
    recipient, SASL login, TLS state and protocol name. smtpd builds one per
    command and passes it to Restrictions.evaluate_*().

    DNS-based restrictions (reject_unknown_sender_domain,
    reject_unknown_recipient_domain, reject_unknown_helo_hostname,
    reject_rbl_client, reject_rhsbl_*) never resolve anything themselves:
    they ask an injected Resolver callback, domain -> DnsStatus, so the
    policy package stays pure. An async caller first asks
    Restrictions.domains_to_resolve(ctx) which names an evaluation may look
    up, resolves them, and passes a dictionary-backed resolver. Without a
    resolver a lookup counts as a temporary failure.

SEE ALSO
    restrictions (the evaluator), Postfix src/smtpd/smtpd_check.c.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Callable

from mailsys.frozen import frozen

if TYPE_CHECKING:
    from mailsys.policy.decision import Decision


class DnsStatus(enum.Enum):
    """What a resolver callback reports for one name (MX, A or AAAA).

    NULL_MX is a domain whose MX is RFC 7505's null MX ("MX 0 ."): it
    exists, and says it takes no mail."""
    EXISTS = "exists"
    NOT_FOUND = "not-found"
    TEMPFAIL = "tempfail"
    NULL_MX = "null-mx"


Resolver = Callable[[str], DnsStatus]


@frozen
class HostRecords:
    """What DNS answered for one ("MX", domain), ("NS", domain) or ("ADDR",
    host) lookup.

    With status EXISTS, records holds (preference, host) pairs for MX, name
    server names for NS, or address strings for ADDR (A and AAAA). NOT_FOUND is NXDOMAIN, or with
    no_data set a name that exists without such records; a null MX
    (RFC 7505) counts as no MX, with null_mx set. filtered marks a
    TEMPFAIL whose records smtpd_dns_reply_filter all dropped.
    """
    status: DnsStatus
    records: tuple = ()
    no_data: bool = False
    null_mx: bool = False
    filtered: bool = False


# permit_mx_backup: the answer to ("MX", domain) or ("ADDR", host), or None
# while it has not been looked up.
RecordLookups = Callable[[str, str], "HostRecords | None"]
# check_policy_service: the action a policy service answered (service ->
# "DEFER_IF_PERMIT Greylisted"), or None while it has not been asked.
PolicyAnswers = Callable[[str], "str | None"]
# reject_unverified_*: the verify service's answer for an address, as
# (status, text) with a status of mailsys.ipc.proto.verify (None: the
# service could not be asked), or None while it has not been asked.
VerifyAnswers = Callable[[str], "tuple[int | None, str] | None"]


# smtpd_peer.c SMTPD_PEER_CODE_*: how the client's name lookups went. A
# name that did not resolve back to the address is FORGED (the PTR name is
# still the reverse name, whose status is then OK).
NAME_OK, NAME_TEMP, NAME_PERM, NAME_FORGED = "ok", "temp", "perm", "forged"


@frozen
class PolicyContext:
    """What the restrictions see of one SMTP session at one command.

    client_name is "unknown" when the client has no verified name;
    reverse_client_name is its PTR name even when that does not resolve
    back to it ("" : the same as client_name). client_name_status and
    reverse_name_status say why a name is "unknown" (NAME_TEMP for a
    lookup that failed for now; "": NAME_PERM for "unknown", else
    NAME_OK). helo,
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
    # The client sent commands ahead of time where SMTP does not allow it
    # (smtpd logged "improper command pipelining after ...").
    ill_pipelining: bool = False
    # Recipients accepted so far in the transaction (the one being asked
    # about at RCPT not counted).
    rcpt_count: int = 0
    # The client certificate, when TLS is on and the client sent one: its
    # subject CN, whether its chain is trusted, and its fingerprint and
    # public-key fingerprint ($smtpd_tls_fingerprint_digest, "AB:CD:...").
    ccert_cn: str = ""
    ccert_trusted: bool = False
    ccert_fingerprints: tuple[str, ...] = ()
    # ETRN's domain, while smtpd_etrn_restrictions decide it.
    etrn_domain: str | None = None
    reverse_client_name: str = ""
    client_name_status: str = ""
    reverse_name_status: str = ""
    # The defer_if_permit an earlier stage held (smtpd_delay_reject = no:
    # the client, HELO or sender restrictions); the evaluation starts with
    # it, as Postfix's smtpd_check_rcpt() starts with defer_if_permit_client
    # | _helo | _sender raised.
    deferred: Decision | None = None

    @property
    def namaddr(self) -> str:
        return f"{self.client_name or 'unknown'}[{self.client_addr}]"

    @property
    def reverse_name(self) -> str:
        """The unverified client name (Postfix state->reverse_name)."""
        return self.reverse_client_name or self.client_name or "unknown"

    @property
    def name_status(self) -> str:
        """Postfix state->name_status."""
        return self.client_name_status or _status_of(self.client_name or "unknown")

    @property
    def reverse_status(self) -> str:
        """Postfix state->reverse_name_status."""
        return self.reverse_name_status or _status_of(self.reverse_name)


def _status_of(name: str) -> str:
    return NAME_PERM if name == "unknown" else NAME_OK


__all__ = ["NAME_FORGED", "NAME_OK", "NAME_PERM", "NAME_TEMP",
           "DnsStatus", "HostRecords", "PolicyAnswers", "PolicyContext", "RecordLookups",
           "Resolver", "VerifyAnswers"]
