"""qmgr's settings from a real main.cf."""

from __future__ import annotations

import structlog.testing

from mailsys.config import load
from mailsys.qmgr.settings import Feedback, Limits, QmgrSettings, routing_settings
from mailsys.routing import AddressClass, resolve


def config(tmp_path, **params):
    (tmp_path / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in params.items()))
    return load(tmp_path)


def test_defaults_are_postfix_defaults(tmp_path):
    cfg = config(tmp_path, myhostname="mx.example.test")
    s = QmgrSettings.from_config(cfg)
    assert (s.queue_run_delay, s.minimal_backoff_time, s.maximal_backoff_time) == (300, 300, 4000)
    assert s.maximal_queue_lifetime == s.bounce_queue_lifetime == 5 * 86400
    assert s.delay_warning_time == 0 and s.active_limit == 20000
    assert Limits.from_config(cfg, "smtp") == Limits(20, 50, 0.0, 5, 1)
    # Postfix's local transport defaults
    assert Limits.from_config(cfg, "local").concurrency == 2
    assert Limits.from_config(cfg, "local").recipients == 1


def test_per_transport_overrides_and_defaults(tmp_path):
    cfg = config(tmp_path, myhostname="mx.example.test",
                 default_destination_concurrency_limit="7",
                 slow_destination_concurrency_limit="1", slow_destination_rate_delay="30s",
                 smtp_destination_recipient_limit="10")
    assert Limits.from_config(cfg, "slow") == Limits(1, 50, 30.0, 5, 1)
    assert Limits.from_config(cfg, "smtp") == Limits(7, 10, 0.0, 5, 1)
    assert Limits.from_config(cfg, "relay").concurrency == 7


def test_routing_with_a_table_in_a_domain_list(tmp_path):
    (tmp_path / "vmailbox").write_text("virtual.example  ok\n")
    cfg = config(tmp_path, myhostname="mx.example.test",
                 virtual_mailbox_domains=f"texthash:{tmp_path}/vmailbox, other.example")
    routing = routing_settings(cfg)
    assert resolve("a@virtual.example", routing).address_class is AddressClass.VIRTUAL
    assert resolve("a@other.example", routing).address_class is AddressClass.VIRTUAL
    assert resolve("a@mx.example.test", routing).address_class is AddressClass.LOCAL
    assert resolve("a@remote.example", routing).transport == "smtp"


def test_an_address_literal_of_this_host_is_local(tmp_path):
    # smtpd takes postmaster@[127.0.0.1] as local; qmgr must too, or the mail
    # would go out by smtp to this host's own smtpd and come back.
    cfg = config(tmp_path, myhostname="mx.example.test", inet_interfaces="loopback-only",
                 proxy_interfaces="198.51.100.7")
    routing = routing_settings(cfg)
    for address in ("postmaster@[127.0.0.1]", "postmaster@[IPv6:::1]", "a@[198.51.100.7]"):
        assert resolve(address, routing).address_class is AddressClass.LOCAL, address
    assert resolve("a@[192.0.2.99]", routing).transport == "smtp"


def test_scheduler_parameters_default_as_postfix(tmp_path):
    cfg = config(tmp_path, myhostname="mx.example.test")
    s = QmgrSettings.from_config(cfg)
    assert s.defer_transports == frozenset() and not s.feedback_debug
    smtp = Limits.from_config(cfg, "smtp")
    assert (smtp.positive, smtp.negative) == (Feedback(1.0), Feedback(1.0))
    assert smtp.transport_rate_delay == 0


def test_scheduler_parameters_per_transport(tmp_path):
    cfg = config(tmp_path, myhostname="mx.example.test", defer_transports="smtp, relay",
                 default_destination_concurrency_negative_feedback="1/8",
                 slow_destination_concurrency_positive_feedback="1/concurrency",
                 default_transport_rate_delay="2s", slow_transport_rate_delay="1m")
    assert QmgrSettings.from_config(cfg).defer_transports == {"smtp", "relay"}
    slow, smtp = Limits.from_config(cfg, "slow"), Limits.from_config(cfg, "smtp")
    assert (slow.positive, slow.negative) == (Feedback(1.0, True), Feedback(0.125))
    assert (smtp.positive, smtp.negative) == (Feedback(1.0), Feedback(0.125))
    assert (slow.transport_rate_delay, smtp.transport_rate_delay) == (60, 2)


