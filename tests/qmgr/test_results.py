"""Delivery results as store changes, and what happens to a settled message."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailsys.ipc.proto.deliver import RecipientResult
from mailsys.message.envelope import Envelope, Notify, RcptState, Recipient
from mailsys.qmgr.results import (ADMIN_EXPIRED, NO_STATUS, apply, deferred,
                                  leaves_quietly, recorded, settle)
from mailsys.qmgr.settings import QmgrSettings

T0 = 1_800_000_000.0
S = QmgrSettings(maximal_queue_lifetime=5 * 86400, bounce_queue_lifetime=86400)


def env(*states, sender="alice@example.com", **kw) -> Envelope:
    rcpts = tuple(Recipient(f"r{i}@remote.example", state=st,
                            reason="connect to x: Connection refused" if st is RcptState.DEFERRED else "",
                            dsn_status="4.4.1" if st is RcptState.DEFERRED else "")
                  for i, st in enumerate(states))
    return Envelope("", sender, rcpts, arrival_time=T0, **kw)


def test_recorded_maps_each_status():
    res = (RecipientResult(0, "sent", "2.0.0", "250 ok", relay="mx[1.2.3.4]:25"),
           RecipientResult(1, "deferred", "4.2.1", "try later", remote_mta="mx.example"),
           RecipientResult(2, "bounced", "5.1.1", "no such user", diagnostic="smtp; 550 5.1.1 no"))
    ch = recorded((0, 1, 2), res, T0)
    assert ch[0]["state"] is RcptState.SENT and ch[0]["dsn_status"] == "2.0.0"
    assert ch[1]["state"] is RcptState.DEFERRED and ch[1]["remote_mta"] == "mx.example"
    assert ch[2]["state"] is RcptState.BOUNCED and ch[2]["diagnostic"] == "smtp; 550 5.1.1 no"
    assert all(c["last_attempt"] == T0 for c in ch.values())


def test_recorded_owes_no_success_notice_the_next_hop_sends():
    res = (RecipientResult(0, "sent", "2.0.0", "250 ok", success_passed=True),
           RecipientResult(1, "sent", "2.0.0", "250 ok"),
           RecipientResult(2, "deferred", "4.2.1", "try later", success_passed=True))
    ch = recorded((0, 1, 2), res, T0)
    assert ch[0]["notified"] is True and "notified" not in ch[1] and "notified" not in ch[2]
    e = env(RcptState.PENDING, RcptState.PENDING, RcptState.PENDING)
    e = e.with_recipient(0, notify=(Notify.SUCCESS,)).with_recipient(1, notify=(Notify.SUCCESS,))
    assert settle(apply(e, ch), T0 + 1, S).success_notice == (1,)


def test_recorded_keeps_the_success_text_of_a_success_notice():
    # Postfix's trace_append(): "delivery via RELAY: TEXT", as its notice
    # read "<u@pipex.test>: delivery via pipex: delivered via pipex service".
    res = (RecipientResult(0, "sent", "2.0.0", "delivered via pipex service", relay="pipex",
                           action="delivered"),
           RecipientResult(1, "sent", "2.0.0", "example.com"),            # relay=none
           RecipientResult(2, "bounced", "5.1.1", "no such user", relay="pipex"))
    ch = recorded((0, 1, 2), res, T0)
    assert ch[0]["reason"] == "delivery via pipex: delivered via pipex service"
    assert ch[0]["action"] == "delivered"
    assert (ch[1]["reason"], ch[2]["reason"]) == ("example.com", "no such user")
    # A probe's report words its text itself (sendmail -bv).
    assert recorded((0,), res, T0, trace=False)[0]["reason"] == "delivered via pipex service"


def test_recorded_defers_recipients_without_a_result_and_ignores_strangers():
    res = (RecipientResult(0, "sent", "2.0.0", "ok"), RecipientResult(7, "sent", "2.0.0", "ok"),
           RecipientResult(1, "exploded", "2.0.0", "?"))
    ch = recorded((0, 1, 2), res, T0)
    assert set(ch) == {0, 1, 2}
    assert ch[1]["state"] is RcptState.DEFERRED and ch[1]["reason"] == NO_STATUS
    assert ch[2]["state"] is RcptState.DEFERRED


def test_deferred_untried():
    ch = deferred((3, 4), "4.3.0", "mail transport unavailable", T0)
    assert set(ch) == {3, 4} and ch[3]["reason"] == "mail transport unavailable"


def test_all_sent_is_done_with_nothing_to_notify():
    end = settle(env(RcptState.SENT, RcptState.SENT), T0 + 10, S)
    assert end.done and not end.failure_notice and not end.expire and end.expired_as == ""


def test_a_bounced_recipient_is_owed_a_notice_once():
    e = env(RcptState.SENT, RcptState.BOUNCED)
    end = settle(e, T0 + 10, S)
    assert end.done and end.failure_notice == (1,)
    notified = e.with_recipient(1, notified=True)
    assert settle(notified, T0 + 10, S).failure_notice == ()


def test_deferred_before_the_lifetime_stays():
    end = settle(env(RcptState.DEFERRED, RcptState.BOUNCED), T0 + 5 * 86400 - 1, S)
    assert not end.done and not end.expire and end.failure_notice == (1,)


def test_deferred_at_the_lifetime_expires_with_its_reason():
    e = env(RcptState.SENT, RcptState.DEFERRED)
    end = settle(e, T0 + 5 * 86400, S)
    assert end.expired_as == "expired" and end.done
    assert end.expire == {1: dict(state=RcptState.BOUNCED, reason="connect to x: Connection refused",
                                  dsn_status="4.4.1")}
    assert end.failure_notice == (1,)
    assert apply(e, end.expire).done


def test_null_sender_uses_the_bounce_lifetime():
    e = env(RcptState.DEFERRED, sender="")
    assert settle(e, T0 + 86400 - 1, S).expire == {}
    assert settle(e, T0 + 86400, S).expired_as == "expired"


def test_forced_expiry_returns_untried_recipients_at_once():
    e = env(RcptState.PENDING, RcptState.SENT, forced_expire=True)
    end = settle(e, T0 + 1, S)
    assert end.expired_as == "force-expired" and end.done
    # qmgr_message.c: "4.7.0 message is administratively expired"
    assert (end.expire[0]["reason"], end.expire[0]["dsn_status"]) == (ADMIN_EXPIRED, "4.7.0")
    assert end.failure_notice == (0,)


def test_delay_warning_for_the_deferred_recipients_once():
    s = QmgrSettings(delay_warning_time=3600)
    e = env(RcptState.DEFERRED, RcptState.SENT, RcptState.DEFERRED)
    assert settle(e, T0 + 3599, s).delay_notice == ()
    assert settle(e, T0 + 3600, s).delay_notice == (0, 2)
    assert settle(e.replace(delay_warned=True), T0 + 3600, s).delay_notice == ()


def test_notify_success_asks_for_a_success_report_once():
    e = env(RcptState.SENT, RcptState.SENT)
    e = e.with_recipient(1, notify=(Notify.SUCCESS, Notify.FAILURE))
    end = settle(e, T0 + 1, S)
    assert end.done and end.success_notice == (1,) and end.failure_notice == ()
    assert settle(e.with_recipient(1, notified=True), T0 + 1, S).success_notice == ()


_states = st.sampled_from(list(RcptState))
_change = st.fixed_dictionaries({"state": _states}, optional={
    "notified": st.booleans(), "notify": st.sampled_from([(), (Notify.SUCCESS,)])})


@given(st.lists(st.tuples(_states, st.booleans(), st.booleans()), min_size=1, max_size=4),
       st.dictionaries(st.integers(0, 3), _change, max_size=4), st.booleans(),
       st.floats(0, 10 * 86400))
def test_leaves_quietly_is_what_settle_says(rcpts, changes, forced, age):
    e = Envelope("", "alice@example.com", tuple(
        Recipient(f"r{i}@x.example", state=state, notified=notified,
                  notify=(Notify.SUCCESS,) if success else ())
        for i, (state, notified, success) in enumerate(rcpts)),
        arrival_time=T0, forced_expire=forced)
    changes = {i: c for i, c in changes.items() if i < len(rcpts)}
    end = settle(apply(e, changes), T0 + age, S)
    quiet = end.done and not (end.expire or end.failure_notice or end.success_notice)
    assert leaves_quietly(e, changes) is quiet


def test_a_notice_names_its_recipients_in_postfix_log_order():
    # Postfix 3.7: a message received for zed@b.example, 5rcpt@example.net,
    # Alice@example.net, rcpt@example.net, bob@a.example, all refused in one
    # delivery, got a notice naming bob@a.example, zed@b.example,
    # 5rcpt@example.net, Alice@example.net, rcpt@example.net (the bounce
    # log's order). A recipient refused at an earlier attempt comes first.
    def bounced(address: str, when: float) -> Recipient:
        return Recipient(address, state=RcptState.BOUNCED, dsn_status="5.3.0",
                         reason="refused", last_attempt=when)
    e = Envelope("", "s@example.org", (
        bounced("zed@b.example", T0 + 5), bounced("5rcpt@example.net", T0 + 5),
        bounced("Alice@example.net", T0 + 5), bounced("rcpt@example.net", T0 + 5),
        bounced("bob@a.example", T0 + 5), bounced("last@a.example", T0 + 1),
        Recipient("later@a.example", state=RcptState.DEFERRED, dsn_status="4.4.1",
                  reason="later", last_attempt=T0 + 5)), arrival_time=T0)
    end = settle(e, T0 + 6, S)
    assert [e.recipients[i].address for i in end.failure_notice] == [
        "last@a.example", "bob@a.example", "zed@b.example", "5rcpt@example.net",
        "Alice@example.net", "rcpt@example.net"]
    one = settle(env(RcptState.SENT, RcptState.BOUNCED), T0, S)
    assert one.failure_notice == (1,)
