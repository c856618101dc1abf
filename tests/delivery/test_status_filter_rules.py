"""StatusFilter: Postfix dsn_filter(3) rules on a RecipientResult, from a table's answers."""

from __future__ import annotations

import pytest

from mailsys.delivery.status_filter import StatusFilter
from mailsys.ipc.proto.deliver import RecipientResult
from mailsys.message.message_actions import first_answer


class Table:
    """A table that answers every key with one text (or None), and notes the keys."""

    spec = "test:"

    def __init__(self, answer):
        self.answer = answer
        self.keys = []

    def lookup(self, key):
        self.keys.append(key)
        return self.answer


def result(status, dsn, reason="text"):
    return RecipientResult(0, status, dsn, reason, relay="mx[192.0.2.1]:25",
                           remote_mta="mx", diagnostic="smtp; 550 x")


@pytest.mark.parametrize("before, answer, after", [
    (("sent", "2.0.0"), "2.6.0 new text", ("sent", "2.6.0", "new text")),
    (("deferred", "4.4.1"), "5.4.1 hard now", ("bounced", "5.4.1", "hard now")),
    (("bounced", "5.1.1"), "4.1.1 soft now", ("deferred", "4.1.1", "soft now")),
    (("bounced", "5.1.1"), "2.0.0 ok", ("bounced", "5.1.1", "text")),     # never success
    (("sent", "2.0.0"), "5.0.0 no", ("sent", "2.0.0", "text")),           # never failure
    (("sent", "2.0.0"), "garbage", ("sent", "2.0.0", "text")),
    (("sent", "2.0.0"), "2.0.0.1 x", ("sent", "2.0.0", "text")),
    (("sent", "2.0.0"), None, ("sent", "2.0.0", "text")),
])
def test_apply(before, answer, after):
    table = Table(answer)
    warnings = []
    f = StatusFilter("smtp_delivery_status_filter", first_answer([table]), warnings.append)
    out = f(result(*before))
    assert (out.status, out.dsn, out.reason) == after
    assert table.keys == [f"{before[1]} text"]
    assert (out.relay, out.remote_mta, out.diagnostic) == ("mx[192.0.2.1]:25", "mx", "smtp; 550 x")
    bad = answer is not None and after[2] == "text"
    assert warnings == ([f"smtp_delivery_status_filter: bad status code: {answer}"] if bad else [])


def test_first_table_that_answers_wins():
    first, second = Table(None), Table("2.1.0 second")
    out = StatusFilter("x", first_answer([first, second, Table("2.2.0 third")]), print)(
        result("sent", "2.0.0"))
    assert (out.dsn, out.reason) == ("2.1.0", "second")
