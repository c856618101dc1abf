"""Retry times and queue lifetimes (postfix-compat.md 2.3), with a fake clock."""

from __future__ import annotations

import pytest

from mailsys.message.envelope import Envelope, Recipient
from mailsys.qmgr.backoff import delay_warning_due, expired, lifetime, next_attempt, retry_delay
from mailsys.qmgr.settings import QmgrSettings

S = QmgrSettings(minimal_backoff_time=300, maximal_backoff_time=4000,
                 maximal_queue_lifetime=5 * 86400, bounce_queue_lifetime=86400)
T0 = 1_800_000_000.0


def env(sender="alice@example.com", arrival=T0, **kw) -> Envelope:
    return Envelope("", sender, (Recipient("bob@remote.example"),), arrival_time=arrival, **kw)


@pytest.mark.parametrize("age, wait", [
    (0, 300), (1, 300), (299.9, 300), (300, 300), (300.1, 300.1), (1000, 1000),
    (3999.9, 3999.9), (4000, 4000), (4000.1, 4000), (86400, 4000)])
def test_retry_delay_is_the_age_clamped(age, wait):
    assert retry_delay(age, 300, 4000) == pytest.approx(wait)


def test_retry_delay_when_minimum_exceeds_maximum_uses_the_minimum():
    assert retry_delay(10, 600, 60) == 600


def test_next_attempt_doubles_roughly_until_the_maximum():
    e = env()
    now, waits = T0, []
    for _ in range(8):
        due = next_attempt(e, now, S)
        waits.append(due - now)
        now = due
    assert waits[:2] == [300, 300]
    assert waits[2] == 600 and waits[3] == 1200 and waits[4] == 2400
    assert waits[5:] == [4000, 4000, 4000]


def test_next_attempt_with_a_clock_behind_arrival_waits_the_minimum():
    assert next_attempt(env(arrival=T0 + 50), T0, S) == T0 + 300


def test_lifetimes_by_sender():
    assert lifetime("alice@example.com", S) == 5 * 86400
    assert lifetime("", S) == 86400


@pytest.mark.parametrize("sender, age, want", [
    ("alice@example.com", 5 * 86400 - 1, False), ("alice@example.com", 5 * 86400, True),
    ("", 86400 - 1, False), ("", 86400, True)])
def test_expiry_at_the_boundary_of_each_lifetime(sender, age, want):
    assert expired(env(sender=sender), T0 + age, S) is want


def test_zero_lifetime_means_try_once():
    once = QmgrSettings(maximal_queue_lifetime=0)
    assert expired(env(), T0, once)


def test_delay_warning_once_and_never_for_the_null_sender():
    s = QmgrSettings(delay_warning_time=3600)
    assert not delay_warning_due(env(), T0 + 3599, s)
    assert delay_warning_due(env(), T0 + 3600, s)
    assert not delay_warning_due(env(delay_warned=True), T0 + 7200, s)
    assert not delay_warning_due(env(sender=""), T0 + 7200, s)
    assert not delay_warning_due(env(), T0 + 10**6, QmgrSettings())
