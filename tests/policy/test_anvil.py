"""anvil counters: Postfix's fixed window, exact limit boundaries, memory bound, statistics lines."""

import calendar
from datetime import timezone

import pytest

from mailsys.policy.anvil import (
    Anvil, ClientCounts, ClientLimits, ConnectCounts, check_auth, check_connect, check_message,
    check_new_tls, check_recipient, check_starttls,
)

UTC = timezone.utc
T0 = calendar.timegm((2026, 11, 27, 0, 21, 40))   # Nov 27 00:21:40 UTC


class Clock:
    def __init__(self, t=T0):
        self.t = t

    def __call__(self):
        return self.t


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def anvil(clock):
    return Anvil(60, clock=clock, tz=UTC)


SVC, ADDR = "smtp", "192.0.2.10"
NAMADDR = "client.example.org[192.0.2.10]"


def test_connect_counts_concurrency_and_rate_and_disconnect_lowers_only_the_count(anvil):
    assert anvil.connect(SVC, ADDR) == ConnectCounts(1, 1)
    assert anvil.connect(SVC, ADDR) == ConnectCounts(2, 2)
    anvil.disconnect(SVC, ADDR)
    assert anvil.lookup(SVC, ADDR) == ClientCounts(1, 2, 0, 0, 0, 0)
    assert anvil.connect(SVC, ADDR) == ConnectCounts(2, 3)


def test_counters_are_per_service_and_address(anvil):
    anvil.connect("smtp", ADDR)
    assert anvil.connect("submission", ADDR) == ConnectCounts(1, 1)
    assert anvil.connect("smtp", "192.0.2.11") == ConnectCounts(1, 1)
    assert len(anvil) == 3


def test_fixed_window_resets_only_after_start_plus_unit(anvil, clock):
    anvil.connect(SVC, ADDR)
    anvil.message(SVC, ADDR)
    clock.t = T0 + 60                       # start + unit == now: same window
    assert anvil.connect(SVC, ADDR).rate == 2
    assert anvil.message(SVC, ADDR) == 2
    clock.t = T0 + 61                       # start + unit < now: every rate restarts
    assert anvil.connect(SVC, ADDR) == ConnectCounts(3, 1)   # concurrency is not a rate
    assert anvil.lookup(SVC, ADDR) == ClientCounts(3, 1, 0, 0, 0, 0)
    # the new window started at T0 + 61, not at the first event
    clock.t = T0 + 121
    assert anvil.message(SVC, ADDR) == 1
    clock.t = T0 + 122
    assert anvil.message(SVC, ADDR) == 1


def test_window_is_not_sliding(anvil, clock):
    for dt in (0, 30, 59):
        clock.t = T0 + dt
        anvil.recipient(SVC, ADDR)
    clock.t = T0 + 61
    # a sliding window would still count the events at +30 and +59
    assert anvil.recipient(SVC, ADDR) == 1


def test_clock_is_read_in_whole_seconds(anvil, clock):
    anvil.connect(SVC, ADDR)
    clock.t = T0 + 60.9
    assert anvil.connect(SVC, ADDR).rate == 2
    clock.t = T0 + 61.0
    assert anvil.connect(SVC, ADDR).rate == 1


def limits(**kw):
    return ClientLimits(**kw)


def verdict(counts, lim):
    return check_connect(counts, lim, service=SVC, namaddr=NAMADDR, addr=ADDR,
                         myhostname="mx.example.com")


def test_connection_concurrency_limit_boundary(anvil):
    lim = limits(connection_count=2)
    for expected in (1, 2):
        counts = anvil.connect(SVC, ADDR)
        assert counts.count == expected and verdict(counts, lim) is None
    hit = verdict(anvil.connect(SVC, ADDR), lim)
    assert hit.warning == ("Connection concurrency limit exceeded: 3 from "
                           "client.example.org[192.0.2.10] for service smtp")
    assert str(hit.reply) == "421 4.7.0 mx.example.com Error: too many connections from 192.0.2.10"


def test_connection_rate_limit_boundary_and_concurrency_checked_first(anvil):
    lim = limits(connection_count=0, connection_rate=3)
    for _ in range(3):
        counts = anvil.connect(SVC, ADDR)
        anvil.disconnect(SVC, ADDR)
        assert verdict(counts, lim) is None
    hit = verdict(anvil.connect(SVC, ADDR), lim)
    assert hit.warning == ("Connection rate limit exceeded: 4 from "
                           "client.example.org[192.0.2.10] for service smtp")
    assert str(hit.reply) == "421 4.7.0 mx.example.com Error: too many connections from 192.0.2.10"
    both = verdict(ConnectCounts(5, 9), limits(connection_count=2, connection_rate=3))
    assert both.warning.startswith("Connection concurrency limit exceeded: 5 ")


