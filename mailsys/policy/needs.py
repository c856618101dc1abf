"""needs - what an evaluation asks its caller to do before it can go on.

DESCRIPTION
    The policy package does no I/O, yet some restrictions need it: a policy
    server's answer (check_policy_service), DNS records that only an
    earlier answer names (permit_mx_backup: the MX hosts of a domain, then
    their addresses), or time (sleep). Such a step raises a Need when the
    caller has not yet supplied what it needs; the caller (smtpd's
    _decide) does the I/O, then evaluates again from the start with the
    result known. The evaluation is a pure function of its context and of
    what the caller supplied, so everything before the step comes out the
    same the second time, and a step the evaluation does not reach never
    asks for anything, as in Postfix.

      NeedPolicy(service)     ask the policy server; supply its action
      NeedRecords(queries)    look up ("MX", domain) or ("ADDR", host)
                              queries; supply HostRecords for each
      NeedPause(seconds)      wait; then supply one more pause done
      NeedVerify(address)     ask the verify service (reject_unverified_*);
                              supply (status, text), or None when it failed

SEE ALSO
    service (check_policy_service), mxbackup (permit_mx_backup), evaluate
    (sleep), mailsys.runtime.smtpd_session (the caller).
"""

from __future__ import annotations


class Need(Exception):
    """The evaluation cannot go on without I/O its caller does."""


class NeedPolicy(Need):
    """The evaluation needs the answer of this policy service first."""

    def __init__(self, service: str) -> None:
        super().__init__(service)
        self.service = service


class NeedRecords(Need):
    """The evaluation needs these DNS lookups first: ("MX", domain) or
    ("ADDR", host) pairs, in the order the evaluation would make them."""

    def __init__(self, queries: tuple[tuple[str, str], ...]) -> None:
        super().__init__(queries)
        self.queries = queries


class NeedPause(Need):
    """The evaluation reached a "sleep seconds" restriction not yet slept."""

    def __init__(self, seconds: int) -> None:
        super().__init__(seconds)
        self.seconds = seconds


class NeedVerify(Need):
    """The evaluation needs what the verify service knows of this address."""

    def __init__(self, address: str) -> None:
        super().__init__(address)
        self.address = address


__all__ = ["Need", "NeedPause", "NeedPolicy", "NeedRecords", "NeedVerify"]
