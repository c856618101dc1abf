"""services/local forwarding: nothing is reported sent unless cleanup queued the copy."""

from __future__ import annotations

import time

import trio

from mailsys.delivery.aliases import Forward, Target
from mailsys.delivery.local import RecipientPlan, combine
from mailsys.delivery.report import deferred, sent
from mailsys.ipc.proto.deliver import DeliverRecipient, DeliverRequest
from services import local

RCPT = DeliverRecipient(0, "remote@example.test")
REQ = DeliverRequest("4jbg0l0CZFz082B", "local", "", "s@example.org", (RCPT,), time.time(), 10,
                     time.time(), address_class="local")
FWD = Forward(Target("far@example.net", "remote@example.test", "s@example.org",
                     delivered="remote@example.test"))


def test_cleanup_unreachable_defers_the_recipient(make_config):
    cfg = make_config(ipc_timeout="2s")          # no cleanup socket in the queue directory
    plan = RecipientPlan(RCPT, (), (FWD,))
    lines = trio.run(local.forward, REQ, plan, b"Subject: x\r\n\r\nhi\r\n", cfg)
    [(who, result)] = lines
    assert who == RCPT
    assert (result.status, result.dsn) == ("deferred", "4.3.0")
    assert result.reason.startswith("cannot forward message: ")
    assert combine(plan, lines).status == "deferred"


def test_a_deferred_piece_cancels_the_forward(make_config):
    cfg = make_config()
    plan = RecipientPlan(RCPT, ((RCPT, deferred(RCPT, "4.2.0", "mailbox locked")),
                                (RCPT, sent(RCPT, "delivered to mailbox"))), (FWD,))
    assert trio.run(local.forward, REQ, plan, b"x\r\n", cfg) == ()
    assert combine(plan).reason == "mailbox locked"
