"""check_policy_service in the pure evaluation: NeedPolicy, then the answer as an access action."""

from __future__ import annotations

import pytest

from mailsys.policy.restrictions import DnsStatus, NeedPolicy, Note, PolicyContext, Restrictions

SERVICE = "inet:127.0.0.1:10023"
OUTSIDER = dict(client_name="unknown", client_addr="198.51.100.7", helo="spammer.example",
                sender="spam@spammer.example")


def make(**lists):
    settings = {"mydestination": ("example.com",), "mynetworks": ("192.0.2.0/24",),
                "local_recipient_maps": (), **lists}
    return Restrictions(None, lambda spec, cfg: None, overrides=settings)


def rcpt(r, answers=None, recipient="alice@example.com"):
    asked = []

    def policy(service):
        asked.append(service)
        return (answers or {}).get(service)
    ctx = PolicyContext(recipient=recipient, **OUTSIDER)
    return r.evaluate_rcpt(ctx, policy=policy), asked


GREYLIST = ("check_policy_service", SERVICE, "permit_mynetworks", "reject_unauth_destination")


def test_an_unasked_service_stops_the_evaluation():
    with pytest.raises(NeedPolicy) as e:
        rcpt(make(smtpd_recipient_restrictions=GREYLIST))
    assert e.value.service == SERVICE


@pytest.mark.parametrize("answer, reply, notes", [
    ("DUNNO", "", ()),
    ("dunno", "", ()),
    ("OK", "", ()),
    ("DEFER_IF_PERMIT Greylisted, see http://postgrey.schweikert.ch/help/example.com.html",
     "450 4.7.1 <alice@example.com>: Recipient address rejected: Greylisted, see "
     "http://postgrey.schweikert.ch/help/example.com.html", ()),
    ("REJECT", "554 5.7.1 <alice@example.com>: Recipient address rejected: Access denied", ()),
    ("550 5.7.1 SPF fail", "550 5.7.1 <alice@example.com>: Recipient address rejected: SPF fail", ()),
    ("PREPEND X-Greylist: delayed 300 seconds", "", (Note("prepend", "", "X-Greylist: delayed 300 seconds"),)),
    ("451 4.3.5 Server configuration problem",
     "451 4.3.5 <alice@example.com>: Recipient address rejected: Server configuration problem", ()),
])
def test_the_answer_is_an_access_action_in_the_lists_reply_class(answer, reply, notes):
    d, asked = rcpt(make(smtpd_recipient_restrictions=GREYLIST), {SERVICE: answer})
    assert (d.reply, d.notes) == (reply, notes)
    assert asked == [SERVICE]


def test_a_service_the_evaluation_does_not_reach_is_never_asked():
    r = make(smtpd_recipient_restrictions=("reject_unauth_destination", "check_policy_service",
                                           SERVICE))
    d, asked = rcpt(r, recipient="victim@remote.example")
    assert d.reply.endswith("Relay access denied") and asked == []


def test_client_list_answers_in_the_client_reply_class():
    r = make(smtpd_client_restrictions=("check_policy_service", SERVICE))
    d, _ = rcpt(r, {SERVICE: "REJECT go away"})
    assert d.reply == "554 5.7.1 <unknown[198.51.100.7]>: Client host rejected: go away"


def test_the_dns_dry_run_looks_past_a_policy_service():
    r = make(smtpd_recipient_restrictions=("check_policy_service", SERVICE,
                                           "reject_unknown_sender_domain"))
    ctx = PolicyContext(recipient="alice@example.com", **OUTSIDER)
    assert r.domains_to_resolve(ctx) == ("spammer.example",)
    d = r.evaluate_rcpt(ctx, lambda name: DnsStatus.NOT_FOUND, policy={SERVICE: "DUNNO"}.get)
    assert d.reply.startswith("450 4.1.8 <spam@spammer.example>: Sender address rejected")