def test_zero_limits_never_trip():
    lim = limits(connection_count=0)
    assert check_connect(ConnectCounts(10**6, 10**6), lim, service=SVC, namaddr=NAMADDR,
                         addr=ADDR, myhostname="mx") is None
    for check in (check_message, check_recipient, check_auth):
        assert check(10**6, lim, service=SVC, namaddr=NAMADDR, addr=ADDR) is None


@pytest.mark.parametrize("event, check, field, warning, reply", [
    ("message", check_message, "message_rate",
     "Message delivery request rate limit exceeded: 3 from client.example.org[192.0.2.10] for service smtp",
     "450 4.7.1 Error: too much mail from 192.0.2.10"),
    ("recipient", check_recipient, "recipient_rate",
     "Recipient address rate limit exceeded: 3 from client.example.org[192.0.2.10] for service smtp",
     "450 4.7.1 Error: too many recipients from 192.0.2.10"),
    ("auth", check_auth, "auth_rate",
     "AUTH command rate limit exceeded: 3 from client.example.org[192.0.2.10] for service smtp",
     "450 4.7.1 Error: too many AUTH commands from 192.0.2.10"),
])
def test_rate_limits_pass_at_the_limit_and_trip_one_above(anvil, event, check, field, warning,
                                                          reply):
    lim = limits(**{field: 2})
    for _ in range(2):
        rate = getattr(anvil, event)(SVC, ADDR)
        assert check(rate, lim, service=SVC, namaddr=NAMADDR, addr=ADDR) is None
    hit = check(getattr(anvil, event)(SVC, ADDR), lim, service=SVC, namaddr=NAMADDR, addr=ADDR)
    assert hit.warning == warning
    assert str(hit.reply) == reply


def test_new_tls_session_rate_status_before_and_count_after_the_handshake(anvil):
    lim = limits(new_tls_session_rate=1)
    assert anvil.newtls_status(SVC, ADDR) == 0
    assert check_starttls(anvil.newtls_status(SVC, ADDR), lim, service=SVC,
                          namaddr=NAMADDR) is None
    assert check_new_tls(anvil.newtls(SVC, ADDR), lim, service=SVC, namaddr=NAMADDR,
                         myhostname="mx") is None
    assert anvil.newtls_status(SVC, ADDR) == 1          # asking does not count
    hit = check_new_tls(anvil.newtls(SVC, ADDR), lim, service=SVC, namaddr=NAMADDR,
                        myhostname="mx")
    assert hit.warning == ("New TLS session rate limit exceeded: 2 from "
                           "client.example.org[192.0.2.10] for service smtp")
    assert str(hit.reply) == ("421 4.7.0 mx Error: too many new TLS sessions from "
                              "client.example.org[192.0.2.10]")
    refuse = check_starttls(anvil.newtls_status(SVC, ADDR), lim, service=SVC, namaddr=NAMADDR)
    assert refuse.warning == ("Refusing STARTTLS request from client.example.org[192.0.2.10] "
                              "for service smtp")
    assert str(refuse.reply) == ("454 4.7.0 Error: too many new TLS sessions from "
                                 "client.example.org[192.0.2.10]")


def test_disconnect_of_an_unknown_client_is_ignored(anvil):
    anvil.disconnect(SVC, ADDR)
    assert anvil.lookup(SVC, ADDR) is None
    anvil.connect(SVC, ADDR)
    anvil.disconnect(SVC, ADDR)
    anvil.disconnect(SVC, ADDR)
    assert anvil.lookup(SVC, ADDR).count == 0


def test_idle_client_keeps_its_rates_for_a_time_unit_then_is_dropped(anvil, clock):
    anvil.connect(SVC, ADDR)
    anvil.disconnect(SVC, ADDR)
    clock.t = T0 + 30
    assert anvil.connect(SVC, ADDR).rate == 2      # reconnect within the unit still counts
    anvil.disconnect(SVC, ADDR)
    clock.t = T0 + 90                              # idle since +30: +90 is the unit, not past it
    assert anvil.expire() == 1
    clock.t = T0 + 91
    assert anvil.expire() == 0
    assert anvil.lookup(SVC, ADDR) is None


def test_connected_clients_are_never_expired(anvil, clock):
    anvil.connect(SVC, ADDR)
    clock.t = T0 + 10_000
    assert anvil.expire() == 1
    assert anvil.lookup(SVC, ADDR) == ClientCounts(1, 0, 0, 0, 0, 0)


def test_rate_event_while_idle_keeps_the_client_until_its_window_ends(anvil, clock):
    anvil.connect(SVC, ADDR)
    anvil.disconnect(SVC, ADDR)
    clock.t = T0 + 61
    assert anvil.message(SVC, ADDR) == 1           # window restarted at +61
    clock.t = T0 + 100
    assert anvil.expire() == 1
    assert anvil.message(SVC, ADDR) == 2
    clock.t = T0 + 122
    assert anvil.expire() == 0


