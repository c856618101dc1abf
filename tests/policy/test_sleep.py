"""The "sleep N" restriction in the pure evaluation: NeedPause, then on past it."""

from __future__ import annotations

import pytest

from mailsys.policy.restrictions import NeedPause, PolicyContext, Restrictions

CTX = PolicyContext(client_name="unknown", client_addr="198.51.100.7", helo="c.example",
                    sender="s@example.org", recipient="bob@example.com")


def make(*names):
    return Restrictions(None, lambda spec, cfg: None, overrides={
        "mydestination": ("example.com",), "local_recipient_maps": (),
        "smtpd_recipient_restrictions": names})


def test_a_sleep_not_yet_made_is_asked_for_then_the_list_goes_on():
    r = make("sleep", "2", "reject")
    with pytest.raises(NeedPause) as e:
        r.evaluate_rcpt(CTX)
    assert e.value.seconds == 2
    d = r.evaluate_rcpt(CTX, paused=1)
    assert d.reply == "554 5.7.1 <bob@example.com>: Recipient address rejected: Access denied"


def test_each_sleep_is_asked_for_in_turn():
    r = make("sleep", "1", "permit_mynetworks", "sleep", "0", "sleep", "3", "permit")
    asked = []
    paused = 0
    while True:
        try:
            d = r.evaluate_rcpt(CTX, paused=paused)
            break
        except NeedPause as need:
            asked.append(need.seconds)
            paused += 1
    assert asked == [1, 3]          # "sleep 0" is nothing to make
    assert d.accepted


def test_a_sleep_the_evaluation_does_not_reach_is_not_made():
    r = make("permit", "sleep", "5")
    assert r.evaluate_rcpt(CTX).accepted


@pytest.mark.parametrize("names", [("sleep",), ("sleep", "1s"), ("sleep", "-1"), ("sleep", "x")])
def test_sleep_without_a_number_is_a_configuration_error(names):
    r = make(*names)
    assert "restriction sleep must be followed by number" in r.warnings
    assert r.evaluate_rcpt(CTX).reply == "451 4.3.5 Server configuration error"


def test_the_dns_dry_run_passes_a_sleep():
    r = make("sleep", "1", "reject_unknown_recipient_domain", "permit")
    assert r.domains_to_resolve(CTX) == ()                  # example.com is local: no lookup
    r = make("sleep", "1", "reject_unknown_sender_domain", "permit")
    assert r.domains_to_resolve(CTX) == ("example.org",)
