"""MessageActions and with_actions: smtpd's actions, then the content checks', for one message."""

from __future__ import annotations

from types import SimpleNamespace

from mailsys.message.envelope import Notify, Recipient
from mailsys.message.message_actions import MessageActions, first_answer, with_actions


def test_later_filter_and_redirect_win_bcc_adds_up_and_hold_is_taken_once():
    request = SimpleNamespace(hold=False, discard=False, filter="smtp:[a]:1", redirect="",
                              bcc=("x@example.org",))
    effects = MessageActions.of(request)
    taken = [effects.take(a, t) for a, t in (
        ("hold", ""), ("hold", ""), ("filter", "smtp:[b]:2"), ("redirect", "r@example.org"),
        ("bcc", "y@example.org"), ("warning", "odd"))]
    assert taken == [True, False, True, True, True, True]
    assert effects == MessageActions(True, False, "smtp:[b]:2", "r@example.org",
                                     ["x@example.org", "y@example.org"])
    assert request.bcc == ("x@example.org",)          # the request is left as it was


def test_with_actions():
    given = [Recipient("a@example.org"), Recipient("b@example.org")]
    assert with_actions(given, ["b@example.org", "c@example.org", "c@example.org"], "") == (
        Recipient("a@example.org"), Recipient("b@example.org"),
        Recipient("c@example.org", notify=(Notify.NEVER,)))
    assert with_actions(given, ["c@example.org"], "boss@example.org") == (
        Recipient("boss@example.org", orig="a@example.org"),)
    assert with_actions([Recipient("boss@example.org")], [], "boss@example.org") == (
        Recipient("boss@example.org"),)


def test_first_answer():
    one, two = {"a": "1"}, {"a": "x", "b": "2"}
    check = first_answer([SimpleNamespace(lookup=one.get), SimpleNamespace(lookup=two.get)])
    assert [check(k) for k in "abc"] == ["1", "2", None]
    assert first_answer([]) is None
