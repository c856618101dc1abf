"""BestMxPass: when a delivery's results call for best_mx_transport."""

from __future__ import annotations

import pytest

from mailsys.config.loader import load
from mailsys.ipc.proto.deliver import DeliverRecipient
from mailsys.delivery.report import bounced, deferred, sent
from mailsys.runtime.best_mx import BestMxPass

pytestmark = pytest.mark.timeout(10)

R = DeliverRecipient(0, "bob@hosted.test")
LOOP = bounced(R, "5.4.6", "mail for hosted.test loops back to myself")


class Req:
    def __init__(self, nexthop: str) -> None:
        self.nexthop = nexthop


def best(tmp_path, text: str) -> BestMxPass | None:
    (tmp_path / "main.cf").write_text(f"queue_directory = {tmp_path}\n" + text)
    return BestMxPass.from_config(load(tmp_path))


def test_empty_is_none(tmp_path):
    assert best(tmp_path, "") is None


def test_transport_and_nexthop(tmp_path):
    b = best(tmp_path, "best_mx_transport = local\n")
    assert (b.transport, b.nexthop, b.socket.name) == ("local", "", "local")
    b = best(tmp_path, "best_mx_transport = relay:[192.0.2.1]:25\n")
    assert (b.transport, b.nexthop) == ("relay", "[192.0.2.1]:25")


def test_applies_only_when_every_recipient_loops(tmp_path):
    b = best(tmp_path, "best_mx_transport = local\nrelayhost = [relay.example]:587\n")
    assert b.applies(Req("hosted.test"), [LOOP])
    assert not b.applies(Req("hosted.test"), [])
    assert not b.applies(Req("hosted.test"), [LOOP, deferred(R, "4.4.1", "refused")])
    assert not b.applies(Req("hosted.test"), [sent(R, "250 ok", dsn="2.4.6")])
    assert not b.applies(Req("hosted.test"), [bounced(R, "5.1.1", "no such user")])
    # The relayhost looping is a configuration problem, not a hosted domain.
    assert not b.applies(Req("[relay.example]:587"), [LOOP])


def test_a_server_greeting_with_our_name_is_not_passed_on(tmp_path):
    """smtp_connect.c passes only a hard loop found before any server was
    talked to; a server answering EHLO with our hostname (smtp_proto.c)
    bounces (5.4.6 at a best MX host) or defers (4.4.6) at once."""
    b = best(tmp_path, "best_mx_transport = local\n")
    text = "mail for hosted.test loops back to myself"
    relay = "mx.hosted.test[192.0.2.1]:25"
    assert not b.applies(Req("hosted.test"), [bounced(R, "5.4.6", text, relay=relay)])
    assert not b.applies(Req("hosted.test"), [deferred(R, "4.4.6", text, relay=relay)])
    assert not b.applies(Req("hosted.test"), [deferred(R, "4.4.6", text)])
