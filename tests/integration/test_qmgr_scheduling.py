"""qmgr's scheduler parameters through a real master: defer_transports and
the flushes that deliver it, <transport>_transport_rate_delay, destination
concurrency feedback with its debug lines, the in-memory recipient limits. What Postfix 3.7 logged for the
same settings is quoted at each test."""

from __future__ import annotations

import runpy
import smtplib
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

here = Path(__file__).parent
sinks = SimpleNamespace(**runpy.run_path(str(here / "smtpsink.py")))
h = SimpleNamespace(**runpy.run_path(str(here / "smtpd_helpers.py")))

SERVICES = ["cleanup unix - - n - 0 cleanup", "qmgr unix n - n 300 1 qmgr",
            "bounce unix - - n - 0 bounce", "smtp unix - - n - - smtp",
            "relay unix - - n - - smtp", "flush unix n - n - 0 flush"]


def start(inst, **main) -> int:
    """A relay to the sinks that main names; its smtpd port."""
    port = inst.free_port()
    inst.write_config(master_cf=[*SERVICES, f"127.0.0.1:{port} inet n - n - - smtpd"],
                      main_cf={"mydestination": "", "mynetworks": "127.0.0.0/8",
                               "smtp_connect_timeout": "5s", **main})
    inst.start()
    inst.wait_until(lambda: h.listening(port))
    return port


def send(port: int, *rcpts: str) -> str:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("c.example")
        s.mail("s@example.org")
        for r in rcpts:
            s.rcpt(r)
        return h.qid_of(s.data(b"Subject: scheduled\r\n\r\nhello\r\n")[1])


# -- defer_transports ------------------------------------------------------------------

@pytest.mark.parametrize("flush", [("postqueue", "-f"), ("sendmail", "-q"), ("postqueue", "-i"),
                                   ("postqueue", "-s", "remote.example")])
def test_defer_transports_holds_mail_until_a_flush(mailsys_instance, flush):
    # Postfix 3.7, defer_transports = smtp (here relay, where relay_domains mail goes):
    #   postfix/error[..]: B77AF20C01C: to=<a@example.com>, relay=none, delay=0.02,
    #     delays=0.01/0.01/0/0.01, dsn=4.3.2, status=deferred (deferred transport)
    # mailq shows "(deferred transport)"; postqueue -f, or -i QID, delivers it.
    inst = mailsys_instance
    sink = sinks.SmtpSink()
    with sinks.SinkThread(sink) as sink_port:
        port = start(inst, relayhost=f"[127.0.0.1]:{sink_port}", defer_transports="relay",
                     fast_flush_domains="remote.example", relay_domains="remote.example")
        qid = send(port, "bob@remote.example")
        inst.wait_log(f"{qid}: to=<bob@remote.example>, relay=none, delay=", timeout=20)
        log = inst.log_text()
        assert "dsn=4.3.2, status=deferred (deferred transport)" in log
        assert "(deferred transport)" in inst.cli("mailq").stdout
        time.sleep(1)
        assert sink.messages == []                   # nothing went out
        # a new message is deferred too: the flush is for the queue as it was
        later = send(port, "carol@remote.example")
        inst.wait_log(f"{later}: to=<carol@remote.example>, relay=none", timeout=20)
        args = [*flush, qid] if flush[1] == "-i" else list(flush)
        r = inst.cli(*args)
        assert r.returncode == 0, r.stderr
        inst.wait_log(f"{qid}: removed", timeout=20)
    delivered = [r for m in sink.messages for r in m.rcpts]
    assert "bob@remote.example" in delivered
    if flush[1] == "-i":
        assert delivered == ["bob@remote.example"]      # that one entry only
    assert f"{qid}: to=<bob@remote.example>, relay=127.0.0.1[127.0.0.1]:{sink_port}" in \
        inst.log_text()


def test_defer_transports_leaves_other_transports_alone(mailsys_instance):
    inst = mailsys_instance
    sink = sinks.SmtpSink()
    with sinks.SinkThread(sink) as sink_port:
        port = start(inst, relayhost=f"[127.0.0.1]:{sink_port}", defer_transports="relay",
                     relay_domains="")
        qid = send(port, "bob@remote.example")
        inst.wait_log(f"{qid}: removed", timeout=20)
    assert "deferred transport" not in inst.log_text()


# -- transport rate delay ----------------------------------------------------------------

def arrivals(sink, n: int, timeout: float = 30) -> list[float]:
    """When each of the first n messages reached the sink (monotonic)."""
    times: list[float] = []
    end = time.monotonic() + timeout
    while len(times) < n and time.monotonic() < end:
        while len(times) < min(n, len(sink.messages)):
            times.append(time.monotonic())
        time.sleep(0.02)
    assert len(times) == n, f"{len(sink.messages)} of {n} arrived"
    return times