def test_bad_feedback_warns_as_postfix_and_counts_as_one(tmp_path):
    cfg = config(tmp_path, myhostname="mx.example.test", destination_concurrency_feedback_debug="yes",
                 relay_destination_concurrency_positive_feedback="bogus")
    with structlog.testing.capture_logs() as logs:
        relay = Limits.from_config(cfg, "relay", structlog.get_logger())
    assert relay.positive == Feedback(1.0)
    said = [e["event"] for e in logs]
    # as Postfix 3.7 logs them (destination_concurrency_feedback_debug = yes)
    assert said == [
        "relay_destination_concurrency_positive_feedback: "
        "ignoring malformed or unreasonable feedback: bogus",
        "relay: relay_destination_concurrency_positive_feedback feedback type 0 value at 5: 1",
        "relay: default_destination_concurrency_negative_feedback feedback type 0 value at 5: 1"]


def test_in_memory_recipient_limits_are_postfix_defaults_per_transport(tmp_path):
    # postconf -d (3.7): default_recipient_limit = 20000,
    # default_recipient_refill_limit = 100, default_recipient_refill_delay = 5s,
    # qmgr_message_recipient_minimum = 10; smtp_recipient_limit =
    # $default_recipient_limit and so on for any transport.
    cfg = config(tmp_path, myhostname="mx.example.test", default_recipient_limit="500",
                 slow_recipient_limit="7", slow_recipient_refill_limit="3",
                 slow_recipient_refill_delay="1m")
    s = QmgrSettings.from_config(cfg)
    assert s.recipient_minimum == 10
    smtp = Limits.from_config(cfg, "smtp")
    assert (smtp.in_memory, smtp.refill_limit, smtp.refill_delay) == (500, 100, 5.0)
    slow = Limits.from_config(cfg, "slow")
    assert (slow.in_memory, slow.refill_limit, slow.refill_delay) == (7, 3, 60.0)
    assert Limits() == Limits.from_config(config(tmp_path, myhostname="mx.example.test"), "smtp")


def test_a_recipient_limit_below_the_active_limit_is_raised_with_postfix_warning(tmp_path):
    # Postfix 3.7, qmgr_message_recipient_limit = 10 (active limit 20000):
    #   postfix/qmgr[32720]: warning: qmgr_message_recipient_limit is smaller
    #   than qmgr_message_active_limit - adjusting qmgr_message_recipient_limit
    cfg = config(tmp_path, myhostname="mx.example.test", qmgr_message_recipient_limit="10")
    with structlog.testing.capture_logs() as logs:
        s = QmgrSettings.from_config(cfg, structlog.get_logger())
    assert s.recipient_limit == 20000
    assert [e["event"] for e in logs] == [
        "qmgr_message_recipient_limit is smaller than qmgr_message_active_limit"
        " - adjusting qmgr_message_recipient_limit"]
    cfg = config(tmp_path, myhostname="mx.example.test", qmgr_message_recipient_limit="10",
                 qmgr_message_active_limit="10")
    assert QmgrSettings.from_config(cfg).recipient_limit == 10


def test_preemption_parameters_are_postfix_defaults_per_transport(tmp_path):
    # postconf -d (3.7): default_delivery_slot_cost = 5, _loan = 3,
    # _discount = 50, default_minimum_delivery_slots = 3,
    # default_extra_recipient_limit = 1000; smtp_delivery_slot_cost =
    # $default_delivery_slot_cost and so on.
    cfg = config(tmp_path, myhostname="mx.example.test", default_delivery_slot_cost="2",
                 bulk_delivery_slot_cost="0", bulk_delivery_slot_loan="1",
                 bulk_delivery_slot_discount="100", bulk_minimum_delivery_slots="9",
                 bulk_extra_recipient_limit="7")
    smtp = Limits.from_config(cfg, "smtp")
    assert (smtp.slot_cost, smtp.slot_loan, smtp.slot_discount, smtp.min_slots, smtp.extra) == \
        (2, 3, 50, 3, 1000)
    bulk = Limits.from_config(cfg, "bulk")
    assert (bulk.slot_cost, bulk.slot_loan, bulk.slot_discount, bulk.min_slots, bulk.extra) == \
        (0, 1, 100, 9, 7)
