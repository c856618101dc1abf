"""End to end through a real master: qmgr, bounce and the real smtp and
local agents; remote mail goes by MX from a test DNS server to an SMTP sink
on loopback, local mail into Maildirs."""

from __future__ import annotations

import email
import email.policy
import os
import runpy
import signal
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio

h = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("agent_helpers.py"))))
qh = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("qmgr_helpers.py"))))

pytestmark = pytest.mark.integration

CONTENT = (b"From: alice@example.com\r\nTo: bob@remote.test\r\nSubject: end to end\r\n"
           b"Message-Id: <e2e@example.com>\r\n\r\nHello.\r\n")


@pytest.fixture
def site(mailsys_instance, tmp_path):
    """An instance with qmgr, bounce, smtp and virtual; a DNS server and a sink."""
    inst = mailsys_instance
    sink = h.smtpsink.SmtpSink(rcpt={"bad@remote.test": "550 5.1.1 <bad@remote.test>: User unknown"})
    zone = {"remote.test": {"MX": [(10, "mx.remote.test")]}, "mx.remote.test": {"A": ["127.0.0.1"]}}
    (tmp_path / "vmailbox").write_text("alice@example.com example.com/alice/\n"
                                       "bob@example.com example.com/bob/\n")
    with h.dnsserver.DnsServer(zone) as dns, h.smtpsink.SinkThread(sink) as port:
        (tmp_path / "transport").write_text(f"remote.test smtp:remote.test:{port}\n")
        inst.write_config(
            master_cf=["qmgr unix n - n 300 1 qmgr", "bounce unix - - n - 0 bounce",
                       "smtp unix - - n - - smtp", "virtual unix - n n - - local"],
            main_cf={"dns_nameservers": dns.spec, "service_throttle_time": "1s",
                     "transport_maps": f"texthash:{tmp_path}/transport",
                     "virtual_mailbox_domains": "example.com",
                     "virtual_mailbox_base": str(tmp_path / "vmail"),
                     "virtual_mailbox_maps": f"texthash:{tmp_path}/vmailbox",
                     "minimal_backoff_time": "1s", "maximal_backoff_time": "2s",
                     "queue_run_delay": "1s"})
        inst.start()
        yield SimpleNamespace(inst=inst, sink=sink, vmail=tmp_path / "vmail")


def inject(inst, *rcpts: str, sender: str = "alice@example.com") -> str:
    return qh.inject(inst, CONTENT, *rcpts, sender=sender)


def maildir(site, user: str) -> list[bytes]:
    new = site.vmail / "example.com" / user / "new"
    return [(new / n).read_bytes() for n in sorted(os.listdir(new))] if new.is_dir() else []


def test_local_mail_lands_in_the_maildir(site):
    qid = inject(site.inst, "bob@example.com")
    log = site.inst.wait_log(f"{qid}: removed", timeout=20)
    assert f"{qid}: to=<bob@example.com>, relay=virtual," in log
    [data] = maildir(site, "bob")
    assert data.startswith(b"Return-Path: <alice@example.com>\n")
    assert b"Subject: end to end" in data


def test_remote_mail_goes_by_mx_to_the_peer(site):
    qid = inject(site.inst, "bob@remote.test", "carol@remote.test")
    log = site.inst.wait_log(f"{qid}: removed", timeout=20)
    assert f"{qid}: to=<bob@remote.test>, relay=mx.remote.test[127.0.0.1]:" in log
    [msg] = site.sink.messages
    assert msg.sender == "alice@example.com"
    assert sorted(msg.rcpts) == ["bob@remote.test", "carol@remote.test"]
    assert msg.data == CONTENT


def to_lines(log: str, qid: str) -> list[str]:
    return [line.split("to=<", 1)[1].split(">", 1)[0] for line in log.splitlines()
            if f"{qid}: to=<" in line]


def test_recipients_go_in_postfix_qmgr_order_not_as_received(site):
    # Postfix 3.7 sends RCPT and logs to= sorted by domain, then address
    # (strcmp: digits, then upper case, then lower case), whatever the
    # order the recipients came in.
    rcpts = ["zed@remote.test", "5rcpt@remote.test", "Alice@remote.test", "rcpt@remote.test",
             "2rcpt@remote.test"]
    qid = inject(site.inst, *rcpts)
    log = site.inst.wait_log(f"{qid}: removed", timeout=20)
    want = ["2rcpt@remote.test", "5rcpt@remote.test", "Alice@remote.test", "rcpt@remote.test",
            "zed@remote.test"]
    [msg] = site.sink.messages
    assert msg.rcpts == want
    assert to_lines(log, qid) == want


def test_a_notice_names_refused_recipients_in_postfix_order(site):
    # Postfix 3.7's notice for recipients a sink refused in one delivery
    # named them as it sent them (bounce log order), not as received.
    refused = ["zed@remote.test", "5rcpt@remote.test", "Alice@remote.test", "rcpt@remote.test"]
    for r in refused:
        site.sink.rcpt[r] = f"550 5.1.1 <{r}>: User unknown"
    qid = inject(site.inst, *refused)
    log = site.inst.wait_log(f"{qid}: removed", timeout=20)
    notice_id = next(x for x in log.splitlines()
                     if f"{qid}: sender non-delivery notification:" in x).rsplit(" ", 1)[1]
    site.inst.wait_log(f"{notice_id}: removed", timeout=20)
    [data] = maildir(site, "alice")
    finals = [x.split("; ", 1)[1] for x in data.decode().splitlines()
              if x.startswith("Final-Recipient:")]
    want = ["5rcpt@remote.test", "Alice@remote.test", "rcpt@remote.test", "zed@remote.test"]
    assert finals == want
    assert to_lines(log, qid) == want