def test_table_stays_small_under_churn(anvil, clock):
    for i in range(2000):
        clock.t = T0 + i // 100                    # 100 new clients a second
        addr = f"10.0.{i // 256}.{i % 256}"
        anvil.connect(SVC, addr)
        anvil.disconnect(SVC, addr)
    assert len(anvil) == 2000                      # all seen within one unit
    clock.t = T0 + 19 + 61
    anvil.connect(SVC, "203.0.113.1")
    assert len(anvil) == 1


def test_cap_evicts_the_longest_idle_clients_first(clock):
    anvil = Anvil(60, clock=clock, max_clients=10, tz=UTC)
    for i in range(25):
        clock.t = T0 + i
        anvil.connect(SVC, f"10.0.0.{i}")
        anvil.disconnect(SVC, f"10.0.0.{i}")
    assert len(anvil) == 10
    assert anvil.evicted == 15
    assert anvil.lookup(SVC, "10.0.0.14") is None
    assert anvil.lookup(SVC, "10.0.0.15") is not None
    assert anvil.lookup(SVC, "10.0.0.24") is not None


def test_cap_never_evicts_connected_clients(clock):
    anvil = Anvil(60, clock=clock, max_clients=10, tz=UTC)
    for i in range(15):
        anvil.connect(SVC, f"10.0.0.{i}")
    assert len(anvil) == 15 and anvil.evicted == 0
    assert all(anvil.lookup(SVC, f"10.0.0.{i}").count == 1 for i in range(15))
    anvil.disconnect(SVC, "10.0.0.3")
    anvil.connect(SVC, "10.0.1.1")                 # over the cap: the idle one goes
    assert anvil.lookup(SVC, "10.0.0.3") is None and anvil.evicted == 1


def test_statistics_lines_match_postfix(anvil, clock):
    svc, addr = "smtpd-unix", "192.0.2.10"
    # maillog-3.7.11.txt lines 14-16: connections at 00:21:40 and 00:21:49
    anvil.connect(svc, addr)
    anvil.disconnect(svc, addr)
    clock.t = T0 + 9
    anvil.connect(svc, addr)
    anvil.disconnect(svc, addr)
    assert anvil.statistics() == [
        "statistics: max connection rate 2/60s for (smtpd-unix:192.0.2.10) at Nov 27 00:21:49",
        "statistics: max connection count 1 for (smtpd-unix:192.0.2.10) at Nov 27 00:21:40",
        "statistics: max cache size 1 at Nov 27 00:21:40",
    ]
    assert anvil.statistics() == []                # maxima reset after each dump


def test_statistics_order_and_all_kinds(clock):
    anvil = Anvil(60, clock=clock, tz=UTC)
    addr = "198.51.100.7"
    anvil.connect("smtpd-unix", addr)
    anvil.message("smtpd-unix", addr)
    anvil.recipient("smtpd-unix", addr)
    anvil.recipient("smtpd-unix", addr)
    anvil.newtls("smtpd-unix", addr)
    clock.t = T0 + 5
    for _ in range(3):
        anvil.auth("submission", addr)
    t = "Nov 27 00:21:40"
    assert anvil.statistics() == [
        f"statistics: max connection rate 1/60s for (smtpd-unix:{addr}) at {t}",
        f"statistics: max connection count 1 for (smtpd-unix:{addr}) at {t}",
        f"statistics: max message rate 1/60s for (smtpd-unix:{addr}) at {t}",
        f"statistics: max recipient rate 2/60s for (smtpd-unix:{addr}) at {t}",
        f"statistics: max newtls rate 1/60s for (smtpd-unix:{addr}) at {t}",
        f"statistics: max auth rate 3/60s for (submission:{addr}) at Nov 27 00:21:45",
        "statistics: max cache size 2 at Nov 27 00:21:45",
    ]


def test_statistics_keep_the_first_time_a_maximum_was_reached(anvil, clock):
    anvil.connect(SVC, ADDR)
    anvil.connect(SVC, ADDR)
    anvil.disconnect(SVC, ADDR)
    clock.t = T0 + 5
    anvil.connect(SVC, ADDR)                       # count 2 again, not a new maximum
    lines = anvil.statistics()
    assert "statistics: max connection count 2 for (smtp:192.0.2.10) at Nov 27 00:21:40" in lines
    assert "statistics: max connection rate 3/60s for (smtp:192.0.2.10) at Nov 27 00:21:45" in lines


def test_limits_from_config_and_defaults():
    assert ClientLimits() == ClientLimits(50, 0, 0, 0, 0, 0)
    assert ClientLimits().counts_connections
    assert not ClientLimits(connection_count=0).counts_connections
    cfg = {"smtpd_client_message_rate_limit": 5, "smtpd_client_connection_count_limit": 0}
    assert ClientLimits.from_config(cfg) == ClientLimits(connection_count=0, message_rate=5)


def test_bad_construction():
    with pytest.raises(ValueError):
        Anvil(0)
    with pytest.raises(ValueError):
        Anvil(60, max_clients=0)