def two_destinations(inst, tmp_path, sink, **main) -> list[float]:
    """Three messages to two destinations (next hops) of the smtp
    transport, both on the sink; when they arrived, from the first send."""
    with sinks.SinkThread(sink) as sink_port:
        (tmp_path / "transport").write_text(f"a.example smtp:[127.0.0.1]:{sink_port}\n"
                                            f"b.example smtp:[localhost]:{sink_port}\n")
        port = start(inst, transport_maps=f"texthash:{tmp_path}/transport",
                     relay_domains="a.example b.example", smtp_host_lookup="native",
                     smtp_dns_support_level="disabled", **main)
        start_at = time.monotonic()
        for rcpt in ("x@a.example", "y@b.example", "z@a.example"):
            send(port, rcpt)
        return [t - start_at for t in arrivals(sink, 3)]


def test_transport_rate_delay_spaces_deliveries_to_any_destination(mailsys_instance, tmp_path):
    # Postfix 3.1+: "If non-zero, all deliveries over the same message
    # delivery transport will happen one at a time", that long apart.
    sink = sinks.SmtpSink()
    times = two_destinations(mailsys_instance, tmp_path, sink, smtp_transport_rate_delay="2s")
    assert times[0] > 1.5                        # the first waits too, as in Postfix
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(gap > 1.5 for gap in gaps), gaps
    assert {m.rcpts[0].split("@")[1] for m in sink.messages} == {"a.example", "b.example"}


def test_another_transports_rate_delay_does_not_hold_smtp(mailsys_instance, tmp_path):
    times = two_destinations(mailsys_instance, tmp_path, sinks.SmtpSink(),
                             relay_transport_rate_delay="5s")
    assert times[-1] < 5


# -- concurrency feedback ------------------------------------------------------------------

def test_feedback_debug_logs_the_window_as_postfix(mailsys_instance):
    # Postfix 3.7, destination_concurrency_feedback_debug = yes,
    # smtp_destination_concurrency_negative_feedback = 1/8:
    #   qmgr: smtp: default_destination_concurrency_positive_feedback feedback type 0 value at 5: 1
    #   qmgr: smtp: smtp_destination_concurrency_negative_feedback feedback type 0 value at 5: 0.125
    #   qmgr: qmgr_queue_unthrottle: feedback 1
    #   qmgr: qmgr_queue_unthrottle: queue [127.0.0.1]:3102: limit 20 window 6 success 0
    #         failure 0 fail_cohorts 0
    inst = mailsys_instance
    sink = sinks.SmtpSink()
    with sinks.SinkThread(sink) as sink_port:
        port = start(inst, relayhost=f"[127.0.0.1]:{sink_port}",
                     destination_concurrency_feedback_debug="yes",
                     smtp_destination_concurrency_negative_feedback="1/8")
        qid = send(port, "bob@remote.example")
        log = inst.wait_log(f"{qid}: removed", timeout=20)
    assert ("smtp: default_destination_concurrency_positive_feedback feedback type 0 "
            "value at 5: 1") in log
    assert "smtp: smtp_destination_concurrency_negative_feedback feedback type 0 " \
           "value at 5: 0.125" in log
    assert "qmgr_queue_unthrottle: feedback 1\n" in log
    assert (f"qmgr_queue_unthrottle: queue [127.0.0.1]:{sink_port}: limit 20 window 6 "
            "success 0 failure 0 fail_cohorts 0") in log


def test_a_dead_destination_dies_after_its_failed_pseudo_cohorts(mailsys_instance):
    # Postfix: each failure adds 1/window to the failed cohorts and the
    # negative feedback shrinks the window; at the cohort limit (1) the
    # destination is dead and the rest is "delivery temporarily suspended".
    inst = mailsys_instance
    dead_port = inst.free_port()
    port = start(inst, relayhost=f"[127.0.0.1]:{dead_port}",
                 destination_concurrency_feedback_debug="yes",
                 smtp_initial_destination_concurrency="1", initial_destination_concurrency="1")
    qids = [send(port, f"r{i}@remote.example") for i in range(3)]
    for qid in qids:
        inst.wait_log(f"{qid}: to=<", timeout=30)
    log = inst.log_text()
    assert (f"qmgr_queue_throttle: queue [127.0.0.1]:{dead_port}: limit 20 window 0 "
            "success 0 failure 0 fail_cohorts 1") in log
    assert "delivery temporarily suspended: connect to 127.0.0.1[127.0.0.1]" in log


# -- qmgr_clog_warn_time ------------------------------------------------------------------

