"""service - check_policy_service: a restriction answered by a policy server.

DESCRIPTION
    Postfix's SMTPD_POLICY_README delegation: when the evaluation reaches
    check_policy_service <endpoint>, smtpd sends the session's facts to a
    policy server (postgrey, policyd-spf, ...) and the server answers with
    an access(5) action ("action=DEFER_IF_PERMIT Greylisted"), which is
    then carried out like an access table result, in the reply class of the
    list it sits in ("<r>: Recipient address rejected: Greylisted").

    The package does no I/O, so the step asks the evaluation's
    PolicyAnswers callback. When the service has not been asked yet, it
    raises NeedPolicy (see needs): the caller (smtpd) asks the server, then
    evaluates again from the start with the answer known. A service is
    asked at most once per evaluation; a service the evaluation does not
    reach is never asked, as in Postfix.

SEE ALSO
    access (the actions), mailsys.runtime.policy_client (the queries),
    Postfix SMTPD_POLICY_README, src/smtpd/smtpd_check.c check_policy_service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailsys.policy.access import access_result
from mailsys.policy.needs import NeedPolicy
from mailsys.policy.state import ListInfo, Run

if TYPE_CHECKING:
    from mailsys.policy.restrictions import Restrictions


def check_policy_service(rs: Restrictions, run: Run, info: ListInfo, service: str):
    """The step: the service's action, in the reply class of the list."""
    answer = run.policy(service) if run.policy is not None else None
    if answer is None:
        raise NeedPolicy(service)
    return access_result(rs, run, info, answer.strip(), info.reply_class, service)


__all__ = ["NeedPolicy", "check_policy_service"]
