"""delays= bookkeeping, the status line fields, and name server specs."""

from __future__ import annotations

import pytest
import structlog

from mailsys.delivery.report import Stopwatch, bounced, failed, log_status, sent
from mailsys.ipc.proto.deliver import DeliverRecipient, DeliverRequest
from mailsys.maillog import postfix
from mailsys.maillog.event import LogEvent
from mailsys.runtime.resolver import parse_nameserver


def req(**kw):
    base = dict(queue_id="1C0BF20E25F", transport="virtual", nexthop="", sender="a@x.test",
                recipients=(DeliverRecipient(0, "bob@example.com", orig="postmaster"),),
                arrival_time=1000.0, size=10, queued_at=1000.06)
    base.update(kw)
    return DeliverRequest(**base)


def test_delays_split_in_four():
    w = Stopwatch(arrival=1000.0, queued_at=1000.06, started=1000.07)
    w.connected(now=1000.2)
    delay, parts = w.delays(now=1000.5)
    assert delay == pytest.approx(0.5)
    assert parts == pytest.approx((0.06, 0.01, 0.13, 0.3))


def test_no_part_is_ever_negative():
    # queued_at before arrival (a restart) and a start before queued_at (clock skew).
    w = Stopwatch(arrival=1000.0, queued_at=999.0, started=998.0)
    delay, parts = w.delays(now=1001.0)
    assert delay == 1.0 and all(p >= 0 for p in parts) and sum(parts) == pytest.approx(1.0)
    # Never connected: everything after the start is setup.
    assert Stopwatch(1000.0, 1000.0, 1000.5).delays(now=1001.0)[1] == (0.0, 0.5, 0.5, 0.0)


def test_status_line_in_postfix_order():
    r = req()
    rcpt = r.recipients[0]
    w = Stopwatch(arrival=1000.0, queued_at=1000.06, started=1000.07)
    w.connected(now=1000.07)
    with structlog.testing.capture_logs() as logs:
        log_status(r, rcpt, bounced(rcpt, "5.1.1", 'unknown user: "postmaster@example.com"',
                                    relay="virtual"), w, now=1000.08)
        log_status(r, rcpt, sent(rcpt, "250 ok", relay="h[1.2.3.4]:25"), w, conn_use=3, now=1000.08)
    texts = []
    for d in logs:
        d.pop("log_level", None)
        texts.append(postfix.message(LogEvent.from_event_dict(d, tag="mailsys/virtual", pid=1)))
    assert texts[0] == ('1C0BF20E25F: to=<bob@example.com>, orig_to=<postmaster>, relay=virtual, '
                        'delay=0.08, delays=0.06/0.01/0/0.01, dsn=5.1.1, status=bounced '
                        '(unknown user: "postmaster@example.com")')
    assert ", relay=h[1.2.3.4]:25, conn_use=3, delay=0.08," in texts[1]


def test_failed_picks_the_status_from_the_class():
    rcpt = DeliverRecipient(0, "b@x.test")
    assert failed(rcpt, "4.4.1", "x").status == "deferred"
    assert failed(rcpt, "5.4.6", "x").status == "bounced"


@pytest.mark.parametrize("spec, expected", [
    ("192.0.2.53", ("192.0.2.53", 53)), ("127.0.0.1:5353", ("127.0.0.1", 5353)),
    ("[2001:db8::53]:5353", ("2001:db8::53", 5353)), ("2001:db8::53", ("2001:db8::53", 53)),
    ("[::1]", ("::1", 53))])
def test_nameserver_specs(spec, expected):
    assert parse_nameserver(spec) == expected


@pytest.mark.parametrize("spec", ["ns.example.com", "1.2.3.4:x", "1.2.3.4:0", "[::1]5"])
def test_bad_nameserver_specs(spec):
    with pytest.raises(ValueError):
        parse_nameserver(spec)
