"""reject_unverified_recipient / _sender in the pure evaluation: NeedVerify,
then Postfix's replies (smtpd_check.c reject_unverified_address; texts as a
live Postfix 3.7.11 answers them)."""

from __future__ import annotations

import pytest

from mailsys.ipc.proto.verify import BOUNCE, DEFER, OK, TODO
from mailsys.policy.restrictions import NeedVerify, PolicyContext, Restrictions

CLIENT = dict(client_name="unknown", client_addr="198.51.100.7", helo="client.test")
SAID = ("host 127.0.0.1[127.0.0.1] said: 550 5.1.1 <bad@remote.test>: Recipient address "
        "rejected: User unknown (in reply to RCPT TO command)")


def make(**settings):
    base = {"mydestination": (), "mynetworks": ("127.0.0.0/8",), "local_recipient_maps": (),
            "smtpd_relay_restrictions": ("permit",),
            "smtpd_recipient_restrictions": ("reject_unverified_recipient",)}
    base.update(settings)
    return Restrictions(None, lambda spec, cfg: None, overrides=base)


def rcpt(r, answers, recipient="bad@remote.test", sender="s@client.test"):
    asked = []

    def verify(address):
        asked.append(address)
        return answers.get(address)
    d = r.evaluate_rcpt(PolicyContext(recipient=recipient, sender=sender, **CLIENT),
                        verify=verify)
    return d, asked


def test_an_unasked_address_stops_the_evaluation():
    with pytest.raises(NeedVerify) as e:
        rcpt(make(), {})
    assert e.value.address == "bad@remote.test"


@pytest.mark.parametrize("answer, settings, reply", [
    ((TODO, "Address verification in progress"), {},
     "450 4.1.1 <bad@remote.test>: Recipient address rejected: unverified address: "
     "Address verification in progress"),
    ((BOUNCE, SAID), {},
     "450 4.1.1 <bad@remote.test>: Recipient address rejected: unverified address: " + SAID),
    ((DEFER, SAID), {"unverified_recipient_defer_code": 451},
     "451 4.1.1 <bad@remote.test>: Recipient address rejected: unverified address: " + SAID),
    ((BOUNCE, SAID), {"unverified_recipient_reject_code": 550},
     "550 5.1.1 <bad@remote.test>: Recipient address rejected: undeliverable address: " + SAID),
    ((BOUNCE, SAID), {"unverified_recipient_reject_code": 550,
                      "unverified_recipient_reject_reason": "Address lookup failed"},
     "550 5.1.1 <bad@remote.test>: Recipient address rejected: undeliverable address: "
     "Address lookup failed"),
    ((BOUNCE, SAID), {"unverified_recipient_reject_code": 550, "soft_bounce": True},
     "450 4.1.1 <bad@remote.test>: Recipient address rejected: undeliverable address: " + SAID),
    ((None, ""), {},
     "450 4.1.1 <bad@remote.test>: Recipient address rejected: address verification problem"),
    ((OK, "250 2.1.5 Ok"), {}, ""),
    ((BOUNCE, SAID), {"unverified_recipient_reject_code": 250}, ""),
])
def test_replies(answer, settings, reply):
    d, asked = rcpt(make(**settings), {"bad@remote.test": answer})
    assert d.reply == reply
    assert asked == ["bad@remote.test"]


def test_the_text_of_a_4xx_reply_is_cut_at_250():
    d, _ = rcpt(make(), {"bad@remote.test": (DEFER, "x" * 400)})
    assert d.reply.endswith("unverified address: " + "x" * 250)


def test_a_temporary_result_waits_for_a_permit_and_loses_to_a_reject():
    # defer_if_permit (the default tempfail action): a later reject wins.
    r = make(smtpd_recipient_restrictions=("reject_unverified_recipient", "reject"))
    d, _ = rcpt(r, {"bad@remote.test": (TODO, "Address verification in progress")})
    assert d.reply.startswith("554 5.7.1 <bad@remote.test>: Recipient address rejected")
    # defer: the 450 at once.
    r = make(smtpd_recipient_restrictions=("reject_unverified_recipient", "reject"),
             unverified_recipient_tempfail_action="defer")
    d, _ = rcpt(r, {"bad@remote.test": (TODO, "Address verification in progress")})
    assert d.reply.startswith("450 4.1.1 <bad@remote.test>: Recipient address rejected: unverified")


def test_the_sender_twin():
    r = make(smtpd_sender_restrictions=("reject_unverified_sender",),
             smtpd_recipient_restrictions=())
    d, asked = rcpt(r, {"bad@remote.test": (BOUNCE, SAID)}, recipient="good@remote.test",
                    sender="bad@remote.test")
    assert d.reply == ("450 4.1.7 <bad@remote.test>: Sender address rejected: unverified "
                       "address: " + SAID)
    assert asked == ["bad@remote.test"]
    r = make(smtpd_sender_restrictions=("reject_unverified_sender",),
             smtpd_recipient_restrictions=(), unverified_sender_reject_code=550)
    d, _ = rcpt(r, {"bad@remote.test": (BOUNCE, SAID)}, recipient="good@remote.test",
                sender="bad@remote.test")
    assert d.reply == ("550 5.1.7 <bad@remote.test>: Sender address rejected: undeliverable "
                       "address: " + SAID)


def test_the_null_sender_is_not_verified():
    r = make(smtpd_sender_restrictions=("reject_unverified_sender",),
             smtpd_recipient_restrictions=())
    d, asked = rcpt(r, {}, recipient="good@remote.test", sender="")
    assert d.accepted and asked == []


def test_the_dns_dry_run_looks_past_verification():
    r = make(smtpd_recipient_restrictions=("reject_unverified_recipient",
                                           "reject_unknown_recipient_domain"))
    ctx = PolicyContext(recipient="bad@remote.test", sender="s@client.test", **CLIENT)
    assert r.domains_to_resolve(ctx) == ("remote.test",)