@pytest.mark.parametrize("helpful", ["yes", "no"])
def test_a_destination_filling_the_active_queue_is_warned_about(mailsys_instance, helpful):
    # Postfix 3.7, qmgr_message_active_limit = 10,
    # smtp_destination_concurrency_limit = 1, five messages to a slow sink:
    #   qmgr: warning: mail for [127.0.0.1]:3103 is using up 3 of 3 active queue entries
    #   qmgr: warning: you may need to increase the main.cf smtp_destination_concurrency_limit from 1
    #   qmgr: warning: please avoid flushing the whole queue when you have
    #   qmgr: warning: lots of deferred mail, that is bad for performance
    #   qmgr: warning: to turn off these warnings specify: qmgr_clog_warn_time = 0
    # With helpful_warnings = no Postfix 3.7.11 logged none of them for the
    # same five messages (qmgr_queue.c: "if (var_helpful_warnings && ...)").
    inst = mailsys_instance
    sink = sinks.SmtpSink(stall="DOT")
    with sinks.SinkThread(sink) as sink_port:
        port = start(inst, relayhost=f"[127.0.0.1]:{sink_port}", qmgr_message_active_limit="10",
                     smtp_destination_concurrency_limit="1", smtp_data_done_timeout="30s",
                     helpful_warnings=helpful)
        for i in range(5):
            send(port, f"r{i}@remote.example")
        if helpful == "no":
            # The warning would come as the fifth message is opened.
            inst.wait_until(lambda: inst.log_text().count("(queue active)") == 5, timeout=30)
            time.sleep(1)
            assert not [line for line in inst.log_text().splitlines()
                        if "mailsys/qmgr[" in line and "warning: " in line]
            return
        log = inst.wait_log("to turn off these warnings specify: qmgr_clog_warn_time = 0",
                            timeout=30)
    warned = [line.split("warning: ", 1)[1] for line in log.splitlines()
              if "mailsys/qmgr[" in line and "warning: " in line]
    assert warned[0].startswith(f"mail for [127.0.0.1]:{sink_port} is using up 3 of ")
    assert warned[1:] == [
        "you may need to increase the main.cf smtp_destination_concurrency_limit from 1",
        "please avoid flushing the whole queue when you have",
        "lots of deferred mail, that is bad for performance",
        "to turn off these warnings specify: qmgr_clog_warn_time = 0"]


# -- in-memory recipient limits ------------------------------------------------------------

def test_a_big_message_is_read_in_batches_as_postfix_reads_it(mailsys_instance):
    # Postfix 3.7, qmgr_message_active_limit = qmgr_message_recipient_limit = 10,
    # smtp_recipient_limit = 20, smtp_destination_recipient_limit = 50, one
    # message to 200 recipients: qmgr -v logged "recipient limit 10" (the
    # first batch), then "recipient limit 30" seven times (the minimum 10
    # and smtp's 20 slots, read each time the batch before was delivered),
    # and smtp-sink saw transactions of 10, 30 x 6 and 10 recipients.
    # Without the limits both deliver it in four transactions of 50.
    inst = mailsys_instance
    sink = sinks.SmtpSink()
    rcpts = [f"r{i}@remote.example" for i in range(200)]
    with sinks.SinkThread(sink) as sink_port:
        port = start(inst, relayhost=f"[127.0.0.1]:{sink_port}",
                     qmgr_message_active_limit="10", qmgr_message_recipient_limit="10",
                     smtp_recipient_limit="20", smtp_destination_recipient_limit="50")
        qid = send(port, *rcpts)
        inst.wait_log(f"{qid}: removed", timeout=60)
    assert sorted(len(m.rcpts) for m in sink.messages) == [10, 10, 30, 30, 30, 30, 30, 30]
    assert sorted(r for m in sink.messages for r in m.rcpts) == sorted(rcpts)
    assert "adjusting qmgr_message_recipient_limit" not in inst.log_text()


def test_new_mail_comes_in_beside_a_big_message_read_in_batches(mailsys_instance):
    # Postfix 3.7, the same limits, one message to 200 recipients then one
    # to 1: both were "(queue active)" within the second, and smtp
    # delivered the small one 41st, after the big one's first two batches
    # (10 and 30), not after all 200.
    inst = mailsys_instance
    sink = sinks.SmtpSink()
    with sinks.SinkThread(sink) as sink_port:
        port = start(inst, relayhost=f"[127.0.0.1]:{sink_port}",
                     qmgr_message_active_limit="10", qmgr_message_recipient_limit="10",
                     smtp_recipient_limit="20", smtp_destination_recipient_limit="50")
        big = send(port, *(f"r{i}@remote.example" for i in range(200)))
        small = send(port, "small@other.example")
        inst.wait_log(f"{big}: removed", timeout=60)
        inst.wait_log(f"{small}: removed", timeout=20)
    rcpts = [r for m in sink.messages for r in m.rcpts]
    assert len(rcpts) == 201
    assert 10 <= rcpts.index("small@other.example") <= 41