def test_a_5xx_reply_returns_a_notice_to_the_senders_maildir(site):
    qid = inject(site.inst, "bad@remote.test")
    log = site.inst.wait_log(f"{qid}: removed", timeout=20)
    assert "status=bounced (host mx.remote.test[127.0.0.1] said: 550 5.1.1" in log
    line = next(x for x in log.splitlines() if f"{qid}: sender non-delivery notification:" in x)
    notice_id = line.rsplit(" ", 1)[1]
    site.inst.wait_log(f"{notice_id}: removed", timeout=20)
    [data] = maildir(site, "alice")
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg["Return-Path"] == "<>"
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == \
        ["text/plain", "message/delivery-status", "message/rfc822"]
    report = data.decode()
    assert "Final-Recipient: rfc822; bad@remote.test" in report
    assert "Status: 5.1.1" in report and "Remote-MTA: dns; mx.remote.test" in report
    assert site.sink.messages == []


def test_a_4xx_reply_is_retried_after_the_back_off_and_delivered_once(site):
    site.sink.rcpt["later@remote.test"] = "450 4.2.1 <later@remote.test>: try again later"
    qid = inject(site.inst, "later@remote.test")
    site.inst.wait_log(f"{qid}: to=<later@remote.test>", timeout=20)
    deferred_at = time.time()
    del site.sink.rcpt["later@remote.test"]
    log = site.inst.wait_log(f"{qid}: removed", timeout=20)
    assert "status=deferred (host mx.remote.test[127.0.0.1] said: 450 4.2.1" in log
    assert log.index("status=deferred") < log.index(f"{qid}: removed")
    assert time.time() - deferred_at >= 0.5        # waited for the back-off (1 s)
    assert [m.rcpts for m in site.sink.messages] == [["later@remote.test"]]


def test_smtp_agent_killed_during_delivery_the_mail_is_still_delivered(site):
    site.sink.stall = "DOT"                     # the peer never answers the end of data
    qid = inject(site.inst, "kill@remote.test")
    site.inst.wait_until(lambda: any(c.upper().startswith("DATA") for c in site.sink.commands),
                         timeout=20)
    time.sleep(0.2)
    for agent in site.inst.children("smtp"):
        os.kill(agent.pid, signal.SIGKILL)
    site.sink.stall = ""
    log = site.inst.wait_log(f"{qid}: removed", timeout=30)
    # Postfix qmgr_deliver.c: an agent that dies with the request is an
    # "unknown mail transport error"; qmgr warns and logs no status line
    # for it (seen live with Postfix 3.7.11).
    assert "warning: private/smtp socket: malformed response" in log
    assert f"{qid}: to=<kill@remote.test>, relay=none," not in log
    assert "mail transport unavailable" not in log
    assert ["kill@remote.test"] in [m.rcpts for m in site.sink.messages]


class CountingSink(h.smtpsink.SmtpSink):
    """A sink that counts mail transactions in progress (MAIL to end of data),
    each held open a little so that overlaps show."""

    in_flight: int = 0
    most: int = 0

    async def _point(self, name: str) -> None:
        if name == "MAIL":
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        elif name == "DOT":
            await trio.sleep(0.2)
            self.in_flight -= 1
        await super()._point(name)


def test_per_destination_concurrency_is_never_exceeded(mailsys_instance, tmp_path):
    inst = mailsys_instance
    sink = CountingSink()
    zone = {"remote.test": {"MX": [(10, "mx.remote.test")]}, "mx.remote.test": {"A": ["127.0.0.1"]}}
    with h.dnsserver.DnsServer(zone) as dns, h.smtpsink.SinkThread(sink) as port:
        (tmp_path / "transport").write_text(f"remote.test smtp:remote.test:{port}\n")
        inst.write_config(
            master_cf=["qmgr unix n - n 300 1 qmgr", "bounce unix - - n - 0 bounce",
                       "smtp unix - - n - - smtp"],
            main_cf={"dns_nameservers": dns.spec, "transport_maps": f"texthash:{tmp_path}/transport",
                     "smtp_destination_concurrency_limit": "2",
                     "smtp_initial_destination_concurrency": "2"})
        inst.start()
        qids = [inject(inst, f"u{i}@remote.test") for i in range(8)]
        for qid in qids:
            inst.wait_log(f"{qid}: removed", timeout=30)
    assert len(sink.messages) == 8
    assert sink.most == 2


def test_qmgr_and_smtp_killed_mid_delivery_every_message_still_delivered(site):
    site.sink.stall = "DOT"
    qids = [inject(site.inst, f"k{i}@remote.test") for i in range(5)]
    site.inst.wait_until(lambda: sum(c.upper().startswith("DATA") for c in site.sink.commands) >= 1,
                         timeout=20)
    time.sleep(0.3)
    for proc in site.inst.children("qmgr") + site.inst.children("smtp"):
        os.kill(proc.pid, signal.SIGKILL)
    site.sink.stall = ""
    for qid in qids:
        site.inst.wait_log(f"{qid}: removed", timeout=30)
    got = {r for m in site.sink.messages for r in m.rcpts}
    assert got == {f"k{i}@remote.test" for i in range(5)}
